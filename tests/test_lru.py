"""LRU (Orvieto et al. 2023): central differences over its options, one step against the
complex equations written here with numpy's complex numbers, the paper's initialisation,
numerics at |lambda| -> 1 and over long sequences, validation, save/load/pickle and the
tools. Torch parity: test_lru_torch.py."""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.cells.lru import gamma_log_init, lru_lambda
from npseq.gradcheck import check_gradients
from npseq.lru import LRU
from tests.strategies import arrays, examples, nonzero_floats

# ranges of the drawn parameters: |lambda| from exp(-e) ~ 0.07 to exp(-e^-3) ~ 0.95
RANGES = {"nu_log": (-3.0, 1.0), "theta_log": (-2.0, 1.5), "gamma_log": (-1.5, 0.3)}


def set_params(m, rng):
    """Random parameters in place: the log-parameters in RANGES, the rest non-zero."""
    for k, v in m.params.items():
        name = k.split("_l")[0]
        if name in RANGES:
            v[...] = rng.uniform(*RANGES[name], v.shape)
        else:
            v[...] = rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.1, 1.0, v.shape)


# -- 1. every gradient by central differences, over the options -----------------------------
@st.composite
def lru_cases(draw):
    T, B, D, H, N = (draw(st.integers(1, n)) for n in (6, 3, 3, 3, 3))
    num_layers = draw(st.integers(1, 2))
    bidirectional, bias, batch_first = (draw(st.booleans()) for _ in range(3))
    checkpoint_every = draw(st.none() | st.integers(1, 3))
    m = LRU(D, H, num_layers=num_layers, bidirectional=bidirectional, bias=bias,
            batch_first=batch_first, state_size=N, checkpoint_every=checkpoint_every, seed=0)
    for k, v in m.params.items():
        name = k.split("_l")[0]
        elements = (st.floats(*RANGES[name]) if name in RANGES
                    else nonzero_floats(0.1, 0.8) if name == "bias_y"
                    else nonzero_floats(0.05, 1.0))
        v[...] = draw(arrays(v.shape, elements))
    x = draw(arrays((B, T, D) if batch_first else (T, B, D), nonzero_floats(0.05, 1.0)))
    x0 = draw(st.none() | arrays((num_layers * (2 if bidirectional else 1), B, 2 * N)))
    lengths = draw(st.none() | st.lists(st.integers(1, T), min_size=B, max_size=B))
    return m, x, x0, lengths, draw(st.integers(0, 2 ** 16))


@settings(max_examples=examples(40))
@given(lru_cases())
def test_every_gradient_matches_central_differences(case):
    m, x, x0, lengths, seed = case
    # floor: a parameter whose gradient cancels to ~1e-5 everywhere is measured against 0.05,
    # not against itself (central differences err by about 1e-10 absolutely)
    errors = check_gradients(m, x, x0, lengths=lengths, seed=seed, floor=0.05)
    assert set(errors) == {"x"} | ({"state"} if x0 is not None else set()) | set(m.params)
    assert max(errors.values()) < 1e-6, errors


def test_dropout_between_layers_gets_its_gradient():
    rng = np.random.default_rng(1)
    m = LRU(2, 3, num_layers=2, dropout=0.4, bidirectional=True, state_size=2, seed=3)
    set_params(m, rng)
    errors = check_gradients(m, rng.standard_normal((4, 2, 2)),
                             rng.standard_normal((4, 2, 4)), lengths=[4, 2])
    assert max(errors.values()) < 1e-6, errors


# -- 2. the equations, in complex numbers ----------------------------------------------------
def complex_params(p):
    """lambda, gamma, B, C of one layer's real parameters, by numpy complex arithmetic."""
    lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
    return lam, np.exp(p["gamma_log"]), p["B_re"] + 1j * p["B_im"], p["C_re"] + 1j * p["C_im"]


@pytest.mark.parametrize("bias", [True, False])
def test_steps_are_the_complex_recurrence_of_the_paper(bias):
    rng = np.random.default_rng(2)
    T, Bt, D, H, N = 5, 2, 3, 4, 6
    m = LRU(D, H, state_size=N, bias=bias, seed=0)
    set_params(m, rng)
    u, x0 = rng.standard_normal((T, Bt, D)), rng.standard_normal((1, Bt, 2 * N))
    with npseq.no_grad():
        out, x_n = m(u, x0)
    p = m.layer_params()
    lam, gamma, B, C = complex_params(p)
    x = x0[0, :, :N] + 1j * x0[0, :, N:]  # (B, N) complex
    for t in range(T):
        x = lam * x + gamma * (u[t] @ B.T)
        y = (x @ C.T).real + u[t] @ p["D"].T + (p["bias_y"] if bias else 0)
        np.testing.assert_allclose(out[t], y, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(x_n[0], np.concatenate([x.real, x.imag], axis=1),
                               rtol=1e-12, atol=1e-13)
    assert ("bias_y_l0" in m.params) == bias
    assert not any(k.startswith(("weight", "bias_ih", "bias_hh")) for k in m.params)


def test_lambda_of_the_real_parametrisation():
    nu_log, theta_log = np.array([-2.0, 0.3, 1.0]), np.array([-1.0, 0.0, 1.9])
    re, im = lru_lambda(nu_log, theta_log)
    want = np.exp(-np.exp(nu_log) + 1j * np.exp(theta_log))
    np.testing.assert_allclose(re + 1j * im, want, rtol=1e-14)


def test_padded_steps_carry_the_state_and_a_split_sequence_equals_the_whole():
    rng = np.random.default_rng(3)
    m = LRU(2, 3, num_layers=2, state_size=4, seed=0)
    set_params(m, rng)
    u, x0 = rng.standard_normal((7, 2, 2)), rng.standard_normal((2, 2, 8))
    with npseq.no_grad():
        out, x_n = m(u, x0, lengths=[7, 3])
        short, x_short = m(u[:3, 1:], x0[:, 1:])
        first, x_mid = m(u[:4], x0)
        second, x_end = m(u[4:], x_mid)
    np.testing.assert_allclose(out[:3, 1], short[:, 0], rtol=1e-13)
    np.testing.assert_array_equal(out[3:, 1], 0)
    np.testing.assert_allclose(x_n[:, 1], x_short[:, 0], rtol=1e-13)
    with npseq.no_grad():
        whole, x_whole = m(u, x0)
    np.testing.assert_allclose(np.concatenate([first, second]), whole, rtol=1e-12)
    np.testing.assert_allclose(x_end, x_whole, rtol=1e-12)


def test_zero_upstream_gives_zero_gradients_and_backward_is_linear_in_it():
    rng = np.random.default_rng(4)
    m = LRU(2, 3, bidirectional=True, state_size=2, seed=0)
    set_params(m, rng)
    u, x0 = rng.standard_normal((5, 2, 2)), rng.standard_normal((2, 2, 4))
    dout, dx_n = rng.standard_normal((5, 2, 6)), rng.standard_normal((2, 2, 4))
    results = []
    for scale in (0.0, 1.0, -2.5):
        m.zero_grad()
        m(u, x0, lengths=[5, 2])
        du, dx0 = m.backward(scale * dout, scale * dx_n)
        results.append((du, dx0, {k: g.copy() for k, g in m.grads.items()}))
    for arr in (results[0][0], results[0][1], *results[0][2].values()):
        np.testing.assert_array_equal(arr, 0)
    np.testing.assert_allclose(results[2][0], -2.5 * results[1][0], rtol=1e-12)
    for k in results[1][2]:
        np.testing.assert_allclose(results[2][2][k], -2.5 * results[1][2][k], rtol=1e-12)
        assert np.any(results[1][2][k] != 0), k


# -- 3. the paper's initialisation ------------------------------------------------------------
def test_initial_lambda_lies_on_the_ring_with_the_paper_distribution_and_gamma():
    N = 4000
    m = LRU(3, 2, state_size=N, seed=5, r_min=0.4, r_max=0.9, max_phase=np.pi / 10)
    p = m.layer_params()
    re, im = lru_lambda(p["nu_log"], p["theta_log"])
    r2, phase = re ** 2 + im ** 2, np.arctan2(im, re)
    assert 0.16 <= r2.min() and r2.max() <= 0.81
    # |lambda|^2 uniform in [r_min^2, r_max^2] (the paper's ring): mean and quartiles
    np.testing.assert_allclose(r2.mean(), (0.16 + 0.81) / 2, atol=0.01)
    np.testing.assert_allclose(np.quantile(r2, [0.25, 0.75]),
                               [0.16 + 0.65 / 4, 0.16 + 3 * 0.65 / 4], atol=0.015)
    assert 0 < phase.min() and phase.max() < np.pi / 10
    np.testing.assert_allclose(phase.mean(), np.pi / 20, atol=0.005)
    np.testing.assert_allclose(np.exp(p["gamma_log"]), np.sqrt(1 - r2), rtol=1e-12)
    np.testing.assert_allclose(p["B_re"].std(), 1 / np.sqrt(2 * 3), rtol=0.03)
    np.testing.assert_allclose(p["C_im"].std(), 1 / np.sqrt(N), rtol=0.03)
    np.testing.assert_array_equal(p["bias_y"], 0)
    again = LRU(3, 2, state_size=N, seed=5, r_min=0.4, r_max=0.9, max_phase=np.pi / 10)
    for k in m.params:  # the seed fixes every draw
        np.testing.assert_array_equal(again.params[k], m.params[k])


def test_defaults_are_the_papers_ring_and_state_size_is_hidden_size():
    m = LRU(3, 5, seed=0)
    assert (m.state_size, m.r_min, m.r_max, m.max_phase) == (5, 0.0, 1.0, 2 * np.pi)
    assert m.params["nu_log_l0"].shape == (5,) and m.params["B_re_l0"].shape == (5, 3)
    assert m.params["C_re_l0"].shape == (5, 5) and m.params["D_l0"].shape == (5, 3)
    assert npseq.analysis.count_parameters(m) == 3 * 5 + 2 * 5 * 3 + 2 * 5 * 5 + 5 * 3 + 5
    m2 = LRU(3, 2, num_layers=2, bidirectional=True, state_size=7, bias=False)
    assert m2.params["B_im_l1_reverse"].shape == (7, 4)  # layer 1 reads 2H
    assert m2.params["D_l1"].shape == (2, 4)
    assert npseq.analysis.count_parameters(m2) == 2 * (3 * 7 + 2 * 7 * 3 + 2 * 2 * 7 + 2 * 3) \
        + 2 * (3 * 7 + 2 * 7 * 4 + 2 * 2 * 7 + 2 * 4)


# -- 4. numerics ------------------------------------------------------------------------------
def test_the_parametrisation_keeps_lambda_inside_the_unit_disc():
    nu_log = np.linspace(-30, 5, 701)  # exp(nu_log) from 1e-13 to 148
    re, im = lru_lambda(nu_log, np.linspace(-5, 3, 701))
    r = np.hypot(re, im)
    assert np.all(r < 1) and np.all(r >= 0)
    # near 1: gamma stays finite and positive where 1 - |lambda|^2 would round to 0
    g = gamma_log_init(np.array([-40.0, -36.0, -20.0]))
    assert np.all(np.isfinite(g)) and np.all(np.diff(g) > 0)
    np.testing.assert_allclose(g[2], 0.5 * np.log(2 * np.exp(-20.0)), rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_a_long_sequence_near_the_unit_circle_stays_finite(dtype):
    rng = np.random.default_rng(6)
    T = 5000  # five memory lengths 1 / (1 - 0.999)
    m = LRU(2, 3, state_size=8, r_min=0.999, r_max=1.0, dtype=dtype, seed=0)
    u = rng.standard_normal((T, 1, 2)).astype(dtype)
    out, x_n = m(u)
    du, dx0 = m.backward(rng.standard_normal(out.shape).astype(dtype))
    for arr in (out, x_n, du, dx0, *m.grads.values()):
        assert arr.dtype == dtype and np.all(np.isfinite(arr))
    # gamma normalises the state: E|x|^2 = gamma^2 |B u|^2 / (1 - |lambda|^2) stays O(1)
    assert np.abs(x_n).max() < 50


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_inputs_give_finite_values_and_gradients(dtype):
    rng = np.random.default_rng(7)
    m = LRU(2, 3, num_layers=2, bidirectional=True, dtype=dtype, seed=0)
    u = (rng.choice([-1.0, 1.0], (50, 2, 2)) * 1e4).astype(dtype)
    out, x_n = m(u, lengths=[50, 17])
    du, dx0 = m.backward(rng.standard_normal(out.shape).astype(dtype))
    assert out.dtype == dtype and np.abs(out).max() > 1e3  # linear: the input reaches out
    for arr in (out, x_n, du, dx0, *m.grads.values()):
        assert np.all(np.isfinite(arr))


# -- 5. validation ------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(state_size=0), ValueError, "state_size: expected an integer >= 1"),
    (dict(state_size=2.0), TypeError, "state_size: expected an integer"),
    (dict(r_min=-0.1), ValueError, r"r_min: expected a number in \[0, 1\]"),
    (dict(r_max=1.5), ValueError, "r_max"),
    (dict(r_min="0"), TypeError, "r_min: expected a number"),
    (dict(r_max=True), TypeError, "r_max"),
    (dict(r_min=0.9, r_max=0.5), ValueError, "r_min, r_max: expected 0 <= r_min < r_max"),
    (dict(r_min=0.5, r_max=0.5), ValueError, "r_min < r_max"),
    (dict(max_phase=0), ValueError, "max_phase: expected a finite number > 0"),
    (dict(max_phase=float("inf")), ValueError, "max_phase"),
    (dict(max_phase="pi"), TypeError, "max_phase"),
    (dict(bias=1), TypeError, "bias: expected True or False"),
    (dict(hidden_size=0), ValueError, "hidden_size"),
    (dict(nonlinearity="tanh"), TypeError, "nonlinearity"),
])
def test_rejects_bad_options(kwargs, error, match):
    args = dict(input_size=2, hidden_size=3)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        LRU(**args)


def test_rejects_a_state_of_the_wrong_shape_naming_x0():
    m = LRU(2, 3, state_size=4, seed=0)
    u = np.ones((5, 2, 2))
    with pytest.raises(ValueError, match=r"x0.*2 \* state_size"):
        m(u, np.zeros((1, 2, 4)))  # N, not 2N
    with pytest.raises(TypeError, match="state"):
        m(u, (np.zeros((1, 2, 8)), np.zeros((1, 2, 8))))
    out, _ = m(u, np.zeros((1, 2, 8)))
    with pytest.raises(ValueError, match="dx_n"):
        m.backward(np.ones_like(out), np.zeros((1, 2, 3)))
    m.backward(np.ones_like(out))  # the failed call left the record


# -- 6. save/load, pickle, Sequential, unbatched input, the study tools ----------------------
def test_save_load_and_pickle_give_the_same_model(tmp_path):
    rng = np.random.default_rng(9)
    layer = LRU(3, 4, num_layers=2, bidirectional=True, batch_first=True, state_size=5,
                r_min=0.5, r_max=0.95, max_phase=1.0, seed=0)
    set_params(layer, rng)
    model = npseq.Sequential(layer, npseq.LastStep(), npseq.Linear(8, 2, seed=1))
    x = rng.standard_normal((2, 5, 3))
    with npseq.no_grad():
        want, _ = model(x, lengths=[5, 3])
    npseq.save(tmp_path / "m.npz", model)
    for again in (npseq.load(tmp_path / "m.npz"), pickle.loads(pickle.dumps(model))):
        assert repr(again.modules[0]) == repr(layer)
        assert "state_size=5, r_min=0.5, r_max=0.95, max_phase=1.0" in repr(layer)
        with npseq.no_grad():
            got, _ = again(x, lengths=[5, 3])
        np.testing.assert_array_equal(got, want)


def test_inputs_are_not_modified_and_unbatched_input_is_a_batch_of_one():
    rng = np.random.default_rng(12)
    m = LRU(2, 3, num_layers=2, bidirectional=True, state_size=2, seed=0)
    set_params(m, rng)
    x, x0 = rng.standard_normal((6, 2)), rng.standard_normal((4, 4))
    dout, dx_n = rng.standard_normal((6, 6)), rng.standard_normal((4, 4))
    saved = [a.copy() for a in (x, x0, dout, dx_n)]
    out, x_n = m(x, x0)
    du, dx0 = m.backward(dout, dx_n)
    for a, b in zip((x, x0, dout, dx_n), saved):
        np.testing.assert_array_equal(a, b)
    out1, x_n1 = m(x[:, None], x0[:, None])
    du1, dx01 = m.backward(dout[:, None], dx_n[:, None])
    for a, b in ((out, out1[:, 0]), (x_n, x_n1[:, 0]), (du, du1[:, 0]), (dx0, dx01[:, 0])):
        np.testing.assert_array_equal(a, b)


def test_gradient_norms_of_the_state_match_the_layers_trace():
    rng = np.random.default_rng(10)
    m = LRU(2, 3, bidirectional=True, state_size=2, seed=0)
    x, dout = rng.standard_normal((8, 2, 2)), rng.standard_normal((8, 2, 6))
    norms = npseq.analysis.gradient_norms(m, x, dout, lengths=[8, 5], per_sequence=True)
    trace = {}
    m(x, lengths=[8, 5])
    m.backward(dout, trace=trace)
    for key in ((0, 0), (0, 1)):
        state = norms[key]["c"]  # the second carry: the state x
        want = np.linalg.norm(trace[key][1], axis=-1)
        assert state.shape == (8, 2) and np.all(np.isnan(state[5:, 1]))
        # the carried x_t reaches the loss through the later steps only (y_t reads it
        # inside step t): its gradient is zero at a sequence's last step, without dx_n
        if key == (0, 0):
            assert np.all(state[:4, 1] > 0) and state[7, 0] == 0 and state[4, 1] == 0
        else:  # the reverse direction ends at t = 0
            assert np.all(state[1:5, 1] > 0) and state[0, 0] == 0 and state[0, 1] == 0
        np.testing.assert_allclose(state[:, 0], want[:, 0], rtol=1e-10)


def test_truncated_bptt_passes_the_state_across_chunks():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((12, 2, 2))
    m = LRU(2, 3, state_size=4, seed=0)

    def loss_and_grad(out, start, stop):
        return float(np.sum(out ** 2)), 2 * out

    loss, x_n = npseq.truncated_bptt(m, x, 5, loss_and_grad)
    with npseq.no_grad():
        out, x_all = m(x)
    np.testing.assert_allclose(loss, np.sum(out ** 2), rtol=1e-12)
    np.testing.assert_allclose(x_n, x_all, rtol=1e-12)
    assert x_n.shape == (1, 2, 8) and all(np.any(v != 0) for v in m.grads.values())


# -- 7. the recurrence as one linear scan, against the driver's loop ------------------------
@pytest.mark.parametrize("T, block", [(1, None), (7, None), (7, 1), (7, 3), (7, 7), (130, None),
                                      (130, 9)])
@pytest.mark.parametrize("bias", [True, False])
def test_the_scan_gives_the_loops_values_and_every_gradient(T, block, bias):
    from npseq.lru import lru_scan_backward, lru_scan_forward
    rng = np.random.default_rng(T + (block or 0))
    m = LRU(3, 4, state_size=5, bias=bias, seed=0)
    set_params(m, rng)
    u, x0 = rng.standard_normal((T, 2, 3)), rng.standard_normal((1, 2, 10))
    dout, dx_n = rng.standard_normal((T, 2, 4)), rng.standard_normal((1, 2, 10))
    out, x_n = m(u, x0)
    du, dx0 = m.backward(dout, dx_n)
    p = m.layer_params()
    y, x_last, record = lru_scan_forward(u, x0[0], p, block)
    du_s, dx0_s, grads = lru_scan_backward(dout, dx_n[0], record, p)
    pairs = [(y, out), (x_last, x_n[0]), (du_s, du), (dx0_s, dx0[0])]
    pairs += [(grads[k[:-3]], m.grads[k]) for k in m.params]
    assert set(grads) == {k[:-3] for k in m.params}
    for got, want in pairs:
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))
