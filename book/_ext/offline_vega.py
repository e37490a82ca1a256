"""Make the built book's altair charts (and formulas) work with no network.

What altair puts in an executed notebook
----------------------------------------
altair's default renderer (``"html"``, template ``"universal"``) emits a ``text/html``
output: an empty ``<div id="altair-viz-…">`` and an inline script that, unless a
``VEGA_DEBUG`` object already records the right versions, appends ``<script>`` tags for
``https://cdn.jsdelivr.net/npm/vega@6``, ``vega-lite@<schema version>`` and
``vega-embed@7`` and then calls ``vegaEmbed``. MyST-NB copies that HTML into the page as
it is, so an offline reader sees empty boxes.

What this extension does (enable it through ``_config.yml`` → ``sphinx.local_extensions``)
------------------------------------------------------------------------------------------
On every page whose body contains an altair output it

1. adds ``_static/vega/vega.min.js``, ``vega-lite.min.js`` and ``vega-embed.min.js``
   (committed in ``book/_static/vega``, see its README) to the page's ``<head>`` as plain
   blocking scripts, followed by an inline script that pre-fills ``VEGA_DEBUG`` with the
   version strings the charts ask for — so the charts' loader finds the libraries already
   there and loads nothing;
2. rewrites every ``https://cdn.jsdelivr.net/npm/vega…`` address left in the page body to
   the page-relative ``_static/vega/…`` file, so nothing can reach for the CDN even if a
   check above were bypassed;
3. checks that the shipped versions satisfy what altair asked for (``"6"`` is satisfied
   by 6.x.y, ``"6.4.1"`` only by 6.4.1) and emits a warning otherwise — ``make book``
   builds with ``-W`` so a mismatch fails the build: re-run ``scripts/fetch_vega.sh`` with
   matching versions.

After the build it scans every HTML file and warns about anything the page would fetch
from the internet when it loads (remote ``<script src>``, stylesheets, CSS imports, the
vega/MathJax/ipywidgets CDN paths) — MathJax is served from ``_static/mathjax`` through
``mathjax_path`` in ``_config.yml``.

The contract for chapter notebooks
----------------------------------
See :func:`renderer_requirement`: use altair's default ``html`` renderer with inline
data. Tooltips, selections and bound widgets stay interactive because the full
vega-embed runtime is on the page.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent.parent / "_static"
VEGA_DIR = STATIC_DIR / "vega"
LIBS = ("vega", "vega-lite", "vega-embed")
_FILES = {lib: f"vega/{lib}.min.js" for lib in LIBS}
_VEGA_DEBUG_KEYS = {
    "vega": "vega_version",
    "vega-lite": "vegalite_version",
    "vega-embed": "vegaembed_version",
}

# what altair's templates contain
_MARKER = re.compile(r'id="altair-viz-|vegaEmbed\(')
_REQUESTED = re.compile(r'maybeLoadScript\("(vega|vega-lite|vega-embed)",\s*"([^"]+)"\)')
_CDN_LIB = re.compile(
    r"https://cdn\.jsdelivr\.net/npm/(vega-lite|vega-embed|vega-lib|vega)(?:@[^\"'?\s/]*)?"
    r"(\?noext)?"
)
# anything that makes a page fetch code, styles or fonts from the internet when it loads:
# remote <script src>, remote stylesheets/preloads/icons, CSS imports, and the CDN paths
# altair, ipywidgets and MathJax use (a plain string constant such as sphinx-thebe's
# THEBE_JS_URL, only used when a reader clicks a launch button that this book does not
# show, is not flagged).
_REMOTE = re.compile(
    r"""<script\b[^>]*\ssrc=["'](?:https?:)?//[^"']*"""
    r"""|<link\b[^>]*\srel=["'](?:stylesheet|preload|modulepreload|icon)["'][^>]*"""
    r"""\shref=["'](?:https?:)?//[^"']*"""
    r"""|<link\b[^>]*\shref=["'](?:https?:)?//[^"']*["'][^>]*"""
    r"""\srel=["'](?:stylesheet|preload|modulepreload|icon)["']"""
    r"""|@import\s+(?:url\()?["']?(?:https?:)?//[^"')\s]*"""
    r"""|https?://cdn\.jsdelivr\.net/npm/(?:vega|@jupyter-widgets|mathjax)[^"'\s]*"""
    r"""|https?://cdnjs\.cloudflare\.com/ajax/libs/require\.js[^"'\s]*"""
)


def renderer_requirement() -> str:
    """The one thing chapter notebooks must (not) do for their charts to work offline.

    Decision: **nothing beyond altair's defaults.** Keep the default renderer ``"html"``
    (or call ``alt.renderers.enable("html")`` explicitly; any ``embed_options`` are fine,
    e.g. ``alt.renderers.enable("html", embed_options={"actions": False})``) and the
    default inline data transformer (``alt.data_transformers.disable_max_rows()`` is fine).

    Do not use renderers whose output MyST-NB cannot show offline or at all:
    ``"mimetype"``/``"jupyterlab"``/``"nteract"`` (a vega-lite mimetype MyST-NB has no
    renderer for), ``"jupyter"`` (an anywidget: needs a kernel), ``"png"``/``"svg"`` (static
    images: tooltips and selectors lost), ``"olli"`` (loads olli from a CDN), and the
    ``"json"``/``"csv"`` data transformers or ``url`` data (files the served book does not
    have). ``alt.JupyterChart`` and vegafusion are out for the same reason.
    """
    return renderer_requirement.__doc__ or ""


def shipped_versions(vega_dir: Path = VEGA_DIR) -> dict[str, str]:
    """Versions of the committed JavaScript, read from ``book/_static/vega/VERSIONS``."""
    versions: dict[str, str] = {}
    for line in (vega_dir / "VERSIONS").read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in (*LIBS, "mathjax"):
            versions[parts[0]] = parts[1]
    return versions


def satisfies(shipped: str, requested: str) -> bool:
    """altair asks for ``"6"``, ``"6.4"`` or ``"6.4.1"``: a version prefix."""
    return shipped == requested or shipped.startswith(requested + ".")


def _relative(pathto: Any, target: str) -> str:
    return pathto(target, 1)


def _page_context(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    body = context.get("body")
    if not body or not _MARKER.search(body):
        return
    shipped = shipped_versions()
    requested: dict[str, str] = {}
    for lib, version in _REQUESTED.findall(body):
        if lib in requested and requested[lib] != version:
            logger.warning(
                "offline_vega: %s asks for %s %s and %s in different charts",
                pagename,
                lib,
                requested[lib],
                version,
                type="offline_vega",
            )
        requested[lib] = version
    for lib, version in requested.items():
        if not satisfies(shipped[lib], version):
            logger.warning(
                "offline_vega: %s asks for %s@%s but the book ships %s %s; run "
                "scripts/fetch_vega.sh with a matching version",
                pagename,
                lib,
                version,
                lib,
                shipped[lib],
                type="offline_vega",
            )

    pathto = context["pathto"]

    def local(match: re.Match[str]) -> str:
        lib = "vega" if match.group(1) == "vega-lib" else match.group(1)
        return _relative(pathto, "_static/" + _FILES[lib]) + (match.group(2) or "")

    context["body"] = _CDN_LIB.sub(local, body)

    builder = app.builder
    for priority, lib in enumerate(LIBS):
        builder.add_js_file(_FILES[lib], priority=400 + priority)  # type: ignore[attr-defined]
    debug = ", ".join(
        f'"{_VEGA_DEBUG_KEYS[lib]}": "{requested.get(lib, shipped[lib])}"' for lib in LIBS
    )
    builder.add_js_file(  # type: ignore[attr-defined]
        "",
        priority=410,
        body="/* offline_vega: the libraries above are the ones the charts ask for */\n"
        f"var VEGA_DEBUG = Object.assign((typeof VEGA_DEBUG == 'undefined') ? {{}} : "
        f"VEGA_DEBUG, {{{debug}}});",
    )


def _dedupe_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict[str, Any], doctree: Any
) -> None:
    """Drop repeated identical ``<script>`` entries.

    Sphinx keeps an inline script added during ``env-before-read-docs`` twice (once with
    filename ``None``, once with ``""``); for sphinx-thebe's ``const THEBE_JS_URL = ...``
    a browser then reports "Identifier 'THEBE_JS_URL' has already been declared".
    """
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    unique = []
    for js in scripts:
        attributes = getattr(js, "attributes", {}) or {}
        # an inline script is registered once with filename None and once with ""
        key = (
            str(getattr(js, "filename", js) or ""),
            tuple(sorted((str(k), str(v)) for k, v in attributes.items())),
        )
        if key not in seen:
            seen.add(key)
            unique.append(js)
    context["script_files"] = unique


def remote_references(html_dir: Path) -> dict[str, list[str]]:
    """Every built HTML file that still points at a CDN or loads remote code, with the hits."""
    found: dict[str, list[str]] = {}
    for path in sorted(html_dir.rglob("*.html")):
        hits = sorted({m.group(0) for m in _REMOTE.finditer(path.read_text(errors="replace"))})
        if hits:
            found[path.relative_to(html_dir).as_posix()] = hits
    return found


def _check_build(app: Sphinx, exception: Exception | None) -> None:
    if exception is not None or app.builder.format != "html":
        return
    outdir = Path(app.outdir)
    for lib in LIBS:
        if not (outdir / "_static" / _FILES[lib]).is_file():
            logger.warning(
                "offline_vega: _static/%s missing from the build; is book/_static in "
                "html_static_path?",
                _FILES[lib],
                type="offline_vega",
            )
    for page, hits in remote_references(outdir).items():
        logger.warning(
            "offline_vega: %s loads from the network: %s",
            page,
            ", ".join(hits),
            type="offline_vega",
        )


def _check_config(app: Sphinx, config: Any) -> None:
    path = str(getattr(config, "mathjax_path", "") or "")
    if "://" in path:
        logger.warning(
            "offline_vega: mathjax_path %s is remote; set it to mathjax/tex-chtml-full.js",
            path,
            type="offline_vega",
        )


def setup(app: Sphinx) -> dict[str, Any]:
    app.connect("config-inited", _check_config)
    app.connect("html-page-context", _page_context)
    app.connect("html-page-context", _dedupe_scripts, priority=900)
    app.connect("build-finished", _check_build)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
