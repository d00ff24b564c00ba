"""Every deployment of one model on one accelerator, and the Pareto frontier of throughput
per GPU against speed per user.

A deployment is (layout, GPUs G, weight format, KV format, batch B), aggregated or
disaggregated. For each one, with T_step = ``decode.step_time`` at the mean decode context:

    TPOT                 = T_step(B)                        s per output token of one user
    tokens/s per user    = 1 / TPOT
    aggregated           (``serve.serve_result`` under the deployment's ``batching``: static, the
                         batch prefilled together and then decoded; continuous, each decode step
                         absorbs the prefill work of arriving requests, and TPOT includes it)
        TPOT             = serve's decode step;  TTFT = serve's prefill time (queueing out of scope)
        tokens/s per GPU = serve's output tokens/s per GPU (static: B * O / (T_prefill + (O - 1) T_step) / G)
    disaggregated        (``disagg``: prefill pool and decode pool in balance; the decode pool's
                         TPOT is the bare T_step, it prefills nothing)
        TTFT             = T_prefill(c_p, I) + T_x
        tokens/s per GPU = O / (G_p / r_p + G_d / r_d)
    decode only          (a context L instead of I and O: the paper's regime, no prefill charged)
        TTFT             undefined
        tokens/s per GPU = B / T_step / G

Batches run from 1 to the largest the HBM admits at the final context (``memory.hbm_budget``).
The physics functions broadcast over batches; the loop runs over (layout, G, formats).
A disaggregated deployment pairs each decode-pool point with the prefill-pool point of the
same formats that costs the fewest GPU-seconds per request (within an optional TTFT limit):
that choice does not change the decode point's TPOT, so no other pairing can be on the frontier.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qsmoe.errors import QsError
from qsmoe.physics import disagg
from qsmoe.physics.decode import decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.memory import hbm_budget
from qsmoe.physics.profile import DecodeProfile
from qsmoe.physics.serve import SERVE_BOUNDS, prefill_time, serve_result

WEIGHT_FORMATS = ("bf16", "fp8", "fp4")
KV_FORMATS = ("bf16", "fp8")
GPU_COUNTS = tuple(range(1, 65))
BATCH_GRID = tuple(float(b) for b in np.unique(np.round(np.geomspace(1, 65536, 97))))  # ~12 % steps
PREFILL_BATCHES = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)


@dataclass(frozen=True)
class Workload:
    """Prompt and output tokens per request, or a decode-only context (``context`` set)."""

    input_len: int = 0
    output_len: int = 0
    context: int | None = None

    def __post_init__(self) -> None:
        if self.context is not None:
            if isinstance(self.context, bool) or not isinstance(self.context, int) or self.context < 1:
                raise QsError(f"must be a whole number of tokens >= 1, got {self.context!r}", field="context")
            return
        for name in ("input_len", "output_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QsError(f"must be a whole number of tokens >= 1, got {value!r}", field=name)

    @property
    def decode_only(self) -> bool:
        return self.context is not None

    @property
    def decode_context(self) -> float:
        """Tokens a decode step attends on average: L, or I + O/2."""
        return float(self.context) if self.context is not None else self.input_len + self.output_len / 2

    @property
    def final_context(self) -> float:
        """Tokens each sequence holds at the end, which the HBM must admit: L, or I + O."""
        return float(self.context) if self.context is not None else float(self.input_len + self.output_len)

    def record(self) -> dict:
        return {"context": self.context} if self.decode_only else {"input_len": self.input_len, "output_len": self.output_len}


@dataclass(frozen=True)
class Search:
    """The grid of deployments: ``bases`` maps each layout to a deployment carrying the
    efficiencies and links; GPUs and formats are varied from it."""

    bases: dict[str, Deployment]
    gpu_counts: tuple[int, ...] = GPU_COUNTS
    weight_formats: tuple[str, ...] = WEIGHT_FORMATS
    kv_formats: tuple[str, ...] = KV_FORMATS
    batches: tuple[float, ...] = BATCH_GRID
    prefill_batches: tuple[float, ...] = PREFILL_BATCHES

    @property
    def layouts(self) -> tuple[str, ...]:
        return tuple(self.bases)


@dataclass
class Table:
    """Columns of equal length, one row per evaluated point."""

    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def take(self, index: np.ndarray) -> "Table":
        return Table({k: v[index] for k, v in self.columns.items()})

    @staticmethod
    def concat(parts: list[dict[str, np.ndarray]], names: tuple[str, ...]) -> "Table":
        if not parts:
            return Table({n: np.zeros(0) for n in names})
        return Table({n: np.concatenate([np.broadcast_to(p[n], p["batch"].shape) for p in parts]) for n in names})


AGGREGATED = ("layout", "gpus", "weight", "kv", "batch", "tpot_s", "ttft_s", "tokens_per_s_per_gpu", "bound")
DECODE_POOL = ("layout", "gpus", "weight", "kv", "batch", "tpot_s", "requests_per_s", "bound")
PREFILL_POOL = ("layout", "gpus", "weight", "kv", "batch", "ttft_s", "requests_per_s", "transfer_s", "kv_bytes_per_request")


@dataclass(frozen=True)
class Evaluation:
    """Every aggregated point, and the two pools' points from which disaggregated ones are made."""

    profile: DecodeProfile
    workload: Workload
    search: Search
    aggregated: Table
    decode_pool: Table
    prefill_pool: Table

    @property
    def deployments_evaluated(self) -> int:
        """Aggregated points plus disaggregated ones (each decode-pool point with its prefill pairing)."""
        return len(self.aggregated) + len(self.decode_pool)


def _batches(search: Search, max_batch: float) -> np.ndarray:
    grid = np.asarray(search.batches)
    return np.concatenate([grid[grid < max_batch], [max_batch]])


def evaluate(profile: DecodeProfile, workload: Workload, search: Search) -> Evaluation:
    """Evaluate every (layout, G, formats, batch) of ``search`` for ``profile`` (module docstring)."""
    agg: list[dict[str, np.ndarray]] = []
    dec: list[dict[str, np.ndarray]] = []
    pre: list[dict[str, np.ndarray]] = []
    disaggregate = not workload.decode_only and workload.output_len >= 2
    for li, layout in enumerate(search.layouts):
        base = search.bases[layout]
        hw = base.hardware
        disaggregate_here = disaggregate and hw.scaleout_bytes_per_s > 0
        for g in search.gpu_counts:
            if g > hw.domain_size and hw.scaleout_bytes_per_s <= 0:
                continue  # no link beyond the scale-up domain is stated for this accelerator
            for wi, wd in enumerate(search.weight_formats):
                for ki, kv in enumerate(search.kv_formats):
                    dep = base.with_changes(gpus=g, weight_dtype=wd, kv_dtype=kv)
                    tag = {"layout": np.asarray(li), "gpus": np.asarray(float(g)), "weight": np.asarray(wi), "kv": np.asarray(ki)}
                    budget = hbm_budget(profile, dep, workload.final_context)
                    if not bool(budget.feasible):
                        continue
                    b = _batches(search, float(budget.max_batch))
                    if workload.decode_only:
                        res = decode(profile, dep, workload.context, b)
                        tpot = res.step.total_s
                        agg.append({**tag, "batch": b, "tpot_s": tpot, "ttft_s": np.full(b.shape, np.nan), "tokens_per_s_per_gpu": b / tpot / g, "bound": 1 + res.step.bound()})
                        continue
                    res = serve_result(profile, dep, workload.input_len, workload.output_len, b)
                    agg.append({**tag, "batch": b, "tpot_s": res.decode_step_s, "ttft_s": res.prefill.total_s, "tokens_per_s_per_gpu": res.output_tokens_per_s_per_gpu, "bound": res.bound})
                    if not disaggregate_here:
                        continue
                    step = step_time(profile, dep, workload.decode_context, b)
                    dec.append({**tag, "batch": b, "tpot_s": step.total_s, "requests_per_s": disagg.decode_rate(b, step.total_s, workload.output_len), "bound": 1 + step.bound()})
                    pre.append(_prefill_points(profile, dep, workload, search, tag))
    return Evaluation(profile, workload, search, Table.concat(agg, AGGREGATED), Table.concat(dec, DECODE_POOL), Table.concat([p for p in pre if p], PREFILL_POOL))


def _prefill_points(profile: DecodeProfile, dep: Deployment, workload: Workload, search: Search, tag: dict) -> dict[str, np.ndarray]:
    """Prefill-pool points: c_p prompts per pass, as many as the HBM holds at context I."""
    room = float(hbm_budget(profile, dep, workload.input_len).max_batch)
    c = np.asarray([p for p in search.prefill_batches if p <= room], dtype=float)
    if c.size == 0:
        return {}
    t_pre = prefill_time(profile, dep, workload.input_len, c).total_s
    t_x = disagg.kv_transfer_time_s(profile, dep, workload.input_len, c)
    return {**tag, "batch": c, "ttft_s": t_pre + t_x, "requests_per_s": disagg.prefill_rate(t_pre, t_x, c), "transfer_s": t_x, "kv_bytes_per_request": np.broadcast_to(disagg.kv_bytes_per_request(profile, dep, workload.input_len), c.shape)}


def best_prefill(ev: Evaluation, weight: int, kv: int, ttft_limit_s: float | None = None, target_requests_per_s: float | None = None) -> int | None:
    """Row of ``ev.prefill_pool`` with these formats that needs the fewest GPUs: per request
    (G_p / r_p) for a balanced frontier point, or ceil(target / r_p) * G_p for a plan; None if none qualifies."""
    p = ev.prefill_pool
    if not len(p):
        return None
    ok = (p["weight"] == weight) & (p["kv"] == kv)
    if ttft_limit_s is not None:
        ok &= p["ttft_s"] <= ttft_limit_s
    if not ok.any():
        return None
    rows = np.flatnonzero(ok)
    per_request = (p["gpus"] / p["requests_per_s"])[rows]
    if target_requests_per_s is None:
        return int(rows[np.argmin(per_request)])
    pool = np.ceil(target_requests_per_s / p["requests_per_s"][rows] - 1e-12) * p["gpus"][rows]
    return int(rows[np.lexsort((per_request, pool))[0]])


POINT = ("tokens_per_s_per_user", "tokens_per_s_per_gpu", "tpot_s", "ttft_s", "gpus", "decode_gpus", "layout", "weight", "kv", "batch", "bound", "disaggregated", "prefill_row", "pool_ratio")


def points(ev: Evaluation, ttft_limit_s: float | None = None) -> Table:
    """All deployments (aggregated and disaggregated) with the frontier's columns.

    ``prefill_row`` indexes ``ev.prefill_pool`` (-1 when aggregated); ``pool_ratio`` is r_d / r_p,
    the prefill replicas per decode replica that balance the pools (0 when aggregated); ``gpus``
    counts a decode replica and its share of the prefill pool, G_d + G_p * r_d / r_p (so that
    tokens/s per GPU = O * r_d / gpus), ``decode_gpus`` the decode replica's G_d."""
    a = ev.aggregated
    keep = np.ones(len(a), dtype=bool) if ttft_limit_s is None else ~(a["ttft_s"] > ttft_limit_s)
    parts = [{**{k: a[k][keep] for k in ("tpot_s", "ttft_s", "tokens_per_s_per_gpu", "gpus", "layout", "weight", "kv", "batch", "bound")}, "decode_gpus": a["gpus"][keep], "disaggregated": np.zeros(int(keep.sum()), bool), "prefill_row": np.full(int(keep.sum()), -1), "pool_ratio": np.zeros(int(keep.sum()))}]
    d = ev.decode_pool
    for wi in range(len(ev.search.weight_formats)):
        for ki in range(len(ev.search.kv_formats)):
            row = best_prefill(ev, wi, ki, ttft_limit_s)
            sel = (d["weight"] == wi) & (d["kv"] == ki) if len(d) else np.zeros(0, bool)
            if row is None or not sel.any():
                continue
            p = ev.prefill_pool
            r_p, g_p, r_d = p["requests_per_s"][row], p["gpus"][row], d["requests_per_s"][sel]
            parts.append({
                "tpot_s": d["tpot_s"][sel], "ttft_s": np.full(int(sel.sum()), p["ttft_s"][row]),
                "tokens_per_s_per_gpu": disagg.balanced_tokens_per_s_per_gpu(ev.workload.output_len, g_p, r_p, d["gpus"][sel], r_d),
                "gpus": d["gpus"][sel] + g_p * r_d / r_p, "decode_gpus": d["gpus"][sel], "layout": d["layout"][sel], "weight": d["weight"][sel], "kv": d["kv"][sel], "batch": d["batch"][sel], "bound": d["bound"][sel],
                "disaggregated": np.ones(int(sel.sum()), bool), "prefill_row": np.full(int(sel.sum()), row), "pool_ratio": r_d / r_p,
            })
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    cols["tokens_per_s_per_user"] = 1.0 / cols["tpot_s"]
    return Table({k: cols[k] for k in POINT})


def pareto(tokens_per_s_per_user: np.ndarray, tokens_per_s_per_gpu: np.ndarray) -> np.ndarray:
    """Indices of the Pareto frontier, in ascending speed per user and strictly descending
    throughput: a point stays when no other is at least as fast per user and at least as high
    per GPU while better in one (of exact ties, the first in input order)."""
    u, t = np.asarray(tokens_per_s_per_user, float), np.asarray(tokens_per_s_per_gpu, float)
    order = np.lexsort((np.arange(u.size), -t, -u))  # fastest per user first, then highest per GPU
    best_before = np.maximum.accumulate(np.concatenate([[-np.inf], t[order][:-1]]))
    kept = order[t[order] > best_before]
    return kept[::-1]


def attainable(frontier_user: np.ndarray, frontier_gpu: np.ndarray, speed_per_user: object) -> np.ndarray:
    """Highest tokens/s per GPU of any deployment at least ``speed_per_user`` fast (0 where none):
    the first frontier point (ascending speed per user) at or above the speed. No interpolation:
    a point between two deployments is not a deployment."""
    x = np.asarray(speed_per_user, dtype=float)
    i = np.searchsorted(frontier_user, x, side="left")
    ok = i < frontier_user.size
    return np.where(ok, frontier_gpu[np.minimum(i, max(frontier_user.size - 1, 0))] if frontier_user.size else 0.0, 0.0)


__all__ = ["BATCH_GRID", "Evaluation", "GPU_COUNTS", "KV_FORMATS", "PREFILL_BATCHES", "SERVE_BOUNDS", "Search", "Table", "WEIGHT_FORMATS", "Workload", "attainable", "best_prefill", "evaluate", "pareto", "points"]
