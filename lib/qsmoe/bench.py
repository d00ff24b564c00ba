"""``qsmoe bench``: how many design points per second the vectorised model evaluates.

A design point is (context, batch, q, cluster size): the MoE and its dense comparator are
both evaluated and their throughput ratio formed. Contexts x batches x q are one NumPy
broadcast; cluster sizes are a short loop.
"""
from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from .cli import emit, positive_int
from .compare import deployment_from, dense_layout_for
from .decode import decode
from .models import load_model
from .params import resolve
from .profile import profile_of
from .quality import dense_profile


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


MAX_AXIS = 256  # 256^3 x 4 clusters is about 67 million points, some GB of arrays


def bench_size(text: str) -> int:
    value = positive_int(text)
    if value > MAX_AXIS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_AXIS}, got {text!r}")
    return value


def add_bench_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("bench", help="design points per second of the vectorised model (one core)")
    p.add_argument("--model", default="deepseek-v3")
    p.add_argument("--size", type=bench_size, default=64, help=f"values per axis (contexts, batches, q), at most {MAX_AXIS}")
    p.add_argument("--params", metavar="FILE")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    r = run_bench(dict(resolve(args.params).values), args.model, args.size, args.size, args.size)
    emit(r, args.json, f"{r['design_points']:,} design points in {r['seconds']:.3f} s: {r['points_per_s']:,.0f} points/s ({r['model']})")
    return 0
