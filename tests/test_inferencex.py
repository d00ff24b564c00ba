"""The second held-out sample: SemiAnalysis's InferenceX (qsmoe.evidence.inferencex, data/holdout/)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from qsmoe.cli import main
from qsmoe.errors import QsError
from qsmoe.evidence import holdout as ho
from qsmoe.evidence import inferencex as ix
from qsmoe.evidence.measurements import load_measurements
from qsmoe.scenario.params import resolve


def sample_row(**changes: str) -> dict[str, str]:
    """DeepSeek-R1 on 8 MI300Xs with SGLang, attention and experts tensor-parallel, concurrency 4."""
    row = {"id": "x1", "hardware": "mi300x", "framework": "sglang", "model": "dsr1", "precision": "fp8", "spec_method": "none", "disagg": "false",
           "is_multinode": "false", "decode_tp": "8", "decode_ep": "1", "decode_dp_attention": "false", "isl": "1024", "osl": "8192", "conc": "4",
           "image": "lmsysorg/sglang:v0.5.12-rocm700-mi30x", "date": "2026-05-18", "run_url": "https://github.com/x/y/actions/runs/1", "mean_tpot": "0.02",
           "mean_ttft": "0.3"}
    row.update(changes)
    return row


def write(tmp_path: Path, *rows: dict[str, str]) -> Path:
    p = tmp_path / "inferencex.csv"
    with open(p, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(ix.COLUMNS))
        w.writeheader()
        w.writerows(rows)
    return p


@pytest.fixture(scope="module")
def report() -> dict:
    return ix.inferencex_report(resolve().values)


def test_a_row_by_hand(tmp_path: Path) -> None:
    """C / (TPOT * G) = 4 / (0.02 s * 8) = 25 tokens/s per GPU; lengths at 0.9 of the nominal ones."""
    (r,) = ix.read_inferencex(write(tmp_path, sample_row())).rows
    assert (r.model, r.hardware, r.vendor, r.layout, r.n_gpus, r.concurrency) == ("deepseek-v3", "mi300x", "amd", "tp", 8, 4)
    assert (r.weight_dtype, r.kv_dtype, r.regime, r.engine, r.mtp, r.split) == ("fp8", "bf16", "decode", "sglang", "no", "holdout")
    assert r.tokens_per_s_per_gpu == pytest.approx(25.0)
    assert (r.input_len, r.output_len) == (922, 7373) and r.context == pytest.approx(922 + 7373 / 2)
    (r,) = ix.read_inferencex(write(tmp_path, sample_row(framework="trt"))).rows
    assert r.engine == "trtllm"
    assert ix.read_inferencex(write(tmp_path, sample_row())).ttft_s == {"x1": pytest.approx(0.3)}
    assert ix.read_inferencex(write(tmp_path, sample_row(mean_ttft=""))).ttft_s == {}


def test_layout_rules() -> None:
    assert ix.layout_of(8, 1, False) == ("tp", 8)
    assert ix.layout_of(4, 0, False) == ("tp", 4)
    assert ix.layout_of(8, 8, False) == ("tp-ep", 8)
    assert ix.layout_of(8, 8, True) == ("ep", 8)
    assert ix.layout_of(8, 4, False) == "layout"  # experts split both ways
    assert ix.layout_of(8, 1, True) == "layout"
    assert ix.layout_of(0, 1, False) == "layout"
    assert ix.layout_of(16, 1, False) == "gpus"


def test_rows_left_out_are_counted_under_their_reason(tmp_path: Path) -> None:
    p = write(tmp_path, sample_row(), sample_row(id="x2", disagg="true"), sample_row(id="x3", is_multinode="true"), sample_row(id="x4", spec_method="mtp"),
              sample_row(id="x5", model="llama70b"), sample_row(id="x6", hardware="b300"), sample_row(id="x7", precision="bf16"),
              sample_row(id="x8", decode_ep="4"))
    t = ix.read_inferencex(p)
    assert [r.id for r in t.rows] == ["x1"] and t.read == 8
    assert t.left_out == {"mode": 1, "nodes": 1, "mtp": 1, "model": 1, "system": 1, "precision": 1, "layout": 1}
    assert set(t.reasons) == set(ix.REASONS)


@pytest.mark.parametrize("column, value", [("mean_tpot", "abc"), ("mean_tpot", "0"), ("mean_tpot", "inf"), ("mean_tpot", "1e-310"),
                                           ("decode_tp", "-8"), ("conc", "0"), ("disagg", "maybe"), ("decode_dp_attention", ""),
                                           ("mean_ttft", "-0.1")])
def test_malformed_fields_are_named(tmp_path: Path, column: str, value: str) -> None:
    with pytest.raises(QsError) as err:
        ix.read_inferencex(write(tmp_path, sample_row(**{column: value})))
    assert f"row x1, column '{column}'" in str(err.value)


def test_the_shipped_sample_is_read_whole(report: dict) -> None:
    """Every row is read or left out under a named reason; no id is shared with data/measured/ or NVIDIA's sample."""
    left = sum(v["rows"] for v in report["left_out"].values())
    assert len(report["rows"]) + left == report["read"] == 435
    assert set(report["left_out"]) <= set(ix.REASONS)
    ids = {r["id"] for r in report["rows"]}
    assert not ids & {r.id for r in load_measurements()} and not ids & {r.id for r in ho.read_holdout().rows}
    predicted = [r for r in report["rows"] if r["error"] is not None]
    assert report["summary"]["all"]["n"] == len(predicted) > 0 and {r["vendor"] for r in predicted} == {"amd", "nvidia"}
    for r in predicted:
        assert r["error"] == pytest.approx(r["predicted"] / r["measured"] - 1)


def test_cli_sample_choice(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["holdout", "--sample", "inferencex", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "data/holdout/inferencex-deepseek-r1.csv" and out["read"] == 435 and out["ttft"]["n"] > 0
    assert main(["holdout", "--sample", "inferencex", "--file", str(write(tmp_path, sample_row(conc="x")))]) == 2
    err = capsys.readouterr().err
    assert "conc" in err and "Traceback" not in err
