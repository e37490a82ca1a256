"""Item embedding tables: a plain one, and Chapter 6's neighbour-averaged one.

Both expose ``table() -> (num_items + 1, d)``; row 0 is padding and stays zero.

Neighbour averaging (SPEC Chapter 6b): items whose training frequency lies in ``[l, u]`` get
no trainable row of their own; their row is the average of their neighbours' rows under the
item-item co-occurrence graph ``A = R^T R`` (R = user x item training matrix), row-normalised:

    E' = E * (1 - m) + (A_norm E) * m

With ``self_loops=True`` the diagonal of ``R^T R`` stays in, so each average includes the
item itself; an item never seen in training has an empty row and gets a zero vector.
Only the band's rows of ``A_norm`` are kept, as a sparse matrix.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


class ItemTable(nn.Module):
    """A trainable (num_items + 1, d) table, padding row 0 kept at zero."""

    def __init__(self, num_items: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.num_items = num_items
        self.weight = nn.Parameter(torch.empty(num_items + 1, dim))
        nn.init.xavier_normal_(self.weight)

    def table(self) -> torch.Tensor:
        pad = torch.ones(self.num_items + 1, 1, device=self.weight.device)
        pad[0] = 0
        return self.weight * pad


def cooccurrence_band(
    train_sequences: Sequence[np.ndarray],
    num_items: int,
    band_items: np.ndarray,
    self_loops: bool = True,
) -> sp.csr_matrix:
    """Row-normalised rows of ``A = R^T R`` for ``band_items``: (len(band), num_items + 1).

    R is binary (a user either has or has not interacted with an item), so ``A[i, j]`` counts
    the users who interacted with both i and j, and ``A[i, i]`` the users of i.
    """
    rows = np.concatenate([np.full(len(np.unique(s)), u) for u, s in enumerate(train_sequences)])
    cols = np.concatenate([np.unique(s) for s in train_sequences])
    R = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)),
        shape=(len(train_sequences), num_items + 1),
    )
    Rt_band = R.T.tocsr()[band_items]  # (n_band, users)
    A = (Rt_band @ R).tocsr()  # (n_band, V+1)
    if not self_loops:
        A = A.tolil()
        A[np.arange(len(band_items)), band_items] = 0
        A = A.tocsr()
        A.eliminate_zeros()
    sums = np.asarray(A.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)
    return sp.diags(scale) @ A


class NeighbourAveragedTable(ItemTable):
    """An :class:`ItemTable` whose rows in a frequency band are neighbour averages."""

    def __init__(
        self,
        num_items: int,
        dim: int,
        item_frequency: np.ndarray,
        band: tuple[int, int],
        train_sequences: Sequence[np.ndarray],
        self_loops: bool = True,
    ) -> None:
        super().__init__(num_items, dim)
        lo, hi = band
        freq = np.asarray(item_frequency)
        band_items = np.flatnonzero((freq >= lo) & (freq <= hi))
        band_items = band_items[band_items > 0]
        A = cooccurrence_band(train_sequences, num_items, band_items, self_loops).tocoo()
        self.register_buffer("band_items", torch.from_numpy(band_items).long())
        self.register_buffer(
            "A_band",
            torch.sparse_coo_tensor(
                np.vstack([A.row, A.col]),
                A.data.astype(np.float32),
                A.shape,
                check_invariants=True,
            ).coalesce(),
        )

    def table(self) -> torch.Tensor:
        own = super().table()  # (V+1, d)
        if len(self.band_items) == 0:
            return own
        averaged = torch.sparse.mm(self.A_band, own)  # (n_band, d)
        return own.index_copy(0, self.band_items, averaged)
