"""The paper's claims (qsmoe.scenario.claims): the quoted constants and every verdict threshold, on both sides of each boundary."""
from __future__ import annotations

import re

import pytest
from qsmoe.errors import QsError
from qsmoe.book import words
from qsmoe.scenario import claims

from reportkit import values  # noqa: F401 (fixtures)


class TestPaperConstants:
    def test_paper_headline_ratio_is_the_quoted_4_5(self):
        assert claims.PAPER_RATIO == 4.5
        # ... and it is the number in the abstract sentence the book quotes
        quote = dict(claims.PAPER_ABSTRACT_CLAIMS)["headline"]
        m = re.search(r"a (\d+(?:\.\d+)?)x throughput advantage", quote)
        assert m and float(m.group(1)) == claims.PAPER_RATIO

    def test_paper_headline_point_matches_the_quote(self):
        quote = dict(claims.PAPER_ABSTRACT_CLAIMS)["headline"]
        assert "128k" in quote and claims.PAPER_CONTEXT == 128 * 1024
        assert words.model_name(claims.PAPER_MODEL) in quote

    def test_abstract_claims_are_distinct_and_nonempty(self):
        names = [n for n, _ in claims.PAPER_ABSTRACT_CLAIMS]
        assert len(set(names)) == len(names) == 7
        assert all(q.strip() and q.endswith(".") for _, q in claims.PAPER_ABSTRACT_CLAIMS)

    def test_same_point_as_paper(self, values):
        assert claims.same_point_as_paper(values)
        assert claims.same_point_as_paper(dict(values, headline_context="131072"))
        assert not claims.same_point_as_paper(dict(values, headline_context=65536))
        assert not claims.same_point_as_paper(dict(values, headline_model="grok-1"))


def V(claim: str, **evidence) -> str:
    return claims.verdict(claim, evidence)


class TestVerdictThresholds:
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
            claims.verdict("novelty", {})
