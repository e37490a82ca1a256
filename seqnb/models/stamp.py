"""STAMP (Liu et al., KDD 2018) and the two ablations of Chapter 3.

For every prefix x_1..x_t of a sequence:
    m_t = x_t                                   last item
    m_s = mean(x_1..x_t)                        session memory
    a_i = w0 . sigmoid(W1 x_i + W2 m_t + W3 m_s + b)      for i <= t (no softmax)
    m_a = sum_i a_i x_i
    h_s = tanh(Ws m_a + bs),  h_t = tanh(Wt m_t + bt)
    score(i) = <h_s * h_t, e_i>                 (trilinear)

Variants: 'full' (above), 'only_ht' (score = h_t . e_i), 'only_mt' (score = m_t . e_i).
"""

from __future__ import annotations

import torch
from torch import nn

from seqnb.models.embeddings import ItemTable

VARIANTS = ("full", "only_ht", "only_mt")


class STAMP(nn.Module):
    def __init__(self, items: ItemTable, variant: str = "full") -> None:
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        d = items.dim
        self.items = items
        self.variant = variant
        self.w1 = nn.Linear(d, d, bias=False)
        self.w2 = nn.Linear(d, d, bias=False)
        self.w3 = nn.Linear(d, d, bias=True)
        self.w0 = nn.Linear(d, 1, bias=False)
        self.mlp_s = nn.Linear(d, d)
        self.mlp_t = nn.Linear(d, d)

    def hidden(
        self, seqs: torch.Tensor, table: torch.Tensor | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """(B, T) left-padded item ids -> (B, T, d) representation of every prefix
        (``last_only``: (B, 1, d), the whole sequence's)."""
        E = self.items.table() if table is None else table
        T = seqs.shape[1]
        Tq = 1 if last_only else T  # prefix ends computed: the last Tq columns
        x = E[seqs]  # (B, T, d), zero rows at padding
        m_t = x[:, -Tq:]  # (B, Tq, d)
        if self.variant == "only_mt":
            return m_t
        h_t = torch.tanh(self.mlp_t(m_t))
        if self.variant == "only_ht":
            return h_t
        real = (seqs > 0).to(x.dtype)  # (B, T)
        m_s = x.cumsum(1) / real.cumsum(1).clamp(min=1).unsqueeze(-1)  # (B, T, d)
        query = self.w2(m_t) + self.w3(m_s[:, -Tq:])  # (B, Tq, d) one per prefix end t
        keys = self.w1(x)  # (B, T, d) one per item i
        a = self.w0(torch.sigmoid(keys[:, None, :, :] + query[:, :, None, :])).squeeze(-1)
        visible = torch.ones(T, T, dtype=torch.bool, device=seqs.device).tril()[-Tq:]  # i <= t
        a = a * (visible & (seqs > 0)[:, None, :])  # (B, Tq, T)
        m_a = a @ x  # (B, Tq, d)
        h_s = torch.tanh(self.mlp_s(m_a))
        return h_s * h_t
