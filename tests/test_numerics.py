"""Numerics at the edges: saturation without overflow or warnings, dtypes kept, determinism.

* Pre-activations of +-1e4 in float32 and float64, for every cell and layer, forward and
  backward, under ``np.errstate(all="raise")`` with warnings turned into errors: every output
  and gradient is finite.
* A float32 module returns float32 outputs, states and gradients whatever the input dtype; a
  float64 module returns float64.
* The same seed gives the same weights and the same dropout masks; ``eval()`` is
  deterministic.
* Valid but extreme inputs (magnitudes 1e-8 to 1e4, one time step, batch 1, hidden size 1)
  give the results of an independent reference: the equations of ``torch.nn`` written out in
  this file (forward), and a single cell step or central differences (backward).
"""
import warnings
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import check_gradients
from strategies import KINDS, arrays, make_cell, pack_state, unpack_state

DTYPES = (np.float32, np.float64)
LAYER = {"rnn_tanh": npseq.RNN, "rnn_relu": npseq.RNN, "lstm": npseq.LSTM, "gru": npseq.GRU}


@contextmanager
def strict(under="raise"):
    """Any floating-point exception or warning is an error.

    The drawn cases pass ``under="ignore"``: there a product of two tiny gate derivatives
    (sigmoid of -700 times 1e-16) may round to zero, which is harmless and which NumPy
    ignores by default; the fixed saturation cases raise on every exception.
    """
    with np.errstate(all="raise", under=under), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def make_layer(kind, input_size, hidden_size, **kwargs):
    if kind.startswith("rnn_"):
        kwargs["nonlinearity"] = kind[4:]
    return LAYER[kind](input_size, hidden_size, **kwargs)


def signs(rng, shape, dtype=np.float64):
    """Random +-1 entries."""
    return rng.choice([-1.0, 1.0], size=shape).astype(dtype)


def all_finite(*trees):
    return all(np.all(np.isfinite(a)) for t in trees for a in unpack_state(t))


# -- saturation ---------------------------------------------------------------------------------
# Biases of +-1e4 put every pre-activation at +-1e4 (give or take the few units that the
# weights add), where sigmoid and tanh are exactly 0, 1 or -1. The range in between, where a
# gate's derivative can underflow to a subnormal, is covered by the drawn cases further down.
def saturating(rng, params):
    """The weights, with ``bias_ih = 1e4 s`` and ``bias_hh = 5e3 s`` for random signs ``s``."""
    new = dict(params)
    for k in params:
        if k.startswith("bias_ih"):
            s = signs(rng, params[k].shape)
            new[k], new[k.replace("bias_ih", "bias_hh")] = 1e4 * s, 5e3 * s
    return new


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_saturates_without_overflow_or_warning(kind, dtype):
    rng = np.random.default_rng(0)
    cell = make_cell(kind, 3, 4, dtype=dtype, seed=1)
    cell.load_state_dict(saturating(rng, cell.params))
    x = signs(rng, (5, 3), dtype)  # pre-activations: +-1e4 (the biases) +- a few
    h = signs(rng, (5, 4), dtype)
    state = (h, 1e4 * signs(rng, (5, 4), dtype)) if kind == "lstm" else h
    dstate = pack_state(kind, [rng.standard_normal((5, 4)) for _ in range(1 + (kind == "lstm"))])
    with strict():
        new = cell(x, state)
        dx, dstate_prev = cell.backward(dstate)
    assert all_finite(new, dx, dstate_prev, *cell.grads.values())
    if kind in ("rnn_tanh", "gru"):  # saturated: tanh and the gates at their bounds
        assert np.all(np.abs(unpack_state(new)[0]) == 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("kind", KINDS)
def test_layer_saturates_without_overflow_or_warning(kind, dtype):
    rng = np.random.default_rng(1)
    kw = dict(proj_size=2) if kind == "lstm" else {}
    m = make_layer(kind, 3, 4, num_layers=2, bidirectional=True, dropout=0.3, dtype=dtype,
                   seed=2, **kw)
    m.load_state_dict(saturating(rng, m.params))
    T, B = 6, 3
    x = signs(rng, (T, B, 3), dtype)  # pre-activations: +-1e4 (the biases) +- a few
    h0 = signs(rng, (4, B, m.output_size), dtype)
    state = (h0, 1e4 * signs(rng, (4, B, 4), dtype)) if kind == "lstm" else h0
    with strict():
        out, state_n = m(x, state, lengths=[T, 1, 4])
        dout = 1e4 * rng.standard_normal(out.shape)
        dstate = tuple(rng.standard_normal(s.shape) for s in unpack_state(state_n))
        dx, dstate0 = m.backward(dout, dstate if kind == "lstm" else dstate[0])
    assert all_finite(out, state_n, dx, dstate0, *m.grads.values())


# -- dtypes -------------------------------------------------------------------------------------
INPUT_DTYPES = [np.float64, np.float32, np.int64, np.int32, bool]


def _dtypes_of(*trees):
    return {a.dtype for t in trees for a in unpack_state(t)}


@pytest.mark.parametrize("model_dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("input_dtype", INPUT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
def test_cell_keeps_its_dtype(kind, input_dtype, model_dtype):
    cell = make_cell(kind, 3, 2, dtype=model_dtype, seed=0)
    x = np.arange(6).reshape(2, 3).astype(input_dtype)
    state = pack_state(kind, [np.ones((2, 2), input_dtype)] * (1 + (kind == "lstm")))
    new = cell(x, state)
    dx, dstate = cell.backward(pack_state(kind, [np.ones((2, 2), input_dtype)] *
                                          (1 + (kind == "lstm"))))
    assert _dtypes_of(new, dx, dstate, *cell.grads.values(), *cell.params.values()) == \
        {np.dtype(model_dtype)}


@pytest.mark.parametrize("model_dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("input_dtype", INPUT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
def test_layer_keeps_its_dtype(kind, input_dtype, model_dtype):
    kw = dict(proj_size=1) if kind == "lstm" else {}
    m = make_layer(kind, 3, 2, num_layers=2, bidirectional=True, dropout=0.5,
                   batch_first=True, dtype=model_dtype, seed=0, **kw)
    x = np.arange(24).reshape(2, 4, 3).astype(input_dtype)
    shapes = [(4, 2, m.output_size), (4, 2, 2)][:1 + (kind == "lstm")]
    out, state_n = m(x, pack_state(kind, [np.ones(s, input_dtype) for s in shapes]),
                     lengths=np.array([4, 2], dtype=np.int32))
    dx, dstate0 = m.backward(np.ones(out.shape, input_dtype),
                             pack_state(kind, [np.ones(s, input_dtype) for s in shapes]))
    assert _dtypes_of(out, state_n, dx, dstate0, *m.grads.values(), *m.params.values()) == \
        {np.dtype(model_dtype)}


def test_loading_float64_weights_into_a_float32_model_keeps_float32():
    m = npseq.GRU(3, 4, dtype=np.float32, seed=0)
    m.load_state_dict(npseq.GRU(3, 4, seed=1).state_dict())
    assert {v.dtype for v in m.params.values()} == {np.dtype(np.float32)}
    np.testing.assert_array_equal(m.params["weight_hh_l0"],
                                  npseq.GRU(3, 4, seed=1).params["weight_hh_l0"].astype(np.float32))


# -- determinism --------------------------------------------------------------------------------
@pytest.mark.parametrize("make", [lambda s: npseq.RNNCell(3, 4, seed=s),
                                  lambda s: npseq.LSTMCell(3, 4, seed=s),
                                  lambda s: npseq.GRUCell(3, 4, seed=s),
                                  lambda s: npseq.RNN(3, 4, num_layers=2, seed=s),
                                  lambda s: npseq.LSTM(3, 4, bidirectional=True, proj_size=2,
                                                       seed=s),
                                  lambda s: npseq.GRU(3, 4, num_layers=3, seed=s)])
def test_same_seed_same_weights(make):
    a, b, c = make(7).state_dict(), make(7).state_dict(), make(8).state_dict()
    g = make(np.random.default_rng(7)).state_dict()
    assert list(a) == list(b) == list(c) == list(g)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
        np.testing.assert_array_equal(a[k], g[k])  # an int seed and its Generator agree
        assert not np.array_equal(a[k], c[k])


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_dropout_masks_and_eval_is_deterministic(kind):
    x = np.random.default_rng(0).standard_normal((5, 3, 2))

    def model(seed, dropout=0.5):
        return make_layer(kind, 2, 4, num_layers=3, dropout=dropout, seed=seed)

    a, b = model(3), model(3)
    for _ in range(2):  # the masks of the second call come from the same stream too
        out_a, _ = a(x)
        out_b, _ = b(x)
        np.testing.assert_array_equal(out_a, out_b)
        dx_a, _ = a.backward(np.ones_like(out_a))
        dx_b, _ = b.backward(np.ones_like(out_b))
        np.testing.assert_array_equal(dx_a, dx_b)
    with npseq.no_grad():
        assert not np.array_equal(a(x)[0], a(x)[0])  # training: fresh masks at every call
        reference, _ = model(3, dropout=0.0)(x)
        a.eval()
        first, _ = a(x)
        second, _ = a(x)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first, reference)  # eval: no dropout at all
    assert not np.array_equal(first, out_a)  # dropout was really on in training


# -- valid but extreme: forward against the torch.nn equations ----------------------------------
def ref_sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # exact in float64, never overflows


def ref_step(kind, x, h, c, p):
    """One step of the torch.nn cell ``kind``, as its documentation writes it."""
    gi = x @ p["weight_ih"].T + p.get("bias_ih", 0.0)
    gh = h @ p["weight_hh"].T + p.get("bias_hh", 0.0)
    if kind == "rnn_tanh":
        return np.tanh(gi + gh), None
    if kind == "rnn_relu":
        return np.maximum(gi + gh, 0.0), None
    if kind == "gru":
        (i_r, i_z, i_n), (h_r, h_z, h_n) = np.split(gi, 3, -1), np.split(gh, 3, -1)
        r, z = ref_sigmoid(i_r + h_r), ref_sigmoid(i_z + h_z)
        n = np.tanh(i_n + r * h_n)
        return (1 - z) * n + z * h, None
    i, f, g, o = np.split(gi + gh, 4, -1)
    c = ref_sigmoid(f) * c + ref_sigmoid(i) * np.tanh(g)
    h = ref_sigmoid(o) * np.tanh(c)
    return (h @ p["weight_hr"].T if "weight_hr" in p else h), c


def ref_layer(kind, m, x, h0, c0):
    """The stacked, maybe bidirectional layer over x (T, B, D): out, h_n, c_n."""
    T, nd = x.shape[0], m.num_directions
    h_n, c_n, layer_in = [], [], x
    for layer in range(m.num_layers):
        outs = []
        for d in range(nd):
            sfx = f"_l{layer}" + ("_reverse" if d else "")
            p = {k[:-len(sfx)]: v for k, v in m.params.items() if k.endswith(sfx)}
            h, c = h0[layer * nd + d], None if c0 is None else c0[layer * nd + d]
            out = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h, c = ref_step(kind, layer_in[t], h, c, p)
                out[t] = h
            outs.append(np.stack(out))
            h_n.append(h)
            c_n.append(c)
        layer_in = np.concatenate(outs, axis=-1)
    return layer_in, np.stack(h_n), None if c0 is None else np.stack(c_n)


SCALES = (1e-8, 1.0, 1e2, 1e4)


@st.composite
def extreme_layer_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    D, H = draw(st.integers(1, 3)), draw(st.sampled_from([1, 1, 2, 3]))
    T, B = draw(st.sampled_from([1, 1, 2, 4])), draw(st.sampled_from([1, 1, 2]))
    kw = dict(num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
              seed=draw(st.integers(0, 2 ** 16)))
    if kind == "lstm" and H > 1:
        kw["proj_size"] = draw(st.integers(0, H - 1))
    m = make_layer(kind, D, H, **kw)
    scale = draw(st.sampled_from(SCALES))
    LD = m.num_layers * m.num_directions
    x = scale * draw(arrays((T, B, D)))
    h0 = scale * draw(arrays((LD, B, m.output_size)))
    c0 = scale * draw(arrays((LD, B, H))) if kind == "lstm" else None
    return kind, m, x, h0, c0, scale


@given(extreme_layer_cases())
def test_extreme_inputs_give_the_reference_forward(case):
    kind, m, x, h0, c0, scale = case
    with strict(under="ignore"):
        out, state_n = m(x, h0 if c0 is None else (h0, c0))
    ref_out, ref_h, ref_c = ref_layer(kind, m, x, h0, c0)
    parts = unpack_state(state_n)
    for got, want in [(out, ref_out), (parts[0], ref_h)] + ([(parts[1], ref_c)] if c0 is not None
                                                           else []):
        assert np.all(np.isfinite(got))
        # rounding of pre-activations that sum terms of size ~scale: atol ~ eps * scale
        atol = 1e-13 * max(1.0, scale, np.abs(want).max())
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=atol)


# -- valid but extreme: backward against a single cell step and finite differences -------------
@st.composite
def extreme_step_cases(draw):
    kind = draw(st.sampled_from(KINDS))
    D, H = draw(st.integers(1, 3)), draw(st.sampled_from([1, 1, 2]))
    batch = draw(st.sampled_from([None, 1, 2]))
    scale = draw(st.sampled_from(SCALES))
    lead = () if batch is None else (batch,)
    x = scale * draw(arrays(lead + (D,)))
    parts = [scale * draw(arrays(lead + (H,))) for _ in range(1 + (kind == "lstm"))]
    dparts = [draw(arrays(lead + (H,))) for _ in parts]
    return kind, D, H, batch, x, parts, dparts, draw(st.integers(0, 2 ** 16))


@contextmanager
def steps_only():
    """The layers run their step functions (``npseq.bptt.FUSED`` off) inside the block."""
    import npseq.bptt
    fused, npseq.bptt.FUSED = npseq.bptt.FUSED, False
    try:
        yield
    finally:
        npseq.bptt.FUSED = fused


@given(extreme_step_cases())
def test_extreme_inputs_one_layer_step_equals_one_cell_step(case):
    """A layer over T=1 is a cell step: same outputs and gradients, in both plumbings.

    The layer runs its step functions: the plain LSTM's and GRU's fused paths add the
    biases in another order, which at these extremes (pre-activations of 10^4 that cancel)
    moves a result of 1e-127 by more than 1e-13 of itself; ``tests/test_fused.py`` checks the
    fused paths against the steps."""
    kind, D, H, batch, x, parts, dparts, seed = case
    cell = make_cell(kind, D, H, seed=seed)
    layer = make_layer(kind, D, H, seed=seed + 1)
    cell.load_state_dict({k[:-3]: v for k, v in layer.params.items()})  # drop "_l0"
    with strict(under="ignore"), steps_only():
        new = cell(x, pack_state(kind, parts))
        dx_cell, dprev_cell = cell.backward(pack_state(kind, dparts))
        out, state_n = layer(x[None], pack_state(kind, [p[None] for p in parts]))
        dx_layer, d0_layer = layer.backward(np.zeros_like(out),
                                            pack_state(kind, [d[None] for d in dparts]))
    for a, b in zip(unpack_state(new), unpack_state(state_n)):
        np.testing.assert_allclose(b[0], a, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(dx_layer[0], dx_cell, rtol=1e-12, atol=1e-300)
    for a, b in zip(unpack_state(dprev_cell), unpack_state(d0_layer)):
        np.testing.assert_allclose(b[0], a, rtol=1e-12, atol=1e-300)
    for k, g in layer.grads.items():
        np.testing.assert_allclose(g, cell.grads[k[:-3]], rtol=1e-12, atol=1e-300)
    assert all_finite(dx_layer, d0_layer, *layer.grads.values())


@pytest.mark.parametrize("kind", KINDS)
def test_smallest_layer_gradients_match_finite_differences(kind):
    """Hidden size 1, batch 1, one or two steps, inputs of magnitude ~3 (gates near saturation)."""
    rng = np.random.default_rng(5)
    for T in (1, 2):
        m = make_layer(kind, 2, 1, seed=T)
        m.load_state_dict({k: rng.uniform(0.3, 1.0, v.shape) * signs(rng, v.shape)
                           for k, v in m.params.items()})
        x = 3 * rng.standard_normal((T, 1, 2))
        if kind == "rnn_relu":
            x = np.abs(x)  # away from the kink
            m.params["weight_ih_l0"][...] = np.abs(m.params["weight_ih_l0"])
            m.params["bias_ih_l0"][...] = np.abs(m.params["bias_ih_l0"])
        state = pack_state(kind, [0.5 * rng.standard_normal((1, 1, 1)) for _ in
                                  range(1 + (kind == "lstm"))])
        errors = check_gradients(m, x, state, seed=T)
        assert max(errors.values()) < 1e-7, errors


# -- the training toolkit: losses at +-1e4, dtypes ----------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_softmax_and_cross_entropy_at_1e4(dtype):
    z = np.array([[1e4, -1e4, 0.0], [-1e4, -1e4, -1e4], [1e4, 1e4, -1e4]], dtype)
    y = np.array([1, 0, 0])
    with strict():
        p = npseq.losses.softmax(z)
        logp = npseq.losses.log_softmax(z)
        loss, dz = npseq.losses.cross_entropy(z, y, reduction="sum")
    log2, log3 = np.log(2.0), np.log(3.0)
    want_p = np.array([[1, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0.5, 0.5, 0]])
    want_logp = np.array([[0, -2e4, -1e4], [-log3] * 3, [-log2, -log2, -2e4 - log2]])
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(p, want_p, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(logp, want_logp, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(loss, 2e4 + log3 + log2, rtol=rtol)
    np.testing.assert_allclose(dz, want_p - np.eye(3)[y], rtol=rtol, atol=rtol)
    assert {p.dtype, logp.dtype, dz.dtype} == {np.dtype(dtype)}


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_bce_with_logits_at_1e4(dtype):
    z = np.array([1e4, -1e4, 1e4, -1e4], dtype)
    t = np.array([0.0, 0.0, 1.0, 1.0], dtype)
    with strict():
        loss, dz = npseq.losses.bce_with_logits(z, t, reduction="sum")
    np.testing.assert_allclose(loss, 2e4, rtol=1e-7)  # -log sigmoid(-1e4) = 1e4, twice
    np.testing.assert_array_equal(dz, np.array([1, 0, 0, -1], dtype))  # sigmoid(z) - t
    assert dz.dtype == np.dtype(dtype)


@pytest.mark.parametrize("input_dtype", [np.float64, np.int64], ids=["float64", "int64"])
def test_float32_model_with_heads_keeps_float32(input_dtype):
    m = npseq.Sequential(npseq.LSTM(3, 4, dtype=np.float32, seed=0),
                         npseq.LastStep(), npseq.Linear(4, 2, dtype=np.float32, seed=1))
    y, _ = m(np.arange(30).reshape(5, 2, 3).astype(input_dtype), lengths=[5, 2])
    loss, dy = npseq.losses.cross_entropy(y, np.array([1, 0]))
    m.backward(dy.astype(np.float64))
    assert y.dtype == dy.dtype == np.float32
    assert {g.dtype for g in m.grads.values()} == {np.dtype(np.float32)}


# -- the cell variants at +-1e4 -------------------------------------------------------------------
VARIANTS = [(npseq.LSTMCell, npseq.LSTM, dict(layer_norm=True)),
            (npseq.LSTMCell, npseq.LSTM, dict(peephole=True)),
            (npseq.LSTMCell, npseq.LSTM, dict(recurrent_activation="hard_sigmoid")),
            (npseq.LSTMCell, npseq.LSTM, dict(activation="relu")),
            (npseq.GRUCell, npseq.GRU, dict(reset_after=False)),
            (npseq.GRUCell, npseq.GRU, dict(recurrent_activation="hard_sigmoid"))]


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("cell_cls, layer_cls, kw", VARIANTS,
                         ids=[f"{v[1].__name__}-{next(iter(v[2].items()))}" for v in VARIANTS])
def test_variants_saturate_without_overflow_or_warning(cell_cls, layer_cls, kw, dtype):
    rng = np.random.default_rng(2)
    lstm = cell_cls is npseq.LSTMCell
    cell = cell_cls(3, 4, dtype=dtype, seed=0, **kw)
    layer = layer_cls(3, 4, num_layers=2, bidirectional=True, dtype=dtype, seed=0, **kw)
    for m in (cell, layer):
        m.load_state_dict(saturating(rng, m.params))
    x = signs(rng, (5, 2, 3), dtype)
    parts = [signs(rng, (2, 4), dtype)] + [1e4 * signs(rng, (2, 4), dtype)] * lstm
    with strict():
        new = cell(x[0], tuple(parts) if lstm else parts[0])
        dx_cell, dprev = cell.backward(tuple(rng.standard_normal((2, 4)) for _ in parts)
                                       if lstm else rng.standard_normal((2, 4)))
        out, state_n = layer(x, tuple(np.stack([p] * 4) for p in parts) if lstm
                             else np.stack([parts[0]] * 4))
        dx, dstate0 = layer.backward(1e4 * rng.standard_normal(out.shape))
    assert all_finite(new, dx_cell, dprev, out, state_n, dx, dstate0, *cell.grads.values(),
                      *layer.grads.values())
    assert _dtypes_of(new, dx_cell, out, dx, dstate0) == {np.dtype(dtype)}


# -- NaN in, NaN out ----------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_nan_input_flows_through_its_own_sequence_only(kind):
    """NaN is not an error (as in NumPy and PyTorch): it reaches the outputs that depend on it
    and no others (not the other sequences of the batch)."""
    m = make_layer(kind, 2, 3, seed=0)
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    x[1, 0, 0] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out, _ = m(x)
        dx, _ = m.backward(np.ones_like(out))
    assert np.all(np.isfinite(out[:1])) and np.all(np.isfinite(out[:, 1]))
    assert np.all(np.isnan(out[1:, 0]))
    assert np.all(np.isfinite(dx[:, 1]))
    if kind != "rnn_relu":  # ReLU's derivative where it returned NaN is 0, as PyTorch's
        assert np.all(np.isnan(dx[:2, 0]))


# -- the two forms of sigmoid ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("size", [7, 1024, 64 * 512])  # below and from _FAST_SIGMOID_SIZE on
def test_sigmoid_equals_expit_to_the_resolution_of_its_dtype(dtype, size):
    from scipy.special import expit

    from npseq.activations import sigmoid
    rng = np.random.default_rng(size)
    a = (rng.standard_normal(size) * 10).astype(dtype)
    a[:6] = [-1e4, -88.0, -20.0, 0.0, 20.0, 1e4]  # saturated, tiny, exactly 1/2, near 1
    with strict():
        s = sigmoid(a)
    reference = expit(a.astype(np.float64))
    assert s.dtype == dtype and s.shape == a.shape
    assert np.all((s >= 0) & (s <= 1)) and s[3] == 0.5
    # float64 (any size) and small float32 arrays take expit itself: correct to the last bit
    # of the value; large float32 arrays the tanh form: within float32's resolution of 1
    tol = 1.2e-7 if dtype == np.float32 and size >= 1024 else 0
    if tol:
        assert np.max(np.abs(s - reference)) < tol
    else:
        np.testing.assert_array_equal(s, expit(a))
    np.testing.assert_array_equal(sigmoid(a[:6]), [0, expit(a[1]), expit(a[2]), 0.5,
                                                   expit(a[4]), 1])
