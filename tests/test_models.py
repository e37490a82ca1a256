"""seqnb.models: trimming, causality and padding invariances, STAMP formulas, and the
neighbour-averaged table against a dense computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from seqnb.config import RunConfig
from seqnb.data.dataset import from_sequences
from seqnb.models import (
    MFBPR,
    STAMP,
    ItemTable,
    NeighbourAveragedTable,
    SASRec,
    ZeroBlock,
    build_model,
    embeddings,
)
from seqnb.models.embeddings import cooccurrence_band

pytestmark = pytest.mark.usefixtures("single_thread")

V, D, MAXLEN = 30, 16, 10


def make(kind: str, num_blocks: int = 2, num_heads: int = 2, seed: int = 0):
    """A small model in eval mode (dropout off), every parameter randomly initialised."""
    torch.manual_seed(seed)
    items = ItemTable(V, D)
    if kind == "sasrec":
        model = SASRec(items, MAXLEN, num_blocks, num_heads, dropout=0.3)
    elif kind == "zero_block":
        model = ZeroBlock(items)
    else:
        model = STAMP(items, kind.removeprefix("stamp_") if kind != "stamp" else "full")
    with torch.no_grad():  # non-zero biases so every term of every formula matters
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    return model.eval()


def padded_batch(lengths, maxlen: int = MAXLEN, seed: int = 0) -> torch.Tensor:
    """(B, maxlen) left-padded batch of random sequences with the given real lengths."""
    g = torch.Generator().manual_seed(seed)
    X = torch.zeros(len(lengths), maxlen, dtype=torch.long)
    for row, n in enumerate(lengths):
        if n:
            X[row, maxlen - n :] = torch.randint(1, V + 1, (n,), generator=g)
    return X


SEQUENCE_MODELS = ["sasrec", "zero_block", "stamp", "stamp_only_ht", "stamp_only_mt"]


# ----- trimming, padding, causality ------------------------------------------------------------
@pytest.mark.parametrize("kind", SEQUENCE_MODELS)
def test_trimmed_batch_equals_untrimmed(kind):
    """Cutting a left-padded batch to its longest sequence (or to anything between that and
    maxlen) leaves the representations at the kept columns — and so the logits — unchanged:
    position ids are those of the full padding, padding keys are ignored."""
    model = make(kind)
    X = padded_batch([6, 2, 1, 4, 6])  # longest real sequence: 6 of maxlen 10
    with torch.no_grad():
        table = model.items.table()
        full = model.hidden(X)
        for T in (6, 7, 9):
            trimmed = model.hidden(X[:, -T:], table)
            assert trimmed.shape == (5, T, D)
            torch.testing.assert_close(trimmed, full[:, -T:], rtol=1e-5, atol=1e-5)
            torch.testing.assert_close(
                trimmed[:, -1] @ table.T, full[:, -1] @ table.T, rtol=1e-5, atol=1e-5
            )


@pytest.mark.parametrize(
    ("kind", "num_blocks"), [("sasrec", 0), ("sasrec", 1)] + [(k, 2) for k in SEQUENCE_MODELS]
)
def test_last_only_equals_the_last_position(kind, num_blocks):
    """``last_only=True`` (evaluation, rolled samples) gives exactly the last column of the
    full output, on a trimmed left-padded batch; for SASRec with any number of blocks."""
    model = make(kind, num_blocks=num_blocks)
    X = padded_batch([6, 2, 1, 4, 6])[:, -7:]
    with torch.no_grad():
        full = model.hidden(X)
        last = model.hidden(X, last_only=True)
    assert last.shape == (5, 1, D)
    torch.testing.assert_close(last, full[:, -1:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", SEQUENCE_MODELS)
def test_output_independent_of_batch_mates(kind):
    """A sequence's output does not depend on the other sequences in its batch (which
    decide how far the batch is trimmed): alone (trimmed to its length) == in a batch."""
    model = make(kind)
    X = padded_batch([3, 8, 5])
    with torch.no_grad():
        together = model.hidden(X)
        for row, n in enumerate([3, 8, 5]):
            alone = model.hidden(X[row : row + 1, -n:])
            torch.testing.assert_close(alone[0], together[row, -n:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind", SEQUENCE_MODELS)
def test_causal_later_items_do_not_change_earlier_outputs(kind):
    """Changing the item at column j changes no output at columns < j (and, for models that
    look at it, does change the output at j)."""
    model = make(kind)
    X = padded_batch([8, 8])
    j = 6
    Y = X.clone()
    Y[:, j] = (X[:, j] % V) + 1  # a different real item
    with torch.no_grad():
        a, b = model.hidden(X), model.hidden(Y)
    torch.testing.assert_close(a[:, :j], b[:, :j], rtol=0, atol=1e-6)
    assert (a[:, j] - b[:, j]).abs().max() > 1e-3


def test_sasrec_attention_reads_earlier_items():
    """With blocks, the last position depends on earlier items (attention is wired), while
    with num_blocks=0 (allowed) it depends on the last item and its position only."""
    X = padded_batch([5, 5], seed=1)
    Y = X.clone()
    Y[:, -3] = (X[:, -3] % V) + 1  # change an earlier item
    with torch.no_grad():
        two = make("sasrec", num_blocks=2)
        assert (two.hidden(X)[:, -1] - two.hidden(Y)[:, -1]).abs().max() > 1e-3
        zero = make("sasrec", num_blocks=0)
        assert len(zero.blocks) == 0
        torch.testing.assert_close(zero.hidden(X)[:, -1], zero.hidden(Y)[:, -1], rtol=0, atol=0)


def test_dropout_rate_scale_and_repeatability():
    """The CPU dropout drops a share p of the entries (here 0.3, within 4 standard errors),
    scales the kept ones by 1/(1-p) (p on a 2^-16 grid), passes the same mask to the gradient, repeats under
    the same seed, and is the identity in evaluation or at p = 0."""
    from seqnb.models.sasrec import dropout

    x = torch.ones(400, 500, requires_grad=True)
    torch.manual_seed(0)
    y = dropout(x, 0.3, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.3) < 4 * (0.3 * 0.7 / x.numel()) ** 0.5
    kept_scale = 65536 / (65536 - round(0.3 * 65536))  # p on a 2^-16 grid
    torch.testing.assert_close(y[y != 0], torch.full_like(y[y != 0], kept_scale))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())
    torch.manual_seed(0)
    assert torch.equal(dropout(x, 0.3, training=True), y)
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0, training=True) is x
    odd = dropout(torch.ones(3, 5, 7), 0.5, training=True)  # numel not a multiple of 4
    assert odd.shape == (3, 5, 7) and set(odd.unique().tolist()) <= {0.0, 2.0}


def test_sasrec_zero_blocks_via_config():
    """build_model accepts num_blocks=0 and the model scores a batch."""
    ds = from_sequences("tiny", [[1, 2, 3, 4], [2, 3, 4, 5], [5, 1, 2]])
    model = build_model(RunConfig(dataset="tiny", num_blocks=0, maxlen=4), ds).eval()
    h = model.hidden(torch.tensor([[0, 1, 2, 3]]))
    assert h.shape == (1, 4, 64) and torch.isfinite(h).all()


def test_sasrec_attention_weights_are_causal_and_skip_padding():
    """The returned attention weights put no mass on future columns or on padding keys, and
    each real query's weights sum to 1; the same hidden states as without weights."""
    model = make("sasrec", num_blocks=2, num_heads=2)
    X = padded_batch([4, 7])
    with torch.no_grad():
        h, attention = model.hidden(X, return_attention=True)
        torch.testing.assert_close(h, model.hidden(X), rtol=1e-5, atol=1e-5)
    assert len(attention) == 2
    future = torch.ones(MAXLEN, MAXLEN, dtype=torch.bool).triu(1)
    for w in attention:  # (B, heads, T, T)
        assert w.shape == (2, 2, MAXLEN, MAXLEN)
        assert w[..., future].abs().max() == 0
        for row, n in enumerate([4, 7]):
            real = w[row, :, MAXLEN - n :, :]  # real queries
            assert real[..., : MAXLEN - n].abs().max() == 0  # padding keys
            torch.testing.assert_close(real.sum(-1), torch.ones(2, n))


# ----- formulas ------------------------------------------------------------------------------
def test_zero_block_and_only_mt_are_the_last_item_embedding():
    """ZeroBlock and STAMP 'only m_t' represent position t by E[v_t] alone."""
    X = padded_batch([3, 6])
    for kind in ("zero_block", "stamp_only_mt"):
        model = make(kind)
        with torch.no_grad():
            torch.testing.assert_close(model.hidden(X), model.items.table()[X], rtol=0, atol=0)


def test_stamp_only_ht_formula():
    """STAMP 'only h_t': h_t = tanh(W_t m_t + b_t) with m_t the last item's embedding."""
    model = make("stamp_only_ht")
    X = padded_batch([3, 6])
    with torch.no_grad():
        E = model.items.table()
        expected = torch.tanh(E[X] @ model.mlp_t.weight.T + model.mlp_t.bias)
        torch.testing.assert_close(model.hidden(X), expected, rtol=1e-6, atol=1e-6)


def test_full_stamp_matches_paper_formula_loop():
    """Full STAMP at every real prefix end t, computed with explicit loops:
    m_t = x_t, m_s = mean(x_1..x_t), a_i = w0 . sigmoid(W1 x_i + W2 m_t + W3 m_s + b3),
    m_a = sum_i a_i x_i, h_s = tanh(Ws m_a + bs), h_t = tanh(Wt m_t + bt), out = h_s * h_t."""
    model = make("stamp")
    X = padded_batch([4, 7], seed=2)
    with torch.no_grad():
        E = model.items.table().double()
        W1, W2 = model.w1.weight.double(), model.w2.weight.double()
        W3, b3 = model.w3.weight.double(), model.w3.bias.double()
        w0 = model.w0.weight.double()[0]
        Ws, bs = model.mlp_s.weight.double(), model.mlp_s.bias.double()
        Wt, bt = model.mlp_t.weight.double(), model.mlp_t.bias.double()
        got = model.hidden(X)
        for row in range(X.shape[0]):
            items = [int(v) for v in X[row] if v > 0]
            offset = MAXLEN - len(items)
            for t in range(len(items)):
                xs = [E[v] for v in items[: t + 1]]
                m_t = xs[-1]
                m_s = sum(xs) / len(xs)
                m_a = sum(
                    (w0 @ torch.sigmoid(W1 @ x_i + W2 @ m_t + W3 @ m_s + b3)) * x_i for x_i in xs
                )
                h_s = torch.tanh(Ws @ m_a + bs)
                h_t = torch.tanh(Wt @ m_t + bt)
                torch.testing.assert_close(
                    got[row, offset + t].double(), h_s * h_t, rtol=1e-5, atol=1e-6
                )


def test_stamp_rejects_unknown_variant():
    """An unknown STAMP variant is refused, naming the allowed ones."""
    with pytest.raises(ValueError, match="only_ht"):
        STAMP(ItemTable(5, 4), "only_ms")


def test_item_table_padding_row_is_zero_and_gets_no_gradient():
    """Row 0 (padding) of the plain table is zero and its parameter gets no gradient."""
    table = ItemTable(6, 4)
    out = table.table()
    assert out[0].abs().max() == 0 and out[1:].abs().min() >= 0
    (out * torch.randn_like(out)).sum().backward()
    assert table.weight.grad[0].abs().max() == 0
    assert table.weight.grad[1:].abs().min() > 0


def test_mf_bpr_user_vectors():
    """MF-BPR: the user vector is the user's row; scores are its dot products with items."""
    model = MFBPR(4, ItemTable(7, 3))
    users = torch.tensor([2, 0])
    torch.testing.assert_close(model.user_vectors(users), model.users.weight[users])


def test_build_model_names():
    """Each configuration model name builds the matching class (and STAMP variant)."""
    ds = from_sequences("tiny", [[1, 2, 3, 4], [2, 3, 4, 5], [5, 1, 2]])
    expected = {
        "sasrec": (SASRec, None),
        "zero_block": (ZeroBlock, None),
        "stamp": (STAMP, "full"),
        "stamp_only_ht": (STAMP, "only_ht"),
        "stamp_only_mt": (STAMP, "only_mt"),
        "mf_bpr": (MFBPR, None),
    }
    for name, (cls, variant) in expected.items():
        model = build_model(RunConfig(dataset="tiny", model=name, embedding_dim=8), ds)
        assert type(model) is cls
        if variant:
            assert model.variant == variant
        assert type(model.items) is ItemTable


# ----- neighbour-averaged embeddings (Chapter 6b) ----------------------------------------------
# Training sequences of a tiny graph with 8 items. Item 7 co-occurs only with item 1; item 8
# never occurs in training.
GRAPH_TRAIN = [[1, 2, 3], [2, 3, 4], [1, 5], [3, 5, 6], [1, 7], [2, 2, 6]]
GRAPH_ITEMS = 8


def dense_reference(train, num_items, band_items, self_loops, E):
    """Dense NumPy: A = R^T R (R binary users x items), optional zero diagonal, rows
    normalised; band rows replaced by A_norm E. Returns (table, effective matrix M) with
    table = M @ E_masked, where E_masked has row 0 zeroed."""
    R = np.zeros((len(train), num_items + 1))
    for u, seq in enumerate(train):
        R[u, seq] = 1.0
    A = R.T @ R
    if not self_loops:
        np.fill_diagonal(A, 0.0)
    sums = A.sum(1, keepdims=True)
    A_norm = np.divide(A, sums, out=np.zeros_like(A), where=sums > 0)
    M = np.eye(num_items + 1)
    M[0, 0] = 0.0  # padding row
    for i in band_items:
        M[i] = A_norm[i]
    return M @ E, M


def frequency(train, num_items):
    return np.bincount(np.concatenate([np.asarray(s) for s in train]), minlength=num_items + 1)


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("band", [(0, 1), (1, 2), (2, 3)])
def test_neighbour_table_equals_dense_average(self_loops, band):
    """Band items get exactly A_norm E (A = R^T R, with/without the diagonal); items outside
    keep their own rows; row 0 stays zero; an item never trained (band includes 0) gets a
    zero vector."""
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)
    torch.manual_seed(0)
    table = NeighbourAveragedTable(GRAPH_ITEMS, 5, freq, band, train, self_loops)
    band_items = [i for i in range(1, GRAPH_ITEMS + 1) if band[0] <= freq[i] <= band[1]]
    assert sorted(table.band_items.tolist()) == band_items
    E = table.weight.detach().double().numpy().copy()
    E[0] = 0.0
    expected, _ = dense_reference(GRAPH_TRAIN, GRAPH_ITEMS, band_items, self_loops, E)
    got = table.table().detach().double().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert not got[0].any()
    outside = [i for i in range(1, GRAPH_ITEMS + 1) if i not in band_items]
    np.testing.assert_array_equal(got[outside], E[outside])
    if band[0] == 0:
        assert freq[8] == 0 and 8 in band_items and not got[8].any()


def test_self_term_changes_nothing_for_never_trained_items():
    """Band [0, 0] (item 8 only): its row of A is empty with or without the diagonal, so the
    two settings give the same table, the reason RunConfig makes them one run."""
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)
    tables = []
    for self_loops in (True, False):
        torch.manual_seed(0)
        table = NeighbourAveragedTable(GRAPH_ITEMS, 4, freq, (0, 0), train, self_loops)
        assert table.band_items.tolist() == [8]
        tables.append(table.table().detach())
    torch.testing.assert_close(tables[0], tables[1], rtol=0, atol=0)
    assert not tables[0][8].any()


def test_repeated_items_count_once_in_the_graph():
    """R is binary: a user who repeats an item (user 5: [2, 2, 6]) adds 1, not 2, to A."""
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)  # item 6 has frequency 2
    table = NeighbourAveragedTable(GRAPH_ITEMS, 3, freq, (2, 2), train, self_loops=True)
    band = table.band_items.numpy()
    row = band.tolist().index(6)
    A = torch.from_numpy(cooccurrence_band(train, GRAPH_ITEMS, band).toarray()[row]).float()
    # users of 6: [3, 5, 6] and [2, 2, 6] -> A[6] counts 2,3,5 once each and 6 twice
    expected = torch.zeros(GRAPH_ITEMS + 1)
    expected[[2, 3, 5]] = 1.0
    expected[6] = 2.0
    torch.testing.assert_close(A, expected / 5.0)


@pytest.mark.parametrize("self_loops", [True, False])
def test_neighbour_table_gradient_only_through_the_average(self_loops):
    """d loss / d E = M^T G, with M the dense effective matrix: a band item's own parameter
    row is reached only through the averages that include it. Item 7 (band, frequency 1,
    co-occurring only with item 1 which is outside the band) is nobody's band neighbour, so
    without self loops its parameters get exactly zero gradient."""
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)
    table = NeighbourAveragedTable(GRAPH_ITEMS, 4, freq, (0, 1), train, self_loops)
    band_items = table.band_items.tolist()
    assert 7 in band_items and 1 not in band_items
    out = table.table()
    G = torch.randn_like(out)
    (out * G).sum().backward()
    _, M = dense_reference(GRAPH_TRAIN, GRAPH_ITEMS, band_items, self_loops, np.zeros((9, 4)))
    M[:, 0] = 0.0  # parameter row 0 is masked before anything else
    expected = M.T @ G.double().numpy()
    np.testing.assert_allclose(table.weight.grad.double().numpy(), expected, rtol=1e-5, atol=1e-6)
    grad7 = table.weight.grad[7]
    if self_loops:
        assert grad7.abs().max() > 0  # only via its own average (A_norm[7, 7] = 1/2)
    else:
        assert grad7.abs().max() == 0


def test_neighbour_table_empty_band_is_plain_table():
    """A band no item falls into leaves the table equal to the plain one."""
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)
    table = NeighbourAveragedTable(GRAPH_ITEMS, 3, freq, (100, 200), train)
    assert len(table.band_items) == 0
    torch.testing.assert_close(table.table(), ItemTable.table(table))


def test_build_model_with_smooth_band_uses_training_frequency():
    """``smooth_band`` builds a neighbour-averaged table whose band is chosen by the data
    set's training frequency, for both SASRec and MF-BPR."""
    ds = from_sequences("graph", [s + [1, 2] for s in GRAPH_TRAIN] + [[8, 1, 2]])
    # training sequences are exactly GRAPH_TRAIN plus [8]
    for name in ("sasrec", "mf_bpr"):
        config = RunConfig(dataset="graph", model=name, embedding_dim=8, smooth_band=(1, 1))
        model = build_model(config, ds)
        assert isinstance(model.items, NeighbourAveragedTable)
        expected = [i for i in range(1, ds.num_items + 1) if ds.item_frequency[i] == 1]
        assert sorted(model.items.band_items.tolist()) == expected


def test_binary_matrix_product_and_gradient_match_dense():
    """BinaryMatrix @ X equals the dense product, and its gradient is M^T G (empty rows and
    columns included)."""
    import scipy.sparse as sp

    from seqnb.models.embeddings import BinaryMatrix

    rng = np.random.default_rng(0)
    M = (rng.random((7, 9)) < 0.3).astype(np.float64)
    M[2] = 0.0  # an empty row
    M[:, 4] = 0.0  # an empty column
    X = torch.randn(9, 5, dtype=torch.float32, requires_grad=True)
    out = BinaryMatrix(sp.csr_matrix(M)) @ X
    expected = torch.from_numpy(M).float() @ X.detach()
    torch.testing.assert_close(out, expected)
    G = torch.randn_like(out)
    (out * G).sum().backward()
    torch.testing.assert_close(X.grad, torch.from_numpy(M.T).float() @ G)
    with pytest.raises(ValueError, match="0/1"):
        BinaryMatrix(sp.csr_matrix(M * 2))


@pytest.mark.parametrize("self_loops", [True, False])
@pytest.mark.parametrize("band", [(0, 1), (1, 2), (0, 100)])
@pytest.mark.parametrize("ids", [[3, 0, 7, 8, 3, 1, 6, 2, 5], [7, 0, 8, 7]])
@pytest.mark.parametrize("strategy", ["gather, scatter back", "gather, sum back", "all users"])
def test_table_rows_equal_the_whole_table_rows(self_loops, band, ids, strategy, monkeypatch):
    """``rows(ids)`` (a batch's rows only) equals ``table()[ids]`` in value and gradient,
    for repeated ids, padding, items outside the band and an item never trained, whichever
    way the users' sums are formed: gathered from their items, with the gradient scattered
    back entry by entry or summed over all of R^T, or from every user's sum."""
    gather, scatter = {"gather, scatter back": (math.inf, math.inf),
                       "gather, sum back": (math.inf, 0.0),
                       "all users": (0.0, 0.0)}[strategy]
    monkeypatch.setattr(embeddings, "GATHER_SHARE", gather)
    monkeypatch.setattr(embeddings, "SCATTER_SHARE", scatter)
    train = [np.array(s) for s in GRAPH_TRAIN]
    freq = frequency(train, GRAPH_ITEMS)
    torch.manual_seed(1)
    table = NeighbourAveragedTable(GRAPH_ITEMS, 4, freq, band, train, self_loops)
    ids = torch.tensor(ids)
    G = torch.randn(len(ids), 4)
    (table.table()[ids] * G).sum().backward()
    whole_grad = table.weight.grad.clone()
    table.weight.grad = None
    got = table.rows(ids)
    torch.testing.assert_close(got, table.table()[ids].detach())
    (got * G).sum().backward()
    torch.testing.assert_close(table.weight.grad, whole_grad)
    plain = ItemTable(GRAPH_ITEMS, 4)
    torch.testing.assert_close(plain.rows(ids), plain.table()[ids])
