"""ZeroBlock: SASRec with no transformer at all — the last item's embedding is the user.

    score(u, i) = E[v_t] . E[i]
"""

from __future__ import annotations

import torch
from torch import nn

from seqnb.models.embeddings import ItemTable


class ZeroBlock(nn.Module):
    def __init__(self, items: ItemTable) -> None:
        super().__init__()
        self.items = items

    def hidden(
        self, seqs: torch.Tensor, table: torch.Tensor | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """(B, T) item ids -> (B, T, d): position t is represented by item t alone
        (``last_only``: (B, 1, d), the last position)."""
        E = self.items.table() if table is None else table
        return E[seqs[:, -1:]] if last_only else E[seqs]
