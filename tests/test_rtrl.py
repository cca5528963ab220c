"""npseq.rtrl: real-time recurrent learning gives BPTT's gradients (float64, to 1e-10)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import rel_error
from npseq.rtrl import rtrl_gradients

from strategies import (arrays, examples, layer_configs, pack_state,
                        param_arrays, unpack_state, upstream_arrays)

TOL = 1e-10


def _close(a, b, scale):
    """``max |a - b| <= TOL * max(max |a|, max |b|, scale)``.

    ``scale`` is the size of the terms the gradient sums (upstream gradient times input):
    where those terms cancel to an exact zero, BPTT and RTRL both leave a rounding residue of
    about 1e-16 * scale (e.g. 2e-20 against 0), which a purely relative error calls 100%.
    """
    a, b = np.asarray(a), np.asarray(b)
    bound = max(np.max(np.abs(a), initial=0), np.max(np.abs(b), initial=0), scale)
    return a.shape == b.shape and np.max(np.abs(a - b), initial=0) <= TOL * bound


@st.composite
def rtrl_cases(draw):
    """A single-layer configuration, drawn parameters, input, state and upstream gradients."""
    cfg = draw(layer_configs(max_layers=1, max_size=4, max_len=5, dropout=False))
    cfg.bidirectional, cfg.proj_size = False, 0
    m = cfg.build()
    m.load_state_dict(draw(param_arrays({k: v.shape for k, v in m.params.items()},
                                        cfg.hidden_size)))
    x = draw(arrays(cfg.x_shape()))
    state = (pack_state(cfg.kind, [draw(arrays(s)) for s in cfg.state_shapes()])
             if draw(st.booleans()) else None)
    dout = draw(upstream_arrays(cfg.out_shape()))
    dstate = (pack_state(cfg.kind, [draw(upstream_arrays(s)) for s in cfg.state_shapes()])
              if draw(st.booleans()) else None)
    return cfg, m, x, state, dout, dstate


@settings(max_examples=examples(40))
@given(case=rtrl_cases())
def test_rtrl_equals_bptt(case):
    cfg, m, x, state, dout, dstate = case
    params = {k: v.copy() for k, v in m.params.items()}
    inputs = [np.copy(a) for a in (x, dout)]
    grads, out, state_n, dstate0 = rtrl_gradients(m, x, dout, dstate, state)
    assert all(np.all(g == 0) for g in m.grads.values())  # RTRL leaves module.grads alone
    for k in params:
        np.testing.assert_array_equal(m.params[k], params[k])
    for before, after in zip(inputs, (x, dout)):
        np.testing.assert_array_equal(before, after)

    want_out, want_state = m(x, state)
    _, want_dstate0 = m.backward(dout, dstate)
    scale = np.max(np.abs(dout)) * max(1.0, np.max(np.abs(x)))
    assert sorted(grads) == sorted(m.grads)
    for k in m.grads:
        assert _close(grads[k], m.grads[k], scale), k
    assert _close(out, want_out, 1.0)
    for a, b in zip(unpack_state(state_n), unpack_state(want_state)):
        assert _close(a, b, 1.0)
    for a, b in zip(unpack_state(dstate0), unpack_state(want_dstate0)):
        assert _close(a, b, scale)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_rtrl_equals_bptt_on_a_longer_sequence(kind):
    """T = 30 with weights large enough that the sensitivities grow and shrink."""
    rng = np.random.default_rng(12)
    T, B, D, H = 30, 2, 3, 4
    m = {"lstm": npseq.LSTM, "gru": npseq.GRU, "rnn_tanh": npseq.RNN}[kind](D, H, seed=0)
    for k, v in m.params.items():
        v[...] = rng.uniform(-1.0, 1.0, v.shape) if k.startswith("weight") else \
            rng.choice([-1, 1], v.shape) * rng.uniform(0.1, 0.6, v.shape)
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, H))
    grads, *_ = rtrl_gradients(m, x, dout)
    m(x)
    m.backward(dout)
    for k in m.grads:
        assert rel_error(grads[k], m.grads[k]) < TOL, k
    assert max(np.abs(g).max() for g in grads.values()) > 0.1  # a non-trivial gradient


def test_rtrl_rejects_what_it_does_not_cover():
    x = np.ones((3, 1, 2))
    with pytest.raises(ValueError, match="num_layers=1"):
        rtrl_gradients(npseq.GRU(2, 3, num_layers=2), x, np.ones((3, 1, 3)))
    with pytest.raises(ValueError, match="bidirectional"):
        rtrl_gradients(npseq.GRU(2, 3, bidirectional=True), x, np.ones((3, 1, 6)))
    with pytest.raises(ValueError, match="proj_size"):
        rtrl_gradients(npseq.LSTM(2, 3, proj_size=1), x, np.ones((3, 1, 1)))
    with pytest.raises(TypeError, match="module"):
        rtrl_gradients(npseq.GRUCell(2, 3), x, np.ones((3, 1, 3)))
    with pytest.raises(ValueError, match="dout"):
        rtrl_gradients(npseq.GRU(2, 3), x, np.ones((3, 1, 4)))
    with pytest.raises(ValueError, match="x"):
        rtrl_gradients(npseq.GRU(2, 3), np.ones((3, 1, 5)), np.ones((3, 1, 3)))
    with pytest.raises(ValueError, match="dstate"):
        rtrl_gradients(npseq.LSTM(2, 3), x, np.ones((3, 1, 3)), (np.ones((1, 1, 4)), None))


@pytest.mark.parametrize("make", [
    lambda: npseq.LSTM(3, 4, activation="relu", recurrent_activation="hard_sigmoid", seed=0),
    lambda: npseq.GRU(3, 4, activation="relu", seed=0),
    lambda: npseq.GRU(3, 4, recurrent_activation="hard_sigmoid", batch_first=True, seed=0),
])
def test_rtrl_follows_the_activation_options(make):
    rng = np.random.default_rng(13)
    m = make()
    x = 2 * rng.standard_normal((2, 8, 3) if m.batch_first else (8, 2, 3))
    dout = rng.standard_normal(x.shape[:2] + (4,))
    grads, *_ = rtrl_gradients(m, x, dout)
    m(x)
    m.backward(dout)
    for k in m.grads:
        assert rel_error(grads[k], m.grads[k]) < TOL, k


def test_rtrl_rejects_cells_with_their_own_parameter_gradients():
    m = npseq.GRU(2, 3, reset_after=False)
    with pytest.raises(ValueError, match="reset_after"):
        rtrl_gradients(m, np.ones((3, 1, 2)), np.ones((3, 1, 3)))
    for kw in (dict(layer_norm=True), dict(peephole=True)):
        with pytest.raises(ValueError, match="extra cell parameters"):
            rtrl_gradients(npseq.LSTM(2, 3, **kw), np.ones((3, 1, 2)), np.ones((3, 1, 3)))
