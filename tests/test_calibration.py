"""Tests for qsmoe.evidence.calibration (fit on fit sources, LOSO, bootstrap, band, parameter
writing), qsmoe.evidence.validation's summaries and qsmoe.book.report_validation."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qsmoe.book import report_validation as rv
from qsmoe.cli import main
from qsmoe.errors import QsError
from qsmoe.evidence import calibration as cal
from qsmoe.evidence import measurements as ms
from qsmoe.evidence import validation as val
from qsmoe.scenario.params import load_params, resolve
from qsmoe.specs.fileio import load_mapping

from measuredkit import one_source_per_split_and_regime, rows, small_table, values  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def report(values, rows) -> dict:
    return cal.validate(values, rows)


def test_a_row_run_without_cuda_graphs_is_predicted_with_the_eager_launch_time(values, rows) -> None:
    row = next(r for r in rows if r.id == "N54")
    assert row.cuda_graphs is False and values["use_cuda_graphs"] is True
    assert val.row_values(row, values)["use_cuda_graphs"] is False
    assert val.row_values(dataclasses.replace(row, cuda_graphs=None), values)["use_cuda_graphs"] is True

    def per_gpu(r: ms.Measurement, v: dict) -> float:
        return val.predict_row(r, val.deployment_of(r, v)).per_gpu

    with_graphs = dataclasses.replace(row, cuda_graphs=True)
    assert per_gpu(row, values) < per_gpu(with_graphs, values)
    floor_only = dict(values, kernel_launch_s=values["kernel_floor_s"])
    assert per_gpu(row, floor_only) == pytest.approx(per_gpu(with_graphs, values), rel=1e-12)
    (rec,) = val.predict_rows([row], values)
    assert rec["cuda_graphs"] is False and any("no CUDA/HIP graphs" in s for s in val.suspects(rec))
    (rec,) = val.predict_rows([with_graphs], values)
    assert not any("no CUDA/HIP graphs" in s for s in val.suspects(rec))


def test_fit_never_reads_judge_rows(values, rows) -> None:
    base = cal.calibrate(rows, values, resamples=0, loso=False)
    bent = [dataclasses.replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 7.0) if r.split == "judge" else r for r in rows]
    again = cal.calibrate(bent, values, resamples=0, loso=False)
    assert {k: c["fitted"] for k, c in again["constants"].items()} == {k: c["fitted"] for k, c in base["constants"].items()}
    assert set(base["fit_rows"]) == {r.id for r in rows if r.split == "fit"}


def test_perturbing_fit_rows_moves_the_fit(values, rows) -> None:
    base = cal.calibrate(rows, values, resamples=0, loso=False)
    bent = [dataclasses.replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 3.0) if r.split == "fit" else r for r in rows]
    again = cal.calibrate(bent, values, resamples=0, loso=False)
    assert again["constants"] != base["constants"]


def test_loso_excludes_the_held_out_source(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    source = sorted({r.source_id for r in few})[0]
    ev = cal.Evaluator(few, values, cal.active_constants(values))
    starts = cal.fit_starts(ev.constants, cal.datasheet_values())
    rest = np.array([i for i, r in enumerate(few) if r.source_id != source])
    expected = cal.fit_best(ev, rest, starts)[0]
    bent = [dataclasses.replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 9.0) if r.source_id == source else r for r in few]
    ev2 = cal.Evaluator(bent, values, ev.constants)
    assert cal.fit_best(ev2, rest, starts)[0] == expected
    loso = cal.leave_one_source_out(ev2, starts)
    assert loso["points"][source] == {c.name: v for c, v in zip(ev.constants, expected)}
    held = [i for i, r in enumerate(few) if r.source_id == source]
    assert np.array_equal(loso["log_errors"][held], ev2.log_errors(expected, np.array(held)))


def test_fit_keeps_the_start_whose_search_stops_lowest(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    ev = cal.Evaluator(few, values, cal.active_constants(values))
    index = np.arange(len(few))
    starts = cal.fit_starts(ev.constants, cal.datasheet_values())
    assert starts[0] == cal.start_point(ev.constants, cal.datasheet_values())
    assert starts[1] == tuple(c.grid[0] for c in ev.constants)
    single = [cal.fit(ev, index, None, s) for s in starts]
    point, score, sweeps, k = cal.fit_best(ev, index, starts)
    assert score == min(r[1] for r in single) and (point, score, sweeps) == single[k]
    assert k == min(j for j, r in enumerate(single) if r[1] == score)
    # a start listed twice ties with itself: the earlier is kept
    assert cal.fit_best(ev, index, [starts[1], starts[1]])[3] == 0
    with pytest.raises(QsError, match="no start"):
        cal.fit_best(ev, index, [])


def test_main_fit_and_each_loso_fold_record_the_start_they_kept(report) -> None:
    assert report["calibration"]["fit_start"] in cal.FIT_STARTS
    assert set(report["loso_starts"]) == set(report["loso_constants"]) == {r["source_id"] for r in report["rows"]}
    assert set(report["loso_starts"].values()) <= set(cal.FIT_STARTS)


def test_fitted_constants_are_on_their_grids_within_their_intervals(report) -> None:
    for name, c in report["constants"].items():
        assert c["fitted"] in c["grid"]
        assert c["low"] <= c["fitted"] <= c["high"], name


def test_validate_is_deterministic(values, rows) -> None:
    # Two runs of the whole pipeline (fit, bootstrap, LOSO, summaries) on a few sources; the full
    # run's reproducibility is checked against the committed fit (default.yaml, bootstrap.csv).
    few = one_source_per_split_and_regime(rows)
    assert {(r.split, r.regime) for r in few} == {(r.split, r.regime) for r in rows}
    first, again = cal.validate(values, few), cal.validate(values, few)
    assert json.dumps(again, sort_keys=True, allow_nan=False) == json.dumps(first, sort_keys=True, allow_nan=False)


def test_default_parameter_set_holds_the_calibrated_constants(report) -> None:
    default = load_params().values
    for name, c in report["constants"].items():
        assert default[name] == c["fitted"], f"{name}: run `qsmoe validate --write-params`"


def test_datasheet_variant_differs_from_default_only_in_the_constants() -> None:
    default, ideal = load_mapping(cal.DEFAULT_PATH), load_mapping(cal.DATASHEET_PATH)
    names = {c.name for c in cal.CONSTANTS}
    assert ideal["name"] == "datasheet"
    assert {k: v for k, v in ideal.items() if k not in names | {"name"}} == {k: v for k, v in default.items() if k not in names | {"name"}}
    load_params(cal.DATASHEET_PATH)


def test_write_params_round_trips(tmp_path, report) -> None:
    d, s = tmp_path / "default.yaml", tmp_path / "datasheet.yaml"
    d.write_text(cal.DEFAULT_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    s.write_text(cal.DATASHEET_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    fitted = {k: 0.55 if c["unit"] == "" else 0.004 for k, c in report["constants"].items()}
    cal.write_params(fitted, d, s)
    got = load_mapping(d)
    assert all(got[k] == v for k, v in fitted.items())
    assert cal.datasheet_values(s) == cal.datasheet_values()


def test_weighted_median_and_objective_by_hand() -> None:
    assert cal.weighted_median(np.array([3.0, 1.0, 2.0]), np.ones(3)) == 2.0
    assert cal.weighted_median(np.array([1.0, 2.0, 10.0]), np.array([1.0, 1.0, 5.0])) == 10.0
    assert cal.objective(np.array([np.nan, 0.1, -0.3]), np.ones(3)) == (1.0, 0.2, 0.2)


def test_band_and_measured_range() -> None:
    band = cal.prediction_band([0.0] * 10 + [None])
    assert band["n"] == 10 and cal.measured_range(100.0, band) == (100.0, 100.0)
    band = cal.prediction_band(list(np.linspace(-1, 1, 101)))
    lo, hi = cal.measured_range(10.0, band)
    assert lo == pytest.approx(10 * np.exp(-0.9)) and hi == pytest.approx(10 * np.exp(0.9))
    assert cal.prediction_band([])["quantiles"] is None


def test_band_coverage_by_hand() -> None:
    band = {"n": 3, "quantiles": {"0.05": -0.5, "0.5": 0.0, "0.95": 0.5}}
    got = cal.band_coverage([-1.0, -0.5, 0.0, 0.2, 0.5, 0.6, 0.9, None, float("nan")], band)
    assert got["n"] == 7 and got["below"] == pytest.approx(1 / 7) and got["above"] == pytest.approx(2 / 7)
    assert got["inside"] == pytest.approx(4 / 7)  # the band's edges count as inside
    assert cal.band_coverage([], band)["inside"] is None and cal.band_coverage([0.1], {"n": 0, "quantiles": None})["inside"] is None


def test_summaries_by_hand() -> None:
    recs = [{"split": "judge", "error": e, "regime": "decode", "moe": True, "layout": "ep", "vendor": "amd", "engine": "sglang",
             "concurrency": 8, "input_len": 1000, "output_len": 100, "context": 1050.0} for e in (0.1, -0.3, None)]
    s = val.summarize_errors(recs)
    assert s["judge"]["moe"] == {"n": 2, "unpredicted": 1, "median_abs_error": pytest.approx(0.2), "mean_abs_error": pytest.approx(0.2), "max_abs_error": 0.3}
    assert s["judge"]["dense"]["n"] == 0 and s["judge"]["dense"]["median_abs_error"] is None
    assert s["fit"]["all"]["n"] == 0 and s["judge"]["low_concurrency"]["n"] == 2 and s["judge"]["long_context"]["n"] == 0


def test_report_shapes(report) -> None:
    assert {"constants", "calibration", "rows", "summary", "band", "targets"} <= set(report)
    assert all(set(t) == {"target", "measured", "met"} for t in report["targets"].values())
    worst = rv.worst_rows(report, n=5)
    assert len(worst) == 5 and all(w["setup features"] for w in worst)
    errs = [abs(r["error_calibrated"]) for r in report["rows"] if r["split"] == "judge" and r["error_calibrated"] is not None]
    assert worst[0]["error"] == rv.pct(max(errs, key=abs) * np.sign([r["error_calibrated"] for r in report["rows"] if r["split"] == "judge" and r["error_calibrated"] is not None and abs(r["error_calibrated"]) == max(errs)][0]), signed=True)
    assert len(rv.row_table(report)) == len(report["rows"])
    assert rv.regime_table(report)[0]["regime"] == "all rows"
    assert len(rv.constants_table(report)) == len(report["constants"])


def test_loso_table_has_one_row_per_fold_with_its_left_out_rows(report) -> None:
    table = rv.loso_table(report)
    by_source = {t["source left out"]: t for t in table}
    assert set(by_source) == set(report["loso_constants"])
    for source, t in by_source.items():
        errs = [abs(r["loso_error"]) for r in report["rows"] if r["source_id"] == source and r["loso_error"] is not None]
        assert t["rows"] == sum(r["source_id"] == source for r in report["rows"])
        assert t["start kept"] == report["loso_starts"][source]
        assert t["median |error|"] == rv.pct(float(np.median(errs)))
        assert set(report["constants"]) <= set(t)


def test_loso_grid_edges_count_the_folds_at_either_end_of_each_grid(report) -> None:
    grids = {"a": {"grid": [0.1, 0.2, 0.3]}, "b": {"grid": [2e-6, 5e-6]}}
    folds = {"s1": {"a": 0.1, "b": 2e-6}, "s2": {"a": 0.2, "b": 5e-6}, "s3": {"a": 0.3, "b": 2e-6}}
    assert rv.loso_grid_edges({"constants": grids, "loso_constants": folds}) == {"a": 2, "b": 3}
    edges = rv.loso_grid_edges(report)
    assert set(edges) == set(report["constants"])
    assert all(0 <= n <= len(report["loso_constants"]) for n in edges.values())


def test_measured_values_show_which_side_of_a_whole_percent_target_they_are() -> None:
    assert rv.pct(0.1951, decimals=1) == "19.5 %" and rv.pct(0.1951) == "20 %"
    assert rv.pct(-0.0449, signed=True, decimals=1) == "-4.5 %" and rv.pct(0.3, signed=True) == "+30 %"
    assert rv.pct(None, decimals=1) == "no rows"


def test_bootstrap_file_holds_the_calibrations_resamples(report) -> None:
    from qsmoe.scenario.bootstrap import load_bootstrap

    points = report["calibration"]["bootstrap"]["points"]
    assert len(points) == cal.BOOTSTRAP_RESAMPLES
    assert load_bootstrap() == points, "run `qsmoe validate --write-params`"


def test_bootstrap_text_round_trips(tmp_path) -> None:
    from qsmoe.scenario.bootstrap import bootstrap_text, load_bootstrap

    points = [{"a": 0.1, "b": 0.002}, {"a": 0.3, "b": 0.0}]
    path = tmp_path / "bootstrap.csv"
    path.write_text(bootstrap_text(points, ["a", "b"], 7), encoding="utf-8")
    assert load_bootstrap(path) == points and "seed 7" in path.read_text(encoding="utf-8")


def test_fit_from_starts_begins_with_the_fit_itself(report, values, rows) -> None:
    (own,) = cal.fit_from_starts(rows, values, starts=("datasheet",))
    assert own["start"] == "datasheet"
    assert own["point"] == {k: c["fitted"] for k, c in report["constants"].items()}
    assert own["fit_median_abs_log_error"] == report["calibration"]["objective"]["median_abs_log_error"]
    assert own["judge_median_abs_error"] == pytest.approx(report["targets"]["judge_all"]["measured"], rel=1e-12)
    assert own["judge_moe_median_abs_error"] == pytest.approx(report["targets"]["judge_moe"]["measured"], rel=1e-12)


def test_evaluator_reuses_a_rows_prediction_across_the_other_vendors_fractions(values, rows, monkeypatch) -> None:
    assert cal.foreign_keys("nvidia") == {"mem_efficiency_amd", "compute_efficiency_amd"}
    few = one_source_per_split_and_regime(rows)
    assert {r.vendor for r in few} == {"nvidia", "amd"}
    consts = cal.active_constants(values)
    ev = cal.Evaluator(few, values, consts)
    index = np.arange(len(few))
    predicted: list[str] = []
    real = cal.log_errors

    def counting(rs, v, **kw):
        predicted.extend(r.id for r in rs)
        return real(rs, v, **kw)

    monkeypatch.setattr(cal, "log_errors", counting)
    for point in cal.random_starts(consts, 3, seed=5):
        direct = real(few, ev.point_values(point), prefill_stalls=True)
        np.testing.assert_array_equal(ev.log_errors(point, index), direct)
        predicted.clear()
        k = next(j for j, c in enumerate(consts) if c.name == "mem_efficiency_amd")
        other = point[:k] + (next(g for g in consts[k].grid if g != point[k]),) + point[k + 1:]
        np.testing.assert_array_equal(ev.log_errors(other, index), real(few, ev.point_values(other), prefill_stalls=True))
        assert sorted(predicted) == sorted(r.id for r in few if r.vendor == "amd")


def test_validate_with_starts_reports_the_restarts_of_fit_from_starts(report, values, rows) -> None:
    assert report["restarts"] is None
    few = one_source_per_split_and_regime(rows)
    with_starts = cal.validate(values, few, resamples=0, starts=cal.STARTS)
    assert with_starts["restarts"] == cal.fit_from_starts(few, values)
    without = cal.validate(values, few, resamples=0)
    assert {k: v for k, v in with_starts.items() if k != "restarts"} == {k: v for k, v in without.items() if k != "restarts"}


def test_grid_starts_by_hand() -> None:
    consts = (cal.Constant("a", "", "", (0.1, 0.2, 0.3, 0.4)), cal.Constant("b", "", "s", (1.0, 2.0, 3.0)))
    assert cal.grid_start(consts, "lowest", {}) == (0.1, 1.0)
    assert cal.grid_start(consts, "highest", {}) == (0.4, 3.0)
    assert cal.grid_start(consts, "middle", {}) == (0.2, 2.0)
    assert cal.grid_start(consts, "datasheet", {"a": 0.26, "b": 2.9}) == (0.3, 3.0)
    with pytest.raises(QsError, match="start"):
        cal.grid_start(consts, "random", {})
    drawn = cal.random_starts(consts, 50)
    assert drawn == cal.random_starts(consts, 50) and drawn != cal.random_starts(consts, 50, seed=1)
    assert all(p[0] in consts[0].grid and p[1] in consts[1].grid for p in drawn)
    assert {p[0] for p in drawn} == set(consts[0].grid)


def test_validate_starts_on_the_command_line(tmp_path, capsys, rows) -> None:
    path = small_table(tmp_path, rows)
    assert main(["validate", "--measurements", str(path), "--starts", "--random-starts", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["starts"]
    assert [r["start"] for r in out] == [*cal.STARTS, "random-1", "random-2"]
    direct = cal.fit_from_starts(ms.load_measurements(path), dict(resolve().values), n_random=2)
    assert out == json.loads(json.dumps(direct))
    for argv, field in ((["--starts", "--write-params"], "--write-params"), (["--random-starts", "2"], "--random-starts"),
                        (["--starts", "--random-starts", "101"], "--random-starts")):
        assert main(["validate", "--measurements", str(path), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and field in err[0]
