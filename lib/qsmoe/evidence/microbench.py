"""Microbenchmark: routing fragments a decode batch, so MoE expert FFNs go memory-bound.

A dense FFN of width ``d_ff * top_k`` and an MoE layer of ``n_experts`` experts of width
``d_ff`` with top-``top_k`` routing do the same FLOPs per token, ``4 * d_model * d_ff * top_k``.
The dense layer reads its weights once per batch of ``B`` tokens; the MoE layer reads every
touched expert once for only ``~B * top_k / n_experts`` tokens ("reuse fragmentation"), so up to
``n_experts / top_k`` times the weight bytes for the same work.

Both layers are timed on weights that are not in cache, as in a real model where the other
layers evict them: the experts live in one pool of ``n_experts`` experts that is many times the
last-level cache, each MoE repetition draws a fresh random routing, and each dense repetition
uses the next block of ``top_k`` consecutive experts of that same pool as its weights, so a
block is reused only after the whole pool has been streamed.

The measured time per token is set against a roofline built from this machine's measured peaks:
per matmul, ``max(flops / peak_flops_per_s, bytes / bandwidth_bytes_per_s)``.
NumPy runs it on the CPU; :func:`run_gpu_benchmark` runs the same code with torch on a GPU.
"""
from __future__ import annotations

import itertools
import statistics
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Iterator, Sequence

import numpy as np

from qsmoe.errors import QsError
from qsmoe.evidence.devices import Backend, MachinePeaks, check_budget, cuda_torch, measure_machine, measure_peaks, numpy_backend, time_s, torch_backend

CPU_SIZES = {"d_model": 1024, "d_ff": 512, "n_experts": 128, "top_k": 8}
CPU_BATCHES = (1, 3, 8, 23, 64, 181, 512, 1448, 4096)
#: GPU defaults: a 4 GiB bf16 expert pool (80x a 50 MiB L2); each 128 MiB expert takes ~25 us to stream
#: at ~5 TB/s, about the host time to launch its ~5 kernels, so launch cost stays partly hidden.
GPU_SIZES = {"d_model": 4096, "d_ff": 8192, "n_experts": 32, "top_k": 4}
GPU_BATCHES = (1, 3, 7, 18, 49, 128, 338, 891, 2353, 6208, 16384)


MatmulCost = tuple[int, int]  # (flops, bytes) of one matmul


@dataclass(frozen=True)
class LayerTiming:
    """Dense versus MoE FFN layer at one batch size: medians of ``reps`` timings and their roofline."""

    batch_tokens: int
    reps: int
    dense_s_per_token: float
    moe_s_per_token: float
    dense_predicted_s_per_token: float
    moe_predicted_s_per_token: float
    dense_rel_error: float  # measured / predicted - 1
    moe_rel_error: float
    experts_touched: float  # mean over reps
    tokens_per_touched_expert: float  # batch_tokens * top_k / experts_touched, mean over reps
    dense_flops: int  # per layer call
    moe_flops: int
    dense_bytes: int  # weights + activations read and written by the matmuls, per layer call
    moe_bytes: float  # mean over reps
    dense_rep_s: list[float]  # each repetition's layer time
    moe_rep_s: list[float]


# ---------------------------------------------------------------- validation


def _check_positive_int(name: str, value: Any) -> int:
    """``value`` as an int, or a QsError naming ``name`` unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise QsError(f"must be a positive integer, got {value!r}", field=name)
    return int(value)


def _check_sweep(d_model: Any, d_ff: Any, n_experts: Any, top_k: Any, batches: Any, reps: Any) -> list[int]:
    """Validate the layer sizes; return the batch sizes sorted and deduplicated."""
    for name, value in (("d_model", d_model), ("d_ff", d_ff), ("n_experts", n_experts), ("top_k", top_k), ("reps", reps)):
        _check_positive_int(name, value)
    if top_k > n_experts:
        raise QsError(f"must be <= n_experts ({n_experts}), got {top_k!r}", field="top_k")
    if isinstance(batches, (str, bytes)) or not isinstance(batches, (Sequence, np.ndarray)) or len(batches) == 0:
        raise QsError(f"must be a non-empty sequence of token counts, got {batches!r}", field="batches")
    return sorted({_check_positive_int("batches", b) for b in batches})


# ---------------------------------------------------------------- cost model


def matmul_cost(m: int, k: int, n: int, bytes_per_value: int) -> MatmulCost:
    """([m,k] @ [k,n]) flops = 2 m k n; bytes = bytes_per_value * (m k + k n + m n): inputs read once, output written once."""
    return 2 * m * k * n, bytes_per_value * (m * k + k * n + m * n)


def ffn_costs(n_tokens: int, d_model: int, width: int, bytes_per_value: int) -> list[MatmulCost]:
    """The two matmuls of an FFN of ``width`` on ``n_tokens`` tokens: [n,d]@[d,w], then [n,w]@[w,d]."""
    return [matmul_cost(n_tokens, d_model, width, bytes_per_value), matmul_cost(n_tokens, width, d_model, bytes_per_value)]


def roofline_time_s(costs: Sequence[MatmulCost], peak_flops_per_s: float, bandwidth_bytes_per_s: float) -> float:
    """Predicted seconds = sum over matmuls of max(flops / peak_flops_per_s, bytes / bandwidth_bytes_per_s)."""
    return sum(max(flops / peak_flops_per_s, nbytes / bandwidth_bytes_per_s) for flops, nbytes in costs)


def sweep_sizes(d_model: int, d_ff: int, n_experts: int, top_k: int, bytes_per_value: int, llc_bytes: int) -> dict[str, float]:
    """The layer shapes and their weight bytes; ``pool_over_llc`` = expert pool bytes / last-level cache bytes."""
    expert_bytes = 2 * d_model * d_ff * bytes_per_value
    return {
        "d_model": d_model,
        "d_ff": d_ff,
        "n_experts": n_experts,
        "top_k": top_k,
        "dense_width": d_ff * top_k,
        "bytes_per_value": bytes_per_value,
        "flops_per_token": 4 * d_model * d_ff * top_k,
        "expert_bytes": expert_bytes,
        "dense_weight_bytes": top_k * expert_bytes,
        "expert_pool_bytes": n_experts * expert_bytes,
        "llc_bytes": llc_bytes,
        "pool_over_llc": n_experts * expert_bytes / llc_bytes,
    }


# ---------------------------------------------------------------- routing


def route_tokens(n_tokens: int, n_experts: int, top_k: int, rng: np.random.Generator) -> np.ndarray:
    """[n_tokens, top_k] expert ids: per token, top_k distinct experts drawn uniformly without replacement."""
    return rng.random((n_tokens, n_experts)).argpartition(top_k - 1, axis=1)[:, :top_k]


def group_by_expert(choice: np.ndarray, n_experts: int) -> list[tuple[int, np.ndarray]]:
    """(expert, token indices) for each touched expert, in expert order; token t appears once per expert it chose."""
    top_k = choice.shape[1]
    flat = choice.ravel()
    tokens = np.argsort(flat, kind="stable") // top_k
    counts = np.bincount(flat, minlength=n_experts).tolist()
    ends = itertools.accumulate(counts)
    return [(expert, tokens[end - count : end]) for expert, (count, end) in enumerate(zip(counts, ends)) if count]


# ---------------------------------------------------------------- layers


def _dense_forward(be: Backend, x: Any, w_in: Any, w_out: Any) -> Any:
    """relu(x @ w_in^T) @ w_out, with w_in and w_out both [width, d_model]."""
    h = x @ w_in.T
    be.relu_(h)
    return h @ w_out


def _moe_forward(be: Backend, x: Any, w_in: Any, w_out: Any, groups: list[tuple[int, Any]], d_ff: int) -> Any:
    """y[t] = sum over t's experts e of relu(x[t] @ w_in[e]^T) @ w_out[e]: gather, two matmuls, scatter-add per touched expert."""
    y = be.zeros(tuple(x.shape))
    for expert, rows in groups:
        block = slice(expert * d_ff, (expert + 1) * d_ff)
        be.scatter_add_(y, rows, _dense_forward(be, x[rows], w_in[block], w_out[block]))
    return y


# ---------------------------------------------------------------- peaks


# ---------------------------------------------------------------- sweep


def _record(
    batch: int, dense_s: list[float], moe_s: list[float], dense_costs: list[MatmulCost], moe_costs: list[list[MatmulCost]], touched: list[int], top_k: int, peaks: MachinePeaks
) -> LayerTiming:
    """Medians of the timed repetitions and of their roofline predictions, per token."""
    predict = partial(roofline_time_s, peak_flops_per_s=peaks.matmul_flops_per_s, bandwidth_bytes_per_s=peaks.bandwidth_bytes_per_s)
    dense_measured, moe_measured = statistics.median(dense_s) / batch, statistics.median(moe_s) / batch
    dense_predicted = predict(dense_costs) / batch
    moe_predicted = statistics.median(predict(c) for c in moe_costs) / batch
    return LayerTiming(
        batch_tokens=batch,
        reps=len(dense_s),
        dense_s_per_token=dense_measured,
        moe_s_per_token=moe_measured,
        dense_predicted_s_per_token=dense_predicted,
        moe_predicted_s_per_token=moe_predicted,
        dense_rel_error=dense_measured / dense_predicted - 1,
        moe_rel_error=moe_measured / moe_predicted - 1,
        experts_touched=statistics.fmean(touched),
        tokens_per_touched_expert=statistics.fmean(batch * top_k / t for t in touched),
        dense_flops=sum(f for f, _ in dense_costs),
        moe_flops=sum(f for f, _ in moe_costs[0]),
        dense_bytes=sum(b for _, b in dense_costs),
        moe_bytes=statistics.fmean(sum(b for _, b in c) for c in moe_costs),
        dense_rep_s=dense_s,
        moe_rep_s=moe_s,
    )


def _sweep(
    be: Backend, peaks: MachinePeaks, d_model: int, d_ff: int, n_experts: int, top_k: int, batches: list[int], seed: int, reps: int, budget_s: float
) -> list[LayerTiming]:
    """Time dense and MoE at each batch size; each point gets the time left / the points left, at least one rep."""
    start = time.perf_counter()
    width, bpv = d_ff * top_k, be.bytes_per_value
    w_in = be.random((n_experts * d_ff, d_model), seed)
    w_out = be.random((n_experts * d_ff, d_model), seed + 1)
    n_blocks = n_experts // top_k
    blocks: Iterator[int] = (i % n_blocks for i in itertools.count(1))  # block 0 is warmed below: use it last
    _dense_forward(be, be.random((1, d_model), seed), w_in[:width], w_out[:width])  # library warm-up, untimed
    be.sync()
    rng = np.random.default_rng(seed)
    records = []
    for i, batch in enumerate(batches):
        deadline = time.perf_counter() + (budget_s - (time.perf_counter() - start)) / (len(batches) - i)
        x = be.random((batch, d_model), seed + 2 + i)
        dense_s: list[float] = []
        moe_s: list[float] = []
        moe_costs: list[list[MatmulCost]] = []
        touched: list[int] = []
        while len(dense_s) < reps and (not dense_s or time.perf_counter() < deadline):
            first_row = next(blocks) * width
            dense_rows = slice(first_row, first_row + width)
            dense_s.append(time_s(be, lambda: _dense_forward(be, x, w_in[dense_rows], w_out[dense_rows])))
            groups = group_by_expert(route_tokens(batch, n_experts, top_k, rng), n_experts)
            routed = [(expert, be.index(tokens)) for expert, tokens in groups]
            moe_s.append(time_s(be, lambda: _moe_forward(be, x, w_in, w_out, routed, d_ff)))
            moe_costs.append([c for _, tokens in groups for c in ffn_costs(len(tokens), d_model, d_ff, bpv)])
            touched.append(len(groups))
        records.append(_record(batch, dense_s, moe_s, ffn_costs(batch, d_model, width, bpv), moe_costs, touched, top_k, peaks))
    return records


# ---------------------------------------------------------------- public API


def time_ffn_layers(
    d_model: int = CPU_SIZES["d_model"],
    d_ff: int = CPU_SIZES["d_ff"],
    n_experts: int = CPU_SIZES["n_experts"],
    top_k: int = CPU_SIZES["top_k"],
    batches: Sequence[int] = CPU_BATCHES,
    *,
    seed: int = 0,
    dtype: str = "float32",
    reps: int = 5,
    budget_s: float = 20.0,
    peaks: MachinePeaks | None = None,
) -> list[LayerTiming]:
    """Dense FFN (width d_ff*top_k) versus MoE layer (n_experts x d_ff, top_k routed) per batch size, on the CPU.

    Each point: up to ``reps`` repetitions (at least one) within its share of ``budget_s`` seconds,
    which covers the weight set-up too. ``peaks`` defaults to :func:`measure_machine` (not in the budget).
    """
    sorted_batches = _check_sweep(d_model, d_ff, n_experts, top_k, batches, reps)
    budget_s = check_budget(budget_s)
    be = numpy_backend(dtype)
    peaks = peaks or measure_machine(dtype=dtype)
    if peaks.dtype != dtype:
        raise QsError(f"were measured in {peaks.dtype}, not in dtype {dtype!r}", field="peaks")
    return _sweep(be, peaks, d_model, d_ff, n_experts, top_k, sorted_batches, seed, reps, budget_s)


def _report(be: Backend, peaks: MachinePeaks, sizes: dict[str, int], batches: list[int], records: list[LayerTiming]) -> dict[str, Any]:
    """One device's results as JSON-ready data."""
    return {
        "skipped": False,
        "peaks": asdict(peaks),
        "sizes": sweep_sizes(**sizes, bytes_per_value=be.bytes_per_value, llc_bytes=be.llc_bytes),
        "batches": batches,
        "records": [asdict(r) for r in records],
    }


def run_gpu_benchmark(
    d_model: int = GPU_SIZES["d_model"],
    d_ff: int = GPU_SIZES["d_ff"],
    n_experts: int = GPU_SIZES["n_experts"],
    top_k: int = GPU_SIZES["top_k"],
    batches: Sequence[int] = GPU_BATCHES,
    *,
    seed: int = 0,
    reps: int = 5,
    budget_s: float = 30.0,
) -> dict[str, Any]:
    """The dense-versus-MoE sweep in bf16 with torch on a GPU (peaks: 1/5 of budget_s, sweep: the rest).

    Returns ``{"skipped": True, "reason": ...}`` when torch or a GPU is missing.
    """
    sorted_batches = _check_sweep(d_model, d_ff, n_experts, top_k, batches, reps)
    budget_s = check_budget(budget_s)
    torch, reason = cuda_torch()
    if torch is None:
        return {"skipped": True, "reason": reason}
    be = torch_backend(torch)
    peaks = measure_peaks(be, budget_s / 5)
    sizes = {"d_model": d_model, "d_ff": d_ff, "n_experts": n_experts, "top_k": top_k}
    records = _sweep(be, peaks, **sizes, batches=sorted_batches, seed=seed, reps=reps, budget_s=budget_s * 4 / 5)
    return _report(be, peaks, sizes, sorted_batches, records)


def run_all(budget_s: float = 30.0, seed: int = 0) -> dict[str, Any]:
    """Peaks (1/5 of budget_s) and the default sweep (3/5) on the CPU, then the GPU sweep (1/5) or why it was skipped."""
    start = time.perf_counter()
    budget_s = check_budget(budget_s)
    be = numpy_backend("float32")
    peaks = measure_peaks(be, budget_s / 5)
    records = _sweep(be, peaks, **CPU_SIZES, batches=list(CPU_BATCHES), seed=seed, reps=5, budget_s=budget_s * 3 / 5)
    cpu = _report(be, peaks, CPU_SIZES, list(CPU_BATCHES), records)
    gpu = run_gpu_benchmark(seed=seed, budget_s=budget_s / 5)
    return {"seed": seed, "budget_s": budget_s, "wall_s": time.perf_counter() - start, "cpu": cpu, "gpu": gpu}
