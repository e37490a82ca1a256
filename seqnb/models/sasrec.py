"""SASRec (Kang & McAuley, ICDM 2018), the variant of the widely used PyTorch port.

    x = E[seq] * sqrt(d) + P[pos]; dropout; zero padded positions
    for each block:
        q = LN1(x);  x = x + Attn(q, x, x, causal mask)
        x = LN2(x);  x = x + FFN(x)          FFN = W2(dropout(relu(W1 x))), dropout
        zero padded positions
    h = LN(x);  score(i) = h_t . E[i]         (item table shared with the input)

One deliberate difference from the port: attention ignores padding keys. (In the port they
leak in through the key bias, so a sequence's output depends on how much padding it got.)
With the mask, trimming a left-padded batch to its longest sequence gives the same logits,
which is what lets the trainer skip the padding.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from seqnb.models.embeddings import ItemTable


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``F.dropout``; on CPUs the mask comes from 16-bit slices of full-range 64-bit random
    integers (a quarter of the generator calls), 3-4x faster there than ``F.dropout``'s
    ``bernoulli_``. The drop probability is ``p`` rounded to a multiple of 2^-16, and the
    kept entries are scaled by the inverse of its complement (unbiased)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    drop = round(p * 65536)  # entries with r < drop - 32768 are dropped: P = drop / 2^16
    words = torch.empty((x.numel() + 3) // 4, dtype=torch.int64, device=x.device)
    r = words.random_(-(2**63), None).view(torch.int16)[: x.numel()].view(x.shape)
    return x * (r >= drop - 32768).to(x.dtype).mul_(65536 / (65536 - drop))


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self, q: torch.Tensor, kv: torch.Tensor, mask: torch.Tensor, return_weights: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, Tq, d = q.shape  # queries: all T positions, or only the last (Tq = 1)
        T = kv.shape[1]  # mask: (B, 1, Tq, T) bool, True = may attend
        h = self.num_heads
        Q = self.q_proj(q).view(B, Tq, h, d // h).transpose(1, 2)  # (B, h, Tq, d/h)
        K = self.k_proj(kv).view(B, T, h, d // h).transpose(1, 2)  # (B, h, T, d/h)
        V = self.v_proj(kv).view(B, T, h, d // h).transpose(1, 2)
        p = self.dropout if self.training else 0.0
        # explicit attention when the weights are wanted, or for dropout on a CPU (where
        # SDPA's own dropout is the slow bernoulli_); otherwise the fused kernel
        if return_weights or (p > 0.0 and q.device.type == "cpu"):
            logits = Q @ K.transpose(-1, -2) / math.sqrt(d // h)  # (B, h, Tq, T)
            weights = logits.masked_fill(~mask, float("-inf")).softmax(-1)
            y = dropout(weights, p, self.training) @ V
            weights = weights if return_weights else None
        else:
            weights = None
            y = F.scaled_dot_product_attention(Q, K, V, attn_mask=mask, dropout_p=p)
        y = y.transpose(1, 2).reshape(B, Tq, d)  # (B, Tq, d)
        return self.out_proj(y), weights


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=1e-8)
        self.attn = CausalSelfAttention(dim, num_heads, dropout)
        self.ln2 = nn.LayerNorm(dim, eps=1e-8)
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(
        self,
        x: torch.Tensor,
        mask: torch.Tensor,
        keep: torch.Tensor,
        return_weights: bool,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q = self.ln1(x)
        kv = x
        if last_only:  # every position is still a key; only the last one is computed on
            q, x, mask, keep = q[:, -1:], x[:, -1:], mask[:, :, -1:], keep[:, -1:]
        a, weights = self.attn(q, kv, mask, return_weights)
        p, training = self.dropout, self.training
        x = x + dropout(a, p, training)
        x = self.ln2(x)
        x = x + dropout(self.fc2(dropout(F.relu(self.fc1(x)), p, training)), p, training)
        return x * keep, weights  # keep: (B, T, 1) (or (B, 1, 1)), zero at padding


class SASRec(nn.Module):
    def __init__(
        self,
        items: ItemTable,
        maxlen: int,
        num_blocks: int,
        num_heads: int,
        dropout: float,
    ) -> None:
        super().__init__()
        dim = items.dim
        self.items = items
        self.maxlen = maxlen
        self.pos = nn.Embedding(maxlen, dim)
        self.dropout = dropout
        self.blocks = nn.ModuleList(Block(dim, num_heads, dropout) for _ in range(num_blocks))
        self.ln_final = nn.LayerNorm(dim, eps=1e-8)

    def hidden(
        self,
        seqs: torch.Tensor,
        table: torch.Tensor | None = None,
        return_attention: bool = False,
        last_only: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, T) left-padded item ids -> (B, T, d) representation at every position.

        T may be shorter than maxlen (a trimmed batch): position ids are those the same
        columns would have in a batch padded to maxlen. ``last_only``: (B, 1, d), the last
        position only — the final block then skips the queries, feed-forward and
        LayerNorms of the other positions (what evaluation and rolled samples need).
        """
        B, T = seqs.shape
        E = self.items.table() if table is None else table  # (V+1, d)
        keep = (seqs > 0).unsqueeze(-1)  # (B, T, 1)
        positions = torch.arange(self.maxlen - T, self.maxlen, device=seqs.device)  # (T,)
        x = F.embedding(seqs, E) * math.sqrt(E.shape[1]) + self.pos(positions)  # (B, T, d)
        x = dropout(x, self.dropout, self.training) * keep
        causal = torch.ones(T, T, dtype=torch.bool, device=seqs.device).tril()
        diag = torch.eye(T, dtype=torch.bool, device=seqs.device)
        mask = (causal & (seqs > 0)[:, None, :]) | diag  # (B, T, T): real keys, or self
        mask = mask.unsqueeze(1)  # (B, 1, T, T)
        attention = []
        for layer, block in enumerate(self.blocks):
            final = layer == len(self.blocks) - 1
            x, w = block(x, mask, keep, return_attention, last_only=last_only and final)
            if w is not None:
                attention.append(w)
        if last_only:
            x = x[:, -1:]  # (B, 1, d); already so when there is a block
        x = self.ln_final(x)
        return (x, attention) if return_attention else x
