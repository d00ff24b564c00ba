"""Fuzzing the command line, config.json and parameter files (hypothesis).

Every run either exits 0 with finite, non-negative numbers, or exits 2 with one line that
names the field; never a traceback, never longer than a few seconds.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qsmoe.cli import main
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, load_params

FIXTURES = Path(__file__).parent / "fixtures"
KEYS = sorted(load_params().values)
#: Seconds one fuzzed run may take.
TIME_LIMIT_S = 5.0
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 1e-308, 1e308, 5e-324, 2**63, 2**64, 0.5, 131072]),
    st.text(max_size=20),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
yaml_texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["[", "{", "&a [*a]", "!!python/object:os.system x", "1e308", "-.inf", ".nan", "[1e300]", "0x7f", "1_000", "~", "''", "2024-13-45"]),
)


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    t0 = time.perf_counter()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    assert time.perf_counter() - t0 < TIME_LIMIT_S, argv
    out, err = capsys.readouterr()
    return code, out, err


def numbers(data) -> list[float]:
    if isinstance(data, bool):
        return []
    if isinstance(data, (int, float)):
        return [data]
    if isinstance(data, dict):
        return [n for v in data.values() for n in numbers(v)]
    if isinstance(data, list):
        return [n for v in data for n in numbers(v)]
    return []


def check(code: int, out: str, err: str, field: str | None = None, *, non_negative: bool = True) -> None:
    assert "Traceback" not in err
    if code == 0:
        found = numbers(json.loads(out))
        assert all(math.isfinite(n) for n in found)
        if non_negative:
            assert all(n >= 0 for n in found), [n for n in found if n < 0][:5]
        return
    assert code == 2, (code, err[:300])
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("qsmoe: error: ") and len(lines[0]) < 600, err[:600]
    if field is not None:
        assert field in lines[0], lines[0]


@FUZZ
@given(key=st.sampled_from(KEYS), text=yaml_texts)
def test_fuzz_set_text(key, text, capsys):
    code, out, err = run(["compare", "--model", "deepseek-v3", "--context", "4k", "--set", f"{key}={text}", "--json"], capsys)
    check(code, out, err, key, non_negative=False)


@FUZZ
@given(key=st.sampled_from(KEYS), value=values)
def test_fuzz_set_value(key, value, capsys):
    text = json.dumps(value, allow_nan=True)  # JSON is YAML flow syntax
    code, out, err = run(["compare", "--model", "deepseek-v3", "--context", "4k", "--set", f"{key}={text}", "--json"], capsys)
    check(code, out, err, None, non_negative=False)


@FUZZ
@given(context=st.one_of(st.text(max_size=12), st.integers(-(10**20), 10**20).map(str), st.sampled_from(["128k", "1M", "1e308", "nan", "-0", "0.5k"])))
def test_fuzz_context_flag(context, capsys):
    code, out, err = run(["decode", "--model", "mixtral-8x7b", "--context", context, "--json"], capsys)
    check(code, out, err, None, non_negative=False)


HF_BASE = json.loads((FIXTURES / "hf_configs" / "qwen3-30b-a3b.json").read_text(encoding="utf-8"))
HF_FIELDS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "intermediate_size", "moe_intermediate_size", "num_experts", "num_experts_per_tok", "decoder_sparse_step", "vocab_size", "max_position_embeddings", "model_type", "hidden_act", "mlp_only_layers", "tie_word_embeddings"]


@FUZZ
@given(changes=st.dictionaries(st.sampled_from(HF_FIELDS), scalars, min_size=1, max_size=3))
def test_fuzz_config_json(changes, tmp_path, capsys):
    data = {**HF_BASE, **changes}
    path = tmp_path / "config.json"
    try:
        path.write_text(json.dumps(data), encoding="utf-8")
    except ValueError:
        return
    code, out, err = run(["model", str(path), "--json"], capsys)
    check(code, out, err, None, non_negative=True)
    if code == 2 and "malformed JSON" not in err and "number out of range" not in err and "is not a number" not in err:
        assert "field '" in err, err  # the changed field or the one it must agree with


@FUZZ
@given(key=st.sampled_from(KEYS), value=values)
def test_fuzz_parameter_file(key, value, tmp_path, capsys):
    data = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    data["name"] = "fuzz"
    data[key] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    code, out, err = run(["compare", "--params", str(path), "--model", "deepseek-v3", "--context", "4k", "--json"], capsys)
    check(code, out, err, None, non_negative=False)


def test_compare_output_numbers_are_non_negative(capsys):
    """The default comparison: the base the fuzzed runs are judged against."""
    code, out, err = run(["compare", "--model", "deepseek-v3", "--context", "4k", "--json"], capsys)
    check(code, out, err, non_negative=True)


@pytest.mark.parametrize(
    "argv",
    [
        ["compare", "--model", "deepseek-v3", "--context", "4k", "--set", "contexts=&a [4096, *a]"],
        ["compare", "--model", "deepseek-v3", "--context", "4k", "--q", "1e308", "--json"],
        ["model", str(FIXTURES / "malformed" / "config-deep.json")],
        ["model", str(FIXTURES / "malformed" / "model-utf16.yaml")],
        ["book", "--out", "/dev/null", "--chapter", "01-double-penalty"],
    ],
)
def test_no_traceback_in_a_real_process(argv):
    proc = subprocess.run([sys.executable, "-m", "qsmoe.cli", *argv], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr[-500:]
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-500:]
