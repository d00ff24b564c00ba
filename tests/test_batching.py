"""Continuous batching, queueing and MTP (physics/batching.py, serve.py, decode.py)."""
from __future__ import annotations

import dataclasses
from unittest import mock

import numpy as np
import pytest

from qsmoe.errors import QsError
from qsmoe.physics.batching import chunk_compute_s, prompts_per_pass, running_and_queued
from qsmoe.physics.decode import decode
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import prefill_time, serve, serve_result
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

DS = profile_of(load_model("deepseek-v3"))
H200 = load_hardware("h200")


def test_concurrency_above_capacity_queues() -> None:
    running, queued = running_and_queued(np.array([1.0, 100.0, 5000.0]), np.array(1000.0))
    assert np.array_equal(running, [1.0, 100.0, 1000.0]) and np.array_equal(queued, [0.0, 0.0, 4000.0])
    dep = Deployment(H200, gpus=8, layout="ep", batching="continuous")
    cap = serve(DS, dep, 1000, 1000)["max_concurrency"]
    over = serve(DS, dep, 1000, 1000, cap + 500)
    assert over["feasible"] and over["running_batch"] == cap and over["queued"] == 500
    assert over["tokens_per_s_per_gpu"] == pytest.approx(serve(DS, dep, 1000, 1000, cap)["tokens_per_s_per_gpu"])


def test_throughput_grows_with_concurrency_until_capacity() -> None:
    dep = Deployment(H200, gpus=8, layout="ep", batching="continuous")
    tps = [serve(DS, dep, 2000, 500, c)["tokens_per_s_per_gpu"] for c in (1, 8, 64, 256)]
    assert all(a < b for a, b in zip(tps, tps[1:]))


def test_chunked_prefill_costs_less_than_own_steps() -> None:
    chunked = Deployment(H200, gpus=8, layout="ep", engine="sglang", batching="continuous")
    own = chunked.with_changes(engine="trtllm")
    a, b = serve(DS, chunked, 4000, 200, 64), serve(DS, own, 4000, 200, 64)
    assert a["tokens_per_s_per_gpu"] > b["tokens_per_s_per_gpu"]
    assert float(chunk_compute_s(DS, chunked, np.array(0.0), np.array(4000.0))) == 0.0


def test_mtp_emits_more_tokens_per_step() -> None:
    off = Deployment(H200, gpus=8, layout="ep")
    on = off.with_changes(mtp_draft_tokens=1, mtp_acceptance_length=1.8)
    a, b = decode(DS, off, 4096, 16), decode(DS, on, 4096, 16)
    assert float(b.step.total_s) >= float(a.step.total_s)  # verifying two tokens costs at least one
    assert float(b.tokens_per_s) > float(a.tokens_per_s)
    with pytest.raises(QsError, match="mtp_acceptance_length"):
        off.with_changes(mtp_acceptance_length=1.5)  # no draft tokens: nothing to accept


def test_a_prefill_pass_holds_as_many_prompts_as_its_token_budget_admits() -> None:
    """k = max(1, min(floor(N_pass / I), floor(B / n_out))): 8192 / 128 = 64 short prompts share a
    pass, a prompt longer than the budget has one to itself, fewer new prompts than fit cap k, and
    an engine without a budget takes one per pass."""
    assert np.array_equal(prompts_per_pass(np.array([128.0, 128.0, 10000.0, 128.0]), np.array([500.0, 10.5, 500.0, 0.3]), 8192), [64.0, 10.0, 1.0, 1.0])
    assert np.array_equal(prompts_per_pass(np.array([128.0]), np.array([500.0]), None), [1.0])


def test_short_prompts_sharing_a_pass_stream_the_weights_fewer_times() -> None:
    """Own prefill passes (TensorRT-LLM, 8192 tokens per pass): 128-token prompts arriving many per
    step cost far less per step than one pass each; a budget of one prompt per pass gives back the
    per-prompt charge exactly."""
    dep = Deployment(H200, gpus=8, layout="ep", engine="trtllm", batching="continuous")
    shared = serve_result(DS, dep, 128, 128, 4096)
    one_each = dataclasses.replace(dep.engine_spec, prefill_tokens_per_pass=128)
    with mock.patch.object(Deployment, "engine_spec", new=property(lambda self: one_each)):
        alone = serve_result(DS, dep, 128, 128, 4096)
    assert float(shared.prefill_per_step_s) < 0.5 * float(alone.prefill_per_step_s)
    new_per_step = float(alone.running_batch) / 128
    assert float(alone.prefill_per_step_s) == pytest.approx(new_per_step * float(prefill_time(DS, dep, 128, 1).total_s), rel=1e-12)
