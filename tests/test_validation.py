"""Tests for qsmoe.physics.serve (end-to-end static batches) and qsmoe.evidence.validation (published measurements)."""
from __future__ import annotations

import argparse
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from qsmoe import cli
from qsmoe.scenario.compare import deployment_from
from qsmoe.physics.decode import decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.errors import QsError
from qsmoe.specs.hardware import HardwareSpec
from qsmoe.specs.models import load_model
from qsmoe.scenario.params import resolve
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.physics.serve import comm_time_s, prefill_time, serve
from qsmoe.evidence import validation as val
from qsmoe.cli import validation as cli_validation

# --------------------------------------------------------------------------- fixtures

#: A toy dense model: 1e9 resident parameters (0.1e9 of them the input embedding).
TOY = DecodeProfile(
    name="toy",
    total_params=1e9,
    active_params=1e9,
    resident_routed_params=0.0,
    resident_other_params=1e9,
    resident_attention_params=4e8,
    proj_params=2e8,
    dense_ffn_params=7e8,
    shared_params=0.0,
    head_params=1e8,
    embedding_params=1e8,
    routed_params=0.0,
    n_experts=1,
    top_k=1,
    kv_values_per_token=1000.0,
    attn_flops_per_context_token=2000.0,
    prefill_attn_flops_per_context_token=2000.0,
    kv_head_split=8,
    d_model=1000.0,
    n_blocks=10,
    allreduces_per_step=20,
    moe_layers=0,
)
TOY_HW = HardwareSpec(id="toy", name="toy", vendor="test", hbm_bytes=100e9, hbm_bandwidth_bytes_per_s=1e12, peak_flops_per_s={"bf16": 1e14, "fp8": 2e14}, link_bytes_per_s=1e11, domain_size=8)


def toy_dep(**changes: object) -> Deployment:
    base = dict(hardware=TOY_HW, gpus=1, layout="tp", weight_dtype="bf16", kv_dtype="bf16", mem_efficiency=1.0, compute_efficiency=1.0, step_overhead_s=0.0)
    base.update(changes)
    return Deployment(**base)


@pytest.fixture(scope="module")
def values() -> dict:
    return dict(resolve().values)


@pytest.fixture(scope="module")
def rows() -> list[val.Measurement]:
    return val.load_measurements()


@pytest.fixture(scope="module")
def report(values, rows) -> dict:
    return val.validate(values, rows)


# --------------------------------------------------------------------------- serve


def test_serve_one_output_token_is_the_prefill_alone() -> None:
    """C=2 prompts of I=100 tokens, O=1, by hand (1 GPU, peaks 1e14 bf16, 1 TB/s, all efficiencies 1):
    matmuls 2*(200*(2e8 + 7e8) + 2*1e8) = 3.604e11 FLOPs -> 3.604 ms > weights 2e9 B -> 2 ms;
    attention 2 * 2000 * 100*101/2 FLOPs -> 0.2 us < KV written 200*1000*2 B -> 0.4 us."""
    r = serve(TOY, toy_dep(), 100, 1, 2)
    prefill = 3.604e-3 + 4e-7
    assert r["feasible"] and r["reason"] is None and r["concurrency"] == 2
    assert r["prefill_time_s"] == pytest.approx(prefill, rel=1e-12)
    assert r["decode_time_s"] == 0.0
    assert r["output_tokens_per_s"] == pytest.approx(2 * 1 / prefill, rel=1e-12)
    assert r["bound"] == "prefill"


def test_serve_two_output_tokens_add_one_decode_step_at_context_i_plus_one() -> None:
    """O=2: prefill emits token 1, one decode step (context I + O/2 = 101) emits token 2.
    The step, by hand: weights (2e8 + 1e8 + 7e8) * 2 B -> 2 ms; KV 2 * 1000 * 2 B * 101 -> 0.404 us."""
    r = serve(TOY, toy_dep(), 100, 2, 2)
    step = 2e-3 + 4.04e-7
    assert r["decode_context"] == 101.0
    assert r["decode_step_time_s"] == pytest.approx(step, rel=1e-12)
    assert r["decode_step_time_s"] == pytest.approx(float(step_time(TOY, toy_dep(), 101, 2).total_s), rel=1e-12)
    total = 3.604e-3 + 4e-7 + step
    assert r["output_tokens_per_s"] == pytest.approx(2 * 2 / total, rel=1e-12)
    assert r["output_tokens_per_s_per_gpu"] == r["output_tokens_per_s"]
    with_overhead = serve(TOY, toy_dep(step_overhead_s=1e-3), 100, 2, 2)  # one prefill pass + one step
    assert with_overhead["prefill_time_s"] + with_overhead["decode_time_s"] == pytest.approx(total + 2e-3, rel=1e-12)


def test_mean_decode_step_equals_the_step_at_the_mean_context(values) -> None:
    """The step time is affine in the context, so the average of steps j = 1..O-1 (context I + j)
    is the step at I + O/2, as serve() assumes (checked on a real MoE and dense model)."""
    for model, layout in (("deepseek-v3", "ep"), ("llama-3.1-70b", "tp"), ("mixtral-8x7b", "tp")):
        p = profile_of(load_model(model))
        dep = deployment_from(values, layout)
        i, o, c = 1000, 64, 32
        steps = step_time(p, dep, i + np.arange(1, o), c).total_s
        r = serve(p, dep, i, o, c)
        assert r["decode_time_s"] == pytest.approx(float(steps.sum()), rel=1e-9)


def test_serve_default_concurrency_is_the_largest_batch_at_the_final_context(values) -> None:
    p = profile_of(load_model("llama-3.1-70b"))
    dep = deployment_from(values, "tp")
    r = serve(p, dep, 2048, 2048)
    assert r["feasible"] and r["concurrency"] == r["max_concurrency"] == int(decode(p, dep, 4096).max_batch)
    over = serve(p, dep, 2048, 2048, r["max_concurrency"] + 1)
    assert not over["feasible"] and "exceeds" in over["reason"] and over["output_tokens_per_s"] is None
    forced = serve(p, dep, 2048, 2048, r["max_concurrency"] + 1, enforce_budget=False)
    assert forced["feasible"] and forced["output_tokens_per_s"] > 0


def test_serve_broadcasts_and_rejects_bad_input() -> None:
    arr = serve(TOY, toy_dep(), np.array([100, 100]), np.array([1, 2]), 2)
    assert arr["output_tokens_per_s"][0] == pytest.approx(serve(TOY, toy_dep(), 100, 1, 2)["output_tokens_per_s"])
    assert arr["output_tokens_per_s"][1] == pytest.approx(serve(TOY, toy_dep(), 100, 2, 2)["output_tokens_per_s"])
    for kwargs, name in ((dict(input_len=0), "input_len"), (dict(output_len=1.5), "output_len"), (dict(concurrency=0), "concurrency"), (dict(input_len=float("nan")), "input_len"), (dict(output_len="x"), "output_len")):
        args = dict(input_len=100, output_len=10, concurrency=2) | kwargs
        with pytest.raises(QsError, match=name):
            serve(TOY, toy_dep(), **args)


def test_weights_that_do_not_fit_make_serve_infeasible() -> None:
    big = replace(TOY, resident_other_params=1e12)
    r = serve(big, toy_dep(), 100, 10)
    assert not r["feasible"] and r["reason"] == "weights alone do not fit in HBM" and r["output_tokens_per_s_per_gpu"] is None


@pytest.mark.parametrize("model,layout,gpus", [("deepseek-v3", "ep", 8), ("deepseek-v3", "ep", 64), ("deepseek-v3", "tp", 8), ("llama-3.1-70b", "tp", 4), ("llama-3.1-70b", "dp-tp", 8)])
def test_prefill_comm_uses_the_decode_step_volume(values, model, layout, gpus) -> None:
    """serve.comm_time_s duplicates decode.step_time's link term: keep them equal."""
    p = profile_of(load_model(model))
    dep = deployment_from(dict(values, gpus=gpus), layout)
    b = np.array([1.0, 64.0, 4096.0])
    assert np.allclose(comm_time_s(p, dep, b), step_time(p, dep, 1000.0, b).comm_s, rtol=1e-12, atol=0)
    assert np.all(prefill_time(p, dep, 1000, 4).comm_s == comm_time_s(p, dep, 4000.0))


# --------------------------------------------------------------------------- loading

CSV_HEADER = "id,model,hardware,n_gpus,layout,weight_dtype,kv_dtype,regime,input_len,output_len,context,concurrency,tokens_per_s_per_gpu,split\n"
GOOD_DECODE = "X1,llama-3.1-70b,h200,2,tp,fp8,bf16,decode,1000,200,1100,8,100.5,fit\n"
GOOD_E2E = "X2,mixtral-8x7b,h100-sxm,2,tp,fp8,fp8,e2e,2048,2048,,,5000,judge\n"


def write_csv(tmp_path: Path, *lines: str, header: str = CSV_HEADER) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


def test_the_book_measurements_load(rows) -> None:
    assert len(rows) == 34
    assert len({r.id for r in rows}) == 34
    assert sum(r.split == "fit" for r in rows) == 13 and sum(r.split == "judge" for r in rows) == 21
    assert sum(r.regime == "decode" for r in rows) == 12 and sum(r.moe for r in rows) == 18
    assert sum(r.vendor == "amd" for r in rows) == 6
    m01 = next(r for r in rows if r.id == "M01")
    assert (m01.n_gpus, m01.layout, m01.context, m01.concurrency, m01.input_len) == (144, "ep", 4989.0, None, None)


def test_the_split_column_follows_the_readme_rule(rows) -> None:
    assert val.split_by_rule(rows) == {r.id: r.split for r in rows}


def test_a_small_file_loads(tmp_path) -> None:
    rows = val.load_measurements(write_csv(tmp_path, GOOD_DECODE, GOOD_E2E))
    assert [r.id for r in rows] == ["X1", "X2"]
    assert rows[0].context == 1100.0 and rows[0].concurrency == 8 and rows[1].concurrency is None and rows[1].moe


@pytest.mark.parametrize(
    "line,column,fragment",
    [
        (GOOD_DECODE.replace("llama-3.1-70b", "llama-9"), "model", "unknown model 'llama-9'"),
        (GOOD_DECODE.replace("h200", "tpu-v9"), "hardware", "unknown hardware 'tpu-v9'"),
        (GOOD_DECODE.replace(",2,tp", ",two,tp"), "n_gpus", "'two'"),
        (GOOD_DECODE.replace(",2,tp", ",2.5,tp"), "n_gpus", "whole number"),
        (GOOD_DECODE.replace("100.5", "abc"), "tokens_per_s_per_gpu", "'abc'"),
        (GOOD_DECODE.replace("100.5", "nan"), "tokens_per_s_per_gpu", "finite"),
        (GOOD_DECODE.replace("100.5", "-3"), "tokens_per_s_per_gpu", "> 0"),
        (GOOD_DECODE.replace(",1100,", ",,"), "context", "missing"),
        (GOOD_DECODE.replace(",8,100.5", ",0,100.5"), "concurrency", ">= 1"),
        (GOOD_DECODE.replace(",tp,", ",zz,"), "layout", "'zz'"),
        (GOOD_DECODE.replace("fp8,bf16", "fp7,bf16"), "weight_dtype", "'fp7'"),
        (GOOD_DECODE.replace(",decode,", ",prefill,"), "regime", "'prefill'"),
        (GOOD_DECODE.replace(",fit", ",train"), "split", "'train'"),
        (GOOD_E2E.replace(",2048,2048,", ",2048,,"), "output_len", "missing"),
    ],
)
def test_bad_rows_name_the_row_and_column(tmp_path, line, column, fragment) -> None:
    path = write_csv(tmp_path, line)
    with pytest.raises(QsError) as err:
        val.load_measurements(path)
    msg = str(err.value)
    assert str(path) in msg and "row X" in msg and f"column '{column}'" in msg and fragment in msg
    assert "\n" not in msg


def test_file_level_errors(tmp_path) -> None:
    with pytest.raises(QsError, match="file not found"):
        val.load_measurements(tmp_path / "none.csv")
    with pytest.raises(QsError, match="missing column.*split"):
        val.load_measurements(write_csv(tmp_path, GOOD_DECODE.rsplit(",", 1)[0] + "\n", header=CSV_HEADER.replace(",split", "")))
    with pytest.raises(QsError, match="row X1, column 'id': duplicate"):
        val.load_measurements(write_csv(tmp_path, GOOD_DECODE, GOOD_DECODE))
    with pytest.raises(QsError, match="line 2: wrong number of fields"):
        val.load_measurements(write_csv(tmp_path, "X1,llama-3.1-70b\n"))


# --------------------------------------------------------------------------- prediction


def test_every_row_gets_a_finite_prediction_or_a_reason(report) -> None:
    assert len(report["rows"]) == 34
    for r in report["rows"]:
        for which in ("default", "calibrated"):
            pred, reason = r[f"predicted_{which}"], r[f"reason_{which}"]
            assert (pred is None) != (reason is None), r["id"]
            if pred is not None:
                assert math.isfinite(pred) and pred > 0 and math.isfinite(r[f"error_{which}"])
                assert r[f"error_{which}"] == pytest.approx((pred - r["measured"]) / r["measured"])
    json.dumps(report, allow_nan=False)


def test_an_unpredictable_row_gets_a_reason_and_is_counted(tmp_path, values) -> None:
    rows = val.load_measurements(write_csv(tmp_path, GOOD_DECODE.replace("llama-3.1-70b,h200,2", "llama-3.1-405b,a100-sxm-80gb,1"), GOOD_E2E))
    recs = val.predict_rows(rows, values)
    assert recs[0]["predicted"] is None and recs[0]["reason"] == "weights alone do not fit in HBM"
    stats = val.summarize_errors(recs)
    assert stats["fit"]["all"]["unpredicted"] == 1 and stats["fit"]["all"]["n"] == 0 and stats["fit"]["all"]["median_abs_error"] is None
    assert stats["judge"]["all"]["n"] == 1 and stats["all"]["all"]["unpredicted"] == 1


def test_predictions_are_the_library_functions(rows, values) -> None:
    """Decode rows are decode() at the row's context and batch; e2e rows are serve()."""
    over = dict(values, mem_efficiency=0.7, compute_efficiency=0.5, step_overhead_s=0.002)
    recs = {r["id"]: r for r in val.predict_rows(rows, over, prefill_stalls=False)}
    for row in rows:
        dep = deployment_from(dict(over, hardware=row.hardware, gpus=row.n_gpus, weight_dtype=row.weight_dtype, kv_dtype=row.kv_dtype, comm_overlap=row.comm_overlap), row.layout)
        p = profile_of(load_model(row.model))
        if row.regime == "decode":
            res = decode(p, dep, row.context, row.concurrency)
            if not bool(res.feasible):  # a stated batch beyond the modelled budget is predicted anyway
                assert "exceeds" in recs[row.id]["note"]
                expected = row.concurrency / float(res.step.total_s) / row.n_gpus
            else:
                expected = float(res.tokens_per_s_per_gpu)
        else:
            expected = serve(p, dep, row.input_len, row.output_len, row.concurrency, enforce_budget=False)["output_tokens_per_s_per_gpu"]
        assert recs[row.id]["predicted"] == pytest.approx(expected, rel=1e-9), row.id


def test_comm_overlap_column_is_read_and_used(rows, values) -> None:
    """Rows whose source states compute/communication overlap are predicted with it, and
    overlap never makes a step slower."""
    overlapped = {r.id for r in rows if r.comm_overlap}
    assert overlapped == {"M01", "M02", "M03"}
    with_overlap = {r["id"]: r["predicted"] for r in val.predict_rows(rows, values)}
    without = {r["id"]: r["predicted"] for r in val.predict_rows([replace(r, comm_overlap=False) for r in rows], values)}
    for rid in overlapped:
        assert with_overlap[rid] >= without[rid]
    assert all(with_overlap[r.id] == without[r.id] for r in rows if r.id not in overlapped)


def test_prefill_stalls_only_touch_colocated_serving_decode_rows(rows, values) -> None:
    with_stalls = val.predict_rows(rows, values)
    without = val.predict_rows(rows, values, prefill_stalls=False)
    changed = {a["id"] for a, b in zip(with_stalls, without) if a["predicted"] != b["predicted"]}
    assert changed == {"V03", "V04", "V06", "V07"}  # decode, I and O stated, concurrency > 1
    for a, b in zip(with_stalls, without):
        if a["id"] in changed:
            assert a["predicted"] < b["predicted"] and a["stall_s"] > 0


def test_summary_groups_by_hand() -> None:
    base = dict(split="fit", regime="decode", moe=True, vendor="nvidia", batch_stated=True, context=1.0)
    recs = [dict(base, error=0.1), dict(base, error=-0.3, moe=False), dict(base, error=0.2, regime="e2e", context=None, vendor="amd"), dict(base, error=None, split="judge")]
    s = val.summarize_errors(recs)
    assert s["fit"]["all"]["median_abs_error"] == pytest.approx(0.2) and s["fit"]["all"]["n"] == 3
    assert s["fit"]["decode"]["median_abs_error"] == pytest.approx(0.2)
    assert s["fit"]["decode_stated"]["n"] == 2 and s["fit"]["e2e"]["median_abs_error"] == pytest.approx(0.2)
    assert s["fit"]["dense"]["median_abs_error"] == pytest.approx(0.3) and s["fit"]["amd"]["n"] == 1
    assert s["judge"]["all"] == {"n": 0, "unpredicted": 1, "median_abs_error": None, "mean_abs_error": None, "max_abs_error": None}
    assert s["all"]["all"]["unpredicted"] == 1


# --------------------------------------------------------------------------- calibration


def test_calibration_ignores_judge_rows(rows, values) -> None:
    fitted = val.calibrate(rows, values)
    assert set(val.CALIBRATED) <= set(fitted)
    assert fitted["fit_rows"] == [r.id for r in rows if r.split == "fit"]
    changed = [replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 7.0) if r.split == "judge" else r for r in rows]
    dropped = [r for r in rows if r.split == "fit"]
    assert val.calibrate(changed, values) == fitted
    assert val.calibrate(dropped, values) == fitted
    moved = [replace(r, tokens_per_s_per_gpu=r.tokens_per_s_per_gpu * 3.0) if r.id == "D13" else r for r in rows]
    assert val.calibrate(moved, values) != fitted  # a fit row does move it


def test_calibration_is_on_the_grid_and_beats_the_defaults(report, values) -> None:
    cal = report["constants"]["calibrated"]
    for key in val.CALIBRATED:
        assert cal[key] in val.GRID[key]
    fit_default = [abs(r["log_error_default"]) for r in report["rows"] if r["split"] == "fit"]
    assert report["calibration"]["median_abs_log_error"] <= np.median(fit_default)
    fit_cal = [abs(r["log_error_calibrated"]) for r in report["rows"] if r["split"] == "fit"]
    assert report["calibration"]["median_abs_log_error"] == pytest.approx(float(np.median(fit_cal)), abs=1e-9)


def test_calibration_with_a_small_grid_and_bad_grids(rows, values) -> None:
    fitted = val.calibrate(rows, values, {"mem_efficiency": (0.8,), "compute_efficiency": (0.6,), "step_overhead_s": (0.0, 0.001), "link_efficiency": (0.7, 1.0)})
    assert fitted["mem_efficiency"] == 0.8 and fitted["step_overhead_s"] in (0.0, 0.001) and fitted["link_efficiency"] in (0.7, 1.0)
    with pytest.raises(QsError, match="reserve_fraction"):
        val.calibrate(rows, values, {"reserve_fraction": (0.1,)})
    with pytest.raises(QsError, match="no rows with split == fit"):
        val.calibrate([r for r in rows if r.split == "judge"], values)


def test_validate_is_deterministic(report, values, rows) -> None:
    again = val.validate(values, rows)
    assert json.dumps(again, sort_keys=True, allow_nan=False) == json.dumps(report, sort_keys=True, allow_nan=False)
    assert cli_validation.validation_text(again) == cli_validation.validation_text(report)


# --------------------------------------------------------------------------- command line


def run_cli(argv: list[str], monkeypatch) -> int:
    """cli.main with the serve/validate subcommands registered (whether or not cli does it yet)."""
    original = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "validate" not in sub.choices:
            cli_validation.add_validation_parsers(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    return cli.main(argv)


def test_cli_serve_json(monkeypatch, capsys) -> None:
    rc = run_cli(["serve", "--model", "llama-3.1-8b", "--hardware", "h200", "--gpus", "1", "--input-len", "32", "--output-len", "128", "--concurrency", "8", "--weight-dtype", "bf16", "--json"], monkeypatch)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("feasible", "reason", "concurrency", "prefill_time_s", "decode_time_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "bound"):
        assert key in out
    assert out["feasible"] and out["concurrency"] == 8 and out["layout"] == "tp"
    assert out["output_tokens_per_s"] == pytest.approx(8 * 128 / (out["prefill_time_s"] + out["decode_time_s"]))


def test_cli_serve_text_and_infeasible(monkeypatch, capsys) -> None:
    assert run_cli(["serve", "--model", "deepseek-v3", "--hardware", "h200", "--gpus", "8", "--input-len", "1024", "--output-len", "1024"], monkeypatch) == 0
    assert "output tok/s" in capsys.readouterr().out
    assert run_cli(["serve", "--model", "llama-3.1-405b", "--hardware", "a100-sxm-80gb", "--gpus", "1", "--input-len", "10", "--output-len", "10"], monkeypatch) == 0
    assert "infeasible: weights alone do not fit" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--input-len", "0", "--output-len", "5"], "--input-len"),
        (["--input-len", "5", "--output-len", "x"], "--output-len"),
        (["--input-len", "5", "--output-len", "5", "--concurrency", "-1"], "--concurrency"),
        (["--input-len", "5", "--output-len", "5", "--model", "nope"], "unknown model 'nope'"),
        (["--input-len", "5", "--output-len", "5", "--hardware", "nope"], "unknown hardware 'nope'"),
    ],
)
def test_cli_serve_bad_input_exits_2_with_one_line(monkeypatch, capsys, argv, fragment) -> None:
    base = ["serve", "--model", "llama-3.1-8b", "--hardware", "h200", "--gpus", "1"]
    try:
        rc = run_cli(base + argv, monkeypatch)
    except SystemExit as exc:  # argparse rejects the flag
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1


def test_cli_validate(monkeypatch, capsys, rows) -> None:
    assert run_cli(["validate"], monkeypatch) == 0
    text = capsys.readouterr().out
    assert all(f"\n{r.id} " in text for r in rows) and "Median |error|" in text
    assert run_cli(["validate", "--json"], monkeypatch) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"constants", "calibration", "rows", "summary"} and len(out["rows"]) == 34


def test_cli_validate_bad_file(monkeypatch, capsys, tmp_path) -> None:
    path = write_csv(tmp_path, GOOD_DECODE.replace("h200", "h999"))
    assert run_cli(["validate", "--measurements", str(path)], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "row X1, column 'hardware'" in err and err.count("\n") == 1
