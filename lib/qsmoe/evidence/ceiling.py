"""The roofline ceiling of a measurement: the most its recorded setup gives under any constants.

Each row is predicted once more (:func:`qsmoe.evidence.validation.predict_rows`, its own setup)
with every achieved fraction at the datasheet peak, every fixed cost at zero and nothing held
back (:data:`CEILING_VALUES`):

    mem_efficiency_<vendor> = compute_efficiency_<vendor> = attention_mem_efficiency
        = grouped_gemm_efficiency = 1,
    step_overhead_s = kernel_floor_s = kernel_launch_s = 0,
    include_comm = false (collectives hidden behind the step, as a perfect overlap would),
    reserve_fraction = 0 (all of the HBM for weights and KV cache),
    grouped_gemm_block_m = 1 (no tile padding), attention_dtype = fp8 (the faster attention peak),
    roofline_softness = 0 (each kernel the slower of its compute and memory time, not more),

    ceiling_i = pred_i(CEILING_VALUES),    ratio_i = meas_i / ceiling_i                 [1]

Every part of the model's step (a roofline time R_s(F / (P * eta_c), Q / (BW * eta_m)), which
is at least the max of the two and grows with s, a fixed cost) only shrinks as a fraction rises to
1, the softness falls to 0 or a cost falls to 0, and a zero reserve admits the
largest batch, whose throughput B / T(B) is the largest because T is affine in B with a positive
intercept (the weights). So no values of the fitted constants, and no reserve, link efficiency
or latency, predict more than ceiling_i. What stays as the parameter set and data/engines/ have
it is the form and the workload: the serving mode (``batching``), how the engine runs prefill,
the routing (``routing_skew``) and MTP. ratio_i > 1 says that the row's recorded setup
(accelerator and GPUs, model, weight and KV formats, lengths, concurrency, layout) cannot give
the measured throughput under this form: a setup field is recorded wrong, the source's number
is, or the form charges the row for work it need not do. For a memory-bound row (a GQA model
whose weights and KV cache are read once per step) the ceiling is the HBM bound itself.

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
CEILING_VALUES: dict[str, float | int | bool | str] = {
    **{f"{fraction}_{vendor}": 1.0 for fraction in VENDOR_FRACTIONS for vendor in VENDORS},
    "attention_mem_efficiency": 1.0,
    "grouped_gemm_efficiency": 1.0,
    "step_overhead_s": 0.0,
    "kernel_floor_s": 0.0,
    "kernel_launch_s": 0.0,
    "include_comm": False,
    "reserve_fraction": 0.0,
    "grouped_gemm_block_m": 1,
    "attention_dtype": "fp8",
    "roofline_softness": 0.0,
}


def ceiling_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """values | CEILING_VALUES: the parameter set at its ceiling (module docstring)."""
    return dict(values, **CEILING_VALUES)


def above_ceiling(ratio: float | None) -> bool:
    """Whether a measured / ceiling ratio exceeds 1, so that no constants can predict the row
    (False without a ratio)."""
    return ratio is not None and ratio > 1.0


def ceilings(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[float | None]:
    """ceiling_i [output tokens/s per GPU] of each row (None where the setup gives no prediction)."""
    return [r["predicted"] for r in predict_rows(rows, ceiling_values(values), prefill_stalls=prefill_stalls)]


def ceiling_ratios(rows: Sequence[Measurement], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[float | None]:
    """ratio_i = meas_i / ceiling_i [1] of each row (None without a ceiling); above 1 the recorded
    setup cannot give the measurement."""
    return [row.tokens_per_s_per_gpu / c if c else None for row, c in zip(rows, ceilings(rows, values, prefill_stalls=prefill_stalls))]


def judge_doubts(rows: Sequence[Measurement], doubts: Sequence[Doubt], values: Mapping[str, Any], *, prefill_stalls: bool = True) -> list[dict[str, Any]]:
    """Per doubt, in the order of ``doubts``: {id, field, recorded, alternative, ratio_recorded,
    ratio_alternative, ruled_out}, the alternative reading changing that doubt's field alone
    and ruled_out the readings ('recorded', 'alternative') whose ratio exceeds 1."""
    by_id = {r.id: r for r in rows}
    recorded = [by_id[d.id] for d in doubts]
    alternative = [apply_doubts([by_id[d.id]], [d])[0] for d in doubts]
    ratios = ceiling_ratios(recorded + alternative, values, prefill_stalls=prefill_stalls)
    out = []
    for d, as_recorded, as_alternative in zip(doubts, ratios[:len(doubts)], ratios[len(doubts):]):
        readings = {"recorded": as_recorded, "alternative": as_alternative}
        out.append({"id": d.id, "field": d.field, "recorded": d.recorded, "alternative": d.alternative,
                    "ratio_recorded": as_recorded, "ratio_alternative": as_alternative,
                    "ruled_out": [k for k, x in readings.items() if above_ceiling(x)]})
    return out
