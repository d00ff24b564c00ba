"""Every parameter-set key is a flag of the same name on every command that evaluates the model."""
from __future__ import annotations

import json

import pytest

from qsmoe.cli import build_parser, main
from qsmoe.cli.flags import ALIASES, flag_name, reference_defaults
from qsmoe.specs.hardware import available_hardware, hardware_aliases, load_hardware

COMMANDS = ("decode", "compare", "serve", "validate", "holdout", "bench", "book")


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_parameter_is_a_flag(command: str) -> None:
    text = _help(command)
    for key in reference_defaults():
        assert flag_name(key) in text, (command, key)
    assert "--set KEY=VALUE" in text and "--params FILE" in text


@pytest.mark.parametrize("command", ("decode", "compare", "serve"))
def test_old_short_flags_still_listed(command: str) -> None:
    text = _help(command)
    for alias in ALIASES:
        assert alias in text


def _json(capsys: pytest.CaptureFixture, *argv: str) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_flag_set_and_alias_agree(capsys: pytest.CaptureFixture) -> None:
    base = ["compare", "--model", "deepseek-v3", "--context", "32k"]
    by_flag = _json(capsys, *base, "--reserve-fraction", "0.2", "--moe-layout", "tp", "--routing-skew", "0.5")
    by_set = _json(capsys, *base, "--set", "reserve_fraction=0.2", "--set", "moe_layout=tp", "--set", "routing_skew=0.5")
    by_alias = _json(capsys, *base, "--reserve", "0.2", "--layout", "tp", "--skew", "0.5")
    assert by_flag == by_set == by_alias
    default = _json(capsys, *base)
    assert default["moe_layout"] == "ep" and by_flag["moe_layout"] == "tp"
    assert default["ratio"] != by_flag["ratio"]


def test_flag_wins_over_set(capsys: pytest.CaptureFixture) -> None:
    r = _json(capsys, "decode", "--model", "llama-3.1-8b", "--context", "4k", "--set", "gpus=4", "--gpus", "2")
    assert r["gpus"] == 2


def test_efficiency_flags_change_the_result(capsys: pytest.CaptureFixture) -> None:
    base = ["decode", "--model", "llama-3.1-70b", "--context", "8k", "--batch", "1"]
    slow = _json(capsys, *base, "--mem-efficiency-nvidia", "0.4")
    fast = _json(capsys, *base, "--mem-efficiency-nvidia", "0.8")
    assert slow["tokens_per_s"] < fast["tokens_per_s"]


def test_bad_flag_value_names_the_flag(capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", "--model", "llama-3.1-8b", "--input-len", "8", "--output-len", "8", "--reserve-fraction", "1.5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qsmoe: error: --reserve-fraction") and "1.5" in err[0]


def test_one_error_prefix(capsys: pytest.CaptureFixture) -> None:
    for argv in (["decode", "--model", "deepseek-v3"], ["book", "--jobs", "0"], ["compare", "--model", "nope", "--context", "1"]):
        with pytest.raises(SystemExit) if argv[0] == "decode" else _nothing():
            main(argv)
        assert capsys.readouterr().err.startswith("qsmoe: error: ")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_hardware_aliases_resolve_and_are_listed(capsys: pytest.CaptureFixture) -> None:
    aliases = hardware_aliases()
    assert aliases["h100"] == "h100-sxm" and aliases["a100"] == "a100-sxm-80gb"
    assert not set(aliases) & set(available_hardware())
    for alias, hardware_id in aliases.items():
        assert load_hardware(alias).id == hardware_id
    listing = _json(capsys, "hardware")
    assert {"h100"} <= set(next(r for r in listing if r["id"] == "h100-sxm")["aliases"])
    r = _json(capsys, "decode", "--model", "llama-3.1-8b", "--context", "4k", "--hardware", "h100", "--gpus", "1")
    assert r["hardware"] == "h100-sxm"


def test_q_is_checked_as_q_explicit(capsys: pytest.CaptureFixture) -> None:
    assert main(["compare", "--model", "deepseek-v3", "--context", "4k", "--q", "1e308"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qsmoe: error: --q:") and "q_explicit" in err and "\n" not in err
    by_q = _json(capsys, "compare", "--model", "deepseek-v3", "--context", "4k", "--q", "8")
    by_keys = _json(capsys, "compare", "--model", "deepseek-v3", "--context", "4k", "--q-rule", "explicit", "--q-explicit", "8")
    assert by_q == by_keys and by_q["q"] == 8.0
