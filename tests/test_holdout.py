"""Measurements no fit has used (qsmoe.evidence.holdout, data/holdout/)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from qsmoe.cli import main
from qsmoe.errors import QsError
from qsmoe.evidence import holdout as ho
from qsmoe.evidence.measurements import load_measurements
from qsmoe.scenario.params import resolve

HEADER = list(ho.COLUMNS)


def sample_row(**changes: str) -> dict[str, str]:
    """A DeepSeek-V3 row on 8 H200s, attention and experts tensor-parallel, concurrency 4."""
    row = {"id": "r1", "silicon_data_source": "db-dump; silicon_concurrency=4; workflow_run_id=1", "backend": "sglang", "backend_version": "0.5.9",
           "model_path": "deepseek-ai/DeepSeek-R1", "system": "h200_sxm", "precision": "fp8", "mode": "agg", "isl": "1024", "osl": "1024",
           "batch_size": "4", "tp_size": "8", "pp_size": "1", "attention_dp_size": "1", "moe_tp_size": "8", "moe_ep_size": "1", "silicon_ttft_ms": "200",
           "silicon_tpot_ms": "10"}
    row.update(changes)
    return row


def write(tmp_path: Path, *rows: dict[str, str]) -> Path:
    p = tmp_path / "sample.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=HEADER)
        w.writeheader()
        w.writerows(rows)
    return p


@pytest.fixture(scope="module")
def report() -> dict:
    return ho.holdout_report(resolve().values)


def test_a_row_by_hand(tmp_path: Path) -> None:
    """C / (TPOT * G) = 4 / (0.010 s * 8) = 50 tokens/s per GPU, at context 1024 + 1024 / 2."""
    (r,) = ho.read_holdout(write(tmp_path, sample_row())).rows
    assert (r.model, r.hardware, r.layout, r.n_gpus, r.concurrency) == ("deepseek-v3", "h200", "tp", 8, 4)
    assert (r.weight_dtype, r.kv_dtype, r.regime, r.engine, r.mtp) == ("fp8", "bf16", "decode", "sglang", "no")
    assert r.tokens_per_s_per_gpu == pytest.approx(50.0)
    assert r.context == 1536 and (r.input_len, r.output_len) == (1024, 1024)


def test_layout_rules() -> None:
    assert ho.layout_of(True, 8, 1, 1, 8, 1) == ("tp", 8)
    assert ho.layout_of(True, 1, 1, 8, 1, 8) == ("ep", 8)
    assert ho.layout_of(False, 2, 1, 0, 0, 0) == ("tp", 2)
    assert ho.layout_of(True, 8, 1, 1, 1, 8) == ("tp-ep", 8)
    assert ho.layout_of(True, 8, 1, 0, 0, 8) == ("tp-ep", 8)
    assert ho.layout_of(True, 8, 1, 1, 1, 4) == "layout"  # experts over fewer GPUs than the attention
    assert ho.layout_of(True, 16, 1, 1, 4, 4) == "mixed_experts"
    assert ho.layout_of(True, 36, 1, 1, 36, 1) == "gpus"
    assert ho.layout_of(True, 8, 2, 1, 8, 1) == "pipeline"
    assert ho.layout_of(True, 1, 1, 2, 4, 1) == "layout"


def test_rows_left_out_are_counted_under_their_reason(tmp_path: Path) -> None:
    p = write(tmp_path, sample_row(), sample_row(id="r2", mode="disagg"), sample_row(id="r3", model_path="zhipuai/GLM-5"),
              sample_row(id="r4", system="b300_sxm"), sample_row(id="r5", tp_size="16", moe_tp_size="4", moe_ep_size="4"),
              sample_row(id="r6", tp_size="1", attention_dp_size="8", moe_tp_size="1", moe_ep_size="8", silicon_data_source="db-dump"))
    t = ho.read_holdout(p)
    assert [r.id for r in t.rows] == ["r1"] and t.read == 6
    assert t.left_out == {"mode": 1, "model": 1, "system": 1, "mixed_experts": 1, "concurrency": 1}


def test_attention_dp_takes_the_client_concurrency(tmp_path: Path) -> None:
    """batch_size is per attention-DP rank; the client's concurrency is what C / (TPOT * G) needs."""
    row = sample_row(tp_size="1", attention_dp_size="8", moe_tp_size="1", moe_ep_size="8", batch_size="2",
                     silicon_data_source="db; silicon_concurrency=16")
    (r,) = ho.read_holdout(write(tmp_path, row)).rows
    assert (r.layout, r.n_gpus, r.concurrency) == ("ep", 8, 16)
    assert r.tokens_per_s_per_gpu == pytest.approx(16 / (0.010 * 8))


@pytest.mark.parametrize("column, value", [("silicon_tpot_ms", "abc"), ("silicon_tpot_ms", "0"), ("silicon_tpot_ms", "nan"), ("silicon_tpot_ms", "1e-310"),
                                           ("tp_size", "-8"), ("isl", "0")])
def test_malformed_fields_are_named(tmp_path: Path, column: str, value: str) -> None:
    with pytest.raises(QsError) as err:
        ho.read_holdout(write(tmp_path, sample_row(**{column: value})))
    assert f"row r1, column '{column}'" in str(err.value)


def test_duplicate_ids_and_missing_columns_are_errors(tmp_path: Path) -> None:
    with pytest.raises(QsError, match="duplicate id"):
        ho.read_holdout(write(tmp_path, sample_row(), sample_row()))
    p = tmp_path / "narrow.csv"
    p.write_text("id,backend\nr1,sglang\n", encoding="utf-8")
    with pytest.raises(QsError, match="missing column"):
        ho.read_holdout(p)


def test_the_shipped_sample_is_read_whole(report: dict) -> None:
    """Every row is read or left out under a named reason; none shares an id with data/measured/."""
    left = sum(v["rows"] for v in report["left_out"].values())
    assert len(report["rows"]) + left == report["read"]
    assert set(report["left_out"]) <= set(ho.REASONS)
    assert {r["split"] for r in report["rows"]} == {"holdout"}
    assert not {r["id"] for r in report["rows"]} & {r.id for r in load_measurements()}
    predicted = [r for r in report["rows"] if r["error"] is not None]
    assert report["summary"]["all"]["n"] == len(predicted) and report["summary"]["all"]["unpredicted"] == sum(report["unpredicted"].values())
    assert sum(g["n"] for g in report["groups"]) == len(predicted)


def test_errors_are_the_predictions_against_the_measurements(report: dict) -> None:
    for r in report["rows"][:50]:
        if r["error"] is not None:
            assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)


def _record(moe: bool, measured: float, predicted: float | None, concurrency: int = 8, hardware: str = "h200") -> dict:
    return {"hardware": hardware, "engine": "trtllm", "weight_dtype": "fp8", "input_len": 1024, "output_len": 1024, "concurrency": concurrency,
            "moe": moe, "model": "deepseek-v3" if moe else "llama-3.1-70b", "measured": measured, "predicted": predicted}


def test_ratio_pairs_by_hand() -> None:
    """Geometric means per side over the same rows; a workload with one kind only, or an
    unpredicted row, adds nothing."""
    recs = [_record(True, 10.0, 20.0), _record(True, 40.0, 20.0), _record(False, 60.0, 90.0), _record(False, 60.0, None),
            _record(True, 5.0, 5.0, concurrency=16), _record(False, 7.0, 7.0, hardware="b200")]
    pairs = ho.ratio_pairs(recs)
    assert len(pairs) == 1
    p = pairs[0]
    assert (p["moe_rows"], p["dense_rows"], p["moe_models"], p["dense_models"]) == (2, 1, ["deepseek-v3"], ["llama-3.1-70b"])
    assert p["measured_ratio"] == pytest.approx(60.0 / 20.0) and p["predicted_ratio"] == pytest.approx(90.0 / 20.0)
    assert p["error"] == pytest.approx(0.5) and p["moe_error"] == pytest.approx(0.0) and p["dense_error"] == pytest.approx(0.5)
    s = ho.ratio_summary(pairs + [dict(p, error=-0.1, concurrency=4)])
    assert (s["n"], s["median_abs_error"], s["signed_median_error"], s["within_15"]) == (2, pytest.approx(0.3), pytest.approx(0.2), 0.5)
    assert s["error_quantiles"]["0.05"] == pytest.approx(-0.1 + 0.05 * 0.6) and len(s["groups"]) == 1 and s["groups"][0]["n"] == 2
    assert ho.ratio_summary([])["n"] == 0 and ho.ratio_summary([])["error_quantiles"] is None


def test_the_sample_has_ratio_pairs(report: dict) -> None:
    """Every pair is one workload run with both kinds, and its error is its predicted over its measured ratio."""
    ratios = report["ratios"]
    assert ratios["n"] == len(ratios["pairs"]) > 0 and sum(g["n"] for g in ratios["groups"]) == ratios["n"]
    keys = [tuple(p[k] for k in ho.PAIR_KEYS) for p in ratios["pairs"]]
    assert len(set(keys)) == len(keys) and keys == sorted(keys)
    for p in ratios["pairs"]:
        assert p["error"] == pytest.approx(p["predicted_ratio"] / p["measured_ratio"] - 1)
        assert 1 + p["error"] == pytest.approx((1 + p["dense_error"]) / (1 + p["moe_error"]))


def test_ttft_is_read_and_checked(tmp_path: Path) -> None:
    """The measured TTFT is kept per row (ms -> s); the check divides the model's one-prompt
    prefill by it, and a row without one is not checked."""
    t = ho.read_holdout(write(tmp_path, sample_row(silicon_ttft_ms="250"), sample_row(id="r2", silicon_ttft_ms="")))
    assert t.ttft_s == {"r1": pytest.approx(0.25)}
    got = ho.ttft_check(t, resolve().values)
    from qsmoe.evidence.measurements import profile_for
    from qsmoe.evidence.validation import deployment_of
    from qsmoe.physics.serve import serve_result
    r = t.rows[0]
    res = serve_result(profile_for(r.model), deployment_of(r, resolve().values).with_changes(batching="continuous"), r.input_len, r.output_len, r.concurrency)
    assert got["n"] == 1 and got["median_ratio"] == pytest.approx(float(res.prefill_time_s) / 0.25)
    assert got["low_concurrency"]["n"] == 1 and got["high_concurrency"] == {"n": 0, "median_ratio": None}
    with pytest.raises(QsError, match="silicon_ttft_ms"):
        ho.read_holdout(write(tmp_path, sample_row(silicon_ttft_ms="-1")))


def test_cli_json_and_text(capsys: pytest.CaptureFixture) -> None:
    assert main(["holdout", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "rows" not in out and {"read", "left_out", "summary", "groups", "within_15", "signed_median_error", "ratios", "ttft"} <= set(out)
    assert main(["holdout"]) == 0
    text = capsys.readouterr().out
    assert "rows read" in text and "dense / MoE on" in text and "time to first token" in text


def test_cli_bad_file_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["holdout", "--file", str(write(tmp_path, sample_row(silicon_tpot_ms="x")))]) == 2
    err = capsys.readouterr().err
    assert "silicon_tpot_ms" in err and "Traceback" not in err


def test_chapter_tables_reshape_the_report(report: dict) -> None:
    """One regime line per group with a held-out row, one setup line per predicted group."""
    from qsmoe.book import report_validation as rv
    from qsmoe.evidence.validation import ENGINE_GROUPS, GROUPS

    as_judge = {"summary": {"calibrated": {"judge": report["summary"]}}}
    lines = rv.holdout_regime_table(as_judge, [("held-out sample", report)])
    present = [k for k in {**GROUPS, **ENGINE_GROUPS} if report["summary"][k]["n"] or report["summary"][k]["unpredicted"]]
    assert [line["regime"] for line in lines] == [{**GROUPS, **ENGINE_GROUPS}[k][0] for k in present]
    assert all(line["judge rows"] == line["held-out sample"] for line in lines)
    empty = {"summary": {k: {"n": 0, "unpredicted": 0, "median_abs_error": None} for k in report["summary"]}}
    two = rv.holdout_regime_table(as_judge, [("a", report), ("b", empty)])
    assert [line["regime"] for line in two] == [line["regime"] for line in lines]
    assert all(t["a"] == line["held-out sample"] and t["b"] == "no rows" for t, line in zip(two, lines))
    groups = rv.holdout_group_table(report)
    assert len(groups) == sum(1 for g in report["groups"] if g["n"])
    assert sum(g["rows"] for g in groups) == report["summary"]["all"]["n"]
