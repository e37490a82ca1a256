"""seqnb.train: samples, batching, negatives, evaluation against brute force, and proof on
planted patterns that every model learns what it should (CPU, seconds each)."""

from __future__ import annotations

import platform
import resource

import numpy as np
import pytest
import torch

from seqnb.config import RunConfig
from seqnb.data.dataset import from_sequences
from seqnb.models import build_model
from seqnb.sequences import left_pad
from seqnb.train import (
    Evaluator,
    NegativeSampler,
    length_sorted_batches,
    retain_freed_memory,
    train,
    training_samples,
)

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")


def config(dataset, **changes) -> RunConfig:
    """A small, fast configuration for generated data (12-item sequences, 60 items)."""
    base = dict(
        dataset=dataset.name,
        maxlen=12,
        num_blocks=1,
        num_heads=1,
        embedding_dim=32,
        dropout=0.1,
        epochs=20,
        batch_size=64,
        lr=1e-2,
        weight_decay=0.0,
    )
    base.update(changes)
    base.setdefault("eval_every", base["epochs"])
    return RunConfig(**base)


def fit(dataset, checkpoint_dir=None, device="cpu", **changes):
    return train(
        config(dataset, **changes),
        dataset,
        device=device,
        progress=False,
        checkpoint_dir=checkpoint_dir,
    )


# ----- data sets -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def first_order(planted):
    """Next item = f(current) with 5% noise; 300 users, 60 items (noise makes repeats)."""
    return from_sequences("first_order", planted["first_order"](noise=0.05, seed=0))


@pytest.fixture(scope="module")
def second_order(planted):
    """x[t+1] = g(x[t-1]): the last item alone carries no signal about the next."""
    return from_sequences("second_order", planted["second_order"](seed=1))


@pytest.fixture(scope="module")
def random_lengths():
    """250 users with random sequences of 3..15 items over 40 items (repeats allowed)."""
    rng = np.random.default_rng(5)
    seqs = [rng.integers(1, 41, size=rng.integers(3, 16)).tolist() for _ in range(250)]
    return from_sequences("random_lengths", seqs)


# ----- samples, batches, negatives -------------------------------------------------------------
def test_training_samples_all_positions_by_hand():
    """all_positions: one row per user with >= 2 training items; input = training sequence
    without its last item, target = the next item at every position (last maxlen kept)."""
    ds = from_sequences("hand", [[1, 2, 3, 4, 5, 6], [7, 8, 9], [1, 3, 5, 7, 9]])
    # training sequences: [1,2,3,4], [7] (too short), [1,3,5]
    inputs, targets, users = training_samples(RunConfig(dataset="hand", maxlen=4), ds)
    assert users.tolist() == [0, 2]
    assert inputs.tolist() == [[0, 1, 2, 3], [0, 0, 1, 3]]
    assert targets.tolist() == [[0, 2, 3, 4], [0, 0, 3, 5]]
    inputs, targets, _ = training_samples(RunConfig(dataset="hand", maxlen=2), ds)
    assert inputs.tolist() == [[2, 3], [1, 3]]
    assert targets.tolist() == [[3, 4], [3, 5]]


def test_training_samples_rolled_by_hand():
    """rolled: Chapter 1's samples from the training sequence, target in the last column
    only (0 = no loss elsewhere), each sample tagged with its user."""
    ds = from_sequences("hand", [[1, 2, 3, 4, 5, 6, 7], [8, 9, 1, 2]])
    # training sequences: [1,2,3,4,5], [8,9]
    c = RunConfig(dataset="hand", maxlen=2, layout="rolled", rolled_window=4)
    inputs, targets, users = training_samples(c, ds)
    assert inputs.tolist() == [[0, 2], [2, 3], [3, 4], [0, 8]]
    assert targets.tolist() == [[0, 3], [0, 4], [0, 5], [0, 9]]
    assert users.tolist() == [0, 0, 0, 1]


def test_length_sorted_batches_partition_and_group_lengths():
    """Batches cover every sample exactly once, are at most batch_size long, group similar
    lengths (within one block, batches are consecutive runs of the sorted lengths) and are
    reproducible from the generator's seed."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=1000)
    batches = length_sorted_batches(lengths, 32, np.random.default_rng(1))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    assert max(len(b) for b in batches) <= 32
    # 1000 samples < 64 batches of 32: one block, so batches tile the sorted order
    by_start = sorted(batches, key=lambda b: (lengths[b].min(), lengths[b].max()))
    joined = np.concatenate([np.sort(lengths[b]) for b in by_start])
    assert np.all(np.diff(joined) >= 0)
    again = length_sorted_batches(lengths, 32, np.random.default_rng(1))
    assert all(np.array_equal(a, b) for a, b in zip(batches, again, strict=True))


def test_negative_sampler_avoids_training_items():
    """Negatives lie in 1..V, almost never hit the user's training items (rejection rounds
    leave at most ~p^5 where p is the seen share), cover the unseen items, and are seeded."""
    rng = np.random.default_rng(0)
    V = 20
    seqs = [rng.choice(np.arange(1, V + 1), size=8, replace=False).tolist() for _ in range(50)]
    ds = from_sequences("neg", seqs)  # 6 training items per user: seen share p = 0.3
    sampler = NegativeSampler(ds, CPU)
    users = torch.arange(50).repeat_interleave(40)
    neg = sampler.sample(users, 5, torch.Generator().manual_seed(0))
    assert neg.shape == (2000, 5) and neg.min() >= 1 and neg.max() <= ds.num_items
    seen = [set(s.tolist()) for s in ds.train_sequences]
    bad = sum(int(x) in seen[int(u)] for u, row in zip(users, neg, strict=True) for x in row)
    assert bad / neg.numel() < 0.01  # untreated it would be 0.3
    assert len(torch.unique(neg)) == ds.num_items  # every item is somebody's negative
    again = sampler.sample(users, 5, torch.Generator().manual_seed(0))
    assert torch.equal(neg, again)


# ----- evaluation against brute force ------------------------------------------------------------
def brute_force_ranks(scores: np.ndarray, targets: np.ndarray, seen) -> tuple[list, list]:
    """Loop reference: rank among items 1..V (0 is padding), seen items removed when given,
    ties against the target. Also returns whether each row has a near tie (gap below 1e-5
    of the row's score scale), where float32 rounding could legitimately flip a comparison."""
    ranks, near_tie = [], []
    for u, t in enumerate(targets):
        rank, close = 1, False
        tol = 1e-5 * np.abs(scores[u]).max()
        for item in range(1, scores.shape[1]):
            if item == t or (seen is not None and item in seen[u]):
                continue
            rank += scores[u, item] >= scores[u, t]
            close |= abs(scores[u, item] - scores[u, t]) < tol
        ranks.append(rank)
        near_tie.append(close)
    return ranks, near_tie


@pytest.mark.parametrize("model_name", ["sasrec", "stamp", "mf_bpr"])
@pytest.mark.parametrize("split", ["valid", "test"])
@pytest.mark.parametrize("remove_seen", [True, False])
def test_evaluator_matches_brute_force(random_lengths, model_name, split, remove_seen):
    """Evaluator's batched, trimmed, masked ranking equals dense scores from the untrimmed
    inputs ranked by a Python loop, with the items seen before the target removed
    (training items for validation, training + validation items for test)."""
    ds = random_lengths
    c = config(ds, model=model_name, maxlen=8, num_blocks=2, embedding_dim=16)
    torch.manual_seed(0)
    model = build_model(c, ds).eval()
    maxlen = 1 if model_name == "mf_bpr" else c.maxlen
    got = Evaluator(ds, split, maxlen, remove_seen, CPU).ranks(model)
    with torch.no_grad():
        table = model.items.table()
        if model_name == "mf_bpr":
            h = model.user_vectors(torch.arange(ds.num_users))
        else:
            X = torch.from_numpy(left_pad(ds.inputs(split), maxlen))
            h = model.hidden(X)[:, -1]
        scores = (h @ table.T).double().numpy()
    seen = [set(s.tolist()) for s in ds.inputs(split)] if remove_seen else None
    expected, near_tie = brute_force_ranks(scores, ds.targets(split), seen)
    checked = ~np.array(near_tie)
    assert checked.mean() > 0.97
    np.testing.assert_array_equal(got.numpy()[checked], np.array(expected)[checked])


@pytest.mark.parametrize("remove_seen", [True, False])
def test_evaluator_ties_rank_target_last(random_lengths, remove_seen):
    """A model scoring every item the same (all-zero table) ranks each target last among the
    candidates: V items (padding never counts), minus the removed seen items."""
    ds = random_lengths
    model = build_model(config(ds, model="zero_block"), ds).eval()
    with torch.no_grad():
        model.items.weight.zero_()
    got = Evaluator(ds, "test", 12, remove_seen, CPU).ranks(model).numpy()
    V = ds.num_items
    if remove_seen:
        expected = [
            V - len(set(s.tolist()) - {t})
            for s, t in zip(ds.inputs("test"), ds.test_targets, strict=True)
        ]
    else:
        expected = [V] * ds.num_users
    assert got.tolist() == expected


# ----- planted patterns: the models learn what they should ---------------------------------------
@pytest.mark.parametrize(
    "changes",
    [
        dict(model="sasrec"),
        dict(model="zero_block"),
        dict(model="stamp"),
        dict(model="stamp_only_ht"),
        dict(model="stamp_only_mt"),
        dict(model="sasrec", layout="rolled", batch_size=256, epochs=15),
        dict(model="sasrec", loss="bce"),
        dict(model="zero_block", loss="bce"),
        dict(model="sasrec", precision="bf16"),
    ],
    ids=[
        "sasrec",
        "zero_block",
        "stamp",
        "only_ht",
        "only_mt",
        "rolled",
        "bce",
        "zero_bce",
        "bf16",
    ],
)
def test_first_order_pattern_is_learned(first_order, changes):
    """next = f(current) + 5% noise: every sequence model (and the rolled layout, and the
    BCE loss, and bf16 autocast) puts the held-out last item in its top 10 for > 80% of users
    (the noise caps it near 95%; random guessing gives ~17%)."""
    out = fit(first_order, **changes)
    assert out.test["HR@10"] > 0.8, out.test


def test_second_order_pattern_needs_attention(second_order):
    """x[t+1] = g(x[t-1]): SASRec with 1 and 2 blocks must find the item two steps back;
    ZeroBlock and SASRec without blocks see only the last item and stay near chance
    (10/60). Margin required: > 0.5 HR@10."""
    hr = {
        "sasrec_1": fit(second_order, num_blocks=1).test["HR@10"],
        "sasrec_2": fit(second_order, num_blocks=2).test["HR@10"],
        "sasrec_0": fit(second_order, num_blocks=0).test["HR@10"],
        "zero_block": fit(second_order, model="zero_block").test["HR@10"],
    }
    assert hr["sasrec_1"] > 0.9 and hr["sasrec_2"] > 0.9, hr
    assert hr["zero_block"] < 0.35 and hr["sasrec_0"] < 0.35, hr
    assert min(hr["sasrec_1"], hr["sasrec_2"]) - hr["zero_block"] > 0.5, hr


def test_mf_bpr_recovers_user_clusters(planted):
    """Users of cluster c only consume items of block c (8 blocks of 10 items). MF-BPR puts
    the held-out item in the top 10 for > 90% of users (random: ~10/75), and its learned
    item embeddings are more similar within a block than across blocks."""
    seqs, _ = planted["clustered_users"](seed=0)
    ds = from_sequences("clusters", seqs)
    out = fit(ds, model="mf_bpr", loss="bpr", epochs=20, batch_size=128)
    assert out.test["HR@10"] > 0.9, out.test
    E = out.best_state["items.weight"][1:].numpy()
    E = E / np.linalg.norm(E, axis=1, keepdims=True)
    block = np.array([int(ds.original_item_ids[i]) - 1 for i in range(1, ds.num_items + 1)]) // 10
    cos = E @ E.T
    same = block[:, None] == block[None, :]
    np.fill_diagonal(same, False)
    different = block[:, None] != block[None, :]
    assert cos[same].mean() - cos[different].mean() > 0.3


def test_neighbour_averaged_training_runs(first_order):
    """SASRec with a frequency band of neighbour-averaged rows trains end to end (sparse
    average inside autograd) and still learns the first-order pattern."""
    lo, hi = np.percentile(first_order.item_frequency[1:], [0, 30]).astype(int)
    out = fit(first_order, smooth_band=(int(lo), int(hi)), epochs=20)
    assert out.test["HR@10"] > 0.5, out.test


# ----- repeatability and resuming ----------------------------------------------------------------
def test_same_seed_same_run_and_other_seed_differs(first_order):
    """On CPU a run is a function of its configuration: same seed -> identical validation
    curve, test metrics, per-user ranks and weights (dropout and BCE negatives included);
    another seed gives a different run."""
    kw = dict(loss="bce", dropout=0.2, epochs=4, eval_every=2)
    a, b = fit(first_order, **kw), fit(first_order, **kw)
    c = fit(first_order, seed=1, **kw)
    assert a.valid_curve == b.valid_curve and a.test == b.test
    assert a.extra_tests == b.extra_tests
    assert np.array_equal(a.arrays["test_ranks"], b.arrays["test_ranks"])
    assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in a.best_state)
    assert a.valid_curve != c.valid_curve
    assert not torch.equal(a.best_state["items.weight"], c.best_state["items.weight"])


@pytest.mark.parametrize("device", [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                  reason="no CUDA device")),
])
def test_interrupted_run_resumes_to_the_same_result(first_order, tmp_path, monkeypatch, device):
    """A run killed mid-epoch (KeyboardInterrupt raised from an optimizer step in the middle
    of epoch 5 of 6) restarts from its last validation checkpoint (epoch 4), trains only
    epochs 5-6, and ends exactly like an uninterrupted run: same curve, best epoch, test
    metrics and weights. (Exact because model, optimizer and all the RNGs — NumPy batch
    order, generator for negatives, torch global (and CUDA's) for dropout — are
    checkpointed.) A further call with the finished checkpoint trains nothing and returns
    the same result. On CUDA, whose atomic adds make two runs differ in the last bits, the
    resume itself is checked (from a checkpoint on the CPU) and the result to a tolerance."""
    exact = device == "cpu"
    steps = {"n": 0, "stop_at": -1}
    original_step = torch.optim.Adam.step

    def counting_step(self, *args, **kwargs):
        steps["n"] += 1
        if steps["n"] == steps["stop_at"]:
            raise KeyboardInterrupt
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", counting_step)
    kw = dict(loss="bce", dropout=0.2, epochs=6, eval_every=2, device=device)
    reference = fit(first_order, **kw)
    per_epoch, rest = divmod(steps["n"], 6)
    assert rest == 0 and per_epoch >= 3

    steps.update(n=0, stop_at=4 * per_epoch + 2)  # the 2nd step of epoch 5
    with pytest.raises(KeyboardInterrupt):
        fit(first_order, checkpoint_dir=tmp_path, **kw)
    (checkpoint,) = tmp_path.glob("*.resume.pt")
    assert torch.load(checkpoint, weights_only=False)["epoch"] == 4

    steps.update(n=0, stop_at=-1)
    resumed = fit(first_order, checkpoint_dir=tmp_path, **kw)
    assert steps["n"] == 2 * per_epoch  # epochs 5 and 6 only
    assert [p["epoch"] for p in resumed.valid_curve] == [2, 4, 6]
    if exact:
        assert resumed.valid_curve == reference.valid_curve
        assert resumed.best_epoch == reference.best_epoch and resumed.test == reference.test
        assert all(torch.equal(resumed.best_state[k], reference.best_state[k])
                   for k in resumed.best_state)
    else:
        assert resumed.test["NDCG@10"] == pytest.approx(reference.test["NDCG@10"], abs=0.02)
    # who trained which epochs: the killed process up to its checkpoint, then this one
    assert [(g["first_epoch"], g["last_epoch"]) for g in reference.segments] == [(1, 6)]
    assert [(g["first_epoch"], g["last_epoch"]) for g in resumed.segments] == [(1, 4), (5, 6)]
    assert all(g["wall_seconds"] >= 0 for g in resumed.segments)
    assert all(g["device"].startswith("cpu") == exact for g in resumed.segments)

    steps["n"] = 0
    again = fit(first_order, checkpoint_dir=tmp_path, **kw)
    assert steps["n"] == 0 and again.test == resumed.test


# ----- removing seen items -----------------------------------------------------------------------
def test_remove_seen_excludes_the_items_a_model_ranks_first(planted):
    """ZeroBlock scores the last input item itself highest (e.e = |e|^2). On a data set
    without repeats seen items are removed by default, so the true next item comes first;
    with remove_seen=False the seen last item takes rank 1 and HR@1 collapses."""
    ds = from_sequences("no_repeats", planted["first_order"](noise=0.0, seed=2))
    assert not ds.has_repeats
    out = fit(ds, model="zero_block")
    assert out.extras["remove_seen"] is True
    assert out.test["HR@1"] > 0.8, out.test
    model = build_model(config(ds, model="zero_block"), ds)
    model.load_state_dict(out.best_state)
    model.eval()
    with torch.no_grad():
        table = model.items.table()
        last = torch.tensor([s[-1] for s in ds.inputs("test")])
        top = (table[last] @ table.T)[:, 1:].argmax(1) + 1
    assert (top == last).float().mean() > 0.8  # the seen item would be ranked first
    kept = Evaluator(ds, "test", 12, False, CPU).ranks(model)
    removed = Evaluator(ds, "test", 12, True, CPU).ranks(model)
    assert (kept >= removed).all()
    assert (kept == 1).float().mean() < 0.2 < 0.8 < (removed == 1).float().mean()


def test_repeat_data_keeps_seen_items_by_default(planted):
    """Yelp-like data with repeat interactions: by default nothing is removed from the
    ranking (Dataset.has_repeats); the switch still forces removal."""
    seqs = [[1, 2, 1, 3, 1], [2, 3, 2, 4, 5], [4, 5, 4, 1, 2]] * 5
    ds = from_sequences("repeats", seqs)
    assert ds.has_repeats
    assert fit(ds, epochs=1).extras["remove_seen"] is False
    assert fit(ds, epochs=1, remove_seen=True).extras["remove_seen"] is True


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_retained_heap_reuses_freed_tensors_without_page_faults():
    """Tensors of a few MiB allocated and freed again and again (what a training step does)
    come back from the heap: the kernel's page-fault counter stays still. (With glibc's
    defaults ~48,000 of the pattern's ~61,000 pages fault on every repetition.)"""

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    def churn() -> int:
        before = faults()
        for _ in range(10):
            tensors = [torch.empty(n * 262_144).fill_(1.0) for n in (1, 4, 8, 2, 6, 3)]  # MiB
            del tensors
        return faults() - before

    assert retain_freed_memory() and retain_freed_memory()  # idempotent
    churn()  # the heap grows to the pattern's peak once
    pages = 10 * 24 * 2**20 // resource.getpagesize()
    assert churn() < 0.02 * pages
