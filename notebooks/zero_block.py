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
# # 2. Zero block: is the transformer needed at all?
#
# Chapter 1 asked how much history SASRec uses. This chapter removes the machinery instead:
# if the last item carries nearly all the signal, the transformer blocks have little to do,
# and a model with **no block at all** should come close. The *zero-block* model scores
# every item by the dot product of the last item's embedding with that item's embedding,
#
# $$s(u, i) = e_{v_t} \cdot e_i ,$$
#
# trained exactly like SASRec (same loss, optimiser, epochs and model selection). It has no
# position embedding, no attention, no feed-forward layer and no LayerNorm: it is a
# first-order Markov model with factorised transitions. We compare it with SASRec using 4,
# 3, 2 and 1 blocks, and ask, per layer, how much of SASRec's attention lands on the last
# item anyway.

# %% tags=["parameters"]
# "smoke" (tiny, CPU) | "book" (stored results only) | "full" (train all)
profile = "book"
datasets = None  # None: every data set of the chapter; or a list of names
# shorthand for one data set: papermill -p dataset Amazon2014Toys_550_LOU
dataset = None
seeds = [0, 1, 2]
# SASRec block counts; None: the library default (4, 3, 2, 1)
blocks = None
epochs = None  # None: the configuration default (Note A: 100; smoke: 2)
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
# None: profile default (book: never; smoke, full: train what is missing)
train = None
results_root = None  # None: results/ (smoke: a temporary store)

# %%
from seqnb import analysis

params = analysis.check_chapter(
    "zero_block", profile, datasets=datasets, dataset=dataset, seeds=seeds,
    grid=blocks, grid_name="blocks", epochs=epochs, device=device,
    train=train, results_root=results_root,
)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from seqnb import plots
from seqnb.experiments import BLOCK_GRID, SMOKE_BLOCK_GRID, SMOKE_USERS

plots.setup()
runs = analysis.load_runs(params)
block_grid = params.grid or list(SMOKE_BLOCK_GRID if profile == "smoke"
                                  else BLOCK_GRID)
frame = analysis.add_setting(runs.frame, "zero_block")
settings = ([analysis.block_label("sasrec", b) for b in block_grid]
            + ["ZeroBlock"])
display(Markdown(
    f"**Profile `{profile}`** — data sets: "
    f"{', '.join(params.shown_datasets) or 'none held'}; "
    f"SASRec blocks: {block_grid} and ZeroBlock; seeds: {params.seeds}."
))

# %% [markdown]
# ## The runs and their exact configuration

# %%
plots.show_run_overview(runs, params)

# %%
plots.style_table(
    plots.config_table(params.configs),
    caption="Training configuration (Note A); "
            "one row per distinct setting",
)

# %% [markdown]
# ## SASRec blocks against the zero-block model
#
# Test HR@1, HR@10 and NDCG@10, mean ± std over seeds (the `seeds` column counts the runs
# behind each cell).

# %%
if frame.empty:
    table = pd.DataFrame(columns=["dataset", "setting", "HR@1", "HR@10",
                                  "NDCG@10", "seeds"])
else:
    ordered = frame.assign(
        _d=frame["dataset"].map(params.shown_datasets.index),
        _s=frame["setting"].map({s: i for i, s in enumerate(settings)}),
    ).sort_values(["_d", "_s"])
    table = plots.metric_table(ordered, ["dataset", "setting"],
                               ["HR@1", "HR@10", "NDCG@10"])
plots.style_table(analysis.complete(table, params),
                  caption=plots.provenance_caption(runs))

# %%
summary = analysis.mean_std(frame, ["dataset", "setting"],
                            ["HR@1", "HR@10", "NDCG@10"])
(plots.block_comparison(summary, provenance=runs) if not summary.empty
 else plots.empty_note("No stored runs yet — "
                       "see the table of missing runs above."))

# %% [markdown]
# ### Paired test: SASRec against ZeroBlock
#
# Per user, the test metric is computed from the stored rank of the target and averaged over
# seeds; the two models are then compared user by user (Wilcoxon signed-rank and paired
# t-test, two-sided). The reference SASRec is the 2-block model of the notes (or the largest
# block count in the grid when 2 is not in it).

# %% tags=["hide-input"]
ref_blocks = 2 if 2 in block_grid else max(block_grid)
ref_label = analysis.block_label("sasrec", ref_blocks)
paired = analysis.compare(
    runs, {"model": "sasrec", "num_blocks": ref_blocks},
    {"model": "zero_block"},
    metrics=["HR@1", "HR@10", "NDCG@10"],
)
paired_shown = pd.DataFrame({
    "dataset": paired["dataset"],
    "metric": paired["metric"],
    ref_label: paired["mean_a"].map("{:.4f}".format),
    "ZeroBlock": paired["mean_b"].map("{:.4f}".format),
    "change": paired["relative_change"].map(analysis.pct),
    "Wilcoxon": paired["wilcoxon_p"].map(analysis.format_p),
    "paired t": paired["t_p"].map(analysis.format_p),
    "users": paired["n_users"],
    "seeds": paired["seeds"],
})
plots.style_table(
    analysis.complete(paired_shown, params),
    caption=f"ZeroBlock vs {ref_label}; change = ZeroBlock / SASRec − 1. "
            + plots.provenance_caption(runs),
)

# %% [markdown]
# ## Where does SASRec's attention go?
#
# For every SASRec run, the stored extras hold the mean attention weight that the **last**
# position (the one that scores the next item) puts on each earlier position, per layer,
# averaged over heads and test users. The bars show the weight on the last item itself; the
# tick shows what an even spread over each user's items would give
# (the mean over users of $1/\min(\text{length}, \text{maxlen})$). Bars far above the tick
# mean the model attends mostly to the last item. Note that the last item also reaches the
# output through the residual connection, so this weight is on top of that direct path.

# %% tags=["hide-input"]
sasrec_results = [r for r in runs.results
                  if r["config"]["model"] == "sasrec"]
attention = analysis.attention_on_last(sasrec_results,
                                       by=("dataset", "num_blocks"))
if not attention.empty:
    attention["setting"] = [analysis.block_label("sasrec", b)
                            for b in attention["num_blocks"]]
    maxlen = params.configs[0].maxlen
    uniform = {
        d: analysis.uniform_attention(
            analysis.test_input_lengths(
                d, SMOKE_USERS if profile == "smoke" else None),
            maxlen)
        for d in dict.fromkeys(attention["dataset"])
    }
    attention["uniform"] = attention["dataset"].map(uniform)
(plots.attention_last_chart(attention, provenance=runs)
 if not attention.empty
 else plots.empty_note("No stored SASRec runs with attention extras yet."))

# %% [markdown]
# The whole profile for the reference model: mean attention from the last position to the
# item `offset` steps back (0 = the last item), per layer, for the 20 most recent items.

# %%
offsets = analysis.attention_by_offset(
    [r for r in sasrec_results if r["config"]["num_blocks"] == ref_blocks],
    by=("dataset",))
(plots.attention_offset_chart(offsets, provenance=runs)
 if not offsets.empty
 else plots.empty_note("No stored attention extras "
                       "for the reference model yet."))

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
    nd = paired[paired["metric"] == "NDCG@10"]
    if nd.empty:
        lines.append("No pair of stored SASRec and ZeroBlock runs yet, so "
                     "the comparison is still open; the commands above "
                     "produce the runs.")
    for row in nd.itertuples():
        v = analysis.verdict(row.relative_change, row.wilcoxon_p)
        direction = "higher" if row.relative_change > 0 else "lower"
        what = {
            "negligible": ("within 5 % of it: the blocks add next to "
                           "nothing"),
            "not significant": ("a gap the paired per-user test does not "
                                "confirm at the 5 % level"),
            "significant": "a gap the paired per-user test confirms",
            "unknown": "not comparable",
        }[v]
        lines.append(
            f"- **{row.dataset}**: ZeroBlock reaches NDCG@10 "
            f"{row.mean_b:.4f} against {row.mean_a:.4f} for {ref_label} "
            f"({analysis.pct(row.relative_change)}, {direction}; "
            f"Wilcoxon {analysis.format_p(row.wilcoxon_p)}) — {what}."
        )
    if not summary.empty:
        nd_all = summary[summary["metric"] == "NDCG@10"]
        best = nd_all.loc[nd_all.groupby("dataset")["mean"].idxmax()]
        lines.append("Best setting by mean NDCG@10: " + "; ".join(
            f"{label_of(r.dataset)}: {r.setting}"
            for r in best.itertuples()) + ".")
    if not attention.empty:
        first = attention[attention["layer"] == 1]
        above = first[first["mean"] > first["uniform"]]
        lines.append(
            f"In the first layer, the last item receives on average "
            f"{first['mean'].mean():.2f} of the attention (an even spread "
            f"would give {first['uniform'].mean():.2f}); it gets more "
            f"than an even share in {len(above)} of {len(first)} "
            f"(data set, block count) cases."
        )
    if not late.empty:
        lines.append(analysis.convergence_sentence(late))
    caveat_text = analysis.caveat_markdown(runs, params.shown_datasets,
                                           params.unavailable)
    return "\n\n".join(["\n\n".join(lines), caveat_text])


Markdown(conclusion())
