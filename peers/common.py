"""Shared input handling for the peer adapters: the measured rows, the model and hardware files.

Runs inside the peers' own virtual environment (``.peers-venv``), so it imports neither qsmoe nor
anything else from the book's environment: it reads the CSV and the YAML files itself.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
MEASUREMENTS = ROOT / "data" / "measured" / "measurements.csv"
MODELS_DIR = ROOT / "data" / "models"
HARDWARE_DIR = ROOT / "data" / "hardware"


class Unsupported(Exception):
    """The peer cannot express this row; the message is the short reason recorded in the CSV."""


@dataclass(frozen=True)
class Row:
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
    measured: float
    engine: str
    metric: str
    parallelism: str = ""

    @property
    def ep_inside_tp(self) -> int | None:
        """k where a ``tp`` row's parallelism text states "EPk" (experts split k ways inside the TP group)."""
        if self.layout != "tp":
            return None
        m = re.search(r"\bEP\s*(\d+)", self.parallelism)
        return int(m.group(1)) if m else None

    @property
    def static_batch(self) -> bool:
        """A fixed batch timed from first prefill to last token (the CSV's metric says so)."""
        m = self.metric.lower()
        return "static batch" in m or "fixed batch" in m


def _opt_int(raw: str) -> int | None:
    raw = (raw or "").strip()
    return int(float(raw)) if raw else None


def _opt_float(raw: str) -> float | None:
    raw = (raw or "").strip()
    return float(raw) if raw else None


def load_rows(path: Path = MEASUREMENTS) -> list[Row]:
    """Every row of measurements.csv, in file order."""
    with open(path, newline="", encoding="utf-8") as fh:
        out = []
        for r in csv.DictReader(fh):
            out.append(Row(
                id=r["id"].strip(), model=r["model"].strip(), hardware=r["hardware"].strip(),
                n_gpus=int(r["n_gpus"]), layout=r["layout"].strip(), weight_dtype=r["weight_dtype"].strip(),
                kv_dtype=r["kv_dtype"].strip(), regime=r["regime"].strip(),
                input_len=_opt_int(r["input_len"]), output_len=_opt_int(r["output_len"]),
                context=_opt_float(r["context"]), concurrency=_opt_int(r["concurrency"]),
                measured=float(r["tokens_per_s_per_gpu"]), engine=r.get("engine", "") or "", metric=r.get("metric", "") or "",
                parallelism=r.get("parallelism", "") or "",
            ))
    return out


@lru_cache(maxsize=None)
def model_spec(model_id: str) -> dict[str, Any]:
    """data/models/<id>.yaml as a dict (raises Unsupported when the file is missing)."""
    path = MODELS_DIR / f"{model_id}.yaml"
    if not path.is_file():
        raise Unsupported(f"no data/models/{model_id}.yaml")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@lru_cache(maxsize=None)
def hardware_spec(hw_id: str) -> dict[str, Any]:
    path = HARDWARE_DIR / f"{hw_id}.yaml"
    if not path.is_file():
        raise Unsupported(f"no data/hardware/{hw_id}.yaml")
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def is_moe(spec: dict[str, Any]) -> bool:
    moe = spec.get("moe") or {}
    return int(moe.get("n_routed_experts") or 0) > 1


def head_dim(spec: dict[str, Any]) -> int:
    att = spec["attention"]
    return int(att.get("head_dim") or spec["d_model"] // att["n_heads"])


def decode_context(row: Row) -> int:
    """KV length of a decode-regime row: the CSV's context (input + output/2 or as published)."""
    if row.context is not None:
        return int(round(row.context))
    if row.input_len is not None:
        return row.input_len + (row.output_len or 0) // 2
    raise Unsupported("decode row states no context")


def e2e_lengths(row: Row) -> tuple[int, int]:
    if row.input_len is None or row.output_len is None:
        raise Unsupported("e2e row states no input/output length")
    return row.input_len, row.output_len


def finite_positive(x: Any) -> bool:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return False
    return math.isfinite(v) and v > 0


def short(exc: BaseException, limit: int = 160) -> str:
    """One line from an exception, for a reason field."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
