"""``qsmoe frontier`` (throughput per GPU against speed per user, MoE and dense) and
``qsmoe plan`` (the fewest GPUs that serve a target under latency limits):
:mod:`qsmoe.scenario.economics`."""
from __future__ import annotations

import argparse
from typing import Any

from qsmoe.cli.common import emit, parse_tokens, positive_float
from qsmoe.cli.flags import add_parameter_flags, parameter_values
from qsmoe.errors import QsError
from qsmoe.physics.frontier import Workload
from qsmoe.scenario import economics


def _workload(args: argparse.Namespace) -> Workload:
    if args.context is not None:
        if args.input_len is not None or args.output_len is not None:
            raise QsError("give either --context or --input-len and --output-len, not both", field="context")
        return Workload(context=args.context)
    if args.input_len is None or args.output_len is None:
        raise QsError("give --context L, or both --input-len I and --output-len O", field="input_len")
    return Workload(input_len=args.input_len, output_len=args.output_len)


def _workload_flags(p: argparse.ArgumentParser, *, context: bool) -> None:
    if context:
        p.add_argument("--context", type=parse_tokens, metavar="L", help="decode-only: every sequence attends L tokens, no prefill charged (the paper's regime)")
    p.add_argument("--input-len", type=parse_tokens, metavar="I", help="prompt tokens per request")
    p.add_argument("--output-len", type=parse_tokens, metavar="O", help="output tokens per request")
    p.add_argument("--json", action="store_true")


def _seconds(value: float | None) -> float | None:
    return None if value is None else value / 1e3


def _point_text(p: dict[str, Any]) -> str:
    cost = f", ${p['usd_per_million_tokens']:.2f}/M tokens" if p["usd_per_million_tokens"] is not None else ""
    where = f"disaggregated (decode {p['decode_gpus_per_replica']} GPUs {p['layout']} + {p['prefill']['replicas_per_decode_replica']:.2f} x {p['prefill']['gpus_per_replica']} prefill GPUs {p['prefill']['layout']})" if p["disaggregated"] else f"{p['gpus']} GPUs {p['layout']}"
    return f"{p['tokens_per_s_per_user']:8.1f} tok/s/user  {p['tokens_per_s_per_gpu']:9.1f} tok/s/GPU{cost}  batch {p['batch']}, {where}, {p['weight_dtype']}/{p['kv_dtype']}, {p['bound']}-bound"


def _frontier_text(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} vs dense {r['dense_params'] / 1e9:.0f}B on {r['hardware']}, {r['workload']}: {r['deployments_evaluated']:,} deployments"]
    for side in ("moe", "dense"):
        pts = r[side]
        lines.append(f"  {side} frontier ({len(pts)} points), every ~{max(1, len(pts) // 8)}th:")
        lines += ["    " + _point_text(p) for p in pts[:: max(1, len(pts) // 8)]]
    ratios = ", ".join(f"{x} tok/s/user: {'n/a' if v is None else f'{v:.2f}x'}" for x, v in r["ratio_at_tokens_per_s_per_user"].items())
    lines.append(f"  dense/MoE tokens/s per GPU at equal speed per user: {ratios}")
    lines += [f"  crossover at {c['tokens_per_s_per_user']:.1f} tok/s/user: {c['cheaper_above']} cheaper above" for c in r["crossovers"]]
    return "\n".join(lines)


def _cmd_frontier(args: argparse.Namespace) -> int:
    values = parameter_values(args)
    workload = _workload(args)
    if args.bench:
        b = economics.run_frontier_bench(values, args.model, workload)
        emit(b, args.json, f"{b['deployments']:,} deployments evaluated and Pareto-filtered in {b['seconds']:.3f} s: {b['deployments_per_s']:,.0f} deployments/s ({b['model']}, best of {b['repeats']})")
        return 0
    r = economics.frontiers(values, args.model, workload, ttft_limit_s=_seconds(args.ttft_ms))
    emit(r, args.json, _frontier_text(r))
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    values = parameter_values(args)
    r = economics.plan(values, args.model, _workload(args), args.tokens_per_s, _seconds(args.tpot_ms), _seconds(args.ttft_ms))
    if not r["feasible"]:
        text = f"{r['model']} on {r['hardware']}: no plan serves {r['target_tokens_per_s']:,.0f} tok/s: {r['reason']}"
    else:
        plan = r["plan"]
        pools = [f"{name} {pool['replicas']} x {pool['gpus_per_replica']} GPUs {pool['layout']} (batch {pool['batch']}, {pool['weight_dtype']}/{pool['kv_dtype']})" for name, pool in (("prefill", plan["prefill"]), ("decode" if plan["disaggregated"] else "serving", plan["decode"])) if pool]
        cost = f", ${r['usd_per_million_tokens']:.2f}/M tokens" if r["usd_per_million_tokens"] is not None else ""
        text = f"{r['model']} on {r['hardware']}: {r['gpus']} GPUs serve {r['tokens_per_s']:,.0f} tok/s at TPOT {r['tpot_s'] * 1e3:.1f} ms, TTFT {r['ttft_s'] * 1e3:.0f} ms{cost}: " + "; ".join(pools)
    emit(r, args.json, text)
    return 0


def add_economics_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("frontier", help="throughput per GPU against speed per user: MoE and dense frontiers")
    p.add_argument("--model", required=True, metavar="ID_OR_PATH", help="an MoE (its dense comparator is built from the parameter set)")
    p.add_argument("--ttft-ms", type=positive_float, metavar="Y", help="keep only deployments with TTFT <= Y ms")
    p.add_argument("--bench", action="store_true", help="time the search instead (best of 3, one process)")
    _workload_flags(p, context=True)
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_frontier)

    p = subparsers.add_parser("plan", help="the fewest GPUs that serve a target throughput under TPOT (and TTFT) limits")
    p.add_argument("--model", required=True, metavar="ID_OR_PATH")
    p.add_argument("--tokens-per-s", type=positive_float, required=True, metavar="T", help="output tokens/s to serve")
    p.add_argument("--tpot-ms", type=positive_float, required=True, metavar="X")
    p.add_argument("--ttft-ms", type=positive_float, metavar="Y")
    _workload_flags(p, context=False)
    p.set_defaults(context=None)
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_plan)


__all__ = ["add_economics_parsers"]
