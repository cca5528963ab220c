"""FinalState, the head that reads a layer's final state: values against the rows of ``h_n``
picked by hand (and against ``out``), every gradient of a whole Sequential against central
differences (drawn kinds, 1-2 layers, both directions, batch_first, unbatched, unequal
lengths, a random upstream gradient on ``y`` and on the final state), save/load, and the
argument checks."""
import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import numerical_gradient, rel_error
from npseq.model import FinalState
from strategies import arrays, examples, nonzero_floats, pack_state, unpack_state, upstream_arrays


def build(kind, I, H, C, seed=0, **kw):
    """Sequential(layer, FinalState(), Linear(D * H_out, C)), weights random and non-zero."""
    cls = {"lstm": npseq.LSTM, "gru": npseq.GRU, "rnn": npseq.RNN}[kind]
    layer = cls(I, H, seed=seed, **kw)
    D = layer.num_directions
    model = npseq.Sequential(layer, FinalState(), npseq.Linear(D * layer.output_size, C,
                                                                 seed=seed + 1))
    rng = np.random.default_rng(seed + 2)
    for k, p in model.params.items():  # biases bounded away from zero, either sign
        scale = rng.uniform(0.1, 0.6, p.shape) if "bias" in k else rng.uniform(0.05, 0.6,
                                                                                p.shape)
        p[...] = rng.choice([-1.0, 1.0], p.shape) * scale
    return model


@st.composite
def final_state_cases(draw):
    """Sizes and options first, then the input, lengths, initial state and upstream
    gradients of ``y`` and of the final state, all float64."""
    kind = draw(st.sampled_from(("lstm", "gru", "rnn")))
    L = draw(st.integers(1, 2))
    bidirectional = draw(st.booleans())
    batch_first = draw(st.booleans())
    I, H, C = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    proj = draw(st.integers(0, H - 1)) if kind == "lstm" and H > 1 else 0
    T = draw(st.integers(1, 4))
    B = draw(st.sampled_from((None, 1, 2, 3)))
    kw = dict(num_layers=L, bidirectional=bidirectional, batch_first=batch_first)
    if proj:
        kw["proj_size"] = proj
    model = build(kind, I, H, C, seed=draw(st.integers(0, 1000)), **kw)
    D, H_out = model.rnn.num_directions, model.rnn.output_size
    lead = () if B is None else (B,)
    x_shape = (T, I) if B is None else ((B, T, I) if batch_first else (T, B, I))
    x = draw(arrays(x_shape))
    lengths = None if B is None else draw(
        st.one_of(st.none(), st.lists(st.integers(1, T), min_size=B, max_size=B)))
    sizes = (H_out, H)[:2 if kind == "lstm" else 1]
    state = pack_state(kind, [draw(arrays((L * D,) + lead + (s,))) for s in sizes])
    dy = draw(upstream_arrays(lead + (C,)))
    dstate = pack_state(kind, [draw(upstream_arrays((L * D,) + lead + (s,))) for s in sizes])
    return model, x, lengths, state, dy, dstate


@settings(max_examples=examples(25))
@given(final_state_cases())
def test_sequential_gradients_match_central_differences(case):
    """L = <y, G> + <state_n, G_s>: every parameter, x and the initial state."""
    model, x, lengths, state, G, Gs = case

    def loss():
        with npseq.no_grad():
            y, s = model(x, state, lengths)
        return float(np.sum(y * G) + sum(np.sum(a * b) for a, b in
                                         zip(unpack_state(s), unpack_state(Gs))))

    model(x, state, lengths)
    model.zero_grad()
    dx, dstate0 = model.backward(G, Gs)
    errors = {k: rel_error(model.grads[k], numerical_gradient(loss, p))
              for k, p in model.params.items()}
    errors["x"] = rel_error(dx, numerical_gradient(loss, x))
    for i, (s, ds) in enumerate(zip(unpack_state(state), unpack_state(dstate0))):
        errors[f"state[{i}]"] = rel_error(ds, numerical_gradient(loss, s))
    assert max(errors.values()) < 1e-6, errors


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
def test_values_are_the_last_layers_final_h_concatenated(kind, bidirectional, batch_first):
    rng = np.random.default_rng(3)
    model = build(kind, 3, 4, 2, num_layers=2, bidirectional=bidirectional,
                  batch_first=batch_first)
    T, B, lengths = 5, 3, np.array([5, 2, 4])
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    head = model[1]
    with npseq.no_grad():
        out, state = model.rnn(x, lengths=lengths)
        h_n = unpack_state(state)[0]  # (4 or 2, B, 4)
        y_head = head(state, num_directions=model.rnn.num_directions)
        y_model, _ = model(x, lengths=lengths)
    if bidirectional:  # torch.cat((h_n[-2], h_n[-1]), dim=1): rows 2 and 3 of 4
        expected = np.concatenate([h_n[2], h_n[3]], axis=1)
    else:  # h_n[-1]: row 1 of 2
        expected = h_n[1]
    assert np.array_equal(y_head, expected)
    # and the same read from out: the forward direction at each sequence's last valid
    # step, the reverse direction at step 0 (it has read the whole sequence)
    seq = out.swapaxes(0, 1) if batch_first else out  # (T, B, D * H)
    fwd = seq[lengths - 1, np.arange(B), :4]
    assert np.array_equal(y_head[:, :4], fwd)
    if bidirectional:
        assert np.array_equal(y_head[:, 4:], seq[0, :, 4:])
    W, b = model[2].params["weight"], model[2].params["bias"]
    assert np.allclose(y_model, expected @ W.T + b, rtol=1e-13, atol=1e-13)


def test_backward_puts_dy_in_the_last_layers_rows_only():
    rng = np.random.default_rng(4)
    head = FinalState()
    h_n, c_n = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 5))  # L=3, D=2
    y = head((h_n, c_n), num_directions=2)
    assert y.shape == (2, 6)
    dy = rng.standard_normal((2, 6))
    dh_n, dc_n = head.backward(dy)
    assert np.array_equal(dh_n[4], dy[:, :3]) and np.array_equal(dh_n[5], dy[:, 3:])
    assert not dh_n[:4].any() and dc_n.shape == (6, 2, 5) and not dc_n.any()
    y1 = head(h_n, num_directions=1)  # a GRU's state: h_n alone, one direction
    assert np.array_equal(y1, h_n[5])
    dh_n = head.backward(dy[:, :3])
    assert isinstance(dh_n, np.ndarray) and np.array_equal(dh_n[5], dy[:, :3])
    assert not dh_n[:5].any()


def test_unbatched_input():
    rng = np.random.default_rng(5)
    model = build("lstm", 2, 3, 2, num_layers=2, bidirectional=True)
    x = rng.standard_normal((4, 2))  # (T, I)
    y, (h_n, c_n) = model(x)
    assert y.shape == (2,) and h_n.shape == (4, 3)
    dx, (dh0, dc0) = model.backward(np.array([0.3, -0.7]))
    assert dx.shape == (4, 2) and dh0.shape == (4, 3) and dc0.shape == (4, 3)
    with npseq.no_grad():
        y_batched, _ = model(x[:, None, :])
    assert np.allclose(y, y_batched[0], rtol=1e-14, atol=1e-14)


def test_sequential_backward_without_dy_is_the_final_state_gradient_alone():
    """dy = None: only dstate flows; a FinalState that added its own rows would show."""
    rng = np.random.default_rng(6)
    model = build("gru", 2, 3, 2, bidirectional=True)
    x = rng.standard_normal((4, 2, 2))
    dstate = rng.standard_normal((2, 2, 3))
    model(x)
    dx, dh0 = model.backward(None, dstate)
    model.rnn(x)
    dx_layer, dh0_layer = model.rnn.backward(None, dstate)
    assert np.array_equal(dx, dx_layer) and np.array_equal(dh0, dh0_layer)
    assert not model[2].grads["weight"].any()


def test_save_and_load_round_trip():
    rng = np.random.default_rng(7)
    model = build("lstm", 3, 4, 2, num_layers=2, bidirectional=True, batch_first=True)
    buf = io.BytesIO()
    npseq.save(buf, model)
    buf.seek(0)
    same = npseq.load(buf)
    assert [type(m).__name__ for m in same] == ["LSTM", "FinalState", "Linear"]
    x = rng.standard_normal((3, 5, 3))
    with npseq.no_grad():
        assert np.array_equal(same(x, lengths=[5, 1, 3])[0], model(x, lengths=[5, 1, 3])[0])


def test_the_callers_state_is_not_modified():
    rng = np.random.default_rng(8)
    h_n, c_n = rng.standard_normal((2, 2, 3)), rng.standard_normal((2, 2, 3))
    copies = h_n.copy(), c_n.copy()
    head = FinalState()
    y = head((h_n, c_n), num_directions=2)
    y[...] = 0
    head.backward(np.ones((2, 6)))
    assert np.array_equal(h_n, copies[0]) and np.array_equal(c_n, copies[1])


@pytest.mark.parametrize("call, err, match", [
    (lambda: FinalState()(np.zeros((2, 1, 3)), num_directions=3), ValueError,
     r"num_directions: expected an integer <= 2, got 3"),
    (lambda: FinalState()(np.zeros((2, 1, 3)), num_directions=True), TypeError,
     r"num_directions: expected an integer, got True"),
    (lambda: FinalState()(np.zeros((3, 1, 3)), num_directions=2), ValueError,
     r"state: expected h_n .* a multiple of num_directions \(2\), got \(3, 1, 3\)"),
    (lambda: FinalState()(np.zeros((2, 1, 1, 3))), ValueError,
     r"state: expected h_n of shape .* got \(2, 1, 1, 3\)"),
    (lambda: FinalState()((np.zeros((2, 1, 3)), np.zeros((2, 2, 3)))), ValueError,
     r"state\[1\] \(c_n\): expected shape \(2, 1, 'hidden_size'\) .* got \(2, 2, 3\)"),
    (lambda: FinalState()((np.zeros((2, 1, 3)),) * 3), TypeError,
     r"state: expected h_n or a tuple \(h_n, c_n\), got a tuple of length 3"),
    (lambda: FinalState()(None), TypeError, r"state: expected an array, got None"),
    (lambda: FinalState()(np.array(["a", "b"])), TypeError,
     r"state: expected a real numeric array"),
    (lambda: FinalState(2), TypeError, r"positional argument"),
    (lambda: npseq.Sequential(npseq.GRU(2, 3), npseq.Linear(3, 3), FinalState()), ValueError,
     r"modules\[2\]: FinalState reads the recurrent layer's final state, so it must come "
     r"right after the layer \(at index 1\), got it at index 2"),
    (lambda: npseq.Sequential(FinalState(), npseq.GRU(2, 3)), ValueError,
     r"modules\[0\]: FinalState .* \(at index 2\), got it at index 0"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_a_wrong_dy_is_rejected_and_the_backward_can_be_retried():
    rng = np.random.default_rng(9)
    head = FinalState()
    with pytest.raises(RuntimeError, match="no forward call to pair it with"):
        head.backward(np.zeros((1, 6)))
    h_n = rng.standard_normal((2, 1, 3))
    head(h_n, num_directions=2)
    with pytest.raises(ValueError, match=r"dy: expected shape \(1, 6\) \(the shape of y\), "
                                         r"got \(1, 3\)"):
        head.backward(np.zeros((1, 3)))
    assert head.pending_records == 1
    assert head.backward(None) is None and head.pending_records == 0
    with npseq.no_grad():
        head(h_n, num_directions=2)
    with pytest.raises(RuntimeError, match="inside npseq.no_grad"):
        head.backward(np.zeros((1, 6)))


def test_float32_state_stays_float32():
    h_n = np.ones((2, 1, 3), np.float32)
    head = FinalState()
    assert head(h_n, num_directions=2).dtype == np.float32
    assert head.backward(np.ones((1, 6))).dtype == np.float32
