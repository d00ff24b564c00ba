"""Records for chapter 3, reuse fragmentation: experts touched and tokens per expert by batch.

The compute-bound batches, intensities and EP imbalance the chapter plots are physics
(:mod:`qsmoe.physics.intensity`); this module only tabulates the routing curves.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np

from qsmoe.physics.routing import experts_touched
from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.specs.models import load_model

#: Zipf exponents of expert popularity the fragmentation chapter illustrates (0 = uniform).
ILLUSTRATIVE_SKEWS: tuple[float, ...] = (0.0, 0.5, 1.0)


def fragmentation_curves(model_ids: Iterable[str], batches: Any, skews: Iterable[float]) -> list[dict]:
    """Per model, skew and batch: experts touched T(B), its share phi(B) and tokens per touched expert."""
    b = np.asarray(batches, dtype=float)
    rows = []
    for model_id in model_ids:
        spec = load_model(model_id)
        e, k = spec.moe.n_routed_experts, spec.moe.top_k
        for skew in skews:
            t = experts_touched(b, e, k, skew)
            tpe = b * k / t
            for bi, ti, tp in zip(b, t, tpe):
                rows.append({"model": model_id, "skew": float(skew), "batch": float(bi), "experts_touched": float(ti), "phi": float(ti / e), "tokens_per_expert": float(tp)})
    return rows


def weight_bytes(values: Mapping[str, Any]) -> float:
    """Bytes per stored weight for the parameter set's weight format."""
    return bytes_per_value(values["weight_dtype"], field="weight_dtype")
