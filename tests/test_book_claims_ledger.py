"""The claims ledger (qsmoe.scenario.claims evidence, worded by qsmoe.book.ch09_claims_ledger)."""
from __future__ import annotations

import math

import pytest
from qsmoe.scenario import analysis
from qsmoe.scenario.compare import scenario
from qsmoe.book import words
from qsmoe.scenario import claims
from qsmoe.book import ch03_fragmentation as ch03
from qsmoe.book import ch09_claims_ledger as ch09

from reportkit import BAD_NUMBER, VARIANTS, _ids, ledger, values  # noqa: F401 (fixtures)


class TestClaimsLedger:
    def test_one_row_per_abstract_claim(self, ledger):
        rows = ledger["rows"]
        assert len(rows) == len(claims.CLAIMS) == len(claims.PAPER_ABSTRACT_CLAIMS)
        assert set(ledger["evidence"]) == set(claims.CLAIMS)
        for i, r in enumerate(rows, start=1):
            assert list(r) == ["claim", "this book's value", "assumptions", "verdict"]
            assert r["claim"].startswith(f"{i}. ")

    @pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
    def test_verdicts_are_computed_from_the_evidence(self, values, variant):
        led = ch09.claims_ledger(dict(values, **variant))
        for row, claim in zip(led["rows"], claims.CLAIMS):
            ev = led["evidence"][claim]
            assert row["verdict"] in claims.VERDICTS
            assert row["verdict"] == ev["verdict"] == claims.verdict(claim, ev)

    @pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
    def test_no_nan_inf_or_none_in_shown_text(self, values, variant):
        led = ch09.claims_ledger(dict(values, **variant))
        for row in led["rows"]:
            for col in ("claim", "this book's value", "assumptions"):
                assert not BAD_NUMBER.search(row[col]), (col, row[col])
        for claim, ev in led["evidence"].items():
            for key, x in ev.items():
                if isinstance(x, float):
                    assert math.isfinite(x), (claim, key, x)

    @pytest.mark.parametrize("variant", [{"gpus": 2, "hardware": "mi355x"}, {"hardware": "a100-sxm-80gb", "gpus": 1}], ids=_ids)
    def test_wording_follows_the_parameters(self, values, variant):
        v = dict(values, **variant)
        led = ch09.claims_ledger(v)
        dep = words.deployment_text(v)
        assert f"{v['gpus']}x {v['hardware']}" in dep
        for row in led["rows"]:
            if "reserve" in row["assumptions"] and row["claim"][0] != "6":
                assert dep in row["assumptions"]
        assert f"fewest {v['hardware']} GPUs" in led["rows"][5]["this book's value"]

    def test_default_point_evidence(self, values, ledger):
        ev = ledger["evidence"]
        hl = ev["headline"]
        assert (hl["model"], hl["context"], hl["paper_ratio"]) == (claims.PAPER_MODEL, claims.PAPER_CONTEXT, 4.5)
        assert hl["ratio"] == pytest.approx(analysis.headline(values)["ratio"])  # default set = paper point
        f = ev["fragmentation"]
        wb = ch03.weight_bytes(values)
        # intensity = 2 x tokens per touched expert / bytes per weight; dense = 2 B / bytes
        assert f["expert_intensity"] == pytest.approx(2 * f["tokens_per_expert"] / wb)
        assert f["dense_intensity"] == pytest.approx(2 * f["dense_batch"] / wb)
        # ridge = peak x eta_c / (bandwidth x eta_m)
        from qsmoe.specs.hardware import load_hardware

        hw = load_hardware(values["hardware"])
        assert f["ridge"] == pytest.approx(hw.peak_for(values["weight_dtype"]) * values[f"compute_efficiency_{hw.vendor}"]
                                           / (hw.hbm_bandwidth_bytes_per_s * values[f"mem_efficiency_{hw.vendor}"]))
        g = ev["generality"]
        assert [m["model"] for m in g["models"]] == list(claims.PAPER_MODELS)
        assert g["evaluated"] == sum(m["evaluated"] for m in g["models"])
        for m in g["models"]:
            if m["ratio"] is not None:
                assert m["disadvantaged"] == (m["ratio"] > 1)
            elif m["evaluated"]:
                assert m["disadvantaged"] == (m["dense_feasible"] and not m["moe_feasible"])

    @pytest.mark.parametrize("q", [0.5, 2.0, 8.0])
    def test_flop_proxy_is_one_over_q(self, values, q):
        fp = claims.flop_proxy_evidence(dict(values, q_rule="explicit", q_explicit=q))
        # the comparator has q x A active parameters, so 6A / (6qA) = 1/q
        assert fp["proxy_ratio"] == pytest.approx(1 / q)
        assert fp["moe_training_flops"] == pytest.approx(6 * scenario(values, claims.PAPER_MODEL).moe.active_params)

    def test_values_name_models_not_ids(self, ledger):
        rows = ledger["rows"]
        name = words.model_name(claims.PAPER_MODEL)
        for row in rows[:2]:
            assert row["this book's value"].startswith(f"{name} at ")
        for model in claims.PAPER_MODELS:
            assert words.model_name(model) in rows[3]["this book's value"]
        for row in rows:
            for model in claims.PAPER_MODELS:
                assert f"{model} " not in row["this book's value"], (model, row["this book's value"])

    def test_one_gpu_leaves_the_quantitative_claims_untested(self, values):
        # DeepSeek-V3 (671 GB of FP8 weights) does not fit one 141 GB H200
        led = ch09.claims_ledger(dict(values, gpus=1))
        verdicts = dict(zip(claims.CLAIMS, (r["verdict"] for r in led["rows"])))
        assert verdicts["headline"] == verdicts["fragmentation"] == verdicts["flop_proxy"] == "not tested"
        assert led["rows"][4]["this book's value"] == "infeasible"
        assert "n/a (MoE infeasible)" in led["rows"][0]["this book's value"]

    def test_headroom_not_tested_when_neither_side_fits(self, values):
        led = ch09.claims_ledger(dict(values, gpus=1))
        ev = led["evidence"]["headroom"]
        assert ev["moe_max_batch"] == ev["dense_max_batch"] == 0  # neither side placed
        assert led["rows"][1]["verdict"] == "not tested"

    def test_headline_row_names_the_paper_when_not_reproduced(self, ledger):
        row, hl = ledger["rows"][4], ledger["evidence"]["headline"]
        assert words.ratio_text(hl["ratio"]) in row["this book's value"]
        if hl["verdict"] != "holds":
            assert "paper: 4.5x" in row["this book's value"]

    def test_infeasibility_not_tested_when_q_too_small(self, values):
        ev = claims.infeasibility_evidence(dict(values, q_rule="explicit", q_explicit=0.5))
        assert ev["moe_min_gpus"] is None and ev["dense_min_gpus"] is None and ev["note"]
        assert claims.verdict("infeasibility", ev) == "not tested"
        row = ch09.claims_ledger(dict(values, q_rule="explicit", q_explicit=0.5))["rows"][5]
        assert row["this book's value"].startswith("not evaluated: ") and ev["note"] in row["this book's value"]

    def test_dense_intensity_is_undefined_when_the_dense_side_cannot_be_placed(self, values):
        f = ch09.claims_ledger(dict(values, gpus=1))["evidence"]["fragmentation"]
        assert f["dense_intensity"] is None
