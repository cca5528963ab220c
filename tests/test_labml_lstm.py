"""labml's LayerNorm LSTM (``layer_norm="labml"``): central differences over its options as
a cell and as a layer, the step against its equations written here in NumPy, how it differs
from Ba et al.'s placement, numerics, parameters, validation, save/load. Torch parity:
test_labml_lstm_torch.py."""
import pickle

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import check_gradients
from tests.strategies import arrays, examples, nonzero_floats

LN_NAMES = [f"ln_{k}_{w}" for k in "ifgoc" for w in ("weight", "bias")]
ACTIVATION_PAIRS = [("tanh", "sigmoid"), ("tanh", "hard_sigmoid"), ("relu", "sigmoid")]


def randomise(module, rng):
    """Every parameter random and non-zero: |value| in [0.1, 0.8], either sign."""
    for p in module.params.values():
        p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.8, p.shape)


# -- 1. every gradient by central differences ------------------------------------------------
# LayerNorm is invariant to the scale of its input (up to eps), and where the features it
# normalises are (nearly) equal its gradient is of order eps: too small for central
# differences. Cells keep their LN inputs spread (assume); layers take seeded random
# weights, whose pre-activations are spread with probability 1. H >= 3: over two features
# LN(a) = +-gamma * |d| / sqrt(d^2 + eps) + beta (d = (a_1 - a_2) / 2) is flat but at d ~ 0.
@st.composite
def labml_cell_cases(draw):
    """A labml LSTM cell of drawn sizes and options, parameters, input and state."""
    D, H, B = draw(st.integers(1, 4)), draw(st.integers(3, 5)), draw(st.integers(1, 3))
    activation, recurrent_activation = draw(st.sampled_from(ACTIVATION_PAIRS))
    cell = npseq.LSTMCell(D, H, bias=draw(st.booleans()), layer_norm="labml",
                          activation=activation, recurrent_activation=recurrent_activation)
    for v in cell.params.values():  # gains, LN biases and biases surely non-zero
        v[...] = draw(arrays(v.shape, nonzero_floats(0.05, 1.0)))
    lead = draw(st.sampled_from([(), (B,)]))
    # inputs away from 0; relu's and hard_sigmoid's kinks are met with probability ~0
    x = draw(arrays(lead + (D,), nonzero_floats(0.2, 1.0)))
    state = tuple(draw(arrays(lead + (H,), nonzero_floats(0.2, 1.0))) for _ in range(2))
    p = cell.params
    a = x @ p["weight_ih"].T + state[0] @ p["weight_hh"].T + p.get("bias_ih", 0) \
        + p.get("bias_hh", 0)
    with npseq.no_grad():
        c = cell(x, state)[1]
    spreads = [np.var(a[..., k * H:(k + 1) * H], axis=-1) for k in range(4)]
    assume(min(np.min(v) for v in spreads + [np.var(c, axis=-1)]) > 1e-2)
    return cell, x, state, draw(st.integers(0, 2 ** 16))


@settings(max_examples=examples(40))
@given(labml_cell_cases())
def test_cell_every_gradient_matches_central_differences(case):
    cell, x, state, seed = case
    errors = check_gradients(cell, x, state, seed=seed)
    assert set(errors) == {"x", "state[0]", "state[1]"} | set(cell.params)
    assert max(errors.values()) < 1e-6, errors


@settings(max_examples=examples(16))
@given(T=st.integers(1, 4), B=st.integers(1, 3), D=st.integers(1, 2), H=st.integers(3, 4),
       num_layers=st.integers(1, 2), bidirectional=st.booleans(), bias=st.booleans(),
       batch_first=st.booleans(), checkpoint_every=st.none() | st.integers(1, 3),
       activations=st.sampled_from(ACTIVATION_PAIRS), with_lengths=st.booleans(),
       seed=st.integers(0, 2 ** 16))
def test_layer_every_gradient_matches_central_differences(T, B, D, H, num_layers,
                                                          bidirectional, bias, batch_first,
                                                          checkpoint_every, activations,
                                                          with_lengths, seed):
    rng = np.random.default_rng(seed)
    m = npseq.LSTM(D, H, num_layers, bias=bias, batch_first=batch_first,
                   bidirectional=bidirectional, checkpoint_every=checkpoint_every,
                   layer_norm="labml", activation=activations[0],
                   recurrent_activation=activations[1], seed=0)
    randomise(m, rng)
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    LD = num_layers * (2 if bidirectional else 1)
    state = (rng.standard_normal((LD, B, H)), rng.standard_normal((LD, B, H)))
    lengths = list(rng.integers(1, T + 1, B)) if with_lengths else None
    errors = check_gradients(m, x, state, lengths=lengths, seed=seed)
    assert set(errors) == {"x", "state[0]", "state[1]"} | set(m.params)
    assert max(errors.values()) < 1e-6, errors


# -- 2. the equations -------------------------------------------------------------------------
def ln(v, w, b, eps=1e-5):
    mu = v.mean(-1, keepdims=True)
    return w * (v - mu) / np.sqrt(((v - mu) ** 2).mean(-1, keepdims=True) + eps) + b


def sig(v):
    return 1 / (1 + np.exp(-v))


def test_a_step_is_labmls_equations():
    rng = np.random.default_rng(1)
    H = 5
    cell = npseq.LSTMCell(3, H, layer_norm="labml", seed=0)
    randomise(cell, rng)
    p = cell.params
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, H)), rng.standard_normal((2, H))
    with npseq.no_grad():
        h1, c1 = cell(x, (h, c))
    ifgo = h @ p["weight_hh"].T + (p["bias_hh"] + p["bias_ih"]) + x @ p["weight_ih"].T
    i, f, g, o = (ln(ifgo[:, k * H:(k + 1) * H], p[f"ln_{n}_weight"], p[f"ln_{n}_bias"])
                  for k, n in enumerate("ifgo"))
    c_want = sig(f) * c + sig(i) * np.tanh(g)
    h_want = sig(o) * np.tanh(ln(c_want, p["ln_c_weight"], p["ln_c_bias"]))
    np.testing.assert_allclose(c1, c_want, rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(h1, h_want, rtol=1e-13, atol=1e-14)


def test_only_the_sum_of_the_biases_matters_and_their_gradients_are_equal():
    rng = np.random.default_rng(2)
    m = npseq.LSTM(3, 4, 2, bidirectional=True, layer_norm="labml", seed=0)
    randomise(m, rng)
    x = rng.standard_normal((5, 2, 3))
    out, _ = m(x, lengths=[5, 2])
    m.backward(rng.standard_normal(out.shape))
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        np.testing.assert_allclose(m.grads["bias_ih" + sfx], m.grads["bias_hh" + sfx],
                                   rtol=1e-12, atol=1e-14)
        assert np.all(m.grads["bias_ih" + sfx] != 0)
    with npseq.no_grad():
        want, _ = m(x)
        for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):  # move b_ih into b_hh
            m.params["bias_hh" + sfx] += m.params["bias_ih" + sfx]
            m.params["bias_ih" + sfx][...] = 0
        got, _ = m(x)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_labml_and_ba_placements_are_different_functions():
    """With every gain 1 and LN bias 0 and the same weights, Ba et al. normalise the two
    projections over all 4H features; labml normalises their sum per gate."""
    rng = np.random.default_rng(3)
    ba = npseq.LSTMCell(3, 4, layer_norm=True, seed=0)
    labml = npseq.LSTMCell(3, 4, layer_norm="labml", seed=0)
    for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        np.testing.assert_array_equal(ba.params[k], labml.params[k])  # drawn alike
    x, h, c = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    with npseq.no_grad():
        h_ba, c_ba = ba(x, (h, c))
        h_labml, c_labml = labml(x, (h, c))
    assert np.max(np.abs(c_ba - c_labml)) > 1e-2


# -- 3. numerics -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_preactivations_give_finite_values_and_gradients(dtype):
    rng = np.random.default_rng(4)
    m = npseq.LSTM(2, 3, 2, bidirectional=True, layer_norm="labml", dtype=dtype, seed=0)
    x = (rng.choice([-1.0, 1.0], (40, 2, 2)) * 1e4).astype(dtype)
    out, (h_n, c_n) = m(x, lengths=[40, 9])
    dx, (dh0, dc0) = m.backward(rng.standard_normal(out.shape).astype(dtype))
    assert out.dtype == dtype and all(g.dtype == dtype for g in m.grads.values())
    for arr in (out, h_n, c_n, dx, dh0, dc0, *m.grads.values()):
        assert np.all(np.isfinite(arr))
    # LayerNorm bounds every normalised gate pre-activation by sqrt(H - 1): |h| < 1
    assert np.abs(out).max() < 1


def test_float32_computes_in_float32_close_to_float64():
    m64 = npseq.LSTM(3, 4, seed=0, layer_norm="labml")
    m32 = npseq.LSTM(3, 4, seed=0, dtype=np.float32, layer_norm="labml")
    m32.load_state_dict(m64.state_dict())
    x = np.random.default_rng(5).standard_normal((4, 2, 3))
    out32, _ = m32(x)
    out64, _ = m64(x)
    dout = np.random.default_rng(6).standard_normal(out64.shape)
    dx32, _ = m32.backward(dout)
    dx64, _ = m64.backward(dout)
    assert out32.dtype == dx32.dtype == np.float32
    assert np.max(np.abs(out32 - out64)) < 1e-5 and np.max(np.abs(dx32 - dx64)) < 1e-4


# -- 4. parameters, options, save/load ---------------------------------------------------------
def test_parameters_names_shapes_init_and_count():
    H = 5
    m = npseq.LSTM(3, H, 2, bidirectional=True, seed=0, layer_norm="labml")
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        for name in LN_NAMES:
            want = np.ones(H) if name.endswith("weight") else np.zeros(H)
            np.testing.assert_array_equal(m.params[name + sfx], want)
        assert not any(k.startswith(("ln_ih", "ln_hh")) for k in m.params)
    c = npseq.LSTMCell(3, H, layer_norm="labml", bias=False)
    assert sorted(c.params) == sorted(["weight_ih", "weight_hh"] + LN_NAMES)
    assert npseq.analysis.count_parameters(c) == 4 * H * 3 + 4 * H * H + 10 * H


def test_repr_save_load_and_pickle(tmp_path):
    rng = np.random.default_rng(7)
    layer = npseq.LSTM(3, 4, 2, bidirectional=True, batch_first=True, layer_norm="labml",
                       activation="relu", seed=0)
    randomise(layer, rng)
    assert repr(layer) == ("LSTM(3, 4, num_layers=2, batch_first=True, bidirectional=True, "
                           "layer_norm='labml', activation='relu', dtype=float64)")
    model = npseq.Sequential(layer, npseq.LastStep(), npseq.Linear(8, 2, seed=1))
    x = rng.standard_normal((2, 5, 3))
    with npseq.no_grad():
        want, _ = model(x, lengths=[5, 3])
    npseq.save(tmp_path / "m.npz", model)
    for again in (npseq.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))):
        assert again.modules[0].layer_norm == "labml"
        with npseq.no_grad():
            got, _ = again(x, lengths=[5, 3])
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("build, error, match", [
    (lambda: npseq.LSTM(3, 4, layer_norm="ba"), ValueError,
     r"^layer_norm: expected False, True \(Ba et al.\) or 'labml', got 'ba'"),
    (lambda: npseq.LSTMCell(3, 4, layer_norm="LABML"), ValueError, "^layer_norm:"),
    (lambda: npseq.LSTMCell(3, 4, layer_norm=0), TypeError, "^layer_norm:"),
    (lambda: npseq.LSTM(3, 4, layer_norm="labml", peephole=True), ValueError,
     "^layer_norm, peephole:"),
    (lambda: npseq.LSTM(3, 4, proj_size=2, layer_norm="labml"), ValueError, "^proj_size:"),
    (lambda: npseq.init.forget_bias_(npseq.LSTM(3, 4, layer_norm="labml")), ValueError,
     "ln_f_bias"),
])
def test_bad_options_fail_naming_the_argument(build, error, match):
    with pytest.raises(error, match=match):
        build()
