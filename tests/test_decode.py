"""The decode model (qsmoe.physics.memory, qsmoe.physics.decode): HBM budget, roofline step time, throughput.

Hand computations use datasheet and published figures (H200: 141 GB, 4.8 TB/s, 989.5 / 1979
dense TFLOP/s; model configs) and the datasheet-variant efficiencies (memory 0.8, compute 0.6;
data/params/datasheet.yaml), pinned in ``dep`` so fitting the default set cannot move them.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qsmoe.physics.accounting import summarize
from qsmoe.physics.decode import BOUNDS, decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.errors import QsError
from qsmoe.specs.hardware import load_hardware
from qsmoe.physics.memory import BATCH_TOO_LARGE, NO_SEQUENCE_FITS, REASONS, WEIGHTS_DO_NOT_FIT, hbm_budget
from qsmoe.specs.architecture import Attention, ModelSpec, Moe
from qsmoe.specs.models import available_models, load_model
from qsmoe.physics.profile import profile_of
from qsmoe.physics.routing import fraction_streamed

H200 = load_hardware("h200")
H200_HBM, H200_BW, H200_BF16, H200_FP8 = 141e9, 4.8e12, 989.5e12, 1979e12  # NVIDIA H200 SXM datasheet
MEM_EFF, COMPUTE_EFF = 0.80, 0.60  # data/params/datasheet.yaml
LLAMA8B_EMBED = 128256 * 4096  # vocab x hidden (config.json): the input embedding, a lookup
LLAMA8B_KV = 32 * 2 * 8 * 128 * 2  # layers x (K, V) x KV heads x head_dim x bf16 bytes
CONTEXTS = np.array([0, 1, 16, 512, 4096, 8192, 32768, 65536, 131072, 262144, 1048576, 4194304], dtype=float)
PROFILES = {m: profile_of(load_model(m)) for m in available_models()}


def layouts(profile) -> tuple[str, ...]:
    return ("tp", "ep", "dp-tp") if profile.is_moe else ("tp", "dp-tp")


#: the datasheet roofline: no kernel floors, no collective latencies, attention at the same
#: bandwidth fraction as weights, grouped GEMMs at the dense GEMM's FLOP/s and unpadded, each group
#: the slower of its compute and memory time (softness 0), every weight group in weight_dtype
#: (the hand computations below assume it)
ROOFLINE = dict(mem_efficiency=MEM_EFF, compute_efficiency=COMPUTE_EFF, step_overhead_s=0.0, kernel_floor_s=0.0, kernel_launch_s=0.0, allreduce_latency_s=0.0, alltoall_latency_s=0.0, attention_mem_efficiency=MEM_EFF, grouped_gemm_efficiency=1.0, grouped_gemm_block_m=1, roofline_softness=0.0, attention_proj_dtype="same", head_dtype="same")


def dep(gpus: int = 8, layout: str = "tp", **kw) -> Deployment:
    return Deployment(H200, gpus=gpus, layout=layout, **{**ROOFLINE, **kw})


def test_default_deployment_matches_the_parameter_set() -> None:
    """Deployment's defaults are the default parameter set's; the hand computations below pin the
    datasheet variant's efficiencies."""
    from qsmoe.scenario.params import load_params

    values = load_params().values
    d = Deployment(H200)
    assert (d.mem_efficiency, d.compute_efficiency, d.weight_dtype, d.kv_dtype) == (values["mem_efficiency_nvidia"], values["compute_efficiency_nvidia"], values["weight_dtype"], values["kv_dtype"])
    from qsmoe.evidence.calibration import DATASHEET_PATH

    sheet = load_params(DATASHEET_PATH).values
    assert (MEM_EFF, COMPUTE_EFF) == (sheet["mem_efficiency_nvidia"], sheet["compute_efficiency_nvidia"])
    assert (H200.hbm_bytes, H200.hbm_bandwidth_bytes_per_s, H200.peak_flops_per_s["bf16"], H200.peak_flops_per_s["fp8"]) == (H200_HBM, H200_BW, H200_BF16, H200_FP8)


# --- Hand-computed points ---------------------------------------------------------------

def test_small_batch_step_is_weight_streaming_time() -> None:
    """Llama-3.1-8B, 1 H200, batch 1, context 0: every weight on the decode path is read once.

    8.03e9 parameters (published), less the input embedding, of which a step reads only one row;
    the untied LM head (128256 x 4096, the embedding's size) in bf16 (2 B, ``head_dtype``), the
    rest in fp8 (1 B): t = ((8.03e9 - 2 * 128256*4096) * 1 + 128256*4096 * 2) / (4.8e12 * 0.8)
    = 2.091 ms (1.954 ms with the head in fp8 too).
    """
    step = step_time(PROFILES["llama-3.1-8b"], dep(1, head_dtype="bf16"), 0, 1)
    hand = ((8.03e9 - 2 * LLAMA8B_EMBED) * 1.0 + LLAMA8B_EMBED * 2.0) / (H200_BW * MEM_EFF)
    head_fp8 = step_time(PROFILES["llama-3.1-8b"], dep(1), 0, 1)
    assert float(head_fp8.total_s) == pytest.approx((8.03e9 - LLAMA8B_EMBED) * 1.0 / (H200_BW * MEM_EFF), rel=0.01)
    assert float(step.total_s) == pytest.approx(hand, rel=0.01)
    assert float(step.compute_s) == 0.0 and float(step.kv_s) == 0.0 and float(step.comm_s) == 0.0
    r = decode(PROFILES["llama-3.1-8b"], dep(1, head_dtype="bf16"), 0, 1).record()
    assert r["bound"] == "weights"
    assert r["tokens_per_s"] == pytest.approx(1 / hand, rel=0.01)


def test_huge_batch_short_context_dense_is_compute_bound() -> None:
    """Llama-3.1-8B, 1 H200, batch 4096, context 128: 2 FLOPs per weight per token at fp8 peak x 0.6."""
    batch, ctx = 4096, 128
    step = step_time(PROFILES["llama-3.1-8b"], dep(1), ctx, batch)
    hand_compute = 2 * (8.03e9 - LLAMA8B_EMBED) * batch / (H200_FP8 * COMPUTE_EFF)
    hand_kv = batch * ctx * LLAMA8B_KV / (H200_BW * MEM_EFF)  # attention reads the cache (memory-bound)
    assert float(step.compute_s) == pytest.approx(hand_compute, rel=0.01)
    assert float(step.kv_s) == pytest.approx(hand_kv, rel=1e-9)
    assert float(step.weights_s) == 0.0
    assert decode(PROFILES["llama-3.1-8b"], dep(1), ctx, batch).record()["bound"] == "compute"


def test_long_context_large_batch_is_kv_bound() -> None:
    r = decode(PROFILES["llama-3.1-70b"], dep(8), 131072).record()
    assert r["feasible"] and r["bound"] == "kv"


def test_llama_8b_max_batch_by_hand() -> None:
    """1 H200 at 4096 tokens: floor((141e9 * 0.9 - 8.03e9 * 1 B) / (131072 B * 4096)) = 221."""
    budget = hbm_budget(PROFILES["llama-3.1-8b"], dep(1), 4096)
    assert int(budget.max_batch) == math.floor((H200_HBM * 0.9 - 8.03e9) / (LLAMA8B_KV * 4096)) == 221


def test_deepseek_v3_max_batch_by_hand() -> None:
    """8 H200, expert parallel, 128k tokens. Routed experts (58 layers x 256 x 3*7168*2048) are
    sharded 8 ways, the rest (671e9 published total minus those) is replicated; each GPU holds
    whole sequences of 70272 B/token (arXiv 2505.09343)."""
    routed = 58 * 256 * 3 * 7168 * 2048
    per_gpu = 671e9 - routed + routed / 8
    seqs_per_gpu = math.floor((H200_HBM * 0.9 - per_gpu) / (70272 * 131072))
    assert seqs_per_gpu == 3
    budget = hbm_budget(PROFILES["deepseek-v3"], dep(8, "ep"), 131072)
    assert int(budget.max_batch) == 8 * seqs_per_gpu


def test_switch_c_weights_do_not_fit_on_eight_h200() -> None:
    """1571e9 parameters (arXiv 2101.03961) at 1 B exceed 8 x 141e9 x 0.9 under every layout."""
    assert 1571e9 > 8 * H200_HBM * 0.9
    for layout in ("tp", "ep", "dp-tp"):
        r = decode(PROFILES["switch-c-2048"], dep(8, layout), 4096)
        assert not bool(r.feasible)
        assert int(r.reason) == WEIGHTS_DO_NOT_FIT
        assert r.record()["reason"] == REASONS[WEIGHTS_DO_NOT_FIT]


# --- Efficiencies and fixed costs are honoured --------------------------------------------

def test_halving_memory_efficiency_doubles_a_memory_bound_step() -> None:
    p = PROFILES["llama-3.1-8b"]
    full = float(step_time(p, dep(1), 0, 1).total_s)
    half = float(step_time(p, dep(1, mem_efficiency=MEM_EFF / 2), 0, 1).total_s)
    assert half == pytest.approx(2 * full, rel=1e-12)


def test_halving_compute_efficiency_doubles_the_compute_part() -> None:
    p = PROFILES["llama-3.1-8b"]
    full = step_time(p, dep(1), 128, 4096)
    half = step_time(p, dep(1, compute_efficiency=COMPUTE_EFF / 2), 128, 4096)
    assert float(half.compute_s) == pytest.approx(2 * float(full.compute_s), rel=1e-12)
    assert float(half.kv_s) == float(full.kv_s)
    assert float(full.total_s) < float(half.total_s) < 2 * float(full.total_s)


def test_link_efficiency_and_include_comm() -> None:
    p = PROFILES["llama-3.1-70b"]
    full = step_time(p, dep(8), 4096, 64)
    half = step_time(p, dep(8, link_efficiency=0.35), 4096, 64)
    off = step_time(p, dep(8, include_comm=False), 4096, 64)
    assert float(full.comm_s) > 0
    assert float(half.comm_s) == pytest.approx(2 * float(full.comm_s), rel=1e-12)
    assert float(off.comm_s) == 0.0
    assert float(off.total_s) == pytest.approx(float(full.total_s) - float(full.comm_s), rel=1e-12)
    assert float(step_time(p, dep(1), 4096, 64).comm_s) == 0.0  # nothing to exchange on one GPU


def test_step_overhead_adds_to_every_step() -> None:
    p = PROFILES["deepseek-v3"]
    base = step_time(p, dep(8, "ep"), 4096, 256)
    more = step_time(p, dep(8, "ep", step_overhead_s=0.005), 4096, 256)
    assert float(more.total_s) == pytest.approx(float(base.total_s) + 0.005, rel=1e-12)


def test_weight_dtype_sets_the_bytes_streamed() -> None:
    p = PROFILES["llama-3.1-8b"]
    fp8 = float(step_time(p, dep(1, weight_dtype="fp8"), 0, 1).weights_s)
    assert float(step_time(p, dep(1, weight_dtype="bf16"), 0, 1).weights_s) == pytest.approx(2 * fp8, rel=1e-12)
    assert float(step_time(p, dep(1, weight_dtype="fp4"), 0, 1).weights_s) == pytest.approx(fp8 / 2, rel=1e-12)


def test_weight_groups_are_read_and_held_in_their_own_formats() -> None:
    """A checkpoint may store weight groups in different formats (Meta's Llama 3.1 FP8 keeps its
    attention projections BF16; published FP8 and FP4 checkpoints keep the LM head BF16).

    Llama-3.1-405B on 8 H200 (tp, fp8): BF16 attention projections add A_proj / 8 bytes to a batch-1
    step's weight read and (A_attention - A_emb) / 8 to each GPU's resident bytes, and at batch 4096
    their GEMMs take 2 * A_proj * 4096 / 8 * (1 / 989.5 - 1 / 1979) / 0.6 TFLOP-seconds more; a BF16
    head adds H / 8 to the read and A_emb / 8 to the residence (every parameter once: A_emb).
    DeepSeek-V3 on 8 GPUs ep replicates the attention side, so a BF16 head adds all of A_emb per GPU.
    """
    from qsmoe.physics.memory import weight_bytes_per_gpu, weight_bytes_total

    p = PROFILES["llama-3.1-405b"]
    base, att, head = dep(8), dep(8, attention_proj_dtype="bf16"), dep(8, head_dtype="bf16")
    bw = H200_BW * MEM_EFF
    w0 = float(step_time(p, base, 0, 1).weights_s)
    assert float(step_time(p, att, 0, 1).weights_s) - w0 == pytest.approx(p.proj_params / 8 / bw, rel=1e-9)
    assert float(step_time(p, head, 0, 1).weights_s) - w0 == pytest.approx(p.head_params / 8 / bw, rel=1e-9)
    c0 = float(step_time(p, base, 0, 4096).compute_s)
    extra_s = 2 * p.proj_params * 4096 / 8 * (1 / H200_BF16 - 1 / H200_FP8) / COMPUTE_EFF
    assert float(step_time(p, att, 0, 4096).compute_s) - c0 == pytest.approx(extra_s, rel=1e-9)
    r0 = float(weight_bytes_per_gpu(p, base))
    assert float(weight_bytes_per_gpu(p, att)) - r0 == pytest.approx((p.resident_attention_params - p.embedding_params) / 8, rel=1e-9)
    assert float(weight_bytes_per_gpu(p, head)) - r0 == pytest.approx(p.embedding_params / 8, rel=1e-9)
    assert float(weight_bytes_total(p, head)) - float(weight_bytes_total(p, base)) == pytest.approx(p.embedding_params, rel=1e-9)
    d = PROFILES["deepseek-v3"]
    ep_gain = float(weight_bytes_per_gpu(d, dep(8, "ep", head_dtype="bf16"))) - float(weight_bytes_per_gpu(d, dep(8, "ep")))
    assert ep_gain == pytest.approx(d.embedding_params, rel=1e-9)
    assert dep(8, attention_proj_dtype="fp8", head_dtype="fp8").weight_format("head") == "fp8"
    with pytest.raises(QsError, match="attention_proj_dtype"):
        dep(8, attention_proj_dtype="fp7")
    with pytest.raises(QsError, match="head_dtype"):
        dep(8, head_dtype=3)


# --- Monotonicity over the shipped models -----------------------------------------------

@pytest.mark.parametrize("model_id", available_models())
def test_throughput_never_rises_with_context(model_id: str) -> None:
    p = PROFILES[model_id]
    for layout in layouts(p):
        r = decode(p, dep(8, layout), CONTEXTS)
        t = r.tokens_per_s
        assert np.all(np.diff(t) <= 1e-12 * t[:-1]), (layout, t)
        assert np.all(np.diff(r.max_batch) <= 0)


@pytest.mark.parametrize("model_id", available_models())
def test_more_gpus_never_hurt_feasibility(model_id: str) -> None:
    p = PROFILES[model_id]
    ctx = np.array([1, 4096, 131072, 1048576, 16777216], dtype=float)
    for layout in layouts(p):
        feasible = np.array([decode(p, dep(g, layout), ctx).feasible for g in range(1, 65)])
        max_batch = np.array([hbm_budget(p, dep(g, layout), ctx).max_batch for g in range(1, 65)])
        assert not np.any(feasible[:-1] & ~feasible[1:]), layout
        assert np.all(np.diff(max_batch, axis=0) >= 0), layout


def test_more_gpus_make_switch_c_fit() -> None:
    """Where Switch-C does fit: 1571e9 B / (141e9 * 0.9) -> at least 13 GPUs under tp."""
    p = PROFILES["switch-c-2048"]
    fits = [bool(decode(p, dep(g, "tp"), 512).feasible) for g in range(1, 33)]
    first = fits.index(True) + 1
    assert first == math.ceil(summarize(load_model("switch-c-2048")).total_params / (H200_HBM * 0.9))
    assert first == math.ceil(1571e9 / (H200_HBM * 0.9)) == 13
    assert all(fits[first - 1 :])


# --- Requested batches and infeasible points ------------------------------------------------

def test_batch_above_max_is_infeasible_with_reason() -> None:
    p = PROFILES["llama-3.1-8b"]
    max_batch = int(hbm_budget(p, dep(1), 4096).max_batch)
    ok = decode(p, dep(1), 4096, max_batch).record()
    assert ok["feasible"] and ok["batch"] == max_batch
    r = decode(p, dep(1), 4096, max_batch + 1)
    assert int(r.reason) == BATCH_TOO_LARGE
    rec = r.record()
    assert rec["feasible"] is False
    assert rec["reason"] == REASONS[BATCH_TOO_LARGE]
    assert rec["max_batch"] == max_batch
    assert rec["tokens_per_s"] is None and rec["step_time_s"] is None and rec["bound"] is None


def test_weights_that_do_not_fit_take_precedence_over_batch() -> None:
    r = decode(PROFILES["switch-c-2048"], dep(8), 4096, 1)
    assert int(r.reason) == WEIGHTS_DO_NOT_FIT


def test_context_too_long_for_one_sequence() -> None:
    """Llama-3.1-8B on one H200: (126.9e9 - 8.03e9) / 131072 B ~ 907k tokens is the most one sequence can hold."""
    p = PROFILES["llama-3.1-8b"]
    limit = (H200_HBM * 0.9 - 8.03e9) / LLAMA8B_KV
    assert bool(decode(p, dep(1), math.floor(limit * 0.99)).feasible)
    r = decode(p, dep(1), math.ceil(limit * 1.01))
    assert int(r.reason) == NO_SEQUENCE_FITS and r.record()["max_batch"] == 0


def _finite_or_none(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_or_none(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite_or_none(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, (bool, int, str))


def test_no_nan_or_inf_in_any_record() -> None:
    for model_id, p in PROFILES.items():
        for layout in layouts(p):
            for gpus in (1, 8, 64):
                for batch in (None, 1, 10**7):
                    r = decode(p, dep(gpus, layout), CONTEXTS, batch)
                    for arr in (r.step_time_s, r.tokens_per_s, r.tokens_per_s_per_gpu, r.max_batch):
                        assert np.all(np.isfinite(arr)), (model_id, layout, gpus, batch)
                    for i in range(len(CONTEXTS)):
                        rec = r.record((i,))
                        assert _finite_or_none(rec), (model_id, layout, gpus, batch, rec)
                        if not rec["feasible"]:
                            assert rec["reason"] in REASONS.values() and rec["reason"]
                            assert rec["tokens_per_s"] is None and rec["batch"] == 0


def test_record_is_self_consistent() -> None:
    r = decode(PROFILES["qwen3-235b-a22b"], dep(8, "ep"), 32768).record()
    assert r["feasible"]
    assert r["tokens_per_s"] == pytest.approx(r["batch"] / r["step_time_s"], rel=1e-12)
    assert r["tokens_per_s_per_gpu"] == pytest.approx(r["tokens_per_s"] / 8, rel=1e-12)
    assert r["bound"] in BOUNDS
    assert r["batch"] == r["max_batch"]


def test_bad_batch_and_context_are_refused() -> None:
    p = PROFILES["llama-3.1-8b"]
    for batch in (0, -3, float("nan")):
        with pytest.raises(QsError) as err:
            decode(p, dep(1), 1024, batch)
        assert err.value.field == "batch"
    for ctx in (-1, float("inf")):
        with pytest.raises(QsError) as err:
            decode(p, dep(1), ctx)
        assert err.value.field == "context"


# --- MoE limits that must reduce to the dense model ---------------------------------------

@st.composite
def moe_dense_pairs(draw: st.DrawFn) -> tuple[ModelSpec, ModelSpec, int]:
    """An MoE whose every layer uses all of its E experts (top-k = E) and the dense model with FFN E*f."""
    e = draw(st.integers(1, 16))
    width = draw(st.integers(64, 4096))
    heads = draw(st.sampled_from([8, 16, 32]))
    layers = draw(st.integers(1, 48))
    d_model = draw(st.sampled_from([512, 1024, 4096]))
    dense = ModelSpec(
        id="dense", name="dense", kind="decoder", vocab_size=draw(st.integers(1000, 150_000)), d_model=d_model,
        n_decoder_layers=layers, attention=Attention("gqa", n_heads=heads, n_kv_heads=8, head_dim=128),
        ffn_activation="swiglu", ffn_intermediate=e * width,
    )
    moe = dense.with_changes(id="moe", moe=Moe(n_routed_experts=e, top_k=e, expert_intermediate=width))
    return moe, dense, layers * d_model * e  # the MoE's router weights, its only extra


@settings(max_examples=40, deadline=None)
@given(moe_dense_pairs(), st.sampled_from([1, 2, 4, 8]), st.sampled_from(["tp", "dp-tp"]), st.integers(0, 200_000), st.integers(1, 4096), st.floats(0.0, 2.0))
def test_top_k_equal_to_e_decodes_like_dense(pair, gpus: int, layout: str, ctx: int, batch: int, skew: float) -> None:
    """phi = 1 at any batch, and the step time equals the dense model's plus the router's matmul."""
    moe, dense, router = pair
    pm, pd = profile_of(moe), profile_of(dense)
    assert pm.routed_params == pd.dense_ffn_params
    assert float(fraction_streamed(batch, pm.n_experts, pm.top_k, skew)) == pytest.approx(1.0, rel=1e-12)
    d = dep(gpus, layout, routing_skew=skew)
    tm = step_time(pm, d, ctx, batch)
    td = step_time(pd.with_changes(proj_params=pd.proj_params + router), d, ctx, batch)
    for part in ("compute_s", "weights_s", "kv_s", "comm_s", "overhead_s"):
        assert float(getattr(tm, part)) == pytest.approx(float(getattr(td, part)), rel=1e-12, abs=1e-18), part


def test_moe_reads_fewer_expert_bytes_at_small_batch() -> None:
    """Reuse fragmentation: at batch 1 DeepSeek-V3 (tp) streams k/E = 8/256 of its routed experts."""
    p = PROFILES["deepseek-v3"]
    routed_bytes = p.routed_params * 1.0 / 8  # fp8, tp over 8 GPUs
    small = float(step_time(p, dep(8), 0, 1).weights_s)
    no_routed = float(step_time(p.with_changes(routed_params=0.0), dep(8), 0, 1).weights_s)
    assert small - no_routed == pytest.approx(routed_bytes * 8 / 256 / (H200_BW * MEM_EFF), rel=1e-9)
