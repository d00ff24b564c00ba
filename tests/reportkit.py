"""Shared parameter variants and fixtures of the book-record tests (test_book_*.py, test_claims.py, ...)."""
from __future__ import annotations

import re

import pytest
import yaml
from qsmoe.book import ch09_claims_ledger as ch09
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, resolve

#: Parameter variants the wording must follow (deployments far from the default).
VARIANTS = (
    {},
    {"gpus": 2},
    {"hardware": "mi355x"},
    {"gpus": 2, "hardware": "mi355x"},
    {"gpus": 1},
    {"q_rule": "clark"},
    {"q_rule": "author"},
    {"q_rule": "explicit", "q_explicit": 0.5},
    {"moe_layout": "tp"},
    {"weight_dtype": "bf16", "gpus": 4},
    {"hardware": "a100-sxm-80gb", "gpus": 1},
)


def _ids(variant: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in variant.items()) or "default"


# Numbers shown as text must never read like these.
BAD_NUMBER = re.compile(r"(?i:\bnan\b|\binf\b)|\bNone\b")


@pytest.fixture(scope="module")
def values() -> dict:
    return dict(resolve().values)


@pytest.fixture(scope="module")
def default_yaml() -> dict:
    with open(DEFAULT_PARAMS_PATH, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


@pytest.fixture(scope="module")
def ledger(values) -> dict:
    return ch09.claims_ledger(values)
