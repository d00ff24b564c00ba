"""Model architectures: the loaders of the spec dataclasses (:mod:`qsmoe.specs.architecture`).

A model is read from a book data file (``data/models/<id>.yaml``, schema in
``data/README.md``) or from a Hugging Face ``config.json`` of a supported family.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.architecture import ACTIVATIONS, ATTENTION_TYPES, KINDS, Attention, ModelSpec, Moe
from qsmoe.specs.fileio import Fields, excerpt, load_mapping, names_file
from qsmoe.specs.hf_config import check_moe_layers, spec_from_hf_config
from qsmoe.specs.limits import (
    MAX_CONTEXT_TOKENS,
    MAX_EXPERTS,
    MAX_HEAD_DIM,
    MAX_HEADS,
    MAX_LAYERS,
    MAX_PARAMS,
    MAX_SHARED_EXPERTS,
    MAX_VOCAB,
    MAX_WIDTH,
)

MODELS_DIR = DATA_DIR / "models"


def _attention(f: Fields) -> Attention:
    kind = f.string("type", choices=ATTENTION_TYPES)
    n_heads = f.integer("n_heads", maximum=MAX_HEADS)
    common = dict(type=kind, n_heads=n_heads, qkv_bias=f.boolean("qkv_bias", False), qk_norm=f.boolean("qk_norm", False))
    if kind == "mla":
        q_lora = f.integer("q_lora_rank", maximum=MAX_WIDTH) if f.has("q_lora_rank") else None
        return Attention(
            **common,
            q_lora_rank=q_lora,
            kv_lora_rank=f.integer("kv_lora_rank", maximum=MAX_WIDTH),
            qk_nope_head_dim=f.integer("qk_nope_head_dim", maximum=MAX_HEAD_DIM),
            qk_rope_head_dim=f.integer("qk_rope_head_dim", maximum=MAX_HEAD_DIM),
            v_head_dim=f.integer("v_head_dim", maximum=MAX_HEAD_DIM),
        )
    n_kv = f.integer("n_kv_heads", n_heads if kind == "mha" else ..., maximum=MAX_HEADS)
    if n_kv > n_heads or n_heads % n_kv:
        raise f.error("n_kv_heads", f"must divide n_heads ({n_heads}), got {n_kv}")
    return Attention(**common, n_kv_heads=n_kv, head_dim=f.integer("head_dim", maximum=MAX_HEAD_DIM))


def _moe(f: Fields) -> Moe:
    n_experts = f.integer("n_routed_experts", maximum=MAX_EXPERTS)
    top_k = f.integer("top_k", maximum=MAX_EXPERTS)
    if top_k > n_experts:
        raise f.error("top_k", f"must be <= n_routed_experts ({n_experts}), got {top_k}")
    n_shared = f.integer("n_shared_experts", 0, minimum=0, maximum=MAX_SHARED_EXPERTS)
    return Moe(
        n_routed_experts=n_experts,
        top_k=top_k,
        expert_intermediate=f.integer("expert_intermediate", maximum=MAX_WIDTH),
        n_shared_experts=n_shared,
        shared_intermediate=f.integer("shared_intermediate", maximum=MAX_WIDTH) if n_shared else 0,
        first_dense_layers=f.integer("first_dense_layers", 0, minimum=0, maximum=MAX_LAYERS),
        layer_period=f.integer("layer_period", 1, maximum=MAX_LAYERS),
    )


def spec_from_mapping(data: dict, source: str) -> ModelSpec:
    """Validate a book-format mapping (schema: data/README.md) into a ModelSpec."""
    f = Fields(data, source)
    kind = f.string("kind", "decoder", choices=KINDS)
    layers = f.section("layers")
    n_dec = layers.integer("decoder", maximum=MAX_LAYERS)
    n_enc = layers.integer("encoder", 0, minimum=0, maximum=MAX_LAYERS)
    if kind == "encoder_decoder" and n_enc == 0:
        raise layers.error("encoder", "an encoder_decoder model needs encoder layers, got 0")
    moe_f = f.section("moe", optional=True)
    moe = _moe(moe_f) if moe_f is not None else None
    if moe is not None:
        check_moe_layers(moe, n_dec, moe_f.error, "first_dense_layers", "layer_period")
    ffn = f.section("ffn")
    has_dense_ffn = moe is None or moe.first_dense_layers > 0 or moe.layer_period > 1
    published = f.section("published", optional=True)
    spec = ModelSpec(
        id=f.string("id"),
        name=f.string("name", f.string("id")),
        family=f.string("family", ""),
        kind=kind,
        vocab_size=f.integer("vocab_size", maximum=MAX_VOCAB),
        d_model=f.integer("d_model", maximum=MAX_WIDTH),
        n_decoder_layers=n_dec,
        n_encoder_layers=n_enc,
        attention=_attention(f.section("attention")),
        ffn_activation=ffn.string("activation", choices=ACTIVATIONS),
        ffn_intermediate=ffn.integer("intermediate", maximum=MAX_WIDTH) if has_dense_ffn else ffn.integer("intermediate", 0, minimum=0, maximum=MAX_WIDTH),
        moe=moe,
        tie_embeddings=f.boolean("tie_embeddings", False),
        max_context=f.integer("max_context", 0, minimum=0, maximum=MAX_CONTEXT_TOKENS),
        published_total_params=published.number("total_params", maximum=MAX_PARAMS) if published and published.has("total_params") else None,
        published_active_params=published.number("active_params", maximum=MAX_PARAMS) if published and published.has("active_params") else None,
        source=source,
    )
    return spec


def available_models() -> list[str]:
    """Ids of the models shipped in data/models/, sorted."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model(id_or_path: str | Path) -> ModelSpec:
    """Load a shipped model by id, a book-format YAML file, or a Hugging Face config.json."""
    text = str(id_or_path)
    path = Path(text)
    if names_file(text):
        data = load_mapping(path)
        if path.suffix == ".json" or "model_type" in data:
            return spec_from_hf_config(data, str(path))
        return spec_from_mapping(data, str(path))
    return _shipped_model(text)


@lru_cache(maxsize=None)
def _shipped_model(model_id: str) -> ModelSpec:
    """A model from data/models/ (cached: the shipped files do not change while a process runs)."""
    candidate = MODELS_DIR / f"{model_id}.yaml"
    if not candidate.is_file():
        known = ", ".join(available_models())
        raise QsError(f"unknown model {excerpt(model_id)} (known: {known}; or give a path to a .yaml or config.json)", field="model")
    spec = spec_from_mapping(load_mapping(candidate), str(candidate.relative_to(DATA_DIR.parent)))
    if spec.id != model_id:
        raise QsError(f"id {spec.id!r} does not match the file name {model_id!r}", source=str(candidate), field="id")
    return spec
