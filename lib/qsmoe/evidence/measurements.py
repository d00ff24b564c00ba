"""The published measurements (``data/measured/measurements.csv``): schema, loader and split rule.

Each row is one published throughput with its setup (model, accelerator, GPUs of one instance,
layout, formats, lengths, concurrency), its engine and version, whether multi-token prediction
(MTP) or disaggregated prefill/decode was on, the source it comes from (``source_id``, one id per
document) and the quote the number was read from. ``data/measured/README.md`` documents every
column and every conversion.

The split into fit and judge rows is by source, never by row: the distinct ``source_id`` values
are sorted as strings and the source at 0-based position p is ``fit`` when p mod 3 == 0
(:func:`split_by_rule`), so every row of a source lands on the same side.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics.deployment import LAYOUTS
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.specs.dtypes import BYTES_PER_VALUE
from qsmoe.specs.fileio import read_text
from qsmoe.specs.hardware import available_hardware, load_hardware
from qsmoe.specs.models import available_models, load_model

MEASUREMENTS_PATH = DATA_DIR / "measured" / "measurements.csv"
#: Columns the loader reads; ``metric``, ``value``, ``unit``, ``source_url``, ``verified`` and
#: ``notes`` are documentation and kept in ``Measurement.extra``.
REQUIRED_COLUMNS = (
    "id", "model", "hardware", "n_gpus", "layout", "parallelism", "comm_overlap", "weight_dtype", "kv_dtype",
    "regime", "input_len", "output_len", "context", "concurrency", "tokens_per_s_per_gpu",
    "engine", "engine_version", "mtp", "disaggregated", "source_id", "quote", "split",
)
REGIMES = ("decode", "e2e")
SPLITS = ("fit", "judge")
#: Serving engines as recorded (``nim``: NVIDIA NIM; ``other``: in-house or another engine).
ENGINES = ("trtllm", "sglang", "vllm", "nim", "atom", "other")
#: Whether multi-token prediction was on: as the source states it, or ``unknown``.
MTP_STATES = ("yes", "no", "unknown")
#: The choices of a yes / no column.
YES_NO = ("yes", "no")
#: Columns a table may leave out: ``cuda_graphs`` (``yes`` / ``no``: whether the decode steps were
#: replayed as CUDA/HIP graphs, as the source or the engine's code at the recorded version shows;
#: empty: not established, the parameter set's ``use_cuda_graphs`` applies) and
#: ``attention_proj_dtype`` (the format the checkpoint stores its attention projections in where it
#: differs from ``weight_dtype``; empty: the parameter set's ``attention_proj_dtype`` applies).
OPTIONAL_COLUMNS = ("cuda_graphs", "attention_proj_dtype")


@dataclass(frozen=True)
class Measurement:
    """One validated row of measurements.csv (empty numeric fields are None)."""

    id: str
    model: str
    hardware: str
    n_gpus: int
    layout: str
    weight_dtype: str
    kv_dtype: str
    regime: str
    input_len: int | None
    output_len: int | None
    context: float | None
    concurrency: int | None
    tokens_per_s_per_gpu: float
    split: str
    vendor: str
    moe: bool
    comm_overlap: bool = False
    engine: str = "other"
    engine_version: str = ""
    mtp: str = "no"
    cuda_graphs: bool | None = None
    attention_proj_dtype: str | None = None
    disaggregated: bool = False
    source_id: str = ""
    parallelism: str = ""
    quote: str = ""
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@lru_cache(maxsize=None)
def profile_for(model_id: str) -> DecodeProfile:
    """The decode profile of a shipped model (cached)."""
    return profile_of(load_model(model_id))


def source_splits(source_ids: Iterable[str]) -> dict[str, str]:
    """{source_id: split}: the distinct ids sorted as strings, position p is 'fit' when p % 3 == 0."""
    return {sid: ("fit" if p % 3 == 0 else "judge") for p, sid in enumerate(sorted(set(source_ids)))}


def split_by_rule(rows: Iterable[Measurement]) -> dict[str, str]:
    """{row id: split} by the README's rule: every row takes its source's split (:func:`source_splits`)."""
    rows = list(rows)
    by_source = source_splits(r.source_id for r in rows)
    return {r.id: by_source[r.source_id] for r in rows}


def row_error(source: str, rid: str, column: str, message: str) -> QsError:
    """The one-line error of a table's row ``rid`` in ``column``."""
    return QsError(f"row {rid}, column '{column}': {message}", source=source)


def _parse_number(raw: str, source: str, rid: str, column: str, *, optional: bool, whole: bool, minimum: float) -> float | None:
    """A CSV cell as a finite number (a whole one >= ``minimum`` when ``whole``, else > ``minimum``);
    None for an empty optional cell."""
    text = raw.strip()
    if not text:
        if optional:
            return None
        raise row_error(source, rid, column, "missing")
    kind = "a whole number" if whole else "a number"
    try:
        value = float(text)
    except ValueError:
        raise row_error(source, rid, column, f"expected {kind}, got {raw[:40]!r}") from None
    ok = math.isfinite(value) and (value == int(value) and value >= minimum if whole else value > minimum)
    if not ok:
        bound = f">= {minimum:g}" if whole else f"> {minimum:g}"
        raise row_error(source, rid, column, f"expected {'a whole number' if whole else 'a finite number'} {bound}, got {raw[:40]!r}")
    return value


def _parse_int(raw: str, source: str, rid: str, column: str, *, optional: bool) -> int | None:
    value = _parse_number(raw, source, rid, column, optional=optional, whole=True, minimum=1)
    return None if value is None else int(value)


def _parse_float(raw: str, source: str, rid: str, column: str, *, optional: bool) -> float | None:
    return _parse_number(raw, source, rid, column, optional=optional, whole=False, minimum=0.0)


def _parse_choice(raw: str, source: str, rid: str, column: str, choices: Sequence[str]) -> str:
    text = raw.strip()
    if text not in choices:
        raise row_error(source, rid, column, f"{raw[:40]!r} is not one of {', '.join(choices)}")
    return text


def _parse_optional_yes_no(raw: str, source: str, rid: str, column: str) -> bool | None:
    """``yes`` -> True, ``no`` -> False, empty -> None (not stated)."""
    if not raw.strip():
        return None
    return _parse_choice(raw, source, rid, column, YES_NO) == "yes"


def read_table(path: Path, columns: Sequence[str]) -> list[dict[str, str]]:
    """The rows of the CSV table at ``path`` as dicts; a QsError when it is unreadable or lacks
    one of ``columns``."""
    source = str(path)
    text = read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise QsError(f"missing column(s): {', '.join(missing)}", source=source)
        return list(reader)
    except csv.Error as exc:
        raise QsError(f"not a readable CSV table: {exc}", source=source) from None


def check_width(raw: dict[str, str], columns: Sequence[str], line: int, source: str) -> None:
    """A QsError when the table's line ``line`` has more or fewer fields than its header."""
    if None in raw or any(raw[c] is None for c in columns):
        raise QsError(f"line {line}: wrong number of fields", source=source)


def id_rows(path: Path, columns: Sequence[str]) -> list[tuple[str, dict[str, str]]]:
    """(id, row) for each row of the CSV table at ``path``: every row as wide as the header, its
    ``id`` present and not repeated; a QsError naming the file and the line or row otherwise."""
    source = str(path)
    out: list[tuple[str, dict[str, str]]] = []
    seen: set[str] = set()
    for n, raw in enumerate(read_table(path, columns), start=2):
        check_width(raw, columns, n, source)
        rid = raw["id"].strip()
        if not rid:
            raise QsError(f"line {n}, column 'id': missing", source=source)
        if rid in seen:
            raise row_error(source, rid, "id", "duplicate id")
        seen.add(rid)
        out.append((rid, raw))
    return out


def load_measurements(path: str | Path | None = None) -> list[Measurement]:
    """Read and check measurements.csv (default: the book's); one QsError per problem, naming
    the file, the row id and the column."""
    path = Path(path) if path is not None else MEASUREMENTS_PATH
    source = str(path)
    models, hardware = set(available_models()), set(available_hardware())
    dtypes = tuple(sorted(BYTES_PER_VALUE))
    rows: list[Measurement] = []
    for rid, raw in id_rows(path, REQUIRED_COLUMNS):
        model = raw["model"].strip()
        if model not in models:
            raise row_error(source, rid, "model", f"unknown model {model[:40]!r} (known: {', '.join(sorted(models))})")
        hw = raw["hardware"].strip()
        if hw not in hardware:
            raise row_error(source, rid, "hardware", f"unknown hardware {hw[:40]!r} (known: {', '.join(sorted(hardware))})")
        source_id = raw["source_id"].strip()
        if not source_id:
            raise row_error(source, rid, "source_id", "missing")
        regime = _parse_choice(raw["regime"], source, rid, "regime", REGIMES)
        rows.append(Measurement(
            id=rid,
            model=model,
            hardware=hw,
            n_gpus=_parse_int(raw["n_gpus"], source, rid, "n_gpus", optional=False),
            layout=_parse_choice(raw["layout"], source, rid, "layout", LAYOUTS),
            weight_dtype=_parse_choice(raw["weight_dtype"], source, rid, "weight_dtype", dtypes),
            kv_dtype=_parse_choice(raw["kv_dtype"], source, rid, "kv_dtype", dtypes),
            regime=regime,
            input_len=_parse_int(raw["input_len"], source, rid, "input_len", optional=regime == "decode"),
            output_len=_parse_int(raw["output_len"], source, rid, "output_len", optional=regime == "decode"),
            context=_parse_float(raw["context"], source, rid, "context", optional=regime == "e2e"),
            concurrency=_parse_int(raw["concurrency"], source, rid, "concurrency", optional=True),
            tokens_per_s_per_gpu=_parse_float(raw["tokens_per_s_per_gpu"], source, rid, "tokens_per_s_per_gpu", optional=False),
            split=_parse_choice(raw["split"], source, rid, "split", SPLITS),
            vendor=load_hardware(hw).vendor,
            moe=bool(profile_for(model).is_moe),
            comm_overlap=_parse_choice(raw["comm_overlap"] or "no", source, rid, "comm_overlap", YES_NO) == "yes",
            engine=_parse_choice(raw["engine"], source, rid, "engine", ENGINES),
            engine_version=raw["engine_version"].strip(),
            mtp=_parse_choice(raw["mtp"], source, rid, "mtp", MTP_STATES),
            cuda_graphs=_parse_optional_yes_no(raw.get("cuda_graphs") or "", source, rid, "cuda_graphs"),
            attention_proj_dtype=_parse_choice(raw["attention_proj_dtype"], source, rid, "attention_proj_dtype", dtypes) if (raw.get("attention_proj_dtype") or "").strip() else None,
            disaggregated=_parse_choice(raw["disaggregated"], source, rid, "disaggregated", YES_NO) == "yes",
            source_id=source_id,
            parallelism=raw["parallelism"].strip(),
            quote=raw["quote"].strip(),
            extra={k: v for k, v in raw.items() if k not in REQUIRED_COLUMNS and k not in OPTIONAL_COLUMNS},
        ))
    return rows


__all__ = [
    "ENGINES", "MEASUREMENTS_PATH", "MTP_STATES", "Measurement", "OPTIONAL_COLUMNS", "REGIMES", "REQUIRED_COLUMNS", "SPLITS",
    "check_width", "id_rows", "load_measurements", "profile_for", "read_table", "row_error", "source_splits", "split_by_rule",
]
