"""Reading YAML/JSON data files with one clear error per problem.

Every accessor names the file and the dotted field path in its error, so a
malformed model, hardware or parameter file never produces a traceback.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from qsmoe.errors import QsError

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same rules, faster


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON file whose top level must be a mapping."""
    path = Path(path)
    if not path.exists():
        raise QsError("file not found", source=str(path))
    if not path.is_file():
        raise QsError("not a regular file", source=str(path))
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_YAML_LOADER)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else (f" at line {exc.lineno}" if hasattr(exc, "lineno") else "")
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise QsError(f"malformed {kind}{line}", source=str(path)) from None
    if not isinstance(data, dict):
        raise QsError(f"expected a mapping at the top level, got {type(data).__name__}", source=str(path))
    return data


class Fields:
    """Typed, validated access to a nested mapping loaded from ``source``."""

    def __init__(self, data: dict[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> QsError:
        return QsError(message, source=self.source, field=self._name(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = ...) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def section(self, key: str, *, optional: bool = False) -> "Fields | None":
        value = self.raw(key, None if optional else ...)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {value!r}")
        return Fields(value, self.source, f"{self._name(key)}.")

    def string(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected text, got {value!r}")
        if choices is not None and value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def number(self, key: str, default: Any = ..., *, minimum: float | None = 0.0, strict: bool = True) -> float:
        """A finite real number; by default it must be > 0 (``strict``) and >= ``minimum``."""
        value = self.raw(key, default)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value!r}")
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise self.error(key, f"must be {bound}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: Any = ..., *, minimum: int = 1) -> int:
        value = self.raw(key, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {value!r}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {value!r}")
        return value
