"""seqnb.losses: the fused chunked CE against F.cross_entropy; BCE and BPR by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from seqnb.losses import bpr, chunked_cross_entropy, sampled_bce


def ce_problem(n: int = 37, items: int = 29, dim: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, dim, generator=g)
    table = torch.randn(items, dim, generator=g)
    targets = torch.randint(0, items, (n,), generator=g)
    return hidden, table, targets


def reference_ce(hidden, table, targets):
    """Loss and gradients of the plain ``F.cross_entropy(hidden @ table.T, targets)``."""
    h = hidden.clone().requires_grad_()
    e = table.clone().requires_grad_()
    loss = F.cross_entropy(h @ e.T, targets)
    loss.backward()
    return loss.detach(), h.grad, e.grad


def chunked(hidden, table, targets, scale: float = 1.0, **kw):
    """Loss and gradients of ``scale * chunked_cross_entropy`` (scale tests grad_output)."""
    h = hidden.clone().requires_grad_()
    e = table.clone().requires_grad_()
    loss = chunked_cross_entropy(h, e, targets, **kw)
    (scale * loss).backward()
    return loss.detach(), h.grad, e.grad


@pytest.mark.parametrize("chunk", [1, 5, 16, 37, 256])
def test_chunked_ce_equals_cross_entropy_fp32(chunk):
    """Value and both gradients equal F.cross_entropy's for chunk sizes that divide N, do
    not divide it (37 = 7*5 + 2), equal it and exceed it."""
    hidden, table, targets = ce_problem()
    ref_loss, ref_dh, ref_de = reference_ce(hidden, table, targets)
    loss, dh, de = chunked(hidden, table, targets, chunk=chunk)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(dh, ref_dh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(de, ref_de, rtol=1e-5, atol=1e-7)


def test_chunked_ce_scales_with_grad_output_and_large_logits():
    """Gradients follow the upstream gradient (here 3x the loss), and large logits
    (|z| ~ 100, where shifting by the target's logit overflows) stay finite and exact: the
    chunk falls back to shifting by the column maxima."""
    hidden, table, targets = ce_problem(seed=1)
    hidden = hidden * 10  # logits of order 100: a naive exp overflows
    ref_loss, ref_dh, ref_de = reference_ce(hidden, table, targets)
    loss, dh, de = chunked(hidden, table, targets, scale=3.0, chunk=8)
    assert torch.isfinite(loss)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dh, 3 * ref_dh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(de, 3 * ref_de, rtol=1e-4, atol=1e-6)


def test_chunked_ce_mixed_chunk_some_columns_far_above_target():
    """In one chunk most rows are ordinary and one has a wrong item 200 above its target
    (exp overflows under the target shift): all rows still match F.cross_entropy."""
    hidden, table, targets = ce_problem(n=16, items=20, dim=4, seed=4)
    table[7] = 0.0
    table[7, 0] = 100.0
    hidden[3] = 0.0
    hidden[3, 0] = 2.0  # row 3 scores item 7 at 200
    targets[3] = 2
    ref_loss, ref_dh, ref_de = reference_ce(hidden, table, targets)
    loss, dh, de = chunked(hidden, table, targets, chunk=16)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dh, ref_dh, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(de, ref_de, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("chunk", [4, 13])
def test_chunked_ce_bf16_close_to_fp32_reference(chunk):
    """With bf16 matmuls (softmax and sums in fp32) the loss and gradients stay within
    bf16 rounding (~1%) of the fp32 F.cross_entropy."""
    hidden, table, targets = ce_problem(n=64, items=50, dim=16, seed=2)
    ref_loss, ref_dh, ref_de = reference_ce(hidden, table, targets)
    loss, dh, de = chunked(hidden, table, targets, chunk=chunk, compute_dtype=torch.bfloat16)
    assert dh.dtype == torch.float32 and de.dtype == torch.float32
    torch.testing.assert_close(loss, ref_loss, rtol=2e-2, atol=2e-2)
    for got, ref in ((dh, ref_dh), (de, ref_de)):
        rel = (got - ref).norm() / ref.norm()
        assert rel < 3e-2, f"relative gradient error {rel:.3g}"


def test_chunked_ce_empty_batch():
    """N = 0 rows (a batch with no loss positions) gives loss 0 and zero gradients instead
    of NaN, and backward runs."""
    hidden = torch.zeros(0, 8, requires_grad=True)
    table = torch.randn(10, 8, requires_grad=True)
    loss = chunked_cross_entropy(hidden, table, torch.zeros(0, dtype=torch.long))
    assert loss.item() == 0.0
    loss.backward()
    assert table.grad is None or torch.count_nonzero(table.grad) == 0


def test_chunked_ce_without_grad():
    """Under no_grad (evaluation) the value is still right."""
    hidden, table, targets = ce_problem(seed=3)
    with torch.no_grad():
        loss = chunked_cross_entropy(hidden, table, targets, chunk=7)
    torch.testing.assert_close(loss, F.cross_entropy(hidden @ table.T, targets))


# ----- sampled losses -------------------------------------------------------------------------
def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def sampled_problem(n: int = 5, k: int = 3, items: int = 12, dim: int = 4):
    g = torch.Generator().manual_seed(4)
    hidden = torch.randn(n, dim, generator=g, dtype=torch.float64)
    table = torch.randn(items, dim, generator=g, dtype=torch.float64)
    pos = torch.randint(0, items, (n,), generator=g)
    neg = torch.randint(0, items, (n, k), generator=g)
    return hidden, table, pos, neg


def score(hidden, table, row: int, item: int) -> float:
    return float(sum(hidden[row, j] * table[item, j] for j in range(hidden.shape[1])))


@pytest.mark.parametrize("k", [1, 3])
def test_sampled_bce_hand_formula(k):
    """BCE = mean_n -log s(h_n.e_pos) + mean_{n,j} -log(1 - s(h_n.e_neg_nj))."""
    hidden, table, pos, neg = sampled_problem(k=k)
    n = len(pos)
    pos_term = sum(-math.log(sigmoid(score(hidden, table, r, int(pos[r])))) for r in range(n)) / n
    neg_term = sum(
        -math.log(1 - sigmoid(score(hidden, table, r, int(neg[r, j]))))
        for r in range(n)
        for j in range(k)
    ) / (n * k)
    assert sampled_bce(hidden, table, pos, neg).item() == pytest.approx(pos_term + neg_term)


@pytest.mark.parametrize("k", [1, 3])
def test_bpr_hand_formula(k):
    """BPR = mean_{n,j} -log s(h_n.e_pos_n - h_n.e_neg_nj)."""
    hidden, table, pos, neg = sampled_problem(k=k)
    n = len(pos)
    expected = sum(
        -math.log(
            sigmoid(score(hidden, table, r, int(pos[r])) - score(hidden, table, r, int(neg[r, j])))
        )
        for r in range(n)
        for j in range(k)
    ) / (n * k)
    assert bpr(hidden, table, pos, neg).item() == pytest.approx(expected)


def test_sampled_losses_have_gradients_for_hidden_and_table():
    """Both sampled losses backpropagate into the hidden states and the item table, and
    only the rows of items that were sampled receive gradient."""
    hidden, table, pos, neg = sampled_problem()
    for fn in (sampled_bce, bpr):
        h = hidden.clone().requires_grad_()
        e = table.clone().requires_grad_()
        fn(h, e, pos, neg).backward()
        assert torch.count_nonzero(h.grad) > 0
        used = set(pos.tolist()) | set(neg.flatten().tolist())
        for item in range(table.shape[0]):
            assert bool(e.grad[item].any()) == (item in used)


def test_default_chunk_is_fixed_per_machine():
    """The CPU chunk follows the instruction set (so a machine's runs stay repeatable);
    bf16 on a CPU has its own, larger chunk."""
    from seqnb.losses import DEFAULT_CHUNK, default_chunk

    cpu = torch.device("cpu")
    fp32 = default_chunk(cpu, torch.float32)
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    assert fp32 == DEFAULT_CHUNK["cpu" if avx512 else "cpu_avx2"]
    assert default_chunk(cpu, torch.bfloat16) == DEFAULT_CHUNK["cpu_bf16"]
    assert default_chunk(torch.device("cuda"), torch.float32) == DEFAULT_CHUNK["cuda"]
