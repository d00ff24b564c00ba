"""Build the book: execute every chapter with one parameter set, then run Jupyter Book.

Layout of one build (``<slug>`` is the parameter set's :attr:`ParamSet.slug`)::

    _build/<slug>/
        src/                    Sphinx source root: executed chapters + static pages
            intro.md, how-to-cite.md, ...   (copied from book/)
            _config.yml, references.bib     (copied from the repository root)
            _toc.yml                        (generated: the repository's, without chapters not yet executed)
            chapters/<name>.ipynb           (executed by papermill)
        results/<name>/         what chapter <name> wrote: <name>.json (glue), *.csv, *.png
        scratch/<name>/         the chapter's working directory, converted notebook, logs
        html/                   the built book
            _static/results/results.json    every glued value, keys "<chapter>.<name>"
            _static/results/params.json     the parameter set (its hash identifies the build)
            _static/results/volatile.json   values and tables measured at build time (vary between builds)
            _static/results/*.csv           every table
            _static/source/                 the tree built from and the qsmoe wheel (qsmoe.book.source_archive)
        .doctrees/              Sphinx's cache (incremental rebuilds)
    _build/.staging/<slug>/     where a build of <slug> works; renamed over _build/<slug>/ on success

A folder holds builds of one hash only, and a failed build leaves the published one
byte-identical (:mod:`qsmoe.book.outdir`).  Chapters run in :mod:`qsmoe.book.execute`,
sources are staged by :mod:`qsmoe.book.stage`, HTML is built by :mod:`qsmoe.book.sphinx_build`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

from qsmoe import REPO_ROOT
from qsmoe.book.execute import execute_chapters, say
from qsmoe.book.outdir import SOURCE_RECORD, check_target, prepare_out_root, publish, record_text, source_key, staging
from qsmoe.book.source_archive import ship_source
from qsmoe.book.sphinx_build import run_sphinx
from qsmoe.book.stage import stage_sources, toc_chapters
from qsmoe.errors import QsError
from qsmoe.scenario.params import ParamSet

RESULTS_SUBDIR = Path("_static") / "results"


def git_commit(repo_root: Path = REPO_ROOT, exclude: Iterable[Path] = ()) -> str:
    """``git rev-parse --short HEAD``, with ``-dirty`` for a changed tree; 'unknown' without git."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo_root, capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0 or not head.stdout.strip():
        return "unknown"
    commit = head.stdout.strip()
    pathspec = ["."]
    for path in [repo_root / ".venv", *exclude]:
        try:
            rel = Path(path).resolve().relative_to(repo_root.resolve())
        except ValueError:
            continue
        if str(rel) not in ("", "."):
            pathspec.append(f":(exclude){rel.as_posix()}")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--", *pathspec], cwd=repo_root, capture_output=True, text=True, timeout=60
    )
    if status.returncode == 0 and status.stdout.strip():
        commit += "-dirty"
    return commit


def collect_results(build_dir: Path, names: Sequence[str], params: ParamSet) -> Path:
    """Merge the chapters' glue JSON into html/_static/results/results.json and copy their CSVs."""
    out = build_dir / "html" / RESULTS_SUBDIR
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    merged: dict[str, Any] = {}
    volatile: dict[str, Any] = {"tables": [], "values": {}}
    owner: dict[str, str] = {}
    for name in names:
        folder = build_dir / "results" / name
        if not folder.is_dir():
            continue
        glue_file = folder / f"{name}.json"
        if glue_file.is_file():
            for key, value in json.loads(glue_file.read_text(encoding="utf-8")).items():
                merged[f"{name}.{key}"] = value
        volatile_file = folder / f"{name}.volatile.json"
        if volatile_file.is_file():
            record = json.loads(volatile_file.read_text(encoding="utf-8"))
            for key, value in record.get("values", {}).items():
                volatile["values"][f"{name}.{key}"] = value
            volatile["tables"].extend(record.get("tables", []))
        for csv_file in sorted(folder.glob("*.csv")):
            if csv_file.name in owner:
                raise QsError(f"table {csv_file.stem!r} is written by both {owner[csv_file.name]} and {name}")
            owner[csv_file.name] = name
            shutil.copyfile(csv_file, out / csv_file.name)
    text = json.dumps(merged, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    (out / "results.json").write_text(text, encoding="utf-8")
    volatile["tables"] = sorted(set(volatile["tables"]))
    (out / "volatile.json").write_text(
        json.dumps(volatile, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    (out / "params.json").write_text(record_text(params), encoding="utf-8")
    return out / "results.json"


def _chapter_names(chapters: Sequence[str] | None, all_names: list[str]) -> list[str]:
    """The chapters to execute: all when None, else the named ones (``08-sensitivity`` or its .md)."""
    if chapters is None:
        return list(all_names)
    names: list[str] = []
    for name in chapters:
        name = Path(name).stem if name.endswith(".md") else Path(name).name
        if name not in all_names:
            raise QsError(f"unknown chapter {name!r} (known: {', '.join(all_names)})", source="--chapter")
        if name not in names:
            names.append(name)
    return names


def build_book(
    params: ParamSet,
    out_root: Path = Path("_build"),
    chapters: Sequence[str] | None = None,
    jobs: int = 2,
    *,
    repo_root: Path = REPO_ROOT,
    log=None,
) -> Path:
    """Execute the chapters with ``params`` and build the HTML book; returns the html folder.

    ``chapters``: names (``01-double-penalty``) to execute; None executes all.  Chapters
    not executed keep their notebooks from an earlier build of the same parameter set
    (and are left out of the book if there is none).  The build works in a staging folder
    and replaces ``<out_root>/<slug>/`` only when every step succeeded.
    """
    t0 = time.perf_counter()
    repo_root = Path(repo_root).resolve()
    all_names = toc_chapters(repo_root)
    names = _chapter_names(chapters, all_names)
    out_root = prepare_out_root(out_root)
    build_dir = out_root / params.slug
    reuse = check_target(build_dir, params)
    commit = git_commit(repo_root, exclude=[out_root])
    say(f"building {params.slug} (parameter set {params.name}, hash {params.hash}, commit {commit}) into {build_dir}", log)
    try:
        with staging(out_root, build_dir, reuse) as work:
            execute_chapters(params, names, work, commit=commit, jobs=jobs, repo_root=repo_root, log=log)
            t_exec = time.perf_counter()
            say(f"chapters executed in {t_exec - t0:.1f} s", log)
            present = stage_sources(work, repo_root)
            missing = [n for n in all_names if n not in present]
            if missing:
                say(f"note: not yet executed, left out of the book: {', '.join(missing)}", log)
            run_sphinx(work, partial=bool(missing))
            t_sphinx = time.perf_counter()
            say(f"jupyter-book build ... {t_sphinx - t_exec:.1f} s", log)
            collect_results(work, present, params)
            ship_source(work / "html", commit, repo_root)
            (work / SOURCE_RECORD).write_text(source_key(params) + "\n", encoding="utf-8")
            publish(work, build_dir)
    except OSError as exc:
        raise QsError(f"cannot write the build: {exc.strerror or exc}", source=str(getattr(exc, "filename", None) or out_root)) from None
    say(f"total {time.perf_counter() - t0:.1f} s", log)
    return build_dir / "html"
