"""The built book, checked in a real browser with the network blocked.

The session builds the book once (``jupyter-book build <root> --all -W --keep-going``,
which executes every chapter in its ``book`` profile), serves ``_build/html`` on
127.0.0.1 and opens every page of the table of contents in headless Chromium (Debian's
``chromium``, driven by Playwright) while a route handler aborts every request that is
not for 127.0.0.1. For each page it asserts: no console or page errors, no failed local
requests, no request that tried to leave the machine, every altair chart rendered (an
SVG or canvas whose scenegraph holds data marks) no wider than the text column at a
1280-px window, no code or output block and no unfolded table that scrolls sideways
there (wide tables take the page's full width: the cell tag ``full-width``), tooltips that appear
on hover, bound selectors that exist, formulas typeset by the shipped MathJax, and a table
on every chapter page. A full-page screenshot of each page goes to ``test-artifacts/``.

Environment:

* ``SEQNB_BOOK_ROOT`` — book to check (a directory with ``_config.yml`` and ``_toc.yml``);
  defaults to the repository root. Pages are read from that book's ``_toc.yml``.
* ``SEQNB_BOOK_BUILT=1`` — do not build; use the existing ``<root>/_build/html``.
* ``SEQNB_CHROMIUM`` — Chromium executable (default ``/usr/bin/chromium``).
* ``CI=true`` — a missing Chromium or Playwright fails instead of skipping.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
NOTEBOOK_SUFFIXES = (".py", ".ipynb")
BUILD_TIMEOUT_S = 3600
CHART_TIMEOUT_MS = 60_000
# A code block of a page holds 75 monospace characters at a 1280-px window (measured in
# Chromium with the book's theme); a longer line makes the reader scroll sideways.
CODE_COLUMN = 75


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(message: str) -> None:
    """A missing browser fails the test in CI and skips it on a developer's machine."""
    if _in_ci():
        pytest.fail(message + " (CI=true: the browser check is required)")
    pytest.skip(message)


def book_root() -> Path:
    return Path(os.environ.get("SEQNB_BOOK_ROOT", REPO)).resolve()


def toc_docnames(root: Path) -> list[str]:
    """Every document of ``<root>/_toc.yml`` (root first), as Sphinx docnames."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    names = [toc["root"]]

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                names.append(str(node["file"]))
            for key in ("parts", "chapters", "sections"):
                for child in node.get(key) or []:
                    walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk({k: v for k, v in toc.items() if k in ("parts", "chapters", "sections")})
    return [re.sub(r"\.(md|py|ipynb|rst)$", "", name) for name in names]


def is_chapter(root: Path, docname: str) -> bool:
    """Chapters are the executable notebooks (jupytext ``.py`` or ``.ipynb``)."""
    return any((root / f"{docname}{suffix}").is_file() for suffix in NOTEBOOK_SUFFIXES)


def _load_offline_vega():
    path = REPO / "book" / "_ext" / "offline_vega.py"
    spec = importlib.util.spec_from_file_location("offline_vega", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PAGES = toc_docnames(book_root())


# ----------------------------------------------------------------------------------------
# building and serving
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def fresh_artifacts() -> None:
    """Screenshots of this session only: drop those left by an earlier run."""
    ARTIFACTS.mkdir(exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()


@pytest.fixture(scope="session")
def built_html() -> Path:
    root = book_root()
    html = root / "_build" / "html"
    if os.environ.get("SEQNB_BOOK_BUILT") == "1":
        if not (html / "index.html").is_file():
            pytest.fail(
                f"SEQNB_BOOK_BUILT=1 but {html}/index.html does not exist; build the "
                "book first (make book)"
            )
        return html
    cmd = [
        sys.executable,
        "-c",
        "from jupyter_book.cli.main import main; main()",
        "build",
        str(root),
        "--all",
        "-W",
        "--keep-going",
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    elapsed = time.monotonic() - start
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "book-build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(
            f"book build failed (exit {proc.returncode}, {elapsed:.0f}s); "
            f"log in {ARTIFACTS / 'book-build.log'}:\n" + (proc.stdout + proc.stderr)[-6000:]
        )
    print(f"book built in {elapsed:.0f}s")
    return html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture(scope="session")
def server(built_html: Path) -> Iterator[str]:
    handler = functools.partial(_QuietHandler, directory=str(built_html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(scope="session")
def chromium_path() -> str:
    candidates = [
        os.environ.get("SEQNB_CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    _unavailable(
        "Chromium is not installed: apt-get install -y chromium chromium-driver "
        "(make test does this when run as root), or set SEQNB_CHROMIUM"
    )
    raise AssertionError("unreachable")


# Wraps window.vegaEmbed as soon as the UMD bundle defines it, so that the test can read
# every chart's vega View (works for the canvas and the SVG renderer alike).
_RECORD_VIEWS = """
(() => {
  window.__seqnbCharts = [];
  let wrapped;
  Object.defineProperty(window, 'vegaEmbed', {
    configurable: true,
    get() { return wrapped; },
    set(embed) {
      wrapped = function (el, spec, opts) {
        return embed(el, spec, opts).then((result) => {
          const node = typeof el === 'string' ? document.querySelector(el) : el;
          window.__seqnbCharts.push({id: node ? node.id : String(el), view: result.view,
                                     spec: result.spec});
          return result;
        });
      };
      Object.assign(wrapped, embed);
    },
  });
})();
"""

# Summarise each rendered chart: renderer element, number of data-mark items, the centre
# of one item that carries a tooltip (relative to the svg/canvas), bound inputs.
_SUMMARISE = """
() => window.__seqnbCharts.map(({id, view, spec}) => {
  const container = view.container() || document.getElementById(id);
  const surface = container ? (container.querySelector(
    '.chart-wrapper > canvas, .chart-wrapper > svg') || container.querySelector('canvas, svg')) : null;
  let marks = 0, tooltip = null;
  const preferred = new Set(['symbol', 'rect', 'arc', 'area', 'shape', 'path', 'image']);
  function walk(mark, ox, oy) {
    for (const item of mark.items || []) {
      if (mark.marktype === 'group') {
        for (const child of item.items || []) walk(child, ox + (item.x || 0), oy + (item.y || 0));
      } else if (mark.role === 'mark') {
        marks += 1;
        const big = item.bounds && (item.bounds.x2 - item.bounds.x1) >= 3 &&
                    (item.bounds.y2 - item.bounds.y1) >= 3;  // a zero-height bar can't be hovered
        if (item.tooltip != null && big && (tooltip === null ||
            (!preferred.has(tooltip.type) && preferred.has(mark.marktype)))) {
          const b = item.bounds;
          tooltip = {type: mark.marktype, x: ox + (b.x1 + b.x2) / 2, y: oy + (b.y1 + b.y2) / 2};
        }
      }
    }
  }
  walk(view.scenegraph().root, 0, 0);
  let hover = null;
  if (tooltip && surface) {
    // the renderer translates the scenegraph by the view's origin plus its padding
    const [ox, oy] = view.origin();
    const pad = view.padding();
    hover = {dx: pad.left + ox + tooltip.x, dy: pad.top + oy + tooltip.y};
  }
  const rect = surface ? surface.getBoundingClientRect() : null;
  return {
    id, marks, hover,
    surface: surface ? surface.tagName.toLowerCase() : null,
    width: rect ? rect.width : 0, height: rect ? rect.height : 0,
    bindsExpected: JSON.stringify(spec || {}).includes('"bind"'),
    bindings: container ? container.querySelectorAll(
      '.vega-bindings input, .vega-bindings select').length : 0,
  };
})
"""


@pytest.fixture(scope="session")
def browser_context(chromium_path: str, tmp_path_factory: pytest.TempPathFactory):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed: pip install -e '.[dev]'")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile),
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_FLAGS,
            chromium_sandbox=False,
            viewport={"width": 1280, "height": 900},
        )
        context.add_init_script(_RECORD_VIEWS)
        try:
            yield context
        finally:
            context.close()


def _is_local(url: str) -> bool:
    parsed = urlparse(url)
    return parsed.scheme in {"data", "blob", "about"} or parsed.hostname == "127.0.0.1"


# ----------------------------------------------------------------------------------------
# tests
# ----------------------------------------------------------------------------------------


def test_toc_lists_pages() -> None:
    root = book_root()
    assert PAGES, f"no pages in {root / '_toc.yml'}"
    missing = [
        d
        for d in PAGES
        if not any((root / f"{d}{s}").is_file() for s in (".md", *NOTEBOOK_SUFFIXES))
    ]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


REMOVED_INPUT = {"remove-input", "remove-cell"}  # cells whose code the page does not show


def _shown_code(path: Path) -> list[str]:
    """The lines a page shows as code: a chapter's code cells (jupytext), or the fenced
    blocks of a Markdown page, without the cells tagged to hide their input."""
    if path.suffix in NOTEBOOK_SUFFIXES:
        import jupytext

        cells = [c for c in jupytext.read(path).cells if c.cell_type == "code"]
        return [line for c in cells if not REMOVED_INPUT & set(c.metadata.get("tags", []))
                for line in c.source.splitlines()]
    lines: list[str] = []
    block: list[str] | None = None
    fence = ""
    for line in path.read_text().splitlines():
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if block is None and marker:
            block, fence = [], marker.group(1)
        elif block is not None and line.strip() == fence:
            tags = {t for opt in block if opt.startswith(":tags:")
                    for t in re.findall(r"[\w-]+", opt.partition(":tags:")[2])}
            if not REMOVED_INPUT & tags:
                lines += [x for x in block if not re.match(r":\w+:", x)]
            block = None
        elif block is not None:
            block.append(line)
    return lines


def test_shown_code_fits_the_page() -> None:
    """No code line a page shows is wider than its code block (see CODE_COLUMN); the
    browser test checks the rendered blocks themselves."""
    root = book_root()
    too_long = []
    for docname in PAGES:
        path = next(root / f"{docname}{suffix}" for suffix in (".md", *NOTEBOOK_SUFFIXES)
                    if (root / f"{docname}{suffix}").is_file())
        too_long += [f"{path.relative_to(root)}: {len(line)} chars: {line.strip()[:60]}"
                     for line in _shown_code(path) if len(line) > CODE_COLUMN]
    assert not too_long, (f"{len(too_long)} code lines longer than {CODE_COLUMN} characters:\n"
                          + "\n".join(too_long))


def test_version_prefix_rule() -> None:
    ov = _load_offline_vega()
    assert ov.satisfies("6.4.0", "6")
    assert ov.satisfies("6.4.1", "6.4.1")
    assert not ov.satisfies("6.4.0", "6.4.1")
    assert not ov.satisfies("16.0.0", "6")
    shipped = ov.shipped_versions()
    assert set(shipped) >= {"vega", "vega-lite", "vega-embed", "mathjax"}


def test_vendored_files_match_their_checksums() -> None:
    """book/_static holds exactly the npm files scripts/fetch_vega.sh recorded."""
    import hashlib

    ov = _load_offline_vega()
    lines = (ov.VEGA_DIR / "VERSIONS").read_text().splitlines()
    sums = dict(
        reversed(line.split()) for line in lines if re.fullmatch(r"[0-9a-f]{64}\s+\S+", line)
    )
    assert len(sums) == 4, sums
    for relative, digest in sums.items():
        data = (ov.STATIC_DIR / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, relative


def test_shipped_vega_matches_altair() -> None:
    """The committed JavaScript satisfies what the installed altair asks for."""
    from altair.vegalite.v6 import display

    ov = _load_offline_vega()
    shipped = ov.shipped_versions()
    assert ov.satisfies(shipped["vega"], display.VEGA_VERSION)
    assert ov.satisfies(shipped["vega-lite"], display.VEGALITE_VERSION)
    assert ov.satisfies(shipped["vega-embed"], display.VEGAEMBED_VERSION)
    for lib in ("vega", "vega-lite", "vega-embed"):
        text = (ov.VEGA_DIR / f"{lib}.min.js").read_text()
        assert len(text) > 10_000, lib


@pytest.mark.slow
def test_built_book_has_no_remote_assets(built_html: Path) -> None:
    ov = _load_offline_vega()
    for lib in ("vega", "vega-lite", "vega-embed"):
        assert (built_html / "_static" / "vega" / f"{lib}.min.js").is_file()
    assert (built_html / "_static" / "mathjax" / "tex-chtml-full.js").is_file()
    assert ov.remote_references(built_html) == {}


@pytest.mark.slow
def test_every_toc_page_was_built(built_html: Path) -> None:
    missing = [d for d in PAGES if not (built_html / f"{d}.html").is_file()]
    assert not missing, f"pages missing from {built_html}: {missing}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("docname", PAGES)
def test_page_in_browser(docname: str, built_html: Path, server: str, browser_context) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    root = book_root()
    html_file = built_html / f"{docname}.html"
    static_html = html_file.read_text()
    expected_charts = len(set(re.findall(r'id="(altair-viz-[^"]+)"', static_html)))
    has_math = 'class="math' in static_html

    console_errors: list[str] = []
    failed_local: list[str] = []
    blocked: list[str] = []

    def route(route_) -> None:
        if _is_local(route_.request.url):
            route_.continue_()
        else:
            blocked.append(route_.request.url)
            route_.abort()

    page = browser_context.new_page()
    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.on("pageerror", lambda e: console_errors.append(f"uncaught: {e}"))
    page.on(
        "requestfailed",
        lambda r: _is_local(r.url) and failed_local.append(f"{r.url} ({r.failure})"),
    )
    page.on(
        "response",
        lambda r: (
            r.status >= 400
            and _is_local(r.url)
            and failed_local.append(f"{r.url} (HTTP {r.status})")
        ),
    )
    try:
        page.goto(f"{server}/{docname}.html", wait_until="load")
        if expected_charts:
            with contextlib.suppress(PlaywrightTimeout):  # reported below with the details
                page.wait_for_function(
                    f"() => (window.__seqnbCharts || []).length >= {expected_charts}",
                    timeout=CHART_TIMEOUT_MS,
                )
        mathjax_loaded = True
        if has_math:
            try:
                page.wait_for_function(
                    "() => window.MathJax && MathJax.startup && MathJax.startup.promise",
                    timeout=CHART_TIMEOUT_MS,
                )
                page.evaluate("() => MathJax.startup.promise")
            except PlaywrightTimeout:
                mathjax_loaded = False
        page.wait_for_timeout(300)  # let late paints and console messages arrive

        charts = page.evaluate(_SUMMARISE) if expected_charts else []
        # the text column's width, read from its first paragraph (charts must fit in it)
        column = page.evaluate(
            "() => { const p = document.querySelector('article.bd-article p, main p');"
            " return p ? p.getBoundingClientRect().width : 0; }"
        )
        wide_code = page.evaluate(
            "() => Array.from(document.querySelectorAll('main pre'))"
            ".filter(p => p.scrollWidth > p.clientWidth + 1).length"
        )
        # tables in view that make their block scroll sideways (the folded raw tables of the
        # performance page, 12-16 columns, may: a reader opens them to search, not to read)
        wide_tables = page.evaluate(
            "() => Array.from(document.querySelectorAll('main table'))"
            ".filter(t => !t.closest('details')).filter(t => {"
            " for (let e = t.parentElement; e && e.tagName !== 'MAIN'; e = e.parentElement)"
            "  if (e.scrollWidth > e.clientWidth + 1"
            "      && getComputedStyle(e).overflowX !== 'visible') return true;"
            " return false; })"
            ".map(t => (t.querySelector('caption') || {textContent: ''}).textContent"
            ".slice(0, 60))"
        )
        # $...$ left as text: math that a cell printed but no parser turned into a formula
        raw_math = page.evaluate(
            "() => Array.from(document.querySelectorAll("
            "'main p, main li, main td, main th, main caption'))"
            ".filter(e => !e.closest('pre, code, .highlight'))"
            r".map(e => e.innerText).filter(t => /\$[^$\s][^$]*\$/.test(t))"
            ".map(t => t.slice(0, 80))"
        )
        dom_charts = page.locator('div[id^="altair-viz-"]').count()
        tables = page.locator("main table").count()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{docname.replace('/', '__')}.png"), full_page=True)

        # tooltips: hover the first item that carries one, on the first chart that has it
        tooltip_checked = None
        for chart in charts:
            if chart["hover"]:
                surface = page.locator(f"#{chart['id']} .chart-wrapper > :is(svg, canvas)").first
                surface.scroll_into_view_if_needed()
                box = surface.bounding_box()
                if box is None:  # hidden (e.g. in a collapsed cell): nothing to hover
                    continue
                page.mouse.move(box["x"] + chart["hover"]["dx"], box["y"] + chart["hover"]["dy"])
                try:
                    page.wait_for_selector("#vg-tooltip-element.visible", timeout=5000)
                    tooltip_checked = page.locator("#vg-tooltip-element").inner_text()
                except PlaywrightTimeout:
                    tooltip_checked = ""
                page.mouse.move(0, 0)
                break

        # selectors: switch the first bound drop-down to another option
        selector_changed = None
        select = page.locator(".vega-bindings select").first
        if page.locator(".vega-bindings select").count() and select.is_visible():
            options = select.locator("option").all_inner_texts()
            if len(options) > 1:
                select.select_option(label=options[-1])
                page.wait_for_timeout(300)
                selector_changed = (
                    select.input_value() == options[-1]
                    or select.evaluate("e => e.options[e.selectedIndex].text") == options[-1]
                )

        problems: list[str] = []
        if console_errors:
            problems.append(f"console errors: {console_errors}")
        if failed_local:
            problems.append(f"failed local requests: {failed_local}")
        if blocked:
            problems.append(f"requests that tried to leave the machine: {blocked}")
        if dom_charts != expected_charts:
            problems.append(
                f"{dom_charts} chart containers in the page, {expected_charts} in the HTML"
            )
        if len(charts) != expected_charts:
            problems.append(f"only {len(charts)} of {expected_charts} charts were embedded")
        for chart in charts:
            if chart["surface"] not in {"svg", "canvas"} or not chart["width"]:
                problems.append(f"chart {chart['id']} has no rendered svg/canvas: {chart}")
            elif chart["marks"] == 0:
                problems.append(f"chart {chart['id']} rendered no data marks")
            if column and chart["width"] > column + 1:
                problems.append(
                    f"chart {chart['id']} is {chart['width']:.0f} px wide, wider than the "
                    f"page column ({column:.0f} px at a 1280-px window)"
                )
            if chart["bindsExpected"] and chart["bindings"] == 0:
                problems.append(f"chart {chart['id']} lost its bound selector(s)")
        if wide_code:
            problems.append(f"{wide_code} code or output blocks scroll sideways at a "
                            "1280-px window")
        if wide_tables:
            problems.append(f"tables scroll sideways at a 1280-px window: {wide_tables}")
        if tooltip_checked == "":
            problems.append("hovering a mark with a tooltip showed no tooltip")
        if selector_changed is False:
            problems.append("a bound drop-down did not take a new value")
        if raw_math:
            problems.append(f"formulas shown as raw $...$ text: {raw_math}")
        if not mathjax_loaded:
            problems.append("page has formulas but MathJax did not load")
        elif has_math:
            typeset = page.locator("mjx-container").count()
            errors = page.locator("mjx-merror").count()
            if typeset == 0:
                problems.append("page has formulas but MathJax typeset none")
            if errors:
                problems.append(f"{errors} MathJax errors")
        if is_chapter(root, docname) and tables == 0:
            problems.append("chapter page shows no table")
        assert not problems, (
            f"{docname}:\n  " + "\n  ".join(problems) + "\n" + json.dumps(charts, indent=1)[:3000]
        )
    finally:
        page.close()


@pytest.mark.slow
def test_book_has_charts(built_html: Path) -> None:
    """Guard against a vacuous pass: chapters do contain charts."""
    root = book_root()
    chapters = [d for d in PAGES if is_chapter(root, d)]
    assert chapters, "no chapter notebooks in the table of contents"
    n = sum(
        len(re.findall(r'id="altair-viz-', (built_html / f"{d}.html").read_text()))
        for d in chapters
    )
    assert n > 0, "no altair chart in any chapter"


@pytest.mark.slow
def test_performance_page_shows_its_tables(built_html: Path) -> None:
    """Each table of the performance page is displayed (a Styler left inside an ``if`` block
    is not the cell's value and would silently show nothing)."""
    from seqnb.analysis import precision_pairs
    from seqnb.results import ResultStore

    html = (built_html / "book" / "performance.html").read_text()
    assert "benchmarks/speed.py on Amazon2014Beauty_550_LOU" in html
    store = ResultStore()
    stored = store.all()
    if stored:
        assert "Stored runs: device, date and time taken" in html
    if not precision_pairs(stored, store.arrays).empty:
        assert "bf16 against fp32: stored runs of the same configuration" in html
