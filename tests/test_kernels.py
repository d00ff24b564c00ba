"""Kernel floors, grouped-GEMM padding and grouped-GEMM efficiency (physics/kernels.py)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, strategies as st

from qsmoe.physics.decode import step_time
from qsmoe.errors import QsError
from qsmoe.physics.deployment import Deployment
from qsmoe.physics.kernels import KERNELS_PER_LAYER, achieved_fraction, kernels_per_step, launch_floor_s, tile_padding
from qsmoe.physics.profile import profile_of
from qsmoe.physics.serve import prefill_time
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

DS = profile_of(load_model("deepseek-v3"))
LLAMA = profile_of(load_model("llama-3.1-8b"))
H200 = load_hardware("h200")


def test_kernel_count_follows_the_layers() -> None:
    k = KERNELS_PER_LAYER
    assert kernels_per_step(LLAMA) == 32 * (k["attention"] + k["dense_ffn"]) + k["head"]
    assert kernels_per_step(DS) == 61 * k["attention"] + 3 * k["dense_ffn"] + 58 * k["moe"] + k["head"]


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
    return Deployment(H200, gpus=8, layout="ep", kernel_floor_s=0.0, allreduce_latency_s=0.0, alltoall_latency_s=0.0, **kw)


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
