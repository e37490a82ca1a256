"""Chapters 5 and 6 run end to end with papermill; bad parameters fail in the validation cell.

Each notebook source (jupytext py:percent) is converted to .ipynb in a temporary folder and
executed with papermill in the ``smoke`` profile: the executed notebook must hold no error
output, its altair charts and its HTML tables, and generated (not typed-in) conclusions.
Chapter 5 computes everything live on a 300-user subsample; Chapter 6 trains its smoke grid
(300 users, 2 epochs, CPU) into a temporary result store.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

jupytext = pytest.importorskip("jupytext")
papermill = pytest.importorskip("papermill")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
VEGALITE = "application/vnd.vegalite"
# chapter: (charts at least, HTML tables at least)
EXPECTED = {
    "movielens_genres": (3, 6),
    "embedding_frequency": (3, 6),
}
SMOKE_BUDGET_S = 120  # each chapter's smoke run, on an otherwise idle laptop CPU

pytestmark = pytest.mark.slow


def execute(chapter: str, folder: Path, **parameters) -> nbformat.NotebookNode:
    source = folder / f"{chapter}.ipynb"
    jupytext.write(jupytext.read(NOTEBOOKS / f"{chapter}.py"), source)
    out = folder / f"{chapter}.out.ipynb"
    papermill.execute_notebook(
        str(source), str(out), parameters=parameters, kernel_name="python3",
        cwd=str(NOTEBOOKS), progress_bar=False,
    )
    return nbformat.read(out, as_version=4)


def outputs(nb: nbformat.NotebookNode) -> list[dict]:
    return [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]


def _html(output: dict) -> str:
    html = output.get("data", {}).get("text/html", "")
    return "".join(html) if isinstance(html, list) else html


def is_chart(output: dict) -> bool:
    data = output.get("data", {})
    if any(k.startswith(VEGALITE) for k in data):
        return True
    html = _html(output)
    return "vegaEmbed" in html or "vega-embed" in html


def is_table(output: dict) -> bool:
    return "<table" in _html(output) and not is_chart(output)


def markdown_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for o in outputs(nb):
        md = o.get("data", {}).get("text/markdown", "")
        parts.append("".join(md) if isinstance(md, list) else md)
    return "\n".join(parts)


def assert_rendered(nb: nbformat.NotebookNode, chapter: str, data_sets: int = 1) -> None:
    errors = [o for o in outputs(nb) if o.get("output_type") == "error"]
    assert not errors, f"{chapter}: error outputs {[(e['ename'], e['evalue']) for e in errors]}"
    charts = [o for o in outputs(nb) if is_chart(o)]
    tables = [o for o in outputs(nb) if is_table(o)]
    min_charts, min_tables = EXPECTED[chapter]
    assert len(charts) >= min_charts, f"{chapter}: {len(charts)} charts"
    assert len(tables) >= min_tables, f"{chapter}: {len(tables)} tables"
    for chart in charts:  # charts carry aggregates or samples, never per-user arrays
        assert len(json.dumps(chart["data"])) < 200_000 * data_sets
    assert "What the results say" in "".join(c.source for c in nb.cells)
    text = markdown_text(nb)
    assert "Caveats" in text
    assert not re.search(r"\bnan\b", text, re.IGNORECASE), "a NaN leaked into the prose"
    # each chart says where its numbers come from
    for chart in charts:
        html = _html(chart) or json.dumps(chart["data"])
        assert "Runs shown:" in html or "Computed live" in html


def test_movielens_genres_smoke(tmp_path):
    tick = time.perf_counter()
    nb = execute("movielens_genres", tmp_path, profile="smoke")
    elapsed = time.perf_counter() - tick
    assert_rendered(nb, "movielens_genres")
    text = markdown_text(nb)
    assert "consecutive movies share at least one genre" in text
    assert "smoke-profile" in text
    html = json.dumps(nb)
    assert "not available offline" in html  # SPEC's unheld data sets stay in the tables
    assert "no item attributes in its files" in html  # Tools is listed, not dropped
    print(f"movielens_genres smoke: {elapsed:.0f}s")
    assert elapsed < 5 * SMOKE_BUDGET_S  # generous: the CI CPU may be shared


def test_embedding_frequency_smoke(tmp_path):
    tick = time.perf_counter()
    nb = execute("embedding_frequency", tmp_path, profile="smoke", seeds=[0, 1],
                 results_root=str(tmp_path / "store"))
    elapsed = time.perf_counter() - tick
    assert_rendered(nb, "embedding_frequency")
    text = markdown_text(nb)
    assert "norm grows with training frequency" in text  # the claims were tested
    assert "widest band" in text or "Every non-empty band" in text
    assert "SMOKE profile" in json.dumps(nb)
    print(f"embedding_frequency smoke: {elapsed:.0f}s")
    assert elapsed < 5 * SMOKE_BUDGET_S


def test_embedding_frequency_book_profile_with_nothing_stored(tmp_path):
    nb = execute("embedding_frequency", tmp_path, profile="book",
                 results_root=str(tmp_path / "empty-store"))
    assert not [o for o in outputs(nb) if o.get("output_type") == "error"]
    html = json.dumps(nb)
    assert "not available offline" in html  # Beauty_1000 is listed, not dropped
    assert "python -m seqnb grid --chapters embedding_frequency" in html
    assert "No run of this chapter is stored yet" in markdown_text(nb)


def test_embedding_frequency_book_profile_with_two_data_sets(tmp_path):
    """Both parts with two data sets stored (LastFM all seeds, Tools seed 0 only): every chart
    gets a data set selector, and the conclusions cover both (Altair 6 once refused the
    selector in the faceted panels; the book's default shows Beauty and Yelp)."""
    from fakes import fake_frequency_result

    from seqnb.experiments import chapter_configs
    from seqnb.plots.frequency import trained_dataset
    from seqnb.results import ResultStore

    store, rng = ResultStore(tmp_path / "store"), np.random.default_rng(0)
    edges = [0, 2, 100000]
    for name, seeds in (("LastFM", [0, 1, 2]), ("Amazon2014Tools_550_LOU", [0])):
        dataset = trained_dataset(name)
        for config in chapter_configs("embedding_frequency", "book", datasets=[name],
                                      seeds=seeds, grid=edges):
            store.save(*fake_frequency_result(config, dataset, rng))
    nb = execute("embedding_frequency", tmp_path, profile="book",
                 results_root=str(store.root), band_edges=edges,
                 datasets=["LastFM", "Amazon2014Tools_550_LOU"])
    assert_rendered(nb, "embedding_frequency", data_sets=2)
    charts = json.dumps([o for o in outputs(nb) if is_chart(o)])
    for selector in ("frequency_dataset", "scatter_dataset", "band_dataset"):
        assert selector in charts  # panels, scatter, heatmaps: one data set at a time
    text = markdown_text(nb)
    for name in ("LastFM", "Amazon2014Tools_550_LOU"):
        assert f"**MF-BPR** on {name}" in text  # part (a)'s claims, per data set
        assert f"({name}): of " in text  # part (b)'s summary, per data set
    assert "fake device (test fixture)" in json.dumps(nb)


@pytest.mark.parametrize(
    ("chapter", "parameters", "message", "check"),
    [
        ("movielens_genres", {"users": "best 5"}, "users must be", "check_genre_parameters("),
        ("movielens_genres", {"permutations": 0}, "permutations must be a positive integer",
         "check_genre_parameters("),
        ("movielens_genres", {"datasets": ["NoSuchData"]}, "unknown data set",
         "check_parameters("),
        ("embedding_frequency", {"band_edges": [3, 1]}, "band_edges must be",
         "check_frequency_parameters("),
        ("embedding_frequency", {"datasets": ["NoSuchData"]}, "unknown data set",
         "analysis.check_chapter("),
        ("embedding_frequency", {"device": "gpu"}, "device must be", "analysis.check_chapter("),
    ],
)
def test_bad_parameter_fails_in_the_validation_cell(chapter, parameters, message, check,
                                                    tmp_path):
    tick = time.perf_counter()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        execute(chapter, tmp_path, profile="smoke", **parameters)
    assert message in info.value.evalue
    assert check in info.value.source  # failed where the parameters are read
    nb = nbformat.read(tmp_path / f"{chapter}.out.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tags = [c.metadata.get("tags", []) for c in code]
    failed = next(i for i, c in enumerate(code)
                  if any(o.get("output_type") == "error" for o in c.get("outputs", [])))
    assert "injected-parameters" in tags[failed - 1]  # right after the parameters
    assert time.perf_counter() - tick < 120  # fast: nothing was trained or loaded
