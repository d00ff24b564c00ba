"""The book pipeline: chapter sources, bookkit helpers, and whole-book builds.

Tests marked ``book`` execute notebooks and run Jupyter Book (tens of seconds);
the others are quick checks of the sources and helpers.
"""
from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from bs4 import BeautifulSoup

from qsmoe import REPO_ROOT
from qsmoe.errors import QsError
from qsmoe.scenario.params import DEFAULT_PARAMS_PATH, load_params, resolve

from conftest import BuiltBook, build

BAD_WORDS = re.compile(r"(?<![\w.-])[-+]?(nan|inf)(?![\w-])", re.IGNORECASE)
LEAKED = ("Traceback", "<IPython.core.display", "<Figure size", "<matplotlib.", "{glue", "glue:text", "glue:figure")


# --------------------------------------------------------------------------- sources (quick)


def _parameters_cell(path: Path) -> dict[str, object]:
    import jupytext

    nb = jupytext.read(path)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name}: expected one cell tagged 'parameters', found {len(cells)}"
    values: dict[str, object] = {}
    for node in ast.parse(cells[0].source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            values[node.targets[0].id] = ast.literal_eval(node.value)
    return values


def test_toc_lists_every_chapter(toc_chapter_names):
    on_disk = sorted(p.stem for p in (REPO_ROOT / "chapters").glob("*.md"))
    assert sorted(toc_chapter_names) == on_disk
    assert toc_chapter_names, "no chapters"


@pytest.mark.parametrize("chapter", sorted(p.stem for p in (REPO_ROOT / "chapters").glob("*.md")))
def test_chapter_parameters_cell_takes_the_injected_set(chapter):
    """Each chapter's parameters cell names exactly what the build injects, with the stand-alone
    defaults (params None: bookkit.parameters reads default.yaml), and reads it with one call."""
    path = REPO_ROOT / "chapters" / f"{chapter}.md"
    values = _parameters_cell(path)
    injected = set(load_params().papermill_parameters()) | {"git_commit", "results_dir"}
    assert set(values) == injected, f"missing: {sorted(injected - set(values))}, unknown: {sorted(set(values) - injected)}"
    assert values["params"] is None
    assert values["results_dir"] == f"_results/{chapter}"
    assert "bookkit.parameters(params)" in path.read_text(encoding="utf-8")


def test_parameters_fall_back_to_the_default_set():
    from qsmoe.book import kit as bookkit

    defaults = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    defaults.pop("name")
    assert bookkit.parameters(None) == load_params().values
    assert list(bookkit.parameters(None)) == list(defaults)


def test_parameters_take_the_default_keys_in_order():
    from qsmoe.book import kit as bookkit

    values = load_params().values
    shuffled = dict(reversed(list(values.items())), extra=1, gpus=4)
    got = bookkit.parameters(shuffled)
    assert list(got) == list(values) and got["gpus"] == 4 and "extra" not in got
    with pytest.raises(QsError, match="lack gpus"):
        bookkit.parameters({k: v for k, v in values.items() if k != "gpus"})


@pytest.mark.parametrize("chapter", sorted(p.stem for p in (REPO_ROOT / "chapters").glob("*.md")))
def test_chapter_has_label_title_and_banner(chapter):
    text = (REPO_ROOT / "chapters" / f"{chapter}.md").read_text(encoding="utf-8")
    assert re.search(r"^\(ch-[a-z0-9-]+\)=\n# \S", text, re.M), "needs a (ch-...)= label right above the title"
    assert "bookkit.setup(" in text and "provenance_banner()" in text


# --------------------------------------------------------------------------- bookkit (quick)


@pytest.fixture()
def kit(tmp_path):
    from qsmoe.book import kit as bookkit

    results = bookkit.setup(tmp_path / "07-example", "default", "0123456789ab", "abc1234")
    return bookkit, results


def test_glue_records_json(kit):
    bookkit, results = kit
    import numpy as np

    bookkit.glue("ratio", np.float64(1.25), ".1f")
    bookkit.glue("count", np.int64(3))
    bookkit.glue("label", "h200")
    data = json.loads((results / "07-example.json").read_text())
    assert data == {"count": 3, "label": "h200", "ratio": 1.25}
    assert isinstance(data["count"], int)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), [1.0, float("nan")]])
def test_glue_refuses_non_finite(kit, bad):
    bookkit, _ = kit
    with pytest.raises(QsError, match="finite"):
        bookkit.glue("bad", bad)


def test_volatile_values_are_kept_apart(kit):
    bookkit, results = kit
    bookkit.glue("stable", 1)
    bookkit.glue("wall_s", 0.25, ".2f", volatile=True)
    bookkit.table([{"batch": 1, "ms": 0.5}], "timings", "Timings.", volatile=True)
    assert json.loads((results / "07-example.json").read_text()) == {"stable": 1}
    record = json.loads((results / "07-example.volatile.json").read_text())
    assert record == {"tables": ["timings.csv"], "values": {"wall_s": 0.25}}
    with pytest.raises(QsError, match="both"):
        bookkit.glue("stable", 1, volatile=True)


def test_glue_refuses_conflicting_values(kit):
    bookkit, _ = kit
    bookkit.glue("x", 1)
    bookkit.glue("x", 1)
    with pytest.raises(QsError, match="twice"):
        bookkit.glue("x", 2)


def test_glued_value_renders_plain_and_formatted():
    from qsmoe.book.kit import Glued

    glued = Glued(0.1 + 0.2, ".2f")
    assert float(repr(glued)) == 0.1 + 0.2  # {glue:text}`name:fmt` formats the exact value
    assert glued._repr_markdown_() == "0.30"  # {glue}`name` shows the default format


def test_table_writes_csv_and_refuses_nan(kit):
    bookkit, results = kit
    rows = [{"model": "a", "x": 1.5, "n": 2}, {"model": "b", "x": 0.1, "n": 3}]
    shown = bookkit.table(rows, "demo", "A demo table.")
    assert (results / "demo.csv").read_text() == "model,x,n\na,1.5,2\nb,0.1,3\n"
    assert ":name: tbl-demo" in shown.data and "demo.csv" in shown.data
    with pytest.raises(QsError, match="finite"):
        bookkit.table([{"x": float("nan")}], "bad", "Bad.")


def test_figure_png_is_byte_identical(kit):
    bookkit, results = kit
    import matplotlib.pyplot as plt

    images = []
    for _ in range(2):
        fig, ax = plt.subplots()
        ax.plot([1, 2, 3], [3, 1, 2])
        assert bookkit.save_figure(fig, "demo") is None  # a cell ending in it shows no path
        images.append((results / "demo.png").read_bytes())
    assert images[0] == images[1] and images[0].startswith(b"\x89PNG")
    assert b"Software" not in images[0] and b"matplotlib" not in images[0]


def test_provenance_text_names_set_hash_commit(kit):
    bookkit, _ = kit
    text = bookkit.provenance_text()
    assert "default" in text and "0123456789ab" in text and "abc1234" in text


# --------------------------------------------------------------------------- whole book


def _pages(html: Path) -> list[Path]:
    return sorted(p for p in html.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts)


def _text(soup: BeautifulSoup) -> str:
    for tag in soup(["script", "style", "noscript"]):
        tag.decompose()
    return soup.get_text(" ")


@pytest.mark.book
def test_every_toc_chapter_is_built(built_book: BuiltBook, toc_chapter_names):
    intro = BeautifulSoup((built_book.html / "intro.html").read_text(encoding="utf-8"), "html.parser")
    nav_links = {a.get("href", "") for a in intro.select("nav a")}
    for name in toc_chapter_names:
        page = built_book.html / "chapters" / f"{name}.html"
        assert page.is_file(), f"{name} was not built"
        assert any(href.endswith(f"chapters/{name}.html") for href in nav_links), f"{name} is not in the navigation"
        text = page.read_text(encoding="utf-8")
        assert "How this page was built" in text, f"{name} has no provenance banner"
        assert built_book.params.hash in text


@pytest.mark.book
def test_images_and_local_links_resolve(built_book: BuiltBook):
    html = built_book.html
    checked_images = 0
    for page in _pages(html):
        soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
        for img in soup.find_all("img"):
            src = img.get("src", "")
            assert src and not src.startswith(("http:", "https:", "//")), f"{page.name}: external image {src!r}"
            if src.startswith("data:"):
                continue
            target = (page.parent / unquote(urlsplit(src).path)).resolve()
            assert target.is_file() and target.stat().st_size > 0, f"{page.relative_to(html)}: missing image {src}"
            checked_images += 1
        for a in soup.find_all("a", href=True):
            href = a["href"]
            parts = urlsplit(href)
            if parts.scheme or href.startswith(("#", "//", "mailto:")) or not parts.path:
                continue
            target = (page.parent / unquote(parts.path)).resolve()
            assert target.exists(), f"{page.relative_to(html)}: broken link {href}"
    assert checked_images > 0, "the book has no images at all"


@pytest.mark.book
def test_pages_hold_no_nan_inf_traceback_or_raw_glue(built_book: BuiltBook):
    problems = []
    for page in _pages(built_book.html):
        raw = page.read_text(encoding="utf-8")
        soup = BeautifulSoup(raw, "html.parser")
        if soup.select(".output.stderr, .output.traceback, .output.error"):
            problems.append(f"{page.name}: a cell wrote to stderr or raised")
        text = _text(soup)
        for match in BAD_WORDS.finditer(text):
            problems.append(f"{page.name}: {match.group(0)!r} in ...{text[max(0, match.start() - 40):match.end() + 40]!r}")
        for token in LEAKED:
            if token in text:
                problems.append(f"{page.name}: {token!r}")
    assert not problems, "\n".join(problems)


@pytest.mark.book
def test_results_json_and_csvs(built_book: BuiltBook, toc_chapter_names):
    results = built_book.results
    raw = (results / "results.json").read_text(encoding="utf-8")
    data = json.loads(raw, parse_constant=lambda c: pytest.fail(f"results.json holds {c}"))
    assert data, "no glued values"
    assert list(data) == sorted(data)
    for key in data:
        chapter, _, name = key.partition(".")
        assert chapter in toc_chapter_names and name, key
    volatile = json.loads((results / "volatile.json").read_text(encoding="utf-8"))
    assert not set(volatile["values"]) & set(data), "a value is both stable and volatile"
    for table in volatile["tables"]:
        assert (results / table).is_file(), f"volatile table {table} missing"
    params = json.loads((results / "params.json").read_text(encoding="utf-8"))
    assert params["hash"] == built_book.params.hash and params["name"] == built_book.params.name
    for chapter in toc_chapter_names:
        for csv_file in (built_book.build_dir / "results" / chapter).glob("*.csv"):
            copied = results / csv_file.name
            assert copied.read_bytes() == csv_file.read_bytes()
            assert not re.search(r"(?i)\b(nan|inf)\b", copied.read_text())


#: Chapters the variant build leaves out: the validation chapter fits and judges the serving model
#: on the measurements, each row in its own setup, so the book's GPU count does not enter its fit
#: (and its refits are most of a build's time; the default build and the rebuild check run it).
VARIANT_SKIPS = ("11-validation",)


@pytest.fixture(scope="module")
def variant_book(tmp_path_factory, toc_chapter_names) -> BuiltBook:
    """The book built from a second parameter file (fewer GPUs), without :data:`VARIANT_SKIPS`."""
    folder = tmp_path_factory.mktemp("book-variant")
    data = yaml.safe_load(DEFAULT_PARAMS_PATH.read_text(encoding="utf-8"))
    data["name"] = "variant"
    data["gpus"] = data["gpus"] // 2
    path = folder / "variant.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return build(load_params(path), folder / "out", [name for name in toc_chapter_names if name not in VARIANT_SKIPS])


@pytest.mark.book
def test_other_parameter_set_changes_the_results(built_book: BuiltBook, variant_book: BuiltBook, toc_chapter_names):
    assert variant_book.html == variant_book.out_root / "variant" / "html"
    base = json.loads((built_book.results / "results.json").read_text())
    other = json.loads((variant_book.results / "results.json").read_text())
    common = set(base) & set(other)
    assert common, "the two builds glue no value in common"
    # a chapter may glue some values only when they exist (e.g. only for a feasible
    # deployment), so the key sets may differ; the values they share must not all agree
    differing = sorted(k for k in common if base[k] != other[k])
    assert differing, "halving the GPUs changed no glued value"
    params = json.loads((variant_book.results / "params.json").read_text())
    assert params["values"]["gpus"] == built_book.params.values["gpus"] // 2
    for name in toc_chapter_names:
        page = variant_book.html / "chapters" / f"{name}.html"
        assert page.exists() != (name in VARIANT_SKIPS), f"{name}: built or left out against VARIANT_SKIPS"
        if name not in VARIANT_SKIPS:
            text = page.read_text(encoding="utf-8")
            assert "variant" in text and variant_book.params.hash in text, f"{name}: banner does not name the variant set"


@pytest.mark.book
def test_same_parameters_give_identical_results(built_book: BuiltBook, tmp_path, toc_chapter_names):
    from qsmoe.book.build import build_book

    again = build(load_params(), tmp_path / "again")

    def snapshot(book: BuiltBook) -> dict[str, bytes]:
        """Every result file except those holding build-time measurements."""
        volatile = json.loads((book.results / "volatile.json").read_text(encoding="utf-8"))
        skip = {"volatile.json", *volatile["tables"]}
        return {p.name: p.read_bytes() for p in sorted(book.results.iterdir()) if p.name not in skip}

    first = snapshot(built_book)
    assert snapshot(again) == first
    # rerunning one chapter leaves everything in place
    build_book(load_params(), again.out_root, chapters=[toc_chapter_names[0]])
    assert snapshot(again) == first


# --------------------------------------------------------------------------- failures


def _fake_repo(tmp_path: Path, chapter_body: str) -> Path:
    repo = tmp_path / "repo"
    (repo / "chapters").mkdir(parents=True)
    for name in ("_config.yml", "references.bib"):
        shutil.copy(REPO_ROOT / name, repo / name)
    (repo / "book").mkdir()
    (repo / "book" / "intro.md").write_text("# Intro\n\nA test book.\n", encoding="utf-8")
    (repo / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: chapters/99-broken\n", encoding="utf-8"
    )
    header = (REPO_ROOT / "chapters").glob("*.md").__next__().read_text(encoding="utf-8").split("---", 2)[1]
    params = "\n".join(f"{k} = {v!r}" for k, v in {**load_params().papermill_parameters(), "git_commit": "x", "results_dir": "r"}.items())
    text = (
        f"---{header}---\n\n(ch-broken)=\n# Broken\n\n"
        f"```{{code-cell}} ipython3\n:tags: [parameters]\n\n{params}\n```\n\n{chapter_body}"
    )
    (repo / "chapters" / "99-broken.md").write_text(text, encoding="utf-8")
    return repo


@pytest.mark.book
def test_failing_cell_is_reported_in_one_line(tmp_path):
    from qsmoe.book.build import build_book

    body = (
        "```{code-cell} ipython3\nfrom qsmoe.book import kit as bookkit\n"
        "bookkit.setup(results_dir, param_set_name, param_set_hash, git_commit)\n```\n\n"
        "```{code-cell} ipython3\n# divide by zero on purpose\nratio = params['gpus'] / (params['gpus'] - params['gpus'])\n```\n"
    )
    repo = _fake_repo(tmp_path, body)
    with pytest.raises(QsError) as exc:
        build_book(resolve(), tmp_path / "out", repo_root=repo)
    message = str(exc.value)
    assert "\n" not in message and "Traceback" not in message
    assert "99-broken" in message
    assert "cell 4" in message and "# divide by zero on purpose" in message
    assert "ZeroDivisionError: division by zero" in message


@pytest.mark.book
def test_unresolved_glue_fails_the_build(tmp_path):
    from qsmoe.book.build import build_book

    body = (
        "```{code-cell} ipython3\nfrom qsmoe.book import kit as bookkit\n"
        "bookkit.setup(results_dir, param_set_name, param_set_hash, git_commit)\n"
        "bookkit.glue('known', 1)\n```\n\nValue {glue}`unknown_key`.\n"
    )
    repo = _fake_repo(tmp_path, body)
    with pytest.raises(QsError, match="jupyter-book build failed.*unknown_key"):
        build_book(resolve(), tmp_path / "out", repo_root=repo)
    # the failed build is not cached: an unchanged rebuild fails again
    with pytest.raises(QsError, match="unknown_key"):
        build_book(resolve(), tmp_path / "out", repo_root=repo)
