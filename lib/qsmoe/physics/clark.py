"""q from Clark et al. 2022's routed scaling law (effective parameter count), with its caveats.

    log10 L(N, E) = a log10 N + b log10 Ehat + c log10 N log10 Ehat + d
    1/Ehat = 1 / (E - 1 + (1/E_start - 1/E_max)^-1) + 1/E_max
    Nbar: L(Nbar, 1) = L(N, E)  =>  Nbar = (N^alpha(Ehat) (Ehat/E_start)^b)^(1/alpha(E_start)),
    alpha(x) = a + c log10 x,   q_clark = Nbar / N.

N is the MoE's active parameter count and E its FFN expansion per MoE layer
(FFN weights held / FFN weights applied per token). The law was fitted on top-1 routing,
full-width experts, base models up to ~1.3B and 130B training tokens: every model in
this book is far outside that range, and the coefficients in data/quality.yaml are
flagged as not yet checked against the paper's Table 3.
"""
from __future__ import annotations

import math
from functools import lru_cache

from qsmoe.errors import QsError
from qsmoe.specs.quality_data import clark_coefficients
from qsmoe.specs.architecture import ModelSpec
from qsmoe.physics.profile import profile_of

DEFAULT_METHOD = "s-base"


def e_hat(e: float, e_start: float, e_max: float) -> float:
    """Saturating transform of the expert count."""
    return 1.0 / (1.0 / (e - 1 + 1.0 / (1.0 / e_start - 1.0 / e_max)) + 1.0 / e_max)


def effective_params(n: float, e: float, method: str = DEFAULT_METHOD) -> float:
    """Nbar(N, E): the dense size with the same loss as a routed model of base size N and E experts."""
    if n <= 0 or e < 1:
        raise QsError(f"need N > 0 and E >= 1, got N={n!r}, E={e!r}", field="clark")
    k = clark_coefficients(method)
    eh = e_hat(e, k["e_start"], k["e_max"])

    def alpha(x: float) -> float:
        return k["a"] + k["c"] * math.log10(x)

    log_nbar = (alpha(eh) * math.log10(n) + k["b"] * (math.log10(eh) - math.log10(k["e_start"]))) / alpha(k["e_start"])
    return 10.0**log_nbar


def expansion(spec: ModelSpec) -> float:
    """E_eff = FFN weights held / FFN weights applied per token, in one MoE layer."""
    moe = spec.moe
    if moe is None:
        raise QsError(f"{spec.id!r} is dense; Clark's law needs an MoE", field="model")
    held = moe.n_routed_experts * moe.expert_intermediate + moe.n_shared_experts * moe.shared_intermediate
    used = moe.top_k * moe.expert_intermediate + moe.n_shared_experts * moe.shared_intermediate
    return held / used


@lru_cache(maxsize=None)
def clark_q(spec: ModelSpec, method: str = DEFAULT_METHOD) -> float:
    """q = Nbar(A, E_eff) / A for an MoE (an extrapolation; see module docstring)."""
    active = float(profile_of(spec).active_params)
    return effective_params(active, expansion(spec), method) / active
