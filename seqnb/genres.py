"""Chapter 5: do consecutive items share a genre (category, tag) more often than chance?

The measure. For a user with chronological items ``v_1 .. v_n`` and attribute sets
``G(v)`` (genres for MovieLens, categories/brand for Amazon, business categories for Yelp,
tags for LastFM), the *consecutive-shared-attribute share* is the fraction of the ``n - 1``
consecutive pairs ``(v_t, v_{t+1})`` whose attribute sets intersect. An item without
attributes shares nothing. Pooled over users (every pair counts once) it is the *overall*
share; per user it is that user's share.

The baseline. The same users with each sequence randomly permuted (the multiset of items is
kept, the order is not), many times with a seeded generator. The *gap* is the observed
share minus the mean permuted share; its confidence interval resamples users (bootstrap),
and a permutation p-value compares the observed share with the permuted ones.

    >>> from seqnb.genres import consecutive_share
    >>> result = consecutive_share(load_dataset("MovieLens1M_550_LOU"))   # doctest: +SKIP
    >>> result.summary()                                                   # doctest: +SKIP

Attributes carried by (almost) every item say nothing about order — Amazon Toys and Sports
list the root category on every item, which makes every pair "share" — so attributes on more
than ``max_attribute_share`` of the items are dropped (and reported).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from seqnb.data import Dataset, get_spec, list_datasets, load_dataset

DEFAULT_PERMUTATIONS = 200
DEFAULT_BOOTSTRAP = 1000
# Attributes on more than this share of the items are dropped (a root category on every item).
DEFAULT_MAX_ATTRIBUTE_SHARE = 0.95
SMOKE_USERS = 300
SMOKE_PERMUTATIONS = 20
SMOKE_BOOTSTRAP = 200
_CHUNK = 1 << 16


# ----- attribute sets as bitsets --------------------------------------------------------------
@dataclass(frozen=True)
class AttributeSets:
    """Per-item attribute sets packed as bitsets: ``bits[i]`` is item i's set (row 0 = padding).

    Attributes:
        bits: (num_items + 1, words) uint64; bit ``a`` of item i is set when i carries the
            kept attribute number ``a``.
        nonempty: (num_items + 1,) whether the item keeps at least one attribute.
        kept: the attribute labels, in bit order.
        dropped: ``{label: share of items carrying it}`` for attributes dropped as
            uninformative (on more than ``max_attribute_share`` of the items).
    """

    bits: np.ndarray
    nonempty: np.ndarray
    kept: list[str]
    dropped: dict[str, float] = field(default_factory=dict)

    @property
    def num_items(self) -> int:
        return len(self.bits) - 1


def attribute_sets(
    item_attributes: Sequence[Sequence[str]] | None,
    max_attribute_share: float | None = DEFAULT_MAX_ATTRIBUTE_SHARE,
) -> AttributeSets:
    """Pack ``item_attributes`` (indexed by item id, index 0 = padding) into bitsets.

    ``max_attribute_share``: drop attributes carried by more than this share of the items
    (None keeps everything).
    """
    if item_attributes is None:
        raise ValueError("this data set has no item attributes")
    sets = [set(map(str, a or ())) for a in item_attributes]
    num_items = len(sets) - 1
    if num_items < 1:
        raise ValueError("item_attributes must list at least one item after the padding row")
    counts: dict[str, int] = {}
    for s in sets[1:]:
        for a in s:
            counts[a] = counts.get(a, 0) + 1
    dropped = {}
    if max_attribute_share is not None:
        dropped = {a: c / num_items for a, c in counts.items() if c / num_items > max_attribute_share}
    kept = sorted((a for a in counts if a not in dropped), key=lambda a: (-counts[a], a))
    index = {a: j for j, a in enumerate(kept)}
    words = max(1, (len(kept) + 63) // 64)
    bits = np.zeros((num_items + 1, words), dtype=np.uint64)
    for item, s in enumerate(sets):
        if item == 0:
            continue
        for a in s:
            j = index.get(a)
            if j is not None:
                bits[item, j >> 6] |= np.uint64(1) << np.uint64(j & 63)
    nonempty = bits.any(axis=1)
    return AttributeSets(bits=bits, nonempty=nonempty, kept=kept,
                         dropped=dict(sorted(dropped.items(), key=lambda kv: -kv[1])))


def shares_attribute(sets: AttributeSets, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether items ``a[k]`` and ``b[k]`` have intersecting attribute sets (boolean array)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    bits = sets.bits
    if bits.shape[1] == 1:
        flat = bits[:, 0]
        return (flat[a] & flat[b]) != 0
    out = np.empty(len(a), dtype=bool)
    for start in range(0, len(a), _CHUNK):
        stop = start + _CHUNK
        out[start:stop] = (bits[a[start:stop]] & bits[b[start:stop]]).any(axis=1)
    return out


# ----- the measure ----------------------------------------------------------------------------
class _Layout:
    """Every user's sequence concatenated, with the pair structure precomputed."""

    def __init__(self, sequences: Sequence[np.ndarray]) -> None:
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        if len(lengths) == 0:
            raise ValueError("no sequences given")
        self.lengths = lengths
        self.flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences])
        self.user_of = np.repeat(np.arange(len(lengths)), lengths)
        self.same_user = self.user_of[1:] == self.user_of[:-1]  # pair k = (k, k+1)
        self.pair_user = self.user_of[:-1][self.same_user]
        self.pairs = np.maximum(lengths - 1, 0)

    @property
    def num_users(self) -> int:
        return len(self.lengths)

    def hits(self, flat: np.ndarray, sets: AttributeSets) -> np.ndarray:
        """Per user, the number of consecutive pairs of ``flat`` that share an attribute."""
        a = flat[:-1][self.same_user]
        b = flat[1:][self.same_user]
        shared = shares_attribute(sets, a, b)
        return np.bincount(self.pair_user[shared], minlength=self.num_users)

    def permuted(self, rng: np.random.Generator) -> np.ndarray:
        """``flat`` with each user's items in a uniformly random order (users stay in place)."""
        keys = self.user_of + rng.random(len(self.flat))
        return self.flat[np.argsort(keys, kind="stable")]


def consecutive_hits(
    sequences: Sequence[Sequence[int]], sets: AttributeSets
) -> tuple[np.ndarray, np.ndarray]:
    """Per user: (pairs sharing an attribute, number of consecutive pairs)."""
    layout = _Layout([np.asarray(s, dtype=np.int64) for s in sequences])
    return layout.hits(layout.flat, sets), layout.pairs


@dataclass
class ConsecutiveShare:
    """Observed and permuted consecutive-shared-attribute counts of one data set.

    Attributes:
        dataset: the data set name.
        users: the user labels (original ids where known).
        lengths: (U,) sequence lengths; ``pairs`` = lengths - 1.
        observed: (U,) consecutive pairs sharing an attribute, in the real order.
        permuted: (P, U) the same count for each of P random permutations of every user.
        sets: the attribute bitsets used (with the dropped attributes).
        seed, confidence, bootstrap: how the baseline and the interval were drawn.
    """

    dataset: str
    users: list[str]
    lengths: np.ndarray
    observed: np.ndarray
    permuted: np.ndarray
    sets: AttributeSets
    seed: int = 0
    confidence: float = 0.95
    bootstrap: int = DEFAULT_BOOTSTRAP
    _ci: tuple[float, float] | None = field(default=None, repr=False)

    @property
    def pairs(self) -> np.ndarray:
        return np.maximum(self.lengths - 1, 0)

    @property
    def permutations(self) -> int:
        return int(self.permuted.shape[0])

    @property
    def observed_share(self) -> float:
        """Overall share: pairs sharing an attribute / all consecutive pairs (pooled)."""
        return float(self.observed.sum() / self.pairs.sum())

    @property
    def permuted_shares(self) -> np.ndarray:
        """(P,) the overall share under each permutation (the permutation null distribution)."""
        return self.permuted.sum(axis=1) / self.pairs.sum()

    @property
    def permuted_share(self) -> float:
        return float(self.permuted_shares.mean())

    @property
    def gap(self) -> float:
        """Observed minus mean permuted overall share (in share units, 0.05 = 5 points)."""
        return self.observed_share - self.permuted_share

    @property
    def ratio(self) -> float:
        """Observed / permuted overall share (the lift of the real order)."""
        return self.observed_share / self.permuted_share if self.permuted_share else np.nan

    @property
    def p_value(self) -> float:
        """One-sided permutation p-value: (1 + #permutations at or above observed) / (P + 1)."""
        ge = int((self.permuted_shares >= self.observed_share - 1e-12).sum())
        return (1 + ge) / (self.permutations + 1)

    def gap_ci(self) -> tuple[float, float]:
        """Bootstrap-over-users interval of the gap (percentile method, ``confidence``).

        Each resample draws U users with replacement and recomputes the pooled gap from their
        observed counts and their mean permuted counts, so it says how much the gap would
        move with another sample of users from the same population.
        """
        if self._ci is None:
            self._ci = bootstrap_gap_ci(self.observed, self.permuted.mean(axis=0), self.pairs,
                                        self.bootstrap, self.confidence, self.seed)
        return self._ci

    def per_user(self) -> pd.DataFrame:
        """One row per user: length, pairs, observed share, mean permuted share, gap."""
        pairs = self.pairs.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            observed = self.observed / pairs
            permuted = self.permuted.mean(axis=0) / pairs
        return pd.DataFrame({
            "user": self.users,
            "length": self.lengths,
            "pairs": self.pairs,
            "observed_share": observed,
            "permuted_share": permuted,
            "gap": observed - permuted,
        })

    def summary(self) -> dict[str, Any]:
        """The numbers a table row shows for this data set."""
        lo, hi = self.gap_ci()
        per_user = self.per_user()
        return {
            "dataset": self.dataset,
            "users": len(self.users),
            "pairs": int(self.pairs.sum()),
            "attributes": len(self.sets.kept),
            "dropped attributes": len(self.sets.dropped),
            "items without attributes": int((~self.sets.nonempty[1:]).sum()),
            "observed share": self.observed_share,
            "permuted share": self.permuted_share,
            "gap": self.gap,
            "gap low": lo,
            "gap high": hi,
            "ratio": self.ratio,
            "users above permuted": float((per_user["gap"] > 0).mean()),
            "p-value": self.p_value,
            "permutations": self.permutations,
        }


def bootstrap_gap_ci(
    observed: np.ndarray,
    expected: np.ndarray,
    pairs: np.ndarray,
    resamples: int = DEFAULT_BOOTSTRAP,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile interval of ``sum(observed - expected) / sum(pairs)`` over user resamples."""
    diff = np.asarray(observed, dtype=np.float64) - np.asarray(expected, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.float64)
    n = len(diff)
    rng = np.random.default_rng([seed, 1])
    gaps = np.empty(resamples)
    chunk = max(1, min(resamples, 4_000_000 // max(n, 1)))
    for start in range(0, resamples, chunk):
        stop = min(start + chunk, resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        gaps[start:stop] = diff[idx].sum(axis=1) / pairs[idx].sum(axis=1)
    alpha = (1.0 - confidence) / 2
    lo, hi = np.quantile(gaps, [alpha, 1 - alpha])
    return float(lo), float(hi)


def consecutive_share(
    dataset: Dataset,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    max_attribute_share: float | None = DEFAULT_MAX_ATTRIBUTE_SHARE,
    max_users: int | None = None,
    confidence: float = 0.95,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> ConsecutiveShare:
    """The consecutive-shared-attribute measure of ``dataset`` and its permutation baseline.

    Uses each user's *full* chronological sequence (training, validation and test items):
    the question is about the data, not about a model. ``max_users`` measures a seeded
    random subsample of users instead (``Dataset.subsample_users(max_users, seed=0)``, the
    subsample the smoke runs train on). Permutation ``p`` of every user is drawn from
    ``numpy.random.default_rng(seed)``, so the result is reproducible.
    """
    if permutations < 1:
        raise ValueError(f"permutations must be a positive integer, got {permutations!r}")
    if max_users is not None and dataset.num_users > max_users:
        dataset = dataset.subsample_users(max_users, seed=0)
    sets = attribute_sets(dataset.item_attributes, max_attribute_share)
    layout = _Layout(dataset.sequences)
    observed = layout.hits(layout.flat, sets)
    rng = np.random.default_rng(seed)
    permuted = np.empty((permutations, layout.num_users), dtype=np.int32)
    for p in range(permutations):
        permuted[p] = layout.hits(layout.permuted(rng), sets)
    users = (list(dataset.original_user_ids) if dataset.original_user_ids
             else [str(u) for u in range(dataset.num_users)])
    return ConsecutiveShare(
        dataset=dataset.name, users=users, lengths=layout.lengths, observed=observed,
        permuted=permuted, sets=sets, seed=seed, confidence=confidence, bootstrap=bootstrap,
    )


# ----- the genre strip ------------------------------------------------------------------------
_RANDOM = re.compile(r"^\s*random\s+(\d+)\s*$")


def choose_users(dataset: Dataset, users: str | Sequence[int | str], seed: int = 0) -> list[int]:
    """User row indices for ``users``: ``"random k"`` (seeded) or a list of user ids.

    User ids are the data set's original ids (MovieLens ``UserID``), given as int or str.
    """
    if isinstance(users, str):
        match = _RANDOM.match(users)
        if not match:
            raise ValueError(f'users must be "random k" or a list of user ids, got {users!r}')
        k = int(match.group(1))
        if not 1 <= k <= dataset.num_users:
            raise ValueError(f"users: k must lie in 1..{dataset.num_users}, got {k}")
        rng = np.random.default_rng(seed)
        return sorted(int(u) for u in rng.choice(dataset.num_users, size=k, replace=False))
    ids = list(dataset.original_user_ids or [str(u) for u in range(dataset.num_users)])
    where = {u: i for i, u in enumerate(ids)}
    rows, unknown = [], []
    for u in users:
        row = where.get(str(u))
        if row is None:
            unknown.append(u)
        else:
            rows.append(row)
    if unknown:
        raise ValueError(f"unknown user id(s) {unknown} in {dataset.name}; ids run from "
                         f"{ids[0]} to {ids[-1]} ({len(ids)} users)")
    if not rows:
        raise ValueError("users: give at least one user id")
    return rows


def genre_strip(
    dataset: Dataset,
    users: str | Sequence[int | str] = "random 5",
    seed: int = 0,
    max_positions: int | None = 200,
    max_attribute_share: float | None = DEFAULT_MAX_ATTRIBUTE_SHARE,
) -> pd.DataFrame:
    """One row per (user, position): the data behind the genre strip.

    Columns: ``user`` (original id), ``label`` (user and length), ``position`` (1-based, in
    time order), ``item`` (original item id), ``title``, ``genres`` (all, as listed),
    ``primary`` (the first-listed genre), ``shares_previous`` (whether the item shares a
    genre with the one before it; False at position 1) and ``length``. Only the first
    ``max_positions`` items of each user are kept (None = all).
    """
    if dataset.item_attributes is None:
        raise ValueError(f"{dataset.name} has no item attributes to draw")
    sets = attribute_sets(dataset.item_attributes, max_attribute_share)
    rows = []
    for u in choose_users(dataset, users, seed):
        seq = np.asarray(dataset.sequences[u], dtype=np.int64)
        shown = seq if max_positions is None else seq[:max_positions]
        shared = np.zeros(len(shown), dtype=bool)
        if len(shown) > 1:
            shared[1:] = shares_attribute(sets, shown[:-1], shown[1:])
        user = dataset.original_user_ids[u] if dataset.original_user_ids else str(u)
        label = f"user {user} ({len(seq)} items)"
        for pos, (item, same) in enumerate(zip(shown, shared, strict=True), start=1):
            genres = list(dataset.item_attributes[item])
            rows.append({
                "user": user,
                "label": label,
                "position": pos,
                "item": (dataset.original_item_ids[item] if dataset.original_item_ids
                         else str(item)),
                "title": dataset.item_titles[item] if dataset.item_titles else str(item),
                "genres": ", ".join(genres) if genres else "(none)",
                "primary": genres[0] if genres else "(none)",
                "shares_previous": bool(same),
                "length": len(seq),
            })
    return pd.DataFrame(rows)


# ----- every data set -------------------------------------------------------------------------
def attribute_datasets() -> list[str]:
    """Registered data sets whose raw files come with item attributes, in registry order."""
    return [s.name for s in list_datasets() if any(src.attributes for src in s.sources)]


def dataset_status(datasets: Sequence[str]) -> pd.DataFrame:
    """For each name: whether the chapter can measure it, and why not otherwise."""
    from seqnb.data import locate

    rows = []
    for name in datasets:
        spec = get_spec(name)
        if locate(name) is None:
            status = "not available offline"
        elif not any(src.attributes for src in spec.sources):
            status = "no item attributes in its files"
        else:
            status = "measured"
        rows.append({"dataset": name, "status": status, "description": spec.description})
    return pd.DataFrame(rows)


def dataset_summary(
    datasets: Sequence[str] | None = None,
    permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    max_users: int | None = None,
    max_attribute_share: float | None = DEFAULT_MAX_ATTRIBUTE_SHARE,
    confidence: float = 0.95,
    bootstrap: int = DEFAULT_BOOTSTRAP,
) -> tuple[pd.DataFrame, dict[str, ConsecutiveShare]]:
    """The measure for every held data set with attributes (or ``datasets``).

    Returns the summary table (one row per measured data set, see
    :meth:`ConsecutiveShare.summary`) and the full results by name. Names that cannot be
    measured are skipped here; :func:`dataset_status` says why.
    """
    names = list(datasets) if datasets is not None else attribute_datasets()
    status = dataset_status(names).set_index("dataset")["status"]
    results: dict[str, ConsecutiveShare] = {}
    for name in names:
        if status[name] != "measured":
            continue
        results[name] = consecutive_share(
            load_dataset(name), permutations=permutations, seed=seed, max_users=max_users,
            max_attribute_share=max_attribute_share, confidence=confidence,
            bootstrap=bootstrap)
    rows = [r.summary() for r in results.values()]
    for row, name in zip(rows, results, strict=True):
        row["dataset"] = name  # the registry name, also for subsampled data sets
    return pd.DataFrame(rows), results


def shuffle_drops(frame: pd.DataFrame, metric: str = "NDCG@10") -> pd.DataFrame:
    """Per data set, the relative change of ``metric`` when the earlier items are shuffled.

    ``frame``: the shuffle chapter's run frame (``chapter_runs("shuffle", ...).frame``), with
    ``metric`` and ``test_shuffled_<protocol>:<metric>`` columns. Returns one row per
    (dataset, protocol): original and shuffled mean over seeds, relative change of the
    means, and the seed count. Empty when no run is stored.
    """
    cols = ["dataset", "protocol", "original", "shuffled", "relative_change", "seeds"]
    if frame is None or frame.empty:
        return pd.DataFrame(columns=cols)
    rows = []
    for protocol in ("window", "history"):
        col = f"test_shuffled_{protocol}:{metric}"
        if col not in frame.columns:
            continue
        for name, g in frame.groupby("dataset", sort=False):
            g = g.dropna(subset=[metric, col])
            if g.empty:
                continue
            original, shuffled = float(g[metric].mean()), float(g[col].mean())
            rows.append({
                "dataset": name, "protocol": protocol, "original": original,
                "shuffled": shuffled,
                "relative_change": (shuffled - original) / original if original else np.nan,
                "seeds": int(g["seed"].nunique()) if "seed" in g else len(g),
            })
    return pd.DataFrame(rows, columns=cols)


# ----- parameters -----------------------------------------------------------------------------
@dataclass(frozen=True)
class GenreSettings:
    """What the chapter computes under a profile (smoke trims users and permutations)."""

    permutations: int
    max_users: int | None
    bootstrap: int


def check_genre_parameters(
    users: Any,
    permutations: Any,
    max_users: Any = None,
    max_positions: Any = 200,
    max_attribute_share: Any = DEFAULT_MAX_ATTRIBUTE_SHARE,
    confidence: Any = 0.95,
) -> None:
    """Fail fast, with the allowed values, on a bad Chapter 5 parameter."""
    if isinstance(users, str):
        if not _RANDOM.match(users):
            raise ValueError(f'users must be "random k" (k >= 1) or a list of user ids, '
                             f"got {users!r}")
        if int(_RANDOM.match(users).group(1)) < 1:
            raise ValueError(f"users: 'random k' needs k >= 1, got {users!r}")
    elif not isinstance(users, (list, tuple)) or not users or not all(
            isinstance(u, (int, str)) and not isinstance(u, bool) for u in users):
        raise ValueError(f'users must be "random k" or a non-empty list of user ids, got {users!r}')

    def positive(name: str, value: Any, allow_none: bool = False) -> None:
        if value is None and allow_none:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer"
                             + (" or None" if allow_none else "") + f", got {value!r}")

    positive("permutations", permutations)
    positive("max_users", max_users, allow_none=True)
    positive("max_positions", max_positions, allow_none=True)
    if max_users is not None and max_users < 2:
        raise ValueError(f"max_users must be None or >= 2, got {max_users!r}")
    if max_attribute_share is not None and not (
            isinstance(max_attribute_share, (int, float)) and 0 < max_attribute_share <= 1):
        raise ValueError(f"max_attribute_share must be None or in (0, 1], "
                         f"got {max_attribute_share!r}")
    if not isinstance(confidence, float) or not 0 < confidence < 1:
        raise ValueError(f"confidence must be a number in (0, 1), got {confidence!r}")


def genre_settings(profile: str, permutations: int, max_users: int | None) -> GenreSettings:
    """Smoke keeps at most 300 users and 20 permutations; book and full use the parameters."""
    if profile == "smoke":
        return GenreSettings(
            permutations=min(permutations, SMOKE_PERMUTATIONS),
            max_users=min(max_users or SMOKE_USERS, SMOKE_USERS),
            bootstrap=SMOKE_BOOTSTRAP,
        )
    return GenreSettings(permutations=permutations, max_users=max_users,
                         bootstrap=DEFAULT_BOOTSTRAP)


__all__ = [
    "AttributeSets", "ConsecutiveShare", "GenreSettings", "attribute_datasets",
    "attribute_sets", "bootstrap_gap_ci", "check_genre_parameters", "choose_users",
    "consecutive_hits", "consecutive_share", "dataset_status", "dataset_summary",
    "genre_settings", "genre_strip", "shares_attribute", "shuffle_drops",
]
