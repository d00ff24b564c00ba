"""Predict every measured row with each peer tool; write data/peers/predictions.csv and meta.json.

Run by ``make peers``, inside the peers' own virtual environment (``.peers-venv``). qsmoe's own
prediction speed is timed on the same rows in the book's environment (``--qsmoe-python``).

For each row and each peer: the row is mapped to the peer's inputs (the adapter modules say how),
the batch is taken from the row or, when the row states none, chosen by the peer's own memory
model, and the peer's output is converted to output tokens/s per GPU. A row the peer cannot
express gets a short reason instead of a number. The CSV depends only on the inputs and the peer
versions; meta.json also records the date and the measured speeds.
"""
from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import MEASUREMENTS, ROOT, Unsupported, load_rows, short  # noqa: E402

ADAPTERS = ("aiconfigurator_adapter", "llm_analysis_adapter", "genz_adapter")
TIMED_POINTS = 40


def column(name: str) -> str:
    return name.replace("-", "_")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run_peer(mod, rows, log) -> tuple[dict, dict]:
    """(per-row results, timing) for one adapter module."""
    results: dict[str, dict] = {}
    t0 = time.perf_counter()
    try:
        adapter = mod.Adapter()
    except Exception as exc:  # the package is missing or broken: every row gets the reason
        why = f"not runnable here: {short(exc)}"
        return {r.id: {"value": None, "reason": why, "setup": ""} for r in rows}, {"error": why}
    init_s = time.perf_counter() - t0
    points = []
    t1 = time.perf_counter()
    for row in rows:
        try:
            kw, batch = adapter.plan(row)
            setup = adapter.describe(kw, batch)
            value = adapter.predict(kw, batch)
            results[row.id] = {"value": value, "reason": "", "setup": setup}
            points.append((kw, batch))
        except Unsupported as exc:
            results[row.id] = {"value": None, "reason": str(exc), "setup": ""}
        except Exception as exc:  # an unexpected failure inside the peer: record it, never guess
            results[row.id] = {"value": None, "reason": f"failed: {short(exc)}", "setup": ""}
        r = results[row.id]
        log(f"  {mod.NAME:15s} {row.id:6s} " + (f"{r['value']:10.2f}  {r['setup']}" if r["value"] is not None else f"-- {r['reason']}"))
    first_pass_s = time.perf_counter() - t1
    # speed: the same design points again, timed alone (warm caches, no batch search); at most
    # TIMED_POINTS of them, evenly spaced, so the run stays short as the CSV grows
    step = max(1, -(-len(points) // TIMED_POINTS))
    timed = points[::step]
    t2 = time.perf_counter()
    for kw, batch in timed:
        adapter.predict(kw, batch)
    timed_s = time.perf_counter() - t2
    timing = {
        "n_predicted": len(points),
        "n_points": len(timed),
        "seconds": round(timed_s, 4),
        "points_per_s": round(len(timed) / timed_s, 3) if timed and timed_s > 0 else None,
        "first_pass_seconds_incl_batch_search": round(first_pass_s, 3),
        "import_and_init_seconds": round(init_s, 3),
    }
    return results, timing


def qsmoe_timing(python: str, rows_path: Path, log) -> dict:
    script = HERE / "qsmoe_timing.py"
    try:
        out = subprocess.run([python, str(script), str(rows_path)], capture_output=True, text=True, timeout=600, cwd=ROOT, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except Exception as exc:
        log(f"qsmoe timing failed: {short(exc)}")
        return {"error": short(exc)}


def versions(packages) -> dict[str, str]:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", default=str(MEASUREMENTS), help="measurements CSV (default: data/measured/measurements.csv)")
    ap.add_argument("--out", default=str(ROOT / "data" / "peers"), help="output folder (default: data/peers)")
    ap.add_argument("--qsmoe-python", default=str(ROOT / ".venv" / "bin" / "python"), help="python of the book's venv, to time qsmoe")
    ap.add_argument("--only", default="", help="comma-separated peer names to run (default: all)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    log = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))

    rows_path = Path(args.rows)
    rows = load_rows(rows_path)
    log(f"{len(rows)} measured rows from {rows_path}")
    mods = [importlib.import_module(m) for m in ADAPTERS]
    if args.only:
        keep = {x.strip() for x in args.only.split(",")}
        mods = [m for m in mods if m.NAME in keep]

    per_peer, timing, peer_versions, rules = {}, {}, {}, {}
    for mod in mods:
        log(f"{mod.NAME}:")
        per_peer[mod.NAME], timing[mod.NAME] = run_peer(mod, rows, log)
        peer_versions.update(versions(mod.PACKAGES))
        rules[mod.NAME] = " ".join((mod.__doc__ or "").split())
    log("qsmoe (timing only):")
    timing["qsmoe"] = qsmoe_timing(args.qsmoe_python, rows_path, log)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fields = ["id", "model", "hardware", "regime", "measured_tokens_per_s_per_gpu"]
    for mod in mods:
        c = column(mod.NAME)
        fields += [f"{c}_tokens_per_s_per_gpu", f"{c}_reason", f"{c}_setup"]
    with open(out / "predictions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for row in rows:
            rec = {"id": row.id, "model": row.model, "hardware": row.hardware, "regime": row.regime, "measured_tokens_per_s_per_gpu": f"{row.measured:.2f}"}
            for mod in mods:
                c, r = column(mod.NAME), per_peer[mod.NAME][row.id]
                rec[f"{c}_tokens_per_s_per_gpu"] = "" if r["value"] is None else f"{r['value']:.2f}"
                rec[f"{c}_reason"] = r["reason"]
                rec[f"{c}_setup"] = r["setup"]
            w.writerow(rec)

    meta = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d"),
        "rows_file": os.path.relpath(rows_path, ROOT),
        "n_rows": len(rows),
        "peers": [m.NAME for m in mods],
        "versions": dict(peer_versions, python=platform.python_version(), qsmoe=timing["qsmoe"].get("qsmoe_version", "unknown")),
        "machine": {"cpu": cpu_name(), "logical_cpus": os.cpu_count(), "os": platform.platform()},
        "speed": timing,
        "speed_note": ("design points per second, measured side by side in one run on the machine above: each peer re-evaluates "
                       "the design points it predicted (warm, no batch search); qsmoe evaluates every row with predict_rows "
                       "(median of repeated passes)"),
        "mapping_rules": rules,
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    log(f"wrote {out / 'predictions.csv'} and {out / 'meta.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
