"""The reproduction search, the band on the ratio and the inequality's baselines (scenario/headline.py)."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from qsmoe.physics.deployment import LAYOUTS
from qsmoe.scenario import analysis, headline
from qsmoe.scenario.params import load_params, resolve

TARGET, TOL = 4.5, 0.10


@pytest.fixture(scope="module")
def values() -> dict:
    return dict(load_params().values)


def test_search_lists_every_layout_and_matches_direct_evaluation(values):
    axes = {"moe_layout": LAYOUTS, "dense_layout": ("tp", "dp-tp"), "gpus": (8, 16), "attention_dtype": ("bf16", "fp8"), "q_rule": ("geomean", "clark")}
    rows = headline.search(values, axes, target=TARGET, tolerance=TOL)
    assert len(rows) == len(LAYOUTS) * 2 * 2 * 2 * 2
    assert {r["moe_layout"] for r in rows} == set(LAYOUTS)
    for r in rows:  # the per-side cache gives what a fresh headline evaluation gives
        changes = {k: r[k] for k in axes}
        assert r["ratio"] == analysis.headline_under(values, **changes)
        assert r["within"] == (r["ratio"] is not None and abs(r["ratio"] / TARGET - 1) <= TOL)
    summary = headline.summarize(rows, "moe_layout", target=TARGET, tolerance=TOL)
    assert [s["moe_layout"] for s in summary] == list(LAYOUTS)
    assert sum(s["configurations"] for s in summary) == len(rows)


def test_search_axes_include_layouts_and_attention_format(values):
    axes = headline.search_axes(values)
    assert set(axes["moe_layout"]) == set(LAYOUTS) - set(headline.REPEATS)
    assert set(axes["attention_dtype"]) == {"bf16", "fp8"}
    assert "dense_layout" in axes and "q_rule" in axes and "reserve_fraction" in axes


def test_fp8_attention_never_slows_a_side(values):
    for layout in LAYOUTS:
        base = analysis.headline(dict(values, moe_layout=layout, attention_dtype="bf16"))
        fast = analysis.headline(dict(values, moe_layout=layout, attention_dtype="fp8"))
        assert fast["dense"]["tokens_per_s"] >= base["dense"]["tokens_per_s"]
        assert fast["moe"]["tokens_per_s"] >= base["moe"]["tokens_per_s"]
    # the comparator with the MoE's attention at 128k is attention-compute heavy: fp8 must help it
    assert analysis.headline(dict(values, attention_dtype="fp8"))["dense"]["tokens_per_s"] > analysis.headline(values)["dense"]["tokens_per_s"]


@pytest.mark.parametrize("model", ["deepseek-v3", "qwen3-235b-a22b", "grok-1", "switch-c-2048"])
@pytest.mark.parametrize("layout", ["ep", "tp"])
def test_band_contains_the_ratio(values, model, layout):
    v = dict(values, moe_layout=layout)
    variant = dict(v, mem_efficiency_nvidia=0.6, compute_efficiency_nvidia=0.4, name="test-variant")
    how, sets = headline.constant_sets(v, variant)
    assert len(sets) == 2 and "compute_efficiency_nvidia" in how and "mem_efficiency_nvidia" in how
    for context in (4096, 131072):
        b = headline.ratio_band(v, model, context, sets)
        if b["ratio"] is None:
            assert b["ratio_band"] is None
            continue
        lo, hi = b["ratio_band"]
        assert lo <= b["ratio"] <= hi
        assert b["points"] == len(b["q_rules"]) * 2


def test_band_spans_the_q_rules(values):
    b = headline.ratio_band(values, sets=[{}])
    singles = [headline.ratio_band(dict(values, q_rule=rule), sets=[{}], q_rules=[rule])["ratio"] for rule in b["q_rules"]]
    assert len(b["q_rules"]) >= 2 and len(set(singles)) >= 2
    lo, hi = b["ratio_band"]
    assert min(singles + [b["ratio"]]) - 1e-12 <= lo < hi <= max(singles + [b["ratio"]]) + 1e-12


def test_band_is_none_where_a_side_cannot_be_placed(values):
    v = dict(values, hardware="a100-sxm-80gb", gpus=8, weight_dtype="bf16")
    b = headline.ratio_band(v, sets=[{}])
    assert b["ratio"] is None and b["ratio_band"] is None


def _synthetic(flip_model: str | None = None) -> list[dict]:
    """Two models, contexts 1..4; the dense model wins from context 3 on (flipped for ``flip_model``)."""
    rows = []
    for model in ("A", "B", "C"):
        for c in (1, 2, 3, 4):
            wins = c >= 3
            if model == flip_model:
                wins = not wins
            rows.append({"model": model, "context": c, "simulated_disadvantaged": wins, "simple": True, "general": c >= 2})
    return rows


def test_baselines_on_a_synthetic_grid():
    b = headline.baselines(_synthetic())
    o = b["overall"]
    assert o["points"] == 12
    assert o["always_moe"] == pytest.approx(0.5) and o["always_dense"] == pytest.approx(0.5)
    assert o["threshold"] == pytest.approx(1.0)
    assert o["simple"] == pytest.approx(0.5) and o["general"] == pytest.approx(0.75)
    assert o["best_baseline"] == pytest.approx(1.0) and o["general_adds"] == pytest.approx(-0.25)
    assert b["thresholds"] == {"A": 3, "B": 3, "C": 3}
    by = {r["context"]: r for r in b["by_context"]}
    assert by[1]["always_moe"] == 1.0 and by[4]["always_dense"] == 1.0
    assert by[2]["general"] == 0.0 and by[3]["general"] == 1.0


def test_threshold_is_chosen_without_the_held_out_model():
    base = headline.baselines(_synthetic())["thresholds"]
    flipped = headline.baselines(_synthetic(flip_model="A"))["thresholds"]
    assert flipped["A"] == base["A"]  # A's own labels never choose A's threshold
    assert headline.baselines(_synthetic(flip_model="A"))["overall"]["threshold"] < 1.0


def test_serving_defaults_name_layouts_and_sources():
    entries = headline.serving_defaults()
    assert {e["engine"] for e in entries} >= {"sglang", "vllm", "trtllm", "deepseek"}
    for e in entries:
        assert e["moe_layout"] in LAYOUTS and e["source"] and e["quote"]


def test_compare_json_reports_the_band():
    out = subprocess.run([sys.executable, "-m", "qsmoe.cli", "compare", "--model", "deepseek-v3", "--context", "128k", "--json"], capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    lo, hi = r["ratio_band"]
    assert lo <= r["ratio"] <= hi
    out = subprocess.run([sys.executable, "-m", "qsmoe.cli", "compare", "--model", "deepseek-v3", "--context", "128k", "--json", "--hardware", "a100-sxm-80gb", "--weight-dtype", "bf16"], capture_output=True, text=True, check=True).stdout
    r = json.loads(out)
    assert r["ratio"] is None and r["ratio_band"] is None


def test_headline_verdict_per_layout(values):
    from qsmoe.scenario import claims
    rows = headline.search(values, {"moe_layout": LAYOUTS, "q_rule": ("geomean", "clark")}, target=claims.PAPER_RATIO, tolerance=claims.RATIO_TOLERANCE)
    by = claims.headline_by_layout(values, rows)
    assert [r["moe_layout"] for r in by["layouts"]] == list(claims.LAYOUT_WORDS)
    for r in by["layouts"]:
        assert r["verdict"] == claims.layout_verdict(r["ratio"])
        assert r["verdict"] in by["text"] and r["moe_layout"] in r["search_rows"]
    assert claims.layout_verdict(claims.PAPER_RATIO) == "reproduced"
    assert claims.layout_verdict(claims.PAPER_RATIO * 2) == "exceeded"
    assert claims.layout_verdict(1.0) == "not reproduced" and claims.layout_verdict(None) == "not tested"


def test_band_never_undoes_the_readers_own_changes() -> None:
    """The constant sets change only what datasheet.yaml changes in the reference set."""
    from qsmoe.scenario.headline import constant_sets
    from qsmoe.scenario.params import resolve

    values = dict(resolve(None, ["gpus=16", "q_rule=explicit", "q_explicit=8"]).values)
    _, sets = constant_sets(values)
    changed = set().union(*sets)
    assert "gpus" not in changed and "q_explicit" not in changed and "q_rule" not in changed


def test_band_sets_are_the_bootstrap_resamples_and_keep_a_readers_constant() -> None:
    from qsmoe.scenario.bootstrap import load_bootstrap
    from qsmoe.scenario.params import resolve

    rows = load_bootstrap()
    how, sets = headline.constant_sets(dict(resolve().values))
    assert "bootstrap" in how and 1 < len(sets) <= headline.MAX_BAND_SETS
    assert all(s in rows for s in sets)
    _, mine = headline.constant_sets(dict(resolve(None, ["mem_efficiency_nvidia=0.7"]).values))
    assert all("mem_efficiency_nvidia" not in s and "step_overhead_s" in s for s in mine)


def test_engines_enter_the_search_only_through_distinct_decode_constants(monkeypatch) -> None:
    from qsmoe.physics import engines as eng
    from qsmoe.scenario import headline as hl

    searched, groups = hl.decode_engines()
    assert sorted(e for ids in groups.values() for e in ids) == sorted(eng.ENGINES)
    assert len(searched) == len(groups)
    values = dict(resolve().values)
    assert ("engine" in hl.search_axes(values)) == (len(groups) > 1)
    real = eng.load_engine

    def slower_sglang(engine_id):
        spec = real(engine_id)
        return replace(spec, scheduling_s=spec.scheduling_s + 1e-3) if engine_id == "sglang" else spec

    monkeypatch.setattr(hl, "load_engine", slower_sglang)
    searched, groups = hl.decode_engines()
    assert "sglang" in searched and len(groups) == 2
    assert hl.search_axes(values)["engine"] == searched


def test_moving_a_scenario_to_another_vendor_takes_that_vendors_fractions(values) -> None:
    """The feasibility tables move the default deployments onto other accelerators; an AMD target
    carries the AMD achieved fractions, not the default accelerator's."""
    sc = analysis.scenario(values, values["headline_model"])
    moe_dep, dense_dep = analysis._moved(sc, values, "mi300x", 8)
    for dep in (moe_dep, dense_dep):
        assert (dep.hardware.id, dep.mem_efficiency, dep.compute_efficiency) == ("mi300x", values["mem_efficiency_amd"], values["compute_efficiency_amd"])


def test_a_layout_left_out_of_the_search_repeats_its_twin(values):
    """The search leaves tp-ep out because at the headline point every ratio equals tp's; if the
    physics ever parts them, this fails and the layout belongs back in the search."""
    axes = {"hardware": ("h200", "mi300x", "b200"), "gpus": (8, 16), "weight_dtype": ("bf16", "fp8"), "kv_dtype": ("bf16", "fp8"), "q_rule": ("geomean", "clark")}
    for layout, twin in headline.REPEATS.items():
        ours, theirs = (headline.search(values, {"moe_layout": (name,), **axes}, target=TARGET, tolerance=TOL) for name in (layout, twin))
        assert len(ours) == len(theirs) == 3 * 2 * 2 * 2 * 2
        for a, b in zip(ours, theirs):
            assert (a["ratio"] is None) == (b["ratio"] is None)
            if a["ratio"] is not None:
                assert a["ratio"] == pytest.approx(b["ratio"], rel=1e-9)
