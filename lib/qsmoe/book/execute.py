"""Executing chapters: one worker subprocess per chapter runs papermill on its notebook.

Workers run in parallel (``jobs``); the first failure stops the rest and is reported in one
line naming the chapter, the cell and the error.  An executed notebook is written only when
its content changed (timestamps and random cell ids are scrubbed), so Sphinx re-reads only
the chapters that changed.  Each chapter's ``results_dir`` is handed over relative to the
kernel's working directory, so no notebook records the build machine's paths.
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
from typing import Any, Sequence

from qsmoe import REPO_ROOT
from qsmoe.book.stage import CHAPTERS_DIR, write_if_changed
from qsmoe.errors import QsError
from qsmoe.scenario.params import ParamSet

#: The folder holding the qsmoe package, put first on the kernels' and Sphinx's import path.
LIB_DIR = Path(__file__).resolve().parents[2]
#: Seconds one notebook cell may run before the chapter fails.
CELL_TIMEOUT_S = 600


def python_env() -> dict[str, str]:
    """This process's environment with this qsmoe first on the import path and a fixed hash seed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(LIB_DIR), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]])
    env["PYTHONHASHSEED"] = "0"
    return env


def say(msg: str, stream=None) -> None:
    print(msg, file=stream or sys.stderr, flush=True)


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
        outcome["changed"] = write_if_changed(Path(spec["output"]), text.encode("utf-8"))
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
    write_if_changed(spec_dir / "kernel.json", (json.dumps(spec, indent=1) + "\n").encode("utf-8"))
    env = python_env()
    env["JUPYTER_PATH"] = os.pathsep.join([str(kernels), *[p for p in env.get("JUPYTER_PATH", "").split(os.pathsep) if p]])
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
        code = "import sys; from qsmoe.book.execute import _worker_main; sys.exit(_worker_main(sys.argv[1]))"
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
        parameters.update(git_commit=commit, results_dir=os.path.relpath(results, scratch / "cwd"))
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
            say(f"[{done}/{total}] {name} ... {outcome['elapsed_s']:.1f} s", log)
    if failure:
        raise QsError(failure)
    return timings
