# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. MovieLens genres: where does its sequentiality come from?
#
# The {doc}`shuffle chapter <shuffle>` asks whether the order of the earlier items of a
# user's history matters to a trained SASRec. In the notes MovieLens-1M
# {cite:p}`harper2015movielens` is the one data set where permuting the history hurts; on
# the Amazon, Yelp and LastFM data sets it changes little. This chapter looks for the
# reason in the data itself — no model is trained here.
#
# The hypothesis: MovieLens users rate movies in runs of similar movies, so the genre of
# the next movie is predictable from the genres of the last few, and a model that sees a
# shuffled history loses that cue. We make the runs visible, then count them:
#
# * **The genre strip.** One row per user, one cell per movie in time order, coloured by
#   genre.
# * **The measure.** For a user with items $v_1, \dots, v_n$ and attribute sets $G(v)$
#   (genres here), the *consecutive-shared-attribute share* is
#   $$s = \frac{1}{n-1} \sum_{t=1}^{n-1} \mathbf{1}\left[G(v_t) \cap G(v_{t+1}) \neq \emptyset\right],$$
#   the fraction of consecutive pairs that share at least one genre. Pooled over users
#   (every pair counts once) it is the *overall* share.
# * **The baseline.** The same quantity for the same users with each sequence randomly
#   permuted: the user keeps exactly the same movies, only their order is lost. A user who
#   watches only dramas scores 1 either way; the baseline removes what taste alone
#   explains. The *gap* (observed minus permuted share, in percentage points) is what the
#   order adds.
#
# The same measure then runs on every data set we hold that has item attributes: Amazon
# categories and brand {cite:p}`mcauley2015image`, Yelp business categories
# {cite:p}`yelpdataset` and LastFM tags {cite:p}`cantador2011hetrec`, all from the S3Rec
# release {cite:p}`zhou2020s3rec`. Everything here is computed live, in every profile.

# %% tags=["parameters"]
# "smoke" (300 users, 20 permutations) | "book" | "full": all computed live
profile = "book"
# the data set of the genre strip and the per-user analysis
dataset = "MovieLens1M_550_LOU"
# the comparison; None: every held data set with item attributes
datasets = None
# seeds of the stored shuffle-chapter runs shown beside the measure
seeds = [0, 1, 2]
results_root = None  # result store of the shuffle runs; None: results/
# genre strip: "random k" (seeded) or a list of MovieLens UserIDs
users = "random 5"
strip_seed = 0  # seed of the "random k" choice
# movies shown per strip (the first ones); None: whole sequences
max_positions = 200
permutations = 200  # random permutations of every user's sequence
permutation_seed = 0
# None: every user; an integer: a seeded subsample of that many users
max_users = None
# drop attributes carried by more than this share of the items
max_attribute_share = 0.95
confidence = 0.95  # level of the bootstrap interval of the gap

# %%
# Validate every parameter before any work (a bad value fails here, with
# the allowed ones).
from seqnb.chapter import check_parameters
from seqnb.genres import check_genre_parameters, genre_settings

datasets = check_parameters("movielens_genres", profile, datasets, seeds)
check_parameters("movielens_genres", profile, [dataset], seeds)
check_genre_parameters(users, permutations, max_users, max_positions,
                       max_attribute_share, confidence)
settings = genre_settings(profile, permutations, max_users)

# %% tags=["hide-input"]
import datetime as dt
import math

import pandas as pd
from IPython.display import Markdown, display

from seqnb import analysis, genres, plots
from seqnb.chapter import HELD, chapter_runs, unavailable_datasets
from seqnb.data import data_root, load_dataset
from seqnb.paths import shown_path
from seqnb.plots import genres as genre_plots

plots.setup()


def pp(x: float) -> str:
    """A difference of shares in percentage points: '+25.2 pp'."""
    return f"{x * 100:+.1f} pp"


full = load_dataset(dataset)
if full.item_attributes is None:
    raise ValueError(f"{dataset} has no item attributes; pick one of "
                     f"{genres.attribute_datasets()}")
movielens = full
if settings.max_users is not None and full.num_users > settings.max_users:
    movielens = full.subsample_users(settings.max_users, seed=0)
computed = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
source = shown_path(data_root())  # as a reader's checkout has it
users_note = ("all users" if movielens is full
              else f"a seeded subsample of {movielens.num_users} users")
live = (f"Computed live {computed} from {source} · {users_note} · "
        f"{settings.permutations} permutations "
        f"(seed {permutation_seed}) · "
        f"{settings.bootstrap} bootstrap resamples · profile {profile}")
n_compared = (len(datasets) if datasets is not None
              else len(genres.attribute_datasets()))
display(Markdown(
    f"**Profile `{profile}`** — {dataset}: {users_note}; "
    f"{settings.permutations} permutations per user; comparison over "
    f"{n_compared} data sets."))
statistics = pd.DataFrame([full.statistics()])
statistics.columns = statistics.columns.str.replace("_", " ")  # they wrap
plots.style_table(statistics,
                  caption=f"{dataset} as loaded from {source}")

# %% [markdown]
# ## The genre strip
#
# Each row below is one user, each cell one rated movie, left to right in the order of the
# ratings. A movie usually has several genres: the cell's colour is its *first-listed*
# genre, and the tooltip lists all of them with the title and the position. The colour is
# a reading aid only; the measure below uses every genre. A dark tick under a cell means
# the movie shares at least one genre with the movie before it, so long unbroken ticks are
# genre runs.

# %% tags=["hide-input"]
listed = [list(g) for g in full.item_attributes[1:] if g]
alphabetical = sum(g == sorted(g) for g in listed) / len(listed)
multi = sum(len(g) > 1 for g in listed) / len(listed)
first = pd.Series([g[0] for g in listed]).value_counts() / len(listed)
anywhere = (pd.Series([x for g in listed for x in g]).value_counts()
            / len(listed))
kept = (first.reindex(anywhere.index).fillna(0) / anywhere).sort_values()
display(Markdown(
    f"{analysis.pct(multi, False)} of the movies have more than one "
    "genre, and `movies.dat` lists the genres of "
    f"{analysis.pct(alphabetical, False)} of them in alphabetical order"
    + (", so the colour is the alphabetically first genre. "
       if alphabetical > 0.99 else ". ")
    + f"That favours some genres: {kept.index[-1]} is the colour of "
    f"{analysis.pct(kept.iloc[-1], False)} of the movies that have it, "
    f"{kept.index[0]} of only {analysis.pct(kept.iloc[0], False)}."))

# %% tags=["hide-input"]
# the strip is cheap: it always draws from every user, in every profile
strip = genres.genre_strip(full, users, seed=strip_seed,
                           max_positions=max_positions,
                           max_attribute_share=max_attribute_share)
lengths = strip.groupby("label")["length"].first()
longer = lengths[lengths > (max_positions or math.inf)]
strip_note = (f"first {max_positions} movies of each user shown"
              + (f" ({len(longer)} of {len(lengths)} users have more)"
                 if len(longer) else "")
              if max_positions else "whole sequences shown")
genre_plots.genre_strip_chart(
    strip, genres=genre_plots.genre_order(strip, full.item_attributes),
    provenance=f"Computed live {computed} from {source} · "
               f"{dataset} · users {users!r}"
               + (f" (seed {strip_seed})" if isinstance(users, str)
                  else "")
               + f" of {full.num_users:,} · {strip_note}")

# %% [markdown]
# ## How often do consecutive movies share a genre?
#
# Every user's *full* chronological sequence is used (training, validation and test items):
# this is a property of the data, not of a split. Each permutation shuffles every user's
# sequence independently, from a seeded generator. The interval of the gap resamples users
# with replacement (percentile bootstrap), so it says how much the gap would move with
# another sample of users; the permutation p-value counts the permutations whose overall
# share reaches the observed one.

# %% tags=["hide-input"]
result = genres.consecutive_share(
    movielens, permutations=settings.permutations, seed=permutation_seed,
    max_attribute_share=max_attribute_share, confidence=confidence,
    bootstrap=settings.bootstrap)
ml = result.summary()
p_floor = 1 / (result.permutations + 1)
p_text = (f"no permutation reached the observed share (p ≤ {p_floor:.2g})"
          if ml["p-value"] <= p_floor + 1e-12
          else f"permutation p = {ml['p-value']:.2g}")
Markdown(
    f"On {dataset} ({ml['users']:,} users, {ml['pairs']:,} consecutive "
    f"pairs), **{analysis.pct(ml['observed share'], False)}** of "
    "consecutive movies share at least one genre. With each user's "
    "sequence shuffled the share is "
    f"**{analysis.pct(ml['permuted share'], False)}** (mean of "
    f"{result.permutations} permutations). The gap is "
    f"**{pp(ml['gap'])}** ({confidence:.0%} CI "
    f"{pp(ml['gap low'])} to {pp(ml['gap high'])}), a ratio of "
    f"{ml['ratio']:.2f}; {p_text}. For "
    f"{analysis.pct(ml['users above permuted'], False)} of the users, "
    "consecutive movies share a genre more often in the real order than "
    "in the shuffled one."
)

# %% [markdown]
# The pooled number could be carried by a few heavy raters (MovieLens histories run to
# thousands of ratings). The distribution of the per-user gap shows whether the effect is
# broad:

# %%
per_user = result.per_user()
genre_plots.per_user_gap_chart(per_user, overall_gap=result.gap,
                               provenance=f"{dataset} · {live}")

# %% tags=["hide-input"]
quartile = pd.qcut(per_user["length"], 4, duplicates="drop")
per_user["length group"] = quartile.cat.rename_categories(
    [f"{math.floor(iv.left) + 1}–{math.floor(iv.right)} items"
     for iv in quartile.cat.categories])
by_length = per_user.groupby("length group", observed=True).agg(
    users=("user", "size"), observed=("observed_share", "mean"),
    permuted=("permuted_share", "mean"), gap=("gap", "mean"),
    positive=("gap", lambda g: (g > 0).mean())).reset_index()
plots.style_table(
    by_length.assign(
        observed=by_length["observed"].map(
            lambda x: analysis.pct(x, False)),
        permuted=by_length["permuted"].map(
            lambda x: analysis.pct(x, False)),
        gap=by_length["gap"].map(pp),
        positive=by_length["positive"].map(
            lambda x: analysis.pct(x, False)),
    ).rename(columns={
        "length group": "sequence length (quartile)",
        "observed": "mean observed share",
        "permuted": "mean permuted share", "gap": "mean per-user gap",
        "positive": "users with a positive gap"}),
    caption=f"Per-user shares by sequence-length quartile · "
            f"{dataset} · {live}")

# %%
lo_q, hi_q = by_length.iloc[0], by_length.iloc[-1]
Markdown(
    f"The mean per-user gap is {pp(lo_q['gap'])} for the shortest quarter "
    f"of the histories ({lo_q['length group']}) and {pp(hi_q['gap'])} for "
    f"the longest ({hi_q['length group']})"
    + ("; it is positive in every quarter, so the effect is not confined "
       "to heavy raters."
       if (by_length["gap"] > 0).all() else
       "; it is not positive in every quarter, so the pooled gap hides "
       "users without runs."))

# %% [markdown]
# ## Every data set with item attributes
#
# The same measure on every held data set whose files carry item attributes. Attributes
# that (almost) every item carries say nothing about order — the Amazon Toys and Sports
# files give every item its root category — so attributes on more than
# `max_attribute_share` of the items are dropped; the table counts them. The attribute
# vocabularies differ (18 genres; hundreds of categories, brands, business types or tags),
# so the *levels* of the share do not compare across data sets; the gap to each data set's
# own permuted baseline does.

# %%
names = datasets if datasets is not None else genres.attribute_datasets()
# default list: every data set of the book appears, measured or why not
status = genres.dataset_status(list(dict.fromkeys(
    [*names,
     *([*HELD, *unavailable_datasets()] if datasets is None else [])])))
plots.style_table(
    status,
    caption="Data sets of this comparison: measured, without item "
            "attributes, or not available offline")

# %% tags=["hide-input", "full-width"]
summary, results = genres.dataset_summary(
    names, permutations=settings.permutations, seed=permutation_seed,
    max_users=settings.max_users, max_attribute_share=max_attribute_share,
    confidence=confidence, bootstrap=settings.bootstrap)
summary_live = live.replace(
    users_note,
    "all users" if settings.max_users is None
    else f"at most {settings.max_users} users per data set")
shown_summary = pd.DataFrame({
    "dataset": summary["dataset"],
    "users": summary["users"].map("{:,}".format),
    "pairs": summary["pairs"].map("{:,}".format),
    "attributes kept": summary["attributes"],
    "dropped": summary["dropped attributes"],
    "observed share": summary["observed share"].map(
        lambda x: analysis.pct(x, False)),
    "permuted share": summary["permuted share"].map(
        lambda x: analysis.pct(x, False)),
    f"gap ({confidence:.0%} CI)": [
        f"{pp(g)} ({pp(a)} to {pp(b)})"
        for g, a, b in zip(summary["gap"], summary["gap low"],
                           summary["gap high"], strict=True)],
    "ratio": summary["ratio"].map("{:.3f}".format),
    "users with a positive gap": summary["users above permuted"].map(
        lambda x: analysis.pct(x, False)),
    "permutation p": summary["p-value"].map("{:.2g}".format),
})
for status_text, group in (status[status["status"] != "measured"]
                           .groupby("status")):
    shown_summary = analysis.with_unavailable(
        shown_summary, list(group["dataset"]), status_text)
plots.style_table(
    shown_summary,
    caption="Consecutive-shared-attribute share per data set · "
            f"{summary_live}")

# %% [markdown]
# Next to it, the shuffle chapter's result where it is stored: the relative change of test
# NDCG@10 when the earlier items of each test input are permuted (the model is trained on
# the original order; "window" permutes within the last `maxlen` items, "history" shuffles
# the whole history before truncating). These are stored full runs; nothing is trained here.

# %% tags=["hide-input"]
shuffle_runs = chapter_runs("shuffle", profile="book",
                            datasets=list(results), seeds=seeds,
                            train=False, results_root=results_root,
                            progress=False)
drops = genres.shuffle_drops(shuffle_runs.frame)
shuffle_missing = analysis.missing_summary(shuffle_runs)
if not shuffle_missing.empty:
    display(Markdown(
        f"{len(shuffle_runs.missing)} of the {len(shuffle_runs.configs)} "
        "shuffle-chapter runs for these data sets are not stored yet; the "
        "third panel shows "
        + ("none of them." if drops.empty
           else "the data sets that are stored.")))
    display(plots.style_table(shuffle_missing,
                              caption="Shuffle-chapter runs not stored "
                                      "yet, and how to train them"))
genre_plots.comparison_chart(
    summary, drops,
    provenance=f"Measure: {summary_live} | "
               f"shuffle runs: {shuffle_runs.provenance}")

# %% [markdown]
# ## What the results say

# %% tags=["hide-input"]
def conclusion() -> str:
    lines = []
    label_of = plots.labeller(summary["dataset"])
    ranked = (summary.sort_values("gap", ascending=False)
              .reset_index(drop=True))
    if ranked.empty:
        return "No data set with item attributes could be measured."
    top = ranked.iloc[0]
    rest = ", ".join(f"{label_of(r['dataset'])} {pp(r['gap'])}"
                     for r in ranked.iloc[1:].to_dict("records"))
    lines.append(
        f"- The largest gap is on **{label_of(top['dataset'])}**: "
        f"{pp(top['gap'])} (CI {pp(top['gap low'])} to "
        f"{pp(top['gap high'])})"
        + (f", against {rest}." if rest else "."))
    below = ranked[ranked["gap low"] <= 0]
    lines.append(
        "- Every interval lies above zero: in every data set, consecutive "
        "items share an attribute more often than the same items in "
        "random order."
        if below.empty else
        "- The interval reaches zero for "
        f"{analysis.and_join(map(label_of, below['dataset']))}"
        ": there the order adds nothing measurable.")
    if dataset in set(summary["dataset"]) and len(summary) > 1:
        row = summary.set_index("dataset").loc[dataset]
        others = summary[summary["dataset"] != dataset]
        best_other = others.loc[others["gap"].idxmax()]
        if row["gap"] > best_other["gap"] > 0:
            lines.append(
                f"- {label_of(dataset)}'s gap is "
                f"{row['gap'] / best_other['gap']:.1f}× "
                f"the largest among the other data sets "
                f"({label_of(best_other['dataset'])}).")
        elif row["gap"] <= best_other["gap"]:
            lines.append(
                f"- {label_of(dataset)}'s gap is not the largest: "
                f"{label_of(best_other['dataset'])} has more.")
    window = (drops[drops["protocol"] == "window"]
              .set_index("dataset")["relative_change"])
    both = summary.set_index("dataset").join(window, how="inner")
    if len(both) >= 3:
        from scipy.stats import spearmanr

        rho = spearmanr(both["gap"], -both["relative_change"]).statistic
        lines.append(
            f"- Across the {len(both)} data sets with a stored shuffle "
            "run, the rank correlation between the gap and the NDCG@10 "
            f"loss under the window shuffle is {rho:+.2f}: "
            + ("data sets with stronger attribute runs lose more when "
               "shuffled, as the hypothesis predicts." if rho >= 0.5 else
               "the attribute gap does not order the data sets the way "
               "the shuffle loss does, so attribute runs alone do not "
               "explain the shuffle results."))
    elif len(both):
        lines.append(f"- Only {len(both)} data set(s) have a stored "
                     "shuffle run; relating the gap to the shuffle loss "
                     "needs at least three.")
    lines.append(
        "- A positive gap says that the real order puts similar items "
        "next to each other more often than chance, not why. For "
        "MovieLens-1M a plausible mechanism is how the ratings were "
        "collected: users rate many movies in one sitting, and a sitting "
        "that works through one kind of movie leaves a genre run in the "
        "rating order whatever the order of the viewings. Whatever the "
        "cause, a sequence model can use these runs only if it sees the "
        "order, which is what the shuffle chapter measures.")
    caveats = []
    if profile == "smoke":
        caveats.append("These are **smoke-profile** numbers "
                       f"({users_note}, {settings.permutations} "
                       "permutations): they show that the chapter runs, "
                       "not the full result.")
    if shuffle_runs.missing:
        caveats.append(f"{len(shuffle_runs.missing)} shuffle-chapter "
                       "run(s) are not stored yet; the comparison with "
                       "the NDCG@10 loss covers the stored ones.")
    caveats.append("The sequences keep no timestamps (see the data "
                   "MANIFEST), so order within a rating session cannot "
                   "be told apart from order across sessions, and ties "
                   "in time are in an arbitrary but fixed order.")
    not_measured = status[status["status"] != "measured"]
    if len(not_measured):
        caveats.append("Not measured: " + "; ".join(
            f"{r['dataset']} ({r['status']})"
            for r in not_measured.to_dict("records")) + ".")
    return ("\n".join(lines) + "\n\n**Caveats.**\n\n"
            + "\n".join(f"- {c}" for c in caveats))


Markdown(conclusion())

# %% [markdown]
# ## Configuration shown

# %%
pd.DataFrame({
    "parameter": ["profile", "dataset", "comparison data sets", "users",
                  "strip seed", "positions shown", "permutations",
                  "permutation seed", "users measured",
                  "max attribute share", "confidence",
                  "bootstrap resamples", "shuffle seeds", "result store"],
    "value": [profile, dataset, ", ".join(names), str(users), strip_seed,
              max_positions or "all", settings.permutations,
              permutation_seed, settings.max_users or "all",
              max_attribute_share, confidence, settings.bootstrap,
              ", ".join(map(str, seeds)),
              shown_path(shuffle_runs.store.root)],
}).astype(str).pipe(plots.style_table,
                    caption="The exact configuration of this chapter")
