"""Records and figures for chapter 12, "Reuse fragmentation, measured" (chapters/12-measured-fragmentation.md).

Turns the raw timings of :func:`qsmoe.evidence.chapter_bench.run_chapter_benchmark` into the rows the
chapter plots and tabulates (:func:`sweep_rows`) and the numbers its prose quotes
(:func:`sweep_summary`, :func:`machine_facts`), and draws the two figures for either device
(:func:`plot_time_per_token`, :func:`plot_ratio`).  The roofline is
:func:`qsmoe.evidence.microbench.roofline_time_s`, the routing model
:func:`qsmoe.physics.routing.fraction_streamed`, the compute-bound batches
:mod:`qsmoe.physics.intensity`.
"""
from __future__ import annotations

import statistics
from typing import Any, Mapping, Sequence

import numpy as np

from qsmoe.book.palette import SIDE_COLORS
from qsmoe.errors import QsError
from qsmoe.evidence.devices import MIB
from qsmoe.evidence.chapter_bench import CHAPTER_SIZES
from qsmoe.physics.intensity import dense_compute_bound_batch, expert_compute_bound_batch_limit
from qsmoe.physics.routing import fraction_streamed
from qsmoe.scenario.analysis import roofline_ridge
from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.specs.models import load_model

#: The roofline "under-predicts" a point when measured / predicted - 1 exceeds this.
UNDERPREDICT_THRESHOLD = 0.5


def sweep_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per batch size of a device report (times in microseconds per token).

    ``*_us``: median of the repetitions; ``*_lo_us`` / ``*_hi_us``: fastest and slowest repetition;
    ``*_roofline_us``: the roofline from the measured peaks; ``*_error_pct``: 100 x (measured /
    roofline - 1), positive where the roofline under-predicts; ``ratio`` and ``roofline_ratio``:
    MoE / dense time; ``touched_fraction``: experts touched / E, measured (mean over repetitions)
    and from :func:`qsmoe.physics.routing.fraction_streamed` (``model_touched_fraction``).
    """
    sizes = report["sizes"]
    rows = []
    for r in report["records"]:
        b = r["batch_tokens"]
        dense_reps = [s / b * 1e6 for s in r["dense_rep_s"]]
        moe_reps = [s / b * 1e6 for s in r["moe_rep_s"]]
        rows.append(
            {
                "batch_tokens": b,
                "reps": r["reps"],
                "dense_us": r["dense_s_per_token"] * 1e6,
                "dense_lo_us": min(dense_reps),
                "dense_hi_us": max(dense_reps),
                "dense_roofline_us": r["dense_predicted_s_per_token"] * 1e6,
                "dense_error_pct": r["dense_rel_error"] * 100,
                "moe_us": r["moe_s_per_token"] * 1e6,
                "moe_lo_us": min(moe_reps),
                "moe_hi_us": max(moe_reps),
                "moe_roofline_us": r["moe_predicted_s_per_token"] * 1e6,
                "moe_error_pct": r["moe_rel_error"] * 100,
                "ratio": r["moe_s_per_token"] / r["dense_s_per_token"],
                "roofline_ratio": r["moe_predicted_s_per_token"] / r["dense_predicted_s_per_token"],
                "experts_touched": r["experts_touched"],
                "touched_fraction": r["experts_touched"] / sizes["n_experts"],
                "model_touched_fraction": float(fraction_streamed(b, sizes["n_experts"], sizes["top_k"])),
                "tokens_per_expert": r["tokens_per_touched_expert"],
                "moe_bytes": r["moe_bytes"],
            }
        )
    return rows


def table_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The chapter's table: every batch point with measured, roofline and error, units in the headers."""
    return [
        {
            "batch (tokens)": r["batch_tokens"],
            "reps": r["reps"],
            "dense measured (us/token)": r["dense_us"],
            "dense roofline (us/token)": r["dense_roofline_us"],
            "dense error (%)": r["dense_error_pct"],
            "MoE measured (us/token)": r["moe_us"],
            "MoE roofline (us/token)": r["moe_roofline_us"],
            "MoE error (%)": r["moe_error_pct"],
            "MoE/dense measured": r["ratio"],
            "MoE/dense roofline": r["roofline_ratio"],
            "experts touched": r["experts_touched"],
        }
        for r in rows
    ]


def batch_list_text(batches: Sequence[int]) -> str:
    """Batch sizes as prose: 'no batch size', 'B = 8', 'B = 8 and 16', 'B = 8, 16 and 32'."""
    items = [f"{b:,}" for b in sorted(batches)]
    if not items:
        return "no batch size"
    if len(items) == 1:
        return f"B = {items[0]}"
    return f"B = {', '.join(items[:-1])} and {items[-1]}"


def _times_word(ratio: float) -> tuple[float, str]:
    """(factor >= 1, 'slower' or 'faster'): how the MoE layer compares with the dense one."""
    return (ratio, "slower") if ratio >= 1 else (1 / ratio, "faster")


def sweep_summary(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] | None = None, expert_overhead_s: float | None = None) -> dict[str, Any]:
    """The numbers the chapter's prose quotes about one device's sweep.

    Peak MoE/dense ratio (measured and roofline) and the batch where each happens, the ratio at the
    largest batch, median absolute roofline errors, where the roofline under-predicts by more than
    :data:`UNDERPREDICT_THRESHOLD`, the worst MoE point and its excess over the roofline (per layer
    call and per touched expert), and a check of the measured matmul peak: the dense layer's FLOP
    rate at the largest batch. With ``expert_overhead_s`` (:func:`probe_expert_overhead_s`), also
    that fixed cost times the experts touched at the worst point (``worst_overhead_us_per_layer``).
    """
    rows = list(rows) if rows is not None else sweep_rows(report)
    if not rows:
        raise QsError("the report holds no timed batch sizes", field="records")
    peaks, sizes = report["peaks"], report["sizes"]
    peak = max(rows, key=lambda r: r["ratio"])
    peak_roofline = max(rows, key=lambda r: r["roofline_ratio"])
    worst = max(rows, key=lambda r: r["moe_error_pct"])
    last = rows[-1]
    threshold_pct = UNDERPREDICT_THRESHOLD * 100
    peak_factor, peak_word = _times_word(peak["ratio"])
    last_factor, last_word = _times_word(last["ratio"])
    worst_excess_us = (worst["moe_us"] - worst["moe_roofline_us"]) * worst["batch_tokens"]
    dense_achieved = sizes["flops_per_token"] / (last["dense_us"] * 1e-6)
    ridge = peaks["matmul_flops_per_s"] / peaks["bandwidth_bytes_per_s"]
    above = sum(r[f"{key}_us"] > r[f"{key}_roofline_us"] for r in rows for key in ("dense", "moe"))
    achieved_share = dense_achieved / peaks["matmul_flops_per_s"]
    summary: dict[str, Any] = {
        "peak_ratio": peak["ratio"],
        "peak_ratio_factor": peak_factor,
        "peak_ratio_word": peak_word,
        "peak_ratio_batch": peak["batch_tokens"],
        "peak_ratio_touched_fraction": peak["touched_fraction"],
        "peak_ratio_tokens_per_expert": peak["tokens_per_expert"],
        "roofline_peak_ratio": peak_roofline["roofline_ratio"],
        "roofline_peak_ratio_batch": peak_roofline["batch_tokens"],
        "last_batch": last["batch_tokens"],
        "last_ratio": last["ratio"],
        "last_ratio_factor": last_factor,
        "last_ratio_word": last_word,
        "last_roofline_ratio": last["roofline_ratio"],
        "dense_median_abs_error_pct": statistics.median(abs(r["dense_error_pct"]) for r in rows),
        "moe_median_abs_error_pct": statistics.median(abs(r["moe_error_pct"]) for r in rows),
        "underpredict_threshold_pct": threshold_pct,
        "dense_underpredicted": batch_list_text([r["batch_tokens"] for r in rows if r["dense_error_pct"] > threshold_pct]),
        "moe_underpredicted": batch_list_text([r["batch_tokens"] for r in rows if r["moe_error_pct"] > threshold_pct]),
        "dense_overpredicted": batch_list_text([r["batch_tokens"] for r in rows if r["dense_error_pct"] < 0]),
        "moe_worst_batch": worst["batch_tokens"],
        "moe_worst_error_pct": worst["moe_error_pct"],
        "moe_worst_experts_touched": worst["experts_touched"],
        "moe_worst_tokens_per_expert": worst["tokens_per_expert"],
        "moe_worst_excess_us_per_layer": worst_excess_us,
        "moe_worst_excess_us_per_expert": worst_excess_us / worst["experts_touched"],
        "moe_worst_us_per_layer": worst["moe_us"] * worst["batch_tokens"],
        "moe_worst_roofline_us_per_layer": worst["moe_roofline_us"] * worst["batch_tokens"],
        "moe_worst_achieved_flops_per_s": sizes["flops_per_token"] / (worst["moe_us"] * 1e-6),
        "moe_worst_achieved_over_peak": sizes["flops_per_token"] / (worst["moe_us"] * 1e-6) / peaks["matmul_flops_per_s"],
        "moe_worst_achieved_bytes_per_s": worst["moe_bytes"] / (worst["moe_us"] * worst["batch_tokens"] * 1e-6),
        "moe_worst_achieved_over_bandwidth": worst["moe_bytes"] / (worst["moe_us"] * worst["batch_tokens"] * 1e-6) / peaks["bandwidth_bytes_per_s"],
        "dense_achieved_flops_per_s": dense_achieved,
        "dense_achieved_over_peak": dense_achieved / peaks["matmul_flops_per_s"],
        "dense_peak_phrase": (
            "above it, so that ceiling was itself measured low"
            if achieved_share > 1
            else "close to it, as a large GEMM should be"
            if achieved_share >= 0.7
            else "well below it, although this is the sweep's largest GEMM"
        ),
        "points_above_roofline": above,
        "points_total": 2 * len(rows),
        "touched_max_deviation": max(abs(r["touched_fraction"] - r["model_touched_fraction"]) for r in rows),
        "penalty_verdict": penalty_verdict(peak["ratio"], peak_roofline["roofline_ratio"], last["ratio"], last["roofline_ratio"]),
        "ridge_flops_per_byte": ridge,
        "ridge_batch_tokens": dense_compute_bound_batch(ridge, sizes["bytes_per_value"]),
        "ridge_moe_batch_tokens": expert_compute_bound_batch_limit(ridge, sizes["bytes_per_value"], sizes["n_experts"], sizes["top_k"]),
    }
    if expert_overhead_s is not None:
        overhead_us = expert_overhead_s * 1e6 * worst["experts_touched"]
        share = overhead_us / worst_excess_us if worst_excess_us > 0 else 0.0
        summary.update(
            expert_overhead_us=expert_overhead_s * 1e6,
            worst_overhead_us_per_layer=overhead_us,
            worst_overhead_share_pct=100 * share,
            worst_excess_cause=(
                "there is no excess to account for"
                if worst_excess_us <= 0
                else "the fixed cost of the per-expert calls accounts for most of the excess"
                if share >= 0.5
                else "most of the excess lies in the expert GEMMs themselves"
            ),
        )
    return summary


def penalty_verdict(peak_ratio: float, roofline_peak_ratio: float, last_ratio: float, roofline_last_ratio: float) -> str:
    """How the measured MoE/dense ratio compares with the roofline's, at the peak and at the largest batch, in words."""
    peak_high, last_high = peak_ratio > roofline_peak_ratio, last_ratio > roofline_last_ratio
    if peak_high and last_high:
        return "the roofline understates the penalty, both at its peak and at the largest batch"
    if not peak_high and not last_high:
        return "the roofline overstates the penalty, both at its peak and at the largest batch"
    if peak_high:
        return "the roofline understates the peak of the penalty but overstates it at the largest batch"
    return "the roofline overstates the peak of the penalty but understates how long it lasts: measured, the gap has not closed at the largest batch"


def machine_facts(report: Mapping[str, Any]) -> dict[str, Any]:
    """What the device was and what was measured on it, for the chapter's record of the machine.

    Strings for the description (CPU model, cores, BLAS, NumPy, Python, platform; or the GPU,
    torch and CUDA/ROCm versions), numbers for the peaks (GB/s, GFLOP/s) and sizes (MiB).
    """
    peaks, sizes, desc = report["peaks"], report["sizes"], report["peaks"]["description"]
    matmul_bytes = 3 * peaks["matmul_n"] ** 2 * sizes["bytes_per_value"]  # a, b and the product
    facts: dict[str, Any] = {
        "backend": peaks["backend"],
        "dtype": peaks["dtype"],
        "bandwidth_gbs": peaks["bandwidth_bytes_per_s"] / 1e9,
        "copy_gbs": peaks["copy_bytes_per_s"] / 1e9,
        "sum_gbs": peaks["sum_bytes_per_s"] / 1e9,
        "gemv_gbs": peaks["gemv_bytes_per_s"] / 1e9,
        "peak_gflops": peaks["matmul_flops_per_s"] / 1e9,
        "matmul_n": peaks["matmul_n"],
        "stream_mib": peaks["stream_bytes"] / MIB,
        "llc_mib": peaks["llc_bytes"] / MIB,
        "llc_source": desc.get("llc_source", "unknown"),
        "pool_mib": sizes["expert_pool_bytes"] / MIB,
        "expert_mib": sizes["expert_bytes"] / MIB,
        "dense_weight_mib": sizes["dense_weight_bytes"] / MIB,
        "pool_over_llc": sizes["pool_over_llc"],
        "peaks_wall_s": peaks["wall_s"],
        "matmul_operand_mib": matmul_bytes / MIB,
        "matmul_cache_phrase": (
            "fit in the last-level cache, so this ceiling is an in-cache rate"
            if matmul_bytes <= peaks["llc_bytes"]
            else "exceed the last-level cache"
        ),
    }
    if peaks["backend"] == "numpy-cpu":
        facts.update(
            device=desc.get("processor", "unknown"),
            cores=desc.get("cpu_count", "unknown"),
            blas=desc.get("blas", "unknown"),
            numpy=desc.get("numpy", "unknown"),
            python=desc.get("python", "unknown"),
            platform=desc.get("platform", "unknown"),
        )
    else:
        facts.update(
            device=desc.get("device", "unknown"),
            multiprocessors=desc.get("multiprocessors", "unknown"),
            torch=desc.get("torch", "unknown"),
            cuda=desc.get("cuda", "None"),
            hip=desc.get("hip", "None"),
        )
    return facts


def accelerator_comparison(values: Mapping[str, Any], sizes: Mapping[str, int] = CHAPTER_SIZES) -> dict[str, Any]:
    """The book's accelerator next to the benchmark: its ridge point and where dense and MoE FFNs cross it.

    ``ridge_flops_per_byte`` is :func:`qsmoe.scenario.analysis.roofline_ridge` (achievable peak FLOP/s over
    achievable HBM bandwidth, in the parameter set's weight format); the dense FFN turns compute-bound
    at :func:`qsmoe.physics.intensity.dense_compute_bound_batch` tokens, an MoE expert at that many
    tokens per expert, about :func:`qsmoe.physics.intensity.expert_compute_bound_batch_limit` tokens of
    batch for the benchmark's E/k. Also returns the headline model's E and k for comparison with the
    benchmark's.
    """
    ridge = roofline_ridge(values)
    b = bytes_per_value(values["weight_dtype"], field="weight_dtype")
    e_over_k = sizes["n_experts"] / sizes["top_k"]
    dense_batch = dense_compute_bound_batch(ridge["ridge_flops_per_byte"], b)
    moe = load_model(values["headline_model"]).moe
    return {
        "hardware": ridge["hardware"],
        "weight_dtype": values["weight_dtype"],
        "ridge_flops_per_byte": ridge["ridge_flops_per_byte"],
        "dense_ridge_batch_tokens": dense_batch,
        "moe_ridge_batch_tokens": expert_compute_bound_batch_limit(ridge["ridge_flops_per_byte"], b, sizes["n_experts"], sizes["top_k"]),
        "bench_e_over_k": e_over_k,
        "headline_model_experts": moe.n_routed_experts if moe else 0,
        "headline_model_top_k": moe.top_k if moe else 0,
        "headline_model_e_over_k": moe.n_routed_experts / moe.top_k if moe else 0.0,
    }


# ---------------------------------------------------------------- figures


def _batch_axis(ax: Any, batches: np.ndarray) -> None:
    """Log-2 batch axis with plain-number ticks at every other power of two in range."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log", base=2)
    lo, hi = int(np.floor(np.log2(batches.min()))), int(np.ceil(np.log2(batches.max())))
    ax.xaxis.set_major_locator(FixedLocator([2.0**e for e in range(lo, hi + 1, 2 if hi - lo > 6 else 1)]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))


def plot_time_per_token(ax: Any, rows: Sequence[Mapping[str, Any]], device: str) -> None:
    """Time per token versus batch (log-log): measured medians with min-max bars (markers), roofline (lines)."""
    palette = SIDE_COLORS
    b = np.array([r["batch_tokens"] for r in rows], dtype=float)
    for name, key in (("dense", "dense"), ("MoE", "moe")):
        mid = np.array([r[f"{key}_us"] for r in rows])
        lo, hi = np.array([r[f"{key}_lo_us"] for r in rows]), np.array([r[f"{key}_hi_us"] for r in rows])
        # the median lies between the fastest and slowest repetition; clip rounding below zero
        ax.errorbar(b, mid, yerr=[np.maximum(mid - lo, 0), np.maximum(hi - mid, 0)], fmt="o", ms=5, capsize=2, color=palette[name], label=f"{name}, measured")
        ax.plot(b, [r[f"{key}_roofline_us"] for r in rows], "-", color=palette[name], alpha=0.8, label=f"{name}, roofline")
    _batch_axis(ax, b)
    ax.set_yscale("log")
    ax.set_xlabel("batch B (tokens per layer call)")
    ax.set_ylabel("time per token (µs)")
    ax.set_title(f"FFN layer time per token, {device}", fontsize=11)
    ax.legend(fontsize=8, ncol=2)


def plot_ratio(axes: Sequence[Any], rows: Sequence[Mapping[str, Any]], n_experts: int, top_k: int, device: str = "") -> None:
    """Two panels: MoE/dense time ratio (measured markers, roofline line) and the experts-touched fraction.

    The second panel shows the measured T/E (markers) over the model
    :func:`qsmoe.physics.routing.fraction_streamed` on a fine grid of B (line).
    """
    from matplotlib.ticker import FuncFormatter

    ax, ax_touch = axes
    b = np.array([r["batch_tokens"] for r in rows], dtype=float)
    ax.plot(b, [r["ratio"] for r in rows], "o", color="0.15", label="measured")
    ax.plot(b, [r["roofline_ratio"] for r in rows], "-", color="0.15", alpha=0.8, label="roofline")
    ax.axhline(1.0, color="0.5", lw=0.8, ls=":")
    ax.axhline(n_experts / top_k, color="0.5", lw=0.8, ls="--", label=f"E/k = {n_experts / top_k:g}")
    _batch_axis(ax, b)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_ylabel("MoE / dense time")
    ax.set_title(f"MoE / dense time per token, {device}" if device else "MoE / dense time per token", fontsize=11)
    ax.legend(fontsize=8)
    fine = np.geomspace(b.min(), b.max(), 200)
    ax_touch.plot(fine, fraction_streamed(fine, n_experts, top_k), "-", color="C2", label="model T(B)/E")
    ax_touch.plot(b, [r["touched_fraction"] for r in rows], "o", color="C2", mfc="none", label="measured routing")
    _batch_axis(ax_touch, b)
    ax_touch.set_ylim(0, 1.05)
    ax_touch.set_xlabel("batch B (tokens per layer call)")
    ax_touch.set_ylabel("experts touched / E")
    ax_touch.legend(fontsize=8, loc="lower right")
