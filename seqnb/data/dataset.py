"""The in-memory data set every model trains on: chronological sequences and their split.

Items are re-indexed to ``1..num_items`` (0 is the padding id); users to ``0..num_users-1``.
The leave-one-out split follows SPEC.md: per user the last item is the test target, the
second-to-last the validation target, the rest the training sequence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

MIN_SEQUENCE_LENGTH = 3  # one training item, one validation target, one test target


@dataclass(frozen=True, eq=False)
class Dataset:
    """Chronological item sequences of every user, with the leave-one-out split.

    Attributes:
        name: registry name (or a user-chosen name for in-memory data).
        sequences: per user, the full chronological item sequence (int64, ids in 1..num_items).
        num_items: number of distinct items; id 0 is reserved for padding.
        item_attributes: optional per-item attribute labels (genres, categories), indexed by
            the re-indexed item id (``item_attributes[i]`` for ``i`` in 1..num_items).
        item_titles: optional human-readable item names, indexed the same way.
        original_item_ids: the raw id of each re-indexed item (index 0 unused).
        original_user_ids: the raw id of each user.
    """

    name: str
    sequences: list[np.ndarray]
    num_items: int
    item_attributes: list[list[str]] | None = None
    item_titles: list[str] | None = None
    original_item_ids: list[str] | None = None
    original_user_ids: list[str] | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sequences:
            raise ValueError(f"data set {self.name!r} has no users")
        short = [u for u, s in enumerate(self.sequences) if len(s) < MIN_SEQUENCE_LENGTH]
        if short:
            raise ValueError(
                f"data set {self.name!r}: {len(short)} users have fewer than "
                f"{MIN_SEQUENCE_LENGTH} items (first: user {short[0]}); the leave-one-out "
                "split needs at least one training, one validation and one test item. "
                "Apply a k-core filter first."
            )
        lo = min(int(s.min()) for s in self.sequences)
        hi = max(int(s.max()) for s in self.sequences)
        if lo < 1 or hi > self.num_items:
            raise ValueError(
                f"data set {self.name!r}: item ids must lie in 1..{self.num_items}, "
                f"found {lo}..{hi}"
            )

    # ----- sizes -------------------------------------------------------------------------
    @property
    def num_users(self) -> int:
        return len(self.sequences)

    @cached_property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))

    # ----- the split ---------------------------------------------------------------------
    @cached_property
    def train_sequences(self) -> list[np.ndarray]:
        """Per user, the training sequence: everything but the last two items."""
        return [s[:-2] for s in self.sequences]

    @cached_property
    def valid_targets(self) -> np.ndarray:
        """(num_users,) the second-to-last item of every user."""
        return np.array([s[-2] for s in self.sequences], dtype=np.int64)

    @cached_property
    def test_targets(self) -> np.ndarray:
        """(num_users,) the last item of every user."""
        return np.array([s[-1] for s in self.sequences], dtype=np.int64)

    def inputs(self, split: str) -> list[np.ndarray]:
        """Model input sequences for ``split``: 'valid' = training sequence,
        'test' = training sequence + validation item."""
        if split == "valid":
            return [s[:-2] for s in self.sequences]
        if split == "test":
            return [s[:-1] for s in self.sequences]
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")

    def targets(self, split: str) -> np.ndarray:
        if split == "valid":
            return self.valid_targets
        if split == "test":
            return self.test_targets
        raise ValueError(f"split must be 'valid' or 'test', got {split!r}")

    # ----- statistics --------------------------------------------------------------------
    @cached_property
    def item_frequency(self) -> np.ndarray:
        """(num_items + 1,) number of *training* interactions with each item (index 0 = 0).

        This is the definition Chapter 6 uses: occurrences in the training sequences
        (validation and test targets excluded).
        """
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        flat = np.concatenate(self.train_sequences) if self.num_users else np.zeros(0, np.int64)
        np.add.at(counts, flat, 1)
        return counts

    @cached_property
    def has_repeats(self) -> bool:
        """Whether any user interacts with the same item more than once."""
        return any(len(np.unique(s)) < len(s) for s in self.sequences)

    def statistics(self) -> dict[str, float | int | str]:
        lengths = np.array([len(s) for s in self.sequences])
        return {
            "dataset": self.name,
            "users": self.num_users,
            "items": self.num_items,
            "interactions": self.num_interactions,
            "mean_length": float(lengths.mean()),
            "median_length": float(np.median(lengths)),
            "max_length": int(lengths.max()),
            "density": self.num_interactions / (self.num_users * self.num_items),
            "repeats": self.has_repeats,
        }

    def subsample_users(self, n: int, seed: int = 0) -> Dataset:
        """A data set made of ``n`` randomly chosen users (items re-indexed densely)."""
        rng = np.random.default_rng(seed)
        n = min(n, self.num_users)
        chosen = np.sort(rng.choice(self.num_users, size=n, replace=False))
        seqs = [self.sequences[u] for u in chosen]
        users = (
            [self.original_user_ids[u] for u in chosen] if self.original_user_ids else None
        )
        sub = _reindex(
            f"{self.name}[{n} users, seed {seed}]",
            seqs,
            self.item_attributes,
            self.item_titles,
            self.original_item_ids,
        )
        return Dataset(
            name=sub.name,
            sequences=sub.sequences,
            num_items=sub.num_items,
            item_attributes=sub.item_attributes,
            item_titles=sub.item_titles,
            original_item_ids=sub.original_item_ids,
            original_user_ids=users,
            meta={**self.meta, "subsample_of": self.name, "subsample_seed": seed},
        )


def _reindex(
    name: str,
    seqs: Sequence[np.ndarray],
    attributes: list[list[str]] | None,
    titles: list[str] | None,
    original_ids: list[str] | None,
) -> Dataset:
    """Map the item ids used in ``seqs`` (already 1-based ids of a parent) to 1..n."""
    used = np.unique(np.concatenate(seqs))
    remap = np.zeros(int(used.max()) + 1, dtype=np.int64)
    remap[used] = np.arange(1, len(used) + 1)

    def pick(table: list | None) -> list | None:
        if table is None:
            return None
        return [table[0]] + [table[int(i)] for i in used]

    return Dataset(
        name=name,
        sequences=[remap[s] for s in seqs],
        num_items=len(used),
        item_attributes=pick(attributes),
        item_titles=pick(titles),
        original_item_ids=pick(original_ids),
    )


def from_sequences(
    name: str,
    sequences: Sequence[Sequence[object]] | Mapping[object, Sequence[object]],
    item_attributes: Mapping[object, Sequence[str]] | None = None,
    item_titles: Mapping[object, str] | None = None,
) -> Dataset:
    """Build a :class:`Dataset` from in-memory chronological item lists.

    ``sequences`` is a list of per-user item lists, or a mapping ``user -> items``; item ids
    may be any hashable values and are re-indexed to 1..num_items in order of first
    appearance. ``item_attributes`` / ``item_titles`` map the raw item ids to labels.
    No filtering is applied: every user needs at least three items.
    """
    if isinstance(sequences, Mapping):
        user_ids = [str(u) for u in sequences]
        raw = list(sequences.values())
    else:
        raw = list(sequences)
        user_ids = [str(u) for u in range(len(raw))]
    if not raw:
        raise ValueError(f"from_sequences({name!r}): no sequences given")
    index: dict[object, int] = {}
    encoded: list[np.ndarray] = []
    for seq in raw:
        ids = np.empty(len(seq), dtype=np.int64)
        for j, item in enumerate(seq):
            key = item.item() if isinstance(item, np.generic) else item
            ids[j] = index.setdefault(key, len(index) + 1)
        encoded.append(ids)
    originals = [""] + [str(k) for k in index]
    attributes = None
    if item_attributes is not None:
        attributes = [[]] + [list(item_attributes.get(k, [])) for k in index]
    titles = None
    if item_titles is not None:
        titles = [""] + [str(item_titles.get(k, k)) for k in index]
    return Dataset(
        name=name,
        sequences=encoded,
        num_items=len(index),
        item_attributes=attributes,
        item_titles=titles,
        original_item_ids=originals,
        original_user_ids=user_ids,
    )
