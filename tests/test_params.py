"""Parameter sets: loading, --set overrides, errors, hash and slug."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qsmoe.errors import QsError
from qsmoe.scenario.params import (
    DEFAULT_PARAMS_PATH,
    ParamSet,
    apply_overrides,
    load_params,
    parse_assignment,
    resolve,
    validate,
)

DEFAULT_YAML = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))


def write_params(tmp_path: Path, **changes) -> Path:
    data = dict(DEFAULT_YAML)
    data.update(changes)
    path = tmp_path / f"{data['name']}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- loading


def test_default_set_loads_every_key():
    pset = load_params()
    assert pset.name == DEFAULT_YAML["name"]
    assert set(pset.values) == set(DEFAULT_YAML) - {"name"}
    assert pset.path == DEFAULT_PARAMS_PATH
    assert pset.overrides == ()
    assert pset.slug == pset.name


def test_resolve_without_arguments_is_the_default_set():
    assert resolve() == load_params(DEFAULT_PARAMS_PATH)


def test_papermill_parameters_are_one_dict_plus_name_and_hash():
    pset = load_params()
    params = pset.papermill_parameters()
    assert set(params) == {"params", "param_set_name", "param_set_hash"}
    assert params["param_set_name"] == pset.name
    assert params["param_set_hash"] == pset.hash
    assert params["params"] == pset.values and params["params"] is not pset.values


def test_other_file_with_own_name(tmp_path):
    path = write_params(tmp_path, name="small", gpus=4)
    pset = load_params(path)
    assert pset.name == "small"
    assert pset.slug == "small"
    assert pset.values["gpus"] == 4


def test_whole_number_for_a_float_key_is_normalised(tmp_path):
    path = write_params(tmp_path, name="whole", mem_efficiency_nvidia=1)
    pset = load_params(path)
    assert pset.values["mem_efficiency_nvidia"] == 1.0 and isinstance(pset.values["mem_efficiency_nvidia"], float)
    again = load_params(write_params(tmp_path, name="whole", mem_efficiency_nvidia=1.0))
    assert pset.hash == again.hash


# --------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(QsError, match=re.escape(str(missing))) as exc:
        load_params(missing)
    assert "not found" in str(exc.value)


def test_malformed_yaml_names_the_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: bad\ngpus: [8\n", encoding="utf-8")
    with pytest.raises(QsError, match="malformed YAML") as exc:
        load_params(path)
    assert str(path) in str(exc.value)


def test_top_level_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n", encoding="utf-8")
    with pytest.raises(QsError, match="mapping"):
        load_params(path)


def test_unknown_key_in_file(tmp_path):
    path = write_params(tmp_path, name="typo", gpu_count=8)
    with pytest.raises(QsError, match="gpu_count") as exc:
        load_params(path)
    assert str(path) in str(exc.value)


def test_missing_key_in_file(tmp_path):
    data = dict(DEFAULT_YAML)
    del data["gpus"]
    path = tmp_path / "short.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(QsError, match="missing key.*gpus"):
        load_params(path)


def test_missing_name_in_file(tmp_path):
    data = dict(DEFAULT_YAML)
    del data["name"]
    path = tmp_path / "anon.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(QsError, match="field 'name'"):
        load_params(path)


@pytest.mark.parametrize("name", ["", "a b", "../up", 3])
def test_bad_set_name(tmp_path, name):
    data = dict(DEFAULT_YAML, name=name)
    path = tmp_path / "badname.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(QsError, match="name"):
        load_params(path)


@pytest.mark.parametrize(
    "key, value",
    [("gpus", "eight"), ("gpus", 8.5), ("include_comm", "yes please"), ("models", "deepseek-v3"), ("hardware", 200)],
)
def test_wrong_type_in_file(tmp_path, key, value):
    path = write_params(tmp_path, name="wrong", **{key: value})
    with pytest.raises(QsError, match=f"field '{key}'") as exc:
        load_params(path)
    assert repr(value) in str(exc.value)
    assert str(path) in str(exc.value)


def test_nan_in_file_is_refused(tmp_path):
    path = tmp_path / "nan.yaml"
    text = DEFAULT_PARAMS_PATH.read_text(encoding="utf-8").replace("name: default", "name: nan")
    text = re.sub(r"(?m)^mem_efficiency_nvidia:.*$", "mem_efficiency_nvidia: .nan", text)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(QsError, match="mem_efficiency_nvidia.*finite"):
        load_params(path)


# --------------------------------------------------------------------------- overrides


def test_overrides_apply_and_parse_as_yaml():
    pset = resolve(None, ["gpus=4", "include_comm=false", "models=[deepseek-v3, grok-1]", "mem_efficiency_nvidia=0.9"])
    assert pset.values["gpus"] == 4
    assert pset.values["include_comm"] is False
    assert pset.values["models"] == ["deepseek-v3", "grok-1"]
    assert pset.values["mem_efficiency_nvidia"] == 0.9
    assert pset.overrides == ("gpus", "include_comm", "models", "mem_efficiency_nvidia")


def test_readme_example_override():
    pset = resolve(None, ["hardware=mi355x", "headline_context=65536"])
    assert pset.values["hardware"] == "mi355x"
    assert pset.values["headline_context"] == 65536


def test_override_slug_never_equals_the_base_slug():
    base = load_params()
    same = resolve(None, [f"gpus={base.values['gpus']}"])
    assert same.hash == base.hash  # same values, same hash ...
    assert same.slug == f"{base.name}-{base.hash}" != base.slug  # ... but its own folder
    changed = resolve(None, ["gpus=4"])
    assert changed.slug == f"{base.name}-{changed.hash}"
    assert changed.hash != base.hash


def test_override_value_with_equals_sign():
    key, value = parse_assignment("description=a=b")
    assert (key, value) == ("description", "a=b")


def test_int_override_for_float_key_becomes_float():
    pset = resolve(None, ["mem_efficiency_nvidia=1"])
    assert isinstance(pset.values["mem_efficiency_nvidia"], float)
    assert pset.hash == resolve(None, ["mem_efficiency_nvidia=1.0"]).hash


@pytest.mark.parametrize(
    "assignment, pattern",
    [
        ("gpu=8", r"field 'gpu'.*unknown key"),
        ("gpus=eight", r"field 'gpus'.*expected int.*'eight'"),
        ("gpus=4.5", r"field 'gpus'.*4\.5"),
        ("include_comm=1", r"field 'include_comm'.*expected bool"),
        ("models=deepseek-v3", r"field 'models'.*expected list"),
        ("mem_efficiency_nvidia=.inf", r"field 'mem_efficiency_nvidia'.*finite"),
        ("mem_efficiency_nvidia=.nan", r"field 'mem_efficiency_nvidia'.*finite"),
        ("gpus", r"expected key=value"),
        ("=4", r"expected key=value"),
        ("models=[a, b", r"field 'models'.*cannot parse"),
        ("name=other", r"field 'name'"),
    ],
)
def test_bad_overrides(assignment, pattern):
    with pytest.raises(QsError, match=pattern) as exc:
        resolve(None, [assignment])
    assert str(exc.value).startswith("--set")


def test_overrides_chain():
    once = resolve(None, ["gpus=4"])
    twice = apply_overrides(once, ["hardware=mi355x"])
    assert twice.overrides == ("gpus", "hardware")
    assert twice.values["gpus"] == 4 and twice.values["hardware"] == "mi355x"
    assert once.values["hardware"] == DEFAULT_YAML["hardware"]  # the base is untouched


# --------------------------------------------------------------------------- hash


def test_hash_format_and_determinism():
    pset = load_params()
    assert re.fullmatch(r"[0-9a-f]{12}", pset.hash)
    assert pset.hash == load_params().hash
    reordered = ParamSet(name="x", values=dict(reversed(list(pset.values.items()))))
    assert reordered.hash == pset.hash  # key order does not matter


def test_hash_is_stable_across_processes():
    code = "from qsmoe.scenario.params import load_params; print(load_params().hash)"
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True,
            env={**__import__("os").environ, "PYTHONHASHSEED": seed},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert hashes == {load_params().hash}


def test_hash_covers_every_value():
    base = load_params()
    for key, value in base.values.items():
        if isinstance(value, bool):
            new = not value
        elif isinstance(value, (int, float)):
            new = value + 1
        elif isinstance(value, str):
            new = value + "x"
        else:
            new = list(value) + list(value[:1])
        changed = ParamSet(name=base.name, values={**base.values, key: new})
        assert changed.hash != base.hash, key


# --------------------------------------------------------------------------- validate hook


def test_validate_accepts_the_default_values():
    validate(load_params().values)


def test_validate_reports_the_source():
    values = dict(load_params().values, gpus="x")
    with pytest.raises(QsError, match=r"^mine: field 'gpus'"):
        validate(values, source="mine")


def test_values_are_json_serialisable():
    json.dumps(load_params().values, allow_nan=False)


@pytest.mark.parametrize(
    "key, value, pattern",
    [
        ("gpus", 0, r"field 'gpus'.*got 0"),
        ("mem_efficiency_nvidia", 1.5, r"field 'mem_efficiency_nvidia'.*1\.5"),
        ("reserve_fraction", -0.1, r"field 'reserve_fraction'.*-0\.1"),
        ("weight_dtype", "fp3", r"field 'weight_dtype'.*fp3"),
        ("hardware", "tpu9", r"field 'hardware'.*tpu9"),
        ("q_rule", "vibes", r"field 'q_rule'.*vibes"),
        ("dense_arch", "mamba", r"field 'dense_arch'.*mamba"),
        ("models", ["llama-3.1-8b"], r"field 'models'.*dense model"),
        ("contexts", [4096, -1], r"field 'contexts'"),
        ("step_overhead_s", -0.001, r"field 'step_overhead_s'"),
    ],
)
def test_physics_ranges_are_checked_with_the_file_named(tmp_path, key, value, pattern):
    path = write_params(tmp_path, name="ranges", **{key: value})
    with pytest.raises(QsError, match=pattern) as exc:
        load_params(path)
    assert str(path) in str(exc.value)
