"""Numeric formats and their storage size."""
from __future__ import annotations

from qsmoe.errors import QsError

#: Bytes per stored value for each supported format (fp4/int4 pack two values per byte).
BYTES_PER_VALUE: dict[str, float] = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "fp4": 0.5, "int4": 0.5}

#: The compute format a GEMM runs in when its weights are stored in a given format.
COMPUTE_FORMAT: dict[str, str] = {"fp32": "bf16", "bf16": "bf16", "fp16": "bf16", "fp8": "fp8", "int8": "fp8", "fp4": "fp4", "int4": "fp4"}


def bytes_per_value(dtype: str, *, field: str = "dtype", source: str | None = None) -> float:
    """Storage bytes of one value in ``dtype``; a clear error for an unknown format."""
    try:
        return BYTES_PER_VALUE[dtype]
    except (KeyError, TypeError):
        known = ", ".join(sorted(BYTES_PER_VALUE))
        raise QsError(f"unknown dtype {dtype!r} (known: {known})", source=source, field=field) from None
