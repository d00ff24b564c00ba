"""What the model's form can reach: its constants fitted with hindsight on the rows they are
judged on, and how much of the remaining error is one level per source.

Hindsight fits. The fit of :mod:`qsmoe.evidence.calibration` (same constants, grids, objective
and coordinate search) run on the rows of a group G instead of the fit rows:

    c_G = argmin_c  median_{i in G} |ln(pred_i(c) / meas_i)|

for G = every row, the judge rows, the MoE judge rows (:data:`GROUPS`). The search starts from
the fit's own starts (:func:`qsmoe.evidence.calibration.fit_starts`), from the constants of the
parameter set (the fitted ones) and, for the judge groups, from the all-rows point, so each group's
objective at c_G is never above its objective at any of those points. The median |error| at
c_G is what the model's form gives when its constants are chosen knowing the answers: a judge
median above a target there says that no refit of these constants found by this search meets
it, and that the form (a term, a setup field) must change instead. A hindsight point predicts
nothing and is never written to a parameter set.

Source levels. With x_i = ln(pred_i / meas_i) at the all-rows point, source s has the level

    m_s = median_{i in s} x_i,     shape residual  r_i = x_i - m_s

If one factor per source (an engine release, a setup field shared by a source's rows) carried
the error, the residuals would be small. The median |exp(r_i) - 1| says how much of the error
varies within sources instead, with batch, context, model or accelerator. A source of one row
has no residual (r = 0), so this median understates the within-source error where sources are
small; :func:`source_levels` gives each source's row count.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from qsmoe.evidence.calibration import datasheet_values, evaluator, fit_best, fit_starts, fitted_constants, median_abs_error, validate
from qsmoe.evidence.measurements import Measurement
from qsmoe.evidence.validation import log_errors

#: The rows each hindsight fit chooses its constants on: name -> (label, predicate on a row).
GROUPS: dict[str, tuple[str, Any]] = {
    "all": ("every row", lambda r: True),
    "judge": ("judge rows", lambda r: r.split == "judge"),
    "judge_moe": ("MoE judge rows", lambda r: r.split == "judge" and r.moe),
}


def _levels(rows: Sequence[Measurement], logs: Sequence[float]) -> dict[str, float]:
    """{source_id: m_s}, the median of the source's finite ln(pred / meas) values (a source
    without any is left out)."""
    by: dict[str, list[float]] = {}
    for r, x in zip(rows, logs):
        if math.isfinite(x):
            by.setdefault(r.source_id, []).append(float(x))
    return {source: float(np.median(xs)) for source, xs in by.items()}


def shape_residuals(rows: Sequence[Measurement], logs: Sequence[float]) -> np.ndarray:
    """r_i = x_i - m_s (module docstring) for each row; NaN where x_i is not finite."""
    levels = _levels(rows, logs)
    return np.array([x - levels[r.source_id] if math.isfinite(x) else math.nan for r, x in zip(rows, logs)], dtype=float)


def source_levels(rows: Sequence[Measurement], logs: Sequence[float]) -> list[dict[str, Any]]:
    """Per source (sorted by id): {source_id, split, rows, level (exp(m_s) - 1, signed),
    spread (median |exp(r_i) - 1| over its rows)} of ln(pred / meas) values ``logs``
    (aligned with ``rows``; non-finite values are left out, a source without any is skipped)."""
    levels = _levels(rows, logs)
    residuals = shape_residuals(rows, logs)
    sources = np.array([r.source_id for r in rows])
    split = {r.source_id: r.split for r in rows}
    out = []
    for source in sorted(levels):
        mine = residuals[(sources == source) & np.isfinite(residuals)]
        out.append({"source_id": source, "split": split[source], "rows": int(mine.size), "level": math.expm1(levels[source]),
                    "spread": median_abs_error(mine)})
    return out


def hindsight(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> dict[str, Any]:
    """The hindsight fits and source levels (module docstring) under the parameter set ``values``,
    whose constants are the fitted ones.

    Returns {groups: {name: {label, rows, point {constant: value}, start (index into the starts
    tried), median_abs_log_error (the objective's median at the point), median_abs_error (at the
    point), fitted_median_abs_error (at the parameter set's constants)}}, sources
    (:func:`source_levels` at the all-rows point), shape_median_abs_error {all, judge,
    judge_moe} (median |exp(r_i) - 1| of the shape residuals over each group's rows)}.
    Groups without rows are left out."""
    ev = evaluator(rows, values, prefill_stalls)
    names = [c.name for c in ev.constants]
    fitted = tuple(float(values[n]) for n in names)
    starts = fit_starts(ev.constants, datasheet_values()) + [fitted]
    index = {name: np.array([i for i, r in enumerate(ev.rows) if pred(r)], dtype=int) for name, (_, pred) in GROUPS.items()}
    groups: dict[str, dict[str, Any]] = {}
    points: dict[str, tuple[float, ...]] = {}
    for name, (label, _) in GROUPS.items():
        idx = index[name]
        if idx.size == 0:
            continue
        tried = starts + ([points["all"]] if name != "all" and "all" in points else [])
        point, score, _, k = fit_best(ev, idx, tried)
        points[name] = point
        groups[name] = {
            "label": label, "rows": int(idx.size), "point": dict(zip(names, point)), "start": k,
            "median_abs_log_error": score[1],
            "median_abs_error": median_abs_error(ev.log_errors(point, idx)),
            "fitted_median_abs_error": median_abs_error(ev.log_errors(fitted, idx)),
        }
    everything = index["all"]
    logs = ev.log_errors(points["all"], everything) if "all" in points else np.empty(0)
    residuals = shape_residuals(ev.rows, logs)
    return {
        "groups": groups,
        "sources": source_levels(ev.rows, logs),
        "shape_median_abs_error": {name: median_abs_error(residuals[idx]) for name, idx in index.items() if idx.size},
    }


def judge_medians(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> dict[str, float | None]:
    """{judge, judge_moe}: median |error| of the judge rows and of the MoE judge rows under
    ``values`` (for example the fitted constants with one of them moved along its grid)."""
    out = {}
    for name in ("judge", "judge_moe"):
        chosen = [r for r in rows if GROUPS[name][1](r)]
        out[name] = median_abs_error(log_errors(chosen, values, prefill_stalls=prefill_stalls)) if chosen else None
    return out


def validate_with_hindsight(values: Mapping[str, Any], rows: Sequence[Measurement], **options: Any) -> dict[str, Any]:
    """:func:`qsmoe.evidence.calibration.validate` (``options`` passed on) with the key
    ``hindsight``: :func:`hindsight` under ``values`` with the constants the validation fitted."""
    report = validate(values, rows, **options)
    fitted = fitted_constants(report)
    report["hindsight"] = hindsight(rows, dict(values, **fitted), prefill_stalls=options.get("prefill_stalls", True))
    return report


__all__ = ["GROUPS", "hindsight", "judge_medians", "shape_residuals", "source_levels", "validate_with_hindsight"]
