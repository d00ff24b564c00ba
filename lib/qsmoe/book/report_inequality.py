"""Records for the throughput, qs-inequality and feasibility chapters (05, 06, 07).

Thin reshaping of :mod:`qsmoe.scenario.analysis` results for display (per-GPU throughput, the
factors of the headline ratio, agreement by context, placement status labels).

No new physics: every number comes from ``compare``, ``decode`` and ``hbm_budget``.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.scenario.analysis import context_sweep, feasibility_table, q_estimates
from qsmoe.scenario.compare import compare, scenario
from qsmoe.physics.decode import decode, step_time
from qsmoe.physics.memory import hbm_budget
from qsmoe.specs.models import load_model
from qsmoe.physics.profile import profile_of

Values = Mapping[str, Any]

#: Label for a design point where a side cannot be placed.
INFEASIBLE = "infeasible"


# --------------------------------------------------------------------------------------
# chapter 05: throughput versus context


def per_gpu_sweep(values: Values, model_id: str, contexts: Iterable[int] | None = None) -> list[dict]:
    """:func:`qsmoe.scenario.analysis.context_sweep` with throughput per GPU and printable status.

    Both sides run on ``values['gpus']`` GPUs.  Throughput fields are None where a side is
    infeasible; ``moe_status``/``dense_status`` hold the limiting resource or "infeasible",
    ``ratio_text`` the ratio to two decimals or "infeasible".  ``capacity_gain`` is
    B_dense / B_moe and ``step_ratio`` = ratio / capacity_gain = T_moe / T_dense (both None
    where a side is infeasible), as in :func:`ratio_factors`.
    """
    gpus = int(values["gpus"])
    rows = []
    for r in context_sweep(values, model_id, contexts):
        out = dict(r)
        out["context_k"] = r["context"] / 1024
        for side in ("moe", "dense"):
            tps = r[f"{side}_tokens_per_s"]
            out[f"{side}_tokens_per_s_per_gpu"] = None if tps is None else tps / gpus
            out[f"{side}_status"] = r[f"{side}_bound"] or INFEASIBLE
        out["ratio_text"] = INFEASIBLE if r["ratio"] is None else f"{r['ratio']:.2f}"
        ok = r["ratio"] is not None
        out["capacity_gain"] = r["dense_batch"] / r["moe_batch"] if ok else None
        out["step_ratio"] = r["ratio"] * r["moe_batch"] / r["dense_batch"] if ok else None
        rows.append(out)
    return rows


def infeasibility_reason(values: Values, model_id: str, context: int) -> dict[str, str | None]:
    """Why each side cannot be placed at ``context`` (None for a side that can)."""
    rec = compare(scenario(values, model_id), context).record()
    return {"moe": rec["moe"]["reason"], "dense": rec["dense"]["reason"]}


def headline_sides(record: Mapping[str, Any]) -> list[dict]:
    """The two sides of a :func:`qsmoe.scenario.analysis.headline` record as table rows."""
    rows = []
    for side, layout_key in (("moe", "moe_layout"), ("dense", "dense_layout")):
        r = record[side]
        ok = r["feasible"]
        rows.append({
            "side": "MoE" if side == "moe" else "dense",
            "layout": record[layout_key],
            "batch (sequences)": r["batch"] if ok else INFEASIBLE,
            "tokens/s": r["tokens_per_s"] if ok else INFEASIBLE,
            "tokens/s per GPU": r["tokens_per_s_per_gpu"] if ok else INFEASIBLE,
            "step time (ms)": r["step_time_s"] * 1e3 if ok else INFEASIBLE,
            "bound": r["bound"] if ok else INFEASIBLE,
        })
    return rows


def ratio_factors(record: Mapping[str, Any]) -> dict[str, float] | None:
    """Split the dense/MoE ratio R = (B_dense / B_moe) * (T_moe / T_dense).

    ``batch_ratio`` is the capacity gain (how many more sequences the dense model holds),
    ``step_ratio`` how much longer or shorter the dense step is (< 1: the dense step is
    longer). None where a side is infeasible.
    """
    m, d = record["moe"], record["dense"]
    if not (m["feasible"] and d["feasible"]):
        return None
    batch_ratio = d["batch"] / m["batch"]
    step_ratio = m["step_time_s"] / d["step_time_s"]
    return {"batch_ratio": batch_ratio, "step_ratio": step_ratio, "ratio": batch_ratio * step_ratio}


def attention_time_ms(values: Values, model_id: str, context: int) -> dict[str, float]:
    """Milliseconds per step spent in attention over the KV cache, MoE and dense, at each
    side's largest admissible batch (0 for an infeasible side).

    Evaluated with :func:`qsmoe.physics.decode.step_time` on a copy of each profile whose every
    other weight group is zeroed, so it is exactly the attention-core term of the step
    model (compute or KV-read time, whichever bounds it).
    """
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("moe", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        r = decode(prof, dep, context)
        if not bool(r.feasible):
            out[side] = 0.0
            continue
        core = prof.with_changes(proj_params=0.0, dense_ffn_params=0.0, shared_params=0.0, head_params=0.0, routed_params=0.0, n_experts=1, moe_layers=0)
        st = step_time(core, dep, context, r.batch)
        out[side] = float(st.compute_s + st.kv_s) * 1e3
    return out


# --------------------------------------------------------------------------------------
# chapter 06: the qs inequality


def phase_points(values: Values, model_ids: Iterable[str] | None = None) -> list[dict]:
    """Each model's s and q under every rule that gives a value (for the (s, q) diagram)."""
    rows = []
    for model_id in model_ids or values["models"]:
        s = float(profile_of(load_model(model_id)).s)
        for rule, q in q_estimates(model_id).items():
            if q is not None:
                rows.append({"model": model_id, "rule": rule, "s": s, "q": q, "qs": q * s})
    return rows


def inequality_point(values: Values, model_id: str, context: int) -> dict[str, float | None]:
    """The general inequality's terms for one model at one context (per replica).

    M = G * usable HBM per GPU, W = the MoE's resident weight bytes as laid out, phi the
    streamed expert fraction at the MoE's batch, rho the dense/MoE KV bytes per sequence,
    theta the threshold and qs_eff = dense resident bytes / W (what is compared to theta).
    ``capacity_term`` is (M - qs_eff W) / (M - W), the formula's R when phi = rho = 1
    (both None where the MoE's weights do not fit); ``memory_bound_ratio`` is the formula's
    R and ``simulated_ratio`` the step model's (None where a side is infeasible).
    """
    sc = scenario(values, model_id)
    cmp = compare(sc, context)
    t = cmp.terms
    m, w = float(t["usable_bytes"]), float(t["moe_weight_bytes"])
    ok = bool(cmp.both_feasible)
    fits = bool(t["moe_fits"])
    return {
        "usable_gb": m / 1e9,
        "moe_weights_gb": w / 1e9,
        "phi": float(t["phi"]),
        "kv_ratio": float(t["kv_ratio"]),
        "threshold": float(t["threshold"]) if fits else None,
        "qs": sc.qs,
        "qs_eff": float(t["qs_eff"]),
        "capacity_term": float((m - t["qs_eff"] * w) / (m - w)) if fits else None,
        "memory_bound_ratio": float(t["memory_bound_ratio"]) if ok else None,
        "simulated_ratio": float(cmp.ratio) if ok else None,
    }


def headline_inequality(values: Values) -> dict[str, float | None]:
    """:func:`inequality_point` at the headline model and context."""
    return inequality_point(values, values["headline_model"], values["headline_context"])


def agreement_by(result: Mapping[str, Any], key: str) -> list[dict]:
    """Per value of ``key`` (a record field of :func:`qsmoe.scenario.analysis.agreement`, e.g.
    "context" or "gpus"): design points, share where the MoE is simulated slower, and the
    share where each form of the inequality predicts the simulated winner."""
    by: dict[Any, list[dict]] = {}
    for r in result["records"]:
        by.setdefault(r[key], []).append(r)
    rows = []
    for value in sorted(by):
        rs = by[value]
        n = len(rs)
        rows.append({
            key: value,
            "points": n,
            "MoE slower (share)": sum(r["simulated_disadvantaged"] for r in rs) / n,
            "simple form right (share)": sum(r["simple"] == r["simulated_disadvantaged"] for r in rs) / n,
            "general form right (share)": sum(r["general"] == r["simulated_disadvantaged"] for r in rs) / n,
        })
    return rows


def agreement_by_context(result: Mapping[str, Any]) -> list[dict]:
    """:func:`agreement_by` over contexts."""
    return agreement_by(result, "context")


# --------------------------------------------------------------------------------------
# chapter 07: feasibility


def _status(moe_ok: bool, dense_ok: bool) -> str:
    if moe_ok and dense_ok:
        return "both feasible"
    if dense_ok:
        return "only dense feasible"
    if moe_ok:
        return "only MoE feasible"
    return "neither feasible"


def placement_grid(values: Values, model_id: str, hardware_ids: Iterable[str], gpu_counts: Iterable[int], context: int = 4096) -> list[dict]:
    """:func:`qsmoe.scenario.analysis.feasibility_table` with a ``status`` label per row."""
    return [{**r, "status": _status(r["moe_feasible"], r["dense_feasible"])} for r in feasibility_table(values, model_id, hardware_ids, gpu_counts, context)]


def resident_weights_gb(values: Values, model_id: str, context: int = 4096) -> dict[str, float]:
    """Weights in GB under the parameter set's weight format: each model's whole resident set
    (every parameter once), the MoE's share on one GPU at ``values['gpus']`` GPUs (its
    layout replicates the non-expert weights), the usable HBM of one GPU, and the KV cache of
    one MoE sequence of ``context`` tokens (all layers, the parameter set's KV format)."""
    sc = scenario(values, model_id)
    dep = sc.moe_deployment
    return {
        "moe_weights_gb": float(sc.moe.resident_params) * dep.weight_bytes / 1e9,
        "dense_weights_gb": float(sc.dense.resident_params) * sc.dense_deployment.weight_bytes / 1e9,
        "moe_weights_per_gpu_gb": float(hbm_budget(sc.moe, dep, context).weight_bytes_per_gpu) / 1e9,
        "usable_per_gpu_gb": dep.usable_hbm_bytes / 1e9,
        "moe_kv_per_sequence_gb": float(sc.moe.kv_values_per_token) * dep.kv_bytes * context / 1e9,
    }
