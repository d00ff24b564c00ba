"""A deployment: accelerator, cluster size, layout, precisions and the named efficiency assumptions."""
from __future__ import annotations

from dataclasses import dataclass, replace

from qsmoe.specs.dtypes import bytes_per_value
from qsmoe.errors import QsError
from qsmoe.specs.hardware import HardwareSpec

#: tp: attention and FFN tensor-parallel over all GPUs.
#: ep: data-parallel attention (each GPU keeps its own sequences and their KV), routed experts
#:     sharded over the GPUs (expert parallel), dense FFN and shared experts replicated (DeepSeek/SGLang).
#: dp-tp: data-parallel attention, every FFN tensor-parallel (for dense models with MLA, whose latent
#:     KV cannot be split by heads).
LAYOUTS = ("tp", "ep", "dp-tp")
ACTIVATION_BYTES = 2.0  # activations cross the links in bf16
ATTENTION_DTYPES = ("bf16", "fp8")  # formats attention kernels run in (FlashMLA/FA2: bf16; FA3: also fp8)
MAX_GPUS = 65536  # one model replica; far beyond any deployment the book considers


@dataclass(frozen=True)
class Deployment:
    hardware: HardwareSpec
    gpus: int = 8
    layout: str = "tp"
    weight_dtype: str = "fp8"
    kv_dtype: str = "bf16"
    attention_dtype: str = "bf16"  # format of attention over the KV cache (its peak)
    reserve_fraction: float = 0.10
    mem_efficiency: float = 0.80
    compute_efficiency: float = 0.60
    link_efficiency: float = 0.70
    include_comm: bool = True
    comm_overlap: bool = False  # communication hidden behind compute (two-batch overlap): only its excess counts
    step_overhead_s: float = 0.0
    routing_skew: float = 0.0
    scaleout_bytes_per_s: float = 50e9  # per GPU, one 400 Gb/s NIC, used beyond the scale-up domain

    def __post_init__(self) -> None:
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or not 1 <= self.gpus <= MAX_GPUS:
            raise QsError(f"must be a whole number from 1 to {MAX_GPUS}, got {self.gpus!r}", field="gpus")
        if self.layout not in LAYOUTS:
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
    def link_bytes_per_s(self) -> float:
        """Achieved one-way bandwidth per GPU: half the bidirectional scale-up figure inside the
        domain, the scale-out NIC beyond it, times link_efficiency."""
        one_way = self.hardware.link_bytes_per_s / 2 if self.gpus <= self.hardware.domain_size else self.scaleout_bytes_per_s
        return one_way * self.link_efficiency

    def with_changes(self, **changes: object) -> "Deployment":
        return replace(self, **changes)
