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
# # 6. Embedding frequency: is every item worth an embedding?
#
# In next-item data sets a few items collect much of the traffic and most are rarely seen
# (the first table below measures how skewed the data sets shown here are). Every item
# still gets a trainable embedding of its own. Note B asks whether that is worth it —
# whether the rare items (and perhaps the most popular ones) could do without a free
# embedding and borrow one from their neighbours instead.
#
# Two models, both in Note B's configuration (shown in full below):
#
# * **MF-BPR** — matrix factorisation, $s(u, i) = \mathbf{p}_u^\top \mathbf{e}_i$, trained
#   with BPR {cite:p}`rendle2009bpr` on one sampled negative;
# * **SASRec** {cite:p}`kang2018sasrec` — trained with binary cross-entropy on one sampled
#   negative per position.
#
# **Training frequency.** Throughout this chapter the training frequency of item $i$ is
# the number of training interactions with it: the number of times $i$ occurs in the
# training sequences, the validation and test targets excluded. (The note's scripts used
# two slightly different counts; this book uses this one everywhere, and the stored runs
# carry it.) An item with frequency 0 is *never trained*: it occurs only as some user's
# validation or test target.
#
# The chapter has two parts. **(a)** Sort the items by training frequency and look at four
# aligned quantities: the frequency itself, the L2 norm of the item's embedding, and the
# item's own test Recall@10 and NDCG@10 (the mean over the test users whose target is that
# item). The note's expected finding, tested below: *for MF the norm grows with frequency;
# for SASRec it does not, once an item is seen at all; never-trained items keep small
# norms.* **(b)** Replace the embeddings of all items whose training frequency lies in a
# band $[l, u]$ by the average of their neighbours' embeddings and sweep the band.

# %% tags=["parameters"]
# "smoke" (300 users, 2 epochs, CPU) | "book" (stored runs only) | "full"
profile = "book"
# None: the chapter default (Amazon2014Beauty_550_LOU); or a list of names
datasets = None
# shorthand for one data set: papermill -p dataset Yelp2019_550_S3Rec
dataset = None
seeds = [0, 1, 2]  # training seeds (smoke keeps the first two)
# [l, u] edges, 100000 = no limit;
# None: [0,1,3,10,30,100000] (smoke [0,2,100000])
band_edges = None
epochs = None  # None: the configuration default (Note B: 200; smoke: 2)
# "auto" | "cpu" | "cuda" | "cuda:N" | "mps"; only used when training
device = "auto"
# None: the profile default (book: never train; smoke, full: train missing)
train = None
results_root = None  # None: results/ (smoke: a temporary store)
k = 10  # cut-off of the per-item Recall@k / NDCG@k
# items are cut into this many equal-count bins along the frequency ranking
bins = 100
# items drawn per model in the norm scatter (a seeded sample)
max_points = 600
# how far a norm ratio may move from 1 and still count as "flat"
tolerance = 0.25

# %% tags=["hide-input"]
from dataclasses import replace

from seqnb import analysis
from seqnb.experiments import FREQUENCY_DATASETS, chapter_configs
from seqnb.plots.frequency import check_frequency_parameters

if profile == "smoke" and isinstance(seeds, (list, tuple)):
    # smoke: two seeds are enough to exercise mean ± std
    seeds = list(seeds)[:2]
params = analysis.check_chapter(
    "embedding_frequency", profile, datasets=datasets, dataset=dataset,
    seeds=seeds, epochs=epochs, device=device, train=train,
    results_root=results_root,
)
band_edges = check_frequency_parameters(band_edges, bins, max_points,
                                        tolerance, k)
if band_edges is not None:
    params = replace(params, grid=band_edges, configs=chapter_configs(
        "embedding_frequency", profile, datasets=params.datasets,
        seeds=params.seeds, grid=band_edges, **params.overrides))
# the chapter's own list: Beauty_1000 is not held
if datasets is None and dataset is None:
    params.unavailable = [d for d in params.unavailable
                          if d in FREQUENCY_DATASETS]

# %% tags=["hide-input"]
import pandas as pd
from IPython.display import Markdown, display

from seqnb import plots
from seqnb.data import locate
from seqnb.experiments import (
    BAND_EDGES,
    SMOKE_BAND_EDGES,
    SMOKE_USERS,
    band_grid,
)
from seqnb.paths import shown_path
from seqnb.plots import frequency as freq

plots.setup()
runs = analysis.load_runs(params, progress=profile == "full")
edges = list(band_edges
             or (SMOKE_BAND_EDGES if profile == "smoke" else BAND_EDGES))
shown = params.shown_datasets
metric = f"NDCG@{k}"
held_not_shown = [d for d in FREQUENCY_DATASETS
                  if d not in shown and d not in params.unavailable
                  and locate(d) is not None]
display(Markdown(
    f"**Profile `{profile}`** — data sets: "
    f"{', '.join(shown) or 'none held'}; MF-BPR and SASRec (Note B), "
    f"unmodified and with every band over the edges {edges}, with and "
    f"without the self term ([0, 0] once: the same model either way); "
    f"seeds: {params.seeds}."
    + (f" Also held but not in this run's data sets: "
       f"{', '.join(held_not_shown)} (add it "
       "with the `datasets` parameter)." if held_not_shown else "")))

# %% [markdown]
# ## How skewed is the training frequency?
#
# Computed live from the training sequences of the data sets shown (in the smoke profile:
# the 300-user subsample the smoke runs train on).

# %%
profiles = pd.DataFrame([freq.frequency_profile(freq.trained_dataset(
    d, SMOKE_USERS if profile == "smoke" else None)) for d in shown])
if not profiles.empty:
    profiles["interactions on the top 10% items"] = profiles[
        "interactions on the top 10% items"].map(
            lambda x: analysis.pct(x, False))
plots.style_table(profiles,
                  caption="Training frequency per data set, computed live")

# %% [markdown]
# ## The runs and their exact configuration

# %%
plots.show_run_overview(runs, params, shown)

# %%
plots.style_table(plots.config_table(params.configs),
                  caption="Training configuration (Note B); "
                          "one row per distinct setting")

# %%
pd.DataFrame({
    "parameter": ["profile", "data sets", "seeds", "band edges",
                  "bands per model and variant", "epochs override",
                  "device", "k", "bins", "scatter points", "tolerance",
                  "result store"],
    "value": [profile, ", ".join(shown), ", ".join(map(str, params.seeds)),
              ", ".join(f"{e:,}" for e in edges),
              len(band_grid(tuple(edges))),
              epochs or "none (configuration default)",
              device, k, bins, max_points, tolerance,
              shown_path(runs.store.root)],
}).astype(str).pipe(plots.style_table, caption="Chapter parameters as run")

# %% [markdown]
# ## (a) Frequency, norm and accuracy along the frequency ranking
#
# Items are sorted by training frequency, most frequent first, and cut into equal-count
# bins; each point is one bin. Top to bottom: the training frequency (median, band =
# min–max; symmetric-log axis so that zero fits), the embedding's L2 norm (mean over the
# bin's items, band = 10th–90th percentile; for each item the norm is averaged over
# seeds), and the item's own test Recall@10 and NDCG@10 (pooled over the bin's test cases
# and the seeds, band = 95% normal interval). Only the unmodified models enter this part.

# %% tags=["hide-input"]
plain = freq.plain_runs(runs.frame)
pairs = [] if plain.empty else [
    (d, m) for d in shown for m in ("mf_bpr", "sasrec")
    if ((plain["dataset"] == d) & (plain["model"] == m)).any()]
items = (pd.concat([freq.item_table(runs, d, m, k=k) for d, m in pairs],
                   ignore_index=True)
         if pairs else pd.DataFrame())
# only the unmodified runs enter (a)
plain_prov = replace(runs, frame=plain).provenance
if items.empty:
    display(Markdown("No unmodified MF-BPR or SASRec run is stored yet "
                     f"for {', '.join(shown)}: part (a) waits for the "
                     "runs listed above."))
    chart_a = plots.empty_note("part (a): no stored runs yet")
else:
    item_bins = freq.frequency_bins(items, bins=bins, k=k)
    chart_a = freq.frequency_panels(item_bins, k=k, provenance=plain_prov)
chart_a

# %% [markdown]
# The same items as a scatter: embedding norm against training frequency, with the rank
# correlation (Spearman's ρ) over all items and over the items seen in training. Dots are a
# seeded sample of at most `max_points` items per model; the black line is the median norm
# per frequency bin over *all* items.

# %%
if items.empty:
    norm_stats = pd.DataFrame()
    chart_scatter = plots.empty_note("norm scatter: no stored runs yet")
else:
    norm_stats = freq.norm_frequency_stats(items)
    chart_scatter = freq.norm_scatter(items, norm_stats,
                                      max_points=max_points,
                                      provenance=plain_prov)
chart_scatter

# %% [markdown]
# ### Does the note's expected finding hold?
#
# Each claim is turned into a test on the numbers above (the criteria are stated with the
# evidence; `tolerance` is a parameter):
#
# * MF-BPR, "the norm grows with frequency": Spearman's ρ between norm and frequency over
#   the seen items is positive with p < 0.01, **and** the median norm of the most frequent
#   tenth of the seen items exceeds that of the least frequent tenth by more than
#   `tolerance`.
# * SASRec, "not once an item is seen": that ratio of median norms stays within
#   $[1/(1+\text{tolerance}),\, 1+\text{tolerance}]$.
# * Both, "never-trained items keep small norms": their median norm is at most
#   $(1-\text{tolerance})$ times the median norm of the seen items.

# %% tags=["hide-input", "full-width"]
if items.empty:
    display(Markdown("The claims cannot be tested before the runs are "
                     "stored."))
    claims = pd.DataFrame(columns=["dataset", "model", "claim", "evidence",
                                   "verdict"])
else:
    claims = freq.claim_checks(norm_stats, tolerance=tolerance)
    stats_view = norm_stats.copy()
    for col in [c for c in stats_view.columns
                if "norm" in c or "spearman" in c or c == "decile ratio"]:
        stats_view[col] = stats_view[col].map(
            lambda v: "–" if pd.isna(v) else f"{v:.3f}")
    stats_view["p (seen)"] = norm_stats["p (seen)"].map(analysis.format_p)
    display(plots.style_table(stats_view,
                              caption="Norm against training frequency · "
                                      + plain_prov))
plots.style_table(claims,
                  caption=f"The note's expected finding, tested "
                          f"(tolerance {tolerance}) · {plain_prov}",
                  highlight=["verdict"])

# %% [markdown]
# ## (b) Neighbour-averaged embeddings for a frequency band
#
# Items whose training frequency lies in $[l, u]$ get no trainable embedding of their own.
# Their embedding is the average of their neighbours' under the item–item co-occurrence
# graph $A = R^\top R$ ($R$ = the binary user × item training matrix, so $A_{ij}$ counts
# the users who interacted with both $i$ and $j$), row-normalised:
#
# $$E' = E \odot (1 - m) + (\hat{A} E) \odot m, \qquad \hat{A} = D^{-1} A,$$
#
# where $D$ is the diagonal matrix of the row sums of $A$ and $m$ marks the items in the
# band. Two details matter. The diagonal of $R^\top R$
# counts the item's own users, so each "neighbour average" includes the item itself (the
# *self term*; the note's setting) — we also show the variant without it. And an item never
# seen in training has an empty row of $A$, so it gets a **zero** vector: the band $[0, 0]$
# zeroes exactly the never-trained items, with or without the self term (one model,
# trained once and shown in both rows). The top edge, 100,000, stands for "no upper
# limit" (no item here is trained that often): $[l, 100{,}000]$ is every item trained at
# least $l$ times. Each cell of the heatmaps is one band, trained
# from scratch with every seed. Each model has two rows, with and without the self term
# side by side: its test NDCG@10, and below it the change against the unmodified model of
# the same seed (the paired Wilcoxon test on per-user NDCG@10 is in the tooltip and the
# table).

# %%
bands = freq.band_table(runs, metric=metric)
band_prov = runs.provenance
if bands.empty:
    display(Markdown("No neighbour-averaged run is stored yet: part (b) "
                     "waits for the runs listed above."))
    chart_b = plots.empty_note("part (b): no stored runs yet")
else:
    chart_b = freq.band_heatmaps(bands, metric=metric,
                                 provenance=band_prov)
chart_b

# %% tags=["hide-input"]
# a grid still being trained: say which cells have fewer seeds
if note := freq.uneven_seeds_note(bands):
    display(Markdown(note))

# %% tags=["hide-input"]
# a band whose unmodified run is stored
paired_bands = bands.dropna(subset=["delta"])
if paired_bands.empty:
    best = pd.DataFrame(columns=["dataset", "model", "self term"])
else:
    idx_best = paired_bands.groupby(
        ["dataset", "model", "self term"])["delta"].idxmax()
    idx_worst = paired_bands.groupby(
        ["dataset", "model", "self term"])["delta"].idxmin()
    best = (pd.concat([bands.loc[idx_best].assign(which="best band"),
                       bands.loc[idx_worst].assign(which="worst band")])
            .sort_values(["dataset", "model", "self term", "which"]))
    best = best.assign(**{
        # the table fits the page
        "dataset": best["dataset"].map(plots.short_names(best["dataset"])),
        metric: [plots.format_mean_std(m, s, n) for m, s, n in
                 zip(best["mean"], best["std"], best["seeds"],
                     strict=True)],
        "unmodified": best["plain"].map("{:.4f}".format),
        "change": [plots.format_mean_std(d, s, n) for d, s, n in
                   zip(best["delta"], best["delta std"], best["seeds"],
                       strict=True)],
        "relative": best["relative"].map("{:+.1%}".format),
        "paired p": best["p"].map("{:.2g}".format),
        "items in band": best["items in band"].map("{:,}".format),
    })[["dataset", "model", "self term", "which", "band", "items in band",
        metric, "unmodified", "change", "relative", "paired p", "seeds"]]
plots.style_table(best,
                  caption=f"Best and worst band per model and variant "
                          f"(test {metric}, mean ± std over seeds) · "
                          f"{band_prov}")

# %% [markdown]
# ## What the results say

# %% tags=["hide-input"]
def conclusion() -> str:
    lines = []
    if items.empty and bands.empty:
        lines.append("No run of this chapter is stored yet, so it cannot "
                     "answer its question yet; the commands above produce "
                     "the runs.")
    for r in claims.to_dict("records"):
        lines.append(f"- **{r['model']}** on {r['dataset']} — "
                     f"*{r['claim']}*: **{r['verdict']}** "
                     f"({r['evidence']}).")
    if not items.empty:
        for (d, m), g in (items.dropna(subset=[metric])
                          .groupby(["dataset", "model"], sort=False)):
            cases = g["test_cases"].sum()
            never = g[g["frequency"] == 0]
            seen = g[g["frequency"] > 0]
            if len(never) and never["test_cases"].sum() > 0:
                w_never = ((never[metric] * never["test_cases"]).sum()
                           / never["test_cases"].sum())
                w_seen = ((seen[metric] * seen["test_cases"]).sum()
                          / seen["test_cases"].sum())
                never_share = never["test_cases"].sum() / cases
                lines.append(
                    f"- {m} on {d}: {analysis.pct(never_share, False)} of "
                    f"the test cases ask for an item never seen in "
                    f"training; they reach {metric} {w_never:.4f}, "
                    f"against {w_seen:.4f} for the other test cases.")
    for (d, m, s), g in paired_bands.groupby(
            ["dataset", "model", "self term"], sort=False):
        verdicts = [analysis.verdict(rel, p)
                    for rel, p in zip(g["relative"], g["p"], strict=True)]
        hurt = g[[v == "significant" and rel < 0
                  for v, rel in zip(verdicts, g["relative"],
                                    strict=True)]]
        helped = g[[v == "significant" and rel > 0
                    for v, rel in zip(verdicts, g["relative"],
                                      strict=True)]]
        free = g[~g.index.isin(hurt.index) & (g["items in band"] > 0)]
        text = (f"- **{m}, {s}** ({d}): of {len(g)} bands, "
                f"{len(hurt)} cost test {metric} significantly (paired "
                f"Wilcoxon p < 0.05, change of 5 % or more) and "
                f"{len(helped)} improve it.")
        if len(free):
            widest = free.loc[free["items in band"].idxmax()]
            text += (
                f" The widest band without a significant loss is "
                f"{widest['band']}: {widest['items in band']:,} items "
                f"({analysis.pct(widest['share of items'], False)} of the "
                f"catalogue, "
                f"{analysis.pct(widest['share of interactions'], False)}"
                f" of the training interactions) lose their own "
                f"embedding, and {metric} changes by "
                f"{analysis.pct(widest['relative'])} "
                f"({analysis.format_p(widest['p'])}).")
        else:
            text += " Every non-empty band costs accuracy significantly."
        lines.append(text)
    zero = paired_bands[(paired_bands["l"] == 0)
                        & (paired_bands["u"] == 0)]
    for r in zero.drop_duplicates(["dataset", "model"]).to_dict("records"):
        lines.append(
            f"- Zeroing the {r['items in band']:,} never-trained items "
            f"(band [0, 0]) changes {r['model']}'s {metric} by "
            f"{analysis.pct(r['relative'])} on {r['dataset']} "
            f"({analysis.format_p(r['p'])}).")
    for r in freq.seed_agreement(bands).to_dict("records"):
        lines.append(
            f"- {r['model']} ({r['dataset']}): in {r['seeds agree']} of "
            f"the {r['settings']} band settings trained with two or more "
            f"seeds, every seed moves {metric} the same way against its "
            f"own unmodified model.")
    for r in freq.self_term_comparison(bands).to_dict("records"):
        lines.append(f"- {r['model']} ({r['dataset']}): with the self "
                     f"term a band scores higher than without it in "
                     f"{r['higher with self term']} of the "
                     f"{r['bands compared']} bands stored both ways "
                     f"(band [0, 0] aside: never-trained items get a "
                     f"zero vector either way).")
    return ("\n".join(lines) + "\n\n"
            + analysis.caveat_markdown(runs, shown, params.unavailable))


Markdown(conclusion())
