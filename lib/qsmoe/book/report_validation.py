"""Tables and summaries for the validation chapter (chapters/11-validation.md).

Everything here reshapes the output of :func:`qsmoe.evidence.validation.validate`; no physics. The
"gap groups" select measurement rows by their setup (model, layout, formats, engine, vendor,
bound), never by hand-picked ids, so the chapter's discussion of the worst rows stays tied to
the computed records whatever the parameter set.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from qsmoe.evidence.validation import load_measurements, validate

#: The accuracy the book aims for: median absolute relative error on held-out decode rows.
TARGET_ABS_ERROR = 0.25

#: Summary groups of :func:`qsmoe.evidence.validation.summarize_errors`, in display order, with labels.
SUMMARY_LABELS: dict[str, str] = {
    "all": "all rows",
    "decode": "decode-only",
    "decode_stated": "decode-only, batch and context stated",
    "e2e": "end-to-end",
    "moe": "MoE",
    "dense": "dense",
    "nvidia": "NVIDIA",
    "amd": "AMD",
}

Record = Mapping[str, Any]

#: Rows sharing a setup the model does not capture: name -> (predicate on a record).
GAP_GROUPS: dict[str, Callable[[Record], bool]] = {
    # DeepSeek expert-parallel deployments whose source states communication/compute overlap
    "ep_comm": lambda r: r["model"] == "deepseek-v3" and r["layout"] == "ep" and r["comm_overlap"],
    # DeepSeek-V3/R1 served tensor-parallel on one 8-GPU node (early-2025 vLLM / SGLang)
    "deepseek_tp8": lambda r: r["model"] == "deepseek-v3" and r["layout"] == "tp",
    # NVFP4 checkpoints (FP4 on the routed experts or linear layers only)
    "fp4": lambda r: r["weight_dtype"] == "fp4",
    # TensorRT-LLM v0.6 static-batch rows
    "trtllm_v06": lambda r: "v0.6" in r["engine"],
    # AMD MI300X rows on dense models (ROCm builds of vLLM)
    "rocm_dense": lambda r: r["vendor"] == "amd" and not r["moe"],
    # rows whose source leaves open whether multi-token prediction (MTP) was active
    "mtp_unknown": lambda r: "MTP" in r["notes"] and "no MTP" not in r["notes"],
    # every DeepSeek-V3/R1 row served expert-parallel with data-parallel attention
    "deepseek_ep": lambda r: r["model"] == "deepseek-v3" and r["layout"] == "ep",
    # dense decode-only rows (NVIDIA NIM inter-token latencies), at batch 1 and batched
    "dense_decode": lambda r: not r["moe"] and r["regime"] == "decode",
    "dense_decode_b1": lambda r: not r["moe"] and r["regime"] == "decode" and r["batch_stated"] and r["batch_calibrated"] == 1,
    "dense_decode_batched": lambda r: not r["moe"] and r["regime"] == "decode" and r["batch_stated"] and (r["batch_calibrated"] or 0) > 1,
    # vLLM CI fixed-batch latency rows on H200 (batch 8, 32 in / 128 out): overhead-dominated steps
    "vllm_ci": lambda r: r["hardware"] == "h200" and r["regime"] == "e2e" and r["batch_stated"] and r["input_len"] == 32,
}


def run(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`qsmoe.evidence.validation.validate` under ``values``, each row record extended with its
    ``engine`` (as published) and ``notes`` from measurements.csv."""
    rows = load_measurements()
    report = validate(dict(values), rows)
    extra = {m.id: m.extra for m in rows}
    for rec in report["rows"]:
        rec["engine"] = extra[rec["id"]].get("engine", "").strip()
        rec["notes"] = extra[rec["id"]].get("notes", "").strip()
    return report


def _signed(value: float | None) -> str:
    return "no prediction" if value is None else f"{value * 100:+.0f} %"


def row_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One display row per measurement: setup, measured and predicted tokens/s per GPU
    (parameter-set constants and calibrated constants) and the calibrated signed error."""
    out = []
    for r in report["rows"]:
        batch = r["batch_calibrated"]
        out.append({
            "id": r["id"],
            "model": r["model"],
            "hardware": r["hardware"],
            "GPUs": r["n_gpus"],
            "layout": r["layout"],
            "weights/KV": f"{r['weight_dtype']}/{r['kv_dtype']}",
            "regime": r["regime"],
            "batch": "n/a" if batch is None else (f"{batch}" if r["batch_stated"] else f"{batch} (max)"),
            "split": r["split"],
            "measured": r["measured"],
            "predicted, default": "no prediction" if r["predicted_default"] is None else r["predicted_default"],
            "predicted, calibrated": "no prediction" if r["predicted_calibrated"] is None else r["predicted_calibrated"],
            "error, calibrated": _signed(r["error_calibrated"]),
        })
    return out


def _median_text(stats: Mapping[str, Any]) -> str:
    med = stats["median_abs_error"]
    return "no rows" if med is None else f"{med * 100:.0f} %"


def summary_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Median absolute relative error by group (:data:`SUMMARY_LABELS`), for fit and judge rows,
    under the parameter set's constants and the calibrated ones."""
    s = report["summary"]
    out = []
    for key, label in SUMMARY_LABELS.items():
        row: dict[str, Any] = {"group": label}
        for split in ("fit", "judge"):
            row[f"{split} rows"] = s["calibrated"][split][key]["n"]
            row[f"{split}, default"] = _median_text(s["default"][split][key])
            row[f"{split}, calibrated"] = _median_text(s["calibrated"][split][key])
        out.append(row)
    return out


def worst_rows(report: Mapping[str, Any], split: str = "judge", n: int = 8) -> list[dict[str, Any]]:
    """The ``n`` rows of ``split`` with the largest calibrated |error|, largest first."""
    recs = [r for r in report["rows"] if r["split"] == split and r["error_calibrated"] is not None]
    recs.sort(key=lambda r: (-abs(r["error_calibrated"]), r["id"]))
    return [{
        "id": r["id"],
        "model": r["model"],
        "hardware": r["hardware"],
        "GPUs": r["n_gpus"],
        "layout": r["layout"],
        "regime": r["regime"],
        "engine": r["engine"],
        "modelled bound": r["bound_calibrated"],
        "error, calibrated": _signed(r["error_calibrated"]),
    } for r in recs[:n]]


def verdict(median_abs_error: float | None, target: float = TARGET_ABS_ERROR) -> str:
    """'meets' or 'misses' (the target), or 'cannot be judged against' without rows."""
    if median_abs_error is None:
        return "cannot be judged against"
    return "meets" if median_abs_error <= target else "misses"


def gap_group(report: Mapping[str, Any], name: str, which: str = "calibrated") -> dict[str, Any]:
    """The rows of gap group ``name`` (:data:`GAP_GROUPS`) with their errors under ``which``
    ('calibrated' or 'default' constants): {ids (text), n, range (text), median (signed, or
    None), direction ('over-predicts', 'under-predicts', 'brackets' or 'has no predicted rows
    for')}. Rows are selected with the calibrated records' fields."""
    pred = GAP_GROUPS[name]
    recs = [r for r in report["rows"] if pred(r)]
    errs = [r[f"error_{which}"] for r in recs if r[f"error_{which}"] is not None]
    ids = ", ".join(r["id"] for r in recs) or "none"
    if not errs:
        return {"ids": ids, "n": len(recs), "range": "no predicted rows", "median": None, "direction": "has no predicted rows for"}
    lo, hi = min(errs), max(errs)
    direction = "over-predicts" if lo > 0 else "under-predicts" if hi < 0 else "brackets"
    rng = f"{lo * 100:+.0f} %" if len(errs) == 1 else f"{lo * 100:+.0f} % to {hi * 100:+.0f} %"
    return {"ids": ids, "n": len(recs), "range": rng, "median": float(np.median(errs)), "direction": direction}


def scatter_points(report: Mapping[str, Any], which: str) -> list[dict[str, Any]]:
    """Measured and predicted tokens/s per GPU of the predicted rows under ``which``
    ('default' or 'calibrated'), with regime, MoE and split for the markers."""
    return [{
        "id": r["id"],
        "measured": r["measured"],
        "predicted": r[f"predicted_{which}"],
        "error": r[f"error_{which}"],
        "regime": r["regime"],
        "moe": r["moe"],
        "split": r["split"],
    } for r in report["rows"] if r[f"predicted_{which}"] is not None]


def within_target(report: Mapping[str, Any], split: str = "judge", which: str = "calibrated", target: float = TARGET_ABS_ERROR) -> tuple[int, int]:
    """(rows of ``split`` within +-target, predicted rows of ``split``) under ``which`` constants."""
    errs = [r[f"error_{which}"] for r in report["rows"] if r["split"] == split and r[f"error_{which}"] is not None]
    return sum(1 for e in errs if abs(e) <= target), len(errs)


def n_unpredicted(report: Mapping[str, Any]) -> int:
    """Rows without a calibrated prediction (weights do not fit, ...)."""
    return sum(1 for r in report["rows"] if r["predicted_calibrated"] is None)


__all__ = ["GAP_GROUPS", "SUMMARY_LABELS", "TARGET_ABS_ERROR", "gap_group", "n_unpredicted", "row_table", "run", "scatter_points", "summary_table", "verdict", "within_target", "worst_rows"]

