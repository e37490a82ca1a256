"""Run a chapter with papermill and read what it rendered (shared by the chapter tests).

A chapter's jupytext source is converted to .ipynb in a temporary folder and executed with
papermill; the helpers below pick its outputs apart: charts (altair), HTML tables, and the
generated Markdown that carries the conclusions and caveats.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
VEGALITE = "application/vnd.vegalite"
CHART_DATA_LIMIT = 200_000  # bytes per chart and data set: aggregates or samples only
# plots.empty_note's mark, however the spec's JSON is spaced
NOTE_MARK = re.compile(r'"usermeta":\s*\{\s*"seqnb":\s*"note"\s*\}')


def execute(chapter: str, folder: Path, cwd: Path = NOTEBOOKS,
            **parameters) -> nbformat.NotebookNode:
    """Run ``notebooks/<chapter>.py`` with ``parameters``; the executed notebook is left as
    ``folder/<chapter>.out.ipynb``. ``cwd``: notebooks/, where the book runs its cells."""
    source = folder / f"{chapter}.ipynb"
    jupytext.write(jupytext.read(NOTEBOOKS / f"{chapter}.py"), source)
    out = folder / f"{chapter}.out.ipynb"
    papermill.execute_notebook(
        str(source), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(cwd), progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def errors(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for o in outputs(nb) if o.get("output_type") == "error"]


def mime_text(output: dict, mime: str) -> str:
    """An output's ``mime`` payload as one string (nbformat may store it as lines)."""
    text = output.get("data", {}).get(mime, "")
    return "".join(text) if isinstance(text, list) else text


def html(output: dict) -> str:
    return mime_text(output, "text/html")


def is_chart(output: dict) -> bool:
    if any(k.startswith(VEGALITE) for k in output.get("data", {})):
        return True
    text = html(output)
    return "vegaEmbed" in text or "vega-embed" in text


def is_table(output: dict) -> bool:
    return "<table" in html(output) and not is_chart(output)


def markdown_text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(mime_text(o, "text/markdown") for o in outputs(nb))


def assert_chapter_rendered(nb: nbformat.NotebookNode, chapter: str, min_charts: int,
                            min_tables: int, data_sets: int = 1) -> None:
    """No error output; at least the expected charts and tables; small charts that state
    their provenance; generated conclusions and caveats, with no NaN in the prose."""
    found = errors(nb)
    assert not found, f"{chapter}: error outputs {[(e['ename'], e['evalue']) for e in found]}"
    charts = [o for o in outputs(nb) if is_chart(o)]
    tables = [o for o in outputs(nb) if is_table(o)]
    assert len(charts) >= min_charts, f"{chapter}: {len(charts)} charts"
    assert len(tables) >= min_tables, f"{chapter}: {len(tables)} tables"
    for chart in charts:  # charts carry aggregates or samples, never per-user arrays
        assert len(json.dumps(chart["data"])) < CHART_DATA_LIMIT * data_sets
        spec = html(chart) or json.dumps(chart["data"])
        if NOTE_MARK.search(spec):
            continue  # a note standing in for a chart with no data yet: no numbers
        assert "Runs shown:" in spec or "Computed live" in spec, f"{chapter}: no provenance"
    assert "What the results say" in "".join(c.source for c in nb.cells)
    text = markdown_text(nb)
    assert "Caveats" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), "a NaN leaked into the prose"


def assert_failed_in_validation_cell(folder: Path, chapter: str, error: Exception,
                                     message: str, check: str) -> None:
    """``error`` (papermill's) says ``message``, raised by the ``check`` call in the cell
    right after the injected parameters: before anything was trained or loaded."""
    assert message in error.evalue
    assert check in error.source
    nb = nbformat.read(folder / f"{chapter}.out.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    failed = next(i for i, c in enumerate(code)
                  if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert "injected-parameters" in tags[failed - 1]
