"""The few numbers the decode model needs from an architecture (a ``DecodeProfile``).

Counts are parameters, not bytes (the deployment applies the dtype). Fields may be
NumPy arrays, so one profile can stand for a family of models (e.g. a dense
comparator over a grid of q).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from qsmoe.physics.accounting import attention_flops_per_token, kv_values_per_token, prefill_attention_flops_per_token, summarize
from qsmoe.specs.architecture import ModelSpec

Num = float | np.ndarray
ATTENTION_SIDE = ("embedding", "lm_head", "attention", "cross_attention", "router", "norms")


@dataclass(frozen=True)
class DecodeProfile:
    name: str
    total_params: Num
    active_params: Num
    resident_routed_params: Num  # all routed experts, every stack (held in HBM)
    resident_other_params: Num  # everything else held in HBM
    resident_attention_params: Num  # attention, norms, routers and embeddings of every stack (replicated under DP attention)
    proj_params: Num  # decode path: attention projections, cross-attention Q/O, router, norms
    dense_ffn_params: Num  # decode path: dense FFN layers
    shared_params: Num  # decode path: shared experts
    head_params: Num  # LM head (the tied embedding where tied)
    embedding_params: Num  # input embedding plus an untied LM head
    routed_params: Num  # decode path: all routed expert weights
    n_experts: int  # routed experts per MoE layer (1 for dense)
    top_k: int
    kv_values_per_token: Num  # cached values per context token, all layers
    attn_flops_per_context_token: Num  # score+value FLOPs per new token per cached token (decode)
    prefill_attn_flops_per_context_token: Num  # the same at prefill (MLA un-absorbed)
    kv_head_split: int  # ways one sequence's KV can be split under TP (1 for MLA)
    d_model: Num
    n_blocks: Num  # decoder blocks on the decode path
    allreduces_per_step: Num  # TP all-reduces per decode step (2 per block, 3 with cross-attention)
    moe_layers: int  # MoE layers on the decode path

    @property
    def is_moe(self) -> bool:
        # moe_layers too: an MoE with a single routed expert is still routed (its expert
        # weights live in routed_params, which the decode step reads only for an MoE).
        return self.n_experts > 1 or self.moe_layers > 0

    @property
    def s(self) -> Num:
        return self.active_params / self.total_params

    @property
    def decode_ffn_active_params(self) -> Num:
        """FFN weights one decode token multiplies: dense FFN, shared and top-k routed experts."""
        return self.dense_ffn_params + self.shared_params + self.routed_params * self.top_k / self.n_experts

    def decode_flops_per_token(self, context_tokens: Num) -> Num:
        """FLOPs to decode one token at ``context_tokens``, as :mod:`qsmoe.physics.decode` counts them:
        2 per decode-path weight (projections, LM head, dense FFN, shared and top-k routed experts)
        plus the attention FLOPs over the cache."""
        weights = self.proj_params + self.head_params + self.decode_ffn_active_params
        return 2 * weights + self.attn_flops_per_context_token * context_tokens

    @property
    def ffn_decode_share(self) -> Num:
        """Share of the resident FFN weights that lie on the decode path (1 for decoder-only models)."""
        return (self.dense_ffn_params + self.shared_params + self.routed_params) / (self.resident_params - self.resident_attention_params)

    @property
    def resident_params(self) -> Num:
        return self.resident_routed_params + self.resident_other_params

    def with_changes(self, **changes: object) -> "DecodeProfile":
        return replace(self, **changes)


def profile_of(spec: ModelSpec) -> DecodeProfile:
    """Reduce a ModelSpec to its DecodeProfile."""
    summary = summarize(spec)
    dec = summary.by_component(decode_only=True)
    routed_resident = sum(g.total_params for g in summary.groups if g.component == "routed_experts")
    head = dec["lm_head"][0] if "lm_head" in dec else dec["embedding"][0]
    moe = spec.moe
    att = spec.attention
    # cross-attention K/V of the encoder output are projected once at prefill and then cached
    cross_kv = 2 * spec.d_model * att.n_kv_heads * att.head_dim * spec.n_decoder_layers if "cross_attention" in dec else 0
    proj = sum(dec.get(c, (0.0, 0.0))[0] for c in ("attention", "cross_attention", "router", "norms")) - cross_kv
    return DecodeProfile(
        name=spec.id,
        total_params=summary.total_params,
        active_params=summary.active_params,
        resident_routed_params=float(routed_resident),
        resident_other_params=summary.total_params - routed_resident,
        resident_attention_params=float(sum(g.total_params for g in summary.groups if g.component in ATTENTION_SIDE)),
        proj_params=float(proj),
        dense_ffn_params=dec.get("dense_ffn", (0.0, 0.0))[0],
        shared_params=dec.get("shared_experts", (0.0, 0.0))[0],
        head_params=float(head),
        embedding_params=float(sum(g.total_params for g in summary.groups if g.component in ("embedding", "lm_head"))),
        routed_params=dec.get("routed_experts", (0.0, 0.0))[0],
        n_experts=moe.n_routed_experts if moe else 1,
        top_k=moe.top_k if moe else 1,
        kv_values_per_token=float(kv_values_per_token(spec)),
        attn_flops_per_context_token=attention_flops_per_token(spec, 1.0),
        prefill_attn_flops_per_context_token=prefill_attention_flops_per_token(spec, 1.0),
        kv_head_split=1 if att.type == "mla" else att.n_kv_heads,
        d_model=float(spec.d_model),
        n_blocks=spec.n_decoder_layers,
        allreduces_per_step=(3 if spec.kind == "encoder_decoder" else 2) * spec.n_decoder_layers,
        moe_layers=spec.moe_layer_count(spec.n_decoder_layers),
    )

