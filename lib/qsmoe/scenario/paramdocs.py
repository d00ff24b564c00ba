"""What each parameter of a parameter set means, and which values it accepts.

Meanings and sections are read from the comments of the parameter file itself
(data/params/default.yaml: a comment line after a blank line opens a section, a key's meaning
is its trailing ``# comment``), so the documentation cannot drift from the file; the accepted
values of the keys that name a choice are read from the library.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, load_params

Values = Mapping[str, Any]

#: Meanings of keys that carry no inline comment in data/params/default.yaml, and of the
#: provenance parameters ``qsmoe book`` adds.
EXTRA_MEANINGS: dict[str, tuple[str, str]] = {
    "name": ("Identity", "the set's name; the build goes to _build/<name>/ (or _build/<name>-<hash>/ with --set overrides)"),
    "description": ("Identity", "one sentence saying what this set represents"),
    "models": ("What the book evaluates", "MoE models the book evaluates (ids of data/models/)"),
    "headline_model": ("What the book evaluates", "the MoE of the headline comparison"),
    "headline_context": ("What the book evaluates", "context length of the headline comparison"),
    "contexts": ("What the book evaluates", "context lengths of the sweeps, in tokens"),
    "param_set_name": ("Provenance (added by qsmoe book)", "the name of the set the book was built with"),
    "param_set_hash": ("Provenance (added by qsmoe book)", "first 12 hex digits of the sha256 of the set's values"),
    "git_commit": ("Provenance (added by qsmoe book)", "commit of the repository at build time (-dirty: uncommitted changes)"),
    "results_dir": ("Provenance (added by qsmoe book)", "folder where a chapter writes its glued values, tables and figures"),
}

_KEY_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*):(.*)$")


def parameter_docs(path: str | Path = DEFAULT_PARAMS_PATH) -> dict[str, dict[str, str]]:
    """Section and meaning of each key of a parameter file, read from its comments.

    A comment line after a blank line opens a section (comments before the first key are
    the file's header); a key's meaning is its trailing ``# comment``.  Keys without one take
    their meaning from :data:`EXTRA_MEANINGS`, as do the provenance parameters.
    """
    docs: dict[str, dict[str, str]] = {}
    section = ""
    seen_key = False
    previous_blank = False
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped:
            previous_blank = True
            continue
        if line.startswith("#"):
            if seen_key and previous_blank:
                section = stripped.lstrip("#").strip()
            previous_blank = False
            continue
        previous_blank = False
        m = _KEY_RE.match(line)
        if not m:
            continue  # a continuation line (folded description)
        seen_key = True
        key, rest = m.group(1), m.group(2)
        meaning = rest.split("#", 1)[1].strip() if "#" in rest else ""
        extra = EXTRA_MEANINGS.get(key)
        if extra and meaning:
            meaning = f"{extra[1]} ({meaning})"
        docs[key] = {"section": extra[0] if extra and not section else section, "meaning": meaning or (extra[1] if extra else "")}
    for key, (sec, meaning) in EXTRA_MEANINGS.items():
        docs.setdefault(key, {"section": sec, "meaning": meaning})
    return docs


def value_text(value: Any) -> str:
    """A parameter value as one short string (lists comma-joined, booleans true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(value_text(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def allowed_values() -> dict[str, str]:
    """The values the library accepts for the parameters that name a choice (read from the
    library itself, so the list cannot drift from the code)."""
    from qsmoe.physics.deployment import LAYOUTS, SAME_AS_WEIGHTS
    from qsmoe.physics.quality import DENSE_ARCHS, Q_RULES
    from qsmoe.specs.dtypes import BYTES_PER_VALUE
    from qsmoe.specs.hardware import available_hardware

    dtypes = ", ".join(sorted(BYTES_PER_VALUE))
    return {
        "hardware": ", ".join(available_hardware()),
        "moe_layout": ", ".join(LAYOUTS),
        "dense_layout": ", ".join((*LAYOUTS, "auto")),
        "weight_dtype": dtypes,
        "kv_dtype": dtypes,
        "attention_proj_dtype": f"{SAME_AS_WEIGHTS}, {dtypes}",
        "head_dtype": f"{SAME_AS_WEIGHTS}, {dtypes}",
        "include_comm": "true, false",
        "q_rule": ", ".join(Q_RULES),
        "dense_arch": ", ".join(DENSE_ARCHS),
    }


def parameter_rows(values: Values, path: str | Path = DEFAULT_PARAMS_PATH) -> list[dict]:
    """One row per chapter parameter: section, key, value in this build, default, meaning
    (from the file's comments) and the values the library accepts (for choices)."""
    docs = parameter_docs(path)
    default = load_params().values
    allowed = allowed_values()
    rows = []
    for key, value in values.items():
        d = docs.get(key, {"section": "", "meaning": ""})
        rows.append({
            "section": d["section"],
            "key": key,
            "this build": value_text(value),
            "default": value_text(default[key]) if key in default else "",
            "meaning": d["meaning"],
            "accepted values": allowed.get(key, ""),
        })
    return rows


def changed_keys(values: Values) -> list[str]:
    """Keys whose value differs from the default set (numbers compared as floats)."""
    default = load_params().values
    out = []
    for key, value in values.items():
        ref = default.get(key)
        same = (float(value) == float(ref)) if isinstance(ref, float) and isinstance(value, (int, float)) and not isinstance(value, bool) else value == ref
        if not same:
            out.append(key)
    return out
