"""Layouts as objects: each layout's placement rules, against the formulas they stand for."""
from __future__ import annotations

import numpy as np
import pytest

from qsmoe.errors import QsError
from qsmoe.physics.deployment import LAYOUTS, Deployment
from qsmoe.physics.layouts import ACTIVATION_BYTES, ALL_REDUCE, COMBINE, DISPATCH, REGISTRY, routed_share_per_gpu
from qsmoe.physics.profile import profile_of
from qsmoe.specs.hardware import load_hardware
from qsmoe.specs.models import load_model

DS = profile_of(load_model("deepseek-v3"))
LLAMA = profile_of(load_model("llama-3.1-70b"))
H200 = load_hardware("h200")


def test_registry_names_are_the_parameter_strings() -> None:
    assert LAYOUTS == ("tp", "ep", "dp-tp", "tp-ep")
    assert all(REGISTRY[name].name == name for name in LAYOUTS)
    with pytest.raises(QsError, match="layout"):
        Deployment(H200, layout="pp")


@pytest.mark.parametrize("gpus", [1, 2, 8, 16, 64, 512])
def test_weights_per_gpu(gpus: int) -> None:
    tp, ep, dptp, tpep = (REGISTRY[n].params_per_gpu(DS, gpus) for n in ("tp", "ep", "dp-tp", "tp-ep"))
    assert tp == pytest.approx(DS.resident_params / gpus)
    assert tpep == pytest.approx(DS.resident_other_params / gpus + DS.resident_routed_params * routed_share_per_gpu(DS.n_experts, gpus))
    assert tp <= tpep * (1 + 1e-12) and tpep <= ep  # whole experts never lighten a GPU; sharded attention does
    assert REGISTRY["tp-ep"].params_per_gpu(LLAMA, gpus) == pytest.approx(LLAMA.resident_params / gpus)  # no experts: tp
    assert ep == pytest.approx(DS.resident_other_params + DS.resident_routed_params * routed_share_per_gpu(DS.n_experts, gpus))
    assert dptp == pytest.approx(DS.resident_attention_params + (DS.resident_params - DS.resident_attention_params) / gpus)
    assert tp <= dptp and tp <= ep  # replication never makes a GPU lighter
    if gpus == 1:
        assert tp == pytest.approx(ep) and tp == pytest.approx(dptp)


def test_kv_split_and_replica_batch() -> None:
    tp, ep, dptp = (REGISTRY[n] for n in ("tp", "ep", "dp-tp"))
    tpep = REGISTRY["tp-ep"]
    assert (tpep.kv_split(LLAMA, 8), tpep.kv_split(DS, 8), tpep.replica_kv_copies(8)) == (8, 1, 8)  # KV placed as under tp
    assert tp.kv_split(LLAMA, 8) == 8 and tp.kv_split(DS, 8) == 1  # GQA heads split; MLA latent not
    assert ep.kv_split(LLAMA, 8) == 1 and dptp.kv_split(LLAMA, 8) == 1
    per_gpu = np.array([0.0, 3.0])
    assert np.array_equal(tp.replica_batch(per_gpu, 8), per_gpu)
    assert np.array_equal(ep.replica_batch(per_gpu, 8), 8 * per_gpu)
    assert (tp.replica_kv_copies(8), ep.replica_kv_copies(8)) == (8, 1)


def test_attention_and_ffn_shares() -> None:
    b = np.array([1.0, 7.0, 64.0])
    tp, ep, dptp, tpep = (REGISTRY[n] for n in ("tp", "ep", "dp-tp", "tp-ep"))
    assert np.array_equal(tpep.attention_batch(b, 8), b) and tpep.attention_shard(8) == 1 / 8
    assert np.array_equal(tpep.ffn_batch(b, b), b) and tpep.ffn_shard(8) == 1 / 8 and tpep.experts_sharded
    assert np.array_equal(tp.attention_batch(b, 8), b) and tp.attention_shard(8) == 1 / 8
    assert np.array_equal(ep.attention_batch(b, 8), np.ceil(b / 8)) and ep.attention_shard(8) == 1.0
    assert np.array_equal(ep.ffn_batch(b, ep.attention_batch(b, 8)), np.ceil(b / 8)) and ep.ffn_shard(8) == 1.0
    assert np.array_equal(dptp.ffn_batch(b, dptp.attention_batch(b, 8)), b) and dptp.ffn_shard(8) == 1 / 8
    assert ep.experts_sharded and not tp.experts_sharded and not dptp.experts_sharded


def test_collectives_name_what_crosses_the_link() -> None:
    b = np.array([1.0, 64.0])
    tp, ep, dptp, tpep = (REGISTRY[n] for n in ("tp", "ep", "dp-tp", "tp-ep"))
    for layout in (tp, ep, dptp, tpep):
        assert layout.collectives(DS, 1, b, b) == []  # one GPU: nothing on the link
    (ar,) = tp.collectives(LLAMA, 8, b, b)
    assert ar.kind == ALL_REDUCE and ar.calls == LLAMA.allreduces_per_step
    assert np.allclose(ar.bytes_per_call, 2 * 7 / 8 * b * LLAMA.d_model * ACTIVATION_BYTES)
    (ar_dp,) = dptp.collectives(LLAMA, 8, b, np.ceil(b / 8))
    assert ar_dp.calls == LLAMA.n_blocks
    dispatch, combine = ep.collectives(DS, 8, b, np.ceil(b / 8))
    assert (dispatch.kind, combine.kind) == (DISPATCH, COMBINE) and dispatch.calls == DS.moe_layers
    assert np.allclose(dispatch.bytes_per_call, np.ceil(b / 8) * DS.top_k * DS.d_model * 7 / 8 * ACTIVATION_BYTES)
    assert ep.collectives(LLAMA, 8, b, b) == []  # a dense model served data-parallel exchanges nothing
    (ar_ep,) = tpep.collectives(DS, 8, b, b)  # experts summed by the FFN all-reduce: no all-to-all
    assert ar_ep.kind == ALL_REDUCE and ar_ep.calls == DS.allreduces_per_step
    assert np.allclose(ar_ep.bytes_per_call, 2 * 7 / 8 * b * DS.d_model * ACTIVATION_BYTES)


def test_scaleout_bandwidth_comes_from_the_hardware_file() -> None:
    inside, beyond = Deployment(H200, gpus=8), Deployment(H200, gpus=16)
    assert inside.link_bytes_per_s == pytest.approx(H200.link_bytes_per_s / 2 * inside.link_efficiency)
    assert beyond.link_bytes_per_s == pytest.approx(H200.scaleout_bytes_per_s * beyond.link_efficiency)
    assert load_hardware("a100-sxm-80gb").scaleout_bytes_per_s == pytest.approx(25e9)  # one 200 Gb/s HDR NIC per GPU


def test_deployment_defaults_are_the_parameter_set() -> None:
    from qsmoe.scenario.params import load_params

    values = load_params().values
    d = Deployment(H200)
    for key in ("gpus", "weight_dtype", "kv_dtype", "reserve_fraction", "link_efficiency", "include_comm", "comm_overlap", "step_overhead_s", "routing_skew"):
        assert getattr(d, key) == values[key], key
    for hw_id in ("h200", "mi300x"):  # the achieved fractions are those of the accelerator's vendor
        hw = load_hardware(hw_id)
        d = Deployment(hw)
        for key in ("mem_efficiency", "compute_efficiency"):
            assert getattr(d, key) == values[f"{key}_{hw.vendor}"], (hw_id, key)
