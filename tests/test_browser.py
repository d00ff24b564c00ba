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
