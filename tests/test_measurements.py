"""Tests for qsmoe.evidence.measurements: the table's schema, the loader's errors and the split rule."""
from __future__ import annotations

import collections
from pathlib import Path

import pytest

from qsmoe.errors import QsError
from qsmoe.evidence import measurements as ms

HEADER = ",".join(ms.REQUIRED_COLUMNS) + "\n"
ROW = {
    "id": "X1", "model": "llama-3.1-70b", "hardware": "h200", "n_gpus": "2", "layout": "tp", "parallelism": "TP2",
    "comm_overlap": "no", "weight_dtype": "fp8", "kv_dtype": "bf16", "regime": "decode", "input_len": "1000",
    "output_len": "200", "context": "1100", "concurrency": "8", "tokens_per_s_per_gpu": "100.5", "engine": "vllm",
    "engine_version": "0.8", "mtp": "no", "disaggregated": "no", "source_id": "src-a", "quote": "q", "split": "fit",
}


def line(**changes: str) -> str:
    row = dict(ROW, **changes)
    return ",".join(row[c] for c in ms.REQUIRED_COLUMNS) + "\n"


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "m.csv"
    path.write_text(header + "".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def rows() -> list[ms.Measurement]:
    return ms.load_measurements()


def test_the_book_table_meets_the_coverage_asked_for(rows) -> None:
    assert len(rows) >= 80 and len({r.id for r in rows}) == len(rows)
    assert len({r.source_id for r in rows}) >= 10
    assert sum(r.moe for r in rows) >= 30
    assert any(r.vendor == "amd" for r in rows)
    assert any(r.concurrency is not None and r.concurrency <= 16 for r in rows)
    assert any(r.concurrency is not None and r.concurrency >= 64 for r in rows)
    assert any((r.input_len or 0) + (r.output_len or 0) >= 32000 or (r.context or 0) >= 32000 for r in rows)
    assert all(r.quote or r.source_id in {"lmsys-2025-05-large-ep", "lmsys-2025-06-gb200-part1", "lmsys-2025-09-gb200-part2"} for r in rows)


def test_the_split_column_follows_the_rule_and_keeps_each_source_on_one_side(rows) -> None:
    assert ms.split_by_rule(rows) == {r.id: r.split for r in rows}
    sides = collections.defaultdict(set)
    for r in rows:
        sides[r.source_id].add(r.split)
    assert all(len(s) == 1 for s in sides.values())
    assert {"fit", "judge"} == {r.split for r in rows}


def test_source_splits_by_hand() -> None:
    assert ms.source_splits(["c", "a", "b", "a", "d"]) == {"a": "fit", "b": "judge", "c": "judge", "d": "fit"}


def test_a_small_file_loads(tmp_path) -> None:
    (row,) = ms.load_measurements(write(tmp_path, line()))
    assert row.engine == "vllm" and row.mtp == "no" and not row.disaggregated and row.source_id == "src-a"
    assert row.concurrency == 8 and row.context == 1100.0 and not row.moe and row.vendor == "nvidia"


def test_the_cuda_graphs_column_is_optional_and_read_as_yes_no_or_not_stated(tmp_path) -> None:
    header = HEADER.rstrip("\n") + ",cuda_graphs\n"
    rows = ms.load_measurements(write(tmp_path, *(line(id=f"X{i}").rstrip("\n") + f",{v}\n" for i, v in enumerate(("yes", "no", ""))), header=header))
    assert [r.cuda_graphs for r in rows] == [True, False, None]
    assert all("cuda_graphs" not in r.extra for r in rows)
    with pytest.raises(QsError, match="row X1, column 'cuda_graphs'"):
        ms.load_measurements(write(tmp_path, line().rstrip("\n") + ",off\n", header=header))


def test_the_book_table_records_cuda_graphs_only_where_the_check_log_establishes_them(rows) -> None:
    eager = sorted(r.id for r in rows if r.cuda_graphs is False)
    assert eager == ["N54", "N55", "N56"]
    assert all(r.source_id == "dstack-deepseek-r1" for r in rows if r.cuda_graphs is not None)


@pytest.mark.parametrize("changes,column", [
    ({"hardware": "h999"}, "hardware"), ({"model": "nope"}, "model"), ({"n_gpus": "1.5"}, "n_gpus"),
    ({"layout": "pp"}, "layout"), ({"engine": "tgi"}, "engine"), ({"mtp": "maybe"}, "mtp"),
    ({"disaggregated": "1"}, "disaggregated"), ({"source_id": ""}, "source_id"), ({"split": "x"}, "split"),
    ({"tokens_per_s_per_gpu": "nan"}, "tokens_per_s_per_gpu"), ({"context": ""}, "context"),
])
def test_bad_rows_name_the_row_and_column(tmp_path, changes, column) -> None:
    with pytest.raises(QsError, match=f"row X1, column '{column}'"):
        ms.load_measurements(write(tmp_path, line(**changes)))


def test_file_level_errors(tmp_path) -> None:
    with pytest.raises(QsError, match="missing column"):
        ms.load_measurements(write(tmp_path, line(), header=HEADER.replace("source_id,", "")))
    with pytest.raises(QsError, match="duplicate id"):
        ms.load_measurements(write(tmp_path, line(), line()))
    with pytest.raises(QsError, match="not found"):
        ms.load_measurements(tmp_path / "none.csv")
