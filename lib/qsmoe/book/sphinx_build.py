"""The Jupyter Book (Sphinx) build of the staged source root into HTML.

Sphinx runs in a subprocess with execution off and nitpicky references; every warning is
an error, except, in a partial build, a reference into a chapter left out of it.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from qsmoe.book.execute import python_env
from qsmoe.book.stage import MATHJAX_STAGE_DIR, TOC_FILE
from qsmoe.errors import QsError

#: The book's own static files (CSS, JavaScript), copied from book/_assets/.
ASSETS_DIR = "_assets"


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
            # book/_assets/ (the book's CSS and JavaScript, listed in _config.yml) is served from _static/
            # without being named _static/ in the source, where Jupyter Book would put every .js file of
            # every static folder, MathJax included, on every page a second time
            "html_static_path": [MATHJAX_STAGE_DIR] + [d for d in (ASSETS_DIR, "_static") if (src_path / d).is_dir()],
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
#: A value pasted from another page (the landing page pastes chapter 00's), as myst-nb words it.
_GLUE_FROM_DOC = re.compile(r"Glue reference '[^']*' not found in doc '([^']+)'")


def _left_out(line: str, src: Path) -> bool:
    """Whether a warning is a reference into a chapter this partial build left out (a glued value
    pasted from a page counts only when that page has no executed notebook here)."""
    glued = _GLUE_FROM_DOC.search(line)
    if glued:
        return not (src / f"{glued.group(1)}.ipynb").is_file()
    return any(k in line for k in _LEFT_OUT_REFERENCE)


def run_sphinx(build_dir: Path, partial: bool = False) -> Path:
    """Build the HTML; every warning is an error, except, in a ``partial`` build (chapters left
    out), a reference that cannot resolve because its target chapter is not in this build."""
    src, html, doctrees = build_dir / "src", build_dir / "html", build_dir / ".doctrees"
    code = "import sys; from qsmoe.book.sphinx_build import _sphinx_main; sys.exit(_sphinx_main(*sys.argv[1:]))"
    env = python_env()
    proc = subprocess.run(
        [sys.executable, "-c", code, str(src), str(html), str(doctrees), "0" if partial else "1"],
        env=env,
        capture_output=True,
        text=True,
    )
    log = build_dir / "sphinx.log"
    log.write_text(proc.stdout + proc.stderr, encoding="utf-8")
    output = proc.stdout + proc.stderr
    unexpected = [line for line in output.splitlines() if ("WARNING" in line or "ERROR" in line) and not _left_out(line, src)]
    if proc.returncode != 0 or (partial and unexpected):
        # a later unchanged rebuild would not repeat the warnings: start it afresh
        shutil.rmtree(doctrees, ignore_errors=True)
        problems = [line for line in output.splitlines() if line.strip()]
        warnings = unexpected if partial else [line for line in problems if "WARNING" in line or "ERROR" in line]
        first = (warnings or problems or ["no output"])[0]
        more = f" (+{len(warnings) - 1} more)" if len(warnings) > 1 else ""
        raise QsError(f"jupyter-book build failed: {first}{more} [log: {log}]")
    return html
