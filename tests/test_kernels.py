"""Kernel floors, the soft roofline, grouped-GEMM padding and grouped-GEMM efficiency (physics/kernels.py)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, strategies as st

from qsmoe.physics.decode import step_time
from qsmoe.errors import QsError
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.kernels import KERNELS_PER_LAYER, achieved_fraction, kernels_per_step, launch_floor_s, roofline_time_s, tile_padding
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import prefill_time
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

DS = profile_of(load_model("deepseek-v3"))
LLAMA = profile_of(load_model("llama-3.1-8b"))
QWEN3 = profile_of(load_model("qwen3-235b-a22b"))
H200 = load_hardware("h200")


def test_kernel_count_follows_the_layers() -> None:
    k = KERNELS_PER_LAYER
    assert kernels_per_step(LLAMA) == 32 * (k["attention"] + k["dense_ffn"]) + k["head"]
    assert kernels_per_step(DS) == 61 * k["attention"] + 3 * k["dense_ffn"] + 58 * (k["moe"] + k["shared_expert"]) + k["head"]
    # no shared experts, no shared-expert GEMMs: Qwen3-235B (94 MoE layers) and Mixtral 8x7B (32)
    assert kernels_per_step(QWEN3) == 94 * (k["attention"] + k["moe"]) + k["head"]
    assert kernels_per_step(profile_of(load_model("mixtral-8x7b"))) == 32 * (k["attention"] + k["moe"]) + k["head"]


def test_launch_floor_is_count_times_per_kernel_time() -> None:
    assert launch_floor_s(LLAMA, True, 3e-6, 5e-6) == pytest.approx(kernels_per_step(LLAMA) * 3e-6)
    assert launch_floor_s(LLAMA, False, 3e-6, 5e-6) == pytest.approx(kernels_per_step(LLAMA) * 5e-6)
    assert launch_floor_s(LLAMA, True, 0.0, 0.0) == 0.0


@given(st.floats(0.5, 1e5), st.sampled_from([1, 16, 64, 128]))
def test_tile_padding_is_at_least_one_and_bounded(m: float, block: int) -> None:
    pad = float(tile_padding(np.array(m), block))
    assert 1.0 <= pad <= max(1.0, block / m) + 1e-9 if m < block else 1.0 <= pad < 1 + block / m + 1e-9


def test_tile_padding_limits() -> None:
    assert np.allclose(tile_padding(np.array([1.0, 64.0, 128.0, 129.0, 0.0]), 128), [128.0, 2.0, 1.0, 256 / 129, 1.0])
    assert np.allclose(tile_padding(np.array([3.0, 7.5]), 1), 1.0)


def test_achieved_fraction_rises_with_size() -> None:
    work = np.geomspace(1e-7, 1e-2, 20)
    frac = achieved_fraction(work, 3e-6)
    assert np.all(np.diff(frac) > 0) and frac[0] < 0.1 and frac[-1] > 0.99
    assert np.allclose(achieved_fraction(work, 0.0), 1.0)


def test_floor_adds_a_constant_to_every_step() -> None:
    base = dict(kernel_floor_s=0.0, allreduce_latency_s=0.0, alltoall_latency_s=0.0)
    ctx, batch = np.array([[1024.0], [65536.0]]), np.array([1.0, 64.0, 512.0])
    off = step_time(DS, Deployment(H200, gpus=8, layout="ep", **base), ctx, batch)
    on = step_time(DS, Deployment(H200, gpus=8, layout="ep", **dict(base, kernel_floor_s=3.4e-6)), ctx, batch)
    assert np.allclose(on.total_s - off.total_s, kernels_per_step(DS) * 3.4e-6)
    graphs_off = step_time(DS, Deployment(H200, gpus=8, layout="ep", use_cuda_graphs=False, **dict(base, kernel_launch_s=2e-5)), ctx, batch)
    assert np.all(graphs_off.total_s > on.total_s)


def _ep(**kw: object) -> Deployment:
    """DeepSeek-V3 EP8 on H200 without fixed costs, under the classic roofline (softness 0, so a
    group's time is exactly its slower side)."""
    return Deployment(H200, gpus=8, layout="ep", kernel_floor_s=0.0, allreduce_latency_s=0.0, alltoall_latency_s=0.0, roofline_softness=0.0, **kw)


@given(st.floats(0.0, 1e-2), st.floats(0.0, 1e-2), st.floats(0.01, 1.0))
def test_soft_roofline_lies_between_the_max_and_the_sum(c: float, m: float, s: float) -> None:
    t = float(roofline_time_s(c, m, s))
    assert max(c, m) * (1 - 1e-12) <= t <= (c + m) * (1 + 1e-12)


def test_soft_roofline_limits_and_shape() -> None:
    c, m = np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 1.0, 0.0])
    assert np.array_equal(roofline_time_s(c, m, 0.0), np.maximum(c, m))
    assert np.allclose(roofline_time_s(c, m, 1.0), c + m)
    assert float(roofline_time_s(1.0, 1.0, 0.62)) == pytest.approx(2 ** 0.62)  # at the ridge: 2^s times either side
    assert float(roofline_time_s(2.0, 1.0, 0.5)) == pytest.approx(5.0 ** 0.5)  # (2^2 + 1^2)^(1/2)
    softs = np.linspace(0.0, 1.0, 11)
    assert np.all(np.diff([float(roofline_time_s(1.0, 0.7, s)) for s in softs]) > 0)  # grows with s
    assert float(roofline_time_s(1e-300, 1e-300, 0.01)) > 0 and np.isfinite(roofline_time_s(1e300, 1e300, 0.01))
    assert float(roofline_time_s(7.0, 3.0, 0.62)) == pytest.approx(10.0 * float(roofline_time_s(0.7, 0.3, 0.62)))  # degree one


def test_soft_roofline_slows_a_step_only_near_its_ridge() -> None:
    """Softness adds time to every group with both sides (DeepSeek-V3 EP8, H200): most at the batch
    where the routed experts' FLOPs meet their weight bytes; never less than the hard roofline."""
    ctx, batch = 4096.0, np.array([1.0, 64.0, 512.0, 4096.0, 32768.0])
    hard = step_time(DS, _ep(), ctx, batch).total_s
    soft = step_time(DS, dataclasses.replace(_ep(), roofline_softness=0.62), ctx, batch).total_s
    assert np.all(soft >= hard) and np.all(soft <= 2 ** 0.62 * hard)
    assert np.argmax(soft / hard) not in (0, len(batch) - 1)


def test_prefill_pays_the_soft_roofline_too() -> None:
    """A prefill's matmul and attention groups take R_s of their two sides: between the hard
    roofline's time and that time plus the smaller side of each (the sum, at s = 1)."""
    hard = prefill_time(DS, _ep(), 2048, 8)
    soft = prefill_time(DS, dataclasses.replace(_ep(), roofline_softness=0.62), 2048, 8)
    summed = prefill_time(DS, dataclasses.replace(_ep(), roofline_softness=1.0), 2048, 8)
    assert float(hard.total_s) < float(soft.total_s) < float(summed.total_s)
    assert float(soft.comm_s) == float(hard.comm_s) and float(soft.overhead_s) == float(hard.overhead_s)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), True])
def test_roofline_softness_out_of_range_is_a_named_error(bad: object) -> None:
    with pytest.raises(QsError) as err:
        Deployment(H200, roofline_softness=bad)
    assert err.value.field == "roofline_softness"


def test_grouped_gemm_efficiency_divides_routed_compute_only() -> None:
    """compute(eta_g) = C_other + R / eta_g where the routed experts are compute bound: halving eta_g
    twice adds R, then 2R. DeepSeek-V3 EP8 on H200 at 4096 sequences (512 tokens per expert)."""
    c = {eta: float(step_time(DS, _ep(grouped_gemm_efficiency=eta), 4096.0, 4096.0).compute_s) for eta in (1.0, 0.5, 0.25)}
    routed = c[0.5] - c[1.0]
    assert routed > 0
    assert c[0.25] - c[0.5] == pytest.approx(2 * routed, rel=1e-9)


def test_grouped_gemm_efficiency_leaves_dense_models_memory_bound_steps_and_prefill() -> None:
    for eta in (0.3, 1.0):
        assert float(step_time(LLAMA, Deployment(H200, gpus=1, grouped_gemm_efficiency=eta), 4096.0, 256.0).total_s) == float(step_time(LLAMA, Deployment(H200, gpus=1), 4096.0, 256.0).total_s)
    # one token per expert in an unpadded kernel: its weights, not its FLOPs, set the time (padded to a
    # 128-row block, the tile's FLOPs can exceed the weight time and eta_g shows even at batch 1)
    small = [float(step_time(DS, _ep(grouped_gemm_efficiency=eta, grouped_gemm_block_m=1), 4096.0, 1.0).total_s) for eta in (0.3, 1.0)]
    assert small[0] == small[1]
    pre = [float(prefill_time(DS, _ep(grouped_gemm_efficiency=eta), 8192, 4).total_s) for eta in (0.3, 1.0)]
    assert pre[0] == pre[1]  # prompt tokens run the contiguous layout at the dense GEMM's FLOP/s


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.5])
def test_grouped_gemm_efficiency_out_of_range_is_a_named_error(bad: float) -> None:
    with pytest.raises(QsError) as err:
        Deployment(H200, grouped_gemm_efficiency=bad)
    assert err.value.field == "grouped_gemm_efficiency"
