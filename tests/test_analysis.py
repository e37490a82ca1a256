"""seqnb.analysis (and the table helpers of seqnb.plots) against hand-worked examples and
scipy called directly."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from seqnb import analysis, plots
from seqnb.config import RunConfig


# ----- aggregation --------------------------------------------------------------------------
def test_mean_std_hand_worked():
    frame = pd.DataFrame({
        "dataset": ["A", "A", "A", "B"],
        "seed": [0, 1, 2, 0],
        "NDCG@10": [0.1, 0.2, 0.3, 0.5],
    })
    out = analysis.mean_std(frame, ["dataset"], ["NDCG@10", "HR@1"]).set_index("dataset")
    assert list(out["metric"]) == ["NDCG@10", "NDCG@10"]  # absent metrics are skipped
    assert out.loc["A", "mean"] == pytest.approx(0.2)
    assert out.loc["A", "std"] == pytest.approx(0.1)  # sample std (ddof=1)
    assert out.loc["A", "seeds"] == 3
    assert out.loc["B", "mean"] == pytest.approx(0.5)
    assert math.isnan(out.loc["B", "std"])  # one seed: no std
    assert analysis.mean_std(frame.iloc[:0], ["dataset"]).empty


def test_metric_table_formats_mean_pm_std():
    frame = pd.DataFrame({"dataset": ["A", "A", "B"], "HR@1": [0.1, 0.3, 0.25]})
    table = plots.metric_table(frame, ["dataset"], ["HR@1", "NDCG@10"]).set_index("dataset")
    assert table.loc["A", "HR@1"] == "0.2000 ± 0.1414"
    assert table.loc["B", "HR@1"] == "0.2500"  # a single run: no ± part
    assert list(table["seeds"]) == [2, 1]
    assert "NDCG@10" not in table.columns


def test_relative_change_and_words():
    assert analysis.relative_change(0.2, 0.15) == pytest.approx(-0.25)
    assert math.isnan(analysis.relative_change(0.0, 0.1))
    assert analysis.pct(-0.25) == "−25.0\u00a0%"  # no-break space
    assert analysis.pct(0.031) == "+3.1\u00a0%"
    assert analysis.pct(float("nan")) == "n/a"
    assert analysis.format_p(0.0004) == "p < 0.001"
    assert analysis.format_p(0.0312) == "p = 0.031"
    assert analysis.format_p(0.5) == "p = 0.50"
    assert analysis.verdict(-0.01, 0.001) == "negligible"
    assert analysis.verdict(-0.2, 0.001) == "significant"
    assert analysis.verdict(-0.2, 0.3) == "not significant"
    assert analysis.verdict(-0.2, float("nan")) == "not significant"


# ----- per-user values and paired tests ------------------------------------------------------
def test_per_user_metrics_from_ranks():
    ranks = np.array([1, 2, 11, 255], dtype=np.uint8)
    np.testing.assert_allclose(analysis.per_user(ranks, "NDCG@10"),
                               [1.0, 1 / math.log2(3), 0.0, 0.0])
    np.testing.assert_array_equal(analysis.per_user(ranks, "HR@1"), [1, 0, 0, 0])
    np.testing.assert_array_equal(analysis.per_user(ranks, "HR@10"), [1, 1, 0, 0])
    with pytest.raises(ValueError, match="exact only"):
        analysis.per_user(ranks, "HR@255")
    with pytest.raises(ValueError):
        analysis.per_user(ranks, "MRR")


def test_pooled_averages_per_user_over_seeds():
    out = analysis.pooled([np.array([1.0, 0.0, 0.5]), np.array([0.0, 0.0, 1.0])])
    np.testing.assert_allclose(out, [0.5, 0.0, 0.75])
    with pytest.raises(ValueError, match="different lengths"):
        analysis.pooled([np.zeros(2), np.zeros(3)])


def test_paired_test_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.random(200)
    b = a + rng.normal(0.05, 0.2, 200)
    test = analysis.paired_test(a, b)
    w = stats.wilcoxon(a, b)
    t = stats.ttest_rel(b, a)
    assert test.wilcoxon_p == pytest.approx(w.pvalue)
    assert test.wilcoxon_statistic == pytest.approx(w.statistic)
    assert test.t_p == pytest.approx(t.pvalue)
    assert test.t_statistic == pytest.approx(t.statistic)
    assert test.difference == pytest.approx(np.mean(b - a))
    assert test.relative_change == pytest.approx(b.mean() / a.mean() - 1)
    assert test.n_users == 200 and test.nonzero_pairs == 200


def test_paired_test_hand_worked_wilcoxon():
    # differences b - a = +1, +2, +3, -4: ranks 1, 2, 3, 4; W- = 4, W+ = 6 -> statistic 4
    a = np.array([0.0, 0.0, 0.0, 4.0])
    b = np.array([1.0, 2.0, 3.0, 0.0])
    test = analysis.paired_test(a, b)
    assert test.wilcoxon_statistic == 4
    # exact two-sided p: P(W <= 4) * 2 over the 16 equally likely sign patterns
    sums = [sum(r for r, s in zip(range(1, 5), f"{m:04b}", strict=True) if s == "1")
            for m in range(16)]
    expected = 2 * sum(1 for s in sums if s <= 4) / 16
    assert test.wilcoxon_p == pytest.approx(expected)


def test_paired_test_edge_cases():
    same = analysis.paired_test(np.array([0.1, 0.2, 0.3]), np.array([0.1, 0.2, 0.3]))
    assert same.wilcoxon_p == 1.0 and same.t_p == 1.0 and same.nonzero_pairs == 0
    shifted = analysis.paired_test(np.zeros(10), np.ones(10))
    assert shifted.t_p == 0.0 and shifted.difference == 1.0
    with pytest.raises(ValueError):
        analysis.paired_test(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError):
        analysis.paired_test(np.zeros(1), np.zeros(1))


# ----- a fake ChapterRuns -------------------------------------------------------------------
class FakeRuns:
    """Frame + arrays, like ChapterRuns."""

    def __init__(self, rows, arrays, configs=(), missing=(), profile="book", chapter="x"):
        self.frame = pd.DataFrame(rows)
        self._arrays = arrays
        self.configs = list(configs)
        self.missing = list(missing)
        self.profile = profile
        self.chapter = chapter
        self.results = []

    def arrays(self, run_id):
        return self._arrays.get(run_id, {})


def _fake_block_runs():
    ranks = {
        ("sasrec", 0): np.array([1, 3, 20, 2], np.uint8),
        ("sasrec", 1): np.array([2, 3, 5, 1], np.uint8),
        ("zero_block", 0): np.array([1, 5, 20, 4], np.uint8),
        ("zero_block", 1): np.array([3, 1, 9, 8], np.uint8),
    }
    rows, arrays = [], {}
    for (model, seed), r in ranks.items():
        run_id = f"{model}-{seed}"
        rows.append({"run_id": run_id, "dataset": "A", "model": model, "num_blocks": 2,
                     "seed": seed, "NDCG@10": float(analysis.per_user(r).mean())})
        arrays[run_id] = {"test_ranks": r, "test_shuffled_window_ranks": r[::-1].copy()}
    return FakeRuns(rows, arrays), ranks


def test_compare_pools_seeds_per_user_then_tests():
    runs, ranks = _fake_block_runs()
    out = analysis.compare(runs, {"model": "sasrec"}, {"model": "zero_block"},
                           metrics=["NDCG@10", "HR@1"])
    assert list(out["metric"]) == ["NDCG@10", "HR@1"]
    row = out.set_index("metric").loc["NDCG@10"]
    a = (analysis.per_user(ranks["sasrec", 0]) + analysis.per_user(ranks["sasrec", 1])) / 2
    b = (analysis.per_user(ranks["zero_block", 0])
         + analysis.per_user(ranks["zero_block", 1])) / 2
    assert row["seeds"] == 2 and row["n_users"] == 4
    assert row["mean_a"] == pytest.approx(a.mean())
    assert row["mean_b"] == pytest.approx(b.mean())
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row["t_p"] == pytest.approx(stats.ttest_rel(b, a).pvalue)


def test_compare_pairs_only_common_seeds_and_skips_missing_arrays():
    runs, ranks = _fake_block_runs()
    runs.frame = runs.frame[~((runs.frame["model"] == "zero_block") & (runs.frame["seed"] == 1))]
    out = analysis.compare(runs, {"model": "sasrec"}, {"model": "zero_block"})
    assert out["seeds"].tolist() == [1]
    a, b = analysis.per_user(ranks["sasrec", 0]), analysis.per_user(ranks["zero_block", 0])
    assert out["wilcoxon_p"].iloc[0] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    runs._arrays = {}
    assert analysis.compare(runs, {"model": "sasrec"}, {"model": "zero_block"}).empty


def _stored(config, ranks, device, train_seconds):
    return {"run_id": config.run_id, "config": config.to_dict(),
            "test": {"NDCG@10": float(analysis.per_user(ranks).mean())},
            "provenance": {"device": device, "train_seconds": train_seconds,
                           "git_commit": "0123456789" * 4 + "+dirty"}}


def test_precision_pairs_match_each_bf16_run_with_its_fp32_twin():
    fp32 = RunConfig(dataset="A", num_blocks=2, seed=0, chapter="shuffle")
    bf16 = RunConfig(dataset="A", num_blocks=2, seed=0, precision="bf16", chapter="zero_block")
    lonely = RunConfig(dataset="A", num_blocks=1, seed=0, precision="bf16")  # no fp32 twin
    ranks = {fp32.run_id: np.array([1, 2, 30, 4, 7], np.uint8),
             bf16.run_id: np.array([2, 2, 3, 9, 7], np.uint8),
             lonely.run_id: np.array([1, 1, 1, 1, 1], np.uint8)}
    results = [_stored(fp32, ranks[fp32.run_id], "cpu (X, 1 threads)", 100.0),
               _stored(bf16, ranks[bf16.run_id], "cpu (Y, 1 threads)", 60.0),
               _stored(lonely, ranks[lonely.run_id], "cpu (Y, 1 threads)", 50.0)]
    out = analysis.precision_pairs(results, lambda run_id: {"test_ranks": ranks[run_id]})
    assert len(out) == 1  # the run without a twin is left out
    row = out.iloc[0]
    # per-user NDCG@10 by hand: 1 / log2(rank + 1) within the top 10, else 0
    by_hand = {k: np.array([1 / math.log2(r + 1) if r <= 10 else 0.0 for r in v])
               for k, v in ranks.items()}
    a, b = by_hand[fp32.run_id], by_hand[bf16.run_id]
    assert row["setting"] == "SASRec (2 blocks)" and row["seed"] == 0 and row["users"] == 5
    assert row["fp32 NDCG@10"] == pytest.approx(a.mean())
    assert row["bf16 NDCG@10"] == pytest.approx(b.mean())
    assert row["change"] == pytest.approx(b.mean() / a.mean() - 1)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert (row["fp32 device"], row["bf16 device"]) == ("cpu (X, 1 threads)", "cpu (Y, 1 threads)")
    assert (row["fp32 train s"], row["bf16 train s"]) == (100.0, 60.0)
    assert row["bf16 code"] == "0123456+dirty"
    assert analysis.precision_pairs(results[:1], lambda run_id: {}).empty


# ----- chapter summaries --------------------------------------------------------------------
def test_maxlen_gain_hand_worked():
    frame = pd.DataFrame({
        "dataset": ["A"] * 6 + ["B"] * 2,
        "maxlen": [1, 1, 5, 5, 10, 10, 1, 2],
        "seed": [0, 1, 0, 1, 0, 1, 0, 0],
        "NDCG@10": [0.09, 0.11, 0.12, 0.12, 0.11, 0.11, 0.3, 0.2],
    })
    out = analysis.maxlen_gain(frame).set_index("dataset")
    assert out.loc["A", "reference_maxlen"] == 1
    assert out.loc["A", "at_reference"] == pytest.approx(0.10)
    assert out.loc["A", "best_maxlen"] == 5
    assert out.loc["A", "maxlen_gain"] == pytest.approx(0.2)
    assert out.loc["A", "seeds"] == 2
    assert out.loc["B", "best_maxlen"] == 1 and out.loc["B", "maxlen_gain"] == 0.0
    assert out.loc["A", "maxlens"] == [1, 5, 10] and out.loc["B", "maxlens"] == [1, 2]
    # a partly stored grid says so, in the chapter table's words
    assert analysis.stored_of_grid(out.loc["B", "maxlens"], [1, 2, 5, 10]) == "2 of 4: 1, 2"
    assert analysis.stored_of_grid(out.loc["A", "maxlens"], [1, 5, 10]) == "all 3"
    assert [analysis.and_join(n) for n in ([], ["A"], ["A", "B"], ["A", "B", "C"])] == [
        "", "A", "A and B", "A, B and C"]
    # one stored maxlen is no evidence of "no gain": the data set gets no row
    single = pd.concat([frame, pd.DataFrame({"dataset": ["C"], "maxlen": [1], "seed": [0],
                                             "NDCG@10": [0.2]})])
    assert "C" not in set(analysis.maxlen_gain(single)["dataset"])


def test_shuffle_drop_and_sequentiality_summary():
    shuffle = pd.DataFrame({
        "dataset": ["A", "A", "B"],
        "seed": [0, 1, 0],
        "NDCG@10": [0.2, 0.2, 0.1],
        "test_shuffled_window:NDCG@10": [0.18, 0.19, 0.1],
        "test_shuffled_history:NDCG@10": [0.1, 0.1, 0.05],
    })
    drop = analysis.shuffle_drop(shuffle, "window").set_index("dataset")
    assert drop.loc["A", "shuffle_drop"] == pytest.approx(0.185 / 0.2 - 1)
    assert drop.loc["B", "shuffle_drop"] == pytest.approx(0.0)
    maxlen = pd.DataFrame({"dataset": ["A", "A", "C", "C"], "maxlen": [1, 50, 1, 50],
                           "seed": [0] * 4, "NDCG@10": [0.1, 0.15, 0.2, 0.1]})
    summary = analysis.sequentiality_summary(shuffle, maxlen).set_index("dataset")
    assert set(summary.index) == {"A", "B", "C"}  # outer join: nothing dropped
    assert summary.loc["A", "maxlen_gain"] == pytest.approx(0.5)
    assert summary.loc["A", "maxlens"] == [1, 50]
    assert summary.loc["A", "shuffle_drop_history"] == pytest.approx(-0.5)
    assert math.isnan(summary.loc["B", "maxlen_gain"])
    assert math.isnan(summary.loc["C", "shuffle_drop"])
    with pytest.raises(ValueError):
        analysis.shuffled_column("sideways", "HR@1")


def test_shuffle_table_uses_shuffled_ranks():
    runs, ranks = _fake_block_runs()
    runs.frame = runs.frame[runs.frame["model"] == "sasrec"].copy()
    runs.frame["test_shuffled_window:NDCG@10"] = [
        float(analysis.per_user(ranks["sasrec", s][::-1]).mean()) for s in (0, 1)]
    table = analysis.shuffle_table(runs, ["NDCG@10"], ["window"])
    row = table.iloc[0]
    a = (analysis.per_user(ranks["sasrec", 0]) + analysis.per_user(ranks["sasrec", 1])) / 2
    b = (analysis.per_user(ranks["sasrec", 0][::-1])
         + analysis.per_user(ranks["sasrec", 1][::-1])) / 2
    assert row["original"] == pytest.approx(a.mean())
    assert row["shuffled"] == pytest.approx(b.mean())
    assert row["relative_change"] == pytest.approx(b.mean() / a.mean() - 1)
    assert row["wilcoxon_p"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    assert row["seeds"] == 2


def test_attention_aggregates_over_seeds():
    def result(seed, weights):
        return {"config": {"dataset": "A", "model": "sasrec", "num_blocks": 2, "maxlen": 3,
                           "seed": seed},
                "extras": {"attention_by_offset": weights}}

    results = [result(0, [[0.5, 0.3, 0.2], [0.9, 0.1, 0.0]]),
               result(1, [[0.7, 0.2, 0.1], [0.7, 0.3, 0.0]]),
               {"config": {"dataset": "A", "model": "zero_block", "num_blocks": 2,
                           "maxlen": 3, "seed": 0}, "extras": {}}]
    last = analysis.attention_on_last(results).set_index("layer")
    assert last.loc[1, "mean"] == pytest.approx(0.6)
    assert last.loc[1, "std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert last.loc[2, "mean"] == pytest.approx(0.8)
    assert last.loc[1, "seeds"] == 2
    offsets = analysis.attention_by_offset(results)
    assert offsets[(offsets["layer"] == 1) & (offsets["offset"] == 2)]["mean"].item() \
        == pytest.approx(0.15)
    assert analysis.uniform_attention([1, 2, 100], 50) == pytest.approx((1 + 0.5 + 0.02) / 3)


# ----- coverage and parameters --------------------------------------------------------------
def test_coverage_and_with_unavailable():
    configs = [RunConfig("LastFM", seed=s) for s in (0, 1)] + [RunConfig("Yelp2019_550_S3Rec")]
    runs = FakeRuns([{"dataset": "LastFM", "seed": 0}], {}, configs=configs,
                    missing=configs[1:])
    cov = analysis.coverage(runs, ["LastFM", "Yelp2019_550_S3Rec"], ["Steam_550_LOU"])
    status = cov.set_index("dataset")["status"]
    assert status["LastFM"] == "partial: 1 of 2 runs missing"
    assert status["Yelp2019_550_S3Rec"] == analysis.NOT_TRAINED
    assert status["Steam_550_LOU"] == analysis.UNAVAILABLE
    table = pd.DataFrame({"dataset": ["LastFM"], "HR@1": ["0.1"]})
    out = analysis.with_unavailable(table, ["LastFM", "Steam_550_LOU"])
    assert out["dataset"].tolist() == ["LastFM", "Steam_550_LOU"]
    assert out["HR@1"].tolist() == ["0.1", analysis.UNAVAILABLE]
    missing = analysis.missing_summary(runs)
    assert missing["command"].iloc[0] == \
        "python -m seqnb grid --chapters x --datasets LastFM --seeds 1"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(chapter="maxlen", grid=[0, 5]), "maxlen_grid must be a non-empty list"),
        (dict(chapter="maxlen", grid=[]), "maxlen_grid must be a non-empty list"),
        (dict(chapter="maxlen", datasets=["NoSuchData"]), "unknown data set"),
        (dict(chapter="maxlen", profile="fast"), "profile must be one of"),
        (dict(chapter="zero_block", grid=[2, -1]), "blocks must be"),
        (dict(chapter="stamp", grid=["stamp", "gru"]), "variants must be"),
        (dict(chapter="maxlen", seeds=[]), "seeds must be"),
        (dict(chapter="maxlen", epochs=0), "epochs must be"),
        (dict(chapter="maxlen", device="gpu"), "device must be"),
        (dict(chapter="maxlen", train="yes"), "train must be"),
    ],
)
def test_check_chapter_rejects_bad_values(kwargs, message):
    names = {"maxlen": "maxlen_grid", "zero_block": "blocks", "stamp": "variants"}
    with pytest.raises(ValueError, match=message):
        analysis.check_chapter(grid_name=names[kwargs["chapter"]], **kwargs)


def test_check_chapter_keeps_unavailable_datasets_visible():
    params = analysis.check_chapter("shuffle", "book")
    assert "Steam_550_LOU" in params.unavailable
    assert "Amazon2014Beauty_550_LOU" in params.shown_datasets
    one = analysis.check_chapter("shuffle", "book", dataset="Steam_550_LOU")
    assert one.datasets == [] and one.configs == [] and one.unavailable == ["Steam_550_LOU"]
    smoke = analysis.check_chapter("maxlen", "smoke", seeds=[0], grid=[1, 3], epochs=1)
    assert [c.maxlen for c in smoke.configs] == [1, 3]
    assert all(c.epochs == 1 for c in smoke.configs)


def test_caveats_name_seeds_and_missing_datasets():
    runs = FakeRuns([{"dataset": "A", "seed": 0}], {}, profile="smoke")
    text = " ".join(analysis.caveats(runs, ["A", "B"], ["C"]))
    assert "smoke-profile" in text and "A (1)" in text and "B" in text and "C" in text


def test_caveats_flag_runs_still_improving_at_their_last_epoch():
    """A run whose best validation epoch is its last is named; converged runs and smoke
    runs are not."""
    rows = [
        {"dataset": "A", "model": "sasrec", "num_blocks": 4, "seed": 0,
         "best_epoch": 100, "epochs_run": 100},
        {"dataset": "A", "model": "sasrec", "num_blocks": 2, "seed": 0,
         "best_epoch": 60, "epochs_run": 100},
        {"dataset": "A", "model": "mf_bpr", "num_blocks": 2, "seed": 1,
         "smooth_band": (0, 3), "best_epoch": 200, "epochs_run": 200},
        {"dataset": "A", "model": "stamp_only_mt", "seed": 2, "best_epoch": 30, "epochs_run": 30},
        {"dataset": "A", "model": "sasrec", "num_blocks": 4, "seed": 2,
         "best_epoch": 100, "epochs_run": 100},
        {"dataset": "B", "model": "sasrec", "num_blocks": 2, "layout": "rolled", "maxlen": 5,
         "seed": 0, "best_epoch": 100, "epochs_run": 100},
        {"dataset": "B", "model": "sasrec", "num_blocks": 2, "smooth_band": [1, 1],
         "smooth_self_loops": False, "seed": 0, "best_epoch": 100, "epochs_run": 100},
        {"dataset": "B", "model": "sasrec", "num_blocks": 2, "layout": "rolled", "maxlen": 5,
         "seed": 1, "best_epoch": 100, "epochs_run": 100},
        {"dataset": "B", "model": "sasrec", "num_blocks": 2, "layout": "rolled", "maxlen": 10,
         "seed": 0, "best_epoch": 100, "epochs_run": 100},
        {"dataset": "B", "model": "sasrec", "num_blocks": 2, "seed": 3,
         "best_epoch": 100, "epochs_run": 100},
    ]
    text = " ".join(analysis.caveats(FakeRuns(rows, {})))
    assert ("9 run(s); these keep the notes' epoch budget, and longer training may raise "
            "them:\n  - A, MF-BPR: band [0, 3], seed 1"
            "\n  - A, SASRec (4 blocks): unmodified, seeds 0, 2\n  - A, only m_t: unmodified, "
            "seed 2"
            "\n  - B, SASRec (2 blocks): unmodified, seed 3; band [1, 1] without self term, "
            "seed 0; maxlen 5, seeds 0, 1; maxlen 10, seed 0") in text  # a line per data set, model
    assert "A: SASRec (2 blocks)" not in text  # converged at epoch 60
    # without neighbour-averaged runs a model's one setting needs no name
    plain = [r for r in rows if r.get("smooth_band") is None and r["dataset"] == "A"]
    assert "A, SASRec (4 blocks): seeds 0, 2" in " ".join(analysis.caveats(FakeRuns(plain, {})))
    assert "Still improving" not in " ".join(analysis.caveats(FakeRuns(rows, {}, profile="smoke")))


@pytest.mark.parametrize(("value", "shown"), [
    (22363, "22,363"), (np.int64(7), "7"), (8.876358, "8.876"), (0.000734, "0.000734"),
    (165.49851, "165.5"), (96.0, "96"), (12345.67, "12,346"), (float("nan"), "–"),
    (None, "–"), (pd.NA, "–"), (False, "False"), ("0.0490 ± 0.0010", "0.0490 ± 0.0010"),
])
def test_table_cells_read_as_numbers(value, shown):
    assert plots.format_cell(value) == shown


def test_short_names_fall_back_to_full_names_when_two_collide():
    names = ["Amazon2014Beauty_550_LOU", "Amazon2014Toys_550_LOU", "Amazon2014Beauty_1000_LOU"]
    assert plots.short_names(names) == {
        "Amazon2014Beauty_550_LOU": "Amazon2014Beauty_550_LOU",
        "Amazon2014Toys_550_LOU": "Toys",
        "Amazon2014Beauty_1000_LOU": "Amazon2014Beauty_1000_LOU"}
    assert plots.short_names(["MovieLens1M_550_LOU", "LastFM"]) == {
        "MovieLens1M_550_LOU": "ML-1M", "LastFM": "LastFM"}


def test_labeller_names_data_sets_in_prose_without_merging_them():
    label_of = plots.labeller(["Amazon2014Beauty_550_LOU", "Amazon2014Beauty_1000_LOU",
                               "LastFM"])
    assert label_of("Amazon2014Beauty_550_LOU") == "Amazon2014Beauty_550_LOU"
    assert label_of("LastFM") == "LastFM"
    assert plots.labeller(["Amazon2014Beauty_550_LOU"])("Amazon2014Beauty_550_LOU") == "Beauty"
    assert label_of("Yelp2019_550_S3Rec") == "Yelp2019_550_S3Rec"  # not in view: whole


def test_style_table_formats_only_unformatted_cells():
    table = pd.DataFrame({"users": [22363], "mean length": [8.876358], "NDCG@10": ["0.0490"]})
    html = plots.style_table(table).to_html()
    assert "22,363" in html and "8.876<" in html and "0.0490" in html
    assert "8.876358" not in html


def test_style_table_escapes_cells():
    """A p-value such as "p < 1e-300" is text, not the start of a tag."""
    table = pd.DataFrame({"evidence": ["ρ = +0.58 (p < 1e-300)"], "n": [3]})
    html = plots.style_table(table).to_html()
    assert "(p &lt; 1e-300)" in html and "p < 1e-300" not in html


def test_config_table_from_configs():
    configs = [RunConfig("LastFM", seed=s) for s in (0, 1)]
    table = plots.config_table(configs)
    assert len(table) == 1  # seeds collapse into one setting
    row = table.iloc[0]
    assert row["maxlen"] == "50" and row["blocks"] == "2" and row["loss"] == "CE"
    assert row["optimizer"] == "Adam lr 0.0005, wd 1e-08"


def test_config_table_blanks_settings_a_model_does_not_use():
    """ZeroBlock and STAMP have no blocks, heads or dropout; MF-BPR has no sequence at all."""
    configs = [RunConfig("LastFM", model=m) for m in ("sasrec", "zero_block", "stamp", "mf_bpr")]
    table = plots.config_table(configs).set_index("model")
    assert table.loc["sasrec", "blocks"] == "2" and table.loc["sasrec", "dropout"] == "0.6"
    for model in ("zero_block", "stamp"):
        assert (table.loc[model, ["blocks", "heads", "dropout"]] == "–").all()
        assert table.loc[model, "maxlen"] == "50"  # it still cuts the training sequences
    assert (table.loc["mf_bpr", ["maxlen", "blocks", "layout"]] == "–").all()
    assert plots.config_table([RunConfig("LastFM", num_blocks=0)]).iloc[0]["heads"] == "–"


def test_provenance_caption_accepts_runs_lists_and_strings():
    runs = SimpleNamespace(provenance="3 runs · device: cpu", chapter="maxlen")
    assert plots.provenance_caption(runs) == "Runs shown: 3 runs · device: cpu"
    assert plots.provenance_caption("x") == "Runs shown: x"
    assert plots.provenance_caption([runs, runs]).count("maxlen: ") == 2


def test_chapter_provenance_names_devices_seeds_and_code_commits():
    """The provenance line lists each distinct device and seqnb commit (short, '+dirty'
    kept) of the runs shown."""
    from seqnb.chapter import ChapterRuns

    frame = pd.DataFrame({
        "started": ["2026-12-01T10:00:00", "2026-12-02T09:00:00", "2026-12-02T11:00:00"],
        "device_name": ["cpu (A)", "cpu (B)", "cpu (B)"],
        "epochs_run": [100, 100, 80],
        "seed": [0, 0, 1],
        "git_commit": ["a" * 40, "b" * 40 + "+dirty", "c" * 40],
        # the third run was resumed: begun at commit a, finished at c
        "code_commits": [("a" * 40,), ("b" * 40 + "+dirty",), ("a" * 40, "c" * 40)],
    })
    runs = ChapterRuns("maxlen", "book", [], [], [], store=None, frame=frame)  # type: ignore[arg-type]
    assert runs.provenance == (
        "3 runs · device: cpu (A); cpu (B) · trained 2026-12-01 to 2026-12-02 · "
        "epochs: 80, 100 · seeds: 0, 1 (2) · code: aaaaaaa, bbbbbbb+dirty, ccccccc"
    )


def test_provenance_sums_up_many_commits_in_the_order_runs_started():
    """More than four commits: their count, the first and the last by run start, how many
    had uncommitted changes, and where each run's own commit is listed."""
    from seqnb.chapter import MAX_COMMITS_LISTED, code_summary

    letters = "fedcba"  # started in this order, so not alphabetical
    frame = pd.DataFrame({
        "started": [f"2026-12-0{i + 1}T10:00:00" for i in range(6)][::-1],
        "code_commits": [(c * 40 + ("+dirty" if c == "d" else ""),) for c in letters][::-1],
    })
    assert len(letters) > MAX_COMMITS_LISTED
    assert code_summary(frame) == (
        "6 commits, from fffffff to aaaaaaa (1 with uncommitted changes); "
        "each run's: python -m seqnb results")
    assert code_summary(frame.iloc[:4]) == "aaaaaaa, bbbbbbb, ccccccc, ddddddd+dirty"
    assert code_summary(frame.iloc[:0]) == ""


# ----- convergence ---------------------------------------------------------------------------
def _curve_result(model, seed, values, every=10, best=None, **config):
    curve = [{"epoch": every * (i + 1), "metrics": {"NDCG@10": v, "HR@10": 2 * v}}
             for i, v in enumerate(values)]
    return {"config": {"dataset": "A", "model": model, "seed": seed, "num_blocks": 2,
                       "layout": "all_positions", "maxlen": 50, **config},
            "valid_curve": curve, "best_epoch": best or curve[-1]["epoch"]}


def test_validation_curves_are_long_form_with_the_kept_epoch_marked():
    results = [_curve_result("sasrec", 0, [0.1, 0.2, 0.15], best=20),
               _curve_result("zero_block", 1, [0.05])]
    curves = analysis.validation_curves(results)
    assert list(curves["setting"]) == ["SASRec (2 blocks)"] * 3 + ["ZeroBlock"]
    assert list(curves["epoch"]) == [10, 20, 30, 10]
    assert list(curves["value"]) == [0.1, 0.2, 0.15, 0.05]
    assert list(curves["best"]) == [False, True, False, True]
    assert list(analysis.validation_curves(results, "HR@10")["value"])[:2] == [0.2, 0.4]
    assert analysis.validation_curves([]).empty


def test_late_gain_averages_the_last_window_rise_over_seeds():
    """Hand-worked: seed 0 rises 0.10 -> 0.12 (+20 %), seed 1 0.10 -> 0.11 (+10 %) over the
    last 10 epochs: +15 % from 2 seeds. A run evaluated only every 20 epochs cannot reach
    back 10 epochs and is left out; a flat one gives 0."""
    results = [_curve_result("sasrec", 0, [0.05, 0.10, 0.12]),
               _curve_result("sasrec", 1, [0.07, 0.10, 0.11]),
               _curve_result("zero_block", 0, [0.08, 0.09], every=20),
               _curve_result("stamp", 0, [0.04, 0.04])]
    late = analysis.late_gain(analysis.validation_curves(results)).set_index("setting")
    assert late.loc["SASRec (2 blocks)", "late_gain"] == pytest.approx(0.15)
    assert late.loc["SASRec (2 blocks)", "seeds"] == 2
    assert late.loc["SASRec (2 blocks)", "last_epoch"] == 30
    assert set(late["window"]) == {10}
    assert late.loc["STAMP (full)", "late_gain"] == pytest.approx(0.0)
    assert "ZeroBlock" not in late.index
    assert analysis.late_gain(analysis.validation_curves([])).empty


def test_convergence_sentence_names_only_settings_still_rising():
    late = pd.DataFrame({"dataset": ["A", "A", "B"], "setting": ["x", "y", "x"],
                         "last_epoch": [100] * 3, "window": [10] * 3,
                         "late_gain": [0.2, 0.01, -0.003], "seeds": [1] * 3})
    text = analysis.convergence_sentence(late)
    assert text.startswith("Over the last 10 epochs")
    assert "**A**: x still rose +20.0\u00a0%" in text and "y still rose" not in text
    assert "**B**: every setting had levelled off (largest change −0.3\u00a0%)" in text
    assert "longer training would likely raise" in text
    flat = analysis.convergence_sentence(late[late["dataset"] == "B"])
    assert "levelled off" in flat and "longer training" not in flat
    assert analysis.convergence_sentence(late.assign(window=5)).startswith("Over the last 5 ")
    assert "evaluated often enough" in analysis.convergence_sentence(late.iloc[:0])
    with pytest.raises(ValueError, match="several windows"):
        analysis.convergence_sentence(late.assign(window=[10, 10, 5]))


def test_validation_chart_draws_one_line_per_run_and_the_kept_epochs():
    results = [_curve_result("sasrec", s, [0.1, 0.2, 0.15], best=20) for s in (0, 1)]
    curves = analysis.validation_curves(results)
    spec = plots.validation_chart(curves, ["ZeroBlock", "SASRec (2 blocks)"]).to_dict()
    lines, dots = spec["layer"]
    assert lines["mark"]["type"] == "line" and lines["encoding"]["detail"]["field"] == "seed"
    assert dots["mark"]["type"] == "point"
    assert spec["layer"][0]["encoding"]["color"]["scale"]["domain"] == ["SASRec (2 blocks)"]
    values = next(iter(spec["datasets"].values()))
    assert sum(v["best"] for v in values) == 2 and len(values) == 6


def test_empty_note_is_marked_as_a_note_without_numbers():
    """The chapter tests let a note stand without provenance only when it is marked."""
    spec = plots.empty_note("No stored runs yet.").to_dict()
    assert spec["usermeta"] == {"seqnb": "note"}
    assert next(iter(spec["datasets"].values())) == [{"text": "No stored runs yet."}]


def test_grid_coverage_counts_stored_runs_per_chapter_and_data_set(tmp_path):
    """Against a brute-force count over the chapters' configurations, with three planted
    results: two STAMP runs and the shuffle run, which Chapter 2's grid shares."""
    from seqnb.experiments import TRAINING_CHAPTERS, chapter_configs
    from seqnb.results import ResultStore

    store = ResultStore(tmp_path)
    beauty = "Amazon2014Beauty_550_LOU"
    planted = [*chapter_configs("stamp", "full", datasets=[beauty], seeds=[0])[:2],
               chapter_configs("shuffle", "full", datasets=[beauty], seeds=[1])[0]]
    for c in planted:
        store.json_path(c.run_id).parent.mkdir(parents=True, exist_ok=True)
        store.json_path(c.run_id).write_text("{}")
    coverage = analysis.grid_coverage(tmp_path).set_index(["chapter", "dataset"])
    assert coverage.loc[("stamp", beauty), "stored"] == 2
    assert coverage.loc[("shuffle", beauty), "stored"] == 1
    assert coverage.loc[("zero_block", beauty), "stored"] == 1  # the shared run
    assert coverage["stored"].sum() == 4
    for chapter in TRAINING_CHAPTERS:
        assert coverage.loc[chapter, "runs"].sum() == len(chapter_configs(chapter, "full"))
    unique = analysis.grid_coverage(tmp_path, unique=True)
    every_id = {c.run_id for ch in TRAINING_CHAPTERS for c in chapter_configs(ch, "full")}
    assert unique["runs"].sum() == len(every_id)
    assert unique["stored"].sum() == 3
    table = plots.coverage_table(analysis.grid_coverage(tmp_path)).data
    stamp_runs = len(chapter_configs("stamp", "full", datasets=[beauty]))
    assert table.set_index("chapter").loc["3. STAMP", "Beauty"] == f"2 / {stamp_runs}"
    assert table.set_index("chapter").loc["6. embedding frequency", "Toys"] == "–"
