"""Full-ranking metrics for next-item prediction (one target per row).

Every metric is a function of the target's 1-based rank among the candidate items, so we
compute ranks once and derive the rest. Ties never favour the target: the rank counts every
candidate whose score is *greater than or equal to* the target's (the target excluded), so a
model that scores every item the same ranks the target last.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch

DEFAULT_KS = (1, 5, 10)
BOOK_METRICS = ("HR@1", "HR@5", "HR@10", "NDCG@5", "NDCG@10")


def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """1-based rank of each row's target among the non-excluded items.

    Args:
        scores: (B, N) scores over all items.
        targets: (B,) target item index per row.
        exclude: optional (B, N) boolean mask of items to drop from the ranking (already
            seen items, padding), or a sparse COO tensor of the same shape. The target
            itself is never excluded.

    Returns:
        (B,) int64 ranks, 1 = best.
    """
    if scores.dim() != 2:
        raise ValueError(f"scores must be (batch, items), got shape {tuple(scores.shape)}")
    targets = targets.to(scores.device).long()
    rows = torch.arange(scores.shape[0], device=scores.device)
    target_score = scores[rows, targets].unsqueeze(1)  # (B, 1)
    at_or_above = scores >= target_score  # (B, N), includes the target itself
    if exclude is not None:
        if exclude.is_sparse:
            exclude = exclude.to_dense()
        keep = ~exclude.to(scores.device, torch.bool)
        at_or_above &= keep
        # the target counts once below, whether or not the mask covered it
        at_or_above[rows, targets] = True
    return at_or_above.sum(dim=1)  # the target itself makes the count 1-based


def metrics_from_ranks(
    ranks: torch.Tensor | np.ndarray, ks: Iterable[int] = DEFAULT_KS
) -> dict[str, torch.Tensor]:
    """Per-row HR@k, NDCG@k, Recall@k, Precision@k and MRR from 1-based target ranks."""
    r = torch.as_tensor(ranks).double()
    out: dict[str, torch.Tensor] = {}
    for k in ks:
        hit = (r <= k).double()
        out[f"HR@{k}"] = hit
        out[f"Recall@{k}"] = hit  # one relevant item per row
        out[f"Precision@{k}"] = hit / k
        out[f"NDCG@{k}"] = hit / torch.log2(r + 1.0)
    out["MRR"] = 1.0 / r
    return out


def ranking_metrics(
    scores: torch.Tensor,
    targets: torch.Tensor,
    ks: Sequence[int] = DEFAULT_KS,
    exclude: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Per-row metrics (dict of (B,) float64 tensors) keyed ``HR@k``, ``NDCG@k``,
    ``Recall@k``, ``Precision@k`` and ``MRR``; average them for the usual numbers."""
    return metrics_from_ranks(target_ranks(scores, targets, exclude), ks)


def summarize_ranks(
    ranks: torch.Tensor | np.ndarray, ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean of every metric over rows: the numbers a table reports."""
    return {name: float(v.mean()) for name, v in metrics_from_ranks(ranks, ks).items()}


def per_item_metrics(
    ranks: np.ndarray, targets: np.ndarray, num_items: int, k: int = 10
) -> dict[str, np.ndarray]:
    """Per-item Recall@k and NDCG@k: the mean over the rows whose target is that item.

    Returns arrays of length ``num_items + 1`` (index = item id) and the number of rows per
    item; items that are never a target get NaN.
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    hit = (ranks <= k).astype(np.float64)
    ndcg = hit / np.log2(ranks + 1.0)
    count = np.bincount(targets, minlength=num_items + 1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.bincount(targets, weights=hit, minlength=num_items + 1) / count
        ndcg_item = np.bincount(targets, weights=ndcg, minlength=num_items + 1) / count
    return {f"Recall@{k}": recall, f"NDCG@{k}": ndcg_item, "count": count}
