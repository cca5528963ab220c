"""Parity with ``torch.nn.functional.ctc_loss`` (float64): losses, and gradients for logits.

torch's gradient for ``log_probs`` is not the derivative of its loss with ``log_probs`` as
free inputs: it adds ``exp(log_probs)``, which ``log_softmax``'s backward cancels. So the
gradients are compared for the logits ``z`` of ``log_probs = log_softmax(z)``: npseq's
``dlog_probs`` chained through the log_softmax backward written here by hand, against
torch autograd. npseq's own ``dlog_probs`` is checked against central differences in
test_ctc.py.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

from npseq import losses  # noqa: E402
from npseq.ctc import ctc_loss  # noqa: E402
from strategies import examples  # noqa: E402

pytestmark = pytest.mark.torch


def needed_frames(labels):
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


@st.composite
def torch_cases(draw, infeasible=False):
    """Logits (T, B, C), padded targets (valid labels in the padding), lengths, blank.

    Targets are cut to what their input holds and often exactly that long; with
    ``infeasible`` some are longer than their input holds (an infinite loss).
    """
    T = draw(st.integers(1, 12))
    B = draw(st.integers(1, 4))
    C = draw(st.integers(2, 6))
    blank = draw(st.integers(0, C - 1))
    labels = [k for k in range(C) if k != blank]
    S = draw(st.integers(0, T + 1))
    targets = np.array(draw(st.lists(st.lists(st.sampled_from(labels), min_size=S,
                                              max_size=S), min_size=B, max_size=B)),
                       dtype=np.int64).reshape(B, S)
    T_b, S_b = [], []
    for b in range(B):
        T_b.append(draw(st.integers(1, T)))
        fits = max(n for n in range(S + 1) if needed_frames(list(targets[b, :n])) <= T_b[b])
        top = S if infeasible and draw(st.booleans()) else fits
        S_b.append(draw(st.just(top) | st.integers(0, top)))
    z = draw(hnp.arrays(np.float64, (T, B, C), elements=st.floats(-4, 4), fill=st.nothing()))
    return z, targets, np.array(T_b), np.array(S_b), blank


def torch_ctc(z, targets, T_b, S_b, blank, reduction, zero_infinity):
    """torch's loss and its autograd gradient for the logits (of the sum, for "none")."""
    zt = torch.tensor(z, requires_grad=True)
    loss = F.ctc_loss(zt.log_softmax(2), torch.tensor(targets), torch.tensor(T_b),
                      torch.tensor(S_b), blank=blank, reduction=reduction,
                      zero_infinity=zero_infinity)
    loss.sum().backward()
    return loss.detach().numpy(), zt.grad.numpy()


def through_log_softmax(dy, y):
    """Backward of y = log_softmax(z): dz = dy - softmax(z) sum_k dy."""
    return dy - np.exp(y) * dy.sum(axis=2, keepdims=True)


@settings(max_examples=examples(60))
@given(torch_cases(), st.sampled_from(["none", "mean", "sum"]), st.booleans())
def test_loss_and_logit_gradient_match_torch(case, reduction, zero_infinity):
    z, targets, T_b, S_b, blank = case
    y = losses.log_softmax(z)
    loss, dy = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction=reduction,
                        zero_infinity=zero_infinity)
    expected, dz_expected = torch_ctc(z, targets, T_b, S_b, blank, reduction, zero_infinity)
    np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(through_log_softmax(dy, y), dz_expected, rtol=1e-10, atol=1e-12)


@settings(max_examples=examples(40))
@given(torch_cases(infeasible=True), st.sampled_from(["none", "mean", "sum"]))
def test_infeasible_targets_match_torch(case, reduction):
    z, targets, T_b, S_b, blank = case
    y = losses.log_softmax(z)
    for zero_infinity in (False, True):
        loss, dy = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction=reduction,
                            zero_infinity=zero_infinity)
        expected, dz_expected = torch_ctc(z, targets, T_b, S_b, blank, reduction,
                                          zero_infinity)
        np.testing.assert_allclose(loss, expected, rtol=1e-12, atol=1e-12)  # inf == inf
        dz = through_log_softmax(dy, y)
        live = np.arange(z.shape[0])[:, None] < T_b  # (T, B): torch's past-length frames
        np.testing.assert_allclose(dz[live], dz_expected[live], rtol=1e-10, atol=1e-12)
        if zero_infinity:
            np.testing.assert_allclose(dz, dz_expected, rtol=1e-10, atol=1e-12)


def test_torch_log_probs_gradient_is_ours_plus_exp_log_probs():
    """The issue's measurement, pinned: autograd for log_probs = our dlog_probs + exp(y)."""
    rng = np.random.default_rng(0)
    y = losses.log_softmax(rng.normal(size=(6, 2, 4)))
    targets, T_b, S_b = np.array([[1, 1, 3], [2, 3, 1]]), np.array([6, 5]), np.array([3, 2])
    yt = torch.tensor(y, requires_grad=True)
    F.ctc_loss(yt, torch.tensor(targets), torch.tensor(T_b), torch.tensor(S_b),
               reduction="sum").backward()
    _, dy = ctc_loss(y, targets, T_b, S_b, reduction="sum")
    live = (np.arange(6)[:, None] < T_b)[..., None]
    assert np.max(np.abs(yt.grad.numpy() - dy)[np.broadcast_to(live, y.shape)]) > 0.1
    np.testing.assert_allclose(yt.grad.numpy(), np.where(live, dy + np.exp(y), 0),
                               rtol=1e-10, atol=1e-12)


def test_unbatched_matches_torch():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(7, 5))
    y = losses.log_softmax(z)
    loss, dy = ctc_loss(y, [2, 2, 4], 7, 3, reduction="none")
    zt = torch.tensor(z, requires_grad=True)
    expected = F.ctc_loss(zt.log_softmax(1), torch.tensor([2, 2, 4]), torch.tensor(7),
                          torch.tensor(3), reduction="none")
    expected.backward()
    assert np.shape(loss) == () and loss == pytest.approx(expected.item(), rel=1e-12)
    dz = dy - np.exp(y) * dy.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(dz, zt.grad.numpy(), rtol=1e-10, atol=1e-12)
