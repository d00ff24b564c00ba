"""The built book in a real browser: navigation, images and search.

Serves the session's built book on 127.0.0.1 and drives the Debian Chromium at
/usr/bin/chromium through Playwright (never a downloaded browser). Requests to
any other host are blocked, so the test also shows the book works offline.
"""
from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="/usr/bin/chromium is absent (install it with: apt-get install -y chromium; `make test` does)",
    ),
]


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


@pytest.fixture(scope="module")
def server(built_book):
    handler = functools.partial(_QuietHandler, directory=str(built_book.html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser_page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            external: list[str] = []

            def route(route_obj):
                url = route_obj.request.url
                if url.startswith(server) or url.startswith("data:") or url.startswith("blob:"):
                    route_obj.continue_()
                else:
                    external.append(url)
                    route_obj.abort()

            context.route("**/*", route)
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.set_default_timeout(20_000)
            yield page, external, errors
        finally:
            browser.close()


def _broken_images(page) -> list[str]:
    page.wait_for_load_state("load")
    return page.evaluate(
        """() => Array.from(document.images)
                 .filter(img => !(img.complete && img.naturalWidth > 0))
                 .map(img => img.getAttribute('src'))"""
    )


def test_navigate_every_chapter(browser_page, server, toc_chapter_names):
    page, _external, errors = browser_page
    page.goto(server + "index.html")
    page.wait_for_url("**/intro.html")  # index.html redirects to the root page
    assert "qs Inequality" in page.title()

    links = page.eval_on_selector_all(
        "nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.getAttribute('href'))"
    )
    urls = []
    for href in links:
        url = urljoin(page.url, href).split("#")[0]
        if url not in urls:
            urls.append(url)
    chapters_seen = set()
    problems = []
    for url in urls:
        response = page.goto(url)
        assert response is not None and response.ok, f"{url}: HTTP {response.status if response else 'no response'}"
        path = urlsplit(url).path
        if path.startswith("/chapters/"):
            chapters_seen.add(Path(path).stem)
            assert page.locator("text=How this page was built").count() >= 1, f"{url}: no provenance banner"
        broken = _broken_images(page)
        if broken:
            problems.append(f"{url}: images not displayed: {broken}")
    assert not problems, "\n".join(problems)
    missing = sorted(set(toc_chapter_names) - chapters_seen)
    assert not missing, f"chapters not reachable from the navigation: {missing}"
    assert not errors, f"JavaScript errors: {errors}"


def test_next_links_walk_the_whole_book(browser_page, server, toc_chapter_names):
    """Following 'next' from the landing page visits every chapter in order."""
    page, _external, _errors = browser_page
    page.goto(server + "intro.html")
    visited = []
    for _ in range(len(toc_chapter_names) + 5):
        nxt = page.locator("a.right-next")
        if nxt.count() == 0:
            break
        nxt.first.click()
        page.wait_for_load_state("load")
        path = urlsplit(page.url).path
        if path.startswith("/chapters/"):
            visited.append(Path(path).stem)
    assert visited == list(toc_chapter_names)


def test_search_finds_the_inequality(browser_page, server):
    page, _external, errors = browser_page
    page.goto(server + "search.html?q=qs+inequality")
    page.wait_for_selector("#search-results ul.search li", timeout=30_000)
    hits = page.locator("#search-results ul.search li").count()
    assert hits > 0, "search for 'qs inequality' found nothing"
    assert not errors, f"JavaScript errors: {errors}"


#: Pages may fetch nothing from elsewhere: MathJax is served from the book's own _static/.
ALLOWED_EXTERNAL: tuple[str, ...] = ()


def test_pages_fetch_nothing_else_from_the_network(browser_page):
    """Runs after the tests above, which visited every page with outside requests blocked."""
    _page, external, _errors = browser_page
    unexpected = sorted({url for url in external if not url.startswith(ALLOWED_EXTERNAL)})
    assert not unexpected, f"pages request outside resources: {unexpected}"


def test_formulas_are_typeset_offline(browser_page, server):
    """MathJax comes from the book itself, so formulas typeset with the network blocked."""
    page, _external, errors = browser_page
    page.goto(server + "chapters/06-qs-inequality.html")
    page.wait_for_selector("mjx-container", timeout=30_000)
    assert page.locator("mjx-container").count() > 5
    assert not errors, f"JavaScript errors: {errors}"


# ----------------------------------------------------------------------------- reading the book

#: Widths a reviewer reads the book at: a desktop window and a phone.
READING_WIDTHS = (1400, 400)

#: For every table, figure and table caption of the page's article: does it stick out of the
#: article's column, other than inside a horizontally scrolling container that itself stays
#: in the column; is a caption wider than its own box (cut)?
_LAYOUT_JS = """() => {
  const col = document.querySelector('article.bd-article');
  if (!col) return ['no article column'];
  const c = col.getBoundingClientRect();
  const out = (r) => r.right > c.right + 1 || r.left < c.left - 1;
  const scroller = (el) => {
    for (let p = el.parentElement; p && p !== col; p = p.parentElement) {
      const s = getComputedStyle(p);
      if (s.overflowX === 'auto' || s.overflowX === 'scroll') return p;
    }
    return null;
  };
  const name = (el) => el.id || el.getAttribute('src') || el.textContent.trim().slice(0, 60);
  const problems = [];
  for (const el of col.querySelectorAll('table, img, figure')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0) continue;
    if (!out(r)) continue;
    const box = scroller(el);
    if (!box) problems.push(`${el.tagName.toLowerCase()} ${name(el)} overflows the column (${Math.round(r.width)} px in ${Math.round(c.width)} px) with no scroll container`);
    else if (out(box.getBoundingClientRect())) problems.push(`the scroll container of ${name(el)} overflows the column`);
  }
  for (const cap of col.querySelectorAll('caption, .qs-table-caption, figcaption')) {
    const r = cap.getBoundingClientRect();
    if (r.width === 0) continue;
    if (out(r) || cap.scrollWidth > cap.clientWidth + 1) problems.push(`caption cut: ${name(cap)}`);
  }
  return problems;
}"""


def _book_pages(page, server) -> list[str]:
    page.goto(server + "intro.html")
    hrefs = page.eval_on_selector_all("nav.bd-docs-nav a.reference.internal", "els => els.map(e => e.getAttribute('href'))")
    urls = [server + "intro.html"]
    for href in hrefs:
        url = urljoin(page.url, href).split("#")[0]
        if url not in urls:
            urls.append(url)
    return urls


def test_tables_figures_and_captions_fit_the_column(browser_page, server):
    """At a desktop and a phone width nothing sticks out of the text column except a table in
    its scroll container, and no caption is cut (captions sit outside the scrolling area)."""
    page, _external, errors = browser_page
    urls = _book_pages(page, server)
    problems = []
    wide_tables = 0
    try:
        for width in READING_WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            for url in urls:
                page.goto(url)
                page.wait_for_load_state("load")
                for problem in page.evaluate(_LAYOUT_JS):
                    problems.append(f"{width} px {urlsplit(url).path}: {problem}")
                # a caption left inside a scrolling container would scroll away with a wide table
                inside = page.locator(".pst-scrollable-table-container caption").count()
                if inside:
                    problems.append(f"{width} px {urlsplit(url).path}: {inside} captions inside a scrolling container")
                wide_tables += page.locator(".pst-scrollable-table-container.qs-overflows").count()
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})
    assert not problems, "\n".join(problems)
    assert wide_tables > 0, "no table is wider than the column at any width: the check above checked nothing"
    assert not errors, f"JavaScript errors: {errors}"


def test_no_result_table_hides_behind_a_toggle(browser_page, server):
    page, _external, _errors = browser_page
    hidden = []
    for url in _book_pages(page, server):
        page.goto(url)
        for cell in page.locator(".cell.tag_hide-output, .cell.tag_hide-cell, details.toggle-details").all():
            if cell.locator("table").count():
                hidden.append(urlsplit(url).path)
    assert not hidden, f"tables behind a toggle on: {sorted(set(hidden))}"


def test_every_download_link_resolves(browser_page, server, built_book):
    """Every link to a file of the book (CSV, results, notebooks, the source archive and wheel)
    answers 200, and the shipped files are the ones source.json describes."""
    import hashlib
    import json

    page, _external, _errors = browser_page
    targets: dict[str, str] = {}
    for url in _book_pages(page, server):
        page.goto(url)
        hrefs = page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
        for href in hrefs:
            target = href.split("#")[0]
            if target.startswith(server) and not target.endswith((".html", "/")):
                targets.setdefault(target, url)
    broken = []
    for target, where in sorted(targets.items()):
        response = page.request.get(target)
        if not response.ok:
            broken.append(f"{urlsplit(where).path} links {urlsplit(target).path}: HTTP {response.status}")
    assert not broken, "\n".join(broken)
    kinds = {Path(urlsplit(t).path).suffix for t in targets}
    assert {".csv", ".json", ".ipynb", ".gz", ".whl"} <= kinds, f"download links found only for {sorted(kinds)}"
    manifest = json.loads(page.request.get(server + "_static/source/source.json").text())
    for name, record in manifest.items():
        if isinstance(record, dict):
            body = page.request.get(server + f"_static/source/{name}").body()
            assert hashlib.sha256(body).hexdigest() == record["sha256"], f"{name} is not the file source.json describes"


def test_landing_page_gives_the_results(browser_page, server, built_book):
    """The landing page shows the glued headline (as results.json has it) and the models table."""
    import json

    page, _external, _errors = browser_page
    results = json.loads((built_book.results / "results.json").read_text(encoding="utf-8"))
    page.goto(server + "index.html")
    page.wait_for_url("**/intro.html")
    section = page.locator("section#results-at-a-glance")
    text = section.inner_text()
    assert f"{results['00-at-a-glance.headline_ratio']:.2f}x" in text
    for key in ("headline_model", "headline_verdict", "band_text", "headline_conditions"):
        assert str(results[f"00-at-a-glance.{key}"]) in text, f"the landing page lacks {key}"
    table = section.locator("table#glance-models")
    assert table.count() == 1, "no models table on the landing page"
    header = table.locator("thead th").all_inner_texts()
    assert header[:6] == ["model", "total (B)", "active (B)", "s", "q", "q·s"], header
    assert sum(h.startswith("dense/MoE") for h in header) >= 2 and header[-1] == "cannot be placed"
    assert table.locator("tbody tr").count() == len(built_book.params.values["models"])
    ledger = section.locator("a[href*='09-claims-ledger']")
    assert ledger.count() >= 1, "no link into the claims ledger"
