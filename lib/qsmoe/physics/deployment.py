"""A deployment: accelerator, cluster size, layout, precisions and the named efficiency assumptions.

Defaults of every field come from the default parameter set (data/params/default.yaml), the one
place they are written; the layout is a name in ``layouts.REGISTRY``, whose object
(``Deployment.parallelism``) says where weights, KV and traffic go.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.physics.engines import EngineSpec, load_engine, resolve_engine
from qsmoe.physics.layouts import LAYOUTS, REGISTRY, Layout
from qsmoe.specs.dtypes import BYTES_PER_VALUE, bytes_per_value
from qsmoe.specs.fileio import load_mapping
from qsmoe.specs.hardware import HardwareSpec

__all__ = ["ATTENTION_DTYPES", "LAYOUTS", "MAX_GPUS", "SAME_AS_WEIGHTS", "VENDORS", "VENDOR_FRACTIONS", "Deployment", "vendor_key"]

ATTENTION_DTYPES = ("bf16", "fp8")  # formats attention kernels run in (FlashMLA/FA2: bf16; FA3: also fp8)
MAX_GPUS = 65536  # one model replica; far beyond any deployment the book considers
_DEFAULTS: dict[str, Any] = load_mapping(DATA_DIR / "params" / "default.yaml")
BATCHING = ("continuous", "static")
SAME_AS_WEIGHTS = "same"  # a weight group's format that follows weight_dtype (Deployment.weight_format)


#: Accelerator vendors, each with its own achieved fractions of the datasheet peaks: a software
#: stack (CUDA and its kernels, ROCm and its kernels) reaches its own share of a peak, so the
#: parameter set holds ``<fraction>_<vendor>`` for each fraction of :data:`VENDOR_FRACTIONS`.
VENDORS = ("nvidia", "amd")
VENDOR_FRACTIONS = ("mem_efficiency", "compute_efficiency")


def _default(key: str) -> Any:
    return _DEFAULTS[key]


def vendor_key(fraction: str, hardware: HardwareSpec) -> str:
    """The parameter-set key of ``fraction`` for the accelerator's vendor: ``<fraction>_<vendor>``."""
    if hardware.vendor not in VENDORS:
        raise QsError(f"{hardware.vendor!r} (accelerator {hardware.id!r}) has no achieved fractions; the parameter set has them for {', '.join(VENDORS)}", field="vendor")
    return f"{fraction}_{hardware.vendor}"


@dataclass(frozen=True)
class Deployment:
    hardware: HardwareSpec
    gpus: int = _default("gpus")
    layout: str = "tp"
    weight_dtype: str = _default("weight_dtype")
    kv_dtype: str = _default("kv_dtype")
    attention_proj_dtype: str = _default("attention_proj_dtype")  # attention projections, norms, routers ('same': weight_dtype)
    head_dtype: str = _default("head_dtype")  # LM head and input embedding ('same': weight_dtype)
    attention_dtype: str = _default("attention_dtype")  # format of attention over the KV cache (its peak)
    reserve_fraction: float = _default("reserve_fraction")
    mem_efficiency: float = None  # type: ignore[assignment]  # None: the default set's mem_efficiency_<vendor>
    compute_efficiency: float = None  # type: ignore[assignment]  # None: the default set's compute_efficiency_<vendor>
    link_efficiency: float = _default("link_efficiency")
    include_comm: bool = _default("include_comm")
    comm_overlap: bool = _default("comm_overlap")  # communication hidden behind compute (two-batch overlap): only its excess counts
    step_overhead_s: float = _default("step_overhead_s")
    routing_skew: float = _default("routing_skew")
    engine: str = _default("engine")  # trtllm | sglang | vllm | atom | auto (engines.resolve_engine)
    use_cuda_graphs: bool = _default("use_cuda_graphs")
    kernel_floor_s: float = _default("kernel_floor_s")  # per kernel with graphs (kernels.py)
    kernel_launch_s: float = _default("kernel_launch_s")  # per kernel without graphs
    allreduce_latency_s: float = _default("allreduce_latency_s")  # per all-reduce call (comm.py)
    alltoall_latency_s: float = _default("alltoall_latency_s")  # per dispatch or combine call
    attention_mem_efficiency: float = _default("attention_mem_efficiency")  # achieved / peak HBM bandwidth of attention over the KV cache
    grouped_gemm_efficiency: float = _default("grouped_gemm_efficiency")  # routed-expert GEMM FLOP/s / a dense GEMM's
    grouped_gemm_block_m: int = _default("grouped_gemm_block_m")  # M block tokens per expert are padded to
    roofline_softness: float = _default("roofline_softness")  # overlap of a kernel's compute and memory time (kernels.roofline_time_s)
    batching: str = _default("batching")  # continuous | static (serve.py, batching.py)
    mtp_draft_tokens: int = _default("mtp_draft_tokens")  # draft tokens verified per sequence per step (0 = off)
    mtp_acceptance_length: float = _default("mtp_acceptance_length")  # mean tokens emitted per sequence per step

    def __post_init__(self) -> None:
        for name in VENDOR_FRACTIONS:
            if getattr(self, name) is None:
                object.__setattr__(self, name, float(_default(vendor_key(name, self.hardware))))
        if isinstance(self.gpus, bool) or not isinstance(self.gpus, int) or not 1 <= self.gpus <= MAX_GPUS:
            raise QsError(f"must be a whole number from 1 to {MAX_GPUS}, got {self.gpus!r}", field="gpus")
        if self.layout not in REGISTRY:
            raise QsError(f"{self.layout!r} is not one of {', '.join(LAYOUTS)}", field="layout")
        bytes_per_value(self.weight_dtype, field="weight_dtype")
        bytes_per_value(self.kv_dtype, field="kv_dtype")
        for name in ("attention_proj_dtype", "head_dtype"):
            value = getattr(self, name)
            if value != SAME_AS_WEIGHTS and (not isinstance(value, str) or value not in BYTES_PER_VALUE):
                raise QsError(f"{value!r} is not one of {SAME_AS_WEIGHTS}, {', '.join(sorted(BYTES_PER_VALUE))}", field=name)
        if self.attention_dtype not in ATTENTION_DTYPES:
            raise QsError(f"{self.attention_dtype!r} is not one of {', '.join(ATTENTION_DTYPES)}", field="attention_dtype")
        if not 0 <= self.reserve_fraction < 1:
            raise QsError(f"must be in [0, 1), got {self.reserve_fraction!r}", field="reserve_fraction")
        for name in ("mem_efficiency", "compute_efficiency", "link_efficiency", "grouped_gemm_efficiency"):
            value = getattr(self, name)
            if not 0 < value <= 1:
                raise QsError(f"must be in (0, 1], got {value!r}", field=name)
        if self.step_overhead_s < 0:
            raise QsError(f"must be >= 0, got {self.step_overhead_s!r}", field="step_overhead_s")
        if self.routing_skew < 0:
            raise QsError(f"must be >= 0, got {self.routing_skew!r}", field="routing_skew")
        resolve_engine(self.engine, self.hardware)
        if not 0 < self.attention_mem_efficiency <= 1:
            raise QsError(f"must be in (0, 1], got {self.attention_mem_efficiency!r}", field="attention_mem_efficiency")
        for name in ("kernel_floor_s", "kernel_launch_s", "allreduce_latency_s", "alltoall_latency_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise QsError(f"must be a time in [0, 1) s, got {value!r}", field=name)
        if isinstance(self.roofline_softness, bool) or not isinstance(self.roofline_softness, (int, float)) or not 0 <= self.roofline_softness <= 1:
            raise QsError(f"must be in [0, 1], got {self.roofline_softness!r}", field="roofline_softness")
        if self.batching not in BATCHING:
            raise QsError(f"{self.batching!r} is not one of {', '.join(BATCHING)}", field="batching")
        if isinstance(self.grouped_gemm_block_m, bool) or not isinstance(self.grouped_gemm_block_m, int) or not 1 <= self.grouped_gemm_block_m <= 4096:
            raise QsError(f"must be a whole number from 1 to 4096, got {self.grouped_gemm_block_m!r}", field="grouped_gemm_block_m")
        if isinstance(self.mtp_draft_tokens, bool) or not isinstance(self.mtp_draft_tokens, int) or not 0 <= self.mtp_draft_tokens <= 16:
            raise QsError(f"must be a whole number from 0 to 16, got {self.mtp_draft_tokens!r}", field="mtp_draft_tokens")
        if not 1.0 <= self.mtp_acceptance_length <= 1 + self.mtp_draft_tokens:
            raise QsError(f"must be from 1 to 1 + mtp_draft_tokens ({1 + self.mtp_draft_tokens}), got {self.mtp_acceptance_length!r}", field="mtp_acceptance_length")

    @property
    def parallelism(self) -> Layout:
        """The layout object for ``layout``."""
        return REGISTRY[self.layout]

    @property
    def engine_spec(self) -> EngineSpec:
        """The engine serving this deployment (``auto`` resolved for the accelerator)."""
        return load_engine(resolve_engine(self.engine, self.hardware))

    @property
    def tokens_per_sequence_step(self) -> int:
        """Query tokens each sequence puts through a decode step: 1 + mtp_draft_tokens."""
        return 1 + self.mtp_draft_tokens

    @property
    def weight_bytes(self) -> float:
        """Bytes per FFN weight (dense FFN, shared and routed experts): weight_dtype."""
        return self.group_weight_bytes("ffn")

    @cached_property
    def _group_formats(self) -> dict[str, tuple[str, float, float]]:
        """{group: (format, bytes per weight, dense peak FLOP/s of its GEMMs)} for the weight groups
        of :meth:`weight_format`, computed once per deployment (the step model asks for them often)."""
        stated = {"ffn": self.weight_dtype, "attention": self.attention_proj_dtype, "head": self.head_dtype}
        formats = {group: self.weight_dtype if fmt == SAME_AS_WEIGHTS else fmt for group, fmt in stated.items()}
        return {group: (fmt, bytes_per_value(fmt), self.hardware.peak_for(fmt)) for group, fmt in formats.items()}

    def weight_format(self, group: str) -> str:
        """Storage format of a weight group: ``ffn`` (dense FFN, shared and routed experts)
        weight_dtype; ``attention`` (attention projections, norms, routers) attention_proj_dtype;
        ``head`` (LM head and input embedding) head_dtype; a group set to ``same`` follows
        weight_dtype."""
        return self._group_formats[group][0]

    def group_weight_bytes(self, group: str) -> float:
        """Bytes per weight of a group (:meth:`weight_format`)."""
        return self._group_formats[group][1]

    def matmul_peak_flops(self, group: str) -> float:
        """Dense peak FLOP/s of the GEMMs on a weight group: the peak of its storage format."""
        return self._group_formats[group][2]

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

