"""Doubted fields of the measurements (``data/measured/doubts.csv``): a second reading of the table.

Where a source does not state a setup field, ``measurements.csv`` records the engine default
and its notes say so. Some of those defaults are in doubt: indirect evidence points to another
value. Each such field is a row of doubts.csv,

    id, field, recorded, alternative, evidence

(``recorded`` must equal the value measurements.csv holds, so a doubt cannot outlive an edit of
the row). :func:`apply_doubts` gives the table with every doubted field set to its alternative,
and running the fit and the judge on both readings shows how far the verdict rests on fields
nobody has read.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Sequence

from qsmoe import DATA_DIR
from qsmoe.evidence.measurements import Measurement, check_width, read_table, row_error
from qsmoe.specs.dtypes import BYTES_PER_VALUE

DOUBTS_PATH = DATA_DIR / "measured" / "doubts.csv"
COLUMNS = ("id", "field", "recorded", "alternative", "evidence")
#: The fields a doubt may name, each with the values it may take.
DOUBT_FIELDS = {"kv_dtype": tuple(sorted(BYTES_PER_VALUE))}


@dataclass(frozen=True)
class Doubt:
    """One doubted field: row ``id``'s ``field`` is recorded as ``recorded``; the evidence points to ``alternative``."""

    id: str
    field: str
    recorded: str
    alternative: str
    evidence: str


def load_doubts(rows: Sequence[Measurement], path: str | Path | None = None) -> list[Doubt]:
    """Read and check doubts.csv (default: the book's) against the measurement ``rows``; one
    QsError per problem, naming the file, the row id and the column."""
    path = Path(path) if path is not None else DOUBTS_PATH
    source = str(path)
    by_id = {r.id: r for r in rows}
    out: list[Doubt] = []
    seen: set[tuple[str, str]] = set()
    for n, raw in enumerate(read_table(path, COLUMNS), start=2):
        check_width(raw, COLUMNS, n, source)
        d = Doubt(**{c: raw[c].strip() for c in COLUMNS})
        bad = partial(row_error, source, d.id or "?")
        if d.id not in by_id:
            raise bad("id", f"{d.id[:40]!r} is not a row of the measurements")
        if d.field not in DOUBT_FIELDS:
            raise bad("field", f"{d.field[:40]!r} is not one of {', '.join(DOUBT_FIELDS)}")
        if (d.id, d.field) in seen:
            raise bad("field", "doubted twice")
        seen.add((d.id, d.field))
        held = getattr(by_id[d.id], d.field)
        if d.recorded != held:
            raise bad("recorded", f"{d.recorded[:40]!r} is not the value the measurements hold ({held!r})")
        if d.alternative not in DOUBT_FIELDS[d.field]:
            raise bad("alternative", f"{d.alternative[:40]!r} is not one of {', '.join(DOUBT_FIELDS[d.field])}")
        if d.alternative == d.recorded:
            raise bad("alternative", "equals the recorded value")
        if not d.evidence:
            raise bad("evidence", "missing")
        out.append(d)
    return out


def apply_doubts(rows: Sequence[Measurement], doubts: Sequence[Doubt]) -> list[Measurement]:
    """``rows`` with every doubted field set to its alternative (the other rows unchanged, same order)."""
    changes: dict[str, dict[str, str]] = {}
    for d in doubts:
        changes.setdefault(d.id, {})[d.field] = d.alternative
    return [dataclasses.replace(r, **changes[r.id]) if r.id in changes else r for r in rows]


__all__ = ["COLUMNS", "DOUBTS_PATH", "DOUBT_FIELDS", "Doubt", "apply_doubts", "load_doubts"]
