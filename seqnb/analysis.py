"""Numbers the chapters state: seed aggregates, paired per-user tests, derived summaries.

Everything here works on what the result store keeps — a run frame (``ChapterRuns.frame``,
one row per run) and per-user rank arrays (``ChapterRuns.arrays(run_id)``) — and returns
small pandas frames that tables and charts show directly.

* :func:`mean_std` — mean, std (ddof=1) and count over seeds, in long form.
* :func:`paired_test` — Wilcoxon signed-rank and paired t-test on per-user values.
* :func:`precision_pairs` — each stored bf16 run against its fp32 twin (paired per user).
* :func:`compare` — two settings per data set: per-user metric from the stored ranks,
  averaged per user over the seeds both settings have, then :func:`paired_test`.
* :func:`maxlen_gain`, :func:`shuffle_drop`, :func:`sequentiality_summary` — the
  cross-data-set summary of Chapter 4.
* :func:`attention_on_last`, :func:`attention_by_offset` — the attention extras.
* :func:`unique_shares` — Chapter 1's live "unique truncated input" curve.
* :func:`coverage`, :func:`with_unavailable`, :func:`caveats` — which data sets and runs a
  table shows, so that nothing is silently dropped.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from seqnb.config import RunConfig, unique_runs
from seqnb.metrics import BOOK_METRICS, metrics_from_ranks

PAIRED_METRIC = "NDCG@10"
RANK_CAP = 255  # stored ranks above 254 are saved as 255 (exact for @k <= 254)
UNAVAILABLE = "not available offline"
NOT_TRAINED = "not yet trained"
PROTOCOLS = ("window", "history")
BLOCK_LABEL_ZERO = "ZeroBlock"
STAMP_LABELS = {"stamp": "STAMP (full)", "stamp_only_ht": "only h_t", "stamp_only_mt": "only m_t"}


class RunsLike(Protocol):
    """What the analysis needs from a ``ChapterRuns``."""

    frame: pd.DataFrame

    def arrays(self, run_id: str) -> dict[str, np.ndarray]: ...


# ----- aggregation over seeds ---------------------------------------------------------------
def mean_std(
    frame: pd.DataFrame,
    by: Sequence[str],
    metrics: Iterable[str] = BOOK_METRICS,
) -> pd.DataFrame:
    """Long form: one row per ``by`` group and metric with ``mean``, ``std`` (ddof=1; NaN
    for a single seed) and ``seeds`` (the number of runs in the group)."""
    by = list(by)
    metrics = [m for m in metrics if m in frame.columns]
    columns = [*by, "metric", "mean", "std", "seeds"]
    if frame.empty or not metrics:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in frame.groupby(by, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        for m in metrics:
            values = group[m].dropna().to_numpy(dtype=float)
            rows.append(
                (*key, m, float(values.mean()) if len(values) else math.nan,
                 float(values.std(ddof=1)) if len(values) > 1 else math.nan, len(values))
            )
    return pd.DataFrame(rows, columns=columns)


def relative_change(before: float, after: float) -> float:
    """``after / before - 1`` (e.g. -0.05 = 5 % lower); NaN when ``before`` is 0 or NaN."""
    if before is None or after is None or not before or math.isnan(before) or math.isnan(after):
        return math.nan
    return after / before - 1.0


# ----- per-user values and paired tests -----------------------------------------------------
def per_user(ranks: np.ndarray, metric: str = PAIRED_METRIC) -> np.ndarray:
    """Per-user ``metric`` (HR@k, NDCG@k, Recall@k, Precision@k) from 1-based ranks.

    Stored ranks are capped at 255, which is exact for every metric @k with k <= 254; MRR
    would not be, so it is refused here.
    """
    name, _, k = metric.partition("@")
    if not k or not k.isdigit():
        raise ValueError(f"per-user metric must be like 'NDCG@10', got {metric!r}")
    if int(k) >= RANK_CAP:
        raise ValueError(f"{metric}: stored ranks are exact only for k <= {RANK_CAP - 1}")
    values = metrics_from_ranks(np.asarray(ranks, dtype=np.int64), ks=(int(k),))
    if metric not in values:
        raise ValueError(f"unknown metric {metric!r}; use HR, NDCG, Recall or Precision @k")
    return values[metric].numpy()


def pooled(per_seed: Sequence[np.ndarray]) -> np.ndarray:
    """Average per user over seeds (every array covers the same users in the same order)."""
    if not per_seed:
        raise ValueError("no per-user arrays to pool")
    lengths = {len(a) for a in per_seed}
    if len(lengths) != 1:
        raise ValueError(f"per-user arrays of different lengths {sorted(lengths)} cannot be "
                         "paired user by user")
    return np.mean(np.stack([np.asarray(a, dtype=float) for a in per_seed]), axis=0)


@dataclass(frozen=True)
class PairedTest:
    """Setting A against setting B on the same users (B − A)."""

    n_users: int
    mean_a: float
    mean_b: float
    difference: float  # mean of B − A
    relative_change: float  # mean_b / mean_a − 1
    wilcoxon_statistic: float
    wilcoxon_p: float
    t_statistic: float
    t_p: float
    nonzero_pairs: int  # users whose value differs between A and B

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def paired_test(a: np.ndarray, b: np.ndarray) -> PairedTest:
    """Two-sided Wilcoxon signed-rank test (zero differences dropped, scipy's default
    ``zero_method='wilcox'``) and paired t-test on per-user values ``a`` and ``b``.

    When every difference is zero both p-values are 1 (the settings agree on every user).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired values need equal 1-d shapes, got {a.shape} and {b.shape}")
    if len(a) < 2:
        raise ValueError("a paired test needs at least two users")
    diff = b - a
    nonzero = int(np.count_nonzero(diff))
    if nonzero == 0:
        w_stat, w_p, t_stat, t_p = 0.0, 1.0, 0.0, 1.0
    else:
        w = stats.wilcoxon(a, b)
        w_stat, w_p = float(w.statistic), float(w.pvalue)
        if np.allclose(diff, diff[0]):  # constant non-zero difference: t undefined
            t_stat, t_p = math.copysign(math.inf, diff[0]), 0.0
        else:
            t = stats.ttest_rel(b, a)
            t_stat, t_p = float(t.statistic), float(t.pvalue)
    return PairedTest(
        n_users=len(a),
        mean_a=float(a.mean()),
        mean_b=float(b.mean()),
        difference=float(diff.mean()),
        relative_change=relative_change(float(a.mean()), float(b.mean())),
        wilcoxon_statistic=w_stat,
        wilcoxon_p=w_p,
        t_statistic=t_stat,
        t_p=t_p,
        nonzero_pairs=nonzero,
    )


def _select(frame: pd.DataFrame, where: dict[str, Any] | Callable[[pd.DataFrame], Any]
            ) -> pd.DataFrame:
    if callable(where):
        return frame[where(frame)]
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return frame[mask]


def compare(
    runs: RunsLike,
    a: dict[str, Any],
    b: dict[str, Any],
    ranks_a: str = "test_ranks",
    ranks_b: str = "test_ranks",
    metrics: Iterable[str] = (PAIRED_METRIC,),
    by: str = "dataset",
) -> pd.DataFrame:
    """Paired per-user comparison of setting ``a`` against ``b``, per data set and metric.

    ``a`` / ``b`` select runs from ``runs.frame`` (e.g. ``{"model": "sasrec",
    "num_blocks": 2}``); ``ranks_a`` / ``ranks_b`` name the stored rank arrays (use
    ``"test_shuffled_window_ranks"`` with ``a == b`` for the shuffle test). Runs are paired
    by seed; each user's metric is averaged over the seeds both settings have, then
    :func:`paired_test` compares the two. Data sets without a pair (or without stored
    arrays) are left out of the result.
    """
    metrics = list(metrics)
    cols = [by, "metric", "seeds", *PairedTest.__dataclass_fields__]
    frame = runs.frame
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    sel_a, sel_b = _select(frame, a), _select(frame, b)
    for key in dict.fromkeys(frame[by]):
        fa = sel_a[sel_a[by] == key].drop_duplicates("seed").set_index("seed")
        fb = sel_b[sel_b[by] == key].drop_duplicates("seed").set_index("seed")
        seeds = sorted(set(fa.index) & set(fb.index))
        arrays_a, arrays_b = [], []
        for seed in seeds:
            xa = runs.arrays(fa.loc[seed, "run_id"]).get(ranks_a)
            xb = runs.arrays(fb.loc[seed, "run_id"]).get(ranks_b)
            if xa is not None and xb is not None:
                arrays_a.append(xa)
                arrays_b.append(xb)
        if not arrays_a:
            continue
        for m in metrics:
            test = paired_test(pooled([per_user(x, m) for x in arrays_a]),
                               pooled([per_user(x, m) for x in arrays_b]))
            rows.append({by: key, "metric": m, "seeds": len(arrays_a), **test.as_dict()})
    return pd.DataFrame(rows, columns=cols)


def precision_pairs(
    results: Iterable[dict[str, Any]],
    arrays: Callable[[str], dict[str, np.ndarray]],
    metric: str = PAIRED_METRIC,
) -> pd.DataFrame:
    """Every stored bf16 run next to the stored fp32 run of the same configuration.

    One row per pair: the test ``metric`` of both, the relative change (bf16 against fp32),
    a paired per-user test on the stored test ranks, and each run's device, training seconds
    and code commits. ``arrays(run_id)`` returns a run's stored arrays
    (``ResultStore.arrays``). A bf16 run without its fp32 twin is left out.
    """
    from seqnb.chapter import run_commits
    from seqnb.results import results_frame

    results = list(results)
    # one row per run: the devices and commits of all its segments, as the chapters show them
    runs = results_frame(results).set_index("run_id") if results else pd.DataFrame()
    columns = ["dataset", "setting", "seed", f"fp32 {metric}", f"bf16 {metric}", "change",
               "wilcoxon_p", "users", "fp32 device", "bf16 device", "fp32 train s",
               "bf16 train s", "fp32 code", "bf16 code"]
    by_id = {r.get("run_id"): r for r in results}
    rows = []
    for r in results:
        config = RunConfig.from_dict(r["config"])
        if config.precision != "bf16":
            continue
        twin = by_id.get(replace(config, precision="fp32").run_id)
        if twin is None:
            continue
        test = paired_test(per_user(arrays(twin["run_id"])["test_ranks"], metric),
                           per_user(arrays(r["run_id"])["test_ranks"], metric))
        row = {"dataset": config.dataset, "setting": run_label(r["config"]),
               "seed": config.seed, "change": relative_change(twin["test"][metric],
                                                               r["test"][metric]),
               "wilcoxon_p": test.wilcoxon_p, "users": test.n_users}
        for name, run in (("fp32", twin), ("bf16", r)):
            info = runs.loc[run["run_id"]]
            row[f"{name} {metric}"] = run["test"][metric]
            row[f"{name} device"] = info["device_name"]
            row[f"{name} train s"] = run["provenance"].get("train_seconds")
            row[f"{name} code"] = run_commits(info["code_commits"])
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


# ----- labels for settings ------------------------------------------------------------------
def block_label(model: str, num_blocks: int) -> str:
    """'SASRec (2 blocks)', 'SASRec (1 block)' or 'ZeroBlock'."""
    if model == "zero_block":
        return BLOCK_LABEL_ZERO
    return f"SASRec ({int(num_blocks)} block{'s' if int(num_blocks) != 1 else ''})"


def add_setting(frame: pd.DataFrame, chapter: str) -> pd.DataFrame:
    """A copy of ``frame`` with a ``setting`` column naming each run's model for tables."""
    out = frame.copy()
    if out.empty:
        out["setting"] = pd.Series(dtype=str)
        return out
    if chapter == "zero_block":
        out["setting"] = [block_label(m, n) for m, n in
                          zip(out["model"], out["num_blocks"], strict=True)]
    elif chapter == "stamp":
        out["setting"] = out["model"].map(STAMP_LABELS).fillna(out["model"])
    elif chapter == "maxlen":
        out["setting"] = "maxlen " + out["maxlen"].astype(str)
    else:
        out["setting"] = out["model"]
    return out


# ----- Chapter 1 and 4 summaries --------------------------------------------------------------
def maxlen_gain(frame: pd.DataFrame, metric: str = PAIRED_METRIC) -> pd.DataFrame:
    """Per data set: ``metric`` (mean over seeds) at maxlen 1 and at the best maxlen, and the
    relative gain ``best / at_1 − 1``.

    The best maxlen is picked on the *test* mean, so the gain is an optimistic upper bound
    on what a longer context buys. When maxlen 1 is not in the grid, the smallest maxlen is
    the reference (``reference_maxlen`` says which). ``maxlens`` lists the stored maxlens the
    best was picked from, so a partly trained grid is visible. A data set with a single
    stored maxlen has no gain to report and gets no row.
    """
    cols = ["dataset", "reference_maxlen", "at_reference", "best_maxlen", "at_best",
            "maxlen_gain", "seeds", "maxlens"]
    if frame.empty or metric not in frame.columns:
        return pd.DataFrame(columns=cols)
    rows = []
    means = frame.groupby(["dataset", "maxlen"], sort=False)[metric].agg(["mean", "count"])
    for dataset in dict.fromkeys(frame["dataset"]):
        curve = means.loc[dataset].sort_index()
        if len(curve) < 2:
            continue  # nothing to compare with yet
        ref = int(curve.index.min())
        best = int(curve["mean"].idxmax())
        rows.append({
            "dataset": dataset,
            "reference_maxlen": ref,
            "at_reference": float(curve.loc[ref, "mean"]),
            "best_maxlen": best,
            "at_best": float(curve.loc[best, "mean"]),
            "maxlen_gain": relative_change(float(curve.loc[ref, "mean"]),
                                           float(curve.loc[best, "mean"])),
            "seeds": int(curve["count"].min()),
            "maxlens": [int(m) for m in curve.index],
        })
    return pd.DataFrame(rows, columns=cols)


def shuffled_column(protocol: str, metric: str) -> str:
    """The run-frame column of ``metric`` under the shuffle ``protocol``."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    return f"test_shuffled_{protocol}:{metric}"


def shuffle_drop(frame: pd.DataFrame, protocol: str = "window",
                 metric: str = PAIRED_METRIC) -> pd.DataFrame:
    """Per data set: ``metric`` (mean over seeds) on the original and the shuffled inputs,
    and the relative change ``shuffled / original − 1`` (negative = shuffling hurts)."""
    col = shuffled_column(protocol, metric)
    cols = ["dataset", "original", "shuffled", "shuffle_drop", "seeds"]
    if frame.empty or col not in frame.columns:
        return pd.DataFrame(columns=cols)
    g = frame.groupby("dataset", sort=False).agg(
        original=(metric, "mean"), shuffled=(col, "mean"), seeds=(metric, "count"))
    g["shuffle_drop"] = [relative_change(o, s) for o, s in
                         zip(g["original"], g["shuffled"], strict=True)]
    return g.reset_index()[cols]


def shuffle_table(
    runs: RunsLike,
    metrics: Sequence[str] = BOOK_METRICS,
    protocols: Sequence[str] = PROTOCOLS,
) -> pd.DataFrame:
    """Chapter 4's table in long form: per data set, protocol and metric the original and
    shuffled mean ± std over seeds, the relative change of the means, and the paired
    per-user Wilcoxon and t-test p-values (users averaged over seeds)."""
    frame = runs.frame
    cols = ["dataset", "protocol", "metric", "original", "original_std", "shuffled",
            "shuffled_std", "relative_change", "wilcoxon_p", "t_p", "seeds", "n_users"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for protocol in protocols:
        tests = compare(runs, {}, {}, "test_ranks", f"test_shuffled_{protocol}_ranks",
                        metrics=metrics)
        tests = tests.set_index(["dataset", "metric"]) if not tests.empty else None
        for dataset, group in frame.groupby("dataset", sort=False):
            for m in metrics:
                col = shuffled_column(protocol, m)
                if m not in group or col not in group:
                    continue
                orig, shuf = group[m].to_numpy(float), group[col].to_numpy(float)
                test = (tests.loc[(dataset, m)] if tests is not None
                        and (dataset, m) in tests.index else None)
                rows.append({
                    "dataset": dataset, "protocol": protocol, "metric": m,
                    "original": orig.mean(),
                    "original_std": orig.std(ddof=1) if len(orig) > 1 else math.nan,
                    "shuffled": shuf.mean(),
                    "shuffled_std": shuf.std(ddof=1) if len(shuf) > 1 else math.nan,
                    "relative_change": relative_change(orig.mean(), shuf.mean()),
                    "wilcoxon_p": math.nan if test is None else float(test["wilcoxon_p"]),
                    "t_p": math.nan if test is None else float(test["t_p"]),
                    "seeds": len(orig),
                    "n_users": math.nan if test is None else int(test["n_users"]),
                })
    return pd.DataFrame(rows, columns=cols)


def sequentiality_summary(shuffle_frame: pd.DataFrame, maxlen_frame: pd.DataFrame,
                          metric: str = PAIRED_METRIC) -> pd.DataFrame:
    """One row per data set: shuffle drop (window and history protocols) and maxlen gain.

    A data set that neither loses under shuffling nor gains from a longer context behaves
    like a first-order Markov chain for the model.
    """
    window = shuffle_drop(shuffle_frame, "window", metric)[["dataset", "shuffle_drop"]]
    history = shuffle_drop(shuffle_frame, "history", metric)[["dataset", "shuffle_drop"]]
    history = history.rename(columns={"shuffle_drop": "shuffle_drop_history"})
    gain = maxlen_gain(maxlen_frame, metric)[["dataset", "maxlen_gain", "best_maxlen",
                                              "maxlens"]]
    out = window.merge(history, on="dataset", how="outer").merge(gain, on="dataset",
                                                                   how="outer")
    return out[["dataset", "shuffle_drop", "shuffle_drop_history", "maxlen_gain",
                "best_maxlen", "maxlens"]]


# ----- attention extras ---------------------------------------------------------------------
def attention_rows(results: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """Long form of the stored attention extras: one row per run, layer and offset with the
    mean attention weight the last position puts on the key ``offset`` steps back."""
    rows = []
    for r in results:
        att = r.get("extras", {}).get("attention_by_offset")
        if not att:
            continue
        c = r["config"]
        for layer, weights in enumerate(att, start=1):
            for offset, w in enumerate(weights):
                rows.append((c["dataset"], c["model"], c["num_blocks"], c["maxlen"], c["seed"],
                             layer, offset, float(w)))
    return pd.DataFrame(rows, columns=["dataset", "model", "num_blocks", "maxlen", "seed",
                                       "layer", "offset", "weight"])


def attention_on_last(results: Iterable[dict[str, Any]],
                      by: Sequence[str] = ("dataset", "num_blocks")) -> pd.DataFrame:
    """Per ``by`` group and layer: attention mass on the last position (offset 0), mean and
    std over seeds."""
    rows = attention_rows(results)
    by = list(by)
    cols = [*by, "layer", "mean", "std", "seeds"]
    if rows.empty:
        return pd.DataFrame(columns=cols)
    last = rows[rows["offset"] == 0]
    g = last.groupby([*by, "layer"], sort=False)["weight"]
    out = g.agg(["mean", "std", "count"]).rename(columns={"count": "seeds"}).reset_index()
    return out[cols]


def attention_by_offset(results: Iterable[dict[str, Any]],
                        by: Sequence[str] = ("dataset", "num_blocks")) -> pd.DataFrame:
    """Per ``by`` group, layer and offset: mean attention weight over seeds."""
    rows = attention_rows(results)
    by = list(by)
    if rows.empty:
        return pd.DataFrame(columns=[*by, "layer", "offset", "mean"])
    g = rows.groupby([*by, "layer", "offset"], sort=False)["weight"].mean()
    return g.rename("mean").reset_index()


def uniform_attention(lengths: Iterable[int], maxlen: int) -> float:
    """Attention on the last position if every user spread it evenly over the items in
    view: the mean over users of ``1 / min(length, maxlen)``."""
    inv = [1.0 / min(int(n), maxlen) for n in lengths if n > 0]
    return float(np.mean(inv)) if inv else math.nan


def test_input_lengths(dataset: str, max_users: int | None = None) -> np.ndarray:
    """Lengths of the test inputs of ``dataset`` (subsampled as the runs were)."""
    from seqnb.data import load_dataset

    ds = load_dataset(dataset)
    if max_users is not None and ds.num_users > max_users:
        ds = ds.subsample_users(max_users, seed=0)
    return np.array([len(s) for s in ds.inputs("test")])


# ----- Chapter 1(a): live -------------------------------------------------------------------
def unique_shares(datasets: Iterable[str], maxlens: Iterable[int],
                  max_users: int | None = None) -> pd.DataFrame:
    """Share of users whose test input, truncated to the last ``maxlen`` items, is unique,
    for every data set and maxlen (computed live from the data; cheap)."""
    from seqnb.data import load_dataset
    from seqnb.sequences import unique_input_share

    rows = []
    for name in datasets:
        ds = load_dataset(name)
        if max_users is not None and ds.num_users > max_users:
            ds = ds.subsample_users(max_users, seed=0)
        inputs = ds.inputs("test")
        for m in maxlens:
            rows.append({"dataset": name, "maxlen": int(m), "users": ds.num_users,
                         "unique_share": unique_input_share(inputs, int(m))})
    return pd.DataFrame(rows, columns=["dataset", "maxlen", "users", "unique_share"])


# ----- coverage: what is shown, what is missing ----------------------------------------------
def coverage(runs: Any, datasets: Sequence[str] | None = None,
             unavailable: Sequence[str] = ()) -> pd.DataFrame:
    """One row per data set: runs the chapter shows, runs stored, runs missing, status.

    ``runs`` is a ``ChapterRuns``; ``unavailable`` data sets (SPEC's data sets we do not
    hold) get the status 'not available offline'.
    """
    expected: dict[str, int] = {}
    for c in runs.configs:
        expected[c.dataset] = expected.get(c.dataset, 0) + 1
    stored = runs.frame["dataset"].value_counts().to_dict() if not runs.frame.empty else {}
    names = list(dict.fromkeys([*(datasets or []), *expected]))
    rows = []
    for name in names:
        n, s = expected.get(name, 0), int(stored.get(name, 0))
        status = ("complete" if n and s == n else NOT_TRAINED if s == 0
                  else f"partial: {n - s} of {n} runs missing")
        rows.append({"dataset": name, "runs": n, "stored": s, "status": status})
    for name in unavailable:
        if name not in names:
            rows.append({"dataset": name, "runs": 0, "stored": 0, "status": UNAVAILABLE})
    return pd.DataFrame(rows, columns=["dataset", "runs", "stored", "status"])


def grid_coverage(root: Any = None, profile: str = "full", unique: bool = False
                  ) -> pd.DataFrame:
    """The whole book at a glance: one row per (chapter, data set) of every training
    chapter's ``profile`` grid (all seeds, the chapter's default data sets), with the runs
    it has and how many the result store under ``root`` holds. A run that two chapters
    share counts in both, or with ``unique`` only in the first (so the columns sum to the
    book's distinct runs, as ``reproduce --dry-run`` counts them)."""
    from seqnb.experiments import TRAINING_CHAPTERS, chapter_configs
    from seqnb.results import ResultStore

    configs = [c for chapter in TRAINING_CHAPTERS for c in chapter_configs(chapter, profile)]
    if unique:
        configs = unique_runs(configs)
    return coverage_rows(configs, ResultStore(root))


def coverage_rows(configs: Sequence[RunConfig], store: Any) -> pd.DataFrame:
    """One row per (chapter, data set) of ``configs``, in their order: runs, and how many
    ``store`` holds (each run id asked once)."""
    stored = {c.run_id: store.has(c) for c in configs}
    frame = pd.DataFrame({"chapter": [c.chapter for c in configs],
                          "dataset": [c.dataset for c in configs],
                          "stored": [stored[c.run_id] for c in configs]})
    counts = frame.groupby(["chapter", "dataset"], sort=False)["stored"].agg(["size", "sum"])
    return (counts.rename(columns={"size": "runs", "sum": "stored"}).reset_index()
            .astype({"runs": int, "stored": int})[["chapter", "dataset", "runs", "stored"]])


CHAPTER_LABELS = {"maxlen": "1. maxlen", "zero_block": "2. zero block", "stamp": "3. STAMP",
                  "shuffle": "4. shuffle", "embedding_frequency": "6. embedding frequency"}


def coverage_matrix(coverage: pd.DataFrame) -> pd.DataFrame:
    """``grid_coverage`` rows (chapter, dataset, runs, stored) as a chapter per row and a
    data set per column (short names), each cell 'stored / runs' ('–' where the chapter's
    grid has no such run), and an 'all' column."""
    frame = coverage.assign(cell=[f"{s} / {n}" for s, n in
                                  zip(coverage["stored"], coverage["runs"], strict=True)])
    labels = short_names(frame["dataset"])
    wide = frame.pivot(index="chapter", columns="dataset", values="cell")
    wide = wide.reindex(index=list(dict.fromkeys(frame["chapter"])),
                        columns=list(labels)).fillna("–")
    totals = frame.groupby("chapter", sort=False)[["stored", "runs"]].sum()
    wide["all"] = [f"{s} / {n}" for s, n in zip(totals["stored"], totals["runs"], strict=True)]
    wide = wide.rename(index=lambda c: CHAPTER_LABELS.get(c, c), columns=labels)
    wide.columns.name = None
    return wide.rename_axis("chapter").reset_index()


def with_unavailable(table: pd.DataFrame, datasets: Sequence[str], status: str = UNAVAILABLE,
                     column: str = "dataset") -> pd.DataFrame:
    """``table`` plus one row per data set in ``datasets`` it lacks, with ``status`` in the
    first other column ('–' in the rest) — so a table never silently drops a data set."""
    have = set(table[column]) if column in table else set()
    extra = [d for d in datasets if d not in have]
    if not extra:
        return table
    others = [c for c in table.columns if c != column]
    fill = {c: status if i == 0 else "–" for i, c in enumerate(others)}
    rows = pd.DataFrame([{column: d, **fill} for d in extra], columns=table.columns)
    return pd.concat([table.astype(object), rows], ignore_index=True)


# ----- words --------------------------------------------------------------------------------
def short_name(dataset: str) -> str:
    """A short label: 'Amazon2014Beauty_550_LOU' -> 'Beauty', 'MovieLens1M_550_LOU' -> 'ML-1M'."""
    for prefix in ("Amazon2014",):
        if dataset.startswith(prefix):
            return dataset[len(prefix):].split("_")[0]
    if dataset.startswith("MovieLens1M"):
        return "ML-1M"
    if dataset.startswith("RetailrocketTransaction"):
        return "Retailrocket"
    return dataset.split("_")[0]


def short_names(datasets: Iterable[str]) -> dict[str, str]:
    """Each data set's :func:`short_name`, unless two data sets would share it (Beauty_550
    and Beauty_1000 are both 'Beauty'): those keep their full names, so that labels never
    merge two data sets' rows or mislabel a selector."""
    unique = list(dict.fromkeys(datasets))
    counts = Counter(short_name(d) for d in unique)
    return {d: short_name(d) if counts[short_name(d)] == 1 else d for d in unique}


def labeller(datasets: Iterable[str]) -> Callable[[str], str]:
    """:func:`short_names` as a function for prose: ``label_of(d)`` is d's short label among
    ``datasets`` (the data sets in view), and any other name stays whole."""
    labels = short_names(datasets)
    return lambda dataset: labels.get(dataset, dataset)


def pct(x: float, signed: bool = True, digits: int = 1) -> str:
    """'+3.2 %' / '−3.2 %' for a relative change (NaN -> 'n/a'); the space before '%' is a
    no-break space, so a line never ends between the number and its unit."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    text = f"{abs(x) * 100:.{digits}f}\u00a0%"
    if not signed:
        return text
    return ("+" if x > 0 else "−" if x < 0 else "±") + text


def and_join(names: Iterable[str]) -> str:
    """'A', 'A and B', 'A, B and C': a list of names inside a sentence."""
    names = list(names)
    if len(names) < 2:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def stored_of_grid(stored: Iterable[int], grid: Iterable[int]) -> str:
    """'all 8' when every grid value is stored, else '2 of 8: 1, 2'."""
    have, want = sorted(set(stored)), sorted(set(grid))
    if set(want) <= set(have):
        return f"all {len(want)}"
    inside = [v for v in have if v in want]
    return f"{len(inside)} of {len(want)}: {', '.join(map(str, inside))}"


def format_p(p: float) -> str:
    """'p < 0.001', 'p = 0.03', or 'p n/a'."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "p n/a"
    if p < 0.001:
        return "p < 0.001"
    return f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


def caveats(runs: Any, datasets: Sequence[str] = (), unavailable: Sequence[str] = ()
            ) -> list[str]:
    """The caveats a chapter's conclusion must carry: seeds, missing runs, smoke data."""
    out = []
    frame = runs.frame
    if getattr(runs, "profile", "") == "smoke":
        out.append("These are **smoke-profile** numbers (300 users, 2 epochs): they show "
                   "that the chapter runs, not what the full results are.")
    if not frame.empty:
        seeds = frame.groupby("dataset")["seed"].nunique()
        if seeds.min() < 3:
            few = ", ".join(f"{d} ({n})" for d, n in seeds.items() if n < 3)
            out.append(f"Fewer than three seeds for: {few}; the ± std and the seed "
                       "averages are less reliable there.")
    if getattr(runs, "profile", "") != "smoke":
        still = still_improving(frame)
        if still:
            # one sub-item per data set and model
            out.append(f"Still improving when training stopped (best validation NDCG@10 at "
                       f"the last epoch), {len(unconverged(frame))} run(s); these keep the "
                       "notes' epoch budget, and longer training may raise them:"
                       + "".join(f"\n  - {line}" for line in still))
    shown = set(frame["dataset"]) if not frame.empty else set()
    missing = [d for d in datasets if d not in shown and d not in unavailable]
    if missing:
        out.append(f"No stored runs yet for {', '.join(missing)}: the conclusions cover "
                   "only the data sets shown.")
    if getattr(runs, "missing", None):
        out.append(f"{len(runs.missing)} run(s) of this chapter are not stored yet (see the "
                   "table of missing runs); groups with missing seeds average fewer runs.")
    if unavailable:
        out.append(f"Not available offline (not held): {', '.join(unavailable)}.")
    return out


def unconverged(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of ``frame`` whose best validation epoch is their last one."""
    if frame.empty or not {"best_epoch", "epochs_run"} <= set(frame):
        return frame.iloc[:0]
    return frame[(frame["best_epoch"] == frame["epochs_run"]) & frame["epochs_run"].notna()]


def validation_curves(results: Sequence[dict[str, Any]],
                      metric: str = "NDCG@10") -> pd.DataFrame:
    """The stored validation curves in long form, one row per run and evaluated epoch:
    ``dataset``, ``setting`` (:func:`run_label`), ``seed``, ``epoch``, ``value`` (``metric``)
    and ``best`` (the epoch model selection kept)."""
    rows = [
        {"dataset": r["config"]["dataset"], "setting": run_label(r["config"]),
         "seed": int(r["config"]["seed"]), "epoch": int(point["epoch"]),
         "value": float(point["metrics"][metric]), "best": point["epoch"] == r.get("best_epoch")}
        for r in results for point in r.get("valid_curve") or [] if metric in point["metrics"]
    ]
    return pd.DataFrame(rows, columns=["dataset", "setting", "seed", "epoch", "value", "best"])


def late_gain(curves: pd.DataFrame, window: int = 10) -> pd.DataFrame:
    """Per data set and setting: how much the validation metric still rose over the last
    ``window`` epochs of training, ``late_gain = value(last) / value(last − window) − 1``,
    averaged over seeds (``seeds`` counts them; ``window`` is carried in its own column).
    Runs evaluated too rarely to reach back ``window`` epochs are left out."""
    cols = ["dataset", "setting", "last_epoch", "window", "late_gain", "seeds"]
    rows = []
    for (dataset, setting, _), run in curves.groupby(["dataset", "setting", "seed"], sort=False):
        by_epoch = run.set_index("epoch")["value"]
        last = int(by_epoch.index.max())
        if last - window in by_epoch.index and by_epoch[last - window] > 0:
            rows.append({"dataset": dataset, "setting": setting, "last_epoch": last,
                         "gain": by_epoch[last] / by_epoch[last - window] - 1})
    if not rows:
        return pd.DataFrame(columns=cols)
    out = (pd.DataFrame(rows).groupby(["dataset", "setting"], sort=False)
           .agg(last_epoch=("last_epoch", "max"), late_gain=("gain", "mean"),
                seeds=("gain", "size")).reset_index())
    return out.assign(window=window)[cols]


def convergence_sentence(late: pd.DataFrame, rising: float = 0.02) -> str:
    """What :func:`late_gain` says, per data set: the settings whose validation NDCG@10 still
    rose by more than ``rising`` over its ``window`` epochs, or that all had levelled off."""
    if late.empty:
        return "No stored run was evaluated often enough to tell whether it had converged."
    windows = sorted(set(late["window"]))
    if len(windows) > 1:
        raise ValueError(f"late_gain rows span several windows {windows}; pass one window's rows")
    window = int(windows[0])
    parts, any_rising = [], False
    for dataset, group in late.groupby("dataset", sort=False):
        up = group[group["late_gain"] > rising].sort_values("late_gain", ascending=False)
        any_rising |= not up.empty
        parts.append(f"**{dataset}**: " + (
            ", ".join(f"{r.setting} still rose {pct(r.late_gain)}" for r in up.itertuples())
            if not up.empty else
            f"every setting had levelled off (largest change {pct(group['late_gain'].max())})"))
    text = (f"Over the last {window} epochs of training (validation NDCG@10, mean over seeds), "
            + "; ".join(parts) + ".")
    if any_rising:
        text += (f" A rise of more than {pct(rising, signed=False, digits=0)} means the "
                 "comparison above is at the notes' epoch budget, not at convergence: longer "
                 "training would likely raise those settings.")
    return text


def still_improving(frame: pd.DataFrame) -> list[str]:
    """The runs whose best validation epoch is their last one (not converged), one line per
    data set and model naming each setting with its seeds: 'A, SASRec (4 blocks): seeds
    0, 1', 'A, MF-BPR: unmodified, seed 1; band [0, 3], seeds 0, 2'. A model's plain runs
    are called 'unmodified' next to its other settings, and wherever ``frame`` holds
    neighbour-averaged runs (Chapter 6), so that 'seeds 1, 2' never reads as every band."""
    banded = "smooth_band" in frame and frame["smooth_band"].notna().any()
    seeds: dict[tuple[str, str], dict[str, list[int]]] = {}
    for r in unconverged(frame).to_dict("records"):
        model, _, setting = run_label(r).partition(", ")  # 'MF-BPR', 'band [0, 3]'
        by_setting = seeds.setdefault((str(r.get("dataset")), model), {})
        by_setting.setdefault(setting, []).append(int(r["seed"]))

    def seed_list(s: list[int]) -> str:
        return f"seed{'s' if len(s) > 1 else ''} {', '.join(map(str, sorted(s)))}"

    return [f"{dataset}, {model}: " + "; ".join(
                (f"{setting or 'unmodified'}, " if len(by_setting) > 1 or setting or banded
                 else "")
                + seed_list(s) for setting, s in sorted(by_setting.items(), key=_natural_key))
            for (dataset, model), by_setting in sorted(seeds.items())]


def _natural_key(item: tuple[str, Any]) -> list[Any]:
    """Sort key for (text, value) pairs with numbers compared as numbers: 'maxlen 5' before
    'maxlen 10', 'band [0, 10]' before 'band [0, 100000]'."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", item[0])]


def run_label(row: dict[str, Any]) -> str:
    """A run's model in the chapter tables' words, with the settings that tell grid cells
    apart: 'SASRec (4 blocks)', 'SASRec (2 blocks), maxlen 5', 'MF-BPR, band [0, 3]'
    (Chapter 6's bands add 'without self term' when the item's own row is left out)."""
    model = row.get("model")
    if model in ("sasrec", "zero_block") and row.get("num_blocks") is not None:
        label = block_label(model, row["num_blocks"])
    else:
        label = STAMP_LABELS.get(model) or {"mf_bpr": "MF-BPR", "zero_block": BLOCK_LABEL_ZERO,
                                            "sasrec": "SASRec"}.get(model, str(model))
    if row.get("layout") == "rolled":
        label += f", maxlen {int(row['maxlen'])}"
    band = row.get("smooth_band")
    if isinstance(band, (tuple, list)):
        label += f", band [{band[0]}, {band[1]}]"
        if row.get("smooth_self_loops") is False:
            label += " without self term"
    return label


def caveat_markdown(runs: Any, datasets: Sequence[str] = (),
                    unavailable: Sequence[str] = ()) -> str:
    """:func:`caveats` as a Markdown paragraph (empty when there is none)."""
    lines = caveats(runs, datasets, unavailable)
    return "**Caveats.**\n\n" + "\n".join(f"- {c}" for c in lines) if lines else ""


def verdict(gain: float, p: float, threshold: float = 0.05, alpha: float = 0.05) -> str:
    """Classify a relative change: 'negligible' (|change| < threshold), 'significant'
    (paired p < alpha), or 'not significant'."""
    if gain is None or math.isnan(gain):
        return "unknown"
    if abs(gain) < threshold:
        return "negligible"
    if p is not None and not math.isnan(p) and p < alpha:
        return "significant"
    return "not significant"


# ----- chapter parameters -------------------------------------------------------------------
DEVICE_HINT = "'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"


@dataclass
class ChapterParameters:
    """A chapter's validated parameters, ready for ``chapter_runs(**params.run_kwargs())``."""

    chapter: str
    profile: str
    datasets: list[str] | None  # held data sets asked for (None = the chapter's default)
    seeds: list[int]
    grid: list[Any] | None
    train: bool | None
    results_root: str | None
    overrides: dict[str, Any]
    unavailable: list[str]  # SPEC's data sets we do not hold, shown as such
    configs: list[Any]  # every RunConfig the chapter would show (validated)

    def run_kwargs(self, chapter: str | None = None, grid: Any = "same") -> dict[str, Any]:
        """Keyword arguments for ``seqnb.chapter.chapter_runs``; another ``chapter`` (and its
        ``grid``, default: the chapter's own default) reuses data sets, seeds and knobs."""
        return dict(
            chapter=chapter or self.chapter,
            profile=self.profile,
            datasets=self.datasets,
            seeds=self.seeds,
            grid=self.grid if grid == "same" else grid,
            train=self.train,
            results_root=self.results_root,
            **self.overrides,
        )

    @property
    def shown_datasets(self) -> list[str]:
        """The held data sets the chapter shows, in order."""
        return list(dict.fromkeys(c.dataset for c in self.configs))


def _check_int_list(name: str, values: Any, minimum: int) -> list[int]:
    """``values`` as a list of integers >= ``minimum`` (one integer is a one-element list)."""
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    ok = isinstance(values, (list, tuple)) and len(values) > 0 and all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= minimum
        for v in values)
    if not ok:
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, "
                         f"got {values!r}")
    return [int(v) for v in values]


def check_chapter(
    chapter: str,
    profile: str = "book",
    datasets: Any = None,
    dataset: str | None = None,
    seeds: Any = (0, 1, 2),
    grid: Any = None,
    grid_name: str = "grid",
    epochs: int | None = None,
    device: str = "auto",
    train: bool | None = None,
    results_root: str | None = None,
) -> ChapterParameters:
    """Check every chapter parameter before any work starts; raise ``ValueError`` with a
    message that names the parameter and the allowed values.

    ``dataset`` is a shorthand for a one-element ``datasets``. The grid is checked per
    chapter (maxlen values >= 1, block counts >= 1, STAMP variant names); then every run
    configuration the chapter would show is built, which checks the rest.
    """
    from seqnb.chapter import check_parameters
    from seqnb.experiments import NOT_HELD, STAMP_VARIANTS, chapter_configs

    if dataset is not None:
        if datasets is not None:
            raise ValueError("give either dataset (one name) or datasets (a list), not both")
        datasets = [dataset]
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
    names = check_parameters(chapter, profile, datasets, list(seeds))
    if grid is not None:
        if chapter in ("maxlen", "zero_block"):
            grid = _check_int_list(grid_name, grid, 1)
        elif chapter == "stamp":
            grid = [grid] if isinstance(grid, str) else list(grid)
            bad = [v for v in grid if v not in STAMP_VARIANTS]
            if bad or not grid:
                raise ValueError(f"{grid_name} must be a non-empty list drawn from "
                                 f"{list(STAMP_VARIANTS)}, got {grid!r}")
        else:
            raise ValueError(f"chapter {chapter!r} has no grid; leave {grid_name}=None")
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                               or epochs < 1):
        raise ValueError(f"epochs must be None or a positive integer, got {epochs!r}")
    if not isinstance(device, str) or not (
            device in ("auto", "cpu", "cuda", "mps")
            or (device.startswith("cuda:") and device[5:].isdigit())):
        raise ValueError(f"device must be {DEVICE_HINT}, got {device!r}")
    if train is not None and not isinstance(train, bool):
        raise ValueError(f"train must be None, True or False, got {train!r}")
    if results_root is not None and not isinstance(results_root, str):
        results_root = str(results_root)
    overrides: dict[str, Any] = {}
    if epochs is not None:
        overrides["epochs"] = epochs
    if device != "auto":
        overrides["device"] = device
    unavailable = [d for d in (names or (NOT_HELD if profile != "smoke" else ()))
                   if d in NOT_HELD]
    held = [d for d in names if d not in NOT_HELD] if names is not None else None
    if names is not None and not held:
        configs: list[Any] = []
    else:
        configs = chapter_configs(chapter, profile, datasets=held, seeds=list(seeds),
                                  grid=grid, **overrides)
    return ChapterParameters(
        chapter=chapter, profile=profile, datasets=held, seeds=list(seeds), grid=grid,
        train=train, results_root=results_root, overrides=overrides,
        unavailable=list(unavailable), configs=configs,
    )


def load_runs(params: ChapterParameters, chapter: str | None = None, grid: Any = "same",
              progress: bool = False) -> Any:
    """``chapter_runs`` for validated parameters (another ``chapter`` may share them).

    When every data set asked for is one we do not hold, nothing is loaded: the result has
    no runs (and the chapter's tables show those data sets as 'not available offline').
    """
    from seqnb.chapter import ChapterRuns, chapter_runs
    from seqnb.results import ResultStore

    kwargs = params.run_kwargs(chapter, grid)
    if params.datasets == []:
        root = params.results_root
        return ChapterRuns(kwargs["chapter"], params.profile, [], [], [],
                           ResultStore(root), pd.DataFrame())
    return chapter_runs(progress=progress, **kwargs)


def missing_summary(runs: Any, params: ChapterParameters | None = None) -> pd.DataFrame:
    """One row per data set with runs not stored yet: how many, which seeds, and the command
    that trains them (``python -m seqnb grid`` skips stored runs; with a custom grid or
    epochs, the per-run command of the first missing run)."""
    cols = ["dataset", "missing runs", "seeds", "command"]
    if not runs.missing:
        return pd.DataFrame(columns=cols)
    from seqnb.results import command_for

    custom = params is not None and (params.grid is not None or params.overrides)
    rows = []
    by_dataset: dict[str, list[Any]] = {}
    for c in runs.missing:
        by_dataset.setdefault(c.dataset, []).append(c)
    for dataset, configs in by_dataset.items():
        seeds = sorted({c.seed for c in configs})
        if custom:
            command = command_for(configs[0]) + (" (and the others alike)"
                                                 if len(configs) > 1 else "")
        else:
            command = (f"python -m seqnb grid --chapters {runs.chapter} --datasets {dataset} "
                       f"--seeds {' '.join(map(str, seeds))}")
        rows.append({"dataset": dataset, "missing runs": len(configs),
                     "seeds": ", ".join(map(str, seeds)), "command": command})
    return pd.DataFrame(rows, columns=cols)


def complete(table: pd.DataFrame, params: ChapterParameters, column: str = "dataset"
             ) -> pd.DataFrame:
    """``table`` with a row for every data set the chapter covers: held data sets without
    rows say 'not yet trained', data sets we do not hold say 'not available offline'."""
    have = set(table[column]) if column in table else set()
    untrained = [d for d in params.shown_datasets if d not in have]
    return with_unavailable(with_unavailable(table, untrained, NOT_TRAINED, column),
                            params.unavailable, UNAVAILABLE, column)


__all__ = [
    "PAIRED_METRIC", "PROTOCOLS", "STAMP_LABELS", "UNAVAILABLE", "NOT_TRAINED",
    "add_setting", "and_join", "attention_by_offset", "attention_on_last", "attention_rows",
    "block_label", "caveat_markdown", "caveats", "ChapterParameters", "check_chapter",
    "compare", "complete", "convergence_sentence", "coverage", "format_p", "late_gain",
    "load_runs", "maxlen_gain", "mean_std", "missing_summary", "paired_test", "PairedTest",
    "pct", "per_user", "pooled", "precision_pairs", "relative_change", "run_label",
    "sequentiality_summary", "shuffle_drop", "shuffle_table", "shuffled_column",
    "still_improving", "stored_of_grid", "test_input_lengths", "unconverged",
    "uniform_attention", "unique_shares", "validation_curves", "verdict",
    "with_unavailable",
]
