"""The cell variants: layer-normalised LSTM, peephole LSTM, reset-before GRU, activations.

Every gradient of every variant is checked by central differences in float64 (random
non-zero weights, biases and gains; random upstream gradients), as a cell and as a layer
across num_layers 1-2, both directions, lengths and batch_first. PyTorch has no twin of
these cells, so the forward passes are pinned instead to independent reference forwards
(``variant_refs.py``, run on NumPy arrays here), and to the plain cells where a variant
reduces to one. ``test_variants_torch.py`` differentiates the same references with autograd.
"""
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npseq
from npseq.cells import gru, lstm, variants
from npseq.gradcheck import check_gradients, format_report
from strategies import arrays, examples, nonzero_floats, upstream_arrays
from variant_refs import ref_forward

# name -> (layer class, cell class, variant options)
VARIANTS = {
    "lstm_layernorm": (npseq.LSTM, npseq.LSTMCell, dict(layer_norm=True)),
    "lstm_peephole": (npseq.LSTM, npseq.LSTMCell, dict(peephole=True)),
    "gru_reset_before": (npseq.GRU, npseq.GRUCell, dict(reset_after=False)),
    "lstm_relu_hard_sigmoid": (npseq.LSTM, npseq.LSTMCell,
                               dict(activation="relu", recurrent_activation="hard_sigmoid")),
    "gru_relu_hard_sigmoid": (npseq.GRU, npseq.GRUCell,
                              dict(activation="relu", recurrent_activation="hard_sigmoid")),
    "lstm_layernorm_relu": (npseq.LSTM, npseq.LSTMCell, dict(layer_norm=True, activation="relu")),
    "lstm_peephole_hard_sigmoid": (npseq.LSTM, npseq.LSTMCell,
                                   dict(peephole=True, recurrent_activation="hard_sigmoid")),
    "gru_reset_before_relu": (npseq.GRU, npseq.GRUCell,
                              dict(reset_after=False, activation="relu")),
}
TOL = 1e-6


def randomise(module, rng):
    """Every parameter random and non-zero: |value| in [0.1, 0.8], either sign."""
    for p in module.params.values():
        p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.8, p.shape)


def parts(state):
    return tuple(state) if isinstance(state, tuple) else (state,)


def pack(parts_, num_states):
    return tuple(parts_) if num_states == 2 else parts_[0]


def directional_errors(module, x, state, dout, dstate, lengths, rng, eps=1e-6):
    """Central differences of the loss ``<out, dout> + <state_n, dstate>`` along a random
    direction of each tensor (x, each state part, each parameter), against the analytic
    gradient contracted with it; relative to ``|grad| |direction|``.

    Two forward passes a tensor instead of two an element: cheap enough for stacked,
    bidirectional layers, and a wrong gradient passes only for directions of measure zero.
    """
    def loss():
        with npseq.no_grad():
            out, st_n = module(x, state, lengths=lengths)
        return float(np.sum(out * dout) + sum(np.sum(a * b)
                                              for a, b in zip(parts(st_n), parts(dstate))))

    module.zero_grad()
    module(x, state, lengths=lengths)
    dx, dstate0 = module.backward(dout, dstate)
    analytic = {"x": dx, **{f"state[{k}]": d for k, d in enumerate(parts(dstate0))},
                **{k: g.copy() for k, g in module.grads.items()}}
    tensors = {"x": x, **{f"state[{k}]": s for k, s in enumerate(parts(state))},
               **module.params}
    errors = {}
    for name, arr in tensors.items():
        v = rng.standard_normal(arr.shape)
        saved = arr.copy()
        arr += eps * v
        l_plus = loss()
        arr[...] = saved
        arr -= eps * v
        l_minus = loss()
        arr[...] = saved
        numeric = (l_plus - l_minus) / (2 * eps)
        scale = np.linalg.norm(analytic[name]) * np.linalg.norm(v)
        errors[name] = abs(np.sum(analytic[name] * v) - numeric) / max(scale, 1e-300)
    return errors


# -- every gradient by finite differences ----------------------------------------------------
@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("batched", [True, False])
def test_cell_every_gradient_elementwise(name, batched):
    _, cell_cls, options = VARIANTS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + 1000 * batched)
    cell = cell_cls(3, 3, seed=0, **options)
    randomise(cell, rng)
    lead = (2,) if batched else ()
    x = rng.standard_normal(lead + (3,))
    state = pack([rng.standard_normal(lead + (3,)) for _ in range(cell.kind.num_states)],
                 cell.kind.num_states)
    errors = check_gradients(cell, x, state, seed=int(rng.integers(2 ** 16)))
    assert set(errors) >= set(cell.params) | {"x"}
    assert max(errors.values()) < TOL, format_report(errors)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("batched", [True, False])
def test_one_layer_every_gradient_elementwise(name, batched):
    layer_cls, _, options = VARIANTS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + batched)
    m = layer_cls(2, 2, seed=0, **options)
    randomise(m, rng)
    n = m.kind.num_states
    lead = (2,) if batched else ()  # unbatched: x (T, D), state (1, H)
    state = pack([rng.standard_normal((1,) + lead + (2,)) for _ in range(n)], n)
    errors = check_gradients(m, rng.standard_normal((3,) + lead + (2,)), state, seed=1,
                             lengths=[3, 2] if batched else None)
    assert max(errors.values()) < TOL, format_report(errors)


@pytest.mark.parametrize("name", VARIANTS)
@pytest.mark.parametrize("num_layers,bidirectional,batch_first,with_lengths", [
    (2, True, True, True), (2, False, False, True), (1, True, False, False)])
def test_layer_every_gradient_directional(name, num_layers, bidirectional, batch_first,
                                          with_lengths):
    layer_cls, _, options = VARIANTS[name]
    rng = np.random.default_rng(sum(map(ord, name)) + 7 * num_layers + bidirectional)
    T, B, D, H = 4, 3, 3, 3
    m = layer_cls(D, H, num_layers, batch_first=batch_first, bidirectional=bidirectional,
                  seed=0, **options)
    randomise(m, rng)
    LD, n = num_layers * m.num_directions, m.kind.num_states
    x = rng.standard_normal((B, T, D) if batch_first else (T, B, D))
    state = pack([rng.standard_normal((LD, B, H)) for _ in range(n)], n)
    dstate = pack([rng.standard_normal((LD, B, H)) for _ in range(n)], n)
    dout = rng.standard_normal(x.shape[:2] + (m.num_directions * H,))
    lengths = [4, 1, 3] if with_lengths else None
    errors = directional_errors(m, x, state, dout, dstate, lengths, rng)
    assert set(errors) == {"x", *(f"state[{k}]" for k in range(n)), *m.params}
    assert max(errors.values()) < TOL, format_report(errors)


def test_directional_check_catches_a_wrong_gradient(monkeypatch):
    """The directional check above fails for a backward with two rows swapped."""
    from npseq.cells import lstm_peephole

    real = lstm_peephole.lstm_peephole_step_backward

    def wrong(dcarry, cache, p, **kw):
        g = real(dcarry, cache, p, **kw)
        return g._replace(dparams={"weight_ch": g.dparams["weight_ch"][[1, 0, 2]]})  # swapped

    kind = lstm_peephole.LSTM_PEEPHOLE._replace(step_backward=wrong)
    m = npseq.LSTM(2, 2, peephole=True, seed=0)
    m.kind = kind
    rng = np.random.default_rng(0)
    randomise(m, rng)
    x = rng.standard_normal((3, 2, 2))
    state = (rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 2)))
    errors = directional_errors(m, x, state, rng.standard_normal((3, 2, 2)),
                                (rng.standard_normal((1, 2, 2)),) * 2, None, rng)
    assert errors["weight_ch_l0"] > 1e-4
    assert max(e for k, e in errors.items() if k != "weight_ch_l0") < TOL


SMOOTH = ("tanh", "sigmoid")  # Hypothesis would find the kinks of relu and hard_sigmoid


@st.composite
def variant_cell_cases(draw):
    """A variant cell of drawn sizes, parameters (non-zero), input, state and upstream grad;
    activations drawn among the smooth ones (the kinked ones are checked above)."""
    cell_cls, options = draw(st.sampled_from([
        (npseq.LSTMCell, dict(layer_norm=True)), (npseq.LSTMCell, dict(peephole=True)),
        (npseq.LSTMCell, {}), (npseq.GRUCell, dict(reset_after=False)), (npseq.GRUCell, {})]))
    options = dict(options, activation=draw(st.sampled_from(SMOOTH)),
                   recurrent_activation=draw(st.sampled_from(SMOOTH)))
    # layer norm is invariant to the scale of its input (up to eps): with D = 1 (H = 1) the
    # gradient of x (h_prev) is of order eps, too small for central differences
    low = 2 if options.get("layer_norm") else 1
    D, H, B = draw(st.integers(low, 4)), draw(st.integers(low, 4)), draw(st.integers(1, 3))
    cell = cell_cls(D, H, bias=draw(st.booleans()), seed=0, **options)
    cell.load_state_dict({k: draw(arrays(v.shape, nonzero_floats(0.05, 0.8)))
                          for k, v in cell.params.items()})
    n = cell.kind.num_states
    # inputs and states bounded away from zero: a gradient like dw_co = sum da_o * c made
    # tiny by tiny factors is below what central differences resolve
    x = draw(arrays((B, D), nonzero_floats(0.2, 1.0)))
    state = pack([draw(arrays((B, H), nonzero_floats(0.2, 1.0))) for _ in range(n)], n)
    dstate = pack([draw(upstream_arrays((B, H))) for _ in range(n)], n)
    if options.get("layer_norm"):
        # and where the features it normalises are (nearly) equal, LN's gradient is of
        # order eps, too: keep its three inputs spread, as random weights make them
        p, h = cell.params, state[0]
        gx = x @ p["weight_ih"].T + p.get("bias_ih", 0)
        gh = h @ p["weight_hh"].T + p.get("bias_hh", 0)
        with npseq.no_grad():
            c_new = cell(x, state)[1]
        assume(min(np.min(np.var(a, axis=-1)) for a in (gx, gh, c_new)) > 1e-2)
    return cell, x, state, dstate


@given(case=variant_cell_cases(), seed=st.integers(0, 2 ** 16))
@settings(max_examples=examples(30))
def test_cell_gradients_over_drawn_sizes(case, seed):
    cell, x, state, _ = case
    errors = check_gradients(cell, x, state, seed=seed)
    assert max(errors.values()) < TOL, format_report(errors)


@given(case=variant_cell_cases(), scale=st.floats(-2, 2))
@settings(max_examples=examples(20))
def test_cell_backward_is_linear_in_the_upstream_gradient(case, scale):
    cell, x, state, dstate = case
    results = []
    for d in (dstate, pack([scale * a for a in parts(dstate)], len(parts(dstate)))):
        cell.zero_grad()
        cell(x, state)
        dx, dprev = cell.backward(d)
        results.append([dx, *parts(dprev), *(cell.grads[k].copy() for k in sorted(cell.grads))])
    for a, b in zip(*results):
        np.testing.assert_allclose(b, scale * a, rtol=1e-10, atol=1e-13)


# -- independent NumPy forwards --------------------------------------------------------------
ACT = {"tanh": np.tanh, "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
       "relu": lambda a: np.maximum(a, 0), "hard_sigmoid": lambda a: np.clip(a / 6 + 0.5, 0, 1)}


def ref_layer_norm(v, w, b):
    return w * (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5) + b


def unsuffixed(m):
    return {k[:-3]: v for k, v in m.params.items()}  # one layer, one direction: "_l0"


@pytest.mark.parametrize("name", VARIANTS)
def test_layer_forward_equals_an_independent_numpy_forward(name):
    layer_cls, _, options = VARIANTS[name]
    rng = np.random.default_rng(3)
    m = layer_cls(3, 4, seed=0, **options)
    randomise(m, rng)
    x = rng.standard_normal((5, 2, 3))
    carry = tuple(rng.standard_normal((2, 4)) for _ in range(m.kind.num_states))
    out, state_n = m(x, pack([c[None] for c in carry], m.kind.num_states))
    ref_out, ref_carry = ref_forward(layer_cls is npseq.LSTM, x, carry, unsuffixed(m), options,
                                     ACT, ref_layer_norm, np.stack)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-14)
    for a, b in zip(parts(state_n), ref_carry):
        np.testing.assert_allclose(a[0], b, rtol=1e-12, atol=1e-14)


def test_reset_before_differs_from_reset_after():
    """The two GRU formulations are different functions of the same parameters."""
    rng = np.random.default_rng(4)
    a = npseq.GRU(3, 4, seed=0)
    b = npseq.GRU(3, 4, seed=0, reset_after=False)
    randomise(a, rng)
    b.load_state_dict(a.state_dict())
    x = rng.standard_normal((5, 2, 3))
    assert np.max(np.abs(a(x)[0] - b(x)[0])) > 1e-3


# -- where a variant reduces to the plain cell -----------------------------------------------
def run(m, x, state, dout, dstate, lengths=None):
    m.zero_grad()
    out, st_n = m(x, state, lengths=lengths)
    dx, d0 = m.backward(dout, dstate)
    return out, st_n, dx, d0, {k: g.copy() for k, g in m.grads.items()}


@pytest.mark.parametrize("layer_cls,cell_cls,defaults", [
    (npseq.LSTM, npseq.LSTMCell, dict(layer_norm=False, peephole=False, activation="tanh",
                                      recurrent_activation="sigmoid")),
    (npseq.GRU, npseq.GRUCell, dict(reset_after=True, activation="tanh",
                                    recurrent_activation="sigmoid"))])
def test_explicit_defaults_are_exactly_the_plain_cells(layer_cls, cell_cls, defaults):
    plain = layer_cls(3, 4, 2, bidirectional=True, seed=5)
    explicit = layer_cls(3, 4, 2, bidirectional=True, seed=5, **defaults)
    assert explicit.kind is plain.kind and plain.kind in (lstm.LSTM, gru.GRU)
    assert cell_cls(3, 4, **defaults).kind is cell_cls(3, 4).kind
    make_kind = variants.lstm_kind if layer_cls is npseq.LSTM else variants.gru_kind
    assert make_kind(**defaults) is plain.kind
    assert repr(explicit) == repr(plain)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3, 3))
    dout = rng.standard_normal((4, 3, 8))
    n = plain.kind.num_states
    dstate = pack([rng.standard_normal((4, 3, 4)) for _ in range(n)], n)
    for a, b in zip(run(plain, x, None, dout, dstate, [4, 2, 3]),
                    run(explicit, x, None, dout, dstate, [4, 2, 3])):
        for u, v in zip(parts(a) if not isinstance(a, dict) else a.values(),
                        parts(b) if not isinstance(b, dict) else b.values()):
            np.testing.assert_array_equal(u, v)


def test_peephole_with_zero_peepholes_is_exactly_the_plain_lstm(monkeypatch):
    """Exactly the plain LSTM's steps (its fused path equals them to rounding only)."""
    import npseq.bptt
    monkeypatch.setattr(npseq.bptt, "FUSED", False)
    rng = np.random.default_rng(6)
    plain = npseq.LSTM(3, 4, 2, bidirectional=True, seed=0)
    peep = npseq.LSTM(3, 4, 2, bidirectional=True, seed=0, peephole=True)
    randomise(plain, rng)
    for k, v in plain.params.items():
        peep.params[k][...] = v
    for k in peep.params:
        if k.startswith("weight_ch"):
            peep.params[k][...] = 0
    x = rng.standard_normal((5, 2, 3))
    state = (rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4)))
    dout = rng.standard_normal((5, 2, 8))
    dstate = (rng.standard_normal((4, 2, 4)), rng.standard_normal((4, 2, 4)))
    a = run(plain, x, state, dout, dstate, [5, 3])
    b = run(peep, x, state, dout, dstate, [5, 3])
    np.testing.assert_array_equal(a[0], b[0])
    for u, v in zip(a[1] + a[3], b[1] + b[3]):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(a[2], b[2])
    for k, g in a[4].items():
        np.testing.assert_array_equal(g, b[4][k])
    assert all(np.any(b[4][k] != 0) for k in b[4] if k.startswith("weight_ch"))


def test_redundant_biases_have_equal_gradients():
    """Biases added at the same place get the same gradient: in the reset-before GRU every
    block of b_ih and b_hh, in the layer-norm LSTM the two layer-norm biases."""
    rng = np.random.default_rng(7)
    for m in (npseq.GRU(3, 4, 2, seed=0, reset_after=False), npseq.LSTM(3, 4, 2, seed=0,
                                                                        layer_norm=True)):
        randomise(m, rng)
        x = rng.standard_normal((5, 2, 3))
        out, _ = m(x, lengths=[5, 2])
        m.backward(rng.standard_normal(out.shape))
        for layer in ("l0", "l1"):
            a, b = (("bias_ih", "bias_hh") if isinstance(m, npseq.GRU)
                    else ("ln_ih_bias", "ln_hh_bias"))
            np.testing.assert_allclose(m.grads[f"{a}_{layer}"], m.grads[f"{b}_{layer}"],
                                       rtol=1e-12, atol=1e-14)
            assert np.all(m.grads[f"{a}_{layer}"] != 0)


# -- parameters, options, errors -------------------------------------------------------------
def test_variant_parameters_names_shapes_and_init():
    H = 5
    m = npseq.LSTM(3, H, 2, bidirectional=True, seed=0, layer_norm=True)
    bound = 1 / np.sqrt(H)
    for sfx in ("_l0", "_l0_reverse", "_l1", "_l1_reverse"):
        for part, size in (("ih", 4 * H), ("hh", 4 * H), ("c", H)):
            np.testing.assert_array_equal(m.params[f"ln_{part}_weight{sfx}"], np.ones(size))
            np.testing.assert_array_equal(m.params[f"ln_{part}_bias{sfx}"], np.zeros(size))
        assert m.params[f"weight_ih{sfx}"].shape == (4 * H, 3 if sfx.startswith("_l0") else 2 * H)
    assert set(m.grads) == set(m.params)
    p = npseq.LSTM(3, H, seed=0, peephole=True)
    assert p.params["weight_ch_l0"].shape == (3, H)
    assert 0 < np.max(np.abs(p.params["weight_ch_l0"])) <= bound
    c = npseq.LSTMCell(3, H, layer_norm=True, bias=False)
    assert sorted(c.params) == sorted(["weight_ih", "weight_hh", "ln_ih_weight", "ln_ih_bias",
                                       "ln_hh_weight", "ln_hh_bias", "ln_c_weight",
                                       "ln_c_bias"])
    g = npseq.GRUCell(3, H, reset_after=False)
    assert {k: v.shape for k, v in g.params.items()} == {
        k: v.shape for k, v in npseq.GRUCell(3, H).params.items()}


def test_variant_state_dict_round_trip_and_repr():
    a = npseq.LSTM(3, 4, seed=1, layer_norm=True, activation="relu")
    b = npseq.LSTM(3, 4, seed=2, layer_norm=True, activation="relu")
    a.params["ln_c_weight_l0"][...] = 2.5
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(0).standard_normal((3, 2, 3))
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    assert repr(a) == "LSTM(3, 4, layer_norm=True, activation='relu', dtype=float64)"
    assert "reset_after=False" in repr(npseq.GRUCell(2, 3, reset_after=False))


@pytest.mark.parametrize("name", ["lstm_layernorm", "lstm_peephole", "gru_reset_before"])
def test_float32_variant_computes_in_float32_close_to_float64(name):
    layer_cls, _, options = VARIANTS[name]
    m64 = layer_cls(3, 4, seed=0, **options)
    m32 = layer_cls(3, 4, seed=0, dtype=np.float32, **options)
    m32.load_state_dict(m64.state_dict())
    x = np.random.default_rng(0).standard_normal((4, 2, 3))
    out32, _ = m32(x)
    dx32, _ = m32.backward(np.ones_like(out32))
    out64, _ = m64(x)
    dx64, _ = m64.backward(np.ones_like(out64))
    assert out32.dtype == dx32.dtype == np.float32
    assert all(g.dtype == np.float32 for g in m32.grads.values())
    assert np.max(np.abs(out32 - out64)) < 1e-5 and np.max(np.abs(dx32 - dx64)) < 1e-4


def test_inputs_are_not_mutated():
    rng = np.random.default_rng(8)
    for m in (npseq.LSTM(3, 4, seed=0, layer_norm=True), npseq.GRU(3, 4, seed=0,
                                                                  reset_after=False)):
        x = rng.standard_normal((4, 2, 3))
        x0 = x.copy()
        out, st_n = m(x)
        dout = rng.standard_normal(out.shape)
        d0 = dout.copy()
        m.backward(dout)
        np.testing.assert_array_equal(x, x0)
        np.testing.assert_array_equal(dout, d0)


@pytest.mark.parametrize("build,argname,error", [
    (lambda: npseq.LSTM(3, 4, layer_norm=True, peephole=True), "layer_norm, peephole",
     ValueError),
    (lambda: npseq.LSTMCell(3, 4, layer_norm=1), "layer_norm", TypeError),
    (lambda: npseq.LSTM(3, 4, peephole="yes"), "peephole", TypeError),
    (lambda: npseq.GRU(3, 4, reset_after=None), "reset_after", TypeError),
    (lambda: npseq.LSTM(3, 4, activation="softplus"), "activation", ValueError),
    (lambda: npseq.GRUCell(3, 4, recurrent_activation="swish"), "recurrent_activation",
     ValueError),
    (lambda: npseq.LSTM(3, 4, proj_size=2, layer_norm=True), "proj_size", ValueError),
    (lambda: npseq.LSTM(3, 4, proj_size=2, peephole=True), "proj_size", ValueError),
])
def test_bad_variant_options_fail_naming_the_argument(build, argname, error):
    with pytest.raises(error, match=f"^{argname}:"):
        build()


def test_plain_lstm_with_activations_keeps_the_projection():
    m = npseq.LSTM(3, 4, proj_size=2, activation="relu", seed=0)
    rng = np.random.default_rng(9)
    randomise(m, rng)
    errors = check_gradients(m, rng.standard_normal((3, 2, 3)),
                             (rng.standard_normal((1, 2, 2)), rng.standard_normal((1, 2, 4))))
    assert "weight_hr_l0" in errors and max(errors.values()) < TOL, format_report(errors)


@pytest.mark.parametrize("name", ["lstm_layernorm", "lstm_peephole", "gru_reset_before"])
def test_checkpointed_backward_gives_exactly_the_plain_gradients(name):
    layer_cls, _, options = VARIANTS[name]
    rng = np.random.default_rng(10)
    plain = layer_cls(3, 4, 2, bidirectional=True, seed=0, **options)
    randomise(plain, rng)
    ckpt = layer_cls(3, 4, 2, bidirectional=True, seed=0, checkpoint_every=3, **options)
    ckpt.load_state_dict(plain.state_dict())
    x = rng.standard_normal((7, 2, 3))
    dout = rng.standard_normal((7, 2, 8))
    a = run(plain, x, None, dout, None, [7, 4])
    b = run(ckpt, x, None, dout, None, [7, 4])
    for u, v in zip([a[0], a[2], *parts(a[1]), *parts(a[3])],
                    [b[0], b[2], *parts(b[1]), *parts(b[3])]):
        np.testing.assert_array_equal(u, v)
    for k, g in a[4].items():
        np.testing.assert_array_equal(g, b[4][k])
