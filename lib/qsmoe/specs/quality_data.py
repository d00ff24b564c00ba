"""The quality-equivalence data file (``data/quality.yaml``): published pairings and the
Clark et al. 2022 coefficients, read once per process with the file and field named in errors."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.fileio import Fields, load_mapping

QUALITY_FILE = DATA_DIR / "quality.yaml"
QUALITY_SOURCE = "data/quality.yaml"
CLARK_FIELDS = ("a", "b", "c", "d", "e_start", "e_max")


@lru_cache(maxsize=1)
def pairings() -> dict[str, Any]:
    """{model id: pairing mapping} as written under ``pairings:``."""
    return Fields(load_mapping(QUALITY_FILE), QUALITY_SOURCE).raw("pairings")


@lru_cache(maxsize=None)
def clark_coefficients(method: str) -> dict[str, float]:
    """Clark et al.'s fitted law for one routing method: a, b, c, d, e_start, e_max."""
    methods = Fields(load_mapping(QUALITY_FILE), QUALITY_SOURCE).section("clark2022").section("methods")
    m = methods.section(method, optional=True)
    if m is None:
        raise QsError(f"unknown Clark et al. routing method {method!r}", source=QUALITY_SOURCE, field="clark2022.methods")
    return {k: m.number(k, minimum=None) for k in CLARK_FIELDS}
