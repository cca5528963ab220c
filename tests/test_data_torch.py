"""Parity with torch.nn.utils.rnn: pad_sequence, unpad_sequence; a real PackedSequence."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
rnn_utils = torch.nn.utils.rnn

import npseq  # noqa: E402
from npseq.data import pad_sequence, unpad_sequence  # noqa: E402

pytestmark = pytest.mark.torch

CASES = [  # (lengths, trailing shape, dtype)
    ([5, 2, 7, 1], (3,), np.float64),
    ([4], (), np.float64),
    ([3, 3, 3], (2, 2), np.float32),
    ([6, 1, 0, 4], (), np.int64),
    ([2, 5], (1,), np.int64),
]


def draw(lengths, trailing, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "i":
        return [rng.integers(-50, 50, size=(L,) + trailing).astype(dtype) for L in lengths]
    return [rng.standard_normal((L,) + trailing).astype(dtype) for L in lengths]


@pytest.mark.parametrize("padding_side", ["right", "left"])
@pytest.mark.parametrize("padding_value", [0.0, -3.0])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, trailing, dtype", CASES)
def test_pad_sequence_matches_torch(lengths, trailing, dtype, batch_first, padding_value,
                                    padding_side):
    seqs = draw(lengths, trailing, dtype)
    ours = pad_sequence(seqs, batch_first=batch_first, padding_value=padding_value,
                        padding_side=padding_side)
    theirs = rnn_utils.pad_sequence([torch.from_numpy(s) for s in seqs],
                                    batch_first=batch_first, padding_value=padding_value,
                                    padding_side=padding_side).numpy()
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, trailing, dtype", CASES)
def test_unpad_sequence_matches_torch(lengths, trailing, dtype, batch_first):
    seqs = draw(lengths, trailing, dtype, seed=1)
    padded = pad_sequence(seqs, batch_first=batch_first, padding_value=9.0)
    before = padded.copy()
    ours = unpad_sequence(padded, lengths, batch_first=batch_first)
    # torch transposes its argument in place when batch_first=False: it gets a copy
    theirs = rnn_utils.unpad_sequence(torch.from_numpy(padded.copy()), torch.tensor(lengths),
                                      batch_first=batch_first)
    assert len(ours) == len(theirs)
    for o, t in zip(ours, theirs):
        assert o.dtype == t.numpy().dtype
        np.testing.assert_array_equal(o, t.numpy())
    np.testing.assert_array_equal(padded, before)  # ours leaves it as it was


def packed_batch():
    rng = np.random.default_rng(2)
    seqs = [rng.standard_normal((L, 3)) for L in (5, 2, 4)]
    packed = rnn_utils.pack_sequence([torch.from_numpy(s) for s in seqs],
                                     enforce_sorted=False)
    return seqs, packed


@pytest.mark.parametrize("make", [lambda: npseq.LSTM(3, 4, seed=0),
                                  lambda: npseq.Sequential(npseq.GRU(3, 4, seed=0),
                                                           npseq.LastStep())])
def test_a_torch_packed_sequence_is_a_type_error_that_shows_the_conversion(make):
    seqs, packed = packed_batch()
    m = make()
    with pytest.raises(TypeError) as info:
        m(packed)
    msg = str(info.value)
    assert msg.startswith("x: expected an array, got a packed sequence (PackedSequence)")
    assert "pad_packed_sequence(packed)" in msg and "lengths=" in msg
    # the conversion the message shows works, and equals npseq's own padding
    x, lengths = rnn_utils.pad_packed_sequence(packed)
    with npseq.no_grad():
        out, _ = m(x.detach().numpy(), lengths=lengths.numpy())
        out2, _ = m(pad_sequence(seqs), lengths=[len(s) for s in seqs])
    np.testing.assert_array_equal(out, out2)


def test_a_packed_sequence_of_token_ids_into_an_embedding():
    packed = rnn_utils.pack_sequence([torch.tensor([1, 2, 3]), torch.tensor([4])])
    with pytest.raises(TypeError, match=r"^idx: expected an array, got a packed sequence"):
        npseq.Embedding(5, 3)(packed)
