"""AR and TAR against PyTorch autograd, from AWD-LSTM's formulas written in the test:
``alpha * dropped_rnn_h.pow(2).mean()`` and ``beta * (rnn_h[1:] - rnn_h[:-1]).pow(2).mean()``;
with lengths, the same means over the valid steps only (each sequence cut to its length)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from npseq import losses  # noqa: E402

from strategies import arrays  # noqa: E402

pytestmark = pytest.mark.torch


@st.composite
def cases(draw):
    T, B, F = draw(st.integers(2, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    h = draw(arrays((T, B, F)))
    lengths = draw(st.none() | hnp.arrays(np.int64, (B,), elements=st.integers(2, T)))
    alpha, beta = draw(st.floats(0.1, 3.0)), draw(st.floats(0.1, 3.0))
    return h, lengths, alpha, beta


def torch_ar_tar(h, lengths, alpha, beta):
    """AWD-LSTM's AR and TAR with autograd; with lengths, over each sequence's valid steps."""
    ht = torch.tensor(h, requires_grad=True)
    if lengths is None:
        ar = alpha * ht.pow(2).mean()
        tar = beta * (ht[1:] - ht[:-1]).pow(2).mean()
    else:
        valid = [ht[:n, b] for b, n in enumerate(lengths)]  # each (n, F)
        ar = alpha * torch.cat([v.pow(2).reshape(-1) for v in valid]).mean()
        tar = beta * torch.cat([(v[1:] - v[:-1]).pow(2).reshape(-1) for v in valid]).mean()
    (dar,) = torch.autograd.grad(ar, ht, retain_graph=True)
    (dtar,) = torch.autograd.grad(tar, ht)
    return ar.item(), dar.numpy(), tar.item(), dtar.numpy()


@given(cases())
def test_ar_tar_match_awd_lstm(case):
    h, lengths, alpha, beta = case
    ar_ref, dar_ref, tar_ref, dtar_ref = torch_ar_tar(h, lengths, alpha, beta)
    ar, dar = losses.ar_loss(h, alpha, lengths=lengths)
    tar, dtar = losses.tar_loss(h, beta, lengths=lengths)
    np.testing.assert_allclose(ar, ar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tar, tar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dar, dar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dtar, dtar_ref, rtol=1e-12, atol=1e-15)
    # batch_first is only a layout: the same numbers, transposed
    ar_bf, dar_bf = losses.ar_loss(h.transpose(1, 0, 2), alpha, lengths, batch_first=True)
    tar_bf, dtar_bf = losses.tar_loss(h.transpose(1, 0, 2), beta, lengths, batch_first=True)
    assert ar_bf == ar and tar_bf == tar
    assert np.array_equal(dar_bf, dar.transpose(1, 0, 2))
    assert np.array_equal(dtar_bf, dtar.transpose(1, 0, 2))
