"""Parameter sets: the flat mapping of assumptions every chapter is executed with.

A parameter set is a YAML file (``data/params/default.yaml`` is the reference)
holding one flat mapping.  ``name`` names the set; every other key is a value the
chapters read: the build hands the whole mapping to each notebook as one papermill
parameter, ``params`` (:meth:`ParamSet.papermill_parameters`).

Overrides (``--set key=value``) are parsed with YAML rules, must name a key of
the base set and must keep the type family of the base value
(number / int / bool / str / list).  A set with overrides gets the slug
``<base-name>-<hash>`` so its build never overwrites the base set's build.

The hash covers the values and the content of every file they name (a hardware or model
given as a path), so editing such a file gives another hash.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from qsmoe import DATA_DIR
from qsmoe.errors import QsError
from qsmoe.specs.fileio import excerpt, load_mapping, names_file, parse_yaml, read_text

#: The reference parameter set.
DEFAULT_PARAMS_PATH = DATA_DIR / "params" / "default.yaml"

#: Keys of a parameter file that are not chapter parameters.
NAME_KEY = "name"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Keys whose values name a shipped id or a file (whose content then enters the hash).
FILE_KEYS = ("hardware", "models", "headline_model")


def _family(value: Any) -> str:
    """The type family a value belongs to, for override checking."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "list"
    if value is None:
        return "null"
    return type(value).__name__


def _compatible(default: Any, value: Any) -> bool:
    """Whether ``value`` may replace ``default`` (ints may stand in for numbers)."""
    want, got = _family(default), _family(value)
    if want == got:
        return True
    return want == "number" and got == "int"


def _check_finite(value: Any, source: str, key: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise QsError(f"expected a finite number, got {excerpt(value)}", source=source, field=key)
    if isinstance(value, list):
        for item in value:
            _check_finite(item, source, key)


def _normalize(values: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, Any]:
    """Whole numbers given where the reference holds a float become floats (stable hashes)."""
    out = dict(values)
    for key, value in out.items():
        if _family(reference.get(key)) == "number" and _family(value) == "int":
            out[key] = float(value)
    return out


def _canonical(values: Mapping[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def referenced_files(values: Mapping[str, Any]) -> dict[str, str]:
    """{path: sha256 of its text} for every value of :data:`FILE_KEYS` that names a file
    (:func:`qsmoe.specs.fileio.names_file`) rather than a shipped id."""
    digests: dict[str, str] = {}
    for key in FILE_KEYS:
        items = values.get(key)
        for item in items if isinstance(items, list) else [items]:
            if isinstance(item, str) and names_file(item):
                digests[item] = hashlib.sha256(read_text(item).encode("utf-8")).hexdigest()
    return digests


@dataclass(frozen=True)
class ParamSet:
    """One named parameter set.

    ``values`` holds every chapter parameter (all keys of the file except ``name``).
    ``overrides`` lists the keys changed by ``--set`` (empty for a plain file).
    ``files`` holds the sha256 of every file the values name (:func:`referenced_files`),
    read when the set was loaded.
    """

    name: str
    values: dict[str, Any]
    path: Path | None = None
    overrides: tuple[str, ...] = field(default=())
    files: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """First 12 hex digits of the sha256 of the canonical JSON of ``values`` (with the
        ``files`` digests beside them when the set names files)."""
        content = {"values": self.values, "files": self.files} if self.files else self.values
        return hashlib.sha256(_canonical(content).encode("ascii")).hexdigest()[:12]

    @property
    def slug(self) -> str:
        """Folder name of this set's build: the name, or ``<name>-<hash>`` with overrides."""
        return f"{self.name}-{self.hash}" if self.overrides else self.name

    def papermill_parameters(self) -> dict[str, Any]:
        """The papermill parameters of a chapter: ``params`` (every value, as one dict) and
        the set's name and hash (read by :func:`qsmoe.book.kit.parameters` and ``bookkit.setup``)."""
        return {"params": dict(self.values), "param_set_name": self.name, "param_set_hash": self.hash}

    def with_overrides(self, assignments: Iterable[str]) -> "ParamSet":
        """A new set with ``key=value`` assignments applied (values parsed as YAML)."""
        return apply_overrides(self, assignments)


def validate(values: Mapping[str, Any], *, source: str = "parameters", reference: Mapping[str, Any] | None = None, labels: Mapping[str, str] | None = None) -> None:
    """Check a parameter mapping; raise QsError naming the source, key and value.

    Checks key presence and type families against ``reference`` (the default set, when
    not given), then the physics ranges (qsmoe.scenario.compare.check_values). An error about
    a key in ``labels`` names that label (e.g. the command-line flag that set it) as its source.
    """
    if reference is None:
        reference = _default_values()
    for key, value in values.items():
        _check_finite(value, source, key)
    missing = sorted(set(reference) - set(values))
    if missing:
        raise QsError(f"missing key(s): {', '.join(missing)}", source=source)
    unknown = sorted(set(values) - set(reference))
    if unknown:
        known = ", ".join(sorted(reference))
        raise QsError(f"unknown key(s): {', '.join(unknown)} (known: {known})", source=source)
    for key, default in reference.items():
        value = values[key]
        if not _compatible(default, value):
            raise QsError(
                f"expected {_family(default)} like {excerpt(default)}, got {_family(value)} {excerpt(value)}",
                source=source,
                field=key,
            )
    from qsmoe.scenario.compare import check_values

    try:
        check_values(values)
    except QsError as err:
        raise QsError(err.message, source=err.source or (labels or {}).get(err.field, source), field=err.field) from None


_DEFAULT_CACHE: dict[str, Any] | None = None


def _default_values() -> dict[str, Any]:
    global _DEFAULT_CACHE
    if _DEFAULT_CACHE is None:
        data = load_mapping(DEFAULT_PARAMS_PATH)
        data.pop(NAME_KEY, None)
        _DEFAULT_CACHE = data
    return dict(_DEFAULT_CACHE)


def _split_name(data: dict[str, Any], source: str) -> str:
    name = data.pop(NAME_KEY, None)
    if name is None:
        raise QsError("missing", source=source, field=NAME_KEY)
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise QsError(
            f"expected a name of at most 64 letters, digits, '.', '_' or '-', got {excerpt(name)}", source=source, field=NAME_KEY
        )
    return name


def load_params(path: str | Path | None = None) -> ParamSet:
    """Load and validate a parameter file (the default set when ``path`` is None)."""
    path = Path(path) if path is not None else DEFAULT_PARAMS_PATH
    data = load_mapping(path)
    source = str(path)
    name = _split_name(data, source)
    reference = data if path.resolve() == DEFAULT_PARAMS_PATH.resolve() else _default_values()
    validate(data, source=source, reference=reference)
    values = _normalize(data, reference)
    return ParamSet(name=name, values=values, path=path, files=referenced_files(values))


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``key=value`` and parse the value with YAML rules."""
    if "=" not in text:
        raise QsError(f"expected key=value, got {excerpt(text)}", source="--set")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise QsError(f"expected key=value, got {excerpt(text)}", source="--set")
    return key, parse_yaml(raw, "--set", key) if raw.strip() else ""


def apply_overrides(base: ParamSet, assignments: Iterable[str], labels: Mapping[str, str] | None = None) -> ParamSet:
    """Apply ``key=value`` overrides to ``base``; each key must exist with a compatible type.

    Errors name ``--set`` as their source, or ``labels[key]`` (e.g. the flag ``--gpus``) for
    a key given there."""
    labels = labels or {}
    values = dict(base.values)
    changed: list[str] = list(base.overrides)
    for text in assignments:
        key, value = parse_assignment(text)
        label = labels.get(key, "--set")
        if key == NAME_KEY:
            raise QsError("the set's name cannot be overridden; write a parameter file instead", source=label, field=key)
        if key not in values:
            known = ", ".join(sorted(values))
            raise QsError(f"unknown key (known: {known})", source=label, field=key)
        _check_finite(value, label, key)
        if not _compatible(values[key], value):
            raise QsError(
                f"expected {_family(values[key])} like {excerpt(values[key])}, got {_family(value)} {excerpt(value)}",
                source=label,
                field=key,
            )
        values[key] = float(value) if _family(values[key]) == "number" else value
        if key not in changed:
            changed.append(key)
    validate(values, source="--set", reference=base.values, labels=labels)
    return ParamSet(name=base.name, values=values, path=base.path, overrides=tuple(changed), files=referenced_files(values))


def resolve(params_file: str | Path | None = None, assignments: Iterable[str] = (), labels: Mapping[str, str] | None = None) -> ParamSet:
    """Load a parameter file (default set if None) and apply ``--set`` overrides
    (``labels``: see :func:`apply_overrides`)."""
    pset = load_params(params_file)
    assignments = list(assignments)
    return apply_overrides(pset, assignments, labels) if assignments else pset
