"""The ``qsmoe`` command line: accounting, decode, compare, serve, bench and the book.

Bad input exits with status 2 and one line naming the flag or field and the value.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings

from qsmoe import __version__
from qsmoe.errors import QsError
from qsmoe.cli.bench import add_bench_parser
from qsmoe.cli.book import add_book_parser
from qsmoe.cli.commands import add_model_parsers, add_performance_parsers
from qsmoe.cli.frontier import add_economics_parsers
from qsmoe.cli.common import ERROR_PREFIX, _Parser
from qsmoe.cli.validation import add_validation_parsers


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="qsmoe", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"qsmoe {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    add_model_parsers(subparsers)
    add_performance_parsers(subparsers)
    add_economics_parsers(subparsers)
    add_bench_parser(subparsers)
    add_validation_parsers(subparsers)
    add_book_parser(subparsers)
    return parser


#: Characters of an error line printed (a value quoted in full could be megabytes).
MAX_ERROR_CHARS = 400


def main(argv: list[str] | None = None) -> int:
    """Run one command; a QsError becomes one line on stderr and exit status 2.

    NumPy's RuntimeWarnings are not printed: an overflow they announce reaches the output
    as a non-finite number, which :func:`qsmoe.cli.common.emit` refuses with a named field."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return args.func(args)
    except QsError as err:
        line = " ".join(str(err).split())
        if len(line) > MAX_ERROR_CHARS:
            line = line[:MAX_ERROR_CHARS] + "..."
        print(f"{ERROR_PREFIX}{line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{ERROR_PREFIX}interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
