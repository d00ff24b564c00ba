"""Records for chapter 7, feasibility: where each side can be placed, and the weights involved."""
from __future__ import annotations

from typing import Any, Iterable, Mapping

from qsmoe.physics.memory import hbm_budget, weight_bytes_total
from qsmoe.scenario.analysis import feasibility_table
from qsmoe.scenario.compare import scenario

Values = Mapping[str, Any]


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
    """Weights in GB under the parameter set's weight formats: each model's whole resident set
    (every parameter once, each weight group at its format: ``memory.weight_bytes_total``), the
    MoE's share on one GPU at ``values['gpus']`` GPUs (its layout replicates the non-expert
    weights), the usable HBM of one GPU, and the KV cache of one MoE sequence of ``context``
    tokens (all layers, the parameter set's KV format)."""
    sc = scenario(values, model_id)
    dep = sc.moe_deployment
    return {
        "moe_weights_gb": float(weight_bytes_total(sc.moe, dep)) / 1e9,
        "dense_weights_gb": float(weight_bytes_total(sc.dense, sc.dense_deployment)) / 1e9,
        "moe_weights_per_gpu_gb": float(hbm_budget(sc.moe, dep, context).weight_bytes_per_gpu) / 1e9,
        "usable_per_gpu_gb": dep.usable_hbm_bytes / 1e9,
        "moe_kv_per_sequence_gb": float(sc.moe.kv_values_per_token) * dep.kv_bytes * context / 1e9,
    }
