"""Published measurements no fit has used: NVIDIA's silicon sample (``data/holdout/``).

aiconfigurator (ai-dynamo/aiconfigurator) tracks its own accuracy against a dump of NVIDIA's
serving-benchmark database, ``silicon_sample.csv``; data/holdout/aiconfigurator-silicon-sample.csv
holds its aggregated-serving rows (prefill and decode on the same GPUs) for the models and
accelerators the book describes (data/holdout/README.md gives the commit and the filter). Each
row is one serving benchmark: input and output lengths I and O, the client's concurrency C, the
parallel layout, the weight precision, and the measured mean time per output token (TPOT) and
time to first token. No row of it enters ``qsmoe.evidence.calibration``: it judges the parameter
set as it stands.

A row is read by these rules (:func:`read_holdout`); a row no rule covers is left out and
counted under its reason (:data:`REASONS`):

* model: :data:`MODELS` maps the checkpoint to the book's model (DeepSeek-R1, V3 and V3.1 share
  one architecture, and an NVFP4 checkpoint is the same model in another format);
* accelerator: :data:`SYSTEMS`;
* layout, with pipeline parallelism 1: attention tensor-parallel (``attention_dp_size`` empty, 0
  or 1) with the experts split the same way (``moe_tp_size`` = ``tp_size``, ``moe_ep_size`` at
  most 1; a dense model's MoE fields empty, 0, 1 or ``tp_size``) is ``tp`` on G = ``tp_size``
  GPUs; attention tensor-parallel with the experts expert-parallel over the same GPUs
  (``moe_ep_size`` = ``tp_size``, ``moe_tp_size`` 1) is ``tp-ep``; attention data-parallel over
  every GPU with the experts expert-parallel (``tp_size`` 1, ``moe_ep_size`` =
  ``attention_dp_size``, ``moe_tp_size`` 1) is ``ep`` on G = ``attention_dp_size`` GPUs. Experts
  split both ways at once (``moe_tp_size`` and ``moe_ep_size`` both above 1) have no layout in
  the model. At most 8 GPUs: above that the sample pairs sizes a split of that size cannot have
  (``tp_size`` 12 to 72 for DeepSeek's 128 attention heads), so there the fields do not mean
  what their names say;
* concurrency C: ``silicon_concurrency`` in ``silicon_data_source`` (the benchmark client's);
  without it ``batch_size`` for a ``tp`` or ``tp-ep`` row (the sample's batch is per attention-DP
  rank, which is the whole instance without attention DP);
* weights: ``precision`` fp8 or fp4 as stated, empty for the checkpoint's own BF16;
* KV cache BF16 (the sample does not state it; the rule of data/measured/README.md for an
  unstated format), MTP off and CUDA graphs as the parameter set says (not stated), and every
  request I prompt and O output tokens (the sample gives one length each).

The measured throughput is tokens/s per GPU = C / (TPOT * G) (:func:`per_gpu_from_tpot`), and
the row is predicted as the TPOT rows of data/measured/ are
(:func:`qsmoe.evidence.validation.predict_row`): a continuous-batching step at the running
batch that absorbs the prefills of new requests, at context I + O / 2. The measured mean time to
first token is kept beside each row and set against the model's (:func:`ttft_check`).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.evidence.calibration import BAND_QUANTILES, prediction_band
from qsmoe.evidence.measurements import ENGINES, Measurement, id_rows, profile_for, row_error
from qsmoe.evidence.validation import HIGH_CONCURRENCY, LOW_CONCURRENCY, deployment_of, group_stats, predict_rows, summarize_errors
from qsmoe.physics.serve import serve_result
from qsmoe.specs.hardware import load_hardware

HOLDOUT_PATH = DATA_DIR / "holdout" / "aiconfigurator-silicon-sample.csv"
SOURCE_ID = "aiconfigurator-silicon-sample"
COLUMNS = (
    "id", "silicon_data_source", "backend", "backend_version", "model_path", "system", "precision", "mode", "isl", "osl",
    "batch_size", "tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "silicon_ttft_ms", "silicon_tpot_ms",
)
#: Checkpoint -> the book's model id.
MODELS = {
    "deepseek-ai/DeepSeek-R1": "deepseek-v3", "deepseek-ai/DeepSeek-V3": "deepseek-v3", "nvidia/DeepSeek-R1-NVFP4": "deepseek-v3",
    "nvidia/DeepSeek-V3.1-NVFP4": "deepseek-v3", "Qwen/Qwen3-235B-A22B-FP8": "qwen3-235b-a22b", "Qwen/Qwen3-32B": "qwen3-32b",
    "nvidia/Qwen3-32B-NVFP4": "qwen3-32b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b", "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b",
    "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b",
}
#: The sample's system -> the book's accelerator id.
SYSTEMS = {"h100_sxm": "h100-sxm", "h200_sxm": "h200", "b200_sxm": "b200", "gb200": "gb200"}
#: The sample's precision -> weight format.
PRECISIONS = {"fp8": "fp8", "fp4": "fp4", "": "bf16"}
#: An error this small or smaller counts as "within" in the summaries (|e| <= 15 %).
WITHIN = 0.15
#: What the two sides of a dense-over-MoE ratio share (:func:`ratio_pairs`): one workload on one
#: accelerator, engine and weight format.
PAIR_KEYS = ("hardware", "engine", "weight_dtype", "input_len", "output_len", "concurrency")
#: The prediction band's outer percentiles, at which the ratio and TTFT checks report their spread.
OUTER_QUANTILES = (BAND_QUANTILES[0], BAND_QUANTILES[-1])
#: Largest instance read (one node of 8 GPUs; module docstring).
MAX_GPUS = 8
#: Why a row is left out.
REASONS = {
    "mode": "not aggregated serving (disaggregated prefill and decode)",
    "model": "a checkpoint the book has no model for",
    "system": "an accelerator the book has no spec for",
    "precision": "a precision other than fp8, fp4 or the checkpoint's own",
    "pipeline": "pipeline parallelism",
    "mixed_experts": "experts split tensor- and expert-parallel at once (no layout in the model)",
    "layout": "a combination of parallel sizes no rule reads",
    "gpus": f"more than {MAX_GPUS} GPUs",
    "concurrency": "no client concurrency for an attention-data-parallel row",
}
_CONCURRENCY = re.compile(r"silicon_concurrency=(\d+)")


@dataclass(frozen=True)
class HoldoutTable:
    """The rows read as measurements, and the count of rows left out per key of ``reasons``
    (the reader's reasons, :data:`REASONS` for NVIDIA's sample)."""

    rows: tuple[Measurement, ...]
    left_out: dict[str, int]
    read: int
    reasons: Mapping[str, str]
    ttft_s: Mapping[str, float] = field(default_factory=dict)  # row id -> measured mean time to first token [s], where stated


def whole_number(raw: Mapping[str, str], column: str, source: str) -> int:
    """A parallel size or length: a whole number >= 0 (empty reads as 0)."""
    text = raw[column].strip()
    if not text:
        return 0
    if not text.isdigit():
        raise row_error(source, raw["id"], column, f"not a whole number: {text[:40]!r}")
    return int(text)


def positive_number(raw: Mapping[str, str], column: str, source: str) -> float:
    """A measured value (a time, in the column's unit): a finite number > 0."""
    text = raw[column].strip()
    try:
        x = float(text)
    except ValueError:
        raise row_error(source, raw["id"], column, f"not a number: {text[:40]!r}") from None
    if not (math.isfinite(x) and x > 0):
        raise row_error(source, raw["id"], column, f"must be a finite number > 0, got {text[:40]!r}")
    return x


def layout_of(moe: bool, tp: int, pp: int, adp: int, moe_tp: int, moe_ep: int) -> tuple[str, int] | str:
    """(layout, G) by the module's rules, or the :data:`REASONS` key of a row no rule reads."""
    if pp > 1:
        return "pipeline"
    if adp <= 1:
        if moe and moe_tp > 1 and moe_ep > 1:
            return "mixed_experts"
        if moe and moe_ep > 1 and moe_tp <= 1 and moe_ep == tp:
            layout, gpus = "tp-ep", tp
        elif (moe and (moe_tp != tp or moe_ep > 1)) or (not moe and (moe_tp not in (0, 1, tp) or moe_ep > 1)):
            return "layout"
        else:
            layout, gpus = "tp", tp
    elif moe and tp == 1 and moe_tp == 1 and moe_ep == adp:
        layout, gpus = "ep", adp
    else:
        return "layout"
    if gpus < 1:
        return "layout"
    return (layout, gpus) if gpus <= MAX_GPUS else "gpus"


def _read_row(raw: Mapping[str, str], source: str) -> Measurement | str:
    """One sample row as a decode-regime measurement, or the :data:`REASONS` key it is left out for."""
    if raw["mode"].strip() != "agg":
        return "mode"
    model = MODELS.get(raw["model_path"].strip())
    if model is None:
        return "model"
    hardware = SYSTEMS.get(raw["system"].strip())
    if hardware is None:
        return "system"
    weight = PRECISIONS.get(raw["precision"].strip())
    if weight is None:
        return "precision"
    moe = bool(profile_for(model).is_moe)
    sizes = {c: whole_number(raw, c, source) for c in ("tp_size", "pp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size")}
    got = layout_of(moe, sizes["tp_size"], sizes["pp_size"], sizes["attention_dp_size"], sizes["moe_tp_size"], sizes["moe_ep_size"])
    if isinstance(got, str):
        return got
    layout, gpus = got
    found = _CONCURRENCY.search(raw["silicon_data_source"])
    concurrency = int(found.group(1)) if found else (whole_number(raw, "batch_size", source) if layout != "ep" else 0)
    if concurrency < 1:
        return "concurrency"
    isl, osl = whole_number(raw, "isl", source), whole_number(raw, "osl", source)
    if isl < 1 or osl < 1:
        raise row_error(source, raw["id"], "isl" if isl < 1 else "osl", "must be a whole number >= 1")
    per_gpu = per_gpu_from_tpot(raw, "silicon_tpot_ms", 1e-3, concurrency, gpus, source)
    backend = raw["backend"].strip()
    return Measurement(
        id=raw["id"].strip(), model=model, hardware=hardware, n_gpus=gpus, layout=layout, weight_dtype=weight, kv_dtype="bf16",
        regime="decode", input_len=isl, output_len=osl, context=isl + osl / 2, concurrency=concurrency,
        tokens_per_s_per_gpu=per_gpu, split="holdout", vendor=load_hardware(hardware).vendor, moe=moe,
        engine=backend if backend in ENGINES else "other", engine_version=raw["backend_version"].strip(), mtp="no",
        source_id=SOURCE_ID, quote=f"silicon_tpot_ms={raw['silicon_tpot_ms'].strip()}",
    )


def per_gpu_from_tpot(raw: Mapping[str, str], column: str, seconds_per_unit: float, concurrency: int, gpus: int, source: str) -> float:
    """Output tokens/s per GPU of a serving benchmark from its mean TPOT: C / (TPOT * G), TPOT the
    field ``column`` x ``seconds_per_unit``; a QsError naming the column where it is not a finite
    number > 0 or gives no finite throughput."""
    per_gpu = concurrency / (positive_number(raw, column, source) * seconds_per_unit * gpus)
    if not math.isfinite(per_gpu):
        raise row_error(source, raw["id"], column, f"too small: {raw[column].strip()[:40]!r} gives no finite throughput")
    return per_gpu


def read_sample(path: Path, columns: Sequence[str], read_row: Callable[[Mapping[str, str], str], Measurement | str], reasons: Mapping[str, str],
               ttft_column: str, seconds_per_unit: float) -> HoldoutTable:
    """A held-out file read row by row: ``read_row`` gives a Measurement or the key of ``reasons``
    the row is left out for, and each row read keeps its measured mean TTFT, ``ttft_column`` x
    ``seconds_per_unit`` seconds, where the field is not empty. A QsError names the file, the row
    id and the column of a malformed field."""
    source = str(path)
    raw_rows = id_rows(path, columns)
    rows: list[Measurement] = []
    left_out: Counter[str] = Counter()
    ttft_s: dict[str, float] = {}
    for _, raw in raw_rows:
        got = read_row(raw, source)
        if isinstance(got, str):
            left_out[got] += 1
            continue
        rows.append(got)
        if raw[ttft_column].strip():
            ttft_s[got.id] = positive_number(raw, ttft_column, source) * seconds_per_unit
    return HoldoutTable(rows=tuple(rows), left_out={k: left_out[k] for k in reasons if left_out[k]}, read=len(raw_rows), reasons=reasons, ttft_s=ttft_s)


def read_holdout(path: str | Path | None = None) -> HoldoutTable:
    """Read the sample (default: the book's copy) by the module's rules (:func:`read_sample`)."""
    return read_sample(Path(path) if path is not None else HOLDOUT_PATH, COLUMNS, _read_row, REASONS, "silicon_ttft_ms", 1e-3)


def signed_median(errors: Sequence[float | None]) -> float | None:
    """The median signed error of the predicted rows (None entries are rows without a
    prediction), None without one."""
    predicted = [e for e in errors if e is not None]
    return float(np.median(predicted)) if predicted else None


def _within_share(errors: Sequence[float]) -> float | None:
    """The share of predicted rows with |e| <= :data:`WITHIN`, None without one."""
    return sum(abs(e) <= WITHIN for e in errors) / len(errors) if errors else None


def group_table(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One line per (model, engine, accelerator, weight format, layout): rows, median |e|,
    signed median e and the share within 15 %, in sorted order."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["model"], r["engine"], r["hardware"], r["weight_dtype"], r["layout"]), []).append(r)
    out = []
    for key in sorted(groups):
        errs = [r["error"] for r in groups[key] if r["error"] is not None]
        out.append(dict(zip(("model", "engine", "hardware", "weight_dtype", "layout"), key), **group_stats([r["error"] for r in groups[key]]),
                        signed_median_error=signed_median(errs), within_15=_within_share(errs),
                        engine_versions=sorted({r["engine_version"] for r in groups[key] if r["engine_version"]})))
    return out


def ratio_pairs(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Dense over MoE on one workload, measured and predicted: the quantity the book prints.

    For every :data:`PAIR_KEYS` value with predicted rows of both kinds (MoE and dense),

        R = exp(mean ln x_dense - mean ln x_moe)

    over that workload's rows of each kind, x the measured or the predicted tokens/s per GPU of
    the same rows (a geometric mean per side, so a workload counts once however many layouts and
    GPU counts it was run in); error = R_predicted / R_measured - 1 = (1 + e_dense) / (1 + e_moe) - 1,
    with e_moe and e_dense (``moe_error``, ``dense_error``) each side's geometric-mean predicted over
    measured, minus 1. Sorted by key.
    """
    sides: dict[tuple[Any, ...], dict[bool, list[Mapping[str, Any]]]] = {}
    for r in records:
        if r["predicted"] is not None:
            sides.setdefault(tuple(r[k] for k in PAIR_KEYS), {True: [], False: []})[bool(r["moe"])].append(r)
    def mean_log(rows: list[Mapping[str, Any]], key: str) -> float:
        return float(np.mean([math.log(r[key]) for r in rows]))

    out = []
    for key in sorted(sides):
        moe, dense = sides[key][True], sides[key][False]
        if not (moe and dense):
            continue
        moe_meas, moe_pred = mean_log(moe, "measured"), mean_log(moe, "predicted")
        dense_meas, dense_pred = mean_log(dense, "measured"), mean_log(dense, "predicted")
        measured, predicted = math.exp(dense_meas - moe_meas), math.exp(dense_pred - moe_pred)
        out.append(dict(zip(PAIR_KEYS, key), moe_models=sorted({r["model"] for r in moe}), dense_models=sorted({r["model"] for r in dense}),
                        moe_rows=len(moe), dense_rows=len(dense), measured_ratio=measured, predicted_ratio=predicted, error=predicted / measured - 1,
                        moe_error=math.exp(moe_pred - moe_meas) - 1, dense_error=math.exp(dense_pred - dense_meas) - 1))
    return out


def ratio_summary(pairs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Over :func:`ratio_pairs`: n, median |error|, signed median, share within :data:`WITHIN`
    and the error at the prediction band's outer percentiles (``calibration.BAND_QUANTILES``);
    the same without percentiles per accelerator, engine, weight format and pair of models
    (``groups``)."""
    def stats(errs: list[float]) -> dict[str, Any]:
        return {"n": len(errs), "median_abs_error": float(np.median(np.abs(errs))) if errs else None,
                "signed_median_error": signed_median(errs), "within_15": _within_share(errs)}

    errs = [p["error"] for p in pairs]
    groups: dict[tuple[str, ...], list[float]] = {}
    for p in pairs:
        groups.setdefault((p["hardware"], p["engine"], p["weight_dtype"], ", ".join(p["moe_models"]), ", ".join(p["dense_models"])), []).append(p["error"])
    return dict(stats(errs), error_quantiles=prediction_band(errs, OUTER_QUANTILES)["quantiles"],
                groups=[dict(zip(("hardware", "engine", "weight_dtype", "moe_models", "dense_models"), k), **stats(groups[k])) for k in sorted(groups)])


def ttft_check(table: HoldoutTable, values: Mapping[str, Any]) -> dict[str, Any]:
    """The model's time to first token against the measured mean TTFT of each row that states one.

    The model's TTFT of an aggregated deployment under continuous batching is one prompt's
    prefill on the replica, T_prefill(I, 1) (``ServeResult.prefill_time_s``, which ``qsmoe serve``
    reports and ``qsmoe plan --ttft-ms`` holds to its limit); a benchmark's mean TTFT also holds
    the time each request waits for prefills of others and the server's own per-request work.
    Returns {n, median_ratio, ratio_quantiles (the prediction band's outer percentiles),
    low_concurrency and high_concurrency ({n, median_ratio} at C <= 16 and C >= 64)} of
    ratio = predicted / measured over the rows with a finite prediction."""
    ratios: list[tuple[int, float]] = []
    for row in table.rows:
        measured = table.ttft_s.get(row.id)
        if measured is None:
            continue
        dep = deployment_of(row, values).with_changes(batching="continuous")
        res = serve_result(profile_for(row.model), dep, row.input_len, row.output_len, row.concurrency, enforce_budget=False)
        predicted = float(res.prefill_time_s)
        if bool(res.feasible) and math.isfinite(predicted) and predicted > 0:
            ratios.append((row.concurrency or 0, predicted / measured))

    def stats(sel: list[float]) -> dict[str, Any]:
        return {"n": len(sel), "median_ratio": float(np.median(sel)) if sel else None}

    every = [r for _, r in ratios]
    return {**stats(every),
            "ratio_quantiles": prediction_band(every, OUTER_QUANTILES)["quantiles"],
            "low_concurrency": stats([r for c, r in ratios if c <= LOW_CONCURRENCY]),
            "high_concurrency": stats([r for c, r in ratios if c >= HIGH_CONCURRENCY])}


def holdout_report(values: Mapping[str, Any], path: str | Path | None = None) -> dict[str, Any]:
    """NVIDIA's sample (default: the book's copy) predicted under ``values``: :func:`table_report`
    of :func:`read_holdout`."""
    return table_report(read_holdout(path), values, str(Path(path) if path is not None else HOLDOUT_PATH.relative_to(DATA_DIR.parent)))


def table_report(table: HoldoutTable, values: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A held-out table predicted under ``values`` (JSON-ready, deterministic): every row read
    (:func:`qsmoe.evidence.validation.predict_rows` records), the rows left out per reason, the
    regime summary of data/measured/'s validation (:func:`summarize_errors`), the signed median
    and share within 15 % over all predicted rows, :func:`group_table`, and the dense-over-MoE
    ratios of the workloads run with both (``ratios``: :func:`ratio_summary` and its ``pairs``), and
    the model's time to first token against the measured one (``ttft``: :func:`ttft_check`)."""
    records = predict_rows(table.rows, values)
    errs = [r["error"] for r in records if r["error"] is not None]
    pairs = ratio_pairs(records)
    unpredicted = Counter(r["reason"] for r in records if r["error"] is None)
    return {
        "source": source,
        "read": table.read,
        "left_out": {k: {"rows": v, "reason": table.reasons[k]} for k, v in table.left_out.items()},
        "unpredicted": dict(sorted(unpredicted.items())),
        "summary": summarize_errors(records, splits=("all",))["all"],
        "signed_median_error": signed_median(errs),
        "within_15": _within_share(errs),
        "groups": group_table(records),
        "ratios": dict(ratio_summary(pairs), pairs=pairs),
        "ttft": ttft_check(table, values),
        "rows": records,
    }


__all__ = ["COLUMNS", "HOLDOUT_PATH", "MAX_GPUS", "MODELS", "PRECISIONS", "REASONS", "SOURCE_ID", "SYSTEMS", "WITHIN", "HoldoutTable",
           "OUTER_QUANTILES", "PAIR_KEYS", "group_table", "holdout_report", "layout_of", "per_gpu_from_tpot", "positive_number", "ratio_pairs", "ratio_summary", "read_holdout",
           "read_sample", "signed_median", "table_report",
           "ttft_check", "whole_number"]
