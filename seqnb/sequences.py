"""Sequence utilities: left padding, Chapter 1's rolled samples, Chapter 4's shuffles.

All functions work on plain lists of int64 NumPy arrays (one array per user, item ids >= 1;
0 is padding) and return NumPy arrays, so they are easy to check by hand.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def left_pad(sequences: Sequence[np.ndarray], maxlen: int) -> np.ndarray:
    """(n, maxlen) int64 matrix: each sequence's last ``maxlen`` items, right-aligned,
    padded with 0 on the left."""
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    out = np.zeros((len(sequences), maxlen), dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq[-maxlen:], dtype=np.int64)
        if len(tail):
            out[row, maxlen - len(tail) :] = tail
    return out


def rolled_samples(
    sequences: Sequence[np.ndarray], maxlen: int, window: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chapter 1's rolled training samples.

    For each training sequence (only its last ``window`` items when given), every position
    ``k >= 2`` gives one sample: input = the items before ``k``, truncated to the last
    ``maxlen``; target = item ``k``. The set of (user, target) samples does not depend on
    ``maxlen``, so changing maxlen changes the context but not the amount of training data.

    Example: ``[v1..v5]``, maxlen=2 -> ``[v1]->v2, [v1,v2]->v3, [v2,v3]->v4, [v3,v4]->v5``.

    Returns:
        inputs (S, maxlen) left-padded, targets (S,), users (S,) — the user row of each sample.
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    inputs: list[np.ndarray] = []
    targets: list[int] = []
    users: list[int] = []
    for user, seq in enumerate(sequences):
        seq = np.asarray(seq if window is None else seq[-window:], dtype=np.int64)
        for k in range(1, len(seq)):
            inputs.append(seq[max(0, k - maxlen) : k])
            targets.append(int(seq[k]))
            users.append(user)
    return (
        left_pad(inputs, maxlen),
        np.asarray(targets, dtype=np.int64),
        np.asarray(users, dtype=np.int64),
    )


def shuffle_all_but_last(seq: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``seq`` whose items except the last are randomly permuted (last stays last)."""
    seq = np.asarray(seq)
    if len(seq) <= 2:
        return seq.copy()
    return np.concatenate([rng.permutation(seq[:-1]), seq[-1:]])


def shuffled_inputs(
    sequences: Sequence[np.ndarray], maxlen: int, protocol: str, seed: int
) -> list[np.ndarray]:
    """Chapter 4's shuffled evaluation inputs, truncated to ``maxlen``.

    ``protocol='window'``: cut to the last maxlen items, then permute all but the last —
    only the *order* changes. ``protocol='history'``: permute the whole history except the
    last item, then cut to maxlen (the note's original code) — for histories longer than
    maxlen this also changes *which* items are in view.
    """
    rng = np.random.default_rng(seed)
    if protocol == "window":
        return [shuffle_all_but_last(np.asarray(s[-maxlen:]), rng) for s in sequences]
    if protocol == "history":
        return [shuffle_all_but_last(np.asarray(s), rng)[-maxlen:] for s in sequences]
    raise ValueError(f"protocol must be 'window' or 'history', got {protocol!r}")


def unique_input_share(sequences: Sequence[np.ndarray], maxlen: int) -> float:
    """Share of users whose input truncated to the last ``maxlen`` items is unique among
    all users' truncated inputs (Chapter 1's "how identifiable is a user" curve)."""
    keys = [tuple(np.asarray(s[-maxlen:]).tolist()) for s in sequences]
    counts: dict[tuple, int] = {}
    for key in keys:
        counts[key] = counts.get(key, 0) + 1
    return sum(1 for key in keys if counts[key] == 1) / max(len(keys), 1)
