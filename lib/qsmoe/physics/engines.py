"""Inference engines as data (``data/engines/<id>.yaml``): the constants a serving step takes
from the engine that runs it.

  chunked_prefill   bool   prefill shares decode steps (True) or runs as its own steps (False)
  prefill_tokens_per_pass  tokens  with its own steps: the prompt tokens one prefill pass may hold
                           (the engine's default max_num_tokens); null: one prompt per pass
  scheduling_s      s      CPU scheduling + sampling per step not hidden behind the GPU
  default_for       ids    accelerators for which ``engine: auto`` picks this engine

``resolve_engine("auto", hardware)`` picks the engine whose ``default_for`` lists the accelerator
(the engine best represented in data/measured/ for it), else the first listed for the vendor's
other accelerators, else trtllm on NVIDIA and vllm elsewhere.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.fileio import Fields, load_mapping
from qsmoe.specs.hardware import HardwareSpec

ENGINES_DIR = DATA_DIR / "engines"
ENGINES = ("trtllm", "sglang", "vllm", "atom")


@dataclass(frozen=True)
class EngineSpec:
    id: str
    name: str
    chunked_prefill: bool
    scheduling_s: float
    prefill_tokens_per_pass: int | None
    default_for: tuple[str, ...]


@lru_cache(maxsize=None)
def load_engine(engine_id: str) -> EngineSpec:
    """The engine ``engine_id`` from data/engines/ (cached)."""
    if engine_id not in ENGINES:
        raise QsError(f"{engine_id!r} is not one of auto, {', '.join(ENGINES)}", field="engine")
    path = ENGINES_DIR / f"{engine_id}.yaml"
    f = Fields(load_mapping(path), str(path.relative_to(DATA_DIR.parent)))
    names = f.raw("default_for", [])
    per_pass = f.raw("prefill_tokens_per_pass", None)
    if per_pass is not None and (isinstance(per_pass, bool) or not isinstance(per_pass, int) or per_pass < 1):
        raise QsError(f"must be a whole number of tokens >= 1 or null, got {per_pass!r}", source=str(path), field="prefill_tokens_per_pass")
    return EngineSpec(id=f.string("id"), name=f.string("name"), chunked_prefill=f.boolean("chunked_prefill"), scheduling_s=f.number("scheduling_s", strict=False),
                      prefill_tokens_per_pass=per_pass, default_for=tuple(names))


def resolve_engine(requested: str, hardware: HardwareSpec) -> str:
    """The engine id for ``requested`` (``auto``: the engine listing this accelerator in ``default_for``)."""
    if requested != "auto":
        return load_engine(requested).id
    for engine_id in ENGINES:
        if hardware.id in load_engine(engine_id).default_for:
            return engine_id
    return "trtllm" if hardware.vendor == "nvidia" else "vllm"
