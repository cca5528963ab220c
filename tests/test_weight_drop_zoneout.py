"""weight_dropout (DropConnect on W_hh) and zoneout on the layers: gradients under the masks
they drew, rate 0 equal to the plain layer, evaluation as the expectation, masks replayed."""
import copy

import numpy as np
import pytest

import npseq
from npseq.gradcheck import check_gradients

LAYERS = {"lstm": npseq.LSTM, "gru": npseq.GRU, "rnn": npseq.RNN}


def _randomise(m, rng):
    for p in m.params.values():  # random non-zero biases and weights
        p[...] = rng.choice([-1, 1], p.shape) * rng.uniform(0.1, 0.8, p.shape)
    return m


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("options", [dict(weight_dropout=0.4), dict(zoneout=0.3),
                                     dict(weight_dropout=0.3, zoneout=0.5, dropout=0.2,
                                          checkpoint_every=2)])
def test_gradients_under_the_masks_drawn_match_central_differences(name, options):
    """Every option alone and combined, stacked, both directions, lengths, checkpointing
    (whose recomputation must replay the same masks)."""
    rng = np.random.default_rng(0)
    m = _randomise(LAYERS[name](2, 3, num_layers=2, bidirectional=True, seed=1, **options),
                   rng)
    x = rng.standard_normal((5, 2, 2))
    h0 = rng.standard_normal((4, 2, 3))
    state = (h0, rng.standard_normal((4, 2, 3))) if name == "lstm" else h0
    for mode in ("train", "eval"):
        getattr(m, mode)()
        errors = check_gradients(m, x, state, seed=2, lengths=[5, 2])
        assert max(errors.values()) < 1e-7, (mode, errors)


def test_lstm_zoneout_per_state():
    rng = np.random.default_rng(3)
    m = _randomise(npseq.LSTM(2, 3, zoneout=(0.6, 0.2), seed=0), rng)
    assert m.zoneout == (0.6, 0.2) and "zoneout=(0.6, 0.2)" in repr(m)
    errors = check_gradients(m, rng.standard_normal((5, 2, 2)), None, seed=4)
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_rate_zero_is_bit_identical_to_the_plain_layer(name):
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((7, 2, 3)), rng.standard_normal((7, 2, 8))
    results = []
    for options in ({}, dict(weight_dropout=0.0, zoneout=0.0)):
        m = LAYERS[name](3, 4, num_layers=2, bidirectional=True, dropout=0.3, seed=0,
                         **options)
        out, _ = m(x, lengths=[7, 4])
        dx, _ = m.backward(dout)
        results.append((out, dx, m.grads, m.rng.random()))
    (out_a, dx_a, g_a, r_a), (out_b, dx_b, g_b, r_b) = results
    np.testing.assert_array_equal(out_a, out_b)
    np.testing.assert_array_equal(dx_a, dx_b)
    for k in g_a:
        np.testing.assert_array_equal(g_a[k], g_b[k])
    assert r_a == r_b  # no extra draws


def _gru_reference_eval_zoneout(m, x, z):
    """One GRU layer in evaluation with zoneout, written as the expectation by hand."""
    p = {k[:-3]: v for k, v in m.params.items()}
    H = m.hidden_size
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    h = np.zeros((x.shape[1], H))
    outs = []
    for x_t in x:
        gx = x_t @ p["weight_ih"].T + p["bias_ih"]
        gh = h @ p["weight_hh"].T + p["bias_hh"]
        r = sig(gx[:, :H] + gh[:, :H])
        u = sig(gx[:, H:2 * H] + gh[:, H:2 * H])
        n = np.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        new = (1 - u) * n + u * h
        h = z * h + (1 - z) * new
        outs.append(h)
    return np.array(outs)


def test_evaluation_is_the_expectation_and_deterministic():
    rng = np.random.default_rng(6)
    m = _randomise(npseq.GRU(3, 4, zoneout=0.3, seed=0), rng).eval()
    x = rng.standard_normal((6, 2, 3))
    with npseq.no_grad():
        a, _ = m(x)
        b, _ = m(x)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, _gru_reference_eval_zoneout(m, x, 0.3), rtol=1e-12,
                               atol=1e-14)


def test_training_zoneout_keeps_each_unit_or_updates_it():
    """Each entry of h_t is either h_{t-1} (kept) or the step's new value, about p of them
    kept."""
    rng = np.random.default_rng(7)
    p = 0.4
    m = _randomise(npseq.GRU(3, 20, zoneout=p, seed=0), rng)
    plain = copy.deepcopy(m)
    plain.zoneout = 0.0
    x = rng.standard_normal((30, 8, 3))
    with npseq.no_grad():
        out, _ = m(x)
        kept = 0
        h_prev = np.zeros((1, 8, 20))
        for t in range(30):
            _, new = plain(x[t:t + 1], h_prev)  # one step from the zoned-out carry
            is_kept = out[t] == h_prev[0]
            is_new = np.isclose(out[t], new[0], rtol=0, atol=1e-13)
            assert np.all(is_kept | is_new)
            kept += np.sum(is_kept & ~is_new)
            h_prev = out[t][None]
    n = 30 * 8 * 20
    assert abs(kept / n - p) < 5 * np.sqrt(p * (1 - p) / n)


def test_same_seed_same_masks_and_fresh_masks_per_call():
    x = np.random.default_rng(8).standard_normal((5, 2, 3))
    a = npseq.LSTM(3, 4, weight_dropout=0.5, zoneout=0.3, seed=3)
    b = npseq.LSTM(3, 4, weight_dropout=0.5, zoneout=0.3, seed=3)
    with npseq.no_grad():
        out_a, out_b = a(x)[0], b(x)[0]
        np.testing.assert_array_equal(out_a, out_b)
        assert not np.array_equal(a(x)[0], out_a)


def test_weight_dropout_masks_whole_entries_of_w_hh_shared_over_steps():
    """Replaying the generator: the forward equals the plain layer with W_hh * mask."""
    rng = np.random.default_rng(9)
    p = 0.5
    m = _randomise(npseq.RNN(3, 5, weight_dropout=p, seed=0), rng)
    replay = copy.deepcopy(m.rng)
    x = rng.standard_normal((8, 2, 3))
    with npseq.no_grad():
        out, _ = m(x)
    mask = (replay.random(m.params["weight_hh_l0"].shape) >= p) / (1 - p)
    plain = copy.deepcopy(m)
    plain.weight_dropout = 0.0
    plain.params["weight_hh_l0"] *= mask
    with npseq.no_grad():
        want, _ = plain(x)
    np.testing.assert_allclose(out, want, rtol=1e-13, atol=1e-14)


def test_save_and_load_keep_the_options(tmp_path):
    m = npseq.LSTM(2, 3, weight_dropout=0.25, zoneout=(0.1, 0.2), seed=0)
    npseq.save(tmp_path / "m.npz", m)
    again = npseq.load(tmp_path / "m.npz")
    assert again.weight_dropout == 0.25 and tuple(again.zoneout) == (0.1, 0.2)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(weight_dropout=1.0), ValueError, "^weight_dropout"),
    (dict(weight_dropout="a"), TypeError, "^weight_dropout"),
    (dict(zoneout=(0.1, 0.2, 0.3)), ValueError, "^zoneout: expected a rate or a tuple of 2"),
    (dict(zoneout=(0.1, 1.5)), ValueError, r"^zoneout\[1\]"),
    (dict(zoneout=-0.1), ValueError, "^zoneout"),
])
def test_validation_names_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        npseq.LSTM(2, 3, **kwargs)


def test_check_gradients_replays_the_masks_of_every_module_of_a_sequential():
    """The AWD-LSTM combination: locked dropout around a weight-dropped, zoned-out LSTM."""
    rng = np.random.default_rng(10)
    lstm = _randomise(npseq.LSTM(3, 4, num_layers=2, dropout=0.3, weight_dropout=0.4,
                                 zoneout=(0.2, 0.1), seed=0), rng)
    model = npseq.Sequential(npseq.LockedDropout(0.3, seed=2), lstm,
                             npseq.LockedDropout(0.4, seed=3), npseq.Linear(4, 2, seed=1))
    errors = check_gradients(model, rng.standard_normal((5, 2, 3)), None, lengths=[5, 3])
    assert max(errors.values()) < 1e-7, errors
