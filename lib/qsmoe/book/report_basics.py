"""Helpers for the first four chapters (the double penalty, models, fragmentation, HBM headroom).

Small, documented functions that turn the library's results into the records those
chapters plot and tabulate. No new physics: everything here is a rearrangement of
:mod:`qsmoe.physics.routing`, :mod:`qsmoe.physics.memory`, :mod:`qsmoe.physics.accounting` and :mod:`qsmoe.scenario.compare`,
plus the one number the book quotes from the paper (:data:`PAPER_HEADLINE_RATIO`).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from qsmoe.physics.accounting import summarize
from qsmoe.scenario.compare import compare, scenario
from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.errors import QsError
from qsmoe.specs.fileio import load_mapping
from qsmoe.physics.memory import REASONS, hbm_budget, weight_bytes_per_gpu
from qsmoe.specs.models import load_model
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, NAME_KEY
from qsmoe.specs.quality_data import pairings
from qsmoe.physics.routing import busiest_device_load, experts_touched, fraction_streamed, tokens_per_expert

#: The paper's reported value: a quality-matched dense model reaches "a 4.5x throughput
#: advantage" over DeepSeek-V3 at 128k context (abstract of arXiv 2603.08960,
#: Adhinarayanan & Jayasena 2026). The only number this book takes from the paper.
PAPER_HEADLINE_RATIO: float = 4.5

#: The model and context of the paper's headline point ("DeepSeek-V3 at 128k context"); the
#: book reads "128k" as 131072 tokens.
PAPER_HEADLINE_MODEL: str = "deepseek-v3"
PAPER_HEADLINE_CONTEXT: int = 131072

#: Sentences of the paper's abstract (arXiv 2603.08960), verbatim, that make a claim the book
#: checks. Each is (short name, quotation).
PAPER_ABSTRACT_CLAIMS: tuple[tuple[str, str], ...] = (
    ("double penalty",
     "We identify a double penalty that structurally disadvantages MoE architectures during decoding: "
     "first, expert routing fragments microbatches and reduces weight reuse; second, massive resident "
     "expert pools reduce high-bandwidth memory (HBM) headroom for the KV cache."),
    ("bandwidth-bound FFNs",
     "This phenomenon, formalized as reuse fragmentation, pushes feed-forward networks (FFNs) into a "
     "bandwidth-bound regime, especially at long context lengths."),
    ("the qs inequality",
     "We introduce the $qs$ inequality, a predictive criterion that identifies when MoE is structurally "
     "disadvantaged relative to a quality-matched dense model."),
    ("generality",
     "Our evaluation across frontier models including DeepSeek-V3, Qwen3-235B, Grok-1, and Switch-C "
     "demonstrates that this fragmentation is a general architectural phenomenon."),
    ("headline",
     "For DeepSeek-V3 at 128k context, this results in a 4.5x throughput advantage for a quality-matched "
     "dense baseline."),
    ("feasibility",
     "Crucially, massive architectures like Switch-C can become infeasible on cluster sizes where a "
     "quality-matched dense model remains viable."),
    ("conclusion",
     "Our results suggest that training-time FLOP efficiency is an incomplete proxy for inference-time "
     "performance in long-context serving."),
)

#: Zipf exponents of expert popularity the fragmentation chapter illustrates (0 = uniform).
ILLUSTRATIVE_SKEWS: tuple[float, ...] = (0.0, 0.5, 1.0)

#: Text shown where a q rule has no value for a model.
NO_PAIRING = "no usable published pairing"


# --------------------------------------------------------------------------------------
# parameters and names


def param_values(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter-set values from a chapter's namespace (its ``parameters`` cell), as a dict.

    Takes exactly the keys of data/params/default.yaml (without ``name``); a missing key is an error.
    """
    keys = [k for k in load_mapping(DEFAULT_PARAMS_PATH) if k != NAME_KEY]
    missing = [k for k in keys if k not in namespace]
    if missing:
        raise QsError(f"the chapter's parameters cell lacks {', '.join(missing)}", field="parameters")
    return {k: namespace[k] for k in keys}


def model_name(model_id: str) -> str:
    """The display name of a model (``name`` in data/models/<id>.yaml)."""
    return load_model(model_id).name


def compared_word(value: float, reference: float, tolerance: float = 0.05) -> str:
    """'below', 'above' or 'close to': how ``value`` compares with ``reference`` (relative tolerance)."""
    if abs(value / reference - 1) <= tolerance:
        return "close to"
    return "below" if value < reference else "above"


#: How the decode model names what limits a step (``decode.BOUNDS``), in words.
BOUND_PHRASES: dict[str, str] = {
    "compute": "compute-bound",
    "weights": "bound by streaming weights from HBM",
    "kv": "bound by reading the KV cache from HBM",
    "comm": "bound by communication between GPUs",
    "overhead": "bound by the fixed per-step overhead",
    "infeasible": "infeasible",
}


def bound_phrase(bound: str) -> str:
    """The limiting resource of a decode step in words (see :data:`BOUND_PHRASES`)."""
    return BOUND_PHRASES.get(bound, bound)


def same_point_as_paper(values: Mapping[str, Any]) -> bool:
    """Whether the parameter set's headline point is the paper's (same model and context)."""
    return values["headline_model"] == PAPER_HEADLINE_MODEL and int(values["headline_context"]) == PAPER_HEADLINE_CONTEXT


def faster_word(ratio: float) -> str:
    """'faster' where a dense/MoE throughput ratio exceeds 1, 'slower' below 1, 'as fast' at 1."""
    if math.isclose(ratio, 1.0, rel_tol=1e-3):
        return "as fast"
    return "faster" if ratio > 1 else "slower"


# --------------------------------------------------------------------------------------
# chapter 1: the headline point and the throughputs at the headline context


def headline_throughputs(values: Mapping[str, Any], context: int | None = None) -> list[dict]:
    """Per model and side: tokens/s at the largest admissible batch at ``context``
    (default: the headline context). Infeasible sides have ``feasible`` False and 0 tokens/s."""
    context = int(values["headline_context"] if context is None else context)
    rows = []
    for model_id in values["models"]:
        rec = compare(scenario(values, model_id), context).record()
        for side, key in (("MoE", "moe"), ("dense", "dense")):
            r = rec[key]
            rows.append({
                "model": model_id,
                "name": model_name(model_id),
                "side": side,
                "context": context,
                "feasible": bool(r["feasible"]),
                "batch": int(r["batch"]) if r["feasible"] else 0,
                "tokens_per_s": float(r["tokens_per_s"]) if r["feasible"] else 0.0,
                "bound": r["bound"] if r["feasible"] else "infeasible",
                "ratio": rec["ratio"],
            })
    return rows


# --------------------------------------------------------------------------------------
# chapter 2: q rules, components, published totals


def _pairing(model_id: str) -> Mapping[str, Any] | None:
    return (pairings() or {}).get(model_id)


def author_claim(model_id: str) -> str:
    """The kind of the published pairing for ``model_id`` in data/quality.yaml
    ('matches', 'beats', 'rule', 'beats (uninformative)') or 'none'."""
    p = _pairing(model_id)
    if not p:
        return "none"
    claim = str(p.get("claim"))
    if claim == "beats" and p.get("informative") is False:
        return "beats (uninformative)"
    return claim


def author_dense_model(model_id: str) -> str:
    """The dense model named by the published pairing (or 'none')."""
    p = _pairing(model_id)
    return str(p.get("dense_model")) if p else "none"


def q_text(value: float | None, claim: str = "matches", fmt: str = ".2f") -> str:
    """q as shown in a table: '≥ x' for a 'beats' pairing (a lower bound), the NO_PAIRING text for None."""
    if value is None:
        return NO_PAIRING
    text = format(value, fmt)
    return f"≥ {text}" if claim.startswith("beats") else text


def model_shape(model_id: str) -> dict[str, Any]:
    """The routing shape of an MoE: routed experts E, top-k, shared experts, attention type, kind."""
    spec = load_model(model_id)
    if spec.moe is None:
        raise QsError(f"{model_id!r} is a dense model", field="model")
    return {
        "n_experts": spec.moe.n_routed_experts,
        "top_k": spec.moe.top_k,
        "n_shared": spec.moe.n_shared_experts,
        "attention": spec.attention.type,
        "kind": spec.kind,
    }


def component_table(model_id: str) -> list[dict]:
    """Parameters by component (whole model, every stack): total and active in billions and
    their shares of the model's total and active counts (percent)."""
    summary = summarize(load_model(model_id))
    rows = []
    for component, (total, active) in summary.by_component().items():
        rows.append({
            "component": component,
            "total_params_b": total / 1e9,
            "active_params_b": active / 1e9,
            "share_of_total_pct": 100 * total / summary.total_params,
            "share_of_active_pct": 100 * active / summary.active_params,
        })
    return rows


def published_check(model_ids: Iterable[str]) -> list[dict]:
    """Our parameter counts against the totals the model's authors state (``published`` in the
    model file): counted and published, in billions, and the relative difference in percent
    (None where the authors state no figure)."""
    rows = []
    for model_id in model_ids:
        spec = load_model(model_id)
        summary = summarize(spec)
        row: dict[str, Any] = {"model": spec.name}
        for what, counted, published in (("total", summary.total_params, spec.published_total_params),
                                         ("active", summary.active_params, spec.published_active_params)):
            row[f"{what}_counted_b"] = counted / 1e9
            row[f"{what}_published_b"] = published / 1e9 if published else None
            row[f"{what}_diff_pct"] = 100 * (counted / published - 1) if published else None
        rows.append(row)
    return rows


# --------------------------------------------------------------------------------------
# chapter 3: reuse fragmentation


def batch_for_fraction(n_experts: int, top_k: int, fraction: float, skew: float = 0.0) -> float:
    """The (continuous) batch B at which the expected share of experts touched, phi(B), reaches
    ``fraction`` (0 < fraction < 1). Uniform routing: B = ln(1 - f) / ln(1 - k/E); with skew,
    bisection on the monotone phi(B)."""
    if not 0 < fraction < 1:
        raise QsError(f"must be in (0, 1), got {fraction!r}", field="fraction")
    if skew == 0.0:
        if top_k == n_experts:
            return 1.0
        return math.log1p(-fraction) / math.log1p(-top_k / n_experts)
    return _bisect(lambda b: float(fraction_streamed(b, n_experts, top_k, skew)) - fraction)


def dense_ffn_intensity_flops_per_byte(batch_tokens: Any, weight_bytes_per_value: float) -> np.ndarray:
    """Arithmetic intensity of a dense FFN at batch B: every weight meets all B tokens,
    2*B FLOPs per weight read, i.e. 2B / (bytes per weight)."""
    return 2.0 * np.asarray(batch_tokens, dtype=float) / weight_bytes_per_value


def dense_compute_bound_batch(ridge_flops_per_byte: float, weight_bytes_per_value: float) -> float:
    """Batch at which a dense FFN reaches the ridge point: B* = ridge * bytes per weight / 2."""
    return ridge_flops_per_byte * weight_bytes_per_value / 2.0


def expert_compute_bound_batch(n_experts: int, top_k: int, weight_bytes_per_value: float, ridge_flops_per_byte: float, skew: float = 0.0) -> float:
    """Batch at which the routed experts' mean intensity 2*(B k / T(B)) / bytes reaches the ridge.

    Tokens per touched expert grow like B k / E once every expert is touched, so
    B* ~ ridge * bytes * E / (2k) (found by bisection; exact, not the large-B limit)."""
    target = ridge_flops_per_byte * weight_bytes_per_value / 2.0  # tokens per expert needed
    return _bisect(lambda b: float(tokens_per_expert(b, n_experts, top_k, skew)) - target)


def _bisect(f, lo: float = 1.0, hi: float = 1e9) -> float:
    """Root of a monotone increasing f on [lo, hi] by bisection in log B (lo if f(lo) >= 0)."""
    if f(lo) >= 0:
        return lo
    if f(hi) < 0:
        raise QsError("no batch up to 1e9 reaches the target", field="batch")
    a, b = math.log(lo), math.log(hi)
    for _ in range(100):
        m = (a + b) / 2
        if f(math.exp(m)) < 0:
            a = m
        else:
            b = m
    return math.exp(b)


def fragmentation_curves(model_ids: Iterable[str], batches: Any, skews: Iterable[float]) -> list[dict]:
    """Per model, skew and batch: experts touched T(B), its share phi(B) and tokens per touched expert."""
    b = np.asarray(batches, dtype=float)
    rows = []
    for model_id in model_ids:
        spec = load_model(model_id)
        e, k = spec.moe.n_routed_experts, spec.moe.top_k
        for skew in skews:
            t = experts_touched(b, e, k, skew)
            tpe = b * k / t
            for bi, ti, tp in zip(b, t, tpe):
                rows.append({"model": model_id, "skew": float(skew), "batch": float(bi), "experts_touched": float(ti), "phi": float(ti / e), "tokens_per_expert": float(tp)})
    return rows


def ep_imbalance(batch_tokens: Any, n_experts: int, top_k: int, gpus: int, skew: float = 0.0) -> np.ndarray:
    """Expert-parallel load imbalance: expected token-expert assignments on the busiest device
    (:func:`qsmoe.physics.routing.busiest_device_load`) over the mean per device, B k / G."""
    b = np.asarray(batch_tokens, dtype=float)
    busiest, _ = busiest_device_load(b, n_experts, top_k, gpus, skew)
    return busiest / (b * top_k / gpus)


def weight_bytes(values: Mapping[str, Any]) -> float:
    """Bytes per stored weight for the parameter set's weight format."""
    return bytes_per_value(values["weight_dtype"], field="weight_dtype")


# --------------------------------------------------------------------------------------
# chapter 4: HBM headroom


def batch_vs_context(values: Mapping[str, Any], model_id: str, contexts: Any) -> list[dict]:
    """Largest admissible batch (sequences per replica) of the MoE and its dense comparator at
    each context, from :func:`qsmoe.physics.memory.hbm_budget`; infeasible points carry the reason."""
    ctx = np.asarray(list(contexts), dtype=float)
    sc = scenario(values, model_id)
    rows = []
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        b = hbm_budget(prof, dep, ctx)
        for i, c in enumerate(ctx):
            ok = bool(b.feasible[i])
            rows.append({
                "model": model_id,
                "side": side,
                "layout": dep.layout,
                "context": int(c),
                "max_batch": int(b.max_batch[i]) if ok else 0,
                "feasible": ok,
                "reason": REASONS[int(b.reason[i])] if not ok else "",
            })
    return rows


def kv_bytes_per_sequence(values: Mapping[str, Any], model_id: str, context: int) -> dict[str, float]:
    """KV-cache bytes of one sequence at ``context`` held by one GPU, MoE and dense (as laid out)."""
    sc = scenario(values, model_id)
    return {
        side: float(hbm_budget(prof, dep, context).kv_bytes_per_sequence_per_gpu)
        for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment))
    }


def weight_split_per_gpu(values: Mapping[str, Any], model_id: str) -> dict[str, dict[str, float]]:
    """Resident weight bytes per GPU split into the part every GPU holds in full (replicated by
    the layout) and the part divided over the GPUs, for the MoE and its dense comparator.

    Uses :func:`qsmoe.physics.memory.weight_bytes_per_gpu`, W(G) = R + S/G, at G and 2G:
    R = 2 W(2G) - W(G), S/G = W(G) - R.
    """
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        w1 = float(weight_bytes_per_gpu(prof, dep))
        w2 = float(weight_bytes_per_gpu(prof, dep.with_changes(gpus=2 * dep.gpus)))
        replicated = max(2 * w2 - w1, 0.0)
        out[side] = {"layout": dep.layout, "total": w1, "replicated": replicated, "sharded": w1 - replicated}
    return out


def released_context(model_id: str) -> int:
    """The longest context the released model supports (``max_context`` in its data file; 0 if unknown)."""
    return int(load_model(model_id).max_context)


def hbm_stack(values: Mapping[str, Any], context: int | None = None) -> list[dict]:
    """Per model and side, the per-GPU HBM budget in GB as stacked segments:
    replicated weights, sharded weights, KV capacity and reserve (these four sum to the HBM
    when the weights fit), plus the weights that overflow the usable HBM (0 when they fit).
    ``weights_needed_gb`` and ``replicated_needed_gb`` are the unclipped per-GPU weights.
    Built from :func:`qsmoe.scenario.analysis.hbm_table` and :func:`weight_split_per_gpu`."""
    from qsmoe.scenario.analysis import hbm_table

    rows = []
    splits: dict[str, dict] = {}
    for r in hbm_table(values, context):
        if r["model"] not in splits:
            splits[r["model"]] = weight_split_per_gpu(values, r["model"])
        split = splits[r["model"]][r["side"]]
        usable = r["hbm_gb"] - r["reserve_gb"]
        replicated = min(split["replicated"] / 1e9, usable)
        sharded = min(split["sharded"] / 1e9, usable - replicated)
        rows.append({
            **r,
            "replicated_weights_gb": replicated,
            "sharded_weights_gb": sharded,
            "weights_needed_gb": split["total"] / 1e9,
            "replicated_needed_gb": split["replicated"] / 1e9,
        })
    return rows


def sequences_per_gpu(values: Mapping[str, Any], model_id: str, context: int) -> dict[str, int]:
    """Sequences (or, under tensor parallelism, sequence shares) whose KV cache one GPU holds at
    ``context``: floor(free HBM / KV bytes per sequence per GPU), MoE and dense (0 if infeasible)."""
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        b = hbm_budget(prof, dep, context)
        out[side] = int(np.floor(float(b.kv_capacity_bytes_per_gpu) / float(b.kv_bytes_per_sequence_per_gpu))) if bool(b.feasible) else 0
    return out
