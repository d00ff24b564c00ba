"""Run the command line inside this process and capture what it prints (for the book's rerun chapter)."""
from __future__ import annotations

import contextlib
import io
import re
import sys
from typing import Sequence

from qsmoe.cli import main


def run_cli(args: Sequence[str]) -> tuple[int, str]:
    """Run ``qsmoe ARGS`` in this process; returns (exit status, stdout and stderr text)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse exits on bad flags and --help
            if exc.code is not None and not isinstance(exc.code, int):
                print(exc.code, file=sys.stderr)
            code = exc.code if isinstance(exc.code, int) or exc.code is None else 1
    return int(code or 0), buf.getvalue().rstrip("\n")


def console_block(command: str, output: str) -> str:
    """A MyST console block showing ``$ command`` and its output."""
    fence = "`" * max(3, max((len(m) for m in re.findall(r"`+", output)), default=0) + 1)
    return f"{fence}console\n$ {command}\n{output}\n{fence}\n"
