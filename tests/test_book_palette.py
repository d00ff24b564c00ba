"""One palette (qsmoe.book.palette) and one q-rule registry (qsmoe.physics.quality.Q_RULE_REGISTRY)."""
from __future__ import annotations

import pytest
from qsmoe import DATA_DIR
from qsmoe.book import palette as pal
from qsmoe.errors import QsError
from qsmoe.physics import quality
from qsmoe.specs.models import load_model


def _shipped_moe_models() -> list[str]:
    return [p.stem for p in sorted((DATA_DIR / "models").glob("*.yaml")) if load_model(p.stem).moe is not None]


def test_every_shipped_moe_model_has_its_own_style():
    models = _shipped_moe_models()
    assert set(models) <= set(pal.MODEL_STYLES), "a shipped MoE model has no colour in the palette"
    colors = [pal.model_color(m) for m in models]
    markers = [pal.model_marker(m) for m in models]
    assert len(set(colors)) == len(colors) and len(set(markers)) == len(markers)
    assert not set(colors) & set(pal.SIDE_COLORS.values()), "a model shares a colour with a side"


def test_an_unknown_model_gets_a_stable_spare_colour():
    assert pal.model_color("my-model") == pal.model_color("my-model") in pal.SPARE_COLORS
    assert pal.model_marker("my-model") == pal.SPARE_MARKER


def test_q_rules_come_from_the_registry():
    names = [r.name for r in quality.Q_RULE_REGISTRY]
    assert quality.Q_RULES == tuple(names) and len(set(names)) == len(names)
    assert set(quality.MODEL_Q_RULES) == {r.name for r in quality.Q_RULE_REGISTRY if r.from_model}
    assert "explicit" in quality.Q_RULES and "explicit" not in quality.MODEL_Q_RULES
    markers = [pal.rule_marker(n) for n in names]
    assert len(set(markers)) == len(markers), "two q rules share a marker"
    assert all(pal.rule_label(n) for n in names)


def test_estimate_q_dispatches_through_the_registry():
    spec = load_model("deepseek-v3")
    assert quality.estimate_q("geomean", spec, 16.0, 4.0) == 2.0
    assert quality.estimate_q("explicit", spec, 16.0, 4.0, explicit=3.0) == 3.0
    with pytest.raises(QsError, match="q_explicit"):
        quality.estimate_q("explicit", spec, 16.0, 4.0, explicit=None)
    with pytest.raises(QsError, match="not one of geomean"):
        quality.estimate_q("median", spec, 16.0, 4.0)


def test_step_bounds_and_tools_have_colours_no_side_or_model_has():
    from qsmoe.physics.serve import SERVE_BOUNDS

    assert set(pal.BOUND_COLORS) == set(SERVE_BOUNDS)
    taken = set(pal.SIDE_COLORS.values()) | {c for c, _ in pal.MODEL_STYLES.values()}
    for colours in (pal.BOUND_COLORS, pal.TOOL_COLORS):
        assert len(set(colours.values())) == len(colours)
        assert not set(colours.values()) & taken
