"""seqnb.metrics against a brute-force Python reference: ranks, ties, exclusion masks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqnb.metrics import (
    metrics_from_ranks,
    per_item_metrics,
    ranking_metrics,
    summarize_ranks,
    target_ranks,
)

KS = (1, 3, 5, 10)


# ----- brute-force references (plain Python loops) -------------------------------------------
def reference_ranks(scores: np.ndarray, targets: np.ndarray, exclude: np.ndarray | None) -> list:
    """rank = 1 + number of *other*, non-excluded items scoring >= the target (ties lose)."""
    ranks = []
    for row, target in enumerate(targets):
        rank = 1
        for item in range(scores.shape[1]):
            if item == target:
                continue
            if exclude is not None and exclude[row, item]:
                continue
            if scores[row, item] >= scores[row, target]:
                rank += 1
        ranks.append(rank)
    return ranks


def reference_metrics(rank: int, ks=KS) -> dict[str, float]:
    out = {"MRR": 1.0 / rank}
    for k in ks:
        hit = 1.0 if rank <= k else 0.0
        out[f"HR@{k}"] = hit
        out[f"Recall@{k}"] = hit
        out[f"Precision@{k}"] = hit / k
        out[f"NDCG@{k}"] = hit / math.log2(rank + 1)
    return out


def tied_problem(seed: int, batch: int = 40, items: int = 30, levels: int = 4):
    """Integer scores from a handful of levels (many ties), random targets and a ~30% mask
    that often covers the target itself."""
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, levels, size=(batch, items)).astype(np.float32)
    targets = rng.integers(0, items, size=batch)
    exclude = rng.random((batch, items)) < 0.3
    exclude[::3, :] |= np.eye(items, dtype=bool)[targets[::3]]  # every third row: target masked
    return scores, targets, exclude


# ----- ranks ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mask", ["none", "dense", "sparse"])
def test_ranks_match_brute_force_with_ties_and_masks(seed, mask):
    """target_ranks equals the loop reference on tied scores, with no mask, a dense boolean
    mask and the same mask as a sparse COO tensor."""
    scores, targets, exclude = tied_problem(seed)
    excl_t = None
    if mask == "dense":
        excl_t = torch.from_numpy(exclude)
    elif mask == "sparse":
        excl_t = torch.from_numpy(exclude).to_sparse()
    got = target_ranks(torch.from_numpy(scores), torch.from_numpy(targets), excl_t)
    expected = reference_ranks(scores, targets, exclude if mask != "none" else None)
    assert got.dtype == torch.int64
    assert got.tolist() == expected


def test_sparse_mask_built_from_indices_with_duplicates():
    """A sparse mask given as (row, item) index pairs — uncoalesced, with a duplicate pair —
    excludes exactly those items."""
    scores = torch.tensor([[0.0, 5.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    targets = torch.tensor([3, 0])
    idx = torch.tensor([[0, 0, 0, 1], [1, 1, 2, 3]])  # (0,1) twice, (0,2), (1,3)
    mask = torch.sparse_coo_tensor(
        idx, torch.ones(4, dtype=torch.bool), (2, 4), check_invariants=True
    )
    # row 0: items 1, 2 excluded -> only item 0 (score 0 < 3) remains -> rank 1
    # row 1: item 3 excluded -> items 1, 2 beat the target (score 1) -> rank 3
    assert target_ranks(scores, targets, mask).tolist() == [1, 3]


def test_constant_scores_rank_target_last():
    """Ties never favour the target: a constant-score model ranks every target last
    (HR@1 = 0, not 1), and last among the remaining items when some are excluded."""
    scores = torch.zeros(6, 20)
    targets = torch.arange(6)
    assert target_ranks(scores, targets).tolist() == [20] * 6
    assert ranking_metrics(scores, targets)["HR@1"].sum() == 0
    exclude = torch.zeros(6, 20, dtype=torch.bool)
    exclude[:, 10:15] = True  # 5 items removed, none of them a target
    assert target_ranks(scores, targets, exclude).tolist() == [15] * 6


def test_target_is_never_excluded():
    """A mask that covers the target gives the same rank as the mask without the target."""
    scores, targets, exclude = tied_problem(7)
    rows = np.arange(len(targets))
    covered = exclude.copy()
    covered[rows, targets] = True
    uncovered = exclude.copy()
    uncovered[rows, targets] = False
    s, t = torch.from_numpy(scores), torch.from_numpy(targets)
    a = target_ranks(s, t, torch.from_numpy(covered))
    b = target_ranks(s, t, torch.from_numpy(uncovered))
    assert torch.equal(a, b)
    assert a.min() >= 1


def test_excluding_everything_else_gives_rank_one():
    """With every other item excluded the target is alone, so rank 1 whatever its score."""
    scores = torch.tensor([[9.0, -1.0, 9.0]])
    exclude = torch.ones(1, 3, dtype=torch.bool)
    assert target_ranks(scores, torch.tensor([1]), exclude).tolist() == [1]


def test_scores_must_be_two_dimensional():
    """A 1-D score vector is rejected with a message naming the expected shape."""
    with pytest.raises(ValueError, match="batch, items"):
        target_ranks(torch.zeros(5), torch.tensor([0]))


# ----- metrics from ranks --------------------------------------------------------------------
@pytest.mark.parametrize("mask", [False, True])
def test_ranking_metrics_match_reference_formulas(mask):
    """Every per-row metric (HR, Recall, Precision, NDCG @k and MRR) equals the textbook
    formula applied to the brute-force rank."""
    scores, targets, exclude = tied_problem(3, batch=60, items=25)
    got = ranking_metrics(
        torch.from_numpy(scores),
        torch.from_numpy(targets),
        ks=KS,
        exclude=torch.from_numpy(exclude) if mask else None,
    )
    ranks = reference_ranks(scores, targets, exclude if mask else None)
    expected = [reference_metrics(r) for r in ranks]
    assert set(got) == set(expected[0])
    for name, values in got.items():
        assert values.shape == (len(targets),)
        np.testing.assert_allclose(values.numpy(), [e[name] for e in expected], rtol=1e-12)


def test_metrics_from_ranks_hand_values_and_summary():
    """Hand-computed values for ranks 1, 2, 11 and their means (numpy input accepted)."""
    ranks = np.array([1, 2, 11])
    m = metrics_from_ranks(ranks, ks=(1, 10))
    assert m["HR@1"].tolist() == [1.0, 0.0, 0.0]
    assert m["HR@10"].tolist() == [1.0, 1.0, 0.0]
    np.testing.assert_allclose(m["NDCG@10"].numpy(), [1.0, 1 / math.log2(3), 0.0])
    np.testing.assert_allclose(m["MRR"].numpy(), [1.0, 0.5, 1 / 11])
    np.testing.assert_allclose(m["Precision@10"].numpy(), [0.1, 0.1, 0.0])
    summary = summarize_ranks(torch.tensor(ranks), ks=(1, 10))
    assert summary["HR@10"] == pytest.approx(2 / 3)
    assert summary["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 3)
    assert summary["MRR"] == pytest.approx((1 + 0.5 + 1 / 11) / 3)


def test_per_item_metrics_match_loop():
    """Per-item Recall@k / NDCG@k are the means over rows whose target is that item; items
    never a target get NaN and count 0."""
    rng = np.random.default_rng(0)
    num_items, k = 12, 5
    targets = rng.integers(1, num_items, size=200)  # item num_items never a target
    ranks = rng.integers(1, 15, size=200)
    got = per_item_metrics(ranks, targets, num_items, k=k)
    for item in range(num_items + 1):
        rows = [r for r, t in zip(ranks, targets, strict=True) if t == item]
        assert got["count"][item] == len(rows)
        if not rows:
            assert np.isnan(got[f"Recall@{k}"][item]) and np.isnan(got[f"NDCG@{k}"][item])
            continue
        recall = sum(1.0 for r in rows if r <= k) / len(rows)
        ndcg = sum(1 / math.log2(r + 1) for r in rows if r <= k) / len(rows)
        assert got[f"Recall@{k}"][item] == pytest.approx(recall)
        assert got[f"NDCG@{k}"][item] == pytest.approx(ndcg)
    assert len(got["count"]) == num_items + 1 and np.isnan(got[f"Recall@{k}"][num_items])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_ranks_on_cuda_equal_cpu():
    """The same tied problem ranked on CUDA (dense and sparse masks) equals the CPU ranks."""
    scores, targets, exclude = tied_problem(5)
    s, t, e = torch.from_numpy(scores), torch.from_numpy(targets), torch.from_numpy(exclude)
    cpu = target_ranks(s, t, e)
    dense = target_ranks(s.cuda(), t.cuda(), e.cuda())
    sparse = target_ranks(s.cuda(), t.cuda(), e.to_sparse().cuda())
    assert dense.is_cuda
    assert torch.equal(dense.cpu(), cpu) and torch.equal(sparse.cpu(), cpu)
    m = ranking_metrics(s.cuda(), t.cuda(), exclude=e.cuda())
    assert torch.allclose(m["NDCG@10"].cpu(), metrics_from_ranks(cpu)["NDCG@10"])
