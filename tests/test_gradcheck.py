"""``npseq.gradcheck`` itself: central differences, the error measure, and that a wrong
backward pass is caught (a gradient checker that never fails proves nothing)."""
import numpy as np
import pytest

import npseq
from npseq.cells import gru, lstm, rnn
from npseq.cells.base import CellKind
from npseq.gradcheck import check_gradients, format_report, numerical_gradient, rel_error


def test_numerical_gradient_of_a_known_function():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    w = rng.standard_normal((3, 4))
    saved = x.copy()
    g = numerical_gradient(lambda: float(np.sum(np.sin(x) * w) + np.sum(x ** 3)), x)
    assert rel_error(g, np.cos(saved) * w + 3 * saved ** 2) < 1e-8
    np.testing.assert_array_equal(x, saved)  # restored bit for bit


def test_numerical_gradient_refuses_an_array_it_cannot_perturb_in_place():
    x = np.zeros((4, 4))[:, :2]  # rows 32 bytes apart, 2 elements each: no flat view
    with pytest.raises(ValueError, match="x"):
        numerical_gradient(lambda: float(np.sum(x)), x)


def test_rel_error():
    assert rel_error([1.0, 2.0], [1.0, 2.2]) == pytest.approx(0.2 / 2.2, rel=1e-12)
    assert rel_error([-4.0], [4.0]) == pytest.approx(2.0)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    with pytest.raises(ValueError, match="shapes"):
        rel_error(np.zeros(2), np.zeros(3))


def test_rel_error_floor_measures_tiny_arrays_against_it():
    a, b = np.array([1e-5, -2e-5]), np.array([1e-5 + 4e-10, -2e-5])
    assert rel_error(a, b) == pytest.approx(4e-10 / 2e-5, rel=1e-9)  # its own scale
    assert rel_error(a, b, floor=0.05) == pytest.approx(4e-10 / 0.05, rel=1e-9)
    big = np.array([3.0, -1.0])
    assert rel_error(big, big + 1e-3, floor=0.05) == pytest.approx(1e-3 / 3.001, rel=1e-9)
    assert rel_error(np.zeros(2), np.zeros(2), floor=0.05) == 0.0
    for bad, error in [(-1.0, ValueError), (np.inf, ValueError), ("0.1", TypeError),
                       (True, TypeError)]:
        with pytest.raises(error, match="floor"):
            rel_error(a, b, floor=bad)


def test_check_gradients_refuses_a_bad_floor():
    cell = npseq.GRUCell(3, 4, seed=0)
    with pytest.raises(ValueError, match="floor: expected a finite number >= 0, got -0.1"):
        check_gradients(cell, np.ones((2, 3)), floor=-0.1)


def test_format_report_marks_failures():
    text = format_report({"x": 1e-9, "weight_hh": 0.3})
    lines = text.splitlines()
    assert "x" in lines[1] and "yes" in lines[1]
    assert "weight_hh" in lines[2] and "NO" in lines[2]
    assert lines[-1].startswith("worst") and "3.00e-01" in lines[-1] and "NO" in lines[-1]


# -- a deliberately wrong backward is caught -------------------------------------------------
def broken(kind: CellKind, how: str) -> CellKind:
    """``kind`` with one mistake in its step backward."""

    def step_backward(dcarry, cache, p):
        g = kind.step_backward(dcarry, cache, p)
        if how == "dgh":  # a wrong recurrent pre-activation gradient: weight_hh, bias_hh
            return g._replace(dgh=1.1 * g.dgh)
        if how == "dgx":  # input projection gradient dropped: x, weight_ih, bias_ih
            return g._replace(dgx=np.zeros_like(g.dgx))
        if how == "swap":  # LSTM: dh_prev and dc_prev swapped
            return g._replace(dcarry_prev=g.dcarry_prev[::-1])
        raise AssertionError(how)

    return kind._replace(step_backward=step_backward)


CASES = [  # (cell kind, mistake, tensors that must be flagged)
    (rnn.RNN_TANH, "dgh", {"weight_hh", "bias_hh"}),
    (rnn.RNN_TANH, "dgx", {"x", "weight_ih", "bias_ih"}),
    (gru.GRU, "dgh", {"weight_hh", "bias_hh"}),
    (gru.GRU, "dgx", {"x", "weight_ih", "bias_ih"}),
    (lstm.LSTM, "dgh", {"weight_hh", "bias_hh"}),
    (lstm.LSTM, "swap", {"state[0]", "state[1]"}),
]


def cell_class(kind: CellKind):
    return {"LSTM": npseq.LSTMCell, "GRU": npseq.GRUCell}.get(kind.name, npseq.RNNCell)


@pytest.mark.parametrize("kind, how, flagged", CASES,
                         ids=[f"{k.name}-{h}" for k, h, _ in CASES])
def test_check_gradients_catches_a_wrong_cell_backward(kind, how, flagged):
    rng = np.random.default_rng(1)
    Broken = type("Broken", (cell_class(kind),), {})
    cell = Broken(3, 4, seed=2)
    cell.kind = broken(kind, how)
    x = rng.standard_normal((2, 3))
    n = kind.num_states
    state = tuple(rng.standard_normal((2, 4)) for _ in range(n))
    errors = check_gradients(cell, x, state if n == 2 else state[0])
    for name in flagged:
        assert errors[name] > 1e-2, format_report(errors)
    correct = set(errors) - flagged
    assert correct  # the mistake is located, not everything flagged
    for name in correct:
        assert errors[name] < 1e-6, format_report(errors)
    assert "NO" in format_report(errors).splitlines()[-1]


def test_check_gradients_catches_a_wrong_layer_backward():
    rng = np.random.default_rng(3)
    m = npseq.GRU(3, 4, num_layers=2, bidirectional=True, seed=4)
    m.kind = broken(gru.GRU, "dgh")
    errors = check_gradients(m, rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 4)))
    assert errors["weight_hh_l0"] > 1e-2 and errors["weight_hh_l1_reverse"] > 1e-2


def test_check_gradients_passes_a_correct_cell_and_leaves_things_as_documented():
    rng = np.random.default_rng(5)
    cell = npseq.LSTMCell(3, 4, seed=6)
    x = rng.standard_normal((2, 3))
    state = (rng.standard_normal((2, 4)), rng.standard_normal((2, 4)))
    copies = [x.copy(), state[0].copy(), state[1].copy()]
    params = cell.state_dict()
    errors = check_gradients(cell, x, state, seed=7)
    assert set(errors) == {"x", "state[0]", "state[1]", *cell.params}
    assert max(errors.values()) < 1e-7, format_report(errors)
    for a, b in zip((x, *state), copies):  # inputs untouched
        np.testing.assert_array_equal(a, b)
    for k, v in cell.params.items():  # parameters restored exactly
        np.testing.assert_array_equal(v, params[k])
    # grads hold the analytic gradients of this check: L = sum <out_k, G_k>, G from seed 7
    up = np.random.default_rng(7)
    G = [up.standard_normal((2, 4)), up.standard_normal((2, 4))]
    expected = npseq.LSTMCell(3, 4, seed=6)
    expected(x, state)
    expected.backward(tuple(G))
    for k, g in cell.grads.items():
        np.testing.assert_allclose(g, expected.grads[k], rtol=1e-13, atol=1e-14)
    with pytest.raises(RuntimeError):  # and no forward call is left unpaired
        cell.backward(tuple(G))


def test_check_gradients_replays_dropout_masks():
    """A layer with dropout draws new masks each forward; the checker resets ``rng`` so
    that the finite differences see the masks the analytic backward used."""
    rng = np.random.default_rng(8)
    m = npseq.LSTM(3, 4, num_layers=3, dropout=0.5, seed=9)
    errors = check_gradients(m, rng.standard_normal((4, 2, 3)))
    assert max(errors.values()) < 1e-6, format_report(errors)


@pytest.mark.parametrize("call, exc, message", [
    (lambda c, x: check_gradients(c, x, eps=0), ValueError,
     "eps: expected a finite number > 0, got 0"),
    (lambda c, x: check_gradients(c, x, eps=-1e-6), ValueError, "eps: .* got -1e-06"),
    (lambda c, x: check_gradients(c, x, eps=float("inf")), ValueError, "eps: .* got inf"),
    (lambda c, x: check_gradients(c, x, eps=float("nan")), ValueError, "eps: .* got nan"),
    (lambda c, x: check_gradients(c, x, eps="1e-6"), TypeError, "eps: expected a positive"),
    (lambda c, x: check_gradients(c, x, seed="a"), TypeError, "seed: expected None, an integ"),
    (lambda c, x: check_gradients(c, x, seed=-1), ValueError, "seed: expected a non-negative"),
    (lambda c, x: check_gradients("cell", x), TypeError,
     "module: expected an npseq cell or layer .*, got str"),
    (lambda c, x: check_gradients(lambda x, s: x, x), TypeError, "module: .* got function"),
    (lambda c, x: check_gradients(c, "ab"), TypeError, "x: expected a real numeric array"),
    (lambda c, x: numerical_gradient(lambda: 0.0, x, eps=0), ValueError, "eps: .* got 0"),
    (lambda c, x: numerical_gradient(lambda: 0.0, x, eps=True), TypeError, "eps: .* got True"),
    (lambda c, x: numerical_gradient(1.0, x), TypeError, "f: expected a callable"),
    (lambda c, x: numerical_gradient(lambda: 0.0, [1.0, 2.0]), TypeError,
     "x: expected a float numpy array .*, got list"),
    (lambda c, x: numerical_gradient(lambda: 0.0, np.arange(3)), TypeError,
     "x: expected a float numpy array .*, got ndarray of dtype int64"),
    (lambda c, x: format_report([("x", 1e-9)]), TypeError, "errors: expected the dict of"),
    (lambda c, x: format_report({"x": 1e-9}, tol=-1), ValueError, "tol: .* got -1"),
])
def test_bad_arguments_fail_at_the_boundary_naming_them(call, exc, message):
    """Neither a ZeroDivisionError nor an AttributeError nor numpy's own message: the
    argument, what was expected and what was given; nothing is changed on the way."""
    cell = npseq.GRUCell(3, 2, seed=0)
    x = np.random.default_rng(0).standard_normal((2, 3))
    saved = {k: p.copy() for k, p in cell.params.items()}, x.copy()
    with pytest.raises(exc, match="^" + message):
        call(cell, x)
    for k, p in cell.params.items():
        np.testing.assert_array_equal(p, saved[0][k])
    np.testing.assert_array_equal(x, saved[1])
    with pytest.raises(RuntimeError, match="no forward"):  # no forward was left on the tape
        cell.backward(np.ones((2, 2)))
