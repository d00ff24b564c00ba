"""Tests for the chapter-facing report modules: qsmoe.book.report_basics, qsmoe.book.report_inequality,
and qsmoe.book.report_ledger (report_validation: tests/test_calibration.py).

These modules only reshape library results, so the tests check what their docstrings and the
chapters promise: documented thresholds (each branch and both sides of each boundary),
identities between the fields they return (per-GPU = total / GPUs, factors multiply back to
the ratio, HBM segments add up to the HBM), hand-checkable cases, and that the words they
produce agree with the numbers under several parameter sets.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from qsmoe.scenario import analysis
from qsmoe.book import report_basics as rb
from qsmoe.book import report_inequality as ri
from qsmoe.book import report_ledger as rl
from qsmoe.cli import capture
from qsmoe.scenario.compare import scenario
from qsmoe.errors import QsError
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, resolve
from qsmoe.physics.routing import fraction_streamed, tokens_per_expert


#: Parameter variants the wording must follow (deployments far from the default).
VARIANTS = (
    {},
    {"gpus": 2},
    {"hardware": "mi355x"},
    {"gpus": 2, "hardware": "mi355x"},
    {"gpus": 1},
    {"q_rule": "clark"},
    {"q_rule": "author"},
    {"q_rule": "explicit", "q_explicit": 0.5},
    {"moe_layout": "tp"},
    {"weight_dtype": "bf16", "gpus": 4},
    {"hardware": "a100-sxm-80gb", "gpus": 1},
)


def _ids(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "default"


# Numbers shown as text must never read like these.
BAD_NUMBER = re.compile(r"(?i:\bnan\b|\binf\b)|\bNone\b")


@pytest.fixture(scope="module")
def values() -> dict:
    return dict(resolve().values)


@pytest.fixture(scope="module")
def default_yaml() -> dict:
    with open(DEFAULT_PARAMS_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def ledger(values) -> dict:
    return rl.claims_ledger(values)


# ======================================================================================
# report_basics
# ======================================================================================


class TestBasicsConstantsAndWords:
    def test_paper_headline_ratio_is_the_quoted_4_5(self):
        assert rb.PAPER_HEADLINE_RATIO == 4.5
        # ... and it is the number in the abstract sentence the book quotes
        quote = dict(rb.PAPER_ABSTRACT_CLAIMS)["headline"]
        m = re.search(r"a (\d+(?:\.\d+)?)x throughput advantage", quote)
        assert m and float(m.group(1)) == rb.PAPER_HEADLINE_RATIO
        # the ledger uses the same constant
        assert rl.PAPER_RATIO == rb.PAPER_HEADLINE_RATIO

    def test_paper_headline_point_matches_the_quote(self):
        quote = dict(rb.PAPER_ABSTRACT_CLAIMS)["headline"]
        assert "128k" in quote and rb.PAPER_HEADLINE_CONTEXT == 128 * 1024
        assert rb.model_name(rb.PAPER_HEADLINE_MODEL) in quote
        assert (rl.PAPER_MODEL, rl.PAPER_CONTEXT) == (rb.PAPER_HEADLINE_MODEL, rb.PAPER_HEADLINE_CONTEXT)

    def test_abstract_claims_are_distinct_and_nonempty(self):
        names = [n for n, _ in rb.PAPER_ABSTRACT_CLAIMS]
        assert len(set(names)) == len(names) == 7
        assert all(q.strip() and q.endswith(".") for _, q in rb.PAPER_ABSTRACT_CLAIMS)

    @pytest.mark.parametrize("ratio, word", [
        (1.96, "faster"), (4.5, "faster"), (1.002, "faster"),
        (0.5, "slower"), (0.998, "slower"),
        (1.0, "as fast"), (1.0005, "as fast"), (0.9995, "as fast"),
    ])
    def test_faster_word_on_both_sides_of_one(self, ratio, word):
        assert rb.faster_word(ratio) == word

    @pytest.mark.parametrize("value, word", [
        (1.96, "below"), (4.0, "below"), (4.5 * 0.949, "below"),
        (4.5 * 0.951, "close to"), (4.5, "close to"), (4.5 * 1.049, "close to"),
        (4.5 * 1.051, "above"), (9.0, "above"),
    ])
    def test_compared_word_against_the_paper(self, value, word):
        assert rb.compared_word(value, rb.PAPER_HEADLINE_RATIO) == word

    def test_compared_word_tolerance_argument(self):
        assert rb.compared_word(1.2, 1.0, tolerance=0.25) == "close to"
        assert rb.compared_word(1.2, 1.0, tolerance=0.1) == "above"
        assert rb.compared_word(0.8, 1.0, tolerance=0.1) == "below"

    def test_bound_phrase(self):
        assert rb.bound_phrase("compute") == "compute-bound"
        assert rb.bound_phrase("infeasible") == "infeasible"
        for bound in ("weights", "kv", "comm", "overhead"):
            assert rb.bound_phrase(bound).startswith("bound by")
        assert rb.bound_phrase("something-new") == "something-new"  # unknown: passed through

    def test_every_decode_bound_has_a_phrase(self):
        from qsmoe.physics.decode import BOUNDS

        assert set(BOUNDS) <= set(rb.BOUND_PHRASES)

    def test_same_point_as_paper(self, values):
        assert rb.same_point_as_paper(values)
        assert rb.same_point_as_paper(dict(values, headline_context="131072"))
        assert not rb.same_point_as_paper(dict(values, headline_context=65536))
        assert not rb.same_point_as_paper(dict(values, headline_model="grok-1"))

    def test_q_text(self):
        assert rb.q_text(None) == rb.NO_PAIRING
        assert rb.q_text(None, "beats") == rb.NO_PAIRING
        assert rb.q_text(1.234) == "1.23"
        assert rb.q_text(1.234, "beats") == "≥ 1.23"
        assert rb.q_text(1.234, "beats (uninformative)") == "≥ 1.23"
        assert rb.q_text(10.0, "rule", ".1f") == "10.0"

    def test_author_claim_kinds(self, values):
        allowed = {"matches", "beats", "rule", "beats (uninformative)", "none"}
        for m in values["models"]:
            assert rb.author_claim(m) in allowed
            # a model without a pairing names no dense model, and vice versa
            assert (rb.author_claim(m) == "none") == (rb.author_dense_model(m) == "none")
        assert rb.author_claim("no-such-model") == "none"
        assert rb.author_dense_model("no-such-model") == "none"


class TestBasicsParameters:
    def test_param_values_takes_exactly_the_default_keys(self, values, default_yaml):
        ns = dict(values, some_other_global=1, results_dir="x")
        got = rb.param_values(ns)
        assert set(got) == set(default_yaml) - {"name"}
        assert got == {k: values[k] for k in got}

    def test_param_values_names_a_missing_key(self, values):
        ns = {k: v for k, v in values.items() if k != "routing_skew"}
        with pytest.raises(QsError, match="routing_skew"):
            rb.param_values(ns)

    def test_weight_bytes(self, values):
        assert rb.weight_bytes(values) == 1.0  # fp8
        assert rb.weight_bytes(dict(values, weight_dtype="bf16")) == 2.0
        assert rb.weight_bytes(dict(values, weight_dtype="fp4")) == 0.5


class TestBasicsModels:
    def test_model_shape_rejects_dense(self):
        with pytest.raises(QsError):
            rb.model_shape("llama-3.1-70b")

    def test_model_shape_fields(self, values):
        for m in values["models"]:
            s = rb.model_shape(m)
            assert 1 <= s["top_k"] <= s["n_experts"]
            assert s["n_shared"] >= 0

    @pytest.mark.parametrize("model", ["deepseek-v3", "grok-1", "switch-c-2048"])
    def test_component_shares_add_to_100(self, model):
        rows = rb.component_table(model)
        assert math.isclose(sum(r["share_of_total_pct"] for r in rows), 100.0, rel_tol=1e-9)
        assert math.isclose(sum(r["share_of_active_pct"] for r in rows), 100.0, rel_tol=1e-9)
        for r in rows:
            assert 0 <= r["active_params_b"] <= r["total_params_b"] + 1e-12

    def test_published_check_difference(self, values):
        rows = rb.published_check(values["models"])
        assert len(rows) == len(values["models"])
        for r in rows:
            for what in ("total", "active"):
                pub = r[f"{what}_published_b"]
                if pub is None:
                    assert r[f"{what}_diff_pct"] is None
                else:
                    assert r[f"{what}_diff_pct"] == pytest.approx(100 * (r[f"{what}_counted_b"] / pub - 1))


class TestBasicsFragmentation:
    @pytest.mark.parametrize("e, k, f, expected", [
        (2, 1, 0.5, 1.0),                                  # ln(1/2) / ln(1/2)
        (4, 2, 0.75, 2.0),                                 # ln(1/4) / ln(1/2)
        (256, 8, 0.5, math.log(0.5) / math.log(1 - 8 / 256)),
        (8, 8, 0.9, 1.0),                                  # top_k == E: one token touches all
    ])
    def test_batch_for_fraction_uniform(self, e, k, f, expected):
        assert rb.batch_for_fraction(e, k, f) == pytest.approx(expected)

    @pytest.mark.parametrize("skew", [0.0, 0.5, 1.0])
    def test_batch_for_fraction_is_the_root_of_phi(self, skew):
        b = rb.batch_for_fraction(256, 8, 0.6, skew)
        assert float(fraction_streamed(b, 256, 8, skew)) == pytest.approx(0.6, rel=1e-6)

    def test_skew_needs_a_larger_batch(self):
        # concentrated popularity leaves rare experts untouched longer
        assert rb.batch_for_fraction(256, 8, 0.9, 1.0) > rb.batch_for_fraction(256, 8, 0.9, 0.0)

    @pytest.mark.parametrize("f", [0.0, 1.0, -0.1, 1.5])
    def test_batch_for_fraction_rejects_fractions_outside_0_1(self, f):
        with pytest.raises(QsError):
            rb.batch_for_fraction(256, 8, f)

    def test_dense_intensity_and_compute_bound_batch(self):
        assert rb.dense_compute_bound_batch(300.0, 1.0) == 150.0
        assert rb.dense_compute_bound_batch(300.0, 2.0) == 300.0
        np.testing.assert_allclose(rb.dense_ffn_intensity_flops_per_byte([1, 150, 300], 1.0), [2, 300, 600])
        # at B* the dense FFN sits exactly on the ridge
        b = rb.dense_compute_bound_batch(309.0, 0.5)
        assert float(rb.dense_ffn_intensity_flops_per_byte(b, 0.5)) == pytest.approx(309.0)

    def test_expert_compute_bound_batch(self):
        e, k, ridge, w = 256, 8, 300.0, 1.0
        b = rb.expert_compute_bound_batch(e, k, w, ridge)
        # the routed experts reach the ridge: ridge * bytes / 2 tokens per touched expert
        assert float(tokens_per_expert(b, e, k)) == pytest.approx(ridge * w / 2, rel=1e-6)
        # large-B limit B* ~ ridge * bytes * E / (2k) (every expert touched by then)
        assert b == pytest.approx(ridge * w * e / (2 * k), rel=1e-3)
        # an MoE needs far more tokens than a dense FFN to reach the ridge
        assert b > rb.dense_compute_bound_batch(ridge, w)

    def test_ep_imbalance(self):
        b = np.array([1.0, 16.0, 256.0, 4096.0])
        np.testing.assert_allclose(rb.ep_imbalance(b, 256, 8, 1), 1.0)  # one device holds all
        imb = rb.ep_imbalance(b, 256, 8, 8)
        assert np.all(imb >= 1.0 - 1e-12)  # the busiest device carries at least the mean
        assert np.all(rb.ep_imbalance(b, 256, 8, 8, skew=1.0) >= imb - 1e-12)

    def test_fragmentation_curves(self):
        batches = [1, 8, 64, 512]
        rows = rb.fragmentation_curves(["deepseek-v3", "grok-1"], batches, [0.0, 1.0])
        assert len(rows) == 2 * 2 * len(batches)
        for r in rows:
            shape = rb.model_shape(r["model"])
            assert 0 < r["phi"] <= 1
            assert r["experts_touched"] == pytest.approx(r["phi"] * shape["n_experts"])
            # tokens per touched expert x experts touched = token-expert assignments B k
            assert r["tokens_per_expert"] * r["experts_touched"] == pytest.approx(r["batch"] * shape["top_k"])
        # phi grows with the batch
        for m in ("deepseek-v3", "grok-1"):
            phis = [r["phi"] for r in rows if r["model"] == m and r["skew"] == 0.0]
            assert phis == sorted(phis)


class TestBasicsThroughputAndHbm:
    @pytest.mark.parametrize("variant", VARIANTS[:5], ids=_ids)
    def test_headline_throughputs(self, values, variant):
        v = dict(values, **variant)
        rows = rb.headline_throughputs(v)
        assert len(rows) == 2 * len(v["models"])
        for m in v["models"]:
            moe, dense = (next(r for r in rows if r["model"] == m and r["side"] == s) for s in ("MoE", "dense"))
            for r in (moe, dense):
                assert r["context"] == v["headline_context"]
                if r["feasible"]:
                    assert r["batch"] >= 1 and r["tokens_per_s"] > 0 and r["bound"] in rb.BOUND_PHRASES
                else:
                    assert (r["batch"], r["tokens_per_s"], r["bound"]) == (0, 0.0, "infeasible")
            if moe["feasible"] and dense["feasible"]:
                assert moe["ratio"] == pytest.approx(dense["tokens_per_s"] / moe["tokens_per_s"])
            else:
                assert moe["ratio"] is None

    def test_headline_throughputs_other_context(self, values):
        rows = rb.headline_throughputs(values, context=4096)
        assert {r["context"] for r in rows} == {4096}

    @pytest.mark.parametrize("variant", [x for x in VARIANTS if x.get("q_rule") != "explicit"], ids=_ids)
    def test_hbm_stack_sums_to_the_hbm(self, values, variant):
        from qsmoe.specs.hardware import load_hardware

        v = dict(values, **variant)
        hbm_gb = load_hardware(v["hardware"]).hbm_bytes / 1e9
        rows = rb.hbm_stack(v)
        assert len(rows) == 2 * len(v["models"])
        for r in rows:
            assert r["hbm_gb"] == pytest.approx(hbm_gb)
            assert r["reserve_gb"] == pytest.approx(v["reserve_fraction"] * hbm_gb)
            segments = r["replicated_weights_gb"] + r["sharded_weights_gb"] + r["kv_gb"] + r["reserve_gb"]
            assert segments == pytest.approx(r["hbm_gb"], rel=1e-9)
            # clipped weights plus the overflow are the weights needed
            assert r["replicated_weights_gb"] + r["sharded_weights_gb"] + r["weights_overflow_gb"] == pytest.approx(r["weights_needed_gb"], rel=1e-9)
            assert min(r["replicated_weights_gb"], r["sharded_weights_gb"], r["kv_gb"], r["weights_overflow_gb"]) >= 0
            if r["weights_overflow_gb"] > 0:
                assert r["kv_gb"] == 0 and not r["feasible"]

    def test_hbm_capacity_from_datasheets(self, values):
        # H200 141 GB, MI355X 288 GB (data/hardware, quoted datasheets)
        assert {r["hbm_gb"] for r in rb.hbm_stack(values)} == {141.0}
        assert {r["hbm_gb"] for r in rb.hbm_stack(dict(values, hardware="mi355x"))} == {288.0}

    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"moe_layout": "tp"}, {"moe_layout": "dp-tp", "dense_layout": "tp"}], ids=_ids)
    def test_weight_split_matches_the_layout(self, values, variant):
        v = dict(values, **variant)
        sc = scenario(v, "deepseek-v3")
        split = rb.weight_split_per_gpu(v, "deepseek-v3")
        for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
            s = split[side]
            assert s["layout"] == dep.layout
            assert s["replicated"] + s["sharded"] == pytest.approx(s["total"])
            # what each layout replicates (qsmoe.physics.memory): tp nothing, ep the non-expert
            # weights, dp-tp the attention weights
            expected = {"tp": 0.0,
                        "ep": float(prof.resident_other_params) * dep.weight_bytes,
                        "dp-tp": float(prof.resident_attention_params) * dep.weight_bytes}[dep.layout]
            assert s["replicated"] == pytest.approx(expected, rel=1e-6, abs=1e3)

    def test_batch_vs_context(self, values):
        ctx = [4096, 16384, 65536, 131072, 1 << 20]
        rows = rb.batch_vs_context(values, "deepseek-v3", ctx)
        assert len(rows) == 2 * len(ctx)
        for side in ("MoE", "dense"):
            sub = [r for r in rows if r["side"] == side]
            assert [r["context"] for r in sub] == ctx
            batches = [r["max_batch"] for r in sub]
            assert batches == sorted(batches, reverse=True)  # longer context, fewer sequences
            for r in sub:
                assert r["feasible"] == (r["max_batch"] >= 1)
                assert (r["reason"] == "") == r["feasible"]

    def test_batch_vs_context_reason_when_weights_do_not_fit(self, values):
        rows = rb.batch_vs_context(dict(values, gpus=1), "deepseek-v3", [4096])
        moe = next(r for r in rows if r["side"] == "MoE")
        # 671 B parameters in FP8 (671 GB) cannot fit one 141 GB GPU
        assert not moe["feasible"] and "weights" in moe["reason"]

    def test_kv_bytes_per_sequence_is_linear_in_context(self, values):
        a = rb.kv_bytes_per_sequence(values, "deepseek-v3", 8192)
        b = rb.kv_bytes_per_sequence(values, "deepseek-v3", 16384)
        for side in ("MoE", "dense"):
            assert a[side] > 0
            assert b[side] == pytest.approx(2 * a[side])

    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"moe_layout": "tp", "dense_layout": "tp"}], ids=_ids)
    def test_sequences_per_gpu_agrees_with_the_batch(self, values, variant):
        v = dict(values, **variant, models=["deepseek-v3", "qwen3-235b-a22b"])
        ctx = 32768
        for model in v["models"]:
            per_gpu = rb.sequences_per_gpu(v, model, ctx)
            for row in (r for r in rb.hbm_stack(v, ctx) if r["model"] == model):
                n = per_gpu[row["side"]]
                if not row["feasible"]:
                    assert n == 0
                elif row["layout"] == "tp":  # every GPU holds a share of every sequence
                    assert n == row["max_batch"]
                else:  # data-parallel attention: each GPU holds whole sequences
                    assert n * v["gpus"] == row["max_batch"]

    def test_released_context(self):
        assert rb.released_context("deepseek-v3") >= 128 * 1024
        assert rb.released_context("switch-c-2048") >= 0


# ======================================================================================
# report_inequality
# ======================================================================================


class TestPerGpuSweep:
    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"gpus": 2, "hardware": "mi355x"}, {"gpus": 16}], ids=_ids)
    @pytest.mark.parametrize("model", ["deepseek-v3", "switch-c-2048"])
    def test_per_gpu_is_total_over_gpus(self, values, variant, model):
        v = dict(values, **variant)
        rows = ri.per_gpu_sweep(v, model)
        sweep = analysis.context_sweep(v, model)
        assert [r["context"] for r in rows] == list(v["contexts"])
        for r, s in zip(rows, sweep):
            assert {k: r[k] for k in s} == s  # the sweep's fields unchanged
            assert r["context_k"] == r["context"] / 1024
            for side in ("moe", "dense"):
                tps = r[f"{side}_tokens_per_s"]
                if tps is None:
                    assert r[f"{side}_tokens_per_s_per_gpu"] is None
                    assert r[f"{side}_status"] == ri.INFEASIBLE
                else:
                    assert r[f"{side}_tokens_per_s_per_gpu"] == pytest.approx(tps / v["gpus"])
                    assert r[f"{side}_status"] == r[f"{side}_bound"] != ri.INFEASIBLE
            if r["ratio"] is None:
                assert r["ratio_text"] == ri.INFEASIBLE
                assert r["capacity_gain"] is None and r["step_ratio"] is None
            else:
                assert r["ratio_text"] == f"{r['ratio']:.2f}"
                assert r["capacity_gain"] == pytest.approx(r["dense_batch"] / r["moe_batch"])
                assert r["capacity_gain"] * r["step_ratio"] == pytest.approx(r["ratio"])

    def test_infeasible_points_are_marked(self, values):
        # Switch-C's ~1.6 T parameters cannot fit 2 x H200 at any context
        rows = ri.per_gpu_sweep(dict(values, gpus=2), "switch-c-2048")
        assert rows and all(r["moe_status"] == ri.INFEASIBLE and r["ratio_text"] == ri.INFEASIBLE for r in rows)

    def test_explicit_contexts(self, values):
        rows = ri.per_gpu_sweep(values, "deepseek-v3", [1024, 2048])
        assert [r["context"] for r in rows] == [1024, 2048]


class TestRatioFactorsAndSides:
    @pytest.mark.parametrize("variant", [{}, {"gpus": 16}, {"hardware": "mi355x"}, {"q_rule": "clark"}, {"headline_model": "grok-1", "headline_context": 8192}], ids=_ids)
    def test_factors_multiply_back_to_the_ratio(self, values, variant):
        rec = analysis.headline(dict(values, **variant))
        f = ri.ratio_factors(rec)
        assert f is not None and rec["ratio"] is not None
        assert f["batch_ratio"] == pytest.approx(rec["dense"]["batch"] / rec["moe"]["batch"])
        assert f["step_ratio"] == pytest.approx(rec["moe"]["step_time_s"] / rec["dense"]["step_time_s"])
        assert f["batch_ratio"] * f["step_ratio"] == pytest.approx(f["ratio"])
        # the product is the simulated dense/MoE throughput ratio
        assert f["ratio"] == pytest.approx(rec["ratio"])
        assert f["ratio"] == pytest.approx(rec["dense"]["tokens_per_s"] / rec["moe"]["tokens_per_s"])

    def test_factors_none_when_a_side_is_infeasible(self, values):
        rec = analysis.headline(dict(values, gpus=1))
        assert not rec["moe"]["feasible"]
        assert ri.ratio_factors(rec) is None

    @pytest.mark.parametrize("variant", [{}, {"gpus": 1}], ids=_ids)
    def test_headline_sides(self, values, variant):
        v = dict(values, **variant)
        rec = analysis.headline(v)
        rows = ri.headline_sides(rec)
        assert [r["side"] for r in rows] == ["MoE", "dense"]
        for row, key in zip(rows, ("moe", "dense")):
            r = rec[key]
            assert row["layout"] == rec[f"{key}_layout"]
            if r["feasible"]:
                assert row["step time (ms)"] == pytest.approx(r["step_time_s"] * 1e3)
                assert row["tokens/s per GPU"] == pytest.approx(row["tokens/s"] / v["gpus"])
            else:
                for col in ("batch (sequences)", "tokens/s", "tokens/s per GPU", "step time (ms)", "bound"):
                    assert row[col] == ri.INFEASIBLE

    def test_infeasibility_reason(self, values):
        r = ri.infeasibility_reason(dict(values, gpus=1), "deepseek-v3", 4096)
        assert r["moe"] and "weights" in r["moe"]
        ok = ri.infeasibility_reason(values, "deepseek-v3", 4096)
        assert ok == {"moe": None, "dense": None}

    @pytest.mark.parametrize("variant", [{}, {"gpus": 1}, {"moe_layout": "tp"}], ids=_ids)
    def test_attention_time_within_the_step(self, values, variant):
        v = dict(values, **variant)
        rec = analysis.headline(v)
        att = ri.attention_time_ms(v, v["headline_model"], v["headline_context"])
        for side in ("moe", "dense"):
            if rec[side]["feasible"]:
                assert 0 < att[side] <= rec[side]["step_time_s"] * 1e3 * (1 + 1e-9)
            else:
                assert att[side] == 0.0


class TestInequalityPoint:
    def test_terms_are_consistent(self, values):
        p = ri.headline_inequality(values)
        assert p == ri.inequality_point(values, values["headline_model"], values["headline_context"])
        m, w = p["usable_gb"], p["moe_weights_gb"]
        assert p["usable_gb"] == pytest.approx(values["gpus"] * 141.0 * (1 - values["reserve_fraction"]))
        # capacity term: the formula's R with phi = rho = 1
        assert p["capacity_term"] == pytest.approx((m - p["qs_eff"] * w) / (m - w))
        assert 0 < p["phi"] <= 1
        assert p["simulated_ratio"] == pytest.approx(analysis.headline(values)["ratio"])

    def test_none_where_moe_weights_do_not_fit(self, values):
        p = ri.inequality_point(dict(values, gpus=1), "deepseek-v3", 131072)
        assert p["moe_weights_gb"] > p["usable_gb"]
        assert p["capacity_term"] is None and p["threshold"] is None
        assert p["memory_bound_ratio"] is None and p["simulated_ratio"] is None

    def test_phase_points(self, values):
        rows = ri.phase_points(values)
        for r in rows:
            assert r["qs"] == pytest.approx(r["q"] * r["s"])
            assert r["q"] is not None
        # one row per (model, rule) with a value, and only those
        expected = {(m, rule) for m in values["models"] for rule, q in analysis.q_estimates(m).items() if q is not None}
        assert {(r["model"], r["rule"]) for r in rows} == expected


AGREEMENT_RESULT = {"records": [
    {"context": 4096, "gpus": 8, "simulated_disadvantaged": True, "simple": True, "general": True},
    {"context": 4096, "gpus": 16, "simulated_disadvantaged": False, "simple": True, "general": False},
    {"context": 131072, "gpus": 8, "simulated_disadvantaged": True, "simple": False, "general": True},
    {"context": 131072, "gpus": 8, "simulated_disadvantaged": True, "simple": True, "general": True},
    {"context": 131072, "gpus": 16, "simulated_disadvantaged": False, "simple": False, "general": True},
]}


class TestAgreementBy:
    RESULT = AGREEMENT_RESULT

    def test_by_context_hand_counted(self):
        rows = ri.agreement_by_context(self.RESULT)
        assert [r["context"] for r in rows] == [4096, 131072]
        a, b = rows
        assert (a["points"], a["MoE slower (share)"], a["simple form right (share)"], a["general form right (share)"]) == (2, 0.5, 0.5, 1.0)
        assert b["points"] == 3
        assert b["MoE slower (share)"] == pytest.approx(2 / 3)
        assert b["simple form right (share)"] == pytest.approx(2 / 3)
        assert b["general form right (share)"] == pytest.approx(2 / 3)

    def test_by_gpus(self):
        rows = ri.agreement_by(self.RESULT, "gpus")
        assert [(r["gpus"], r["points"]) for r in rows] == [(8, 3), (16, 2)]
        assert rows[0]["general form right (share)"] == 1.0
        assert rows[1]["general form right (share)"] == 0.5


class TestPlacementGrid:
    @pytest.mark.parametrize("variant", [{}, {"weight_dtype": "bf16"}, {"q_rule": "author"}], ids=_ids)
    def test_grid_is_the_feasibility_table_plus_status(self, values, variant):
        v = dict(values, **variant)
        hw, counts = ["h200", "mi355x", "a100-sxm-80gb"], [1, 2, 8, 16, 64]
        grid = ri.placement_grid(v, "switch-c-2048", hw, counts, 4096)
        table = analysis.feasibility_table(v, "switch-c-2048", hw, counts, 4096)
        assert len(grid) == len(table) == len(hw) * len(counts)
        words = {(True, True): "both feasible", (False, True): "only dense feasible",
                 (True, False): "only MoE feasible", (False, False): "neither feasible"}
        for g, t in zip(grid, table):
            assert {k: g[k] for k in t} == t and set(g) == set(t) | {"status"}
            assert g["status"] == words[(g["moe_feasible"], g["dense_feasible"])]
        # the grid spans more than one status (small clusters cannot hold Switch-C)
        assert len({g["status"] for g in grid}) >= 2

    def test_status_labels(self):
        assert ri._status(True, True) == "both feasible"
        assert ri._status(False, True) == "only dense feasible"
        assert ri._status(True, False) == "only MoE feasible"
        assert ri._status(False, False) == "neither feasible"

    def test_resident_weights(self, values):
        r = ri.resident_weights_gb(values, "deepseek-v3")
        # 671 B parameters in FP8 (one byte each) is about 671 GB
        assert r["moe_weights_gb"] == pytest.approx(671, rel=0.01)
        assert r["usable_per_gpu_gb"] == pytest.approx(141 * 0.9)
        # expert parallel: one GPU holds the non-expert weights plus 1/G of the experts
        assert r["moe_weights_gb"] / values["gpus"] < r["moe_weights_per_gpu_gb"] < r["moe_weights_gb"]
        bf16 = ri.resident_weights_gb(dict(values, weight_dtype="bf16"), "deepseek-v3")
        assert bf16["moe_weights_gb"] == pytest.approx(2 * r["moe_weights_gb"])
        assert ri.resident_weights_gb(values, "deepseek-v3", 8192)["moe_kv_per_sequence_gb"] == pytest.approx(2 * r["moe_kv_per_sequence_gb"])


# ======================================================================================
# report_ledger: verdict thresholds
# ======================================================================================


def V(claim: str, **evidence) -> str:
    return rl.verdict(claim, evidence)


class TestVerdictThresholds:
    def test_documented_constants(self):
        assert rl.RATIO_TOLERANCE == 0.10
        assert rl.AGREEMENT_HOLDS == 0.90
        assert rl.AGREEMENT_QUALITATIVE == 0.70
        assert rl.PROXY_MISS_FACTOR == 2.0
        assert rl.TRAINING_FLOPS_PER_PARAM == 6.0
        assert rl.VERDICTS == ("holds", "holds qualitatively", "not reproduced", "not tested")

    @pytest.mark.parametrize("ratio, expected", [
        (4.5, "holds"),
        (4.06, "holds"), (4.94, "holds"),                # just inside +-10 %
        (4.5 * (1 - 0.0999), "holds"), (4.5 * (1 + 0.0999), "holds"),
        (4.04, "not reproduced"), (4.96, "not reproduced"),  # just outside
        (4.5 * (1 - 0.1001), "not reproduced"), (4.5 * (1 + 0.1001), "not reproduced"),
        (1.96, "not reproduced"), (0.5, "not reproduced"), (45.0, "not reproduced"),
        (None, "not tested"),
    ])
    def test_headline(self, ratio, expected):
        assert V("headline", ratio=ratio) == expected

    @pytest.mark.parametrize("intensity, expected", [
        (2.8, "holds"), (308.9, "holds"),
        (309.0, "holds qualitatively"),                  # at the ridge: not below it
        (100.0 + 309.0, "holds qualitatively"),
        (499.9, "holds qualitatively"),
        (500.0, "not reproduced"), (800.0, "not reproduced"),
        (None, "not tested"),
    ])
    def test_fragmentation(self, intensity, expected):
        assert V("fragmentation", expert_intensity=intensity, ridge=309.0, dense_intensity=500.0) == expected

    @pytest.mark.parametrize("moe_kv, dense_kv, moe_b, dense_b, expected", [
        (28.0, 95.0, 24, 80, "holds"),
        (28.0, 95.0, 80, 80, "holds qualitatively"),      # less KV, same batch
        (28.0, 95.0, 90, 80, "holds qualitatively"),
        (95.0, 95.0, 24, 80, "not reproduced"),           # equal KV is not less
        (100.0, 95.0, 24, 80, "not reproduced"),
    ])
    def test_headroom(self, moe_kv, dense_kv, moe_b, dense_b, expected):
        assert V("headroom", moe_kv_gb=moe_kv, dense_kv_gb=dense_kv, moe_max_batch=moe_b, dense_max_batch=dense_b) == expected

    @pytest.mark.parametrize("agree, points, expected", [
        (1.0, 34, "holds"), (0.90, 10, "holds"), (0.9001, 10, "holds"),
        (0.8999, 10, "holds qualitatively"), (0.70, 10, "holds qualitatively"),
        (0.6999, 10, "not reproduced"), (0.0, 10, "not reproduced"),
        (0.0, 0, "not tested"), (1.0, 0, "not tested"),
    ])
    def test_inequality(self, agree, points, expected):
        assert V("inequality", domain_agreement=agree, domain_points=points) == expected

    @pytest.mark.parametrize("dis, ev, expected", [
        (4, 4, "holds"), (1, 1, "holds"),
        (3, 4, "holds qualitatively"), (2, 3, "holds qualitatively"),
        (2, 4, "not reproduced"),                          # half is not a strict majority
        (1, 2, "not reproduced"), (0, 4, "not reproduced"),
        (0, 0, "not tested"),
    ])
    def test_generality(self, dis, ev, expected):
        assert V("generality", disadvantaged=dis, evaluated=ev) == expected

    @pytest.mark.parametrize("moe, dense, expected", [
        (16, 1, "holds"), (9, 8, "holds"),
        (8, 8, "not reproduced"), (1, 8, "not reproduced"),
        (None, 1, "not tested"), (16, None, "not tested"), (None, None, "not tested"),
    ])
    def test_infeasibility(self, moe, dense, expected):
        assert V("infeasibility", moe_min_gpus=moe, dense_min_gpus=dense) == expected

    @pytest.mark.parametrize("proxy, ratio, expected", [
        (0.24, 1.96, "holds"),                  # proxy says MoE faster, simulation says dense
        (2.0, 0.5, "holds"),                    # the other wrong winner
        (2.0, 4.5, "holds qualitatively"),      # right winner, missed by 2.25x
        (0.4, 0.9, "holds qualitatively"),      # right winner (MoE), missed by 2.25x
        (2.0, 2.2, "not reproduced"),           # right winner, close
        (2.0, 4.0, "not reproduced"),           # missed by exactly 2x: not "more than"
        (2.0, 3.99, "not reproduced"),
        (2.0, 4.01, "holds qualitatively"),
        (0.24, None, "not tested"),
    ])
    def test_flop_proxy(self, proxy, ratio, expected):
        assert V("flop_proxy", proxy_ratio=proxy, ratio=ratio) == expected

    def test_unknown_claim(self):
        with pytest.raises(QsError):
            rl.verdict("novelty", {})


# ======================================================================================
# report_ledger: the claims ledger
# ======================================================================================


class TestClaimsLedger:
    def test_one_row_per_abstract_claim(self, ledger):
        rows = ledger["rows"]
        assert len(rows) == len(rl.CLAIMS) == len(rb.PAPER_ABSTRACT_CLAIMS)
        assert set(ledger["evidence"]) == set(rl.CLAIMS)
        for i, r in enumerate(rows, start=1):
            assert list(r) == ["claim", "this book's value", "assumptions", "verdict"]
            assert r["claim"].startswith(f"{i}. ")

    @pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
    def test_verdicts_are_computed_from_the_evidence(self, values, variant):
        led = rl.claims_ledger(dict(values, **variant))
        for row, claim in zip(led["rows"], rl.CLAIMS):
            ev = led["evidence"][claim]
            assert row["verdict"] in rl.VERDICTS
            assert row["verdict"] == ev["verdict"] == rl.verdict(claim, ev)

    @pytest.mark.parametrize("variant", VARIANTS, ids=_ids)
    def test_no_nan_inf_or_none_in_shown_text(self, values, variant):
        led = rl.claims_ledger(dict(values, **variant))
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
        led = rl.claims_ledger(v)
        dep = rl.deployment_text(v)
        assert f"{v['gpus']}x {v['hardware']}" in dep
        for row in led["rows"]:
            if "reserve" in row["assumptions"] and row["claim"][0] != "6":
                assert dep in row["assumptions"]
        assert f"fewest {v['hardware']} GPUs" in led["rows"][5]["this book's value"]

    def test_default_point_evidence(self, values, ledger):
        ev = ledger["evidence"]
        hl = ev["headline"]
        assert (hl["model"], hl["context"], hl["paper_ratio"]) == (rl.PAPER_MODEL, rl.PAPER_CONTEXT, 4.5)
        assert hl["ratio"] == pytest.approx(analysis.headline(values)["ratio"])  # default set = paper point
        f = ev["fragmentation"]
        wb = rb.weight_bytes(values)
        # intensity = 2 x tokens per touched expert / bytes per weight; dense = 2 B / bytes
        assert f["expert_intensity"] == pytest.approx(2 * f["tokens_per_expert"] / wb)
        assert f["dense_intensity"] == pytest.approx(2 * f["dense_batch"] / wb)
        # ridge = peak x eta_c / (bandwidth x eta_m)
        from qsmoe.specs.hardware import load_hardware

        hw = load_hardware(values["hardware"])
        assert f["ridge"] == pytest.approx(hw.peak_for(values["weight_dtype"]) * values["compute_efficiency"]
                                           / (hw.hbm_bandwidth_bytes_per_s * values["mem_efficiency"]))
        g = ev["generality"]
        assert [m["model"] for m in g["models"]] == list(rl.PAPER_MODELS)
        assert g["evaluated"] == sum(m["evaluated"] for m in g["models"])
        for m in g["models"]:
            if m["ratio"] is not None:
                assert m["disadvantaged"] == (m["ratio"] > 1)
            elif m["evaluated"]:
                assert m["disadvantaged"] == (m["dense_feasible"] and not m["moe_feasible"])

    @pytest.mark.parametrize("q", [0.5, 2.0, 8.0])
    def test_flop_proxy_is_one_over_q(self, values, q):
        fp = rl.flop_proxy_evidence(dict(values, q_rule="explicit", q_explicit=q))
        # the comparator has q x A active parameters, so 6A / (6qA) = 1/q
        assert fp["proxy_ratio"] == pytest.approx(1 / q)
        assert fp["moe_training_flops"] == pytest.approx(6 * scenario(values, rl.PAPER_MODEL).moe.active_params)

    def test_one_gpu_leaves_the_quantitative_claims_untested(self, values):
        # DeepSeek-V3 (671 GB of FP8 weights) does not fit one 141 GB H200
        led = rl.claims_ledger(dict(values, gpus=1))
        verdicts = dict(zip(rl.CLAIMS, (r["verdict"] for r in led["rows"])))
        assert verdicts["headline"] == verdicts["fragmentation"] == verdicts["flop_proxy"] == "not tested"
        assert led["rows"][4]["this book's value"] == "infeasible"
        assert "n/a (MoE infeasible)" in led["rows"][0]["this book's value"]

    def test_headroom_not_tested_when_neither_side_fits(self, values):
        led = rl.claims_ledger(dict(values, gpus=1))
        ev = led["evidence"]["headroom"]
        assert ev["moe_max_batch"] == ev["dense_max_batch"] == 0  # neither side placed
        assert led["rows"][1]["verdict"] == "not tested"

    def test_headline_row_names_the_paper_when_not_reproduced(self, ledger):
        row, hl = ledger["rows"][4], ledger["evidence"]["headline"]
        assert rl.ratio_text(hl["ratio"]) in row["this book's value"]
        if hl["verdict"] != "holds":
            assert "paper: 4.5x" in row["this book's value"]

    def test_infeasibility_not_tested_when_q_too_small(self, values):
        ev = rl.infeasibility_evidence(dict(values, q_rule="explicit", q_explicit=0.5))
        assert ev["moe_min_gpus"] is None and ev["dense_min_gpus"] is None and ev["note"]
        assert rl.verdict("infeasibility", ev) == "not tested"
        row = rl.claims_ledger(dict(values, q_rule="explicit", q_explicit=0.5))["rows"][5]
        assert row["this book's value"].startswith("not evaluated: ") and ev["note"] in row["this book's value"]

    def test_dense_intensity_is_undefined_when_the_dense_side_cannot_be_placed(self, values):
        f = rl.claims_ledger(dict(values, gpus=1))["evidence"]["fragmentation"]
        assert f["dense_intensity"] is None

    def test_values_from(self, values):
        assert rl.values_from(dict(values, extra=1)) == values
        with pytest.raises(QsError, match="gpus"):
            rl.values_from({k: v for k, v in values.items() if k != "gpus"})


class TestLedgerHelpers:
    def test_ratio_text(self):
        assert rl.ratio_text(None) == "infeasible"
        assert rl.ratio_text(1.956) == "1.96x"
        assert rl.ratio_text(4.5, ".1f") == "4.5x"

    def test_deployment_text(self, values):
        assert rl.deployment_text(values) == "8x h200, fp8 weights, bf16 KV, reserve 10%, q by geomean, moe_attention dense"

    def test_sensitivity_summary(self):
        rows = [
            {"parameter": "gpus", "value": "8", "ratio": 2.0},
            {"parameter": "gpus", "value": "16", "ratio": 1.5},
            {"parameter": "gpus", "value": "1", "ratio": None},
            {"parameter": "skew", "value": "0", "ratio": 1.9},
            {"parameter": "skew", "value": "1", "ratio": 1.95},
            {"parameter": "arch", "value": "x", "ratio": None},
        ]
        out = rl.sensitivity_summary(rows)
        assert [r["parameter"] for r in out] == ["gpus", "skew", "arch"]  # largest swing first
        g = out[0]
        assert (g["lowest"], g["lowest at"], g["highest"], g["highest at"], g["infeasible"]) == ("1.50x", "16", "2.00x", "8", "1")
        assert g["span"] == pytest.approx(0.5)
        assert out[1]["span"] == pytest.approx(0.05) and out[1]["infeasible"] == ""
        assert (out[2]["lowest"], out[2]["span"], out[2]["infeasible"]) == ("infeasible", 0.0, "x")

    def test_search_summary(self):
        rows = [
            {"gpus": "8", "hw": "h200", "ratio": 4.2, "within_target": True},
            {"gpus": "16", "hw": "h200", "ratio": 4.96, "within_target": False},
            {"gpus": "4", "hw": "h200", "ratio": 0.9, "within_target": False},
            {"gpus": "1", "hw": "h200", "ratio": None, "within_target": False},
        ]
        s = rl.search_summary(rows)
        assert (s["points"], s["feasible"], s["infeasible"], s["within"], s["above_one"]) == (4, 3, 1, 1, 2)
        assert s["best_ratio"] == 4.96 and s["best"] == {"gpus": "16", "hw": "h200"}
        assert s["best_text"] == "gpus=16, hw=h200"
        empty = rl.search_summary([])
        assert (empty["points"], empty["best_ratio"], empty["best_text"]) == (0, None, "none feasible")

    def test_typed_changes(self):
        grid = {"gpus": [8, 16], "mem_efficiency": [0.7, 0.8], "include_comm": [True, False]}
        assert rl.typed_changes(grid, {"gpus": "16", "mem_efficiency": "0.8", "include_comm": "False"}) == {"gpus": 16, "mem_efficiency": 0.8, "include_comm": False}
        with pytest.raises(QsError):
            rl.typed_changes(grid, {"gpus": "32"})

    @pytest.mark.parametrize("variant", [{}, {"gpus": 16}, {"hardware": "mi355x"}, {"dense_arch": "llama_gqa"}], ids=_ids)
    def test_ratio_ceiling(self, values, variant):
        v = dict(values, **variant)
        c = rl.ratio_ceiling(v)
        assert c["ratio"] == pytest.approx(analysis.headline(v)["ratio"])
        assert c["qs_eff"] == pytest.approx(c["dense_weights_tb"] / c["moe_weights_tb"])
        assert c["moe_weight_share"] == pytest.approx(c["moe_weights_tb"] / c["usable_hbm_tb"])
        if c["capacity_lever"] is not None:
            m, w, wd = c["usable_hbm_tb"], c["moe_weights_tb"], c["dense_weights_tb"]
            assert c["capacity_lever"] == pytest.approx((m - wd) / (m - w))
        # documented ceiling: no layout lets the dense model beat its attention-compute bound
        if c["dense_tokens_per_s"] is not None:
            assert c["dense_tokens_per_s"] <= c["dense_attention_cap_tokens_per_s"] * (1 + 1e-9)
            assert c["attention_cap_ratio"] == pytest.approx(c["dense_attention_cap_tokens_per_s"] / c["moe_tokens_per_s"])


class TestParameterDocs:
    def test_covers_every_key_of_default_yaml(self, default_yaml):
        docs = rl.parameter_docs()
        for key in default_yaml:
            assert key in docs, key
            assert docs[key]["section"], key
            assert docs[key]["meaning"], key
        for key in ("param_set_name", "param_set_hash", "git_commit", "results_dir"):
            assert docs[key]["section"].startswith("Provenance")

    def test_sections_and_meanings_from_comments(self):
        docs = rl.parameter_docs()
        assert docs["name"]["section"] == docs["description"]["section"] == "Identity"
        assert docs["hardware"]["section"] == docs["gpus"]["section"] == "Deployment"
        assert docs["gpus"]["meaning"] == "GPUs per model replica"
        assert docs["routing_skew"]["section"] == "Routing"
        assert docs["q_rule"]["section"] == "Quality equivalence"
        assert docs["mem_efficiency"]["section"].startswith("Achievable fractions")
        assert docs["models"]["section"] == "What the book evaluates"
        # a key with both an EXTRA_MEANINGS entry and an inline comment keeps both
        assert docs["headline_context"]["meaning"] == "context length of the headline comparison (tokens)"

    def test_parser_on_a_hand_written_file(self, tmp_path):
        p = tmp_path / "set.yaml"
        p.write_text(
            "# header comment, not a section\n"
            "name: x\n"
            "description: >-\n"
            "  folded line: with a colon\n"
            "\n"
            "# First\n"
            "alpha: 1   # the alpha\n"
            "beta: [1, 2]\n"
            "\n"
            "# Second\n"
            "# (more about it)\n"
            "gamma: true  # gamma # with a hash\n",
            encoding="utf-8",
        )
        docs = rl.parameter_docs(p)
        assert docs["name"]["section"] == "Identity"
        assert docs["alpha"] == {"section": "First", "meaning": "the alpha"}
        assert docs["beta"] == {"section": "First", "meaning": ""}
        assert docs["gamma"] == {"section": "Second", "meaning": "gamma # with a hash"}
        assert "folded line" not in docs  # continuation lines are not keys

    def test_parameter_rows_and_changed_keys(self, values):
        assert rl.changed_keys(values) == []
        # numbers compare as numbers
        assert rl.changed_keys(dict(values, reserve_fraction=0.1, step_overhead_s=0, gpus=8.0)) == []
        v = dict(values, gpus=2, hardware="mi355x")
        assert sorted(rl.changed_keys(v)) == ["gpus", "hardware"]
        rows = {r["key"]: r for r in rl.parameter_rows(v)}
        assert set(rows) == set(v)
        assert (rows["gpus"]["this build"], rows["gpus"]["default"]) == ("2", "8")
        assert (rows["hardware"]["this build"], rows["hardware"]["default"]) == ("mi355x", "h200")
        assert rows["contexts"]["this build"] == "4096, 8192, 16384, 32768, 65536, 131072"
        assert rows["include_comm"]["this build"] == "true"
        assert "mi355x" in rows["hardware"]["accepted values"]

    def test_defaults_are_accepted_values(self, values):
        for key, accepted in rl.allowed_values().items():
            assert rl.value_text(values[key]) in accepted.split(", "), key

    def test_value_text(self):
        assert rl.value_text(True) == "true" and rl.value_text(False) == "false"
        assert rl.value_text(0.10) == "0.1" and rl.value_text(8) == "8"
        assert rl.value_text(["a", 1, 0.5]) == "a, 1, 0.5"


class TestRunCli:
    def test_compare_prints_the_model_and_the_library_ratio(self, values):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072"])
        assert code == 0
        assert "deepseek-v3" in out and "8x h200" in out and "131072" in out
        assert rl.ratio_text(analysis.headline(values)["ratio"]) in out

    def test_json_output_agrees_with_the_library(self, values):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072", "--json"])
        assert code == 0
        rec = json.loads(out)
        assert rec["ratio"] == pytest.approx(analysis.headline(values)["ratio"])

    def test_flags_change_the_output(self):
        code, out = capture.run_cli(["compare", "--model", "deepseek-v3", "--context", "131072", "--gpus", "2", "--hardware", "mi355x"])
        assert code == 0 and "2x mi355x" in out and "infeasible" in out

    @pytest.mark.parametrize("args, fragment", [
        (["compare", "--model", "no-such-model", "--context", "4096"], "unknown model"),
        (["compare", "--model", "llama-3.1-70b", "--context", "4096"], "dense model"),
        (["compare", "--model", "deepseek-v3"], "required"),
        (["--no-such-flag"], "unrecognized arguments"),
        ([], "usage"),
    ])
    def test_bad_input_returns_an_error_code_and_message(self, args, fragment):
        import sys

        before = (sys.stdout, sys.stderr)
        code, out = capture.run_cli(args)
        assert code != 0 and fragment in out
        assert (sys.stdout, sys.stderr) == before  # streams restored

    def test_help_exits_zero(self):
        code, out = capture.run_cli(["--help"])
        assert code == 0 and "usage" in out

    def test_console_block(self):
        block = capture.console_block("qsmoe x", "out")
        assert block == "```console\n$ qsmoe x\nout\n```\n"
        assert capture.console_block("c", "a ```` b").startswith("`````console")

    def test_build_slug_and_repo_path(self, tmp_path):
        d = tmp_path / "_build" / "mine-abc" / "results" / "09"
        d.mkdir(parents=True)
        assert rl.build_slug(d, "fallback") == "mine-abc"
        assert rl.build_slug(tmp_path, "fallback") == "fallback"
        path = rl.repo_path("data/params/default.yaml")
        assert Path(path).is_absolute() and Path(path).samefile(DEFAULT_PARAMS_PATH)
