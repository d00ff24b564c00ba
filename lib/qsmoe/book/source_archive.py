"""The source a build was made from, shipped inside the book: an archive of the tree and the qsmoe wheel.

Every build writes, into ``html/_static/source/``:

- ``qs-book-source.tar.gz``: the repository's files as the build saw them (the files git
  tracks plus the untracked ones it does not ignore; without git, every file not matched by
  ``.gitignore``), under one folder ``qs-book/``, with ``pyproject.toml`` at its top.  Entries
  are sorted, owned by uid 0 and dated :data:`ARCHIVE_MTIME`, and the gzip header carries no
  date, so the same tree gives a byte-identical archive;
- ``qsmoe-<version>-py3-none-any.whl``: ``pip wheel --no-deps --no-build-isolation`` of that
  archive, unpacked in a temporary folder (so the wheel is built from exactly what is shipped,
  offline, with the build environment's setuptools); rebuilt only when the archive changed;
- ``source.json``: the commit, the number of files, and the SHA-256 of both files.

The wheel holds the library, the ``qsmoe`` command and a copy of ``data/`` inside the package
(``qsmoe/data/``, where :data:`qsmoe.DATA_DIR` looks when there is no repository around it),
so every command runs from the wheel alone; building the book needs the archive (chapters,
static pages, Jupyter Book setup).
"""
from __future__ import annotations

import fnmatch
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from qsmoe import REPO_ROOT, __version__
from qsmoe.errors import QsError

#: Folder of the build's HTML that holds the source (relative to ``html/``).
SOURCE_SUBDIR = Path("_static") / "source"
ARCHIVE_NAME = "qs-book-source.tar.gz"
ARCHIVE_ROOT = "qs-book"
MANIFEST_NAME = "source.json"
#: Date of every archive entry (1980-01-01T00:00:00Z, the earliest a zip file can hold).
ARCHIVE_MTIME = 315532800
#: Paths never shipped, whatever .gitignore says (build outputs and environments).
ALWAYS_LEFT_OUT = (".git", ".venv", "_build", "__pycache__", ".peers-venv")


def wheel_name(version: str = __version__) -> str:
    """The wheel's file name for ``version`` (pure Python, any platform)."""
    return f"qsmoe-{version}-py3-none-any.whl"


def _gitignore_patterns(repo_root: Path) -> list[str]:
    path = repo_root / ".gitignore"
    if not path.is_file():
        return []
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    return [line.rstrip("/") for line in lines if line and not line.startswith(("#", "!"))]


def _ignored(rel: Path, patterns: list[str]) -> bool:
    return any(part in ALWAYS_LEFT_OUT or any(fnmatch.fnmatch(part, p) for p in patterns) for part in rel.parts)


def source_files(repo_root: Path = REPO_ROOT) -> list[Path]:
    """Paths (relative, sorted) of the files the archive holds."""
    repo_root = Path(repo_root)
    try:
        proc = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=repo_root, capture_output=True, timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        proc = None
    if proc is not None and proc.returncode == 0:
        listed = {Path(p) for p in proc.stdout.decode("utf-8").split("\0") if p}
    else:  # no git (e.g. a tree unpacked from this very archive): .gitignore decides
        patterns = _gitignore_patterns(repo_root)
        listed = {p.relative_to(repo_root) for p in repo_root.rglob("*") if p.is_file() or p.is_symlink()}
        listed = {p for p in listed if not _ignored(p, patterns)}
    files = sorted(p for p in listed if (repo_root / p).is_file() and not _ignored(p, []))
    if Path("pyproject.toml") not in files:
        raise QsError("the source tree has no pyproject.toml", source=str(repo_root))
    return files


def archive_bytes(repo_root: Path, files: list[Path]) -> bytes:
    """A gzipped tar of ``files`` under ``qs-book/``: same files and content, same bytes."""
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for rel in files:
                path = repo_root / rel
                data = path.read_bytes()
                info = tarfile.TarInfo(f"{ARCHIVE_ROOT}/{rel.as_posix()}")
                info.size = len(data)
                info.mtime = ARCHIVE_MTIME
                info.mode = 0o755 if os.access(path, os.X_OK) else 0o644
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def _build_wheel(archive: Path, dest: Path) -> Path:
    """``pip wheel`` of the unpacked archive into ``dest``, offline; returns the wheel."""
    with tempfile.TemporaryDirectory(prefix="qsmoe-wheel-") as tmp:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(tmp, filter="data")
        tree = Path(tmp) / ARCHIVE_ROOT
        # the wheel carries the data files inside the package (qsmoe.DATA_DIR falls back to them)
        shutil.copytree(tree / "data", tree / "lib" / "qsmoe" / "data")
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(ARCHIVE_MTIME), PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
             "--wheel-dir", str(Path(tmp) / "dist"), str(tree)],
            capture_output=True, text=True, env=env, timeout=600,
        )
        built = sorted((Path(tmp) / "dist").glob("qsmoe-*.whl"))
        if proc.returncode != 0 or len(built) != 1:
            lines = [line for line in (proc.stderr + proc.stdout).splitlines() if line.strip()]
            raise QsError(f"cannot build the qsmoe wheel: {(lines or ['no output'])[-1]}", source=str(archive))
        target = dest / built[0].name
        tmp_target = target.with_name(target.name + ".tmp")
        tmp_target.write_bytes(built[0].read_bytes())
        os.replace(tmp_target, target)
        return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ship_source(html: Path, commit: str, repo_root: Path = REPO_ROOT) -> Path:
    """Write the archive, the wheel and ``source.json`` into ``html/_static/source/``; returns that folder.

    The wheel is rebuilt only when the archive's bytes changed (or the wheel is missing).
    """
    repo_root = Path(repo_root)
    out = Path(html) / SOURCE_SUBDIR
    out.mkdir(parents=True, exist_ok=True)
    files = source_files(repo_root)
    data = archive_bytes(repo_root, files)
    archive = out / ARCHIVE_NAME
    wheel = out / wheel_name()
    unchanged = archive.is_file() and archive.read_bytes() == data
    if not unchanged:
        archive.with_name(ARCHIVE_NAME + ".tmp").write_bytes(data)
        os.replace(archive.with_name(ARCHIVE_NAME + ".tmp"), archive)
    if not unchanged or not wheel.is_file():
        built = _build_wheel(archive, out)
        if built.name != wheel.name:
            raise QsError(f"the wheel is {built.name}, the book links {wheel.name} (qsmoe.__version__ and pyproject.toml differ)")
    keep = {ARCHIVE_NAME, wheel.name, MANIFEST_NAME}
    for old in out.iterdir():
        if old.name not in keep:
            old.unlink()
    manifest = {
        "commit": commit,
        "files": len(files),
        ARCHIVE_NAME: {"sha256": _sha256(archive), "bytes": archive.stat().st_size},
        wheel.name: {"sha256": _sha256(wheel), "bytes": wheel.stat().st_size},
    }
    (out / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return out
