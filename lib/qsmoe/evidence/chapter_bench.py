"""The benchmark of the chapter "Reuse fragmentation, measured", at sizes that fit its share of the build.

On the machine that builds the book: CPU peaks, a sweep of a dense FFN against an MoE layer doing
the same FLOPs per token (:mod:`qsmoe.evidence.microbench`), a probe of the fixed cost per touched
expert, then the GPU where torch sees one.  The CPU is timed with the BLAS pinned to
:data:`BLAS_THREADS` thread(s) (:func:`qsmoe.evidence.blas.blas_threads`), because the book executes
two chapters at once on its build machine.  Everything here is measured, so it changes from run
to run and from machine to machine.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict
from typing import Any, Mapping, Sequence

import numpy as np

from qsmoe.evidence import microbench as mb
from qsmoe.evidence.devices import MachinePeaks, measure_machine
from qsmoe.evidence.blas import blas_threads

#: Layer shapes of the CPU sweep: a 256 MiB float32 expert pool (8x a 32 MiB last-level cache) and
#: 4.2 MFLOP per token, a quarter of microbench.CPU_SIZES' FLOPs so the sweep fits in a few seconds.
#: E/k = 32, as in DeepSeek-V3 (256 experts, top-8).
CHAPTER_SIZES: dict[str, int] = {"d_model": 1024, "d_ff": 256, "n_experts": 128, "top_k": 4}
#: Batch sizes (tokens per layer call) of the CPU sweep: powers of two from 1 to 2048.
CHAPTER_BATCHES: tuple[int, ...] = tuple(2**i for i in range(12))
#: Timed repetitions per batch size (fewer where the time share runs out; at least one).
CHAPTER_REPS = 5
#: Seconds for the CPU peaks (bandwidth, then matmul).
PEAK_BUDGET_S = 3.0
#: Seconds for the CPU sweep, weight set-up included.
SWEEP_BUDGET_S = 5.0
#: Seconds for the per-expert overhead probe.
PROBE_BUDGET_S = 0.3
#: Seconds for the GPU benchmark (peaks and sweep) where torch sees a GPU.
GPU_BUDGET_S = 6.0
#: BLAS threads while the CPU is timed: the book executes two chapters at once on a 2-core machine,
#: so more threads than one per chapter would time the OS scheduler rather than the memory system.
BLAS_THREADS = 1
#: Overhead probe: the same routing and NumPy calls on experts too small to cost bandwidth or FLOPs
#: (d_model 16, d_ff 8), so the MoE layer's time is its fixed per-expert cost.
PROBE_SIZES: dict[str, int] = {"d_model": 16, "d_ff": 8}
#: Batch of the probe: every expert is touched, with B*k/E tokens each (32 for the default sizes).
PROBE_BATCH = 1024
def _device_report(peaks: MachinePeaks, sizes: Mapping[str, int], batches: Sequence[int], records: Sequence[mb.LayerTiming]) -> dict[str, Any]:
    """One device's results in the shape :func:`qsmoe.evidence.microbench.run_all` uses for ``cpu`` and ``gpu``."""
    bytes_per_value = 2 if peaks.dtype == "bfloat16" else int(np.dtype(peaks.dtype).itemsize)
    return {
        "skipped": False,
        "peaks": asdict(peaks),
        "sizes": mb.sweep_sizes(**sizes, bytes_per_value=bytes_per_value, llc_bytes=peaks.llc_bytes),
        "batches": sorted(set(batches)),
        "records": [asdict(r) for r in records],
    }


def probe_expert_overhead_s(peaks: MachinePeaks, n_experts: int, top_k: int, *, seed: int = 0, budget_s: float = PROBE_BUDGET_S) -> float:
    """Seconds the MoE layer spends per touched expert beyond its FLOPs and bytes, on the CPU.

    Times the MoE layer with :data:`PROBE_SIZES` experts (a few KiB each) at :data:`PROBE_BATCH`
    tokens, where its roofline time is negligible, and divides by the experts touched. This is the
    fixed cost of the per-expert NumPy calls (gather, two matmuls, ReLU, scatter-add) and Python loop.
    """
    (record,) = mb.time_ffn_layers(
        **PROBE_SIZES, n_experts=n_experts, top_k=top_k, batches=[PROBE_BATCH], seed=seed, dtype=peaks.dtype, reps=CHAPTER_REPS, budget_s=budget_s, peaks=peaks
    )
    return min(record.moe_rep_s) / record.experts_touched


def run_chapter_benchmark(
    *,
    sizes: Mapping[str, int] = CHAPTER_SIZES,
    batches: Sequence[int] = CHAPTER_BATCHES,
    reps: int = CHAPTER_REPS,
    peak_budget_s: float = PEAK_BUDGET_S,
    sweep_budget_s: float = SWEEP_BUDGET_S,
    gpu_budget_s: float = GPU_BUDGET_S,
    n_threads: int = BLAS_THREADS,
    seed: int = 0,
) -> dict[str, Any]:
    """The chapter's benchmark: CPU peaks, CPU sweep and overhead probe with the BLAS pinned, then the GPU.

    Returns ``{"cpu": ..., "gpu": ..., "blas_threads": sentence, "expert_overhead_s": s,
    "load_average_before": ..., "load_average_after": ..., "wall_s": s}``,
    ``cpu`` and ``gpu`` shaped as in :func:`qsmoe.evidence.microbench.run_all` (``gpu`` may be
    ``{"skipped": True, "reason": ...}``, also when the GPU run raises). Takes about the sum of the budgets (a point always gets one
    repetition, so a slow machine can overrun the sweep's budget).
    """
    start = time.perf_counter()
    load_before = _load_average()
    with blas_threads(n_threads) as threads_note:
        peaks = measure_machine(budget_s=peak_budget_s)
        records = mb.time_ffn_layers(**sizes, batches=batches, seed=seed, reps=reps, budget_s=sweep_budget_s, peaks=peaks)
        overhead_s = probe_expert_overhead_s(peaks, sizes["n_experts"], sizes["top_k"], seed=seed)
    cpu = _device_report(peaks, sizes, batches, records)
    try:
        gpu = mb.run_gpu_benchmark(seed=seed, budget_s=gpu_budget_s)
    except Exception as err:  # noqa: BLE001 - a GPU that fails must not stop the book; the page says why
        last = (str(err).strip().splitlines() or [""])[-1]
        gpu = {"skipped": True, "reason": f"the GPU benchmark failed ({type(err).__name__}: {last})".replace(": )", ")")}
    return {
        "cpu": cpu,
        "gpu": gpu,
        "blas_threads": threads_note,
        "expert_overhead_s": overhead_s,
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "wall_s": time.perf_counter() - start,
    }


def _load_average() -> float:
    """The OS's one-minute load average (runnable processes), or 0.0 where the OS has none."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0.0
