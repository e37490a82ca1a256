"""Chapter 5's consecutive-shared-attribute measure and Chapter 6's per-item analysis.

Every expected value is worked out by hand or by a brute-force loop written here, never
copied from a previous run.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from seqnb import genres
from seqnb.data import from_sequences
from seqnb.metrics import per_item_metrics
from seqnb.plots import frequency as freq

# ----- a hand-worked example ----------------------------------------------------------------
# items and their attribute sets; "e" has none
ATTRS = {"a": ["A"], "b": ["A", "B"], "c": ["C"], "d": ["B", "C"], "e": []}
# user 0: (a,b) share A · (b,c) no · (c,d) share C          -> 2 of 3 pairs
# user 1: (c,a) no · (a,e) no · (e,d) no · (d,d) share B, C  -> 1 of 4 pairs
SEQS = [["a", "b", "c", "d"], ["c", "a", "e", "d", "d"]]


def hand_dataset():
    return from_sequences("hand", SEQS, item_attributes=ATTRS)


def test_consecutive_share_matches_the_hand_count():
    result = genres.consecutive_share(hand_dataset(), permutations=5, seed=0,
                                      max_attribute_share=None)
    assert result.observed.tolist() == [2, 1]
    assert result.pairs.tolist() == [3, 4]
    assert result.observed_share == pytest.approx(3 / 7)
    per_user = result.per_user()
    assert per_user["observed_share"].tolist() == pytest.approx([2 / 3, 1 / 4])
    hits, pairs = genres.consecutive_hits(hand_dataset().sequences,
                                          genres.attribute_sets(hand_dataset().item_attributes,
                                                                None))
    assert hits.tolist() == [2, 1] and pairs.tolist() == [3, 4]


def test_item_without_attributes_shares_nothing_even_with_itself():
    ds = from_sequences("empty", [["e", "e", "a"]], item_attributes=ATTRS)
    sets = genres.attribute_sets(ds.item_attributes, None)
    hits, _ = genres.consecutive_hits(ds.sequences, sets)
    assert hits.tolist() == [0]


def test_multi_word_bitsets_agree_with_python_sets():
    rng = np.random.default_rng(3)
    labels = [f"t{j}" for j in range(150)]  # three 64-bit words
    attrs = [[]] + [list(rng.choice(labels, size=rng.integers(0, 4), replace=False))
                    for _ in range(200)]
    sets = genres.attribute_sets(attrs, None)
    assert sets.bits.shape[1] == 3
    a = rng.integers(1, 201, size=5000)
    b = rng.integers(1, 201, size=5000)
    expected = [bool(set(attrs[i]) & set(attrs[j])) for i, j in zip(a, b, strict=True)]
    assert genres.shares_attribute(sets, a, b).tolist() == expected


def test_attributes_on_every_item_are_dropped():
    attrs = [[], ["root", "x"], ["root", "y"], ["root", "x"]]
    sets = genres.attribute_sets(attrs, max_attribute_share=0.95)
    assert sets.dropped == {"root": 1.0}
    assert "root" not in sets.kept
    # without the root, items 1 and 2 share nothing; 1 and 3 still share x
    assert genres.shares_attribute(sets, np.array([1, 1]), np.array([2, 3])).tolist() == [
        False, True]
    kept_all = genres.attribute_sets(attrs, max_attribute_share=None)
    assert genres.shares_attribute(kept_all, np.array([1]), np.array([2])).tolist() == [True]


# ----- the permutation baseline -------------------------------------------------------------
def random_dataset(seed: int = 0, users: int = 40, items: int = 30, genres_per: int = 2):
    rng = np.random.default_rng(seed)
    pool = ["g1", "g2", "g3", "g4", "g5"]
    attrs = {i: list(rng.choice(pool, size=rng.integers(1, genres_per + 1), replace=False))
             for i in range(items)}
    seqs = [list(rng.choice(items, size=rng.integers(3, 12), replace=False))
            for _ in range(users)]
    return from_sequences("random", seqs, item_attributes=attrs)


def test_baseline_is_reproducible_and_seeded():
    ds = random_dataset()
    one = genres.consecutive_share(ds, permutations=30, seed=7)
    two = genres.consecutive_share(ds, permutations=30, seed=7)
    other = genres.consecutive_share(ds, permutations=30, seed=8)
    np.testing.assert_array_equal(one.permuted, two.permuted)
    assert one.gap_ci() == two.gap_ci()
    assert not np.array_equal(one.permuted, other.permuted)


def test_identical_genres_give_share_one_under_every_permutation():
    seqs = [[1, 2, 3, 4], [5, 6, 7], [2, 7, 1, 6, 3]]
    attrs = {i: ["Drama"] for i in range(1, 8)}
    ds = from_sequences("drama", seqs, item_attributes=attrs)
    result = genres.consecutive_share(ds, permutations=25, seed=0, max_attribute_share=None)
    assert result.observed_share == 1.0
    assert np.all(result.permuted_shares == 1.0)
    assert result.gap == 0.0
    assert result.gap_ci() == (0.0, 0.0)


def test_a_permutation_keeps_each_users_items():
    ds = random_dataset(seed=1)
    layout = genres._Layout(ds.sequences)
    shuffled = layout.permuted(np.random.default_rng(0))
    starts = np.concatenate([[0], np.cumsum(layout.lengths)])
    changed = 0
    for u, seq in enumerate(ds.sequences):
        part = shuffled[starts[u]:starts[u + 1]]
        assert sorted(part.tolist()) == sorted(seq.tolist())
        changed += not np.array_equal(part, seq)
    assert changed > 0


def test_permuted_share_matches_its_exact_expectation():
    """Under a uniform random order every ordered pair of distinct positions is equally
    likely to be adjacent, so E[hits] = (n - 1) * (#sharing ordered pairs) / (n (n - 1))."""
    seq = ["a", "b", "c", "d", "b2", "c2"]
    attrs = {**ATTRS, "b2": ["B"], "c2": ["C", "D"]}
    ds = from_sequences("one", [seq], item_attributes=attrs)
    result = genres.consecutive_share(ds, permutations=4000, seed=1, max_attribute_share=None)
    sets = {k: set(v) for k, v in attrs.items()}
    n = len(seq)
    sharing = sum(bool(sets[x] & sets[y]) for x, y in itertools.permutations(seq, 2))
    expected = (n - 1) * sharing / (n * (n - 1)) / (n - 1)
    assert result.permuted_share == pytest.approx(expected, abs=0.01)


def test_summary_is_consistent():
    ds = random_dataset(seed=2)
    result = genres.consecutive_share(ds, permutations=50, seed=0, bootstrap=300)
    s = result.summary()
    assert s["gap"] == pytest.approx(s["observed share"] - s["permuted share"])
    assert s["gap low"] <= s["gap"] <= s["gap high"]
    assert 1 / 51 <= s["p-value"] <= 1.0
    assert s["users"] == ds.num_users and s["pairs"] == sum(len(x) - 1 for x in ds.sequences)


def test_bootstrap_interval_brackets_a_known_gap():
    # every user: 10 pairs, observed 6 hits, expected 4 -> the gap is 0.2 for any resample
    observed = np.full(50, 6)
    expected = np.full(50, 4.0)
    pairs = np.full(50, 10)
    assert genres.bootstrap_gap_ci(observed, expected, pairs, 200) == pytest.approx((0.2, 0.2))


# ----- genre strip and parameters -----------------------------------------------------------
def test_genre_strip_rows():
    ds = from_sequences("strip", {"u1": ["a", "b", "c", "d"], "u2": ["c", "a", "e"]},
                        item_attributes=ATTRS, item_titles={k: k.upper() for k in ATTRS})
    strip = genres.genre_strip(ds, ["u1"], max_positions=3, max_attribute_share=None)
    assert strip["position"].tolist() == [1, 2, 3]
    assert strip["title"].tolist() == ["A", "B", "C"]
    assert strip["primary"].tolist() == ["A", "A", "C"]
    assert strip["genres"].tolist() == ["A", "A, B", "C"]
    assert strip["shares_previous"].tolist() == [False, True, False]
    assert set(strip["length"]) == {4}
    picked = genres.choose_users(ds, "random 2", seed=0)
    assert sorted(picked) == [0, 1]
    with pytest.raises(ValueError, match="unknown user id"):
        genres.choose_users(ds, ["nobody"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"users": "best 5", "permutations": 10}, "users must be"),
        ({"users": [], "permutations": 10}, "users must be"),
        ({"users": "random 5", "permutations": 0}, "permutations must be a positive integer"),
        ({"users": "random 5", "permutations": 10, "max_users": 1}, "max_users"),
        ({"users": "random 5", "permutations": 10, "max_attribute_share": 2.0},
         "max_attribute_share"),
        ({"users": "random 5", "permutations": 10, "confidence": 1.5}, "confidence"),
    ],
)
def test_bad_genre_parameters_fail_fast(kwargs, message):
    with pytest.raises(ValueError, match=message):
        genres.check_genre_parameters(**kwargs)


def test_genre_settings_trim_the_smoke_profile():
    smoke = genres.genre_settings("smoke", 200, None)
    assert smoke.permutations == genres.SMOKE_PERMUTATIONS
    assert smoke.max_users == genres.SMOKE_USERS
    book = genres.genre_settings("book", 200, None)
    assert (book.permutations, book.max_users) == (200, None)


def test_shuffle_drops_from_a_run_frame():
    frame = pd.DataFrame({
        "dataset": ["X", "X", "Y"], "seed": [0, 1, 0],
        "NDCG@10": [0.2, 0.4, 0.1],
        "test_shuffled_window:NDCG@10": [0.1, 0.2, 0.1],
        "test_shuffled_history:NDCG@10": [0.15, 0.3, 0.05],
    })
    drops = genres.shuffle_drops(frame).set_index(["dataset", "protocol"])
    assert drops.loc[("X", "window"), "relative_change"] == pytest.approx(0.15 / 0.3 - 1)
    assert drops.loc[("X", "window"), "seeds"] == 2
    assert drops.loc[("Y", "history"), "relative_change"] == pytest.approx(-0.5)
    assert genres.shuffle_drops(pd.DataFrame()).empty


# ----- Chapter 6: per-item aggregation --------------------------------------------------------
def brute_per_item(ranks, targets, num_items, k):
    recall = np.full(num_items + 1, np.nan)
    ndcg = np.full(num_items + 1, np.nan)
    count = np.zeros(num_items + 1)
    for item in range(num_items + 1):
        rows = [r for r, t in zip(ranks, targets, strict=True) if t == item]
        count[item] = len(rows)
        if rows:
            recall[item] = sum(r <= k for r in rows) / len(rows)
            ndcg[item] = sum(1 / math.log2(r + 1) if r <= k else 0.0 for r in rows) / len(rows)
    return recall, ndcg, count


def test_per_item_metrics_match_a_brute_force_loop():
    rng = np.random.default_rng(0)
    num_items, k = 25, 10
    ranks = rng.integers(1, 40, size=300)
    targets = rng.integers(1, num_items + 1, size=300)
    got = per_item_metrics(ranks, targets, num_items, k)
    recall, ndcg, count = brute_per_item(ranks, targets, num_items, k)
    np.testing.assert_allclose(got["count"], count)
    np.testing.assert_allclose(got[f"Recall@{k}"], recall, equal_nan=True)
    np.testing.assert_allclose(got[f"NDCG@{k}"], ndcg, equal_nan=True)


@dataclass
class FakeRuns:
    """What the Chapter 6 helpers need from ``ChapterRuns``: a frame and stored arrays."""

    frame: pd.DataFrame
    stored: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    profile: str = "smoke"

    def arrays(self, run_id: str) -> dict[str, np.ndarray]:
        return self.stored[run_id]


@pytest.fixture
def small_world(monkeypatch):
    """A data set of 60 users / 12 items and two seeds of two models' stored arrays."""
    rng = np.random.default_rng(4)
    seqs = [list(rng.choice(np.arange(1, 13), size=rng.integers(3, 7), replace=False))
            for _ in range(60)]
    ds = from_sequences("tiny", seqs)
    monkeypatch.setattr(freq, "trained_dataset", lambda name, max_users=None: ds)
    rows, stored = [], {}
    for model in ("mf_bpr", "sasrec"):
        for seed in (0, 1):
            for band, self_loops in ((None, True), ((0, 1), True), ((0, 1), False)):
                run_id = f"{model}-{seed}-{band}-{self_loops}"
                ranks = rng.integers(1, 20, size=ds.num_users).astype(np.uint8)
                stored[run_id] = {
                    "test_ranks": ranks,
                    "item_norms": rng.random(ds.num_items + 1).astype(np.float16),
                    "item_frequency": ds.item_frequency.astype(np.int32),
                }
                hit = ranks.astype(float) <= 10
                rows.append({"run_id": run_id, "dataset": "tiny", "model": model,
                             "seed": seed, "smooth_band": band, "smooth_self_loops": self_loops,
                             "max_users": None,
                             "NDCG@10": float(np.mean(np.where(
                                 hit, 1 / np.log2(ranks.astype(float) + 1), 0.0)))})
    return ds, FakeRuns(pd.DataFrame(rows), stored)


def test_item_table_pools_seeds_like_a_brute_force_loop(small_world):
    ds, runs = small_world
    table = freq.item_table(runs, "tiny", "mf_bpr", k=10).set_index("item")
    ids = ["mf_bpr-0-None-True", "mf_bpr-1-None-True"]
    ranks = np.concatenate([runs.stored[i]["test_ranks"].astype(int) for i in ids])
    targets = np.concatenate([ds.test_targets, ds.test_targets])
    recall, ndcg, count = brute_per_item(ranks, targets, ds.num_items, 10)
    for item in range(1, ds.num_items + 1):
        row = table.loc[item]
        assert row["test_cases"] == count[item] / 2
        assert row["frequency"] == ds.item_frequency[item]
        norms = [float(runs.stored[i]["item_norms"][item]) for i in ids]
        assert row["norm"] == pytest.approx(np.mean(norms))
        if count[item]:
            assert row["Recall@10"] == pytest.approx(recall[item])
            assert row["NDCG@10"] == pytest.approx(ndcg[item])
        else:
            assert np.isnan(row["Recall@10"])


def test_frequency_bins_one_item_per_bin(small_world):
    _, runs = small_world
    items = freq.item_table(runs, "tiny", "sasrec")
    bins = freq.frequency_bins(items, bins=len(items))
    norm = bins[bins["panel"] == "embedding L2 norm"].sort_values("bin")
    ordered = items.sort_values(["frequency", "item"], ascending=[False, True])
    np.testing.assert_allclose(norm["value"], ordered["norm"])
    freq_panel = bins[bins["panel"] == "training frequency"].sort_values("bin")
    assert freq_panel["value"].is_monotonic_decreasing
    recall = bins[bins["panel"] == "Recall@10"]
    assert (recall["high"].dropna() <= 1).all() and (recall["low"].dropna() >= 0).all()


def test_self_term_comparison_counts_only_bands_stored_both_ways():
    rows = [  # MF-BPR: [0, 1] both ways (with higher), [0, 3] with only; SASRec: both lower
        ("MF-BPR", "with self term", "[0, 1]", 0.02), ("MF-BPR", "without self term", "[0, 1]", 0.01),
        ("MF-BPR", "with self term", "[0, 3]", 0.03),
        ("SASRec", "with self term", "[0, 1]", 0.01), ("SASRec", "without self term", "[0, 1]", 0.02),
        ("SASRec", "with self term", "[1, 1]", 0.01), ("SASRec", "without self term", "[1, 1]", 0.03),
        # never-trained items only: the same model either way, not compared
        ("MF-BPR", "with self term", "[0, 0]", 0.02), ("MF-BPR", "without self term", "[0, 0]", 0.01),
    ]
    bands = pd.DataFrame([{"dataset": "tiny", "model": m, "self term": t, "band": b, "mean": v,
                           "u": int(b.strip("[]").split(", ")[1])} for m, t, b, v in rows])
    out = freq.self_term_comparison(bands).set_index("model")
    assert out.loc["MF-BPR", "bands compared"] == 1
    assert out.loc["MF-BPR", "higher with self term"] == 1
    assert out.loc["SASRec", "bands compared"] == 2
    assert out.loc["SASRec", "higher with self term"] == 0
    one_way = bands[bands["self term"] == "with self term"]
    assert freq.self_term_comparison(one_way).empty


def test_band_table_change_is_paired_by_seed(small_world):
    ds, runs = small_world
    bands = freq.band_table(runs)
    frame = runs.frame
    for model, label in (("mf_bpr", "MF-BPR"), ("sasrec", "SASRec")):
        for self_loops, self_label in ((True, "with self term"), (False, "without self term")):
            row = bands[(bands["model"] == label) & (bands["self term"] == self_label)].iloc[0]
            band = frame[(frame["model"] == model) & frame["smooth_band"].notna()
                         & (frame["smooth_self_loops"] == self_loops)].set_index("seed")
            plain = frame[(frame["model"] == model) & frame["smooth_band"].isna()].set_index(
                "seed")
            assert row["delta"] == pytest.approx((band["NDCG@10"] - plain["NDCG@10"]).mean())
            assert row["mean"] == pytest.approx(band["NDCG@10"].mean())
            assert row["seeds"] == 2
            assert 0 <= row["p"] <= 1
    f = ds.item_frequency[1:]
    assert bands["items in band"].iloc[0] == int(((f >= 0) & (f <= 1)).sum())


def test_band_of_never_trained_items_fills_both_self_term_rows(small_world):
    """A [0, 0] run is stored once (with the self term, see RunConfig); band_table shows it
    under both labels, and self_term_comparison does not count it."""
    _, runs = small_world
    frame = runs.frame
    one_band = frame["smooth_band"].apply(lambda b: b == (0, 1)) & frame["smooth_self_loops"]
    zero = frame[one_band].assign(smooth_band=[(0, 0)] * int(one_band.sum()))
    zero["run_id"] = zero["run_id"] + "-zero"
    stored = {**runs.stored, **{f"{k}-zero": v for k, v in runs.stored.items()}}
    bands = freq.band_table(FakeRuns(pd.concat([frame, zero], ignore_index=True), stored))
    both = bands[bands["band"] == "[0, 0]"]
    assert sorted(both["self term"]) == ["with self term"] * 2 + ["without self term"] * 2
    for _, pair in both.groupby("model"):
        assert pair.drop(columns="self term").nunique().max() == 1  # identical rows
    compared = freq.self_term_comparison(bands).set_index("model")["bands compared"]
    assert (compared == 1).all()  # [0, 1] only


def test_claims_on_planted_norms():
    rng = np.random.default_rng(0)
    frequency = np.concatenate([np.zeros(50, int), rng.integers(1, 500, size=950)])
    items = pd.concat([
        pd.DataFrame({"dataset": "D", "model": "MF-BPR", "item": np.arange(1000),
                      "frequency": frequency,
                      "norm": np.where(frequency == 0, 0.05, np.log1p(frequency))}),
        pd.DataFrame({"dataset": "D", "model": "SASRec", "item": np.arange(1000),
                      "frequency": frequency,
                      "norm": np.where(frequency == 0, 0.05, 1 + 0.01 * rng.random(1000))}),
    ])
    stats = freq.norm_frequency_stats(items)
    claims = freq.claim_checks(stats, tolerance=0.25)
    assert (claims["verdict"] == "holds").all(), claims
    # flat MF norms break the MF claim
    flat = items.assign(norm=np.where(items["model"] == "MF-BPR", 1.0, items["norm"]))
    verdicts = freq.claim_checks(freq.norm_frequency_stats(flat)).set_index(["model", "claim"])
    assert verdicts.loc[("MF-BPR", "norm grows with training frequency"), "verdict"] == \
        "does not hold"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"band_edges": [3, 1]}, "band_edges must be"),
        ({"band_edges": [0, -1]}, "band_edges must be"),
        ({"bins": 1}, "bins must be"),
        ({"k": 300}, "k must be"),
        ({"tolerance": 1.5}, "tolerance must be"),
    ],
)
def test_bad_frequency_parameters_fail_fast(kwargs, message):
    with pytest.raises(ValueError, match=message):
        freq.check_frequency_parameters(**kwargs)


def test_band_heatmaps_render_with_a_single_stored_band(small_world):
    """One band per model and one seed (a grid that has just started): every heatmap cell
    has the same value, and the chart still builds a valid Vega-Lite spec."""
    _, runs = small_world
    frame = runs.frame
    keep = (frame["seed"] == 0) & (frame["smooth_band"].isna() | frame["smooth_self_loops"])
    one = FakeRuns(frame[keep].reset_index(drop=True), runs.stored)
    bands = freq.band_table(one)
    assert len(bands) == 2  # one cell per model
    freq.band_heatmaps(bands).to_dict()  # validates against the schema


def test_comparison_chart_keeps_data_sets_with_one_short_name_apart():
    """Beauty_550 and Beauty_554 are both 'Beauty': their rows must not merge."""
    from seqnb.plots import genres as genre_plots

    names = ["Amazon2014Beauty_550_LOU", "Amazon2014Beauty_554_LOU", "LastFM"]
    summary = pd.DataFrame({
        "dataset": names, "observed share": [0.5, 0.4, 0.3],
        "permuted share": [0.2, 0.2, 0.2], "gap": [0.3, 0.2, 0.1],
        "gap low": [0.25, 0.15, 0.05], "gap high": [0.35, 0.25, 0.15],
        "ratio": [2.5, 2.0, 1.5], "p-value": [0.001] * 3, "users": [10] * 3,
        "attributes": [5] * 3,
    })
    spec = genre_plots.comparison_chart(summary).to_dict()
    rows = [row for data in spec["datasets"].values() for row in data if "name" in row]
    assert {row["dataset"]: row["name"] for row in rows} == {
        "Amazon2014Beauty_550_LOU": "Amazon2014Beauty_550_LOU",
        "Amazon2014Beauty_554_LOU": "Amazon2014Beauty_554_LOU", "LastFM": "LastFM"}


def test_uneven_seeds_note_counts_cells_per_model():
    bands = pd.DataFrame({"dataset": "tiny", "model": ["MF-BPR"] * 3 + ["SASRec"] * 2,
                          "seeds": [3, 1, 1, 2, 2]})
    note = freq.uneven_seeds_note(bands)
    assert "MF-BPR on tiny: 1 with 3 seeds, 2 with 1 seed;" in note
    assert "SASRec on tiny: 2 with 2 seeds)" in note
    assert freq.uneven_seeds_note(bands.assign(seeds=3)) == ""
    assert freq.uneven_seeds_note(bands.iloc[:0]) == ""


def test_band_table_says_whether_the_seeds_agree(small_world):
    """'seeds agree' against the per-seed changes computed from the stored runs directly."""
    _, runs = small_world
    frame = runs.frame
    bands = freq.band_table(runs)
    for model, label in (("mf_bpr", "MF-BPR"), ("sasrec", "SASRec")):
        plain = frame[(frame["model"] == model) & frame["smooth_band"].isna()].set_index("seed")
        for self_loops, self_label in ((True, "with self term"), (False, "without self term")):
            band = frame[(frame["model"] == model) & frame["smooth_band"].notna()
                         & (frame["smooth_self_loops"] == self_loops)].set_index("seed")
            change = band["NDCG@10"] - plain["NDCG@10"]
            row = bands[(bands["model"] == label) & (bands["self term"] == self_label)].iloc[0]
            assert row["seeds agree"] == float((change > 0).all() or (change < 0).all())


def test_seed_agreement_counts_settings_with_several_seeds():
    bands = pd.DataFrame([  # model, self term, u, seeds agree
        ("SASRec", "with self term", 3, 1.0), ("SASRec", "without self term", 3, 0.0),
        ("SASRec", "with self term", 10, np.nan),  # one seed: not counted
        ("SASRec", "with self term", 0, 1.0), ("SASRec", "without self term", 0, 1.0),  # one run
        ("MF-BPR", "with self term", 3, np.nan),
    ], columns=["model", "self term", "u", "seeds agree"]).assign(dataset="tiny")
    out = freq.seed_agreement(bands).set_index("model")
    assert out.loc["SASRec", "settings"] == 3 and out.loc["SASRec", "seeds agree"] == 2
    assert "MF-BPR" not in out.index
    assert freq.seed_agreement(bands[bands["model"] == "MF-BPR"]).empty


def test_chapter6_charts_build_with_two_data_sets(small_world):
    """The book's default shows Beauty and Yelp: with two data sets each chart gets a data
    set selector, and all three must still build valid Vega-Lite specs (Altair 6 refused a
    selector added to one faceted row of the frequency panels)."""
    _, runs = small_world
    items = freq.item_table(runs, "tiny", "mf_bpr", k=10)
    two = pd.concat([items, items.assign(dataset="tiny2")], ignore_index=True)
    bands = freq.band_table(runs)
    two_bands = pd.concat([bands, bands.assign(dataset="tiny2")], ignore_index=True)
    charts = [freq.frequency_panels(freq.frequency_bins(two, bins=4, k=10), k=10),
              freq.norm_scatter(two, freq.norm_frequency_stats(two)),
              freq.band_heatmaps(two_bands)]
    for chart in charts:
        spec = chart.to_dict()  # validates against the schema
        params = [p for p in spec.get("params", []) if "bind" in p]
        assert [p["bind"]["options"] for p in params] == [["tiny", "tiny2"]]
    # the scatter states the correlation of each data set, whichever the selector shows
    subtitles = [panel["title"]["subtitle"] for panel in charts[1].to_dict()["hconcat"]]
    assert [[line.split(":")[0] for line in lines] for lines in subtitles] == [
        ["tiny", "tiny2"]]  # one model (MF-BPR), two data sets
    assert all("Spearman ρ = " in line for lines in subtitles for line in lines)
