"""The source each build ships (qsmoe.book.source_archive): the archive and the wheel install offline."""
from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import tarfile
import venv
from pathlib import Path

import pytest

from qsmoe import REPO_ROOT, __version__
from qsmoe.book import source_archive as sa


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    html = tmp_path_factory.mktemp("source") / "html"
    return sa.ship_source(html, "test-commit", REPO_ROOT)


def _members(archive: Path) -> list[str]:
    with tarfile.open(archive, "r:gz") as tar:
        return tar.getnames()


def test_archive_holds_the_tree_and_nothing_built(shipped):
    names = _members(shipped / sa.ARCHIVE_NAME)
    root = sa.ARCHIVE_ROOT + "/"
    assert all(n.startswith(root) for n in names)
    rel = {n[len(root):] for n in names}
    for needed in ("pyproject.toml", "README.md", "Makefile", "requirements.lock", "_toc.yml", "_config.yml",
                   "lib/qsmoe/__init__.py", "data/params/default.yaml", "chapters/05-throughput.md", "book/intro.md"):
        assert needed in rel, f"{needed} missing from the archive"
    left_out = [n for n in rel if any(part in sa.ALWAYS_LEFT_OUT or part.endswith(".egg-info") for part in Path(n).parts)]
    assert not left_out, f"build outputs in the archive: {left_out[:5]}"
    assert rel == {p.as_posix() for p in sa.source_files(REPO_ROOT)}


def test_archive_is_byte_identical_for_the_same_tree(shipped):
    files = sa.source_files(REPO_ROOT)
    assert sa.archive_bytes(REPO_ROOT, files) == sa.archive_bytes(REPO_ROOT, files)
    manifest = json.loads((shipped / sa.MANIFEST_NAME).read_text(encoding="utf-8"))
    assert manifest["commit"] == "test-commit"
    assert manifest["files"] == len(files)
    assert set(manifest) == {"commit", "files", sa.ARCHIVE_NAME, sa.wheel_name()}


def test_an_unpacked_archive_lists_the_same_files_without_git(shipped, tmp_path):
    with tarfile.open(shipped / sa.ARCHIVE_NAME, "r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    tree = tmp_path / sa.ARCHIVE_ROOT
    assert not (tree / ".git").exists()
    (tree / "_build").mkdir()
    (tree / "_build" / "stray.html").write_text("built\n", encoding="utf-8")
    assert sa.source_files(tree) == sa.source_files(REPO_ROOT)


def _fresh_venv(where: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(where)
    return where / "bin" / "python"


def test_wheel_installs_offline_into_a_fresh_venv_and_runs(shipped, tmp_path):
    wheel = shipped / sa.wheel_name()
    assert wheel.name == f"qsmoe-{__version__}-py3-none-any.whl"
    python = _fresh_venv(tmp_path / "venv")
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-deps", "--disable-pip-version-check", "-q", str(wheel)],
        check=True, timeout=300, cwd=tmp_path,
    )
    # numpy and PyYAML (the wheel's two dependencies) come from the book's environment, after the fresh one's own
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    run = lambda *args: subprocess.run([str(python), *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)  # noqa: E731

    where = run("-c", "import qsmoe; print(qsmoe.__file__); print(qsmoe.DATA_DIR)")
    assert where.returncode == 0, where.stderr
    module_file, data_dir = where.stdout.split()
    assert Path(module_file).is_relative_to(site), f"qsmoe imported from {module_file}, not the fresh venv"
    assert Path(data_dir) == site / "qsmoe" / "data"

    qsmoe = str(python.parent / "qsmoe")
    version = subprocess.run([qsmoe, "--version"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"qsmoe {__version__}"
    # the wheel's data give the repository's numbers
    args = ["compare", "--model", "deepseek-v3", "--context", "131072", "--json"]
    from_wheel = subprocess.run([qsmoe, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert from_wheel.returncode == 0, from_wheel.stderr
    from_repo = subprocess.run([sys.executable, "-m", "qsmoe.cli", *args], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert from_repo.returncode == 0, from_repo.stderr
    assert json.loads(from_wheel.stdout) == json.loads(from_repo.stdout)
