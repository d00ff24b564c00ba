"""``qsmoe serve``, ``qsmoe validate`` and ``qsmoe holdout``: end-to-end serving, the published
measurements, and the measurements no fit has used."""
from __future__ import annotations

import argparse
from typing import Any, Mapping

from qsmoe.cli.commands import model_deployment
from qsmoe.cli.common import emit, positive_int
from qsmoe.cli.flags import add_parameter_flags, parameter_values
from qsmoe.errors import QsError
from qsmoe.evidence.calibration import fit_from_starts, fitted_constants, write_params
from qsmoe.evidence.hindsight import validate_with_hindsight
from qsmoe.evidence.doubts import DOUBTS_PATH, apply_doubts, load_doubts
from qsmoe import DATA_DIR
from qsmoe.evidence.holdout import HOLDOUT_PATH, holdout_report
from qsmoe.evidence.inferencex import INFERENCEX_PATH, inferencex_report
from qsmoe.evidence.measurements import load_measurements
from qsmoe.evidence.validation import ENGINE_GROUPS, GROUPS
from qsmoe.physics.deployment import LAYOUTS
from qsmoe.physics.serve import serve_result


#: Bound on ``validate --starts --random-starts N``: each start is a full fit of several seconds.
MAX_RANDOM_STARTS = 100


def _pct(x: float | None) -> str:
    return "   n/a" if x is None else f"{x * 100:+5.0f}%"


def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.1f}"


def _abs_pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.0f}%"


def _med(stats: Mapping[str, Any]) -> str:
    m = stats["median_abs_error"]
    return "n/a" if m is None else f"{_abs_pct(m)} ({stats['n']})"


def _show(c: Mapping[str, Any], key: str) -> str:
    scale, unit = (1e3, " ms") if c["unit"] == "s" else (1.0, "")
    return "n/a" if c[key] is None else f"{c[key] * scale:.3g}{unit}"


def validation_text(report: Mapping[str, Any]) -> str:
    """The human-readable summary of :func:`qsmoe.evidence.calibration.validate`."""
    cal = report["calibration"]
    lines = [f"Calibrated on {len(cal['fit_rows'])} fit rows from {len(cal['fit_sources'])} sources "
             f"(judged on {len(cal['judge_sources'])} other sources), kept from the search started at the {cal['fit_start']} values; "
             "90% bootstrap intervals over sources:"]
    for name, c in report["constants"].items():
        lines.append(f"  {name:<20} {_show(c, 'fitted'):>9}  [{_show(c, 'low')}, {_show(c, 'high')}]  datasheet {_show(c, 'datasheet')}")
    lines += ["", f"{'id':<4} {'split':<5} {'model':<16} {'hw':<13} {'G':>3} {'lay':<5} {'engine':<6} {'regime':<6} {'conc':>6} {'measured':>9} {'datash.':>9} {'calib.':>9} {'err':>6} {'LOSO':>6}"]
    for r in report["rows"]:
        conc = "-" if r["concurrency"] is None else str(r["concurrency"])
        tail = f"  no prediction: {r['reason_calibrated']}" if r["reason_calibrated"] else ""
        lines.append(
            f"{r['id']:<4} {r['split']:<5} {r['model']:<16} {r['hardware']:<13} {r['n_gpus']:>3} {r['layout']:<5} {r['engine']:<6} {r['regime']:<6} {conc:>6} "
            f"{_num(r['measured']):>9} {_num(r['predicted_datasheet']):>9} {_num(r['predicted_calibrated']):>9} {_pct(r['error_calibrated'])} {_pct(r['loso_error'])}{tail}"
        )
    s = report["summary"]
    lines += ["", "Median |error| (predicted rows):", f"  {'group':<40} {'judge, datasheet':>17} {'judge, calibrated':>18} {'fit, calibrated':>16} {'LOSO (all rows)':>16}"]
    for g, (label, _) in {**GROUPS, **ENGINE_GROUPS}.items():
        if s["calibrated"]["all"][g]["n"]:
            lines.append(f"  {label:<40} {_med(s['datasheet']['judge'][g]):>17} {_med(s['calibrated']['judge'][g]):>18} {_med(s['calibrated']['fit'][g]):>16} {_med(s['loso']['all'][g]):>16}")
    q = report["band"]["judge"]["quantiles"]
    if q:
        lines += ["", "Prediction band (judge rows, ln(pred/meas) 5/50/95%): " + ", ".join(f"{v:+.2f}" for v in q.values())]
    above = {r["id"]: r["ceiling_ratio"] for r in report["rows"] if r["id"] in report["above_ceiling"]}
    lines += ["", "Rows above the roofline ceiling of their recorded setup (measured / the most any constants give): "
              + (", ".join(f"{k} {v:.2f}" for k, v in above.items()) if above else "none")]
    if report.get("hindsight"):
        lines += ["", hindsight_text(report)]
    lines += ["", "Targets:"]
    for k, t in report["targets"].items():
        got = "n/a" if t["measured"] is None else f"{t['measured'] * 100:.0f}%"
        lines.append(f"  {k:<20} {got:>6} (target {t['target'] * 100:.0f}%): {'met' if t['met'] else 'not met'}")
    return "\n".join(lines)


def hindsight_text(report: Mapping[str, Any]) -> str:
    """The hindsight block of the summary: each group's median |error| with the fitted constants
    and with constants fitted on that group itself (:mod:`qsmoe.evidence.hindsight`)."""
    h = report["hindsight"]
    lines = ["What the form reaches with hindsight (the constants fitted on the rows they are judged on):",
             f"  {'rows':<16} {'n':>4} {'fitted constants':>16} {'hindsight':>10}"]
    for g in h["groups"].values():
        lines.append(f"  {g['label']:<16} {g['rows']:>4} {_abs_pct(g['fitted_median_abs_error']):>16} {_abs_pct(g['median_abs_error']):>10}")
    shape = h["shape_median_abs_error"]
    lines.append(f"  with each source's median error removed (all-rows hindsight point): every row {_abs_pct(shape.get('all'))}, judge rows {_abs_pct(shape.get('judge'))}")
    return "\n".join(lines)


def starts_text(results: list[Mapping[str, Any]]) -> str:
    """The human-readable table of :func:`qsmoe.evidence.calibration.fit_from_starts`."""
    names = list(results[0]["point"]) if results else []
    lines = ["The fit restarted from each start (fit rows only; judge medians at the point it stops):",
             f"  {'start':<10} {'fit median |ln|':>15} {'judge':>6} {'MoE judge':>9}  constants ({', '.join(names)})"]
    for r in results:
        consts = ", ".join(f"{v:.3g}" for v in r["point"].values())
        lines.append(f"  {r['start']:<10} {r['fit_median_abs_log_error']:>15.4f} {_abs_pct(r['judge_median_abs_error']):>6} {_abs_pct(r['judge_moe_median_abs_error']):>9}  {consts}")
    return "\n".join(lines)


def _cmd_validate(args: argparse.Namespace) -> int:
    values = parameter_values(args)
    rows = load_measurements(args.measurements)
    if args.doubts is not None:
        if args.write_params:
            raise QsError("--doubts writes nothing; run --write-params on the recorded table", field="--write-params")
        rows = apply_doubts(rows, load_doubts(rows, args.doubts))
    if args.random_starts is not None and not args.starts:
        raise QsError("--random-starts needs --starts", field="--random-starts")
    if (args.random_starts or 0) > MAX_RANDOM_STARTS:
        raise QsError(f"at most {MAX_RANDOM_STARTS} random starts, got {args.random_starts}", field="--random-starts")
    if args.starts:
        if args.write_params:
            raise QsError("--starts writes nothing; run --write-params on its own", field="--write-params")
        results = fit_from_starts(rows, values, prefill_stalls=not args.no_prefill_stalls, n_random=args.random_starts or 0)
        emit({"starts": results}, args.json, starts_text(results))
        return 0
    report = validate_with_hindsight(values, rows, prefill_stalls=not args.no_prefill_stalls)
    if args.write_params:
        write_params(fitted_constants(report), resamples=report["calibration"]["bootstrap"]["points"])
    emit(report, args.json, validation_text(report))
    return 0


def holdout_text(report: Mapping[str, Any]) -> str:
    """The human-readable summary of :func:`qsmoe.evidence.holdout.holdout_report`."""
    a = report["summary"]
    lines = [f"{report['source']}: {report['read']} rows read, {len(report['rows'])} by the reading rules, {a['all']['n']} predicted "
             f"(median |error| {_abs_pct(a['all']['median_abs_error'])}, signed median {_pct(report['signed_median_error']).strip()}, "
             f"{_abs_pct(report['within_15'])} within 15%)"]
    lines += [f"  left out: {v['rows']} rows, {v['reason']}" for v in report["left_out"].values()]
    lines += [f"  not predicted: {n} rows, {why}" for why, n in report["unpredicted"].items()]
    lines += ["", f"{'model':<16} {'engine':<7} {'hw':<9} {'w':<5} {'lay':<4} {'rows':>5} {'|err|':>6} {'signed':>7} {'<=15%':>6}"]
    for g in report["groups"]:
        lines.append(f"{g['model']:<16} {g['engine']:<7} {g['hardware']:<9} {g['weight_dtype']:<5} {g['layout']:<4} {g['n']:>5} "
                     f"{_abs_pct(g['median_abs_error']):>6} {_pct(g['signed_median_error']):>7} {_abs_pct(g['within_15']):>6}")
    ratios = report["ratios"]
    if ratios["n"]:
        q = list(ratios["error_quantiles"].values())
        lines += ["", f"dense / MoE on {ratios['n']} workloads run with both: median |error| {_abs_pct(ratios['median_abs_error'])}, "
                  f"signed median {_pct(ratios['signed_median_error']).strip()}, {_abs_pct(ratios['within_15'])} within 15%, "
                  f"5th to 95th percentile {_pct(q[0]).strip()} to {_pct(q[-1]).strip()}"]
        lines += [f"  {g['hardware']} {g['engine']} {g['weight_dtype']}: {g['dense_models']} / {g['moe_models']}, {g['n']} workloads, "
                  f"median |error| {_abs_pct(g['median_abs_error'])}, signed {_pct(g['signed_median_error']).strip()}" for g in ratios["groups"]]
    else:
        lines += ["", "dense / MoE: no workload was run with both"]
    ttft = report["ttft"]
    if ttft["n"]:
        q = list(ttft["ratio_quantiles"].values())
        bands = "; ".join(f"{name} {_abs_pct(ttft[key]['median_ratio'])} ({ttft[key]['n']} rows)"
                          for name, key in (("concurrency <= 16", "low_concurrency"), ("concurrency >= 64", "high_concurrency")) if ttft[key]["n"])
        lines += [f"time to first token: the model's (one prompt's prefill) is a median {_abs_pct(ttft['median_ratio'])} of the measured mean on "
                  f"{ttft['n']} rows (5th to 95th percentile {_abs_pct(q[0])} to {_abs_pct(q[-1])}; {bands})"]
    return "\n".join(lines)


#: The held-out samples ``qsmoe holdout --sample`` reads: name -> (report function, default file).
HOLDOUT_SAMPLES = {
    "aiconfigurator": (holdout_report, HOLDOUT_PATH),
    "inferencex": (inferencex_report, INFERENCEX_PATH),
}


def _cmd_holdout(args: argparse.Namespace) -> int:
    report = HOLDOUT_SAMPLES[args.sample][0](parameter_values(args), args.file)
    text = holdout_text(report)
    if not args.rows:
        report = {k: v for k, v in report.items() if k != "rows"}
    emit(report, args.json, text)
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    spec, profile, dep = model_deployment(args)
    r = serve_result(profile, dep, args.input_len, args.output_len, args.concurrency).record()
    r.update(model=spec.id, hardware=dep.hardware.id, gpus=dep.gpus, layout=dep.layout, weight_dtype=dep.weight_dtype, kv_dtype=dep.kv_dtype)
    head = f"{spec.id} on {dep.gpus}x {dep.hardware.id} ({dep.layout}), {args.input_len} in / {args.output_len} out"
    if not r["feasible"]:
        text = f"{head}: infeasible: {r['reason']} (largest admissible batch {r['max_concurrency']})"
    elif dep.batching == "continuous":  # a steady state of running and queued requests
        text = (
            f"{head}: {r['running_batch']} requests running (at most {r['max_concurrency']} fit), {r['queued']} queued; "
            f"decode step {r['decode_step_time_s'] * 1e3:.2f} ms, {r['output_tokens_per_s']:,.0f} output tok/s "
            f"({r['tokens_per_s_per_gpu']:,.0f} per GPU), {r['bound']}-bound"
        )
    else:
        text = (
            f"{head}: batch {r['concurrency']} (max {r['max_concurrency']}), prefill {r['prefill_time_s']:.3f} s + "
            f"{args.output_len - 1} decode steps x {r['decode_step_time_s'] * 1e3:.2f} ms = {r['prefill_time_s'] + r['decode_time_s']:.3f} s, "
            f"{r['output_tokens_per_s']:,.0f} output tok/s ({r['output_tokens_per_s_per_gpu']:,.0f} per GPU), {r['bound']}-bound"
        )
    emit(r, args.json, text)
    return 0


def add_validation_parsers(subparsers: Any) -> None:
    """Register ``serve``, ``validate`` and ``holdout`` on the qsmoe command line."""
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
    p.add_argument("--write-params", action="store_true", help="write the fitted constants into data/params/default.yaml and regenerate data/params/datasheet.yaml")
    p.add_argument("--doubts", nargs="?", const=str(DOUBTS_PATH), metavar="CSV",
                   help="the second reading: every doubted field of the table (data/measured/doubts.csv, or CSV) set to its alternative before fitting and judging")
    p.add_argument("--starts", action="store_true", help="only restart the fit from the datasheet values and from each grid's lowest, highest and middle value, and report where each stops")
    p.add_argument("--random-starts", type=positive_int, metavar="N", help=f"with --starts: also restart from N <= {MAX_RANDOM_STARTS} points drawn from the grids (fixed seed; about 10 s each)")
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_validate)

    p = subparsers.add_parser("holdout", help="predict measurements no fit has used (NVIDIA's silicon sample, SemiAnalysis's InferenceX) with the parameter set as it stands")
    p.add_argument("--sample", choices=tuple(HOLDOUT_SAMPLES), default="aiconfigurator",
                   help="which sample: " + "; ".join(f"{name}: {path.relative_to(DATA_DIR.parent)}" for name, (_, path) in HOLDOUT_SAMPLES.items()) + " (default aiconfigurator)")
    p.add_argument("--file", metavar="CSV", help="a file in the chosen sample's format (default: the sample's file above)")
    p.add_argument("--rows", action="store_true", help="with --json: also every row read and its prediction")
    p.add_argument("--json", action="store_true")
    add_parameter_flags(p)
    p.set_defaults(func=_cmd_holdout)
