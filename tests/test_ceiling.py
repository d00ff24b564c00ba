"""Tests for qsmoe.evidence.ceiling (the most a row's recorded setup gives under any constants),
its fields in the validation report and its line in ``qsmoe validate``."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from qsmoe.book import report_validation as rv
from qsmoe.cli import main
from qsmoe.evidence import calibration as cal
from qsmoe.evidence import ceiling as cl
from qsmoe.evidence import doubts as dt
from qsmoe.evidence.validation import predict_rows

from measuredkit import one_source_per_split_and_regime, rows, small_table, values  # noqa: F401 (fixtures)


#: Every constant and cost the ceiling claims to bound, each with a lower and a higher value: from
#: the ceiling's values, moving any one of them either way must not predict more.
ALTERNATIVES: dict[str, tuple] = {
    **{f"{f}_{v}": (0.3, 1.0) for f in ("mem_efficiency", "compute_efficiency") for v in ("nvidia", "amd")},
    **{k: (0.3, 1.0) for k in ("attention_mem_efficiency", "grouped_gemm_efficiency", "link_efficiency")},
    **{k: (0.0, 1e-5) for k in ("step_overhead_s", "kernel_floor_s", "kernel_launch_s", "allreduce_latency_s", "alltoall_latency_s")},
    "reserve_fraction": (0.0, 0.2),
    "grouped_gemm_block_m": (1, 64),
    "include_comm": (False, True),
    "attention_dtype": ("fp8", "bf16"),
    "roofline_softness": (0.0, 0.62),
}


def test_no_constant_or_cost_predicts_more_than_the_ceiling(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    few += [dataclasses.replace(few[0], id="eager", cuda_graphs=False)]  # a row launched without graphs reads kernel_launch_s
    top = cl.ceilings(few, values)
    assert all(c is not None and math.isfinite(c) and c > 0 for c in top)
    at_ceiling = cl.ceiling_values(values)
    points = [values, dict(values, **cal.datasheet_values())]
    points += [dict(at_ceiling, **{key: v}) for key, alts in ALTERNATIVES.items() for v in alts]
    for point in points:
        for row, c, rec in zip(few, top, predict_rows(few, point)):
            assert rec["predicted"] <= c * (1 + 1e-9), (row.id, rec["predicted"], c)



def test_the_ratio_is_the_measurement_over_the_ceiling(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)[:4]
    doubled = [dataclasses.replace(r, tokens_per_s_per_gpu=2 * r.tokens_per_s_per_gpu) for r in few]
    ratios, twice = cl.ceiling_ratios(few, values), cl.ceiling_ratios(doubled, values)
    assert twice == pytest.approx([2 * x for x in ratios], rel=1e-12)
    assert ratios == pytest.approx([r.tokens_per_s_per_gpu / c for r, c in zip(few, cl.ceilings(few, values))], rel=1e-12)


def test_a_lighter_kv_cache_raises_the_ceiling_of_a_kv_bound_row(values, rows) -> None:
    row = next(r for r in rows if r.id == "N18")  # dense GQA, TP2 on H200, 1024 in / 8192 out: the KV cache caps the batch
    as_bf16, as_fp8 = (cl.ceilings([dataclasses.replace(row, kv_dtype=kv)], values)[0] for kv in ("bf16", "fp8"))
    assert as_fp8 > 1.5 * as_bf16


def test_judge_doubts_rules_out_a_reading_above_the_ceiling(values, rows) -> None:
    row = next(r for r in rows if r.id == "N18")
    recorded = dataclasses.replace(row, kv_dtype="fp8")
    bf16_top = cl.ceilings([dataclasses.replace(row, kv_dtype="bf16")], values)[0]
    fp8_top = cl.ceilings([recorded], values)[0]
    measured = dataclasses.replace(recorded, tokens_per_s_per_gpu=(bf16_top + fp8_top) / 2)  # between the two ceilings
    doubt = dt.Doubt(id=row.id, field="kv_dtype", recorded="fp8", alternative="bf16", evidence="test")
    (got,) = cl.judge_doubts([measured], [doubt], values)
    assert got["ratio_alternative"] > 1 > got["ratio_recorded"]
    assert got["ruled_out"] == ["alternative"]
    high = dataclasses.replace(measured, tokens_per_s_per_gpu=2 * fp8_top)
    assert cl.judge_doubts([high], [doubt], values)[0]["ruled_out"] == ["recorded", "alternative"]


def test_the_books_doubts_are_judged_each_once_and_no_recorded_reading_is_ruled_out(values, rows) -> None:
    doubts = dt.load_doubts(rows)
    judged = cl.judge_doubts(rows, doubts, values)
    assert [(j["id"], j["field"]) for j in judged] == [(d.id, d.field) for d in doubts]
    assert all(j["ratio_recorded"] is not None and j["ratio_alternative"] is not None for j in judged)
    assert [j["id"] for j in judged if "recorded" in j["ruled_out"]] == []


def test_validate_reports_each_rows_ratio_and_the_rows_above(tmp_path, capsys, values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    report = cal.validate(values, few, resamples=0, loso=False)
    assert [r["ceiling_ratio"] for r in report["rows"]] == pytest.approx(cl.ceiling_ratios(few, values), rel=1e-12)
    assert report["above_ceiling"] == [r["id"] for r in report["rows"] if r["ceiling_ratio"] > 1]
    flagged = [r["id"] for r in report["rows"] if any("most its recorded setup gives" in s for s in r["suspects"])]
    assert flagged == report["above_ceiling"]
    above = dataclasses.replace(few[0], tokens_per_s_per_gpu=2 * cl.ceilings(few[:1], values)[0])
    (rec,) = cal.validate(values, [above, *few[1:]], resamples=0, loso=False)["rows"][:1]
    assert rec["ceiling_ratio"] == pytest.approx(2.0) and any("2.00 times the most" in s for s in rec["suspects"])
    path = small_table(tmp_path, rows)
    assert main(["validate", "--measurements", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert isinstance(out["above_ceiling"], list) and all("ceiling_ratio" in r for r in out["rows"])
    assert main(["validate", "--measurements", str(path)]) == 0
    assert "roofline ceiling" in capsys.readouterr().out


def test_the_share_table_gives_each_groups_quantiles_of_the_ratio(values, rows) -> None:
    few = one_source_per_split_and_regime(rows)
    report = cal.validate(values, few, resamples=0, loso=False)
    ratios = [r["ceiling_ratio"] for r in report["rows"]]
    table = {t["group"]: t for t in rv.ceiling_share_table(report)}
    assert table["all rows"]["rows"] == len(ratios)
    assert table["all rows"]["median measured / ceiling"] == f"{float(np.median(ratios)):.2f}"
    decode = [r["ceiling_ratio"] for r in report["rows"] if r["regime"] == "decode"]
    assert table["decode-only"]["rows"] == len(decode) > 0
    assert all(t["rows"] >= 3 for t in rv.ceiling_share_table(report, least_rows=3))


def test_a_ratio_is_above_the_ceiling_only_past_one() -> None:
    assert [cl.above_ceiling(x) for x in (None, 0.5, 1.0, 1.0001)] == [False, False, False, True]
