"""Tests for qsmoe.physics.serve (end-to-end static batches) and the serve command line.

The measurements, their prediction and the calibration: tests/test_measurements.py and tests/test_calibration.py."""
from __future__ import annotations

import argparse
import json
from dataclasses import replace

import numpy as np
import pytest

from qsmoe import cli
from qsmoe.scenario.compare import deployment_from
from qsmoe.physics.decode import decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.errors import QsError
from qsmoe.specs.hardware import HardwareSpec
from qsmoe.specs.models import load_model
from qsmoe.scenario.params import resolve
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.physics.serve import comm_time_s, prefill_time, serve
from qsmoe.cli import validation as cli_validation

# --------------------------------------------------------------------------- fixtures

#: A toy dense model: 1e9 resident parameters (0.1e9 of them the input embedding).
TOY = DecodeProfile(
    name="toy",
    total_params=1e9,
    active_params=1e9,
    resident_routed_params=0.0,
    resident_other_params=1e9,
    resident_attention_params=4e8,
    proj_params=2e8,
    dense_ffn_params=7e8,
    shared_params=0.0,
    head_params=1e8,
    embedding_params=1e8,
    routed_params=0.0,
    n_experts=1,
    top_k=1,
    kv_values_per_token=1000.0,
    attn_flops_per_context_token=2000.0,
    prefill_attn_flops_per_context_token=2000.0,
    kv_head_split=8,
    d_model=1000.0,
    n_blocks=10,
    allreduces_per_step=20,
    moe_layers=0,
)
TOY_HW = HardwareSpec(id="toy", name="toy", vendor="test", hbm_bytes=100e9, hbm_bandwidth_bytes_per_s=1e12, peak_flops_per_s={"bf16": 1e14, "fp8": 2e14}, link_bytes_per_s=1e11, domain_size=8)


def toy_dep(**changes: object) -> Deployment:
    """The toy served as one static batch on the bare (hard, softness 0) roofline (no floors or latencies)."""
    base = dict(hardware=TOY_HW, gpus=1, layout="tp", weight_dtype="bf16", kv_dtype="bf16", mem_efficiency=1.0, compute_efficiency=1.0, step_overhead_s=0.0,
                kernel_floor_s=0.0, kernel_launch_s=0.0, allreduce_latency_s=0.0, alltoall_latency_s=0.0, attention_mem_efficiency=1.0, grouped_gemm_efficiency=1.0, grouped_gemm_block_m=1,
                roofline_softness=0.0, batching="static")
    base.update(changes)
    return Deployment(**base)


@pytest.fixture(scope="module")
def values() -> dict:
    return dict(resolve().values)


# --------------------------------------------------------------------------- serve


def test_serve_one_output_token_is_the_prefill_alone() -> None:
    """C=2 prompts of I=100 tokens, O=1, by hand (1 GPU, peaks 1e14 bf16, 1 TB/s, all efficiencies 1):
    matmuls 2*(200*(2e8 + 7e8) + 2*1e8) = 3.604e11 FLOPs -> 3.604 ms > weights 2e9 B -> 2 ms;
    attention 2 * 2000 * 100*101/2 FLOPs -> 0.2 us < KV written 200*1000*2 B -> 0.4 us."""
    r = serve(TOY, toy_dep(), 100, 1, 2)
    prefill = 3.604e-3 + 4e-7
    assert r["feasible"] and r["reason"] is None and r["concurrency"] == 2
    assert r["prefill_time_s"] == pytest.approx(prefill, rel=1e-12)
    assert r["decode_time_s"] == 0.0
    assert r["output_tokens_per_s"] == pytest.approx(2 * 1 / prefill, rel=1e-12)
    assert r["bound"] == "prefill"


def test_serve_two_output_tokens_add_one_decode_step_at_context_i_plus_one() -> None:
    """O=2: prefill emits token 1, one decode step (context I + O/2 = 101) emits token 2.
    The step, by hand: weights (2e8 + 1e8 + 7e8) * 2 B -> 2 ms; KV 2 * 1000 * 2 B * 101 -> 0.404 us."""
    r = serve(TOY, toy_dep(), 100, 2, 2)
    step = 2e-3 + 4.04e-7
    assert r["decode_context"] == 101.0
    assert r["decode_step_time_s"] == pytest.approx(step, rel=1e-12)
    assert r["decode_step_time_s"] == pytest.approx(float(step_time(TOY, toy_dep(), 101, 2).total_s), rel=1e-12)
    total = 3.604e-3 + 4e-7 + step
    assert r["output_tokens_per_s"] == pytest.approx(2 * 2 / total, rel=1e-12)
    assert r["output_tokens_per_s_per_gpu"] == r["output_tokens_per_s"]
    with_overhead = serve(TOY, toy_dep(step_overhead_s=1e-3), 100, 2, 2)  # one prefill pass + one step
    assert with_overhead["prefill_time_s"] + with_overhead["decode_time_s"] == pytest.approx(total + 2e-3, rel=1e-12)


def test_mean_decode_step_equals_the_step_at_the_mean_context(values) -> None:
    """The step time is affine in the context, so the average of steps j = 1..O-1 (context I + j)
    is the step at I + O/2, as serve() assumes (checked on a real MoE and dense model)."""
    for model, layout in (("deepseek-v3", "ep"), ("llama-3.1-70b", "tp"), ("mixtral-8x7b", "tp")):
        p = profile_of(load_model(model))
        dep = deployment_from(dict(values, batching="static"), layout)
        i, o, c = 1000, 64, 32
        steps = step_time(p, dep, i + np.arange(1, o), c).total_s
        r = serve(p, dep, i, o, c)
        assert r["decode_time_s"] == pytest.approx(float(steps.sum()), rel=1e-9)


def test_serve_default_concurrency_is_the_largest_batch_at_the_final_context(values) -> None:
    p = profile_of(load_model("llama-3.1-70b"))
    dep = deployment_from(dict(values, batching="static"), "tp")
    r = serve(p, dep, 2048, 2048)
    assert r["feasible"] and r["concurrency"] == r["max_concurrency"] == int(decode(p, dep, 4096).max_batch)
    over = serve(p, dep, 2048, 2048, r["max_concurrency"] + 1)
    assert not over["feasible"] and "exceeds" in over["reason"] and over["output_tokens_per_s"] is None
    forced = serve(p, dep, 2048, 2048, r["max_concurrency"] + 1, enforce_budget=False)
    assert forced["feasible"] and forced["output_tokens_per_s"] > 0


def test_serve_broadcasts_and_rejects_bad_input() -> None:
    arr = serve(TOY, toy_dep(), np.array([100, 100]), np.array([1, 2]), 2)
    assert arr["output_tokens_per_s"][0] == pytest.approx(serve(TOY, toy_dep(), 100, 1, 2)["output_tokens_per_s"])
    assert arr["output_tokens_per_s"][1] == pytest.approx(serve(TOY, toy_dep(), 100, 2, 2)["output_tokens_per_s"])
    for kwargs, name in ((dict(input_len=0), "input_len"), (dict(output_len=1.5), "output_len"), (dict(concurrency=0), "concurrency"), (dict(input_len=float("nan")), "input_len"), (dict(output_len="x"), "output_len")):
        args = dict(input_len=100, output_len=10, concurrency=2) | kwargs
        with pytest.raises(QsError, match=name):
            serve(TOY, toy_dep(), **args)


def test_weights_that_do_not_fit_make_serve_infeasible() -> None:
    big = replace(TOY, resident_other_params=1e12)
    r = serve(big, toy_dep(), 100, 10)
    assert not r["feasible"] and r["reason"] == "weights alone do not fit in HBM" and r["output_tokens_per_s_per_gpu"] is None


@pytest.mark.parametrize("model,layout,gpus", [("deepseek-v3", "ep", 8), ("deepseek-v3", "ep", 64), ("deepseek-v3", "tp", 8), ("llama-3.1-70b", "tp", 4), ("llama-3.1-70b", "dp-tp", 8)])
def test_prefill_comm_uses_the_decode_step_volume(values, model, layout, gpus) -> None:
    """serve.comm_time_s duplicates decode.step_time's link term: keep them equal."""
    p = profile_of(load_model(model))
    dep = deployment_from(dict(values, gpus=gpus), layout)
    b = np.array([1.0, 64.0, 4096.0])
    assert np.allclose(comm_time_s(p, dep, b), step_time(p, dep, 1000.0, b).comm_s, rtol=1e-12, atol=0)
    assert np.all(prefill_time(p, dep, 1000, 4).comm_s == comm_time_s(p, dep, 4000.0))


# --------------------------------------------------------------------------- command line


def run_cli(argv: list[str], monkeypatch) -> int:
    """cli.main with the serve/validate subcommands registered (whether or not cli does it yet)."""
    original = cli.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        if "validate" not in sub.choices:
            cli_validation.add_validation_parsers(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build)
    return cli.main(argv)


def test_cli_serve_json(monkeypatch, capsys) -> None:
    rc = run_cli(["serve", "--model", "llama-3.1-8b", "--hardware", "h200", "--gpus", "1", "--input-len", "32", "--output-len", "128", "--concurrency", "8", "--weight-dtype", "bf16", "--batching", "static", "--json"], monkeypatch)
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("feasible", "reason", "concurrency", "prefill_time_s", "decode_time_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "bound"):
        assert key in out
    assert out["feasible"] and out["concurrency"] == 8 and out["layout"] == "tp"
    assert out["output_tokens_per_s"] == pytest.approx(8 * 128 / (out["prefill_time_s"] + out["decode_time_s"]))


def test_cli_serve_text_and_infeasible(monkeypatch, capsys) -> None:
    assert run_cli(["serve", "--model", "deepseek-v3", "--hardware", "h200", "--gpus", "8", "--input-len", "1024", "--output-len", "1024"], monkeypatch) == 0
    assert "output tok/s" in capsys.readouterr().out
    assert run_cli(["serve", "--model", "llama-3.1-405b", "--hardware", "a100-sxm-80gb", "--gpus", "1", "--input-len", "10", "--output-len", "10"], monkeypatch) == 0
    assert "infeasible: weights alone do not fit" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["--input-len", "0", "--output-len", "5"], "--input-len"),
        (["--input-len", "5", "--output-len", "x"], "--output-len"),
        (["--input-len", "5", "--output-len", "5", "--concurrency", "-1"], "--concurrency"),
        (["--input-len", "5", "--output-len", "5", "--model", "nope"], "unknown model 'nope'"),
        (["--input-len", "5", "--output-len", "5", "--hardware", "nope"], "unknown hardware 'nope'"),
    ],
)
def test_cli_serve_bad_input_exits_2_with_one_line(monkeypatch, capsys, argv, fragment) -> None:
    base = ["serve", "--model", "llama-3.1-8b", "--hardware", "h200", "--gpus", "1"]
    try:
        rc = run_cli(base + argv, monkeypatch)
    except SystemExit as exc:  # argparse rejects the flag
        rc = exc.code
    assert rc == 2
    err = capsys.readouterr().err
    assert fragment in err and err.count("\n") == 1
