"""Careless and hostile input: every case of tests/fixtures/malformed/cases.csv is refused with
one line naming the field (or the file's problem), exit status 2, within seconds.

Each row is (kind, input, expect): ``input`` is a file of that folder, or for kind ``set`` the
text of one ``--set`` assignment; ``expect`` is text the error line must contain (the field, or
the problem for a file that cannot be read at all). An empty ``expect`` marks a valid input,
which must give exit status 0 and finite output.
"""
from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path

import pytest

from qsmoe.cli import main

FIXTURES = Path(__file__).parent / "fixtures" / "malformed"
CASES = list(csv.DictReader((FIXTURES / "cases.csv").open(encoding="utf-8", newline="")))
#: Seconds one refused input may take (the slowest valid compare takes well under one).
TIME_LIMIT_S = 5.0


def command(kind: str, text: str) -> list[str]:
    """The command line that feeds one case to the CLI."""
    path = str(FIXTURES / text)
    return {
        "model": ["model", path, "--json"],
        "config": ["model", path, "--json"],
        "hardware": ["decode", "--model", "mixtral-8x7b", "--context", "4k", "--hardware", path, "--json"],
        "params": ["compare", "--params", path, "--model", "deepseek-v3", "--context", "4k", "--json"],
        "csv": ["validate", "--measurements", path, "--json"],
        "set": ["compare", "--model", "deepseek-v3", "--context", "4k", "--set", text, "--json"],
    }[kind]


def run_cli(argv: list[str], capsys) -> tuple[int, str, str, float]:
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refusals
        code = exc.code
    elapsed = time.perf_counter() - t0
    out, err = capsys.readouterr()
    return code, out, err, elapsed


def assert_finite_json(text: str) -> None:
    def walk(value):
        if isinstance(value, float):
            assert math.isfinite(value), text[:200]
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(text))


def test_the_table_has_at_least_150_cases():
    assert len(CASES) >= 150
    files = {c["input"] for c in CASES if c["kind"] != "set"}
    assert files <= {p.name for p in FIXTURES.iterdir()}, "a case names a missing fixture"
    assert {p.name for p in FIXTURES.iterdir()} - files == {"cases.csv", "README.md"}, "a fixture no case uses"


@pytest.mark.parametrize("case", CASES, ids=[f"{c['kind']}:{c['input'][:40]}" for c in CASES])
def test_malformed_input_gives_one_line(case, capsys):
    code, out, err, elapsed = run_cli(command(case["kind"], case["input"]), capsys)
    assert elapsed < TIME_LIMIT_S, f"took {elapsed:.1f} s"
    assert "Traceback" not in err
    if not case["expect"]:
        assert code == 0, err
        assert_finite_json(out)
        return
    assert code == 2, f"exit {code}: {out[:200]} {err[:200]}"
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[:500]
    assert lines[0].startswith("qsmoe: error: ")
    assert len(lines[0]) < 600, "the error line quotes too much"
    assert case["expect"].lower() in lines[0].lower(), lines[0]
    assert out == ""


def test_a_100000_deep_json_is_refused(tmp_path, capsys):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000, encoding="utf-8")
    code, _, err, elapsed = run_cli(["model", str(path)], capsys)
    assert code == 2 and "nested more than" in err and elapsed < TIME_LIMIT_S


def test_a_csv_field_over_the_csv_limit_is_refused(tmp_path, capsys):
    header = (FIXTURES.parents[2] / "data" / "measured" / "measurements.csv").read_text(encoding="utf-8").splitlines()[0]
    path = tmp_path / "big.csv"
    path.write_text(header + "\n" + '"' + "x" * 200_000 + '"\n', encoding="utf-8")
    code, _, err, _ = run_cli(["validate", "--measurements", str(path)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1


def test_an_alias_bomb_in_set_gives_a_short_line_quickly(capsys):
    bomb = "[" + ",".join(["&a0 [x,x,x,x,x,x,x,x,x,x]"] + ["&a%d [%s]" % (i, ",".join(["*a%d" % (i - 1)] * 10)) for i in range(1, 9)]) + "]"
    code, _, err, elapsed = run_cli(["compare", "--model", "deepseek-v3", "--context", "4k", "--set", f"contexts={bomb}"], capsys)
    assert code == 2 and elapsed < 2.0 and len(err) < 600


@pytest.mark.parametrize(
    "argv, field",
    [
        (["book", "--out", "{file}", "--chapter", "01-double-penalty"], "--out"),
        (["book", "--out", "/dev/null", "--chapter", "01-double-penalty"], "--out"),
        (["book", "--out", "/proc/no/such/dir", "--chapter", "01-double-penalty"], "--out"),
    ],
)
def test_bad_out_folder(argv, field, tmp_path, capsys):
    file = tmp_path / "a-file"
    file.write_text("x", encoding="utf-8")
    code, _, err, _ = run_cli([a.replace("{file}", str(file)) for a in argv], capsys)
    assert code == 2 and field in err and len(err.strip().splitlines()) == 1


def test_nan_in_the_output_is_refused_with_its_field(capsys):
    """The output guard: a non-finite number anywhere in a result is refused, naming its field,
    and nothing is printed (the inputs' bounds keep the commands from producing one today)."""
    from qsmoe.cli.common import emit
    from qsmoe.errors import QsError

    for data, field in (({"moe": {"tokens_per_s": float("nan")}}, "moe.tokens_per_s"), ([{"ratio": 1.0}, {"ratio": float("inf")}], "[1].ratio")):
        with pytest.raises(QsError) as err:
            emit(data, True, "text")
        assert "not a finite number" in str(err.value) and field in str(err.value)
    assert capsys.readouterr().out == ""


def test_a_q_that_would_overflow_is_refused_at_input(capsys):
    """compare --q 1e308 once overflowed the dense model's size; --q is now checked as q_explicit."""
    code, out, err, _ = run_cli(["compare", "--model", "deepseek-v3", "--context", "4k", "--q", "1e308", "--json"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("qsmoe: error: --q") and "q_explicit" in err and len(err.strip().splitlines()) == 1


def test_no_runtime_warning_is_printed(capsys):
    code, _, err, _ = run_cli(["compare", "--model", "deepseek-v3", "--context", "4k", "--q", "1e308"], capsys)
    assert code == 2 and "RuntimeWarning" not in err and len(err.strip().splitlines()) == 1
