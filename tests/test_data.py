"""npseq.data: pad_sequence, unpad_sequence and BucketIterator (torch parity is in
test_data_torch)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import npseq
from npseq.data import BucketIterator, pad_sequence, unpad_sequence


@st.composite
def ragged(draw, min_length=0, max_n=6):
    """A list of float arrays of shape (L_i, *trailing), L_i drawn, then the arrays."""
    trailing = draw(st.sampled_from([(), (1,), (3,), (2, 2)]))
    lengths = draw(st.lists(st.integers(min_length, 7), min_size=1, max_size=max_n))
    elements = st.floats(-1e6, 1e6, allow_nan=False, width=64)
    return [draw(hnp.arrays(np.float64, (L,) + trailing, elements=elements)) for L in lengths]


@given(ragged(), st.booleans(), st.sampled_from(["right", "left"]),
       st.sampled_from([0.0, -1.5, 7.0]))
def test_unpad_of_pad_is_the_sequences_and_the_rest_is_padding(seqs, batch_first, side, value):
    padded = pad_sequence(seqs, batch_first=batch_first, padding_value=value,
                          padding_side=side)
    lengths = [len(s) for s in seqs]
    T, B = max(lengths), len(seqs)
    trailing = seqs[0].shape[1:]
    assert padded.shape == ((B, T) if batch_first else (T, B)) + trailing
    back = unpad_sequence(padded, lengths, batch_first=batch_first, padding_side=side)
    assert len(back) == B
    for s, r in zip(seqs, back):
        assert r.shape == s.shape
        np.testing.assert_array_equal(r, s)
    # every entry outside the sequences is the padding value
    bt = padded if batch_first else padded.swapaxes(0, 1)  # (B, T, *)
    steps = np.arange(T)[None, :]
    valid = steps < np.array(lengths)[:, None] if side == "right" else \
        steps >= T - np.array(lengths)[:, None]
    assert np.all(bt[~valid] == value)


def test_pad_sequence_by_hand_left_and_right():
    a, b = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), np.array([[7.0, 8.0]])
    right = pad_sequence([a, b], padding_value=-1.0)
    np.testing.assert_array_equal(right[:, 0], a)
    np.testing.assert_array_equal(right[:, 1], [[7, 8], [-1, -1], [-1, -1]])
    left = pad_sequence([a, b], batch_first=True, padding_value=-1.0, padding_side="left")
    np.testing.assert_array_equal(left[1], [[-1, -1], [-1, -1], [7, 8]])
    assert left.dtype == np.float64 and right.flags.c_contiguous


def test_dtypes_and_copies():
    ids = pad_sequence([np.array([3, 1]), np.array([2])], padding_value=-100)
    assert ids.dtype.kind == "i" and ids.tolist() == [[3, 2], [1, -100]]
    f32 = pad_sequence([np.ones(2, np.float32), np.ones(1, np.float32)])
    assert f32.dtype == np.float32
    assert pad_sequence([[1, 2], [0.5]]).dtype == np.float64  # ints and floats together
    seqs = [np.arange(3.0), np.arange(2.0)]
    padded = pad_sequence(seqs)
    padded[0, 0] = 99.0
    assert seqs[0][0] == 0.0                       # the padded array is a copy
    back = unpad_sequence(padded, [3, 2])
    back[0][1] = 99.0
    assert padded[1, 0] == 1.0                     # the unpadded ones are copies too
    assert pad_sequence([np.zeros((0, 2)), np.zeros((0, 2))]).shape == (0, 2, 2)  # as torch


@pytest.mark.parametrize("call, err, match", [
    (lambda: pad_sequence([]), ValueError, "sequences: expected at least one sequence"),
    (lambda: pad_sequence(np.float64(3.0)), TypeError, "sequences: expected a list"),
    (lambda: pad_sequence("abc"), TypeError, "sequences: expected a list"),
    (lambda: pad_sequence([np.zeros((2, 3)), np.zeros((2, 4))]), ValueError,
     r"sequences\[1\]: expected shape \(L, \*\(3,\)\)"),
    (lambda: pad_sequence([np.zeros(2), 1.0]), ValueError, r"sequences\[1\]: .* scalar"),
    (lambda: pad_sequence([np.array(["a", "b"])]), TypeError, r"sequences\[0\]: .* dtype"),
    (lambda: pad_sequence([[1, 2]], padding_value=0.5), ValueError,
     "padding_value: expected a whole number"),
    (lambda: pad_sequence([[1, 2]], padding_value="0"), TypeError, "padding_value"),
    (lambda: pad_sequence([np.ones(2, np.int8)], padding_value=300), ValueError,
     "padding_value: expected a value that fits in int8"),
    (lambda: pad_sequence([[1.0]], padding_side="top"), ValueError,
     "padding_side: expected 'right' or 'left'"),
    (lambda: pad_sequence([[1.0]], batch_first=1), TypeError, "batch_first"),
    (lambda: unpad_sequence(np.zeros((3, 2)), [3, 4]), ValueError,
     r"lengths: expected every length in 0..3"),
    (lambda: unpad_sequence(np.zeros((3, 2)), [3]), ValueError, r"lengths: expected shape \(2,\)"),
    (lambda: unpad_sequence(np.zeros(3), [3]), ValueError, "padded_sequences: expected shape"),
    (lambda: unpad_sequence(np.zeros((3, 2)), [1.5, 2]), TypeError, "lengths: expected integers"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


# -- BucketIterator ------------------------------------------------------------------------
def labelled(lengths):
    """Sequence i is the (L_i, 2) array full of i: the index can be read back from x."""
    return [np.full((L, 2), float(i)) for i, L in enumerate(lengths)]


@st.composite
def bucket_cases(draw):
    lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=40))
    N = len(lengths)
    drop_last = draw(st.booleans())
    batch_size = draw(st.integers(1, N if drop_last else N + 3))
    return dict(lengths=lengths, batch_size=batch_size, drop_last=drop_last,
                shuffle=draw(st.booleans()), batch_first=draw(st.booleans()),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


@given(bucket_cases())
def test_bucketing_covers_every_index_once_in_length_homogeneous_batches(case):
    lengths = np.array(case["lengths"])
    N, bs = len(lengths), case["batch_size"]
    it = BucketIterator(labelled(lengths), y=np.arange(N), batch_size=bs, seed=case["seed"],
                        shuffle=case["shuffle"], drop_last=case["drop_last"],
                        batch_first=case["batch_first"], padding_value=-1.0)
    batches = list(it)
    assert len(batches) == len(it)
    seen = np.concatenate([y for _, _, y in batches])
    if case["drop_last"]:
        assert len(seen) == N - N % bs and len(set(seen.tolist())) == len(seen)
        assert all(len(y) == bs for _, _, y in batches)
    else:
        assert sorted(seen.tolist()) == list(range(N))   # every index exactly once
        assert sum(len(y) != bs for _, _, y in batches) <= 1
    for x, lens, y in batches:
        np.testing.assert_array_equal(lens, lengths[y])
        bt = x if case["batch_first"] else x.swapaxes(0, 1)  # (B, T, 2)
        assert bt.shape == (len(y), lens.max(), 2)
        for b in range(len(y)):                              # x holds sequence y[b], padded
            assert np.all(bt[b, :lens[b]] == y[b]) and np.all(bt[b, lens[b]:] == -1.0)
        # the bucket rule: no sequence of the epoch lies strictly between this batch's
        # shortest and longest
        others = lengths[np.setdiff1d(seen, y)]
        assert not np.any((others > lens.min()) & (others < lens.max()))
    if not case["shuffle"]:
        assert all(a[1].max() <= b[1].min() for a, b in zip(batches, batches[1:]))


@given(bucket_cases())
def test_the_same_seed_gives_the_same_batches_epoch_after_epoch(case):
    def epochs(seed):
        it = BucketIterator(labelled(case["lengths"]), y=np.arange(len(case["lengths"])),
                            batch_size=case["batch_size"], seed=seed,
                            drop_last=case["drop_last"])
        return [[y.tolist() for _, _, y in it] for _ in range(2)]
    first = epochs(case["seed"])
    assert first == epochs(case["seed"])
    assert first == epochs(np.random.default_rng(case["seed"]))  # an int seeds a Generator


def test_shuffling_changes_the_batches_and_their_order_between_epochs():
    lengths = np.repeat([3, 5, 8], 20)  # many ties: batches can mix differently
    it = BucketIterator(labelled(lengths), y=np.arange(60), batch_size=7, seed=0)
    one, two = ([y.tolist() for _, _, y in it] for _ in range(2))
    assert one != two
    assert sorted(map(sorted, one)) != sorted(map(sorted, two))  # the batches differ too


def test_per_step_targets_are_padded_and_no_targets_give_none():
    xs = [np.arange(3), np.arange(5), np.arange(4)]
    ys = [x + 1 for x in xs]
    it = BucketIterator(xs, ys, batch_size=3, shuffle=False, y_per_step=True,
                        y_padding_value=-100)
    (x, lengths, y), = list(it)
    np.testing.assert_array_equal(lengths, [3, 4, 5])        # sorted by length
    np.testing.assert_array_equal(x, pad_sequence([xs[0], xs[2], xs[1]]))
    np.testing.assert_array_equal(y, pad_sequence([ys[0], ys[2], ys[1]], padding_value=-100))
    assert x.dtype.kind == "i"
    (_, _, y), = list(BucketIterator(xs, batch_size=3))
    assert y is None


def test_a_bucket_batch_trains_a_layer_with_lengths():
    """A batch goes straight into a layer: the output past each length is zero."""
    rng = np.random.default_rng(0)
    seqs = [rng.standard_normal((L, 3)) for L in (4, 9, 6, 2, 7)]
    m = npseq.GRU(3, 5, seed=0)
    for x, lengths, y in BucketIterator(seqs, np.arange(5), batch_size=2, seed=1):
        out, h_n = m(x, lengths=lengths)
        dx, _ = m.backward(np.ones_like(out))
        assert dx.shape == x.shape
        for b, i in enumerate(y):  # each sequence alone gives the same final state
            with npseq.no_grad():
                _, h_alone = m(seqs[i][:, None, :])
            np.testing.assert_allclose(h_n[:, b], h_alone[:, 0], rtol=1e-12)
        assert all(not out[L:, b].any() for b, L in enumerate(lengths))


@pytest.mark.parametrize("call, err, match", [
    (lambda: BucketIterator([np.zeros((0, 2))]), ValueError,
     r"sequences\[0\]: expected at least 1 step"),
    (lambda: BucketIterator([[1.0]], batch_size=0), ValueError, "batch_size"),
    (lambda: BucketIterator([[1.0]], batch_size=2, drop_last=True), ValueError,
     "batch_size: expected at most 1"),
    (lambda: BucketIterator([[1.0]], seed=-1), ValueError, "seed"),
    (lambda: BucketIterator([[1.0]], seed="a"), TypeError, "seed"),
    (lambda: BucketIterator([[1.0], [2.0]], y=[1, 2, 3]), ValueError, r"y: expected shape \(2, ...\)"),
    (lambda: BucketIterator([[1.0], [2.0]], y=["a", "b"]), TypeError, "y: expected a real"),
    (lambda: BucketIterator([[1.0], [2.0, 3.0]], y=[[1], [2]], y_per_step=True),
     ValueError, r"y\[1\]: expected 2 steps"),
    (lambda: BucketIterator([[1.0]], y=[[1]], y_per_step=True, y_padding_value=0.5),
     ValueError, "y_padding_value"),
    (lambda: BucketIterator([[1]], padding_value=0.5), ValueError, "padding_value"),
    (lambda: BucketIterator([[1.0]], shuffle=None), TypeError, "shuffle"),
])
def test_bad_bucket_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_bucket_iterator_keeps_copies():
    seqs, ys = [np.zeros(2), np.zeros(3)], np.array([0, 1])
    it = BucketIterator(seqs, ys, batch_size=2, seed=0)
    seqs[0][0], ys[0] = 5.0, 7
    (x, _, y), = list(it)
    assert not x.any() and sorted(y.tolist()) == [0, 1]


class FakePacked:
    """What a torch PackedSequence looks like to npseq: ``data`` and ``batch_sizes``."""
    data = np.zeros((5, 3))
    batch_sizes = np.array([2, 2, 1])


@pytest.mark.parametrize("call", [
    lambda p: npseq.LSTM(3, 4)(p),
    lambda p: npseq.GRUCell(3, 4)(p),
    lambda p: npseq.Linear(3, 4)(p),
    lambda p: npseq.Sequential(npseq.RNN(3, 4), npseq.LastStep())(p),
    lambda p: npseq.Embedding(5, 3)(p),
])
def test_a_packed_sequence_is_a_type_error_pointing_to_lengths(call):
    with pytest.raises(TypeError) as info:
        call(FakePacked())
    msg = str(info.value)
    assert msg.startswith(("x: expected an array, got a packed sequence (FakePacked)",
                           "idx: expected an array, got a packed sequence (FakePacked)"))
    assert "lengths=" in msg and "torch.nn.utils.rnn.pad_packed_sequence(packed)" in msg
    assert "npseq.data.pad_sequence" in msg
    for name, call in [("sequences", pad_sequence), ("padded_sequences",
                                                     lambda p: unpad_sequence(p, [1]))]:
        with pytest.raises(TypeError, match=f"^{name}: expected an array, got a packed"):
            call(FakePacked())
