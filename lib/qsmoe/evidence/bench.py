"""``qsmoe bench``: how many design points per second the vectorised model evaluates.

A design point is (context, batch, q, cluster size): the MoE and its dense comparator are
both evaluated and their throughput ratio formed. Contexts x batches x q are one NumPy
broadcast; cluster sizes are a short loop.
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from qsmoe.scenario.compare import deployment_from, dense_layout_for
from qsmoe.physics.decode import decode
from qsmoe.specs.models import load_model
from qsmoe.physics.profile import profile_of
from qsmoe.physics.quality import dense_profile


def run_bench(values: dict[str, Any], model_id: str = "deepseek-v3", n_contexts: int = 64, n_batches: int = 64, n_q: int = 64, clusters: tuple[int, ...] = (8, 16, 32, 64), repeats: int = 3) -> dict:
    """Best-of-``repeats`` wall time for the whole grid, and design points per second."""
    moe = profile_of(load_model(model_id))
    ctx = np.geomspace(1024, 131072, n_contexts)[:, None, None]
    batch = np.unique(np.geomspace(1, 4096, n_batches).round())[None, :, None]
    q = np.linspace(1.0, 12.0, n_q)[None, None, :]
    dense = dense_profile(moe, q, values["dense_arch"])
    deps = [(deployment_from(dict(values, gpus=g), values["moe_layout"]), deployment_from(dict(values, gpus=g), dense_layout_for(dense, values["dense_layout"], g))) for g in clusters]
    points = ctx.size * batch.size * q.size * len(clusters)
    best = float("inf")
    checksum = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        checksum = 0.0
        for moe_dep, dense_dep in deps:
            m = decode(moe, moe_dep, ctx, batch)
            d = decode(dense, dense_dep, ctx, batch)
            ratio = np.where(m.feasible & d.feasible, d.tokens_per_s / np.maximum(m.tokens_per_s, 1e-300), 0.0)
            checksum += float(ratio.sum())
        best = min(best, time.perf_counter() - start)
    return {"model": model_id, "design_points": int(points), "seconds": best, "points_per_s": points / best, "checksum": checksum}
