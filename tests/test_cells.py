"""Cells (RNNCell tanh/relu, LSTMCell, GRUCell): gradients by finite differences, the cell API
and properties of the backward pass. PyTorch parity is in ``test_cells_torch.py``."""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import check_gradients, format_report
from strategies import (KINDS, upstream_arrays, cell_cases, examples, make_cell, num_states,
                        pack_state, unpack_state)

RELU_MARGIN = 1e-3  # |pre-activation| of a ReLU kept above this: far beyond eps = 1e-6


def keep_off_relu_kink(case):
    if case.kind == "rnn_relu":
        assume(np.min(np.abs(case.preactivation())) > RELU_MARGIN)


def step(cell, x, state, dstate):
    """Forward then backward of one step; returns (new state, dx, dstate_prev, grads copy)."""
    cell.zero_grad()
    new = cell(x, state)
    dx, dprev = cell.backward(dstate)
    return new, dx, dprev, {k: g.copy() for k, g in cell.grads.items()}


def flat(*trees):
    """Every array in (nested tuples of) arrays and dicts of arrays, in order."""
    out = []
    for t in trees:
        if isinstance(t, dict):
            out.extend(t[k] for k in sorted(t))
        elif isinstance(t, (tuple, list)):
            out.extend(flat(*t))
        else:
            out.append(t)
    return out


# -- every gradient by finite differences ----------------------------------------------------
@given(case=cell_cases(), seed=st.integers(0, 2 ** 16))
@settings(max_examples=examples(100))  # cheap (~20 ms each) and the heart of the matter
def test_every_gradient_matches_finite_differences(case, seed):
    keep_off_relu_kink(case)
    errors = check_gradients(case.cell, case.x, case.state, seed=seed)
    states = ["state"] if num_states(case.kind) == 1 else ["state[0]", "state[1]"]
    assert set(errors) == {"x", *states, *case.cell.params}
    assert max(errors.values()) < 1e-6, format_report(errors)


@given(case=cell_cases(), seed=st.integers(0, 2 ** 16))
@settings(max_examples=examples(10))
def test_gradients_with_state_none_match_finite_differences(case, seed):
    keep_off_relu_kink(case)  # the margin was checked with the drawn state ...
    zeros = pack_state(case.kind, [np.zeros_like(s) for s in unpack_state(case.state)])
    case.state = zeros
    keep_off_relu_kink(case)  # ... and must hold with the zero state used here
    errors = check_gradients(case.cell, case.x, None, seed=seed)
    assert set(errors) == {"x", *case.cell.params}
    assert max(errors.values()) < 1e-6, format_report(errors)


# -- properties of the backward --------------------------------------------------------------
@given(case=cell_cases(), alpha=st.floats(-2, 2), beta=st.floats(-2, 2), data=st.data())
@settings(max_examples=examples(20))
def test_backward_is_linear_in_the_upstream_gradient(case, alpha, beta, data):
    g1 = unpack_state(case.dstate)
    g2 = tuple(data.draw(upstream_arrays(g.shape)) for g in g1)
    mix = pack_state(case.kind, [alpha * a + beta * b for a, b in zip(g1, g2)])
    _, *r1 = step(case.cell, case.x, case.state, case.dstate)
    _, *r2 = step(case.cell, case.x, case.state, pack_state(case.kind, g2))
    _, *rm = step(case.cell, case.x, case.state, mix)
    for a, b, m in zip(flat(*r1), flat(*r2), flat(*rm)):
        np.testing.assert_allclose(m, alpha * a + beta * b, rtol=1e-10, atol=1e-12)


@given(case=cell_cases())
@settings(max_examples=examples(10))
def test_zero_upstream_gradient_gives_zero_gradients(case):
    zero = pack_state(case.kind, [np.zeros_like(s) for s in unpack_state(case.state)])
    _, dx, dprev, grads = step(case.cell, case.x, case.state, zero)
    for g in flat(dx, dprev, grads):
        assert not np.any(g)


@given(case=cell_cases(kinds=("rnn_tanh", "rnn_relu", "lstm"), bias=True))
@settings(max_examples=examples(10))
def test_bias_gradients_are_equal_for_rnn_and_lstm(case):
    _, _, _, grads = step(case.cell, case.x, case.state, case.dstate)
    assume(np.any(grads["bias_ih"]))  # all ReLUs off: zero == zero would prove nothing
    np.testing.assert_array_equal(grads["bias_ih"], grads["bias_hh"])


@given(case=cell_cases())
@settings(max_examples=examples(10))
def test_float32_is_within_1e_4_of_float64(case):
    c = case.cell
    c32 = make_cell(case.kind, c.input_size, c.hidden_size, c.bias, dtype=np.float32)
    c32.load_state_dict(c.state_dict())
    r64 = step(c, case.x, case.state, case.dstate)
    r32 = step(c32, case.x, case.state, case.dstate)
    for a64, a32 in zip(flat(*r64), flat(*r32)):
        assert a32.dtype == np.float32
        assert np.max(np.abs(a32 - a64), initial=0) < 1e-4


def test_every_gate_block_gets_a_gradient():
    """Guards the finite-difference tests against gates that never matter: every row block
    of every GRU (r, z, n) and LSTM (i, f, g, o) parameter gets a non-zero gradient."""
    rng = np.random.default_rng(1)
    for kind in ("gru", "lstm"):
        cell = make_cell(kind, 3, 4, seed=2)
        state = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
        dstate = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
        _, _, _, grads = step(cell, rng.standard_normal((2, 3)), state, dstate)
        for k, g in grads.items():
            for block in np.split(g, g.shape[0] // 4):
                assert np.all(np.abs(block).sum(axis=-1) > 0), (kind, k)


# -- the cell API ----------------------------------------------------------------------------
def hand_loop(cell, xs, state, douts, dstate_n):
    """A loop over time written by hand with a cell: forward t = 0..T-1, backward T-1..0.

    ``douts[t]`` is the upstream gradient of ``h_t``; it joins the gradient of the carry."""
    outs = []
    for x_t in xs:
        state = cell(x_t, state)
        outs.append(unpack_state(state)[0])
    dxs = [None] * len(xs)
    dcarry = unpack_state(dstate_n)
    for t in reversed(range(len(xs))):
        dcarry = (dcarry[0] + douts[t],) + dcarry[1:]
        dxs[t], dprev = cell.backward(pack_state(cell_kind(cell), dcarry))
        dcarry = unpack_state(dprev)
    return np.stack(outs), state, np.stack(dxs), pack_state(cell_kind(cell), dcarry)


def cell_kind(cell):
    if isinstance(cell, npseq.RNNCell):
        return "rnn_" + cell.nonlinearity
    return "lstm" if isinstance(cell, npseq.LSTMCell) else "gru"


def layer_for(cell):
    kind = cell_kind(cell)
    cls = {"lstm": npseq.LSTM, "gru": npseq.GRU}.get(kind, npseq.RNN)
    kw = {"nonlinearity": cell.nonlinearity} if kind.startswith("rnn") else {}
    m = cls(cell.input_size, cell.hidden_size, bias=cell.bias, **kw)
    m.load_state_dict({k + "_l0": v for k, v in cell.state_dict().items()})
    return m


@pytest.mark.parametrize("kind", KINDS)
def test_hand_written_three_step_loop_equals_layer(kind):
    """push/pop is last in, first out: the backward loop pairs each step with its forward."""
    rng = np.random.default_rng(3)
    T, B, D, H = 3, 2, 3, 4
    cell = make_cell(kind, D, H, seed=4)
    for v in cell.params.values():  # random non-zero biases, not only the init
        v += rng.uniform(0.1, 0.3, v.shape)
    xs = rng.standard_normal((T, B, D))
    h0 = [rng.standard_normal((B, H)) for _ in range(num_states(kind))]
    douts = rng.standard_normal((T, B, H))
    dn = [rng.standard_normal((B, H)) for _ in range(num_states(kind))]
    out, state_n, dx, dstate0 = hand_loop(cell, xs, pack_state(kind, h0), douts,
                                          pack_state(kind, dn))
    m = layer_for(cell)
    st0 = [s[None] for s in h0]
    m_out, m_state = m(xs, pack_state(kind, st0))
    m_dx, m_dstate0 = m.backward(douts, pack_state(kind, [d[None] for d in dn]))
    np.testing.assert_allclose(out, m_out, rtol=1e-13, atol=1e-14)
    for a, b in zip(unpack_state(state_n), unpack_state(m_state)):
        np.testing.assert_allclose(a, b[0], rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(dx, m_dx, rtol=1e-12, atol=1e-13)
    for a, b in zip(unpack_state(dstate0), unpack_state(m_dstate0)):
        np.testing.assert_allclose(a, b[0], rtol=1e-12, atol=1e-13)
    for k, g in cell.grads.items():
        np.testing.assert_allclose(g, m.grads[k + "_l0"], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_pops_the_most_recent_forward(kind):
    rng = np.random.default_rng(5)
    cell, fresh = make_cell(kind, 3, 4, seed=6), make_cell(kind, 3, 4, seed=6)
    x1, x2 = rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    d = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
    cell(x1)
    cell(x2)
    fresh(x2)
    got, want = cell.backward(d), fresh.backward(d)
    for a, b in zip(flat(got), flat(want)):
        np.testing.assert_array_equal(a, b)
    got, want = cell.backward(d), make_cell(kind, 3, 4, seed=6)
    want(x1)
    for a, b in zip(flat(got), flat(want.backward(d))):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="backward"):
        cell.backward(d)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [None, 2])
def test_state_none_is_zeros(kind, batch):
    rng = np.random.default_rng(7)
    cell = make_cell(kind, 3, 4, seed=8)
    lead = () if batch is None else (batch,)
    x = rng.standard_normal(lead + (3,))
    zeros = pack_state(kind, [np.zeros(lead + (4,)) for _ in range(num_states(kind))])
    for a, b in zip(flat(cell(x)), flat(cell(x, zeros))):
        np.testing.assert_array_equal(a, b)
        assert a.shape == lead + (4,)
    if kind == "lstm":  # either half of an LSTM state may be None
        h, c = rng.standard_normal(lead + (4,)), rng.standard_normal(lead + (4,))
        for a, b in zip(cell(x, (h, None)), cell(x, (h, np.zeros_like(c)))):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(cell(x, (None, c)), cell(x, (np.zeros_like(h), c))):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_unbatched_equals_batch_of_one(kind):
    rng = np.random.default_rng(9)
    cell = make_cell(kind, 3, 4, seed=10)
    x = rng.standard_normal(3)
    s = [rng.standard_normal(4) for _ in range(num_states(kind))]
    d = [rng.standard_normal(4) for _ in range(num_states(kind))]
    new1, dx1, dp1, g1 = step(cell, x, pack_state(kind, s), pack_state(kind, d))
    newb, dxb, dpb, gb = step(cell, x[None], pack_state(kind, [v[None] for v in s]),
                              pack_state(kind, [v[None] for v in d]))
    for a, b in zip(flat(new1, dx1, dp1), flat(newb, dxb, dpb)):
        assert a.shape == b.shape[1:]
        np.testing.assert_array_equal(a, b[0])
    for k in g1:
        np.testing.assert_array_equal(g1[k], gb[k])


GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_params_and_grads_are_keyed_and_shaped_as_pytorch(kind, bias):
    D, H = 3, 5
    cell = make_cell(kind, D, H, bias=bias)
    G = GATES[kind]
    want = {"weight_ih": (G * H, D), "weight_hh": (G * H, H)}
    if bias:
        want.update(bias_ih=(G * H,), bias_hh=(G * H,))
    assert list(cell.params) == list(want)  # PyTorch's order too
    assert {k: v.shape for k, v in cell.params.items()} == want
    assert {k: v.shape for k, v in cell.grads.items()} == want
    assert all(v.dtype == np.float64 for v in [*cell.params.values(), *cell.grads.values()])
    assert all(not np.any(g) for g in cell.grads.values())


@pytest.mark.parametrize("kind", KINDS)
def test_grads_accumulate_and_zero_grad_resets(kind):
    rng = np.random.default_rng(11)
    cell = make_cell(kind, 3, 4, seed=12)
    runs = []
    for _ in range(2):
        x = rng.standard_normal((2, 3))
        s, d = (pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
                for _ in range(2))
        runs.append((x, s, d, step(cell, x, s, d)[3]))  # each run's own gradients
    cell.zero_grad()
    objects = {k: id(g) for k, g in cell.grads.items()}
    for x, s, d, _ in runs:
        cell(x, s)
        cell.backward(d)
    for k, g in cell.grads.items():
        assert np.any(runs[0][3][k]) and np.any(runs[1][3][k])
        np.testing.assert_allclose(g, runs[0][3][k] + runs[1][3][k], rtol=1e-14, atol=1e-15)
    cell.zero_grad()
    assert all(not np.any(g) for g in cell.grads.values())
    assert objects == {k: id(g) for k, g in cell.grads.items()}  # reset in place


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_returns_copies(kind):
    cell = make_cell(kind, 3, 4, seed=13)
    before = {k: v.copy() for k, v in cell.params.items()}
    sd = cell.state_dict()
    assert list(sd) == list(cell.params)
    for k, v in sd.items():
        assert not np.shares_memory(v, cell.params[k])
        v += 1.0
    for k, v in cell.params.items():
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_copies_in_from_array_likes(kind):
    rng = np.random.default_rng(14)
    cell = make_cell(kind, 3, 4, seed=15)
    live = dict(cell.params)
    new = {k: rng.standard_normal(v.shape) for k, v in cell.params.items()}
    source = {k: v.copy() for k, v in new.items()}
    as_lists = {k: v.tolist() for k, v in source.items()}
    cell.load_state_dict(as_lists)
    for k, v in cell.params.items():
        assert v is live[k]  # loaded in place: optimisers holding the arrays see the change
        np.testing.assert_array_equal(v, new[k])
    cell.load_state_dict(source)
    for v in source.values():
        v += 1.0  # the caller's arrays are not aliased ...
    for k, v in cell.params.items():
        np.testing.assert_array_equal(v, new[k])
    cell.params["weight_ih"] += 1.0  # ... in either direction
    np.testing.assert_array_equal(source["weight_ih"], new["weight_ih"] + 1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_load_state_dict_refuses_bad_dicts_naming_the_key(kind):
    cell = make_cell(kind, 3, 4, seed=16)
    before = cell.state_dict()
    good = {k: v + 1.0 for k, v in before.items()}

    missing = dict(good)
    del missing["bias_hh"]
    with pytest.raises(KeyError, match="bias_hh"):
        cell.load_state_dict(missing)
    with pytest.raises(KeyError, match="weight_xx"):
        cell.load_state_dict({**good, "weight_xx": np.zeros(3)})
    wrong = {**good, "weight_hh": np.zeros((3, 3))}
    with pytest.raises(ValueError, match="weight_hh"):
        cell.load_state_dict(wrong)
    with pytest.raises(TypeError, match="state_dict"):
        cell.load_state_dict([("weight_ih", good["weight_ih"])])
    for k, v in cell.params.items():  # nothing was written by a refused load
        np.testing.assert_array_equal(v, before[k])


@pytest.mark.parametrize("kind", KINDS)
def test_seed_reproducibility_and_init_bound(kind):
    H = 50
    a, b = make_cell(kind, 7, H, seed=17), make_cell(kind, 7, H, seed=17)
    c = make_cell(kind, 7, H, seed=np.random.default_rng(17))
    d = make_cell(kind, 7, H, seed=18)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
        np.testing.assert_array_equal(a.params[k], c.params[k])
        assert not np.array_equal(a.params[k], d.params[k])
    bound = 1 / np.sqrt(H)
    values = np.concatenate([v.ravel() for v in a.params.values()])
    assert np.all(np.abs(values) <= bound)
    # U(-b, b): mean 0, variance b^2/3, and the whole range is used
    n = values.size
    assert abs(values.mean()) < 4 * bound / np.sqrt(3 * n)
    assert abs(values.var() / (bound ** 2 / 3) - 1) < 0.1
    assert values.min() < -0.98 * bound and values.max() > 0.98 * bound


@pytest.mark.parametrize("kind", KINDS)
def test_float32_cell_computes_in_float32(kind):
    rng = np.random.default_rng(19)
    cell = make_cell(kind, 3, 4, dtype=np.float32, seed=20)
    assert all(v.dtype == np.float32 for v in [*cell.params.values(), *cell.grads.values()])
    x = rng.standard_normal((2, 3))  # float64 input is cast to the cell's dtype
    d = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
    new, dx, dprev, grads = step(cell, x, None, d)
    for a in flat(new, dx, dprev, grads):
        assert a.dtype == np.float32


@pytest.mark.parametrize("kind", KINDS)
def test_inputs_are_not_mutated(kind):
    rng = np.random.default_rng(21)
    cell = make_cell(kind, 3, 4, seed=22)
    x = rng.standard_normal((2, 3))
    s = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
    d = pack_state(kind, [rng.standard_normal((2, 4)) for _ in range(num_states(kind))])
    copies = [a.copy() for a in flat(x, s, d)]
    new = cell(x, s)
    for a in flat(new):
        for b in flat(x, s):
            assert not np.shares_memory(a, b)
    cell.backward(d)
    for a, b in zip(flat(x, s, d), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_bad_arguments_fail_naming_the_argument(kind):
    cell = make_cell(kind, 3, 4)
    with pytest.raises(ValueError, match="x"):
        cell(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="state"):
        cell(np.zeros((2, 3)), pack_state(kind, [np.zeros((3, 4))] * num_states(kind)))
    with pytest.raises(RuntimeError, match="backward"):
        cell.backward(pack_state(kind, [np.zeros((2, 4))] * num_states(kind)))
    cell(np.zeros((2, 3)))
    with pytest.raises(TypeError, match="dstate"):
        cell.backward(None)
    with pytest.raises(ValueError, match="input_size"):
        make_cell(kind, 0, 4)
    with pytest.raises(ValueError, match="dtype"):
        make_cell(kind, 3, 4, dtype=np.int32)


def test_rnn_cell_rejects_unknown_nonlinearity():
    with pytest.raises(ValueError, match="nonlinearity"):
        npseq.RNNCell(3, 4, nonlinearity="sigmoid")


def test_no_grad_keeps_no_cache():
    cell = npseq.GRUCell(3, 4, seed=0)
    with npseq.no_grad():
        h = cell(np.ones((2, 3)))
    assert npseq.is_grad_enabled()
    with pytest.raises(RuntimeError, match="no_grad"):
        cell.backward(np.ones_like(h))
