"""Regularisation and initialisation (issue 13, the additive part): Dropout, LockedDropout,
Embedding(dropout=), AR/TAR losses and npseq.init.

Gradients are checked by float64 central differences contracted with random upstream
gradients, with the dropout masks replayed: the module's ``rng`` state is reset before every
perturbed forward (as ``npseq.gradcheck.check_gradients`` does), so the numerical gradient is
taken under the masks the analytic one used.
"""
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import npseq
from npseq import losses
from npseq.gradcheck import numerical_gradient, rel_error

from strategies import arrays, nonzero_floats

rates = st.sampled_from([0.1, 0.3, 0.5, 0.8])


def replayed(module, fn):
    """``fn()`` evaluated inside no_grad() with ``module.rng`` reset to its current state
    before each call: every call sees the same masks."""
    state = module.rng.bit_generator.state

    def call():
        module.rng.bit_generator.state = state
        with npseq.no_grad():
            return fn()
    return call


# -- Dropout -------------------------------------------------------------------------------
@st.composite
def dropout_cases(draw):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    x = draw(arrays(shape, nonzero_floats(0.1, 2.0)))
    dy = draw(arrays(shape, nonzero_floats(0.1, 2.0)))
    return x, dy, draw(rates), draw(st.integers(0, 2**31))


@given(dropout_cases())
def test_dropout_gradient_under_its_mask(case):
    x, dy, p, seed = case
    drop = npseq.Dropout(p, seed=seed)
    loss = replayed(drop, lambda: float(np.sum(drop(x) * dy)))
    state = drop.rng.bit_generator.state
    y = drop(x)
    dx = drop.backward(dy)
    drop.rng.bit_generator.state = state
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-8
    # the structure: every output is dropped or scaled by exactly 1 / (1 - p)
    scale_applied = y / x
    assert np.all((scale_applied == 0) | np.isclose(scale_applied, 1 / (1 - p), rtol=1e-15, atol=0))


@pytest.mark.parametrize("cls", [npseq.Dropout, npseq.LockedDropout])
def test_rate_zero_and_eval_are_the_identity_without_draws(cls):
    x = np.random.default_rng(0).standard_normal((4, 3, 5))
    dy = np.random.default_rng(1).standard_normal((4, 3, 5))
    for drop in (cls(0.0, seed=7), cls(0.6, seed=7).eval()):
        before = drop.rng.bit_generator.state
        y = drop(x)
        assert y.tobytes() == x.tobytes() and y is not x  # bit-identical, a copy
        assert drop.backward(dy).tobytes() == dy.tobytes()
        assert drop.rng.bit_generator.state == before  # nothing drawn
        with npseq.no_grad():
            assert np.array_equal(drop(x), drop(x))  # deterministic


@pytest.mark.parametrize("cls", [npseq.Dropout, npseq.LockedDropout])
def test_same_seed_same_masks_other_seed_other_masks(cls):
    x = np.ones((6, 4, 8))
    with npseq.no_grad():
        a, b, c = (cls(0.5, seed=s)(x) for s in (3, 3, 4))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with npseq.no_grad():  # a new mask at every call
        drop = cls(0.5, seed=3)
        assert not np.array_equal(drop(x), drop(x))


def binomial_bound(n, q, sigmas=5):
    """|kept - n q| allowed for Binomial(n, q): ``sigmas`` standard deviations (a correct
    seeded draw fails with probability < 1e-6)."""
    return sigmas * math.sqrt(n * q * (1 - q))


@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_dropout_kept_fraction(p):
    x = np.ones((100, 50, 40))  # n = 200000 independent draws
    with npseq.no_grad():
        y = npseq.Dropout(p, seed=11)(x)
    kept = np.count_nonzero(y)
    assert abs(kept - x.size * (1 - p)) < binomial_bound(x.size, 1 - p)
    assert np.all(y[y != 0] == 1 / (1 - p))


# -- LockedDropout -------------------------------------------------------------------------
@st.composite
def locked_cases(draw):
    T, B, F = draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    layout = draw(st.sampled_from(["time_major", "batch_first", "unbatched"]))
    shape = {"time_major": (T, B, F), "batch_first": (B, T, F), "unbatched": (T, F)}[layout]
    x = draw(arrays(shape, nonzero_floats(0.1, 2.0)))
    dy = draw(arrays(shape, nonzero_floats(0.1, 2.0)))
    return x, dy, layout == "batch_first", draw(rates), draw(st.integers(0, 2**31))


@given(locked_cases())
def test_locked_dropout_gradient_and_one_mask_per_sequence(case):
    x, dy, batch_first, p, seed = case
    drop = npseq.LockedDropout(p, batch_first=batch_first, seed=seed)
    loss = replayed(drop, lambda: float(np.sum(drop(x) * dy)))
    state = drop.rng.bit_generator.state
    y = drop(x)
    dx = drop.backward(dy)
    drop.rng.bit_generator.state = state
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-8
    # the structure: y = x * m with m (B, F) the same at every step, in {0, 1 / (1 - p)}
    seq = lambda a: a[:, None] if a.ndim == 2 else (a.transpose(1, 0, 2) if batch_first else a)
    scale_applied = seq(y) / seq(x)  # (T, B, F)
    assert np.allclose(scale_applied, scale_applied[:1], rtol=1e-15, atol=0)
    assert np.all((scale_applied == 0) | np.isclose(scale_applied, 1 / (1 - p), rtol=1e-15, atol=0))


def test_locked_dropout_masks_differ_between_sequences_and_keep_about_1_minus_p():
    p, T, B, F = 0.3, 5, 400, 250  # B * F = 100000 draws
    with npseq.no_grad():
        y = npseq.LockedDropout(p, seed=5)(np.ones((T, B, F)))
    assert np.array_equal(y, np.broadcast_to(y[:1], y.shape))  # constant over time
    kept = np.count_nonzero(y[0])
    assert abs(kept - B * F * (1 - p)) < binomial_bound(B * F, 1 - p)
    assert len({row.tobytes() for row in y[0]}) > B // 2  # not one mask for the batch


def test_locked_dropout_rejects_bad_arguments():
    with pytest.raises(ValueError, match="p: expected a number in"):
        npseq.LockedDropout(1.0)
    with pytest.raises(TypeError, match="batch_first"):
        npseq.LockedDropout(0.5, batch_first="yes")
    with pytest.raises(ValueError, match=r"x: expected shape \(seq_len, batch, features\)"):
        npseq.LockedDropout(0.5)(np.ones(4))
    drop = npseq.LockedDropout(0.5)
    drop(np.ones((3, 2, 4)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(3, 2, 4\)"):
        drop.backward(np.ones((3, 4)))
    assert drop.backward(np.ones((3, 2, 4))).shape == (3, 2, 4)  # still paired after the error


# -- inside Sequential ---------------------------------------------------------------------
def dropout_model(p, batch_first=False, seed=0):
    return npseq.Sequential(npseq.LockedDropout(p, batch_first, seed=seed),
                            npseq.LSTM(3, 4, batch_first=batch_first, seed=seed + 1),
                            npseq.LockedDropout(p, batch_first, seed=seed + 2),
                            npseq.LastStep(), npseq.Linear(4, 2, seed=seed + 3))


@pytest.mark.parametrize("batch_first", [False, True])
def test_sequential_with_locked_dropout_gradients(batch_first):
    rng = np.random.default_rng(2)
    model = dropout_model(0.4, batch_first)
    x = rng.standard_normal((4, 3, 3) if batch_first else (3, 4, 3))
    lengths = np.array([3, 1, 2, 3])
    dy = rng.standard_normal((4, 2))
    drops = [model[0], model[2]]
    states = [d.rng.bit_generator.state for d in drops]

    def loss():
        for d, s in zip(drops, states):
            d.rng.bit_generator.state = s
        with npseq.no_grad():
            return float(np.sum(model(x, lengths=lengths)[0] * dy))

    model.zero_grad()
    model(x, lengths=lengths)
    dx, _ = model.backward(dy)
    for d, s in zip(drops, states):
        d.rng.bit_generator.state = s
    grads = {k: g.copy() for k, g in model.grads.items()}
    assert rel_error(dx, numerical_gradient(loss, x)) < 1e-7
    for k in ("1.weight_ih_l0", "1.weight_hh_l0", "4.weight"):
        assert rel_error(grads[k], numerical_gradient(loss, model.params[k])) < 1e-7
    assert np.count_nonzero(dx) < dx.size  # some input features were dropped


def test_sequential_eval_is_the_model_without_dropout():
    x = np.random.default_rng(3).standard_normal((5, 2, 3))
    model = dropout_model(0.5).eval()
    plain = npseq.Sequential(model[1], model[3], model[4])
    with npseq.no_grad():
        assert model(x)[0].tobytes() == plain(x)[0].tobytes()
    with npseq.no_grad():
        assert dropout_model(0.0)(x)[0].tobytes() == plain(x)[0].tobytes()


def test_save_load_keeps_dropout_modules(tmp_path):
    model = npseq.Sequential(npseq.Embedding(7, 3, seed=0, dropout=0.25),
                             npseq.LockedDropout(0.3, seed=1), npseq.GRU(3, 4, seed=2),
                             npseq.LockedDropout(0.2, seed=3), npseq.Linear(4, 7, seed=4))
    npseq.save(tmp_path / "m.npz", model)
    same = npseq.load(tmp_path / "m.npz")
    assert [repr(m) for m in same] == [repr(m) for m in model]
    assert same[0].dropout == 0.25 and same[1].p == 0.3 and same[3].p == 0.2
    idx = np.array([[1, 2], [3, 3], [0, 6]])
    with npseq.no_grad():
        assert np.array_equal(same.eval()(idx)[0], model.eval()(idx)[0])


# -- Embedding dropout ---------------------------------------------------------------------
@st.composite
def embedding_cases(draw):
    V, D = draw(st.integers(2, 6)), draw(st.integers(1, 3))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=5))
    idx = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, V - 1)))
    padding_idx = draw(st.none() | st.integers(0, V - 1))
    dy = draw(arrays(shape + (D,), nonzero_floats(0.1, 2.0)))
    return V, D, idx, padding_idx, dy, draw(rates), draw(st.integers(0, 2**31))


@given(embedding_cases())
def test_embedding_dropout_gradient_under_its_mask(case):
    V, D, idx, padding_idx, dy, p, seed = case
    emb = npseq.Embedding(V, D, padding_idx=padding_idx, seed=seed, dropout=p)
    W = emb.params["weight"]
    W += np.random.default_rng(seed).uniform(0.1, 1.0, W.shape)  # padding row non-zero too
    loss = replayed(emb, lambda: float(np.sum(emb(idx) * dy)))
    state = emb.rng.bit_generator.state
    y = emb(idx)
    emb.backward(dy)
    emb.rng.bit_generator.state = state
    numeric = numerical_gradient(loss, W)
    if padding_idx is not None:
        numeric[padding_idx] = 0  # the padding row takes no gradient, by definition
    assert rel_error(emb.grads["weight"], numeric) < 1e-8
    # whole words: every occurrence of a word is dropped, or all are scaled by 1 / (1 - p)
    scale_applied = y / W[idx]  # (..., D)
    for r in np.unique(idx):
        at_r = scale_applied[idx == r]
        # y / W is the scale up to one rounding of each product: compare to 2 ulp
        scale = 0.0 if at_r.flat[0] == 0 else 1 / (1 - p)
        np.testing.assert_allclose(at_r, scale, rtol=4.5e-16, atol=0)


def test_embedding_default_is_bit_identical_and_draws_nothing():
    idx = np.array([[0, 3, 3], [4, 1, 2]])
    emb = npseq.Embedding(5, 3, seed=9)
    weight = np.random.default_rng(9).standard_normal((5, 3))  # PyTorch's N(0, 1), as before
    assert emb.params["weight"].tobytes() == weight.tobytes()
    state = emb.rng.bit_generator.state
    assert emb(idx).tobytes() == weight[idx].tobytes()
    assert emb.rng.bit_generator.state == state
    emb.backward(np.ones((2, 3, 3)))
    dropping = npseq.Embedding(5, 3, seed=9, dropout=0.5).eval()
    with npseq.no_grad():
        assert dropping(idx).tobytes() == weight[idx].tobytes()


def test_embedding_dropout_one_mask_over_the_vocabulary_per_call():
    V, p = 20000, 0.3
    emb = npseq.Embedding(V, 2, seed=1, dropout=p)
    idx = np.arange(V)
    with npseq.no_grad():
        y1, y2 = emb(idx), emb(idx)
    kept = np.count_nonzero(y1[:, 0])
    assert abs(kept - V * (1 - p)) < binomial_bound(V, 1 - p)
    assert not np.array_equal(y1 == 0, y2 == 0)  # a new mask at every call
    with pytest.raises(ValueError, match="dropout: expected a number in"):
        npseq.Embedding(4, 2, dropout=-0.1)


# -- AR and TAR ----------------------------------------------------------------------------
@st.composite
def activation_cases(draw):
    T, B, F = draw(st.integers(2, 5)), draw(st.integers(1, 4)), draw(st.integers(1, 4))
    layout = draw(st.sampled_from(["time_major", "batch_first", "unbatched"]))
    shape = {"time_major": (T, B, F), "batch_first": (B, T, F), "unbatched": (T, F)}[layout]
    h = draw(arrays(shape, nonzero_floats(0.1, 2.0)))
    nb = 1 if layout == "unbatched" else B
    lengths = draw(st.none() | hnp.arrays(np.int64, (nb,), elements=st.integers(2, T)))
    if layout == "unbatched" and lengths is not None:
        lengths = int(lengths[0])
    return h, lengths, layout == "batch_first", draw(st.sampled_from(["mean", "sum"]))


@given(activation_cases(), st.sampled_from([losses.ar_loss, losses.tar_loss]))
def test_ar_tar_gradients(case, fn):
    h, lengths, batch_first, reduction = case
    h = h.copy()
    scale = 1.7
    loss, dh = fn(h, scale, lengths=lengths, batch_first=batch_first, reduction=reduction)
    assert dh.shape == h.shape and dh.dtype == h.dtype
    numeric = numerical_gradient(
        lambda: fn(h, scale, lengths, batch_first, reduction)[0], h)
    assert rel_error(dh, numeric) < 1e-7


def reference_ar_tar(h, lengths, alpha, beta):
    """AR and TAR from explicit lists of the counted terms (time-major h)."""
    T, B, F = h.shape
    ar_terms = [h[t, b, f] ** 2 for b in range(B) for t in range(lengths[b]) for f in range(F)]
    tar_terms = [(h[t + 1, b, f] - h[t, b, f]) ** 2 for b in range(B)
                 for t in range(lengths[b] - 1) for f in range(F)]
    return alpha * np.mean(ar_terms), beta * np.mean(tar_terms)


def test_ar_tar_normalisation_and_padded_steps():
    rng = np.random.default_rng(4)
    h = rng.standard_normal((6, 3, 2))
    lengths = np.array([6, 2, 4])
    ar, dar = losses.ar_loss(h, 2.0, lengths=lengths)
    tar, dtar = losses.tar_loss(h, 1.5, lengths=lengths)
    ref_ar, ref_tar = reference_ar_tar(h, lengths, 2.0, 1.5)
    assert math.isclose(ar, ref_ar, rel_tol=1e-13) and math.isclose(tar, ref_tar, rel_tol=1e-13)
    padded = np.arange(6)[:, None] >= lengths[None, :]  # (T, B)
    assert np.all(dar[padded] == 0) and np.all(dtar[padded] == 0)
    h2 = h.copy()
    h2[padded] = 1e3  # what the padded steps hold does not matter
    assert losses.ar_loss(h2, 2.0, lengths=lengths)[0] == ar
    assert losses.tar_loss(h2, 1.5, lengths=lengths)[0] == tar
    # without lengths: exactly AWD-LSTM's .mean() (written here in NumPy)
    assert math.isclose(losses.ar_loss(h, 2.0)[0], 2.0 * np.mean(h ** 2), rel_tol=1e-14)
    assert math.isclose(losses.tar_loss(h, 1.5)[0], 1.5 * np.mean((h[1:] - h[:-1]) ** 2),
                        rel_tol=1e-14)


def test_tar_without_any_pair_is_nan_with_zero_gradient():
    loss, dh = losses.tar_loss(np.ones((1, 2, 3)))
    assert math.isnan(loss) and not np.any(dh)
    loss, dh = losses.tar_loss(np.ones((3, 2, 3)), lengths=[1, 1])
    assert math.isnan(loss) and not np.any(dh)
    assert losses.tar_loss(np.ones((1, 2, 3)), reduction="sum")[0] == 0


def test_ar_tar_reject_bad_arguments():
    with pytest.raises(ValueError, match="alpha: expected a finite number >= 0"):
        losses.ar_loss(np.ones((2, 1, 1)), -1.0)
    with pytest.raises(TypeError, match="beta: expected a finite number >= 0"):
        losses.tar_loss(np.ones((2, 1, 1)), "1")
    with pytest.raises(ValueError, match=r"h: expected shape \(seq_len, batch, features\)"):
        losses.ar_loss(np.ones(3))
    with pytest.raises(ValueError, match="lengths"):
        losses.tar_loss(np.ones((2, 2, 1)), lengths=[3, 1])


# -- initialisations -----------------------------------------------------------------------
def blocks(W, G):
    H = W.shape[0] // G
    return [W[k * H:(k + 1) * H] for k in range(G)]


@pytest.mark.parametrize("make, G", [
    (lambda: npseq.LSTM(3, 5, num_layers=2, bidirectional=True, seed=0), 4),
    (lambda: npseq.GRU(3, 5, num_layers=2, seed=0), 3),
    (lambda: npseq.RNN(3, 5, bidirectional=True, seed=0), 1),
    (lambda: npseq.LSTMCell(3, 5, seed=0), 4),
])
@pytest.mark.parametrize("gain", [1.0, 0.5])
def test_orthogonal_blocks(make, G, gain):
    module = make()
    before = {k: v.copy() for k, v in module.params.items()}
    arrays_before = {k: v for k, v in module.params.items()}
    assert npseq.init.orthogonal_(module, gain=gain, seed=1) is module
    hh = [k for k in module.params if k.startswith("weight_hh")]
    assert hh
    for k in module.params:
        assert module.params[k] is arrays_before[k]  # in place
        if k.startswith("weight_hh"):
            for W in blocks(module.params[k], G):
                assert np.allclose(W @ W.T, gain ** 2 * np.eye(W.shape[0]), atol=1e-12)
            assert not np.allclose(module.params[k], before[k])
        else:
            assert np.array_equal(module.params[k], before[k])  # the rest untouched
    again = npseq.init.orthogonal_(make(), gain=gain, seed=1)
    assert all(np.array_equal(again.params[k], module.params[k]) for k in hh)


def test_orthogonal_with_projection_has_orthonormal_columns():
    lstm = npseq.init.orthogonal_(npseq.LSTM(3, 6, proj_size=2, seed=0), seed=0)
    for W in blocks(lstm.params["weight_hh_l0"], 4):  # (6, 2) blocks
        assert np.allclose(W.T @ W, np.eye(2), atol=1e-12)


def lstm_step_c(module_params, sfx, H, c0_value=1.0):
    """c after one LSTM step from x = 0, h0 = 0, c0 = c0_value, with every weight zeroed:
    c = sigmoid(b_f) * c0 + sigmoid(b_i) * tanh(b_g); written from the equations."""
    s = lambda a: 1 / (1 + np.exp(-a))
    b = module_params["bias_ih" + sfx] + module_params["bias_hh" + sfx]
    b_i, b_f, b_g = b[:H], b[H:2 * H], b[2 * H:3 * H]
    return s(b_f) * c0_value + s(b_i) * np.tanh(b_g)


@pytest.mark.parametrize("value", [1.0, 2.5, -0.5])
def test_forget_bias_sets_the_forget_gate(value):
    H = 4
    lstm = npseq.LSTM(2, H, num_layers=2, bidirectional=True, seed=0)
    before = {k: v.copy() for k, v in lstm.params.items()}
    npseq.init.forget_bias_(lstm, value)
    for k, v in lstm.params.items():
        if k.startswith("bias_ih"):
            total = v + lstm.params["bias_hh" + k[len("bias_ih"):]]
            assert np.allclose(total[H:2 * H], value, rtol=0, atol=1e-15)
            assert np.array_equal(v[H:2 * H], lstm.params["bias_hh" + k[7:]][H:2 * H])
        mask = np.ones(v.shape, bool)
        if k.startswith("bias"):
            mask[H:2 * H] = False
        assert np.array_equal(v[mask], before[k][mask])  # nothing else changed
    # behaviour: with the weights zeroed and the other biases zero, one step from c0 = 1
    # gives c = sigmoid(value): the block set is the forget gate's
    cell = npseq.init.forget_bias_(npseq.LSTMCell(2, H, seed=0), value)
    for k in ("weight_ih", "weight_hh"):
        cell.params[k][...] = 0
    for k in ("bias_ih", "bias_hh"):
        cell.params[k][:H] = 0
        cell.params[k][2 * H:] = 0
    with npseq.no_grad():
        h, c = cell(np.zeros((1, 2)), (np.zeros((1, H)), np.ones((1, H))))
    expected = 1 / (1 + np.exp(-value)) + 0.5 * np.tanh(0.0)
    assert np.allclose(c, expected, rtol=1e-15)


def test_identity_and_irnn_keeps_its_state_without_input():
    rnn = npseq.init.identity_(npseq.RNN(2, 5, nonlinearity="relu", num_layers=2, seed=0),
                               scale=1.0)
    for k, v in rnn.params.items():
        if k.startswith("weight_hh"):
            assert np.array_equal(v, np.eye(5))
        if k.startswith("bias"):
            assert not np.any(v)
    h0 = np.random.default_rng(0).uniform(0.1, 1.0, (2, 3, 5))
    with npseq.no_grad():
        out, h_n = rnn(np.zeros((7, 3, 2)), h0)
    # layer 0: h = relu(0 + I h_prev + 0) = h_prev, exactly (layer 1 reads layer 0's output)
    assert np.array_equal(h_n[0], h0[0])
    cell = npseq.init.identity_(npseq.RNNCell(2, 3, nonlinearity="relu"), scale=0.01)
    assert np.array_equal(cell.params["weight_hh"], 0.01 * np.eye(3))


@pytest.mark.parametrize("max_len", [3, 50, 1000])
def test_chrono_ranges(max_len):
    H = 200
    lstm = npseq.init.chrono_(npseq.LSTM(2, H, bidirectional=True, seed=0), max_len, seed=3)
    for sfx in ("_l0", "_l0_reverse"):
        b = lstm.params["bias_ih" + sfx] + lstm.params["bias_hh" + sfx]
        b_i, b_f = b[:H], b[H:2 * H]
        assert np.all(b_f >= 0) and np.all(b_f <= math.log(max_len - 1) + 1e-12)
        assert np.allclose(b_i, -b_f, rtol=0, atol=1e-15)
        memory = 1 + np.exp(b_f)  # 1 / (1 - sigmoid(b_f)), in [2, max_len]
        assert memory.min() >= 2 - 1e-9 and memory.max() <= max_len + 1e-9
        if max_len > 3:  # exp(b_f) - 1 is uniform on [0, max_len - 2]: spread over the range
            assert np.median(np.exp(b_f)) == pytest.approx(max_len / 2, rel=0.25)
    gru = npseq.init.chrono_(npseq.GRU(2, H, seed=0), max_len, seed=3)
    bz = (gru.params["bias_ih_l0"] + gru.params["bias_hh_l0"])[H:2 * H]
    assert np.all(bz >= 0) and np.all(bz <= math.log(max_len - 1) + 1e-12)
    # behaviour: one LSTM step with zeroed weights keeps c0 * sigmoid(b_f)
    cell = npseq.init.chrono_(npseq.LSTMCell(1, 3, seed=0), max_len, seed=2)
    for k in ("weight_ih", "weight_hh"):
        cell.params[k][...] = 0
    with npseq.no_grad():
        h, c = cell(np.zeros((1, 1)), (np.zeros((1, 3)), np.ones((1, 3))))
    assert np.allclose(c[0], lstm_step_c(cell.params, "", 3), rtol=1e-14)


def test_init_helpers_reject_what_they_cannot_initialise():
    with pytest.raises(TypeError, match="forget_bias_ expects an npseq.LSTM"):
        npseq.init.forget_bias_(npseq.GRU(2, 3))
    with pytest.raises(ValueError, match="without layer_norm"):
        npseq.init.forget_bias_(npseq.LSTM(2, 3, layer_norm=True))
    with pytest.raises(ValueError, match="bias=False"):
        npseq.init.forget_bias_(npseq.LSTM(2, 3, bias=False))
    with pytest.raises(TypeError, match="identity_ expects an npseq.RNN"):
        npseq.init.identity_(npseq.LSTM(2, 3))
    with pytest.raises(ValueError, match="max_len: expected an integer >= 3"):
        npseq.init.chrono_(npseq.LSTM(2, 3), 2)
    with pytest.raises(ValueError, match="recurrent_activation='sigmoid'"):
        npseq.init.chrono_(npseq.GRU(2, 3, recurrent_activation="hard_sigmoid"), 10)
    with pytest.raises(TypeError, match="expected an npseq recurrent layer or cell"):
        npseq.init.orthogonal_(npseq.Linear(2, 3))
    with pytest.raises(ValueError, match="gain: expected a finite real number"):
        npseq.init.orthogonal_(npseq.GRU(2, 3), gain=float("nan"))
    with pytest.raises(TypeError, match="value: expected a finite real number"):
        npseq.init.forget_bias_(npseq.LSTM(2, 3), value="1")


# -- arguments left alone, dtypes kept -----------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_arguments_left_alone_and_dtype_kept(dtype):
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 3, 5)).astype(dtype)
    dy = rng.standard_normal((4, 3, 5)).astype(dtype)
    lengths = np.array([4, 2, 3])
    saved = [a.copy() for a in (x, dy, lengths)]
    for drop in (npseq.Dropout(0.5, seed=0), npseq.LockedDropout(0.5, seed=0)):
        y = drop(x)
        dx = drop.backward(dy)
        assert y.dtype == dx.dtype == dtype
        assert not np.shares_memory(y, x) and not np.shares_memory(dx, dy)
    for fn in (losses.ar_loss, losses.tar_loss):
        loss, dh = fn(x, 1.0, lengths=lengths)
        assert dh.dtype == dtype and np.isfinite(loss)
    emb = npseq.Embedding(6, 5, dtype=dtype, seed=0, dropout=0.5)
    idx = np.array([[1, 2, 2], [5, 0, 1]])
    idx_saved = idx.copy()
    assert emb(idx).dtype == dtype
    emb.backward(dy[:2, :3])
    assert np.array_equal(idx, idx_saved)
    for a, b in zip((x, dy, lengths), saved):
        assert np.array_equal(a, b)
