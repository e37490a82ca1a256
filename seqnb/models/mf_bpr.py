"""Matrix factorisation trained with BPR: score(u, i) = U[u] . E[i]."""

from __future__ import annotations

import torch
from torch import nn

from seqnb.models.embeddings import ItemTable


class MFBPR(nn.Module):
    def __init__(self, num_users: int, items: ItemTable) -> None:
        super().__init__()
        self.items = items
        self.users = nn.Embedding(num_users, items.dim)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        """(B,) user rows -> (B, d)."""
        return self.users(users)
