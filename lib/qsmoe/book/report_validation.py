"""Tables and summaries for the validation chapter (chapters/11-validation.md).

Everything here reshapes the output of :func:`qsmoe.evidence.calibration.validate`; no physics.
The reason given for a badly predicted row is its list of setup features
(:func:`qsmoe.evidence.validation.suspects`), never a sentence written for a row id.
"""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from qsmoe.evidence.calibration import STARTS, TARGETS, fitted_constants, validate
from qsmoe.evidence.ceiling import judge_doubts
from qsmoe.evidence.hindsight import validate_with_hindsight
from qsmoe.evidence.doubts import Doubt, apply_doubts, load_doubts
from qsmoe.evidence.measurements import load_measurements
from qsmoe.evidence.validation import ENGINE_GROUPS, GROUPS, group_stats
from qsmoe.physics.deployment import SAME_AS_WEIGHTS
from qsmoe.scenario.headline import ratio_band

Record = Mapping[str, Any]

#: Readable names of the targets of :data:`qsmoe.evidence.calibration.TARGETS`.
TARGET_LABELS = {
    "judge_all": "median |error|, judge rows",
    "judge_moe": "median |error|, MoE judge rows",
    "judge_worst_regime": "median |error|, worst regime (judge rows)",
    "loso_all": "median |error|, leave one source out (all rows)",
}


def run(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`qsmoe.evidence.calibration.validate` under ``values`` (the book's measurements),
    with the fit restarted from every one of :data:`qsmoe.evidence.calibration.STARTS`
    (``restarts``) and the hindsight fits (``hindsight``, :mod:`qsmoe.evidence.hindsight`)."""
    return validate_with_hindsight(dict(values), load_measurements(), starts=STARTS)


def second_reading(values: Mapping[str, Any]) -> tuple[list[Doubt], dict[str, Any]]:
    """The doubts of data/measured/doubts.csv and :func:`qsmoe.evidence.calibration.validate`
    under ``values`` on the table with every doubted field at its alternative (no bootstrap, no
    LOSO: the fit and the judge only)."""
    rows = load_measurements()
    doubts = load_doubts(rows)
    return doubts, validate(dict(values), apply_doubts(rows, doubts), resamples=0, loso=False)


def doubt_ceilings(values: Mapping[str, Any], doubts: list[Doubt]) -> list[dict[str, Any]]:
    """:func:`qsmoe.evidence.ceiling.judge_doubts` of ``doubts`` on the book's measurements under
    ``values``, each with its row's ``source_id``."""
    rows = load_measurements()
    source = {r.id: r.source_id for r in rows}
    return [dict(j, source_id=source[j["id"]]) for j in judge_doubts(rows, doubts, dict(values))]


def doubt_ceiling_table(judged: list[Mapping[str, Any]], least_ratio: float) -> list[dict[str, Any]]:
    """The judged doubts (:func:`doubt_ceilings`) whose higher ratio is at least ``least_ratio``,
    highest first: the row, its source, each reading with measured / ceiling, and the readings
    ruled out (ratio above 1)."""
    higher = lambda j: max(j["ratio_recorded"] or 0.0, j["ratio_alternative"] or 0.0)  # noqa: E731
    keep = sorted((j for j in judged if higher(j) >= least_ratio), key=lambda j: (-higher(j), j["id"]))
    ratio = lambda x: "n/a" if x is None else f"{x:.2f}"  # noqa: E731
    return [{
        "row": j["id"],
        "source": j["source_id"],
        "field": j["field"],
        "recorded": f"{j['recorded']} ({ratio(j['ratio_recorded'])})",
        "alternative": f"{j['alternative']} ({ratio(j['ratio_alternative'])})",
        "ruled out": ", ".join(j["ruled_out"]) or "neither",
    } for j in keep]


def softness_reading(values: Mapping[str, Any], softness: float) -> dict[str, Any]:
    """:func:`qsmoe.evidence.calibration.validate` on the book's measurements under ``values`` with
    ``roofline_softness`` set to ``softness`` and the constants refitted (no bootstrap, no LOSO):
    what the fit and the judge give under another roofline (``qsmoe.physics.kernels``)."""
    return validate(dict(values, roofline_softness=softness), load_measurements(), resamples=0, loso=False)


def uniform_format_reading(values: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`qsmoe.evidence.calibration.validate` on the book's measurements with every weight group
    in the row's ``weight_dtype`` (``head_dtype`` and ``attention_proj_dtype`` ``same``, the rows'
    own attention formats dropped) and the constants refitted (no bootstrap, no LOSO): what the
    checkpoints' mixed formats (``Deployment.weight_format``) change."""
    rows = [replace(row, attention_proj_dtype=None) for row in load_measurements()]
    return validate(dict(values, head_dtype=SAME_AS_WEIGHTS, attention_proj_dtype=SAME_AS_WEIGHTS), rows, resamples=0, loso=False)


def softness_table(values: Mapping[str, Any], readings: Mapping[float, Mapping[str, Any]], kernel_rms: Mapping[float, float]) -> list[dict[str, Any]]:
    """:func:`readings_table` of one validate report per roofline softness ({s: report}, e.g. from
    :func:`softness_reading`), each row named by its softness (the parameter set's own marked) and
    given the rms of ln t the same softness reaches on the published kernel times (``kernel_rms``,
    :func:`qsmoe.evidence.kernel_tables.roofline_fit`'s ``rms_by_softness``)."""
    used = values["roofline_softness"]
    names = {s: f"{s:.2f}" + (" (this book)" if s == used else "") for s in readings}
    rows = readings_table(values, {names[s]: rep for s, rep in readings.items()})
    for row, s in zip(rows, readings):
        rms = kernel_rms.get(round(s, 2))
        row["kernel rms of ln t"] = "n/a" if rms is None or round(s, 2) != s else f"{rms:.3f}"
    return rows


def readings_table(values: Mapping[str, Any], readings: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per reading of the table ({name: validate report}): the fit median
    |ln(pred / meas)|, the judge medians (all, MoE, worst regime), the constants fitted, and the
    headline dense/MoE ratio under ``values`` with those constants
    (:func:`qsmoe.scenario.headline.ratio_band`)."""
    out = []
    for name, rep in readings.items():
        consts = rep["constants"]
        fitted = fitted_constants(rep)
        t = rep["targets"]
        ratio = ratio_band(dict(values, **fitted))["ratio"]
        out.append({
            "reading": name,
            "fit median |ln|": f"{rep['calibration']['objective']['median_abs_log_error']:.3f}",
            "judge median": pct(t["judge_all"]["measured"], decimals=1),
            "MoE judge median": pct(t["judge_moe"]["measured"], decimals=1),
            "worst regime": "none" if rep["worst_regime"] is None else f"{GROUPS[rep['worst_regime']][0]}: {pct(t['judge_worst_regime']['measured'], decimals=1)}",
            **{k: _value(consts[k], v) for k, v in fitted.items()},
            "headline ratio": "infeasible" if ratio is None else f"{ratio:.2f}x",
        })
    return out


def starts_table(results: list[Mapping[str, Any]], report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per start of the fit: where it began, the fit median |ln(pred / meas)| it stopped
    at, the judge medians there, and the constants it chose (units as :func:`constants_table`)."""
    consts = report["constants"]
    return [{
        "start": r["start"],
        "fit median |ln|": f"{r['fit_median_abs_log_error']:.3f}",
        "judge median": pct(r["judge_median_abs_error"]),
        "MoE judge median": pct(r["judge_moe_median_abs_error"]),
        **{name: _value(consts[name], v) for name, v in r["point"].items()},
    } for r in results]


def pct(value: float | None, signed: bool = False, decimals: int = 0) -> str:
    """A fraction as a percentage to ``decimals`` places ('no rows' / 'no prediction' for None).
    A measured value set against a whole-percent target takes one decimal, so that a value just
    inside or outside the target does not read as equal to it."""
    if value is None:
        return "no prediction" if signed else "no rows"
    return f"{value * 100:{'+' if signed else ''}.{decimals}f} %"


def error_direction(median: float | None, missing: str) -> str:
    """'under-predicted' (median signed error < 0) or 'over-predicted', ``missing`` for None."""
    if median is None:
        return missing
    return "under-predicted" if median < 0 else "over-predicted"


def _cell(stats: Mapping[str, Any]) -> str:
    return "no rows" if stats["median_abs_error"] is None else f"{stats['median_abs_error'] * 100:.0f} % ({stats['n']})"


def regime_table(report: Mapping[str, Any], engines: bool = False) -> list[dict[str, Any]]:
    """Median |error| (rows) per regime (:data:`GROUPS`, or per engine): judge rows under the
    datasheet and the fitted constants, fit rows under the fitted ones, and LOSO over all rows.
    Groups without any row are left out."""
    s = report["summary"]
    groups = ENGINE_GROUPS if engines else GROUPS
    out = []
    for key, (label, _) in groups.items():
        if not s["calibrated"]["all"][key]["n"] and not s["calibrated"]["all"][key]["unpredicted"]:
            continue
        out.append({
            "regime": label,
            "judge, datasheet": _cell(s["datasheet"]["judge"][key]),
            "judge, calibrated": _cell(s["calibrated"]["judge"][key]),
            "fit, calibrated": _cell(s["calibrated"]["fit"][key]),
            "leave one source out": _cell(s["loso"]["all"][key]),
        })
    return out


def holdout_regime_table(report: Mapping[str, Any], samples: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Median |error| (rows) per regime and engine (:data:`GROUPS`, :data:`ENGINE_GROUPS`) on the
    judge rows of the validation ``report`` (its fitted constants) and on each held-out sample of
    ``samples`` ((column name, ``qsmoe.evidence.holdout.table_report``), run by the chapter with
    the same constants); groups without a row in any sample are left out."""
    judge = report["summary"]["calibrated"]["judge"]

    def present(key: str) -> bool:
        return any(hold["summary"][key]["n"] or hold["summary"][key]["unpredicted"] for _, hold in samples)

    return [{"regime": label, "judge rows": _cell(judge[key]), **{name: _cell(hold["summary"][key]) for name, hold in samples}}
            for key, (label, _) in {**GROUPS, **ENGINE_GROUPS}.items() if present(key)]


def _error_cells(g: Mapping[str, Any]) -> dict[str, str]:
    """The error columns of a held-out group (``holdout.group_table`` or ``ratio_summary``):
    median |error|, signed median and the share within 15 %."""
    return {"median |error|": pct(g["median_abs_error"]), "signed median": pct(g["signed_median_error"], signed=True), "within 15 %": pct(g["within_15"])}


def holdout_group_table(hold: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per group of the held-out sample (model, engine with its versions, accelerator,
    weight format, layout): rows, median |error|, signed median and the share within 15 %."""
    return [{
        "model": g["model"],
        "engine": g["engine"] + (f" {', '.join(g['engine_versions'])}" if g["engine_versions"] else " (version not stated)"),
        "accelerator": g["hardware"],
        "weights": g["weight_dtype"],
        "layout": g["layout"],
        "rows": g["n"],
        **_error_cells(g),
    } for g in hold["groups"] if g["n"]]


def holdout_ratio_table(hold: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One line per setup of the held-out sample's dense-over-MoE workloads
    (``holdout.ratio_summary`` groups): the two models, accelerator, engine, weight format,
    workloads, median |error| of the ratio, signed median and the share within 15 %."""
    return [{
        "dense / MoE": f"{g['dense_models']} / {g['moe_models']}",
        "accelerator": g["hardware"],
        "engine": g["engine"],
        "weights": g["weight_dtype"],
        "workloads": g["n"],
        **_error_cells(g),
    } for g in hold["ratios"]["groups"]]


def ceiling_shares(report: Mapping[str, Any], least_rows: int = 1) -> dict[str, dict[str, Any]]:
    """Per regime and per engine (:data:`GROUPS`, :data:`ENGINE_GROUPS`, keyed as there; every
    row, both splits) with at least ``least_rows`` rows: {label, rows, q10, median, q90} of
    measured / ceiling (:mod:`qsmoe.evidence.ceiling`), how much of the most its setup could give
    a deployment reaches."""
    out = {}
    for key, (label, pred) in {**GROUPS, **ENGINE_GROUPS}.items():
        ratios = [r["ceiling_ratio"] for r in report["rows"] if pred(r) and r["ceiling_ratio"] is not None]
        if len(ratios) >= least_rows:
            low, mid, high = np.quantile(ratios, (0.1, 0.5, 0.9))
            out[key] = {"label": label, "rows": len(ratios), "q10": float(low), "median": float(mid), "q90": float(high)}
    return out


def ceiling_share_table(report: Mapping[str, Any], least_rows: int = 1) -> list[dict[str, Any]]:
    """:func:`ceiling_shares` as table rows: group, rows, median and 10th to 90th percentile."""
    return [{"group": s["label"], "rows": s["rows"], "median measured / ceiling": f"{s['median']:.2f}",
             "10th to 90th percentile": f"{s['q10']:.2f} to {s['q90']:.2f}"} for s in ceiling_shares(report, least_rows).values()]


def _value(c: Mapping[str, Any], v: float | None) -> str:
    """A constant's value for display: a latency in ms (µs below 1 ms, to 3 digits), else 2 decimals."""
    if v is None:
        return "n/a"
    if c["unit"] != "s":
        return f"{v:.2f}"
    if v == 0:
        return "0 ms"
    return f"{v * 1e6:.3g} µs" if v < 1e-3 else f"{v * 1e3:.3g} ms"


def constants_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The fitted constants: meaning, datasheet value, fitted value and 90 % bootstrap interval."""
    return [{
        "constant": name,
        "meaning": c["meaning"],
        "datasheet": _value(c, c["datasheet"]),
        "fitted": _value(c, c["fitted"]),
        "90 % interval": f"{_value(c, c['low'])} to {_value(c, c['high'])}",
        "grid": f"{_value(c, c['grid'][0])} to {_value(c, c['grid'][-1])} ({len(c['grid'])} values)",
    } for name, c in report["constants"].items()]


def loso_grid_edges(report: Mapping[str, Any]) -> dict[str, int]:
    """{constant: number of leave-one-source-out folds whose fitted value is the lowest or the
    highest value of its grid}."""
    consts = report["constants"]
    return {name: sum(point[name] in (c["grid"][0], c["grid"][-1]) for point in report["loso_constants"].values())
            for name, c in consts.items()}


def targets_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 9 with the measured value and whether it is met."""
    return [{
        "criterion": TARGET_LABELS[k],
        "target": f"<= {TARGETS[k] * 100:.0f} %",
        "measured": pct(t["measured"], decimals=1),
        "met": "yes" if t["met"] else "no",
    } for k, t in report["targets"].items()]


#: The target each hindsight group is held against (:data:`qsmoe.evidence.hindsight.GROUPS`).
HINDSIGHT_TARGETS = {"judge": "judge_all", "judge_moe": "judge_moe"}


def hindsight_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per hindsight group: its rows, the median |error| with the fitted constants and with the
    constants fitted on the group itself, and the target it is held against ('none' where no
    target names the group)."""
    out = []
    for key, g in report["hindsight"]["groups"].items():
        target = HINDSIGHT_TARGETS.get(key)
        out.append({
            "rows judged": g["label"],
            "rows": g["rows"],
            "fitted constants": pct(g["fitted_median_abs_error"], decimals=1),
            "constants fitted on these rows": pct(g["median_abs_error"], decimals=1),
            "target": "none" if target is None else f"<= {TARGETS[target] * 100:.0f} %",
        })
    return out


def source_level_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per source at the all-rows hindsight point: split, rows, its level (the median signed
    error of its rows) and the spread of its rows about that level (median |error| relative to
    the level), largest |level| first (ties by source id)."""
    levels = sorted(report["hindsight"]["sources"], key=lambda s: (-abs(s["level"]), s["source_id"]))
    return [{
        "source": s["source_id"],
        "split": s["split"],
        "rows": s["rows"],
        "level": pct(s["level"], signed=True),
        "spread about the level": pct(s["spread"]),
    } for s in levels]


def loso_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per leave-one-source-out fold: the source left out, its rows, the start whose
    search the fold kept, the median |error| of the left-out rows and the constants fitted
    without them (units as :func:`constants_table`)."""
    consts = report["constants"]
    out = []
    for source, point in report["loso_constants"].items():
        errs = [r["loso_error"] for r in report["rows"] if r["source_id"] == source]
        med = group_stats(errs)["median_abs_error"]
        out.append({
            "source left out": source,
            "rows": len(errs),
            "start kept": report["loso_starts"][source],
            "median |error|": "no prediction" if med is None else pct(med),
            **{name: _value(consts[name], v) for name, v in point.items()},
        })
    return out


def reason(r: Record) -> str:
    """The row's setup features the model is known to handle poorly (or 'none recorded')."""
    return "; ".join(r["suspects"]) or "none recorded"


def worst_rows(report: Mapping[str, Any], split: str = "judge", n: int = 10) -> list[dict[str, Any]]:
    """The ``n`` rows of ``split`` with the largest calibrated |error|, largest first, each with
    its engine, the modelled bound and :func:`reason`."""
    recs = [r for r in report["rows"] if r["split"] == split and r["error_calibrated"] is not None]
    recs.sort(key=lambda r: (-abs(r["error_calibrated"]), r["id"]))
    return [{
        "id": r["id"],
        "model": r["model"],
        "hardware": r["hardware"],
        "GPUs": r["n_gpus"],
        "layout": r["layout"],
        "engine": f"{r['engine']} {r['engine_version']}".strip(),
        "regime": r["regime"],
        "concurrency": "not stated" if r["concurrency"] is None else r["concurrency"],
        "error": pct(r["error_calibrated"], signed=True),
        "modelled bound": r["bound_calibrated"],
        "setup features": reason(r),
    } for r in recs[:n]]


def row_table(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One display row per measurement: setup, measured, predicted (datasheet and fitted
    constants) and the signed errors of the fitted and the LOSO prediction."""
    return [{
        "id": r["id"],
        "source": r["source_id"],
        "split": r["split"],
        "model": r["model"],
        "hardware": r["hardware"],
        "GPUs": r["n_gpus"],
        "layout": r["layout"],
        "engine": r["engine"],
        "regime": r["regime"],
        "concurrency": "-" if r["concurrency"] is None else r["concurrency"],
        "measured": r["measured"],
        "datasheet": "no prediction" if r["predicted_datasheet"] is None else r["predicted_datasheet"],
        "calibrated": "no prediction" if r["predicted_calibrated"] is None else r["predicted_calibrated"],
        "error": pct(r["error_calibrated"], signed=True),
        "LOSO error": pct(r["loso_error"], signed=True),
    } for r in report["rows"]]


def band_factors(report: Mapping[str, Any], which: str = "judge") -> dict[str, float] | None:
    """The prediction band as factors exp(q) on predicted / measured: {low, median, high}."""
    q = report["band"][which]["quantiles"]
    if q is None:
        return None
    lo, mid, hi = (math.exp(v) for v in q.values())
    return {"low": lo, "median": mid, "high": hi}


def scatter_points(report: Mapping[str, Any], which: str) -> list[dict[str, Any]]:
    """Measured and predicted tokens/s per GPU of the predicted rows under ``which``
    ('datasheet' or 'calibrated'), with regime, MoE and split for the markers."""
    return [{
        "id": r["id"], "measured": r["measured"], "predicted": r[f"predicted_{which}"], "error": r[f"error_{which}"],
        "regime": r["regime"], "moe": r["moe"], "split": r["split"],
    } for r in report["rows"] if r[f"predicted_{which}"] is not None]


def n_unpredicted(report: Mapping[str, Any]) -> int:
    """Rows without a calibrated prediction (weights do not fit, ...)."""
    return sum(1 for r in report["rows"] if r["predicted_calibrated"] is None)


__all__ = [
    "TARGET_LABELS", "band_factors", "ceiling_share_table", "ceiling_shares", "constants_table", "doubt_ceiling_table", "doubt_ceilings", "error_direction", "hindsight_table",
    "holdout_group_table", "holdout_ratio_table", "holdout_regime_table",
    "loso_grid_edges", "loso_table", "n_unpredicted", "pct", "readings_table", "reason", "regime_table", "row_table", "run", "scatter_points",
    "second_reading", "softness_reading", "softness_table", "source_level_table", "starts_table", "targets_table", "uniform_format_reading", "worst_rows",
]
