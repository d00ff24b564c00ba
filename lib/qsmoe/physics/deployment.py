"""A deployment: accelerator, cluster size, layout, precisions and the named efficiency assumptions.

Defaults of every field come from the default parameter set (data/params/default.yaml), the one
place they are written; the layout is a name in ``layouts.REGISTRY``, whose object
(``Deployment.parallelism``) says where weights, KV and traffic go.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics.layouts import LAYOUTS, REGISTRY, Layout
from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.specs.fileio import load_mapping
from qsmoe.specs.hardware import HardwareSpec

__all__ = ["ATTENTION_DTYPES", "LAYOUTS", "MAX_GPUS", "Deployment"]

ATTENTION_DTYPES = ("bf16", "fp8")  # formats attention kernels run in (FlashMLA/FA2: bf16; FA3: also fp8)
MAX_GPUS = 65536  # one model replica; far beyond any deployment the book considers
_DEFAULTS: dict[str, Any] = load_mapping(DATA_DIR / "params" / "default.yaml")


def _default(key: str) -> Any:
    return _DEFAULTS[key]


@dataclass(frozen=True)
class Deployment:
    hardware: HardwareSpec
    gpus: int = _default("gpus")
    layout: str = "tp"
    weight_dtype: str = _default("weight_dtype")
    kv_dtype: str = _default("kv_dtype")
    attention_dtype: str = _default("attention_dtype")  # format of attention over the KV cache (its peak)
    reserve_fraction: float = _default("reserve_fraction")
    mem_efficiency: float = _default("mem_efficiency")
    compute_efficiency: float = _default("compute_efficiency")
    link_efficiency: float = _default("link_efficiency")
    include_comm: bool = _default("include_comm")
    comm_overlap: bool = _default("comm_overlap")  # communication hidden behind compute (two-batch overlap): only its excess counts
    step_overhead_s: float = _default("step_overhead_s")
    routing_skew: float = _default("routing_skew")

    def __post_init__(self) -> None:
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or not 1 <= self.gpus <= MAX_GPUS:
            raise QsError(f"must be a whole number from 1 to {MAX_GPUS}, got {self.gpus!r}", field="gpus")
        if self.layout not in REGISTRY:
            raise QsError(f"{self.layout!r} is not one of {', '.join(LAYOUTS)}", field="layout")
        bytes_per_value(self.weight_dtype, field="weight_dtype")
        bytes_per_value(self.kv_dtype, field="kv_dtype")
        if self.attention_dtype not in ATTENTION_DTYPES:
            raise QsError(f"{self.attention_dtype!r} is not one of {', '.join(ATTENTION_DTYPES)}", field="attention_dtype")
        if not 0 <= self.reserve_fraction < 1:
            raise QsError(f"must be in [0, 1), got {self.reserve_fraction!r}", field="reserve_fraction")
        for name in ("mem_efficiency", "compute_efficiency", "link_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise QsError(f"must be in (0, 1], got {value!r}", field=name)
        if self.step_overhead_s < 0:
            raise QsError(f"must be >= 0, got {self.step_overhead_s!r}", field="step_overhead_s")
        if self.routing_skew < 0:
            raise QsError(f"must be >= 0, got {self.routing_skew!r}", field="routing_skew")

    @property
    def parallelism(self) -> Layout:
        """The layout object for ``layout``."""
        return REGISTRY[self.layout]

    @property
    def weight_bytes(self) -> float:
        return bytes_per_value(self.weight_dtype)

    @property
    def kv_bytes(self) -> float:
        return bytes_per_value(self.kv_dtype)

    @property
    def usable_hbm_bytes(self) -> float:
        """HBM per GPU left after the reserve: M * (1 - reserve)."""
        return self.hardware.hbm_bytes * (1 - self.reserve_fraction)

    @property
    def spans_scaleout(self) -> bool:
        """Whether the replica is larger than one scale-up domain (traffic then crosses the NICs)."""
        return self.gpus > self.hardware.domain_size

    @property
    def link_bytes_per_s(self) -> float:
        """Achieved one-way bandwidth per GPU: half the bidirectional scale-up figure inside the
        domain, the hardware's scale-out NIC (one way) beyond it, times link_efficiency."""
        if self.spans_scaleout and self.hardware.scaleout_bytes_per_s <= 0:
            raise QsError(f"{self.gpus} GPUs exceed the scale-up domain of {self.hardware.domain_size} and {self.hardware.id} states no scale-out bandwidth", field="gpus")
        one_way = self.hardware.scaleout_bytes_per_s if self.spans_scaleout else self.hardware.link_bytes_per_s / 2
        return one_way * self.link_efficiency

    def with_changes(self, **changes: object) -> "Deployment":
        return replace(self, **changes)

