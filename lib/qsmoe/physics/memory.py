"""HBM budget per GPU, the largest admissible batch, and feasibility.

Per GPU:  usable = M * (1 - reserve);  free = usable - W_gpu;
          B_max  = floor(free / kv_seq_gpu)            (tp: every GPU holds a share of every sequence)
          B_max  = G * floor(free / kv_seq_gpu)        (ep, dp-tp: each GPU holds whole sequences)
with kv_seq_gpu = kv_bytes_per_token * L / split and split = h_kv / ceil(h_kv / G) under tp
(G when G divides the h_kv KV heads; 1 for MLA, whose shared latent cannot be split by heads),
1 under data-parallel attention.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsmoe.physics.deployment import Deployment
from qsmoe.physics.layouts import routed_share_per_gpu  # noqa: F401  (re-exported: part of the memory API)
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
    """Whether each GPU keeps whole sequences (the layout's ``data_parallel_attention``)."""
    return dep.parallelism.data_parallel_attention


def weight_bytes_per_gpu(profile: DecodeProfile, dep: Deployment) -> np.ndarray:
    """Resident weight bytes on the fullest GPU, each weight group at its own format:

    P(W) * w_ffn + a * X,    X = W_proj * (w_attention - w_ffn) + W_emb * (w_head - w_ffn)

    with P the layout's params_per_gpu (tp: W/G; ep: W_other + W_routed ceil(E/G)/E; dp-tp:
    W_attention + (W - W_attention)/G; tp-ep: W_other/G + W_routed ceil(E/G)/E), a its share of
    the attention side per GPU (tp, tp-ep: 1/G; ep, dp-tp: 1, replicated) and X the attention
    side's bytes beyond w_ffn (:func:`_attention_extra_bytes`)."""
    par, g = dep.parallelism, dep.gpus
    return np.asarray(par.params_per_gpu(profile, g) * dep.weight_bytes + par.attention_shard(g) * _attention_extra_bytes(profile, dep), dtype=float)


def weight_bytes_total(profile: DecodeProfile, dep: Deployment) -> np.ndarray:
    """Bytes of every resident parameter once, each group at its format: W * w_ffn + X
    (:func:`weight_bytes_per_gpu` with every parameter on one GPU)."""
    return np.asarray(profile.resident_params * dep.weight_bytes + _attention_extra_bytes(profile, dep), dtype=float)


def _attention_extra_bytes(profile: DecodeProfile, dep: Deployment) -> float:
    """X = W_proj * (w_attention - w_ffn) + W_emb * (w_head - w_ffn) [bytes]: what the attention side
    (W_emb the input embedding and LM head, W_proj the rest: projections, norms, routers) weighs
    beyond the FFN format, each group at its own (``Deployment.weight_format``)."""
    emb = profile.embedding_params
    proj = profile.resident_attention_params - emb
    w_ffn = dep.weight_bytes
    return proj * (dep.group_weight_bytes("attention") - w_ffn) + emb * (dep.group_weight_bytes("head") - w_ffn)


def kv_split(profile: DecodeProfile, dep: Deployment) -> float:
    """Ways one sequence's KV cache is divided across GPUs (``Layout.kv_split``): 1 under
    data-parallel attention; h_kv / ceil(h_kv / G) under tp."""
    return dep.parallelism.kv_split(profile, dep.gpus)


def hbm_budget(profile: DecodeProfile, dep: Deployment, context_tokens: object) -> HbmBudget:
    ctx = check_context(context_tokens)
    weights = weight_bytes_per_gpu(profile, dep)
    free = dep.usable_hbm_bytes - weights
    kv_seq = profile.kv_values_per_token * dep.kv_bytes * np.maximum(ctx, 1.0) / kv_split(profile, dep)
    per_gpu = np.floor(np.maximum(free, 0.0) / kv_seq)
    max_batch = dep.parallelism.replica_batch(per_gpu, dep.gpus)
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
