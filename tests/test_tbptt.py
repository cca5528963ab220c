"""Truncated BPTT (``npseq.truncated_bptt``): with k >= T it is full BPTT; with k < T its
gradient is the sum over chunks of each chunk's loss gradient with the chunk's initial state
held constant (checked against finite differences, not against the code under test); the
forward over chunks equals the forward over the whole sequence."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import numerical_gradient, rel_error
from npseq.tbptt import time_chunks
from strategies import LayerConfig, examples, layer_cases, layer_configs, unpack_state

unidirectional = layer_configs(max_layers=2, dropout=False).filter(lambda c: not c.bidirectional)


def time_axis(cfg):
    return 1 if cfg.batch_first and cfg.batch is not None else 0


def take(a, axis, start, stop):
    return a[:, start:stop] if axis == 1 else a[start:stop]


class SquaredError:
    """``loss_and_grad`` for ``0.5 * sum((out - target)**2)``, recording each chunk's output."""

    def __init__(self, target, axis):
        self.target, self.axis, self.outs, self.calls = target, axis, [], []

    def __call__(self, out, start, stop):
        self.outs.append(out.copy())
        self.calls.append((start, stop))
        diff = out - take(self.target, self.axis, start, stop)
        return 0.5 * float(np.sum(diff ** 2)), diff


@given(case=layer_cases(configs=layer_configs(max_layers=2)), extra=st.integers(0, 3))
@settings(max_examples=examples(15))
def test_k_at_least_T_equals_full_bptt(case, extra):
    cfg = case.config
    axis = time_axis(cfg)
    m, full = cfg.build(), cfg.build()  # same seed: same weights and dropout masks
    target = case.dout  # any array shaped like out
    loss_fn = SquaredError(target, axis)
    total, state = npseq.truncated_bptt(m, case.x, cfg.seq_len + extra, loss_fn, case.state)
    out, state_full = full(case.x, case.state)
    full.backward(out - target)
    assert loss_fn.calls == [(0, cfg.seq_len)]
    assert total == pytest.approx(0.5 * np.sum((out - target) ** 2), rel=1e-13)
    for a, b in zip(unpack_state(state), unpack_state(state_full)):
        np.testing.assert_array_equal(a, b)
    for k in m.grads:
        np.testing.assert_array_equal(m.grads[k], full.grads[k])


@given(case=layer_cases(configs=unidirectional.filter(lambda c: c.seq_len >= 3),
                        with_lengths=False), data=st.data())
@settings(max_examples=examples(10))
def test_forward_over_chunks_equals_the_whole_and_chunks_are_in_order(case, data):
    cfg = case.config
    axis = time_axis(cfg)
    k = data.draw(st.integers(1, cfg.seq_len - 1))
    m = cfg.build()
    loss_fn = SquaredError(case.dout, axis)
    seen = []
    total, state = npseq.truncated_bptt(m, case.x, k, loss_fn, case.state,
                                        on_chunk=lambda *a: seen.append(a))
    with npseq.no_grad():
        out, state_full = m(case.x, case.state)
    np.testing.assert_allclose(np.concatenate(loss_fn.outs, axis=axis), out, rtol=1e-13,
                               atol=1e-14)
    for a, b in zip(unpack_state(state), unpack_state(state_full)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)
    starts = list(range(0, cfg.seq_len, k))
    assert loss_fn.calls == [(s, min(s + k, cfg.seq_len)) for s in starts]
    assert [(a, b) for a, b, _ in seen] == loss_fn.calls
    assert total == pytest.approx(sum(loss for _, _, loss in seen), rel=1e-13)
    assert total == pytest.approx(0.5 * np.sum((out - case.dout) ** 2), rel=1e-12)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_k_below_T_gives_the_truncated_gradient(kind, k):
    """Reference built independently: for each chunk, the state it starts from is computed
    once and held constant, and the chunk's loss is differentiated by central differences
    with respect to every parameter; the sum over chunks is the truncated gradient."""
    rng = np.random.default_rng(0)
    cfg = LayerConfig(kind, 2, 3, num_layers=2, seq_len=5, batch=2, seed=1)
    x = rng.standard_normal((5, 2, 2))
    target = rng.standard_normal((5, 2, 3))
    h0 = [rng.standard_normal(s) for s in cfg.state_shapes()]
    state0 = tuple(h0) if kind == "lstm" else h0[0]

    m = cfg.build()
    for v in m.params.values():  # random non-zero biases, not only the init
        v += rng.uniform(-0.3, 0.3, v.shape)
    truncated = cfg.build()
    truncated.load_state_dict(m.state_dict())
    npseq.truncated_bptt(truncated, x, k, SquaredError(target, 0), state0)

    reference = {name: np.zeros_like(p) for name, p in m.params.items()}
    state = state0
    for start, stop in time_chunks(5, k):
        with npseq.no_grad():
            chunk_state = state  # held constant while this chunk's loss is differentiated
            _, state = m(x[start:stop], chunk_state)

        def chunk_loss():
            with npseq.no_grad():
                out, _ = m(x[start:stop], chunk_state)
            return 0.5 * float(np.sum((out - target[start:stop]) ** 2))

        for name, p in m.params.items():
            reference[name] += numerical_gradient(chunk_loss, p)
    for name in reference:
        assert rel_error(truncated.grads[name], reference[name]) < 1e-7, name

    # and truncation matters: full BPTT differs (else this test could not tell them apart)
    full = cfg.build()
    full.load_state_dict(m.state_dict())
    out, _ = full(x, state0)
    full.backward(out - target)
    assert rel_error(full.grads["weight_hh_l0"], truncated.grads["weight_hh_l0"]) > 1e-3


def test_on_chunk_can_step_an_optimizer_between_chunks():
    """on_chunk runs after each chunk's backward: an SGD step there changes the weights
    the next chunk uses, and zeroing the gradients there keeps only the last chunk's."""
    rng = np.random.default_rng(2)
    x, target = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 4))
    m = npseq.GRU(3, 4, seed=3)
    ref = npseq.GRU(3, 4, seed=3)
    lr = 0.1

    def sgd(start, stop, loss):
        for name, p in m.params.items():
            p -= lr * m.grads[name]
        m.zero_grad()

    npseq.truncated_bptt(m, x, 2, SquaredError(target, 0), on_chunk=sgd)
    state = None
    for start in (0, 2, 4):  # the same by hand
        out, state = ref(x[start:start + 2], state)
        ref.backward(out - target[start:start + 2])
        for name, p in ref.params.items():
            p -= lr * ref.grads[name]
        ref.zero_grad()
    for name in m.params:
        np.testing.assert_allclose(m.params[name], ref.params[name], rtol=1e-13, atol=1e-14)


def test_returned_state_continues_the_stream():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((7, 2, 3))
    m = npseq.LSTM(3, 4, num_layers=2, seed=5)
    noop = lambda out, start, stop: (0.0, np.zeros_like(out))
    _, state = npseq.truncated_bptt(m, x[:4], 3, noop)
    _, state = npseq.truncated_bptt(m, x[4:], 3, noop, state)
    with npseq.no_grad():
        _, whole = m(x)
    for a, b in zip(state, whole):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


def test_time_chunks():
    assert time_chunks(7, 3) == [(0, 3), (3, 6), (6, 7)]
    assert time_chunks(3, 5) == [(0, 3)]
    assert time_chunks(4, 1) == [(0, 1), (1, 2), (2, 3), (3, 4)]


def test_bad_arguments_fail_naming_the_argument():
    m = npseq.GRU(3, 4, seed=0)
    x = np.zeros((5, 2, 3))
    ok = lambda out, start, stop: (0.0, out)
    with pytest.raises(ValueError, match="k"):
        npseq.truncated_bptt(m, x, 0, ok)
    with pytest.raises(TypeError, match="k"):
        npseq.truncated_bptt(m, x, 2.5, ok)
    with pytest.raises(TypeError, match="loss_and_grad"):
        npseq.truncated_bptt(m, x, 2, None)
    with pytest.raises(TypeError, match="on_chunk"):
        npseq.truncated_bptt(m, x, 2, ok, on_chunk=3)
    with pytest.raises(ValueError, match="x"):
        npseq.truncated_bptt(m, np.zeros(5), 2, ok)


@pytest.mark.parametrize("batch_first, batch", [(False, 3), (True, 3), (False, None)])
def test_a_model_that_starts_with_an_embedding_takes_integer_token_ids(batch_first, batch):
    """Token ids reach the Embedding as integers (truncated_bptt does not cast x), and the
    gradients are those of running the chunks by hand: forward with the state carried,
    backward with no gradient into the previous chunk."""
    rng = np.random.default_rng(5)
    T, V, k = 7, 6, 3
    shape = (T,) if batch is None else ((batch, T) if batch_first else (T, batch))
    ids = rng.integers(0, V, shape)
    targets = rng.integers(0, V, shape)
    saved = ids.copy()

    def make():
        model = npseq.Sequential(npseq.Embedding(V, 2, seed=0),
                                 npseq.LSTM(2, 3, batch_first=batch_first, seed=1),
                                 npseq.Linear(3, V, seed=2))
        bias_rng = np.random.default_rng(9)  # random non-zero biases, the same in both
        for name, p in model.params.items():
            if "bias" in name:
                p[...] = bias_rng.uniform(0.2, 0.8, p.shape) * bias_rng.choice([-1, 1], p.shape)
        return model

    axis = 1 if batch_first and batch is not None else 0

    def loss_and_grad(out, start, stop):
        return npseq.losses.cross_entropy(out, take(targets, axis, start, stop),
                                          reduction="sum")

    model = make()
    total, (h, c) = npseq.truncated_bptt(model, ids, k, loss_and_grad)

    by_hand, state, expected_total = make(), None, 0.0
    for start, stop in time_chunks(T, k):
        out, state = by_hand(take(ids, axis, start, stop), state)
        loss, dout = loss_and_grad(out, start, stop)
        by_hand.backward(dout)
        expected_total += loss
    assert total == pytest.approx(expected_total, rel=1e-14, abs=0)
    np.testing.assert_array_equal(h, state[0])
    np.testing.assert_array_equal(c, state[1])
    for name in model.grads:
        np.testing.assert_array_equal(model.grads[name], by_hand.grads[name], err_msg=name)
    assert np.abs(model.grads["0.weight"]).max() > 0  # the Embedding received its gradient
    np.testing.assert_array_equal(ids, saved)
    with pytest.raises(TypeError, match="idx: expected an array of integers"):  # its check
        npseq.truncated_bptt(model, ids.astype(float), k, loss_and_grad)
    with pytest.raises(ValueError, match=r"x: expected a 2-D batch or a 1-D unbatched "
                                         r"sequence of token ids"):
        npseq.truncated_bptt(model, ids[..., None, None], k, loss_and_grad)


def _gru_outputs(p, x, h, masks_per_step):
    """A GRU layer written out, the recurrent product reading m_t * h_prev (Gal &
    Ghahramani 2016; the update z * h_prev reads the carry itself)."""
    H = h.shape[-1]
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    outs = []
    for x_t, m in zip(x, masks_per_step):
        gx = x_t @ p["weight_ih_l0"].T + p["bias_ih_l0"]
        gh = (m * h) @ p["weight_hh_l0"].T + p["bias_hh_l0"]
        r, z = sig(gx[:, :H] + gh[:, :H]), sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        h = (1 - z) * n + z * h
        outs.append(h)
    return np.array(outs)


@pytest.mark.parametrize("masks", ["chunk", "sequence"])
def test_recurrent_dropout_masks_per_chunk_or_per_sequence(masks):
    """"chunk" (the default): every chunk, one forward call, draws its own (B, H) mask;
    "sequence": the first chunk's mask serves them all. The outputs are those of a GRU
    written out with those masks, each chunk's gradient is its loss's by central
    differences (its initial state and its mask held), and the layer's mode is restored."""
    q, k, T = 0.5, 3, 7
    rng = np.random.default_rng(2)
    m = npseq.GRU(2, 3, recurrent_dropout=q, seed=4)
    for v in m.params.values():
        v[...] = rng.choice([-1, 1], v.shape) * rng.uniform(0.1, 0.6, v.shape)
    ref = npseq.GRU(2, 3, recurrent_dropout=q, seed=4)
    ref.load_state_dict(m.state_dict())
    x, target = rng.standard_normal((T, 2, 2)), rng.standard_normal((T, 2, 3))
    h0 = rng.standard_normal((1, 2, 3))
    chunks = time_chunks(T, k)
    replay = copy.deepcopy(m.rng)  # the one draw of each call: the (B, H) mask
    drawn = [npseq.stack.dropout_mask(replay, (2, 3), q, np.float64)
             for _ in (chunks if masks == "chunk" else chunks[:1])]
    chunk_masks = drawn if masks == "chunk" else drawn * len(chunks)
    loss = SquaredError(target, 0)
    npseq.truncated_bptt(m, x, k, loss, h0, masks=masks)
    step_masks = [mk for (start, stop), mk in zip(chunks, chunk_masks)
                  for _ in range(start, stop)]
    want = _gru_outputs(m.params, x, h0[0], step_masks)
    np.testing.assert_allclose(np.concatenate(loss.outs), want, rtol=1e-13, atol=1e-14)
    if masks == "chunk":
        assert not np.array_equal(drawn[0], drawn[1])
    assert m.keep_dropout_masks is False and m.recurrent_masks is None

    reference = {name: np.zeros_like(p) for name, p in ref.params.items()}
    ref.keep_dropout_masks = True
    state = h0
    for (start, stop), mk in zip(chunks, chunk_masks):
        ref.recurrent_masks = [[mk]]  # this chunk's mask, as the layer kept it
        with npseq.no_grad():
            chunk_state = state
            _, state = ref(x[start:stop], chunk_state)

        def chunk_loss():
            with npseq.no_grad():
                out, _ = ref(x[start:stop], chunk_state)
            return 0.5 * float(np.sum((out - target[start:stop]) ** 2))

        for name, p in ref.params.items():
            reference[name] += numerical_gradient(chunk_loss, p)
    for name in reference:
        assert rel_error(m.grads[name], reference[name]) < 1e-7, name


def test_masks_option_is_checked_and_a_sequential_keeps_its_layers_masks():
    with pytest.raises(ValueError, match="^masks: expected 'chunk' or 'sequence', got 'step'"):
        npseq.truncated_bptt(npseq.GRU(2, 3), np.ones((4, 1, 2)), 2,
                             lambda out, a, b: (0.0, out), masks="step")
    lstm = npseq.LSTM(2, 3, recurrent_dropout=0.5, weight_dropout=0.5, seed=0)
    model = npseq.Sequential(lstm, npseq.Linear(3, 1, seed=1))
    seen = []

    def record_masks(start, stop, loss):  # the masks the layer keeps during the call
        seen.append((lstm.recurrent_masks[0][0].copy(), lstm.weight_masks[0][0].copy()))

    npseq.truncated_bptt(model, np.ones((6, 2, 2)), 2, lambda out, a, b: (0.0, out),
                         on_chunk=record_masks, masks="sequence")
    assert len(seen) == 3 and lstm.keep_dropout_masks is False
    for rec, w in seen[1:]:
        np.testing.assert_array_equal(rec, seen[0][0])
        np.testing.assert_array_equal(w, seen[0][1])
