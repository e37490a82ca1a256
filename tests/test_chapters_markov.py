"""Chapters 1–4 run end to end with papermill, and bad parameters fail in the first cell.

Each notebook source (jupytext py:percent) is converted to .ipynb in a temporary folder and
executed with papermill; the executed notebook must hold no error output, its charts (altair
output) and its HTML tables. The smoke runs of the four chapters share one temporary result
store, so runs needed by two chapters (SASRec with 2 blocks; maxlen runs in the shuffle
summary) are trained once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest
from chapter_runs import (
    REPO,
    assert_chapter_rendered,
    assert_failed_in_validation_cell,
    errors,
    execute,
    markdown_text,
    papermill,
)
from fakes import fake_result

from seqnb.experiments import chapter_configs
from seqnb.metrics import summarize_ranks
from seqnb.results import ResultStore

# chapter: (charts at least, HTML tables at least)
EXPECTED = {
    "maxlen": (3, 4),
    "zero_block": (3, 4),
    "stamp": (1, 4),
    "shuffle": (2, 7),
}
SMOKE_SEEDS = [0, 1]

pytestmark = pytest.mark.slow


def assert_rendered(nb: nbformat.NotebookNode, chapter: str) -> None:
    assert_chapter_rendered(nb, chapter, *EXPECTED[chapter])


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke-results")


@pytest.mark.parametrize("chapter", list(EXPECTED))
def test_chapter_runs_in_smoke_profile(chapter, tmp_path, shared_store):
    tick = time.perf_counter()
    # from the repository root, as a reader running papermill there would
    nb = execute(chapter, tmp_path, cwd=REPO, profile="smoke", seeds=SMOKE_SEEDS,
                 results_root=str(shared_store))
    assert_rendered(nb, chapter)
    assert "SMOKE profile" in json.dumps(nb)  # the provenance says what was shown
    # budget: a chapter's smoke run stays well within a few minutes even on a busy CPU
    assert time.perf_counter() - tick < 600


def test_book_profile_with_nothing_stored_lists_missing_and_unavailable(tmp_path):
    empty = tmp_path / "empty-store"
    nb = execute("shuffle", tmp_path, profile="book", results_root=str(empty),
                 datasets=["LastFM", "Steam_550_LOU"])
    assert not errors(nb)
    html = json.dumps(nb)
    assert "not available offline" in html  # Steam is listed, not dropped
    assert "python -m seqnb grid --chapters shuffle --datasets LastFM" in html
    assert "No shuffle runs are stored yet" in markdown_text(nb)


@pytest.mark.parametrize(
    ("chapter", "parameters", "message"),
    [
        ("maxlen", {"datasets": ["NoSuchData"]}, "unknown data set"),
        ("maxlen", {"maxlen_grid": [0]}, "maxlen_grid must be a non-empty list of integers"),
        ("maxlen", {"profile": "quick"}, "profile must be one of"),
        ("zero_block", {"blocks": [0]}, "blocks must be a non-empty list of integers"),
        ("stamp", {"variants": ["gru4rec"]}, "variants must be a non-empty list"),
        ("shuffle", {"dataset": "NoSuchData"}, "unknown data set"),
    ],
)
def test_bad_parameter_fails_in_the_validation_cell(chapter, parameters, message, tmp_path):
    parameters = {"profile": "smoke", **parameters}
    tick = time.perf_counter()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        execute(chapter, tmp_path, **parameters)
    assert_failed_in_validation_cell(tmp_path, chapter, info.value, message,
                                     "analysis.check_chapter(")
    assert time.perf_counter() - tick < 120  # fast: nothing was trained or loaded


# ----- the book profile on a partially filled store ------------------------------------------
@pytest.fixture(scope="module")
def partial_store(tmp_path_factory) -> Path:
    """Beauty with all three seeds, LastFM with seed 0 only, everything else missing."""
    root = tmp_path_factory.mktemp("partial-results")
    store = ResultStore(root)
    rng = np.random.default_rng(0)
    for chapter in EXPECTED:
        for dataset, seeds in (("Amazon2014Beauty_550_LOU", [0, 1, 2]), ("LastFM", [0])):
            for config in chapter_configs(chapter, "book", datasets=[dataset], seeds=seeds):
                if not store.has(config):
                    store.save(*fake_result(config, rng))
    return root


@pytest.mark.parametrize("chapter", list(EXPECTED))
def test_book_profile_renders_a_partial_store(chapter, tmp_path, partial_store):
    nb = execute(chapter, tmp_path, profile="book", results_root=str(partial_store),
                 datasets=["Amazon2014Beauty_550_LOU", "LastFM", "Yelp2019_550_S3Rec",
                           "Steam_550_LOU"])
    assert_rendered(nb, chapter)
    html = json.dumps(nb)
    assert "fake device (test fixture)" in html  # provenance of the stored runs
    assert "not available offline" in html  # Steam
    assert "not yet trained" in html  # Yelp: held, nothing stored
    assert f"--chapters {chapter} --datasets LastFM --seeds 1 2" in html  # the missing seeds


@pytest.fixture(scope="module")
def set_like_store(tmp_path_factory) -> Path:
    """A planted LastFM: a context of 3+ items ranks every user's target higher (per-user
    ranks halved), shuffling the window changes nothing, and maxlen 50 is not stored yet."""
    root = tmp_path_factory.mktemp("set-like-results")
    store = ResultStore(root)
    rng = np.random.default_rng(1)
    base = rng.integers(2, 200, 400).astype(np.uint8)
    for config in chapter_configs("maxlen", "book", datasets=["LastFM"], seeds=[0]):
        if config.maxlen == 50:
            continue
        result, ranks = fake_result(config, rng)
        ranks["test_ranks"] = base if config.maxlen < 3 else (base // 2).astype(np.uint8)
        result["test"] = summarize_ranks(ranks["test_ranks"])
        store.save(result, ranks)
    for config in chapter_configs("shuffle", "book", datasets=["LastFM"], seeds=[0]):
        result, ranks = fake_result(config, rng)
        ranks = {key: base for key in ranks}  # shuffling changes no user's rank
        for key in ("test", "test_shuffled_window", "test_shuffled_history"):
            result[key] = summarize_ranks(base)
        store.save(result, ranks)
    return root


def test_book_profile_names_a_set_like_data_set_and_a_partial_grid(tmp_path, set_like_store):
    """Context helps, order does not: Chapter 4 says the earlier items act as a set, and
    both chapters say that only 7 of the 8 maxlens are stored."""
    shuffle = markdown_text(execute("shuffle", tmp_path, profile="book", datasets=["LastFM"],
                                    seeds=[0], results_root=str(set_like_store)))
    assert ("On LastFM (+" in shuffle and "at maxlen 3, maxlens stored: 7 of 8: 1, 2, 3, 5, "
            "10, 20, 30; shuffled ±0.0\u00a0%) a longer context helps" in shuffle)
    assert "matter as a set" in shuffle
    # both protocols change nothing here: no gap is read into "which items are in view"
    assert "differ by less than 5 percentage points on every data set shown" in shuffle
    assert "differ most" not in shuffle
    maxlen = markdown_text(execute("maxlen", tmp_path, profile="book", datasets=["LastFM"],
                                   seeds=[0], results_root=str(set_like_store)))
    assert "with maxlen 3" in maxlen
    assert "Only maxlen 1, 2, 3, 5, 10, 20, 30 of the grid are stored so far" in maxlen
