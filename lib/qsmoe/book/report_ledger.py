"""Helpers for the closing chapters: sensitivity (08), the claims ledger (09) and rerunning (10).

Nothing here adds physics: every number comes from :mod:`qsmoe.scenario.analysis`, :mod:`qsmoe.scenario.compare`,
:mod:`qsmoe.physics.decode`, :mod:`qsmoe.physics.routing` and :mod:`qsmoe.physics.memory`.  This module summarises their
records, turns them into the evidence for each claim of the paper's abstract, and decides a
verdict by the explicit thresholds documented in :func:`verdict`.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from qsmoe import REPO_ROOT
from qsmoe.scenario.analysis import agreement, headline, hbm_table, minimum_gpus, roofline_ridge
from qsmoe.scenario.compare import compare, scenario
from qsmoe.errors import QsError
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, load_params
from qsmoe.physics.routing import expert_ffn_intensity_flops_per_byte, tokens_per_expert

Values = Mapping[str, Any]

# --------------------------------------------------------------------------------------
# what the paper's abstract states (arXiv 2603.08960): the claims the ledger checks

#: The abstract's headline: a quality-matched dense model is 4.5x faster than DeepSeek-V3 at 128k.
PAPER_RATIO = 4.5
PAPER_MODEL = "deepseek-v3"
PAPER_CONTEXT = 131072
#: The frontier models the abstract evaluates.
PAPER_MODELS = ("deepseek-v3", "qwen3-235b-a22b", "grok-1", "switch-c-2048")
#: The model the abstract says can become infeasible where its dense comparator fits.
PAPER_INFEASIBLE_MODEL = "switch-c-2048"

# --------------------------------------------------------------------------------------
# verdict thresholds (see verdict())

#: The headline is reproduced when the book's ratio lies within this fraction of 4.5.
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


# --------------------------------------------------------------------------------------
# small formatting helpers


def values_from(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The parameter-set values out of a notebook's namespace (every key of the default set)."""
    keys = load_params().values
    missing = [k for k in keys if k not in namespace]
    if missing:
        raise QsError(f"missing parameter(s): {', '.join(missing)}", source="notebook")
    return {k: namespace[k] for k in keys}


def ratio_text(ratio: float | None, fmt: str = ".2f") -> str:
    """'1.96x', or 'infeasible' where a side cannot be placed (ratio None)."""
    return "infeasible" if ratio is None else f"{format(ratio, fmt)}x"


def deployment_text(values: Values) -> str:
    """One line naming the deployment assumptions of a parameter set."""
    return (
        f"{values['gpus']}x {values['hardware']}, {values['weight_dtype']} weights, {values['kv_dtype']} KV, "
        f"reserve {values['reserve_fraction']:.0%}, q by {values['q_rule']}, {values['dense_arch']} dense"
    )


# --------------------------------------------------------------------------------------
# chapter 08: sensitivity


def sensitivity_summary(rows: Iterable[Mapping[str, Any]]) -> list[dict]:
    """One row per parameter of :func:`qsmoe.scenario.analysis.sensitivity` records, largest swing first.

    ``low``/``high``: the smallest and largest feasible ratio and the values giving them;
    ``span`` = high - low (0 when fewer than two values are feasible); ``infeasible``: the values
    for which a side cannot be placed (comma-separated, '' when none).
    """
    by_param: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_param.setdefault(row["parameter"], []).append(row)
    out = []
    for param, group in by_param.items():
        feasible = [r for r in group if r["ratio"] is not None]
        infeasible = [r["value"] for r in group if r["ratio"] is None]
        low = min(feasible, key=lambda r: r["ratio"]) if feasible else None
        high = max(feasible, key=lambda r: r["ratio"]) if feasible else None
        out.append({
            "parameter": param,
            "lowest": ratio_text(low["ratio"]) if low else "infeasible",
            "lowest at": low["value"] if low else "",
            "highest": ratio_text(high["ratio"]) if high else "infeasible",
            "highest at": high["value"] if high else "",
            "span": (high["ratio"] - low["ratio"]) if feasible else 0.0,
            "infeasible": ", ".join(infeasible),
        })
    return sorted(out, key=lambda r: -r["span"])


def search_summary(rows: Sequence[Mapping[str, Any]], target: float = PAPER_RATIO, tolerance: float = RATIO_TOLERANCE) -> dict:
    """Counts and the best configuration of :func:`qsmoe.scenario.analysis.reproduction_search` records.

    Returns points, feasible, infeasible, within (ratio within ``tolerance`` of ``target``),
    above_one (dense faster), best_ratio, best (the grid keys of the best point) and
    best_text (the best point as 'key=value, ...').
    """
    feasible = [r for r in rows if r["ratio"] is not None]
    best = max(feasible, key=lambda r: r["ratio"]) if feasible else None
    keys = [k for k in (rows[0] if rows else {}) if k not in ("ratio", "within_target")]
    return {
        "points": len(rows),
        "feasible": len(feasible),
        "infeasible": len(rows) - len(feasible),
        "within": sum(1 for r in feasible if abs(r["ratio"] / target - 1) <= tolerance),
        "above_one": sum(1 for r in feasible if r["ratio"] > 1),
        "best_ratio": best["ratio"] if best else None,
        "best": {k: best[k] for k in keys} if best else {},
        "best_text": ", ".join(f"{k}={best[k]}" for k in keys) if best else "none feasible",
    }


def typed_changes(grid: Mapping[str, Iterable[Any]], labels: Mapping[str, str]) -> dict[str, Any]:
    """Map a search record's string labels (``str(value)``) back to the grid's typed values."""
    out = {}
    for key, label in labels.items():
        matches = [v for v in grid[key] if str(v) == label]
        if not matches:
            raise QsError(f"{label!r} is not a value of the grid", field=key)
        out[key] = matches[0]
    return out


def ratio_ceiling(values: Values, model: str | None = None, context: int | None = None) -> dict:
    """The two ceilings on the dense/MoE ratio at one design point, beside the simulated ratio.

    Capacity (the memory-bound qs form, :mod:`qsmoe.physics.inequality`), per replica with usable HBM M,
    MoE weights W and dense weights qsW::

        R_mem = (M - qsW)(M - (1 - phi)W) / (rho M (M - W)),   lever = (M - qsW) / (M - W)

    Attention compute: attention over the cache runs in bf16 (:mod:`qsmoe.physics.decode`), so no
    layout lets the dense model generate faster than
    ``G * P_bf16 * eta_c / (F_attn * L)`` tokens/s (F_attn: its attention FLOPs per new token
    per cached token).  ``attention_cap_ratio`` is that bound over the MoE's simulated
    throughput.  None marks a quantity that is undefined because a side cannot be placed.
    """
    model = model or values["headline_model"]
    ctx = int(values["headline_context"] if context is None else context)
    sc = scenario(values, model)
    cmp = compare(sc, ctx)
    rec = cmp.record()
    m, w = float(cmp.terms["usable_bytes"]), float(cmp.terms["moe_weight_bytes"])
    w_dense = float(cmp.terms["qs_eff"]) * w
    ddep = sc.dense_deployment
    attn_cap = ddep.gpus * ddep.hardware.peak_for("bf16") * ddep.compute_efficiency / (float(sc.dense.attn_flops_per_context_token) * ctx)
    moe_tps = rec["moe"]["tokens_per_s"]
    moe_fits = m > w
    return {
        "model": sc.model_id,
        "context": ctx,
        "usable_hbm_tb": m / 1e12,
        "moe_weights_tb": w / 1e12,
        "dense_weights_tb": w_dense / 1e12,
        "moe_weight_share": w / m,
        "qs_eff": w_dense / w,
        "phi": float(cmp.terms["phi"]) if moe_fits else None,
        "kv_ratio": float(cmp.terms["kv_ratio"]),
        "capacity_lever": (m - w_dense) / (m - w) if moe_fits and m > w_dense else None,
        "memory_bound_ratio": float(cmp.terms["memory_bound_ratio"]) if moe_fits and m > w_dense else None,
        "peak_bf16_flops_per_s": ddep.hardware.peak_for("bf16"),
        "dense_attention_flops_per_token": float(sc.dense.attn_flops_per_context_token) * ctx,
        "moe_attention_flops_per_token": float(sc.moe.attn_flops_per_context_token) * ctx,
        "moe_matmul_flops_per_token": decode_flops_per_token(sc.moe, 0),
        "dense_matmul_flops_per_token": decode_flops_per_token(sc.dense, 0),
        "dense_attention_cap_tokens_per_s": attn_cap,
        "attention_cap_ratio": attn_cap / moe_tps if moe_tps else None,
        "moe_tokens_per_s": moe_tps,
        "dense_tokens_per_s": rec["dense"]["tokens_per_s"],
        "moe_batch": rec["moe"]["batch"],
        "dense_batch": rec["dense"]["batch"],
        "moe_bound": rec["moe"]["bound"],
        "dense_bound": rec["dense"]["bound"],
        "ratio": rec["ratio"],
    }


# --------------------------------------------------------------------------------------
# chapter 09: the claims ledger


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
        return "holds" if abs(e["ratio"] / PAPER_RATIO - 1) <= RATIO_TOLERANCE else "not reproduced"
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
        "dense_intensity": float(expert_ffn_intensity_flops_per_byte(b_dense, 1, 1, dep.weight_bytes)) if rec["dense"]["feasible"] else None,
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


def decode_flops_per_token(profile: Any, context: int) -> float:
    """FLOPs to decode one token of ``profile`` at ``context``, as :mod:`qsmoe.physics.decode` counts them:
    2 per decode-path weight (projections, LM head, dense FFN, shared and top-k routed experts)
    plus the attention FLOPs over the cache."""
    weights = profile.proj_params + profile.head_params + profile.decode_ffn_active_params
    return float(2 * weights + profile.attn_flops_per_context_token * context)


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
    moe_dec = decode_flops_per_token(sc.moe, context)
    dense_dec = decode_flops_per_token(sc.dense, context)
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


def claims_ledger(values: Values) -> dict:
    """Evidence, verdict and a ledger row for each claim of the abstract.

    Returns ``{"evidence": {claim: dict with a 'verdict'}, "rows": [ledger rows]}``; each row has
    the columns claim, this book's value, assumptions, verdict.
    """
    dep = deployment_text(values)
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
    f, h, i, g, hl, inf, fp = (ev[c] for c in CLAIMS)
    ctx_k = f"{PAPER_CONTEXT // 1024}k"

    def opt(x: float | None, fmt: str) -> str:
        return "n/a (MoE infeasible)" if x is None else format(x, fmt)

    gen_text = "; ".join(f"{r['model']} {ratio_text(r['ratio'])}" if r["ratio"] is not None else f"{r['model']} {r['note'] if r['evaluated'] else 'not evaluated'}" for r in g["models"])
    headline_text = ratio_text(hl["ratio"])
    if hl["verdict"] != "holds" and hl["ratio"] is not None:
        headline_text = f"the book finds {ratio_text(hl['ratio'])} (paper: {PAPER_RATIO:g}x)"
    rows = [
        {
            "claim": "1. Expert routing fragments the decode batch and pushes the FFNs into the bandwidth-bound regime",
            "value": f"{PAPER_MODEL} at {ctx_k}: {opt(f['tokens_per_expert'], '.2f')} tokens per touched expert at batch {f['moe_batch']}; expert FFN intensity {opt(f['expert_intensity'], '.1f')} FLOP/B vs ridge {f['ridge']:.0f} FLOP/B (dense FFN {opt(f['dense_intensity'], '.0f')})",
            "assumptions": f"{dep}; routing skew {values['routing_skew']:g}; ridge = peak x {values['compute_efficiency']:g} / (bandwidth x {values['mem_efficiency']:g})",
        },
        {
            "claim": "2. Resident expert pools reduce the HBM headroom left for the KV cache",
            "value": f"{PAPER_MODEL} at {ctx_k}: KV capacity {h['moe_kv_gb']:.1f} GB/GPU (MoE) vs {h['dense_kv_gb']:.1f} GB/GPU (dense); largest batch {h['moe_max_batch']} vs {h['dense_max_batch']}",
            "assumptions": f"{dep}; MoE {values['moe_layout']}, dense {values['dense_layout']} layout",
        },
        {
            "claim": "3. The qs inequality predicts when an MoE is disadvantaged",
            "value": f"general form names the simulated winner at {i['domain_agreement']:.0%} of {i['domain_points']} points at {ctx_k} ({i['all_agreement']:.0%} of {i['all_points']} over all contexts)",
            "assumptions": f"{dep}; grid: {len(PAPER_MODELS)} models x q in {{{', '.join(f'{q:g}' for q in i['q_values'])}}} x {{{', '.join(str(c) for c in i['gpu_counts'])}}} GPUs x contexts {{{', '.join(str(c) for c in i['contexts'])}}}",
        },
        {
            "claim": "4. The penalty is general across DeepSeek-V3, Qwen3-235B, Grok-1 and Switch-C",
            "value": f"dense/MoE at {ctx_k}: {gen_text}; {g['disadvantaged']} of {g['evaluated']} disadvantaged",
            "assumptions": f"{dep}; an MoE that cannot be placed where its dense model can counts as disadvantaged",
        },
        {
            "claim": f"5. DeepSeek-V3 at 128k: a quality-matched dense model is {PAPER_RATIO:g}x faster",
            "value": headline_text,
            "assumptions": f"{dep}; reproduced within {RATIO_TOLERANCE:.0%}",
        },
        {
            "claim": "6. Switch-C becomes infeasible on cluster sizes where the dense model is viable",
            "value": f"not evaluated: {inf['note']}" if inf.get("note") else f"fewest {inf['hardware']} GPUs that place it: MoE {inf['moe_min_gpus'] if inf['moe_min_gpus'] is not None else 'none'}, dense {inf['dense_min_gpus'] if inf['dense_min_gpus'] is not None else 'none'} (context {inf['context']})",
            "assumptions": f"{values['weight_dtype']} weights, reserve {values['reserve_fraction']:.0%}, q by {values['q_rule']}, {values['dense_arch']} dense, {values['moe_layout']} MoE layout; GPU counts 1, 2, 4 and multiples of 8 up to 1024",
        },
        {
            "claim": "7. Training-FLOP efficiency is an incomplete proxy for inference performance",
            "value": f"training FLOPs/token: MoE {fp['moe_training_flops'] / 1e9:.0f} G, dense {fp['dense_training_flops'] / 1e9:.0f} G, so the proxy predicts dense/MoE = {fp['proxy_ratio']:.2f}x; simulated at {ctx_k}: {ratio_text(fp['ratio'])}",
            "assumptions": f"{dep}; training FLOPs = {TRAINING_FLOPS_PER_PARAM:g} x active parameters per token",
        },
    ]
    for row, claim in zip(rows, CLAIMS):
        row["verdict"] = ev[claim]["verdict"]
    return {"evidence": ev, "rows": [{"claim": r["claim"], "this book's value": r["value"], "assumptions": r["assumptions"], "verdict": r["verdict"]} for r in rows]}


# --------------------------------------------------------------------------------------
# chapter 10: rerunning


#: Meanings of keys that carry no inline comment in data/params/default.yaml, and of the
#: provenance parameters ``qsmoe book`` adds.
EXTRA_MEANINGS: dict[str, tuple[str, str]] = {
    "name": ("Identity", "the set's name; the build goes to _build/<name>/ (or _build/<name>-<hash>/ with --set overrides)"),
    "description": ("Identity", "one sentence saying what this set represents"),
    "models": ("What the book evaluates", "MoE models the book evaluates (ids of data/models/)"),
    "headline_model": ("What the book evaluates", "the MoE of the headline comparison"),
    "headline_context": ("What the book evaluates", "context length of the headline comparison"),
    "contexts": ("What the book evaluates", "context lengths of the sweeps, in tokens"),
    "param_set_name": ("Provenance (added by qsmoe book)", "the name of the set the book was built with"),
    "param_set_hash": ("Provenance (added by qsmoe book)", "first 12 hex digits of the sha256 of the set's values"),
    "git_commit": ("Provenance (added by qsmoe book)", "commit of the repository at build time (-dirty: uncommitted changes)"),
    "results_dir": ("Provenance (added by qsmoe book)", "folder where a chapter writes its glued values, tables and figures"),
}

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(.*)$")


def parameter_docs(path: str | Path = DEFAULT_PARAMS_PATH) -> dict[str, dict[str, str]]:
    """Section and meaning of each key of a parameter file, read from its comments.

    A comment line after a blank line opens a section (comments before the first key are
    the file's header); a key's meaning is its trailing ``# comment``.  Keys without one take
    their meaning from :data:`EXTRA_MEANINGS`, as do the provenance parameters.
    """
    docs: dict[str, dict[str, str]] = {}
    section = ""
    seen_key = False
    previous_blank = False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            previous_blank = True
            continue
        if line.startswith("#"):
            if seen_key and previous_blank:
                section = stripped.lstrip("#").strip()
            previous_blank = False
            continue
        previous_blank = False
        m = _KEY_RE.match(line)
        if not m:
            continue  # a continuation line (folded description)
        seen_key = True
        key, rest = m.group(1), m.group(2)
        meaning = rest.split("#", 1)[1].strip() if "#" in rest else ""
        extra = EXTRA_MEANINGS.get(key)
        if extra and meaning:
            meaning = f"{extra[1]} ({meaning})"
        docs[key] = {"section": extra[0] if extra and not section else section, "meaning": meaning or (extra[1] if extra else "")}
    for key, (sec, meaning) in EXTRA_MEANINGS.items():
        docs.setdefault(key, {"section": sec, "meaning": meaning})
    return docs


def value_text(value: Any) -> str:
    """A parameter value as one short string (lists comma-joined, booleans true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def allowed_values() -> dict[str, str]:
    """The values the library accepts for the parameters that name a choice (read from the
    library itself, so the list cannot drift from the code)."""
    from qsmoe.physics.deployment import LAYOUTS
    from qsmoe.specs.dtypes import BYTES_PER_VALUE
    from qsmoe.specs.hardware import available_hardware
    from qsmoe.physics.quality import DENSE_ARCHS, Q_RULES

    dtypes = ", ".join(sorted(BYTES_PER_VALUE))
    return {
        "hardware": ", ".join(available_hardware()),
        "moe_layout": ", ".join(LAYOUTS),
        "dense_layout": ", ".join((*LAYOUTS, "auto")),
        "weight_dtype": dtypes,
        "kv_dtype": dtypes,
        "include_comm": "true, false",
        "q_rule": ", ".join(Q_RULES),
        "dense_arch": ", ".join(DENSE_ARCHS),
    }


def parameter_rows(values: Values, path: str | Path = DEFAULT_PARAMS_PATH) -> list[dict]:
    """One row per chapter parameter: section, key, value in this build, default, meaning
    (from the file's comments) and the values the library accepts (for choices)."""
    docs = parameter_docs(path)
    default = load_params().values
    allowed = allowed_values()
    rows = []
    for key, value in values.items():
        d = docs.get(key, {"section": "", "meaning": ""})
        rows.append({
            "section": d["section"],
            "key": key,
            "this build": value_text(value),
            "default": value_text(default[key]) if key in default else "",
            "meaning": d["meaning"],
            "accepted values": allowed.get(key, ""),
        })
    return rows


def changed_keys(values: Values) -> list[str]:
    """Keys whose value differs from the default set (numbers compared as floats)."""
    default = load_params().values
    out = []
    for key, value in values.items():
        ref = default.get(key)
        same = (float(value) == float(ref)) if isinstance(ref, float) and isinstance(value, (int, float)) and not isinstance(value, bool) else value == ref
        if not same:
            out.append(key)
    return out


def repo_path(relative: str) -> str:
    """Absolute path of a file given relative to the repository root (for in-process CLI calls)."""
    return str(REPO_ROOT / relative)


def build_slug(results_dir: str | Path, fallback: str) -> str:
    """The build folder's name (``_build/<slug>/results/<chapter>``), or ``fallback`` outside a build."""
    path = Path(results_dir).resolve()
    if path.parent.name == "results" and path.parent.parent.name:
        return path.parent.parent.name
    return fallback
