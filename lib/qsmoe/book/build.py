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
            _static/results/params.json     the parameter set
            _static/results/volatile.json   values and tables measured at build time (vary between builds)
            _static/results/*.csv           every table
        .doctrees/              Sphinx's cache (incremental rebuilds)

Executed notebooks are written only when their content changed (timestamps and
random cell ids are scrubbed), so Sphinx re-reads only the chapters that changed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from qsmoe import REPO_ROOT
from qsmoe.errors import QsError
from qsmoe.scenario.params import ParamSet

#: The folder holding the qsmoe package, put first on the kernels' and Sphinx's import path.
LIB_DIR = Path(__file__).resolve().parents[2]
CHAPTERS_DIR = "chapters"
BOOK_PAGES_DIR = "book"
STATIC_FILES = ("_config.yml", "references.bib")
#: MathJax 3 (CHTML output, TeX input), shipped by the django-static-mathjax wheel, is served
#: from the book's own _static/mathjax/ so pages render formulas offline (_config.yml mathjax_path).
#: It is staged in src/_mathjax/ and added to html_static_path by the Sphinx call, not in
#: src/_static/: Jupyter Book would put every .js file found there on every page.
MATHJAX_STAGE_DIR = "_mathjax"
MATHJAX_FILES = ("tex-chtml.js", "output/chtml/fonts/woff-v2")


def mathjax_sources() -> list[tuple[Path, Path]]:
    """(installed file, path under the book's src/) for every MathJax file the book serves."""
    import importlib.util

    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise QsError("MathJax is not installed (pip install -r requirements.lock provides django-static-mathjax)", field="mathjax")
    es5 = Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    pairs: list[tuple[Path, Path]] = []
    for rel in MATHJAX_FILES:
        found = es5 / rel
        files = sorted(p for p in found.rglob("*") if p.is_file()) if found.is_dir() else [found]
        if not files or not files[0].is_file():
            raise QsError(f"MathJax file {rel} not found under {es5}", field="mathjax")
        pairs += [(f, Path(MATHJAX_STAGE_DIR) / "mathjax" / f.relative_to(es5)) for f in files]
    return pairs
TOC_FILE = "_toc.yml"
RESULTS_SUBDIR = Path("_static") / "results"
#: Seconds one notebook cell may run before the chapter fails.
CELL_TIMEOUT_S = 600


# --------------------------------------------------------------------------------------
# small helpers


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


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` unless the file already holds exactly it (keeps mtimes for Sphinx)."""
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _copy_if_changed(src: Path, dst: Path) -> bool:
    return _write_if_changed(dst, src.read_bytes())


def _say(msg: str, stream=None) -> None:
    stream = stream or sys.stderr
    print(msg, file=stream, flush=True)


def toc_chapters(repo_root: Path = REPO_ROOT) -> list[str]:
    """Chapter names (``chapters/<name>``) in the order the repository's _toc.yml lists them."""
    toc_path = repo_root / TOC_FILE
    try:
        toc = yaml.safe_load(toc_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QsError(f"cannot read the table of contents: {exc}", source=str(toc_path)) from None
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith(f"{CHAPTERS_DIR}/"):
                names.append(Path(file).stem if file.endswith((".md", ".ipynb")) else Path(file).name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    for name in names:
        if not (repo_root / CHAPTERS_DIR / f"{name}.md").is_file():
            raise QsError(f"lists chapters/{name} but chapters/{name}.md does not exist", source=str(toc_path))
    unlisted = sorted(p.stem for p in (repo_root / CHAPTERS_DIR).glob("*.md") if p.stem not in names)
    if unlisted:
        raise QsError(f"chapters not in the table of contents: {', '.join(unlisted)}", source=str(toc_path))
    return names


def _filtered_toc(repo_root: Path, present: set[str]) -> str:
    """The repository's _toc.yml without chapters that have no executed notebook yet."""
    toc = yaml.safe_load((repo_root / TOC_FILE).read_text(encoding="utf-8"))

    def keep(entry: Any) -> bool:
        file = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(file, str) and file.startswith(f"{CHAPTERS_DIR}/"):
            return Path(file).stem in present or Path(file).name in present
        return True

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            kept = [walk(item) for item in node if keep(item)]
            return kept
        return node

    toc = walk(toc)
    # drop parts left empty
    if isinstance(toc.get("parts"), list):
        toc["parts"] = [p for p in toc["parts"] if not isinstance(p, dict) or p.get("chapters")]
    header = "# Generated by qsmoe.book.build from the repository's _toc.yml; do not edit.\n"
    return header + yaml.safe_dump(toc, sort_keys=False)


# --------------------------------------------------------------------------------------
# chapter execution (runs in a worker subprocess, one per chapter)


def _scrub_notebook(nb: Any) -> Any:
    """Remove run-dependent metadata so equal inputs give byte-identical notebooks."""
    pm = nb.metadata.get("papermill", {})
    for key in ("start_time", "end_time", "duration", "input_path", "output_path", "exception", "environment_variables"):
        pm.pop(key, None)
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
        meta = cell.setdefault("metadata", {})
        meta.pop("execution", None)
        meta.pop("papermill", None)
        tags = list(meta.get("tags", []))
        if ("parameters" in tags or "injected-parameters" in tags) and "remove-cell" not in tags:
            tags.append("remove-cell")
            meta["tags"] = tags
    return nb


def _first_line(source: str) -> str:
    for line in source.splitlines():
        if line.strip():
            return line.strip()
    return "(empty cell)"


def _worker_main(spec_path: str) -> int:
    """Execute one chapter as described by the JSON spec; write the outcome to spec['result']."""
    import logging

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    result_path = Path(spec["result"])
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"ok": False}
    logging.getLogger("papermill").setLevel(logging.ERROR)
    try:
        import jupytext
        import nbformat
        import papermill
        from papermill.exceptions import PapermillExecutionError

        source_nb = jupytext.read(spec["source"])
        source_nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        for index, cell in enumerate(source_nb.cells):
            cell["id"] = f"cell-{index}"
        input_path = Path(spec["input"])
        nbformat.write(source_nb, str(input_path))
        t_exec = time.perf_counter()
        try:
            executed = papermill.execute_notebook(
                str(input_path),
                spec["failed"],
                parameters=spec["parameters"],
                kernel_name="python3",
                cwd=spec["cwd"],
                progress_bar=False,
                log_output=False,
                request_save_on_cell_execute=False,
                execution_timeout=CELL_TIMEOUT_S,
                start_timeout=120,
            )
        except PapermillExecutionError as exc:
            source_index = None
            for index, cell in enumerate(source_nb.cells):
                if cell.cell_type == "code" and cell.source == exc.source:
                    source_index = index
                    break
            where = f"cell {source_index + 1}" if source_index is not None else "the injected parameters cell"
            outcome.update(
                where=where,
                line=_first_line(exc.source),
                error=f"{exc.ename}: {exc.evalue}".strip().splitlines()[-1] if exc.evalue else exc.ename,
            )
            return 1
        outcome["execute_s"] = time.perf_counter() - t_exec
        _scrub_notebook(executed)
        text = nbformat.writes(executed) + "\n"
        outcome["changed"] = _write_if_changed(Path(spec["output"]), text.encode("utf-8"))
        Path(spec["failed"]).unlink(missing_ok=True)
        outcome["ok"] = True
        return 0
    except Exception as exc:  # noqa: BLE001 - reported as one line by the parent
        last = (str(exc).strip().splitlines() or [""])[-1]
        outcome.update(where="setup", line="", error=f"{type(exc).__name__}: {last}".rstrip(": "))
        return 1
    finally:
        outcome["elapsed_s"] = time.perf_counter() - t0
        result_path.write_text(json.dumps(outcome), encoding="utf-8")


def _kernel_env(build_dir: Path) -> dict[str, str]:
    """Environment for workers and their kernels: this interpreter's kernel, this qsmoe."""
    kernels = build_dir.parent / ".kernels"
    spec_dir = kernels / "kernels" / "python3"
    spec = {
        "argv": [sys.executable, "-Xfrozen_modules=off", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3",
        "language": "python",
        "metadata": {"debugger": False},
    }
    _write_if_changed(spec_dir / "kernel.json", (json.dumps(spec, indent=1) + "\n").encode("utf-8"))
    env = dict(os.environ)
    lib = str(LIB_DIR)
    env["PYTHONPATH"] = os.pathsep.join([lib, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["JUPYTER_PATH"] = os.pathsep.join([str(kernels), *[p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]])
    env["PYTHONHASHSEED"] = "0"
    env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
    return env


class _Runner:
    """Runs chapter workers in parallel; the first failure stops the rest."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.procs: dict[str, subprocess.Popen] = {}

    def run(self, name: str, spec_path: Path) -> dict[str, Any]:
        if self.stop.is_set():
            return {"ok": None}
        code = "import sys; from qsmoe.book.build import _worker_main; sys.exit(_worker_main(sys.argv[1]))"
        log = spec_path.with_name("worker.log")
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [sys.executable, "-c", code, str(spec_path)],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            with self.lock:
                self.procs[name] = proc
            proc.wait()
            with self.lock:
                self.procs.pop(name, None)
        if self.stop.is_set() and proc.returncode != 0:
            return {"ok": None}
        result_file = Path(json.loads(spec_path.read_text(encoding="utf-8"))["result"])
        if not result_file.exists():
            tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            return {"ok": False, "where": "worker", "line": "", "error": tail[-1] if tail else f"exit status {proc.returncode}"}
        return json.loads(result_file.read_text(encoding="utf-8"))

    def cancel(self) -> None:
        self.stop.set()
        with self.lock:
            for proc in self.procs.values():
                if proc.poll() is None:
                    proc.terminate()


def execute_chapters(
    params: ParamSet,
    names: Sequence[str],
    build_dir: Path,
    *,
    commit: str,
    jobs: int = 2,
    repo_root: Path = REPO_ROOT,
    log=None,
) -> dict[str, float]:
    """Execute ``names`` into ``build_dir/src/chapters``; returns seconds per chapter."""
    src = build_dir / "src"
    (src / CHAPTERS_DIR).mkdir(parents=True, exist_ok=True)
    env = _kernel_env(build_dir)
    specs: dict[str, Path] = {}
    for name in names:
        results = build_dir / "results" / name
        scratch = build_dir / "scratch" / name
        for folder in (results, scratch):
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
        parameters = params.papermill_parameters()
        parameters.update(git_commit=commit, results_dir=str(results.resolve()))
        spec = {
            "source": str((repo_root / CHAPTERS_DIR / f"{name}.md").resolve()),
            "input": str((scratch / f"{name}.ipynb").resolve()),
            "failed": str((scratch / f"{name}.executed.ipynb").resolve()),
            "output": str((src / CHAPTERS_DIR / f"{name}.ipynb").resolve()),
            "result": str((scratch / "result.json").resolve()),
            "cwd": str((scratch / "cwd").resolve()),
            "parameters": parameters,
        }
        Path(spec["cwd"]).mkdir()
        specs[name] = scratch / "spec.json"
        specs[name].write_text(json.dumps(spec, indent=1), encoding="utf-8")

    runner = _Runner(env)
    timings: dict[str, float] = {}
    total = len(names)
    done = 0
    failure: str | None = None
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(runner.run, name, specs[name]): name for name in names}
        for future in as_completed(futures):
            name = futures[future]
            outcome = future.result()
            if outcome.get("ok") is None:
                continue
            if not outcome["ok"]:
                if failure is None:
                    runner.cancel()
                    line = f" ({outcome['line']})" if outcome.get("line") else ""
                    failure = (
                        f"chapter {name} failed in {outcome.get('where', '?')}{line}: {outcome.get('error', '?')}"
                        f" [notebook: {Path(json.loads(specs[name].read_text())['failed'])}]"
                    )
                continue
            done += 1
            timings[name] = outcome["elapsed_s"]
            _say(f"[{done}/{total}] {name} ... {outcome['elapsed_s']:.1f} s", log)
    if failure:
        raise QsError(failure)
    return timings


# --------------------------------------------------------------------------------------
# static pages, Sphinx, results


def stage_sources(build_dir: Path, repo_root: Path = REPO_ROOT) -> list[str]:
    """Copy the static pages into ``src`` and write the filtered _toc.yml; returns the chapters present."""
    src = build_dir / "src"
    src.mkdir(parents=True, exist_ok=True)
    pages = repo_root / BOOK_PAGES_DIR
    wanted: set[Path] = set()
    if pages.is_dir():
        for path in sorted(pages.rglob("*")):
            if path.is_file() and "_build" not in path.parts and ".ipynb_checkpoints" not in path.parts:
                rel = path.relative_to(pages)
                _copy_if_changed(path, src / rel)
                wanted.add(rel)
    for name in STATIC_FILES:
        if not (repo_root / name).is_file():
            raise QsError("missing", source=str(repo_root / name))
        _copy_if_changed(repo_root / name, src / name)
        wanted.add(Path(name))
    for installed, rel in mathjax_sources():
        _copy_if_changed(installed, src / rel)
        wanted.add(rel)
    names = toc_chapters(repo_root)
    # remove executed notebooks of chapters that no longer exist
    for nb in (src / CHAPTERS_DIR).glob("*.ipynb"):
        if nb.stem not in names:
            nb.unlink()
    present = [n for n in names if (src / CHAPTERS_DIR / f"{n}.ipynb").is_file()]
    _write_if_changed(src / TOC_FILE, _filtered_toc(repo_root, set(present)).encode("utf-8"))
    # remove static files that disappeared from book/
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if path.is_file() and rel.parts[0] != CHAPTERS_DIR and rel not in wanted and rel != Path(TOC_FILE):
            path.unlink()
    return present


def _sphinx_main(src: str, html: str, doctrees: str, strict: str = "1") -> int:
    """Run Jupyter Book's Sphinx build (execution off, nitpicky; warnings are errors when ``strict``)."""
    from jupyter_book.sphinx import build_sphinx
    from sphinx.util.console import nocolor

    nocolor()
    src_path = Path(src)
    result = build_sphinx(
        src_path,
        Path(html),
        noconfig=True,
        path_config=str(src_path / "_config.yml"),
        confoverrides={
            "external_toc_path": (src_path / TOC_FILE).as_posix(),
            "nitpicky": True,
            "html_static_path": [MATHJAX_STAGE_DIR] + (["_static"] if (src_path / "_static").is_dir() else []),
            "latex_individualpages": False,
        },
        doctreedir=doctrees,
        warningiserror=strict == "1",
        keep_going=True,
        quiet=True,
    )
    if isinstance(result, Exception):
        return 2
    return int(result or 0)


#: With chapters left out of a partial build, only references into them may fail to resolve.
_LEFT_OUT_REFERENCE = ("undefined label", "unknown document")


def run_sphinx(build_dir: Path, partial: bool = False) -> Path:
    """Build the HTML; every warning is an error, except, in a ``partial`` build (chapters left
    out), a reference that cannot resolve because its target chapter is not in this build."""
    src, html, doctrees = build_dir / "src", build_dir / "html", build_dir / ".doctrees"
    code = "import sys; from qsmoe.book.build import _sphinx_main; sys.exit(_sphinx_main(*sys.argv[1:]))"
    env = dict(os.environ)
    lib = str(LIB_DIR)
    env["PYTHONPATH"] = os.pathsep.join([lib, *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["PYTHONHASHSEED"] = "0"
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src), str(html), str(doctrees), "0" if partial else "1"],
        env=env,
        capture_output=True,
        text=True,
    )
    log = build_dir / "sphinx.log"
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    output = proc.stdout + proc.stderr
    unexpected = [line for line in output.splitlines() if ("WARNING" in line or "ERROR" in line) and not any(k in line for k in _LEFT_OUT_REFERENCE)]
    if proc.returncode != 0 or (partial and unexpected):
        # a later unchanged rebuild would not repeat the warnings: start it afresh
        shutil.rmtree(doctrees, ignore_errors=True)
        problems = [line for line in output.splitlines() if line.strip()]
        warnings = unexpected if partial else [line for line in problems if "WARNING" in line or "ERROR" in line]
        first = (warnings or problems or ["no output"])[0]
        more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise QsError(f"jupyter-book build failed: {first}{more} [log: {log}]")
    return html


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
    meta = {"name": params.name, "hash": params.hash, "slug": params.slug, "values": params.values}
    (out / "params.json").write_text(
        json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
    )
    return out / "results.json"


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
    (and are left out of the book if there is none).
    """
    t0 = time.perf_counter()
    repo_root = Path(repo_root).resolve()
    out_root = Path(out_root)
    if not out_root.is_absolute():
        out_root = Path.cwd() / out_root
    build_dir = out_root / params.slug
    all_names = toc_chapters(repo_root)
    if chapters is None:
        names = list(all_names)
    else:
        names = []
        for name in chapters:
            name = Path(name).stem if name.endswith(".md") else Path(name).name
            if name not in all_names:
                raise QsError(f"unknown chapter {name!r} (known: {', '.join(all_names)})", source="--chapter")
            if name not in names:
                names.append(name)
    commit = git_commit(repo_root, exclude=[out_root])
    _say(f"building {params.slug} (parameter set {params.name}, hash {params.hash}, commit {commit}) into {build_dir}", log)
    execute_chapters(params, names, build_dir, commit=commit, jobs=jobs, repo_root=repo_root, log=log)
    t_exec = time.perf_counter()
    _say(f"chapters executed in {t_exec - t0:.1f} s", log)
    present = stage_sources(build_dir, repo_root)
    missing = [n for n in all_names if n not in present]
    if missing:
        _say(f"note: not yet executed, left out of the book: {', '.join(missing)}", log)
    html = run_sphinx(build_dir, partial=bool(missing))
    t_sphinx = time.perf_counter()
    _say(f"jupyter-book build ... {t_sphinx - t_exec:.1f} s", log)
    collect_results(build_dir, present, params)
    _say(f"total {time.perf_counter() - t0:.1f} s", log)
    return html
