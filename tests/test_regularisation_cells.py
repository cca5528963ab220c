"""recurrent_dropout, weight_dropout and zoneout on the cells (RNNCell, LSTMCell, GRUCell,
RecurrentCell): the rule for the masks (recurrent and weight masks drawn at the first
training call and kept until reset_dropout_mask(); zoneout fresh at every call), gradients
through a hand-written loop over time by central differences under the masks drawn, the
cell loop against the layer with the same masks, rate 0, evaluation, validation, save/load.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.cells.minrnn import MINGRU
from npseq.gradcheck import numerical_gradient, rel_error

from strategies import examples, randomise

CELLS = {
    "rnn_tanh": (npseq.RNNCell, {}),
    "lstm": (npseq.LSTMCell, {}),
    "lstm_peephole": (npseq.LSTMCell, {"peephole": True}),
    "gru": (npseq.GRUCell, {}),
    "gru_reset_before": (npseq.GRUCell, {"reset_after": False}),
}
LAYERS = {"rnn_tanh": (npseq.RNN, {}), "lstm": (npseq.LSTM, {}),
          "lstm_peephole": (npseq.LSTM, {"peephole": True}), "gru": (npseq.GRU, {}),
          "gru_reset_before": (npseq.GRU, {"reset_after": False})}


def make_cell(name, input_size=2, hidden_size=3, **options):
    cls, variant = CELLS[name]
    return cls(input_size, hidden_size, **variant, **options)


def run_loop(cell, xs, state):
    """A sequence through the cell from a fresh set of masks; returns the states."""
    cell.reset_dropout_mask()
    states = []
    for x_t in xs:
        state = cell(x_t, state)
        states.append(state)
    return states


def flat(state):
    return list(state) if isinstance(state, tuple) else [state]


@st.composite
def cell_loops(draw):
    name = draw(st.sampled_from(sorted(CELLS)))
    rate = st.sampled_from((0.0, 0.3, 0.6))
    options = dict(recurrent_dropout=draw(rate), weight_dropout=draw(rate),
                   zoneout=draw(rate))
    H, B, T = draw(st.integers(2, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    cell = make_cell(name, draw(st.integers(1, 3)), H, seed=draw(st.integers(0, 2 ** 16)),
                     **options)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    randomise(cell, rng)  # random non-zero biases
    xs = rng.uniform(-1, 1, (T, B, cell.input_size))
    n = cell.kind.num_states
    state = [rng.uniform(-1, 1, (B, H)) for _ in range(n)]
    upstream = [[rng.choice([-1, 1], (B, H)) * rng.uniform(0.1, 1, (B, H)) for _ in range(n)]
                for _ in range(T)]
    return cell, xs, state, upstream, draw(st.sampled_from(("train", "eval")))


@settings(max_examples=examples(40))
@given(cell_loops())
def test_gradients_through_time_under_the_kept_masks(case):
    """L = sum_t <state_t, G_t> over a loop written by hand; each perturbed evaluation
    replays the generator and resets the kept masks, so it sees the masks of the analytic
    pass. Catches a mask not kept across steps, a missing m on dh_prev, zoneout's kept
    share or the weight mask left out of the backward."""
    cell, xs, state0, upstream, mode = case
    getattr(cell, mode)()
    pack = (lambda s: tuple(s)) if len(state0) == 2 else (lambda s: s[0])
    saved = cell.rng.bit_generator.state

    def loss():
        cell.rng.bit_generator.state = saved
        with npseq.no_grad():
            states = run_loop(cell, xs, pack(state0))
        return float(sum(np.sum(s * g) for st_t, g_t in zip(states, upstream)
                         for s, g in zip(flat(st_t), g_t)))

    cell.rng.bit_generator.state = saved
    cell.zero_grad()
    run_loop(cell, xs, pack(state0))
    dstate = None
    dxs = [None] * len(xs)
    for t in reversed(range(len(xs))):
        d = upstream[t] if dstate is None else [g + ds for g, ds in zip(upstream[t],
                                                                       flat(dstate))]
        dxs[t], dstate = cell.backward(pack(d))
    numeric_x = numerical_gradient(loss, xs)
    assert rel_error(np.array(dxs), numeric_x) < 1e-7
    for s, ds in zip(state0, flat(dstate)):
        assert rel_error(ds, numerical_gradient(loss, s)) < 1e-7
    analytic = {k: g.copy() for k, g in cell.grads.items()}
    for k, p in cell.params.items():
        assert rel_error(analytic[k], numerical_gradient(loss, p)) < 1e-7, k


@pytest.mark.parametrize("name", sorted(CELLS))
def test_the_cell_loop_equals_the_layer_with_the_same_masks(name):
    """The layer's recurrent and weight masks, read from its StackRecord, set as the cell's
    kept masks: the cell loop gives the layer's outputs, and its backward the layer's
    gradients (rate semantics shared by cells and layers)."""
    rng = np.random.default_rng(0)
    cls, variant = LAYERS[name]
    layer = randomise(cls(2, 3, recurrent_dropout=0.5, weight_dropout=0.4, seed=1, **variant),
                      rng)
    x, dout = rng.standard_normal((5, 2, 2)), rng.standard_normal((5, 2, 3))
    carries = layer.state_to_carries(None, 2)
    out, _, record = npseq.stack.stack_forward(
        layer.kind, layer.stack_params(), x, carries,
        **dict(layer.core_options(), rng=copy.deepcopy(layer.rng)))
    layer(x)
    dx_layer, _ = layer.backward(dout)
    cell = make_cell(name, 2, 3, recurrent_dropout=0.5, weight_dropout=0.4)
    for k in cell.params:
        cell.params[k][...] = layer.params[k + "_l0"]
    cell.recurrent_mask = record.recurrent_masks[0][0]
    cell.weight_mask = record.weight_masks[0][0]
    state = None
    for t in range(5):
        state = cell(x[t], state)
        np.testing.assert_allclose(flat(state)[0], out[t], rtol=1e-13, atol=1e-14)
    dstate = None
    for t in reversed(range(5)):
        d = [dout[t]] + [np.zeros((2, 3))] * (cell.kind.num_states - 1)
        if dstate is not None:
            d = [a + b for a, b in zip(d, flat(dstate))]
        dx_t, dstate = cell.backward(tuple(d) if len(d) == 2 else d[0])
        np.testing.assert_allclose(dx_t, dx_layer[t], rtol=1e-12, atol=1e-14)
    for k in cell.params:
        np.testing.assert_allclose(cell.grads[k], layer.grads[k + "_l0"], rtol=1e-12,
                                   atol=1e-14)


def test_masks_kept_until_reset_and_zoneout_fresh_each_call():
    cell = npseq.LSTMCell(3, 4, recurrent_dropout=0.5, weight_dropout=0.5, zoneout=0.5,
                          seed=0)
    assert cell.recurrent_mask is None and cell.weight_mask is None
    x = np.ones((6, 3))
    with npseq.no_grad():
        cell(x)
        m, W, z = cell.recurrent_mask, cell.weight_mask, cell.zoneout_mask
        assert m.shape == (6, 4) and W.shape == (16, 4) and z[0].shape == z[1].shape == (6, 4)
        assert set(np.unique(m)) == {0.0, 2.0} and set(np.unique(W)) == {0.0, 2.0}
        cell(x)
        assert cell.recurrent_mask is m and cell.weight_mask is W  # kept
        assert not np.array_equal(cell.zoneout_mask[0], z[0])  # fresh every step
        cell.reset_dropout_mask()
        assert cell.recurrent_mask is None and cell.weight_mask is None
        cell(x)
        assert not np.array_equal(cell.recurrent_mask, m)
        with pytest.raises(ValueError, match=r"^x: the kept recurrent-dropout mask is for a "
                                             r"batch of 6, got a batch of 2; call "
                                             r"reset_dropout_mask\(\)"):
            cell(np.ones((2, 3)))


@pytest.mark.parametrize("name", sorted(CELLS))
def test_rate_zero_bit_identical_and_evaluation_draws_nothing(name):
    rng = np.random.default_rng(3)
    x, h = rng.standard_normal((4, 2)), rng.standard_normal((4, 3))
    state = (h, h[::-1].copy()) if name.startswith("lstm") else h
    results = []
    for options in ({}, dict(recurrent_dropout=0.0, weight_dropout=0.0, zoneout=0.0)):
        cell = make_cell(name, seed=0, **options)
        new = cell(x, state)
        results.append((flat(new), cell.backward(new)[0], cell.rng.random()))
    (a, da, ra), (b, db, rb) = results
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(da, db)
    assert ra == rb  # no draws
    cell = make_cell(name, seed=0, recurrent_dropout=0.5, weight_dropout=0.5, zoneout=0.3).eval()
    plain = make_cell(name, seed=0)
    before = cell.rng.bit_generator.state
    with npseq.no_grad():
        got, prev = flat(cell(x, state)), flat(state)
        want = flat(plain(x, state))
    assert cell.rng.bit_generator.state == before and cell.recurrent_mask is None
    for g, w, p in zip(got, want, prev):  # the expectation of zoneout, nothing dropped
        np.testing.assert_allclose(g, 0.3 * p + 0.7 * w, rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(recurrent_dropout=1.0), ValueError, "^recurrent_dropout"),
    (dict(weight_dropout="a"), TypeError, "^weight_dropout"),
    (dict(zoneout=(0.1, 0.2, 0.3)), ValueError, "^zoneout: expected a rate or a tuple of 2"),
])
def test_validation_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        npseq.LSTMCell(2, 3, **kwargs)


def test_recurrent_cell_of_a_kind_without_the_support_refuses():
    with pytest.raises(ValueError, match="^recurrent_dropout: .*MINGRU does not support"):
        npseq.RecurrentCell(MINGRU, 2, 3, recurrent_dropout=0.3)
    with pytest.raises(ValueError, match="^weight_dropout: .*MINGRU does not have"):
        npseq.RecurrentCell(MINGRU, 2, 3, weight_dropout=0.3)


def test_save_load_and_repr_keep_the_options(tmp_path):
    cell = npseq.LSTMCell(2, 3, recurrent_dropout=0.25, weight_dropout=0.1,
                          zoneout=(0.1, 0.2), seed=0)
    assert "recurrent_dropout=0.25, weight_dropout=0.1, zoneout=(0.1, 0.2)" in repr(cell)
    npseq.save(tmp_path / "c.npz", cell)
    again = npseq.load(tmp_path / "c.npz")
    assert (again.recurrent_dropout, again.weight_dropout) == (0.25, 0.1)
    assert tuple(again.zoneout) == (0.1, 0.2)
    for k in cell.params:
        np.testing.assert_array_equal(again.params[k], cell.params[k])


@pytest.mark.parametrize("options", [dict(recurrent_dropout=0.5), dict(weight_dropout=0.5),
                                     dict(zoneout=0.4),
                                     dict(recurrent_dropout=0.3, weight_dropout=0.4,
                                          zoneout=(0.2, 0.5))])
@pytest.mark.parametrize("name", sorted(CELLS))
def test_check_gradients_on_a_cell_in_training(name, options):
    """check_gradients draws the cell's masks for its own batch (a cell that kept masks
    for another batch is fine) and replays them for every perturbed forward."""
    if not name.startswith("lstm") and isinstance(options.get("zoneout"), tuple):
        options = dict(options, zoneout=options["zoneout"][0])
    rng = np.random.default_rng(4)
    cell = randomise(make_cell(name, 2, 3, seed=5, **options), rng)
    with npseq.no_grad():
        cell(np.ones((7, 2)))  # keeps masks for a batch of 7
    state = tuple(rng.standard_normal((4, 3)) for _ in range(cell.kind.num_states))
    errors = npseq.gradcheck.check_gradients(cell, rng.standard_normal((4, 2)),
                                             state if len(state) == 2 else state[0], seed=6)
    assert max(errors.values()) < 1e-7, errors
    assert (cell.recurrent_mask is not None) == ("recurrent_dropout" in options)
