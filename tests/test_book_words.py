"""Shared wording of the chapters (qsmoe.book.words)."""
from __future__ import annotations


import pytest
from qsmoe.book import words
from qsmoe.scenario import claims

from reportkit import values  # noqa: F401 (fixtures)


class TestWords:
    @pytest.mark.parametrize("ratio, word", [
        (1.96, "faster"), (4.5, "faster"), (1.002, "faster"),
        (0.5, "slower"), (0.998, "slower"),
        (1.0, "as fast"), (1.0005, "as fast"), (0.9995, "as fast"),
    ])
    def test_faster_word_on_both_sides_of_one(self, ratio, word):
        assert words.faster_word(ratio) == word

    @pytest.mark.parametrize("value, word", [
        (1.96, "below"), (4.0, "below"), (4.5 * 0.949, "below"),
        (4.5 * 0.951, "close to"), (4.5, "close to"), (4.5 * 1.049, "close to"),
        (4.5 * 1.051, "above"), (9.0, "above"),
    ])
    def test_compared_word_against_the_paper(self, value, word):
        assert words.compared_word(value, claims.PAPER_RATIO) == word

    def test_compared_word_tolerance_argument(self):
        assert words.compared_word(1.2, 1.0, tolerance=0.25) == "close to"
        assert words.compared_word(1.2, 1.0, tolerance=0.1) == "above"
        assert words.compared_word(0.8, 1.0, tolerance=0.1) == "below"

    def test_bound_phrase(self):
        assert words.bound_phrase("compute") == "compute-bound"
        assert words.bound_phrase("infeasible") == "infeasible"
        for bound in ("weights", "kv", "comm", "overhead"):
            assert words.bound_phrase(bound).startswith("bound by")
        assert words.bound_phrase("something-new") == "something-new"  # unknown: passed through

    def test_every_decode_bound_has_a_phrase(self):
        from qsmoe.physics.decode import BOUNDS

        assert set(BOUNDS) <= set(words.BOUND_PHRASES)

    def test_q_text(self):
        assert words.q_text(None) == words.NO_PAIRING
        assert words.q_text(None, "beats") == words.NO_PAIRING
        assert words.q_text(1.234) == "1.23"
        assert words.q_text(1.234, "beats") == "≥ 1.23"
        assert words.q_text(1.234, "beats (uninformative)") == "≥ 1.23"
        assert words.q_text(10.0, "rule", ".1f") == "10.0"


class TestRatioAndDeploymentText:
    def test_ratio_text(self):
        assert words.ratio_text(None) == "infeasible"
        assert words.ratio_text(1.956) == "1.96x"
        assert words.ratio_text(4.5, ".1f") == "4.5x"

    def test_deployment_text(self, values):
        assert words.deployment_text(values) == "8x h200, fp8 weights, bf16 KV, reserve 10%, q by geomean, moe_attention dense"


def test_ratio_outcome_names_the_faster_side_or_the_side_that_cannot_be_placed() -> None:
    from qsmoe.book.glance import ratio_outcome

    def rec(ratio, moe=True, dense=True):
        return {"ratio": ratio, "moe": {"feasible": moe}, "dense": {"feasible": dense}}

    assert "dense model decodes it faster" in ratio_outcome(rec(2.5))
    assert "MoE decodes it faster" in ratio_outcome(rec(0.8))
    assert "equally fast" in ratio_outcome(rec(1.0))
    assert ratio_outcome(rec(None, moe=False)).startswith("the MoE cannot be placed")
    assert ratio_outcome(rec(None, dense=False)).startswith("the dense comparator cannot be placed")
    assert ratio_outcome(rec(None, moe=False, dense=False)).startswith("neither")
    assert "faster" not in ratio_outcome(rec(None, moe=False))
