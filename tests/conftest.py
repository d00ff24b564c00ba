"""Shared fixtures. The book is built once per test session and shared by
tests/test_book.py and tests/test_browser.py."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from qsmoe import REPO_ROOT


@dataclass(frozen=True)
class BuiltBook:
    """One built book: ``html`` is ``<out_root>/<slug>/html``."""

    params: object  # qsmoe.scenario.params.ParamSet
    out_root: Path
    html: Path

    @property
    def build_dir(self) -> Path:
        return self.html.parent

    @property
    def results(self) -> Path:
        return self.html / "_static" / "results"


def build(params, out_root: Path, chapters: list[str] | None = None) -> BuiltBook:
    from qsmoe.book.build import build_book

    html = build_book(params, out_root, chapters, jobs=2)
    return BuiltBook(params=params, out_root=out_root, html=html)


@pytest.fixture(scope="session")
def built_book(tmp_path_factory) -> BuiltBook:
    """The whole book built with the default parameter set (once per session)."""
    from qsmoe.scenario.params import load_params

    return build(load_params(), tmp_path_factory.mktemp("book-default"))


@pytest.fixture(scope="session")
def toc_chapter_names() -> list[str]:
    from qsmoe.book.build import toc_chapters

    return toc_chapters(REPO_ROOT)
