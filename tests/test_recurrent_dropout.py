"""recurrent_dropout (Gal & Ghahramani 2016, Keras's semantics) on the layers, and with
weight_dropout and zoneout: gradients under the masks drawn (central differences, masks
replayed by check_gradients), the mask's shape and reuse at every step, rate 0 bit-identical,
evaluation deterministic, the kinds that refuse it, and the CellKind contract.

The torch references (a cell loop with the same masks) are in test_regularisation_torch.py.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.cells.base import CellKind
from npseq.cells.minrnn import MINGRU
from npseq.cells.rnn import rnn_step_backward, rnn_step_forward
from npseq.gradcheck import check_gradients
from npseq.stack import stack_backward, stack_forward

from strategies import examples, randomise

# (class, options): every built-in kind that takes recurrent dropout, both mechanisms
# ("carry": RNN, LSTM and its variants; "step": the two GRUs)
VARIANTS = {
    "rnn_tanh": (npseq.RNN, {}),
    "lstm": (npseq.LSTM, {}),
    "lstm_proj": (npseq.LSTM, {"proj_size": 2}),
    "lstm_layer_norm": (npseq.LSTM, {"layer_norm": True}),
    "lstm_peephole": (npseq.LSTM, {"peephole": True}),
    "lstm_labml": (npseq.LSTM, {"layer_norm": "labml"}),
    "gru": (npseq.GRU, {}),
    "gru_reset_before": (npseq.GRU, {"reset_after": False}),
}


def make(name, input_size=2, hidden_size=3, **options):
    cls, variant = VARIANTS[name]
    return cls(input_size, hidden_size, **variant, **options)


@st.composite
def regularised_layers(draw):
    """A layer of any kind with a non-empty set of recurrent_dropout, weight_dropout,
    zoneout (each alone or combined), and, drawn, dropout, checkpoint_every; 1-2 layers,
    both directions or one, unequal lengths."""
    name = draw(st.sampled_from(sorted(VARIANTS)))
    rate = st.sampled_from((0.2, 0.5, 0.7))
    chosen = draw(st.sets(st.sampled_from(("recurrent_dropout", "weight_dropout", "zoneout")),
                          min_size=1))
    options = {k: draw(rate) for k in sorted(chosen)}
    if "zoneout" in options and name.startswith("lstm") and draw(st.booleans()):
        options["zoneout"] = (options["zoneout"], draw(rate))  # (p_h, p_c)
    num_layers = draw(st.integers(1, 2))
    if num_layers == 2 and draw(st.booleans()):
        options["dropout"] = draw(rate)
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    if draw(st.booleans()):
        options["checkpoint_every"] = draw(st.integers(1, T + 1))
    H = draw(st.integers(3, 4))
    m = make(name, draw(st.integers(1, 3)), H, num_layers=num_layers,
             bidirectional=draw(st.booleans()), seed=draw(st.integers(0, 2 ** 16)), **options)
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    randomise(m, rng)  # random non-zero biases
    lengths = rng.integers(1, T + 1, B) if draw(st.booleans()) else None
    x = rng.uniform(-1, 1, (T, B, m.input_size))
    LD = num_layers * m.num_directions
    h0 = rng.uniform(-1, 1, (LD, B, m.output_size))
    state = (h0, rng.uniform(-1, 1, (LD, B, H))) if m.kind.num_states == 2 else h0
    return m, x, state, lengths, seed


@settings(max_examples=examples(40))
@given(regularised_layers())
def test_gradients_under_the_masks_drawn_match_central_differences(case):
    """Training mode: the masks are drawn once and replayed for every perturbed forward
    (check_gradients resets the module's generator); a random upstream gradient contracts
    the outputs. Catches a missing ``m *`` on dh_prev (the driver's or the GRU's), a
    masked carry on the GRU's direct path, a checkpoint replaying another mask."""
    m, x, state, lengths, seed = case
    # floor: a tensor whose gradient is tiny everywhere (h0 behind a mask that drops most of
    # it) is measured against 0.05, not against itself: central differences err by about
    # 1e-10 absolutely, which relative to a gradient of 1e-3 would read 1e-7.
    errors = check_gradients(m, x, state, seed=seed, lengths=lengths, floor=0.05)
    assert max(errors.values()) < 1e-7, errors


def forward_with_record(m, x, state=None, lengths=None):
    """The layer's forward through the public core, returning its StackRecord (the masks)."""
    T, B = x.shape[:2]
    carries = m.state_to_carries(state, B)
    mask = None if lengths is None else (np.arange(T)[:, None] < np.asarray(lengths))[..., None]
    options = dict(m.core_options(), rng=copy.deepcopy(m.rng))
    return stack_forward(m.kind, m.stack_params(), x, carries, mask, **options), carries


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_one_mask_per_sequence_reused_at_every_step(name):
    """The h that entered the recurrent product at step t (the step cache's h_prev) is
    m * h_{t-1} with the same (B, H_out) mask m at every step, in both directions; m is 0
    or 1/(1-q), and the layer's own forward draws exactly these masks."""
    q = 0.5
    m = randomise(make(name, 2, 4, bidirectional=True, num_layers=2, recurrent_dropout=q,
                       seed=3), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((6, 5, 2))
    capture = {}
    (out, _, record), (h0, *_) = forward_with_record(m, x)
    with npseq.no_grad():
        want, _ = m(x, capture=capture)
    np.testing.assert_array_equal(out, want)  # the same draws as the layer's own forward
    H_out = m.output_size
    for layer in range(2):
        for direction in range(2):
            mask = record.recurrent_masks[layer][direction]
            assert mask.shape == (5, H_out)
            assert set(np.unique(mask)) <= {0.0, 1 / (1 - q)}
            own = record.records[layer][direction].recurrent_mask
            assert own is mask
            if layer == 0:  # its outputs are not returned; the top layer's are
                continue
            caches = capture[(layer, direction)]
            h = want[:, :, direction * H_out:(direction + 1) * H_out]  # h_t of this direction
            times = range(6) if direction == 0 else range(5, -1, -1)
            prev = h0[layer * 2 + direction]
            for t in times:
                np.testing.assert_array_equal(caches[t].h_prev, mask * prev)
                prev = h[t]
    masks = [mk for row in record.recurrent_masks for mk in row]
    assert not any(np.array_equal(a, b) for i, a in enumerate(masks) for b in masks[i + 1:])


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_rate_zero_is_bit_identical_and_draws_nothing(name):
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((7, 2, 3)), rng.standard_normal((7, 2, 2 * 4))
    results = []
    for options in ({}, dict(recurrent_dropout=0.0)):
        m = make(name, 3, 4, num_layers=2, bidirectional=True, dropout=0.3, zoneout=0.2,
                 weight_dropout=0.1, seed=0, **options)
        out, _ = m(x, lengths=[7, 4])
        dx, _ = m.backward(dout[..., :out.shape[-1]])
        results.append((out, dx, m.grads, m.rng.random()))
    (out_a, dx_a, g_a, r_a), (out_b, dx_b, g_b, r_b) = results
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(dx_a, dx_b)
    for k in g_a:
        np.testing.assert_array_equal(g_a[k], g_b[k])
    assert r_a == r_b  # no extra draws


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_evaluation_is_the_plain_layer_and_draws_nothing(name):
    rng = np.random.default_rng(6)
    m = randomise(make(name, 3, 4, num_layers=2, recurrent_dropout=0.6, seed=0), rng)
    plain = copy.deepcopy(m)
    plain.recurrent_dropout = 0.0
    x = rng.standard_normal((5, 2, 3))
    m.eval()
    before = m.rng.bit_generator.state
    with npseq.no_grad():
        a, _ = m(x)
        b, _ = m(x)
        want, _ = plain(x)
    assert m.rng.bit_generator.state == before
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, want)
    m.train()
    with npseq.no_grad():
        assert not np.allclose(m(x)[0], want)  # training does drop


def test_same_seed_same_masks_and_fresh_masks_per_call():
    x = np.random.default_rng(8).standard_normal((5, 2, 3))
    a = npseq.GRU(3, 4, recurrent_dropout=0.5, seed=3)
    b = npseq.GRU(3, 4, recurrent_dropout=0.5, seed=3)
    with npseq.no_grad():
        out_a, out_b = a(x)[0], b(x)[0]
        np.testing.assert_array_equal(out_a, out_b)
        assert not np.array_equal(a(x)[0], out_a)


def test_gru_direct_path_reads_the_unmasked_carry():
    """With every unit dropped (m = 0 where it matters) the GRU's products see zero but
    h = (1 - z) * n + z * h_prev still carries h_prev: written out by hand for one step."""
    rng = np.random.default_rng(9)
    m = randomise(npseq.GRU(2, 3, recurrent_dropout=0.5, seed=0), rng)
    x, h0 = rng.standard_normal((1, 4, 2)), rng.standard_normal((1, 4, 3))
    (out, _, record), _ = forward_with_record(m, x, h0)
    x = x[0]
    mask = record.recurrent_masks[0][0]
    p = {k[:-3]: v for k, v in m.params.items()}
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    gx = x @ p["weight_ih"].T + p["bias_ih"]
    gh = (mask * h0[0]) @ p["weight_hh"].T + p["bias_hh"]
    r, z = sig(gx[:, :3] + gh[:, :3]), sig(gx[:, 3:6] + gh[:, 3:6])
    n = np.tanh(gx[:, 6:] + r * gh[:, 6:])
    np.testing.assert_allclose(out[0], (1 - z) * n + z * h0[0], rtol=1e-13, atol=1e-14)


def test_checkpointed_backward_replays_the_mask_exactly():
    rng = np.random.default_rng(10)
    x, dout = rng.standard_normal((9, 3, 2)), rng.standard_normal((9, 3, 8))
    grads = []
    for k in (None, 2):
        m = randomise(npseq.GRU(2, 4, bidirectional=True, recurrent_dropout=0.5, seed=1,
                                checkpoint_every=k), np.random.default_rng(11))
        m(x, lengths=[9, 4, 1])
        grads.append((m.backward(dout)[0], m.grads))
    np.testing.assert_array_equal(grads[0][0], grads[1][0])
    for key in grads[0][1]:
        np.testing.assert_array_equal(grads[0][1][key], grads[1][1][key])


def test_the_core_backward_uses_the_record_masks():
    """stack_backward on the record of stack_forward equals the layer's backward."""
    rng = np.random.default_rng(12)
    m = randomise(npseq.LSTM(2, 3, proj_size=2, recurrent_dropout=0.4, seed=0), rng)
    x, dout = rng.standard_normal((4, 2, 2)), rng.standard_normal((4, 2, 2))
    (out, _, record), carries = forward_with_record(m, x)
    dx, _, grads = stack_backward(m.kind, m.stack_params(), record, dout,
                                  tuple(np.zeros_like(c) for c in carries))
    m(x)
    dx_layer, _ = m.backward(dout)
    np.testing.assert_array_equal(dx, dx_layer)
    np.testing.assert_array_equal(grads[0][0]["weight_hh"], m.grads["weight_hh_l0"])


def test_recurrent_layer_of_a_custom_kind():
    """npseq.Recurrent: a kind declaring "carry" takes recurrent_dropout; IndRNN too (its
    u * h_prev is the recurrent product); MinGRU (no product of h_prev) refuses it."""
    rng = np.random.default_rng(13)
    kind = CellKind("ELMAN", 1, 1, rnn_step_forward, rnn_step_backward,
                    recurrent_dropout="carry")
    from npseq.cells.indrnn import INDRNN_TANH
    for k in (kind, INDRNN_TANH):
        m = randomise(npseq.Recurrent(k, 2, 3, num_layers=2, bidirectional=True,
                                      recurrent_dropout=0.5, seed=0), rng)
        assert "recurrent_dropout=0.5" in repr(m)
        errors = check_gradients(m, rng.standard_normal((4, 2, 2)), None, seed=1,
                                 lengths=[4, 2])
        assert max(errors.values()) < 1e-7, errors
    plain = CellKind("ELMAN", 1, 1, rnn_step_forward, rnn_step_backward)
    for k in (plain, MINGRU):
        with pytest.raises(ValueError, match=r"^recurrent_dropout: .*does not support"):
            npseq.Recurrent(k, 2, 3, recurrent_dropout=0.5)
        npseq.Recurrent(k, 2, 3, recurrent_dropout=0.0)  # rate 0 is fine


@pytest.mark.parametrize("value,error,match", [
    ("x", ValueError, r"^CellKind.recurrent_dropout: expected None, 'carry'"),
    ("step", TypeError, r"^CellKind.step_forward: recurrent_dropout='step' expects"),
])
def test_cellkind_checks_its_recurrent_dropout(value, error, match):
    with pytest.raises(error, match=match):
        CellKind("ELMAN", 1, 1, rnn_step_forward, rnn_step_backward, recurrent_dropout=value)


@pytest.mark.parametrize("value,error", [(1.0, ValueError), (-0.1, ValueError),
                                         ("a", TypeError)])
def test_layer_validation_names_the_argument(value, error):
    with pytest.raises(error, match="^recurrent_dropout"):
        npseq.LSTM(2, 3, recurrent_dropout=value)


def test_save_load_and_sequential_keep_the_option(tmp_path):
    rng = np.random.default_rng(14)
    lstm = randomise(npseq.LSTM(3, 4, num_layers=2, recurrent_dropout=0.25, zoneout=0.1,
                                seed=0), rng)
    model = npseq.Sequential(npseq.LockedDropout(0.3, seed=2), lstm, npseq.Linear(4, 2, seed=1))
    npseq.save(tmp_path / "m.npz", model)
    again = npseq.load(tmp_path / "m.npz")
    assert again[1].recurrent_dropout == 0.25 and "recurrent_dropout=0.25" in repr(again[1])
    errors = check_gradients(model, rng.standard_normal((5, 2, 3)), None, lengths=[5, 3])
    assert max(errors.values()) < 1e-7, errors


def test_a_layer_can_keep_its_masks_across_calls():
    """keep_dropout_masks: the recurrent and weight masks of the first training call are
    kept (and used: two calls from the same state give the same output) until
    reset_dropout_mask(); a different batch is refused; evaluation ignores them."""
    m = npseq.LSTM(2, 3, num_layers=2, bidirectional=True, recurrent_dropout=0.5,
                   weight_dropout=0.5, seed=0)
    x = np.random.default_rng(1).standard_normal((4, 2, 2))
    m.keep_dropout_masks = True
    with npseq.no_grad():
        a, _ = m(x)
        kept = m.recurrent_masks
        assert len(kept) == 2 and all(len(row) == 2 for row in kept)
        assert kept[1][1].shape == (2, 3) and m.weight_masks[0][1].shape == (12, 3)
        b, _ = m(x)
        np.testing.assert_array_equal(a, b)
        assert m.recurrent_masks is kept
        with pytest.raises(ValueError, match=r"^x: the kept recurrent-dropout masks are for "
                                             r"a batch of 2, got a batch of 3"):
            m(np.ones((4, 3, 2)))
        m.reset_dropout_mask()
        assert m.recurrent_masks is None and m.weight_masks is None
        assert not np.array_equal(m(x)[0], a)
        m.keep_dropout_masks = False
        assert not np.array_equal(m(x)[0], m(x)[0])  # per call again
    with pytest.raises(TypeError, match="^keep_dropout_masks"):
        m.keep_dropout_masks = "yes"
