"""``qsmoe serve`` and ``qsmoe validate``: end-to-end serving and the published measurements."""
from __future__ import annotations

import argparse
from typing import Any, Mapping

from qsmoe.cli.common import emit, positive_int
from qsmoe.cli.flags import add_parameter_flags, parameter_values
from qsmoe.evidence.validation import GROUPS, load_measurements, validate
from qsmoe.physics.deployment import LAYOUTS
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import serve_result
from qsmoe.scenario.compare import dense_layout_for, deployment_from
from qsmoe.specs.models import load_model


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{x * 100:+5.0f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def validation_text(report: Mapping[str, Any]) -> str:
    """The human-readable table and summary of :func:`validate`."""
    cal, dft = report["constants"]["calibrated"], report["constants"]["default"]

    def show(key: str, value: float) -> str:
        return f"{value * 1e3:.2f} ms" if key == "step_overhead_s" else f"{value:.2f}"

    lines = [
        "Calibrated on the fit rows (grid search, median |log error|):",
        "  " + ", ".join(f"{k} {show(k, cal[k])} (default {show(k, dft[k])})" for k in cal),
        "  prefill stalls in serving-benchmark decode rows: " + ("charged" if report["prefill_stalls"] else "ignored"),
        "",
        f"{'id':<4} {'split':<5} {'model':<16} {'hw':<13} {'G':>3} {'lay':<3} {'regime':<6} {'batch':>6} {'measured':>9} {'default':>9} {'err':>6} {'calib.':>9} {'err':>6}  bound / note",
    ]
    for r in report["rows"]:
        tail = r["bound_calibrated"] or ""
        if r["reason_calibrated"]:
            tail = f"no prediction: {r['reason_calibrated']}"
        if r["note_calibrated"]:
            tail += f" ({r['note_calibrated']})"
        batch = "n/a" if r["batch_calibrated"] is None else str(r["batch_calibrated"]) + ("" if r["batch_stated"] else "*")
        lines.append(
            f"{r['id']:<4} {r['split']:<5} {r['model']:<16} {r['hardware']:<13} {r['n_gpus']:>3} {r['layout']:<3} {r['regime']:<6} {batch:>6} {_num(r['measured']):>9} {_num(r['predicted_default']):>9} {_pct(r['error_default'])} {_num(r['predicted_calibrated']):>9} {_pct(r['error_calibrated'])}  {tail}"
        )
    lines += ["", "* batch not stated: the largest admissible batch", "", "Median |error| (rows predicted / without prediction):"]
    header = f"  {'':<9}" + "".join(f"{g:>15}" for g in GROUPS)
    for which in ("default", "calibrated"):
        lines += [f" {which}:", header]
        for split in ("fit", "judge", "all"):
            cells = []
            for g in GROUPS:
                s = report["summary"][which][split][g]
                med = "n/a" if s["median_abs_error"] is None else f"{s['median_abs_error'] * 100:.0f}%"
                cells.append(f"{med} ({s['n']}/{s['unpredicted']})")
            lines.append(f"  {split:<9}" + "".join(f"{c:>15}" for c in cells))
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace) -> int:
    values = parameter_values(args)
    rows = load_measurements(args.measurements)
    report = validate(values, rows, prefill_stalls=not args.no_prefill_stalls)
    emit(report, args.json, validation_text(report))
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    values = parameter_values(args)
    spec = load_model(args.model)
    profile = profile_of(spec)
    layout = args.layout or (values["moe_layout"] if spec.is_moe else dense_layout_for(profile, values["dense_layout"], values["gpus"]))
    dep = deployment_from(values, layout)
    r = serve_result(profile, dep, args.input_len, args.output_len, args.concurrency).record()
    r.update(model=spec.id, hardware=dep.hardware.id, gpus=dep.gpus, layout=layout, weight_dtype=dep.weight_dtype, kv_dtype=dep.kv_dtype)
    head = f"{spec.id} on {dep.gpus}x {dep.hardware.id} ({layout}), {args.input_len} in / {args.output_len} out"
    if r["feasible"]:
        text = (
            f"{head}: batch {r['concurrency']} (max {r['max_concurrency']}), prefill {r['prefill_time_s']:.3f} s + "
            f"{args.output_len - 1} decode steps x {r['decode_step_time_s'] * 1e3:.2f} ms = {r['prefill_time_s'] + r['decode_time_s']:.3f} s, "
            f"{r['output_tokens_per_s']:,.0f} output tok/s ({r['output_tokens_per_s_per_gpu']:,.0f} per GPU), {r['bound']}-bound"
        )
    else:
        text = f"{head}: infeasible: {r['reason']} (largest admissible batch {r['max_concurrency']})"
    emit(r, args.json, text)
    return 0


def add_validation_parsers(subparsers: Any) -> None:
    """Register ``serve`` and ``validate`` on the qsmoe command line."""
    p = subparsers.add_parser("serve", help="end-to-end throughput of a static batch (prefill + decode)")
    p.add_argument("--model", required=True, metavar="ID_OR_PATH")
    p.add_argument("--input-len", required=True, type=positive_int, metavar="I", help="prompt tokens per request")
    p.add_argument("--output-len", required=True, type=positive_int, metavar="O", help="output tokens per request")
    p.add_argument("--concurrency", type=positive_int, metavar="C", help="requests in the batch (default: the largest admissible at context I + O)")
    p.add_argument("--layout", choices=LAYOUTS, help="this model's layout (default: moe_layout for an MoE, dense_layout for a dense model)")
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_serve)

    p = subparsers.add_parser("validate", help="predict the published measurements, calibrate on the fit rows, judge the rest")
    p.add_argument("--measurements", metavar="CSV", help="measurement table (default data/measured/measurements.csv)")
    p.add_argument("--no-prefill-stalls", action="store_true", help="predict serving-benchmark ITL/TPOT rows as pure decode steps")
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_validate)
