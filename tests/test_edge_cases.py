"""Edge cases found in review: uneven expert placement, user model files and the q rules,
prefill attention of MLA, the busiest GPU's share of a batch, and inputs at the extremes."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import yaml

from qsmoe.physics.accounting import prefill_attention_flops_per_token
from qsmoe.scenario.compare import scenario
from qsmoe.physics.decode import decode, step_time
from qsmoe.physics.deployment import Deployment
from qsmoe.errors import QsError
from qsmoe.specs.hardware import load_hardware
from qsmoe.physics.memory import routed_share_per_gpu, weight_bytes_per_gpu
from qsmoe.specs.models import MODELS_DIR, load_model
from qsmoe.scenario.params import resolve
from qsmoe.physics.profile import profile_of
from qsmoe.physics.quality import dense_profile, estimate_q
from qsmoe.physics.routing import selection_probabilities


@pytest.fixture(scope="module")
def values():
    return dict(resolve().values)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "qsmoe.cli", *args], capture_output=True, text=True)


def test_expert_parallel_memory_counts_the_fullest_gpu():
    # 8 experts on 6 GPUs: two GPUs hold 2 experts each, so the fullest holds 2/8 of the routed weights
    assert routed_share_per_gpu(8, 6) == pytest.approx(2 / 8)
    assert routed_share_per_gpu(256, 8) == pytest.approx(1 / 8)
    assert routed_share_per_gpu(8, 16) == pytest.approx(1 / 16)
    grok = profile_of(load_model("grok-1"))
    dep = Deployment(load_hardware("h200"), gpus=6, layout="ep", weight_dtype="bf16")
    expected = (grok.resident_other_params + grok.resident_routed_params * 2 / 8) * 2
    assert float(weight_bytes_per_gpu(grok, dep)) == pytest.approx(expected)
    # about 167 GB on a 141 GB GPU: infeasible, where an even 1/6 share would have "fitted"
    assert not bool(decode(grok, dep, 4096).feasible)


def test_busiest_gpu_attends_to_whole_sequences():
    ds = profile_of(load_model("deepseek-v3"))
    dep = Deployment(load_hardware("h200"), gpus=8, layout="ep")
    one_each = step_time(ds, dep, 32768, 8.0)
    nine = step_time(ds, dep, 32768, 9.0)  # one GPU now holds 2 sequences
    assert float(nine.kv_s + nine.compute_s) > float(one_each.kv_s + one_each.compute_s)


def test_mla_prefill_attention_is_unabsorbed():
    ds = load_model("deepseek-v3")
    # 2*h*(nope + rope + v) per layer per token pair: 2*128*(128+64+128) = 81,920; x61 layers
    assert prefill_attention_flops_per_token(ds, 1.0) == pytest.approx(81920 * 61)
    llama = load_model("llama-3.1-70b")
    assert prefill_attention_flops_per_token(llama, 1000.0) == pytest.approx(4 * 64 * 128 * 80 * 1000.0)


def _edited_deepseek(tmp_path, n_experts, model_id="deepseek-v3"):
    data = yaml.safe_load((MODELS_DIR / "deepseek-v3.yaml").read_text(encoding="utf-8"))
    data["moe"]["n_routed_experts"] = n_experts
    data["id"] = model_id
    path = tmp_path / f"{model_id}.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return load_model(path)


def test_clark_rule_uses_the_given_model_not_the_shipped_one(tmp_path):
    shipped = load_model("deepseek-v3")
    edited = _edited_deepseek(tmp_path, 64)
    for spec in (shipped, edited):
        assert spec.moe is not None
    p_shipped, p_edited = profile_of(shipped), profile_of(edited)
    q_shipped = estimate_q("clark", shipped, p_shipped.total_params, p_shipped.active_params)
    q_edited = estimate_q("clark", edited, p_edited.total_params, p_edited.active_params)
    assert q_edited < q_shipped  # fewer experts, less expansion, smaller effective size
    renamed = _edited_deepseek(tmp_path, 64, "my-moe")
    p = profile_of(renamed)
    assert estimate_q("clark", renamed, p.total_params, p.active_params) == pytest.approx(q_edited)


def test_author_rule_has_no_pairing_for_a_model_read_from_a_file(tmp_path):
    edited = _edited_deepseek(tmp_path, 64)
    p = profile_of(edited)
    with pytest.raises(QsError, match="no published quality pairing"):
        estimate_q("author", edited, p.total_params, p.active_params)


def test_author_lower_bound_is_labelled(values):
    sc = scenario(dict(values, q_rule="author"), "switch-c-2048")
    assert sc.q_rule.startswith("author (a lower bound")
    assert scenario(dict(values, q_rule="author"), "deepseek-v3").q_rule == "author"


@pytest.mark.parametrize("arch", ["moe_attention", "scaled_attention", "llama_gqa"])
def test_tiny_q_is_refused_by_every_dense_architecture(arch):
    moe = profile_of(load_model("deepseek-v3"))
    with pytest.raises(QsError, match="field 'q'"):
        dense_profile(moe, 1e-300, arch)


def test_huge_skew_gives_finite_probabilities():
    pi = selection_probabilities(256, 8, 800.0)
    assert np.all(np.isfinite(pi)) and pi.sum() == pytest.approx(8) and np.all(pi <= 1 + 1e-12)
    assert pi[:8] == pytest.approx(np.ones(8))  # the 8 most popular experts are always chosen


@pytest.mark.parametrize("context", ["inf", "1e400", "1.5", "nan", "2000000000"])
def test_unusable_context_is_one_line(context):
    r = run_cli("decode", "--model", "deepseek-v3", f"--context={context}")
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert "--context" in r.stderr


def test_bench_size_is_bounded():
    r = run_cli("bench", "--size", "3000")
    assert r.returncode == 2 and "--size" in r.stderr and "Traceback" not in r.stderr


def test_gpu_count_is_bounded():
    with pytest.raises(QsError, match="field 'gpus'"):
        Deployment(load_hardware("h200"), gpus=10**21)


def test_threshold_counts_only_routed_weights_as_skippable(values):
    from qsmoe.scenario.compare import compare

    cmp = compare(scenario(values, "deepseek-v3"), 131072)
    phi, theta = float(cmp.terms["phi"]), float(cmp.terms["threshold"])
    assert 0 < phi < 1
    # with phi < 1 the threshold lies between the all-weights approximation and 1
    sc = cmp.scenario
    from qsmoe.physics.inequality import qs_threshold
    from qsmoe.physics.memory import weight_bytes_per_gpu as wpg

    g = sc.moe_deployment.gpus
    m, w = g * sc.moe_deployment.usable_hbm_bytes, g * float(wpg(sc.moe, sc.moe_deployment))
    rho = float(cmp.terms["kv_ratio"])
    approx = float(qs_threshold(m, w, phi, rho))
    assert approx < theta and math.isfinite(theta)


def test_kv_split_follows_the_gpu_with_the_most_heads():
    from qsmoe.physics.memory import kv_split

    llama = profile_of(load_model("llama-3.1-70b"))  # 8 KV heads
    h200 = load_hardware("h200")
    assert kv_split(llama, Deployment(h200, gpus=8, layout="tp")) == 8
    assert kv_split(llama, Deployment(h200, gpus=3, layout="tp")) == pytest.approx(8 / 3)  # 3 heads on the fullest GPU
    assert kv_split(llama, Deployment(h200, gpus=16, layout="tp")) == 8  # heads replicated beyond 8 GPUs
    assert kv_split(llama, Deployment(h200, gpus=16, layout="dp-tp")) == 1
    ds = profile_of(load_model("deepseek-v3"))
    assert kv_split(ds, Deployment(h200, gpus=8, layout="tp")) == 1  # MLA latent replicated


def test_bench_evaluates_the_whole_grid(values):
    """The vectorised benchmark evaluates contexts x batches x q x clusters (a count, not a timing)."""
    from qsmoe.evidence.bench import run_bench

    r = run_bench(values, n_contexts=4, n_batches=5, n_q=3, clusters=(8, 16), repeats=1)
    assert r["design_points"] == 4 * 5 * 3 * 2
    assert math.isfinite(r["checksum"]) and r["checksum"] > 0 and r["points_per_s"] > 0


def test_bench_benchmark(benchmark, values):
    """pytest-benchmark timing of one grid (reported with --benchmark-enable; never asserted)."""
    from qsmoe.evidence.bench import run_bench

    benchmark.pedantic(run_bench, args=(values,), kwargs=dict(n_contexts=16, n_batches=16, n_q=16, repeats=1), rounds=1, iterations=1)
