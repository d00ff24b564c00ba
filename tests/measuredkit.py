"""Cut-down measurement tables and the fixtures shared by the calibration tests (test_calibration.py,
test_doubts.py, test_hindsight.py, test_ceiling.py): import ``values`` and ``rows`` to use them."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qsmoe.evidence import measurements as ms
from qsmoe.scenario.params import resolve


@pytest.fixture(scope="module")
def values() -> dict:
    """The default parameter set's values."""
    return dict(resolve().values)


@pytest.fixture(scope="module")
def rows() -> list[ms.Measurement]:
    """The book's measurement table."""
    return ms.load_measurements()


def one_source_per_split_and_regime(rows: list[ms.Measurement]) -> list[ms.Measurement]:
    """The rows of the smallest source of each (split, regime): fit and judge, decode and e2e."""
    sizes: dict[tuple[str, str, str], int] = {}
    for r in rows:
        sizes[(r.split, r.regime, r.source_id)] = sizes.get((r.split, r.regime, r.source_id), 0) + 1
    keep = {min((n, s) for (sp, rg, s), n in sizes.items() if (sp, rg) == key)[1] for key in {(sp, rg) for sp, rg, _ in sizes}}
    return [r for r in rows if r.source_id in keep]


def small_table(tmp_path: Path, rows: list[ms.Measurement]) -> Path:
    """The measurement CSV cut to the rows of :func:`one_source_per_split_and_regime`."""
    sources = {r.source_id for r in one_source_per_split_and_regime(rows)}
    with open(ms.MEASUREMENTS_PATH, newline="", encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    keep = [r for r in table if r["source_id"] in sources]
    path = tmp_path / "small.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(keep)
    return path
