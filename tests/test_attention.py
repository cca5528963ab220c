"""Attention (additive, dot, general): finite-difference gradients, masks, records, validation."""
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.attention import AdditiveAttention, MultiplicativeAttention
from npseq.gradcheck import numerical_gradient
from strategies import arrays, examples, nonzero_floats, upstream_arrays

KINDS = ("additive", "general", "dot")


def make_attention(kind, Dq, Dk, A=3, bias=True, seed=0):
    if kind == "additive":
        return AdditiveAttention(Dq, Dk, A, bias=bias, seed=seed)
    return MultiplicativeAttention(Dq, Dk, score=kind, seed=seed)


@dataclass
class AttentionCase:
    kind: str
    att: object
    q: np.ndarray  # (B, Dq)
    K: np.ndarray  # (B, S, Dk)
    V: np.ndarray  # (B, S, Dv)
    lengths: np.ndarray  # (B,) valid keys
    dc: np.ndarray  # (B, Dv) upstream gradient of the context
    dw: Optional[np.ndarray]  # (B, S) upstream gradient of the weights, or None

    @property
    def mask(self):
        return np.arange(self.K.shape[1])[None, :] < self.lengths[:, None]


@st.composite
def attention_cases(draw, kinds=KINDS):
    """Sizes, then parameters (non-zero), inputs, gradients.

    Parameters and inputs are at most 1 in magnitude, so that the additive score's tanh is
    neither linear nor saturated (a saturated tanh leaves gradients of 1e-4, below what
    central differences resolve to 1e-7).
    """
    kind = draw(st.sampled_from(kinds))
    B, S = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    Dq, Dv, A = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    Dk = Dq if kind == "dot" else draw(st.integers(1, 4))
    att = make_attention(kind, Dq, Dk, A, bias=draw(st.booleans()))
    att.load_state_dict({k: draw(arrays(v.shape, nonzero_floats(0.1, 0.8)))
                         for k, v in att.params.items()})
    # each length 1..S; a sequence of length 1 and one of full length are both likely
    lengths = np.array(draw(st.lists(st.sampled_from(sorted({1, S, max(1, S - 1)})) |
                                     st.integers(1, S), min_size=B, max_size=B)))
    q = draw(arrays((B, Dq), nonzero_floats(0.1, 1.0)))
    K = draw(arrays((B, S, Dk), nonzero_floats(0.1, 1.0)))
    V = draw(arrays((B, S, Dv)))
    dc = draw(upstream_arrays((B, Dv)))
    dw = draw(st.none() | upstream_arrays((B, S)))
    return AttentionCase(kind, att, q, K, V, lengths, dc, dw)


def close(analytic, numeric, rtol=1e-7, floor=1e-2):
    """``max |a - n| <= rtol * max(max |a|, max |n|, floor)``.

    The floor stands for the round-off of central differences (about 1e-16 / eps = 1e-10
    times the loss, a few times that at worst): an array of gradients that are all exactly 0
    (values that are equal at every key leave the weights without effect) is compared with
    numerical zeros of 1e-10, and the additive score's query gradient, which can cancel to
    1e-4 (the softmax's ``sum_s de_s = 0``), is checked to 1e-9.
    """
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), floor)
    return np.max(np.abs(analytic - numeric)) <= rtol * scale


def loss_of(case, q, K, V):
    """``sum(c * dc) + sum(w * dw)``, read from the arrays as they are now."""
    def f():
        with npseq.no_grad():
            c, w = case.att(q, K, V, lengths=case.lengths)
        return float(np.sum(c * case.dc) + (0 if case.dw is None else np.sum(w * case.dw)))
    return f


@settings(max_examples=examples(60))
@given(attention_cases())
def test_every_gradient_matches_central_differences(case):
    q, K, V = case.q.copy(), case.K.copy(), case.V.copy()
    case.att(q, K, V, lengths=case.lengths)
    dq, dK, dV = case.att.backward(case.dc, case.dw)
    f = loss_of(case, q, K, V)
    for name, x, g in (("query", q, dq), ("keys", K, dK), ("values", V, dV)):
        assert g.shape == x.shape
        assert close(g, numerical_gradient(f, x)), name
    for k, p in case.att.params.items():
        assert close(case.att.grads[k], numerical_gradient(f, p)), k
    # masked keys: exactly zero gradient, for keys and values
    pad = ~case.mask
    assert np.all(dK[pad] == 0) and np.all(dV[pad] == 0)
    # nothing the caller passed was changed
    np.testing.assert_array_equal(q, case.q)
    np.testing.assert_array_equal(K, case.K)


@pytest.mark.parametrize("kind, Dq, Dk", [(kind, 3, 3) for kind in KINDS]
                         + [("additive", 2, 4), ("general", 2, 4)])
def test_gradients_at_square_and_oblong_sizes(kind, Dq, Dk):
    """Fixed sizes the drawn ones may miss: a square ``weight`` (a transposed gradient has the
    right shape there), several sequences, one key of length 1, one full."""
    rng = np.random.default_rng(Dq * 10 + Dk)
    B, S, Dv = 3, 4, 2
    att = make_attention(kind, Dq, Dk, A=3, seed=1)
    for p in att.params.values():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    case = AttentionCase(kind, att, rng.uniform(-1, 1, (B, Dq)), rng.uniform(-1, 1, (B, S, Dk)),
                         rng.uniform(-1, 1, (B, S, Dv)), np.array([1, 4, 3]),
                         rng.uniform(-1, 1, (B, Dv)), rng.uniform(-1, 1, (B, S)))
    att(case.q, case.K, case.V, lengths=case.lengths)
    grads = dict(zip(("query", "keys", "values"), att.backward(case.dc, case.dw)))
    f = loss_of(case, case.q, case.K, case.V)
    for name, x in (("query", case.q), ("keys", case.K), ("values", case.V)):
        assert close(grads[name], numerical_gradient(f, x)), name
    for k, p in att.params.items():
        assert close(att.grads[k], numerical_gradient(f, p)), k


@settings(max_examples=examples(40))
@given(attention_cases(), st.integers(0, 2**32 - 1))
def test_masked_keys_get_zero_weight_and_change_nothing(case, seed):
    att = case.att
    c1, w1 = att(case.q, case.K, case.V, lengths=case.lengths)
    g1 = att.backward(case.dc, case.dw)
    grads1 = {k: v.copy() for k, v in att.grads.items()}
    pad = ~case.mask
    assert np.all(w1[pad] == 0)
    np.testing.assert_allclose(w1.sum(axis=1), 1, rtol=1e-14)
    assert np.all(w1[case.mask] > 0)
    # other (large) keys and values at the padded positions: the same results, bit for bit
    rng = np.random.default_rng(seed)
    K2, V2 = case.K.copy(), case.V.copy()
    K2[pad] = 100 * rng.standard_normal(K2[pad].shape)
    V2[pad] = 100 * rng.standard_normal(V2[pad].shape)
    att.zero_grad()
    c2, w2 = att(case.q, K2, V2, mask=case.mask)  # the same mask, given as a mask
    g2 = att.backward(case.dc, case.dw)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(w1, w2)
    for a, b in zip(g1, g2):
        np.testing.assert_array_equal(a, b)
    for k in grads1:
        np.testing.assert_array_equal(att.grads[k], grads1[k])


@pytest.mark.parametrize("kind", KINDS)
def test_forward_follows_the_equations(kind):
    """The scores written out with loops over b and s, softmax by hand."""
    rng = np.random.default_rng(3)
    B, S, D, Dv = 2, 4, 3, 2
    att = make_attention(kind, D, D, A=5, seed=1)
    q, K, V = rng.standard_normal((B, D)), rng.standard_normal((B, S, D)), \
        rng.standard_normal((B, S, Dv))
    lengths = np.array([4, 2])
    c, w = att(q, K, V, lengths=lengths)
    p = att.params
    for b in range(B):
        e = []
        for s in range(lengths[b]):
            if kind == "additive":
                e.append(p["v"] @ np.tanh(p["weight_q"] @ q[b] + p["weight_k"] @ K[b, s]
                                          + p["bias"]))
            elif kind == "general":
                e.append(q[b] @ p["weight"] @ K[b, s])
            else:
                e.append(q[b] @ K[b, s])
        expected = np.exp(e) / np.sum(np.exp(e))
        np.testing.assert_allclose(w[b, :lengths[b]], expected, rtol=1e-12)
        np.testing.assert_allclose(c[b], expected @ V[b, :lengths[b]], rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_is_lifo_over_decoder_steps(kind):
    """Two forward calls, then two backward calls: each pairs with its own forward."""
    rng = np.random.default_rng(0)
    att = make_attention(kind, 3, 3, seed=2)
    K, V = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 4, 2))
    q1, q2 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    d1, d2 = rng.standard_normal((2, 2)), rng.standard_normal((2, 2))
    alone = []
    for q, d in ((q1, d1), (q2, d2)):
        att.zero_grad()
        att(q, K, V, lengths=[4, 3])
        alone.append((att.backward(d), {k: g.copy() for k, g in att.grads.items()}))
    att.zero_grad()
    att(q1, K, V, lengths=[4, 3])
    att(q2, K, V, lengths=[4, 3])
    second = att.backward(d2)
    first = att.backward(d1)
    for got, (want, _) in ((first, alone[0]), (second, alone[1])):
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-13)
    for k in att.grads:
        np.testing.assert_allclose(att.grads[k], alone[0][1][k] + alone[1][1][k], rtol=1e-13)


def test_no_grad_keeps_no_record_and_apply_is_pure():
    rng = np.random.default_rng(0)
    att = AdditiveAttention(3, 4, 5, seed=0)
    q, K = rng.standard_normal((2, 3)), rng.standard_normal((2, 6, 4))
    with npseq.no_grad():
        c, w = att(q, K, K)
    with pytest.raises(RuntimeError, match="no forward call"):
        att.backward(np.ones((2, 4)))
    mask = np.ones((2, 6), bool)
    c2, w2, cache = att.apply(q, K, K, mask)
    np.testing.assert_array_equal(c, c2)
    dq, dK, dV, dparams = att.apply_backward(np.ones((2, 4)), None, cache)
    assert all(np.all(g == 0) for g in att.grads.values())  # the caller adds dparams
    assert set(dparams) == set(att.params)


def test_parameters_and_initialisation():
    att = AdditiveAttention(3, 4, 5, seed=0)
    assert {k: v.shape for k, v in att.params.items()} == {
        "weight_q": (5, 3), "weight_k": (5, 4), "bias": (5,), "v": (5,)}
    assert np.abs(att.params["weight_q"]).max() <= 1 / np.sqrt(3)
    assert "bias" not in AdditiveAttention(3, 4, 5, bias=False).params
    general = MultiplicativeAttention(3, 4, score="general", seed=0)
    assert general.params["weight"].shape == (3, 4)
    assert MultiplicativeAttention(4, 4, score="dot").params == {}
    w32 = MultiplicativeAttention(2, 2, dtype=np.float32, seed=0)
    c, w = w32(np.ones((1, 2)), np.ones((1, 3, 2)), np.ones((1, 3, 2)))
    assert c.dtype == np.float32 and w.dtype == np.float32


@pytest.mark.parametrize("make, match", [
    (lambda: MultiplicativeAttention(3, 4, score="dot"), "key_size"),
    (lambda: MultiplicativeAttention(3, 3, score="cosine"), "score"),
    (lambda: AdditiveAttention(3, 3, 0), "attention_size"),
    (lambda: AdditiveAttention(0, 3, 2), "query_size"),
])
def test_constructor_errors_name_the_argument(make, match):
    with pytest.raises((TypeError, ValueError), match=match):
        make()


@pytest.mark.parametrize("kwargs, match", [
    (dict(query=np.ones((2, 4))), "query"),
    (dict(query=np.ones(3)), "query"),
    (dict(keys=np.ones((3, 5, 3))), "keys"),
    (dict(keys=np.ones((2, 5))), "keys"),
    (dict(values=np.ones((2, 4, 2))), "values"),
    (dict(lengths=[0, 5]), "lengths"),
    (dict(lengths=[6, 5]), "lengths"),
    (dict(lengths=[1, 2, 3]), "lengths"),
    (dict(mask=np.ones((2, 5))), "mask"),
    (dict(mask=np.ones((2, 4), bool)), "mask"),
    (dict(mask=np.array([[True] * 5, [False] * 5])), "mask"),
    (dict(lengths=[1, 1], mask=np.ones((2, 5), bool)), "lengths, mask"),
    (dict(query=np.ones((2, 3), complex)), "query"),
])
def test_forward_errors_name_the_argument(kwargs, match):
    att = AdditiveAttention(3, 3, 4, seed=0)
    args = dict(query=np.ones((2, 3)), keys=np.ones((2, 5, 3)), values=np.ones((2, 5, 2)))
    args.update(kwargs)
    with pytest.raises((TypeError, ValueError), match=match):
        att(**args)


def test_backward_errors_name_the_argument_and_leave_the_record():
    att = MultiplicativeAttention(3, 3, seed=0)
    att(np.ones((2, 3)), np.ones((2, 5, 3)), np.ones((2, 5, 2)))
    with pytest.raises(ValueError, match="dcontext"):
        att.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match="dweights"):
        att.backward(np.ones((2, 2)), np.ones((2, 4)))
    dq, dK, dV = att.backward(np.ones((2, 2)))  # the record is still there
    assert dq.shape == (2, 3) and dK.shape == (2, 5, 3) and dV.shape == (2, 5, 2)
