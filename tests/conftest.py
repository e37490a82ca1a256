"""Shared fixtures: small generated data sets with a planted, known structure.

The generators return plain lists of item lists (ids 1..num_items), ready for
``seqnb.data.from_sequences``; each is seeded and takes well under a second.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch


def random_cycle(num_items: int, rng: np.random.Generator) -> np.ndarray:
    """``nxt`` with ``nxt[i]`` = successor of item i on one random cycle through 1..num_items
    (index 0 unused): a permutation without short cycles, so chains rarely revisit items."""
    order = rng.permutation(np.arange(1, num_items + 1))
    nxt = np.zeros(num_items + 1, dtype=np.int64)
    nxt[order] = np.roll(order, -1)
    return nxt


def first_order_sequences(
    num_users: int = 300,
    num_items: int = 60,
    length: int = 12,
    noise: float = 0.05,
    seed: int = 0,
) -> list[list[int]]:
    """Markov chains: the next item is ``f(current)`` (one fixed random cycle), replaced by a
    uniformly random item with probability ``noise``. The last item alone predicts the next."""
    rng = np.random.default_rng(seed)
    f = random_cycle(num_items, rng)
    out = []
    for _ in range(num_users):
        seq = [int(rng.integers(1, num_items + 1))]
        for _ in range(length - 1):
            nxt = f[seq[-1]] if rng.random() >= noise else rng.integers(1, num_items + 1)
            seq.append(int(nxt))
        out.append(seq)
    return out


def second_order_sequences(
    num_users: int = 300,
    num_items: int = 60,
    length: int = 12,
    seed: int = 0,
) -> list[list[int]]:
    """Two interleaved chains: ``x[t+1] = g(x[t-1])`` for a fixed random cycle ``g``, with the
    two starting items independent. The last item says nothing about the next one (it fixes
    the item *after* the next); only the item two steps back does."""
    rng = np.random.default_rng(seed)
    g = random_cycle(num_items, rng)
    out = []
    for _ in range(num_users):
        seq = [int(x) for x in rng.integers(1, num_items + 1, size=2)]
        while len(seq) < length:
            seq.append(int(g[seq[-2]]))
        out.append(seq)
    return out


def clustered_user_sequences(
    num_users: int = 240,
    num_clusters: int = 8,
    items_per_cluster: int = 10,
    length: int = 6,
    seed: int = 0,
) -> tuple[list[list[int]], np.ndarray]:
    """Users in cluster c consume only items of block c (ids ``c*items_per_cluster + 1`` ..),
    each a random subset in random order (no repeats). Returns (sequences, cluster per user)."""
    rng = np.random.default_rng(seed)
    clusters = rng.integers(0, num_clusters, size=num_users)
    out = []
    for c in clusters:
        block = np.arange(items_per_cluster) + 1 + c * items_per_cluster
        out.append([int(x) for x in rng.choice(block, size=length, replace=False)])
    return out, clusters


@pytest.fixture(scope="session")
def planted() -> dict[str, Callable]:
    """The planted-pattern generators above, by name (each call takes its own keywords)."""
    return {
        "first_order": first_order_sequences,
        "second_order": second_order_sequences,
        "clustered_users": clustered_user_sequences,
    }


@pytest.fixture
def single_thread():
    """Run torch on one thread for the test (small ops on a shared 2-core machine are
    faster and repeatable that way); the previous setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
