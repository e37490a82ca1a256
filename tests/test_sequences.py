"""seqnb.sequences on hand-worked examples: padding, rolled samples, shuffles, uniqueness."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from seqnb.sequences import (
    left_pad,
    rolled_samples,
    shuffle_all_but_last,
    shuffled_inputs,
    unique_input_share,
)


def arr(*items: int) -> np.ndarray:
    return np.array(items, dtype=np.int64)


# ----- left padding --------------------------------------------------------------------------
def test_left_pad_keeps_last_items_right_aligned():
    """Each row holds the sequence's last maxlen items, right-aligned, 0 on the left."""
    got = left_pad([arr(1, 2, 3), arr(4), arr()], maxlen=2)
    assert got.dtype == np.int64
    assert got.tolist() == [[2, 3], [0, 4], [0, 0]]
    assert left_pad([arr(5, 6)], maxlen=4).tolist() == [[0, 0, 5, 6]]


def test_left_pad_rejects_nonpositive_maxlen():
    """maxlen must be at least 1."""
    with pytest.raises(ValueError, match="maxlen"):
        left_pad([arr(1)], maxlen=0)


# ----- rolled samples (Chapter 1) ------------------------------------------------------------
def test_rolled_samples_spec_example():
    """SPEC's example: [v1..v5], maxlen=2 -> [v1]->v2, [v1,v2]->v3, [v2,v3]->v4, [v3,v4]->v5."""
    inputs, targets, users = rolled_samples([arr(1, 2, 3, 4, 5)], maxlen=2)
    assert inputs.tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    assert targets.tolist() == [2, 3, 4, 5]
    assert users.tolist() == [0, 0, 0, 0]


def test_rolled_samples_window_and_users():
    """Only the last ``window`` items of a training sequence give samples; every sample
    carries its user row; a 1-item sequence gives none."""
    seqs = [arr(1, 2, 3, 4, 5, 6, 7), arr(8), arr(9, 10)]
    inputs, targets, users = rolled_samples(seqs, maxlen=2, window=4)
    # user 0 keeps [4, 5, 6, 7]; user 1 nothing; user 2 [9, 10]
    assert inputs.tolist() == [[0, 4], [4, 5], [5, 6], [0, 9]]
    assert targets.tolist() == [5, 6, 7, 10]
    assert users.tolist() == [0, 0, 0, 2]


def test_rolled_samples_same_targets_for_every_maxlen():
    """Changing maxlen changes the context, never the set of (user, target) samples; the
    input is always the last maxlen items before the target."""
    rng = np.random.default_rng(0)
    seqs = [rng.integers(1, 50, size=n) for n in (3, 9, 20, 1, 12)]
    ref_targets, ref_users = None, None
    for maxlen in (1, 2, 5, 50):
        inputs, targets, users = rolled_samples(seqs, maxlen=maxlen, window=10)
        assert inputs.shape == (len(targets), maxlen)
        if ref_targets is None:
            ref_targets, ref_users = targets, users
        assert np.array_equal(targets, ref_targets) and np.array_equal(users, ref_users)
        # hand reconstruction of every sample
        row = 0
        for u, s in enumerate(seqs):
            s = s[-10:]
            for k in range(1, len(s)):
                expect = left_pad([s[max(0, k - maxlen) : k]], maxlen)[0]
                assert np.array_equal(inputs[row], expect) and targets[row] == s[k]
                assert users[row] == u
                row += 1
        assert row == len(targets)


# ----- shuffles (Chapter 4) ------------------------------------------------------------------
def test_shuffle_all_but_last_keeps_last_and_multiset():
    """The last item stays last, the rest is a permutation of the original prefix, the
    input is not modified, and short sequences (<= 2 items) come back unchanged."""
    seq = arr(5, 3, 9, 1, 7, 2, 8)
    before = seq.copy()
    out = shuffle_all_but_last(seq, np.random.default_rng(0))
    assert out[-1] == 8
    assert Counter(out[:-1].tolist()) == Counter(seq[:-1].tolist())
    assert np.array_equal(seq, before)
    for short in (arr(4), arr(4, 6)):
        assert shuffle_all_but_last(short, np.random.default_rng(0)).tolist() == short.tolist()


def test_shuffle_all_but_last_is_seeded():
    """Same seed, same permutation; different seeds give different permutations."""
    seq = np.arange(1, 21)
    a = shuffle_all_but_last(seq, np.random.default_rng(3))
    b = shuffle_all_but_last(seq, np.random.default_rng(3))
    assert np.array_equal(a, b)
    outs = {tuple(shuffle_all_but_last(seq, np.random.default_rng(s))) for s in range(5)}
    assert len(outs) == 5
    assert any(not np.array_equal(o, seq) for o in map(np.array, outs))


def test_shuffle_protocols_on_a_long_history():
    """History 1..10, maxlen 4. 'window' permutes within the last 4 items: always
    {7, 8, 9} then 10. 'history' permutes all 9 earlier items and then cuts, so older items
    come into view (for some seed) — yet the last item is still 10."""
    hist = np.arange(1, 11)
    older_seen = False
    for seed in range(10):
        (w,) = shuffled_inputs([hist], maxlen=4, protocol="window", seed=seed)
        (h,) = shuffled_inputs([hist], maxlen=4, protocol="history", seed=seed)
        assert len(w) == 4 and len(h) == 4
        assert w[-1] == 10 and sorted(w[:-1].tolist()) == [7, 8, 9]
        assert (
            h[-1] == 10 and len(set(h.tolist())) == 4 and set(h[:-1].tolist()) <= set(range(1, 10))
        )
        older_seen |= bool((h[:-1] < 7).any())
    assert older_seen


def test_shuffle_protocols_agree_on_short_histories_and_are_seeded():
    """A history no longer than maxlen: both protocols only reorder it (same multiset, last
    item fixed); each protocol is deterministic in its seed; unknown protocols are refused."""
    seqs = [arr(4, 2, 8), arr(1, 9, 3, 5)]
    for protocol in ("window", "history"):
        a = shuffled_inputs(seqs, maxlen=4, protocol=protocol, seed=1)
        b = shuffled_inputs(seqs, maxlen=4, protocol=protocol, seed=1)
        for s, x, y in zip(seqs, a, b, strict=True):
            assert np.array_equal(x, y)
            assert x[-1] == s[-1] and sorted(x.tolist()) == sorted(s.tolist())
    with pytest.raises(ValueError, match="protocol"):
        shuffled_inputs(seqs, maxlen=4, protocol="everything", seed=0)


# ----- identifiability (Chapter 1a) ----------------------------------------------------------
def test_unique_input_share_by_hand():
    """Truncated inputs [1,2,3], [4,2,3], [5,6], [6]:
    maxlen 1 -> (3),(3),(6),(6): none unique; maxlen 2 -> (2,3) twice, (5,6), (6): 2 of 4;
    maxlen 3 -> all different: 4 of 4."""
    seqs = [arr(1, 2, 3), arr(4, 2, 3), arr(5, 6), arr(6)]
    assert unique_input_share(seqs, 1) == 0.0
    assert unique_input_share(seqs, 2) == 0.5
    assert unique_input_share(seqs, 3) == 1.0
    assert unique_input_share(seqs, 50) == 1.0
