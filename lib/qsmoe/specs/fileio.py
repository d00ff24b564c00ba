"""Reading YAML, JSON and CSV data files with one clear error per problem.

Every reader works on a budget, so no file, however careless or hostile, produces a
traceback or a hang:

* size: at most :data:`MAX_FILE_BYTES` bytes, UTF-8 text (a byte-order mark is dropped);
* YAML: at most :data:`MAX_NODES` values once aliases are expanded (a "billion laughs"
  file stops after the first hundred thousand), at most :data:`MAX_DEPTH` levels of
  nesting, no recursive alias, no duplicate key, no tags beyond the plain types;
* JSON: the same depth and duplicate-key rules; NaN and Infinity are refused.

Every accessor of :class:`Fields` names the file and the dotted field path in its error,
and quotes values as a bounded :func:`excerpt`.
"""
from __future__ import annotations

import json
import math
import re
import reprlib
from pathlib import Path
from typing import Any

import yaml

from qsmoe.errors import QsError

#: The largest data file read: parameter sets, model and hardware files, config.json and
#: measurements.csv are all under 100 kB.
MAX_FILE_BYTES = 1 << 20
#: Values of one YAML document once aliases are expanded.
MAX_NODES = 100_000
#: Levels of nested mappings and lists.
MAX_DEPTH = 64
#: Characters of a value quoted in an error message.
EXCERPT_CHARS = 80

_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset(_YAML_TAG + t for t in ("str", "int", "float", "bool", "null", "seq", "map", "timestamp", "merge"))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader (libyaml when present) that also reads ``1e308`` and ``-2E-3`` as
    numbers, as YAML 1.2 does (YAML 1.1 needs a dot: ``1.0e+308``)."""


_Loader.add_implicit_resolver(
    _YAML_TAG + "float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
)

_REPR = reprlib.Repr()
_REPR.maxstring = EXCERPT_CHARS
_REPR.maxother = EXCERPT_CHARS
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
_REPR.maxlevel = 3


def excerpt(value: Any) -> str:
    """``repr(value)`` cut to about :data:`EXCERPT_CHARS` characters (``...`` marks the cut)."""
    text = _REPR.repr(value)
    return text if len(text) <= EXCERPT_CHARS + 3 else text[:EXCERPT_CHARS] + "..."


#: Suffixes by which a value names a data file rather than a shipped id.
DATA_SUFFIXES = (".yaml", ".yml", ".json")


def names_file(text: str) -> bool:
    """Whether ``text`` names a data file (a :data:`DATA_SUFFIXES` suffix, or an existing
    regular file) rather than a shipped id; a name the system cannot look up is no file."""
    path = Path(text)
    try:
        return path.suffix in DATA_SUFFIXES or path.is_file()
    except (OSError, ValueError):
        return False


def read_text(path: str | Path) -> str:
    """The UTF-8 text of a data file of at most :data:`MAX_FILE_BYTES` bytes."""
    path = Path(path)
    source = str(path)
    try:
        if not path.exists():
            raise QsError("file not found", source=source)
        if not path.is_file():
            raise QsError("not a regular file", source=source)
        with path.open("rb") as fh:
            data = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise QsError(f"cannot read: {exc.strerror or exc}", source=source) from None
    if len(data) > MAX_FILE_BYTES:
        raise QsError(f"larger than {MAX_FILE_BYTES} bytes: not a data file of this book", source=source)
    return decode_text(data, source)


def decode_text(data: bytes, source: str) -> str:
    """``data`` as UTF-8 text; a one-line error naming the first bad byte otherwise."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start]
        raise QsError(f"not UTF-8 text (byte 0x{bad:02x} at offset {exc.start}); save it as UTF-8", source=source) from None
    if "\x00" in text:
        raise QsError(f"contains a NUL character at offset {text.index(chr(0))}: a binary file, not text", source=source)
    return text


def parse_yaml(text: str, source: str, field: str | None = None) -> Any:
    """Parse one YAML document within the budget (size, expanded values, depth, tags);
    ``field`` names the value being parsed (a ``--set`` value) rather than a whole file."""
    if len(text) > MAX_FILE_BYTES:
        raise QsError(f"longer than {MAX_FILE_BYTES} characters", source=source, field=field)
    what = "malformed YAML" if field is None else f"cannot parse {excerpt(text)} as YAML"
    loader = _Loader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise QsError(f"nested more than {MAX_DEPTH} levels deep", source=source, field=field) from None
        if node is None:
            return None
        _check_graph(node, source, field)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise QsError(f"{what}{_yaml_line(exc)}", source=source, field=field) from None
    except (ValueError, OverflowError, TypeError) as exc:
        if isinstance(exc, QsError):
            raise
        raise QsError(f"{what}: {excerpt(str(exc))}", source=source, field=field) from None
    finally:
        loader.dispose()


def _yaml_line(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None)
    line = f" at line {mark.line + 1}" if mark is not None else ""
    return f"{line}: {problem}" if problem else line


def _check_graph(root: yaml.Node, source: str, field: str | None) -> None:
    """Walk the composed node graph as the constructor would expand it, within the budget."""
    count = 0
    ancestors: set[int] = set()

    def fail(node: yaml.Node, path: str, message: str) -> QsError:
        where = f" (line {node.start_mark.line + 1})" if node.start_mark is not None else ""
        shown = path if len(path) <= EXCERPT_CHARS else path[:EXCERPT_CHARS] + "..."
        return QsError(message + where, source=source, field=shown or field)

    def walk(node: yaml.Node, path: str, depth: int) -> None:
        nonlocal count
        count += 1
        if count > MAX_NODES:
            raise fail(node, path, f"more than {MAX_NODES} values once aliases are expanded: aliases that multiply are not accepted")
        if id(node) in ancestors:
            raise fail(node, path, "recursive alias: a value contains itself")
        if depth > MAX_DEPTH:
            raise fail(node, path, f"nested more than {MAX_DEPTH} levels deep")
        if node.tag not in _PLAIN_TAGS:
            shown = node.tag.replace(_YAML_TAG, "!!")
            raise fail(node, path, f"YAML tags are not allowed, got {excerpt(shown)}; write plain values")
        if isinstance(node, yaml.ScalarNode):
            return
        ancestors.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            for index, child in enumerate(node.value):
                walk(child, f"{path}[{index}]", depth + 1)
        else:
            seen: dict[str, int] = {}
            for key, value in node.value:
                name = key.value if isinstance(key, yaml.ScalarNode) else None
                child = f"{path}.{name}" if path and name is not None else (name or path)
                if name is not None and key.tag != _YAML_TAG + "merge":
                    if name in seen:
                        raise fail(key, child, f"duplicate key {excerpt(name)}, first given at line {seen[name]} and again")
                    seen[name] = key.start_mark.line + 1 if key.start_mark is not None else 0
                walk(key, child, depth + 1)
                walk(value, child, depth + 1)
        ancestors.discard(id(node))

    walk(root, field or "", 1)


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def parse_json(text: str, source: str) -> Any:
    """Parse JSON within the budget: depth, duplicate keys, finite numbers only."""
    if len(text) > MAX_FILE_BYTES:
        raise QsError(f"longer than {MAX_FILE_BYTES} characters", source=source)
    depth = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        if depth > MAX_DEPTH:
            raise QsError(f"nested more than {MAX_DEPTH} levels deep", source=source)

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in items:
            if key in out:
                raise QsError(f"duplicate key {excerpt(key)}", source=source, field=key)
            out[key] = value
        return out

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise QsError(f"number out of range: {excerpt(text)}", source=source)
        return value

    def constant(name: str) -> Any:
        raise QsError(f"{name} is not a number this book accepts", source=source)

    try:
        return json.loads(text, object_pairs_hook=pairs, parse_float=number, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise QsError(f"malformed JSON at line {exc.lineno}: {exc.msg}", source=source) from None
    except RecursionError:
        raise QsError(f"nested more than {MAX_DEPTH} levels deep", source=source) from None


def load_data(path: str | Path) -> Any:
    """Parse a YAML or JSON (by suffix ``.json``) data file within the budget."""
    path = Path(path)
    text = read_text(path)
    return parse_json(text, str(path)) if path.suffix == ".json" else parse_yaml(text, str(path))


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Parse a YAML or JSON file whose top level must be a mapping."""
    data = load_data(path)
    if not isinstance(data, dict):
        raise QsError(f"expected a mapping at the top level, got {type(data).__name__}", source=str(path))
    return data


class Fields:
    """Typed, validated access to a nested mapping loaded from ``source``."""

    def __init__(self, data: dict[str, Any], source: str, prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def error(self, key: str, message: str) -> QsError:
        return QsError(message, source=self.source, field=self._name(key))

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str, default: Any = ...) -> Any:
        if key not in self.data or self.data[key] is None:
            if default is ...:
                raise self.error(key, "missing")
            return default
        return self.data[key]

    def section(self, key: str, *, optional: bool = False) -> "Fields | None":
        value = self.raw(key, None if optional else ...)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {excerpt(value)}")
        return Fields(value, self.source, f"{self._name(key)}.")

    def string(self, key: str, default: Any = ..., choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"expected text, got {excerpt(value)}")
        if choices is not None and value not in choices:
            raise self.error(key, f"{excerpt(value)} is not one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {excerpt(value)}")
        return value

    def number(
        self, key: str, default: Any = ..., *, minimum: float | None = 0.0, strict: bool = True, maximum: float | None = None
    ) -> float:
        """A finite real number; by default it must be > 0 (``strict``) and >= ``minimum``;
        at most ``maximum`` when given."""
        value = self.raw(key, default)
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.error(key, f"expected a number, got {excerpt(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a finite number, got {excerpt(value)}")
        try:
            value = float(value)
        except OverflowError:
            raise self.error(key, f"expected a finite number, got {excerpt(value)}") from None
        if not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {excerpt(value)}")
        if minimum is not None and (value < minimum or (strict and value == minimum)):
            bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
            raise self.error(key, f"must be {bound}, got {value!r}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g}, got {value!r}")
        return value

    def integer(self, key: str, default: Any = ..., *, minimum: int = 1, maximum: int | None = None) -> int:
        """A whole number >= ``minimum`` (and <= ``maximum`` when given); 4.0 counts as 4."""
        given = self.raw(key, default)
        value = int(given) if isinstance(given, float) and math.isfinite(given) and given.is_integer() else given
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {excerpt(given)}")
        if value < minimum:
            raise self.error(key, f"must be >= {minimum}, got {excerpt(given)}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum}, got {excerpt(given)}")
        return value
