"""Time qsmoe's own prediction of the measured rows (run in the book's .venv by peers/run.py).

Prints one JSON line: qsmoe_version, n_points, seconds (median of the repeated passes),
points_per_s. The parameter set is the default one; the rows are the same file the peers read.
"""
from __future__ import annotations

import json
import statistics
import sys
import time


def _api():
    """load_measurements, predict_rows and resolve, wherever the current layout keeps them."""
    import importlib

    def find(name, modules):
        for m in modules:
            try:
                mod = importlib.import_module(m)
            except ImportError:
                continue
            if hasattr(mod, name):
                return getattr(mod, name)
        raise ImportError(f"qsmoe has no {name} in {', '.join(modules)}")

    load = find("load_measurements", ("qsmoe.evidence.measurements", "qsmoe.evidence.validation", "qsmoe.validation"))
    predict = find("predict_rows", ("qsmoe.evidence.validation", "qsmoe.validation"))
    resolve = find("resolve", ("qsmoe.scenario.params", "qsmoe.params"))
    return load, predict, resolve


def main(argv: list[str]) -> int:
    load_measurements, predict_rows, resolve = _api()
    rows = load_measurements(argv[1]) if len(argv) > 1 else load_measurements()
    values = dict(resolve().values)
    predict_rows(rows, values)  # warm the caches (model profiles, hardware)
    passes = []
    for _ in range(7):
        t = time.perf_counter()
        recs = predict_rows(rows, values)
        passes.append(time.perf_counter() - t)
    secs = statistics.median(passes)
    n = sum(1 for r in recs if r["predicted"] is not None)
    try:
        from importlib.metadata import version

        ver = version("qsmoe")
    except Exception:
        ver = "unknown"
    print(json.dumps({"qsmoe_version": ver, "n_points": len(rows), "n_predicted": n, "seconds": round(secs, 5),
                      "points_per_s": round(len(rows) / secs, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
