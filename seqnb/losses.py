"""Losses: full-softmax cross-entropy (chunked, fused), sampled BCE, BPR.

The CE over all items is where an epoch's time goes: its logits are ``positions x items``
(Beauty: 131k x 12k, 6 GB in fp32), and a plain ``F.cross_entropy`` streams them through
memory several times. :func:`chunked_cross_entropy` instead walks the rows in chunks small
enough to stay in cache, and forms the gradient during the forward pass (the loss is a mean
of independent rows, so its gradient is known up to the scalar ``grad_output``):

    for each chunk c of rows:
        s = <H_c, E[target]>         the targets' logits                 (c,)
        P = exp(H_c E^T - s)         shifted logits, exponentiated       (c, V)
        loss += log(sum P)           = logsumexp(Z) - Z[target]
        G = P / sum P - onehot
        dH_c = G E,  dE += G^T H_c

That is the three ``positions x items x dim`` matmuls the epoch cannot avoid and a single
elementwise pass (the exp); the logits never exist whole. The pass is ``exp2``, with
``log2 e`` folded into the rows ``H_c`` and ``ln 2`` into the loss: on CPUs PyTorch's
``exp2`` runs 1.4x (bf16) to 3x (fp32) faster than its ``exp``. The shift comes from the
matmul itself (``[E | 1] [H_c | -s]^T``), and because the target's own term is exp(0) = 1
the sum cannot underflow; the max pass a softmax usually needs is skipped. Only if some
logit lies ~69 above the target's (the sum exceeds 1e30) is that chunk redone shifted by
its column maxima. ``[E | 1]^T P`` gives ``E^T P`` and, in its last row, the sum, so the softmax's
normaliser costs no pass of its own either; the ``1/sum`` scales the small ``(c, d)``
factors and the onehot touches ``c`` rows. Each chunk's logits are kept transposed, items x
rows: with ``d = 64`` that product runs up to 2.5x faster on CPUs than ``H_c E^T``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# rows per chunk (fp32). On CPUs with AVX-512 the matmuls are fast enough that memory
# traffic decides, and a chunk's (items x rows) logits should stay near the cores: 128 rows.
# With AVX2 only, the matmuls decide, and larger ones run faster: 512 rows (a Beauty CE
# epoch 5% faster there than with 128). bf16 on a CPU: 1024 rows, where the bf16 matmuls
# run best (AMD EPYC with AVX512-BF16, Note A bf16 epochs alternating: 6% faster than with
# 256 rows, 4 pairs). On a GPU large chunks keep the device busy.
DEFAULT_CHUNK = {"cpu": 128, "cpu_avx2": 512, "cpu_bf16": 1024, "cuda": 4096}
LOG2E = 1.4426950408889634  # exp(x) = 2^(x log2 e)
LN2 = 0.6931471805599453


def default_chunk(device: torch.device, dtype: torch.dtype) -> int:
    """Rows per CE chunk on ``device`` (fixed per machine, so runs stay repeatable)."""
    if device.type != "cpu":
        return DEFAULT_CHUNK.get(device.type, 1024)
    if dtype == torch.bfloat16:
        return DEFAULT_CHUNK["cpu_bf16"]
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    return DEFAULT_CHUNK["cpu" if avx512 else "cpu_avx2"]


class _ChunkedCE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, table, targets, chunk, compute_dtype):  # type: ignore[override]
        # hidden (N, d), table (V, d), targets (N,)
        N, d = hidden.shape
        V = table.shape[0]
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        H = hidden.detach().to(compute_dtype)
        E = table.detach().to(compute_dtype)
        # [E | 1]: multiplied with [h | -s] it gives the logits shifted by s; multiplied with
        # the softmax block it gives E^T P and, in its last row, the softmax's sum
        E_aug = torch.cat([E, torch.ones(V, 1, dtype=E.dtype, device=E.device)], 1)
        E_aug_T = E_aug.T.contiguous()  # (d + 1, V): [E|1]^T P runs faster than P^T [E|1]
        E_target = E[targets].float()  # (N, d)
        z_target = (H.float() * E_target).sum(1)  # (N,) the targets' logits
        # Shift each row by its target's logit: the largest term of its softmax sum is then
        # >= exp(0) = 1 (no underflow) and, unless a logit lies ~69 above the target's, no
        # term overflows. That replaces the max pass over the logits.
        # The rows carry a factor log2(e), so that 2^(E_aug h_aug) = exp(logits - s): scaled
        # in fp32, then rounded once to the compute dtype (as H itself is).
        H_aug = torch.cat([hidden.detach().float(), -z_target[:, None]], 1).mul_(LOG2E)
        H_aug = H_aug.to(compute_dtype)  # (N, d + 1)
        sums = torch.empty(N, dtype=torch.float32, device=hidden.device)
        d_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device)
        d_table = torch.zeros(table.shape, dtype=torch.float32, device=table.device)
        # One (V, chunk) buffer reused by every full chunk. In bf16 the logits stay bf16
        # (half the memory traffic); the loss and the table's gradient accumulate in fp32.
        buffer = torch.empty(V, min(chunk, N), dtype=compute_dtype, device=hidden.device)
        for start in range(0, N, chunk):
            rows = slice(start, start + chunk)
            h_aug = H_aug[rows]  # (c, d + 1)
            c = h_aug.shape[0]
            for attempt in range(2):
                out = buffer if c == buffer.shape[1] else None
                z = torch.mm(E_aug, h_aug.T, out=out)  # (V, c) shifted logits, transposed
                z.exp2_()  # P, unnormalised
                pe = E_aug_T @ z  # (d + 1, c): E^T P and the sum of P
                total = pe[d].float()
                if attempt == 1 or bool((total <= 1e30).all()):
                    break
                # rare: a logit far above the target's; shift by the column maxima instead
                top = (E @ H[rows].T).amax(dim=0).float()
                h_aug[:, d] = -(torch.maximum(z_target[rows], top) * LOG2E).to(h_aug.dtype)
            sums[rows] = total
            if need_grad:
                # G = P / sum - onehot with P unnormalised: the 1/sum goes on the (c, d)
                # factors and the onehot on c rows, not on the (V, c) block
                inv = (1.0 / total)[:, None]  # (c, 1)
                h = H[rows]
                dh = d_hidden[rows]
                torch.mul(pe[:d].T, inv, out=dh).sub_(E_target[rows])
                if compute_dtype == torch.float32:
                    d_table.addmm_(z, h * inv)
                else:
                    d_table.add_(z @ (h * inv.to(h.dtype)))
                d_table.index_add_(0, targets[rows], h.float(), alpha=-1.0)
        # log(sum exp(z - s)) + s - z_target, with s as the matmul applied it (in log2 units)
        loss = (sums.log() - H_aug[:, d].float() * LN2 - z_target).sum()
        ctx.save_for_backward(d_hidden.to(hidden.dtype), d_table.to(table.dtype))
        return loss / N

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        d_hidden, d_table = ctx.saved_tensors
        N = d_hidden.shape[0]
        scale = grad_output / N
        return d_hidden * scale, d_table * scale, None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    table: torch.Tensor,
    targets: torch.Tensor,
    chunk: int | None = None,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Mean softmax cross-entropy of ``hidden @ table.T`` against ``targets``.

    Equal to ``F.cross_entropy(hidden @ table.T, targets)`` (up to float rounding), without
    materialising the logits; ``chunk`` rows at a time (default: :func:`default_chunk`).
    ``compute_dtype=torch.bfloat16`` runs the matmuls and the exp in bf16 (the loss and the
    gradients accumulate in fp32).
    """
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    dtype = compute_dtype or hidden.dtype
    if chunk is None:
        chunk = default_chunk(hidden.device, dtype)
    return _ChunkedCE.apply(hidden, table, targets.long(), chunk, dtype)


def sampled_bce(
    hidden: torch.Tensor, table: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy as in the SASRec port: mean over positives + mean over negatives.

    hidden (N, d), positives (N,), negatives (N, k)."""
    pos = (hidden * table[positives]).sum(-1)  # (N,)
    neg = torch.einsum("nd,nkd->nk", hidden, table[negatives])  # (N, k)
    return F.binary_cross_entropy_with_logits(
        pos, torch.ones_like(pos)
    ) + F.binary_cross_entropy_with_logits(neg, torch.zeros_like(neg))


def bpr(
    hidden: torch.Tensor, table: torch.Tensor, positives: torch.Tensor, negatives: torch.Tensor
) -> torch.Tensor:
    """BPR: -log sigmoid(s_pos - s_neg), averaged over positions and negatives."""
    pos = (hidden * table[positives]).sum(-1, keepdim=True)  # (N, 1)
    neg = torch.einsum("nd,nkd->nk", hidden, table[negatives])  # (N, k)
    return -F.logsigmoid(pos - neg).mean()
