"""Reuse fragmentation (qsmoe.physics.routing): experts touched, skew, and expert-parallel load."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsmoe.errors import QsError
from qsmoe.physics.routing import (
    busiest_device_load,
    experts_touched,
    fraction_streamed,
    selection_probabilities,
    tokens_per_expert,
)


@st.composite
def experts_and_k(draw: st.DrawFn, max_experts: int = 512) -> tuple[int, int]:
    e = draw(st.integers(1, max_experts))
    return e, draw(st.integers(1, e))


skews = st.one_of(st.just(0.0), st.floats(0.01, 3.0))


def test_experts_touched_by_hand() -> None:
    """T(B) = E (1 - (1 - k/E)^B), worked for Mixtral (8 experts, top-2) and DeepSeek-V3 (256, top-8)."""
    assert experts_touched(1, 8, 2) == pytest.approx(2.0, rel=1e-12)
    assert experts_touched(2, 8, 2) == pytest.approx(8 * (1 - 0.75**2), rel=1e-12)  # 3.5
    assert experts_touched(4, 256, 8) == pytest.approx(256 * (1 - (248 / 256) ** 4), rel=1e-12)
    assert fraction_streamed(2, 8, 2) == pytest.approx(3.5 / 8, rel=1e-12)
    assert tokens_per_expert(2, 8, 2) == pytest.approx(4 / 3.5, rel=1e-12)


def test_experts_touched_matches_simulation() -> None:
    """Sampling k distinct experts of E per token agrees with the closed form (within 5 standard errors)."""
    rng = np.random.default_rng(12345)
    e, k, trials = 64, 6, 4000
    for b in (1, 3, 10, 40):
        counts = np.empty(trials)
        for t in range(trials):
            picks = np.argsort(rng.random((b, e)), axis=1)[:, :k]
            counts[t] = np.unique(picks).size
        se = counts.std(ddof=1) / math.sqrt(trials)
        assert abs(counts.mean() - float(experts_touched(b, e, k))) < 5 * se + 1e-9, b


@settings(max_examples=80, deadline=None)
@given(experts_and_k(), skews, st.lists(st.integers(1, 100_000), min_size=2, max_size=20))
def test_touched_rises_with_batch_and_is_bounded(ek: tuple[int, int], skew: float, batches: list[int]) -> None:
    e, k = ek
    b = np.array(sorted(set(batches)), dtype=float)
    t = experts_touched(b, e, k, skew)
    assert np.all(t <= np.minimum(e, b * k) * (1 + 1e-12))
    assert np.all(t >= k * (1 - 1e-9))  # one token already touches k experts
    assert np.all(np.diff(t) >= -1e-9 * e)
    # strictly rising until (numerically) every expert is touched
    rising = t[:-1] < e * (1 - 1e-9)
    assert np.all(np.diff(t)[rising] > 0)
    assert float(experts_touched(1, e, k, skew)) == pytest.approx(k, rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(experts_and_k(), st.floats(0.01, 4.0))
def test_selection_probabilities_are_valid(ek: tuple[int, int], skew: float) -> None:
    e, k = ek
    pi = selection_probabilities(e, k, skew)
    assert pi.shape == (e,)
    assert pi.sum() == pytest.approx(k, rel=1e-9)
    assert np.all(pi <= 1 + 1e-12) and np.all(pi > 0)
    assert np.all(np.diff(pi) <= 1e-12)  # popularity falls with rank


@settings(max_examples=60, deadline=None)
@given(experts_and_k(), st.floats(0.01, 3.0), st.integers(1, 10_000))
def test_skewed_routing_touches_no_more_than_uniform(ek: tuple[int, int], skew: float, b: int) -> None:
    e, k = ek
    assert float(experts_touched(b, e, k, skew)) <= float(experts_touched(b, e, k, 0.0)) * (1 + 1e-9)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 512), skews, st.integers(1, 10_000))
def test_top_k_equal_to_e_touches_everything(e: int, skew: float, b: int) -> None:
    """k = E: every token uses every expert, so phi = 1 at any batch (the dense case)."""
    assert float(fraction_streamed(b, e, e, skew)) == pytest.approx(1.0, rel=1e-12)
    assert float(tokens_per_expert(b, e, e, skew)) == pytest.approx(b, rel=1e-12)


@settings(max_examples=80, deadline=None)
@given(experts_and_k(max_experts=300), skews, st.integers(1, 20_000), st.integers(1, 512))
def test_busiest_device_carries_at_least_the_mean_load(ek: tuple[int, int], skew: float, b: int, g: int) -> None:
    e, k = ek
    load, touched = busiest_device_load(b, e, k, g, skew)
    held = math.ceil(e / g) if g <= e else 1
    assert float(load) >= b * k / g * (1 - 1e-12)
    assert float(load) <= b * min(k, held) * (1 + 1e-12)  # a token uses each expert at most once
    assert 0 < float(touched) <= held * (1 + 1e-12)


def test_one_device_holds_everything() -> None:
    load, touched = busiest_device_load(64, 256, 8, 1)
    assert float(load) == pytest.approx(64 * 8, rel=1e-12)
    assert float(touched) == pytest.approx(float(experts_touched(64, 256, 8)), rel=1e-12)


def test_busiest_device_load_broadcasts() -> None:
    b = np.array([1.0, 16.0, 256.0])
    g = np.array([[8.0], [64.0]])
    load, touched = busiest_device_load(b, 256, 8, g, 0.0)
    assert load.shape == touched.shape == (2, 3)
    for i, gi in enumerate(g[:, 0]):
        for j, bj in enumerate(b):
            one_load, one_touched = busiest_device_load(bj, 256, 8, gi, 0.0)
            assert load[i, j] == pytest.approx(float(one_load), rel=1e-12)
            assert touched[i, j] == pytest.approx(float(one_touched), rel=1e-12)


@pytest.mark.parametrize("e, k", [(0, 1), (8, 0), (8, 9)])
def test_bad_expert_counts(e: int, k: int) -> None:
    with pytest.raises(QsError) as err:
        experts_touched(4, e, k)
    assert err.value.field == "top_k"
    assert f"top_k={k}" in str(err.value) and f"n_experts={e}" in str(err.value)


@pytest.mark.parametrize("skew", [-0.5, float("inf"), float("nan")])
def test_bad_skew(skew: float) -> None:
    with pytest.raises(QsError) as err:
        experts_touched(4, 8, 2, skew)
    assert err.value.field == "routing_skew"


def test_zero_devices_is_refused() -> None:
    with pytest.raises(QsError) as err:
        busiest_device_load(4, 8, 2, 0)
    assert err.value.field == "gpus"
