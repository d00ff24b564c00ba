"""Arithmetic intensity and the compute-bound, streamed-share and imbalance batches (qsmoe.physics.intensity)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from qsmoe.errors import QsError
from qsmoe.physics.routing import fraction_streamed, tokens_per_expert
from qsmoe.physics import intensity


class TestIntensityAndBatches:
    @pytest.mark.parametrize("e, k, f, expected", [
        (2, 1, 0.5, 1.0),                                  # ln(1/2) / ln(1/2)
        (4, 2, 0.75, 2.0),                                 # ln(1/4) / ln(1/2)
        (256, 8, 0.5, math.log(0.5) / math.log(1 - 8 / 256)),
        (8, 8, 0.9, 1.0),                                  # top_k == E: one token touches all
    ])
    def test_batch_for_fraction_uniform(self, e, k, f, expected):
        assert intensity.batch_for_fraction(e, k, f) == pytest.approx(expected)

    @pytest.mark.parametrize("skew", [0.0, 0.5, 1.0])
    def test_batch_for_fraction_is_the_root_of_phi(self, skew):
        b = intensity.batch_for_fraction(256, 8, 0.6, skew)
        assert float(fraction_streamed(b, 256, 8, skew)) == pytest.approx(0.6, rel=1e-6)

    def test_skew_needs_a_larger_batch(self):
        # concentrated popularity leaves rare experts untouched longer
        assert intensity.batch_for_fraction(256, 8, 0.9, 1.0) > intensity.batch_for_fraction(256, 8, 0.9, 0.0)

    @pytest.mark.parametrize("f", [0.0, 1.0, -0.1, 1.5])
    def test_batch_for_fraction_rejects_fractions_outside_0_1(self, f):
        with pytest.raises(QsError):
            intensity.batch_for_fraction(256, 8, f)

    def test_dense_intensity_and_compute_bound_batch(self):
        assert intensity.dense_compute_bound_batch(300.0, 1.0) == 150.0
        assert intensity.dense_compute_bound_batch(300.0, 2.0) == 300.0
        np.testing.assert_allclose(intensity.dense_ffn_intensity_flops_per_byte([1, 150, 300], 1.0), [2, 300, 600])
        # at B* the dense FFN sits exactly on the ridge
        b = intensity.dense_compute_bound_batch(309.0, 0.5)
        assert float(intensity.dense_ffn_intensity_flops_per_byte(b, 0.5)) == pytest.approx(309.0)

    def test_expert_compute_bound_batch(self):
        e, k, ridge, w = 256, 8, 300.0, 1.0
        b = intensity.expert_compute_bound_batch(e, k, w, ridge)
        # the routed experts reach the ridge: ridge * bytes / 2 tokens per touched expert
        assert float(tokens_per_expert(b, e, k)) == pytest.approx(ridge * w / 2, rel=1e-6)
        # large-B limit B* ~ ridge * bytes * E / (2k) (every expert touched by then)
        assert b == pytest.approx(ridge * w * e / (2 * k), rel=1e-3)
        # an MoE needs far more tokens than a dense FFN to reach the ridge
        assert b > intensity.dense_compute_bound_batch(ridge, w)

    def test_ep_imbalance(self):
        b = np.array([1.0, 16.0, 256.0, 4096.0])
        np.testing.assert_allclose(intensity.ep_imbalance(b, 256, 8, 1), 1.0)  # one device holds all
        imb = intensity.ep_imbalance(b, 256, 8, 8)
        assert np.all(imb >= 1.0 - 1e-12)  # the busiest device carries at least the mean
        assert np.all(intensity.ep_imbalance(b, 256, 8, 8, skew=1.0) >= imb - 1e-12)
