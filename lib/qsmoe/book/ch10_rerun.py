"""Helpers for chapter 10, rerunning: paths for in-process CLI calls and the build folder's name.
The parameter documentation it tabulates is :mod:`qsmoe.scenario.paramdocs`."""
from __future__ import annotations

from pathlib import Path

from qsmoe import REPO_ROOT


def repo_path(relative: str) -> str:
    """Absolute path of a file given relative to the repository root (for in-process CLI calls)."""
    return str(REPO_ROOT / relative)


def build_slug(results_dir: str | Path, fallback: str) -> str:
    """The build folder's name (``_build/<slug>/results/<chapter>``), or ``fallback`` outside a build."""
    path = Path(results_dir).resolve()
    if path.parent.name == "results" and path.parent.parent.name:
        return path.parent.parent.name
    return fallback
