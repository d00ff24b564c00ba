"""Helpers the chapter notebooks call: style, provenance, glue, tables, figures.

Every chapter starts with a parameters cell (``params = None`` and the four provenance names,
which ``qsmoe book`` replaces through papermill) and then::

    from qsmoe.book import kit as bookkit
    bookkit.setup(results_dir, param_set_name, param_set_hash, git_commit)
    bookkit.provenance_banner()
    values = bookkit.parameters(params)

and then uses :func:`glue`, :func:`table` and :func:`save_figure`.  Everything
they write is deterministic: the same parameters give byte-identical CSV, JSON
and PNG files, so rebuilding the book leaves ``results.json`` unchanged.

``results_dir`` is the chapter's own folder; its last component is the
chapter name (``.../results/01-double-penalty``) unless ``chapter=`` says otherwise.
Glued values land in ``<results_dir>/<chapter>.json``, tables in
``<results_dir>/<name>.csv``, figures in ``<results_dir>/<name>.png``.
"""
from __future__ import annotations

import csv
import html
import io
import json
import math
import numbers
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from qsmoe.errors import QsError

#: Relative link from a chapter page (``chapters/<name>.html``) to the results folder.
RESULTS_URL = "../_static/results"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")

_STATE: dict[str, Any] = {}

#: Matplotlib settings shared by every figure in the book.
RC_PARAMS: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 150,
    "savefig.bbox": "tight",
    "svg.hashsalt": "qs-book",
    "svg.fonttype": "path",
    "pdf.fonttype": 42,
    "font.family": "DejaVu Sans",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titleweight": "bold",
    "legend.frameon": False,
}

#: PNG metadata: matplotlib writes a "Software" key by default; drop it (and any date).
_PNG_METADATA: dict[str, Any] = {"Software": None}


# --------------------------------------------------------------------------------------
# setup and provenance


def setup(
    results_dir: str | Path,
    param_set_name: str,
    param_set_hash: str,
    git_commit: str,
    *,
    chapter: str | None = None,
) -> Path:
    """Prepare a chapter: style, results folder, provenance. Returns the results folder."""
    results = Path(results_dir).resolve()
    chapter = chapter or results.name
    _check_name(chapter, "chapter")
    results.mkdir(parents=True, exist_ok=True)
    _STATE.clear()
    _STATE.update(
        results_dir=results,
        chapter=chapter,
        param_set_name=str(param_set_name),
        param_set_hash=str(param_set_hash),
        git_commit=str(git_commit),
        glued={},
        volatile={"values": {}, "tables": []},
    )
    # a rerun in the same kernel starts the chapter's record afresh
    for old in (results / f"{chapter}.json", results / f"{chapter}.volatile.json"):
        if old.exists():
            old.unlink()
    _apply_style()
    return results


def _apply_style() -> None:
    import matplotlib

    if not _in_kernel():
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    plt.rcParams.update(RC_PARAMS)


def _in_kernel() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    return get_ipython() is not None


def _state(key: str) -> Any:
    if key not in _STATE:
        raise QsError("bookkit.setup(results_dir, param_set_name, param_set_hash, git_commit) was not called")
    return _STATE[key]


def parameters(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The chapter's parameter values: the injected ``params``, or data/params/default.yaml when None.

    ``qsmoe book`` injects the build's parameter set as one dict
    (:meth:`qsmoe.scenario.params.ParamSet.papermill_parameters`); a chapter run on its own
    keeps ``params = None`` and reads the default set.  Returns exactly the keys of the
    default set (without ``name``), in its order; a missing key is an error.
    """
    from qsmoe.scenario.params import load_params

    default = load_params().values
    if params is None:
        return dict(default)
    missing = [k for k in default if k not in params]
    if missing:
        raise QsError(f"the injected parameters lack {', '.join(missing)}", field="params")
    return {k: params[k] for k in default}


def provenance_text() -> str:
    """The provenance banner as MyST Markdown."""
    name = _state("param_set_name")
    digest = _state("param_set_hash")
    commit = _state("git_commit")
    return (
        ":::{admonition} How this page was built\n"
        ":class: note\n"
        f"Computed from parameter set **{name}** (hash `{digest}`) "
        f"at commit `{commit}`. "
        # a raw HTML link: the results folder is added after Sphinx runs
        f'Every number on this page is also in <a href="{RESULTS_URL}/results.json"><code>results.json</code></a>, '
        f'except those measured on the building machine while the book builds, which are in '
        f'<a href="{RESULTS_URL}/volatile.json"><code>volatile.json</code></a>.'
        "\n:::\n"
    )


def provenance_banner():
    """An IPython Markdown object for the provenance admonition (display it at the top)."""
    from IPython.display import Markdown

    return Markdown(provenance_text())


# --------------------------------------------------------------------------------------
# glue


def _check_name(name: str, what: str) -> None:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise QsError(f"{what} name {name!r} must be letters, digits, '_' or '-'")


def json_safe(value: Any, where: str) -> Any:
    """A JSON-serialisable copy of ``value`` (numpy scalars/arrays unwrapped); NaN/inf refused."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()  # numpy scalar or array
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        if not math.isfinite(value):
            raise QsError(f"value is {value!r}; only finite numbers can be shown", field=where)
        return value
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise QsError(f"cannot record a {type(value).__name__} ({value!r}) as a result", field=where)


class Glued:
    """A glued value: ``text/plain`` is the exact value (for ``{glue:text}`name:fmt```),
    ``text/markdown`` is the value formatted with the default ``fmt`` (for ``{glue}`name```)."""

    def __init__(self, value: Any, fmt: str | None) -> None:
        self.value = value
        self.fmt = fmt

    def formatted(self) -> str:
        if self.fmt:
            return format(self.value, self.fmt)
        return str(self.value)

    def __repr__(self) -> str:
        return repr(self.value)

    def _repr_markdown_(self) -> str:
        text = self.formatted()
        return re.sub(r"([\\`*_{}\[\]<>|])", r"\\\1", text)


def glue(name: str, value: Any, fmt: str | None = None, *, volatile: bool = False) -> Any:
    """Glue ``value`` under ``name`` for the prose, and record it in the chapter's JSON.

    In the page: ``{glue}`name``` shows ``format(value, fmt)``;
    ``{glue:text}`name:.1f``` formats the exact value.  Returns the recorded value.

    ``volatile=True`` marks a value measured at build time (a timing, a load average)
    that differs between builds with the same parameters: it goes to ``volatile.json``
    instead of ``results.json``, which stays byte-identical across builds.
    """
    _check_name(name, "glue")
    chapter = _state("chapter")
    safe = json_safe(value, f"{chapter}.{name}")
    if fmt is not None:
        try:
            format(safe, fmt)
        except (TypeError, ValueError) as exc:
            raise QsError(f"format {fmt!r} does not apply to {safe!r}: {exc}", field=f"{chapter}.{name}") from None
    stable: dict[str, Any] = _state("glued")
    changing: dict[str, Any] = _state("volatile")["values"]
    glued, other = (changing, stable) if volatile else (stable, changing)
    if name in other:
        raise QsError("glued both as volatile and as stable", field=f"{chapter}.{name}")
    if name in glued and glued[name] != safe:
        raise QsError(f"glued twice with different values ({glued[name]!r}, then {safe!r})", field=f"{chapter}.{name}")
    glued[name] = safe
    _record()
    from myst_nb import glue as nb_glue

    nb_glue(name, Glued(safe, fmt), display=False)
    return safe


def _record() -> None:
    """Write the chapter's stable and volatile records."""
    results, chapter = _state("results_dir"), _state("chapter")
    _write_json(results / f"{chapter}.json", _state("glued"))
    volatile = _state("volatile")
    if volatile["values"] or volatile["tables"]:
        _write_json(results / f"{chapter}.volatile.json", volatile)


def _write_json(path: Path, data: Mapping[str, Any]) -> None:
    text = json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    _write_if_changed(path, text.encode("utf-8"))


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.exists() and path.read_bytes() == data:
        return
    path.write_bytes(data)


# --------------------------------------------------------------------------------------
# tables


def _records(data: Any) -> tuple[list[str], list[list[Any]]]:
    if hasattr(data, "to_dict") and hasattr(data, "columns"):  # pandas DataFrame
        columns = [str(c) for c in data.columns]
        rows = [list(r) for r in data.itertuples(index=False, name=None)]
        return columns, rows
    rows_in = list(data)
    if not rows_in:
        raise QsError("a table needs at least one row")
    if isinstance(rows_in[0], Mapping):
        columns: list[str] = []
        for row in rows_in:
            for key in row:
                if str(key) not in columns:
                    columns.append(str(key))
        return columns, [[row.get(c) for c in columns] for row in rows_in]
    raise QsError("table() takes a DataFrame or a list of dicts")


def _cell_text(value: Any, fmt: str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}" if fmt is None else format(value, fmt)
    if isinstance(value, numbers.Real):
        return format(float(value), fmt or ".4g")
    return str(value)


def _csv_value(value: Any) -> Any:
    if isinstance(value, float):
        return repr(value)
    return value


def table(
    data: Any,
    name: str,
    caption: str,
    *,
    formats: Mapping[str, str] | str | None = None,
    label: str | None = None,
    volatile: bool = False,
):
    """Write ``<results_dir>/<name>.csv`` and return a numbered Markdown table for display.

    ``data``: a pandas DataFrame or a list of dicts (one per row).  ``formats``: one
    format spec for every number, or a mapping column -> spec (default ``.4g``).
    ``label`` (default ``tbl-<name>``) lets the prose cite it with ``{numref}`tbl-name```.
    NaN and infinities are refused.  ``volatile=True``: the table holds build-time
    measurements, so the determinism checks skip its CSV (listed in ``volatile.json``).
    """
    from IPython.display import Markdown

    _check_name(name, "table")
    columns, clean_rows = _write_csv(data, name)
    tables: list[str] = _state("volatile")["tables"]
    if volatile and f"{name}.csv" not in tables:
        tables.append(f"{name}.csv")
        tables.sort()
        _record()

    def fmt_for(col: str) -> str | None:
        if isinstance(formats, str):
            return formats
        if isinstance(formats, Mapping):
            return formats.get(col)
        return None

    def md(text: str) -> str:
        return re.sub(r"([\\`*_{}\[\]<>|])", r"\\\1", text)

    lines = ["| " + " | ".join(md(c) for c in columns) + " |"]
    lines.append("|" + "|".join(" ---: " if _numeric(clean_rows, i) else " --- " for i in range(len(columns))) + "|")
    for row in clean_rows:
        lines.append("| " + " | ".join(md(_cell_text(v, fmt_for(c))) for v, c in zip(row, columns)) + " |")
    label = label or f"tbl-{name}"
    link = f'<a href="{RESULTS_URL}/{name}.csv">{html.escape(name)}.csv</a>'
    text = (
        f"```{{table}} {caption}\n:name: {label}\n:align: center\n\n" + "\n".join(lines) + "\n```\n\n"
        f"<small>Data: {link}</small>\n"
    )
    return Markdown(text)


def _write_csv(data: Any, name: str) -> tuple[list[str], list[list[Any]]]:
    """Write ``<results_dir>/<name>.csv`` from ``data`` (see :func:`table`); returns its columns and rows."""
    columns, rows = _records(data)
    clean_rows = [[json_safe(v, f"{name}[{i}].{c}") for v, c in zip(row, columns)] for i, row in enumerate(rows)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in clean_rows:
        writer.writerow([_csv_value(v) for v in row])
    _write_if_changed(_state("results_dir") / f"{name}.csv", buf.getvalue().encode("utf-8"))
    return columns, clean_rows


def _numeric(rows: Sequence[Sequence[Any]], i: int) -> bool:
    values = [r[i] for r in rows if r[i] is not None]
    return bool(values) and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


# --------------------------------------------------------------------------------------
# figures


def figure_png(fig) -> bytes:
    """The figure as PNG bytes without metadata (byte-identical across reruns)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata=_PNG_METADATA)
    return buf.getvalue()


def save_figure(fig, name: str, *, close: bool = True) -> None:
    """Save ``fig`` as ``<results_dir>/<name>.png`` and glue it under ``name``. It returns
    nothing, so a cell ending in this call shows no output (no build-machine path in the page).

    Show it in the page with::

        ```{glue:figure} name
        :name: fig-name

        Caption.
        ```
    """
    _check_name(name, "figure")
    from IPython.display import Image
    from myst_nb import glue as nb_glue

    png = figure_png(fig)
    path = _state("results_dir") / f"{name}.png"
    _write_if_changed(path, png)
    if close:
        import matplotlib.pyplot as plt

        plt.close(fig)
    nb_glue(name, Image(data=png, format="png"), display=False)


def figure_data(data: Any, name: str) -> None:
    """Write the records a figure plots as ``<results_dir>/<name>.csv`` (the CSV :func:`table` writes).

    ``data``: a pandas DataFrame or a list of dicts, one per plotted point.  Use the figure's
    name, and end the figure's caption with the link the tables carry::

        <small>Data: <a href="../_static/results/<name>.csv"><name>.csv</a></small>

    Returns nothing, so a cell ending in this call shows no output.
    """
    _check_name(name, "figure data")
    _write_csv(data, name)


def results_files(results_dir: str | Path) -> Iterable[Path]:
    """CSV and PNG files a chapter wrote (for the book's results folder)."""
    root = Path(results_dir)
    return sorted(p for p in root.iterdir() if p.suffix in {".csv", ".png"})
