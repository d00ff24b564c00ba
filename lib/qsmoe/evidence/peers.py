"""The measured rows predicted by the tools practitioners use (``data/peers/``), next to qsmoe.

``make peers`` runs aiconfigurator, llm-analysis and GenZ over ``data/measured/measurements.csv``
in their own virtual environment and writes ``data/peers/predictions.csv`` (one row per measured
row: per peer either a prediction in output tokens/s per GPU or the reason it cannot predict
the row) and ``data/peers/meta.json`` (versions, mapping rules, date, speeds). This module only
reads those files, so the book never needs a peer installed.

Errors are signed relative errors (predicted - measured) / measured, as in
:mod:`qsmoe.evidence.validation`; summaries are medians of their absolute values, either on the
rows every compared tool predicted (the *common subset*) or on each tool's own predicted rows.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.fileio import read_text

PEERS_DIR = DATA_DIR / "peers"
PREDICTIONS_PATH = PEERS_DIR / "predictions.csv"
META_PATH = PEERS_DIR / "meta.json"
VALUE_SUFFIX = "_tokens_per_s_per_gpu"
REASON_SUFFIX = "_reason"
MEASURED_COLUMN = "measured" + VALUE_SUFFIX
#: Display names of the peers (column prefix -> name).
PEER_NAMES = {"aiconfigurator": "aiconfigurator", "llm_analysis": "llm-analysis", "genz": "GenZ"}
#: Reason given to a measured row that predictions.csv does not have (make peers not rerun).
MISSING_REASON = "not in predictions.csv (rerun make peers)"


@dataclass(frozen=True)
class PeerRow:
    """One row of predictions.csv: the measured value and, per peer, a value or a reason."""

    id: str
    measured: float
    values: dict[str, float | None]
    reasons: dict[str, str]
    extra: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class PeerTable:
    """predictions.csv: the peers (column prefixes, in file order) and the rows (file order)."""

    peers: tuple[str, ...]
    rows: tuple[PeerRow, ...]
    source: str = ""

    def by_id(self) -> dict[str, PeerRow]:
        return {r.id: r for r in self.rows}


def _number(raw: str, source: str, rid: str, column: str) -> float | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        v = float(raw)
    except ValueError:
        raise QsError(f"row {rid}: not a number: {raw[:40]!r}", source=source, field=column) from None
    if not (math.isfinite(v) and v > 0):
        raise QsError(f"row {rid}: must be finite and positive, got {raw[:40]!r}", source=source, field=column)
    return v


def load_predictions(path: str | Path | None = None) -> PeerTable:
    """Read predictions.csv; a malformed file raises one readable QsError line.

    Checked: the id and measured columns exist; every peer has both a value and a reason column;
    ids are unique and non-empty; values are finite and positive; for every row and peer exactly
    one of value and reason is filled."""
    path = Path(PREDICTIONS_PATH if path is None else path)
    source = str(path)
    text = read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        header = list(reader.fieldnames or [])
        records = list(reader)
    except csv.Error as exc:
        raise QsError(f"not a readable CSV table: {exc}", source=source) from None
    for col in ("id", MEASURED_COLUMN):
        if col not in header:
            raise QsError(f"missing column {col}", source=source)
    peers = tuple(c[: -len(VALUE_SUFFIX)] for c in header if c.endswith(VALUE_SUFFIX) and c != MEASURED_COLUMN)
    if not peers:
        raise QsError(f"no peer columns (<peer>{VALUE_SUFFIX})", source=source)
    for p in peers:
        if p + REASON_SUFFIX not in header:
            raise QsError(f"peer {p} has a value column but no {p}{REASON_SUFFIX} column", source=source)
    rows, seen = [], set()
    for rec in records:
        if None in rec:
            raise QsError(f"row {(rec.get('id') or '?')[:20]}: more fields than the header", source=source)
        rid = (rec.get("id") or "").strip()
        if not rid:
            raise QsError("a row has an empty id", source=source, field="id")
        if rid in seen:
            raise QsError(f"duplicate id {rid[:20]}", source=source, field="id")
        seen.add(rid)
        measured = _number(rec.get(MEASURED_COLUMN, ""), source, rid, MEASURED_COLUMN)
        if measured is None:
            raise QsError(f"row {rid}: empty", source=source, field=MEASURED_COLUMN)
        values, reasons = {}, {}
        for p in peers:
            v = _number(rec.get(p + VALUE_SUFFIX, ""), source, rid, p + VALUE_SUFFIX)
            why = (rec.get(p + REASON_SUFFIX) or "").strip()
            if v is None and not why:
                raise QsError(f"row {rid}: neither a value nor a reason for {p}", source=source, field=p + REASON_SUFFIX)
            if v is not None and why:
                raise QsError(f"row {rid}: both a value and a reason for {p}", source=source, field=p + REASON_SUFFIX)
            values[p], reasons[p] = v, why
        known = {"id", MEASURED_COLUMN} | {p + s for p in peers for s in (VALUE_SUFFIX, REASON_SUFFIX)}
        rows.append(PeerRow(rid, measured, values, reasons, {k: v for k, v in rec.items() if k not in known}))
    return PeerTable(peers, tuple(rows), source)


def load_meta(path: str | Path | None = None) -> dict[str, Any]:
    """meta.json as a dict (QsError when unreadable or not a JSON object)."""
    path = Path(META_PATH if path is None else path)
    text = read_text(path)
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QsError(f"not valid JSON: {exc.msg} (line {exc.lineno})", source=str(path)) from None
    if not isinstance(meta, dict):
        raise QsError("not a JSON object", source=str(path))
    return meta


def peer_name(peer: str) -> str:
    return PEER_NAMES.get(peer, peer)


def join(table: PeerTable, measurements: Sequence[Any], qsmoe: Mapping[str, Mapping[str, float | None]] | None = None) -> list[dict[str, Any]]:
    """One record per measured row (measurement order): its setup and every tool's prediction.

    ``measurements``: qsmoe Measurement rows (id, model, hardware, regime, moe, vendor,
    concurrency, tokens_per_s_per_gpu). ``qsmoe``: {tool label: {id: predicted or None}} for
    qsmoe's own predictions (e.g. one label per parameter set). Keys: id, model, hardware,
    regime, moe, vendor, concurrency, measured, predicted {tool: value or None}, reason
    {tool: str} and error {tool: signed relative error or None}. Tools: the qsmoe labels, then
    the peers (column prefixes). A measured row missing from predictions.csv gets
    :data:`MISSING_REASON` for every peer."""
    peers = table.by_id()
    qsmoe = dict(qsmoe or {})
    out = []
    for m in measurements:
        row = peers.get(m.id)
        pred: dict[str, float | None] = {}
        why: dict[str, str] = {}
        for label, preds in qsmoe.items():
            v = preds.get(m.id)
            pred[label] = v if v is not None and math.isfinite(v) and v > 0 else None
            why[label] = "" if pred[label] is not None else "no prediction"
        for p in table.peers:
            pred[p] = row.values[p] if row is not None else None
            why[p] = row.reasons[p] if row is not None else MISSING_REASON
        meas = float(m.tokens_per_s_per_gpu)
        out.append({
            "id": m.id, "model": m.model, "hardware": m.hardware, "regime": m.regime, "moe": bool(m.moe),
            "vendor": m.vendor, "concurrency": m.concurrency, "measured": meas,
            "predicted": pred, "reason": why,
            "error": {t: (v - meas) / meas if v is not None else None for t, v in pred.items()},
        })
    return out


def tools_of(records: Sequence[Mapping[str, Any]]) -> list[str]:
    return list(records[0]["predicted"]) if records else []


def common_subset(records: Sequence[Mapping[str, Any]], tools: Sequence[str] | None = None) -> list[Mapping[str, Any]]:
    """The records every tool in ``tools`` (default: all) predicted."""
    tools = tools_of(records) if tools is None else list(tools)
    return [r for r in records if all(r["predicted"].get(t) is not None for t in tools)]


#: Regime groups for the summaries: name -> predicate on a joined record.
GROUPS: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    "all": lambda r: True,
    "decode": lambda r: r["regime"] == "decode",
    "e2e": lambda r: r["regime"] == "e2e",
    "moe": lambda r: r["moe"],
    "dense": lambda r: not r["moe"],
    "nvidia": lambda r: r["vendor"] == "nvidia",
    "amd": lambda r: r["vendor"] == "amd",
    "conc_le_16": lambda r: r["concurrency"] is not None and r["concurrency"] <= 16,
    "conc_ge_64": lambda r: r["concurrency"] is not None and r["concurrency"] >= 64,
}
GROUP_LABELS = {
    "all": "all rows", "decode": "decode-only", "e2e": "end-to-end", "moe": "MoE", "dense": "dense",
    "nvidia": "NVIDIA", "amd": "AMD", "conc_le_16": "concurrency ≤ 16", "conc_ge_64": "concurrency ≥ 64",
}


def _median_abs(errors: Iterable[float | None]) -> tuple[int, float | None]:
    vals = [abs(e) for e in errors if e is not None]
    return len(vals), (float(np.median(vals)) if vals else None)


def medians(records: Sequence[Mapping[str, Any]], tools: Sequence[str] | None = None, *, common: bool = True,
            groups: Mapping[str, Callable[[Mapping[str, Any]], bool]] | None = None) -> dict[str, dict[str, dict[str, Any]]]:
    """Median |relative error| per group and tool: {group: {tool: {n, median_abs_error}}}.

    ``common=True``: within each group, only the rows every tool in ``tools`` predicted (so the
    tools are compared on the same rows; n is then equal across tools). ``common=False``: each
    tool on its own predicted rows. Empty groups give n = 0 and a None median."""
    tools = tools_of(records) if tools is None else list(tools)
    groups = GROUPS if groups is None else groups
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for g, pred in groups.items():
        chosen = [r for r in records if pred(r)]
        if common:
            chosen = common_subset(chosen, tools)
        out[g] = {}
        for t in tools:
            n, med = _median_abs(r["error"][t] for r in chosen)
            out[g][t] = {"n": n, "median_abs_error": med}
    return out


def cannot_express(table: PeerTable) -> dict[str, list[tuple[str, int]]]:
    """Per peer, the reasons it gave instead of a prediction, with how many rows each: sorted by
    count (descending), then reason."""
    out = {}
    for p in table.peers:
        counts: dict[str, int] = {}
        for r in table.rows:
            if r.values[p] is None:
                counts[r.reasons[p]] = counts.get(r.reasons[p], 0) + 1
        out[p] = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return out


def coverage(table: PeerTable) -> dict[str, int]:
    """Per peer, how many rows it predicted."""
    return {p: sum(r.values[p] is not None for r in table.rows) for p in table.peers}


def speeds(meta: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each tool's speed from meta.json: [{tool, points_per_s, n_points}], tools in meta order
    (qsmoe last when present); tools without a measured speed are left out."""
    out = []
    for tool, s in (meta.get("speed") or {}).items():
        if isinstance(s, Mapping) and isinstance(s.get("points_per_s"), (int, float)) and s["points_per_s"] > 0:
            out.append({"tool": tool, "points_per_s": float(s["points_per_s"]), "n_points": int(s.get("n_points") or 0)})
    out.sort(key=lambda d: (d["tool"] == "qsmoe", 0))
    return out
