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
# # 3. STAMP: which of its parts matter?
#
# STAMP (Liu et al., KDD 2018) was designed around the idea that a user's *short-term*
# interest — the last item — should steer the prediction, with the rest of the sequence as
# context. For a sequence $x_1, \dots, x_t$ it builds
#
# * $m_t = x_t$, the last item's embedding, and $m_s = \frac{1}{t}\sum_i x_i$, the mean;
# * attention weights $a_i = w_0^\top \sigma(W_1 x_i + W_2 m_t + W_3 m_s + b)$ and the
#   attended memory $m_a = \sum_i a_i x_i$;
# * two one-layer MLPs $h_s = \tanh(W_s m_a + b_s)$ and $h_t = \tanh(W_t m_t + b_t)$;
# * the trilinear score $s(u, i) = \langle h_s \odot h_t,\ e_i \rangle$.
#
# If the last item carries almost all of the signal, the whole $m_a$ branch — the part
# that reads the earlier items — should be dispensable. We compare full STAMP with two
# ablations that drop it: **only $h_t$** (score $h_t \cdot e_i$, the last item through one
# MLP) and **only $m_t$** (score $m_t \cdot e_i$: the last item's embedding itself — the
# same scoring rule as Chapter 2's zero-block model). All three are trained identically.

# %% tags=["parameters"]
# "smoke" (tiny, CPU) | "book" (stored results only) | "full" (train all)
profile = "book"
datasets = None  # None: every data set of the chapter; or a list of names
# shorthand for one data set: papermill -p dataset Amazon2014Toys_550_LOU
dataset = None
seeds = [0, 1, 2]
# None: all three, ["stamp", "stamp_only_ht", "stamp_only_mt"]
variants = None
epochs = None  # None: the configuration default (Note A: 100; smoke: 2)
device = "auto"  # "auto" | "cpu" | "cuda" | "cuda:N" | "mps"
# None: profile default (book: never; smoke, full: train what is missing)
train = None
results_root = None  # None: results/ (smoke: a temporary store)

# %%
from seqnb import analysis

params = analysis.check_chapter(
    "stamp", profile, datasets=datasets, dataset=dataset, seeds=seeds,
    grid=variants, grid_name="variants", epochs=epochs, device=device,
    train=train, results_root=results_root,
)

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from seqnb import plots
from seqnb.experiments import STAMP_VARIANTS

plots.setup()
runs = analysis.load_runs(params)
variant_grid = params.grid or list(STAMP_VARIANTS)
frame = analysis.add_setting(runs.frame, "stamp")
settings = [analysis.STAMP_LABELS[v] for v in variant_grid]
display(Markdown(
    f"**Profile `{profile}`** — data sets: "
    f"{', '.join(params.shown_datasets) or 'none held'}; "
    f"variants: {', '.join(settings)}; seeds: {params.seeds}."
))

# %% [markdown]
# ## The runs and their exact configuration

# %%
plots.show_run_overview(runs, params)

# %%
plots.style_table(
    plots.config_table(params.configs),
    caption="Training configuration (Note A's optimiser, loss and "
            "selection; the transformer settings do not apply to STAMP); "
            "one row per distinct setting",
)

# %% [markdown]
# ## Full STAMP against its ablations
#
# Test HR@1, HR@10 and NDCG@10, mean ± std over seeds.

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
(plots.stamp_comparison(summary, provenance=runs) if not summary.empty
 else plots.empty_note("No stored runs yet — see the table of missing "
                       "runs above."))

# %% [markdown]
# ### Paired tests: each ablation against full STAMP
#
# Per-user metrics from the stored ranks, averaged per user over seeds; Wilcoxon
# signed-rank and paired t-test, two-sided. *Change* is ablation / full − 1.

# %% tags=["hide-input", "full-width"]
pairs = []
if "stamp" in variant_grid:
    for variant in [v for v in variant_grid if v != "stamp"]:
        t = analysis.compare(runs, {"model": "stamp"}, {"model": variant},
                             metrics=["HR@1", "HR@10", "NDCG@10"])
        pairs.append(t.assign(ablation=analysis.STAMP_LABELS[variant]))
paired = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame(
    columns=["dataset", "metric", "ablation", "mean_a", "mean_b",
             "relative_change", "wilcoxon_p", "t_p", "n_users", "seeds"])
paired_shown = pd.DataFrame({
    "dataset": paired["dataset"],
    "ablation": paired["ablation"],
    "metric": paired["metric"],
    "full STAMP": paired["mean_a"].map("{:.4f}".format),
    "ablation value": paired["mean_b"].map("{:.4f}".format),
    "change": paired["relative_change"].map(analysis.pct),
    "Wilcoxon": paired["wilcoxon_p"].map(analysis.format_p),
    "paired t": paired["t_p"].map(analysis.format_p),
    "users": paired["n_users"],
    "seeds": paired["seeds"],
})
plots.style_table(analysis.complete(paired_shown, params),
                  caption=plots.provenance_caption(runs))

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
        lines.append("No stored pair of full STAMP and an ablation yet, "
                     "so the comparison is still open; the commands above "
                     "produce the runs.")
    for dataset_name, group in nd.groupby("dataset", sort=False):
        parts = []
        for row in group.itertuples():
            v = analysis.verdict(row.relative_change, row.wilcoxon_p)
            word = {"negligible": "within 5 % of full STAMP",
                    "not significant": ("different by 5 % or more, but "
                                        "not significantly so"),
                    "significant": ("significantly better than"
                                    if row.relative_change > 0
                                    else "significantly worse than")
                                   + " full STAMP",
                    "unknown": "not comparable"}[v]
            parts.append(f"{row.ablation} reaches NDCG@10 "
                         f"{row.mean_b:.4f} "
                         f"({analysis.pct(row.relative_change)}, Wilcoxon "
                         f"{analysis.format_p(row.wilcoxon_p)}): {word}")
        full = group["mean_a"].iloc[0]
        lines.append(f"- **{dataset_name}** "
                     f"(full STAMP NDCG@10 {full:.4f}): "
                     + "; ".join(parts) + ".")
    if not nd.empty:
        verdicts = {}
        for r in nd.itertuples():
            v = analysis.verdict(r.relative_change, r.wilcoxon_p)
            if v == "significant" and r.relative_change > 0:
                v = "better"
            verdicts.setdefault(v, []).append(
                f"{label_of(r.dataset)} ({r.ablation})")
        if "negligible" in verdicts or "better" in verdicts:
            lines.append(
                "Where an ablation stays within 5 % of full STAMP or "
                "beats it — "
                + ", ".join(verdicts.get("negligible", [])
                            + verdicts.get("better", []))
                + " — the branch that reads the earlier items ($m_a$, "
                "with $m_s$) is not what makes STAMP work: the last item "
                "carries the prediction."
            )
        if "significant" in verdicts:
            lines.append(
                "Significant losses of 5 % or more — "
                + ", ".join(verdicts["significant"])
                + " — mean that the dropped parts do contribute on those "
                "data sets."
            )
        if "not significant" in verdicts:
            lines.append(
                "Differences of 5 % or more that the paired test does not "
                "confirm at the 5 % level — "
                + ", ".join(verdicts["not significant"])
                + " — leave the question open there; more seeds or users "
                "would settle it."
            )
    if not late.empty:
        lines.append(analysis.convergence_sentence(late))
    caveat_text = analysis.caveat_markdown(runs, params.shown_datasets,
                                           params.unavailable)
    return "\n\n".join(["\n\n".join(lines), caveat_text])


Markdown(conclusion())
