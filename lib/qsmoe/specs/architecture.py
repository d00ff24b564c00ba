"""Model architectures as data: the spec dataclasses every loader produces.

A model is read from a book data file (:mod:`qsmoe.specs.models`) or from a Hugging Face
``config.json`` (:mod:`qsmoe.specs.hf_config`); both build these types.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

ATTENTION_TYPES = ("mha", "gqa", "mla")
ACTIVATIONS = ("swiglu", "geglu", "relu", "gelu")
KINDS = ("decoder", "encoder_decoder")


@dataclass(frozen=True)
class Attention:
    """Attention shape. MHA/GQA use n_kv_heads and head_dim; MLA uses the low-rank fields."""

    type: str
    n_heads: int
    n_kv_heads: int = 0
    head_dim: int = 0
    qkv_bias: bool = False
    qk_norm: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0


@dataclass(frozen=True)
class Moe:
    """Routed-expert FFN: top_k of n_routed_experts per token, plus always-on shared experts."""

    n_routed_experts: int
    top_k: int
    expert_intermediate: int
    n_shared_experts: int = 0
    shared_intermediate: int = 0
    first_dense_layers: int = 0
    layer_period: int = 1


@dataclass(frozen=True)
class ModelSpec:
    """One architecture; ``moe`` is None for a dense model."""

    id: str
    name: str
    kind: str
    vocab_size: int
    d_model: int
    n_decoder_layers: int
    attention: Attention
    ffn_activation: str
    ffn_intermediate: int
    moe: Moe | None = None
    n_encoder_layers: int = 0
    tie_embeddings: bool = False
    max_context: int = 0
    family: str = ""
    published_total_params: float | None = None
    published_active_params: float | None = None
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.moe is not None

    def with_changes(self, **changes: object) -> "ModelSpec":
        return replace(self, **changes)

    def moe_layer_count(self, n_layers: int) -> int:
        """MoE layers in a stack of ``n_layers`` blocks (0 for a dense model)."""
        if self.moe is None:
            return 0
        return max(0, n_layers - self.moe.first_dense_layers) // self.moe.layer_period
