"""Quality equivalence: the factor q and the dense comparator it defines.

q is the size multiplier a dense model needs, relative to the MoE's ACTIVE parameters,
to match the MoE's quality: P_dense = q * A.  Then q*s = P_dense / T (T = MoE total).

Estimators (the registry :data:`Q_RULE_REGISTRY`; ``Q_RULES`` are its names):
  geomean   q = sqrt(T / A)                 (community rule: dense-equivalent = sqrt(T*A); q*s = sqrt(s))
  author    q = P_match / A or a stated rule  (published pairings, data/quality.yaml)
  explicit  q given by the user
  clark     Clark et al. 2022 effective parameter count (see clark.py; extrapolated)
A new rule is one more :class:`QRule` entry: the parameter check, the book's tables and
figures (label and marker) and the sensitivity sweep all read the registry.

Dense architectures (``DENSE_ARCHS``), all of the same decode-path structure as a dense
transformer with P_dense parameters:
  moe_attention     the MoE's own attention (same KV bytes and attention FLOPs per token);
                    every parameter beyond it goes to a dense FFN
  scaled_attention  the MoE's shape scaled in width by w (per-layer weights ~ w^2,
                    embeddings, KV and attention FLOPs per token ~ w), depth unchanged
  llama_gqa         a Llama-3-like stack: GQA with 8 KV heads of 128, FFN 3.5*d,
                    d/128 layers, the MoE's vocabulary
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from qsmoe.errors import QsError
from qsmoe.specs.fileio import Fields
from qsmoe.specs.quality_data import QUALITY_SOURCE, pairings
from qsmoe.specs.architecture import ModelSpec
from qsmoe.physics.clark import clark_q
from qsmoe.physics.profile import DecodeProfile

DENSE_ARCHS = ("moe_attention", "scaled_attention", "llama_gqa")


def _pairing(spec: ModelSpec) -> Fields:
    """The published pairing of a shipped model (pairings are keyed by shipped ids, so a model
    read from another file has none, even under a shipped id)."""
    source = QUALITY_SOURCE
    pairing = pairings().get(spec.id) if spec.source.startswith("data/models/") else None
    if not pairing:
        raise QsError(f"no published quality pairing for {spec.id!r} ({spec.source}); use another q rule", source=source, field=f"pairings.{spec.id}")
    return Fields(pairing, source, f"pairings.{spec.id}.")


def author_claim(spec: ModelSpec) -> str:
    """The kind of the published pairing: matches, beats (q is then a lower bound) or rule."""
    return _pairing(spec).string("claim", choices=("matches", "beats", "rule"))


def author_q(spec: ModelSpec, active_params: float) -> float:
    """q from a published pairing: P_match / A, or the stated multiplier of a 'rule' claim.
    For a 'beats' claim the value is a lower bound on q (see :func:`author_claim`)."""
    f = _pairing(spec)
    claim = author_claim(spec)
    if claim == "rule":
        return f.number("q_rule_value")
    if claim == "beats" and not f.boolean("informative", True):
        raise QsError(f"the published pairing only bounds q from below by less than 1 ({f.string('dense_model')}); use another q rule", source=f.source, field=f"pairings.{spec.id}.informative")
    return f.number("dense_params") / active_params


def _explicit_q(explicit: float | None) -> float:
    if explicit is None or not math.isfinite(explicit) or explicit <= 0:
        raise QsError(f"must be a number > 0, got {explicit!r}", field="q_explicit")
    return float(explicit)


@dataclass(frozen=True)
class QRule:
    """One way of estimating q: its name (the ``q_rule`` value), the estimator
    (spec, total params T, active params A, explicit q) -> q, and how figures show it."""

    name: str
    estimator: Callable[[ModelSpec, float, float, float | None], float]
    label: str  # legend text
    marker: str  # matplotlib marker, the same in every figure
    from_model: bool = True  # False: q is given, not derived from the model (not compared across models)


#: Every q rule, in the order tables and figures list them.
Q_RULE_REGISTRY: tuple[QRule, ...] = (
    QRule("geomean", lambda spec, t, a, x: math.sqrt(t / a), "geometric mean, q = (T/A)^1/2", "o"),
    QRule("author", lambda spec, t, a, x: author_q(spec, a), "published pairing", "^"),
    QRule("explicit", lambda spec, t, a, x: _explicit_q(x), "given value (q_explicit)", "D", from_model=False),
    QRule("clark", lambda spec, t, a, x: clark_q(spec), "Clark et al. scaling law", "s"),
)
Q_RULES: tuple[str, ...] = tuple(r.name for r in Q_RULE_REGISTRY)
#: The rules that derive q from the model (what the book compares across models).
MODEL_Q_RULES: tuple[str, ...] = tuple(r.name for r in Q_RULE_REGISTRY if r.from_model)


def q_rule(name: str) -> QRule:
    """The registry entry of rule ``name``."""
    for rule in Q_RULE_REGISTRY:
        if rule.name == name:
            return rule
    raise QsError(f"{name!r} is not one of {', '.join(Q_RULES)}", field="q_rule")


def estimate_q(rule: str, spec: ModelSpec, total_params: float, active_params: float, explicit: float | None = None) -> float:
    """q under the named rule for the MoE ``spec`` with ``total_params`` and ``active_params``."""
    return q_rule(rule).estimator(spec, total_params, active_params, explicit)


def _check_q(q: np.ndarray) -> None:
    if not np.all(np.isfinite(q)) or np.any(q <= 0):
        raise QsError(f"must be a number > 0, got {q!r}", field="q")


def dense_profile(moe: DecodeProfile, q: object, arch: str = "moe_attention") -> DecodeProfile:
    """The dense comparator with P_dense = q * A_moe parameters (broadcasts over arrays of q)."""
    q = np.asarray(q, dtype=float)
    _check_q(q)
    target = q * moe.active_params
    base = dict(n_experts=1, top_k=1, routed_params=0.0, shared_params=0.0, resident_routed_params=0.0, moe_layers=0, total_params=target, active_params=target)
    if arch == "moe_attention":
        ffn = target - moe.resident_attention_params
        if np.any(ffn <= 0):
            raise QsError(f"q*A ({float(np.min(target)):.3g}) is smaller than the MoE's attention and embeddings; no dense model with this attention fits", field="q")
        return moe.with_changes(name=f"dense({moe.name})", dense_ffn_params=ffn * moe.ffn_decode_share, resident_other_params=target, resident_attention_params=moe.resident_attention_params, **base)
    if np.any(target <= moe.embedding_params):
        raise QsError(f"q*A ({float(np.min(target)):.3g}) is not above the MoE's embeddings ({float(moe.embedding_params):.3g}); no dense model of that size has a vocabulary", field="q")
    if arch == "scaled_attention":
        embed = moe.embedding_params
        per_layer = moe.active_params - embed  # every non-embedding active weight scales with w^2
        w = (-embed + np.sqrt(embed**2 + 4 * per_layer * target)) / (2 * per_layer)
        return moe.with_changes(
            name=f"dense-scaled({moe.name})",
            proj_params=moe.proj_params * w**2,
            dense_ffn_params=moe.decode_ffn_active_params * w**2,
            head_params=moe.head_params * w,
            embedding_params=embed * w,
            resident_other_params=target,
            resident_attention_params=(moe.resident_attention_params - embed) * w**2 + embed * w,
            kv_values_per_token=moe.kv_values_per_token * w,
            attn_flops_per_context_token=moe.attn_flops_per_context_token * w,
            prefill_attn_flops_per_context_token=moe.prefill_attn_flops_per_context_token * w,
            d_model=moe.d_model * w,
            **base,
        )
    if arch == "llama_gqa":
        return llama_like_profile(target, vocab_size=round(moe.head_params / moe.d_model), name=f"dense-llama({moe.name})")
    raise QsError(f"{arch!r} is not one of {', '.join(DENSE_ARCHS)}", field="dense_arch")


LLAMA_KV_HEADS, LLAMA_HEAD_DIM, LLAMA_FFN_RATIO, LLAMA_ASPECT = 8, 128, 3.5, 128


def llama_like_profile(params: object, vocab_size: int, name: str = "dense-llama") -> DecodeProfile:
    """A Llama-3-shaped dense stack with ``params`` weights (continuous width d, d/128 layers).

    Per layer: attention 2d^2 + 2*d*(8*128), FFN 3*d*3.5d; untied embeddings 2*V*d.
    KV values per token 2*8*128 per layer; attention FLOPs 4*d per layer per context token.
    """
    p = np.asarray(params, dtype=float)
    kv_width = LLAMA_KV_HEADS * LLAMA_HEAD_DIM

    def total(d: np.ndarray) -> np.ndarray:
        return (2 * d**2 + 2 * d * kv_width + 3 * LLAMA_FFN_RATIO * d**2) * d / LLAMA_ASPECT + 2 * vocab_size * d

    lo, hi = np.full_like(p, 64.0), np.full_like(p, 1e6)
    for _ in range(100):  # bisection on the monotone total(d)
        mid = (lo + hi) / 2
        lo, hi = np.where(total(mid) < p, mid, lo), np.where(total(mid) < p, hi, mid)
    d = (lo + hi) / 2
    layers = d / LLAMA_ASPECT
    attn = (2 * d**2 + 2 * d * kv_width) * layers
    ffn = 3 * LLAMA_FFN_RATIO * d**2 * layers
    return DecodeProfile(
        name=name,
        total_params=p,
        active_params=p,
        resident_routed_params=0.0,
        resident_other_params=p,
        resident_attention_params=attn + 2 * vocab_size * d,
        proj_params=attn,
        dense_ffn_params=ffn,
        shared_params=0.0,
        head_params=vocab_size * d,
        embedding_params=2 * vocab_size * d,
        routed_params=0.0,
        n_experts=1,
        top_k=1,
        kv_values_per_token=2 * kv_width * layers,
        attn_flops_per_context_token=4 * d * layers,
        prefill_attn_flops_per_context_token=4 * d * layers,
        kv_head_split=LLAMA_KV_HEADS,
        d_model=d,
        n_blocks=layers,
        allreduces_per_step=2 * layers,
        moe_layers=0,
    )
