"""Published kernel rates (data/kernels/): checks on the model's kernels and the fit of a constant.

``grouped_gemm_check`` reads DeepGEMM's H800 tables and gives, for each grouped-GEMM layout, the
range over its rows of

    r = TFLOP/s(grouped, n, k) / TFLOP/s(dense M = 4096, same n, k)        [dimensionless]

the rate a grouped GEMM reaches relative to a dense GEMM of the same expert shape: the quantity
``grouped_gemm_efficiency`` fits for the decode (masked) layout.

``roofline_fit`` fits the soft roofline of ``qsmoe.physics.kernels.roofline_time_s`` to every row
of the same tables. Row i (G groups of an m x k by k x n FP8 GEMM with a BF16 output) does

    F_i = 2 G m n k  FLOPs,    Q_i = G (m k + n k + 2 m n)  bytes                 (the README's own
                                                                                  TFLOPS and GB/s)

in the published time t_i = F_i / TFLOP/s_i, and the model gives

    t_i(s, eta_c, eta_m) = R_s(F_i / (P * eta_c), Q_i / (BW * eta_m))

with P the H800's dense FP8 peak and BW its HBM bandwidth (data/hardware/h800.yaml). The fit is
the grid point (s, eta_c, eta_m) with the smallest rms of ln(t_i(s, ...) / t_i) over the rows
(s from 0 to 1 by :data:`SOFTNESS_STEP`, each eta from 0.40 to 1.00 by :data:`EFFICIENCY_STEP`;
a tie keeps the lower s). Only s is carried to the serving model (``roofline_softness`` in
data/params/default.yaml): eta_c and eta_m of one kernel library on one GPU are not the achieved
fractions of a serving step, which the calibration fits on the measurements.

``allreduce_check`` reads SGLang's published all-reduce times on 8x H100 (two custom kernels at
TP 2, 4 and 8, messages of 2 KiB to 4 MiB, data/kernels/allreduce-h100-sglang.yaml) and sets each
against the time ``physics.comm`` charges one tensor-parallel all-reduce of that message,

    t_model = alpha + 2 (G - 1) / G * M / (BW_link * eta_link)                    [s]

(alpha ``allreduce_latency_s``, BW_link half the bidirectional scale-up figure of the H100,
eta_link ``link_efficiency``, all from the parameter set), as r = t_published / t_model. The
published times include a kernel launch (no CUDA graph), which alpha, a latency under graphs,
does not; a ratio above 1 at the smallest messages is partly that launch.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics.comm import collective_time_s
from qsmoe.physics.kernels import roofline_time_s
from qsmoe.physics.layouts import ACTIVATION_BYTES, ALL_REDUCE, Collective, all_reduce_bytes
from qsmoe.scenario.compare import deployment_from
from qsmoe.scenario.params import resolve
from qsmoe.specs.fileio import load_mapping
from qsmoe.specs.hardware import load_hardware

DEEPGEMM_PATH = DATA_DIR / "kernels" / "deepgemm-h800.yaml"
ALLREDUCE_PATH = DATA_DIR / "kernels" / "allreduce-h100-sglang.yaml"
#: The accelerator DeepGEMM's tables were measured on, and the format of their inputs.
DEEPGEMM_HARDWARE, DEEPGEMM_DTYPE = "h800", "fp8"
#: Grid steps of the fit: the softness s and the two achieved fractions.
SOFTNESS_STEP, EFFICIENCY_STEP = 0.01, 0.005
#: Every table of the file (a dense row is one GEMM: groups = 1).
_TABLES = ("dense", "contiguous", "masked")


def grouped_gemm_check(path: Any = None) -> dict[str, Any]:
    """{source, url, commit, masked: {low, high, m_low, m_high}, contiguous: {low, high}}: the range
    of grouped / dense TFLOP/s per layout and the tokens per group of the masked rows."""
    path = DEEPGEMM_PATH if path is None else path
    data = load_mapping(path)
    # the dense reference of a shape is its largest-M row (M = 4096): in increasing M, the last one wins
    dense = {(r["n"], r["k"]): float(r["tflops"]) for r in sorted(data["dense"], key=lambda r: r["m"])}
    out: dict[str, Any] = {k: data[k] for k in ("source", "url", "commit")}
    for layout in ("masked", "contiguous"):
        rows = data[layout]
        if not rows:
            raise QsError("has no rows", source=str(path), field=layout)
        missing = [(r["n"], r["k"]) for r in rows if (r["n"], r["k"]) not in dense]
        if missing:
            raise QsError(f"no dense row for shape (n, k) = {missing[0]}", source=str(path), field=layout)
        ratios = [float(r["tflops"]) / dense[(r["n"], r["k"])] for r in rows]
        out[layout] = {"low": min(ratios), "high": max(ratios), "m_low": min(r["m"] for r in rows), "m_high": max(r["m"] for r in rows)}
    return out


def kernel_rows(path: Any = None) -> list[dict[str, float]]:
    """Every row of the tables as {table, groups, m, n, k, flops, bytes, time_s, gbps}: F_i, Q_i and
    t_i of the module docstring, and the published GB/s."""
    path = DEEPGEMM_PATH if path is None else path
    data = load_mapping(path)
    out = []
    for table in _TABLES:
        for r in data[table]:
            missing = [key for key in ("m", "n", "k", "tflops", "gbps") if key not in r]
            if missing:
                raise QsError(f"a row has no {missing[0]!r}", source=str(path), field=table)
            g, m, n, k = (float(r.get("groups", 1)), float(r["m"]), float(r["n"]), float(r["k"]))
            tflops = float(r["tflops"])
            if not tflops > 0:
                raise QsError(f"must be a positive rate, got {r['tflops']!r}", source=str(path), field=f"{table}.tflops")
            flops = 2.0 * g * m * n * k
            out.append({"table": table, "groups": g, "m": m, "n": n, "k": k, "flops": flops,
                        "bytes": g * (m * k + n * k + 2.0 * m * n), "time_s": flops / (tflops * 1e12), "gbps": float(r["gbps"])})
    return out


def roofline_fit(path: Any = None) -> dict[str, Any]:
    """The fit of the module docstring: {softness, eta_c, eta_m, rms (of ln t at the fit),
    rms_hard (the best rms with s = 0, the classic roofline), rms_by_softness ({s: best rms} at
    every s of the grid), rows (their number), source, url, commit}."""
    path = DEEPGEMM_PATH if path is None else path
    rows = kernel_rows(path)
    grid = np.round(np.arange(0.40, 1.0 + EFFICIENCY_STEP / 2, EFFICIENCY_STEP), 3)
    eta_c, eta_m = np.meshgrid(grid, grid, indexing="ij")
    hw = load_hardware(DEEPGEMM_HARDWARE)
    published = np.array([r["time_s"] for r in rows])
    # c_i and m_i at every (eta_c, eta_m) of the grid, rows on the last axis; only R_s depends on s
    compute = np.array([r["flops"] for r in rows]) / (hw.peak_for(DEEPGEMM_DTYPE) * eta_c[..., None])
    memory = np.array([r["bytes"] for r in rows]) / (hw.hbm_bandwidth_bytes_per_s * eta_m[..., None])

    def best(softness: float) -> tuple[float, float, float]:
        rms = np.sqrt(np.mean(np.log(roofline_time_s(compute, memory, softness) / published) ** 2, axis=-1))
        i = np.unravel_index(int(np.argmin(rms)), rms.shape)
        return float(rms[i]), float(eta_c[i]), float(eta_m[i])

    softnesses = np.round(np.arange(0.0, 1.0 + SOFTNESS_STEP / 2, SOFTNESS_STEP), 2)
    fits = {float(s): best(float(s)) for s in softnesses}
    s_best = min(fits, key=lambda s: (round(fits[s][0], 12), s))
    data = load_mapping(path)
    return {"softness": s_best, "eta_c": fits[s_best][1], "eta_m": fits[s_best][2], "rms": fits[s_best][0],
            "rms_hard": fits[0.0][0], "rms_by_softness": {s: fit[0] for s, fit in fits.items()},
            "rows": len(rows), **{k: data[k] for k in ("source", "url", "commit")}}


def allreduce_check(values: Any = None, path: Any = None) -> dict[str, Any]:
    """{source, url, commit, hardware, kernels: {name: {rows, low, high, median}}}: for every published
    row {tp, bytes, published_s, model_s, ratio} (the module docstring's r = t_published / t_model,
    t_model from the parameter set ``values``, default the book's), and per kernel the range and
    median of r."""
    path = ALLREDUCE_PATH if path is None else path
    data = load_mapping(path)
    values = dict(resolve().values if values is None else values)
    per_element = float(data["bytes_per_element"])
    out: dict[str, Any] = {k: data[k] for k in ("source", "url", "commit", "hardware")}
    out["kernels"] = {}
    for name, rows in data["kernels"].items():
        if not rows:
            raise QsError("has no rows", source=str(path), field=f"kernels.{name}")
        checked = []
        for r in rows:
            tp, message_bytes, published_s = int(r["tp"]), float(r["size"]) * per_element, float(r["us"]) * 1e-6
            if not published_s > 0 or tp < 2:
                raise QsError(f"needs tp >= 2 and a positive time, got tp {r['tp']!r}, us {r['us']!r}", source=str(path), field=f"kernels.{name}")
            dep = deployment_from(dict(values, hardware=data["hardware"], gpus=tp), "tp")
            call = Collective(ALL_REDUCE, 1.0, all_reduce_bytes(np.asarray(message_bytes / ACTIVATION_BYTES), 1.0, tp))
            model_s = float(collective_time_s(call, dep.allreduce_latency_s, dep.link_bytes_per_s))
            checked.append({"tp": tp, "bytes": message_bytes, "published_s": published_s, "model_s": model_s, "ratio": published_s / model_s})
        ratios = [c["ratio"] for c in checked]
        out["kernels"][name] = {"rows": checked, "low": min(ratios), "high": max(ratios), "median": float(np.median(ratios))}
    return out
