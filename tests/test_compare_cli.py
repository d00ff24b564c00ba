"""JSON output of `qsmoe model`, `qsmoe decode` and `qsmoe compare`, through the real command line."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from qsmoe.cli import main

MODEL_KEYS = {"total_params", "active_params", "s", "kv_bytes_per_token", "components"}
DECODE_KEYS = {"feasible", "reason", "batch", "max_batch", "step_time_s", "tokens_per_s", "tokens_per_s_per_gpu", "bound"}
COMPARE_KEYS = {"moe", "dense", "ratio", "q", "s", "qs", "predicted_disadvantaged"}


def qsmoe(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "qsmoe.cli", *args], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return proc


def qsmoe_json(capsys: pytest.CaptureFixture, *args: str) -> dict:
    """In-process run (a tenth of the time of a fresh interpreter); any exception fails the test."""
    capsys.readouterr()
    assert main([*args, "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return json.loads(out)


def _all_finite(value) -> bool:
    if isinstance(value, dict):
        return all(_all_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_all_finite(v) for v in value)
    return not isinstance(value, float) or math.isfinite(value)


def test_model_json() -> None:
    r = json.loads(qsmoe("model", "deepseek-v3", "--json").stdout)
    assert MODEL_KEYS <= set(r)
    assert r["total_params"] == pytest.approx(671e9, rel=0.01)  # DeepSeek-V3 README
    assert r["kv_bytes_per_token"] == 70272  # arXiv 2505.09343 Table 1
    assert r["s"] == pytest.approx(r["active_params"] / r["total_params"], rel=1e-12)
    assert sum(c["total_params"] for c in r["components"].values()) == pytest.approx(r["total_params"], rel=1e-12)
    assert sum(c["active_params"] for c in r["components"].values()) == pytest.approx(r["active_params"], rel=1e-12)
    assert {"embedding", "lm_head", "attention", "dense_ffn", "routed_experts", "shared_experts", "router", "norms"} == set(r["components"])


def test_model_json_kv_dtype(capsys: pytest.CaptureFixture) -> None:
    assert qsmoe_json(capsys, "model", "llama-3.1-405b")["kv_bytes_per_token"] == 516096
    assert qsmoe_json(capsys, "model", "llama-3.1-405b", "--kv-dtype", "fp8")["kv_bytes_per_token"] == 516096 / 2


def test_decode_json() -> None:
    r = json.loads(qsmoe("decode", "--model", "deepseek-v3", "--context", "128k", "--json").stdout)
    assert DECODE_KEYS <= set(r)
    assert r["context"] == 131072
    assert r["feasible"] is True and r["reason"] is None
    assert r["batch"] == r["max_batch"] > 0
    assert r["tokens_per_s"] == pytest.approx(r["batch"] / r["step_time_s"], rel=1e-12)
    assert r["tokens_per_s_per_gpu"] == pytest.approx(r["tokens_per_s"] / r["gpus"], rel=1e-12)
    assert r["bound"] in ("compute", "weights", "kv", "comm", "overhead")
    assert (r["layout"], r["gpus"], r["hardware"]) == ("ep", 8, "h200")  # the default parameter set


def test_decode_json_batch_too_large(capsys: pytest.CaptureFixture) -> None:
    r = qsmoe_json(capsys, "decode", "--model", "llama-3.1-8b", "--gpus", "1", "--context", "4096", "--batch", "100000")
    assert r["feasible"] is False
    assert "exceeds the largest admissible batch" in r["reason"]
    assert r["max_batch"] < 100000
    assert r["tokens_per_s"] is None and r["step_time_s"] is None and r["bound"] is None
    per_gpu = qsmoe_json(capsys, "decode", "--model", "llama-3.1-8b", "--gpus", "2", "--context", "4096", "--batch-per-gpu", "3")
    assert per_gpu["feasible"] and per_gpu["batch"] == 6


def test_compare_json_deepseek_128k() -> None:
    r = json.loads(qsmoe("compare", "--model", "deepseek-v3", "--context", "131072", "--json").stdout)
    assert COMPARE_KEYS <= set(r)
    assert DECODE_KEYS <= set(r["moe"]) and DECODE_KEYS <= set(r["dense"])
    assert r["moe"]["feasible"] and r["dense"]["feasible"]
    assert r["ratio"] == pytest.approx(r["dense"]["tokens_per_s"] / r["moe"]["tokens_per_s"], rel=1e-12)
    assert r["qs"] == pytest.approx(r["q"] * r["s"], rel=1e-12)
    assert r["dense_params"] == pytest.approx(r["q"] * r["s"] * json.loads(qsmoe("model", "deepseek-v3", "--json").stdout)["total_params"], rel=1e-12)
    assert isinstance(r["predicted_disadvantaged"], bool)
    assert _all_finite(r)


def test_compare_geomean_rule_by_hand(capsys: pytest.CaptureFixture) -> None:
    """Default q rule: dense = sqrt(total * active), so q = sqrt(T/A) and qs = sqrt(s)."""
    m = qsmoe_json(capsys, "model", "deepseek-v3")
    r = qsmoe_json(capsys, "compare", "--model", "deepseek-v3", "--context", "4096")
    assert r["q_rule"] == "geomean"
    assert r["q"] == pytest.approx(math.sqrt(m["total_params"] / m["active_params"]), rel=1e-12)
    assert r["qs"] == pytest.approx(math.sqrt(m["s"]), rel=1e-12)
    explicit = qsmoe_json(capsys, "compare", "--model", "deepseek-v3", "--context", "4096", "--q", "5")
    assert explicit["q"] == 5.0 and explicit["q_rule"] == "explicit"


def test_compare_switch_c_moe_does_not_fit(capsys: pytest.CaptureFixture) -> None:
    """Switch-C (1571B) cannot be held by 8 H200s at fp8; its dense comparator can."""
    r = json.loads(qsmoe("compare", "--model", "switch-c-2048", "--context", "4096", "--gpus", "8", "--json").stdout)
    assert r["gpus"] == 8
    assert r["moe"]["feasible"] is False
    assert r["moe"]["reason"] == "weights alone do not fit in HBM"
    assert r["moe"]["tokens_per_s"] is None and r["moe"]["max_batch"] == 0
    assert r["dense"]["feasible"] is True and r["dense"]["tokens_per_s"] > 0
    assert r["ratio"] is None
    assert r["predicted_disadvantaged"] is True
    assert _all_finite(r)


def test_compare_refuses_a_dense_model(capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["compare", "--model", "llama-3.1-8b", "--context", "4096"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "field 'model'" in err[0] and "'llama-3.1-8b'" in err[0]


@pytest.mark.parametrize(
    "args",
    [
        ("compare", "--model", "deepseek-v3", "--context", "131072", "--json"),
        ("compare", "--model", "switch-c-2048", "--context", "4096", "--gpus", "8", "--json"),
    ],
)
def test_same_command_twice_gives_identical_bytes(args: tuple[str, ...]) -> None:
    first, second = qsmoe(*args), qsmoe(*args)
    assert first.stdout.encode() == second.stdout.encode()
    assert first.stdout.strip()


def test_text_output_is_not_json(capsys: pytest.CaptureFixture) -> None:
    capsys.readouterr()
    assert main(["compare", "--model", "switch-c-2048", "--context", "4096", "--gpus", "8"]) == 0
    out = capsys.readouterr().out
    assert "infeasible" in out and "ratio undefined" in out
