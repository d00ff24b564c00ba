"""HBM budget per GPU, the largest admissible batch, and feasibility.

Per GPU:  usable = M * (1 - reserve);  free = usable - W_gpu;
          B_max  = floor(free / kv_seq_gpu)            (tp: every GPU holds a share of every sequence)
          B_max  = G * floor(free / kv_seq_gpu)        (ep, dp-tp: each GPU holds whole sequences)
with kv_seq_gpu = kv_bytes_per_token * L / split and split = h_kv / ceil(h_kv / G) under tp
(G when G divides the h_kv KV heads; 1 for MLA, whose shared latent cannot be split by heads),
1 under data-parallel attention.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qsmoe.physics.deployment import Deployment
from qsmoe.errors import QsError
from qsmoe.physics.profile import DecodeProfile

FEASIBLE, WEIGHTS_DO_NOT_FIT, NO_SEQUENCE_FITS, BATCH_TOO_LARGE = 0, 1, 2, 3
REASONS = {
    FEASIBLE: "",
    WEIGHTS_DO_NOT_FIT: "weights alone do not fit in HBM",
    NO_SEQUENCE_FITS: "not even one sequence's KV cache fits at this context",
    BATCH_TOO_LARGE: "the requested batch exceeds the largest admissible batch",
}


@dataclass(frozen=True)
class HbmBudget:
    """Per-GPU memory budget (bytes) and the admissible batch; fields broadcast over contexts."""

    usable_bytes: float
    reserve_bytes: float
    weight_bytes_per_gpu: np.ndarray
    kv_capacity_bytes_per_gpu: np.ndarray
    kv_bytes_per_sequence_per_gpu: np.ndarray
    max_batch: np.ndarray
    reason: np.ndarray  # FEASIBLE, WEIGHTS_DO_NOT_FIT or NO_SEQUENCE_FITS

    @property
    def feasible(self) -> np.ndarray:
        return self.reason == FEASIBLE


def check_context(context_tokens: object) -> np.ndarray:
    """Context lengths as a float array; a clear error for negative or non-finite values."""
    ctx = np.asarray(context_tokens, dtype=float)
    if not np.all(np.isfinite(ctx)) or np.any(ctx < 0):
        raise QsError(f"must be a finite number of tokens >= 0, got {context_tokens!r}", field="context")
    return ctx


def data_parallel_attention(dep: Deployment) -> bool:
    return dep.layout in ("ep", "dp-tp")


def weight_bytes_per_gpu(profile: DecodeProfile, dep: Deployment) -> np.ndarray:
    """Resident weights per GPU: sharded /G, except what the layout replicates.

    tp: W/G.  ep: W_other + W_routed * ceil(E/G)/E (the GPU holding the most experts; when
    G > E every expert is split over G/E GPUs and each holds W_routed/G).
    dp-tp: W_attention + (W - W_attention)/G.
    """
    g = dep.gpus
    w = dep.weight_bytes
    if dep.layout == "tp":
        params = profile.resident_params / g
    elif dep.layout == "ep":
        params = profile.resident_other_params + profile.resident_routed_params * routed_share_per_gpu(profile.n_experts, g)
    else:
        params = profile.resident_attention_params + (profile.resident_params - profile.resident_attention_params) / g
    return np.asarray(params * w, dtype=float)


def routed_share_per_gpu(n_experts: int, gpus: int) -> float:
    """Share of the routed-expert weights on the fullest GPU under expert parallelism:
    ceil(E/G)/E when G <= E, else 1/G (each expert split over G/E GPUs)."""
    return math.ceil(n_experts / gpus) / n_experts if gpus <= n_experts else 1.0 / gpus


def kv_split(profile: DecodeProfile, dep: Deployment) -> float:
    """Ways one sequence's KV cache is divided across GPUs: 1 under data-parallel attention;
    under tp, h_kv / ceil(h_kv / G) for h_kv KV heads (the GPU with the most heads sets the
    footprint; G > h_kv replicates heads, and MLA's single latent, h_kv = 1, is never split)."""
    if data_parallel_attention(dep):
        return 1.0
    heads = profile.kv_head_split
    return heads / math.ceil(heads / dep.gpus)


def hbm_budget(profile: DecodeProfile, dep: Deployment, context_tokens: object) -> HbmBudget:
    ctx = check_context(context_tokens)
    weights = weight_bytes_per_gpu(profile, dep)
    free = dep.usable_hbm_bytes - weights
    kv_seq = profile.kv_values_per_token * dep.kv_bytes * np.maximum(ctx, 1.0) / kv_split(profile, dep)
    per_gpu = np.floor(np.maximum(free, 0.0) / kv_seq)
    max_batch = per_gpu * dep.gpus if data_parallel_attention(dep) else per_gpu
    reason = np.where(free <= 0, WEIGHTS_DO_NOT_FIT, np.where(max_batch < 1, NO_SEQUENCE_FITS, FEASIBLE))
    return HbmBudget(
        usable_bytes=dep.usable_hbm_bytes,
        reserve_bytes=dep.hardware.hbm_bytes * dep.reserve_fraction,
        weight_bytes_per_gpu=np.broadcast_to(weights, np.broadcast(weights, ctx).shape),
        kv_capacity_bytes_per_gpu=np.broadcast_to(np.maximum(free, 0.0), np.broadcast(free, ctx).shape),
        kv_bytes_per_sequence_per_gpu=np.asarray(kv_seq),
        max_batch=np.asarray(max_batch),
        reason=np.asarray(reason),
    )
