"""How a layout places a model on G GPUs: one small class per layout, and a registry by name.

A layout answers, for a DecodeProfile on G GPUs:
  weights per GPU      params_per_gpu(p, G)              parameters resident on the fullest GPU
  KV split             kv_split(p, G)                    ways one sequence's KV cache is divided
  admissible batch     replica_batch(b_gpu, G)           sequences the replica holds, from those one GPU holds
  attention share      attention_batch(B, G), attention_shard(G)
                                                         sequences (and share of attention-side weights
                                                         and FLOPs) on the busiest GPU
  FFN share            ffn_batch(B, b_attn, G), ffn_shard(G)
  routed experts       experts_sharded                   expert parallel (busiest device's load) or
                                                         every expert sliced over all G GPUs
  collectives          collectives(p, G, B, b_attn)      what goes on the link in one forward pass

Parameter files keep the name (``tp``, ``ep``, ``dp-tp``, ``tp-ep``); ``REGISTRY`` maps it to the object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qsmoe.physics.profile import DecodeProfile

ACTIVATION_BYTES = 2.0  # activations cross the links in bf16

#: collective kinds (comm.py prices each as latency + bytes / bandwidth)
ALL_REDUCE, DISPATCH, COMBINE = "all_reduce", "dispatch", "combine"


@dataclass(frozen=True)
class Collective:
    """``calls`` invocations per forward pass of one collective, each moving ``bytes_per_call``
    bytes per GPU over the link (arrays broadcast over batches)."""

    kind: str
    calls: float
    bytes_per_call: np.ndarray


def routed_share_per_gpu(n_experts: int, gpus: int) -> float:
    """Share of the routed-expert weights on the fullest GPU under expert parallelism:
    ceil(E/G)/E when G <= E, else 1/G (each expert split over G/E GPUs)."""
    return math.ceil(n_experts / gpus) / n_experts if gpus <= n_experts else 1.0 / gpus


def all_reduce_bytes(tokens: np.ndarray, d_model: float, gpus: int) -> np.ndarray:
    """Ring all-reduce of a tokens x d activation, per GPU: 2 (G-1)/G * tokens * d * ACTIVATION_BYTES bytes."""
    return 2 * (gpus - 1) / gpus * tokens * d_model * ACTIVATION_BYTES


class Layout:
    """Base: tensor parallel everywhere (every GPU holds a 1/G slice of every weight and of every
    sequence's attention)."""

    name = "tp"
    description = "attention and FFN tensor-parallel over all GPUs"
    data_parallel_attention = False
    experts_sharded = False  # expert parallel: whole experts per GPU
    ffn_replicated = False  # dense FFN and shared experts replicated per GPU

    def params_per_gpu(self, p: DecodeProfile, gpus: int) -> np.ndarray:
        """Resident parameters on the fullest GPU: W / G."""
        return np.asarray(p.resident_params / gpus, dtype=float)

    def kv_split(self, p: DecodeProfile, gpus: int) -> float:
        """h_kv / ceil(h_kv / G) for h_kv KV heads (the GPU with the most heads sets the footprint;
        G > h_kv replicates heads; MLA's single latent, h_kv = 1, is never split)."""
        heads = p.kv_head_split
        return heads / math.ceil(heads / gpus)

    def replica_batch(self, per_gpu: np.ndarray, gpus: int) -> np.ndarray:
        """Sequences in the replica when one GPU holds a share of each of ``per_gpu`` sequences."""
        return per_gpu

    def replica_kv_copies(self, gpus: int) -> int:
        """GPUs over which one sequence's per-GPU KV footprint is repeated (G under tp, else 1)."""
        return gpus

    def attention_batch(self, batch: np.ndarray, gpus: int) -> np.ndarray:
        """Sequences whose attention the busiest GPU computes."""
        return batch

    def attention_shard(self, gpus: int) -> float:
        """Share of the attention-side weights and FLOPs per GPU (1/G)."""
        return 1.0 / gpus

    def prefill_kv_ways(self, p: DecodeProfile, gpus: int) -> float:
        """Ways the KV written by a prefill of many prompts is divided over the GPUs."""
        return self.kv_split(p, gpus)

    def ffn_batch(self, batch: np.ndarray, attention_batch: np.ndarray) -> np.ndarray:
        """Tokens the busiest GPU's dense FFN and shared experts multiply."""
        return attention_batch if self.ffn_replicated else batch

    def ffn_shard(self, gpus: int) -> float:
        """Share of the dense-FFN and shared-expert weights per GPU."""
        return 1.0 if self.ffn_replicated else 1.0 / gpus

    def all_reduces(self, p: DecodeProfile) -> float:
        """Tensor-parallel all-reduces per forward pass: after attention and after the FFN of each
        block (a third for cross-attention)."""
        return p.allreduces_per_step

    def collectives(self, p: DecodeProfile, gpus: int, tokens: np.ndarray, tokens_on_busiest_gpu: np.ndarray) -> list[Collective]:
        """What crosses the link in one forward pass over ``tokens`` tokens: the all-reduces
        (none on one GPU)."""
        if gpus == 1 or self.all_reduces(p) == 0:
            return []
        return [Collective(ALL_REDUCE, float(self.all_reduces(p)), all_reduce_bytes(np.asarray(tokens, dtype=float), p.d_model, gpus))]


class TensorParallel(Layout):
    pass


class DataParallelTensorParallel(Layout):
    """Data-parallel attention (each GPU keeps whole sequences and their KV), every FFN
    tensor-parallel (for dense models with MLA, whose latent KV cannot be split by heads)."""

    name = "dp-tp"
    description = "data-parallel attention, every FFN tensor-parallel"
    data_parallel_attention = True

    def params_per_gpu(self, p: DecodeProfile, gpus: int) -> np.ndarray:
        """W_attention + (W - W_attention) / G."""
        return np.asarray(p.resident_attention_params + (p.resident_params - p.resident_attention_params) / gpus, dtype=float)

    def kv_split(self, p: DecodeProfile, gpus: int) -> float:
        """1: each GPU holds whole sequences."""
        return 1.0

    def replica_batch(self, per_gpu: np.ndarray, gpus: int) -> np.ndarray:
        """G * per_gpu: each GPU holds its own sequences."""
        return per_gpu * gpus

    def replica_kv_copies(self, gpus: int) -> int:
        return 1

    def attention_batch(self, batch: np.ndarray, gpus: int) -> np.ndarray:
        """ceil(B / G) on the busiest GPU."""
        return np.ceil(batch / gpus)

    def attention_shard(self, gpus: int) -> float:
        """1: attention weights are replicated."""
        return 1.0

    def prefill_kv_ways(self, p: DecodeProfile, gpus: int) -> float:
        """G: the prompts are spread over the GPUs."""
        return float(gpus)

    def all_reduces(self, p: DecodeProfile) -> float:
        """One per block, around the FFN only."""
        return p.n_blocks


class ExpertParallel(DataParallelTensorParallel):
    """Data-parallel attention, routed experts sharded over the GPUs (expert parallel), dense FFN
    and shared experts replicated (DeepSeek/SGLang)."""

    name = "ep"
    description = "data-parallel attention, routed experts expert-parallel, dense FFN and shared experts replicated"
    experts_sharded = True
    ffn_replicated = True

    def params_per_gpu(self, p: DecodeProfile, gpus: int) -> np.ndarray:
        """W_other + W_routed * ceil(E/G)/E (the GPU holding the most experts; when G > E every
        expert is split over G/E GPUs and each holds W_routed/G)."""
        return np.asarray(p.resident_other_params + p.resident_routed_params * routed_share_per_gpu(p.n_experts, gpus), dtype=float)

    def all_reduces(self, p: DecodeProfile) -> float:
        """None: nothing is tensor-parallel."""
        return 0.0

    def collectives(self, p: DecodeProfile, gpus: int, tokens: np.ndarray, tokens_on_busiest_gpu: np.ndarray) -> list[Collective]:
        """A dispatch and a combine all-to-all per MoE layer, each sending the busiest GPU's
        tokens' activations to k experts, (1 - 1/G) of them remote:
        b * k * d * (1 - 1/G) * ACTIVATION_BYTES bytes per call."""
        if gpus == 1 or not p.is_moe:
            return []
        per_call = np.asarray(tokens_on_busiest_gpu, dtype=float) * p.top_k * p.d_model * (1 - 1 / gpus) * ACTIVATION_BYTES
        return [Collective(DISPATCH, float(p.moe_layers), per_call), Collective(COMBINE, float(p.moe_layers), per_call)]


class TensorParallelExpertParallel(Layout):
    """Tensor-parallel attention, dense FFN and shared experts; routed experts expert-parallel
    (vLLM's --tensor-parallel-size G --enable-expert-parallel; TensorRT-LLM with tp_size = ep_size
    = G and no attention DP). After the attention all-reduce every GPU holds every token; each runs
    its own experts on the tokens routed to them, and one all-reduce sums the experts' outputs, so
    the link carries tensor parallelism's all-reduces and no all-to-all. The KV cache is placed as
    under ``tp`` (MLA's latent copied on every GPU)."""

    name = "tp-ep"
    description = "attention, dense FFN and shared experts tensor-parallel, routed experts expert-parallel"
    experts_sharded = True

    def params_per_gpu(self, p: DecodeProfile, gpus: int) -> np.ndarray:
        """(W - W_routed) / G + W_routed * ceil(E/G)/E (the GPU holding the most experts)."""
        return np.asarray((p.resident_params - p.resident_routed_params) / gpus + p.resident_routed_params * routed_share_per_gpu(p.n_experts, gpus), dtype=float)


REGISTRY: dict[str, Layout] = {cls.name: cls() for cls in (TensorParallel, ExpertParallel, DataParallelTensorParallel, TensorParallelExpertParallel)}
LAYOUTS: tuple[str, ...] = tuple(REGISTRY)  # the names parameter files use
#: Layouts whose routed experts are expert-parallel (whole experts per GPU); the others slice them.
EXPERT_PARALLEL_LAYOUTS: tuple[str, ...] = tuple(name for name, layout in REGISTRY.items() if layout.experts_sharded)
