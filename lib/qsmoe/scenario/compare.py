"""MoE against its quality-matched dense model under one parameter set.

``Scenario`` turns a parameter-set mapping (data/params/default.yaml) into the MoE and
dense deployments; ``compare`` evaluates both at a context (or a NumPy array of contexts)
and returns the throughput ratio with the qs-inequality prediction beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from qsmoe.physics.decode import DecodeResult, decode
from qsmoe.physics.deployment import LAYOUTS, VENDOR_FRACTIONS, Deployment, vendor_key
from qsmoe.errors import QsError
from qsmoe.specs.hardware import HardwareSpec, load_hardware
from qsmoe.specs.fileio import excerpt
from qsmoe.specs.limits import MAX_CONTEXT_TOKENS, MAX_LIST_ENTRIES, PARAMETER_BOUNDS
from qsmoe.physics.inequality import memory_bound_ratio, predicted_disadvantaged, qs_threshold
from qsmoe.physics.memory import hbm_budget, weight_bytes_per_gpu
from qsmoe.specs.models import load_model
from qsmoe.physics.profile import DecodeProfile, profile_of
from qsmoe.physics.quality import DENSE_ARCHS, Q_RULES, author_claim, dense_profile, estimate_q
from qsmoe.physics.routing import fraction_streamed

DEPLOYMENT_KEYS = ("gpus", "weight_dtype", "kv_dtype", "attention_dtype", "attention_proj_dtype", "head_dtype", "reserve_fraction", "link_efficiency", "include_comm", "comm_overlap", "step_overhead_s", "routing_skew", "engine", "use_cuda_graphs", "kernel_floor_s", "kernel_launch_s", "allreduce_latency_s", "alltoall_latency_s", "attention_mem_efficiency", "grouped_gemm_efficiency", "grouped_gemm_block_m", "roofline_softness", "batching", "mtp_draft_tokens", "mtp_acceptance_length")


def _number(values: Mapping[str, Any], key: str) -> Any:
    if key not in values:
        raise QsError("missing from the parameter set", field=key)
    return values[key]


def fraction_key(values: Mapping[str, Any], fraction: str) -> str:
    """The parameter-set key of ``fraction`` (e.g. 'mem_efficiency') for the set's own
    accelerator: ``<fraction>_<vendor>``."""
    return vendor_key(fraction, load_hardware(_number(values, "hardware")))


def vendor_fractions(values: Mapping[str, Any], hardware: HardwareSpec | None = None) -> dict[str, float]:
    """{fraction: value} of the achieved fractions for the vendor of ``hardware`` (default: the
    set's own accelerator): each fraction of VENDOR_FRACTIONS read from ``<fraction>_<vendor>``."""
    hardware = load_hardware(_number(values, "hardware")) if hardware is None else hardware
    out = {}
    for name in VENDOR_FRACTIONS:
        key = vendor_key(name, hardware)
        value = _number(values, key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise QsError(f"expected a number, got {value!r}", field=key)
        out[name] = float(value)
    return out


def deployment_from(values: Mapping[str, Any], layout: str) -> Deployment:
    """A Deployment from parameter-set values with the given layout; the achieved fractions are
    those of the accelerator's vendor (:func:`vendor_fractions`)."""
    hardware = load_hardware(_number(values, "hardware"))
    kwargs = {k: _number(values, k) for k in DEPLOYMENT_KEYS}
    for key in ("reserve_fraction", "link_efficiency", "step_overhead_s", "routing_skew", "kernel_floor_s", "kernel_launch_s", "allreduce_latency_s", "alltoall_latency_s", "attention_mem_efficiency", "grouped_gemm_efficiency", "roofline_softness", "mtp_acceptance_length"):
        if isinstance(kwargs[key], bool) or not isinstance(kwargs[key], (int, float)):
            raise QsError(f"expected a number, got {kwargs[key]!r}", field=key)
        kwargs[key] = float(kwargs[key])
    return Deployment(hardware=hardware, layout=layout, **kwargs, **vendor_fractions(values, hardware))


def dense_layout_for(profile: DecodeProfile, requested: str, gpus: int) -> str:
    """'auto' picks dp-tp when tensor parallelism would replicate KV (fewer KV heads than GPUs,
    or MLA's unsplittable latent), tp otherwise."""
    if requested == "auto":
        return "dp-tp" if profile.kv_head_split < gpus else "tp"
    return requested


def check_values(values: Mapping[str, Any]) -> None:
    """Range checks of a parameter set's physics values; one QsError naming the key and value.

    Every number within its plausible bound (qsmoe.specs.limits.PARAMETER_BOUNDS), both
    deployments built (GPUs, formats, fractions), the q rule, the dense architecture, the
    models (each an MoE with a dense comparator under these values) and the contexts (whole
    token counts up to MAX_CONTEXT_TOKENS): everything a chapter reads, before any runs.
    """
    for key, allowed in (("q_rule", Q_RULES), ("dense_arch", DENSE_ARCHS), ("moe_layout", LAYOUTS), ("dense_layout", LAYOUTS + ("auto",))):
        if values[key] not in allowed:
            raise QsError(f"{excerpt(values[key])} is not one of {', '.join(allowed)}", field=key)
    for key, (low, high) in PARAMETER_BOUNDS.items():
        value = values[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise QsError(f"must be a number from {low:g} to {high:g}, got {excerpt(value)}", field=key)
    deployment_from(values, values["moe_layout"])
    deployment_from(values, "tp" if values["dense_layout"] == "auto" else values["dense_layout"])
    for key in ("models", "contexts"):
        if not isinstance(values[key], list) or not 1 <= len(values[key]) <= MAX_LIST_ENTRIES:
            raise QsError(f"must be a list of 1 to {MAX_LIST_ENTRIES} entries, got {excerpt(values[key])}", field=key)
    for key in ("models", "headline_model"):
        for model_id in values[key] if key == "models" else [values[key]]:
            if not isinstance(model_id, str) or not model_id:
                raise QsError(f"expected a model id or file, got {excerpt(model_id)}", field=key)
            try:
                spec = load_model(model_id)
            except QsError as err:
                if err.source:  # a problem inside the model's own file: that file and field say it
                    raise
                raise QsError(err.message, field=key) from None
            if not spec.is_moe:
                raise QsError(f"{excerpt(model_id)} is a dense model; the book compares MoE models with dense comparators", field=key)
            try:
                scenario(values, model_id)  # the dense comparator must exist (q*A above the attention it keeps)
            except QsError as err:
                raise QsError(f"no dense comparator for {excerpt(model_id)}: {err}", field=key) from None
    for key, contexts in (("contexts", values["contexts"]), ("headline_context", [values["headline_context"]])):
        for context in contexts:
            whole = isinstance(context, int) or (isinstance(context, float) and context.is_integer())
            if isinstance(context, bool) or not whole or not 0 <= context <= MAX_CONTEXT_TOKENS:
                raise QsError(f"expected whole token counts from 0 to {MAX_CONTEXT_TOKENS}, got {excerpt(context)}", field=key)


@dataclass(frozen=True)
class Scenario:
    """One MoE, its dense comparator, and the two deployments."""

    model_id: str
    moe: DecodeProfile
    dense: DecodeProfile
    moe_deployment: Deployment
    dense_deployment: Deployment
    q: float
    q_rule: str
    dense_arch: str

    @property
    def s(self) -> float:
        return float(self.moe.s)

    @property
    def qs(self) -> float:
        return self.q * self.s


def scenario(values: Mapping[str, Any], model: str | None = None, q: float | None = None) -> Scenario:
    """Build the scenario for ``model`` (default: the headline model) under ``values``.

    ``q`` overrides the parameter set's q rule when given.
    """
    spec = load_model(model or _number(values, "headline_model"))
    moe = profile_of(spec)
    if not spec.is_moe:
        raise QsError(f"{spec.id!r} is a dense model; compare needs an MoE", field="model")
    rule = "explicit" if q is not None else _number(values, "q_rule")
    try:
        q_value = estimate_q(rule, spec, moe.total_params, moe.active_params, q if q is not None else values.get("q_explicit"))
        if rule == "author" and author_claim(spec) == "beats":
            rule = "author (a lower bound: the MoE beats the paired dense model)"
    except QsError:
        if rule != "author":
            raise
        # No usable published pairing (e.g. Grok-1): fall back to the geometric mean, and say so.
        rule = "geomean (no usable author pairing)"
        q_value = estimate_q("geomean", spec, moe.total_params, moe.active_params)
    arch = _number(values, "dense_arch")
    dense = dense_profile(moe, q_value, arch)
    return Scenario(
        model_id=spec.id,
        moe=moe,
        dense=dense,
        moe_deployment=deployment_from(values, _number(values, "moe_layout")),
        dense_deployment=deployment_from(values, dense_layout_for(dense, _number(values, "dense_layout"), _number(values, "gpus"))),
        q=float(q_value),
        q_rule=rule,
        dense_arch=arch,
    )


def _replica_kv_bytes_per_sequence(profile: DecodeProfile, dep: Deployment, context: np.ndarray) -> np.ndarray:
    budget = hbm_budget(profile, dep, context)
    return budget.kv_bytes_per_sequence_per_gpu * dep.parallelism.replica_kv_copies(dep.gpus)


def inequality_terms(sc: Scenario, context: object, moe_batch: np.ndarray) -> dict[str, np.ndarray]:
    """The terms of the general qs inequality for this deployment (per replica).

    M = G * usable HBM (``usable_bytes``), W = the MoE's resident bytes as laid out
    (``moe_weight_bytes``), qs_eff = the dense model's resident bytes / W, phi at the MoE's
    batch, rho = dense / MoE KV bytes per sequence.
    """
    ctx = np.asarray(context, dtype=float)
    g = sc.moe_deployment.gpus
    m = g * sc.moe_deployment.usable_hbm_bytes
    w = g * weight_bytes_per_gpu(sc.moe, sc.moe_deployment)
    qs_eff = sc.dense_deployment.gpus * weight_bytes_per_gpu(sc.dense, sc.dense_deployment) / w
    phi = fraction_streamed(np.maximum(moe_batch, 1.0), sc.moe.n_experts, sc.moe.top_k, sc.moe_deployment.routing_skew)
    rho = _replica_kv_bytes_per_sequence(sc.dense, sc.dense_deployment, ctx) / _replica_kv_bytes_per_sequence(sc.moe, sc.moe_deployment, ctx)
    w_r = sc.moe.routed_params * sc.moe_deployment.weight_bytes  # decode-path routed experts, the only weights a step may skip
    theta = qs_threshold(m, w, phi, rho, w_r)
    return {
        "usable_bytes": np.asarray(m),
        "moe_weight_bytes": np.asarray(w),
        "qs_eff": qs_eff,
        "phi": phi,
        "kv_ratio": rho,
        "threshold": theta,
        "memory_bound_ratio": memory_bound_ratio(qs_eff, m, w, phi, rho, w_r),
        "moe_fits": np.asarray(m > w),
        "predicted_disadvantaged": (m <= w) | predicted_disadvantaged(qs_eff, 1.0, theta),
    }


@dataclass(frozen=True)
class Comparison:
    scenario: Scenario
    moe: DecodeResult
    dense: DecodeResult
    terms: dict[str, np.ndarray]

    @property
    def both_feasible(self) -> np.ndarray:
        return self.moe.feasible & self.dense.feasible

    @property
    def ratio(self) -> np.ndarray:
        """Dense / MoE tokens per second (0 where either is infeasible)."""
        return np.where(self.both_feasible, self.dense.tokens_per_s / np.where(self.both_feasible, self.moe.tokens_per_s, 1.0), 0.0)

    def record(self, index: tuple = ()) -> dict:
        sc = self.scenario
        ok = bool(self.both_feasible[index])
        return {
            "model": sc.model_id,
            "hardware": sc.moe_deployment.hardware.id,
            "gpus": sc.moe_deployment.gpus,
            "moe_layout": sc.moe_deployment.layout,
            "dense_layout": sc.dense_deployment.layout,
            "weight_dtype": sc.moe_deployment.weight_dtype,
            "kv_dtype": sc.moe_deployment.kv_dtype,
            "dense_arch": sc.dense_arch,
            "q_rule": sc.q_rule,
            "q": sc.q,
            "s": sc.s,
            "qs": sc.qs,
            "dense_params": float(sc.dense.total_params),
            "moe": self.moe.record(index),
            "dense": self.dense.record(index),
            "ratio": float(self.ratio[index]) if ok else None,
            "predicted_disadvantaged": bool(self.terms["predicted_disadvantaged"][index]),
            "simple_inequality": bool(sc.qs < 1.0),
            "threshold": float(self.terms["threshold"][index]) if bool(self.terms["moe_fits"]) else None,
            "qs_eff": float(self.terms["qs_eff"]),
        }


def compare(sc: Scenario, context: object) -> Comparison:
    """Both models at their largest admissible batch at ``context`` (scalar or array)."""
    moe = decode(sc.moe, sc.moe_deployment, context)
    dense = decode(sc.dense, sc.dense_deployment, context)
    return Comparison(sc, moe, dense, inequality_terms(sc, context, moe.batch))
