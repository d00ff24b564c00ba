"""Shared pieces of the command line: argument types, the one-line-error parser, output."""
from __future__ import annotations

import argparse
import json
from typing import Any, NoReturn

#: How every error line of the command line starts.
ERROR_PREFIX = "qsmoe: error: "
MAX_CONTEXT_TOKENS = 1 << 30  # a billion tokens: far beyond any model's window


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


def emit(data: Any, as_json: bool, text: str) -> None:
    """Print ``data`` as sorted, indented JSON, or the human-readable ``text``."""
    print(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) if as_json else text)
