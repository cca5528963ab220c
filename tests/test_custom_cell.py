"""User-written cells: npseq.CellKind + npseq.Recurrent / npseq.RecurrentCell.

A kind built from npseq's own step functions must give exactly the built-in layers, so every
layer option (stacking, directions, lengths, dropout, batch_first, unbatched, state in and
out) works for a user's cell; a cell written in the test (with its own parameter) passes the
gradient checker in all of them; and a malformed CellKind fails with a clear message.
"""
import itertools
import pathlib
import runpy

import numpy as np
import pytest

import npseq
from npseq.cells.lstm import lstm_step_backward, lstm_step_forward
from npseq.cells.rnn import rnn_step_backward, rnn_step_forward
from npseq.gradcheck import check_gradients, format_report

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "custom_cell.py"
ELMAN = npseq.CellKind("ELMAN", 1, 1, rnn_step_forward, rnn_step_backward)
MY_LSTM = npseq.CellKind("MY_LSTM", 4, 2, lstm_step_forward, lstm_step_backward)


@pytest.fixture(scope="module")
def example():
    """The example script as a module (its cell, its main)."""
    return runpy.run_path(str(EXAMPLE))


def randomise(module, rng):
    for p in module.params.values():
        p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.8, p.shape)


def parts(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


def forward_backward(m, x, state, dout, dstate, lengths):
    m.zero_grad()
    out, st_n = m(x, state, lengths=lengths)
    dx, d0 = m.backward(dout, dstate)
    return [out, *parts(st_n), dx, *parts(d0), *(m.grads[k].copy() for k in m.grads)]


@pytest.mark.parametrize("kind,builtin", [(ELMAN, npseq.RNN), (MY_LSTM, npseq.LSTM)])
@pytest.mark.parametrize("options,lengths", [
    (dict(num_layers=2, bidirectional=True, batch_first=True, dropout=0.3), [4, 1, 3]),
    (dict(num_layers=1, bias=False), None)])
@pytest.mark.parametrize("fused", [False, True])
def test_a_kind_of_builtin_steps_is_exactly_the_builtin_layer(kind, builtin, options,
                                                              lengths, fused, monkeypatch):
    """Exactly, step by step; with the built-in LSTM's fused path on (where it applies: no
    lengths), to rounding: the user's kind has the steps but not the fused path."""
    import npseq.bptt
    monkeypatch.setattr(npseq.bptt, "FUSED", fused)
    mine = npseq.Recurrent(kind, 3, 4, seed=11, **options)
    ref = builtin(3, 4, seed=11, **options)
    assert list(mine.params) == list(ref.params)
    rng = np.random.default_rng(1)
    B, T = 3, 4
    x = rng.standard_normal((B, T, 3) if options.get("batch_first") else (T, B, 3))
    LD = mine.num_layers * mine.num_directions
    n = kind.num_states
    state = tuple(rng.standard_normal((LD, B, 4)) for _ in range(n))
    dstate = tuple(rng.standard_normal((LD, B, 4)) for _ in range(n))
    state, dstate = (state, dstate) if n == 2 else (state[0], dstate[0])
    dout = rng.standard_normal(x.shape[:2] + (4 * mine.num_directions,))
    for a, b in zip(forward_backward(mine, x, state, dout, dstate, lengths),
                    forward_backward(ref, x, state, dout, dstate, lengths)):
        if fused:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
        else:
            np.testing.assert_array_equal(a, b)


def test_unbatched_input_and_cell_steps_match_the_builtin(monkeypatch):
    import npseq.bptt
    monkeypatch.setattr(npseq.bptt, "FUSED", False)  # exactly: the steps, not the fused path
    rng = np.random.default_rng(2)
    mine, ref = npseq.Recurrent(MY_LSTM, 3, 4, seed=3), npseq.LSTM(3, 4, seed=3)
    x = rng.standard_normal((5, 3))
    state = (rng.standard_normal((1, 4)), rng.standard_normal((1, 4)))
    for a, b in zip(parts(mine(x, state)[1]), parts(ref(x, state)[1])):
        np.testing.assert_array_equal(a, b)
    cell, ref_cell = npseq.RecurrentCell(ELMAN, 3, 4, seed=4), npseq.RNNCell(3, 4, seed=4)
    np.testing.assert_array_equal(cell(x[0]), ref_cell(x[0]))
    for a, b in zip(cell.backward(np.ones(4)), ref_cell.backward(np.ones(4))):
        np.testing.assert_array_equal(a, b)


# -- a cell written by a user ----------------------------------------------------------------
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,lengths", [
    (2, True, True, [4, 1, 3]), (1, False, False, None), (2, False, False, [2, 4, 4])])
def test_example_cell_passes_the_gradient_checker_in_layers(example, num_layers,
                                                            bidirectional, batch_first,
                                                            lengths):
    m = npseq.Recurrent(example["LEAKY_RNN"], 2, 3, num_layers, bidirectional=bidirectional,
                        batch_first=batch_first, seed=0)
    rng = np.random.default_rng(num_layers + 2 * bidirectional)
    randomise(m, rng)
    x = rng.standard_normal((3, 4, 2) if batch_first else (4, 3, 2))
    h0 = rng.standard_normal((num_layers * m.num_directions, 3, 3))
    errors = check_gradients(m, x, h0, seed=5, lengths=lengths)
    assert {k for k in errors if k.startswith("leak")} == {k for k in m.params
                                                           if k.startswith("leak")}
    assert max(errors.values()) < 1e-6, format_report(errors)


@pytest.mark.parametrize("x_shape,h_shape", [((2, 3), (2, 4)), ((3,), (4,))])
def test_example_cell_passes_the_gradient_checker_as_a_cell(example, x_shape, h_shape):
    cell = npseq.RecurrentCell(example["LEAKY_RNN"], 3, 4, seed=0)
    rng = np.random.default_rng(6)
    randomise(cell, rng)
    errors = check_gradients(cell, rng.standard_normal(x_shape), rng.standard_normal(h_shape))
    assert set(errors) == {"x", "state", *cell.params}
    assert max(errors.values()) < 1e-6, format_report(errors)


def test_gradient_checker_catches_a_wrong_user_backward(example):
    def wrong(dcarry, cache, p):
        g = example["leaky_step_backward"](dcarry, cache, p)
        return g._replace(dparams={"leak": 2 * g.dparams["leak"]})

    kind = example["LEAKY_RNN"]._replace(step_backward=wrong)
    m = npseq.Recurrent(kind, 2, 3, seed=0)
    rng = np.random.default_rng(7)
    randomise(m, rng)
    errors = check_gradients(m, rng.standard_normal((3, 2, 2)), rng.standard_normal((1, 2, 3)))
    assert errors["leak_l0"] > 0.1
    assert max(e for k, e in errors.items() if k != "leak_l0") < 1e-6


def test_example_runs_and_reports_success(example, capsys):
    assert example["main"]([]) == 0
    printed = capsys.readouterr().out
    assert "leak_l1_reverse" in printed and "NO" not in printed


def test_extra_parameters_are_suffixed_initialised_and_trained():
    kind = npseq.CellKind(
        "WITH_EXTRAS", 1, 1, rnn_step_forward, rnn_step_backward,
        extra_params=(npseq.ParamSpec("scale", lambda H: (2, H), 0.5),
                      npseq.ParamSpec("table", lambda H: (H, 3))))
    m = npseq.Recurrent(kind, 3, 4, num_layers=2, bidirectional=True, seed=0)
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        np.testing.assert_array_equal(m.params["scale" + sfx], np.full((2, 4), 0.5))
        table = m.params["table" + sfx]
        assert table.shape == (4, 3) and 0 < np.max(np.abs(table)) <= 0.5
    assert set(m.grads) == set(m.params)
    cell = npseq.RecurrentCell(kind, 3, 4, bias=False, seed=0)
    assert list(cell.params) == ["weight_ih", "weight_hh", "scale", "table"]
    assert repr(cell).startswith("RecurrentCell(WITH_EXTRAS, 3, 4")
    assert repr(m).startswith("Recurrent(WITH_EXTRAS, 3, 4, num_layers=2")


def _kind(**changes):
    return ELMAN._replace(**changes)


def test_a_kind_that_is_not_a_cellkind_fails_naming_the_argument():
    for build in (lambda: npseq.Recurrent("LSTM", 3, 4), lambda: npseq.RecurrentCell("LSTM", 3, 4)):
        with pytest.raises(TypeError, match="^kind: expected an npseq.CellKind"):
            build()


@pytest.mark.parametrize("changes,error,message", [
    (dict(num_gates=0), ValueError, "CellKind.num_gates"),
    (dict(num_gates=1.5), TypeError, "CellKind.num_gates"),
    (dict(num_states=0), ValueError, "CellKind.num_states"),
    (dict(num_states=3), ValueError, "CellKind.state_names"),  # 3 parts need their names
    (dict(num_states=2, state_names=("c", "h")), ValueError, "CellKind.state_names"),
    (dict(state_sizes=(3,)), TypeError, "CellKind.state_sizes"),
    (dict(step_forward=None), TypeError, "CellKind.step_forward"),
    (dict(step_backward="f"), TypeError, "CellKind.step_backward"),
    (dict(extra_params=npseq.ParamSpec("a", lambda H: (H,))), TypeError,
     r"CellKind.extra_params\[0\]: expected an npseq.ParamSpec"),
    (dict(extra_params=None), TypeError, "CellKind.extra_params"),
    (dict(extra_params=(npseq.ParamSpec("weight_hh", ("H",)),)), ValueError,
     r"CellKind.extra_params\[0\].name"),
    (dict(extra_params=(npseq.ParamSpec("a", ("H",)),) * 2), ValueError,
     r"CellKind.extra_params\[1\].name"),
    (dict(extra_params=(npseq.ParamSpec("a", ("X",)),)), TypeError,
     r"CellKind.extra_params\[0\].shape"),
    (dict(extra_params=(npseq.ParamSpec("a", 3),)), TypeError,
     r"CellKind.extra_params\[0\].shape"),
    (dict(extra_params=(npseq.ParamSpec("a", ("H",), "ones"),)), TypeError,
     r"CellKind.extra_params\[0\].init"),
    (dict(has_weight_hh="no"), TypeError, "CellKind.has_weight_hh"),
])
def test_malformed_kinds_fail_when_built_naming_the_field(changes, error, message):
    with pytest.raises(error, match=f"^{message}"):
        _kind(**changes)


def test_recurrent_validates_the_layer_arguments_as_the_builtins():
    with pytest.raises(ValueError, match="^hidden_size"):
        npseq.Recurrent(ELMAN, 3, 0)
    with pytest.raises(TypeError, match="^bidirectional"):
        npseq.Recurrent(ELMAN, 3, 4, bidirectional="yes")
    m = npseq.Recurrent(MY_LSTM, 3, 4)
    with pytest.raises(TypeError, match="^state"):
        m(np.zeros((2, 1, 3)), np.zeros((1, 1, 4)))  # a two-state kind takes a tuple


# -- a step that returns dgh = dgx at some steps and a separate array at others ---------------
def mixing_elman(separate_when, takes_out):
    """The Elman cell, whose ``step_backward`` returns ``dgh`` as the very ``dgx`` array at
    some steps and as a separate array of the same values at others, as the contract allows
    (``StepGrads`` only asks for the gradients). ``separate_when(call, dh)`` decides; with
    ``takes_out`` the step accepts ``out=`` and writes ``dgx`` there."""
    calls = itertools.count()

    def mixed(g, dh):
        return g._replace(dgh=g.dgx.copy()) if separate_when(next(calls), dh) else g

    if takes_out:
        def step_backward(dcarry, cache, p, *, out=None):
            return mixed(rnn_step_backward(dcarry, cache, p, out=out), dcarry[0])
    else:
        def step_backward(dcarry, cache, p):
            return mixed(rnn_step_backward(dcarry, cache, p), dcarry[0])
    return npseq.CellKind("MIXING_ELMAN", 1, 1, rnn_step_forward, step_backward)


SEPARATE_WHEN = {
    "alternate": lambda call, dh: call % 2 == 1,
    "every_third": lambda call, dh: call % 3 == 0,
    "after_the_first": lambda call, dh: call > 0,
    "data": lambda call, dh: dh.sum() > 0,  # depends on the values (and on the batch size)
}
MIXING = [(name, takes_out) for name in SEPARATE_WHEN for takes_out in (False, True)]


@pytest.mark.parametrize("name,takes_out", MIXING, ids=[f"{n}-out={o}" for n, o in MIXING])
def test_a_step_mixing_dgh_is_dgx_and_not_gets_correct_gradients(name, takes_out):
    """Central differences in a 2-layer bidirectional layer with lengths, and the built-in
    RNN with the same weights (whose step always returns dgh = dgx), at a size within one
    block and at one past several blocks of the driver (about 512 rows of (T*B, .))."""
    kind = mixing_elman(SEPARATE_WHEN[name], takes_out)
    rng = np.random.default_rng(sum(map(ord, name)) + takes_out)
    m = npseq.Recurrent(kind, 2, 3, num_layers=2, bidirectional=True, seed=0)
    randomise(m, rng)
    h0 = rng.standard_normal((4, 3, 3))
    errors = check_gradients(m, rng.standard_normal((5, 3, 2)), h0, seed=1,
                             lengths=[5, 2, 4])
    assert max(errors.values()) < 1e-6, format_report(errors)

    builtin = npseq.RNN(2, 3, num_layers=2, bidirectional=True, seed=1)
    builtin.load_state_dict(m.params)
    T, B = 300, 5  # 1500 rows
    x = rng.standard_normal((T, B, 2))
    h0 = rng.standard_normal((4, B, 3))
    dout, dh_n = rng.standard_normal((T, B, 6)), rng.standard_normal((4, B, 3))
    for a, b in zip(forward_backward(m, x, h0, dout, dh_n, [300, 31, 1, 299, 170]),
                    forward_backward(builtin, x, h0, dout, dh_n, [300, 31, 1, 299, 170])):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["alternate", "after_the_first"])
def test_a_step_that_declares_out_but_returns_fresh_arrays_gets_correct_gradients(name):
    """``out=`` is an offer, not a duty: a step may return its own ``dgx`` instead."""
    separate_when = SEPARATE_WHEN[name]
    calls = itertools.count()

    def step_backward(dcarry, cache, p, *, out=None):
        g = rnn_step_backward(dcarry, cache, p)  # out not used: dgx is a fresh array
        return g._replace(dgh=g.dgx.copy()) if separate_when(next(calls), dcarry[0]) else g

    kind = npseq.CellKind("FRESH_ELMAN", 1, 1, rnn_step_forward, step_backward)
    rng = np.random.default_rng(3)
    m = npseq.Recurrent(kind, 2, 3, num_layers=2, bidirectional=True, seed=0)
    randomise(m, rng)
    errors = check_gradients(m, rng.standard_normal((5, 3, 2)),
                             rng.standard_normal((4, 3, 3)), seed=1, lengths=[5, 2, 4])
    assert max(errors.values()) < 1e-6, format_report(errors)
