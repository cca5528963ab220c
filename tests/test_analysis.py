"""npseq.analysis: gradient norms, Jacobian norms, gate statistics, parameter counts.

Expected values come from independent computations: finite differences of the layer's own
forward, explicit products of step Jacobians, gates recomputed from the parameters, or the
same quantity on a smaller equivalent problem (one sequence, one layer, time reversed).
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq.activations import sigmoid
from npseq.analysis import (count_parameters, format_gate_statistics, gate_statistics,
                            gradient_norms, jacobian_norms, parameter_summary)
from npseq.gradcheck import numerical_gradient

from strategies import examples, layer_cases, layer_configs

LAYERS = {"rnn_tanh": lambda D, H, **kw: npseq.RNN(D, H, **kw),
          "rnn_relu": lambda D, H, **kw: npseq.RNN(D, H, nonlinearity="relu", **kw),
          "lstm": lambda D, H, **kw: npseq.LSTM(D, H, **kw),
          "gru": lambda D, H, **kw: npseq.GRU(D, H, **kw)}
CELLS = {"rnn_tanh": npseq.RNNCell, "lstm": npseq.LSTMCell, "gru": npseq.GRUCell}


def _layer(kind, D, H, rng, scale=0.8, **kw):
    """A layer with weights in +-scale and non-zero biases drawn from ``rng``."""
    m = LAYERS[kind](D, H, seed=0, **kw)
    for k, v in m.params.items():
        if k.startswith("bias"):
            v[...] = rng.choice([-1, 1], v.shape) * rng.uniform(0.1, 0.5, v.shape)
        else:
            v[...] = rng.uniform(-scale, scale, v.shape)
    return m


def _pack(kind, parts):
    return tuple(parts) if kind == "lstm" else parts[0]


# -- gradient_norms --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", sorted(LAYERS))
def test_gradient_norms_equal_finite_differences_of_the_loss_in_h_t(kind):
    """||dL/dh_t|| for L = <out, dout> + <h_T, dh_T>, h_t perturbed and the rest re-run."""
    rng = np.random.default_rng(3)
    T, B, D, H = 5, 2, 3, 4
    m = _layer(kind, D, H, rng)
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, H))
    dstate = _pack(kind, [rng.standard_normal((1, B, H)) for _ in range(1 + (kind == "lstm"))])
    norms = gradient_norms(m, x, dout, dstate, per_sequence=True)[(0, 0)]
    mean_norms = gradient_norms(m, x, dout, dstate)[(0, 0)]
    names = ("h", "c") if kind == "lstm" else ("h",)
    assert sorted(norms) == sorted(names)
    with npseq.no_grad():
        for t in range(T - 1):
            _, state_t = m(x[:t + 1])
            carry = [np.array(s) for s in (state_t if kind == "lstm" else (state_t,))]

            def loss():
                out, state_T = m(x[t + 1:], _pack(kind, carry))
                total = np.sum(out * dout[t + 1:]) + np.sum(carry[0] * dout[t])
                for s, d in zip(state_T if kind == "lstm" else (state_T,),
                                dstate if kind == "lstm" else (dstate,)):
                    total += np.sum(s * d)
                return total

            for k, name in enumerate(names):
                grad = numerical_gradient(loss, carry[k])  # (1, B, H)
                want = np.linalg.norm(grad[0], axis=-1)  # (B,)
                np.testing.assert_allclose(norms[name][t], want, rtol=1e-7)
                np.testing.assert_allclose(mean_norms[name][t], want.mean(), rtol=1e-7)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gradient_norms_of_the_reverse_direction_are_the_forward_on_reversed_time(kind):
    rng = np.random.default_rng(4)
    T, B, D, H = 6, 3, 2, 3
    bi = _layer(kind, D, H, rng, bidirectional=True)
    uni = LAYERS[kind](D, H, seed=1)
    uni.load_state_dict({k.replace("_reverse", ""): v for k, v in bi.params.items()
                         if k.endswith("_reverse")})
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, 2 * H))
    got = gradient_norms(bi, x, dout, per_sequence=True)[(0, 1)]
    want = gradient_norms(uni, x[::-1], dout[::-1, :, H:], per_sequence=True)[(0, 0)]
    for name in got:
        np.testing.assert_allclose(got[name], want[name][::-1], rtol=1e-12)


def test_gradient_norms_with_lengths_are_those_of_each_sequence_alone_and_nan_after():
    rng = np.random.default_rng(5)
    T, D, H = 6, 2, 3
    lengths = np.array([6, 2, 4])
    m = _layer("lstm", D, H, rng, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((3, T, D))
    dout = rng.standard_normal((3, T, 2 * H))
    got = gradient_norms(m, x, dout, lengths=lengths, per_sequence=True)
    mean = gradient_norms(m, x, dout, lengths=lengths)
    for b, n in enumerate(lengths):
        alone = gradient_norms(m, x[b:b + 1, :n], dout[b:b + 1, :n], per_sequence=True)
        for key in got:
            for name in ("h", "c"):
                np.testing.assert_allclose(got[key][name][:n, b], alone[key][name][:, 0],
                                           rtol=1e-12)
                assert np.all(np.isnan(got[key][name][n:, b]))
    for key in got:
        for name in ("h", "c"):
            np.testing.assert_allclose(mean[key][name], np.nanmean(got[key][name], axis=1),
                                       rtol=1e-12)


def test_gradient_norms_errors_name_the_argument():
    m = npseq.GRU(2, 3, seed=0)
    x = np.ones((4, 1, 2))
    with pytest.raises(ValueError, match="dout, dstate"):
        gradient_norms(m, x)
    with pytest.raises(TypeError, match="module"):
        gradient_norms(npseq.GRUCell(2, 3), x, dout=np.ones((4, 1, 3)))
    with pytest.raises(TypeError, match="per_sequence"):
        gradient_norms(m, x, dout=np.ones((4, 1, 3)), per_sequence="yes")
    with pytest.raises(ValueError, match="dout"):
        gradient_norms(m, x, dout=np.ones((4, 1, 5)))
    assert m.pending_records == 0 and all(np.all(g == 0) for g in m.grads.values())


def _snapshot(m):
    return ({k: v.copy() for k, v in m.params.items()}, {k: v.copy() for k, v in m.grads.items()},
            m.rng.bit_generator.state if hasattr(m, "rng") else None, m.pending_records)


def _assert_same(m, snap):
    params, grads, rng_state, pending = snap
    for k in params:
        np.testing.assert_array_equal(m.params[k], params[k])
        np.testing.assert_array_equal(m.grads[k], grads[k])
    if rng_state is not None:
        assert m.rng.bit_generator.state == rng_state
    assert m.pending_records == pending


@settings(max_examples=examples(10))
@given(case=layer_cases(configs=layer_configs(max_layers=2, max_size=3, max_len=4)))
def test_analysis_leaves_module_and_inputs_unchanged(case):
    cfg = case.config
    m = cfg.build()
    rng = np.random.default_rng(0)
    for g in m.grads.values():
        g[...] = rng.standard_normal(g.shape)  # gradients the user accumulated before
    m(case.x, case.state, case.lengths)  # a forward waiting for its backward
    twin = copy.deepcopy(m)  # the same module and pending record, untouched by the tools
    snap = _snapshot(m)
    inputs = [np.copy(a) for a in (case.x, case.dout)]
    gradient_norms(m, case.x, case.dout, case.dstate, case.state, case.lengths)
    gate_statistics(m, case.x, case.state, case.lengths)
    jacobian_norms(m, case.x, case.state, layer=cfg.num_layers - 1)
    _assert_same(m, snap)
    for before, after in zip(inputs, (case.x, case.dout)):
        np.testing.assert_array_equal(before, after)
    with npseq.no_grad():  # the tools keep their caches even here
        gradient_norms(m, case.x, case.dout, case.dstate, case.state, case.lengths)
    _assert_same(m, snap)
    assert npseq.is_grad_enabled()
    # the pending record is still the user's: its backward gives what the twin's gives
    for module in (m, twin):
        module.backward(case.dout, case.dstate)
    for k in m.grads:
        np.testing.assert_array_equal(m.grads[k], twin.grads[k])


# -- jacobian_norms --------------------------------------------------------------------------
@pytest.mark.parametrize("ord", [2, "fro"])
def test_rnn_jacobian_norms_equal_the_explicit_product_of_step_jacobians(ord):
    """dh_T/dh_t = prod_{k=T..t+1} diag(1 - h_k**2) W_hh for the tanh RNN."""
    rng = np.random.default_rng(6)
    T, B, D, H = 7, 3, 2, 4
    m = _layer("rnn_tanh", D, H, rng, scale=1.2)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((1, B, H))
    out, _ = m(x, h0)
    m.clear_records()
    W = m.params["weight_hh_l0"]
    got = jacobian_norms(m, x, h0, ord=ord, per_sequence=True)
    for b in range(B):
        J = np.eye(H)
        for t in reversed(range(T)):
            want = np.linalg.norm(J, ord=ord)
            np.testing.assert_allclose(got[t, b], want, rtol=1e-10)
            J = J @ (np.diag(1 - out[t, b] ** 2) @ W)
    np.testing.assert_allclose(jacobian_norms(m, x, h0, ord=ord), got.mean(axis=1), rtol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_jacobian_norms_equal_finite_differences_of_h_T_in_h_t(kind):
    """Columns of dh_T/dh_t by central differences (for the LSTM, c_t held fixed)."""
    rng = np.random.default_rng(7)
    T, B, D, H = 5, 2, 3, 3
    m = _layer(kind, D, H, rng)
    x = rng.standard_normal((T, B, D))
    spectral = jacobian_norms(m, x, per_sequence=True)
    fro = jacobian_norms(m, x, ord="fro", per_sequence=True)
    with npseq.no_grad():
        for t in range(T - 1):
            _, state_t = m(x[:t + 1])
            carry = [np.array(s) for s in (state_t if kind == "lstm" else (state_t,))]
            for b in range(B):
                J = np.empty((H, H))
                for k in range(H):  # row k of dh_T/dh_t: gradient of h_T[b, k]
                    def h_T_k():
                        _, s = m(x[t + 1:], _pack(kind, carry))
                        return (s[0] if kind == "lstm" else s)[0, b, k]
                    J[k] = numerical_gradient(h_T_k, carry[0])[0, b]
                np.testing.assert_allclose(spectral[t, b], np.linalg.norm(J, 2), rtol=1e-7)
                np.testing.assert_allclose(fro[t, b], np.linalg.norm(J, "fro"), rtol=1e-7)
    np.testing.assert_allclose(spectral[T - 1], 1.0, rtol=1e-12)  # dh_T/dh_T = I
    np.testing.assert_allclose(fro[T - 1], np.sqrt(H), rtol=1e-12)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_cell_jacobian_norms_equal_the_layer_with_the_same_weights(kind):
    rng = np.random.default_rng(8)
    T, B, D, H = 6, 2, 3, 4
    m = _layer(kind, D, H, rng)
    cell = CELLS[kind](D, H, seed=1)
    cell.load_state_dict({k[:-3]: v for k, v in m.params.items()})  # drop "_l0"
    x = rng.standard_normal((T, B, D))
    state = _pack(kind, [rng.standard_normal((1, B, H)) for _ in range(1 + (kind == "lstm"))])
    cell_state = _pack(kind, [s[0] for s in (state if kind == "lstm" else (state,))])
    snap = _snapshot(cell)
    got = jacobian_norms(cell, x, cell_state, per_sequence=True)
    _assert_same(cell, snap)
    np.testing.assert_allclose(got, jacobian_norms(m, x, state, per_sequence=True), rtol=1e-12)
    unbatched = jacobian_norms(cell, x[:, 1], _pack(kind, [s[1] for s in (
        cell_state if kind == "lstm" else (cell_state,))]))
    np.testing.assert_allclose(unbatched, got[:, 1], rtol=1e-12)


def test_jacobian_norms_of_an_upper_layer_and_reverse_direction():
    """Layer 1, reverse direction, of a stacked layer = a 1-layer run on layer 0's output."""
    rng = np.random.default_rng(9)
    T, B, D, H = 5, 2, 3, 3
    m = _layer("gru", D, H, rng, num_layers=2, bidirectional=True, batch_first=True)
    x = rng.standard_normal((B, T, D))
    bottom = npseq.GRU(D, H, bidirectional=True, batch_first=True, seed=1)
    bottom.load_state_dict({k: v for k, v in m.params.items() if "_l0" in k})
    with npseq.no_grad():
        out0, _ = bottom(x)
    top_reverse = npseq.GRU(2 * H, H, batch_first=True, seed=1)
    top_reverse.load_state_dict({k.replace("_l1_reverse", "_l0"): v
                                 for k, v in m.params.items() if k.endswith("_l1_reverse")})
    got = jacobian_norms(m, x, layer=1, direction=1, per_sequence=True)
    want = jacobian_norms(top_reverse, out0[:, ::-1], per_sequence=True)[::-1]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_jacobian_norms_errors_name_the_argument():
    m = npseq.LSTM(2, 3, num_layers=2, seed=0)
    x = np.ones((4, 1, 2))
    with pytest.raises(ValueError, match="ord"):
        jacobian_norms(m, x, ord=1)
    with pytest.raises(ValueError, match="^ord: expected 2 .* or 'fro' .*, got 'nuc'"):
        jacobian_norms(m, x, ord="nuc")
    for ord in (None, 2.5, [2], True):  # a wrong type: TypeError, as a wrong string is not
        with pytest.raises(TypeError, match="^ord: expected 2 .* or 'fro' .*, got "):
            jacobian_norms(m, x, ord=ord)
    with pytest.raises(ValueError, match="layer"):
        jacobian_norms(m, x, layer=2)
    with pytest.raises(ValueError, match="direction"):
        jacobian_norms(m, x, direction=1)
    with pytest.raises(ValueError, match="x"):
        jacobian_norms(m, np.ones((4, 1, 5)))
    with pytest.raises(TypeError, match="module_or_cell"):
        jacobian_norms("lstm", x)
    with pytest.raises(ValueError, match="x"):
        jacobian_norms(npseq.LSTMCell(2, 3), np.ones((4, 1, 2, 1)))


# -- gate_statistics -------------------------------------------------------------------------
def _lstm_gates_by_hand(m, x, h0, c0):
    """(i, f, g, o), each (T, B, H), from the parameters, step by step (no npseq code)."""
    p = {k[:-3]: v for k, v in m.params.items()}
    H = m.hidden_size
    h, c, gates = h0, c0, []
    for x_t in x:
        a = x_t @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c = f * c + i * g
        h = o * np.tanh(c)
        gates.append((i, f, g, o))
    return [np.stack(v) for v in zip(*gates)]


def test_lstm_gate_statistics_equal_gates_recomputed_from_the_parameters():
    rng = np.random.default_rng(10)
    T, B, D, H = 6, 4, 3, 5
    m = _layer("lstm", D, H, rng, scale=2.0)  # large weights: some units saturate
    x = 2 * rng.standard_normal((T, B, D))
    lengths = np.array([6, 3, 1, 5])
    stats = gate_statistics(m, x, lengths=lengths)[(0, 0)]
    valid = np.arange(T)[:, None] < lengths[None, :]
    gates = dict(zip("ifgo", _lstm_gates_by_hand(m, x, np.zeros((B, H)), np.zeros((B, H)))))
    assert list(stats) == list("ifgo")
    for name, v in gates.items():
        v = v[valid]
        sat = (np.abs(v) > 0.95) if name == "g" else ((v < 0.05) | (v > 0.95))
        assert stats[name]["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert stats[name]["saturated"] == pytest.approx(sat.mean(), rel=1e-12)
    assert 0 < stats["g"]["saturated"] < 1  # the test exercises both sides of the threshold
    loose = gate_statistics(m, x, lengths=lengths, threshold=0.6)[(0, 0)]
    assert loose["f"]["saturated"] > stats["f"]["saturated"]


def test_gru_and_rnn_gate_statistics():
    rng = np.random.default_rng(11)
    T, B, D, H = 5, 3, 2, 4
    x = 2 * rng.standard_normal((T, B, D))
    gru = _layer("gru", D, H, rng, scale=1.5, num_layers=2, bidirectional=True)
    stats = gate_statistics(gru, x)
    assert sorted(stats) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert all(list(s) == ["r", "z", "n"] for s in stats.values())
    # the top forward layer's n is tanh of something, its mean over units is within (-1, 1)
    for s in stats.values():
        assert -1 < s["n"]["mean"] < 1 and 0 < s["r"]["mean"] < 1
    relu = _layer("rnn_relu", D, H, rng)
    with npseq.no_grad():
        out, _ = relu(x)
    s = gate_statistics(relu, x)[(0, 0)]["h"]
    assert s["mean"] == pytest.approx(out.mean(), rel=1e-12)
    assert s["saturated"] == pytest.approx(np.mean(out == 0), rel=1e-12)
    tanh = _layer("rnn_tanh", D, H, rng, scale=2.0)
    with npseq.no_grad():
        out, _ = tanh(x)
    s = gate_statistics(tanh, x)[(0, 0)]["h"]
    assert s["saturated"] == pytest.approx(np.mean(np.abs(out) > 0.95), rel=1e-12)
    table = format_gate_statistics(stats)
    assert table.count("\n") == 12 and "reverse" in table


def _gru_gates_by_hand(p, x, h0, lengths, reset_after):
    """r, z, n of one GRU layer and direction at the real steps of every sequence, stacked
    as (steps, H), from the equations (no npseq code)::

        r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)
        z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
        n = tanh(W_in x + b_in + r * (W_hn h + b_hn))      reset_after
        n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)      reset before
        h = (1 - z) * n + z * h

    ``x`` (T, B, D) is given in the order the direction reads it; a sequence of length L
    reads its first L entries.
    """
    H = h0.shape[-1]
    W_ir, W_iz, W_in = np.split(p["weight_ih"], 3)
    W_hr, W_hz, W_hn = np.split(p["weight_hh"], 3)
    b_ir, b_iz, b_in = np.split(p["bias_ih"], 3)
    b_hr, b_hz, b_hn = np.split(p["bias_hh"], 3)
    found = {"r": [], "z": [], "n": []}
    for b, L in enumerate(lengths):
        h = h0[b]
        for x_t in x[:L, b]:
            r = sigmoid(W_ir @ x_t + b_ir + W_hr @ h + b_hr)
            z = sigmoid(W_iz @ x_t + b_iz + W_hz @ h + b_hz)
            if reset_after:
                n = np.tanh(W_in @ x_t + b_in + r * (W_hn @ h + b_hn))
            else:
                n = np.tanh(W_in @ x_t + b_in + W_hn @ (r * h) + b_hn)
            h = (1 - z) * n + z * h
            for name, v in zip("rzn", (r, z, n)):
                found[name].append(v)
    assert all(len(v[0]) == H for v in found.values())
    return {name: np.array(v) for name, v in found.items()}


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_gate_statistics_equal_gates_recomputed_from_the_equations(reset_after):
    """Both directions, unsorted lengths, an initial state: each of r, z, n against the gates
    computed here. r and z differ in mean and in saturation, so a mix-up of the two fails."""
    rng = np.random.default_rng(17 + reset_after)
    T, B, D, H = 7, 4, 3, 5
    m = _layer("gru", D, H, rng, scale=1.5, bidirectional=True, reset_after=reset_after)
    x = 2 * rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((2, B, H))
    lengths = np.array([4, 7, 1, 6])
    stats = gate_statistics(m, x, h0, lengths)
    assert sorted(stats) == [(0, 0), (0, 1)]
    for direction, sfx in enumerate(("_l0", "_l0_reverse")):
        p = {k: m.params[k + sfx] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        # the reverse direction reads each sequence's real steps from its last one back
        xs = x if direction == 0 else np.stack(
            [np.concatenate([x[:L, b][::-1], x[L:, b]]) for b, L in enumerate(lengths)], 1)
        gates = _gru_gates_by_hand(p, xs, h0[direction], lengths, reset_after)
        assert list(stats[(0, direction)]) == ["r", "z", "n"]
        for name, v in gates.items():
            sat = (np.abs(v) > 0.95) if name == "n" else ((v < 0.05) | (v > 0.95))
            got = stats[(0, direction)][name]
            assert got["mean"] == pytest.approx(v.mean(), rel=1e-12), (direction, name)
            assert got["saturated"] == pytest.approx(sat.mean(), rel=1e-12), (direction, name)
        r, z = gates["r"], gates["z"]
        assert abs(r.mean() - z.mean()) > 0.02 and np.mean((r < 0.05) | (r > 0.95)) != \
            np.mean((z < 0.05) | (z > 0.95))  # a swap would show in both statistics


@pytest.mark.parametrize("threshold, error", [(0.5, ValueError), (1.0, ValueError),
                                               (True, TypeError), ("0.9", TypeError),
                                               (None, TypeError)])
def test_gate_statistics_threshold_is_checked(threshold, error):
    with pytest.raises(error, match="threshold"):
        gate_statistics(npseq.GRU(2, 3), np.ones((3, 1, 2)), threshold=threshold)


# -- parameter counts ------------------------------------------------------------------------
@settings(max_examples=examples(20))
@given(cfg=layer_configs(max_layers=3, max_size=6), cell_kind=st.sampled_from(sorted(CELLS)),
       bias=st.booleans())
def test_parameter_summary_counts_every_tensor(cfg, cell_kind, bias):
    for m in (cfg.build(), CELLS[cell_kind](cfg.input_size, cfg.hidden_size, bias=bias)):
        s = parameter_summary(m)
        assert [r[0] for r in s.rows] == list(m.params)
        assert all(r[2] == int(np.prod(r[1])) == m.params[r[0]].size for r in s.rows)
        assert s.total == count_parameters(m) == sum(v.size for v in m.params.values())
        lines = str(s).splitlines()
        assert len(lines) == len(m.params) + 2 and lines[-1].split()[-1] == f"{s.total:,d}"


def test_lstm_parameter_count_by_formula():
    # 4H(D + H_out) + 4H * 2 biases + H_out H projection, per layer and direction
    H, P, D = 6, 2, 3
    m = npseq.LSTM(D, H, num_layers=2, proj_size=P, bidirectional=True)
    per_dir = [4 * H * (d_in + P) + 8 * H + P * H for d_in in (D, 2 * P)]
    assert count_parameters(m) == 2 * sum(per_dir)
    with pytest.raises(TypeError, match="module"):
        count_parameters({"weight": np.ones(3)})


def test_gate_statistics_follow_the_activation_options():
    """recurrent_activation='hard_sigmoid' and activation='relu': gates recomputed by hand."""
    rng = np.random.default_rng(14)
    T, B, D, H = 5, 3, 2, 4
    m = npseq.LSTM(D, H, activation="relu", recurrent_activation="hard_sigmoid", seed=0)
    for k, v in m.params.items():
        v[...] = rng.uniform(-3, 3, v.shape)  # large: the hard sigmoid clips often
    x = rng.standard_normal((T, B, D))
    p = {k[:-3]: v for k, v in m.params.items()}
    hard = lambda a: np.clip(a / 6 + 0.5, 0, 1)  # noqa: E731
    h, c, gates = np.zeros((B, H)), np.zeros((B, H)), []
    for x_t in x:
        a = x_t @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        i, f, o = hard(a[:, :H]), hard(a[:, H:2 * H]), hard(a[:, 3 * H:])
        g = np.maximum(a[:, 2 * H:3 * H], 0)
        c = f * c + i * g
        h = o * np.maximum(c, 0)
        gates.append((i, f, g, o))
    stats = gate_statistics(m, x)[(0, 0)]
    for name, v in zip("ifgo", (np.stack(s) for s in zip(*gates))):
        sat = (v <= 0) if name == "g" else ((v < 0.05) | (v > 0.95))
        assert stats[name]["mean"] == pytest.approx(v.mean(), rel=1e-12)
        assert stats[name]["saturated"] == pytest.approx(sat.mean(), rel=1e-12)
    assert 0 < stats["i"]["saturated"] < 1 and 0 < stats["g"]["saturated"] < 1


def test_gate_statistics_of_a_checkpointed_layer(monkeypatch):
    """Exactly those of the plain layer run step by step (checkpointing runs the steps; the
    fused path, which the plain layer would take, equals them to rounding only)."""
    import npseq.bptt
    monkeypatch.setattr(npseq.bptt, "FUSED", False)
    rng = np.random.default_rng(15)
    x = rng.standard_normal((7, 2, 3))
    plain = _layer("lstm", 3, 4, rng, num_layers=2)
    checkpointed = npseq.LSTM(3, 4, num_layers=2, checkpoint_every=3)
    checkpointed.load_state_dict(plain.params)
    assert gate_statistics(checkpointed, x) == gate_statistics(plain, x)
    assert checkpointed.checkpoint_every == 3
    dout = rng.standard_normal((7, 2, 4))
    got, want = gradient_norms(checkpointed, x, dout), gradient_norms(plain, x, dout)
    for key in want:
        for name in want[key]:
            np.testing.assert_array_equal(got[key][name], want[key][name])


def test_jacobian_norms_of_a_layer_with_dropout_are_those_without():
    rng = np.random.default_rng(16)
    x = rng.standard_normal((6, 2, 3))
    m = _layer("gru", 3, 4, rng, num_layers=2, dropout=0.5)
    assert m.training
    got = jacobian_norms(m, x, layer=1, per_sequence=True)
    assert m.training
    m.eval()
    np.testing.assert_array_equal(got, jacobian_norms(m, x, layer=1, per_sequence=True))
    m.train()
    bottom = npseq.GRU(3, 4, seed=1)
    bottom.load_state_dict({k: v for k, v in m.params.items() if "_l0" in k})
    top = npseq.GRU(4, 4, seed=1)
    top.load_state_dict({k.replace("_l1", "_l0"): v for k, v in m.params.items() if "_l1" in k})
    with npseq.no_grad():
        out0, _ = bottom(x)
    np.testing.assert_allclose(got, jacobian_norms(top, out0, per_sequence=True), rtol=1e-12)


@pytest.mark.parametrize("stats, given", [
    (3, "got int$"),
    ([((0, 0), {})], "got list$"),
    ({0: {}}, "got the key 0$"),
    ({(0, 2): {}}, r"got the key \(0, 2\)$"),
    ({(0, 0): 3}, r"got 3 at \(0, 0\)$"),
    ({(0, 0): {"i": {"mean": 0.5}}}, r"at \(0, 0\)$"),
    ({(0, 0): {"i": {"mean": "0.5", "saturated": 0.1}}}, r"at \(0, 0\)$"),
])
def test_format_gate_statistics_rejects_what_gate_statistics_does_not_return(stats, given):
    with pytest.raises(TypeError, match=r"^stats: expected the dict of gate_statistics, .*"
                                        + given):
        format_gate_statistics(stats)
    table = format_gate_statistics({(1, 1): {"f": {"mean": 0.25, "saturated": 0.5}}})
    assert table.splitlines()[1].split() == ["1", "reverse", "f", "0.2500", "0.5000"]
