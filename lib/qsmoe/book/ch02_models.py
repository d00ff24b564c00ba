"""Records for chapter 2, the models: published pairings, parameters by component, published totals."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.errors import QsError
from qsmoe.physics.accounting import summarize
from qsmoe.specs.models import load_model
from qsmoe.specs.quality_data import pairings


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
