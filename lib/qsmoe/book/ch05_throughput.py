"""Records for chapter 5, throughput versus context: per-GPU throughput, the factors of the
headline ratio and the attention share of a step (reshaped :mod:`qsmoe.scenario.analysis` records)."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.book.words import INFEASIBLE
from qsmoe.physics.decode import StepTime, decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.profile import DecodeProfile
from qsmoe.scenario.analysis import context_sweep
from qsmoe.scenario.compare import compare, scenario

Values = Mapping[str, Any]


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


def _term_step(prof: DecodeProfile, dep: Deployment, context: int, **zeroed: float) -> StepTime | None:
    """One decode step of ``prof`` with the profile fields in ``zeroed`` set to zero, at the
    batch the whole profile admits (its largest admissible batch); None where it cannot be placed.
    Zeroing every group but one leaves exactly that group's term of the step model."""
    r = decode(prof, dep, context)
    if not bool(r.feasible):
        return None
    return step_time(prof.with_changes(**zeroed), dep, context, r.batch)


def attention_time_ms(values: Values, model_id: str, context: int) -> dict[str, float]:
    """Milliseconds per step spent in attention over the KV cache, MoE and dense, at each
    side's largest admissible batch (0 for an infeasible side).

    Evaluated with :func:`_term_step`, every other weight group zeroed, so it is exactly the
    attention-core term of the step model (compute or KV-read time, whichever bounds it).
    """
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("moe", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        st = _term_step(prof, dep, context, proj_params=0.0, dense_ffn_params=0.0, shared_params=0.0, head_params=0.0, routed_params=0.0, n_experts=1, moe_layers=0)
        out[side] = 0.0 if st is None else float(st.compute_s + st.kv_s) * 1e3
    return out


#: What bounds the routed experts of a step, in the words chapter 5 prints.
EXPERT_BOUND_PHRASES = {
    "compute": "their grouped GEMMs' FLOPs, each expert's few tokens padded to the kernel's row block",
    "weights": "reading the experts those sequences touch",
    None: "no step: the MoE cannot be placed",
}


def routed_expert_time(values: Values, model_id: str, context: int) -> dict[str, Any]:
    """The MoE's routed experts in one decode step at its largest admissible batch: milliseconds
    and what bounds them ('compute': the padded grouped-GEMM FLOPs; 'weights': reading the experts
    the batch touches), or {ms: 0.0, bound: None} where the MoE cannot be placed.

    Evaluated with :func:`_term_step`, every group but the routed experts zeroed, so it is exactly
    the routed-expert term of the step model.
    """
    sc = scenario(values, model_id)
    st = _term_step(sc.moe, sc.moe_deployment, context, proj_params=0.0, dense_ffn_params=0.0, shared_params=0.0, head_params=0.0,
                    attn_flops_per_context_token=0.0, kv_values_per_token=0.0)
    if st is None:
        return {"ms": 0.0, "bound": None}
    compute_s, weights_s = float(st.compute_s), float(st.weights_s)
    return {"ms": (compute_s + weights_s) * 1e3, "bound": "compute" if compute_s > weights_s else "weights"}
