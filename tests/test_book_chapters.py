"""The per-chapter record modules (qsmoe.book.ch01 .. ch08, ch10): records agree with the library and follow the parameters."""
from __future__ import annotations

import math

import pytest
from qsmoe.scenario import analysis
from qsmoe.scenario.compare import scenario
from qsmoe.errors import QsError
from qsmoe.book import words
from qsmoe.book import ch01_double_penalty as ch01
from qsmoe.book import ch02_models as ch02
from qsmoe.book import ch03_fragmentation as ch03
from qsmoe.book import ch04_hbm_headroom as ch04
from qsmoe.book import ch05_throughput as ch05
from qsmoe.book import ch06_qs_inequality as ch06
from qsmoe.book import ch07_feasibility as ch07
from qsmoe.book import ch08_sensitivity as ch08

from reportkit import VARIANTS, _ids, values  # noqa: F401 (fixtures)


class TestAuthorClaims:
    def test_author_claim_kinds(self, values):
        allowed = {"matches", "beats", "rule", "beats (uninformative)", "none"}
        for m in values["models"]:
            assert ch02.author_claim(m) in allowed
            # a model without a pairing names no dense model, and vice versa
            assert (ch02.author_claim(m) == "none") == (ch02.author_dense_model(m) == "none")
        assert ch02.author_claim("no-such-model") == "none"
        assert ch02.author_dense_model("no-such-model") == "none"


class TestBasicsModels:
    def test_model_shape_rejects_dense(self):
        with pytest.raises(QsError):
            ch02.model_shape("llama-3.1-70b")

    def test_model_shape_fields(self, values):
        for m in values["models"]:
            s = ch02.model_shape(m)
            assert 1 <= s["top_k"] <= s["n_experts"]
            assert s["n_shared"] >= 0

    @pytest.mark.parametrize("model", ["deepseek-v3", "grok-1", "switch-c-2048"])
    def test_component_shares_add_to_100(self, model):
        rows = ch02.component_table(model)
        assert math.isclose(sum(r["share_of_total_pct"] for r in rows), 100.0, rel_tol=1e-9)
        assert math.isclose(sum(r["share_of_active_pct"] for r in rows), 100.0, rel_tol=1e-9)
        for r in rows:
            assert 0 <= r["active_params_b"] <= r["total_params_b"] + 1e-12

    def test_published_check_difference(self, values):
        rows = ch02.published_check(values["models"])
        assert len(rows) == len(values["models"])
        for r in rows:
            for what in ("total", "active"):
                pub = r[f"{what}_published_b"]
                if pub is None:
                    assert r[f"{what}_diff_pct"] is None
                else:
                    assert r[f"{what}_diff_pct"] == pytest.approx(100 * (r[f"{what}_counted_b"] / pub - 1))


class TestFragmentationCurves:
    def test_fragmentation_curves(self):
        batches = [1, 8, 64, 512]
        rows = ch03.fragmentation_curves(["deepseek-v3", "grok-1"], batches, [0.0, 1.0])
        assert len(rows) == 2 * 2 * len(batches)
        for r in rows:
            shape = ch02.model_shape(r["model"])
            assert 0 < r["phi"] <= 1
            assert r["experts_touched"] == pytest.approx(r["phi"] * shape["n_experts"])
            # tokens per touched expert x experts touched = token-expert assignments B k
            assert r["tokens_per_expert"] * r["experts_touched"] == pytest.approx(r["batch"] * shape["top_k"])
        # phi grows with the batch
        for m in ("deepseek-v3", "grok-1"):
            phis = [r["phi"] for r in rows if r["model"] == m and r["skew"] == 0.0]
            assert phis == sorted(phis)


class TestWeightBytes:
    def test_weight_bytes(self, values):
        assert ch03.weight_bytes(values) == 1.0  # fp8
        assert ch03.weight_bytes(dict(values, weight_dtype="bf16")) == 2.0
        assert ch03.weight_bytes(dict(values, weight_dtype="fp4")) == 0.5


class TestBasicsThroughputAndHbm:
    @pytest.mark.parametrize("variant", VARIANTS[:5], ids=_ids)
    def test_headline_throughputs(self, values, variant):
        v = dict(values, **variant)
        rows = ch01.headline_throughputs(v)
        assert len(rows) == 2 * len(v["models"])
        for m in v["models"]:
            moe, dense = (next(r for r in rows if r["model"] == m and r["side"] == s) for s in ("MoE", "dense"))
            for r in (moe, dense):
                assert r["context"] == v["headline_context"]
                if r["feasible"]:
                    assert r["batch"] >= 1 and r["tokens_per_s"] > 0 and r["bound"] in words.BOUND_PHRASES
                else:
                    assert (r["batch"], r["tokens_per_s"], r["bound"]) == (0, 0.0, "infeasible")
            if moe["feasible"] and dense["feasible"]:
                assert moe["ratio"] == pytest.approx(dense["tokens_per_s"] / moe["tokens_per_s"])
            else:
                assert moe["ratio"] is None

    def test_headline_throughputs_other_context(self, values):
        rows = ch01.headline_throughputs(values, context=4096)
        assert {r["context"] for r in rows} == {4096}

    @pytest.mark.parametrize("variant", [x for x in VARIANTS if x.get("q_rule") != "explicit"], ids=_ids)
    def test_hbm_stack_sums_to_the_hbm(self, values, variant):
        from qsmoe.specs.hardware import load_hardware

        v = dict(values, **variant)
        hbm_gb = load_hardware(v["hardware"]).hbm_bytes / 1e9
        rows = ch04.hbm_stack(v)
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
        assert {r["hbm_gb"] for r in ch04.hbm_stack(values)} == {141.0}
        assert {r["hbm_gb"] for r in ch04.hbm_stack(dict(values, hardware="mi355x"))} == {288.0}

    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"moe_layout": "tp"}, {"moe_layout": "dp-tp", "dense_layout": "tp"}], ids=_ids)
    def test_weight_split_matches_the_layout(self, values, variant):
        v = dict(values, **variant)
        sc = scenario(v, "deepseek-v3")
        split = ch04.weight_split_per_gpu(v, "deepseek-v3")
        for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
            s = split[side]
            assert s["layout"] == dep.layout
            assert s["replicated"] + s["sharded"] == pytest.approx(s["total"])
            # what each layout replicates (qsmoe.physics.memory): tp nothing, ep the non-expert
            # weights, dp-tp the attention weights; each group in its format (the embedding and
            # LM head in head_dtype, the rest of the attention side in attention_proj_dtype)
            emb, attention = float(prof.embedding_params), float(prof.resident_attention_params)
            attention_side = emb * dep.group_weight_bytes("head") + (attention - emb) * dep.group_weight_bytes("attention")
            expected = {"tp": 0.0,
                        "ep": attention_side + (float(prof.resident_other_params) - attention) * dep.weight_bytes,
                        "dp-tp": attention_side}[dep.layout]
            assert s["replicated"] == pytest.approx(expected, rel=1e-6, abs=1e3)

    def test_batch_vs_context(self, values):
        ctx = [4096, 16384, 65536, 131072, 1 << 20]
        rows = ch04.batch_vs_context(values, "deepseek-v3", ctx)
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
        rows = ch04.batch_vs_context(dict(values, gpus=1), "deepseek-v3", [4096])
        moe = next(r for r in rows if r["side"] == "MoE")
        # 671 B parameters in FP8 (671 GB) cannot fit one 141 GB GPU
        assert not moe["feasible"] and "weights" in moe["reason"]

    def test_kv_bytes_per_sequence_is_linear_in_context(self, values):
        a = ch04.kv_bytes_per_sequence(values, "deepseek-v3", 8192)
        b = ch04.kv_bytes_per_sequence(values, "deepseek-v3", 16384)
        for side in ("MoE", "dense"):
            assert a[side] > 0
            assert b[side] == pytest.approx(2 * a[side])

    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"moe_layout": "tp", "dense_layout": "tp"}], ids=_ids)
    def test_sequences_per_gpu_agrees_with_the_batch(self, values, variant):
        v = dict(values, **variant, models=["deepseek-v3", "qwen3-235b-a22b"])
        ctx = 32768
        for model in v["models"]:
            per_gpu = ch04.sequences_per_gpu(v, model, ctx)
            for row in (r for r in ch04.hbm_stack(v, ctx) if r["model"] == model):
                n = per_gpu[row["side"]]
                if not row["feasible"]:
                    assert n == 0
                elif row["layout"] == "tp":  # every GPU holds a share of every sequence
                    assert n == row["max_batch"]
                else:  # data-parallel attention: each GPU holds whole sequences
                    assert n * v["gpus"] == row["max_batch"]

    def test_released_context(self):
        assert ch04.released_context("deepseek-v3") >= 128 * 1024
        assert ch04.released_context("switch-c-2048") >= 0


class TestPerGpuSweep:
    @pytest.mark.parametrize("variant", [{}, {"gpus": 2}, {"gpus": 2, "hardware": "mi355x"}, {"gpus": 16}], ids=_ids)
    @pytest.mark.parametrize("model", ["deepseek-v3", "switch-c-2048"])
    def test_per_gpu_is_total_over_gpus(self, values, variant, model):
        v = dict(values, **variant)
        rows = ch05.per_gpu_sweep(v, model)
        sweep = analysis.context_sweep(v, model)
        assert [r["context"] for r in rows] == list(v["contexts"])
        for r, s in zip(rows, sweep):
            assert {k: r[k] for k in s} == s  # the sweep's fields unchanged
            assert r["context_k"] == r["context"] / 1024
            for side in ("moe", "dense"):
                tps = r[f"{side}_tokens_per_s"]
                if tps is None:
                    assert r[f"{side}_tokens_per_s_per_gpu"] is None
                    assert r[f"{side}_status"] == words.INFEASIBLE
                else:
                    assert r[f"{side}_tokens_per_s_per_gpu"] == pytest.approx(tps / v["gpus"])
                    assert r[f"{side}_status"] == r[f"{side}_bound"] != words.INFEASIBLE
            if r["ratio"] is None:
                assert r["ratio_text"] == words.INFEASIBLE
                assert r["capacity_gain"] is None and r["step_ratio"] is None
            else:
                assert r["ratio_text"] == f"{r['ratio']:.2f}"
                assert r["capacity_gain"] == pytest.approx(r["dense_batch"] / r["moe_batch"])
                assert r["capacity_gain"] * r["step_ratio"] == pytest.approx(r["ratio"])

    def test_infeasible_points_are_marked(self, values):
        # Switch-C's ~1.6 T parameters cannot fit 2 x H200 at any context
        rows = ch05.per_gpu_sweep(dict(values, gpus=2), "switch-c-2048")
        assert rows and all(r["moe_status"] == words.INFEASIBLE and r["ratio_text"] == words.INFEASIBLE for r in rows)

    def test_explicit_contexts(self, values):
        rows = ch05.per_gpu_sweep(values, "deepseek-v3", [1024, 2048])
        assert [r["context"] for r in rows] == [1024, 2048]


class TestRatioFactorsAndSides:
    @pytest.mark.parametrize("variant", [{}, {"gpus": 16}, {"hardware": "mi355x"}, {"q_rule": "clark"}, {"headline_model": "grok-1", "headline_context": 8192}], ids=_ids)
    def test_factors_multiply_back_to_the_ratio(self, values, variant):
        rec = analysis.headline(dict(values, **variant))
        f = ch05.ratio_factors(rec)
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
        assert ch05.ratio_factors(rec) is None

    @pytest.mark.parametrize("variant", [{}, {"gpus": 1}], ids=_ids)
    def test_headline_sides(self, values, variant):
        v = dict(values, **variant)
        rec = analysis.headline(v)
        rows = ch05.headline_sides(rec)
        assert [r["side"] for r in rows] == ["MoE", "dense"]
        for row, key in zip(rows, ("moe", "dense")):
            r = rec[key]
            assert row["layout"] == rec[f"{key}_layout"]
            if r["feasible"]:
                assert row["step time (ms)"] == pytest.approx(r["step_time_s"] * 1e3)
                assert row["tokens/s per GPU"] == pytest.approx(row["tokens/s"] / v["gpus"])
            else:
                for col in ("batch (sequences)", "tokens/s", "tokens/s per GPU", "step time (ms)", "bound"):
                    assert row[col] == words.INFEASIBLE

    def test_infeasibility_reason(self, values):
        r = ch05.infeasibility_reason(dict(values, gpus=1), "deepseek-v3", 4096)
        assert r["moe"] and "weights" in r["moe"]
        ok = ch05.infeasibility_reason(values, "deepseek-v3", 4096)
        assert ok == {"moe": None, "dense": None}

    @pytest.mark.parametrize("variant", [{}, {"gpus": 1}, {"moe_layout": "tp"}], ids=_ids)
    def test_routed_expert_time_within_the_step(self, values, variant):
        v = dict(values, **variant)
        rec = analysis.headline(v)
        ex = ch05.routed_expert_time(v, v["headline_model"], v["headline_context"])
        if rec["moe"]["feasible"]:
            assert 0 < ex["ms"] <= rec["moe"]["step_time_s"] * 1e3 * (1 + 1e-9) and ex["bound"] in ("compute", "weights")
        else:
            assert ex == {"ms": 0.0, "bound": None}

    def test_routed_experts_are_weight_bound_without_padding_at_small_batch(self, values):
        """Without the row block, a few tokens per expert cannot make the experts compute bound."""
        ex = ch05.routed_expert_time(dict(values, grouped_gemm_block_m=1), values["headline_model"], values["headline_context"])
        assert ex["bound"] == "weights"

    @pytest.mark.parametrize("variant", [{}, {"gpus": 1}, {"moe_layout": "tp"}], ids=_ids)
    def test_attention_time_within_the_step(self, values, variant):
        v = dict(values, **variant)
        rec = analysis.headline(v)
        att = ch05.attention_time_ms(v, v["headline_model"], v["headline_context"])
        for side in ("moe", "dense"):
            if rec[side]["feasible"]:
                assert 0 < att[side] <= rec[side]["step_time_s"] * 1e3 * (1 + 1e-9)
            else:
                assert att[side] == 0.0


class TestInequalityPoint:
    def test_terms_are_consistent(self, values):
        p = ch06.headline_inequality(values)
        assert p == ch06.inequality_point(values, values["headline_model"], values["headline_context"])
        m, w = p["usable_gb"], p["moe_weights_gb"]
        assert p["usable_gb"] == pytest.approx(values["gpus"] * 141.0 * (1 - values["reserve_fraction"]))
        # capacity term: the formula's R with phi = rho = 1
        assert p["capacity_term"] == pytest.approx((m - p["qs_eff"] * w) / (m - w))
        assert 0 < p["phi"] <= 1
        assert p["simulated_ratio"] == pytest.approx(analysis.headline(values)["ratio"])

    def test_none_where_moe_weights_do_not_fit(self, values):
        p = ch06.inequality_point(dict(values, gpus=1), "deepseek-v3", 131072)
        assert p["moe_weights_gb"] > p["usable_gb"]
        assert p["capacity_term"] is None and p["threshold"] is None
        assert p["memory_bound_ratio"] is None and p["simulated_ratio"] is None

    def test_phase_points(self, values):
        rows = ch06.phase_points(values)
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
        rows = ch06.agreement_by_context(self.RESULT)
        assert [r["context"] for r in rows] == [4096, 131072]
        a, b = rows
        assert (a["points"], a["MoE slower (share)"], a["simple form right (share)"], a["general form right (share)"]) == (2, 0.5, 0.5, 1.0)
        assert b["points"] == 3
        assert b["MoE slower (share)"] == pytest.approx(2 / 3)
        assert b["simple form right (share)"] == pytest.approx(2 / 3)
        assert b["general form right (share)"] == pytest.approx(2 / 3)

    def test_by_gpus(self):
        rows = ch06.agreement_by(self.RESULT, "gpus")
        assert [(r["gpus"], r["points"]) for r in rows] == [(8, 3), (16, 2)]
        assert rows[0]["general form right (share)"] == 1.0
        assert rows[1]["general form right (share)"] == 0.5


class TestPlacementGrid:
    @pytest.mark.parametrize("variant", [{}, {"weight_dtype": "bf16"}, {"q_rule": "author"}], ids=_ids)
    def test_grid_is_the_feasibility_table_plus_status(self, values, variant):
        v = dict(values, **variant)
        hw, counts = ["h200", "mi355x", "a100-sxm-80gb"], [1, 2, 8, 16, 64]
        grid = ch07.placement_grid(v, "switch-c-2048", hw, counts, 4096)
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
        assert ch07._status(True, True) == "both feasible"
        assert ch07._status(False, True) == "only dense feasible"
        assert ch07._status(True, False) == "only MoE feasible"
        assert ch07._status(False, False) == "neither feasible"

    def test_resident_weights(self, values):
        r = ch07.resident_weights_gb(values, "deepseek-v3")
        # 671 B parameters in FP8 (one byte each) is about 671 GB, plus one more byte for each of the
        # 2 x 129280 x 7168 = 1.85 B parameters of the embedding and LM head, kept in BF16
        assert r["moe_weights_gb"] == pytest.approx(671 + 2 * 129280 * 7168 / 1e9, rel=0.01)
        assert r["usable_per_gpu_gb"] == pytest.approx(141 * 0.9)
        # expert parallel: one GPU holds the non-expert weights plus 1/G of the experts
        assert r["moe_weights_gb"] / values["gpus"] < r["moe_weights_per_gpu_gb"] < r["moe_weights_gb"]
        uniform = dict(values, head_dtype="same", attention_proj_dtype="same")
        fp8 = ch07.resident_weights_gb(uniform, "deepseek-v3")
        bf16 = ch07.resident_weights_gb(dict(uniform, weight_dtype="bf16"), "deepseek-v3")
        assert bf16["moe_weights_gb"] == pytest.approx(2 * fp8["moe_weights_gb"])
        assert r["moe_weights_gb"] - fp8["moe_weights_gb"] == pytest.approx(2 * 129280 * 7168 / 1e9, rel=1e-6)
        assert ch07.resident_weights_gb(values, "deepseek-v3", 8192)["moe_kv_per_sequence_gb"] == pytest.approx(2 * r["moe_kv_per_sequence_gb"])


class TestSensitivity:
    def test_sensitivity_summary(self):
        rows = [
            {"parameter": "gpus", "value": "8", "ratio": 2.0},
            {"parameter": "gpus", "value": "16", "ratio": 1.5},
            {"parameter": "gpus", "value": "1", "ratio": None},
            {"parameter": "skew", "value": "0", "ratio": 1.9},
            {"parameter": "skew", "value": "1", "ratio": 1.95},
            {"parameter": "arch", "value": "x", "ratio": None},
        ]
        out = ch08.sensitivity_summary(rows)
        assert [r["parameter"] for r in out] == ["gpus", "skew", "arch"]  # largest swing first
        g = out[0]
        assert (g["lowest"], g["lowest at"], g["highest"], g["highest at"], g["infeasible"]) == ("1.50x", "16", "2.00x", "8", "1")
        assert g["span"] == pytest.approx(0.5)
        assert out[1]["span"] == pytest.approx(0.05) and out[1]["infeasible"] == ""
        assert (out[2]["lowest"], out[2]["span"], out[2]["infeasible"]) == ("infeasible", 0.0, "x")

    @pytest.mark.parametrize("variant", [{}, {"gpus": 16}, {"hardware": "mi355x"}, {"dense_arch": "llama_gqa"}], ids=_ids)
    def test_ratio_ceiling(self, values, variant):
        v = dict(values, **variant)
        c = ch08.ratio_ceiling(v)
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
