"""Serving economics: MoE and dense frontiers, their ratio at equal interactivity, cost per
million output tokens, and the fewest GPUs that serve a target.

    ratio(x)        = dense tokens/s per GPU / MoE tokens/s per GPU, each the best deployment
                      at least x tokens/s per user fast (``frontier.attainable``); > 1: dense is
                      cheaper per token at that interactivity; None where either side cannot reach x
    crossover       a speed per user above which the cheaper side changes
    $ / M tokens    = price per GPU-hour / 3600 / (tokens/s per GPU) * 1e6
    plan            aggregated: n = ceil(T / (G * tokens/s per GPU)) replicas of G GPUs
                    disaggregated: ceil(T/O / r_p) prefill and ceil(T/O / r_d) decode replicas,
                    each pool the cheapest whose points meet the limits (TTFT on the prefill side,
                    TPOT on the decode side), so the two choices are independent

Prices are the hardware file's ``price_usd_per_gpu_hour`` (a public on-demand list price with
its source; null where none was found) unless the parameter set's ``gpu_hour_usd`` is > 0.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics import disagg, frontier as fr
from qsmoe.physics.deployment import LAYOUTS
from qsmoe.physics.plan import KvTransfer, Pool, ServingPlan
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.scenario.compare import deployment_from, scenario
from qsmoe.specs.fileio import Fields, load_mapping
from qsmoe.specs.hardware import HardwareSpec, load_hardware
from qsmoe.specs.models import load_model

SPEEDS_PER_USER = (20.0, 50.0, 100.0)  # tokens/s per user the comparison is read at
DENSE_LAYOUTS = ("tp", "dp-tp")  # ep on a dense model is plain data parallelism: G = 1 replicas
PRICE_KEY = "price_usd_per_gpu_hour"


def gpu_hour_price(hardware: HardwareSpec, override: float | None = None) -> float | None:
    """US dollars per GPU-hour: ``override`` when > 0, else (None or 0, the parameter set's
    default) the hardware file's list price, None if it has none."""
    if override is not None:
        if isinstance(override, bool) or not isinstance(override, (int, float)) or not math.isfinite(override) or override < 0:
            raise QsError(f"must be a finite price >= 0 (0: the hardware file's price), got {override!r}", field="gpu_hour_usd")
        if override > 0:
            return float(override)
    path = Path(hardware.source)
    f = Fields(load_mapping(path if path.is_absolute() or path.exists() else DATA_DIR.parent / path), hardware.source)
    return None if f.raw(PRICE_KEY, None) is None else f.number(PRICE_KEY)


def usd_per_million_tokens(price_usd_per_gpu_hour: float | None, tokens_per_s_per_gpu: object) -> np.ndarray | None:
    """price / 3600 / (tokens/s per GPU) * 1e6, or None without a price."""
    if price_usd_per_gpu_hour is None:
        return None
    return price_usd_per_gpu_hour / 3600.0 / np.asarray(tokens_per_s_per_gpu, dtype=float) * 1e6


def search_for(values: Mapping[str, Any], layouts: tuple[str, ...], hardware: str | None = None, **grid: Any) -> fr.Search:
    """The deployment grid for ``layouts``, efficiencies and links from the parameter set."""
    vals = dict(values, hardware=hardware) if hardware is not None else values
    return fr.Search({layout: deployment_from(vals, layout) for layout in layouts}, **grid)


def _label(ev: fr.Evaluation, pts: fr.Table, i: int, price: float | None) -> dict[str, Any]:
    """One deployment as the JSON point of ``qsmoe frontier``."""
    s = ev.search
    dis = bool(pts["disaggregated"][i])
    ttft = float(pts["ttft_s"][i])
    rec: dict[str, Any] = {
        "tokens_per_s_per_user": float(pts["tokens_per_s_per_user"][i]),
        "tokens_per_s_per_gpu": float(pts["tokens_per_s_per_gpu"][i]),
        "tpot_s": float(pts["tpot_s"][i]),
        "ttft_s": None if math.isnan(ttft) else ttft,
        "gpus": float(pts["gpus"][i]) if dis else int(pts["gpus"][i]),
        "layout": s.layouts[int(pts["layout"][i])],
        "batch": int(pts["batch"][i]),
        "weight_dtype": s.weight_formats[int(pts["weight"][i])],
        "kv_dtype": s.kv_formats[int(pts["kv"][i])],
        "bound": fr.SERVE_BOUNDS[int(pts["bound"][i])],
        "disaggregated": dis,
        "usd_per_million_tokens": None if price is None else float(usd_per_million_tokens(price, pts["tokens_per_s_per_gpu"][i])),
        "prefill": None,
    }
    if dis:
        p, row = ev.prefill_pool, int(pts["prefill_row"][i])
        ratio = float(pts["pool_ratio"][i])
        rec["prefill"] = {
            "layout": s.layouts[int(p["layout"][row])], "gpus_per_replica": int(p["gpus"][row]), "prompts_per_pass": int(p["batch"][row]),
            "requests_per_s_per_replica": float(p["requests_per_s"][row]), "kv_bytes_per_request": float(p["kv_bytes_per_request"][row]),
            "kv_transfer_s_per_pass": float(p["transfer_s"][row]), "replicas_per_decode_replica": ratio,
        }
        rec["decode_gpus_per_replica"] = int(pts["decode_gpus"][i])
    return rec


def side_frontier(profile: DecodeProfile, workload: fr.Workload, search: fr.Search, price: float | None, ttft_limit_s: float | None = None, disaggregated: bool = True) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, int]:
    """(frontier records in ascending speed per user, their speeds, their tokens/s per GPU,
    deployments evaluated); ``disaggregated`` False keeps aggregated deployments only."""
    ev = fr.evaluate(profile, workload, search)
    pts = fr.points(ev, ttft_limit_s)
    if not disaggregated:
        pts = pts.take(~pts["disaggregated"])
    idx = fr.pareto(pts["tokens_per_s_per_user"], pts["tokens_per_s_per_gpu"])
    return [_label(ev, pts, int(i), price) for i in idx], pts["tokens_per_s_per_user"][idx], pts["tokens_per_s_per_gpu"][idx], ev.deployments_evaluated


def ratio_at(moe: tuple[np.ndarray, np.ndarray], dense: tuple[np.ndarray, np.ndarray], speeds: object) -> np.ndarray:
    """Dense / MoE attainable tokens/s per GPU at each speed per user (NaN where either cannot reach it)."""
    m, d = fr.attainable(*moe, speeds), fr.attainable(*dense, speeds)
    return np.where((m > 0) & (d > 0), d / np.where(m > 0, m, 1.0), np.nan)


def crossovers(moe: tuple[np.ndarray, np.ndarray], dense: tuple[np.ndarray, np.ndarray]) -> list[dict[str, Any]]:
    """Speeds per user above which the cheaper side changes. Both attainable curves are step
    functions, constant on (x_k-1, x_k] between frontier speeds, so the ratio is read at the union
    of those speeds (up to the slower side's fastest point) and a change between x_k-1 and x_k
    is reported at x_k-1."""
    top = min(moe[0][-1], dense[0][-1]) if moe[0].size and dense[0].size else 0.0
    xs = np.unique(np.concatenate([moe[0], dense[0]]))
    xs = xs[xs <= top]
    if xs.size < 2:
        return []
    r = ratio_at(moe, dense, xs)
    side = np.sign(np.log(r))
    out = []
    for k in np.flatnonzero((side[1:] != side[:-1]) & (side[1:] != 0)):
        out.append({"tokens_per_s_per_user": float(xs[k]), "cheaper_above": "dense" if side[k + 1] > 0 else "moe", "ratio_below": float(r[k]), "ratio_above": float(r[k + 1])})
    return out


def frontiers(values: Mapping[str, Any], model_id: str, workload: fr.Workload, *, hardware: str | None = None, ttft_limit_s: float | None = None, speeds: tuple[float, ...] = SPEEDS_PER_USER, disaggregated: bool = True, **grid: Any) -> dict[str, Any]:
    """The MoE's and its dense comparator's frontiers on one accelerator, their ratio and crossovers
    (``disaggregated`` False: aggregated deployments only)."""
    vals = dict(values, hardware=hardware) if hardware is not None else dict(values)
    sc = scenario(vals, model_id)
    hw = load_hardware(vals["hardware"])
    override = vals.get("gpu_hour_usd")
    price = gpu_hour_price(hw, override)
    moe, moe_u, moe_g, n_moe = side_frontier(sc.moe, workload, search_for(vals, LAYOUTS, **grid), price, ttft_limit_s, disaggregated)
    dense, dense_u, dense_g, n_dense = side_frontier(sc.dense, workload, search_for(vals, DENSE_LAYOUTS, **grid), price, ttft_limit_s, disaggregated)
    ratios = ratio_at((moe_u, moe_g), (dense_u, dense_g), speeds)
    return {
        "model": sc.model_id,
        "dense_params": float(sc.dense.total_params),
        "q": sc.q,
        "q_rule": sc.q_rule,
        "hardware": hw.id,
        "workload": workload.record(),
        "ttft_limit_s": ttft_limit_s,
        "usd_per_gpu_hour": price,
        "price_source": "gpu_hour_usd" if override else (hw.source if price is not None else None),
        "deployments_evaluated": n_moe + n_dense,
        "moe": moe,
        "dense": dense,
        "ratio_definition": "dense / MoE tokens/s per GPU at equal tokens/s per user (> 1: dense is cheaper per token)",
        "ratio_at_tokens_per_s_per_user": {f"{x:g}": (None if math.isnan(r) else float(r)) for x, r in zip(speeds, ratios)},
        "crossovers": crossovers((moe_u, moe_g), (dense_u, dense_g)),
    }


def run_frontier_bench(values: Mapping[str, Any], model_id: str, workload: fr.Workload, *, repeats: int = 3, **grid: Any) -> dict[str, Any]:
    """Best-of-``repeats`` wall time to evaluate and Pareto-filter every deployment of the MoE
    and its dense comparator (``frontiers`` without the JSON records), and deployments per second."""
    sc = scenario(values, model_id)
    sides = ((sc.moe, search_for(values, LAYOUTS, **grid)), (sc.dense, search_for(values, DENSE_LAYOUTS, **grid)))
    best, count, kept = float("inf"), 0, 0
    for _ in range(repeats):
        start = time.perf_counter()
        count = kept = 0
        for profile, search in sides:
            ev = fr.evaluate(profile, workload, search)
            pts = fr.points(ev)
            kept += fr.pareto(pts["tokens_per_s_per_user"], pts["tokens_per_s_per_gpu"]).size
            count += ev.deployments_evaluated
        best = min(best, time.perf_counter() - start)
    return {"model": sc.model_id, "workload": workload.record(), "deployments": count, "frontier_points": kept, "seconds": best, "deployments_per_s": count / best, "repeats": repeats}


def _check_limit(value: float | None, field: str, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise QsError(f"must be a finite number > 0, got {value!r}", field=field)


def plan(values: Mapping[str, Any], model_id: str, workload: fr.Workload, tokens_per_s: float, tpot_limit_s: float, ttft_limit_s: float | None = None, *, hardware: str | None = None, **grid: Any) -> dict[str, Any]:
    """The fewest GPUs (and the deployment) that serve ``tokens_per_s`` output tokens/s with
    TPOT <= ``tpot_limit_s`` and TTFT <= ``ttft_limit_s`` (when given); aggregated and
    disaggregated plans compete. Ties go to the lower TPOT. No plan: ``feasible`` False and
    a ``reason`` naming the fastest TPOT and TTFT any deployment reaches."""
    if workload.decode_only:
        raise QsError("a plan needs an input and an output length (TTFT and prefill), not a context", field="context")
    _check_limit(tokens_per_s, "tokens_per_s", optional=False)
    _check_limit(tpot_limit_s, "tpot_limit_s", optional=False)
    _check_limit(ttft_limit_s, "ttft_limit_s", optional=True)
    vals = dict(values, hardware=hardware) if hardware is not None else dict(values)
    spec = load_model(model_id)
    profile = profile_of(spec)
    search = search_for(vals, LAYOUTS if spec.is_moe else DENSE_LAYOUTS, **grid)
    ev = fr.evaluate(profile, workload, search)
    price = gpu_hour_price(search.bases[search.layouts[0]].hardware, vals.get("gpu_hour_usd"))
    candidates = [c for c in (_aggregated_plan(ev, tokens_per_s, tpot_limit_s, ttft_limit_s), _disaggregated_plan(ev, tokens_per_s, tpot_limit_s, ttft_limit_s)) if c]
    head = {"model": spec.id, "hardware": search.bases[search.layouts[0]].hardware.id, "workload": workload.record(), "target_tokens_per_s": float(tokens_per_s), "tpot_limit_s": float(tpot_limit_s), "ttft_limit_s": ttft_limit_s, "deployments_evaluated": ev.deployments_evaluated}
    if not candidates:
        return {**head, "feasible": False, "reason": _no_plan_reason(ev, tpot_limit_s, ttft_limit_s), "plan": None}
    best = min(candidates, key=lambda c: (c["gpus"], c["tpot_s"], c["ttft_s"]))
    serving: ServingPlan = best.pop("serving_plan")
    usd_per_hour = None if price is None else price * serving.gpus
    return {**head, "feasible": True, "reason": None, **best, "usd_per_hour": usd_per_hour, "usd_per_million_tokens": None if usd_per_hour is None else usd_per_hour / 3600.0 / best["tokens_per_s"] * 1e6, "plan": serving.record()}


def _deployment(ev: fr.Evaluation, table: fr.Table, row: int):
    s = ev.search
    layout = s.layouts[int(table["layout"][row])]
    dep = s.bases[layout].with_changes(gpus=int(table["gpus"][row]), weight_dtype=s.weight_formats[int(table["weight"][row])], kv_dtype=s.kv_formats[int(table["kv"][row])])
    return layout, dep


def _aggregated_plan(ev: fr.Evaluation, target: float, tpot_limit_s: float, ttft_limit_s: float | None) -> dict[str, Any] | None:
    a = ev.aggregated
    ok = a["tpot_s"] <= tpot_limit_s
    if ttft_limit_s is not None:
        ok &= a["ttft_s"] <= ttft_limit_s
    if not len(a) or not ok.any():
        return None
    rows = np.flatnonzero(ok)
    per_replica = a["tokens_per_s_per_gpu"][rows] * a["gpus"][rows]
    replicas = np.ceil(target / per_replica - 1e-12)
    row = int(rows[np.lexsort((a["tpot_s"][rows], replicas * a["gpus"][rows]))[0]])
    k = int(np.flatnonzero(rows == row)[0])
    layout, dep = _deployment(ev, a, row)
    pool = Pool(dep, layout, replicas=int(replicas[k]), batch=int(a["batch"][row]))
    return {"gpus": pool.gpus, "tpot_s": float(a["tpot_s"][row]), "ttft_s": float(a["ttft_s"][row]), "tokens_per_s": float(per_replica[k] * replicas[k]), "disaggregated": False, "serving_plan": ServingPlan(decode=pool)}


def _disaggregated_plan(ev: fr.Evaluation, target: float, tpot_limit_s: float, ttft_limit_s: float | None) -> dict[str, Any] | None:
    d, p = ev.decode_pool, ev.prefill_pool
    if not len(d) or not len(p):
        return None
    requests = target / ev.workload.output_len
    best: dict[str, Any] | None = None
    for wi in range(len(ev.search.weight_formats)):
        for ki in range(len(ev.search.kv_formats)):
            prow = fr.best_prefill(ev, wi, ki, ttft_limit_s, requests)
            ok = (d["weight"] == wi) & (d["kv"] == ki) & (d["tpot_s"] <= tpot_limit_s)
            if prow is None or not ok.any():
                continue
            rows = np.flatnonzero(ok)
            n_d = np.ceil(requests / d["requests_per_s"][rows] - 1e-12)
            drow = int(rows[np.lexsort((d["tpot_s"][rows], n_d * d["gpus"][rows]))[0]])
            n_dec = disagg.pool_replicas(requests, float(d["requests_per_s"][drow]))
            n_pre = disagg.pool_replicas(requests, float(p["requests_per_s"][prow]))
            gpus = n_dec * int(d["gpus"][drow]) + n_pre * int(p["gpus"][prow])
            if best is not None and (gpus, float(d["tpot_s"][drow])) >= (best["gpus"], best["tpot_s"]):
                continue
            d_layout, d_dep = _deployment(ev, d, drow)
            p_layout, p_dep = _deployment(ev, p, prow)
            serving = ServingPlan(
                decode=Pool(d_dep, d_layout, replicas=n_dec, batch=int(d["batch"][drow])),
                prefill=Pool(p_dep, p_layout, replicas=n_pre, batch=int(p["batch"][prow])),
                kv_transfer=KvTransfer(float(p["kv_bytes_per_request"][prow]), float(p["transfer_s"][prow])),
            )
            rate = min(n_dec * float(d["requests_per_s"][drow]), n_pre * float(p["requests_per_s"][prow])) * ev.workload.output_len
            best = {"gpus": gpus, "tpot_s": float(d["tpot_s"][drow]), "ttft_s": float(p["ttft_s"][prow]), "tokens_per_s": rate, "disaggregated": True, "serving_plan": serving}
    return best


def _no_plan_reason(ev: fr.Evaluation, tpot_limit_s: float, ttft_limit_s: float | None) -> str:
    """Why no plan meets the limits, with the fastest TPOT and TTFT any deployment reaches."""
    a, p = ev.aggregated, ev.prefill_pool
    if not len(a):
        return "no deployment fits in HBM at this workload (weights or one sequence's KV cache do not fit)"
    fastest_tpot = float(a["tpot_s"].min())
    ttfts = np.concatenate([a["ttft_s"], p["ttft_s"]]) if len(p) else a["ttft_s"]
    fastest_ttft = float(ttfts.min())
    if fastest_tpot > tpot_limit_s:
        return f"no deployment reaches TPOT <= {tpot_limit_s * 1e3:g} ms (the fastest is {fastest_tpot * 1e3:.3g} ms)"
    if ttft_limit_s is not None and fastest_ttft > ttft_limit_s:
        return f"no deployment reaches TTFT <= {ttft_limit_s * 1e3:g} ms (the fastest is {fastest_ttft * 1e3:.3g} ms)"
    return f"no single deployment meets TPOT <= {tpot_limit_s * 1e3:g} ms and TTFT <= {ttft_limit_s * 1e3:g} ms together"


__all__ = ["DENSE_LAYOUTS", "plan", "run_frontier_bench", "SPEEDS_PER_USER", "crossovers", "frontiers", "gpu_hour_price", "ratio_at", "search_for", "side_frontier", "usd_per_million_tokens"]
