"""Book builds are atomic: a failed build leaves the previous good build byte-identical, and a
folder never mixes two parameter sets (a one-chapter book in a scratch repository)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from qsmoe import REPO_ROOT
from qsmoe.book.build import build_book
from qsmoe.book.outdir import PARAMS_RECORD, STAGING_DIR
from qsmoe.errors import QsError
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, load_params

GOOD = (
    "```{code-cell} ipython3\nfrom qsmoe.book import kit as bookkit\n"
    "bookkit.setup(results_dir, param_set_name, param_set_hash, git_commit)\n"
    "bookkit.glue('answer', 42)\n```\n\nThe answer is {glue}`answer`.\n"
)
FAILS_IN_A_CELL = GOOD.replace("bookkit.glue('answer', 42)", "bookkit.glue('answer', 42)\nraise RuntimeError('broken on purpose')")
FAILS_IN_SPHINX = GOOD + "\nAnd {glue}`no_such_value`.\n"


def _repo(root: Path, body: str) -> Path:
    """A repository with the book's configuration and one chapter of ``body``."""
    (root / "chapters").mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "references.bib"):
        shutil.copy(REPO_ROOT / name, root / name)
    (root / "book").mkdir(exist_ok=True)
    (root / "book" / "intro.md").write_text("# Intro\n\nA test book.\n", encoding="utf-8")
    (root / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: chapters/01-one\n", encoding="utf-8")
    header = next((REPO_ROOT / "chapters").glob("*.md")).read_text(encoding="utf-8").split("---", 2)[1]
    injected = {**load_params().papermill_parameters(), "git_commit": "x", "results_dir": "r"}
    params = "\n".join(f"{k} = {v!r}" for k, v in injected.items())
    text = f"---{header}---\n\n(ch-one)=\n# One\n\n```{{code-cell}} ipython3\n:tags: [parameters]\n\n{params}\n```\n\n{body}"
    (root / "chapters" / "01-one.md").write_text(text, encoding="utf-8")
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", autouse=True)
def no_source_archive():
    """The scratch repository is no installable tree: skip shipping its source (what a build
    publishes, and when, is the same with or without that step)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("qsmoe.book.build.ship_source", lambda html, commit, repo_root: None)
        yield


@pytest.fixture(scope="module")
def good_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("atomic")
    repo = _repo(root / "repo", GOOD)
    out = root / "out"
    html = build_book(load_params(), out, repo_root=repo)
    return repo, out, html.parent


def test_a_good_build_is_published_with_its_hash(good_build):
    _, out, build_dir = good_build
    assert build_dir == out / "default"
    assert load_params().hash in (build_dir / PARAMS_RECORD).read_text(encoding="utf-8")
    assert not (out / STAGING_DIR / "default").exists(), "the staging folder was not renamed into place"


@pytest.mark.parametrize("body, message", [(FAILS_IN_A_CELL, "broken on purpose"), (FAILS_IN_SPHINX, "no_such_value")])
def test_a_failed_build_leaves_the_good_one_byte_identical(good_build, body, message):
    repo, out, build_dir = good_build
    before = _snapshot(build_dir)
    _repo(repo, body)
    try:
        with pytest.raises(QsError, match=message):
            build_book(load_params(), out, repo_root=repo)
    finally:
        _repo(repo, GOOD)
    assert _snapshot(build_dir) == before
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == ["default"]


def test_a_set_of_the_same_name_with_other_values_is_refused(good_build, tmp_path):
    repo, out, build_dir = good_build
    before = _snapshot(build_dir)
    other = tmp_path / "mine.yaml"
    other.write_text(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8").replace("\ngpus: 8 ", "\ngpus: 4 "), encoding="utf-8")
    params = load_params(other)
    assert params.name == "default" and params.hash != load_params().hash
    with pytest.raises(QsError, match="holds a build of parameter set 'default' with hash"):
        build_book(params, out, chapters=["01-one"], repo_root=repo)
    assert _snapshot(build_dir) == before


def test_an_edited_parameter_file_rebuilds_its_own_book_afresh(good_build, tmp_path):
    """Rebuilding the same file after an edit replaces its book, keeping no chapter of the old
    values (a --chapter build then holds only that chapter); another file of the same name is
    still refused."""
    repo, _, _ = good_build
    out = tmp_path / "out"
    mine = tmp_path / "mine.yaml"
    text = DEFAULT_PARAMS_PATH.read_text(encoding="utf-8").replace("\nname: default", "\nname: mine", 1)
    mine.write_text(text, encoding="utf-8")
    original = load_params(mine)
    first = build_book(original, out, repo_root=repo).parent
    mine.write_text(text.replace("\ngpus: 8 ", "\ngpus: 4 "), encoding="utf-8")
    edited = load_params(mine)
    assert edited.hash != original.hash
    second = build_book(edited, out, repo_root=repo).parent
    assert second == first and edited.hash in (second / PARAMS_RECORD).read_text(encoding="utf-8")
    copy = tmp_path / "copy.yaml"
    copy.write_text(text, encoding="utf-8")
    with pytest.raises(QsError, match="holds a build of parameter set 'mine' with hash"):
        build_book(load_params(copy), out, repo_root=repo)


def test_a_folder_that_is_no_build_is_refused(tmp_path, good_build):
    repo, _, _ = good_build
    (tmp_path / "default").mkdir()
    (tmp_path / "default" / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(QsError, match="holds no finished build"):
        build_book(load_params(), tmp_path, repo_root=repo)
    assert (tmp_path / "default" / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_the_published_notebook_holds_no_build_path(good_build):
    _, out, build_dir = good_build
    notebook = (build_dir / "src" / "chapters" / "01-one.ipynb").read_text(encoding="utf-8")
    assert str(out) not in notebook and STAGING_DIR not in notebook


def test_referenced_files_enter_the_hash(tmp_path):
    hardware = tmp_path / "gpu.yaml"
    hardware.write_text((REPO_ROOT / "data" / "hardware" / "h200.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    first = load_params().with_overrides([f"hardware={hardware}"])
    hardware.write_text(hardware.read_text(encoding="utf-8").replace("hbm_bytes: 141.0e+9", "hbm_bytes: 120.0e+9"), encoding="utf-8")
    second = load_params().with_overrides([f"hardware={hardware}"])
    assert first.values == second.values and first.hash != second.hash
