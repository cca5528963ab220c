"""Layers (RNN tanh/relu, LSTM, GRU) and the BPTT driver: every gradient by finite differences
over the whole configuration space, variable lengths, stacking and state order, dropout,
``no_grad``, and properties. PyTorch parity is in ``test_layers_torch.py``."""
import dataclasses

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import format_report, numerical_gradient
from strategies import (KINDS, LayerConfig, examples, layer_cases, layer_configs, make_cell,
                        num_states, pack_state, unpack_state, upstream_arrays)

RELU_MARGIN = 1e-4  # |pre-activation| of every ReLU kept above this: 10x what eps = 1e-5 moves it


def run(m, case, dout=None, dstate=None):
    """Forward and backward of ``case`` on a fresh gradient; returns everything as a dict."""
    m.zero_grad()
    out, state_n = m(case.x, case.state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout if dout is None else dout,
                             case.dstate if dstate is None else dstate)
    return dict(out=out, state_n=unpack_state(state_n), dx=dx, dstate0=unpack_state(dstate0),
                grads={k: g.copy() for k, g in m.grads.items()})


def arrays_of(result):
    return [result["out"], *result["state_n"], result["dx"], *result["dstate0"],
            *(result["grads"][k] for k in sorted(result["grads"]))]


def relu_margin(m, case):
    """The smallest |pre-activation| of any ReLU step in a forward pass of ``case``.

    The layer's cell kind is wrapped (its documented ``step_forward(gx, carry, p)``
    interface) to see ``a = gx + W_hh h_prev + b_hh``; the dropout generator is restored,
    so the gradient check then draws the same masks."""
    kind, seen = m.kind, []

    def step_forward(gx, carry, p):
        a = gx + carry[0] @ p["weight_hh"].T + p.get("bias_hh", 0.0)
        seen.append(np.min(np.abs(a)))
        return kind.step_forward(gx, carry, p)

    rng_state = m.rng.bit_generator.state
    m.kind = kind._replace(step_forward=step_forward)
    try:
        with npseq.no_grad():
            m(case.x, case.state, lengths=case.lengths)
    finally:
        m.kind = kind
        m.rng.bit_generator.state = rng_state
    return min(seen)


def keep_off_relu_kink(m, case):
    if case.config.kind == "rnn_relu":
        assume(relu_margin(m, case) > RELU_MARGIN)


FD_EPS = 1e-5  # central differences: truncation ~ eps**2, rounding ~ 1e-16 * S / eps
RESOLVABLE = 1e-4  # gradients below RESOLVABLE * (S + U) cannot be checked to 1e-6 (below)


def layer_gradient_errors(m, case):
    """Relative error of every analytic gradient of ``m`` (x, each initial state, each
    parameter) against central differences of the scalar

        L = <out, dout> + <h_n, dh_n> [+ <c_n, dc_n>]

    with the case's random upstream gradients of out, h_n and c_n together. Dropout masks are
    replayed: ``m.rng`` is reset before every forward.

    What central differences resolve: their absolute error is about 1e-16 * S / eps
    (rounding; S = sum |terms of L|) plus eps**2 * |d3L| (truncation; the third derivative is
    of the order of U = sum |upstream|), i.e. about 1e-11 * (S + U) at eps = 1e-5. So

    * an example where some gradient is non-zero but below RESOLVABLE * (S + U) (a signal
      vanishing through three projected layers, say) is rejected rather than checked with a
      meaningless relative error;
    * a gradient that is exactly zero (no path to L, or upstream gradients that cancel) is
      compared on that scale, through

        error = max |analytic - numeric| / max(max |analytic|, max |numeric|,
                                               RESOLVABLE * (S + U))

      which for every other gradient is :func:`npseq.gradcheck.rel_error`.
    """
    kind = case.config.kind
    x = np.array(case.x, dtype=np.float64)  # copies, perturbed in place below
    states = [] if case.state is None else [np.array(s) for s in unpack_state(case.state)]
    state = pack_state(kind, states) if states else None
    upstream = [case.dout, *unpack_state(case.dstate)]
    rng_state = m.rng.bit_generator.state

    def forward():
        m.rng.bit_generator.state = rng_state
        out, state_n = m(x, state, lengths=case.lengths)
        return [out, *unpack_state(state_n)]

    def loss():
        with npseq.no_grad():
            return float(sum(np.sum(o * u) for o, u in zip(forward(), upstream)))

    m.zero_grad()
    S = sum(np.sum(np.abs(o * u)) for o, u in zip(forward(), upstream))
    floor = RESOLVABLE * (S + sum(np.sum(np.abs(u)) for u in upstream))
    dx, dstate0 = m.backward(case.dout, case.dstate)
    inputs = {"x": x, **{f"state[{i}]": s for i, s in enumerate(states)}, **m.params}
    analytic = {"x": dx, **{f"state[{i}]": d for i, d in enumerate(unpack_state(dstate0))},
                **{k: g.copy() for k, g in m.grads.items()}}
    scales = {k: np.max(np.abs(analytic[k]), initial=0.0) for k in inputs}
    assume(all(v == 0 or v > floor for v in scales.values()))
    errors = {}
    for k, v in inputs.items():
        numeric = numerical_gradient(loss, v, FD_EPS)
        scale = max(scales[k], np.max(np.abs(numeric), initial=0.0), floor)
        errors[k] = np.max(np.abs(analytic[k] - numeric), initial=0.0) / scale
    return errors


def check_every_gradient(case):
    m = case.config.build()
    keep_off_relu_kink(m, case)
    errors = layer_gradient_errors(m, case)
    n_states = 0 if case.state is None else num_states(case.config.kind)
    assert set(errors) == {"x", *(f"state[{i}]" for i in range(n_states)), *m.params}
    assert max(errors.values()) < 1e-6, format_report(errors)


# -- every gradient by finite differences ----------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
@settings(max_examples=examples(40))
def test_every_gradient_matches_finite_differences(kind, data):
    """Over cell kind, nonlinearity, 1-3 layers, directions, batch_first, unbatched, bias,
    proj_size, lengths (unsorted, some 1), initial state or not, dropout (training mode, masks
    replayed): upstream gradients of out, h_n and c_n together."""
    check_every_gradient(data.draw(layer_cases(configs=layer_configs(kinds=(kind,)))))


def corner_configs():
    """Fixed configurations that between them switch every feature on and off for every
    cell kind, so that each run covers them all, whatever the random draws above."""
    out = []
    for kind in KINDS:
        lstm = kind == "lstm"
        out += [
            (LayerConfig(kind, 3, 4, num_layers=2, bias=True, batch_first=True, dropout=0.5,
                         bidirectional=True, proj_size=2 if lstm else 0, seq_len=5, batch=3,
                         seed=1), True, True),
            (LayerConfig(kind, 2, 3, num_layers=3, bias=False, batch_first=False,
                         bidirectional=False, seq_len=4, batch=2, seed=2), True, False),
            (LayerConfig(kind, 4, 2, num_layers=1, bias=True, bidirectional=True, seq_len=3,
                         batch=None, seed=3), False, True),
            (LayerConfig(kind, 1, 4, num_layers=2, bias=False, batch_first=True, dropout=0.25,
                         proj_size=1 if lstm else 0, seq_len=2, batch=1, seed=4), False, True),
        ]
    return out


@pytest.mark.parametrize("cfg, with_lengths, with_state", corner_configs(),
                         ids=[f"{c.kind}-{i % 4}" for i, (c, _, _) in
                              enumerate(corner_configs())])
@given(data=st.data())
@settings(max_examples=examples(3))
def test_every_gradient_matches_finite_differences_in_corners(cfg, with_lengths, with_state,
                                                              data):
    check_every_gradient(data.draw(layer_cases(configs=st.just(cfg), with_lengths=with_lengths,
                                               with_state=with_state)))


# -- variable lengths ------------------------------------------------------------------------
@given(case=layer_cases(configs=layer_configs(max_batch=4, dropout=False).filter(
    lambda c: c.batch is not None), with_lengths=True))
@settings(max_examples=examples(20))
def test_padding_gives_zero_outputs_and_gets_no_gradient(case):
    cfg = case.config
    m = cfg.build()
    r = run(m, case)
    out, dx = r["out"], r["dx"]
    if cfg.batch_first:
        out, dx = out.transpose(1, 0, 2), dx.transpose(1, 0, 2)
    for b, n in enumerate(case.lengths):
        assert not np.any(out[n:, b])  # exactly zero past the length, both directions
        assert not np.any(dx[n:, b])  # no gradient flows into the padded input
    # and the padded input does not matter at all: fill it with other values
    x = case.x.copy()
    xt = x.transpose(1, 0, 2) if cfg.batch_first else x  # a view: writes go to x
    for b, n in enumerate(case.lengths):
        xt[n:, b] = 7.0
    r2 = run(m, dataclasses.replace(case, x=x))
    for a, b in zip(arrays_of(r), arrays_of(r2)):
        np.testing.assert_array_equal(a, b)


@given(case=layer_cases(configs=layer_configs(dropout=False).filter(
    lambda c: c.batch is not None), with_lengths=False))
@settings(max_examples=examples(10))
def test_lengths_all_equal_to_T_equals_no_lengths(case):
    m = case.config.build()
    full = run(m, case)
    T = case.config.seq_len
    for lengths in (np.full(case.config.batch, T), [T] * case.config.batch):
        r = run(m, dataclasses.replace(case, lengths=lengths))
        for a, b in zip(arrays_of(full), arrays_of(r)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", KINDS)
def test_final_state_is_taken_at_each_sequences_last_valid_step(kind):
    """h_n of the top layer is the forward output at step length-1 and the reverse output at
    step 0; and each sequence equals itself run alone, cut to its length."""
    rng = np.random.default_rng(0)
    cfg = LayerConfig(kind, 3, 4, num_layers=2, bidirectional=True, seq_len=5, batch=3,
                      proj_size=2 if kind == "lstm" else 0, seed=1)
    m = cfg.build()
    x = rng.standard_normal((5, 3, 3))
    lengths = np.array([3, 5, 1])
    with npseq.no_grad():
        out, state_n = m(x, lengths=lengths)
    h_n = unpack_state(state_n)[0]
    H = cfg.output_size
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(h_n[2, b], out[n - 1, b, :H])  # layer 1, forward
        np.testing.assert_array_equal(h_n[3, b], out[0, b, H:])  # layer 1, reverse
        with npseq.no_grad():
            alone_out, alone_state = m(x[:n, b])  # unbatched, no padding at all
        np.testing.assert_allclose(out[:n, b], alone_out, rtol=1e-13, atol=1e-14)
        for s, a in zip(unpack_state(state_n), unpack_state(alone_state)):
            np.testing.assert_allclose(s[:, b], a, rtol=1e-13, atol=1e-14)


# -- stacking and the order of h_n / c_n -----------------------------------------------------
@given(case=layer_cases(configs=layer_configs(dropout=False).filter(
    lambda c: c.num_layers > 1)))
@settings(max_examples=examples(10))
def test_stack_equals_single_layers_chained_and_state_order(case):
    """Layer k+1 reads layer k's output (both directions concatenated); h_n[k*D + d] and
    c_n[k*D + d] belong to layer k, direction d; gradients chain back the same way."""
    cfg = case.config
    m = cfg.build()
    whole = run(m, case)
    D = cfg.num_directions
    x, dout, dstate0 = case.x, case.dout, [None] * cfg.num_layers
    layers, outs, states = [], [], []
    for k in range(cfg.num_layers):
        single = dataclasses.replace(cfg, num_layers=1,
                                     input_size=cfg.input_size if k == 0 else D * cfg.output_size)
        mk = single.build()
        mk.load_state_dict({name.replace(f"_l{k}", "_l0"): v for name, v in m.params.items()
                            if f"_l{k}" in name})
        sk = None if case.state is None else pack_state(
            cfg.kind, [s[k * D:(k + 1) * D] for s in unpack_state(case.state)])
        x, state_k = mk(x, sk, lengths=case.lengths)
        layers.append(mk)
        outs.append(x)
        states.append(unpack_state(state_k))
    np.testing.assert_allclose(whole["out"], outs[-1], rtol=1e-13, atol=1e-14)
    for i, s_n in enumerate(whole["state_n"]):
        np.testing.assert_allclose(s_n, np.concatenate([s[i] for s in states]), rtol=1e-13,
                                   atol=1e-14)
    dstates = unpack_state(case.dstate)
    for k in reversed(range(cfg.num_layers)):
        dk = pack_state(cfg.kind, [d[k * D:(k + 1) * D] for d in dstates])
        dout, dstate0[k] = layers[k].backward(dout, dk)
    np.testing.assert_allclose(whole["dx"], dout, rtol=1e-12, atol=1e-13)
    for i, d0 in enumerate(whole["dstate0"]):
        np.testing.assert_allclose(d0, np.concatenate([unpack_state(d)[i] for d in dstate0]),
                                   rtol=1e-12, atol=1e-13)
    for k, mk in enumerate(layers):
        for name, g in mk.grads.items():
            np.testing.assert_allclose(whole["grads"][name.replace("_l0", f"_l{k}")], g,
                                       rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_reverse_direction_reads_the_sequence_backwards(kind):
    """The reverse half of a bidirectional layer is a forward layer run on x[::-1]."""
    rng = np.random.default_rng(2)
    cfg = LayerConfig(kind, 3, 4, bidirectional=True, seq_len=4, batch=2, seed=3)
    m = cfg.build()
    fwd = dataclasses.replace(cfg, bidirectional=False).build()
    fwd.load_state_dict({k.replace("_reverse", ""): v for k, v in m.params.items()
                         if k.endswith("_reverse")})
    x = rng.standard_normal((4, 2, 3))
    out, state_n = m(x)
    r_out, r_state = fwd(x[::-1])
    np.testing.assert_allclose(out[:, :, 4:], r_out[::-1], rtol=1e-13, atol=1e-14)
    for s, r in zip(unpack_state(state_n), unpack_state(r_state)):
        np.testing.assert_allclose(s[1], r[0], rtol=1e-13, atol=1e-14)


# -- properties ------------------------------------------------------------------------------
@given(case=layer_cases(configs=layer_configs(dropout=False)), alpha=st.floats(-2, 2),
       beta=st.floats(-2, 2), data=st.data())
@settings(max_examples=examples(10))
def test_backward_is_linear_in_the_upstream_gradient(case, alpha, beta, data):
    cfg = case.config
    m = cfg.build()
    dout2 = data.draw(upstream_arrays(cfg.out_shape()))
    dstate2 = [data.draw(upstream_arrays(s)) for s in cfg.state_shapes()]
    r1 = run(m, case)
    r2 = run(m, case, dout2, pack_state(cfg.kind, dstate2))
    rm = run(m, case, alpha * case.dout + beta * dout2, pack_state(
        cfg.kind, [alpha * a + beta * b for a, b in zip(unpack_state(case.dstate), dstate2)]))
    for a, b, mix in zip(arrays_of(r1)[1 + len(r1["state_n"]):],
                         arrays_of(r2)[1 + len(r2["state_n"]):],
                         arrays_of(rm)[1 + len(rm["state_n"]):]):  # dx, dstate0, grads
        np.testing.assert_allclose(mix, alpha * a + beta * b, rtol=1e-9, atol=1e-11)


@given(case=layer_cases())
@settings(max_examples=examples(10))
def test_zero_upstream_gradient_gives_zero_gradients(case):
    m = case.config.build()
    zeros = [np.zeros(s) for s in case.config.state_shapes()]
    for dout, dstate in ((np.zeros(case.config.out_shape()), pack_state(case.config.kind, zeros)),
                         (None, None)):
        r = run(m, case, dout, dstate) if dout is not None else None
        if r is None:  # None means zeros, for both
            m.zero_grad()
            m(case.x, case.state, lengths=case.lengths)
            dx, d0 = m.backward(None)
            r = dict(dx=dx, dstate0=unpack_state(d0), grads=m.grads)
        assert not np.any(r["dx"])
        assert not any(np.any(d) for d in r["dstate0"])
        assert not any(np.any(g) for g in r["grads"].values())


@given(case=layer_cases(configs=layer_configs(kinds=("rnn_tanh", "rnn_relu", "lstm")).filter(
    lambda c: c.bias)))
@settings(max_examples=examples(10))
def test_bias_gradients_are_equal_for_rnn_and_lstm_in_every_layer(case):
    m = case.config.build()
    r = run(m, case)
    names = [k[len("bias_ih"):] for k in m.params if k.startswith("bias_ih")]
    assert len(names) == case.config.num_layers * case.config.num_directions
    for sfx in names:
        np.testing.assert_array_equal(r["grads"]["bias_ih" + sfx], r["grads"]["bias_hh" + sfx])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", [None, 3])
def test_one_step_layer_equals_one_cell_step(kind, batch):
    rng = np.random.default_rng(4)
    m = LayerConfig(kind, 3, 4, seq_len=1, batch=batch, seed=5).build()
    cell = make_cell(kind, 3, 4)
    cell.load_state_dict({k[:-len("_l0")]: v for k, v in m.params.items()})
    lead = () if batch is None else (batch,)
    x = rng.standard_normal((1,) + lead + (3,))
    s0 = [rng.standard_normal(lead + (4,)) for _ in range(num_states(kind))]
    dout = rng.standard_normal((1,) + lead + (4,))
    dn = [rng.standard_normal(lead + (4,)) for _ in range(num_states(kind))]
    out, s_n = m(x, pack_state(kind, [s[None] for s in s0]))
    dx, d0 = m.backward(dout, pack_state(kind, [d[None] for d in dn]))
    s1 = unpack_state(cell(x[0], pack_state(kind, s0)))
    cdx, cd0 = cell.backward(pack_state(kind, [dn[0] + dout[0], *dn[1:]]))
    np.testing.assert_allclose(out[0], s1[0], rtol=1e-14, atol=1e-15)
    for a, b in zip(unpack_state(s_n), s1):
        np.testing.assert_allclose(a[0], b, rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(dx[0], cdx, rtol=1e-13, atol=1e-14)
    for a, b in zip(unpack_state(d0), unpack_state(cd0)):
        np.testing.assert_allclose(a[0], b, rtol=1e-13, atol=1e-14)
    for k, g in cell.grads.items():
        np.testing.assert_allclose(m.grads[k + "_l0"], g, rtol=1e-13, atol=1e-14)


@given(case=layer_cases(configs=layer_configs().filter(lambda c: not c.bidirectional),
                        with_lengths=False), data=st.data())
@settings(max_examples=examples(10))
def test_two_chunks_with_the_state_carried_equal_the_whole(case, data):
    cfg = case.config
    assume(cfg.seq_len > 1)
    m = cfg.build().eval()  # no dropout: chunks would draw different masks
    cut = data.draw(st.integers(1, cfg.seq_len - 1))
    t_axis = 1 if cfg.batch_first and cfg.batch is not None else 0
    first, second = np.split(case.x, [cut], axis=t_axis)
    with npseq.no_grad():
        out, state_n = m(case.x, case.state)
        out1, state1 = m(first, case.state)
        out2, state2 = m(second, state1)
    np.testing.assert_allclose(out, np.concatenate([out1, out2], axis=t_axis), rtol=1e-13,
                               atol=1e-14)
    for a, b in zip(unpack_state(state_n), unpack_state(state2)):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-14)


@given(case=layer_cases(configs=layer_configs(dropout=False).filter(
    lambda c: c.batch is not None and not c.batch_first)))
@settings(max_examples=examples(8))
def test_batch_first_and_unbatched_are_only_layouts(case):
    cfg = case.config
    base = run(cfg.build(), case)
    bf = dataclasses.replace(cfg, batch_first=True)
    r = run(bf.build(), dataclasses.replace(case, config=bf, x=case.x.transpose(1, 0, 2),
                                            dout=case.dout.transpose(1, 0, 2)))
    np.testing.assert_array_equal(r["out"], base["out"].transpose(1, 0, 2))
    np.testing.assert_array_equal(r["dx"], base["dx"].transpose(1, 0, 2))
    for a, b in zip(r["state_n"] + r["dstate0"], base["state_n"] + base["dstate0"]):
        np.testing.assert_array_equal(a, b)
    for k in base["grads"]:
        np.testing.assert_array_equal(r["grads"][k], base["grads"][k])
    # sequence 0 alone, unbatched
    ub = dataclasses.replace(cfg, batch=None)
    one = lambda s: None if s is None else pack_state(cfg.kind, [a[:, 0] for a in
                                                                 unpack_state(s)])
    m = ub.build()
    u = run(m, dataclasses.replace(
        case, config=ub, x=case.x[:, 0], dout=case.dout[:, 0], state=one(case.state),
        dstate=one(case.dstate), lengths=None if case.lengths is None else case.lengths[:1]))
    m0 = cfg.build()
    b0 = run(m0, dataclasses.replace(
        case, x=case.x[:, :1], dout=case.dout[:, :1],
        state=None if case.state is None else pack_state(
            cfg.kind, [a[:, :1] for a in unpack_state(case.state)]),
        dstate=pack_state(cfg.kind, [a[:, :1] for a in unpack_state(case.dstate)]),
        lengths=None if case.lengths is None else case.lengths[:1]))
    np.testing.assert_array_equal(u["out"], b0["out"][:, 0])
    np.testing.assert_array_equal(u["dx"], b0["dx"][:, 0])
    for a, b in zip(u["state_n"] + u["dstate0"], b0["state_n"] + b0["dstate0"]):
        np.testing.assert_array_equal(a, b[:, 0])
    for k in u["grads"]:
        np.testing.assert_array_equal(u["grads"][k], b0["grads"][k])


@given(case=layer_cases())
@settings(max_examples=examples(8))
def test_inputs_are_not_mutated(case):
    before = [np.copy(a) for a in (case.x, case.dout, *unpack_state(case.dstate),
                                   *(unpack_state(case.state) if case.state is not None
                                     else ()))]
    run(case.config.build(), case)
    after = [case.x, case.dout, *unpack_state(case.dstate),
             *(unpack_state(case.state) if case.state is not None else ())]
    for a, b in zip(after, before):
        np.testing.assert_array_equal(a, b)


# -- dropout ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_dropout_mask_is_reused_by_backward_and_off_in_eval(kind):
    rng = np.random.default_rng(6)
    cfg = LayerConfig(kind, 3, 4, num_layers=3, dropout=0.5, seq_len=4, batch=2, seed=7)
    m = cfg.build()
    x, dout = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 4))
    start = m.rng.bit_generator.state

    def forward_backward(disturb):
        m.rng.bit_generator.state = start
        m.zero_grad()
        out, _ = m(x)
        if disturb:
            m.rng.random(1000)  # a backward that re-drew its mask would now see another
        dx, _ = m.backward(dout)
        return out, dx, {k: g.copy() for k, g in m.grads.items()}

    r1, r2 = forward_backward(False), forward_backward(True)
    for a, b in zip(r1[:2] + tuple(r1[2].values()), r2[:2] + tuple(r2[2].values())):
        np.testing.assert_array_equal(a, b)
    # training mode draws fresh masks on each call; eval() turns dropout off
    with npseq.no_grad():
        out_a, _ = m(x)
        out_b, _ = m(x)
    assert not np.allclose(out_a, out_b)
    no_dropout = dataclasses.replace(cfg, dropout=0.0).build()  # same seed: same weights
    for k in m.params:
        np.testing.assert_array_equal(m.params[k], no_dropout.params[k])
    m.eval()
    assert not m.training
    with npseq.no_grad():
        out_eval, _ = m(x)
        np.testing.assert_array_equal(out_eval, no_dropout(x)[0])
        np.testing.assert_array_equal(out_eval, m(x)[0])
        assert m.train() is m and m.training
        assert not np.allclose(m(x)[0], out_eval)


def test_dropout_scales_kept_values_by_one_over_keep_probability():
    """Inverted dropout between layers, as torch: a fraction 1 - p of layer 0's outputs is
    kept, each scaled by 1 / (1 - p). Layer 1 is set to read its input unit by unit
    (W_ih = I, no recurrence, no bias), so arctanh of its output is the dropped input."""
    p = 0.25
    m = npseq.RNN(2, 50, num_layers=2, dropout=p, seed=8)
    x = np.random.default_rng(9).standard_normal((1, 400, 2))
    layer0 = npseq.RNN(2, 50, seed=0)
    layer0.load_state_dict({k: v for k, v in m.params.items() if k.endswith("_l0")})
    h0, _ = layer0(x)
    # with layer 1's weights set so that its pre-activation reads its input unit by unit
    m.params["weight_ih_l1"][...] = np.eye(50)
    m.params["weight_hh_l1"][...] = 0.0
    m.params["bias_ih_l1"][...] = 0.0
    m.params["bias_hh_l1"][...] = 0.0
    out, _ = m(x)
    dropped = np.arctanh(out)  # = mask * h0 / (1 - p)
    kept = dropped != 0
    assert abs(kept.mean() - (1 - p)) < 0.01  # 20000 draws: sd 0.003
    np.testing.assert_allclose(dropped[kept], (h0 / (1 - p))[kept], rtol=1e-10)


# -- no_grad ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_no_grad_keeps_no_cache_and_backward_then_raises(kind):
    rng = np.random.default_rng(10)
    m = LayerConfig(kind, 3, 4, num_layers=2, seq_len=3, batch=2, seed=11).build()
    x = rng.standard_normal((3, 2, 3))
    with npseq.no_grad():
        out, state = m(x)
        assert not npseq.is_grad_enabled()
    assert npseq.is_grad_enabled()
    with pytest.raises(RuntimeError, match="no_grad"):
        m.backward(np.ones_like(out))
    out2, state2 = m(x)  # the same values as with the cache kept
    np.testing.assert_array_equal(out, out2)
    for a, b in zip(unpack_state(state), unpack_state(state2)):
        np.testing.assert_array_equal(a, b)
    m.backward(out2)  # exactly one backward pairs with the one recorded forward
    with pytest.raises(RuntimeError):
        m.backward(out2)


def test_no_grad_is_restored_after_an_exception():
    with pytest.raises(ZeroDivisionError):
        with npseq.no_grad():
            1 / 0
    assert npseq.is_grad_enabled()


# -- the API ---------------------------------------------------------------------------------
@given(cfg=layer_configs())
@settings(max_examples=examples(10))
def test_parameter_names_and_shapes_are_pytorchs(cfg):
    m = cfg.build()
    G = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}[cfg.kind]
    H, H_out, D = cfg.hidden_size, cfg.output_size, cfg.num_directions
    want = {}
    for k in range(cfg.num_layers):
        for d in range(D):
            sfx = f"_l{k}" + ("_reverse" if d else "")
            want[f"weight_ih{sfx}"] = (G * H, cfg.input_size if k == 0 else D * H_out)
            want[f"weight_hh{sfx}"] = (G * H, H_out)
            if cfg.bias:
                want[f"bias_ih{sfx}"] = (G * H,)
                want[f"bias_hh{sfx}"] = (G * H,)
            if cfg.proj_size:
                want[f"weight_hr{sfx}"] = (cfg.proj_size, H)
    assert list(m.params) == list(want)
    assert {k: v.shape for k, v in m.params.items()} == want
    assert {k: v.shape for k, v in m.grads.items()} == want
    bound = 1 / np.sqrt(H)
    assert all(np.all(np.abs(v) <= bound) for v in m.params.values())


@pytest.mark.parametrize("kind", KINDS)
def test_float32_layer_computes_in_float32_close_to_float64(kind):
    rng = np.random.default_rng(12)
    cfg = LayerConfig(kind, 3, 4, num_layers=2, bidirectional=True, seq_len=4, batch=2, seed=13)
    m64, m32 = cfg.build(), cfg.build(np.float32)
    x, dout = rng.standard_normal((4, 2, 3)), rng.standard_normal((4, 2, 8))
    results = []
    for m in (m64, m32):
        out, s = m(x)
        dx, d0 = m.backward(dout)
        results.append([out, *unpack_state(s), dx, *unpack_state(d0), *m.grads.values()])
    for a64, a32 in zip(*results):
        assert a32.dtype == np.float32
        assert np.max(np.abs(a32 - a64)) < 1e-4


def test_layer_state_dict_round_trip_and_refusals():
    a = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=14)
    b = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=15)
    b.load_state_dict(a.state_dict())
    x = np.random.default_rng(16).standard_normal((3, 2, 3))
    np.testing.assert_array_equal(a(x)[0], b(x)[0])
    sd = a.state_dict()
    del sd["weight_hr_l1_reverse"]
    with pytest.raises(KeyError, match="weight_hr_l1_reverse"):
        b.load_state_dict(sd)
    sd = a.state_dict()
    sd["weight_hh_l0"] = np.zeros((16, 4))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        b.load_state_dict(sd)


@given(case=layer_cases(configs=layer_configs(dropout=False), with_state=True))
@settings(max_examples=examples(8))
def test_state_none_is_zeros(case):
    cfg = case.config
    m = cfg.build()
    zeros = [np.zeros(s) for s in cfg.state_shapes()]
    with_zeros = run(m, dataclasses.replace(case, state=pack_state(cfg.kind, zeros)))
    with_none = run(m, dataclasses.replace(case, state=None))
    for a, b in zip(arrays_of(with_zeros), arrays_of(with_none)):
        np.testing.assert_array_equal(a, b)
    if cfg.kind == "lstm":  # either half of an LSTM state may be None
        h0, c0 = unpack_state(case.state)
        for half, full in (((h0, None), (h0, zeros[1])), ((None, c0), (zeros[0], c0))):
            a = run(m, dataclasses.replace(case, state=half))
            b = run(m, dataclasses.replace(case, state=full))
            for u, v in zip(arrays_of(a), arrays_of(b)):
                np.testing.assert_array_equal(u, v)
