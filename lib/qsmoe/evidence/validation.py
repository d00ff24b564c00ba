"""Validation against published measurements (``data/measured/measurements.csv``).

Each row is predicted with the roofline model on its own setup (model, accelerator, GPUs of one
instance, layout, weight and KV formats):

* ``decode`` rows: :func:`qsmoe.physics.decode.decode` at the row's context, with the row's concurrency
  as the batch (sequences in the instance), or the largest admissible batch when it is not stated;
* ``e2e`` rows: :func:`qsmoe.physics.serve.serve` with the row's input/output lengths and concurrency
  (the largest batch admissible at context I + O when not stated).

Decode rows from co-located serving benchmarks (input and output lengths stated, concurrency
C > 1: the NIM and dstack ITL/TPOT rows) also charge each step (C - 1) / (O - 1) single-request
prefills, because the published ITL/TPOT holds the prefills of the other requests
(``prefill_stalls=True``, the default; False gives the pure decode step). Disaggregated decode
rows state no output length and are never charged.

A stated batch larger than the modelled HBM budget is predicted anyway (the measurement shows it
ran) and flagged in ``note``; a row whose weights do not fit, or that is otherwise not
predictable, gets a ``reason`` instead of a prediction and is counted separately.

Calibration fits three named constants, :data:`CALIBRATED` = mem_efficiency,
compute_efficiency and step_overhead_s, on the ``split == fit`` rows only, by an exhaustive,
deterministic grid search (:data:`GRID`) minimising the median absolute log error
|ln(predicted / measured)|; ties go to the smaller mean absolute log error, then to the first
grid point in (mem, compute, link, overhead) order. ``link_efficiency`` can be added to the grid
(:data:`TUNABLE`) but is not fitted by default: only two fit rows have a sizeable link term.
Every other value (reserve_fraction, include_comm, routing_skew) is the parameter set's. The
``judge`` rows are never looked at while fitting.

Errors are signed relative errors (predicted - measured) / measured; summaries give the median
of their absolute values by split, regime, MoE/dense, vendor, and for decode rows whose batch
and context are both stated (``decode_stated``).
"""
from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.scenario.compare import deployment_from
from qsmoe.physics.decode import BOUNDS, decode, step_time
from qsmoe.physics.deployment import LAYOUTS, Deployment
from qsmoe.specs.dtypes import BYTES_PER_VALUE
from qsmoe.errors import QsError
from qsmoe.specs.hardware import HardwareSpec, available_hardware, load_hardware
from qsmoe.physics.memory import REASONS, WEIGHTS_DO_NOT_FIT
from qsmoe.specs.models import available_models, load_model
from qsmoe.scenario.params import resolve
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.physics.serve import SERVE_BOUNDS, prefill_time, serve_result

MEASUREMENTS_PATH = DATA_DIR / "measured" / "measurements.csv"
REQUIRED_COLUMNS = ("id", "model", "hardware", "n_gpus", "layout", "weight_dtype", "kv_dtype", "regime", "input_len", "output_len", "context", "concurrency", "tokens_per_s_per_gpu", "split")
REGIMES = ("decode", "e2e")
SPLITS = ("fit", "judge")
#: Record fields that depend on the parameter values (validate() reports each twice).
PER_RUN = ("predicted", "error", "log_error", "bound", "batch", "stall_s", "note", "reason")

#: Constants calibrate() can fit (each enters the model additively or through the roofline).
TUNABLE = ("mem_efficiency", "compute_efficiency", "link_efficiency", "step_overhead_s")
#: The constants the default calibration fits; everything else comes from the parameter set.
CALIBRATED = ("mem_efficiency", "compute_efficiency", "step_overhead_s")

#: The search grid (inclusive ends): 10 x 11 x 21 points.
GRID: dict[str, tuple[float, ...]] = {
    "mem_efficiency": tuple(round(0.50 + 0.05 * i, 2) for i in range(10)),  # 0.50 .. 0.95
    "compute_efficiency": tuple(round(0.30 + 0.05 * i, 2) for i in range(11)),  # 0.30 .. 0.80
    "step_overhead_s": tuple(round(0.00025 * i, 5) for i in range(21)),  # 0 .. 5 ms
}

#: Summary groups: name -> predicate on a record.
GROUPS = {
    "all": lambda r: True,
    "decode": lambda r: r["regime"] == "decode",
    "decode_stated": lambda r: r["regime"] == "decode" and r["batch_stated"] and r["context"] is not None,
    "e2e": lambda r: r["regime"] == "e2e",
    "moe": lambda r: r["moe"],
    "dense": lambda r: not r["moe"],
    "nvidia": lambda r: r["vendor"] == "nvidia",
    "amd": lambda r: r["vendor"] == "amd",
}


@dataclass(frozen=True)
class Measurement:
    """One validated row of measurements.csv (empty fields are None)."""

    id: str
    model: str
    hardware: str
    n_gpus: int
    layout: str
    weight_dtype: str
    kv_dtype: str
    regime: str
    input_len: int | None
    output_len: int | None
    context: float | None
    concurrency: int | None
    tokens_per_s_per_gpu: float
    split: str
    vendor: str
    moe: bool
    comm_overlap: bool = False
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@lru_cache(maxsize=None)
def _profile(model_id: str) -> DecodeProfile:
    return profile_of(load_model(model_id))


@lru_cache(maxsize=None)
def _hardware(hw_id: str) -> HardwareSpec:
    return load_hardware(hw_id)


def _row_error(source: str, rid: str, column: str, message: str) -> QsError:
    return QsError(f"row {rid}, column '{column}': {message}", source=source)


def _parse_number(raw: str, source: str, rid: str, column: str, *, optional: bool, whole: bool, minimum: float) -> float | None:
    """A CSV cell as a finite number (a whole one >= ``minimum`` when ``whole``, else > ``minimum``);
    None for an empty optional cell."""
    text = raw.strip()
    if not text:
        if optional:
            return None
        raise _row_error(source, rid, column, "missing")
    kind = "a whole number" if whole else "a number"
    try:
        value = float(text)
    except ValueError:
        raise _row_error(source, rid, column, f"expected {kind}, got {raw!r}") from None
    ok = math.isfinite(value) and (value == int(value) and value >= minimum if whole else value > minimum)
    if not ok:
        bound = f">= {minimum:g}" if whole else f"> {minimum:g}"
        raise _row_error(source, rid, column, f"expected {'a whole number' if whole else 'a finite number'} {bound}, got {raw!r}")
    return value


def _parse_int(raw: str, source: str, rid: str, column: str, *, optional: bool, minimum: int = 1) -> int | None:
    value = _parse_number(raw, source, rid, column, optional=optional, whole=True, minimum=minimum)
    return None if value is None else int(value)


def _parse_float(raw: str, source: str, rid: str, column: str, *, optional: bool) -> float | None:
    return _parse_number(raw, source, rid, column, optional=optional, whole=False, minimum=0.0)


def _parse_choice(raw: str, source: str, rid: str, column: str, choices: Sequence[str]) -> str:
    text = raw.strip()
    if text not in choices:
        raise _row_error(source, rid, column, f"{raw!r} is not one of {', '.join(choices)}")
    return text


def load_measurements(path: str | Path | None = None) -> list[Measurement]:
    """Read and check measurements.csv (default: the book's); one QsError per problem,
    naming the file, the row id and the column."""
    path = Path(path) if path is not None else MEASUREMENTS_PATH
    source = str(path)
    if not path.is_file():
        raise QsError("file not found", source=source)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise QsError(f"missing column(s): {', '.join(missing)}", source=source)
        raw_rows = list(reader)
    models, hardware = set(available_models()), set(available_hardware())
    rows: list[Measurement] = []
    seen: set[str] = set()
    for n, raw in enumerate(raw_rows, start=2):
        if None in raw or any(raw[c] is None for c in REQUIRED_COLUMNS):
            raise QsError(f"line {n}: wrong number of fields", source=source)
        rid = raw["id"].strip()
        if not rid:
            raise QsError(f"line {n}, column 'id': missing", source=source)
        if rid in seen:
            raise _row_error(source, rid, "id", "duplicate id")
        seen.add(rid)
        model = raw["model"].strip()
        if model not in models:
            raise _row_error(source, rid, "model", f"unknown model {model!r} (known: {', '.join(sorted(models))})")
        hw = raw["hardware"].strip()
        if hw not in hardware:
            raise _row_error(source, rid, "hardware", f"unknown hardware {hw!r} (known: {', '.join(sorted(hardware))})")
        dtypes = tuple(sorted(BYTES_PER_VALUE))
        regime = _parse_choice(raw["regime"], source, rid, "regime", REGIMES)
        row = Measurement(
            id=rid,
            model=model,
            hardware=hw,
            n_gpus=_parse_int(raw["n_gpus"], source, rid, "n_gpus", optional=False),
            layout=_parse_choice(raw["layout"], source, rid, "layout", LAYOUTS),
            weight_dtype=_parse_choice(raw["weight_dtype"], source, rid, "weight_dtype", dtypes),
            kv_dtype=_parse_choice(raw["kv_dtype"], source, rid, "kv_dtype", dtypes),
            regime=regime,
            input_len=_parse_int(raw["input_len"], source, rid, "input_len", optional=regime == "decode"),
            output_len=_parse_int(raw["output_len"], source, rid, "output_len", optional=regime == "decode"),
            context=_parse_float(raw["context"], source, rid, "context", optional=regime == "e2e"),
            concurrency=_parse_int(raw["concurrency"], source, rid, "concurrency", optional=True),
            tokens_per_s_per_gpu=_parse_float(raw["tokens_per_s_per_gpu"], source, rid, "tokens_per_s_per_gpu", optional=False),
            split=_parse_choice(raw["split"], source, rid, "split", SPLITS),
            vendor=_hardware(hw).vendor,
            moe=bool(_profile(model).is_moe),
            comm_overlap=_parse_choice(raw.get("comm_overlap") or "no", source, rid, "comm_overlap", ("yes", "no")) == "yes",
            extra={k: v for k, v in raw.items() if k not in REQUIRED_COLUMNS},
        )
        rows.append(row)
    return rows


def split_by_rule(rows: Iterable[Measurement]) -> dict[str, str]:
    """The split the README's rule gives: group by (regime, MoE), sort ids as strings,
    position p is fit when p % 3 == 0."""
    groups: dict[tuple[str, bool], list[str]] = {}
    for r in rows:
        groups.setdefault((r.regime, r.moe), []).append(r.id)
    return {rid: ("fit" if p % 3 == 0 else "judge") for ids in groups.values() for p, rid in enumerate(sorted(ids))}


# --------------------------------------------------------------------------- prediction


@dataclass(frozen=True)
class _Timing:
    """A row's prediction split so that the per-step overhead and the link efficiency can be
    varied without re-running the model (both enter additively):

        tokens/s/GPU = tokens / (base_s + comm_s * link_ref / link + steps * overhead) / gpus

    base_s excludes communication and overhead; comm_s is the link time at ``link_ref``."""

    tokens: float
    base_s: float
    comm_s: float
    steps: float
    link_ref: float
    gpus: int
    batch: int
    max_batch: int
    bound: str | None
    note: str | None
    reason: str | None
    stall_s: float = 0.0

    def per_gpu(self, overhead_s: float, link_efficiency: float | None = None) -> float:
        comm = self.comm_s if link_efficiency is None else self.comm_s * self.link_ref / link_efficiency
        return self.tokens / (self.base_s + comm + self.steps * overhead_s) / self.gpus


def _deployment(row: Measurement, values: Mapping[str, Any]) -> Deployment:
    """The row's deployment: its accelerator, GPUs, layout, formats and whether the source states
    communication/compute overlap (column comm_overlap); the rest from ``values``."""
    merged = dict(values, hardware=row.hardware, gpus=row.n_gpus, weight_dtype=row.weight_dtype, kv_dtype=row.kv_dtype, comm_overlap=row.comm_overlap)
    return deployment_from(merged, row.layout)


def _unpredictable(dep: Deployment, max_batch: int, reason: str) -> _Timing:
    return _Timing(0.0, 0.0, 0.0, 1.0, dep.link_efficiency, dep.gpus, 0, max_batch, None, None, reason)


def _stalls(row: Measurement) -> bool:
    """Whether other requests' prefills interleave with this decode row's steps: a co-located
    serving benchmark (input and output lengths both stated) at concurrency > 1.
    Disaggregated decode rows state no output length."""
    return row.regime == "decode" and row.input_len is not None and row.output_len is not None and row.output_len > 1 and (row.concurrency or 0) > 1


def _timing(row: Measurement, dep: Deployment, prefill_stalls: bool = True) -> _Timing:
    profile = _profile(row.model)
    oh = dep.step_overhead_s
    if row.regime == "decode":
        budget = decode(profile, dep, row.context, None)  # the largest admissible batch and why not
        max_batch, why = int(budget.max_batch), int(budget.reason)
        if why == WEIGHTS_DO_NOT_FIT or (row.concurrency is None and why != 0):
            return _unpredictable(dep, max_batch, REASONS[why])
        batch = row.concurrency if row.concurrency is not None else max_batch
        step = step_time(profile, dep, row.context, float(batch))
        note = f"stated batch {batch} exceeds the modelled admissible batch {max_batch}" if batch > max_batch else None
        total, comm, steps, stall = float(step.total_s), float(step.comm_s), 1.0, 0.0
        if prefill_stalls and _stalls(row):
            # each request's O - 1 decode steps absorb the prefills of the other C - 1 requests
            share = (batch - 1) / (row.output_len - 1)
            pre = prefill_time(profile, dep, row.input_len, 1)
            stall = share * float(pre.total_s)
            total, comm, steps = total + stall, comm + share * float(pre.comm_s), steps + share
        return _Timing(float(batch), total - comm - steps * oh, comm, steps, dep.link_efficiency, dep.gpus, batch, max_batch, BOUNDS[int(step.bound())], note, None, stall)
    res = serve_result(profile, dep, row.input_len, row.output_len, row.concurrency, enforce_budget=False)
    max_batch = int(res.max_concurrency)
    if not bool(res.feasible):
        return _unpredictable(dep, max_batch, REASONS[int(res.reason)])
    batch = int(res.concurrency)
    note = f"stated concurrency {batch} exceeds the modelled admissible batch {max_batch} at context I+O" if batch > max_batch else None
    steps = float(row.output_len)  # one prefill pass + (O - 1) decode steps, each pays the overhead
    total = float(res.total_time_s)
    comm = float(res.prefill.comm_s) + (row.output_len - 1) * float(res.step.comm_s)
    return _Timing(float(batch * row.output_len), total - comm - steps * oh, comm, steps, dep.link_efficiency, dep.gpus, batch, max_batch, SERVE_BOUNDS[int(res.bound)], note, None)


def predict_rows(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[dict[str, Any]]:
    """One JSON-ready record per row under the parameter values ``values`` (efficiencies,
    overhead, reserve, link efficiency, ...; the row supplies hardware, GPUs, layout and formats).

    ``prefill_stalls``: for decode rows from co-located serving benchmarks (input and output
    lengths stated, concurrency C > 1) the measured ITL/TPOT also holds the prefills of the other
    C - 1 requests, so each step is charged (C - 1) / (O - 1) single-request prefills
    (``stall_s``); False gives the pure decode step.

    Keys: id, model, hardware, vendor, regime, moe, split, n_gpus, layout, comm_overlap, weight_dtype, kv_dtype,
    context, input_len, output_len, batch, batch_stated, max_batch, measured, predicted,
    error ((pred - meas) / meas), log_error, bound, stall_s, note, reason. predicted, error,
    log_error and bound are None (and reason a string) when the row cannot be predicted.
    """
    out = []
    for row in rows:
        t = _timing(row, _deployment(row, values), prefill_stalls)
        pred = t.per_gpu(float(values["step_overhead_s"])) if t.reason is None else None
        reason = t.reason
        if pred is not None and not (math.isfinite(pred) and pred > 0):
            pred, reason = None, "the model gave no finite positive throughput"
        ok = pred is not None
        meas = row.tokens_per_s_per_gpu
        out.append({
            "id": row.id,
            "model": row.model,
            "hardware": row.hardware,
            "vendor": row.vendor,
            "regime": row.regime,
            "moe": row.moe,
            "split": row.split,
            "n_gpus": row.n_gpus,
            "layout": row.layout,
            "comm_overlap": row.comm_overlap,
            "weight_dtype": row.weight_dtype,
            "kv_dtype": row.kv_dtype,
            "context": row.context,
            "input_len": row.input_len,
            "output_len": row.output_len,
            "batch": t.batch if ok else None,
            "batch_stated": row.concurrency is not None,
            "max_batch": t.max_batch,
            "measured": meas,
            "predicted": pred,
            "error": (pred - meas) / meas if ok else None,
            "log_error": math.log(pred / meas) if ok else None,
            "bound": t.bound if ok else None,
            "stall_s": t.stall_s if ok else None,
            "note": t.note,
            "reason": reason,
        })
    return out


def _objective(log_errors: np.ndarray) -> tuple[float, float]:
    """(median, mean) of |log error| over the predictable rows, rounded so float noise cannot
    decide a tie."""
    a = np.abs(log_errors)
    return (round(float(np.median(a)), 12), round(float(np.mean(a)), 12))


def calibrate(rows: Sequence[Measurement], values: Mapping[str, Any], grid: Mapping[str, Sequence[float]] | None = None, *, prefill_stalls: bool = True) -> dict[str, Any]:
    """Fit the constants named in ``grid`` (default :data:`GRID`, i.e. :data:`CALIBRATED`) on the
    rows with split == 'fit' (other rows are never read) by exhaustive grid search.

    Objective: median |ln(pred / meas)| over the fit rows that can be predicted; ties go to the
    smaller mean, then to the first point in grid order (mem, compute, link, overhead).
    A constant missing from ``grid`` stays at its value in ``values``.
    Returns {the constants..., median_abs_log_error, mean_abs_log_error, fit_rows, unpredicted}.
    """
    grid = dict(GRID if grid is None else grid)
    unknown = sorted(set(grid) - set(TUNABLE))
    if unknown:
        raise QsError(f"cannot calibrate {', '.join(unknown)} (tunable: {', '.join(TUNABLE)})", field="grid")
    axes = {k: tuple(float(v) for v in grid.get(k, (values[k],))) for k in TUNABLE}
    for k, axis in axes.items():
        if not axis:
            raise QsError("empty grid axis", field=k)
    fit = [r for r in rows if r.split == "fit"]
    if not fit:
        raise QsError("no rows with split == fit to calibrate on", field="split")
    overheads = np.asarray(axes["step_overhead_s"])
    links = np.asarray(axes["link_efficiency"])
    measured = np.array([r.tokens_per_s_per_gpu for r in fit])
    deps = [_deployment(r, values) for r in fit]
    best: tuple[tuple[float, float], tuple[float, ...]] | None = None
    unpredicted: list[str] = []
    for em in axes["mem_efficiency"]:
        for ec in axes["compute_efficiency"]:
            timings = [_timing(r, d.with_changes(mem_efficiency=em, compute_efficiency=ec, step_overhead_s=0.0), prefill_stalls) for r, d in zip(fit, deps)]
            ok = np.array([t.reason is None for t in timings])
            unpredicted = [r.id for r, good in zip(fit, ok) if not good]
            if not ok.any():
                continue
            col = lambda name: np.array([getattr(t, name) for t in timings], dtype=float)[ok]  # noqa: E731
            tok, base, comm, steps, ref, gpus = col("tokens"), col("base_s"), col("comm_s"), col("steps"), col("link_ref"), col("gpus")
            # axes: link x overhead x row
            time = base + comm * ref / links[:, None, None] + steps * overheads[None, :, None]
            logs = np.log(tok / time / gpus / measured[ok])
            for i, link in enumerate(links):
                for j, oh in enumerate(overheads):
                    score = _objective(logs[i, j])
                    if best is None or score < best[0]:
                        best = (score, (em, ec, float(link), float(oh)))
    if best is None:
        raise QsError("no fit row could be predicted at any grid point", field="split")
    (median, mean), (em, ec, link, oh) = best
    return {
        "mem_efficiency": em,
        "compute_efficiency": ec,
        "link_efficiency": link,
        "step_overhead_s": oh,
        "median_abs_log_error": median,
        "mean_abs_log_error": mean,
        "fit_rows": [r.id for r in fit],
        "unpredicted": unpredicted,
    }


def _group_stats(records: Sequence[Mapping[str, Any]], key: str) -> dict[str, Any]:
    errors = [abs(r[key]) for r in records if r[key] is not None]
    return {
        "n": len(errors),
        "unpredicted": sum(1 for r in records if r[key] is None),
        "median_abs_error": float(np.median(errors)) if errors else None,
        "mean_abs_error": float(np.mean(errors)) if errors else None,
        "max_abs_error": float(max(errors)) if errors else None,
    }


def summarize_errors(records: Sequence[Mapping[str, Any]], key: str = "error") -> dict[str, dict[str, dict[str, Any]]]:
    """Absolute relative errors by split ('fit', 'judge', 'all') and group (:data:`GROUPS`):
    {split: {group: {n, unpredicted, median_abs_error, mean_abs_error, max_abs_error}}}.
    ``key`` names the signed error field of the records. Statistics of empty groups are None."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for split in ("fit", "judge", "all"):
        chosen = [r for r in records if split == "all" or r["split"] == split]
        out[split] = {name: _group_stats([r for r in chosen if pred(r)], key) for name, pred in GROUPS.items()}
    return out


def validate(values: Mapping[str, Any] | None = None, rows: Sequence[Measurement] | None = None, *, grid: Mapping[str, Sequence[float]] | None = None, prefill_stalls: bool = True) -> dict[str, Any]:
    """Predict every row with the parameter set's values ('default') and with the constants
    calibrated on the fit rows ('calibrated'); return {constants, calibration, grid, rows, summary}
    (JSON-ready, deterministic). Row records carry every PER_RUN field twice, suffixed
    _default and _calibrated."""
    values = dict(resolve().values if values is None else values)
    rows = load_measurements() if rows is None else list(rows)
    grid = dict(GRID if grid is None else grid)
    fitted = calibrate(rows, values, grid, prefill_stalls=prefill_stalls)
    tuned = [k for k in TUNABLE if k in grid]
    calibrated_values = dict(values, **{k: fitted[k] for k in tuned})
    default = predict_rows(rows, values, prefill_stalls=prefill_stalls)
    calibrated = predict_rows(rows, calibrated_values, prefill_stalls=prefill_stalls)
    merged = []
    for d, c in zip(default, calibrated):
        rec = {k: v for k, v in c.items() if k not in PER_RUN}
        for k in PER_RUN:
            rec[f"{k}_default"] = d[k]
            rec[f"{k}_calibrated"] = c[k]
        merged.append(rec)
    return {
        "constants": {
            "default": {k: float(values[k]) for k in tuned},
            "calibrated": {k: fitted[k] for k in tuned},
            "fixed": {k: values[k] for k in TUNABLE + ("reserve_fraction", "include_comm", "routing_skew") if k not in tuned},
        },
        "calibration": {k: fitted[k] for k in ("median_abs_log_error", "mean_abs_log_error", "fit_rows", "unpredicted")},
        "prefill_stalls": prefill_stalls,
        "grid": {k: [float(x) for x in v] for k, v in grid.items()},
        "rows": merged,
        "summary": {"default": summarize_errors(merged, "error_default"), "calibrated": summarize_errors(merged, "error_calibrated")},
    }


__all__ = ["CALIBRATED", "GRID", "GROUPS", "Measurement", "calibrate", "load_measurements", "predict_rows", "split_by_rule", "summarize_errors", "validate"]
