"""The roofline ceiling of a measurement: the most its recorded setup can give under any constants.

Each row is predicted once more (:func:`qsmoe.evidence.validation.predict_rows`, its own setup)
with every achieved fraction at the datasheet peak and every fixed cost at zero
(:data:`CEILING_VALUES`):

    mem_efficiency_<vendor> = compute_efficiency_<vendor> = attention_mem_efficiency
        = grouped_gemm_efficiency = link_efficiency = 1,
    step_overhead_s = kernel_floor_s = kernel_launch_s = allreduce_latency_s = alltoall_latency_s = 0,
    reserve_fraction = 0 (all of the HBM for weights and KV cache),
    grouped_gemm_block_m = 1 (no tile padding),

    ceiling_i = pred_i(CEILING_VALUES),    ratio_i = meas_i / ceiling_i                 [1]

Every part of the model's step (a roofline time F / (P * eta_c) or Q / (BW * eta_m), a link time,
a fixed cost) only shrinks as a fraction rises to 1 or a cost falls to 0, and a zero reserve
admits the largest batch, whose throughput B / T(B) is the largest because T is affine in B with
a positive intercept (the weights). So no choice of the constants predicts more than ceiling_i.
ratio_i > 1 says that the row's recorded setup (accelerator and GPUs, model, weight and KV
formats, lengths, concurrency, layout) cannot produce the measured throughput at the datasheet
peaks: a setup field is recorded wrong, or the source's number is. The formats the setup does
not record (``attention_dtype``) and the engine's own data (``scheduling_s``, chunked prefill)
stay as the parameter set and data/engines/ have them, so the ceiling is the model's, taken at
its most generous; for a memory-bound row (a GQA model, weights and KV read once per step) it is
the HBM bound itself.

A doubted field (:mod:`qsmoe.evidence.doubts`) has two readings; :func:`judge_doubts` gives the
ratio under each, and a reading whose ratio exceeds 1 is ruled out.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from qsmoe.evidence.doubts import Doubt, apply_doubts
from qsmoe.evidence.measurements import Measurement
from qsmoe.evidence.validation import predict_rows
from qsmoe.physics.deployment import VENDOR_FRACTIONS, VENDORS

#: The values the ceiling takes, over those of the parameter set (module docstring).
CEILING_VALUES: dict[str, float] = {
    **{f"{fraction}_{vendor}": 1.0 for fraction in VENDOR_FRACTIONS for vendor in VENDORS},
    "attention_mem_efficiency": 1.0,
    "grouped_gemm_efficiency": 1.0,
    "link_efficiency": 1.0,
    "step_overhead_s": 0.0,
    "kernel_floor_s": 0.0,
    "kernel_launch_s": 0.0,
    "allreduce_latency_s": 0.0,
    "alltoall_latency_s": 0.0,
    "reserve_fraction": 0.0,
    "grouped_gemm_block_m": 1,
}


def ceiling_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` with :data:`CEILING_VALUES` over the keys it has (a parameter set without a
    key keeps its model without that term)."""
    return dict(values, **{k: v for k, v in CEILING_VALUES.items() if k in values})


def ceilings(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[float | None]:
    """ceiling_i [output tokens/s per GPU] of each row (None where the setup gives no prediction)."""
    return [r["predicted"] for r in predict_rows(rows, ceiling_values(values), prefill_stalls=prefill_stalls)]


def ceiling_ratios(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[float | None]:
    """ratio_i = meas_i / ceiling_i [1] of each row (None without a ceiling); above 1 the recorded
    setup cannot give the measurement."""
    return [row.tokens_per_s_per_gpu / c if c else None for row, c in zip(rows, ceilings(rows, values, prefill_stalls=prefill_stalls))]


def judge_doubts(rows: Sequence[Measurement], doubts: Sequence[Doubt], values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per doubt: {id, field, recorded, alternative, ratio_recorded, ratio_alternative,
    ruled_out} with ruled_out the readings ('recorded', 'alternative') whose ratio exceeds 1,
    in the order of ``doubts``."""
    ids = {d.id for d in doubts}
    doubted = [r for r in rows if r.id in ids]
    as_recorded = dict(zip((r.id for r in doubted), ceiling_ratios(doubted, values)))
    alternative = dict(zip((r.id for r in doubted), ceiling_ratios(apply_doubts(doubted, doubts), values)))
    out = []
    for d in doubts:
        ratios = {"recorded": as_recorded[d.id], "alternative": alternative[d.id]}
        out.append({"id": d.id, "field": d.field, "recorded": d.recorded, "alternative": d.alternative,
                    "ratio_recorded": ratios["recorded"], "ratio_alternative": ratios["alternative"],
                    "ruled_out": [k for k, x in ratios.items() if x is not None and x > 1.0]})
    return out
