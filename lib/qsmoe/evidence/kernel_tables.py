"""Published kernel rates used as checks on the fitted constants (data/kernels/).

``grouped_gemm_check`` reads DeepGEMM's H800 tables and gives, for each grouped-GEMM layout, the
range over its rows of

    r = TFLOP/s(grouped, n, k) / TFLOP/s(dense M = 4096, same n, k)        [dimensionless]

the rate a grouped GEMM reaches relative to a dense GEMM of the same expert shape: the quantity
``grouped_gemm_efficiency`` fits for the decode (masked) layout.
"""
from __future__ import annotations

from typing import Any

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.fileio import load_mapping

DEEPGEMM_PATH = DATA_DIR / "kernels" / "deepgemm-h800.yaml"


def grouped_gemm_check(path: Any = None) -> dict[str, Any]:
    """{source, url, commit, masked: {low, high, m_low, m_high}, contiguous: {low, high}}: the range
    of grouped / dense TFLOP/s per layout and the tokens per group of the masked rows."""
    path = DEEPGEMM_PATH if path is None else path
    data = load_mapping(path)
    dense = {(r["n"], r["k"]): float(r["tflops"]) for r in data["dense"]}
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
