"""Records for chapter 6, the qs inequality: (s, q) points, the inequality's terms at a design
point and the agreement of the inequality with the step model, by context or GPU count."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.physics.inequality import capacity_lever
from qsmoe.physics.profile import profile_of
from qsmoe.scenario.analysis import q_estimates
from qsmoe.scenario.compare import compare, scenario
from qsmoe.specs.models import load_model

Values = Mapping[str, Any]


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
        "capacity_term": float(capacity_lever(t["qs_eff"], m, w)) if fits else None,
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
