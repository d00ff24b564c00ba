"""Words the chapters share: model names, comparisons, limiting resources, ratios, q values.

Only phrasing: every number these functions word comes from the library.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

from qsmoe.specs.models import load_model

#: Label for a design point where a side cannot be placed.
INFEASIBLE = "infeasible"

#: Text shown where a q rule has no value for a model.
NO_PAIRING = "no usable published pairing"

#: How the decode model names what limits a step (``decode.BOUNDS``), in words.
BOUND_PHRASES: dict[str, str] = {
    "compute": "compute-bound",
    "weights": "bound by streaming weights from HBM",
    "kv": "bound by reading the KV cache from HBM",
    "comm": "bound by communication between GPUs",
    "overhead": "bound by the fixed per-step overhead",
    "infeasible": "infeasible",
}


def model_name(model_id: str) -> str:
    """The display name of a model (``name`` in data/models/<id>.yaml)."""
    return load_model(model_id).name


def compared_word(value: float, reference: float, tolerance: float = 0.05) -> str:
    """'below', 'above' or 'close to': how ``value`` compares with ``reference`` (relative tolerance)."""
    if abs(value / reference - 1) <= tolerance:
        return "close to"
    return "below" if value < reference else "above"


def bound_phrase(bound: str) -> str:
    """The limiting resource of a decode step in words (see :data:`BOUND_PHRASES`)."""
    return BOUND_PHRASES.get(bound, bound)


def faster_word(ratio: float) -> str:
    """'faster' where a dense/MoE throughput ratio exceeds 1, 'slower' below 1, 'as fast' at 1."""
    if math.isclose(ratio, 1.0, rel_tol=1e-3):
        return "as fast"
    return "faster" if ratio > 1 else "slower"


def ratio_text(ratio: float | None, fmt: str = ".2f") -> str:
    """'1.96x', or 'infeasible' where a side cannot be placed (ratio None)."""
    return INFEASIBLE if ratio is None else f"{format(ratio, fmt)}x"


def deployment_text(values: Mapping[str, Any]) -> str:
    """One line naming the deployment assumptions of a parameter set."""
    return (
        f"{values['gpus']}x {values['hardware']}, {values['weight_dtype']} weights, {values['kv_dtype']} KV, "
        f"reserve {values['reserve_fraction']:.0%}, q by {values['q_rule']}, {values['dense_arch']} dense"
    )


def q_text(value: float | None, claim: str = "matches", fmt: str = ".2f") -> str:
    """q as shown in a table: '≥ x' for a 'beats' pairing (a lower bound), the NO_PAIRING text for None."""
    if value is None:
        return NO_PAIRING
    text = format(value, fmt)
    return f"≥ {text}" if claim.startswith("beats") else text
