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
# # 1. maxlen: how much history does SASRec use?
#
# SASRec reads up to the last 50 items of a user's history and lets self-attention decide
# which of them matter for the next one. If next-item data sets were strongly sequential —
# if the order and the content of the earlier items mattered — cutting the history down to
# a handful of items should cost a lot, and cutting it to **one** item should cost the most.
# If instead the *last* item carries almost all the signal (the Markovian view of Note A),
# a model that sees only that item should be nearly as good as one that sees fifty.
#
# This chapter measures that directly: it trains the same SASRec with different context
# lengths (`maxlen`) and reports test HR@1, HR@10 and NDCG@10 against `maxlen`, per data set.
#
# **Holding the training data fixed.** Shortening the input would normally also change the
# number of training targets. To change *only* the context, training samples are
# **rolled**: for each user's training sequence (its last 50 items; 100 for MovieLens) every
# position $k \ge 2$ gives one sample, input = the items before $k$ truncated to the last
# `maxlen`, target = item $k$. For $[v_1, \dots, v_5]$ and `maxlen = 2`:
# $[v_1] \to v_2,\ [v_1, v_2] \to v_3,\ [v_2, v_3] \to v_4,\ [v_3, v_4] \to v_5$.
# The set of (user, target) pairs is the same for every `maxlen`; the loss is cross-entropy
# over all items on the last position only. Evaluation inputs are truncated to `maxlen` too.

# %% tags=["parameters"]
# "smoke" (tiny, CPU) | "book" (stored results only) | "full" (train all)
profile = "book"
datasets = None  # None: every data set of the chapter; or a list of names
# shorthand for one data set: papermill -p dataset Amazon2014Toys_550_LOU
dataset = None
seeds = [0, 1, 2]
# None: the library default (1, 2, 3, 5, 10, 20, 30, 50)
maxlen_grid = None
epochs = None  # None: the configuration default (Note A: 100; smoke: 2)
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
# None: profile default (book: never; smoke, full: train what is missing)
train = None
results_root = None  # None: results/ (smoke: a temporary store)

# %%
from seqnb import analysis

params = analysis.check_chapter(
    "maxlen", profile, datasets=datasets, dataset=dataset, seeds=seeds,
    grid=maxlen_grid, grid_name="maxlen_grid", epochs=epochs,
    device=device, train=train, results_root=results_root,
)

# %%
import pandas as pd
from IPython.display import Markdown, display

from seqnb import plots
from seqnb.experiments import MAXLEN_GRID, SMOKE_MAXLEN_GRID

plots.setup()
runs = analysis.load_runs(params)
grid = params.grid or list(SMOKE_MAXLEN_GRID if profile == "smoke"
                           else MAXLEN_GRID)
frame = runs.frame
display(Markdown(
    f"**Profile `{profile}`** — data sets: "
    f"{', '.join(params.shown_datasets) or 'none held'}; "
    f"maxlen grid: {grid}; seeds: {params.seeds}."
))

# %% [markdown]
# ## The runs and their exact configuration
#
# Which runs this page shows, and which are not stored yet (with the command that trains
# them). Data sets of the notes that we do not hold stay listed as *not available offline*.

# %%
plots.show_run_overview(runs, params)

# %%
plots.style_table(
    plots.config_table(params.configs,
                       [*plots.CONFIG_COLUMNS, "rolled_window"]),
    caption="Training configuration (Note A, rolled samples); one row per "
            "distinct setting",
)

# %% [markdown]
# ## (a) How identifiable is a user from the last `maxlen` items?
#
# Before training anything: how much *could* a longer context tell the model? If two users
# share the same last `maxlen` items, a model restricted to that window must treat them
# alike. The share of users whose truncated test input is unique among all users is cheap
# to compute, so it is computed live from the full data (in every profile).

# %%
share_datasets = params.shown_datasets
share_grid = sorted(set(grid) | {1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50})
# full data, in every profile
shares = analysis.unique_shares(share_datasets, share_grid)
plots.unique_share_chart(
    shares,
    provenance=(f"computed live from the test inputs of all "
                f"{shares.drop_duplicates('dataset')['users'].sum():,} "
                "users"),
)

# %% tags=["hide-input"]
def share_at(m: int) -> pd.Series:
    return (shares[shares["maxlen"] == m]
            .set_index("dataset")["unique_share"])


if shares.empty:
    share_text = "No data set is selected, so no share is computed."
else:
    s1, s3 = share_at(1), share_at(3)
    label_of = plots.labeller(s1.index)
    share_text = (
        f"With only the last item, between "
        f"{analysis.pct(s1.min(), signed=False)} "
        f"({label_of(s1.idxmin())}) and "
        f"{analysis.pct(s1.max(), signed=False)} "
        f"({label_of(s1.idxmax())}) of users have an input no "
        f"other user has; with the last three items, between "
        f"{analysis.pct(s3.min(), signed=False)} and "
        f"{analysis.pct(s3.max(), signed=False)}. "
    )
    if s3.min() >= 0.9:
        share_text += (
            "Three items of history already tell at least nine users in "
            "ten apart, so if a longer context adds little below, it is "
            "not for want of information that distinguishes users."
        )
    else:
        share_text += (
            "On some data sets many users still share their last three "
            "items, so part of any gain from a longer context may simply "
            "come from telling users apart."
        )
Markdown(share_text)

# %% [markdown]
# ## Why `maxlen = 1` turns attention into a linear map of the last item
#
# With a single position there is a single key. Softmax over one logit is exactly 1, so
# whatever the query and key projections compute, the attention output is the value
# projection of that one position:
#
# $$\operatorname{Attn}(q, x, x) = W_o\,(W_v\,x + b_v) + b_o ,
# \qquad x = \sqrt{d}\,e_{v_t} + p .$$
#
# $W_q$ and $W_k$ drop out of the model entirely, and the block reduces to
#
# $$x \leftarrow x + W_o W_v x + b, \qquad x \leftarrow \mathrm{LN}_2(x),
# \qquad x \leftarrow x + \mathrm{FFN}(x),$$
#
# an affine map of the last item's embedding followed by the position-wise
# LayerNorm + feed-forward part. After the final LayerNorm the score of item $i$ is
# $f(e_{v_t})\cdot e_i$ for a learned nonlinear $f$: SASRec at `maxlen = 1` is an
# item-to-item model, a (deep) first-order Markov chain. Comparing it with larger `maxlen`
# isolates exactly what attention over the earlier items adds.

# %% [markdown]
# ## (b) Test metrics against `maxlen`
#
# Mean over seeds, with ± one standard deviation as a band; pick a data set in the menu.
# Hover for the numbers.

# %%
curves = analysis.mean_std(frame, ["dataset", "maxlen"],
                           ["HR@1", "HR@10", "NDCG@10"])
(plots.maxlen_curves(curves, provenance=runs) if not curves.empty
 else plots.empty_note("No stored maxlen runs yet — see the table of "
                       "missing runs above."))

# %% [markdown]
# All data sets in one view: NDCG@10 divided by its value at the shortest context, so a
# line that stays near 1 means a longer history buys nothing.

# %%
(plots.maxlen_overview(curves, "NDCG@10", provenance=runs)
 if not curves.empty
 else plots.empty_note("No stored maxlen runs yet."))

# %% [markdown]
# The gain of the best `maxlen` over `maxlen = 1` per data set, with a paired per-user
# test (Wilcoxon signed-rank and paired t-test on per-user NDCG@10, each user's value
# averaged over seeds). The best `maxlen` is picked on the test mean, so the gain is an
# optimistic upper bound.

# %% tags=["hide-input"]
gain = analysis.maxlen_gain(frame, "NDCG@10")
tests = []
for row in gain.itertuples():
    if row.best_maxlen == row.reference_maxlen:
        continue
    t = analysis.compare(runs,
                         {"dataset": row.dataset,
                          "maxlen": row.reference_maxlen},
                         {"dataset": row.dataset,
                          "maxlen": row.best_maxlen})
    tests.append(t)
tests = (pd.concat(tests) if tests
         else pd.DataFrame(columns=["dataset", "wilcoxon_p", "t_p"]))
gain_table = gain.merge(tests[["dataset", "wilcoxon_p", "t_p"]],
                        on="dataset", how="left")
shown = pd.DataFrame({
    "dataset": gain_table["dataset"],
    "NDCG@10 at maxlen 1": gain_table["at_reference"].map("{:.4f}".format),
    "best maxlen": gain_table["best_maxlen"],
    "NDCG@10 at best": gain_table["at_best"].map("{:.4f}".format),
    "gain": gain_table["maxlen_gain"].map(analysis.pct),
    "Wilcoxon": gain_table["wilcoxon_p"].map(analysis.format_p),
    "paired t": gain_table["t_p"].map(analysis.format_p),
    "seeds": gain_table["seeds"],
    "maxlens stored": [analysis.stored_of_grid(m, grid)
                       for m in gain_table["maxlens"]],
})
if (gain_table["reference_maxlen"] != 1).any():
    shown = shown.rename(
        columns={"NDCG@10 at maxlen 1": "NDCG@10 at the smallest maxlen"})
plots.style_table(analysis.complete(shown, params),
                  caption=plots.provenance_caption(runs))

# %% [markdown]
# The full numbers, mean ± std over seeds:

# %% tags=["hide-output"]
table = plots.metric_table(frame.sort_values(["dataset", "maxlen"])
                           if not frame.empty else frame,
                           ["dataset", "maxlen"],
                           ["HR@1", "HR@10", "NDCG@10"])
plots.style_table(table, caption=plots.provenance_caption(runs))

# %% [markdown]
# ## Did training converge?
#
# Every model trains for the notes' epoch budget and keeps the epoch with the best
# validation NDCG@10. The curves show whether that budget was enough: a line still rising
# at its right end belongs to a model that longer training would improve, so its test
# numbers above understate it. The table gives the rise over the last 10 epochs, averaged
# over seeds.

# %% tags=["hide-input"]
late = plots.show_convergence(runs)

# %% [markdown]
# ## What the results say

# %% tags=["hide-input"]
def conclusion() -> str:
    lines = []
    label_of = plots.labeller(params.shown_datasets)
    if frame.empty:
        lines.append("No maxlen runs are stored yet, so this chapter "
                     "cannot answer its question yet; the commands above "
                     "produce the runs.")
    elif gain.empty:
        stored = ", ".join(
            f"{label_of(d)}: maxlen {sorted(set(g['maxlen']))}"
            for d, g in frame.groupby("dataset", sort=False))
        lines.append(f"Only one context length is stored per data set so "
                     f"far ({stored}), so there is no gain to measure "
                     "yet; the commands above produce the other runs.")
    else:
        verdicts = {}
        for row in gain_table.itertuples():
            v = analysis.verdict(row.maxlen_gain, row.wilcoxon_p)
            verdicts.setdefault(v, []).append(
                label_of(row.dataset))
            sig = ("" if pd.isna(row.wilcoxon_p) else
                   "; paired Wilcoxon "
                   f"{analysis.format_p(row.wilcoxon_p)}")
            partial = ("" if set(grid) <= set(row.maxlens) else
                       f" Only maxlen {', '.join(map(str, row.maxlens))} "
                       "of the grid are stored so far, so the peak may "
                       "move.")
            lines.append(
                f"- **{row.dataset}**: NDCG@10 is {row.at_reference:.4f} "
                f"at maxlen {row.reference_maxlen} and peaks at "
                f"{row.at_best:.4f} with maxlen {row.best_maxlen} "
                f"({analysis.pct(row.maxlen_gain)}{sig}).{partial}"
            )
        if "negligible" in verdicts:
            lines.append(
                f"On {analysis.and_join(verdicts['negligible'])} even the "
                "best context improves NDCG@10 by less than 5 % over the "
                "last item alone: SASRec draws nearly all of its accuracy "
                "from the last item there, as Note A claims."
            )
        if "not significant" in verdicts:
            lines.append(
                f"On {analysis.and_join(verdicts['not significant'])} the "
                "best context looks better by 5 % or more, but the paired "
                "per-user test does not separate it from maxlen 1 at the "
                "5 % level (and the best maxlen was picked on the test "
                "set)."
            )
        if "significant" in verdicts:
            lines.append(
                f"On {analysis.and_join(verdicts['significant'])} a "
                "longer context helps by 5 % or more, and the paired "
                "per-user test confirms it: there the earlier items carry "
                "signal that the last one does not. Chapter 4 asks "
                "whether it is their order or just their presence."
            )
    if not late.empty:
        lines.append(analysis.convergence_sentence(late))
    caveat_text = analysis.caveat_markdown(runs, params.shown_datasets,
                                           params.unavailable)
    return "\n\n".join(["\n\n".join(lines), caveat_text])


Markdown(conclusion())
