"""``qsmoe book``: execute the chapters with one parameter set and build the HTML book."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qsmoe.book.build import build_book
from qsmoe.errors import QsError
from qsmoe.scenario.params import resolve


def add_book_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``qsmoe book`` on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "book",
        help="execute the chapters with a parameter set and build the HTML book",
        description="Execute every chapter with one parameter set and build the book into <out>/<set>/html/.",
    )
    parser.add_argument("--params", metavar="FILE", help="parameter file (default: data/params/default.yaml)")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides",
        help="override one parameter (YAML value); repeatable",
    )
    parser.add_argument(
        "--chapter", metavar="NAME", action="append", dest="chapters",
        help="execute only this chapter (repeatable); others keep their last executed version",
    )
    parser.add_argument("--out", metavar="DIR", default="_build", help="output root (default: _build)")
    parser.add_argument("--jobs", metavar="N", type=int, default=2, help="chapters executed in parallel (default: 2)")
    parser.set_defaults(func=run_book)
    return parser


def run_book(args: argparse.Namespace) -> int:
    """Run ``qsmoe book``; prints the HTML folder, returns the exit status."""
    try:
        if args.jobs < 1:
            raise QsError(f"must be >= 1, got {args.jobs}", source="--jobs")
        params = resolve(args.params, args.overrides)
        html = build_book(params, Path(args.out), chapters=args.chapters, jobs=args.jobs)
    except QsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    print(html)
    return 0
