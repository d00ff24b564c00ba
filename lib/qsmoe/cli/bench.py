"""``qsmoe bench``: design points per second of the vectorised model (:mod:`qsmoe.evidence.bench`)."""
from __future__ import annotations

import argparse
from typing import Any

from qsmoe.cli.common import emit, positive_int
from qsmoe.cli.flags import add_parameter_flags, parameter_values
from qsmoe.evidence.bench import run_bench

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
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    r = run_bench(parameter_values(args), args.model, args.size, args.size, args.size)
    emit(r, args.json, f"{r['design_points']:,} design points in {r['seconds']:.3f} s: {r['points_per_s']:,.0f} points/s ({r['model']})")
    return 0
