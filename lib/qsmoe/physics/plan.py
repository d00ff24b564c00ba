"""A serving plan: one pool serving prefill and decode (aggregated), or a prefill pool and a
decode pool with the KV transfer between them (disaggregated).

GPUs of a plan = sum over its pools of replicas * GPUs per replica.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qsmoe.errors import QsError
from qsmoe.physics.deployment import Deployment


@dataclass(frozen=True)
class Pool:
    """``replicas`` copies of one deployment; ``batch`` is the sequences each replica decodes
    (decode or aggregated pool) or the prompts it prefills per pass (prefill pool)."""

    deployment: Deployment
    layout: str
    replicas: int = 1
    batch: int = 1

    def __post_init__(self) -> None:
        for name in ("replicas", "batch"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise QsError(f"must be a whole number >= 1, got {value!r}", field=name)

    @property
    def gpus(self) -> int:
        return self.replicas * self.deployment.gpus

    def record(self) -> dict[str, Any]:
        dep = self.deployment
        return {"layout": self.layout, "gpus_per_replica": dep.gpus, "replicas": self.replicas, "gpus": self.gpus, "batch": self.batch, "weight_dtype": dep.weight_dtype, "kv_dtype": dep.kv_dtype}


@dataclass(frozen=True)
class KvTransfer:
    """The KV cache one request moves from the prefill pool to the decode pool."""

    bytes_per_request: float
    seconds_per_pass: float  # one prefill pass's KV leaving its replica over the scale-out link

    def record(self) -> dict[str, float]:
        return {"bytes_per_request": self.bytes_per_request, "seconds_per_pass": self.seconds_per_pass}


@dataclass(frozen=True)
class ServingPlan:
    """Aggregated: ``decode`` alone (it prefills too). Disaggregated: ``prefill`` + ``decode`` + ``kv_transfer``."""

    decode: Pool
    prefill: Pool | None = None
    kv_transfer: KvTransfer | None = None

    def __post_init__(self) -> None:
        if (self.prefill is None) != (self.kv_transfer is None):
            raise QsError("a disaggregated plan needs both a prefill pool and a KV transfer", field="plan")
        if self.prefill is not None and self.prefill.deployment.kv_dtype != self.decode.deployment.kv_dtype:
            raise QsError(f"prefill KV format {self.prefill.deployment.kv_dtype!r} differs from decode's {self.decode.deployment.kv_dtype!r}", field="kv_dtype")

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    @property
    def gpus(self) -> int:
        return self.decode.gpus + (self.prefill.gpus if self.prefill is not None else 0)

    def record(self) -> dict[str, Any]:
        return {
            "disaggregated": self.disaggregated,
            "gpus": self.gpus,
            "decode": self.decode.record(),
            "prefill": self.prefill.record() if self.prefill is not None else None,
            "kv_transfer": self.kv_transfer.record() if self.kv_transfer is not None else None,
        }


__all__ = ["KvTransfer", "Pool", "ServingPlan"]
