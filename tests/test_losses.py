"""Losses: finite-difference gradients, masks, reductions, stability at extreme logits."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npseq import losses
from npseq.gradcheck import numerical_gradient, rel_error

finite = st.floats(0.1, 5) | st.floats(-5, -0.1)  # well scaled: rel. errors meaningful


def fd_check(fn, first, *rest, **kwargs):
    """The analytic gradient of ``fn(first, *rest)`` against central differences."""
    first = first.copy()
    loss, grad = fn(first, *rest, **kwargs)
    assert grad.shape == first.shape and grad.dtype == first.dtype
    numeric = numerical_gradient(lambda: fn(first, *rest, **kwargs)[0], first)
    # the project's finite-difference bound; central differences resolve about 1e-9 of the
    # loss's terms, so a stricter bound fails where every gradient entry is ~1e-4 (logits
    # [4, -5]); the exact checks are against the textbook formulas below
    assert rel_error(grad, numeric) < 1e-6
    return loss, grad


@st.composite
def ce_cases(draw):
    """Logits (..., C), targets with some ignore_index, a mask, a reduction."""
    C = draw(st.integers(1, 5))
    lead = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=4))
    z = draw(hnp.arrays(np.float64, lead + (C,), elements=finite))
    y = draw(hnp.arrays(np.int64, lead, elements=st.sampled_from(list(range(C)) + [-100])))
    mask = draw(st.none() | hnp.arrays(np.bool_, lead))
    return z, y, mask, draw(st.sampled_from(["mean", "sum"]))


def ce_reference(z, y, mask, reduction):
    """Cross-entropy and its gradient by the textbook formulas, position by position::

        L = -log p_y,   p = exp(z) / sum exp(z),   dL/dz = p - onehot(y)   (over N if mean)
    """
    total, count, grad = 0.0, 0, np.zeros_like(z)
    for pos in np.ndindex(y.shape):
        if y[pos] == -100 or (mask is not None and not mask[pos]):
            continue
        denominator = sum(math.exp(v) for v in z[pos])
        total += -math.log(math.exp(z[pos][y[pos]]) / denominator)
        grad[pos] = [math.exp(v) / denominator for v in z[pos]]
        grad[pos][y[pos]] -= 1
        count += 1
    if reduction == "sum":
        return total, grad
    return (total / count, grad / count) if count else (math.nan, grad)


@given(ce_cases())
def test_cross_entropy_value_and_gradient(case):
    z, y, mask, reduction = case
    expected, expected_grad = ce_reference(z, y, mask, reduction)
    loss, grad = fd_check(losses.cross_entropy, z, y, mask=mask, reduction=reduction)
    if math.isnan(expected):
        assert math.isnan(loss) and not grad.any()
    else:
        assert loss == pytest.approx(expected, rel=1e-12, abs=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-12, atol=1e-15)
    ignored = (y == -100) if mask is None else (y == -100) | ~mask
    assert not grad[ignored].any()


def test_cross_entropy_gradient_is_softmax_minus_onehot_over_n():
    z = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0], [2.0, 2.0, 2.0]])
    y = np.array([2, 0, 7])
    loss, grad = losses.cross_entropy(z, y, ignore_index=7)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    expected = (p - np.eye(3)[[2, 0, 0]]) / 2
    expected[2] = 0
    np.testing.assert_allclose(grad, expected, rtol=1e-13)
    assert loss == pytest.approx(-(np.log(p[0, 2]) + np.log(p[1, 0])) / 2, rel=1e-13)


@st.composite
def pair_cases(draw, unit_target=False):
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4))
    a = draw(hnp.arrays(np.float64, shape, elements=finite))
    if unit_target:  # probabilities
        b = draw(hnp.arrays(np.float64, shape, elements=st.floats(0, 1, allow_subnormal=False)))
    else:  # a target away from a, so that no gradient entry is zero
        b = a + draw(hnp.arrays(np.float64, shape, elements=finite))
    return a, b, draw(st.sampled_from(["mean", "sum"]))


@given(pair_cases())
def test_mse_value_and_gradient(case):
    pred, target, reduction = case
    loss, _ = fd_check(losses.mse_loss, pred, target, reduction=reduction)
    sq = (pred - target) ** 2
    assert loss == pytest.approx(sq.sum() if reduction == "sum" else sq.mean(), rel=1e-12,
                                 abs=1e-300)


@given(pair_cases(unit_target=True))
def test_bce_with_logits_value_and_gradient(case):
    z, y, reduction = case
    loss, _ = fd_check(losses.bce_with_logits, z, y, reduction=reduction)
    s = 1 / (1 + np.exp(-z))
    per = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    assert loss == pytest.approx(per.sum() if reduction == "sum" else per.mean(), rel=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_logits_are_finite_and_warning_free(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    y = np.array([1, 0, 2])
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        p = losses.softmax(z)
        logp = losses.log_softmax(z)
        ce, dce = losses.cross_entropy(z, y)
        bce, dbce = losses.bce_with_logits(z, (z > 0).astype(dtype))
        bce_wrong, dbce_wrong = losses.bce_with_logits(z, (z < 0).astype(dtype))
    for a in (p, logp, dce, dbce, dbce_wrong):
        assert a.dtype == dtype and np.all(np.isfinite(a))
    np.testing.assert_allclose(p.sum(-1), 1, rtol=1e-6)
    np.testing.assert_allclose(p[1], 1 / 3, rtol=1e-6)
    assert logp[0, 1] == pytest.approx(-2e4, rel=1e-6)
    # losses: 2e4 (row 0), log 3 (row 1), 2e4 + log 2 (row 2), mean over 3 rows
    assert ce == pytest.approx((2e4 + np.log(3) + 2e4 + np.log(2)) / 3, rel=1e-6)
    # 8 logits confidently right (loss 0) or wrong (loss 1e4), one logit 0 (loss log 2)
    assert bce == pytest.approx(np.log(2) / 9, rel=1e-6)
    assert bce_wrong == pytest.approx((8e4 + np.log(2)) / 9, rel=1e-6)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(0)
    z, y = rng.standard_normal((4, 3)), np.array([0, 1, 2, -100])
    mask = np.array([True, False, True, True])
    copies = [a.copy() for a in (z, y, mask)]
    losses.cross_entropy(z, y, mask=mask)
    losses.mse_loss(z, z[::-1])
    losses.bce_with_logits(z, np.abs(np.tanh(z)))
    for a, c in zip((z, y, mask), copies):
        np.testing.assert_array_equal(a, c)


def test_softmax_axis():
    z = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(losses.softmax(z, axis=0).sum(0), 1, rtol=1e-14)
    with pytest.raises(ValueError, match="axis"):
        losses.softmax(z, axis=2)


@pytest.mark.parametrize("call, err, match", [
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError,
     "target: expected an array of integer class indices, got dtype float64"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])), ValueError,
     r"target: expected shape \(2,\)"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 3])), ValueError,
     r"target: expected class indices in 0\.\.2 or ignore_index \(-100\), got 3"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, -1])), ValueError, "got -1"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), mask=[1, 0]), TypeError,
     "mask: expected a boolean array"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), mask=[True]), ValueError,
     r"mask: expected shape \(2,\)"),
    (lambda: losses.cross_entropy(np.zeros(3), np.array([0, 1])), ValueError, "target"),
    (lambda: losses.cross_entropy(np.zeros((2, 3)), np.array([0, 1]), reduction="none"),
     ValueError, "reduction: expected 'mean' or 'sum', got 'none'"),
    (lambda: losses.mse_loss(np.zeros(3), np.zeros(4)), ValueError,
     r"target: expected shape \(3,\)"),
    (lambda: losses.mse_loss(np.array(["a"]), np.zeros(1)), TypeError, "pred"),
    (lambda: losses.bce_with_logits(np.zeros(3), np.zeros((3, 1))), ValueError, "target"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_masked_positions_may_hold_any_target():
    """A mask hides padding whose target is garbage (out of range)."""
    z = np.random.default_rng(0).standard_normal((3, 4))
    y = np.array([1, 99, 2])
    loss, grad = losses.cross_entropy(z, y, mask=np.array([True, False, True]))
    ref, _ = losses.cross_entropy(z[[0, 2]], y[[0, 2]])
    assert loss == pytest.approx(ref, rel=1e-14)
    assert not grad[1].any()
