"""The calibration's bootstrap resamples of the fitted constants, as a committed data file.

data/params/bootstrap.csv: comment lines (``#``) naming the command and the seed, a header
``resample,<constant>,...`` and one row per resample (the constants refitted on one resample of
the fit sources; :func:`qsmoe.evidence.calibration.bootstrap`). Written by
``qsmoe validate --write-params``; read by :func:`qsmoe.scenario.headline.constant_sets` to
propagate the constants' uncertainty into the ratio's band.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Mapping, Sequence

from qsmoe import DATA_DIR
from qsmoe.errors import QsError

BOOTSTRAP_PATH = DATA_DIR / "params" / "bootstrap.csv"


def bootstrap_text(points: Sequence[Mapping[str, float]], names: Sequence[str], seed: int) -> str:
    """The file's text: the header comment, then one row per resample (values as repr(float))."""
    out = io.StringIO()
    out.write("# Bootstrap resamples of the calibrated constants, written by `qsmoe validate --write-params`:\n"
              f"# {len(points)} resamples of the fit sources with replacement (seed {seed}), each refitted from\n"
              "# the point estimate (qsmoe.evidence.calibration.bootstrap). One row per resample.\n")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["resample", *names])
    for i, p in enumerate(points):
        writer.writerow([i, *(repr(float(p[n])) for n in names)])
    return out.getvalue()


def load_bootstrap(path: str | Path = BOOTSTRAP_PATH) -> list[dict[str, float]]:
    """The resamples of a bootstrap file: one {constant: value} per row, in file order."""
    path = Path(path)
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    rows = list(csv.reader(lines))
    if not rows or rows[0][:1] != ["resample"]:
        raise QsError("expected a header starting with 'resample'", source=str(path), field="resample")
    names, out = rows[0][1:], []
    for row in rows[1:]:
        if len(row) != len(names) + 1:
            raise QsError(f"expected {len(names) + 1} columns, got {len(row)}", source=str(path), field="resample")
        try:
            values = {n: float(v) for n, v in zip(names, row[1:])}
        except ValueError:
            raise QsError(f"expected numbers, got {row[1:]!r}", source=str(path), field="resample") from None
        if not all(math.isfinite(v) for v in values.values()):
            raise QsError("expected finite numbers", source=str(path), field="resample")
        out.append(values)
    return out


__all__ = ["BOOTSTRAP_PATH", "bootstrap_text", "load_bootstrap"]
