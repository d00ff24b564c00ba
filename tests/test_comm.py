"""Collectives as latency + bytes / bandwidth (physics/comm.py)."""
from __future__ import annotations

import numpy as np
import pytest

from qsmoe.physics.comm import collective_time_s, collectives_time_s
from qsmoe.physics.decode import link_time_s
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.layouts import ALL_REDUCE, DISPATCH, Collective
from qsmoe.physics.profile import profile_of
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

DS = profile_of(load_model("deepseek-v3"))
LLAMA = profile_of(load_model("llama-3.1-70b"))
H200 = load_hardware("h200")


def test_latency_plus_bytes_over_bandwidth() -> None:
    coll = Collective(DISPATCH, 58.0, np.array([0.0, 1e6, 1e7]))
    t = collective_time_s(coll, 7e-6, 1e11)
    assert np.allclose(t, 58 * (7e-6 + np.array([0.0, 1e6, 1e7]) / 1e11))
    assert np.all(np.diff(t) > 0)  # monotone in bytes


def test_each_kind_gets_its_latency() -> None:
    colls = [Collective(ALL_REDUCE, 2.0, np.array(0.0)), Collective(DISPATCH, 3.0, np.array(0.0))]
    assert float(collectives_time_s(colls, 1e11, 1e-5, 1e-6, ())) == pytest.approx(2e-5 + 3e-6)


@pytest.mark.parametrize("model,layout", [(DS, "ep"), (LLAMA, "tp"), (LLAMA, "dp-tp")])
def test_zero_latency_is_the_bytes_only_model_and_latency_is_additive(model, layout) -> None:
    b = np.array([1.0, 32.0, 1024.0])
    zero = Deployment(H200, gpus=8, layout=layout, allreduce_latency_s=0.0, alltoall_latency_s=0.0)
    lat = zero.with_changes(allreduce_latency_s=6e-6, alltoall_latency_s=7e-6)
    busiest = zero.parallelism.attention_batch(b, 8)
    colls = zero.parallelism.collectives(model, 8, b, busiest)
    bytes_only = sum(c.calls * c.bytes_per_call for c in colls) / zero.link_bytes_per_s
    assert np.allclose(link_time_s(model, zero, b, busiest), bytes_only)
    extra = sum(c.calls * (6e-6 if c.kind == ALL_REDUCE else 7e-6) for c in colls)
    assert np.allclose(link_time_s(model, lat, b, busiest) - link_time_s(model, zero, b, busiest), extra)


def test_one_gpu_has_no_communication() -> None:
    dep = Deployment(H200, gpus=1, layout="tp")
    assert np.all(link_time_s(LLAMA, dep, np.array([1.0, 8.0]), np.array([1.0, 8.0])) == 0.0)
