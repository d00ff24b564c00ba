"""Tests for qsmoe.evidence.doubts (the second reading of the measurements), validate without
LOSO, ``qsmoe validate --doubts`` and the chapter's table of readings."""
from __future__ import annotations

import dataclasses
import json

import pytest

from qsmoe.book import report_validation as rv
from qsmoe.cli import main
from qsmoe.errors import QsError
from qsmoe.evidence import calibration as cal
from qsmoe.evidence import doubts as dt
from qsmoe.evidence import measurements as ms
from qsmoe.scenario.headline import ratio_band

from measuredkit import one_source_per_split_and_regime, rows, small_table, values  # noqa: F401 (fixtures)

HEADER = ",".join(dt.COLUMNS)


def _write(tmp_path, *lines: str):
    path = tmp_path / "doubts.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_books_doubts_match_the_table_and_change_only_their_fields(rows) -> None:
    doubts = dt.load_doubts(rows)
    assert doubts, "data/measured/doubts.csv holds no doubt"
    by_id = {r.id: r for r in rows}
    for d in doubts:
        assert getattr(by_id[d.id], d.field) == d.recorded != d.alternative
        assert d.evidence
    second = dt.apply_doubts(rows, doubts)
    assert [r.id for r in second] == [r.id for r in rows]
    changed = {(d.id, d.field): d.alternative for d in doubts}
    for before, after in zip(rows, second):
        for f in dataclasses.fields(ms.Measurement):
            want = changed.get((before.id, f.name), getattr(before, f.name))
            assert getattr(after, f.name) == want, (before.id, f.name)


@pytest.mark.parametrize("line, column", [
    ("ZZ9,kv_dtype,bf16,fp8,x", "id"),
    ("V18,layout,tp,ep,x", "field"),
    ("V18,kv_dtype,fp8,fp8,x", "recorded"),
    ("V18,kv_dtype,bf16,int3,x", "alternative"),
    ("V18,kv_dtype,bf16,bf16,x", "alternative"),
    ("V18,kv_dtype,bf16,fp8,", "evidence"),
])
def test_a_bad_doubt_is_one_error_naming_the_row_and_column(tmp_path, rows, line, column) -> None:
    with pytest.raises(QsError) as err:
        dt.load_doubts(rows, _write(tmp_path, HEADER, line))
    assert f"column '{column}'" in str(err.value) and "\n" not in str(err.value)


def test_a_doubt_file_without_its_columns_or_doubting_twice_is_refused(tmp_path, rows) -> None:
    with pytest.raises(QsError, match="missing column"):
        dt.load_doubts(rows, _write(tmp_path, "id,field,recorded", "V18,kv_dtype,bf16"))
    with pytest.raises(QsError, match="doubted twice"):
        dt.load_doubts(rows, _write(tmp_path, HEADER, "V18,kv_dtype,bf16,fp8,x", "V18,kv_dtype,bf16,fp4,y"))
    with pytest.raises(QsError, match="wrong number of fields"):
        dt.load_doubts(rows, _write(tmp_path, HEADER, "V18,kv_dtype,bf16,fp8,x,extra"))


def test_validate_without_loso_is_the_same_fit_with_no_loso_numbers(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    full, fast = cal.validate(values, few, resamples=0), cal.validate(values, few, resamples=0, loso=False)
    assert {k: c["fitted"] for k, c in fast["constants"].items()} == {k: c["fitted"] for k, c in full["constants"].items()}
    assert [r["error_calibrated"] for r in fast["rows"]] == [r["error_calibrated"] for r in full["rows"]]
    assert fast["summary"]["calibrated"] == full["summary"]["calibrated"]
    assert all(r["loso_error"] is None and r["loso_log_error"] is None for r in fast["rows"])
    assert fast["summary"]["loso"] is None and fast["band"]["loso"] is None
    assert fast["loso_constants"] == {} and fast["loso_starts"] == {}
    assert fast["targets"]["loso_all"] == {"target": cal.TARGETS["loso_all"], "measured": None, "met": False}
    assert full["targets"]["loso_all"]["measured"] is not None
    json.dumps(fast, allow_nan=False)


def test_readings_table_reports_each_reading_and_its_headline_ratio(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    one = next(r for r in few if r.kv_dtype == "bf16")
    recorded = cal.validate(values, few, resamples=0, loso=False)
    doubt = dt.Doubt(one.id, "kv_dtype", "bf16", "fp8", "test")
    second = cal.validate(values, dt.apply_doubts(few, [doubt]), resamples=0, loso=False)
    table = rv.readings_table(values, {"as recorded": recorded, "second reading": second})
    assert [t["reading"] for t in table] == ["as recorded", "second reading"]
    for t, rep in zip(table, (recorded, second)):
        assert t["judge median"] == rv.pct(rep["targets"]["judge_all"]["measured"], decimals=1)
        assert t["MoE judge median"] == rv.pct(rep["targets"]["judge_moe"]["measured"], decimals=1)
        assert list(t)[5:-1] == list(recorded["constants"])
        fitted = {k: c["fitted"] for k, c in rep["constants"].items()}
        ratio = ratio_band(dict(values, **fitted))["ratio"]
        assert t["headline ratio"] == f"{ratio:.2f}x"


def test_validate_doubts_on_the_command_line(tmp_path, capsys, rows, values) -> None:
    few = one_source_per_split_and_regime(rows)
    path = small_table(tmp_path, rows)
    one = next(r for r in few if r.kv_dtype == "bf16")
    doubts = _write(tmp_path, HEADER, f"{one.id},kv_dtype,bf16,fp8,test")
    assert main(["validate", "--measurements", str(path), "--doubts", str(doubts), "--starts", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["starts"]
    loaded = ms.load_measurements(path)
    direct = cal.fit_from_starts(dt.apply_doubts(loaded, dt.load_doubts(loaded, doubts)), values)
    assert out == json.loads(json.dumps(direct))
    for argv, needle in ((["--doubts", str(doubts), "--write-params"], "--write-params"),
                         (["--doubts", str(tmp_path / "none.csv")], "file not found"),
                         (["--doubts"], "is not a row of the measurements")):
        assert main(["validate", "--measurements", str(path), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and needle in err[0]


def test_error_direction_follows_the_sign_of_the_median() -> None:
    assert rv.error_direction(-0.18, "none") == "under-predicted"
    assert rv.error_direction(0.06, "none") == "over-predicted"
    assert rv.error_direction(None, "not predicted") == "not predicted"
