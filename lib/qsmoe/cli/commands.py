"""Subcommands: models, hardware, model, decode, compare.

Every flag left out of decode/compare takes the value of the parameter set
(``--params FILE``, default data/params/default.yaml).
"""
from __future__ import annotations

import argparse
from typing import Any

from qsmoe.physics.accounting import kv_bytes_per_token, summarize
from qsmoe.cli.common import emit, parse_tokens, positive_int
from qsmoe.cli.flags import add_parameter_flags, parameter_values
from qsmoe.scenario.compare import compare, dense_layout_for, deployment_from, scenario
from qsmoe.scenario.headline import BAND_QUANTILES, constant_sets, ratio_band
from qsmoe.physics.decode import decode
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.profile import DecodeProfile
from qsmoe.specs.architecture import ModelSpec
from qsmoe.physics.deployment import LAYOUTS
from qsmoe.specs.dtypes import BYTES_PER_VALUE
from qsmoe.errors import QsError
from qsmoe.specs.hardware import available_hardware, load_hardware
from qsmoe.specs.models import available_models, load_model
from qsmoe.physics.profile import profile_of

DTYPES = tuple(sorted(BYTES_PER_VALUE))


def model_record(id_or_path: str, kv_dtype: str = "bf16") -> dict[str, Any]:
    """The accounting of one model as a JSON-ready dict."""
    spec = load_model(id_or_path)
    summary = summarize(spec)
    return {
        "id": spec.id,
        "name": spec.name,
        "kind": spec.kind,
        "attention": spec.attention.type,
        "total_params": summary.total_params,
        "active_params": summary.active_params,
        "decode_active_params": summary.decode_active_params,
        "s": summary.s,
        "kv_dtype": kv_dtype,
        "kv_bytes_per_token": kv_bytes_per_token(spec, kv_dtype),
        "published_total_params": spec.published_total_params,
        "published_active_params": spec.published_active_params,
        "components": {name: {"total_params": t, "active_params": a} for name, (t, a) in summary.by_component().items()},
        "weight_bytes": {dtype: summary.total_params * BYTES_PER_VALUE[dtype] for dtype in ("bf16", "fp8", "fp4")},
    }


def _cmd_models(args: argparse.Namespace) -> int:
    rows = [model_record(mid) for mid in available_models()]
    lines = [f"{'id':<18} {'total':>9} {'active':>8} {'s':>7}  name"]
    lines += [f"{r['id']:<18} {r['total_params'] / 1e9:>8.1f}B {r['active_params'] / 1e9:>7.1f}B {r['s']:>7.4f}  {r['name']}" for r in rows]
    emit([{k: r[k] for k in ("id", "name", "total_params", "active_params", "s")} for r in rows], args.json, "\n".join(lines))
    return 0


def _cmd_hardware(args: argparse.Namespace) -> int:
    specs = [load_hardware(hid) for hid in available_hardware()]
    rows = [{"id": h.id, "name": h.name, "aliases": list(h.aliases), "hbm_bytes": h.hbm_bytes, "hbm_bandwidth_bytes_per_s": h.hbm_bandwidth_bytes_per_s, "peak_flops_per_s": h.peak_flops_per_s, "link_bytes_per_s": h.link_bytes_per_s, "domain_size": h.domain_size} for h in specs]
    lines = [f"{'id':<15} {'HBM':>7} {'TB/s':>6} {'bf16 TF/s':>10}  {'name':<30} aliases"]
    lines += [f"{h.id:<15} {h.hbm_bytes / 1e9:>6.0f}G {h.hbm_bandwidth_bytes_per_s / 1e12:>6.2f} {h.peak_flops_per_s['bf16'] / 1e12:>10.0f}  {h.name:<30} {', '.join(h.aliases)}" for h in specs]
    emit(rows, args.json, "\n".join(lines))
    return 0


def _cmd_model(args: argparse.Namespace) -> int:
    r = model_record(args.model, args.kv_dtype)
    lines = [f"{r['name']} ({r['id']}, {r['kind']}, {r['attention']} attention)", f"  total {r['total_params'] / 1e9:.2f}B, active {r['active_params'] / 1e9:.2f}B, s = {r['s']:.4f}", f"  KV cache {r['kv_bytes_per_token']:,.0f} B/token ({args.kv_dtype})"]
    lines += [f"  {name:<16} total {c['total_params'] / 1e9:>9.3f}B  active {c['active_params'] / 1e9:>8.3f}B" for name, c in r["components"].items()]
    emit(r, args.json, "\n".join(lines))
    return 0


def add_model_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("models", help="list the shipped models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_models)
    p = subparsers.add_parser("hardware", help="list the shipped accelerators")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_hardware)
    p = subparsers.add_parser("model", help="parameter and KV accounting of one model")
    p.add_argument("model", metavar="ID_OR_CONFIG_PATH", help="a shipped id, a book YAML file, or a Hugging Face config.json")
    p.add_argument("--kv-dtype", default="bf16", choices=DTYPES)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_model)


def _context_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--context", type=parse_tokens, required=True, metavar="L", help="tokens of context per sequence (e.g. 131072 or 128k)")
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)


def model_deployment(args: argparse.Namespace) -> tuple[ModelSpec, DecodeProfile, Deployment]:
    """The ``--model``, its profile and its deployment under the command's parameter set: the
    layout is ``--layout``, else moe_layout for an MoE and dense_layout (``auto`` resolved) for
    a dense model."""
    values = parameter_values(args)
    spec = load_model(args.model)
    profile = profile_of(spec)
    layout = args.layout or (values["moe_layout"] if spec.is_moe else dense_layout_for(profile, values["dense_layout"], values["gpus"]))
    return spec, profile, deployment_from(values, layout)


def _cmd_decode(args: argparse.Namespace) -> int:
    spec, profile, dep = model_deployment(args)
    layout = dep.layout
    batch = args.batch if args.batch is not None else (args.batch_per_gpu * dep.gpus if args.batch_per_gpu is not None else None)
    record = decode(profile, dep, args.context, batch).record()
    record.update(model=spec.id, hardware=dep.hardware.id, gpus=dep.gpus, layout=layout, context=args.context, weight_dtype=dep.weight_dtype, kv_dtype=dep.kv_dtype)
    if record["feasible"]:
        text = f"{spec.id} on {dep.gpus}x {dep.hardware.id} ({layout}) at {args.context} tokens: batch {record['batch']} (max {record['max_batch']}), step {record['step_time_s'] * 1e3:.2f} ms, {record['tokens_per_s']:,.0f} tok/s ({record['tokens_per_s_per_gpu']:,.0f} per GPU), {record['bound']}-bound"
    else:
        text = f"{spec.id} on {dep.gpus}x {dep.hardware.id} ({layout}) at {args.context} tokens: infeasible: {record['reason']} (largest admissible batch {record['max_batch']})"
    emit(record, args.json, text)
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    explicit = {"q_rule": "explicit", "q_explicit": args.q} if args.q is not None else {}
    values = parameter_values(args, moe_layout=args.layout, flags={"moe_layout": "--layout", "q_explicit": "--q", "q_rule": "--q"}, **explicit)
    sc = scenario(values, args.model)
    r = compare(sc, args.context).record()
    r["context"] = args.context
    how, sets = constant_sets(values)
    band = ratio_band(values, args.model, args.context, sets)
    # the band's point ratio is this comparison's ratio; a band only where the ratio exists
    r["ratio_band"] = band["ratio_band"] if r["ratio"] is not None else None
    r["ratio_band_basis"] = {"method": f"{BAND_QUANTILES[0]:.0%}-{BAND_QUANTILES[1]:.0%} quantiles, widened to contain the ratio", "spans": how, "q_rules": band["q_rules"], "points": band["points"], "infeasible_points": band["infeasible"]}

    def side(name: str, d: dict) -> str:
        return f"{name}: {d['tokens_per_s']:,.0f} tok/s at batch {d['batch']} ({d['bound']}-bound)" if d["feasible"] else f"{name}: infeasible ({d['reason']})"

    ratio = f"dense/MoE = {r['ratio']:.2f}x ({BAND_QUANTILES[1] - BAND_QUANTILES[0]:.0%} band {r['ratio_band'][0]:.2f}-{r['ratio_band'][1]:.2f}: {how})" if r["ratio"] is not None and r["ratio_band"] else ("ratio undefined (a side is infeasible)" if r["ratio"] is None else f"dense/MoE = {r['ratio']:.2f}x")
    text = "\n".join([f"{sc.model_id} vs dense {r['dense_params'] / 1e9:.0f}B (q = {sc.q:.2f} by {sc.q_rule}, s = {sc.s:.4f}, qs = {sc.qs:.3f}) on {sc.moe_deployment.gpus}x {sc.moe_deployment.hardware.id} at {args.context} tokens", "  " + side("MoE  ", r["moe"]), "  " + side("dense", r["dense"]), f"  {ratio}; qs inequality predicts MoE {'disadvantaged' if r['predicted_disadvantaged'] else 'not disadvantaged'}"])
    emit(r, args.json, text)
    return 0


def add_performance_parsers(subparsers: Any) -> None:
    p = subparsers.add_parser("decode", help="decode throughput of one model on one deployment")
    p.add_argument("--model", required=True, metavar="ID_OR_PATH")
    p.add_argument("--layout", choices=LAYOUTS, help="this model's layout (default: moe_layout for an MoE, dense_layout for a dense model)")
    batch = p.add_mutually_exclusive_group()
    batch.add_argument("--batch", type=positive_int, metavar="B", help="sequences in the replica (default: the largest admissible)")
    batch.add_argument("--batch-per-gpu", type=positive_int, metavar="b")
    _context_flags(p)
    p.set_defaults(func=_cmd_decode)

    p = subparsers.add_parser("compare", help="an MoE against its quality-matched dense model")
    p.add_argument("--model", required=True, metavar="ID_OR_PATH")
    p.add_argument("--layout", choices=LAYOUTS, help="alias of --moe-layout")
    p.add_argument("--q", metavar="Q", help="explicit quality-equivalence factor: short for --q-rule explicit --q-explicit Q")
    _context_flags(p)
    p.set_defaults(func=_cmd_compare)


__all__ = ["add_model_parsers", "add_performance_parsers", "model_record", "QsError"]
