"""``qsmoe book``: execute the chapters with one parameter set and build the HTML book."""
from __future__ import annotations

import argparse
from pathlib import Path

from qsmoe.book.build import build_book
from qsmoe.errors import QsError
from qsmoe.cli.flags import add_parameter_flags, parameter_set


def add_book_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``qsmoe book`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "book",
        help="execute the chapters with a parameter set and build the HTML book",
        description="Execute every chapter with one parameter set and build the book into <out>/<set>/html/.",
    )
    parser.add_argument(
        "--chapter", metavar="NAME", action="append", dest="chapters",
        help="execute only this chapter (repeatable); others keep their last executed version",
    )
    parser.add_argument("--out", metavar="DIR", default="_build", help="output root (default: _build)")
    parser.add_argument("--jobs", metavar="N", type=int, default=2, help="chapters executed in parallel (default: 2)")
    add_parameter_flags(parser)
    parser.set_defaults(func=run_book)
    return parser


def run_book(args: argparse.Namespace) -> int:
    """Run ``qsmoe book``: build, then print the HTML folder."""
    if args.jobs < 1:
        raise QsError(f"must be >= 1, got {args.jobs}", source="--jobs")
    print(build_book(parameter_set(args), Path(args.out), chapters=args.chapters, jobs=args.jobs))
    return 0
