"""Tests for qsmoe.evidence.peers and the committed data/peers files (written by `make peers`)."""
from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest

from qsmoe.errors import QsError
from qsmoe.evidence import peers as pe
from qsmoe.evidence.measurements import load_measurements

# --------------------------------------------------------------------------- the committed files


@pytest.fixture(scope="module")
def table():
    return pe.load_predictions()


def test_every_measured_row_has_a_peer_row(table):
    ids = {r.id for r in table.rows}
    missing = [m.id for m in load_measurements() if m.id not in ids]
    assert not missing, f"rows without peer predictions (rerun make peers): {missing}"


def test_measured_column_matches_the_measurements(table):
    by_id = table.by_id()
    for m in load_measurements():
        if m.id in by_id:
            assert by_id[m.id].measured == pytest.approx(m.tokens_per_s_per_gpu, abs=0.006), m.id


def test_each_peer_predicts_or_says_why(table):
    assert set(table.peers) == {"aiconfigurator", "llm_analysis", "genz"}
    for r in table.rows:
        for p in table.peers:
            v, why = r.values[p], r.reasons[p]
            assert (v is None) != (why == ""), (r.id, p)
            if v is not None:
                assert math.isfinite(v) and v > 0, (r.id, p, v)


def test_every_peer_predicts_some_rows(table):
    assert all(n > 0 for n in pe.coverage(table).values())


def test_meta_records_versions_rules_and_speeds(table):
    meta = pe.load_meta()
    assert meta["versions"]["aiconfigurator"] == "0.12.0"
    assert meta["versions"]["aiconfigurator-core"] == "0.12.0"
    assert meta["versions"]["llm-analysis"] == "0.2.2"
    assert meta["versions"]["genz-llm"] == "0.0.16"
    assert set(meta["mapping_rules"]) == {"aiconfigurator", "llm-analysis", "genz"}
    tools = {s["tool"] for s in pe.speeds(meta)}
    assert {"aiconfigurator", "llm-analysis", "genz", "qsmoe"} <= tools
    assert meta["date"]


# --------------------------------------------------------------------------- a small synthetic CSV

HEADER = "id,model,hardware,regime,measured_tokens_per_s_per_gpu,a_tokens_per_s_per_gpu,a_reason,a_setup,b_tokens_per_s_per_gpu,b_reason,b_setup\n"
ROWS = (
    "R1,m,h,decode,100.00,110.00,,x,50.00,,y\n"
    "R2,m,h,e2e,200.00,,no AMD system,,300.00,,y\n"
    "R3,m,h,e2e,10.00,5.00,,x,,cannot express MLA,\n"
    "R4,m,h,decode,40.00,40.00,,x,60.00,,y\n"
)


def _write(tmp_path, text, name="p.csv"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _meas(rid, regime, value, moe=False, vendor="nvidia", concurrency=None):
    return SimpleNamespace(id=rid, model="m", hardware="h", regime=regime, moe=moe, vendor=vendor,
                           concurrency=concurrency, tokens_per_s_per_gpu=value)


MEAS = [
    _meas("R1", "decode", 100.0, moe=True, concurrency=8),
    _meas("R2", "e2e", 200.0, vendor="amd", concurrency=128),
    _meas("R3", "e2e", 10.0, moe=True),
    _meas("R4", "decode", 40.0, concurrency=64),
    _meas("R5", "decode", 1.0),  # not in the peers' file
]


def test_load_synthetic(tmp_path):
    t = pe.load_predictions(_write(tmp_path, HEADER + ROWS))
    assert t.peers == ("a", "b")
    assert [r.id for r in t.rows] == ["R1", "R2", "R3", "R4"]
    assert t.by_id()["R2"].values == {"a": None, "b": 300.0}
    assert t.by_id()["R3"].reasons["b"] == "cannot express MLA"


def test_join_medians_and_subsets(tmp_path):
    t = pe.load_predictions(_write(tmp_path, HEADER + ROWS))
    q = {"qsmoe": {"R1": 90.0, "R2": 220.0, "R3": 12.0, "R4": None, "R5": 1.5}}
    recs = pe.join(t, MEAS, q)
    assert [r["id"] for r in recs] == ["R1", "R2", "R3", "R4", "R5"]
    assert pe.tools_of(recs) == ["qsmoe", "a", "b"]
    r5 = recs[-1]
    assert r5["predicted"]["a"] is None and r5["reason"]["a"] == pe.MISSING_REASON
    assert recs[0]["error"]["a"] == pytest.approx(0.1)
    # common subset of all three tools: only R1 (R2: a missing, R3: b missing, R4: qsmoe missing)
    assert [r["id"] for r in pe.common_subset(recs)] == ["R1"]
    med = pe.medians(recs)
    assert med["all"]["a"] == {"n": 1, "median_abs_error": pytest.approx(0.1)}
    assert med["all"]["b"]["median_abs_error"] == pytest.approx(0.5)
    assert med["amd"]["a"] == {"n": 0, "median_abs_error": None}
    # each tool on its own rows
    own = pe.medians(recs, common=False)
    assert own["all"]["a"]["n"] == 3  # R1 0.1, R3 0.5, R4 0.0 -> median 0.1
    assert own["all"]["a"]["median_abs_error"] == pytest.approx(0.1)
    assert own["all"]["b"]["n"] == 3  # R1 0.5, R2 0.5, R4 0.5
    assert own["decode"]["b"]["median_abs_error"] == pytest.approx(0.5)
    assert own["conc_le_16"]["qsmoe"]["n"] == 1 and own["conc_ge_64"]["b"]["n"] == 2
    assert own["moe"]["a"]["n"] == 2 and own["dense"]["b"]["n"] == 2
    # two tools only
    assert [r["id"] for r in pe.common_subset(recs, ["a", "b"])] == ["R1", "R4"]


def test_cannot_express_counts(tmp_path):
    extra = "R5,m,h,e2e,1.00,,no AMD system,,2.00,,y\n"
    t = pe.load_predictions(_write(tmp_path, HEADER + ROWS + extra))
    assert pe.cannot_express(t) == {"a": [("no AMD system", 2)], "b": [("cannot express MLA", 1)]}
    assert pe.coverage(t) == {"a": 3, "b": 4}


def test_speeds_from_meta(tmp_path):
    meta = {"speed": {"qsmoe": {"points_per_s": 4000.0, "n_points": 10}, "a": {"points_per_s": 2.5, "n_points": 4}, "b": {"error": "x"}}}
    p = _write(tmp_path, json.dumps(meta), "meta.json")
    assert pe.speeds(pe.load_meta(p)) == [{"tool": "a", "points_per_s": 2.5, "n_points": 4}, {"tool": "qsmoe", "points_per_s": 4000.0, "n_points": 10}]


@pytest.mark.parametrize("text, needle", [
    (HEADER + "R1,m,h,decode,100.00,,,x,50.00,,y\n", "neither a value nor a reason for a"),
    (HEADER + "R1,m,h,decode,100.00,1.00,why,x,50.00,,y\n", "both a value and a reason for a"),
    (HEADER + "R1,m,h,decode,100.00,-3,,x,50.00,,y\n", "finite and positive"),
    (HEADER + "R1,m,h,decode,100.00,nan,,x,50.00,,y\n", "finite and positive"),
    (HEADER + "R1,m,h,decode,100.00,abc,,x,50.00,,y\n", "not a number"),
    (HEADER + "R1,m,h,decode,,1.00,,x,50.00,,y\n", "empty"),
    (HEADER + ROWS + "R1,m,h,decode,1.00,1.00,,x,2.00,,y\n", "duplicate id R1"),
    (HEADER + ",m,h,decode,1.00,1.00,,x,2.00,,y\n", "empty id"),
    (HEADER + "R1,m,h,decode,1.00,1.00,,x,2.00,,y,surplus\n", "more fields than the header"),
    ("id,measured_tokens_per_s_per_gpu,a_tokens_per_s_per_gpu\nR1,1,2\n", "no a_reason column"),
    ("id,a_tokens_per_s_per_gpu,a_reason\nR1,2,\n", "missing column measured_tokens_per_s_per_gpu"),
    ("id,measured_tokens_per_s_per_gpu\nR1,1\n", "no peer columns"),
])
def test_malformed_predictions_raise_one_line(tmp_path, text, needle):
    with pytest.raises(QsError) as err:
        pe.load_predictions(_write(tmp_path, text))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_malformed_meta_raises(tmp_path):
    with pytest.raises(QsError, match="not valid JSON"):
        pe.load_meta(_write(tmp_path, "{", "meta.json"))
    with pytest.raises(QsError, match="not a JSON object"):
        pe.load_meta(_write(tmp_path, "[1]", "meta.json"))
    with pytest.raises(QsError, match="file not found"):
        pe.load_predictions(tmp_path / "absent.csv")
