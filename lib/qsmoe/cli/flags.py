"""Parameter-set flags shared by every command that evaluates the model.

Every key of the reference parameter set (``data/params/default.yaml``) is a flag of the
same name with dashes (``reserve_fraction`` -> ``--reserve-fraction``), taking a value
parsed with YAML rules like ``--set key=value``. The values reach the command in this
order, later ones winning::

    --params FILE  (default data/params/default.yaml)
    --set KEY=VALUE ...
    --<key> VALUE ...            (and the short aliases below)

and the result is checked as a whole parameter set (:func:`qsmoe.scenario.params.resolve`),
so a flag is refused with the same one-line error as a ``--set`` of that key.
"""
from __future__ import annotations

import argparse
from functools import lru_cache
from typing import Any

from qsmoe.scenario.paramdocs import parameter_docs
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, NAME_KEY, ParamSet, resolve
from qsmoe.specs.fileio import load_mapping

#: Older flag spellings kept so that existing commands keep working: alias -> parameter key.
ALIASES = {"--reserve": "reserve_fraction", "--skew": "routing_skew"}
_DEST = "param__"


@lru_cache(maxsize=1)
def reference_defaults() -> dict[str, Any]:
    """Keys and values of the reference parameter set, in file order (the flags and their defaults)."""
    data = load_mapping(DEFAULT_PARAMS_PATH)
    data.pop(NAME_KEY, None)
    return data


def flag_name(key: str) -> str:
    """The flag that sets parameter ``key``: ``--`` + the key with underscores as dashes."""
    return "--" + key.replace("_", "-")


def add_parameter_flags(parser: argparse.ArgumentParser, *, skip: tuple[str, ...] = ()) -> None:
    """Add ``--params``, ``--set`` and one flag per parameter-set key (except ``skip``)."""
    group = parser.add_argument_group("parameter set", "any key of the parameter set; later sources win: --params, then --set, then these flags")
    group.add_argument("--params", metavar="FILE", help="parameter set (default data/params/default.yaml)")
    group.add_argument("--set", metavar="KEY=VALUE", action="append", default=[], dest="overrides", help="override one parameter (YAML value); repeatable")
    aliases_of: dict[str, list[str]] = {}
    for alias, key in ALIASES.items():
        aliases_of.setdefault(key, []).append(alias)
    docs = parameter_docs()
    for key, default in reference_defaults().items():
        if key in skip:
            continue
        names = [flag_name(key), *aliases_of.get(key, [])]
        meaning = docs.get(key, {}).get("meaning", "")
        group.add_argument(*names, dest=_DEST + key, metavar="VALUE", help=f"{meaning} (default {_shown(default)})".strip().replace("%", "%%"))


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and len(value) > 40:
        return "(text)"
    return str(value)


def parameter_set(args: argparse.Namespace, *, flags: dict[str, str] | None = None, **extra: Any) -> ParamSet:
    """The parameter set a command runs with: ``--params``, ``--set``, the flags, then
    ``extra`` (command-specific spellings such as compare's ``--layout``), validated as one set.
    ``flags`` names the flag that set an ``extra`` key, for errors (default: the key's own flag)."""
    given = {name[len(_DEST):]: value for name, value in vars(args).items() if name.startswith(_DEST) and value is not None}
    given.update({key: value for key, value in extra.items() if value is not None})
    assignments = list(getattr(args, "overrides", []) or []) + [f"{key}={value}" for key, value in given.items()]
    return resolve(getattr(args, "params", None), assignments, labels={key: (flags or {}).get(key, flag_name(key)) for key in given})


def parameter_values(args: argparse.Namespace, *, flags: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """The values of :func:`parameter_set` as a plain dict."""
    return dict(parameter_set(args, flags=flags, **extra).values)


def given(args: argparse.Namespace, key: str) -> bool:
    """Whether parameter ``key`` was set by its flag (or an alias) on the command line."""
    return getattr(args, _DEST + key, None) is not None


__all__ = ["ALIASES", "add_parameter_flags", "flag_name", "given", "parameter_set", "parameter_values"]

