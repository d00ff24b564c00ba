"""The book's analyses as plain functions returning records (lists of dicts).

Notebooks call these and plot; no physics lives in a notebook. Every function takes the
parameter-set values (a mapping, see data/params/default.yaml).
"""
from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

import numpy as np

from qsmoe.physics.accounting import kv_bytes_per_token
from qsmoe.scenario.compare import Scenario, compare, dense_layout_for, deployment_from, scenario, vendor_fractions
from qsmoe.physics.deployment import Deployment
from qsmoe.specs.hardware import load_hardware
from qsmoe.physics.decode import decode
from qsmoe.errors import QsError
from qsmoe.physics.memory import hbm_budget
from qsmoe.specs.models import load_model
from qsmoe.physics.profile import profile_of
from qsmoe.physics.quality import Q_RULES, estimate_q

Values = Mapping[str, Any]


def q_estimates(model_id: str) -> dict[str, float | None]:
    """q under every rule that has the data it needs (None where a rule has no value for the model)."""
    spec = load_model(model_id)
    p = profile_of(spec)
    out: dict[str, float | None] = {}
    for rule in Q_RULES:
        if rule == "explicit":
            continue
        try:
            out[rule] = float(estimate_q(rule, spec, p.total_params, p.active_params))
        except QsError:
            out[rule] = None
    return out


def models_table(values: Values) -> list[dict]:
    """Per MoE model: total, active, s, q by each rule, q*s and KV bytes per token."""
    rows = []
    for model_id in values["models"]:
        spec = load_model(model_id)
        p = profile_of(spec)
        sc = scenario(values, model_id)
        row = {
            "model": model_id,
            "total_params_b": float(p.total_params) / 1e9,
            "active_params_b": float(p.active_params) / 1e9,
            "s": float(p.s),
            "kv_bytes_per_token": kv_bytes_per_token(spec, values["kv_dtype"]),
            "q": sc.q,
            "qs": sc.qs,
            "dense_params_b": float(sc.dense.total_params) / 1e9,
            "dense_kv_bytes_per_token": float(sc.dense.kv_values_per_token) * sc.dense_deployment.kv_bytes,
        }
        for rule, q in q_estimates(model_id).items():
            row[f"q_{rule}"] = q
        rows.append(row)
    return rows


def hbm_table(values: Values, context: int | None = None) -> list[dict]:
    """Per model and side (MoE, dense): the per-GPU HBM budget in GB at ``context``."""
    context = values["headline_context"] if context is None else context
    rows = []
    for model_id in values["models"]:
        sc = scenario(values, model_id)
        for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
            b = hbm_budget(prof, dep, context)
            weights = float(b.weight_bytes_per_gpu)
            rows.append({
                "model": model_id,
                "side": side,
                "layout": dep.layout,
                "hbm_gb": dep.hardware.hbm_bytes / 1e9,
                "reserve_gb": b.reserve_bytes / 1e9,
                "weights_gb": min(weights, b.usable_bytes) / 1e9,
                "weights_overflow_gb": max(weights - b.usable_bytes, 0.0) / 1e9,
                "kv_gb": float(b.kv_capacity_bytes_per_gpu) / 1e9,
                "max_batch": int(b.max_batch),
                "feasible": bool(b.feasible),
            })
    return rows


def context_sweep(values: Values, model_id: str, contexts: Iterable[int] | None = None) -> list[dict]:
    """MoE and dense at their largest admissible batch across contexts."""
    ctx = np.asarray(list(contexts or values["contexts"]), dtype=float)
    cmp = compare(scenario(values, model_id), ctx)
    rows = []
    for i, c in enumerate(ctx):
        r = cmp.record((i,))
        rows.append({
            "model": model_id,
            "context": int(c),
            "moe_batch": r["moe"]["batch"],
            "moe_tokens_per_s": r["moe"]["tokens_per_s"],
            "moe_bound": r["moe"]["bound"],
            "dense_batch": r["dense"]["batch"],
            "dense_tokens_per_s": r["dense"]["tokens_per_s"],
            "dense_bound": r["dense"]["bound"],
            "ratio": r["ratio"],
            "predicted_disadvantaged": r["predicted_disadvantaged"],
        })
    return rows


def headline(values: Values) -> dict:
    """The paper's headline point: the headline model at the headline context."""
    return compare(scenario(values, values["headline_model"]), values["headline_context"]).record()


def _moved(sc: Scenario, values: Values, hardware_id: str, gpus: int) -> tuple[Deployment, Deployment]:
    """The scenario's two deployments on ``gpus`` GPUs of ``hardware_id`` (the dense layout
    re-chosen as :func:`qsmoe.scenario.compare.scenario` would, the achieved fractions those of the
    new accelerator's vendor)."""
    hw = load_hardware(hardware_id)
    fractions = vendor_fractions(values, hw)
    moe_dep = sc.moe_deployment.with_changes(hardware=hw, gpus=gpus, **fractions)
    dense_dep = sc.dense_deployment.with_changes(hardware=hw, gpus=gpus, layout=dense_layout_for(sc.dense, values["dense_layout"], gpus), **fractions)
    return moe_dep, dense_dep


def feasibility_table(values: Values, model_id: str, hardware_ids: Iterable[str], gpu_counts: Iterable[int], context: int = 4096) -> list[dict]:
    """For each accelerator and GPU count: can the MoE, and its dense comparator, be placed?"""
    sc = scenario(values, model_id)
    rows = []
    for hw, g in itertools.product(hardware_ids, list(gpu_counts)):
        moe_dep, dense_dep = _moved(sc, values, hw, g)
        m = bool(hbm_budget(sc.moe, moe_dep, context).feasible)
        d = bool(hbm_budget(sc.dense, dense_dep, context).feasible)
        rows.append({"hardware": hw, "gpus": g, "moe_feasible": m, "dense_feasible": d, "moe_only_infeasible": d and not m})
    return rows


def minimum_gpus(values: Values, model_id: str, hardware_ids: Iterable[str], context: int = 4096, max_gpus: int = 1024) -> list[dict]:
    """Smallest GPU count (1, 2, 4 and multiples of 8 up to ``max_gpus``) that places each side,
    per accelerator; None where no count up to ``max_gpus`` does."""
    counts = sorted({1, 2, 4} | set(range(8, max_gpus + 1, 8)))
    sc = scenario(values, model_id)
    rows = []
    for hw in hardware_ids:
        found: dict[str, int | None] = {"MoE": None, "dense": None}
        for g in counts:
            moe_dep, dense_dep = _moved(sc, values, hw, g)
            for side, prof, dep in (("MoE", sc.moe, moe_dep), ("dense", sc.dense, dense_dep)):
                if found[side] is None and bool(hbm_budget(prof, dep, context).feasible):
                    found[side] = g
            if all(found.values()):
                break
        rows.append({"hardware": hw, "moe_min_gpus": found["MoE"], "dense_min_gpus": found["dense"]})
    return rows


def agreement(values: Values, model_ids: Iterable[str], q_values: Iterable[float], contexts: Iterable[int], gpu_counts: Iterable[int]) -> dict:
    """How often the qs inequality (simple q*s < 1, and the general deployment form) predicts
    the simulated winner (ratio > 1) over a grid where both sides are feasible."""
    records = []
    ctx = np.asarray(list(contexts), dtype=float)
    for model_id, q, g in itertools.product(model_ids, q_values, gpu_counts):
        try:
            sc = scenario(dict(values, gpus=g), model_id, q=q)
        except QsError:
            continue  # q too small for the dense architecture
        cmp = compare(sc, ctx)
        ok = cmp.both_feasible
        simulated = cmp.ratio > 1
        for i in np.flatnonzero(ok):
            records.append({"model": model_id, "q": q, "gpus": g, "context": int(ctx[i]), "qs": sc.qs, "ratio": float(cmp.ratio[i]), "simulated_disadvantaged": bool(simulated[i]), "simple": bool(sc.qs < 1), "general": bool(cmp.terms["predicted_disadvantaged"][i])})
    n = len(records)
    return {
        "points": n,
        "simple_agreement": sum(r["simple"] == r["simulated_disadvantaged"] for r in records) / n if n else 0.0,
        "general_agreement": sum(r["general"] == r["simulated_disadvantaged"] for r in records) / n if n else 0.0,
        "records": records,
    }


def headline_under(values: Values, **changes: Any) -> float | None:
    """The headline ratio with some parameters changed (None where a side is infeasible)."""
    return headline(dict(values, **changes))["ratio"]


def sensitivity(values: Values, variations: Mapping[str, Iterable[Any]]) -> list[dict]:
    """Headline ratio when one parameter at a time takes each listed value."""
    base = headline(values)["ratio"]
    rows = []
    for key, options in variations.items():
        if key not in values:
            raise QsError("not a parameter of this set", field=key)
        for option in options:
            rows.append({"parameter": key, "value": str(option), "ratio": headline_under(values, **{key: option}), "baseline": base})
    return rows


def step_breakdown(values: Values, model_id: str, context: int) -> list[dict]:
    """Seconds per step by limiting resource, MoE and dense, at the largest admissible batch."""
    sc = scenario(values, model_id)
    rows = []
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        r = decode(prof, dep, context)
        parts = {"compute": r.step.compute_s, "weights": r.step.weights_s, "kv": r.step.kv_s, "comm": r.step.comm_s, "overhead": r.step.overhead_s}
        rows.append({"side": side, "batch": int(r.batch) if bool(r.feasible) else 0, **{f"{k}_ms": float(v) * 1e3 if bool(r.feasible) else 0.0 for k, v in parts.items()}})
    return rows


def roofline_ridge(values: Values) -> dict:
    """The default accelerator's achievable ridge point (FLOP per byte) for the weight format."""
    dep = deployment_from(values, values["moe_layout"])
    peak = dep.hardware.peak_for(dep.weight_dtype) * dep.compute_efficiency
    bw = dep.hardware.hbm_bandwidth_bytes_per_s * dep.mem_efficiency
    return {"hardware": dep.hardware.id, "peak_flops_per_s": peak, "bandwidth_bytes_per_s": bw, "ridge_flops_per_byte": peak / bw}

