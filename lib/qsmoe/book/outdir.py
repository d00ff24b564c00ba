"""Output folders of book builds: one parameter set per folder, published only on success.

``<out>/<slug>/`` holds one finished build of one parameter set, identified by the hash in
its ``html/_static/results/params.json``.  A build:

1. refuses when ``<out>/<slug>/`` holds a build of another hash made from another parameter
   file (two files with the same ``name:`` but other values, e.g. a file of one's own named
   ``default``), or anything that is not a finished build.  A build of the same file after it
   was edited is allowed, and starts from an empty folder: no chapter of the old values is kept;
2. takes the lock ``<out>/.staging/<slug>.lock`` (a second build of the same set into the
   same root is refused, not interleaved);
3. works in ``<out>/.staging/<slug>/``: a copy of the published build of the same hash
   (mtimes kept, so Sphinx and unchanged notebooks are reused) or an empty folder.  The staging path is the
   same for every build of a set, so Sphinx's cached environment stays valid;
4. on success renames the staging folder over ``<out>/<slug>/``.  On failure the published
   build is left byte-identical; the staging folder keeps the failed notebook and logs that
   the error line names, until the next build of the set replaces it.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from qsmoe.errors import QsError
from qsmoe.scenario.params import ParamSet
from qsmoe.specs.fileio import excerpt, parse_json, read_text

STAGING_DIR = ".staging"
#: Where a finished build records its parameter set (relative to ``<out>/<slug>/``).
PARAMS_RECORD = Path("html") / "_static" / "results" / "params.json"
#: Which parameter file a finished build came from (relative to ``<out>/<slug>/``; not published).
SOURCE_RECORD = Path("params-source.txt")


def source_key(params: ParamSet) -> str:
    """The parameter file a set was read from (its resolved path), or '' for a set without one."""
    return str(params.path.resolve()) if params.path is not None else ""


def prepare_out_root(out_root: Path) -> Path:
    """The absolute output root, created if needed; one-line errors for a path that is a
    file, a device, or cannot be created or written."""
    path = Path(os.path.abspath(out_root))
    try:
        if path.exists() and not path.is_dir():
            raise QsError(f"{excerpt(str(out_root))} exists and is not a folder", source="--out")
        (path / STAGING_DIR).mkdir(parents=True, exist_ok=True)
        if not os.access(path / STAGING_DIR, os.W_OK | os.X_OK):
            raise QsError(f"{excerpt(str(out_root))} is not writable", source="--out")
    except OSError as exc:
        raise QsError(f"cannot create {excerpt(str(out_root))}: {exc.strerror or exc}", source="--out") from None
    return path


def published_hash(build_dir: Path) -> str:
    """The parameter-set hash of the finished build in ``build_dir``; QsError when it holds none."""
    record = build_dir / PARAMS_RECORD
    if not build_dir.is_dir() or not record.is_file():
        raise QsError(f"{build_dir} exists but holds no finished build (no {PARAMS_RECORD}); move it away or choose another --out")
    data = parse_json(read_text(record), str(record))
    if not isinstance(data, dict) or not isinstance(data.get("hash"), str):
        raise QsError("holds no parameter-set hash", source=str(record))
    return data["hash"]


def check_target(build_dir: Path, params: ParamSet) -> bool:
    """Whether the published build in ``build_dir`` may be reused for ``params`` (same hash).

    False when there is none, or when it came from the same parameter file before an edit
    (the build then starts afresh); a QsError when it holds a build of other values from
    another file."""
    if not build_dir.exists():
        return False
    held = published_hash(build_dir)
    if held == params.hash:
        return True
    record = build_dir / SOURCE_RECORD
    same_file = record.is_file() and source_key(params) and read_text(record).strip() == source_key(params) and not params.overrides
    if same_file:
        return False
    raise QsError(
        f"{build_dir} holds a build of parameter set {params.name!r} with hash {held}; this set of the same name "
        f"has hash {params.hash}: give the set another name, or build into another --out"
    )


@contextmanager
def staging(out_root: Path, build_dir: Path, reuse: bool = True) -> Iterator[Path]:
    """Lock the set's staging folder and fill it with a copy of the published build
    (``reuse``) or leave it empty."""
    stage_root = out_root / STAGING_DIR
    lock_path = stage_root / f"{build_dir.name}.lock"
    with open(lock_path, "w", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise QsError(f"another build of {build_dir.name} into {out_root} is running", source="--out") from None
        work = stage_root / build_dir.name
        if work.exists():
            shutil.rmtree(work)
        if reuse and build_dir.is_dir():
            shutil.copytree(build_dir, work, symlinks=True)
        else:
            work.mkdir()
        yield work


def publish(work: Path, build_dir: Path) -> None:
    """Put the finished staging folder in place of the published build (two renames)."""
    old = work.with_name(work.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if build_dir.exists():
        os.rename(build_dir, old)
    os.rename(work, build_dir)
    shutil.rmtree(old, ignore_errors=True)


def record_text(params: ParamSet) -> str:
    """The content of ``params.json``: name, hash, folder name, values and referenced files."""
    meta = {"name": params.name, "hash": params.hash, "slug": params.slug, "values": params.values}
    if params.files:
        meta["files"] = params.files
    return json.dumps(meta, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
