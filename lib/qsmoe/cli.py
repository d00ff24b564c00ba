"""The ``qsmoe`` command line: accounting, decode, compare, serve, bench and the book.

Bad input exits with status 2 and one line naming the flag or field and the value.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

from . import __version__
from .errors import QsError


MAX_CONTEXT_TOKENS = 1 << 30  # a billion tokens: far beyond any model's window


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qsmoe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"qsmoe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    from .bench import add_bench_parser
    from .book import add_book_parser
    from .commands import add_model_parsers, add_performance_parsers
    from .validation import add_validation_parsers

    add_model_parsers(subparsers)
    add_performance_parsers(subparsers)
    add_bench_parser(subparsers)
    add_validation_parsers(subparsers)
    add_book_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return args.func(args)
    except QsError as err:
        print(f"qsmoe: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
