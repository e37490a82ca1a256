"""Item embedding tables: a plain one, and Chapter 6's neighbour-averaged one.

Both expose ``table() -> (num_items + 1, d)``; row 0 is padding and stays zero.

Neighbour averaging (SPEC Chapter 6b): items whose training frequency lies in ``[l, u]`` get
no trainable row of their own; their row is the average of their neighbours' rows under the
item-item co-occurrence graph ``A = R^T R`` (R = user x item training matrix), row-normalised:

    E' = E * (1 - m) + (A_norm E) * m

With ``self_loops=True`` the diagonal of ``R^T R`` stays in, so each average includes the
item itself; an item never seen in training has an empty row and gets a zero vector.
``A`` itself is never formed: the table keeps the sparse ``R`` and computes ``R^T (R E)``
(see :class:`NeighbourAveragedTable`); :func:`cooccurrence_band` spells out the band rows
of ``A_norm`` explicitly, for inspection.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
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

    def rows(self, items: torch.Tensor) -> torch.Tensor:
        """(n,) item ids -> (n, d): ``table()[items]`` without computing the whole table."""
        return self.weight[items] * (items > 0).unsqueeze(-1).to(self.weight.dtype)


def cooccurrence_band(
    train_sequences: Sequence[np.ndarray],
    num_items: int,
    band_items: np.ndarray,
    self_loops: bool = True,
) -> sp.csr_matrix:
    """Row-normalised rows of ``A = R^T R`` for ``band_items``: (len(band), num_items + 1).

    The explicit matrix that :class:`NeighbourAveragedTable` applies in factorised form.

    R is binary (a user either has or has not interacted with an item), so ``A[i, j]`` counts
    the users who interacted with both i and j, and ``A[i, i]`` the users of i.
    """
    R = binary_interactions(train_sequences, num_items)
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
    """An :class:`ItemTable` whose rows in a frequency band are neighbour averages.

    ``A_norm E`` is computed in factorised form, never forming ``A``:

        A_band E = R_band^T (R E)                (n_band, d), two binary sparse products
        rowsum(A)_i = sum_u R[u, i] |u|          |u| = distinct items of user u
        without self loops: A_band E -= c * E_band,  rowsum -= c,  c_i = users of i = A[i, i]

    R has one non-zero per (user, distinct item): on Beauty 154k, against 1.1M in the band
    rows of ``A`` for ``[0, 30]``. Both products are sums of rows (``embedding_bag``), and so
    are their gradients.

    :meth:`rows` gives a few rows only (what an MF-BPR batch scores): the same two sums,
    restricted to the users of those band items and to those users' items.
    """

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
        self.self_loops = self_loops
        R = binary_interactions(train_sequences, num_items)  # (users, V+1)
        R_band_T = R.T.tocsr()[band_items]  # (n_band, users)
        users_of = np.asarray(R_band_T.sum(axis=1)).ravel()  # c_i
        row_sums = R_band_T @ np.asarray(R.sum(axis=1)).ravel()  # sum_u R[u, i] |u|
        if not self_loops:
            row_sums = row_sums - users_of
        scale = np.divide(1.0, row_sums, out=np.zeros_like(row_sums), where=row_sums > 0)
        self.R = BinaryMatrix(R)
        self.R_band_T = BinaryMatrix(R_band_T)
        # derived from the data: not part of the state dict
        self.register_buffer("band_items", torch.from_numpy(band_items).long(), persistent=False)
        self.register_buffer("users_of", _float(users_of), persistent=False)
        self.register_buffer("scale", _float(scale), persistent=False)
        position = np.full(num_items + 1, -1)
        position[band_items] = np.arange(len(band_items))  # item id -> its band row, or -1
        self.register_buffer("band_position", _long(position), persistent=False)

    def table(self) -> torch.Tensor:
        own = super().table()  # (V+1, d)
        if len(self.band_items) == 0:
            return own
        summed = self.R_band_T @ (self.R @ own)  # (n_band, d) = A_band E
        if not self.self_loops:
            summed = summed - self.users_of[:, None] * own[self.band_items]
        averaged = summed * self.scale[:, None]  # (n_band, d) = A_norm,band E
        return own.index_copy(0, self.band_items, averaged)

    def rows(self, items: torch.Tensor) -> torch.Tensor:
        """(n,) item ids -> (n, d), equal to ``table()[items]``.

        A band row is summed straight from its users' items, in two stages over the
        distinct users of the requested band rows: ``s_u = sum_{j in u} E_j`` for each such
        user, then ``sum_{u ni i} s_u`` for each row (a user shared by several rows is
        summed once). Never more work than the whole table: the first stage is at most
        ``R E``, the second at most the band rows' non-zeros.
        """
        which = self.band_position[items]  # (n,) band row, or -1 outside the band
        inside = torch.nonzero(which >= 0).squeeze(1)  # (m,) positions in ``items``
        if len(inside) == 0:
            return super().rows(items)
        band_rows = which[inside]  # (m,)
        # the users of each requested band row (pairs), and those users once each
        R, R_band_T = self.R, self.R_band_T  # their CSR rows: users' items, band items' users
        pair_users, pair_row = _csr_rows(R_band_T.rows_ptr, R_band_T.rows_index, band_rows)
        users, pair_user = torch.unique(pair_users, return_inverse=True)  # (k,), (pairs,)
        item_counts = R.rows_ptr[users + 1] - R.rows_ptr[users]  # |u| each
        E = self.weight  # R never holds the padding column, so no mask is needed here
        if int(item_counts.sum()) > GATHER_SHARE * len(R.rows_index):
            # most of R: every user's sum (U, d), each pair reading its user's row
            user_sums, pair_index = R @ E, pair_users
        else:  # these users' items only: (k, d), each pair reading its user's position
            entries, entry_user = _csr_rows(R.rows_ptr, R.rows_index, users)
            user_sums = _UserSums.apply(
                E, entries, entry_user, users, R.cols_index, R.cols_ptr, R.shape[0]
            )
            pair_index = pair_user
        summed = _RowSum.apply(user_sums, pair_index, pair_row, len(band_rows))  # (m, d)
        if not self.self_loops:
            summed = summed - self.users_of[band_rows, None] * E[items[inside]]
        averaged = summed * self.scale[band_rows, None]  # (m, d)
        return super().rows(items).index_copy(0, inside, averaged)


# A batch's users' sums are gathered from their own items while those number fewer than
# this share of R's non-zeros; above it, summing every user's row (and indexing) is faster.
GATHER_SHARE = 0.5
# _UserSums' backward scatters its entries one by one while they number fewer than this
# share of R's non-zeros; above it, one sum over all of R^T's rows is faster (measured on
# Beauty, 1 CPU thread: the two cost the same at about 1/7, for bands [0, 10]).
SCATTER_SHARE = 1 / 7


def _sum_rows(E: torch.Tensor, index: torch.Tensor, row: torch.Tensor, num_rows: int
              ) -> torch.Tensor:
    """``out[r] = sum of E[index[k]] over k with row[k] == r`` (``row`` sorted). For the
    forward of an autograd Function, which computes its own gradient."""
    counts = torch.bincount(row, minlength=num_rows)
    offsets = torch.cumsum(counts, 0) - counts
    return _bag_sum(index, E, offsets)  # (num_rows, d)


def _bag_sum(index: torch.Tensor, E: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """``embedding_bag`` sums of rows of a detached ``E``: given a table that requires grad,
    embedding_bag takes its training kernel, which also builds the bookkeeping of its own
    backward (3-4x slower on CPU, measured on Beauty's R); our Functions never use it."""
    return F.embedding_bag(index, E.detach(), offsets, mode="sum")


class _UserSums(torch.autograd.Function):
    """``out[k] = sum of E[entries[e]] over e with entry_user[e] == k`` (the items of user
    ``users[k]``, CSR order). Backward ``dE = R_users^T grad``: the entries scattered with
    ``index_add_`` when they are few, else a sum over every row of ``R^T`` (CSR
    ``cols_index``/``cols_ptr``) with the other users' gradient zero."""

    @staticmethod
    def forward(ctx, E, entries, entry_user, users, cols_index, cols_ptr, num_users):  # type: ignore[override]
        ctx.save_for_backward(entries, entry_user, users, cols_index, cols_ptr)
        ctx.num_items, ctx.num_users = E.shape[0], num_users
        return _sum_rows(E, entries, entry_user, len(users))  # (k, d)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        entries, entry_user, users, cols_index, cols_ptr = ctx.saved_tensors
        if len(entries) < SCATTER_SHARE * len(cols_index):
            dE = grad.new_zeros(ctx.num_items, grad.shape[1])
            dE.index_add_(0, entries, grad.index_select(0, entry_user))
            return dE, None, None, None, None, None, None
        full = grad.new_zeros(ctx.num_users, grad.shape[1])  # (users, d)
        full.index_copy_(0, users, grad)
        dE = F.embedding_bag(cols_index, full, cols_ptr[:-1], mode="sum")  # (V+1, d)
        return dE, None, None, None, None, None, None


class _RowSum(torch.autograd.Function):
    """``out[r] = sum of E[index[k]] over k with row[k] == r`` (rows sorted, contiguous);
    backward by ``index_add_`` (PyTorch's own embedding_bag backward sorts, several times
    slower here)."""

    @staticmethod
    def forward(ctx, E, index, row, num_rows):  # type: ignore[override]
        ctx.save_for_backward(index, row)
        ctx.num_items = E.shape[0]
        return _sum_rows(E, index, row, num_rows)  # (num_rows, d)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        index, row = ctx.saved_tensors
        dE = grad.new_zeros(ctx.num_items, grad.shape[1])
        dE.index_add_(0, index, grad.index_select(0, row))
        return dE, None, None, None


class BinaryMatrix(nn.Module):
    """A sparse 0/1 matrix M that multiplies dense matrices: ``M @ X`` sums rows of X.

    Forward and backward (``M^T @ G``) are both ``embedding_bag`` sums over CSR rows — on
    CPU several times faster than ``torch.sparse`` products, on any device.
    """

    def __init__(self, m: sp.spmatrix) -> None:
        super().__init__()
        m = sp.csr_matrix(m)
        if m.nnz and not np.all(m.data == 1):
            raise ValueError("BinaryMatrix needs a 0/1 matrix")
        t = m.T.tocsr()
        self.shape = m.shape
        for name, csr in (("rows", m), ("cols", t)):
            csr.sort_indices()
            self.register_buffer(f"{name}_index", _long(csr.indices), persistent=False)
            self.register_buffer(f"{name}_ptr", _long(csr.indptr), persistent=False)

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:
        return _BinaryProduct.apply(
            x, self.rows_index, self.rows_ptr[:-1], self.cols_index, self.cols_ptr[:-1]
        )


class _BinaryProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, rows_index, rows_offsets, cols_index, cols_offsets):  # type: ignore[override]
        ctx.save_for_backward(cols_index, cols_offsets)
        return _bag_sum(rows_index, x, rows_offsets)  # (rows, d)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        cols_index, cols_offsets = ctx.saved_tensors
        dx = F.embedding_bag(cols_index, grad.contiguous(), cols_offsets, mode="sum")
        return dx, None, None, None, None


def _csr_rows(
    indptr: torch.Tensor, indices: torch.Tensor, rows: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The column indices of CSR ``rows``, concatenated, and for each of them the position
    in ``rows`` it came from."""
    starts = indptr[rows]  # (r,)
    lengths = indptr[rows + 1] - starts  # (r,)
    offsets = torch.cumsum(lengths, 0) - lengths  # (r,) where each row begins in the output
    total = int(lengths.sum())
    which = torch.repeat_interleave(
        torch.arange(len(rows), device=rows.device), lengths, output_size=total
    )  # (total,)
    position = torch.arange(total, device=rows.device) - offsets[which] + starts[which]
    return indices[position], which


def binary_interactions(train_sequences: Sequence[np.ndarray], num_items: int) -> sp.csr_matrix:
    """R: (users, num_items + 1), 1 where the user interacted with the item (repeats once)."""
    rows = np.concatenate([np.full(len(np.unique(s)), u) for u, s in enumerate(train_sequences)])
    cols = np.concatenate([np.unique(s) for s in train_sequences])
    return sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float64), (rows, cols)),
        shape=(len(train_sequences), num_items + 1),
    )


def _float(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, dtype=np.float32))


def _long(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, dtype=np.int64))
