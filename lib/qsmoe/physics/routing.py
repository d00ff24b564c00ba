"""Reuse fragmentation: how a decode batch of B tokens spreads over E experts.

Uniform routing, top-k of E distinct experts per token: a given expert is missed
by one token with probability 1 - k/E, so the expected number of experts touched
per layer is

    T(B) = E * (1 - (1 - k/E)^B),       T(B) <= min(E, B*k),

each touched expert sees B*k/T(B) tokens on average, and a fraction
phi(B) = T(B)/E of the expert weights is streamed from HBM per step.

Skewed routing gives expert i (popularity rank i) a selection probability pi_i
with sum_i pi_i = k and pi_i <= 1, from Zipf popularity p_i ~ (i+1)^-a; then
T(B) = sum_i 1 - (1 - pi_i)^B. All functions broadcast over NumPy arrays of B.
"""
from __future__ import annotations

import math

import numpy as np

from qsmoe.errors import QsError

ArrayLike = float | np.ndarray


def _check(n_experts: int, top_k: int) -> None:
    if n_experts < 1 or top_k < 1 or top_k > n_experts:
        raise QsError(f"need 1 <= top_k <= n_experts, got top_k={top_k}, n_experts={n_experts}", field="top_k")


def selection_probabilities(n_experts: int, top_k: int, skew: float = 0.0) -> np.ndarray:
    """Per-token probability that each expert is among its top-k (sums to k, each <= 1).

    Zipf popularity p_i = (i+1)^-skew / sum_j (j+1)^-skew scaled to k*p_i; any value
    above 1 is capped and the excess spread over the rest in proportion (water-filling).
    """
    _check(n_experts, top_k)
    if skew < 0 or not math.isfinite(skew):
        raise QsError(f"must be a finite number >= 0, got {skew!r}", field="routing_skew")
    log_w = -skew * np.log(np.arange(1, n_experts + 1, dtype=float))  # log (i+1)^-skew

    def shares(mask: np.ndarray) -> np.ndarray:
        """Popularity of the experts in ``mask`` normalised to 1, in log space (no underflow)."""
        w = np.exp(log_w[mask] - log_w[mask].max())
        return w / w.sum()

    pi = top_k * shares(np.ones(n_experts, dtype=bool))
    capped = np.zeros(n_experts, dtype=bool)
    while (pi > 1 + 1e-12).any():
        capped |= pi >= 1 - 1e-12
        free = ~capped
        pi[capped] = 1.0
        pi[free] = (top_k - capped.sum()) * shares(free)
    return pi


def experts_touched(batch_tokens: ArrayLike, n_experts: int, top_k: int, skew: float = 0.0) -> np.ndarray:
    """Expected distinct experts touched per layer by a batch of B tokens."""
    b = np.asarray(batch_tokens, dtype=float)
    if skew == 0.0:
        _check(n_experts, top_k)
        return n_experts * -np.expm1(b * math.log1p(-top_k / n_experts)) if top_k < n_experts else np.full_like(b, n_experts)
    pi = selection_probabilities(n_experts, top_k, skew)
    return _touched_from_pi(b, pi)


def _touched_from_pi(b: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """sum_i 1 - (1 - pi_i)^B, with pi_i == 1 counted as always touched."""
    log_miss = np.log1p(-np.minimum(pi, 1 - 1e-15))
    return -np.expm1(b[..., None] * log_miss).sum(axis=-1)


def fraction_streamed(batch_tokens: ArrayLike, n_experts: int, top_k: int, skew: float = 0.0) -> np.ndarray:
    """phi(B) = T(B) / E: share of the expert weights read from HBM per decode step."""
    return experts_touched(batch_tokens, n_experts, top_k, skew) / n_experts


def tokens_per_expert(batch_tokens: ArrayLike, n_experts: int, top_k: int, skew: float = 0.0) -> np.ndarray:
    """Mean tokens per touched expert = B*k / T(B): the reuse of each streamed expert."""
    b = np.asarray(batch_tokens, dtype=float)
    return b * top_k / experts_touched(b, n_experts, top_k, skew)


def expert_ffn_intensity_flops_per_byte(batch_tokens: ArrayLike, n_experts: int, top_k: int, weight_bytes_per_value: float, skew: float = 0.0) -> np.ndarray:
    """Arithmetic intensity of the routed-expert FFNs: 2 * (tokens per expert) / bytes per weight."""
    return 2.0 * tokens_per_expert(batch_tokens, n_experts, top_k, skew) / weight_bytes_per_value


def busiest_device_load(batch_tokens: ArrayLike, n_experts: int, top_k: int, n_devices: ArrayLike, skew: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Expert parallelism over G devices, experts placed round-robin by popularity rank.

    Returns (expected token-expert assignments on the busiest device, expected experts it touches).
    Device 0 holds the most popular expert of every block of G, so it is the busiest in mean;
    its load is its mean plus the expected-maximum excess of G roughly normal loads,
    sigma * sqrt(2 ln G), capped at B * (experts it holds, at most k). With uniform routing
    the mean is B*k/G and sigma^2 = B*k*(1/G)*(1 - 1/G)*(E - k)/(E - 1).
    """
    b = np.asarray(batch_tokens, dtype=float)
    g = np.asarray(n_devices, dtype=float)
    if np.any(g < 1):
        raise QsError(f"must be >= 1, got {n_devices!r}", field="gpus")
    pi = selection_probabilities(n_experts, top_k, skew)
    g_b, b_b = np.broadcast_arrays(g, b)
    ranks = np.arange(n_experts)
    if skew == 0.0:
        share = np.minimum(1.0, np.ceil(n_experts / g_b) / n_experts)  # experts held / E (a slice when G > E)
        held_pi = top_k * share
        mean = b_b * held_pi
        var = b_b * held_pi * (1 - share) * (n_experts - top_k) / max(n_experts - 1, 1)
        touched = np.minimum(n_experts, np.ceil(n_experts / g_b)) * (1 - (1 - top_k / n_experts) ** b_b)
    else:
        mask = (ranks % g_b[..., None]) == 0
        held_pi = (pi * mask).sum(axis=-1)
        mean = b_b * held_pi
        var = b_b * (pi * (1 - pi) * mask).sum(axis=-1)
        touched = (-np.expm1(b_b[..., None] * np.log1p(-np.minimum(pi, 1 - 1e-15))) * mask).sum(axis=-1)
    excess = np.sqrt(var) * np.sqrt(2 * np.log(g_b))
    cap = b_b * np.minimum(top_k, np.maximum(1.0, np.ceil(n_experts / g_b)))
    return np.minimum(mean + excess, cap), touched
