"""Prediction of each published measurement, and error summaries by regime.

Each row of :mod:`qsmoe.evidence.measurements` is predicted with the serving model on its own
setup (model, accelerator, GPUs of one instance, layout, weight and KV formats, whether the
source states communication/compute overlap, and its engine where the parameter set has an
``engine`` key); every other value comes from the parameter set:

* ``decode`` rows: :func:`qsmoe.physics.decode.decode` at the row's context, with the row's
  concurrency as the batch, or the largest admissible batch when it is not stated; the
  prediction is the result's ``tokens_per_s_per_gpu`` (B * a / T, a the MTP acceptance length);
* ``e2e`` rows: :func:`qsmoe.physics.serve.serve_result` with the row's input/output lengths and
  concurrency (the largest batch admissible at context I + O when not stated); the prediction
  is the result's ``output_tokens_per_s_per_gpu`` (under continuous batching the running batch
  min(C, B_max), the rest queued).

Decode rows from co-located serving benchmarks (input and output lengths stated, concurrency
C > 1, not disaggregated) are a TPOT under continuous batching: they are predicted as the
steady-state serving step of :func:`qsmoe.physics.serve.serve_result` (batching continuous),
which absorbs the prefills of new requests (chunked or as their own steps, as the engine does),
because the published ITL/TPOT holds the prefills of the other requests
(``prefill_stalls=True``, the default; ``stall_s`` is the prefill time each step absorbs).

A stated batch larger than the modelled HBM budget is predicted anyway (the measurement shows it
ran) and flagged in ``note``; a row whose weights do not fit, or that is otherwise not
predictable, gets a ``reason`` instead of a prediction.

Errors: signed relative error e = (predicted - measured) / measured and log error
ln(predicted / measured). Summaries give the median |e| by split and by regime
(:data:`GROUPS`, :data:`ENGINE_GROUPS`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qsmoe.evidence.measurements import ENGINES, Measurement, profile_for
from qsmoe.physics.decode import decode
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.layouts import EXPERT_PARALLEL_LAYOUTS
from qsmoe.physics.memory import REASONS, WEIGHTS_DO_NOT_FIT
from qsmoe.physics.serve import serve_result
from qsmoe.scenario.compare import deployment_from

#: Token count from which a row counts as long-context (its longest sequence, I + O, or its
#: stated decode context when the lengths are not stated).
LONG_CONTEXT_TOKENS = 32_000
#: Concurrency bounds of the low- and high-concurrency regimes.
LOW_CONCURRENCY, HIGH_CONCURRENCY = 16, 64

Record = Mapping[str, Any]
#: Recorded engines the model has a description of (data/engines/); NIM and other engines run
#: as the accelerator's default engine ('auto').
MODELLED_ENGINES = ("trtllm", "sglang", "vllm", "atom")


def peak_context(r: Record) -> float | None:
    """The longest sequence of a row: I + O when both are stated, else its decode context."""
    if r["input_len"] is not None and r["output_len"] is not None:
        return float(r["input_len"] + r["output_len"])
    return r["context"]


#: Summary groups (regimes): name -> (label, predicate on a record).
GROUPS: dict[str, tuple[str, Callable[[Record], bool]]] = {
    "all": ("all rows", lambda r: True),
    "decode": ("decode-only", lambda r: r["regime"] == "decode"),
    "e2e": ("end-to-end", lambda r: r["regime"] == "e2e"),
    "low_concurrency": (f"concurrency <= {LOW_CONCURRENCY}", lambda r: r["concurrency"] is not None and r["concurrency"] <= LOW_CONCURRENCY),
    "high_concurrency": (f"concurrency >= {HIGH_CONCURRENCY} or max throughput", lambda r: r["concurrency"] is None or r["concurrency"] >= HIGH_CONCURRENCY),
    "long_context": (f"context >= {LONG_CONTEXT_TOKENS // 1000}k", lambda r: (peak_context(r) or 0) >= LONG_CONTEXT_TOKENS),
    "moe": ("MoE", lambda r: r["moe"]),
    "dense": ("dense", lambda r: not r["moe"]),
    "ep": ("expert parallel (ep, tp-ep)", lambda r: r["layout"] in EXPERT_PARALLEL_LAYOUTS),
    "tp": ("experts tensor-parallel (tp, dp-tp)", lambda r: r["layout"] not in EXPERT_PARALLEL_LAYOUTS),
    "nvidia": ("NVIDIA", lambda r: r["vendor"] == "nvidia"),
    "amd": ("AMD", lambda r: r["vendor"] == "amd"),
}
#: One group per recorded engine.
ENGINE_GROUPS: dict[str, tuple[str, Callable[[Record], bool]]] = {
    f"engine_{e}": (f"engine {e}", (lambda name: lambda r: r["engine"] == name)(e)) for e in ENGINES
}


@dataclass(frozen=True)
class Prediction:
    """A row's prediction: output tokens/s per GPU (None with a ``reason`` when not predictable)."""

    per_gpu: float | None
    batch: int
    max_batch: int
    bound: str | None
    note: str | None
    reason: str | None
    stall_s: float = 0.0


def row_values(row: Measurement, values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter values for ``row``: its accelerator, GPUs, formats, overlap and (when the
    set has the key) its engine and, where the row records them, whether CUDA/HIP graphs were on
    and its checkpoint's attention-projection format; everything else from ``values``."""
    merged = dict(values, hardware=row.hardware, gpus=row.n_gpus, weight_dtype=row.weight_dtype, kv_dtype=row.kv_dtype, comm_overlap=row.comm_overlap)
    if "engine" in values:
        merged["engine"] = row.engine if row.engine in MODELLED_ENGINES else "auto"
    if "use_cuda_graphs" in values and row.cuda_graphs is not None:
        merged["use_cuda_graphs"] = row.cuda_graphs
    if "attention_proj_dtype" in values and row.attention_proj_dtype is not None:
        merged["attention_proj_dtype"] = row.attention_proj_dtype
    return merged


def deployment_of(row: Measurement, values: Mapping[str, Any]) -> Deployment:
    """The row's deployment under ``values`` (:func:`row_values`) in its own layout."""
    return deployment_from(row_values(row, values), row.layout)


def prefill_stalls_apply(row: Measurement) -> bool:
    """Whether other requests' prefills interleave with this decode row's steps: a co-located
    (not disaggregated) serving benchmark with input and output lengths stated at concurrency > 1."""
    return (row.regime == "decode" and not row.disaggregated and row.input_len is not None
            and row.output_len is not None and row.output_len > 1 and (row.concurrency or 0) > 1)


def predict_row(row: Measurement, dep: Deployment, *, prefill_stalls: bool = True) -> Prediction:
    """Output tokens/s per GPU of ``row`` on ``dep`` (module docstring), read from the physics'
    own results: ``DecodeResult.tokens_per_s_per_gpu`` (B * a / T, MTP acceptance included) for
    a decode step, ``ServeResult.output_tokens_per_s_per_gpu`` for serving (continuous batching:
    the running batch B = min(C, B_max) over a step that absorbs the prefills of new requests)."""
    profile = profile_for(row.model)
    if row.regime == "decode" and not (prefill_stalls and prefill_stalls_apply(row)):
        budget = decode(profile, dep, row.context, None)  # the largest admissible batch and why not
        max_batch, why = int(budget.max_batch), int(budget.reason)
        if why == WEIGHTS_DO_NOT_FIT or (row.concurrency is None and why != 0):
            return Prediction(None, 0, max_batch, None, None, REASONS[why])
        batch = row.concurrency if row.concurrency is not None else max_batch
        rec = decode(profile, dep, row.context, float(batch), enforce_budget=False).record()
        note = f"stated batch {batch} exceeds the modelled admissible batch {max_batch}" if batch > max_batch else None
        return Prediction(rec["tokens_per_s_per_gpu"], batch, max_batch, rec["bound"], note, None)
    if row.regime == "decode":  # TPOT of a co-located serving benchmark: a steady continuous-batching step
        dep = dep.with_changes(batching="continuous")
    res = serve_result(profile, dep, row.input_len, row.output_len, row.concurrency, enforce_budget=False)
    rec = res.record()
    max_batch = rec["max_concurrency"]
    if not rec["feasible"]:
        return Prediction(None, 0, max_batch, None, None, rec["reason"])
    stated = row.concurrency if row.concurrency is not None else rec["running_batch"]
    note = f"stated concurrency {stated} exceeds the modelled admissible batch {max_batch} at context I+O ({rec['queued']} queued)" if stated > max_batch else None
    stall = float(res.prefill_per_step_s) if res.continuous else 0.0
    return Prediction(rec["output_tokens_per_s_per_gpu"], rec["running_batch"], max_batch, rec["bound"], note, None, stall)


def log_errors(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> np.ndarray:
    """ln(predicted / measured) per row under ``values``; NaN where the row cannot be predicted."""
    out = np.full(len(rows), np.nan)
    for i, row in enumerate(rows):
        p = predict_row(row, deployment_of(row, values), prefill_stalls=prefill_stalls).per_gpu
        if p is not None and math.isfinite(p) and p > 0:
            out[i] = math.log(p / row.tokens_per_s_per_gpu)
    return out


def setup_record(row: Measurement) -> dict[str, Any]:
    """The setup fields of a row record (JSON-ready)."""
    return {
        "id": row.id, "model": row.model, "hardware": row.hardware, "vendor": row.vendor, "regime": row.regime,
        "moe": row.moe, "split": row.split, "source_id": row.source_id, "n_gpus": row.n_gpus, "layout": row.layout,
        "comm_overlap": row.comm_overlap, "weight_dtype": row.weight_dtype, "attention_proj_dtype": row.attention_proj_dtype, "kv_dtype": row.kv_dtype,
        "context": row.context, "input_len": row.input_len, "output_len": row.output_len,
        "concurrency": row.concurrency, "engine": row.engine, "engine_version": row.engine_version,
        "mtp": row.mtp, "cuda_graphs": row.cuda_graphs, "disaggregated": row.disaggregated, "measured": row.tokens_per_s_per_gpu,
    }


def predict_rows(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[dict[str, Any]]:
    """One JSON-ready record per row under ``values``: :func:`setup_record` plus batch, max_batch,
    predicted, error ((pred - meas) / meas), log_error, bound, stall_s, note and reason
    (predicted, error, log_error and bound are None, and reason a string, when not predictable)."""
    out = []
    for row in rows:
        p = predict_row(row, deployment_of(row, values), prefill_stalls=prefill_stalls)
        pred, reason = p.per_gpu, p.reason
        if pred is not None and not (math.isfinite(pred) and pred > 0):
            pred, reason = None, "the model gave no finite positive throughput"
        ok, meas = pred is not None, row.tokens_per_s_per_gpu
        out.append(dict(setup_record(row), **{
            "batch": p.batch if ok else None,
            "max_batch": p.max_batch,
            "predicted": pred,
            "error": (pred - meas) / meas if ok else None,
            "log_error": math.log(pred / meas) if ok else None,
            "bound": p.bound if ok else None,
            "stall_s": p.stall_s if ok else None,
            "note": p.note,
            "reason": reason,
        }))
    return out


def suspects(r: Record) -> list[str]:
    """Setup features of a row record that the model is known to represent poorly or that leave
    its measurement open (from the setup fields and, where the record has it, its
    ``ceiling_ratio``; never from the row id)."""
    out = []
    if r["mtp"] == "yes":
        out.append("multi-token prediction on (more than one token per sequence per step)")
    elif r["mtp"] == "unknown":
        out.append("the source leaves open whether multi-token prediction was on")
    if r["vendor"] == "amd":
        out.append("ROCm software stack")
    if r["moe"] and r["layout"] != "ep" and r["model"] == "deepseek-v3":
        out.append("DeepSeek-V3 tensor-parallel: MLA KV replicated on every rank, early MLA/MoE kernels")
    if r["weight_dtype"] == "fp4":
        out.append("NVFP4 checkpoint: only the experts or linear layers are FP4")
    if r["comm_overlap"]:
        out.append("communication overlapped with compute (two-batch overlap)")
    if r["cuda_graphs"] is False:
        out.append("no CUDA/HIP graphs: eager launches, counted as the fused kernels of a graph")
    if r["disaggregated"]:
        out.append("disaggregated decode (prefill elsewhere)")
    if r["concurrency"] is None:
        out.append("concurrency not stated (the largest admissible batch is used)")
    elif r["concurrency"] <= LOW_CONCURRENCY:
        out.append(f"low concurrency ({r['concurrency']}): per-step latencies dominate")
    if (peak_context(r) or 0) >= LONG_CONTEXT_TOKENS:
        out.append("long context")
    if (r.get("ceiling_ratio") or 0.0) > 1.0:
        out.append(f"measured {r['ceiling_ratio']:.2f} times the most its recorded setup gives under any constants (qsmoe.evidence.ceiling)")
    if r.get("note"):
        out.append(r["note"])
    return out


def group_stats(errors: Sequence[float | None]) -> dict[str, Any]:
    """{n, unpredicted, median_abs_error, mean_abs_error, max_abs_error} of signed errors
    (None = not predicted); statistics are None without a predicted row."""
    vals = [abs(e) for e in errors if e is not None]
    return {
        "n": len(vals),
        "unpredicted": sum(1 for e in errors if e is None),
        "median_abs_error": float(np.median(vals)) if vals else None,
        "mean_abs_error": float(np.mean(vals)) if vals else None,
        "max_abs_error": float(max(vals)) if vals else None,
    }


def summarize_errors(records: Sequence[Record], key: str = "error", splits: Sequence[str] = ("fit", "judge", "all")) -> dict[str, dict[str, dict[str, Any]]]:
    """{split: {group: group_stats}} over :data:`GROUPS` and :data:`ENGINE_GROUPS` of the
    records' signed error field ``key`` ('all' takes every split)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in splits:
        chosen = [r for r in records if split == "all" or r["split"] == split]
        out[split] = {name: group_stats([r[key] for r in chosen if pred(r)]) for name, (_, pred) in {**GROUPS, **ENGINE_GROUPS}.items()}
    return out


__all__ = [
    "ENGINE_GROUPS", "EXPERT_PARALLEL_LAYOUTS", "GROUPS", "HIGH_CONCURRENCY", "LONG_CONTEXT_TOKENS", "LOW_CONCURRENCY", "MODELLED_ENGINES", "Prediction",
    "deployment_of", "group_stats", "log_errors", "peak_context", "predict_row", "predict_rows",
    "prefill_stalls_apply", "row_values", "setup_record", "summarize_errors", "suspects",
]
