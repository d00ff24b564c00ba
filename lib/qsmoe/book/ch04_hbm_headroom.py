"""Records for chapter 4, HBM headroom: the per-GPU HBM budget, KV per sequence, batch by context."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from qsmoe.physics.memory import REASONS, hbm_budget, weight_bytes_per_gpu
from qsmoe.scenario.analysis import hbm_table
from qsmoe.scenario.compare import scenario
from qsmoe.specs.models import load_model


def batch_vs_context(values: Mapping[str, Any], model_id: str, contexts: Any) -> list[dict]:
    """Largest admissible batch (sequences per replica) of the MoE and its dense comparator at
    each context, from :func:`qsmoe.physics.memory.hbm_budget`; infeasible points carry the reason."""
    ctx = np.asarray(list(contexts), dtype=float)
    sc = scenario(values, model_id)
    rows = []
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        b = hbm_budget(prof, dep, ctx)
        for i, c in enumerate(ctx):
            ok = bool(b.feasible[i])
            rows.append({
                "model": model_id,
                "side": side,
                "layout": dep.layout,
                "context": int(c),
                "max_batch": int(b.max_batch[i]) if ok else 0,
                "feasible": ok,
                "reason": REASONS[int(b.reason[i])] if not ok else "",
            })
    return rows


def kv_bytes_per_sequence(values: Mapping[str, Any], model_id: str, context: int) -> dict[str, float]:
    """KV-cache bytes of one sequence at ``context`` held by one GPU, MoE and dense (as laid out)."""
    sc = scenario(values, model_id)
    return {
        side: float(hbm_budget(prof, dep, context).kv_bytes_per_sequence_per_gpu)
        for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment))
    }


def weight_split_per_gpu(values: Mapping[str, Any], model_id: str) -> dict[str, dict[str, float]]:
    """Resident weight bytes per GPU split into the part every GPU holds in full (replicated by
    the layout) and the part divided over the GPUs, for the MoE and its dense comparator.

    Uses :func:`qsmoe.physics.memory.weight_bytes_per_gpu`, W(G) = R + S/G, at G and 2G:
    R = 2 W(2G) - W(G), S/G = W(G) - R.
    """
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        w1 = float(weight_bytes_per_gpu(prof, dep))
        w2 = float(weight_bytes_per_gpu(prof, dep.with_changes(gpus=2 * dep.gpus)))
        replicated = max(2 * w2 - w1, 0.0)
        out[side] = {"layout": dep.layout, "total": w1, "replicated": replicated, "sharded": w1 - replicated}
    return out


def released_context(model_id: str) -> int:
    """The longest context the released model supports (``max_context`` in its data file; 0 if unknown)."""
    return int(load_model(model_id).max_context)


def hbm_stack(values: Mapping[str, Any], context: int | None = None) -> list[dict]:
    """Per model and side, the per-GPU HBM budget in GB as stacked segments:
    replicated weights, sharded weights, KV capacity and reserve (these four sum to the HBM
    when the weights fit), plus the weights that overflow the usable HBM (0 when they fit).
    ``weights_needed_gb`` and ``replicated_needed_gb`` are the unclipped per-GPU weights.
    Built from :func:`qsmoe.scenario.analysis.hbm_table` and :func:`weight_split_per_gpu`."""
    rows = []
    splits: dict[str, dict] = {}
    for r in hbm_table(values, context):
        if r["model"] not in splits:
            splits[r["model"]] = weight_split_per_gpu(values, r["model"])
        split = splits[r["model"]][r["side"]]
        usable = r["hbm_gb"] - r["reserve_gb"]
        replicated = min(split["replicated"] / 1e9, usable)
        sharded = min(split["sharded"] / 1e9, usable - replicated)
        rows.append({
            **r,
            "replicated_weights_gb": replicated,
            "sharded_weights_gb": sharded,
            "weights_needed_gb": split["total"] / 1e9,
            "replicated_needed_gb": split["replicated"] / 1e9,
        })
    return rows


def sequences_per_gpu(values: Mapping[str, Any], model_id: str, context: int) -> dict[str, int]:
    """Sequences (or, under tensor parallelism, sequence shares) whose KV cache one GPU holds at
    ``context``: floor(free HBM / KV bytes per sequence per GPU), MoE and dense (0 if infeasible)."""
    sc = scenario(values, model_id)
    out = {}
    for side, prof, dep in (("MoE", sc.moe, sc.moe_deployment), ("dense", sc.dense, sc.dense_deployment)):
        b = hbm_budget(prof, dep, context)
        out[side] = int(np.floor(float(b.kv_capacity_bytes_per_gpu) / float(b.kv_bytes_per_sequence_per_gpu))) if bool(b.feasible) else 0
    return out
