"""Model, hardware and Hugging Face config loaders, and how bad input is reported.

Every bad input must give one QsError naming the field and the value; through the CLI,
exit status 2 and a single line on stderr with no traceback.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from qsmoe import DATA_DIR
from qsmoe.physics.accounting import kv_bytes_per_token, summarize
from qsmoe.cli import main
from qsmoe.errors import QsError
from qsmoe.specs.hardware import available_hardware, load_hardware
from qsmoe.specs.models import MODELS_DIR, available_models, load_model

FIXTURES = Path(__file__).parent / "fixtures"
HF = FIXTURES / "hf_configs"
BAD = FIXTURES / "bad"
PARAMS = DATA_DIR / "params" / "default.yaml"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The real command line in a fresh interpreter (used for a representative subset: ~0.3 s each)."""
    return subprocess.run([sys.executable, "-m", "qsmoe.cli", *args], capture_output=True, text=True, timeout=60)


def run_main(capsys: pytest.CaptureFixture, *args: str) -> subprocess.CompletedProcess:
    """qsmoe.cli.main in this process: any exception other than the CLI's own exit escapes and fails the test."""
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse errors
        rc = exc.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), rc, out, err)


def assert_cli_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """Exit status 2, nothing on stdout, exactly one line on stderr containing every needle."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("qsmoe"), lines[0]
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- Shipped data -----------------------------------------------------------------------

def test_twelve_models_and_nine_accelerators_ship() -> None:
    assert len(available_models()) == 12
    assert len(available_hardware()) == 9


@pytest.mark.parametrize("model_id", available_models())
def test_every_shipped_model_loads(model_id: str) -> None:
    spec = load_model(model_id)
    assert spec.id == model_id
    assert spec.source.endswith(f"{model_id}.yaml")
    assert spec.published_total_params is not None  # every file carries a figure to check against
    s = summarize(spec)
    assert s.total_params > 0 and 0 < s.active_params <= s.total_params
    # Loading by path gives the same spec (apart from where it was read from).
    by_path = load_model(MODELS_DIR / f"{model_id}.yaml")
    assert by_path.with_changes(source="") == spec.with_changes(source="")


@pytest.mark.parametrize("hw_id", available_hardware())
def test_every_shipped_accelerator_loads(hw_id: str) -> None:
    hw = load_hardware(hw_id)
    assert hw.id == hw_id
    assert hw.hbm_bytes > 0 and hw.hbm_bandwidth_bytes_per_s > 0 and hw.link_bytes_per_s > 0
    assert hw.domain_size >= 1
    assert "bf16" in hw.peak_flops_per_s
    # Narrower formats are never slower than bf16 where they are supported.
    for fmt in ("fp8", "fp4"):
        if fmt in hw.peak_flops_per_s:
            assert hw.peak_flops_per_s[fmt] >= hw.peak_flops_per_s["bf16"]
    assert replace(load_hardware(DATA_DIR / "hardware" / f"{hw_id}.yaml"), source="") == replace(hw, source="")


# (id, HBM GB, HBM TB/s, BF16 TF/s, FP8 TF/s or None, link GB/s) from the vendor datasheets
# that each data/hardware/<id>.yaml lists under `sources` (dense peaks). Tolerance 0.5 %: the table rounds (989 vs 989.5, 2.04 vs 2.039).
FACTS_HARDWARE = [
    ("a100-sxm-80gb", 80, 2.04, 312, None, 600),
    ("h100-sxm", 80, 3.35, 989, 1979, 900),
    ("h800", 80, 3.35, 989, 1979, 400),
    ("h200", 141, 4.8, 989, 1979, 900),
    ("b200", 180, 8.0, 2250, 4500, 1800),
    ("gb200", 186, 8.0, 2500, 5000, 1800),
    ("mi300x", 192, 5.3, 1307, 2615, 896),
    ("mi325x", 256, 6.0, 1307, 2615, 896),
    ("mi355x", 288, 8.0, 2517, 5033, 1075),
]


@pytest.mark.parametrize("hw_id, hbm_gb, bw_tb, bf16_tf, fp8_tf, link_gb", FACTS_HARDWARE)
def test_accelerators_match_the_datasheet_table(hw_id: str, hbm_gb: float, bw_tb: float, bf16_tf: float, fp8_tf: float | None, link_gb: float) -> None:
    hw = load_hardware(hw_id)
    assert hw.hbm_bytes == pytest.approx(hbm_gb * 1e9, rel=0.005)
    assert hw.hbm_bandwidth_bytes_per_s == pytest.approx(bw_tb * 1e12, rel=0.005)
    assert hw.peak_flops_per_s["bf16"] == pytest.approx(bf16_tf * 1e12, rel=0.005)
    if fp8_tf is None:
        assert "fp8" not in hw.peak_flops_per_s
    else:
        assert hw.peak_flops_per_s["fp8"] == pytest.approx(fp8_tf * 1e12, rel=0.005)
    assert hw.link_bytes_per_s == pytest.approx(link_gb * 1e9, rel=0.005)


def test_missing_formats_fall_back_to_the_next_wider() -> None:
    a100, h200, b200 = (load_hardware(h) for h in ("a100-sxm-80gb", "h200", "b200"))
    assert a100.peak_for("fp8") == a100.peak_flops_per_s["bf16"]
    assert a100.peak_for("fp4") == a100.peak_flops_per_s["bf16"]
    assert h200.peak_for("fp4") == h200.peak_flops_per_s["fp8"]
    assert h200.peak_for("int8") == h200.peak_flops_per_s["fp8"]
    assert b200.peak_for("fp4") == b200.peak_flops_per_s["fp4"]
    assert b200.peak_for("fp32") == b200.peak_flops_per_s["bf16"]


# --- Hugging Face configs ---------------------------------------------------------------

def _same_architecture(a, b) -> None:
    """Two specs describe the same network (ids, names, sources and max_context may differ)."""
    for field in ("kind", "vocab_size", "d_model", "n_decoder_layers", "n_encoder_layers", "attention", "ffn_activation", "tie_embeddings", "moe"):
        assert getattr(a, field) == getattr(b, field), field
    sa, sb = summarize(a), summarize(b)
    assert sa.total_params == sb.total_params
    assert sa.active_params == sb.active_params
    assert sa.by_component() == sb.by_component()
    assert kv_bytes_per_token(a) == kv_bytes_per_token(b)


@pytest.mark.parametrize(
    "fixture, model_id",
    [("qwen3-32b.json", "qwen3-32b"), ("llama-3.1-8b.json", "llama-3.1-8b"), ("mixtral-8x7b-instruct-v0.1.json", "mixtral-8x7b")],
)
def test_hf_fixture_matches_shipped_yaml(fixture: str, model_id: str) -> None:
    hf = load_model(HF / fixture)
    _same_architecture(hf, load_model(model_id))
    assert hf.id == Path(fixture).stem


def test_hf_fixture_families() -> None:
    assert load_model(HF / "qwen3-32b.json").attention.qk_norm is True
    qwen2 = load_model(HF / "qwen2.5-32b.json")
    assert qwen2.attention.qkv_bias is True and qwen2.attention.qk_norm is False
    assert qwen2.attention.head_dim == 5120 // 40  # no head_dim key: hidden_size / heads
    moe = load_model(HF / "qwen3-30b-a3b.json")
    assert (moe.moe.n_routed_experts, moe.moe.top_k, moe.moe.expert_intermediate, moe.moe.n_shared_experts) == (128, 8, 768, 0)
    assert moe.moe_layer_count(moe.n_decoder_layers) == 48


@pytest.mark.parametrize(
    "fixture, total, active, source",
    [
        # Qwen/Qwen3-30B-A3B model card: "30.5B in total and 3.3B activated" ("3.3B": 2 %, as for 22B above).
        ("qwen3-30b-a3b.json", 30.5e9, 3.3e9, "Qwen3-30B-A3B model card"),
        # Qwen2.5-32B / QwQ-32B model card: "Number of Parameters: 32.5B".
        ("qwen2.5-32b.json", 32.5e9, None, "Qwen2.5-32B model card"),
    ],
)
def test_hf_fixture_without_yaml_matches_published(fixture: str, total: float, active: float | None, source: str) -> None:
    s = summarize(load_model(HF / fixture))
    assert s.total_params == pytest.approx(total, rel=0.01), source
    if active is not None:
        assert s.active_params == pytest.approx(active, rel=0.02), source


#: DeepSeek-V3's official config.json values (huggingface.co/deepseek-ai/DeepSeek-V3), architecture keys.
DEEPSEEK_V3_CONFIG = {
    "model_type": "deepseek_v3",
    "hidden_size": 7168,
    "num_hidden_layers": 61,
    "n_routed_experts": 256,
    "num_experts_per_tok": 8,
    "moe_intermediate_size": 2048,
    "n_shared_experts": 1,
    "first_k_dense_replace": 3,
    "moe_layer_freq": 1,
    "intermediate_size": 18432,
    "q_lora_rank": 1536,
    "kv_lora_rank": 512,
    "qk_nope_head_dim": 128,
    "qk_rope_head_dim": 64,
    "v_head_dim": 128,
    "num_attention_heads": 128,
    "num_key_value_heads": 128,
    "vocab_size": 129280,
    "tie_word_embeddings": False,
    "hidden_act": "silu",
    "max_position_embeddings": 163840,
}


def test_deepseek_v3_hf_config_matches_shipped_yaml(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DEEPSEEK_V3_CONFIG))
    hf = load_model(path)
    _same_architecture(hf, load_model("deepseek-v3"))
    assert hf.max_context == 163840
    assert kv_bytes_per_token(hf) == 70272  # arXiv 2505.09343 Table 1


def test_deepseek_v3_hf_config_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(DEEPSEEK_V3_CONFIG))
    proc = run_main(capsys, "model", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    ref = summarize(load_model("deepseek-v3"))
    assert got["total_params"] == ref.total_params
    assert got["active_params"] == ref.active_params
    assert got["kv_bytes_per_token"] == 70272


# --- Bad input: library -----------------------------------------------------------------

def _mutated_yaml(tmp_path: Path, base: str, edit) -> Path:
    """A copy of a shipped model file with one edit applied; the only defect is that edit."""
    data = yaml.safe_load((MODELS_DIR / f"{base}.yaml").read_text())
    edit(data)
    path = tmp_path / f"{base}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _set(section: str | None, key: str, value):
    def edit(data):
        (data[section] if section else data)[key] = value
    return edit


def _drop(section: str | None, key: str):
    def edit(data):
        del (data[section] if section else data)[key]
    return edit


def _hf_config(tmp_path: Path, **changes) -> Path:
    data = json.loads((HF / "mixtral-8x7b-instruct-v0.1.json").read_text())
    data.update(changes)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(data))
    return path


# (case id, builder(tmp_path) -> path, expected field (None: file-level), strings the message must hold)
BAD_MODEL_FILES = [
    ("malformed-yaml", lambda t: BAD / "malformed.yaml", None, ["malformed YAML", "malformed.yaml", "line 3"]),
    ("malformed-json", lambda t: BAD / "malformed.json", None, ["malformed JSON", "malformed.json"]),
    ("top-level-list", lambda t: BAD / "list.yaml", None, ["expected a mapping", "list"]),
    ("missing-d_model", lambda t: _mutated_yaml(t, "mixtral-8x7b", _drop(None, "d_model")), "d_model", ["missing"]),
    ("missing-layers", lambda t: _mutated_yaml(t, "mixtral-8x7b", _drop(None, "layers")), "layers", ["missing"]),
    ("negative-d_model", lambda t: _mutated_yaml(t, "mixtral-8x7b", _set(None, "d_model", -5)), "d_model", ["-5"]),
    ("zero-heads", lambda t: _mutated_yaml(t, "mixtral-8x7b", _set("attention", "n_heads", 0)), "attention.n_heads", ["0"]),
    ("zero-vocab", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set(None, "vocab_size", 0)), "vocab_size", ["0"]),
    ("text-d_model", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set(None, "d_model", "wide")), "d_model", ["'wide'"]),
    ("fractional-layers", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set("layers", "decoder", 31.5)), "layers.decoder", ["31.5"]),
    ("kv-heads-not-dividing", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set("attention", "n_kv_heads", 5)), "attention.n_kv_heads", ["5"]),
    ("top_k-above-experts", lambda t: _mutated_yaml(t, "mixtral-8x7b", _set("moe", "top_k", 9)), "moe.top_k", ["9", "8"]),
    ("zero-experts", lambda t: _mutated_yaml(t, "mixtral-8x7b", _set("moe", "n_routed_experts", 0)), "moe.n_routed_experts", ["0"]),
    ("negative-shared", lambda t: _mutated_yaml(t, "deepseek-v3", _set("moe", "n_shared_experts", -1)), "moe.n_shared_experts", ["-1"]),
    ("dense-layers-beyond-depth", lambda t: _mutated_yaml(t, "deepseek-v3", _set("moe", "first_dense_layers", 62)), "moe.first_dense_layers", ["62"]),
    ("unknown-attention", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set("attention", "type", "linear")), "attention.type", ["'linear'"]),
    ("unknown-activation", lambda t: _mutated_yaml(t, "llama-3.1-8b", _set("ffn", "activation", "swish")), "ffn.activation", ["'swish'"]),
    ("encdec-without-encoder", lambda t: _mutated_yaml(t, "switch-c-2048", _set("layers", "encoder", 0)), "layers.encoder", ["0"]),
    ("hf-gpt2", lambda t: BAD / "gpt2" / "config.json", "model_type", ["'gpt2'"]),
    ("hf-top_k-above-experts", lambda t: _hf_config(t, num_experts_per_tok=9), "num_experts_per_tok", ["9"]),
    ("hf-zero-layers", lambda t: _hf_config(t, num_hidden_layers=0), "num_hidden_layers", ["0"]),
    ("hf-bad-activation", lambda t: _hf_config(t, hidden_act="tanh"), "hidden_act", ["'tanh'"]),
    ("hf-missing-hidden", lambda t: _hf_config(t, hidden_size=None), "hidden_size", ["missing"]),
]


@pytest.mark.parametrize("case, build, field, needles", BAD_MODEL_FILES, ids=[c[0] for c in BAD_MODEL_FILES])
def test_bad_model_file_is_one_clear_error(tmp_path: Path, case: str, build, field: str | None, needles: list[str]) -> None:
    path = build(tmp_path)
    with pytest.raises(QsError) as err:
        load_model(path)
    message = str(err.value)
    assert err.value.field == field
    assert str(path) in message
    if field:
        assert f"field '{field}'" in message
    for needle in needles:
        assert needle in message


#: Cases also run through a fresh interpreter (the rest run qsmoe.cli.main in-process).
SUBPROCESS_CASES = {"malformed-yaml", "negative-d_model", "hf-gpt2"}


@pytest.mark.parametrize("case, build, field, needles", BAD_MODEL_FILES, ids=[c[0] for c in BAD_MODEL_FILES])
def test_bad_model_file_via_cli(tmp_path: Path, capsys: pytest.CaptureFixture, case: str, build, field: str | None, needles: list[str]) -> None:
    path = build(tmp_path)
    runs = [run_main(capsys, "model", str(path))]
    if case in SUBPROCESS_CASES:
        runs.append(run_cli("model", str(path)))
    for proc in runs:
        line = assert_cli_error(proc, str(path), *needles)
        if field:
            assert f"field '{field}'" in line


def test_unknown_model_id(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(QsError) as err:
        load_model("no-such-model")
    assert err.value.field == "model"
    assert "'no-such-model'" in str(err.value)
    assert "deepseek-v3" in str(err.value)  # lists what is known
    assert_cli_error(run_cli("model", "no-such-model"), "field 'model'", "'no-such-model'")
    assert_cli_error(run_main(capsys, "decode", "--model", "no-such-model", "--context", "1024"), "field 'model'", "'no-such-model'")
    assert_cli_error(run_main(capsys, "compare", "--model", "no-such-model", "--context", "1024"), "field 'model'", "'no-such-model'")


def test_missing_model_file() -> None:
    with pytest.raises(QsError, match="file not found"):
        load_model("/nonexistent/model.yaml")


def test_unknown_hardware_id(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(QsError) as err:
        load_hardware("tpu-v9")
    assert err.value.field == "hardware"
    assert "'tpu-v9'" in str(err.value) and "h200" in str(err.value)
    assert_cli_error(run_main(capsys, "decode", "--model", "llama-3.1-8b", "--hardware", "tpu-v9", "--context", "1024"), "field 'hardware'", "'tpu-v9'")


def test_bad_hardware_file(tmp_path: Path) -> None:
    data = yaml.safe_load((DATA_DIR / "hardware" / "h200.yaml").read_text())
    data["hbm_bandwidth_bytes_per_s"] = -4.8e12
    path = tmp_path / "h200.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(QsError) as err:
        load_hardware(path)
    assert err.value.field == "hbm_bandwidth_bytes_per_s"
    assert repr(-4.8e12) in str(err.value)
    del data["peak_flops_per_s"]["bf16"]
    data["hbm_bandwidth_bytes_per_s"] = 4.8e12
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(QsError) as err:
        load_hardware(path)
    assert err.value.field == "peak_flops_per_s.bf16"


# --- Bad input: CLI flags and parameter files ----------------------------------------------

def test_negative_context_via_cli() -> None:
    assert_cli_error(run_cli("decode", "--model", "deepseek-v3", "--context", "-1"), "--context", "'-1'")


def test_negative_context_in_the_library() -> None:
    from qsmoe.physics.memory import check_context

    with pytest.raises(QsError) as err:
        check_context(-1)
    assert err.value.field == "context" and "-1" in str(err.value)


def test_bad_context_text_via_cli(capsys: pytest.CaptureFixture) -> None:
    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "lots"), "--context", "'lots'")
    assert_cli_error(run_main(capsys, "compare", "--model", "deepseek-v3", "--context=-4k"), "--context", "'-4k'")


def test_zero_gpus(capsys: pytest.CaptureFixture) -> None:
    from qsmoe.physics.deployment import Deployment

    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "1024", "--gpus", "0"), "--gpus", "got 0")
    with pytest.raises(QsError) as err:
        Deployment(load_hardware("h200"), gpus=0)
    assert err.value.field == "gpus" and "0" in str(err.value)


def test_unknown_dtype(capsys: pytest.CaptureFixture) -> None:
    from qsmoe.physics.deployment import Deployment

    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "1024", "--weight-dtype", "fp3"), "--weight-dtype", "'fp3'")
    assert_cli_error(run_main(capsys, "model", "deepseek-v3", "--kv-dtype", "fp3"), "--kv-dtype", "'fp3'")
    for field in ("weight_dtype", "kv_dtype"):
        with pytest.raises(QsError) as err:
            Deployment(load_hardware("h200"), **{field: "fp3"})
        assert err.value.field == field and "'fp3'" in str(err.value)


def test_bad_reserve_and_skew_via_cli(capsys: pytest.CaptureFixture) -> None:
    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "1024", "--reserve", "1.5"), "field 'reserve_fraction'", "1.5")
    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "1024", "--skew", "-1"), "field 'routing_skew'", "-1")


def _params_file(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load(PARAMS.read_text())
    data.update(changes)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_params_file_with_unknown_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _params_file(tmp_path, gpu_count=8)
    args = ("--model", "deepseek-v3", "--context", "1024", "--params", str(path))
    assert_cli_error(run_cli("decode", *args), str(path), "unknown key", "gpu_count")
    assert_cli_error(run_main(capsys, "compare", *args), str(path), "unknown key", "gpu_count")


def test_params_file_with_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = _params_file(tmp_path, gpus="eight")
    args = ("--model", "deepseek-v3", "--context", "1024", "--params", str(path))
    assert_cli_error(run_main(capsys, "compare", *args), str(path), "field 'gpus'", "'eight'")
    assert_cli_error(run_main(capsys, "decode", *args), str(path), "field 'gpus'", "'eight'")


@pytest.mark.parametrize(
    "changes, field, value",
    [({"gpus": 0}, "gpus", "0"), ({"weight_dtype": "fp3"}, "weight_dtype", "'fp3'"), ({"kv_dtype": "fp3"}, "kv_dtype", "'fp3'"), ({"mem_efficiency_amd": 1.5}, "mem_efficiency_amd", "1.5"), ({"hardware": "tpu-v9"}, "hardware", "'tpu-v9'")],
)
def test_params_file_with_bad_value(tmp_path: Path, capsys: pytest.CaptureFixture, changes: dict, field: str, value: str) -> None:
    path = _params_file(tmp_path, **changes)
    for command in ("decode", "compare"):
        assert_cli_error(run_main(capsys, command, "--model", "deepseek-v3", "--context", "1024", "--params", str(path)), f"field '{field}'", value)


def test_malformed_params_file(capsys: pytest.CaptureFixture) -> None:
    assert_cli_error(run_main(capsys, "decode", "--model", "deepseek-v3", "--context", "1024", "--params", str(BAD / "malformed.yaml")), "malformed YAML")


# --------------------------------------------------------------------------- the reading budget


def test_yaml_reads_exponent_floats_as_numbers():
    from qsmoe.specs.fileio import parse_yaml

    assert parse_yaml("a: 1e308\nb: -2E-3\nc: 1.5e+3\nd: 12\ne: 1e5x", "t") == {"a": 1e308, "b": -0.002, "c": 1500.0, "d": 12, "e": "1e5x"}


def test_alias_bomb_stops_within_the_value_budget():
    import time

    from qsmoe.specs.fileio import MAX_NODES, parse_yaml

    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]\n" for i in range(1, 9))
    t0 = time.perf_counter()
    with pytest.raises(QsError, match=f"more than {MAX_NODES} values"):
        parse_yaml(bomb, "bomb.yaml")
    assert time.perf_counter() - t0 < 2.0
    # aliases that do not multiply are fine
    assert parse_yaml("a: &x [1, 2]\nb: *x\n", "t") == {"a": [1, 2], "b": [1, 2]}


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: 1\nb: 2\na: 3\n", "duplicate key 'a'"),
        ("a: !!python/object:os.system x\n", "YAML tags are not allowed"),
        ("a: &r [1, *r]\n", "recursive alias"),
        ("a: " + "[" * 70 + "]" * 70 + "\n", "nested more than"),
    ],
)
def test_yaml_budget_refusals(text, message):
    from qsmoe.specs.fileio import parse_yaml

    with pytest.raises(QsError, match=message):
        parse_yaml(text, "t.yaml")


def test_excerpt_is_bounded():
    from qsmoe.specs.fileio import EXCERPT_CHARS, excerpt

    assert len(excerpt(list(range(10**5)))) <= EXCERPT_CHARS + 3
    assert len(excerpt("x" * 10**6)) <= EXCERPT_CHARS + 3
    assert excerpt(0.5) == "0.5"


def test_hf_first_k_dense_replace_is_not_clamped(tmp_path):
    """config.json and the YAML loader refuse the same thing: no MoE layer left."""
    config = {"model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "kv_lora_rank": 16,
              "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 8, "n_routed_experts": 8, "num_experts_per_tok": 2,
              "moe_intermediate_size": 32, "intermediate_size": 128, "vocab_size": 100, "first_k_dense_replace": 5}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(QsError, match="first_k_dense_replace"):
        load_model(path)
    config.update(first_k_dense_replace=1, moe_layer_freq=4)
    path.write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(QsError, match="moe_layer_freq"):
        load_model(path)
    config.update(moe_layer_freq=3)
    path.write_text(json.dumps(config), encoding="utf-8")
    assert load_model(path).moe_layer_count(4) == 1
