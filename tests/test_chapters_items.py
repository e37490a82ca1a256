"""Chapters 5 and 6 run end to end with papermill; bad parameters fail in the validation cell.

Each notebook source (jupytext py:percent) is converted to .ipynb in a temporary folder and
executed with papermill in the ``smoke`` profile: the executed notebook must hold no error
output, its altair charts and its HTML tables, and generated (not typed-in) conclusions.
Chapter 5 computes everything live on a 300-user subsample; Chapter 6 trains its smoke grid
(300 users, 2 epochs, CPU) into a temporary result store.
"""

from __future__ import annotations

import json
import time

import nbformat
import numpy as np
import pytest
from chapter_runs import (
    assert_chapter_rendered,
    assert_failed_in_validation_cell,
    errors,
    execute,
    is_chart,
    markdown_text,
    outputs,
    papermill,
)

# chapter: (charts at least, HTML tables at least)
EXPECTED = {
    "movielens_genres": (3, 6),
    "embedding_frequency": (3, 6),
}
SMOKE_BUDGET_S = 120  # each chapter's smoke run, on an otherwise idle laptop CPU

pytestmark = pytest.mark.slow


def assert_rendered(nb: nbformat.NotebookNode, chapter: str, data_sets: int = 1) -> None:
    assert_chapter_rendered(nb, chapter, *EXPECTED[chapter], data_sets=data_sets)


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
    assert not errors(nb)
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
    assert_failed_in_validation_cell(tmp_path, chapter, info.value, message, check)
    assert time.perf_counter() - tick < 120  # fast: nothing was trained or loaded
