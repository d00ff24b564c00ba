"""The rows of chapter 9, the claims ledger: each claim of the abstract, this book's value, the
assumptions behind it and the verdict, worded from :func:`qsmoe.scenario.claims.claims_evidence`."""
from __future__ import annotations

from typing import Any, Mapping

from qsmoe.book.words import deployment_text, model_name, ratio_text
from qsmoe.scenario.compare import vendor_fractions
from qsmoe.scenario.claims import CLAIMS, PAPER_CONTEXT, PAPER_MODEL, PAPER_MODELS, PAPER_RATIO, RATIO_TOLERANCE, TRAINING_FLOPS_PER_PARAM, claims_evidence

Values = Mapping[str, Any]


def claims_ledger(values: Values) -> dict:
    """Evidence, verdict and a ledger row for each claim of the abstract.

    Returns ``{"evidence": {claim: dict with a 'verdict'}, "rows": [ledger rows]}``; each row has
    the columns claim, this book's value, assumptions, verdict.
    """
    dep = deployment_text(values)
    eta = vendor_fractions(values)  # the achieved fractions of the set's accelerator's vendor
    ev = claims_evidence(values)
    f, h, i, g, hl, inf, fp = (ev[c] for c in CLAIMS)
    ctx_k = f"{PAPER_CONTEXT // 1024}k"
    paper_model = model_name(PAPER_MODEL)  # the book names models, not their file ids

    def opt(x: float | None, fmt: str) -> str:
        return "n/a (MoE infeasible)" if x is None else format(x, fmt)

    gen_text = "; ".join(f"{model_name(r['model'])} {ratio_text(r['ratio'])}" if r["ratio"] is not None else f"{model_name(r['model'])} {r['note'] if r['evaluated'] else 'not evaluated'}" for r in g["models"])
    headline_text = ratio_text(hl["ratio"])
    if hl["verdict"] != "holds" and hl["ratio"] is not None:
        headline_text = f"the book finds {ratio_text(hl['ratio'])} (paper: {PAPER_RATIO:g}x)"
    rows = [
        {
            "claim": "1. Expert routing fragments the decode batch and pushes the FFNs into the bandwidth-bound regime",
            "value": f"{paper_model} at {ctx_k}: {opt(f['tokens_per_expert'], '.2f')} tokens per touched expert at batch {f['moe_batch']}; expert FFN intensity {opt(f['expert_intensity'], '.1f')} FLOP/B vs ridge {f['ridge']:.0f} FLOP/B (dense FFN {opt(f['dense_intensity'], '.0f')})",
            "assumptions": f"{dep}; routing skew {values['routing_skew']:g}; ridge = peak x {eta['compute_efficiency']:g} / (bandwidth x {eta['mem_efficiency']:g})",
        },
        {
            "claim": "2. Resident expert pools reduce the HBM headroom left for the KV cache",
            "value": f"{paper_model} at {ctx_k}: KV capacity {h['moe_kv_gb']:.1f} GB/GPU (MoE) vs {h['dense_kv_gb']:.1f} GB/GPU (dense); largest batch {h['moe_max_batch']} vs {h['dense_max_batch']}",
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
