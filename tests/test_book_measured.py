"""The measured chapter's stack: BLAS thread control (qsmoe.evidence.blas), the chapter's benchmark
(qsmoe.evidence.chapter_bench), and its rows, summaries and figures (qsmoe.book.ch12_measured_fragmentation)."""
from __future__ import annotations

import json
import math
import sys
from dataclasses import replace

import numpy as np
import pytest

from qsmoe.evidence import devices, microbench as mb
from qsmoe.book import ch12_measured_fragmentation as ch12
from qsmoe.evidence import blas, chapter_bench as cb
from qsmoe.errors import QsError
from qsmoe.scenario.params import load_params

TINY = {"d_model": 16, "d_ff": 8, "n_experts": 8, "top_k": 2}

FAKE_PEAKS = devices.MachinePeaks(
    backend="numpy-cpu",
    dtype="float32",
    bandwidth_bytes_per_s=1e10,
    copy_bytes_per_s=1e10,
    sum_bytes_per_s=8e9,
    gemv_bytes_per_s=5e9,
    matmul_flops_per_s=1e11,
    llc_bytes=2**25,
    stream_bytes=2**28,
    matmul_n=256,
    wall_s=0.5,
    description={"processor": "Test CPU", "cpu_count": "2", "blas": "openblas", "numpy": "2", "python": "3", "platform": "linux", "llc_source": "sysfs"},
)


def _record(b: int, dense_s: float, moe_s: float, dense_pred: float, moe_pred: float, touched: float, reps: int = 3) -> dict:
    """A LayerTiming as a dict, with per-token times in seconds and the reps spread +-10% around the median."""
    return {
        "batch_tokens": b,
        "reps": reps,
        "dense_s_per_token": dense_s,
        "moe_s_per_token": moe_s,
        "dense_predicted_s_per_token": dense_pred,
        "moe_predicted_s_per_token": moe_pred,
        "dense_rel_error": dense_s / dense_pred - 1,
        "moe_rel_error": moe_s / moe_pred - 1,
        "experts_touched": touched,
        "tokens_per_touched_expert": b * 2 / touched,
        "dense_flops": 0,
        "moe_flops": 0,
        "dense_bytes": 0,
        "moe_bytes": 1e6 * touched,
        "dense_rep_s": [dense_s * b * f for f in ((0.9, 1.0, 1.1) if reps == 3 else (1.0,))],
        "moe_rep_s": [moe_s * b * f for f in ((0.9, 1.0, 1.1) if reps == 3 else (1.0,))],
    }


@pytest.fixture()
def report() -> dict:
    """A hand-made CPU report: ratio peaks at B = 4 (measured) and B = 8 (roofline)."""
    records = [
        _record(1, 1e-3, 1.1e-3, 1e-3, 1e-3, 2.0),
        _record(4, 3e-4, 1.5e-3, 2.5e-4, 8e-4, 6.0),
        _record(8, 2e-4, 9e-4, 1e-4, 9e-4, 7.5),
        _record(64, 1e-4, 2e-4, 1e-4, 1e-4, 8.0, reps=1),
    ]
    return {
        "skipped": False,
        "peaks": {**FAKE_PEAKS.__dict__},
        "sizes": mb.sweep_sizes(**TINY, bytes_per_value=4, llc_bytes=FAKE_PEAKS.llc_bytes),
        "batches": [1, 4, 8, 64],
        "records": records,
    }


def test_blas_threads_limits_and_restores() -> None:
    before = [get() for get, _ in _controls()]
    with blas.blas_threads(1) as note:
        assert isinstance(note, str) and note
        during = [get() for get, _ in _controls()]
    assert [get() for get, _ in _controls()] == before
    if "OpenBLAS was limited" in note:
        assert during and all(n == 1 for n in during)
    else:
        assert "left at the library's default" in note


def _controls():
    import ctypes

    out = []
    for path in blas._openblas_libraries():
        lib = ctypes.CDLL(str(path))
        get = blas._openblas_symbol(lib, "openblas_get_num_threads")
        if get is not None:
            get.restype = ctypes.c_int
            out.append((get, path))
    return out


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_blas_threads_rejects_bad_counts(bad) -> None:
    with pytest.raises(QsError, match="n_threads"):
        with blas.blas_threads(bad):
            pass


def test_sweep_rows(report: dict) -> None:
    rows = ch12.sweep_rows(report)
    assert [r["batch_tokens"] for r in rows] == [1, 4, 8, 64]
    r = rows[1]
    assert r["dense_us"] == pytest.approx(300.0) and r["moe_us"] == pytest.approx(1500.0)
    assert r["dense_lo_us"] == pytest.approx(270.0) and r["dense_hi_us"] == pytest.approx(330.0)
    assert r["dense_error_pct"] == pytest.approx(20.0) and r["moe_error_pct"] == pytest.approx(87.5)
    assert r["ratio"] == pytest.approx(5.0) and r["roofline_ratio"] == pytest.approx(3.2)
    assert r["touched_fraction"] == pytest.approx(6 / 8)
    assert 0 < r["model_touched_fraction"] <= 1
    assert rows[-1]["dense_lo_us"] == rows[-1]["dense_hi_us"] == pytest.approx(100.0)
    table = ch12.table_rows(rows)
    assert len(table) == 4 and table[0]["batch (tokens)"] == 1 and "MoE error (%)" in table[0]


def test_sweep_summary(report: dict) -> None:
    s = ch12.sweep_summary(report, expert_overhead_s=10e-6)
    assert s["peak_ratio"] == pytest.approx(5.0) and s["peak_ratio_batch"] == 4 and s["peak_ratio_word"] == "slower"
    assert s["roofline_peak_ratio"] == pytest.approx(9.0) and s["roofline_peak_ratio_batch"] == 8
    assert s["last_batch"] == 64 and s["last_ratio"] == pytest.approx(2.0) and s["last_roofline_ratio"] == pytest.approx(1.0)
    # |errors| dense: 0, 20, 100, 0 -> median 10; MoE: 10, 87.5, 0, 100 -> median 48.75
    assert s["dense_median_abs_error_pct"] == pytest.approx(10.0)
    assert s["moe_median_abs_error_pct"] == pytest.approx(48.75)
    assert s["moe_underpredicted"] == "B = 4 and 64" and s["dense_underpredicted"] == "B = 8"
    assert s["dense_overpredicted"] == "no batch size"
    assert s["moe_worst_batch"] == 64 and s["moe_worst_error_pct"] == pytest.approx(100.0)
    # worst point: (200 - 100) us/token x 64 tokens = 6400 us excess; overhead 10 us x 8 experts = 80 us
    assert s["moe_worst_excess_us_per_layer"] == pytest.approx(6400.0)
    assert s["worst_overhead_us_per_layer"] == pytest.approx(80.0)
    assert s["worst_overhead_share_pct"] == pytest.approx(1.25)
    assert s["worst_excess_cause"] == "most of the excess lies in the expert GEMMs themselves"
    assert s["ridge_flops_per_byte"] == pytest.approx(10.0) and s["ridge_batch_tokens"] == pytest.approx(20.0)
    assert s["ridge_moe_batch_tokens"] == pytest.approx(80.0)
    assert s["points_total"] == 8 and s["points_above_roofline"] == 5
    assert "understates" in s["penalty_verdict"] and "overstates" in s["penalty_verdict"]
    json.dumps(s)
    for value in s.values():
        assert not isinstance(value, float) or math.isfinite(value)


def test_sweep_summary_without_excess(report: dict) -> None:
    for r in report["records"]:
        r["moe_s_per_token"] = r["moe_predicted_s_per_token"] * 0.5
        r["moe_rel_error"] = -0.5
    s = ch12.sweep_summary(report, expert_overhead_s=1e-6)
    assert s["worst_excess_cause"] == "there is no excess to account for" and s["worst_overhead_share_pct"] == 0.0
    assert s["moe_underpredicted"] == "no batch size"


def test_sweep_summary_rejects_an_empty_report(report: dict) -> None:
    with pytest.raises(QsError, match="records"):
        ch12.sweep_summary({**report, "records": []})


@pytest.mark.parametrize(
    ("args", "words"),
    [((5, 4, 2, 1), ("understates", "both")), ((3, 4, 1, 2), ("overstates", "both")), ((5, 4, 1, 2), ("understates the peak",)), ((3, 4, 2, 1), ("has not closed",))],
)
def test_penalty_verdict(args, words) -> None:
    text = ch12.penalty_verdict(*args)
    assert all(w in text for w in words)


def test_batch_list_text() -> None:
    assert ch12.batch_list_text([]) == "no batch size"
    assert ch12.batch_list_text([8]) == "B = 8"
    assert ch12.batch_list_text([2048, 8, 16]) == "B = 8, 16 and 2,048"


def test_machine_facts_cpu_and_gpu(report: dict) -> None:
    facts = ch12.machine_facts(report)
    assert facts["device"] == "Test CPU" and facts["cores"] == "2"
    assert facts["bandwidth_gbs"] == pytest.approx(10.0) and facts["peak_gflops"] == pytest.approx(100.0)
    assert facts["matmul_cache_phrase"].startswith("fit in")  # 3 x 256^2 x 4 B = 768 KiB < 32 MiB
    gpu = {**report, "peaks": {**report["peaks"], "backend": "torch-gpu", "dtype": "bfloat16", "matmul_n": 16384, "description": {"device": "Test GPU", "torch": "2.x"}}}
    facts = ch12.machine_facts(gpu)
    assert facts["device"] == "Test GPU" and facts["torch"] == "2.x" and facts["cuda"] == "None"
    assert facts["matmul_cache_phrase"] == "exceed the last-level cache"


def test_accelerator_comparison() -> None:
    acc = ch12.accelerator_comparison(load_params().values)
    assert acc["ridge_flops_per_byte"] > 1
    assert acc["moe_ridge_batch_tokens"] == pytest.approx(acc["dense_ridge_batch_tokens"] * acc["bench_e_over_k"])
    assert acc["headline_model_experts"] >= acc["headline_model_top_k"] >= 1


def test_plots_draw(report: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ch12.sweep_rows(report)
    fig, ax = plt.subplots()
    ch12.plot_time_per_token(ax, rows, "CPU")
    assert ax.get_xscale() == "log" and len(ax.get_legend().get_texts()) == 4
    plt.close(fig)
    fig, axes = plt.subplots(2, 1)
    ch12.plot_ratio(axes, rows, TINY["n_experts"], TINY["top_k"])
    assert axes[1].get_ylim()[1] == pytest.approx(1.05)
    plt.close(fig)


def test_run_chapter_benchmark_small(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(cb, "PROBE_BATCH", 16)
    result = cb.run_chapter_benchmark(sizes=TINY, batches=[1, 8], reps=2, peak_budget_s=0.5, sweep_budget_s=0.5)
    result = json.loads(json.dumps(result))
    assert result["gpu"]["skipped"] is True and "torch" in result["gpu"]["reason"]
    assert [r["batch_tokens"] for r in result["cpu"]["records"]] == [1, 8]
    assert result["cpu"]["sizes"]["n_experts"] == TINY["n_experts"]
    assert result["expert_overhead_s"] > 0 and result["wall_s"] > 0
    assert isinstance(result["blas_threads"], str)
    rows = ch12.sweep_rows(result["cpu"])
    summary = ch12.sweep_summary(result["cpu"], rows, result["expert_overhead_s"])
    assert summary["last_batch"] == 8


def test_device_report_matches_run_all_shape() -> None:
    peaks = replace(FAKE_PEAKS)
    records = mb.time_ffn_layers(**TINY, batches=[2], reps=1, budget_s=0.5, peaks=peaks)
    out = cb._device_report(peaks, TINY, [2], records)
    assert set(out) == {"skipped", "peaks", "sizes", "batches", "records"}
    assert out["sizes"]["bytes_per_value"] == 4 and out["batches"] == [2]
    gpu_peaks = replace(FAKE_PEAKS, backend="torch-gpu", dtype="bfloat16")
    assert cb._device_report(gpu_peaks, TINY, [2], records)["sizes"]["bytes_per_value"] == 2
    assert np.isfinite(out["records"][0]["moe_s_per_token"])


def test_a_failing_gpu_run_is_reported_as_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(**_: object) -> dict:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(mb, "run_gpu_benchmark", boom)
    monkeypatch.setattr(cb, "PROBE_BATCH", 16)
    result = cb.run_chapter_benchmark(sizes=TINY, batches=[1], reps=1, peak_budget_s=0.3, sweep_budget_s=0.3)
    assert result["gpu"] == {"skipped": True, "reason": "the GPU benchmark failed (RuntimeError: CUDA out of memory)"}
