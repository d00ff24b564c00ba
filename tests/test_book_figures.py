"""Figures beside their data: a figure's caption links a CSV the chapter writes (bookkit.figure_data or bookkit.table)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from qsmoe.book import kit as bookkit

CHAPTERS = Path(__file__).resolve().parents[1] / "chapters"

#: Figures plotted from a sweep or grid of records: each must link its data.
SWEEP_FIGURES = {
    "05-throughput": ["throughput-vs-context"],
    "06-qs-inequality": ["qs-plane", "agreement-scatter"],
    "08-sensitivity": ["sensitivity", "reproduction"],
    "11-validation": ["validation-scatter"],
    "13-serving-economics": ["serving-frontiers"],
}

_FIGURE_RE = re.compile(r"```\{glue:figure\} (\S+)\n(.*?)```", re.S)
_LINK_RE = re.compile(r'Data: <a href="\.\./_static/results/([A-Za-z0-9_-]+)\.csv">\1\.csv</a>')


def _captions(chapter: str) -> dict[str, str]:
    return {name: body for name, body in _FIGURE_RE.findall((CHAPTERS / f"{chapter}.md").read_text(encoding="utf-8"))}


@pytest.mark.parametrize("chapter", sorted(SWEEP_FIGURES))
def test_sweep_figures_link_a_csv_the_chapter_writes(chapter):
    text = (CHAPTERS / f"{chapter}.md").read_text(encoding="utf-8")
    captions = _captions(chapter)
    for figure in SWEEP_FIGURES[chapter]:
        assert figure in captions, f"{chapter}: no figure {figure}"
        link = _LINK_RE.search(captions[figure])
        assert link, f"{chapter}: the caption of {figure} links no data CSV"
        csv_name = link.group(1)
        assert re.search(rf'bookkit\.(?:table|figure_data)\((?:[^()]|\([^()]*\))*?"{csv_name}"', text, re.S), (
            f"{chapter}: {figure} links {csv_name}.csv, which the chapter does not write")


def test_every_data_link_names_a_written_csv():
    for path in sorted(CHAPTERS.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        for name, body in _FIGURE_RE.findall(text):
            for csv_name in _LINK_RE.findall(body):
                assert f'"{csv_name}"' in text, f"{path.name}: {name} links {csv_name}.csv, never written"


def test_figure_data_writes_the_table_csv(tmp_path):
    bookkit.setup(tmp_path / "99-test", "default", "0" * 12, "abc")
    rows = [{"model": "m", "context": 4096, "ratio": 1.5}, {"model": "m", "context": 8192, "ratio": None}]
    assert bookkit.figure_data(rows, "fig-a") is None
    bookkit.table(rows, "tbl-a", "caption")
    written = (tmp_path / "99-test" / "fig-a.csv").read_bytes()
    assert written == (tmp_path / "99-test" / "tbl-a.csv").read_bytes()
    assert written.decode().splitlines() == ["model,context,ratio", "m,4096,1.5", "m,8192,"]
    with pytest.raises(Exception, match="inf"):
        bookkit.figure_data([{"x": float("inf")}], "fig-b")
