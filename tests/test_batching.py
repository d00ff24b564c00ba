"""Continuous batching, queueing and MTP (physics/batching.py, serve.py, decode.py)."""
from __future__ import annotations

import numpy as np
import pytest

from qsmoe.errors import QsError
from qsmoe.physics.batching import chunk_compute_s, running_and_queued
from qsmoe.physics.decode import decode
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import serve
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
