"""Serving economics: frontier validity, disaggregated pools, cost, plans, and the two commands."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsmoe.errors import QsError
from qsmoe.physics import disagg, frontier as fr
from qsmoe.physics.accounting import kv_bytes_per_token
from qsmoe.physics.decode import decode
from qsmoe.physics.memory import hbm_budget
from qsmoe.physics.plan import KvTransfer, Pool, ServingPlan
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import prefill_time, serve
from qsmoe.scenario import economics as ec
from qsmoe.scenario.compare import compare, deployment_from, scenario
from qsmoe.scenario.params import resolve
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

SMALL = dict(gpu_counts=(1, 2, 4, 8, 16), weight_formats=("fp8",), kv_formats=("bf16",))
WORKLOAD = fr.Workload(input_len=4096, output_len=1024)


@pytest.fixture(scope="module")
def values():
    return dict(resolve(None).values)


@pytest.fixture(scope="module")
def small_frontiers(values):
    return ec.frontiers(values, "deepseek-v3", WORKLOAD, **SMALL)


# --------------------------------------------------------------------------- the frontier


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 30), st.integers(1, 30)), min_size=1, max_size=40))
def test_pareto_matches_brute_force(pairs):
    u = np.array([p[0] for p in pairs], float)
    t = np.array([p[1] for p in pairs], float)
    kept = fr.pareto(u, t)
    dominated = {i for i in range(len(u)) for j in range(len(u)) if u[j] >= u[i] and t[j] >= t[i] and (u[j], t[j]) != (u[i], t[i])}
    survivors = {(u[i], t[i]) for i in range(len(u)) if i not in dominated}
    assert {(u[i], t[i]) for i in kept} == survivors
    assert len(kept) == len(survivors)  # one point per surviving (speed, throughput)
    assert np.all(np.diff(u[kept]) > 0) and np.all(np.diff(t[kept]) < 0)


def test_attainable_is_the_best_at_least_as_fast():
    u, t = np.array([1.0, 5.0, 10.0]), np.array([30.0, 20.0, 10.0])
    assert fr.attainable(u, t, [0.5, 1.0, 1.01, 5.0, 9.0, 10.0, 10.5]).tolist() == [30.0, 30.0, 20.0, 20.0, 10.0, 10.0, 0.0]


@pytest.mark.parametrize("side", ["moe", "dense"])
def test_frontier_is_pareto_valid(small_frontiers, side):
    pts = small_frontiers[side]
    assert len(pts) >= 3
    user = np.array([p["tokens_per_s_per_user"] for p in pts])
    gpu = np.array([p["tokens_per_s_per_gpu"] for p in pts])
    assert np.all(np.diff(user) > 0), "speed per user must rise along the frontier"
    assert np.all(np.diff(gpu) < 0), "throughput per GPU must fall as speed per user rises"
    for p in pts:
        assert p["tpot_s"] == pytest.approx(1.0 / p["tokens_per_s_per_user"], rel=1e-12)
        assert p["batch"] >= 1 and p["gpus"] >= 1


def test_no_evaluated_deployment_dominates_the_frontier(values):
    sc = scenario(values, "deepseek-v3")
    ev = fr.evaluate(sc.moe, WORKLOAD, ec.search_for(values, ("tp", "ep"), **SMALL))
    pts = fr.points(ev)
    idx = fr.pareto(pts["tokens_per_s_per_user"], pts["tokens_per_s_per_gpu"])
    for i in idx:
        better = (pts["tokens_per_s_per_user"] >= pts["tokens_per_s_per_user"][i]) & (pts["tokens_per_s_per_gpu"] > pts["tokens_per_s_per_gpu"][i])
        assert not better.any()


def test_decode_only_frontier_reaches_the_reference_deployment(values):
    """The parameter set's own deployment is in the grid, so the frontier's best throughput per
    GPU is at least what compare() finds for it at the largest batch."""
    ctx = 32768
    sc = scenario(values, "deepseek-v3")
    ref = compare(sc, ctx).record()
    r = ec.frontiers(values, "deepseek-v3", fr.Workload(context=ctx), gpu_counts=(values["gpus"],), weight_formats=(values["weight_dtype"],), kv_formats=(values["kv_dtype"],))
    assert max(p["tokens_per_s_per_gpu"] for p in r["moe"]) >= ref["moe"]["tokens_per_s_per_gpu"] * (1 - 1e-12)
    assert max(p["tokens_per_s_per_gpu"] for p in r["dense"]) >= ref["dense"]["tokens_per_s_per_gpu"] * (1 - 1e-12)
    assert all(p["ttft_s"] is None and not p["disaggregated"] for p in r["moe"] + r["dense"])


def test_aggregated_point_is_the_serve_model(values):
    """An aggregated frontier point re-evaluated with serve(): same TPOT, TTFT and tokens/s per GPU."""
    r = ec.frontiers(values, "deepseek-v3", WORKLOAD, gpu_counts=(8,), weight_formats=("fp8",), kv_formats=("bf16",), ttft_limit_s=None)
    sc = scenario(values, "deepseek-v3")
    ev = fr.evaluate(sc.moe, WORKLOAD, ec.search_for(values, ("ep",), gpu_counts=(8,), weight_formats=("fp8",), kv_formats=("bf16",)))
    a = ev.aggregated
    i = len(a) // 2
    dep = deployment_from(values, "ep")
    s = serve(sc.moe, dep, 4096, 1024, int(a["batch"][i]))
    assert s["decode_step_time_s"] == pytest.approx(a["tpot_s"][i], rel=1e-12)
    assert s["prefill_time_s"] == pytest.approx(a["ttft_s"][i], rel=1e-12)
    assert s["output_tokens_per_s_per_gpu"] == pytest.approx(a["tokens_per_s_per_gpu"][i], rel=1e-12)
    assert r["moe"]


def test_ratio_is_none_where_a_side_cannot_reach_the_speed(small_frontiers):
    ratios = ec.ratio_at((np.array([10.0, 20.0]), np.array([5.0, 4.0])), (np.array([10.0, 50.0]), np.array([8.0, 2.0])), [15.0, 30.0])
    assert ratios[0] == pytest.approx(2.0 / 4.0) and math.isnan(ratios[1])
    for key, r in small_frontiers["ratio_at_tokens_per_s_per_user"].items():
        fastest = min(small_frontiers[s][-1]["tokens_per_s_per_user"] for s in ("moe", "dense"))
        assert (r is None) == (float(key) > fastest)


def test_crossovers_flip_the_cheaper_side():
    moe = (np.array([10.0, 20.0, 30.0]), np.array([9.0, 6.0, 1.0]))
    dense = (np.array([10.0, 20.0, 30.0]), np.array([5.0, 7.0, 3.0]))
    c = ec.crossovers(moe, dense)
    assert [x["cheaper_above"] for x in c] == ["dense"] and c[0]["tokens_per_s_per_user"] == 10.0


def test_search_counts_enough_deployments(values):
    """The full grid evaluates at least 1e5 deployments (a count; the timing is `qsmoe frontier --bench`)."""
    sc = scenario(values, "deepseek-v3")
    n = sum(fr.evaluate(p, WORKLOAD, ec.search_for(values, lay)).deployments_evaluated for p, lay in ((sc.moe, ("tp", "ep", "dp-tp")), (sc.dense, ec.DENSE_LAYOUTS)))
    assert n >= 100_000


# --------------------------------------------------------------------------- disaggregation


def test_kv_transfer_bytes_per_request(values):
    spec = load_model("deepseek-v3")
    dep = deployment_from(values, "ep").with_changes(kv_dtype="fp8")
    assert float(disagg.kv_bytes_per_request(profile_of(spec), dep, 4096)) == pytest.approx(kv_bytes_per_token(spec, "fp8") * 4096)
    t = disagg.kv_transfer_time_s(profile_of(spec), dep, 4096, np.array([1.0, 8.0, 9.0]))
    per = kv_bytes_per_token(spec, "fp8") * 4096 / (dep.hardware.scaleout_bytes_per_s * dep.link_efficiency)
    assert t.tolist() == pytest.approx([per, per, 2 * per])  # 8 GPUs hold whole sequences: ceil(c / 8) each


def test_balanced_pools(values):
    r_p, r_d, g_p, g_d, o = 3.0, 0.5, 2.0, 8.0, 1000
    assert disagg.balanced_tokens_per_s_per_gpu(o, g_p, r_p, g_d, r_d) == pytest.approx(o * r_d / (g_d + g_p * r_d / r_p))
    target = 7.3
    n = disagg.pool_replicas(target, r_d)
    assert n * r_d >= target > (n - 1) * r_d
    with pytest.raises(QsError):
        disagg.decode_rate(np.array([4.0]), np.array([0.01]), 1)


def test_disaggregated_point_balances_its_pools(small_frontiers):
    dis = [p for p in small_frontiers["moe"] + small_frontiers["dense"] if p["disaggregated"]]
    assert dis, "expected disaggregated points on a frontier at 4k in / 1k out"
    o = WORKLOAD.output_len
    for p in dis:
        r_d = p["batch"] / ((o - 1) * p["tpot_s"])
        pre = p["prefill"]
        assert pre["replicas_per_decode_replica"] == pytest.approx(r_d / pre["requests_per_s_per_replica"], rel=1e-9)
        assert p["gpus"] == pytest.approx(p["decode_gpus_per_replica"] + pre["replicas_per_decode_replica"] * pre["gpus_per_replica"], rel=1e-12)
        assert p["tokens_per_s_per_gpu"] == pytest.approx(o * r_d / p["gpus"], rel=1e-9)


def test_serving_plan_type(values):
    dep = deployment_from(values, "ep")
    agg = ServingPlan(decode=Pool(dep, "ep", replicas=3, batch=64))
    assert not agg.disaggregated and agg.gpus == 3 * dep.gpus
    dis = ServingPlan(decode=Pool(dep, "ep", 2, 64), prefill=Pool(dep.with_changes(gpus=4), "tp", 5, 1), kv_transfer=KvTransfer(1e8, 0.01))
    assert dis.disaggregated and dis.gpus == 2 * dep.gpus + 20 and dis.record()["prefill"]["gpus"] == 20
    with pytest.raises(QsError):
        ServingPlan(decode=Pool(dep, "ep"), prefill=Pool(dep, "tp"))
    with pytest.raises(QsError):
        ServingPlan(decode=Pool(dep, "ep"), prefill=Pool(dep.with_changes(kv_dtype="fp8"), "tp"), kv_transfer=KvTransfer(1.0, 1.0))


# --------------------------------------------------------------------------- cost


def test_cost_arithmetic(values):
    assert float(ec.usd_per_million_tokens(3.6, 1000.0)) == pytest.approx(1.0)
    assert ec.usd_per_million_tokens(None, 1000.0) is None
    hw = load_hardware("h200")
    assert ec.gpu_hour_price(hw) == pytest.approx(50.44 / 8)
    assert ec.gpu_hour_price(hw, 2.0) == 2.0
    assert ec.gpu_hour_price(hw, 0.0) == ec.gpu_hour_price(hw)  # the parameter set's 0: the file's price
    assert ec.gpu_hour_price(load_hardware("mi300x")) is None
    with pytest.raises(QsError):
        ec.gpu_hour_price(hw, -1.0)


def test_frontier_costs_follow_the_price(small_frontiers, values):
    price = small_frontiers["usd_per_gpu_hour"]
    assert price == pytest.approx(50.44 / 8)
    for p in small_frontiers["moe"]:
        assert p["usd_per_million_tokens"] == pytest.approx(price / 3600 / p["tokens_per_s_per_gpu"] * 1e6)
    unpriced = ec.frontiers(values, "deepseek-v3", fr.Workload(context=4096), hardware="mi300x", gpu_counts=(8,), weight_formats=("fp8",), kv_formats=("bf16",))
    assert unpriced["usd_per_gpu_hour"] is None and all(p["usd_per_million_tokens"] is None for p in unpriced["moe"])
    priced = ec.frontiers(dict(values, gpu_hour_usd=2.0), "deepseek-v3", fr.Workload(context=4096), hardware="mi300x", gpu_counts=(8,), weight_formats=("fp8",), kv_formats=("bf16",))
    assert priced["usd_per_gpu_hour"] == 2.0 and priced["price_source"] == "gpu_hour_usd"
    assert all(p["usd_per_million_tokens"] == pytest.approx(2.0 / 3600 / p["tokens_per_s_per_gpu"] * 1e6) for p in priced["moe"])


# --------------------------------------------------------------------------- plans


@pytest.mark.parametrize("target, tpot_ms, ttft_ms", [(20000.0, 50.0, 2000.0), (5000.0, 20.0, None), (300000.0, 100.0, 500.0)])
def test_plan_meets_its_limits_when_re_evaluated(values, target, tpot_ms, ttft_ms):
    ttft = None if ttft_ms is None else ttft_ms / 1e3
    r = ec.plan(values, "deepseek-v3", WORKLOAD, target, tpot_ms / 1e3, ttft, **SMALL)
    assert r["feasible"], r["reason"]
    profile = profile_of(load_model("deepseek-v3"))
    plan = r["plan"]
    d = plan["decode"]
    dep = deployment_from(values, d["layout"]).with_changes(gpus=d["gpus_per_replica"], weight_dtype=d["weight_dtype"], kv_dtype=d["kv_dtype"])
    if not plan["disaggregated"]:
        s = serve(profile, dep, 4096, 1024, d["batch"])
        assert s["feasible"]
        assert s["decode_step_time_s"] <= tpot_ms / 1e3
        assert ttft is None or s["prefill_time_s"] <= ttft
        assert s["output_tokens_per_s"] * d["replicas"] >= target
    else:
        res = decode(profile, dep, 4096 + 1024 / 2, d["batch"])
        assert d["batch"] <= float(hbm_budget(profile, dep, 4096 + 1024).max_batch)
        assert float(res.step_time_s) <= tpot_ms / 1e3
        p = plan["prefill"]
        pdep = deployment_from(values, p["layout"]).with_changes(gpus=p["gpus_per_replica"], weight_dtype=p["weight_dtype"], kv_dtype=p["kv_dtype"])
        assert p["batch"] <= float(hbm_budget(profile, pdep, 4096).max_batch)
        t_pre = float(prefill_time(profile, pdep, 4096, p["batch"]).total_s)
        t_x = float(disagg.kv_transfer_time_s(profile, pdep, 4096, p["batch"]))
        assert ttft is None or t_pre + t_x <= ttft
        decode_tok_s = d["replicas"] * d["batch"] / ((1024 - 1) * float(res.step_time_s)) * 1024
        prefill_tok_s = p["replicas"] * p["batch"] / max(t_pre, t_x) * 1024
        assert min(decode_tok_s, prefill_tok_s) >= target * (1 - 1e-12)
    assert r["gpus"] == plan["gpus"] and r["tpot_s"] <= tpot_ms / 1e3


def test_plan_uses_no_more_gpus_than_any_single_aggregated_choice(values):
    r = ec.plan(values, "deepseek-v3", WORKLOAD, 20000.0, 0.05, None, **SMALL)
    profile = profile_of(load_model("deepseek-v3"))
    dep = deployment_from(values, "ep").with_changes(gpus=8)
    s = serve(profile, dep, 4096, 1024)
    if s["decode_step_time_s"] <= 0.05:
        assert r["gpus"] <= math.ceil(20000.0 / s["output_tokens_per_s"]) * 8


def test_infeasible_plan_is_a_result(values):
    r = ec.plan(values, "deepseek-v3", WORKLOAD, 1000.0, 1e-6, None, **SMALL)
    assert r["feasible"] is False and r["plan"] is None and "TPOT" in r["reason"]
    r = ec.plan(values, "deepseek-v3", WORKLOAD, 1000.0, 1.0, 1e-6, **SMALL)
    assert r["feasible"] is False and "TTFT" in r["reason"]


def test_plan_refuses_bad_limits(values):
    for args in ((0.0, 0.05, None), (1000.0, -1.0, None), (1000.0, 0.05, float("nan"))):
        with pytest.raises(QsError):
            ec.plan(values, "deepseek-v3", WORKLOAD, *args, **SMALL)
    with pytest.raises(QsError):
        ec.plan(values, "deepseek-v3", fr.Workload(context=4096), 1000.0, 0.05)
    for bad in (dict(input_len=0, output_len=5), dict(input_len=5, output_len=-1), dict(context=0)):
        with pytest.raises(QsError):
            fr.Workload(**bad)


# --------------------------------------------------------------------------- command line


def _run(capsys, argv):
    from qsmoe.cli import main

    try:
        rc = main(argv)
    except SystemExit as exit_:  # argparse refuses a flag by exiting
        rc = exit_.code
    out, err = capsys.readouterr()
    return rc, out, err


def test_frontier_cli_json_shape(capsys):
    rc, out, err = _run(capsys, ["frontier", "--model", "deepseek-v3", "--context", "32k", "--json"])
    assert rc == 0, err
    data = json.loads(out)
    assert set(data["ratio_at_tokens_per_s_per_user"]) == {"20", "50", "100"}
    keys = {"tokens_per_s_per_user", "tokens_per_s_per_gpu", "tpot_s", "ttft_s", "gpus", "layout", "batch", "disaggregated", "usd_per_million_tokens"}
    for side in ("moe", "dense"):
        assert data[side] and all(keys <= set(p) for p in data[side])


def test_plan_cli_json_shape_and_infeasible_result(capsys):
    base = ["plan", "--model", "deepseek-v3", "--hardware", "h200", "--input-len", "4096", "--output-len", "1024", "--tokens-per-s", "20000"]
    rc, out, err = _run(capsys, base + ["--tpot-ms", "50", "--ttft-ms", "2000", "--json"])
    assert rc == 0, err
    data = json.loads(out)
    assert data["feasible"] and {"gpus", "tpot_s", "ttft_s", "tokens_per_s", "plan"} <= set(data)
    rc, out, err = _run(capsys, base + ["--tpot-ms", "0.0001"])
    assert rc == 0 and "no plan" in out and err == ""


@pytest.mark.parametrize("argv", [
    ["plan", "--model", "deepseek-v3", "--input-len", "4096", "--output-len", "1024", "--tokens-per-s", "-5", "--tpot-ms", "30"],
    ["plan", "--model", "deepseek-v3", "--input-len", "4096", "--tokens-per-s", "5", "--tpot-ms", "30"],
    ["frontier", "--model", "deepseek-v3", "--context", "4k", "--input-len", "3"],
    ["frontier", "--model", "no-such-model", "--context", "4k"],
    ["frontier", "--model", "deepseek-v3", "--context", "4k", "--gpu-hour-usd", "-3"],
])
def test_bad_input_is_one_line_exit_2(capsys, argv):
    rc, out, err = _run(capsys, argv)
    assert rc == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
