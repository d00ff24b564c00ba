"""Accelerator specs (per GPU) and their loader (``data/hardware/<id>.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from qsmoe import DATA_DIR
from qsmoe.specs.dtypes import COMPUTE_FORMAT
from qsmoe.errors import QsError
from qsmoe.specs.fileio import Fields, excerpt, load_mapping
from qsmoe.specs.limits import HBM_BANDWIDTH_BYTES_PER_S, HBM_BYTES, LINK_BYTES_PER_S, MAX_DOMAIN_SIZE, PEAK_FLOPS_PER_S

HARDWARE_DIR = DATA_DIR / "hardware"
PEAK_FORMATS = ("bf16", "fp8", "fp4")


@dataclass(frozen=True)
class HardwareSpec:
    """Datasheet figures for one GPU: capacity, bandwidths, dense peaks."""

    id: str
    name: str
    vendor: str
    hbm_bytes: float
    hbm_bandwidth_bytes_per_s: float
    peak_flops_per_s: dict[str, float] = field(default_factory=dict)
    link_bytes_per_s: float = 0.0
    domain_size: int = 8
    scaleout_bytes_per_s: float = 0.0  # per GPU, one way, beyond the scale-up domain (0: none stated)
    aliases: tuple[str, ...] = ()
    source: str = ""

    def peak_for(self, weight_dtype: str) -> float:
        """Dense peak FLOP/s for GEMMs on weights stored as ``weight_dtype``.

        Formats without native support run at the widest supported lower
        precision (weights dequantised on the fly): fp4 -> fp8 -> bf16.
        """
        fmt = COMPUTE_FORMAT.get(weight_dtype, weight_dtype)
        for candidate in PEAK_FORMATS[PEAK_FORMATS.index(fmt) :: -1]:
            if candidate in self.peak_flops_per_s:
                return self.peak_flops_per_s[candidate]
        raise QsError(f"no bf16 peak given for {self.id}", source=self.source, field="peak_flops_per_s")


def _bounded(f: Fields, key: str, bounds: tuple[float, float]) -> float:
    """A number of ``f`` within its plausible ``(lowest, highest)`` (qsmoe.specs.limits)."""
    return f.number(key, minimum=bounds[0], strict=False, maximum=bounds[1])


def spec_from_mapping(data: dict, source: str) -> HardwareSpec:
    """Validate a hardware mapping (schema: data/README.md), every number within its bound."""
    f = Fields(data, source)
    peaks_f = f.section("peak_flops_per_s")
    peaks = {fmt: _bounded(peaks_f, fmt, PEAK_FLOPS_PER_S) for fmt in PEAK_FORMATS if peaks_f.has(fmt)}
    if "bf16" not in peaks:
        raise peaks_f.error("bf16", "missing")
    link = f.section("scaleup")
    return HardwareSpec(
        id=f.string("id"),
        name=f.string("name", f.string("id")),
        vendor=f.string("vendor", ""),
        hbm_bytes=_bounded(f, "hbm_bytes", HBM_BYTES),
        hbm_bandwidth_bytes_per_s=_bounded(f, "hbm_bandwidth_bytes_per_s", HBM_BANDWIDTH_BYTES_PER_S),
        peak_flops_per_s=peaks,
        link_bytes_per_s=_bounded(link, "link_bytes_per_s", LINK_BYTES_PER_S),
        domain_size=link.integer("domain_size", maximum=MAX_DOMAIN_SIZE),
        scaleout_bytes_per_s=_bounded(f.section("scaleout"), "nic_bytes_per_s", LINK_BYTES_PER_S),
        aliases=tuple(_aliases(f)),
        source=source,
    )


def _aliases(f: Fields) -> list[str]:
    names = f.raw("aliases", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise f.error("aliases", f"expected a list of names, got {excerpt(names)}")
    return names


def available_hardware() -> list[str]:
    """Ids of the accelerators shipped in data/hardware/, sorted (the folder is read once per process)."""
    return list(_shipped_ids())


@lru_cache(maxsize=1)
def _shipped_ids() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in HARDWARE_DIR.glob("*.yaml")))


@lru_cache(maxsize=1)
def hardware_aliases() -> dict[str, str]:
    """{alias: shipped id} from the ``aliases`` lists of the shipped files (e.g. h100 -> h100-sxm)."""
    table: dict[str, str] = {}
    for hardware_id in available_hardware():
        for alias in _shipped_hardware(hardware_id).aliases:
            if alias in table or alias in available_hardware():
                raise QsError(f"alias {alias!r} names two accelerators", source=f"data/hardware/{hardware_id}.yaml", field="aliases")
            table[alias] = hardware_id
    return table


def load_hardware(id_or_path: str | Path) -> HardwareSpec:
    """Load a shipped accelerator by id, or a YAML file of the same schema."""
    text = str(id_or_path)
    path = Path(text)
    if path.suffix in (".yaml", ".yml", ".json"):
        return spec_from_mapping(load_mapping(path), str(path))
    return _shipped_hardware(text if text in available_hardware() else hardware_aliases().get(text, text))


@lru_cache(maxsize=None)
def _shipped_hardware(hardware_id: str) -> HardwareSpec:
    """An accelerator from data/hardware/ (cached per process)."""
    candidate = HARDWARE_DIR / f"{hardware_id}.yaml"
    if not candidate.is_file():
        known = ", ".join(available_hardware())
        raise QsError(f"unknown hardware {hardware_id!r} (known: {known}; aliases: {', '.join(sorted(hardware_aliases()))})", field="hardware")
    return spec_from_mapping(load_mapping(candidate), str(candidate.relative_to(DATA_DIR.parent)))
