"""The headline, reconstructed: under which deployments the dense model is faster, by how much.

Reproduction search. For every combination c of the axes of :func:`search_axes` (MoE layout,
dense layout, accelerator, GPUs, weight / KV / attention formats, reserve, q rule, dense
architecture; the engine too once the parameter set has one) the headline ratio is

    R(c) = tokens/s_dense(c) / tokens/s_MoE(c)        (both at their largest admissible batch)

at the headline model and context, every other parameter at the build's value; R is None where
a side cannot be placed. A row is *within* when |R / target - 1| <= tolerance. The MoE side
depends only on (model, MoE deployment), the dense side only on (model, q, dense architecture,
dense deployment), so each side's decode is computed once per distinct key (:func:`search`).

Band. Two uncertainties are propagated into R at one point: the q estimator (every rule with a
value for the model, :func:`qsmoe.scenario.analysis.q_estimates`) and the model's constants
(a list of constant sets: the calibration's bootstrap resamples of the fitted constants from
data/params/bootstrap.csv, else the build's constants against a named variant such as the
datasheet-ideal set; :func:`constant_sets`). The band is the
(5 %, 95 %) quantiles of R pooled over q rules x constant sets, each point weighted equally,
widened where needed to contain the point ratio itself (:func:`ratio_band`).

Baselines. The qs inequality predicts the winner; so do trivial rules. :func:`baselines`
scores, by context and overall, "the MoE always wins", "the dense model always wins", and a
context threshold (dense wins iff L >= L*), L* chosen on the other models only (leave one
model out), beside the simple (qs < 1) and general forms.
"""
from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics.decode import decode
from qsmoe.physics.deployment import ATTENTION_DTYPES, LAYOUTS
from qsmoe.physics.engines import ENGINES, load_engine
from qsmoe.physics.layouts import EXPERT_PARALLEL_LAYOUTS
from qsmoe.physics.quality import DENSE_ARCHS
from qsmoe.scenario.analysis import q_estimates
from qsmoe.scenario.bootstrap import BOOTSTRAP_PATH, load_bootstrap
from qsmoe.scenario.compare import dense_layout_for, scenario
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH
from qsmoe.specs.fileio import load_mapping
from qsmoe.specs.hardware import available_hardware

Values = Mapping[str, Any]

SERVING_DEFAULTS_PATH = DATA_DIR / "serving_defaults.yaml"
DATASHEET_PARAMS_PATH = DATA_DIR / "params" / "datasheet.yaml"
#: MoE layouts the reproduction search leaves out, each with the layout whose rows it would repeat.
#: tp-ep differs from tp only in how the routed experts are cut (whole experts per GPU against
#: every expert in G slices): at the headline point (long context, a few sequences) each expert
#: gets a token or two, padded to the kernel's row block, so both stream the same expert bytes and
#: run the same FLOPs per GPU and every ratio is tp's (tests/test_headline.py checks it on a grid).
REPEATS = {"tp-ep": "tp"}
BAND_QUANTILES = (0.05, 0.95)  # a 90 % band
MAX_BAND_SETS = 10  # bootstrap constant sets a band evaluates (a band stays a few seconds per model)


def search_axes(values: Values, engines: Sequence[str] = ()) -> dict[str, tuple]:
    """The axes of the reproduction search, each with the values it takes.

    moe_layout: every layout but those that repeat another's rows (:data:`REPEATS`); dense_layout:
    tp and dp-tp (what 'auto' chooses between);
    hardware: every shipped accelerator; gpus: one and two 8-GPU nodes; weight and KV formats
    bf16 / fp8; attention compute format bf16 / fp8; reserve 5 / 10 / 20 % of HBM; every q rule
    with data (not 'explicit'); every dense architecture; the engine, one per distinct decode
    constant (:func:`decode_engines`; no axis when every engine has the same), unless
    ``engines`` is given.
    """
    if not engines:
        representatives, _ = decode_engines()
        engines = representatives if len(representatives) > 1 else ()
    axes: dict[str, tuple] = {
        "moe_layout": tuple(layout for layout in LAYOUTS if layout not in REPEATS),
        "dense_layout": tuple(layout for layout in LAYOUTS if layout not in EXPERT_PARALLEL_LAYOUTS),
        "hardware": tuple(available_hardware()),
        "gpus": (8, 16),
        "weight_dtype": ("bf16", "fp8"),
        "kv_dtype": ("bf16", "fp8"),
        "attention_dtype": tuple(ATTENTION_DTYPES),
        "reserve_fraction": (0.05, 0.10, 0.20),
        "q_rule": ("geomean", "author", "clark"),
        "dense_arch": tuple(DENSE_ARCHS),
    }
    if engines:
        axes["engine"] = tuple(engines)
    return {k: v for k, v in axes.items() if k in values}


def decode_engines() -> tuple[tuple[str, ...], dict[float, tuple[str, ...]]]:
    """The engines worth searching for a decode-only ratio, and the engines each stands for.

    An engine enters a decode step only through its per-step scheduling time
    (:func:`qsmoe.physics.decode`'s fixed cost; chunked prefill concerns serving), so engines of
    equal ``scheduling_s`` give the same ratio: one engine per distinct scheduling time is
    searched. Returns (engines to search, {scheduling_s: the engines sharing it})."""
    groups: dict[float, list[str]] = {}
    for engine_id in ENGINES:
        groups.setdefault(load_engine(engine_id).scheduling_s, []).append(engine_id)
    return tuple(ids[0] for ids in groups.values()), {s: tuple(ids) for s, ids in groups.items()}


def serving_defaults() -> list[dict]:
    """data/serving_defaults.yaml: how engines serve DeepSeek-V3, each with its layout and source."""
    return list(load_mapping(SERVING_DEFAULTS_PATH)["deployments"])


def _side_key(side: str, sc: Any) -> tuple:
    """What one side's decode depends on: the model (and for the dense side q and its
    architecture) and every field of its deployment (the dataclass's repr lists them all)."""
    if side == "dense":
        return (side, sc.model_id, sc.q, sc.dense_arch, repr(sc.dense_deployment))
    return (side, sc.model_id, repr(sc.moe_deployment))


def search(values: Values, axes: Mapping[str, Iterable[Any]], *, target: float, tolerance: float,
           model: str | None = None, context: float | None = None) -> list[dict]:
    """Every combination of ``axes`` with its ratio R at (model, context) (defaults: the headline).

    Each row: the axis values, q, the two throughputs and batches, ``ratio`` (None where a side
    cannot be placed), ``dense_layout_auto`` (the dense layout is the one 'auto' picks: dp-tp
    where tensor parallelism would replicate its KV), ``within`` (|R/target - 1| <= tolerance) and ``resembles`` (ids of
    :func:`serving_defaults` entries with the same MoE layout, accelerator and GPU count).
    A combination whose dense comparator cannot be built (q too small for the architecture) is
    a row with ratio None and ``note`` saying so.
    """
    model = model or values["headline_model"]
    ctx = float(values["headline_context"] if context is None else context)
    keys = list(axes)
    served = serving_defaults()
    cache: dict[tuple, tuple[float, int]] = {}

    def side(key: tuple, profile: Any, dep: Any) -> tuple[float, int]:
        if key not in cache:
            r = decode(profile, dep, ctx)
            ok = bool(r.feasible)
            cache[key] = (float(r.tokens_per_s) if ok else 0.0, int(r.batch) if ok else 0)
        return cache[key]

    rows = []
    for combo in itertools.product(*(tuple(axes[k]) for k in keys)):
        changes = dict(zip(keys, combo))
        v = dict(values, **changes)
        row: dict[str, Any] = dict(changes)
        try:
            sc = scenario(v, model)
        except QsError as err:
            rows.append({**row, "dense_layout_auto": False, "q": None, "moe_tokens_per_s": None, "dense_tokens_per_s": None, "moe_batch": 0, "dense_batch": 0, "ratio": None, "within": False, "resembles": "", "note": str(err)})
            continue
        m_tps, m_b = side(_side_key("moe", sc), sc.moe, sc.moe_deployment)
        d_tps, d_b = side(_side_key("dense", sc), sc.dense, sc.dense_deployment)
        ratio = d_tps / m_tps if m_tps > 0 and d_tps > 0 else None
        like = [d["id"] for d in served if d["moe_layout"] == v["moe_layout"] and d["hardware"] == v["hardware"] and d["gpus"] == v["gpus"]]
        auto = sc.dense_deployment.layout == dense_layout_for(sc.dense, "auto", sc.dense_deployment.gpus)
        rows.append({**row, "dense_layout_auto": auto, "q": sc.q, "moe_tokens_per_s": m_tps or None, "dense_tokens_per_s": d_tps or None, "moe_batch": m_b, "dense_batch": d_b,
                     "ratio": ratio, "within": ratio is not None and abs(ratio / target - 1) <= tolerance, "resembles": " ".join(like), "note": ""})
    return rows


def summarize(rows: Sequence[Mapping[str, Any]], by: str, *, target: float, tolerance: float) -> list[dict]:
    """Per value of ``by``: configurations, feasible, median / max R, share within tolerance of target."""
    out = []
    for value in dict.fromkeys(r[by] for r in rows):
        group = [r for r in rows if r[by] == value]
        ratios = np.array([r["ratio"] for r in group if r["ratio"] is not None])
        out.append({
            by: value,
            "configurations": len(group),
            "feasible": int(ratios.size),
            "median": float(np.median(ratios)) if ratios.size else None,
            "max": float(ratios.max()) if ratios.size else None,
            "within": sum(bool(r["within"]) for r in group),
            "within_share": sum(bool(r["within"]) for r in group) / ratios.size if ratios.size else 0.0,
            "above_target": int(np.sum(ratios > target * (1 + tolerance))),
        })
    return out


def axis_influence(rows: Sequence[Mapping[str, Any]], axes: Iterable[str]) -> list[dict]:
    """Axes ranked by how far they move the median R: span = max - min over the axis's values of
    the median R of the feasible rows with that value."""
    out = []
    for axis in axes:
        medians = {}
        for value in dict.fromkeys(r[axis] for r in rows):
            ratios = [r["ratio"] for r in rows if r[axis] == value and r["ratio"] is not None]
            if ratios:
                medians[value] = float(np.median(ratios))
        if medians:
            lo, hi = min(medians, key=medians.get), max(medians, key=medians.get)
            out.append({"axis": axis, "span": medians[hi] - medians[lo], "lowest": f"{lo} ({medians[lo]:.2f}x)", "highest": f"{hi} ({medians[hi]:.2f}x)"})
    return sorted(out, key=lambda r: -r["span"])


def deployment_ratios(values: Values, model: str | None = None) -> list[dict]:
    """The headline ratio under each engine's published way of serving (data/serving_defaults.yaml):
    its accelerator, GPU count and MoE layout, every other parameter at the build's value."""
    out = []
    for d in serving_defaults():
        v = dict(values, hardware=d["hardware"], gpus=d["gpus"], moe_layout=d["moe_layout"])
        sc = scenario(v, model)
        m = decode(sc.moe, sc.moe_deployment, v["headline_context"])
        n = decode(sc.dense, sc.dense_deployment, v["headline_context"])
        ok = bool(m.feasible) and bool(n.feasible)
        out.append({"id": d["id"], "engine": d["engine"], "recipe": d["recipe"], "hardware": d["hardware"], "gpus": d["gpus"],
                    "moe_layout": d["moe_layout"], "match": d["match"], "engine_default": bool(d["default"]),
                    "ratio": float(n.tokens_per_s) / float(m.tokens_per_s) if ok else None, "source": d["source"]})
    return out


# -- the band ------------------------------------------------------------------------------

def constant_sets(values: Values, variant: Mapping[str, Any] | None = None,
                  bootstrap_path: Any = BOOTSTRAP_PATH) -> tuple[str, list[dict]]:
    """The constant sets the band spans, and how they were obtained.

    Without ``variant``, and where data/params/bootstrap.csv exists: the calibration's bootstrap
    resamples of the fitted constants (at most :data:`MAX_BAND_SETS`, every k-th row from the
    first, k = ceil(rows / MAX_BAND_SETS)), each restricted to the constants the build has at the
    reference set's value (data/params/default.yaml), so a reader's own changes (GPUs, q, a
    constant set by hand) are never undone. With a ``variant`` (another parameter set; default:
    data/params/datasheet.yaml where no bootstrap file exists) the constants are the numeric keys
    whose values differ between it and the reference set, and the sets are the build's own and
    the variant's. With neither, the only set is the build's (the band is the q spread alone).
    """
    reference = load_mapping(DEFAULT_PARAMS_PATH)  # the constants are what the sets change in the reference set
    if variant is None and Path(bootstrap_path).exists():
        rows = load_bootstrap(bootstrap_path)
        step = max(1, math.ceil(len(rows) / MAX_BAND_SETS))
        chosen = rows[::step]
        keys = sorted(k for k in (chosen[0] if chosen else {}) if k in values and values[k] == reference.get(k))
        if not keys:
            return "q estimators only (the build sets every calibrated constant itself)", [{}]
        return (f"q estimators x {len(chosen)} of {len(rows)} bootstrap resamples of the calibrated constants "
                f"(data/params/bootstrap.csv; {', '.join(keys)})"), [{k: r[k] for k in keys} for r in chosen]
    if variant is None and DATASHEET_PARAMS_PATH.exists():
        variant = load_mapping(DATASHEET_PARAMS_PATH)
    if variant is None:
        return "q estimators only (no constant uncertainty available)", [{}]
    keys = sorted(k for k, x in variant.items() if k in values and isinstance(x, (int, float)) and not isinstance(x, bool) and x != reference.get(k))
    if not keys:
        return "q estimators only (the variant has the build's constants)", [{}]
    return f"q estimators x {{build, {variant.get('name', 'variant')}}} constants ({', '.join(keys)})", [{}, {k: variant[k] for k in keys}]


def ratio_band(values: Values, model: str | None = None, context: float | None = None,
               sets: Sequence[Mapping[str, Any]] = ({},), q_rules: Sequence[str] | None = None) -> dict:
    """R at (model, context) with its band over q rules x constant ``sets``.

    R_ij = ratio with q by rule i and constants j (``sets``: overrides of ``values``); the rules
    are every estimator with a value for the model, or the explicit q alone under q_rule explicit.
    band = [min(Q_05, R), max(Q_95, R)] of the pooled R_ij, R the point ratio (the build's rule
    and constants); None where R is None. ``points`` counts the R_ij, ``infeasible`` those with
    a side unplaced (left out of the quantiles).
    """
    model = model or values["headline_model"]
    ctx = float(values["headline_context"] if context is None else context)

    def ratio(v: Values) -> float | None:
        try:
            sc = scenario(v, model)
        except QsError:  # no dense comparator under this rule (q*A below the attention it keeps)
            return None
        m, d = decode(sc.moe, sc.moe_deployment, ctx), decode(sc.dense, sc.dense_deployment, ctx)
        return float(d.tokens_per_s) / float(m.tokens_per_s) if bool(m.feasible) and bool(d.feasible) else None

    point = ratio(values)
    if q_rules is None:  # a q the reader fixed has no estimator spread
        q_rules = ["explicit"] if values["q_rule"] == "explicit" else [r for r, q in q_estimates(model).items() if q is not None]
    rules = list(q_rules)
    pooled = [ratio(dict(values, **s, q_rule=rule)) for rule, s in itertools.product(rules, sets)]
    feasible = np.array([r for r in pooled if r is not None])
    if point is None or not feasible.size:
        band = None
    else:
        lo, hi = np.quantile(feasible, BAND_QUANTILES)
        band = [float(min(lo, point)), float(max(hi, point))]
    return {"ratio": point, "ratio_band": band, "points": len(pooled), "infeasible": len(pooled) - int(feasible.size), "q_rules": rules, "constant_sets": len(sets)}


# -- baselines of the inequality -------------------------------------------------------------

def _best_threshold(records: Sequence[Mapping[str, Any]]) -> float:
    """L* maximising agreement of 'dense wins iff context >= L*' on ``records`` (candidates:
    every context, and infinity = 'never'); ties go to the largest L*."""
    candidates = sorted({float(r["context"]) for r in records}) + [float("inf")]
    score = {c: sum((r["context"] >= c) == r["simulated_disadvantaged"] for r in records) for c in candidates}
    best = max(score.values())
    return max(c for c in candidates if score[c] == best)


def baselines(records: Sequence[Mapping[str, Any]], group: str = "model") -> dict:
    """Agreement with the simulated winner (``simulated_disadvantaged``: dense faster) of the
    trivial predictors and of the inequality's forms, by context and overall.

    Predictors: always_moe (never disadvantaged), always_dense, threshold (dense wins iff
    context >= L*, L* chosen on the records of the other ``group`` values: out of sample),
    simple and general (the record's own predictions). ``thresholds``: L* per held-out group.
    """
    thresholds = {g: _best_threshold([r for r in records if r[group] != g]) for g in dict.fromkeys(r[group] for r in records)}
    predictions = {
        "always_moe": lambda r: False,
        "always_dense": lambda r: True,
        "threshold": lambda r: r["context"] >= thresholds[r[group]],
        "simple": lambda r: bool(r["simple"]),
        "general": lambda r: bool(r["general"]),
    }

    def score(rows: Sequence[Mapping[str, Any]]) -> dict:
        n = len(rows)
        out: dict[str, Any] = {"points": n, "dense_wins_share": sum(r["simulated_disadvantaged"] for r in rows) / n if n else 0.0}
        for name, predict in predictions.items():
            out[name] = sum(predict(r) == r["simulated_disadvantaged"] for r in rows) / n if n else 0.0
        trivial = max(out[k] for k in ("always_moe", "always_dense", "threshold"))
        out["best_baseline"] = trivial
        out["general_adds"] = out["general"] - trivial
        return out

    by_context = [{"context": int(c), **score([r for r in records if r["context"] == c])} for c in sorted({r["context"] for r in records})]
    return {"overall": score(records), "by_context": by_context, "thresholds": {str(g): (None if t == float("inf") else int(t)) for g, t in thresholds.items()}}
