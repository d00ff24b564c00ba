"""The qs inequality: when is an MoE structurally slower than its quality-matched dense model?

Memory-bound decode at the largest admissible batch (per replica: usable HBM M, MoE weights W,
dense weights q*s*W in the same format, KV bytes per sequence kappa for the MoE and rho*kappa
for the dense model, the MoE streaming a fraction phi(B) of its expert weights per step):

    B_moe = (M - W) / kappa,             T_moe   = (phi*W_r + W_o + B_moe*kappa) / BW = (M - (1 - phi) W_r) / BW
    B_dense = (M - qsW) / (rho kappa),   T_dense = M / BW

so the dense/MoE throughput ratio is

    R = (M - qsW) (M - (1 - phi) W_r) / (rho M (M - W)),

and the MoE is disadvantaged (R > 1) iff

    q*s < theta = [M - rho M (M - W) / (M - (1 - phi) W_r)] / W,

with W_r <= W the routed-expert bytes on the decode path (the only weights a step may skip).

With phi -> 1 (a large batch touches every expert) and rho = 1 this is the simple form
q*s < 1: the dense model wins whenever its weights are smaller than the MoE's. Compute-bound
regimes (short context, large batch) are outside this form: there R -> 1/q (fewer FLOPs win).
"""
from __future__ import annotations

import numpy as np


def memory_bound_ratio(qs: object, usable_bytes: object, moe_weight_bytes: object, phi: object = 1.0, kv_ratio: object = 1.0, routed_bytes: object | None = None) -> np.ndarray:
    """R = (M - qsW)(M - (1 - phi)W_r) / (rho M (M - W)), W_r = ``routed_bytes`` (default W).

    0 where the dense model does not fit; where the MoE does not fit (M <= W) R is unbounded
    and 0 is returned too: callers test ``moe_fits`` first.
    """
    qs, m, w, phi, rho = (np.asarray(x, dtype=float) for x in (qs, usable_bytes, moe_weight_bytes, phi, kv_ratio))
    w_r = w if routed_bytes is None else np.asarray(routed_bytes, dtype=float)
    moe_free = m - w
    dense_free = np.maximum(m - qs * w, 0.0)
    safe = np.where(moe_free > 0, moe_free, 1.0)
    return np.where(moe_free > 0, dense_free * (m - (1 - phi) * w_r) / (rho * m * safe), 0.0)


def qs_threshold(usable_bytes: object, moe_weight_bytes: object, phi: object = 1.0, kv_ratio: object = 1.0, routed_bytes: object | None = None) -> np.ndarray:
    """theta = [M - rho M (M - W) / (M - (1 - phi) W_r)] / W  (equals 1 when phi = rho = 1)."""
    m, w, phi, rho = (np.asarray(x, dtype=float) for x in (usable_bytes, moe_weight_bytes, phi, kv_ratio))
    w_r = w if routed_bytes is None else np.asarray(routed_bytes, dtype=float)
    streamed = m - (1 - phi) * w_r  # > 0 whenever the MoE fits (m > w >= w_r)
    return (m - rho * m * (m - w) / np.where(streamed > 0, streamed, 1.0)) / w


def predicted_disadvantaged(q: object, s: object, threshold: object = 1.0) -> np.ndarray:
    """The qs inequality: True where q*s < threshold (1 in the simple large-batch form)."""
    return np.asarray(q, dtype=float) * np.asarray(s, dtype=float) < np.asarray(threshold, dtype=float)


def capacity_lever(qs: float, usable_bytes: float, moe_weight_bytes: float) -> float:
    """(M - qsW) / (M - W): the dense/MoE ratio of largest batches (KV room), i.e. R with
    phi = rho = 1.  Defined only where the MoE fits (M > W); callers test that first."""
    return (usable_bytes - qs * moe_weight_bytes) / (usable_bytes - moe_weight_bytes)
