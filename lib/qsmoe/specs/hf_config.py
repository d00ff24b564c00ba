"""Bring your own model: read a Hugging Face ``config.json`` into a ModelSpec.

Supported ``model_type`` values: llama, mistral, mixtral, qwen2, qwen3, qwen3_moe,
deepseek_v3. Anything else is refused with a message naming the field and value.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from qsmoe.errors import QsError
from qsmoe.specs.architecture import Attention, Moe, ModelSpec
from qsmoe.specs.fileio import Fields
from qsmoe.specs.limits import (
    MAX_CONTEXT_TOKENS,
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_SHARED_EXPERTS,
    MAX_VOCAB,
    MAX_WIDTH,
)

SUPPORTED_FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "deepseek_v3")
_GATED_ACTIVATIONS = {"silu": "swiglu", "swish": "swiglu", "gelu": "geglu", "gelu_pytorch_tanh": "geglu"}


def _activation(f: Fields) -> str:
    act = f.string("hidden_act", "silu")
    if act not in _GATED_ACTIVATIONS:
        raise f.error("hidden_act", f"unsupported activation {act!r} (known: {', '.join(_GATED_ACTIVATIONS)})")
    return _GATED_ACTIVATIONS[act]


def check_moe_layers(moe: Moe, n_layers: int, error: Callable[[str, str], QsError], first_field: str, period_field: str) -> None:
    """Refuse an MoE that leaves no MoE layer in its ``n_layers`` blocks: more leading dense
    layers than blocks, or a layer period longer than the blocks after them (``error(field,
    message)`` names the file's own spelling of the field)."""
    if moe.first_dense_layers >= n_layers:
        raise error(first_field, f"must be below the {n_layers} layers (an MoE needs at least one MoE layer), got {moe.first_dense_layers}")
    if moe.layer_period > n_layers - moe.first_dense_layers:
        raise error(period_field, f"must be at most the {n_layers - moe.first_dense_layers} layers after the leading dense ones (an MoE needs at least one MoE layer), got {moe.layer_period}")


def _gqa(f: Fields, family: str) -> Attention:
    n_heads = f.integer("num_attention_heads", maximum=MAX_HEADS)
    n_kv = f.integer("num_key_value_heads", n_heads, maximum=MAX_HEADS)
    head_dim = f.integer("head_dim", f.integer("hidden_size", maximum=MAX_WIDTH) // n_heads, maximum=MAX_HEAD_DIM)
    if n_heads % n_kv:
        raise f.error("num_key_value_heads", f"must divide num_attention_heads ({n_heads}), got {n_kv}")
    return Attention(
        type="mha" if n_kv == n_heads else "gqa",
        n_heads=n_heads,
        n_kv_heads=n_kv,
        head_dim=head_dim,
        qkv_bias=family == "qwen2" or f.boolean("attention_bias", False),
        qk_norm=family in ("qwen3", "qwen3_moe"),
    )


def _mla(f: Fields) -> Attention:
    return Attention(
        type="mla",
        n_heads=f.integer("num_attention_heads", maximum=MAX_HEADS),
        q_lora_rank=f.integer("q_lora_rank", maximum=MAX_WIDTH) if f.has("q_lora_rank") else None,
        kv_lora_rank=f.integer("kv_lora_rank", maximum=MAX_WIDTH),
        qk_nope_head_dim=f.integer("qk_nope_head_dim", maximum=MAX_HEAD_DIM),
        qk_rope_head_dim=f.integer("qk_rope_head_dim", maximum=MAX_HEAD_DIM),
        v_head_dim=f.integer("v_head_dim", maximum=MAX_HEAD_DIM),
    )


def _moe(f: Fields, family: str) -> Moe | None:
    if family == "mixtral":
        return Moe(f.integer("num_local_experts", maximum=MAX_EXPERTS), f.integer("num_experts_per_tok", maximum=MAX_EXPERTS), f.integer("intermediate_size", maximum=MAX_WIDTH))
    if family == "qwen3_moe":
        if f.raw("mlp_only_layers", []):
            raise f.error("mlp_only_layers", "non-empty lists are not supported; give the model as a book YAML file")
        return Moe(
            f.integer("num_experts", maximum=MAX_EXPERTS),
            f.integer("num_experts_per_tok", maximum=MAX_EXPERTS),
            f.integer("moe_intermediate_size", maximum=MAX_WIDTH),
            layer_period=f.integer("decoder_sparse_step", 1, maximum=MAX_LAYERS),
        )
    if family == "deepseek_v3":
        n_shared = f.integer("n_shared_experts", 0, minimum=0, maximum=MAX_SHARED_EXPERTS)
        return Moe(
            f.integer("n_routed_experts", maximum=MAX_EXPERTS),
            f.integer("num_experts_per_tok", maximum=MAX_EXPERTS),
            f.integer("moe_intermediate_size", maximum=MAX_WIDTH),
            n_shared_experts=n_shared,
            shared_intermediate=f.integer("moe_intermediate_size", maximum=MAX_WIDTH) if n_shared else 0,
            first_dense_layers=f.integer("first_k_dense_replace", 0, minimum=0, maximum=MAX_LAYERS),
            layer_period=f.integer("moe_layer_freq", 1, maximum=MAX_LAYERS),
        )
    return None


def spec_from_hf_config(data: dict, source: str) -> ModelSpec:
    """Map a Hugging Face config.json mapping onto a ModelSpec."""
    f = Fields(data, source)
    family = f.string("model_type")
    if family not in SUPPORTED_FAMILIES:
        raise f.error("model_type", f"unsupported architecture family {family!r} (supported: {', '.join(SUPPORTED_FAMILIES)})")
    n_layers = f.integer("num_hidden_layers", maximum=MAX_LAYERS)
    moe = _moe(f, family)
    if moe is not None:
        if moe.top_k > moe.n_routed_experts:
            raise f.error("num_experts_per_tok", f"must be <= the number of experts ({moe.n_routed_experts}), got {moe.top_k}")
        period = {"qwen3_moe": "decoder_sparse_step", "deepseek_v3": "moe_layer_freq"}.get(family, "num_hidden_layers")
        check_moe_layers(moe, n_layers, f.error, "first_k_dense_replace", period)
    needs_dense = moe is None or moe.first_dense_layers > 0 or moe.layer_period > 1
    stem = Path(source).stem
    name = f.string("_name_or_path", "") or (Path(source).parent.name if stem == "config" else stem)
    return ModelSpec(
        id=name.split("/")[-1].lower(),
        name=name,
        family=family,
        kind="decoder",
        vocab_size=f.integer("vocab_size", maximum=MAX_VOCAB),
        d_model=f.integer("hidden_size", maximum=MAX_WIDTH),
        n_decoder_layers=n_layers,
        attention=_mla(f) if family == "deepseek_v3" else _gqa(f, family),
        ffn_activation=_activation(f),
        ffn_intermediate=f.integer("intermediate_size", maximum=MAX_WIDTH) if needs_dense else f.integer("intermediate_size", 0, minimum=0, maximum=MAX_WIDTH),
        moe=moe,
        tie_embeddings=f.boolean("tie_word_embeddings", False),
        max_context=f.integer("max_position_embeddings", 0, minimum=0, maximum=MAX_CONTEXT_TOKENS),
        source=source,
    )
