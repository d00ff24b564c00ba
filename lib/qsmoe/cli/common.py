"""Shared pieces of the command line: argument types, the one-line-error parser, output."""
from __future__ import annotations

import argparse
import json
import math
from typing import Any, NoReturn

from qsmoe.errors import QsError
from qsmoe.specs.limits import MAX_CONTEXT_TOKENS

#: How every error line of the command line starts.
ERROR_PREFIX = "qsmoe: error: "


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.split(" ", 1)[1] + ": " if " " in self.prog else ""
        self.exit(2, f"{ERROR_PREFIX}{command}{message}\n")


def parse_tokens(text: str) -> int:
    """A token count such as 131072, 128k or 1M; must be >= 0."""
    raw = text.strip().lower()
    scale = {"k": 1024, "m": 1024 * 1024}.get(raw[-1:], 1)
    digits = raw[:-1] if scale > 1 else raw
    try:
        number = float(digits) * scale
        value = int(number)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"expected a whole token count such as 131072 or 128k, got {text!r}") from None
    if number != value:
        raise argparse.ArgumentTypeError(f"expected a whole token count, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    if value > MAX_CONTEXT_TOKENS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_CONTEXT_TOKENS} tokens, got {text!r}")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def non_finite_field(data: Any, path: str = "") -> str | None:
    """The dotted path (``moe.tokens_per_s``, ``rows[3].error``) of the first NaN or infinite
    number in ``data``; None when every number is finite."""
    if isinstance(data, float):
        return None if math.isfinite(data) else (path or "result")
    if isinstance(data, dict):
        items = ((f"{path}.{key}" if path else str(key), value) for key, value in data.items())
    elif isinstance(data, (list, tuple)):
        items = ((f"{path}[{index}]", value) for index, value in enumerate(data))
    else:
        return None
    for where, value in items:
        found = non_finite_field(value, where)
        if found is not None:
            return found
    return None


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as sorted, indented JSON, or the human-readable ``text``.

    The one guard on every command's output: a NaN or infinite number anywhere in ``data``
    is refused with an error naming its field, and nothing is printed."""
    where = non_finite_field(data)
    if where is not None:
        raise QsError("the result is not a finite number: an input lies outside the range the model describes", source="result", field=where)
    print(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) if as_json else text)
