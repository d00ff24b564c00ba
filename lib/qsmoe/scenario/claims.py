"""The paper's claims, the thresholds the book judges them by, and the evidence for each.

One place for everything the book takes from the paper (arXiv 2603.08960, Adhinarayanan &
Jayasena 2026; only its abstract is public): the headline number, model and context, the models
it evaluates and the sentences of its abstract that make a claim.  For each of the seven
claims, an evidence function computes what the book's model says under a parameter set, and
:func:`verdict` turns that evidence into one of :data:`VERDICTS` by the thresholds below.  The
claims-ledger chapter only words these records.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.errors import QsError
from qsmoe.physics.intensity import dense_ffn_intensity_flops_per_byte
from qsmoe.physics.routing import expert_ffn_intensity_flops_per_byte, tokens_per_expert
from qsmoe.scenario.analysis import agreement, hbm_table, headline, minimum_gpus, roofline_ridge
from qsmoe.scenario.compare import scenario

Values = Mapping[str, Any]

# --------------------------------------------------------------------------------------
# what the paper states

#: The abstract's headline: a quality-matched dense model reaches "a 4.5x throughput advantage"
#: over DeepSeek-V3 at 128k context; the book reads "128k" as 131072 tokens.
PAPER_RATIO = 4.5
PAPER_MODEL = "deepseek-v3"
PAPER_CONTEXT = 131072
#: The frontier models the abstract evaluates.
PAPER_MODELS = ("deepseek-v3", "qwen3-235b-a22b", "grok-1", "switch-c-2048")
#: The model the abstract says can become infeasible where its dense comparator fits.
PAPER_INFEASIBLE_MODEL = "switch-c-2048"

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

# --------------------------------------------------------------------------------------
# verdict thresholds (see verdict())

#: The headline is reproduced when the book's ratio lies within this fraction of PAPER_RATIO.
RATIO_TOLERANCE = 0.10
#: Share of grid points where the qs inequality names the simulated winner: "holds" at or above.
AGREEMENT_HOLDS = 0.90
#: ... and "holds qualitatively" at or above this share.
AGREEMENT_QUALITATIVE = 0.70
#: A FLOP proxy that names the right winner but misses the simulated ratio by more than this
#: factor still "holds qualitatively" as an incomplete proxy.
PROXY_MISS_FACTOR = 2.0
#: Training FLOPs per token per active parameter (forward + backward, the usual 6N rule).
TRAINING_FLOPS_PER_PARAM = 6.0

VERDICTS = ("holds", "holds qualitatively", "not reproduced", "not tested")
CLAIMS = ("fragmentation", "headroom", "inequality", "generality", "headline", "infeasibility", "flop_proxy")


def same_point_as_paper(values: Values) -> bool:
    """Whether the parameter set's headline point is the paper's (same model and context)."""
    return values["headline_model"] == PAPER_MODEL and int(values["headline_context"]) == PAPER_CONTEXT


def within_tolerance(ratio: float, target: float = PAPER_RATIO, tolerance: float = RATIO_TOLERANCE) -> bool:
    """Whether ``ratio`` lies within ``tolerance`` (a fraction) of ``target``: |ratio / target - 1| <= tolerance."""
    return abs(ratio / target - 1) <= tolerance


# --------------------------------------------------------------------------------------
# verdicts and evidence


def verdict(claim: str, evidence: Mapping[str, Any]) -> str:
    """The ledger's verdict on one claim from its evidence: one of :data:`VERDICTS`.

    Thresholds, claim by claim (``evidence`` keys in brackets):

    fragmentation  holds when the routed-expert FFN intensity at the MoE's batch is below the
                   accelerator's achievable ridge point [expert_intensity < ridge]: the experts are
                   bandwidth-bound; holds qualitatively when it is above the ridge but below the
                   dense comparator's FFN intensity [dense_intensity]; not tested when the MoE
                   cannot be placed [expert_intensity None].
    headroom       holds when the MoE has both less KV capacity per GPU and a smaller largest
                   batch than its dense comparator [moe_kv_gb, dense_kv_gb, moe_max_batch,
                   dense_max_batch]; holds qualitatively with less KV capacity only; not tested
                   when neither side can be placed [moe_max_batch == dense_max_batch == 0].
    inequality     holds when the general qs inequality names the simulated winner on at least
                   AGREEMENT_HOLDS (90 %) of the grid points at the paper's context
                   [domain_agreement]; holds qualitatively from AGREEMENT_QUALITATIVE (70 %);
                   not tested without grid points [domain_points == 0].
    generality     a model counts as disadvantaged when the dense model is faster (ratio > 1) or
                   when only the dense model can be placed; holds when every model evaluated is
                   [disadvantaged == evaluated], holds qualitatively for a strict majority;
                   not tested when no model could be evaluated.
    headline       holds when the book's ratio is within RATIO_TOLERANCE (10 %) of 4.5 [ratio];
                   not tested when a side is infeasible [ratio None]; not reproduced otherwise.
    infeasibility  holds when the MoE needs more GPUs than its dense comparator to be placed
                   [moe_min_gpus > dense_min_gpus]: the sizes in between serve only the dense
                   model; not tested when either cannot be placed on the counts searched.
    flop_proxy     the training-FLOP proxy predicts dense/MoE throughput = MoE FLOPs / dense
                   FLOPs per token [proxy_ratio]; holds when it names the wrong winner
                   (proxy < 1 < ratio or proxy > 1 > ratio); holds qualitatively when it names the
                   right one but misses the simulated ratio by more than PROXY_MISS_FACTOR (2x);
                   not tested when the simulated ratio is undefined [ratio None].

    Anything else is "not reproduced".
    """
    e = evidence
    if claim == "fragmentation":
        if e["expert_intensity"] is None:
            return "not tested"
        if e["expert_intensity"] < e["ridge"]:
            return "holds"
        return "holds qualitatively" if e["dense_intensity"] is not None and e["expert_intensity"] < e["dense_intensity"] else "not reproduced"
    if claim == "headroom":
        if e["moe_max_batch"] == 0 and e["dense_max_batch"] == 0:
            return "not tested"
        less_kv = e["moe_kv_gb"] < e["dense_kv_gb"]
        if less_kv and e["moe_max_batch"] < e["dense_max_batch"]:
            return "holds"
        return "holds qualitatively" if less_kv else "not reproduced"
    if claim == "inequality":
        if not e["domain_points"]:
            return "not tested"
        if e["domain_agreement"] >= AGREEMENT_HOLDS:
            return "holds"
        return "holds qualitatively" if e["domain_agreement"] >= AGREEMENT_QUALITATIVE else "not reproduced"
    if claim == "generality":
        if not e["evaluated"]:
            return "not tested"
        if e["disadvantaged"] == e["evaluated"]:
            return "holds"
        return "holds qualitatively" if 2 * e["disadvantaged"] > e["evaluated"] else "not reproduced"
    if claim == "headline":
        if e["ratio"] is None:
            return "not tested"
        return "holds" if within_tolerance(e["ratio"]) else "not reproduced"
    if claim == "infeasibility":
        if e["moe_min_gpus"] is None or e["dense_min_gpus"] is None:
            return "not tested"
        return "holds" if e["moe_min_gpus"] > e["dense_min_gpus"] else "not reproduced"
    if claim == "flop_proxy":
        if e["ratio"] is None:
            return "not tested"
        proxy, ratio = e["proxy_ratio"], e["ratio"]
        if (proxy < 1 < ratio) or (proxy > 1 > ratio):
            return "holds"
        miss = max(proxy / ratio, ratio / proxy)
        return "holds qualitatively" if miss > PROXY_MISS_FACTOR else "not reproduced"
    raise QsError(f"{claim!r} is not one of {', '.join(CLAIMS)}", field="claim")


def _paper_values(values: Values, model: str = PAPER_MODEL, context: int = PAPER_CONTEXT) -> dict[str, Any]:
    """The build's values with the model and context the paper's claims are about."""
    return dict(values, headline_model=model, headline_context=context)


def fragmentation_evidence(values: Values, model: str = PAPER_MODEL, context: int = PAPER_CONTEXT) -> dict:
    """Claim 1: arithmetic intensity of the routed experts at the MoE's largest batch at ``context``,
    beside the dense comparator's FFN intensity at its own batch and the ridge point.

    Intensity = 2 * (tokens per touched expert) / (bytes per weight) (:mod:`qsmoe.physics.routing`); the
    dense FFN is the one-expert case, 2 * B / bytes.
    """
    rec = headline(_paper_values(values, model, context))
    sc = scenario(values, model)
    dep = sc.moe_deployment
    ridge = roofline_ridge(values)["ridge_flops_per_byte"]
    b_moe, b_dense = rec["moe"]["batch"], rec["dense"]["batch"]
    n, k = sc.moe.n_experts, sc.moe.top_k
    ok = rec["moe"]["feasible"]
    return {
        "model": sc.model_id,
        "context": context,
        "moe_batch": b_moe,
        "dense_batch": b_dense,
        "tokens_per_expert": float(tokens_per_expert(b_moe, n, k, dep.routing_skew)) if ok else None,
        "expert_intensity": float(expert_ffn_intensity_flops_per_byte(b_moe, n, k, dep.weight_bytes, dep.routing_skew)) if ok else None,
        "dense_intensity": float(dense_ffn_intensity_flops_per_byte(b_dense, dep.weight_bytes)) if rec["dense"]["feasible"] else None,
        "ridge": ridge,
    }


def headroom_evidence(values: Values, model: str = PAPER_MODEL, context: int = PAPER_CONTEXT) -> dict:
    """Claim 2: KV capacity per GPU (GB) and the largest batch, MoE against dense, at ``context``."""
    rows = {r["side"]: r for r in hbm_table(dict(values, models=[model]), context)}
    return {
        "model": model,
        "context": context,
        "moe_kv_gb": rows["MoE"]["kv_gb"],
        "dense_kv_gb": rows["dense"]["kv_gb"],
        "moe_weights_gb": rows["MoE"]["weights_gb"] + rows["MoE"]["weights_overflow_gb"],
        "dense_weights_gb": rows["dense"]["weights_gb"] + rows["dense"]["weights_overflow_gb"],
        "moe_max_batch": rows["MoE"]["max_batch"],
        "dense_max_batch": rows["dense"]["max_batch"],
    }


#: Grid of claim 3, the one the qs-inequality chapter checks: q overridden, one node and two;
#: the contexts are the parameter set's (plus the paper's).
AGREEMENT_Q_VALUES = (1.0, 2.0, 4.0, 8.0, 16.0)
AGREEMENT_GPUS = (8, 16)


def inequality_evidence(
    values: Values,
    models: Iterable[str] = PAPER_MODELS,
    q_values: Iterable[float] = AGREEMENT_Q_VALUES,
    contexts: Iterable[int] | None = None,
    gpu_counts: Iterable[int] = AGREEMENT_GPUS,
    domain_context: int = PAPER_CONTEXT,
) -> dict:
    """Claim 3: how often the general qs inequality names the simulated winner.

    ``domain_*``: only the points at ``domain_context`` (the long-context, memory-bound regime
    the inequality is derived for); ``all_*``: every context of the grid, short ones included
    (there decode turns compute-bound, outside the inequality's form).  ``contexts`` defaults
    to the parameter set's contexts plus ``domain_context``.  Values of q too small for the
    dense architecture are skipped (:func:`qsmoe.scenario.analysis.agreement`).
    """
    contexts = sorted(set(contexts if contexts is not None else values["contexts"]) | {domain_context})
    q_values, gpu_counts = list(q_values), list(gpu_counts)
    a = agreement(values, models, q_values, contexts, gpu_counts)
    domain = [r for r in a["records"] if r["context"] == domain_context]
    return {
        "all_points": a["points"],
        "all_agreement": a["general_agreement"],
        "all_simple_agreement": a["simple_agreement"],
        "domain_context": domain_context,
        "domain_points": len(domain),
        "domain_agreement": sum(r["general"] == r["simulated_disadvantaged"] for r in domain) / len(domain) if domain else 0.0,
        "q_values": q_values,
        "contexts": contexts,
        "gpu_counts": gpu_counts,
    }


def generality_evidence(values: Values, models: Iterable[str] = PAPER_MODELS, context: int = PAPER_CONTEXT) -> dict:
    """Claim 4: the dense/MoE ratio of each model at ``context`` (None where a side is infeasible,
    or where the model cannot be evaluated under this q rule: then ``evaluated`` is False)."""
    per_model = []
    for model in models:
        try:
            rec = headline(_paper_values(values, model, context))
        except QsError as exc:  # e.g. the q rule has no value for this model
            per_model.append({"model": model, "ratio": None, "moe_feasible": False, "dense_feasible": False, "disadvantaged": False, "evaluated": False, "note": str(exc)})
            continue
        moe_ok, dense_ok = rec["moe"]["feasible"], rec["dense"]["feasible"]
        per_model.append({
            "model": model,
            "ratio": rec["ratio"],
            "moe_feasible": moe_ok,
            "dense_feasible": dense_ok,
            "disadvantaged": (rec["ratio"] is not None and rec["ratio"] > 1) or (dense_ok and not moe_ok),
            "evaluated": dense_ok or moe_ok,
            "note": "" if rec["ratio"] is not None else ("MoE infeasible" if dense_ok else "dense infeasible" if moe_ok else "both infeasible"),
        })
    return {
        "context": context,
        "models": per_model,
        "evaluated": sum(r["evaluated"] for r in per_model),
        "disadvantaged": sum(r["disadvantaged"] for r in per_model if r["evaluated"]),
    }


def headline_evidence(values: Values) -> dict:
    """Claim 5: the book's ratio for the paper's headline point under this build's deployment."""
    rec = headline(_paper_values(values))
    return {"model": PAPER_MODEL, "context": PAPER_CONTEXT, "ratio": rec["ratio"], "paper_ratio": PAPER_RATIO, "q": rec["q"], "qs": rec["qs"]}


def infeasibility_evidence(values: Values, model: str = PAPER_INFEASIBLE_MODEL, context: int = 4096) -> dict:
    """Claim 6: the fewest GPUs of the build's accelerator that place the MoE and its dense model."""
    try:
        row = minimum_gpus(values, model, [values["hardware"]], context=context)[0]
    except QsError as exc:  # e.g. the q rule has no value for this model
        return {"model": model, "hardware": values["hardware"], "context": context, "moe_min_gpus": None, "dense_min_gpus": None, "note": str(exc)}
    return {"model": model, "hardware": row["hardware"], "context": context, "moe_min_gpus": row["moe_min_gpus"], "dense_min_gpus": row["dense_min_gpus"]}


def flop_proxy_evidence(values: Values, model: str = PAPER_MODEL, context: int = PAPER_CONTEXT) -> dict:
    """Claim 7: training FLOPs per token (6 x active parameters) against the simulated ratio.

    ``proxy_ratio`` = MoE / dense training FLOPs per token: the dense/MoE throughput a FLOP
    proxy predicts (= 1/q for the comparator with q*A parameters).  ``decode_flop_ratio`` is the
    same with decode FLOPs at ``context``, attention included.
    """
    sc = scenario(values, model)
    rec = headline(_paper_values(values, model, context))
    moe_train = TRAINING_FLOPS_PER_PARAM * float(sc.moe.active_params)
    dense_train = TRAINING_FLOPS_PER_PARAM * float(sc.dense.active_params)
    moe_dec = float(sc.moe.decode_flops_per_token(context))
    dense_dec = float(sc.dense.decode_flops_per_token(context))
    return {
        "model": sc.model_id,
        "context": context,
        "moe_training_flops": moe_train,
        "dense_training_flops": dense_train,
        "proxy_ratio": moe_train / dense_train,
        "moe_decode_flops": moe_dec,
        "dense_decode_flops": dense_dec,
        "decode_flop_ratio": moe_dec / dense_dec,
        "ratio": rec["ratio"],
    }


def claims_evidence(values: Values) -> dict[str, dict]:
    """The evidence for every claim of :data:`CLAIMS` under ``values``, each with its ``verdict``."""
    ev: dict[str, dict] = {
        "fragmentation": fragmentation_evidence(values),
        "headroom": headroom_evidence(values),
        "inequality": inequality_evidence(values),
        "generality": generality_evidence(values),
        "headline": headline_evidence(values),
        "infeasibility": infeasibility_evidence(values),
        "flop_proxy": flop_proxy_evidence(values),
    }
    for claim, e in ev.items():
        e["verdict"] = verdict(claim, e)
    return ev


# --------------------------------------------------------------------------------------
# the headline, conditional on how the MoE is served

#: How each MoE layout is named in a verdict.
LAYOUT_WORDS = {
    "tp": "tensor-parallel serving",
    "ep": "expert parallelism with data-parallel attention",
    "dp-tp": "data-parallel attention with tensor-parallel experts",
}


def layout_verdict(ratio: float | None) -> str:
    """'reproduced' within RATIO_TOLERANCE of PAPER_RATIO, 'exceeded' above that band, 'not
    reproduced' below it, 'not tested' where a side cannot be placed (ratio None)."""
    if ratio is None:
        return "not tested"
    if within_tolerance(ratio):
        return "reproduced"
    return "exceeded" if ratio > PAPER_RATIO else "not reproduced"


def headline_by_layout(values: Values, search_rows: Iterable[Mapping[str, Any]]) -> dict:
    """Claim 5 per MoE layout: the ratio at the paper's point with the build's other values and
    that layout, its :func:`layout_verdict`, and the layout's rows of the reproduction search
    (``search_rows``: :func:`qsmoe.scenario.headline.search` records, counted where the dense
    model is served as 'auto' serves it): configurations, feasible, within tolerance, median.

    ``text``: one sentence, e.g. "reproduced under tensor-parallel serving ...; not reproduced
    under expert parallelism ...".
    """
    rows = [r for r in search_rows if r["dense_layout_auto"]]
    out = []
    for layout, words in LAYOUT_WORDS.items():
        ratio = headline(_paper_values(dict(values, moe_layout=layout)))["ratio"]
        mine = [r for r in rows if r["moe_layout"] == layout]
        ratios = sorted(r["ratio"] for r in mine if r["ratio"] is not None)
        within = sum(bool(r["within"]) for r in mine)
        median = ratios[len(ratios) // 2] if ratios else None
        out.append({
            "moe_layout": layout, "ratio": ratio, "verdict": layout_verdict(ratio),
            "configurations": len(mine), "feasible": len(ratios), "within": within, "median": median,
            "search_rows": f"reproduction-search.csv: moe_layout = {layout}, dense_layout_auto = True",
            "text": f"{layout_verdict(ratio)} under {words} ({'no ratio' if ratio is None else f'{ratio:.2f}x'} at this build's point; "
                    f"{within} of {len(ratios)} feasible configurations of the search within {RATIO_TOLERANCE:.0%})",
        })
    return {"layouts": out, "text": "; ".join(r["text"] for r in out)}
