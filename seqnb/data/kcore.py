"""Iterative k-core filtering and re-indexing of interaction logs.

Thresholds count interactions (rows), so a repeated (user, item) pair counts every time
it occurs. A threshold of 0 or 1 means "no filter" for that side.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["codes", "group_sequences", "kcore_mask", "reindex"]


def reindex(values: np.ndarray | pd.Series, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Dense codes for arbitrary labels, in ascending label order.

    Returns ``(codes, labels)`` with ``labels[codes[j] - start] == values[j]``; integer
    labels sort numerically, text labels lexicographically, so the mapping does not depend
    on the row order. With ``start=1`` and labels already ``1..n`` the codes are the labels.
    """
    first_seen, uniques = pd.factorize(values, sort=False)  # hash; sort only the uniques
    labels = np.asarray(uniques)
    keys = labels.astype(str) if labels.dtype == object else labels  # C-level string sort
    order = np.argsort(keys, kind="stable")
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order), dtype=np.int64)
    return rank[first_seen] + start, labels[order]


def codes(values: np.ndarray | pd.Series) -> np.ndarray:
    """Dense integer codes in order of first appearance (cheaper than :func:`reindex`)."""
    return pd.factorize(values, sort=False)[0].astype(np.int64)


def kcore_mask(
    users: np.ndarray,
    items: np.ndarray,
    min_user: int,
    min_item: int,
    max_passes: int | None = None,
) -> np.ndarray:
    """Rows to keep so that every kept user has >= ``min_user`` kept rows and every kept
    item >= ``min_item``.

    Removing a sparse item can push a user under its threshold and vice versa, so both
    filters are applied repeatedly until nothing changes (or ``max_passes`` passes ran).
    ``users`` and ``items`` are non-negative integer codes (see :func:`reindex`).
    """
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    if users.shape != items.shape:
        raise ValueError(f"users {users.shape} and items {items.shape} differ in shape")
    keep = np.ones(len(users), dtype=bool)
    if len(users) == 0:
        return keep
    n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
    passes = 0
    while max_passes is None or passes < max_passes:
        passes += 1
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        new = keep & (user_count[users] >= min_user) & (item_count[items] >= min_item)
        if new.sum() == keep.sum():
            break
        keep = new
    return keep


def group_sequences(user_codes: np.ndarray, item_codes: np.ndarray) -> list[np.ndarray]:
    """Per user code ``0..U-1``, its items in row order (rows are chronological per user).

    Every code in ``0..max(user_codes)`` must occur.
    """
    user_codes = np.asarray(user_codes, dtype=np.int64)
    order = np.argsort(user_codes, kind="stable")
    counts = np.bincount(user_codes)
    if (counts == 0).any():
        raise ValueError("user codes must be dense (0..U-1 with every code used)")
    items = np.asarray(item_codes, dtype=np.int64)[order]
    return np.split(items, np.cumsum(counts)[:-1])
