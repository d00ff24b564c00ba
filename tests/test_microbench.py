"""Tests for qsmoe.evidence.microbench: routing, cost model, roofline, input checks, and small timed runs."""
from __future__ import annotations

import json
import math
import re
import sys
import types
from dataclasses import asdict, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsmoe.evidence import devices, microbench as mb
from qsmoe.errors import QsError
from qsmoe.physics.routing import experts_touched

TINY = {"d_model": 16, "d_ff": 8, "n_experts": 8, "top_k": 2}

#: Made-up peaks so the sweep tests need not measure the machine.
FAKE_PEAKS = devices.MachinePeaks(
    backend="numpy-cpu",
    dtype="float32",
    bandwidth_bytes_per_s=1e10,
    copy_bytes_per_s=1e10,
    sum_bytes_per_s=1e10,
    gemv_bytes_per_s=1e10,
    matmul_flops_per_s=1e11,
    llc_bytes=2**25,
    stream_bytes=2**28,
    matmul_n=256,
    wall_s=0.0,
    description={},
)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 300), st.integers(1, 40), st.data())
def test_routing_groups_every_token_top_k_times(n_tokens: int, n_experts: int, data: st.DataObject) -> None:
    top_k = data.draw(st.integers(1, n_experts))
    choice = mb.route_tokens(n_tokens, n_experts, top_k, np.random.default_rng(n_tokens))
    assert choice.shape == (n_tokens, top_k)
    assert all(len(set(row)) == top_k for row in choice.tolist())
    groups = mb.group_by_expert(choice, n_experts)
    experts = [e for e, _ in groups]
    assert experts == sorted(set(experts)) and all(0 <= e < n_experts for e in experts)
    assert len(groups) <= min(n_experts, n_tokens * top_k)
    assert all(len(set(tokens.tolist())) == len(tokens) > 0 for _, tokens in groups)
    counts = np.bincount(np.concatenate([tokens for _, tokens in groups]), minlength=n_tokens)
    assert counts.tolist() == [top_k] * n_tokens
    for expert, tokens in groups:
        assert (choice[tokens] == expert).any(axis=1).all()


def test_touched_experts_agree_with_the_analytic_model() -> None:
    """Mean distinct experts over many seeded routings ~ E (1 - (1 - k/E)^B) from qsmoe.physics.routing."""
    rng = np.random.default_rng(0)
    for n_tokens in (1, 8, 64):
        mean = np.mean([len(mb.group_by_expert(mb.route_tokens(n_tokens, 128, 8, rng), 128)) for _ in range(200)])
        assert mean == pytest.approx(float(experts_touched(n_tokens, 128, 8)), rel=0.02)


def test_routing_is_seeded() -> None:
    a = mb.route_tokens(50, 16, 4, np.random.default_rng(7))
    b = mb.route_tokens(50, 16, 4, np.random.default_rng(7))
    assert np.array_equal(a, b)


def test_moe_forward_matches_a_per_token_loop() -> None:
    be = devices.numpy_backend("float64")
    d_model, d_ff, n_experts, top_k, n_tokens = 6, 4, 5, 2, 9
    w_in, w_out = be.random((n_experts * d_ff, d_model), 1), be.random((n_experts * d_ff, d_model), 2)
    x = be.random((n_tokens, d_model), 3)
    choice = mb.route_tokens(n_tokens, n_experts, top_k, np.random.default_rng(0))
    y = mb._moe_forward(be, x, w_in, w_out, mb.group_by_expert(choice, n_experts), d_ff)
    expected = np.zeros_like(x)
    for t in range(n_tokens):
        for e in choice[t]:
            block = slice(e * d_ff, (e + 1) * d_ff)
            expected[t] += np.maximum(x[t] @ w_in[block].T, 0) @ w_out[block]
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)


def test_dense_and_moe_do_the_same_flops_per_token() -> None:
    d_model, d_ff, top_k, n_tokens = 64, 32, 4, 37
    per_token = 2 * 2 * d_model * d_ff * top_k
    dense = mb.ffn_costs(n_tokens, d_model, d_ff * top_k, 4)
    groups = mb.group_by_expert(mb.route_tokens(n_tokens, 16, top_k, np.random.default_rng(1)), 16)
    moe = [c for _, tokens in groups for c in mb.ffn_costs(len(tokens), d_model, d_ff, 4)]
    assert sum(f for f, _ in dense) == sum(f for f, _ in moe) == per_token * n_tokens
    assert mb.sweep_sizes(d_model, d_ff, 16, top_k, 4, 2**20)["flops_per_token"] == per_token


def test_roofline_on_a_hand_checked_case() -> None:
    # [2,3] @ [3,4] in float32: 2*2*3*4 = 48 flops; 4 * (2*3 + 3*4 + 2*4) = 104 bytes.
    assert mb.matmul_cost(2, 3, 4, 4) == (48, 104)
    # max(48/100, 104/52) + max(1000/100, 10/52) = 2.0 + 10.0
    assert mb.roofline_time_s([(48, 104), (1000, 10)], 100.0, 52.0) == pytest.approx(12.0)
    # A 1-token FFN of width 8 on d_model 4, fp32: weights dominate, so bandwidth bound.
    flops, nbytes = zip(*mb.ffn_costs(1, 4, 8, 4))
    assert flops == (64, 64) and nbytes == (4 * (4 + 32 + 8),) * 2
    assert mb.roofline_time_s(mb.ffn_costs(1, 4, 8, 4), 1e12, 1e9) == pytest.approx(2 * 176 / 1e9)


def test_sweep_sizes() -> None:
    sizes = mb.sweep_sizes(1024, 512, 128, 8, 4, 32 * devices.MIB)
    assert sizes["expert_bytes"] == 4 * devices.MIB
    assert sizes["dense_weight_bytes"] == 32 * devices.MIB
    assert sizes["expert_pool_bytes"] == 512 * devices.MIB
    assert sizes["pool_over_llc"] == 16.0


def test_default_cpu_pool_is_well_beyond_this_machines_llc() -> None:
    llc_bytes, _ = devices._cpu_llc()
    sizes = mb.sweep_sizes(**mb.CPU_SIZES, bytes_per_value=4, llc_bytes=llc_bytes)
    assert sizes["pool_over_llc"] >= devices.LLC_MARGIN or llc_bytes > 64 * devices.MIB


@pytest.mark.parametrize(("text", "expected"), [("32768K", 2**25), ("2M", 2**21), ("512", 512), ("1G", 2**30)])
def test_parse_cache_size(text: str, expected: int) -> None:
    assert devices._parse_cache_size(text) == expected


def test_measure_machine_returns_positive_finite_peaks() -> None:
    peaks = devices.measure_machine(budget_s=1.0)
    for value in (peaks.bandwidth_bytes_per_s, peaks.copy_bytes_per_s, peaks.sum_bytes_per_s, peaks.gemv_bytes_per_s, peaks.matmul_flops_per_s):
        assert math.isfinite(value) and value > 0
    assert peaks.bandwidth_bytes_per_s == max(peaks.copy_bytes_per_s, peaks.sum_bytes_per_s, peaks.gemv_bytes_per_s)
    assert peaks.stream_bytes >= devices.LLC_MARGIN * peaks.llc_bytes and peaks.matmul_n >= 256
    assert {"platform", "processor", "cpu_count", "numpy", "blas"} <= peaks.description.keys()
    json.dumps(asdict(peaks))


def test_time_ffn_layers_records() -> None:
    records = mb.time_ffn_layers(**TINY, batches=[16, 1, 4, 4], reps=3, budget_s=2.0, peaks=FAKE_PEAKS)
    assert [r.batch_tokens for r in records] == [1, 4, 16]
    d_model, d_ff, n_experts, top_k = TINY.values()
    for r in records:
        b = r.batch_tokens
        assert 1 <= r.reps <= 3 and len(r.dense_rep_s) == len(r.moe_rep_s) == r.reps
        assert r.dense_s_per_token > 0 and r.moe_s_per_token > 0
        assert r.dense_flops == r.moe_flops == 4 * d_model * d_ff * top_k * b
        assert top_k <= r.experts_touched <= min(n_experts, b * top_k)
        assert r.tokens_per_touched_expert >= 1
        assert r.dense_bytes == 4 * 2 * (b * d_model + d_model * d_ff * top_k + b * d_ff * top_k)
        assert r.dense_rel_error == pytest.approx(r.dense_s_per_token / r.dense_predicted_s_per_token - 1)
        assert r.moe_rel_error == pytest.approx(r.moe_s_per_token / r.moe_predicted_s_per_token - 1)
    # One token: its top_k experts hold the dense layer's weight bytes; each expert re-reads and
    # re-writes the token's d_model activations, (top_k - 1) x 2 x d_model values more than dense.
    assert records[0].moe_bytes == records[0].dense_bytes + 4 * 2 * (top_k - 1) * d_model
    json.dumps([asdict(r) for r in records])


def test_time_ffn_layers_takes_a_numpy_array_of_batches() -> None:
    records = mb.time_ffn_layers(**TINY, batches=np.array([2, 1]), reps=1, budget_s=1.0, peaks=FAKE_PEAKS)
    assert [r.batch_tokens for r in records] == [1, 2] and all(r.reps == 1 for r in records)


def test_run_all_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mb, "CPU_SIZES", TINY)
    monkeypatch.setattr(mb, "CPU_BATCHES", (1, 8))
    monkeypatch.setitem(sys.modules, "torch", None)
    result = json.loads(json.dumps(mb.run_all(budget_s=1.0, seed=3)))
    assert result["seed"] == 3 and result["wall_s"] > 0
    assert result["cpu"]["sizes"]["d_model"] == TINY["d_model"]
    assert [r["batch_tokens"] for r in result["cpu"]["records"]] == [1, 8]
    assert result["gpu"]["skipped"] is True


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"d_model": 0}, "d_model"),
        ({"d_ff": -3}, "d_ff"),
        ({"n_experts": 2.5}, "n_experts"),
        ({"top_k": 9}, "top_k"),
        ({"top_k": True}, "top_k"),
        ({"batches": []}, "batches"),
        ({"batches": [4, 0]}, "batches"),
        ({"batches": "16"}, "batches"),
        ({"reps": 0}, "reps"),
        ({"budget_s": -1.0}, "budget_s"),
        ({"budget_s": math.nan}, "budget_s"),
        ({"dtype": "float16"}, "dtype"),
        ({"peaks": replace(FAKE_PEAKS, dtype="float64")}, "peaks"),
    ],
)
def test_time_ffn_layers_rejects_bad_input(kwargs: dict, field: str) -> None:
    args = {**TINY, "batches": [1], "peaks": FAKE_PEAKS, **kwargs}
    with pytest.raises(QsError, match=f"'{field}'") as err:
        mb.time_ffn_layers(**args)
    assert err.value.field == field


def test_measure_machine_and_gpu_reject_bad_input() -> None:
    with pytest.raises(QsError, match="'budget_s'.*0"):
        devices.measure_machine(budget_s=0)
    with pytest.raises(QsError, match="'top_k'.*40"):
        mb.run_gpu_benchmark(n_experts=32, top_k=40)


def test_gpu_skipped_without_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    result = mb.run_gpu_benchmark(**TINY, batches=[1])
    assert result["skipped"] is True and "torch is not importable" in result["reason"]


def test_gpu_skipped_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.SimpleNamespace(
        __version__="0.0-fake",
        cuda=types.SimpleNamespace(is_available=lambda: False),
        version=types.SimpleNamespace(cuda=None, hip=None),
    )
    monkeypatch.setitem(sys.modules, "torch", fake)
    result = mb.run_gpu_benchmark(**TINY, batches=[1])
    assert result["skipped"] is True and "is_available() is False" in result["reason"]


def test_modules_do_not_import_torch() -> None:
    for module in (mb, devices):
        source = open(module.__file__).read()
        top_level = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
        assert not any(re.match(r"(import|from) torch\b", line) for line in top_level), module.__name__
