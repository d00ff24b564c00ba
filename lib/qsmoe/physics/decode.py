"""Decode step time and throughput: a roofline per operation group, summed.

For each group on the busiest GPU,  t = R_s(F / (P * eta_c), Q / (BW * eta_m)),
with F its FLOPs, Q the bytes it reads (weights or KV cache), P the dense peak for its
format, BW the HBM bandwidth, eta the achievable fractions and R_s the soft roofline of
``kernels.roofline_time_s`` (max of the two at ``roofline_softness`` s = 0, their sum at 1;
the time counts as compute or memory by the larger side). The step time is

    T(B, L) = sum_groups t  +  T_comm  +  T_overhead,

where T_comm is the TP all-reduce or EP all-to-all time over the scale-up link (with
``comm_overlap`` only its excess over the rest of the step: max(0, T_comm - sum_groups t)),

and throughput is B / T tokens/s (one new token per sequence per step). Groups:
attention projections (with routers and norms), attention over the KV cache (MLA/GQA core,
computed at the peak of ``attention_dtype``), dense FFN, shared experts, routed experts (only the experts the batch
touches are read: reuse fragmentation, ``routing``; their grouped GEMMs run at
``grouped_gemm_efficiency`` of a dense GEMM's FLOP/s and pad each expert's tokens to the M block,
``kernels``), and the LM head.
Every function broadcasts over NumPy arrays of contexts, batches and profile fields.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsmoe.physics.comm import collectives_time_s
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.kernels import launch_floor_s, roofline_parts_s, tile_padding
from qsmoe.errors import QsError
from qsmoe.physics.memory import BATCH_TOO_LARGE, FEASIBLE, REASONS, WEIGHTS_DO_NOT_FIT, check_context, hbm_budget, kv_split
from qsmoe.physics.profile import DecodeProfile
from qsmoe.physics.routing import busiest_device_load, fraction_streamed

BOUNDS = ("compute", "weights", "kv", "comm", "overhead")


@dataclass(frozen=True)
class StepTime:
    """Seconds per decode step on the busiest GPU, split by what limits each part."""

    compute_s: np.ndarray
    weights_s: np.ndarray
    kv_s: np.ndarray
    comm_s: np.ndarray
    overhead_s: np.ndarray

    @property
    def total_s(self) -> np.ndarray:
        return self.compute_s + self.weights_s + self.kv_s + self.comm_s + self.overhead_s

    def bound(self) -> np.ndarray:
        """Index into BOUNDS of the largest part."""
        return np.argmax(np.stack([self.compute_s, self.weights_s, self.kv_s, self.comm_s, self.overhead_s]), axis=0)


@dataclass(frozen=True)
class DecodeResult:
    """Throughput at each design point; infeasible points have reason != 0 and zero throughput."""

    batch: np.ndarray
    max_batch: np.ndarray
    reason: np.ndarray
    step: StepTime
    gpus: int
    emitted_per_sequence: float = 1.0  # tokens each sequence emits per step (mtp_acceptance_length)

    @property
    def feasible(self) -> np.ndarray:
        return self.reason == FEASIBLE

    @property
    def step_time_s(self) -> np.ndarray:
        return np.where(self.feasible, self.step.total_s, 0.0)

    @property
    def tokens_per_s(self) -> np.ndarray:
        """B * a / T tokens/s, a the tokens each sequence emits per step (1 without MTP)."""
        return np.where(self.feasible, self.batch * self.emitted_per_sequence / np.where(self.feasible, self.step.total_s, 1.0), 0.0)

    @property
    def tokens_per_s_per_gpu(self) -> np.ndarray:
        return self.tokens_per_s / self.gpus

    def record(self, index: tuple = ()) -> dict:
        """One design point as a JSON-ready dict (None where a value is undefined).

        ``bound`` names the largest part of the step (compute, weights, kv, comm, overhead);
        ``batch_limited_by`` is "capacity" when the batch is the largest the HBM admits (more
        memory would admit more sequences), "request" when a smaller batch was asked for.
        """
        ok = bool(self.feasible[index])
        return {
            "feasible": ok,
            "reason": REASONS[int(self.reason[index])] or None,
            "batch": int(self.batch[index]) if ok else 0,
            "max_batch": int(self.max_batch[index]),
            "step_time_s": float(self.step_time_s[index]) if ok else None,
            "tokens_per_s": float(self.tokens_per_s[index]) if ok else None,
            "tokens_per_s_per_gpu": float(self.tokens_per_s_per_gpu[index]) if ok else None,
            "bound": BOUNDS[int(self.step.bound()[index])] if ok else None,
            "batch_limited_by": ("capacity" if self.batch[index] >= self.max_batch[index] else "request") if ok else None,
        }


class _Roofline:
    """Accumulates group times into the StepTime categories."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.bw = dep.hardware.hbm_bandwidth_bytes_per_s * dep.mem_efficiency
        self.kv_bw = dep.hardware.hbm_bandwidth_bytes_per_s * dep.attention_mem_efficiency
        self.attn_peak = dep.hardware.peak_for(dep.attention_dtype)  # FLOP/s of attention over the cache
        self.softness = dep.roofline_softness
        self.compute = self.weights = self.kv = 0.0

    def add_weights(self, group: str, params: object, tokens: np.ndarray, share: object) -> None:
        """A GEMM group: 2 * params * tokens * share FLOPs at the peak of the group's weight
        format, params * share weights read at that format's bytes (``Deployment.weight_format``)."""
        flops = 2 * params * tokens * share
        self.add(flops / self.dep.matmul_peak_flops(group), params * self.dep.group_weight_bytes(group) * share)

    def add(self, peak_seconds: np.ndarray, nbytes: np.ndarray, *, kv: bool = False) -> None:
        """A kernel of ``peak_seconds`` at the full peak of its format (scaled by compute_efficiency
        here) and ``nbytes`` read from HBM."""
        compute_s, memory_s = roofline_parts_s(peak_seconds / self.dep.compute_efficiency, nbytes / (self.kv_bw if kv else self.bw), self.softness)
        self.compute = self.compute + compute_s
        if kv:
            self.kv = self.kv + memory_s
        else:
            self.weights = self.weights + memory_s


def link_time_s(profile: DecodeProfile, dep: Deployment, tokens: np.ndarray, tokens_on_busiest_gpu: np.ndarray) -> np.ndarray:
    """Seconds on the scale-up (or scale-out) link for one forward pass over ``tokens`` tokens:
    sum over the layout's collectives of calls * (alpha + bytes_per_call / the deployment's link
    bandwidth), alpha the all-reduce or all-to-all latency (``comm.collective_time_s``).

    ep: a dispatch and a combine all-to-all per MoE layer, each b * k * d * (1 - 1/G) bytes
        (the busiest GPU's tokens to k experts, (1 - 1/G) of them remote).
    tp, tp-ep: an all-reduce after attention and after the FFN of each block (a third for
        cross-attention), ring cost 2 (G-1)/G * B * d bytes each (under tp-ep the second sums
        the experts' outputs); dp-tp: one per block (around the FFN only).
    Activations are ``layouts.ACTIVATION_BYTES`` each (``layouts.Layout.collectives``).
    """
    colls = dep.parallelism.collectives(profile, dep.gpus, tokens, tokens_on_busiest_gpu)
    if not colls:
        return np.zeros(np.broadcast(tokens, tokens_on_busiest_gpu).shape)
    return collectives_time_s(colls, dep.link_bytes_per_s, dep.allreduce_latency_s, dep.alltoall_latency_s, np.broadcast(tokens, tokens_on_busiest_gpu).shape)


def step_time(profile: DecodeProfile, dep: Deployment, context_tokens: object, batch: object) -> StepTime:
    """Seconds for one decode step of ``batch`` sequences at ``context_tokens`` each.

    Each sequence puts t = 1 + mtp_draft_tokens query tokens through the step: GEMM and attention
    FLOPs, routing and link traffic scale with t; KV and weight bytes are read once.
    """
    ctx = check_context(context_tokens)
    seqs = np.asarray(batch, dtype=float)
    t = dep.tokens_per_sequence_step
    b_total = seqs * t  # tokens in the step
    g = dep.gpus
    w = dep.weight_bytes
    ffn_peak = dep.matmul_peak_flops("ffn")
    par = dep.parallelism
    seqs_attn = par.attention_batch(seqs, g)  # sequences whose attention the busiest GPU computes
    b_attn = seqs_attn * t
    shard = par.attention_shard(g)  # share of attention-side weights and FLOPs per GPU
    roof = _Roofline(dep)

    roof.add_weights("attention", profile.proj_params, b_attn, shard)
    roof.add_weights("head", profile.head_params, b_attn, shard)
    kv_bytes = seqs_attn * profile.kv_values_per_token * dep.kv_bytes * ctx / kv_split(profile, dep)
    roof.add(b_attn * profile.attn_flops_per_context_token * ctx * shard / roof.attn_peak, kv_bytes, kv=True)

    b_ffn, ffn_shard = par.ffn_batch(b_total, b_attn), par.ffn_shard(g)
    for params in (profile.dense_ffn_params, profile.shared_params):
        roof.add_weights("ffn", params, b_ffn, ffn_shard)

    if profile.is_moe:
        expert = profile.routed_params / profile.n_experts  # one expert, all MoE layers
        if par.experts_sharded:
            load, touched = busiest_device_load(b_total, profile.n_experts, profile.top_k, g, dep.routing_skew)
            slice_ = min(1.0, profile.n_experts / g)  # an expert is split when G > E
            pad = tile_padding(load / np.maximum(touched, 1e-300), dep.grouped_gemm_block_m)
            roof.add(2 * expert * load * slice_ * pad / dep.grouped_gemm_efficiency / ffn_peak, expert * w * touched * slice_)
        else:
            phi = fraction_streamed(b_total, profile.n_experts, profile.top_k, dep.routing_skew)
            pad = tile_padding(b_total * profile.top_k / (profile.n_experts * np.maximum(phi, 1e-300)), dep.grouped_gemm_block_m)
            roof.add(2 * profile.routed_params * profile.top_k / profile.n_experts * b_total / g * pad / dep.grouped_gemm_efficiency / ffn_peak, profile.routed_params * w * phi / g)
    comm = link_time_s(profile, dep, b_total, b_attn) if dep.include_comm else np.zeros_like(b_total)
    if dep.comm_overlap:  # two-batch overlap: only communication longer than the rest of the step shows
        comm = np.maximum(comm - (roof.compute + roof.weights + roof.kv), 0.0)
    shape = np.broadcast(roof.compute, roof.weights, roof.kv, comm, b_total, ctx).shape
    return StepTime(
        compute_s=np.broadcast_to(roof.compute, shape),
        weights_s=np.broadcast_to(roof.weights, shape),
        kv_s=np.broadcast_to(roof.kv, shape),
        comm_s=np.broadcast_to(comm, shape),
        overhead_s=np.full(shape, fixed_step_s(profile, dep)),
    )


def fixed_step_s(profile: DecodeProfile, dep: Deployment) -> float:
    """Fixed seconds per forward pass: step_overhead_s + the engine's scheduling_s + the kernel
    launch floor N_kernels * t_0 (``kernels.launch_floor_s``)."""
    return dep.step_overhead_s + dep.engine_spec.scheduling_s + launch_floor_s(profile, dep.use_cuda_graphs, dep.kernel_floor_s, dep.kernel_launch_s)


def decode(profile: DecodeProfile, dep: Deployment, context_tokens: object, batch: object | None = None, *, enforce_budget: bool = True) -> DecodeResult:
    """Decode throughput at the given batch, or at the largest admissible batch when ``batch`` is None.

    ``enforce_budget=False``: a stated batch larger than the HBM budget admits is computed anyway
    (the caller knows it ran); only weights that cannot fit stay infeasible."""
    budget = hbm_budget(profile, dep, context_tokens)
    if batch is None:
        b = budget.max_batch
        reason = budget.reason
    else:
        b = np.asarray(batch, dtype=float)
        if not np.all(np.isfinite(b)) or np.any(b < 1):
            raise QsError(f"must be a whole number of sequences >= 1, got {batch!r}", field="batch")
        if enforce_budget:
            reason = np.where(budget.reason != FEASIBLE, budget.reason, np.where(b > budget.max_batch, BATCH_TOO_LARGE, FEASIBLE))
        else:
            reason = np.where(budget.reason == WEIGHTS_DO_NOT_FIT, WEIGHTS_DO_NOT_FIT, FEASIBLE)
    b, max_batch, reason = np.broadcast_arrays(b, budget.max_batch, reason)
    step = step_time(profile, dep, context_tokens, np.maximum(b, 1.0))
    shape = step.total_s.shape
    return DecodeResult(
        batch=np.broadcast_to(b, shape),
        max_batch=np.broadcast_to(max_batch, shape),
        reason=np.broadcast_to(reason, shape),
        step=step,
        gpus=dep.gpus,
        emitted_per_sequence=dep.mtp_acceptance_length,
    )
