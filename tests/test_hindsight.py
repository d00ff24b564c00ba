"""Tests for qsmoe.evidence.hindsight (the constants fitted on the rows they are judged on, and
source levels), its table in qsmoe.book.report_validation and its block in ``qsmoe validate``."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from qsmoe.book import report_validation as rv
from qsmoe.cli import main
from qsmoe.evidence import calibration as cal
from qsmoe.evidence import hindsight as hs
from qsmoe.evidence import measurements as ms

from measuredkit import one_source_per_split_and_regime, small_table, values  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def few() -> list[ms.Measurement]:
    return one_source_per_split_and_regime(ms.load_measurements())


@pytest.fixture(scope="module")
def result(values, few) -> dict:
    return hs.hindsight(few, values)


def _objective(values: dict, rows: list[ms.Measurement], point: dict) -> float:
    """The calibration objective's median |ln(pred / meas)| of ``rows`` at ``point``."""
    logs = cal.log_errors(rows, dict(values, **point))
    return cal.objective(logs, np.ones(len(rows)))[1]


def test_each_group_fits_its_own_rows_at_least_as_well_as_the_parameter_sets_constants(values, few, result) -> None:
    fitted = {c.name: values[c.name] for c in cal.active_constants(values)}
    for name, (_, pred) in hs.GROUPS.items():
        rows = [r for r in few if pred(r)]
        g = result["groups"][name]
        assert g["rows"] == len(rows)
        assert g["median_abs_log_error"] == pytest.approx(_objective(values, rows, g["point"]), abs=1e-12)
        assert g["median_abs_log_error"] <= _objective(values, rows, fitted) + 1e-12
        assert g["fitted_median_abs_error"] == pytest.approx(cal.median_abs_error(cal.log_errors(rows, values)), abs=1e-12)


def test_the_judge_groups_fit_their_rows_at_least_as_well_as_the_all_rows_point(values, few, result) -> None:
    everywhere = result["groups"]["all"]["point"]
    for name in ("judge", "judge_moe"):
        rows = [r for r in few if hs.GROUPS[name][1](r)]
        assert result["groups"][name]["median_abs_log_error"] <= _objective(values, rows, everywhere) + 1e-12


def test_hindsight_reads_the_judge_rows_unlike_the_fit(values, few, result) -> None:
    bent = [dataclasses.replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 3.0) if r.split == "judge" else r for r in few]
    again = hs.hindsight(bent, values)
    assert again["groups"]["judge"] != result["groups"]["judge"]


def test_source_levels_and_shape_residuals_by_hand(few) -> None:
    def row(i: int, source: str, split: str) -> ms.Measurement:
        return dataclasses.replace(few[0], id=f"X{i}", source_id=source, split=split)

    rows = [row(0, "b", "judge"), row(1, "a", "fit"), row(2, "a", "fit"), row(3, "a", "fit"), row(4, "b", "judge"), row(5, "c", "fit")]
    logs = [math.log(2.0), math.log(1.1), math.log(1.2), math.log(0.9), math.log(2.0), math.nan]
    levels = hs.source_levels(rows, logs)
    assert [s["source_id"] for s in levels] == ["a", "b"]  # c has no finite error
    a, b = levels
    assert (a["split"], a["rows"], b["split"], b["rows"]) == ("fit", 3, "judge", 2)
    assert a["level"] == pytest.approx(0.1) and b["level"] == pytest.approx(1.0)
    residuals = hs.shape_residuals(rows, logs)
    np.testing.assert_allclose(residuals[:5], [0.0, 0.0, math.log(1.2 / 1.1), math.log(0.9 / 1.1), 0.0], atol=1e-12)
    assert math.isnan(residuals[5])
    assert a["spread"] == pytest.approx(float(np.median([0.0, 1.2 / 1.1 - 1, 1 - 0.9 / 1.1])))
    assert b["spread"] == 0.0


def test_hindsight_is_deterministic_and_json_ready(values, few, result) -> None:
    assert hs.hindsight(few, values) == result
    assert json.loads(json.dumps(result)) == result
    assert set(result["shape_median_abs_error"]) == set(hs.GROUPS)


def test_validate_with_hindsight_uses_the_constants_the_validation_fitted(values, few) -> None:
    off = dict(values, mem_efficiency_nvidia=0.1)  # a parameter set whose constants are not the fitted ones
    report = hs.validate_with_hindsight(off, few, resamples=0, loso=False)
    fitted = {k: c["fitted"] for k, c in report["constants"].items()}
    assert report["hindsight"] == hs.hindsight(few, dict(off, **fitted))
    table = rv.hindsight_table(report)
    assert [t["rows judged"] for t in table] == [label for label, _ in hs.GROUPS.values()]
    assert [t["target"] for t in table] == ["none", f"<= {cal.TARGETS['judge_all'] * 100:.0f} %", f"<= {cal.TARGETS['judge_moe'] * 100:.0f} %"]
    levels = rv.source_level_table(report)
    assert sorted(t["source"] for t in levels) == sorted({r.source_id for r in few})


def test_validate_on_the_command_line_reports_hindsight(tmp_path, capsys) -> None:
    path = small_table(tmp_path, ms.load_measurements())
    assert main(["validate", "--measurements", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["hindsight"]["groups"]) == set(hs.GROUPS)
    assert main(["validate", "--measurements", str(path)]) == 0
    assert "with hindsight" in capsys.readouterr().out


def test_judge_medians_match_the_validation_at_the_fitted_constants(values, few) -> None:
    report = cal.validate(values, few, resamples=0, loso=False)
    fitted = dict(values, **{k: c["fitted"] for k, c in report["constants"].items()})
    got = hs.judge_medians(few, fitted)
    judge = report["summary"]["calibrated"]["judge"]
    assert got == pytest.approx({"judge": judge["all"]["median_abs_error"], "judge_moe": judge["moe"]["median_abs_error"]}, rel=1e-12)
    moved = hs.judge_medians(few, dict(fitted, mem_efficiency_nvidia=0.1))
    assert moved["judge"] != got["judge"]
