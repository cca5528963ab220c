"""The engine's extra paths pinned to the plain ones: trace hook, no-grad forward, checkpointing."""
import numpy as np
import pytest

import npseq
from npseq.bptt import sequence_backward, sequence_forward
from npseq.cells.gru import GRU
from npseq.cells.lstm import LSTM
from npseq.cells.rnn import RNN_RELU, RNN_TANH

KINDS = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN_TANH, "RNN_RELU": RNN_RELU}


def _layer_params(kind, D, H, rng, proj=0):
    G = kind.num_gates
    H_out = proj or H
    p = {"weight_ih": rng.uniform(-0.6, 0.6, (G * H, D)),
         "weight_hh": rng.uniform(-0.6, 0.6, (G * H, H_out)),
         "bias_ih": rng.uniform(-0.5, 0.5, G * H),
         "bias_hh": rng.uniform(-0.5, 0.5, G * H)}
    if proj:
        p["weight_hr"] = rng.uniform(-0.6, 0.6, (proj, H))
    return p


def _carry(kind, B, H, rng, proj=0):
    sizes = ((proj or H), H)[:kind.num_states]
    return tuple(rng.standard_normal((B, s)) for s in sizes)


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("reverse", [False, True])
def test_trace_is_the_gradient_of_each_carry(name, reverse):
    """trace[t] = dout[t] + the gradient a backward over the remaining steps sends to carry_t."""
    kind = KINDS[name]
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 6
    p = _layer_params(kind, D, H, rng)
    x = rng.standard_normal((T, B, D))
    carry0 = _carry(kind, B, H, rng)
    dout = rng.standard_normal((T, B, H))
    dlast = _carry(kind, B, H, rng)
    _, _, record = sequence_forward(kind, x, carry0, p, reverse=reverse)
    *_, trace = sequence_backward(kind, dout, dlast, record, p, trace=True)
    assert len(trace) == kind.num_states and all(a.shape[:2] == (T, B) for a in trace)
    for t in range(T):
        done = slice(0, t + 1) if not reverse else slice(t, T)  # steps up to and with t
        rest = slice(t + 1, T) if not reverse else slice(0, t)
        _, carry_t, _ = sequence_forward(kind, x[done], carry0, p, reverse=reverse, keep=False)
        if rest.stop - rest.start == 0:
            expected = (dlast[0] + dout[t],) + dlast[1:]
        else:
            _, _, rec = sequence_forward(kind, x[rest], carry_t, p, reverse=reverse)
            _, dcarry_t, _ = sequence_backward(kind, dout[rest], dlast, rec, p)
            expected = (dcarry_t[0] + dout[t],) + tuple(dcarry_t[1:])
        for got, want in zip(trace, expected):
            np.testing.assert_allclose(got[t], want, rtol=1e-12, atol=1e-12)


def test_trace_off_returns_three_values_and_layer_trace_fills_dict():
    rng = np.random.default_rng(2)
    m = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    x = rng.standard_normal((2, 5, 3))
    out, _ = m(x, lengths=[5, 3])
    dout = rng.standard_normal(out.shape)
    m2 = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    m2(x, lengths=[5, 3])
    trace = {}
    dx, _ = m.backward(dout, trace=trace)
    dx2, _ = m2.backward(dout)
    np.testing.assert_array_equal(dx, dx2)
    assert sorted(trace) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for dh, dc in trace.values():
        assert dh.shape == (5, 2, 4) and dc.shape == (5, 2, 4)
        assert np.all(dh[3:, 1] == 0) and np.all(dc[3:, 1] == 0)  # padded steps of sequence 1
        assert np.any(dh[:3, 1] != 0)
    # the top layer's forward-direction dh at the last step is the output gradient there
    np.testing.assert_array_equal(trace[(1, 0)][0][4, 0], dout[0, 4, :4])
    with pytest.raises(TypeError, match="trace"):
        m(x)
        m.backward(dout, trace=[])
