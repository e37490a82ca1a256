"""Chapter 6: per-item tables from stored runs, the tests of the note's claims, and charts.

Data preparation (pure pandas/numpy, from stored arrays — nothing is trained here):

* :func:`item_table` — one row per item of a (data set, model): training frequency,
  embedding L2 norm, per-item Recall@k / NDCG@k pooled over seeds.
* :func:`frequency_bins` — items sorted by training frequency, cut into equal-count bins
  (what the four aligned panels draw; a few hundred rows whatever the catalogue size).
* :func:`norm_frequency_stats` — Spearman correlations and decile ratios behind the claims
  "MF: the norm grows with frequency; SASRec: not once an item is seen; never-trained items
  keep small norms", and :func:`claim_checks` — the verdicts.
* :func:`band_table` — test NDCG@10 per neighbour-averaged band ``[l, u]``, with the change
  against the unmodified model (paired by seed) and a paired per-user Wilcoxon test.

Charts: :func:`frequency_panels`, :func:`norm_scatter`, :func:`band_heatmaps`.

Training frequency (the chapter's definition, :attr:`seqnb.data.Dataset.item_frequency`):
the number of times the item occurs in the training sequences; validation and test
targets are not counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
from scipy import stats

from seqnb.analysis import short_names
from seqnb.config import self_term_acts
from seqnb.data import Dataset, load_dataset
from seqnb.metrics import per_item_metrics
from seqnb.plots import PALETTE, SMALL_HEIGHT, SMALL_WIDTH, dataset_selector, with_caption

MODEL_LABELS = {"mf_bpr": "MF-BPR", "sasrec": "SASRec"}
MODEL_COLORS = {"MF-BPR": PALETTE[1], "SASRec": PALETTE[0]}
SELF_LABELS = {True: "with self term", False: "without self term"}
PANELS = ("training frequency", "embedding L2 norm", "Recall@{k}", "NDCG@{k}")


def model_label(model: str) -> str:
    return MODEL_LABELS.get(model, model)


# ----- the data set a run was trained on ------------------------------------------------------
def trained_dataset(name: str, max_users: int | None = None) -> Dataset:
    """The data set exactly as :func:`seqnb.results.run` trained on it: the registry data set,
    or its seeded ``max_users`` subsample (``subsample_users(max_users, seed=0)``)."""
    dataset = load_dataset(name)
    if max_users is not None and not pd.isna(max_users) and dataset.num_users > max_users:
        dataset = dataset.subsample_users(int(max_users), seed=0)
    return dataset


def frequency_profile(dataset: Dataset, rare: int = 3, top: float = 0.1) -> dict[str, Any]:
    """How skewed the training frequency of ``dataset`` is (one table row).

    Items never trained (frequency 0), items seen at most ``rare`` times, the share of the
    training interactions that fall on the most frequent ``top`` share of the items, and
    the median frequency.
    """
    f = np.asarray(dataset.item_frequency)[1:]
    ordered = np.sort(f)[::-1]
    head = max(1, int(round(top * len(f))))
    return {
        "dataset": dataset.name,
        "items": len(f),
        "training interactions": int(f.sum()),
        "never trained": int((f == 0).sum()),
        f"seen 1–{rare} times": int(((f >= 1) & (f <= rare)).sum()),
        f"interactions on the top {top:.0%} items": float(ordered[:head].sum() / max(f.sum(), 1)),
        "median frequency": float(np.median(f)),
        "max frequency": int(f.max()),
    }


def plain_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs without a neighbour-averaged band (the unmodified models)."""
    if frame.empty:
        return frame
    return frame[frame["smooth_band"].isna()]


# ----- per item -------------------------------------------------------------------------------
def item_table(runs: Any, dataset: str, model: str, k: int = 10) -> pd.DataFrame:
    """One row per item (id 1..num_items) for the unmodified ``model`` on ``dataset``.

    Columns: ``item``, ``frequency`` (training interactions), ``norm`` (embedding L2 norm,
    mean over seeds) and ``norm_std``, ``test_cases`` (test users whose target is the item),
    ``Recall@k`` and ``NDCG@k`` (mean over those test cases, pooled over seeds; NaN for an
    item that is never a test target), ``ndcg_sq`` (mean squared per-case NDCG, for
    intervals), ``seeds``.

    ``runs`` is a :class:`seqnb.chapter.ChapterRuns`; the per-user test ranks and per-item
    norms come from its stored arrays.
    """
    frame = plain_runs(runs.frame)
    rows = frame[(frame["dataset"] == dataset) & (frame["model"] == model)]
    if rows.empty:
        raise LookupError(f"no stored unmodified {model} run on {dataset}")
    max_users = rows["max_users"].iloc[0] if "max_users" in rows else None
    ds = trained_dataset(dataset, max_users)
    targets = ds.test_targets
    n = ds.num_items
    hits = np.zeros(n + 1)
    ndcg = np.zeros(n + 1)
    ndcg_sq = np.zeros(n + 1)
    cases = np.zeros(n + 1)
    norms = []
    for run_id in rows["run_id"]:
        arrays = runs.arrays(run_id)
        if "test_ranks" not in arrays or "item_norms" not in arrays:
            raise LookupError(f"run {run_id} has no stored per-user ranks / item norms")
        ranks = arrays["test_ranks"].astype(np.int64)
        if len(ranks) != len(targets):
            raise ValueError(f"run {run_id}: {len(ranks)} stored ranks but {ds.name} has "
                             f"{len(targets)} test users; the data set changed since the run")
        if "item_frequency" in arrays and not np.array_equal(arrays["item_frequency"],
                                                             ds.item_frequency):
            raise ValueError(f"run {run_id}: stored item frequencies differ from {ds.name}'s")
        per = per_item_metrics(ranks, targets, n, k)
        count = per["count"]
        hits += np.nan_to_num(per[f"Recall@{k}"]) * count
        ndcg += np.nan_to_num(per[f"NDCG@{k}"]) * count
        gain = np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)
        ndcg_sq += np.bincount(targets, weights=gain**2, minlength=n + 1)
        cases += count
        norms.append(arrays["item_norms"].astype(np.float64))
    norm = np.vstack(norms)
    with np.errstate(invalid="ignore", divide="ignore"):
        table = pd.DataFrame({
            "item": np.arange(n + 1),
            "frequency": ds.item_frequency,
            "norm": norm.mean(axis=0),
            "norm_std": norm.std(axis=0, ddof=1) if len(norms) > 1 else np.nan,
            "test_cases": cases / len(norms),
            f"Recall@{k}": hits / cases,
            f"NDCG@{k}": ndcg / cases,
            "ndcg_sq": ndcg_sq / cases,
            "seeds": len(norms),
        })
    table.insert(0, "model", model_label(model))
    table.insert(0, "dataset", dataset)
    return table.iloc[1:].reset_index(drop=True)  # drop the padding row


def frequency_bins(items: pd.DataFrame, bins: int = 100, k: int = 10) -> pd.DataFrame:
    """Items sorted by training frequency (most frequent first), cut into ``bins`` bins of
    equal item count; long form, one row per (bin, panel).

    Columns: ``dataset``, ``model``, ``panel``, ``bin``, ``rank_from`` / ``rank_to`` /
    ``rank_mid`` (share of the catalogue, 0 = most frequent), ``value``, ``low``, ``high``,
    ``items``, ``freq_min`` / ``freq_max``, ``test_cases``. Bands: frequency min–max;
    norm 10th–90th percentile; Recall/NDCG a 95% normal interval over the bin's test
    cases (empty where the bin has no test case).
    """
    out = []
    for (dataset, model), group in items.groupby(["dataset", "model"], sort=False):
        g = group.sort_values(["frequency", "item"], ascending=[False, True]).reset_index(
            drop=True)
        n = len(g)
        edges = np.linspace(0, n, min(bins, n) + 1).round().astype(int)
        for b, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            if hi <= lo:
                continue
            part = g.iloc[lo:hi]
            common = {
                "dataset": dataset, "model": model, "bin": b,
                "rank_from": lo / n, "rank_to": hi / n, "rank_mid": (lo + hi) / (2 * n),
                "items": hi - lo, "freq_min": int(part["frequency"].min()),
                "freq_max": int(part["frequency"].max()),
            }
            cases = part["test_cases"].to_numpy()
            m = cases.sum()
            f = part["frequency"].to_numpy()
            rows = [("training frequency", float(np.median(f)), float(f.min()), float(f.max()))]
            nv = part["norm"].to_numpy()
            rows.append(("embedding L2 norm", float(np.mean(nv)),
                         float(np.quantile(nv, 0.1)), float(np.quantile(nv, 0.9))))
            for name, sq in ((f"Recall@{k}", None), (f"NDCG@{k}", "ndcg_sq")):
                if m == 0:
                    rows.append((name, np.nan, np.nan, np.nan))
                    continue
                w = np.nan_to_num(part[name].to_numpy()) * cases
                mean = w.sum() / m
                second = mean if sq is None else (np.nan_to_num(part[sq].to_numpy()) * cases
                                                  ).sum() / m
                half = 1.96 * np.sqrt(max(second - mean**2, 0.0) / m)
                rows.append((name, mean, max(mean - half, 0.0), min(mean + half, 1.0)))
            for panel, value, low, high in rows:
                out.append({**common, "panel": panel, "value": value, "low": low,
                            "high": high, "test_cases": float(m)})
    return pd.DataFrame(out)


# ----- the claims -----------------------------------------------------------------------------
def norm_frequency_stats(items: pd.DataFrame, deciles: int = 10) -> pd.DataFrame:
    """Per (dataset, model): how the embedding norm depends on training frequency.

    Columns: ``items``, ``never trained`` (frequency 0), ``spearman (all)`` and
    ``spearman (seen)`` (rank correlation of norm and frequency over all items / over items
    with frequency >= 1) with ``p (seen)``, ``median norm (never)`` and ``median norm
    (seen)``, ``decile ratio`` (median norm of the most frequent tenth of the seen items /
    that of the least frequent tenth; ties in frequency broken by item id).
    """
    rows = []
    for (dataset, model), g in items.groupby(["dataset", "model"], sort=False):
        seen = g[g["frequency"] >= 1]
        never = g[g["frequency"] == 0]
        varies = g["frequency"].nunique() > 1 and g["norm"].nunique() > 1
        rho_all = (stats.spearmanr(g["frequency"], g["norm"]).statistic
                   if len(g) > 2 and varies else np.nan)
        if len(seen) > 2 and seen["frequency"].nunique() > 1 and seen["norm"].nunique() > 1:
            res = stats.spearmanr(seen["frequency"], seen["norm"])
            rho_seen, p_seen = float(res.statistic), float(res.pvalue)
        else:
            rho_seen = p_seen = np.nan
        ordered = seen.sort_values(["frequency", "item"])["norm"].to_numpy()
        tenth = max(1, len(ordered) // deciles)
        low, high = np.median(ordered[:tenth]), np.median(ordered[-tenth:])
        rows.append({
            "dataset": dataset, "model": model, "items": len(g), "never trained": len(never),
            "spearman (all)": float(rho_all), "spearman (seen)": rho_seen, "p (seen)": p_seen,
            "median norm (never)": float(never["norm"].median()) if len(never) else np.nan,
            "median norm (seen)": float(seen["norm"].median()) if len(seen) else np.nan,
            "median norm (least frequent tenth)": float(low),
            "median norm (most frequent tenth)": float(high),
            "decile ratio": float(high / low) if low > 0 else np.nan,
        })
    return pd.DataFrame(rows)


def claim_checks(norm_stats: pd.DataFrame, tolerance: float = 0.25,
                 alpha: float = 0.01) -> pd.DataFrame:
    """The note's expected findings, tested on ``norm_stats`` (:func:`norm_frequency_stats`).

    * MF-BPR, "the norm grows with frequency": Spearman over seen items > 0 with p < alpha,
      and the decile ratio > 1 + tolerance.
    * SASRec, "the norm does not grow once an item is seen": the decile ratio within
      [1 / (1 + tolerance), 1 + tolerance].
    * Both, "never-trained items keep small norms": median norm of never-trained items
      <= (1 - tolerance) × median norm of seen items (untestable without such items).

    One row per (dataset, model, claim) with ``evidence`` and ``verdict``
    ('holds' / 'does not hold' / 'cannot be tested').
    """
    rows = []
    for d in norm_stats.to_dict("records"):
        ratio, rho, p = d["decile ratio"], d["spearman (seen)"], d["p (seen)"]
        if d["model"] == "MF-BPR":
            claim = "norm grows with training frequency"
            ok = bool(np.isfinite(rho) and rho > 0 and p < alpha and ratio > 1 + tolerance)
            evidence = (f"Spearman ρ (seen items) = {_rho(rho)} ({_p(p)}); most/least "
                        f"frequent tenth median norm ratio = {ratio:.2f}")
        else:
            claim = "norm does not grow with frequency once an item is seen"
            ok = 1 / (1 + tolerance) <= ratio <= 1 + tolerance
            evidence = (f"most/least frequent tenth median norm ratio = {ratio:.2f} "
                        f"(flat if within {1 / (1 + tolerance):.2f}–{1 + tolerance:.2f}); "
                        f"Spearman ρ (seen) = {_rho(rho)}")
        verdict = "holds" if ok else "does not hold"
        if not np.isfinite(ratio):
            verdict, evidence = "cannot be tested", "too few seen items to compare norms"
        rows.append({"dataset": d["dataset"], "model": d["model"], "claim": claim,
                     "evidence": evidence, "verdict": verdict})
        never, seen = d["median norm (never)"], d["median norm (seen)"]
        if d["never trained"] == 0 or not np.isfinite(never):
            verdict, evidence = "cannot be tested", "no item is absent from training"
        else:
            verdict = "holds" if never <= (1 - tolerance) * seen else "does not hold"
            evidence = (f"median norm {never:.3f} for the {d['never trained']:,} never-trained "
                        f"items vs {seen:.3f} for seen items (ratio {never / seen:.2f})")
        rows.append({"dataset": d["dataset"], "model": d["model"],
                     "claim": "never-trained items keep small norms",
                     "evidence": evidence, "verdict": verdict})
    return pd.DataFrame(rows, columns=["dataset", "model", "claim", "evidence", "verdict"])


def _rho(rho: float) -> str:
    return "undefined (constant values)" if not np.isfinite(rho) else f"{rho:+.2f}"


def _p(p: float) -> str:
    """'p = 0.03', 'p < 1e-300' (underflow), 'p n/a'."""
    if not np.isfinite(p):
        return "p n/a"
    return "p < 1e-300" if p == 0 else f"p = {p:.2g}"


# ----- the band sweep -------------------------------------------------------------------------
def band_items(item_frequency: np.ndarray, band: tuple[int, int]) -> int:
    """Items (id >= 1) whose training frequency lies in ``[l, u]``."""
    f = np.asarray(item_frequency)[1:]
    return int(((f >= band[0]) & (f <= band[1])).sum())


def _per_user_ndcg(ranks: np.ndarray, k: int) -> np.ndarray:
    r = ranks.astype(np.float64)
    return np.where(r <= k, 1.0 / np.log2(r + 1.0), 0.0)


def band_table(runs: Any, metric: str = "NDCG@10", paired_test: bool = True) -> pd.DataFrame:
    """One row per (dataset, model, self term, band): ``metric`` mean/std over seeds, the
    change against the unmodified model of the same seed (mean/std), the items and the share
    of training interactions in the band, and a paired Wilcoxon signed-rank p-value on the
    per-user ``metric`` (averaged over seeds) band vs unmodified.

    A band of never-trained items only (``u < 1``) is one run, stored with the self term
    (:class:`~seqnb.config.RunConfig` makes the two settings one run id); its row appears
    under both self-term labels, so each model's two heatmap rows stay complete.
    """
    frame = runs.frame
    cols = ["dataset", "model", "self term", "l", "u", "band", "mean", "std", "seeds",
            "delta", "delta std", "seeds agree", "relative", "p", "items in band",
            "share of items", "share of interactions", "plain"]
    if frame.empty:
        return pd.DataFrame(columns=cols)
    k = int(metric.split("@")[1]) if "@" in metric else 10
    plain = plain_runs(frame).set_index(["dataset", "model", "seed"])[metric]
    plain_ids = plain_runs(frame).set_index(["dataset", "model", "seed"])["run_id"]
    banded = frame[frame["smooth_band"].notna()]
    per_user_cache: dict[str, np.ndarray] = {}

    def user_metric(run_id: str) -> np.ndarray | None:
        if run_id not in per_user_cache:
            arrays = runs.arrays(run_id)
            if "test_ranks" not in arrays:
                return None
            per_user_cache[run_id] = _per_user_ndcg(arrays["test_ranks"], k)
        return per_user_cache[run_id]

    rows = []
    group_keys = ["dataset", "model", "smooth_self_loops", "smooth_band"]
    for (dataset, model, self_loops, band), g in banded.groupby(group_keys, sort=False):
        ds = trained_dataset(dataset, g["max_users"].iloc[0] if "max_users" in g else None)
        freq = ds.item_frequency
        keys = [(dataset, model, s) for s in g["seed"]]
        base = np.array([plain.get(key, np.nan) for key in keys])
        values = g[metric].to_numpy()
        delta = values - base
        in_band = band_items(freq, band)
        inter = freq[1:][(freq[1:] >= band[0]) & (freq[1:] <= band[1])].sum()
        p = np.nan
        if paired_test:
            pairs = [(user_metric(r), user_metric(plain_ids[key]))
                     for r, key in zip(g["run_id"], keys, strict=True) if key in plain_ids]
            pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
            if pairs:
                a = np.mean([x for x, _ in pairs], axis=0)
                b = np.mean([y for _, y in pairs], axis=0)
                p = float(stats.wilcoxon(a, b).pvalue) if np.any(a != b) else 1.0
        row = {
            "dataset": dataset, "model": model_label(model),
            "self term": SELF_LABELS[bool(self_loops)], "l": int(band[0]), "u": int(band[1]),
            "band": f"[{band[0]}, {band[1]}]",
            "mean": float(np.mean(values)),
            "std": float(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
            "seeds": len(values),
            "delta": float(np.nanmean(delta)) if np.isfinite(delta).any() else np.nan,
            "delta std": float(np.nanstd(delta, ddof=1)) if np.isfinite(delta).sum() > 1
            else np.nan,
            "seeds agree": _same_sign(delta),
            "relative": float(np.nanmean(delta) / np.nanmean(base))
            if np.isfinite(base).any() and np.nanmean(base) > 0 else np.nan,
            "p": p,
            "items in band": in_band, "share of items": in_band / ds.num_items,
            "share of interactions": float(inter / max(freq.sum(), 1)),
            "plain": float(np.nanmean(base)) if np.isfinite(base).any() else np.nan,
        }
        rows.append(row)
        if not self_term_acts(band):  # one run for both settings: show it in both rows
            rows.append({**row, "self term": SELF_LABELS[not self_loops]})
    return pd.DataFrame(rows, columns=cols)


def _same_sign(deltas: np.ndarray) -> float:
    """1.0 when two or more per-seed changes all point the same way, 0.0 when they do not,
    NaN with fewer than two (a float column, so that pandas keeps the gaps)."""
    d = deltas[np.isfinite(deltas)]
    if len(d) < 2:
        return np.nan
    return float(bool(np.all(d > 0) or np.all(d < 0)))


def seed_agreement(bands: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): the band settings (band x self term) trained with two or more
    seeds, and in how many every seed's change against its own unmodified model has the
    same sign (``band_table``'s 'seeds agree'). A band of never-trained items counts once."""
    cols = ["dataset", "model", "settings", "seeds agree"]
    mirrored = (bands["u"] < 1) & (bands["self term"] == SELF_LABELS[False])
    several = bands[~mirrored & bands["seeds agree"].notna()]
    if several.empty:
        return pd.DataFrame(columns=cols)
    grouped = several.groupby(["dataset", "model"], sort=False)["seeds agree"]
    return pd.DataFrame({"settings": grouped.size(),
                         "seeds agree": grouped.sum().astype(int)}).reset_index()[cols]


def uneven_seeds_note(bands: pd.DataFrame) -> str:
    """A sentence for a grid still being trained, whose heatmap cells (``band_table`` rows)
    average different numbers of seeds; '' when every cell has the same number."""
    if bands.empty or bands["seeds"].nunique() <= 1:
        return ""
    parts = []
    for (dataset, model), g in bands.groupby(["dataset", "model"], sort=False):
        counts = g["seeds"].value_counts().sort_index(ascending=False)
        cells = ", ".join(f"{n} with {k} seed{'s' if k > 1 else ''}" for k, n in counts.items())
        parts.append(f"{model} on {dataset}: {cells}")
    return ("Not every cell has all its seeds yet (cells per model, both self-term panels: "
            + "; ".join(parts) + "). A cell's value is the mean over its own seeds, and "
            "seeds differ in level, so compare cells in the change rows, which pair each band "
            "with the unmodified model of the same seed.")


def self_term_comparison(bands: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, model): the bands stored both with and without the self term, and in
    how many of them the variant with it scores the higher mean (``band_table`` rows).

    Bands of never-trained items only (``u < 1``) are left out: those items have no users,
    so their rows are zero with or without the self term, and ``band_table`` shows the one
    run under both labels."""
    cols = ["dataset", "model", "bands compared", "higher with self term"]
    bands = bands[bands["u"] >= 1]
    if bands.empty:
        return pd.DataFrame(columns=cols)
    wide = bands.pivot_table(index=["dataset", "model", "band"], columns="self term",
                             values="mean")
    both = [SELF_LABELS[True], SELF_LABELS[False]]
    if not set(both) <= set(wide.columns):
        return pd.DataFrame(columns=cols)
    wide = wide.dropna(subset=both)  # a band stored one way only is not compared
    higher = (wide[both[0]] > wide[both[1]]).groupby(level=["dataset", "model"], sort=False)
    out = pd.DataFrame({"bands compared": higher.size(), "higher with self term": higher.sum()})
    return out.reset_index()[cols]


# ----- parameters ----------------------------------------------------------------------------
def check_frequency_parameters(
    band_edges: Any = None,
    bins: Any = 100,
    max_points: Any = 600,
    tolerance: Any = 0.25,
    k: Any = 10,
) -> list[int] | None:
    """Fail fast, naming the allowed values, on a bad Chapter 6 parameter (the common ones —
    data sets, seeds, epochs, device — are checked by :func:`seqnb.analysis.check_chapter`).
    Returns the band edges as a list (None for the chapter's default grid)."""
    if band_edges is not None:
        ok = (isinstance(band_edges, (list, tuple)) and len(band_edges) >= 1
              and all(isinstance(e, int) and not isinstance(e, bool) and e >= 0
                      for e in band_edges)
              and list(band_edges) == sorted(set(band_edges)))
        if not ok:
            raise ValueError("band_edges must be None or a strictly increasing list of "
                             f"training frequencies >= 0, e.g. [0, 1, 3, 10], got {band_edges!r}")
        band_edges = [int(e) for e in band_edges]
    for name, value, low in (("bins", bins, 2), ("max_points", max_points, 10), ("k", k, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if k > 254:
        raise ValueError(f"k must be <= 254 (stored ranks are exact up to 254), got {k!r}")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) \
            or not 0 < tolerance < 1:
        raise ValueError(f"tolerance must be a number in (0, 1), got {tolerance!r}")
    return band_edges


# ----- charts ---------------------------------------------------------------------------------
def _dataset_param(datasets: Sequence[str], name: str) -> alt.Parameter | None:
    """:func:`seqnb.plots.dataset_selector`, or None when there is only one data set."""
    return dataset_selector(datasets, name) if len(set(datasets)) > 1 else None


_PANEL_KEYS = ("freq", "norm", "recall", "ndcg")


def _wide_bins(bins: pd.DataFrame, k: int) -> pd.DataFrame:
    """One row per (dataset, model, bin) with every panel's value/low/high (4 significant
    digits): the four panels then share one small data set in the chart."""
    panels = dict(zip([p.format(k=k) for p in PANELS], _PANEL_KEYS, strict=True))
    keys = ["dataset", "model", "bin", "rank_mid", "rank_from", "rank_to", "items",
            "freq_min", "freq_max"]
    wide = (bins.set_index([*keys, "panel"])[["value", "low", "high"]]
            .unstack("panel").reset_index())
    out = wide[keys].copy()
    out.columns = keys
    for panel, key in panels.items():
        for stat in ("value", "low", "high"):
            col = (stat, panel)
            values = wide[col] if col in wide.columns else np.nan
            out[f"{key}_{stat}"] = pd.Series(values).astype(float).map(
                lambda v: float(f"{v:.4g}") if np.isfinite(v) else None)
    cases = bins.groupby(["dataset", "model", "bin"])["test_cases"].first()
    out["test_cases"] = [cases.get((d, m, b), 0.0) for d, m, b in
                         zip(out["dataset"], out["model"], out["bin"], strict=True)]
    for col in ("rank_mid", "rank_from", "rank_to"):
        out[col] = out[col].round(4)
    return out.sort_values(["dataset", "model", "bin"]).reset_index(drop=True)


def frequency_panels(bins: pd.DataFrame, k: int = 10, provenance: Any = None) -> Any:
    """Four aligned panels per model (columns): training frequency, embedding norm, per-item
    Recall@k and NDCG@k, against the item's frequency rank (0 = most frequent item).

    ``bins``: :func:`frequency_bins`. Lines are bin means (frequency: median), bands as
    described there; the tooltip of a point gives all four values of its bin. With several
    data sets a selector picks one.
    """
    data = _wide_bins(bins, k)
    sel = _dataset_param(data["dataset"], "frequency_dataset")
    if sel is None:
        data = data.drop(columns="dataset")
    models = list(dict.fromkeys(data["model"]))
    color = alt.Color("model:N", legend=None, scale=alt.Scale(
        domain=models, range=[MODEL_COLORS.get(m, PALETTE[2]) for m in models]))
    tooltip = [alt.Tooltip("model:N"),
               alt.Tooltip("rank_from:Q", format=".1%", title="frequency rank from"),
               alt.Tooltip("rank_to:Q", format=".1%", title="frequency rank to"),
               alt.Tooltip("items:Q"), alt.Tooltip("freq_min:Q", title="frequency min"),
               alt.Tooltip("freq_max:Q", title="frequency max"),
               alt.Tooltip("norm_value:Q", format=".3f", title="mean norm"),
               alt.Tooltip("recall_value:Q", format=".4f", title=f"Recall@{k}"),
               alt.Tooltip("ndcg_value:Q", format=".4f", title=f"NDCG@{k}"),
               alt.Tooltip("test_cases:Q", format=".0f", title="test cases")]
    if sel is not None:
        tooltip.insert(0, alt.Tooltip("dataset:N"))
    rows = []
    for i, (title, key) in enumerate(zip([p.format(k=k) for p in PANELS], _PANEL_KEYS,
                                         strict=True)):
        last = i == len(_PANEL_KEYS) - 1
        x = alt.X("rank_mid:Q", scale=alt.Scale(domain=[0, 1], nice=False),
                  title="items by training frequency (0 = most frequent)" if last else None,
                  axis=alt.Axis(format="%", labels=last, ticks=last))
        scale = (alt.Scale(type="symlog") if key == "freq"
                 else alt.Scale(zero=key != "norm"))
        base = alt.Chart()
        if sel is not None:
            base = base.transform_filter(alt.datum.dataset == sel)
        # named views: Altair 6 cannot lift a selector out of facets of unnamed layers
        band = base.mark_area(opacity=0.25).encode(
            x=x, y=alt.Y(f"{key}_low:Q", title=title, scale=scale), y2=f"{key}_high:Q",
            color=color).properties(name=f"{key}_band")
        line = base.mark_line(point=alt.OverlayMarkDef(size=12)).encode(
            x=x, y=alt.Y(f"{key}_value:Q", title=title, scale=scale), color=color,
            tooltip=tooltip).properties(name=f"{key}_line")
        chart = alt.layer(band, line, data=data).properties(
            width=SMALL_WIDTH + 60, height=SMALL_HEIGHT - 20).facet(
            column=alt.Column("model:N", title=None, sort=models,
                              header=alt.Header(labels=i == 0)))
        rows.append(chart)
    chart = alt.vconcat(*rows, spacing=6).resolve_scale(y="independent")
    if sel is not None:
        chart = chart.add_params(sel)
    return with_caption(chart, "Frequency, norm and accuracy along the frequency ranking "
                               "(each point: one bin of items)", provenance)


def norm_scatter(items: pd.DataFrame, norm_stats: pd.DataFrame | None = None,
                 max_points: int = 600, seed: int = 0, provenance: Any = None) -> Any:
    """Embedding norm against training frequency (symlog x: log-like, 0 included), one panel
    per model; at most ``max_points`` items per model (a seeded sample), with the median
    norm per frequency bin over *all* items as a black line. Panel headers give Spearman's
    ρ over all items and over the items seen in training (a line per data set)."""
    rng = np.random.default_rng(seed)
    parts, medians = [], []
    for (dataset, model), g in items.groupby(["dataset", "model"], sort=False):
        take = g if len(g) <= max_points else g.iloc[np.sort(rng.choice(len(g), max_points,
                                                                        replace=False))]
        parts.append(take[["dataset", "model", "item", "frequency", "norm", "test_cases"]])
        edges = np.unique(np.concatenate([[0, 1], np.round(np.geomspace(1, max(
            g["frequency"].max(), 2), 25)).astype(int)]))
        cut = pd.cut(g["frequency"], bins=np.append(edges, np.inf), right=False)
        med = g.groupby(cut, observed=True).agg(frequency=("frequency", "median"),
                                                norm=("norm", "median"),
                                                items=("item", "size")).reset_index(drop=True)
        med["dataset"], med["model"] = dataset, model
        medians.append(med)
    points, lines = pd.concat(parts), pd.concat(medians)
    points = points.astype({"item": int, "frequency": int})
    points["norm"] = points["norm"].round(4)
    points["test_cases"] = points["test_cases"].round(2)
    lines["norm"] = lines["norm"].round(4)
    sel = _dataset_param(points["dataset"], "scatter_dataset")
    if sel is None:
        points, lines = points.drop(columns="dataset"), lines.drop(columns="dataset")
    titles: dict[str, list[str]] = {}  # the correlation, one line per data set
    if norm_stats is not None and len(norm_stats):
        several = norm_stats["dataset"].nunique() > 1
        names = short_names(list(dict.fromkeys(norm_stats["dataset"])))
        for r in norm_stats.to_dict("records"):
            where = f"{names[r['dataset']]}: " if several else ""
            titles.setdefault(r["model"], []).append(
                f"{where}Spearman ρ = {_rho(r['spearman (all)'])} (all items), "
                f"{_rho(r['spearman (seen)'])} (seen)")
    x = alt.X("frequency:Q", title="training frequency (symlog axis)",
              scale=alt.Scale(type="symlog"))
    y = alt.Y("norm:Q", title="embedding L2 norm", scale=alt.Scale(zero=False))
    panels = []
    for model in dict.fromkeys(points["model"]):
        dots = alt.Chart(points[points["model"] == model]).mark_circle(
            size=12, opacity=0.35, color=MODEL_COLORS.get(model, PALETTE[2])).encode(
            x=x, y=y,
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("item:Q"), alt.Tooltip("frequency:Q"),
                     alt.Tooltip("norm:Q", format=".3f"),
                     alt.Tooltip("test_cases:Q", format=".0f", title="test cases")])
        med = alt.Chart(lines[lines["model"] == model]).mark_line(
            color="#222", strokeWidth=1.5).encode(
            x=x, y=y, tooltip=[alt.Tooltip("frequency:Q", title="median frequency"),
                               alt.Tooltip("norm:Q", format=".3f", title="median norm"),
                               alt.Tooltip("items:Q")])
        if sel is not None:
            dots, med = (c.transform_filter(alt.datum.dataset == sel) for c in (dots, med))
        panels.append(alt.layer(dots, med).properties(
            width=SMALL_WIDTH + 80, height=SMALL_HEIGHT + 40,
            title=alt.TitleParams(model, subtitle=titles.get(model, []), fontSize=12)))
    chart = alt.hconcat(*panels)
    if sel is not None:
        chart = chart.add_params(sel)
    return with_caption(chart, "Embedding norm against training frequency (black: median "
                               "norm per frequency bin, all items)", provenance)


def band_heatmaps(bands: pd.DataFrame, metric: str = "NDCG@10", provenance: Any = None) -> Any:
    """Heatmaps over ``[l, u]``, two rows per model: its test ``metric`` (one colour scale
    per model and data set) and the change against the unmodified model (one diverging
    scale shared by all); columns = self term (with, without): two panels, narrow enough
    for the page. With several data sets a selector picks one. ``bands``: :func:`band_table`."""
    data = bands.copy()
    edges = sorted(set(data["l"]) | set(data["u"]))
    data["l_label"] = data["l"].map(_edge_label)
    data["u_label"] = data["u"].map(_edge_label)
    order = [_edge_label(e) for e in edges]
    tooltip = [alt.Tooltip("dataset:N"), alt.Tooltip("model:N"), alt.Tooltip("self term:N"),
               alt.Tooltip("band:N", title="band [l, u]"),
               alt.Tooltip("items in band:Q", format=","),
               alt.Tooltip("share of interactions:Q", format=".1%",
                           title="training interactions in band"),
               alt.Tooltip("mean:Q", format=".4f", title=f"{metric} mean"),
               alt.Tooltip("std:Q", format=".4f", title=f"{metric} std"),
               alt.Tooltip("plain:Q", format=".4f", title="unmodified model"),
               alt.Tooltip("delta:Q", format="+.4f", title="change"),
               alt.Tooltip("relative:Q", format="+.1%", title="relative change"),
               alt.Tooltip("p:Q", format=".2g", title="paired Wilcoxon p"),
               alt.Tooltip("seeds:Q")]
    x = alt.X("u_label:O", title="upper edge u", sort=order, axis=alt.Axis(labelAngle=0))
    y = alt.Y("l_label:O", title="lower edge l", sort=order)
    self_terms = list(dict.fromkeys(data["self term"]))
    sel = _dataset_param(data["dataset"], "band_dataset")

    def heat(frame: pd.DataFrame, field: str, scale: alt.Scale, fmt: str, title: str,
             legend_title: str, dark: str, row: int) -> Any:
        base = alt.Chart()
        if sel is not None:
            base = base.transform_filter(alt.datum.dataset == sel)
        # named views: Altair 6 cannot lift a selector out of facets of unnamed layers
        rect = base.mark_rect().encode(
            x=x, y=y, color=alt.Color(f"{field}:Q", scale=scale, title=legend_title),
            tooltip=tooltip).properties(name=f"heat{row}_rect")
        text = base.mark_text(fontSize=9).encode(
            x=x, y=y, text=alt.Text(f"{field}:Q", format=fmt), tooltip=tooltip,
            color=alt.condition(dark, alt.value("white"), alt.value("#222"))
        ).properties(name=f"heat{row}_text")
        cols = [c for c in self_terms if c in set(frame["self term"])]
        return alt.layer(rect, text, data=frame).properties(
            width=alt.Step(40), height=alt.Step(22)).facet(
            column=alt.Column("self term:N", title=title, sort=cols))

    finite = data["delta"].dropna()
    span = float(finite.abs().max()) if len(finite) and finite.abs().max() > 0 else 1.0
    rows = []
    for model in dict.fromkeys(data["model"]):
        sub = data[data["model"] == model].copy()
        # the colour scale spans the data set shown (Vega takes the filtered extent); white
        # text on the darker part of that span
        sub["mean_lo"] = sub.groupby("dataset")["mean"].transform("min")
        sub["mean_hi"] = sub.groupby("dataset")["mean"].transform("max")
        rows.append(heat(sub, "mean", alt.Scale(scheme="viridis"), ".4f",
                         f"{model}: test {metric}", metric,
                         "datum.mean < datum.mean_lo + 0.45 * (datum.mean_hi - datum.mean_lo)",
                         len(rows)))
        rows.append(heat(sub, "delta", alt.Scale(scheme="redblue", domain=[-span, span],
                                                 domainMid=0),
                         "+.4f", f"{model}: change against the unmodified {model}",
                         f"Δ {metric}", f"abs(datum.delta) > {0.6 * span!r}", len(rows)))
    chart = alt.vconcat(*rows, spacing=18).resolve_scale(color="independent")
    if sel is not None:
        chart = chart.add_params(sel)
    return with_caption(chart, f"Neighbour-averaged bands [l, u]: test {metric}", provenance)


def _edge_label(edge: int) -> str:
    return f"{edge:,}"


__all__ = [
    "MODEL_LABELS", "PANELS", "SELF_LABELS", "band_heatmaps", "band_items", "band_table",
    "check_frequency_parameters", "claim_checks", "frequency_profile", "frequency_bins", "frequency_panels", "item_table",
    "model_label", "norm_frequency_stats", "norm_scatter", "plain_runs", "trained_dataset",
]
