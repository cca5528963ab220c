"""sLSTM and mLSTM: central differences over their options, the stabiliser (the outputs do not
depend on m; float32 finite at pre-activations of +-1e4 and equal to float64 there), the empty
state, checkpointing, validation, save/load/pickle and the study tools. Torch parity (the
paper's unstabilised equations, autograd as the oracle): test_xlstm_torch.py."""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.cells.xlstm import (mlstm_kind, mlstm_step_backward, mlstm_step_forward,
                               slstm_kind, slstm_step_backward, slstm_step_forward)
from npseq.gradcheck import check_gradients
from npseq.xlstm import MLSTM, SLSTM
from tests.strategies import arrays, examples, nonzero_floats

CLASSES = (SLSTM, MLSTM)


def set_params(m, rng, scale=1.0):
    """Random parameters, biases bounded away from zero (either sign), in place."""
    for k, v in m.params.items():
        if k.startswith("bias"):
            v[...] = rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.1, 0.8, v.shape)
        else:
            v[...] = rng.uniform(-scale, scale, v.shape)


def random_state(m, B, rng):
    """A stabilised state as a forward leaves it: any h, c (C) and m, a positive n (for the
    sLSTM n~ >= 1 after any step; for the mLSTM n~ is a vector, any sign)."""
    LD = m.num_layers * m.num_directions
    h, c, n, mm = (rng.uniform(-1, 1, (LD, B, s)) for s in m.kind.carry_sizes(m.hidden_size))
    if isinstance(m, SLSTM):
        n = rng.uniform(1.0, 2.0, n.shape)
    return h, c, n, mm


# -- 1. every gradient by central differences, over the options -----------------------------
@st.composite
def layer_cases(draw):
    cls = draw(st.sampled_from(CLASSES))
    num_heads = draw(st.integers(1, 2))
    # an mLSTM head of one unit (dh = 1) has a scalar memory: h~ = C q / max(|n q|, 1) is
    # then C / n * sign(q) wherever |n q| > 1, so dq is exactly 0 and central differences
    # give only rounding (relative error 1); from dh = 2 on, C can have rank > 1
    H = num_heads * draw(st.integers(2 if cls is MLSTM else 1, 2))
    T, B, D = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    if cls is MLSTM:  # keys k_t = W_k x_t (+ b_k) all parallel (D = 1 without bias, or equal
        D = max(D, 2)  # x_t) also make C rank 1 and dq exactly 0: D >= 2 and the ramp below
    with_state = draw(st.booleans())  # else the empty state: the stabiliser restarts at i~
    if cls is MLSTM and not with_state:  # one step from the empty state gives h~ = v
        T = max(T, 2)  # sign(k . q), dq = 0, which both sides only round (rel. error 1)
    num_layers = draw(st.integers(1, 2))
    bidirectional, bias, batch_first = (draw(st.booleans()) for _ in range(3))
    forget = draw(st.sampled_from(("sigmoid", "exp")))
    m = cls(D, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
            batch_first=batch_first, num_heads=num_heads, forget=forget, seed=0,
            checkpoint_every=draw(st.none() | st.integers(1, 3)))
    # weights and inputs of magnitude ~1: the mLSTM's h~ is a product of q, k and v, and a
    # product of three small numbers is a gradient that central differences cannot resolve
    # to 1e-6 of its own size next to a loss of size ~1 (the autograd oracle of
    # test_xlstm_torch.py has no such floor and takes small values too)
    for k, v in m.params.items():
        elements = nonzero_floats(0.1, 0.8) if k.startswith("bias") else nonzero_floats(0.3, 1)
        v[...] = draw(arrays(v.shape, elements))
        if cls is MLSTM and k.startswith(("weight_q", "weight_k")):  # hypothesis shrinks
            # towards equal entries: a rank-1 W_k gives parallel keys (dq = 0 again); a
            # fixed full-rank pattern on top keeps them apart
            v += 0.4 * np.cos(1.0 + np.arange(v.size)).reshape(v.shape)
    x = draw(arrays((T, B, D), nonzero_floats(0.5, 1.5)))
    if cls is MLSTM:  # inputs that change direction from step to step (hypothesis shrinks
        # towards equal values)
        # (a scale in [0.5, 1.5] per step and feature: never 0, where n = 0 would restart)
        x = x * (1.0 + 0.5 * np.cos(np.arange(T)[:, None, None] * (1.0 + np.arange(D))))
    if batch_first:
        x = np.ascontiguousarray(x.transpose(1, 0, 2))
    state = None
    if with_state:
        LD = num_layers * (2 if bidirectional else 1)
        h, c, n, mm = (draw(arrays((LD, B, s))) for s in m.kind.carry_sizes(H))
        if cls is SLSTM:
            n = draw(arrays(n.shape, st.floats(1.0, 2.0)))
        else:  # n = 0 is the empty head, where the step restarts (not differentiable there)
            n = draw(arrays(n.shape, nonzero_floats(0.5, 1.5)))
        state = (h, c, n, mm)
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    if lengths is not None:
        lengths[0] = T  # the longest sequence has every step
    return m, x, state, lengths, draw(st.integers(0, 2 ** 16))


# derandomized in every profile: hypothesis can steer the mLSTM towards nearly parallel keys,
# where dq is tiny and its central difference only good to ~1e-6 relative (a rounding floor,
# not a bug: test_xlstm_torch.py checks the same gradients against autograd to 1e-10)
@settings(max_examples=examples(12), derandomize=True)
@given(layer_cases())
def test_every_gradient_matches_central_differences(case):
    m, x, state, lengths, seed = case
    # eps = 1e-5, near the optimal step cbrt(2.2e-16) ~ 6e-6 of central differences: the
    # products q k v of the mLSTM make some gradients ~1e-6, where the rounding of a loss of
    # size ~1 over a step of 1e-6 (1e-10) would dominate the comparison
    errors = check_gradients(m, x, state, lengths=lengths, seed=seed, eps=1e-5)
    want = {"x"} | set(m.params) | ({f"state[{k}]" for k in range(4)} if state else set())
    assert set(errors) == want
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("cls", CLASSES)
def test_dropout_between_layers_and_wide_heads_get_their_gradients(cls):
    """Sizes past the small ones drawn above: 3 heads of 2, dropout, a longer sequence."""
    rng = np.random.default_rng(1)
    m = cls(1, 6, num_layers=2, dropout=0.4, bidirectional=True, num_heads=3, seed=3)
    set_params(m, rng)
    errors = check_gradients(m, rng.standard_normal((6, 2, 1)), random_state(m, 2, rng),
                             lengths=[6, 4], seed=2, eps=1e-5)
    assert max(errors.values()) < 1e-6, errors


# -- 2. the stabiliser -----------------------------------------------------------------------
@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("cls", CLASSES)
def test_outputs_do_not_depend_on_m_only_on_the_state_it_stands_for(cls, forget):
    """(c~ e^-d, n~ e^-d, m + d) is the same state as (c~, n~, m): every output and h_n
    equal, and the stabilised final states differ at most by the factor of their m."""
    rng = np.random.default_rng(2)
    m = cls(3, 4, num_layers=2, num_heads=2, forget=forget, seed=0)
    set_params(m, rng)
    x = rng.standard_normal((7, 2, 3))
    h, c, n, mm = random_state(m, 2, rng)
    d = rng.uniform(-30, 30, mm.shape)  # per unit (sLSTM) or per head (mLSTM)
    dc, dn = (d, d) if cls is SLSTM else (np.repeat(d, 4, -1), np.repeat(d, 2, -1))
    with npseq.no_grad():
        out, (h1, c1, n1, m1) = m(x, (h, c, n, mm))
        out2, (h2, c2, n2, m2) = m(x, (h, c * np.exp(-dc), n * np.exp(-dn), mm + d))
    np.testing.assert_allclose(out2, out, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(h2, h1, rtol=1e-11, atol=1e-13)
    e1 = np.exp(m1 - m2) if cls is SLSTM else np.repeat(np.exp(m1 - m2), 2, -1)
    np.testing.assert_allclose(n2, n1 * e1, rtol=1e-10, atol=1e-13)


def step_fns(cls, num_heads, forget):
    if cls is SLSTM:
        return (lambda gx, carry, p: slstm_step_forward(gx, carry, p, num_heads, forget),
                lambda dcarry, cache, p: slstm_step_backward(dcarry, cache, p, num_heads,
                                                             forget))
    return (lambda x, carry, p: mlstm_step_forward(x, carry, p, num_heads, forget),
            lambda dcarry, cache, p: mlstm_step_backward(dcarry, cache, p, num_heads, forget))


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("cls", CLASSES)
def test_float32_at_pre_activations_of_1e4_is_finite_and_is_float64_rounded(cls, forget):
    """Pre-activations of +-1e4 (and 0, and a few of magnitude 1), exactly representable in
    both dtypes, into 40 steps: every value and gradient finite in float32, and equal to the
    float64 ones to float32's rounding.

    Exact pre-activations make the comparison measure the stabilised cell alone: with
    ``gx + R h_prev`` near 1e4, float32 would round the sum itself to its ulp there (1e-3),
    an input error that exp turns into 1e-3 relative. So the sLSTM's ``R`` is 0 here (its
    gradient is still formed and checked finite), and the mLSTM's q, k, v weights are the
    same float32 numbers in both runs (never 0: at q = 0 the true dq is exp(m) C~, beyond
    any float at m ~ 1e4)."""
    rng = np.random.default_rng(3)
    B, H, NH, T = 3, 4, 2, 40
    fwd, bwd = step_fns(cls, NH, forget)
    big = np.array([-1e4, 1e4, 0.0, -1.0, 0.5, 2.0])
    if cls is SLSTM:  # gx is the pre-activation; small recurrent weights
        inputs = rng.choice(big, (T, B, 4 * H))
        p64 = {"weight_r": np.zeros((4, NH, H // NH, H // NH))}
    else:  # the step projects x: one-hot inputs and weights of +-1e4 give exact products
        inputs = np.eye(3)[rng.integers(0, 3, (T, B))]
        p64 = {f"weight_{g}": rng.choice(big, (H if g in "o" else NH, 3)) for g in "oif"}
        p64.update({f"weight_{g}": rng.uniform(0.1, 1.0, (H, 3)).astype(np.float32)
                    .astype(np.float64) * rng.choice([-1, 1], (H, 3)) for g in "qkv"})
    sizes = (slstm_kind if cls is SLSTM else mlstm_kind)(NH, forget).carry_sizes(H)
    douts = rng.standard_normal((T, B, H))
    results = {}
    for dtype in (np.float64, np.float32):
        p = {k: v.astype(dtype) for k, v in p64.items()}
        carry = tuple(np.zeros((B, s), dtype) for s in sizes)
        caches, outs = [], []
        for t in range(T):
            carry, cache = fwd(inputs[t].astype(dtype), carry, p)
            caches.append(cache)
            outs.append(carry[0])
        dcarry = tuple(np.zeros((B, s), dtype) for s in sizes)
        dins, dps = [], []
        for t in reversed(range(T)):
            dcarry = (dcarry[0] + douts[t].astype(dtype),) + dcarry[1:]
            g = bwd(dcarry, caches[t], p)
            dcarry = g.dcarry_prev
            dins.append(g.dgx)
            dps.append(g.dparams)
        arrays_ = [np.array(outs), *carry, np.array(dins), *dcarry,
                   *(sum(d[k] for d in dps) for k in sorted(dps[0]))]
        for a in arrays_:
            assert a.dtype == dtype and np.all(np.isfinite(a))
        results[dtype] = arrays_
    assert np.abs(results[np.float64][0]).max() > 0.1  # the extremes reached the output
    # float32's rounding at 1e4 is its spacing there, 2**-10 ~ 1e-3: the stabiliser m and
    # a = log f + m_prev live at that magnitude, and exp turns their absolute rounding into
    # a relative one in i', f' and everything after them
    tol = 2 * float(np.spacing(np.float32(1e4)))
    for a64, a32 in zip(results[np.float64], results[np.float32]):
        scale = max(np.abs(a64).max(), 1.0)
        np.testing.assert_allclose(a32, a64, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("cls", CLASSES)
def test_layers_at_pre_activations_of_1e4_give_finite_values_and_gradients(cls, forget):
    """Generic values (not whole numbers: for the mLSTM a query exactly orthogonal to n,
    n . q = 0, makes the true h~ = C q, which is exp(m) C~ q, beyond any float at m ~ 1e4;
    whole numbers of 1e4 cancel exactly; see docs/xlstm.md)."""
    rng = np.random.default_rng(4)
    for dtype in (np.float32, np.float64):
        m = cls(2, 4, num_layers=2, bidirectional=True, num_heads=2, forget=forget,
                dtype=dtype, seed=0)
        x = (rng.choice([-1.0, 1.0], (50, 2, 2)) * rng.uniform(0.5, 1, (50, 2, 2))
             * 1e4).astype(dtype)
        for k, v in m.params.items():
            if k.endswith("_l0") or k.endswith("_l0_reverse"):  # pre-activations of +-1e4
                v[...] = rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.5, 1, v.shape)
        out, state = m(x, lengths=[50, 17])
        dstate = tuple(rng.standard_normal(s.shape).astype(dtype) for s in state)
        dx, dstate0 = m.backward(rng.standard_normal(out.shape).astype(dtype), dstate)
        assert out.dtype == dtype
        for arr in (out, *state, dx, *dstate0, *m.grads.values()):
            assert np.all(np.isfinite(arr))
        assert np.abs(out).max() > 0.1


def test_slstm_empty_state_restarts_the_stabiliser_and_n_stays_at_least_one():
    """From the zero state the first step takes m = i~ (so n~ = 1, never 0/0), and after
    any step n~ >= 1: at pre-activations of +-1e4 in float32 too."""
    rng = np.random.default_rng(5)
    m = SLSTM(2, 4, num_heads=2, dtype=np.float32, seed=0)
    capture = {}
    x = (rng.choice([-1.0, 0.0, 1.0], (60, 3, 2)) * 1e4).astype(np.float32)
    m.params["weight_ih_l0"][...] = rng.choice([-1.0, 1.0], (16, 2))
    with npseq.no_grad():
        out, (h, c, n, mm) = m(x, capture=capture)
    caches = capture[(0, 0)]
    np.testing.assert_array_equal(caches[0].n, 1)
    np.testing.assert_array_equal(caches[0].i, 1)
    assert all(np.all(q.n >= 1) for q in caches) and np.all(np.abs(out) <= 1)


# -- 3. the driver's features ----------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
def test_checkpointed_gradients_are_the_plain_ones_exactly(cls):
    rng = np.random.default_rng(6)
    m = cls(3, 4, num_layers=2, bidirectional=True, num_heads=2, seed=0)
    set_params(m, rng)
    x, state = rng.standard_normal((11, 2, 3)), random_state(m, 2, rng)
    dout = rng.standard_normal((11, 2, 8))
    got = []
    for k in (None, 3):
        m.checkpoint_every = k
        m.zero_grad()
        out, _ = m(x, state, lengths=[11, 6])
        dx, dstate = m.backward(dout)
        got.append((out, dx, dstate, {k: v.copy() for k, v in m.grads.items()}))
    (o1, dx1, ds1, g1), (o2, dx2, ds2, g2) = got
    np.testing.assert_array_equal(o1, o2)
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(ds1, ds2):
        np.testing.assert_array_equal(a, b)
    for k in g1:
        np.testing.assert_array_equal(g1[k], g2[k])


def test_mlstm_h_prev_reaches_nothing():
    rng = np.random.default_rng(7)
    m = MLSTM(2, 4, num_heads=2, seed=0)
    x, state = rng.standard_normal((5, 2, 2)), random_state(m, 2, rng)
    with npseq.no_grad():
        out, _ = m(x, state)
        out2, _ = m(x, (rng.standard_normal(state[0].shape),) + state[1:])
    np.testing.assert_array_equal(out, out2)
    m(x, state)
    _, (dh0, dC0, dn0, dm0) = m.backward(rng.standard_normal(out.shape))
    np.testing.assert_array_equal(dh0, 0)
    assert np.all(dC0 != 0)


@pytest.mark.parametrize("cls", CLASSES)
def test_save_load_pickle_sequential_and_unbatched_input(cls, tmp_path):
    rng = np.random.default_rng(8)
    layer = cls(3, 4, num_layers=2, bidirectional=True, batch_first=True, num_heads=2,
                forget="exp", bias=False, seed=0)
    set_params(layer, rng, 0.5)
    model = npseq.Sequential(layer, npseq.LastStep(), npseq.Linear(8, 2, seed=1))
    x = rng.standard_normal((2, 5, 3))
    with npseq.no_grad():
        want, _ = model(x, lengths=[5, 3])
        out, state = layer(x)
        out1, state1 = layer(x[0])  # unbatched: a batch of one, states without B
        out_b, state_b = layer(x[:1])
    np.testing.assert_array_equal(out1, out_b[0])
    np.testing.assert_allclose(out1, out[0], rtol=1e-13, atol=1e-15)
    for s, s1 in zip(state_b, state1):
        np.testing.assert_array_equal(s1, s[:, 0])
    npseq.save(tmp_path / "m.npz", model)
    for again in (npseq.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))):
        assert repr(again.modules[0]) == repr(layer)
        with npseq.no_grad():
            got, _ = again(x, lengths=[5, 3])
        np.testing.assert_array_equal(got, want)


def test_parameter_counts_and_initial_forget_bias():
    count = npseq.analysis.count_parameters
    assert count(SLSTM(3, 4, num_heads=2)) == 16 * 3 + 16 + 4 * 2 * 2 * 2
    assert count(SLSTM(3, 4, bias=False)) == 16 * 3 + 4 * 4 * 4
    assert count(MLSTM(3, 4, num_heads=2)) == (4 * 4 * 3 + 2 * 2 * 3) + (4 * 4 + 2 * 2)
    assert count(MLSTM(3, 4, num_heads=2, num_layers=2, bias=False)) == (
        (4 * 4 * 3 + 2 * 2 * 3) + (4 * 4 * 4 + 2 * 2 * 4))
    np.testing.assert_array_equal(MLSTM(3, 4, num_heads=4).params["bias_f_l0"],
                                  [3.0, 4.0, 5.0, 6.0])


@pytest.mark.parametrize("cls", CLASSES)
def test_gradient_norms_name_every_part_of_the_carry_and_match_the_trace(cls):
    rng = np.random.default_rng(9)
    m = cls(2, 4, bidirectional=True, num_heads=2, seed=0)
    x, dout = rng.standard_normal((8, 2, 2)), rng.standard_normal((8, 2, 8))
    norms = npseq.analysis.gradient_norms(m, x, dout, lengths=[8, 5], per_sequence=True)
    trace = {}
    m(x, lengths=[8, 5])
    m.backward(dout, trace=trace)
    names = ("h", "c", "n", "m") if cls is SLSTM else ("h", "C", "n", "m")
    for key in ((0, 0), (0, 1)):
        assert tuple(norms[key]) == names
        for k, name in enumerate(names):
            want = np.linalg.norm(trace[key][k], axis=-1)
            np.testing.assert_allclose(norms[key][name][:, 0], want[:, 0], rtol=1e-10)
            assert np.all(np.isnan(norms[key][name][5:, 1]))


@pytest.mark.parametrize("cls", CLASSES)
def test_truncated_bptt_carries_all_four_states_across_chunks(cls):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((12, 2, 2))
    m = cls(2, 4, num_heads=2, seed=0)

    def loss_and_grad(out, start, stop):
        return float(np.sum(out ** 2)), 2 * out

    loss, state = npseq.truncated_bptt(m, x, 5, loss_and_grad)
    with npseq.no_grad():
        out, state_all = m(x)
    np.testing.assert_allclose(loss, np.sum(out ** 2), rtol=1e-12)
    for a, b in zip(state, state_all):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert all(np.any(v != 0) for v in m.grads.values())


# -- 4. validation ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(num_heads=3), ValueError, r"num_heads: expected a divisor of hidden_size \(4\), "
                                    r"got 3"),
    (dict(num_heads=0), ValueError, "num_heads"),
    (dict(num_heads=2.0), TypeError, "num_heads"),
    (dict(forget="relu"), ValueError, "forget: expected 'sigmoid' or 'exp'"),
    (dict(forget=None), TypeError, "forget"),
    (dict(bias="yes"), TypeError, "bias"),
    (dict(proj_size=2), TypeError, "proj_size"),  # not an option of theirs
])
def test_bad_options_fail_naming_the_argument(cls, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(3, 4, **kwargs)


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_states_fail_naming_the_part(cls):
    m = cls(3, 4, num_heads=2, seed=0)
    x = np.zeros((2, 1, 3))
    h = np.zeros((1, 1, 4))
    with pytest.raises(TypeError, match=r"state: expected a tuple \(h0, (c0|C0), n0, m0\)"):
        m(x, (h, h, h))
    with pytest.raises(TypeError, match="state: expected a tuple"):
        m(x, h)
    sizes = m.kind.carry_sizes(4)
    state = [np.zeros((1, 1, s)) for s in sizes]
    state[3] = np.zeros((1, 1, 5))
    with pytest.raises(ValueError, match=r"state\[3\] \(m0\)"):
        m(x, tuple(state))
    with npseq.no_grad():
        out, _ = m(x, (None, None, None, None))  # zeros, part by part
    assert out.shape == (2, 1, 4)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(11)
    for cls in CLASSES:
        m = cls(2, 4, num_layers=2, bidirectional=True, num_heads=2, seed=0)
        x, state = rng.standard_normal((6, 2, 2)), random_state(m, 2, rng)
        dout = rng.standard_normal((6, 2, 8))
        dstate = tuple(rng.standard_normal(s.shape) for s in state)
        saved = [a.copy() for a in (x, dout, *state, *dstate)]
        m(x, state)
        m.backward(dout, dstate)
        for a, b in zip((x, dout, *state, *dstate), saved):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_recurrent_cell_of_the_kind_is_one_step_of_the_layer(cls):
    """npseq.RecurrentCell runs the same kind one step at a time, its 4-part state included:
    T steps of the cell (parameters copied from the layer) give the layer's values and
    gradients."""
    rng = np.random.default_rng(13)
    layer = cls(3, 4, num_heads=2, bias=cls is SLSTM, seed=0)
    set_params(layer, rng)
    cell = npseq.RecurrentCell(layer.kind, 3, 4, bias=cls is SLSTM, seed=1)
    assert set(cell.params) == {k[:-3] for k in layer.params}
    for k in cell.params:
        cell.params[k][...] = layer.params[k + "_l0"]
    x, state = rng.standard_normal((5, 2, 3)), random_state(layer, 2, rng)
    dout = rng.standard_normal((5, 2, 4))
    out, final = layer(x, state)
    dx, dstate0 = layer.backward(dout)
    carry, steps = tuple(s[0] for s in state), []
    for t in range(5):
        carry = cell(x[t], carry)
        steps.append(carry)
        np.testing.assert_allclose(carry[0], out[t], rtol=1e-13, atol=1e-15)
    for a, b in zip(carry, final):
        np.testing.assert_allclose(a, b[0], rtol=1e-13, atol=1e-15)
    dcarry = tuple(np.zeros_like(c) for c in carry)
    dxs = []
    for t in reversed(range(5)):
        dcarry = (dcarry[0] + dout[t],) + tuple(dcarry[1:])
        dx_t, dcarry = cell.backward(dcarry)
        dxs.append(dx_t)
    np.testing.assert_allclose(np.array(dxs[::-1]), dx, rtol=1e-12, atol=1e-14)
    for a, b in zip(dcarry, dstate0):
        np.testing.assert_allclose(a, b[0], rtol=1e-12, atol=1e-14)
    for k in cell.params:
        np.testing.assert_allclose(cell.grads[k], layer.grads[k + "_l0"], rtol=1e-12,
                                   atol=1e-14)
