"""Records for chapter 8, sensitivity: the swing of each parameter and the two ceilings on the
dense/MoE ratio at a design point (the reproduction search is :mod:`qsmoe.scenario.headline`)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.book.words import ratio_text
from qsmoe.physics.inequality import capacity_lever
from qsmoe.physics.intensity import attention_ceiling_tokens_per_s
from qsmoe.scenario.compare import compare, scenario

Values = Mapping[str, Any]


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


def ratio_ceiling(values: Values, model: str | None = None, context: int | None = None) -> dict:
    """The two ceilings on the dense/MoE ratio at one design point, beside the simulated ratio.

    Capacity (the memory-bound qs form, :func:`qsmoe.physics.inequality.memory_bound_ratio`), per
    replica with usable HBM M, MoE weights W (W_r of them routed experts) and dense weights qsW::

        R_mem = (M - qsW)(M - (1 - phi)W_r) / (rho M (M - W)),   lever = (M - qsW) / (M - W)

    Attention compute (:func:`qsmoe.physics.intensity.attention_ceiling_tokens_per_s`): no layout
    lets the dense model generate faster than ``G * P_attn * eta_c / (F_attn * L)`` tokens/s.
    ``attention_cap_ratio`` is that bound over the MoE's simulated throughput.  None marks a
    quantity that is undefined because a side cannot be placed.
    """
    model = model or values["headline_model"]
    ctx = int(values["headline_context"] if context is None else context)
    sc = scenario(values, model)
    cmp = compare(sc, ctx)
    rec = cmp.record()
    m, w = float(cmp.terms["usable_bytes"]), float(cmp.terms["moe_weight_bytes"])
    w_dense = float(cmp.terms["qs_eff"]) * w
    ddep = sc.dense_deployment
    attn_cap = attention_ceiling_tokens_per_s(sc.dense, ddep, ctx)
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
        "capacity_lever": capacity_lever(float(cmp.terms["qs_eff"]), m, w) if moe_fits and m > w_dense else None,
        "memory_bound_ratio": float(cmp.terms["memory_bound_ratio"]) if moe_fits and m > w_dense else None,
        "attention_peak_flops_per_s": ddep.hardware.peak_for(ddep.attention_dtype),
        "dense_attention_flops_per_token": float(sc.dense.attn_flops_per_context_token) * ctx,
        "moe_attention_flops_per_token": float(sc.moe.attn_flops_per_context_token) * ctx,
        "moe_matmul_flops_per_token": float(sc.moe.decode_flops_per_token(0)),
        "dense_matmul_flops_per_token": float(sc.dense.decode_flops_per_token(0)),
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
