"""Sequential and LastStep: finite differences of every parameter, shared arrays, API."""
import warnings

import numpy as np
import pytest

import npseq
from npseq import losses, optim
from npseq.gradcheck import numerical_gradient, rel_error


def biased(module, seed):
    """Random non-zero biases (the default init could leave a bug hidden behind zeros)."""
    rng = np.random.default_rng(seed)
    for k, p in module.params.items():
        if "bias" in k:
            p[...] = rng.uniform(0.2, 0.8, p.shape) * rng.choice([-1, 1], p.shape)
    return module


def check_model(model, x, state=None, lengths=None, seed=0):
    """Every gradient of ``L = <y, G> + <state_n, G_s>`` against central differences."""
    rng = np.random.default_rng(seed)
    x = np.array(x)
    y, state_n = model(x, state, lengths)
    states = state_n if isinstance(state_n, tuple) else (state_n,)
    G = rng.standard_normal(y.shape)
    Gs = tuple(rng.standard_normal(s.shape) for s in states)

    def loss():
        with npseq.no_grad():
            y, s = model(x, state, lengths)
        s = s if isinstance(s, tuple) else (s,)
        return float(np.sum(y * G) + sum(np.sum(a * b) for a, b in zip(s, Gs)))

    model.zero_grad()
    dx, dstate0 = model.backward(G, Gs if isinstance(state_n, tuple) else Gs[0])
    errors = {k: rel_error(model.grads[k], numerical_gradient(loss, p))
              for k, p in model.params.items()}
    if dx is not None:
        errors["x"] = rel_error(dx, numerical_gradient(loss, x))
    if state is not None:
        for i, (s, ds) in enumerate(zip(state, dstate0)):
            errors[f"state[{i}]"] = rel_error(ds, numerical_gradient(loss, s))
    return errors


def test_lstm_linear_gradients_match_finite_differences():
    rng = np.random.default_rng(1)
    model = npseq.Sequential(biased(npseq.LSTM(3, 4, seed=0), 1),
                             biased(npseq.Linear(4, 2, seed=1), 2))
    x = rng.standard_normal((5, 2, 3))
    state = (rng.standard_normal((1, 2, 4)), rng.standard_normal((1, 2, 4)))
    errors = check_model(model, x, state)
    assert len(errors) == 4 + 2 + 1 + 2  # LSTM, Linear, x, (h0, c0)
    assert max(errors.values()) < 1e-7, errors


def test_lstm_laststep_linear_with_lengths_and_batch_first():
    rng = np.random.default_rng(2)
    model = npseq.Sequential(biased(npseq.LSTM(2, 3, batch_first=True, seed=0), 3),
                             npseq.LastStep(), biased(npseq.Linear(3, 2, seed=1), 4))
    x = rng.standard_normal((3, 4, 2))  # (B, T, D)
    lengths = np.array([4, 1, 3])
    errors = check_model(model, x, lengths=lengths)
    assert max(errors.values()) < 1e-7, errors
    # the output is the head of each sequence's last valid step
    with npseq.no_grad():
        out, _ = model[0](x, lengths=lengths)
        head = model[2](out[np.arange(3), lengths - 1])
    y, _ = model(x, lengths=lengths)
    np.testing.assert_allclose(y, head, rtol=1e-14)
    model.backward(np.zeros_like(y))


def test_embedding_gru_linear_over_time_steps():
    """Token ids -> Embedding -> GRU -> Linear at every step, cross-entropy with a mask."""
    rng = np.random.default_rng(3)
    model = npseq.Sequential(npseq.Embedding(5, 3, padding_idx=0, seed=0),
                             biased(npseq.GRU(3, 4, seed=1), 5),
                             biased(npseq.Linear(4, 5, seed=2), 6))
    ids = rng.integers(0, 5, size=(4, 2))
    target = rng.integers(0, 5, size=(4, 2))
    lengths = np.array([4, 2])
    mask = np.arange(4)[:, None] < lengths

    def loss():
        with npseq.no_grad():
            logits, _ = model(ids, lengths=lengths)
        return losses.cross_entropy(logits, target, mask=mask)[0]

    logits, _ = model(ids, lengths=lengths)
    _, dlogits = losses.cross_entropy(logits, target, mask=mask)
    dx, dh0 = model.backward(dlogits)
    assert dx is None and dh0.shape == (1, 2, 4)
    for k, p in model.params.items():
        numeric = numerical_gradient(loss, p)
        if k == "0.weight":
            assert numeric[0].any()  # the padding row is used in the forward ...
            numeric[0] = 0  # ... but gets no gradient, by definition
        assert rel_error(model.grads[k], numeric) < 1e-7, k


def randomised(module, seed):
    """Every parameter random and non-zero (weights and biases): |v| in [0.1, 0.7]."""
    rng = np.random.default_rng(seed)
    for p in module.params.values():
        p[...] = rng.uniform(0.1, 0.7, p.shape) * rng.choice([-1, 1], p.shape)
    return module


def test_two_linears_before_the_layer_and_heads_after():
    """Linear -> Linear -> LSTM -> LastStep -> Linear: the modules before the layer get their
    gradients in reverse order (the second Linear first). Both Linears map 3 -> 3, so an
    order mistake gives wrong numbers, not a shape error."""
    rng = np.random.default_rng(7)
    model = npseq.Sequential(randomised(npseq.Linear(3, 3, seed=0), 1),
                             randomised(npseq.Linear(3, 3, seed=1), 2),
                             randomised(npseq.LSTM(3, 4, batch_first=True, seed=2), 3),
                             npseq.LastStep(), randomised(npseq.Linear(4, 2, seed=3), 4))
    x = rng.standard_normal((3, 5, 3))  # (B, T, D)
    state = (rng.standard_normal((1, 3, 4)), rng.standard_normal((1, 3, 4)))
    errors = check_model(model, x, state, lengths=np.array([5, 2, 4]), seed=8)
    assert set(errors) == {*model.params, "x", "state[0]", "state[1]"}
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("num_before", [2, 3])
def test_embedding_and_linears_before_a_bidirectional_gru(num_before):
    """Embedding -> Linear (-> Linear) -> GRU(2 layers, bidirectional) -> Linear, at every step:
    every parameter, including the embedding table, by central differences."""
    rng = np.random.default_rng(9 + num_before)
    before = [npseq.Embedding(6, 3, seed=0)] + [randomised(npseq.Linear(3, 3, seed=i), i)
                                                  for i in range(1, num_before)]
    model = npseq.Sequential(*before,
                             randomised(npseq.GRU(3, 2, num_layers=2, bidirectional=True,
                                                  seed=5), 6),
                             randomised(npseq.Linear(4, 3, seed=7), 8))
    ids = rng.integers(0, 6, size=(4, 3))  # (T, B)
    h0 = rng.standard_normal((4, 3, 2))
    errors = check_model(model, ids, h0, lengths=np.array([2, 4, 3]), seed=10)
    assert set(errors) == {*model.params, *(f"state[{i}]" for i in range(4))}  # no ids
    assert max(errors.values()) < 1e-7, errors


def test_params_are_the_submodules_arrays_and_an_optimizer_trains_them():
    rng = np.random.default_rng(4)
    rnn, head = npseq.GRU(1, 8, seed=0), npseq.Linear(8, 1, seed=1)
    model = npseq.Sequential(rnn, npseq.LastStep(), head)
    assert model[0] is rnn and model[2] is head and len(model) == 3
    assert model.params["0.weight_ih_l0"] is rnn.params["weight_ih_l0"]
    assert model.grads["2.bias"] is head.grads["bias"]
    assert list(model.params) == [f"0.{k}" for k in rnn.params] + ["2.weight", "2.bias"]
    assert model.num_parameters() == rnn.num_parameters() + 9

    x = rng.standard_normal((6, 32, 1))
    y = x.sum(0) * 0.3  # (B, 1): the sum of the sequence
    opt = optim.Adam(model.params, model.grads, lr=0.02)
    history = []
    for _ in range(150):
        opt.zero_grad()
        pred, _ = model(x)
        loss, dpred = losses.mse_loss(pred, y)
        model.backward(dpred)
        opt.step()
        history.append(loss)
    assert history[-1] < history[0] / 20
    assert np.abs(head.grads["weight"]).sum() > 0  # the sub-module's own grads were filled
    model.zero_grad()
    assert not any(g.any() for g in rnn.grads.values())


def test_state_dict_round_trip_and_train_eval():
    a = npseq.Sequential(npseq.LSTM(2, 3, num_layers=2, dropout=0.5, seed=0),
                         npseq.Linear(3, 1, seed=1))
    b = npseq.Sequential(npseq.LSTM(2, 3, num_layers=2, dropout=0.5, seed=5),
                         npseq.Linear(3, 1, seed=6))
    sd = a.state_dict()
    assert "1.weight" in sd and sd["1.weight"] is not a.params["1.weight"]
    b.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((4, 2, 2))
    a.eval(), b.eval()
    assert not a.training and not a[0].training and not a[1].training
    with npseq.no_grad():
        np.testing.assert_array_equal(a(x)[0], b(x)[0])
    a.train()
    assert a[0].training
    with pytest.raises(KeyError, match="1.bias"):
        b.load_state_dict({k: v for k, v in sd.items() if k != "1.bias"})


def test_backward_pairs_with_the_latest_forward_and_a_dropped_one_is_flagged():
    rng = np.random.default_rng(5)
    model = npseq.Sequential(npseq.RNN(2, 3, seed=0), npseq.LastStep(),
                             npseq.Linear(3, 1, seed=1))
    x1, x2 = rng.standard_normal((4, 2, 2)), rng.standard_normal((3, 5, 2))
    d2 = rng.standard_normal((5, 1))
    model(x1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model(x2)
    assert [w.category for w in caught] == [npseq.UnpairedForwardWarning]  # once, not 3x
    assert "no_grad" in str(caught[0].message) and "clear_records" in str(caught[0].message)
    dx2, _ = model.backward(d2)
    assert dx2.shape == x2.shape
    got = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    model(x2)
    model.backward(d2)
    for k in got:
        np.testing.assert_array_equal(model.grads[k], got[k])
    with pytest.raises(RuntimeError, match="no forward call to pair it with"):
        model.backward(d2)
    model(x1)
    assert model.pending_records == 1
    model.clear_records()
    assert model.pending_records == 0 and all(m.pending_records == 0 for m in model)
    with pytest.raises(RuntimeError, match="no forward call to pair it with"):
        model.backward(rng.standard_normal((2, 1)))


def test_laststep_layouts_and_bidirectional():
    out = np.random.default_rng(6).standard_normal((4, 3, 2))  # (T, B, F)
    head = npseq.LastStep()
    np.testing.assert_array_equal(head(out), out[-1])
    np.testing.assert_array_equal(head.backward(np.ones((3, 2)))[:-1], 0)
    bf = out.transpose(1, 0, 2)
    np.testing.assert_array_equal(head(bf, lengths=[2, 4, 1], batch_first=True),
                                  out[[1, 3, 0], [0, 1, 2]])
    dy = np.arange(6.0).reshape(3, 2)
    dbf = head.backward(dy)
    assert dbf.shape == bf.shape
    np.testing.assert_array_equal(dbf[[0, 1, 2], [1, 3, 0]], dy)
    assert np.count_nonzero(dbf) == 5  # dy[0, 0] is zero
    np.testing.assert_array_equal(head(out[:, 0], lengths=3), out[2, 0])  # unbatched
    np.testing.assert_array_equal(head.backward(np.ones(2))[2], 1)
    # bidirectional: out[last] of both directions
    bi = npseq.Sequential(npseq.GRU(2, 3, bidirectional=True, seed=0), npseq.LastStep())
    x = np.ones((5, 2, 2))
    with npseq.no_grad():
        y, _ = bi(x)
        full, _ = bi[0](x)
    np.testing.assert_array_equal(y, full[-1])
    assert y.shape == (2, 6)


@pytest.mark.parametrize("call, err, match", [
    (lambda: npseq.Sequential(npseq.Linear(2, 2)), ValueError, "exactly one recurrent layer"),
    (lambda: npseq.Sequential(npseq.GRU(2, 2), npseq.GRU(2, 2)), ValueError, "got 2"),
    (lambda: npseq.Sequential(npseq.GRU(2, 2), np.tanh), TypeError, r"modules\[1\]"),
    (lambda: npseq.Sequential(npseq.GRU(2, 2), npseq.Linear(2, 1, dtype=np.float32)),
     ValueError, r"modules\[1\]: expected dtype float64"),
    (lambda: npseq.LastStep()(np.ones((3, 2, 1)), lengths=[4, 1]), ValueError,
     r"lengths: expected every length in 1\.\.3"),
    (lambda: npseq.LastStep()(np.ones((3, 2, 1)), lengths=[1]), ValueError,
     r"lengths: expected shape \(2,\)"),
    (lambda: npseq.LastStep()(np.ones((3, 2, 1)), lengths=[1.5, 1]), TypeError, "lengths"),
    (lambda: npseq.LastStep()(np.ones(3)), ValueError, "out: expected shape"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


def test_backward_without_forward_and_bad_dy():
    model = npseq.Sequential(npseq.GRU(2, 3, seed=0), npseq.LastStep())
    with pytest.raises(RuntimeError, match="no forward"):
        model.backward(np.ones((2, 3)))
    model(np.ones((4, 2, 2)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 3\)"):
        model.backward(np.ones((4, 2, 3)))


@pytest.mark.parametrize("heads", [
    [npseq.LastStep()],
    [npseq.LastStep(), npseq.Linear(3, 2, seed=1)],
    [npseq.Linear(3, 2, seed=1)],
])
def test_backward_with_a_wrong_dy_or_dstate_can_be_retried(heads):
    """A rejected dy (first head) or dstate (layer) pops no sub-module's forward record, so
    the corrected call gives the gradients of a first-time call."""
    rng = np.random.default_rng(3)
    layer = biased(npseq.LSTM(2, 3, seed=0), 1)
    model = npseq.Sequential(npseq.Linear(2, 2, seed=2), layer, *heads)
    x = rng.standard_normal((4, 2, 2))
    y, (h, c) = model(x)
    dy = rng.standard_normal(y.shape)
    dstate = (rng.standard_normal(h.shape), rng.standard_normal(c.shape))
    with pytest.raises(ValueError, match="dy: expected shape"):
        model.backward(np.ones(y.shape + (2,)), dstate)
    with pytest.raises(ValueError, match=r"dstate\[1\] \(dc_n\): expected shape"):
        model.backward(dy, (dstate[0], np.ones((1, 2, 4))))
    with pytest.raises(TypeError, match="dstate: expected a tuple"):
        model.backward(dy, dstate[0])
    dx, dstate0 = model.backward(dy, dstate)
    expected = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    model(x)
    dx_fresh, dstate0_fresh = model.backward(dy, dstate)
    np.testing.assert_array_equal(dx, dx_fresh)
    for k in expected:
        np.testing.assert_array_equal(expected[k], model.grads[k])
    assert np.abs(dx).max() > 0
    with pytest.raises(RuntimeError, match="no forward"):
        model.backward(dy, dstate)


def test_truncated_bptt_drives_a_sequential():
    """A model is a drop-in for a layer in truncated_bptt (it has batch_first, dtype ...)."""
    rng = np.random.default_rng(7)
    model = npseq.Sequential(npseq.GRU(2, 3, batch_first=True, seed=0),
                             npseq.Linear(3, 1, seed=1))
    x = rng.standard_normal((2, 6, 2))  # (B, T, D)
    y = rng.standard_normal((2, 6, 1))
    assert model.batch_first

    def loss_and_grad(out, start, stop):
        return losses.mse_loss(out, y[:, start:stop], reduction="sum")

    total, _ = npseq.truncated_bptt(model, x, 6, loss_and_grad)  # k = T: plain BPTT
    whole = {k: g.copy() for k, g in model.grads.items()}
    model.zero_grad()
    out, _ = model(x)
    loss, dout = loss_and_grad(out, 0, 6)
    model.backward(dout)
    assert total == pytest.approx(loss, rel=1e-14)
    for k in whole:
        np.testing.assert_allclose(whole[k], model.grads[k], rtol=1e-13)
