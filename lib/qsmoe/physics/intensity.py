"""Arithmetic intensity of the decode FFNs, and the batches at which they turn compute-bound.

A GEMM of B tokens against weights stored in b-byte values does 2 FLOPs per weight per token
and reads each weight once, so its intensity is I = 2 B / b FLOP/byte.  Against a ridge point
r (achievable FLOP/s over achievable bytes/s) it is compute-bound once I >= r:

    dense FFN        I(B) = 2 B / b                    B* = r b / 2
    routed experts   I(B) = 2 (B k / T(B)) / b         B k / T(B) = r b / 2, i.e. B* -> (r b / 2) E / k
                                                       once every expert is touched (T -> E)

T(B) is the expected number of experts touched (:mod:`qsmoe.physics.routing`).  Also here: the
batch at which a given share phi of the expert weights is streamed, the expert-parallel load
imbalance, and the ceiling that attention over the KV cache puts on decode throughput.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from qsmoe.errors import QsError
from qsmoe.physics.routing import busiest_device_load, fraction_streamed, tokens_per_expert

#: Bisection range for the batch searches, in tokens.
BATCH_SEARCH_RANGE: tuple[float, float] = (1.0, 1e9)


def dense_ffn_intensity_flops_per_byte(batch_tokens: Any, weight_bytes_per_value: float) -> np.ndarray:
    """I = 2 B / b FLOP/byte: every weight of a dense FFN meets all B tokens of the batch."""
    return 2.0 * np.asarray(batch_tokens, dtype=float) / weight_bytes_per_value


def dense_compute_bound_batch(ridge_flops_per_byte: float, weight_bytes_per_value: float) -> float:
    """B* = r b / 2 tokens: the batch at which a dense FFN reaches the ridge point (also the
    tokens per expert an expert GEMM needs to be compute-bound)."""
    return ridge_flops_per_byte * weight_bytes_per_value / 2.0


def expert_compute_bound_batch_limit(ridge_flops_per_byte: float, weight_bytes_per_value: float, n_experts: int, top_k: int) -> float:
    """B* ~ (r b / 2) E / k tokens: the large-batch limit of :func:`expert_compute_bound_batch`
    (every expert touched, each seeing B k / E tokens)."""
    return dense_compute_bound_batch(ridge_flops_per_byte, weight_bytes_per_value) * (n_experts / top_k)


def expert_compute_bound_batch(n_experts: int, top_k: int, weight_bytes_per_value: float, ridge_flops_per_byte: float, skew: float = 0.0) -> float:
    """The batch B* (tokens) at which the routed experts' mean intensity 2 (B k / T(B)) / b
    reaches the ridge, i.e. B k / T(B) = r b / 2; exact (bisection), not the large-B limit."""
    target = dense_compute_bound_batch(ridge_flops_per_byte, weight_bytes_per_value)
    return _bisect(lambda b: float(tokens_per_expert(b, n_experts, top_k, skew)) - target)


def batch_for_fraction(n_experts: int, top_k: int, fraction: float, skew: float = 0.0) -> float:
    """The (continuous) batch B, in tokens, at which the expected share of experts touched,
    phi(B) = T(B) / E, reaches ``fraction`` (0 < fraction < 1).

    Uniform routing: B = ln(1 - f) / ln(1 - k/E) (1 when k = E); with skew, bisection on the
    monotone phi(B).
    """
    if not 0 < fraction < 1:
        raise QsError(f"must be in (0, 1), got {fraction!r}", field="fraction")
    if skew == 0.0:
        if top_k == n_experts:
            return 1.0
        return math.log1p(-fraction) / math.log1p(-top_k / n_experts)
    return _bisect(lambda b: float(fraction_streamed(b, n_experts, top_k, skew)) - fraction)


def _bisect(f: Callable[[float], float], lo: float = BATCH_SEARCH_RANGE[0], hi: float = BATCH_SEARCH_RANGE[1]) -> float:
    """Root of a monotone increasing f on [lo, hi] by bisection in log B (lo if f(lo) >= 0)."""
    if f(lo) >= 0:
        return lo
    if f(hi) < 0:
        raise QsError(f"no batch up to {hi:g} reaches the target", field="batch")
    a, b = math.log(lo), math.log(hi)
    for _ in range(100):
        m = (a + b) / 2
        if f(math.exp(m)) < 0:
            a = m
        else:
            b = m
    return math.exp(b)


def ep_imbalance(batch_tokens: Any, n_experts: int, top_k: int, gpus: int, skew: float = 0.0) -> np.ndarray:
    """Expert-parallel load imbalance (dimensionless, >= 1): expected token-expert assignments on
    the busiest of G devices (:func:`qsmoe.physics.routing.busiest_device_load`) over the mean
    per device, B k / G."""
    b = np.asarray(batch_tokens, dtype=float)
    busiest, _ = busiest_device_load(b, n_experts, top_k, gpus, skew)
    return busiest / (b * top_k / gpus)


def attention_ceiling_tokens_per_s(profile: Any, dep: Any, context_tokens: float) -> float:
    """Tokens/s no layout can exceed because of attention over the cache: G P_attn eta_c / (F_attn L).

    P_attn is the peak FLOP/s in the deployment's attention format, eta_c its compute
    efficiency, F_attn the profile's attention FLOPs per new token per cached token and L the
    context: even with every weight read for free, G GPUs cannot compute more attention than that.
    """
    return dep.gpus * dep.hardware.peak_for(dep.attention_dtype) * dep.compute_efficiency / (float(profile.attn_flops_per_context_token) * context_tokens)
