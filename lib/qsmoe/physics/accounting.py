"""Parameter, KV-cache and FLOP accounting of one architecture.

Conventions
-----------
* Parameters are counted per component and per stack (``encoder``/``decoder``;
  embeddings and the LM head are ``shared``). Norm weights are counted; T5's
  relative-position bias tables (a few thousand values) are not.
* ``active`` parameters are those a token touches: routed experts count
  ``top_k / n_routed_experts`` of their total; everything else counts fully.
* ``s = active / total`` over the whole model (the paper's sparsity).
* The *decode path* is what one generated token runs through: the decoder stack,
  the LM head, and the embedding (a lookup, so it costs no FLOPs). An encoder
  runs once per request at prefill.
"""
from __future__ import annotations

from dataclasses import dataclass

from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.errors import QsError
from qsmoe.specs.architecture import Attention, ModelSpec

COMPONENTS = ("embedding", "lm_head", "attention", "cross_attention", "dense_ffn", "shared_experts", "routed_experts", "router", "norms")
GATED = ("swiglu", "geglu")


@dataclass(frozen=True)
class ParamGroup:
    """Parameters of one component in one stack (counts, not bytes)."""

    component: str
    stack: str
    layers: int
    total_params: float
    active_params: float


def attention_params(att: Attention, d_model: int) -> int:
    """Weights of one attention block (projections plus its internal norms).

    MHA/GQA: d*(h*hd) [q] + 2*d*(kv*hd) [k,v] + (h*hd)*d [o]  (+ biases, q/k norms).
    MLA: d*r_q + r_q*h*(nope+rope) [q] + d*(r_kv+rope) [kv_a] + r_kv*h*(nope+v) [kv_b] + h*v*d [o] + norms.
    """
    if att.type == "mla":
        q_width = att.n_heads * (att.qk_nope_head_dim + att.qk_rope_head_dim)
        q = d_model * att.q_lora_rank + att.q_lora_rank + att.q_lora_rank * q_width if att.q_lora_rank else d_model * q_width
        kv_a = d_model * (att.kv_lora_rank + att.qk_rope_head_dim) + att.kv_lora_rank
        kv_b = att.kv_lora_rank * att.n_heads * (att.qk_nope_head_dim + att.v_head_dim)
        return q + kv_a + kv_b + att.n_heads * att.v_head_dim * d_model
    q_width = att.n_heads * att.head_dim
    kv_width = att.n_kv_heads * att.head_dim
    params = 2 * d_model * q_width + 2 * d_model * kv_width
    if att.qkv_bias:
        params += q_width + 2 * kv_width
    if att.qk_norm:
        params += 2 * att.head_dim
    return params


def ffn_params(d_model: int, d_ff: int, activation: str) -> int:
    """One FFN: 3*d*d_ff for gated activations (gate, up, down), else 2*d*d_ff."""
    return (3 if activation in GATED else 2) * d_model * d_ff


def _stack_groups(spec: ModelSpec, stack: str, n_layers: int, cross: bool) -> list[ParamGroup]:
    d = spec.d_model
    att = attention_params(spec.attention, d)
    n_moe = spec.moe_layer_count(n_layers)
    n_dense = n_layers - n_moe
    norms_per_layer = (3 if cross else 2) * d
    groups = [
        ParamGroup("attention", stack, n_layers, n_layers * att, n_layers * att),
        ParamGroup("norms", stack, n_layers, n_layers * norms_per_layer + d, n_layers * norms_per_layer + d),
    ]
    if cross:
        groups.append(ParamGroup("cross_attention", stack, n_layers, n_layers * att, n_layers * att))
    if n_dense:
        dense = ffn_params(d, spec.ffn_intermediate, spec.ffn_activation)
        groups.append(ParamGroup("dense_ffn", stack, n_dense, n_dense * dense, n_dense * dense))
    if n_moe:
        moe = spec.moe
        expert = ffn_params(d, moe.expert_intermediate, spec.ffn_activation)
        routed_total = n_moe * moe.n_routed_experts * expert
        groups.append(ParamGroup("routed_experts", stack, n_moe, routed_total, n_moe * moe.top_k * expert))
        router = n_moe * d * moe.n_routed_experts
        groups.append(ParamGroup("router", stack, n_moe, router, router))
        if moe.n_shared_experts:
            shared = n_moe * moe.n_shared_experts * ffn_params(d, moe.shared_intermediate, spec.ffn_activation)
            groups.append(ParamGroup("shared_experts", stack, n_moe, shared, shared))
    return groups


def param_groups(spec: ModelSpec) -> list[ParamGroup]:
    """Every parameter of the model, grouped by (component, stack)."""
    embed = spec.vocab_size * spec.d_model
    groups = [ParamGroup("embedding", "shared", 1, embed, embed)]
    if not spec.tie_embeddings:
        groups.append(ParamGroup("lm_head", "shared", 1, embed, embed))
    if spec.kind == "encoder_decoder":
        groups += _stack_groups(spec, "encoder", spec.n_encoder_layers, cross=False)
    groups += _stack_groups(spec, "decoder", spec.n_decoder_layers, cross=spec.kind == "encoder_decoder")
    return groups


@dataclass(frozen=True)
class ParamSummary:
    """Totals over a model; ``decode_active_params`` counts only the decode path."""

    total_params: float
    active_params: float
    decode_total_params: float
    decode_active_params: float
    groups: tuple[ParamGroup, ...]

    @property
    def s(self) -> float:
        """Active-parameter fraction s = active / total."""
        return self.active_params / self.total_params

    def by_component(self, *, decode_only: bool = False) -> dict[str, tuple[float, float]]:
        """{component: (total, active)} summed over stacks, in COMPONENTS order."""
        out: dict[str, tuple[float, float]] = {}
        for g in self.groups:
            if decode_only and g.stack == "encoder":
                continue
            total, active = out.get(g.component, (0.0, 0.0))
            out[g.component] = (total + g.total_params, active + g.active_params)
        return {c: out[c] for c in COMPONENTS if c in out}


def summarize(spec: ModelSpec) -> ParamSummary:
    groups = tuple(param_groups(spec))
    decode = [g for g in groups if g.stack != "encoder"]
    return ParamSummary(
        total_params=float(sum(g.total_params for g in groups)),
        active_params=float(sum(g.active_params for g in groups)),
        decode_total_params=float(sum(g.total_params for g in decode)),
        decode_active_params=float(sum(g.active_params for g in decode)),
        groups=groups,
    )


def kv_values_per_token(spec: ModelSpec) -> int:
    """Cached values per context token over all decoder layers.

    MHA/GQA: 2 * n_kv_heads * head_dim per layer (K and V).
    MLA: kv_lora_rank + qk_rope_head_dim per layer (the compressed latent and the shared RoPE key).
    Encoder-decoder: each context token is cached once per decoder layer, as cross-attention K/V
    (an encoder token) or self-attention K/V (a generated token); both are 2 * heads * d_kv.
    """
    att = spec.attention
    per_layer = att.kv_lora_rank + att.qk_rope_head_dim if att.type == "mla" else 2 * att.n_kv_heads * att.head_dim
    return per_layer * spec.n_decoder_layers


def kv_bytes_per_token(spec: ModelSpec, kv_dtype: str = "bf16") -> float:
    """KV-cache bytes per context token = kv_values_per_token * bytes per value."""
    return kv_values_per_token(spec) * bytes_per_value(kv_dtype, field="kv_dtype")


def attention_flops_per_token(spec: ModelSpec, context_tokens: float) -> float:
    """FLOPs of score and value products for one new token over ``context_tokens`` cached tokens.

    MHA/GQA: 4 * n_heads * head_dim * L per layer (QK^T and AV, 2 FLOPs per MAC).
    MLA (weights absorbed, as served for decode): 2*h*L*(r_kv + rope) + 2*h*L*r_kv per layer.
    """
    if context_tokens < 0:
        raise QsError(f"must be >= 0, got {context_tokens!r}", field="context")
    att = spec.attention
    if att.type == "mla":
        per_layer = 2 * att.n_heads * (2 * att.kv_lora_rank + att.qk_rope_head_dim)
    else:
        per_layer = 4 * att.n_heads * att.head_dim
    return per_layer * spec.n_decoder_layers * context_tokens


def prefill_attention_flops_per_token(spec: ModelSpec, context_tokens: float) -> float:
    """Score and value FLOPs for one prompt token over ``context_tokens`` earlier tokens at prefill.

    MHA/GQA: as at decode, 4 * n_heads * head_dim * L per layer.
    MLA is served un-absorbed at prefill (K and V expanded from the latent once per token):
    2*h*L*(nope + rope) for the scores plus 2*h*L*v for the values, per layer.
    """
    if context_tokens < 0:
        raise QsError(f"must be >= 0, got {context_tokens!r}", field="context")
    att = spec.attention
    if att.type != "mla":
        return attention_flops_per_token(spec, context_tokens)
    per_layer = 2 * att.n_heads * (att.qk_nope_head_dim + att.qk_rope_head_dim + att.v_head_dim)
    return per_layer * spec.n_decoder_layers * context_tokens


def matmul_flops_per_token(spec: ModelSpec) -> float:
    """2 FLOPs per active decode-path weight, except the embedding lookup (untied models)."""
    summary = summarize(spec)
    lookup = 0 if spec.tie_embeddings else spec.vocab_size * spec.d_model
    return 2.0 * (summary.decode_active_params - lookup)


def flops_per_token(spec: ModelSpec, context_tokens: float) -> float:
    """FLOPs to generate one token at a context of ``context_tokens``: matmuls + attention."""
    return matmul_flops_per_token(spec) + attention_flops_per_token(spec, context_tokens)
