"""Regularisation against PyTorch autograd, float64.

AR and TAR, from AWD-LSTM's formulas written in the test:
``alpha * dropped_rnn_h.pow(2).mean()`` and ``beta * (rnn_h[1:] - rnn_h[:-1]).pow(2).mean()``;
with lengths, the same means over the valid steps only (each sequence cut to its length).

weight_dropout, zoneout and recurrent_dropout on the layers and the cells, under the masks
npseq drew (read through the public core's StackRecord or the cells' documented mask
attributes): torch.nn layers with weight_hh masked by hand, and a torch cell loop written
in the test from the papers' equations; values and every gradient to 1e-10."""
import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import npseq  # noqa: E402
from npseq import losses  # noqa: E402
from npseq.stack import stack_forward  # noqa: E402

from strategies import arrays, examples, randomise  # noqa: E402

pytestmark = pytest.mark.torch


@st.composite
def cases(draw):
    T, B, F = draw(st.integers(2, 6)), draw(st.integers(1, 4)), draw(st.integers(1, 5))
    h = draw(arrays((T, B, F)))
    lengths = draw(st.none() | hnp.arrays(np.int64, (B,), elements=st.integers(2, T)))
    alpha, beta = draw(st.floats(0.1, 3.0)), draw(st.floats(0.1, 3.0))
    return h, lengths, alpha, beta


def torch_ar_tar(h, lengths, alpha, beta):
    """AWD-LSTM's AR and TAR with autograd; with lengths, over each sequence's valid steps."""
    ht = torch.tensor(h, requires_grad=True)
    if lengths is None:
        ar = alpha * ht.pow(2).mean()
        tar = beta * (ht[1:] - ht[:-1]).pow(2).mean()
    else:
        valid = [ht[:n, b] for b, n in enumerate(lengths)]  # each (n, F)
        ar = alpha * torch.cat([v.pow(2).reshape(-1) for v in valid]).mean()
        tar = beta * torch.cat([(v[1:] - v[:-1]).pow(2).reshape(-1) for v in valid]).mean()
    (dar,) = torch.autograd.grad(ar, ht, retain_graph=True)
    (dtar,) = torch.autograd.grad(tar, ht)
    return ar.item(), dar.numpy(), tar.item(), dtar.numpy()


@given(cases())
def test_ar_tar_match_awd_lstm(case):
    h, lengths, alpha, beta = case
    ar_ref, dar_ref, tar_ref, dtar_ref = torch_ar_tar(h, lengths, alpha, beta)
    ar, dar = losses.ar_loss(h, alpha, lengths=lengths)
    tar, dtar = losses.tar_loss(h, beta, lengths=lengths)
    np.testing.assert_allclose(ar, ar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(tar, tar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dar, dar_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(dtar, dtar_ref, rtol=1e-12, atol=1e-15)
    # batch_first is only a layout: the same numbers, transposed
    ar_bf, dar_bf = losses.ar_loss(h.transpose(1, 0, 2), alpha, lengths, batch_first=True)
    tar_bf, dtar_bf = losses.tar_loss(h.transpose(1, 0, 2), beta, lengths, batch_first=True)
    assert ar_bf == ar and tar_bf == tar
    assert np.array_equal(dar_bf, dar.transpose(1, 0, 2))
    assert np.array_equal(dtar_bf, dtar.transpose(1, 0, 2))


# -- weight drop, zoneout, recurrent dropout against torch, under npseq's own masks ---------
# npseq draws the masks; the test reads them from the public core's StackRecord
# (npseq.stack.stack_forward with the layer's core_options and a copy of its generator: the
# layer's own forward then draws the very same masks) and writes the forward in torch with
# them. Autograd gives every gradient.
TORCH_LAYERS = {"lstm": (npseq.LSTM, torch.nn.LSTM), "gru": (npseq.GRU, torch.nn.GRU),
                "rnn_tanh": (npseq.RNN, torch.nn.RNN)}


def npseq_masks(m, x, lengths):
    """The StackRecord of the forward ``m(x, lengths=lengths)`` is about to run."""
    T, B = x.shape[:2]
    mask = None if lengths is None else (np.arange(T)[:, None] < np.asarray(lengths))[..., None]
    _, _, record = stack_forward(m.kind, m.stack_params(), x, m.state_to_carries(None, B),
                                 mask, **dict(m.core_options(), rng=copy.deepcopy(m.rng)))
    return record


def run_npseq(m, x, state, lengths, dout, dstate):
    out, final = m(x, state, lengths=lengths)
    dx, dstate0 = m.backward(dout, dstate)
    return out, final, dx, dstate0, m.grads


@st.composite
def weight_drop_cases(draw):
    name = draw(st.sampled_from(sorted(TORCH_LAYERS)))
    H, D = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    num_layers, bidirectional = draw(st.integers(1, 2)), draw(st.booleans())
    proj = draw(st.integers(1, H - 1)) if name == "lstm" and draw(st.booleans()) else 0
    lengths = (draw(hnp.arrays(np.int64, (B,), elements=st.integers(1, T)))
               if draw(st.booleans()) else None)
    return (name, H, D, T, B, num_layers, bidirectional, proj, lengths,
            draw(st.sampled_from((0.3, 0.6))), draw(st.integers(0, 2 ** 16)))


@settings(max_examples=examples(20))
@given(weight_drop_cases())
def test_weight_drop_is_torch_with_weight_hh_masked_by_hand(case):
    """torch.nn.LSTM/GRU/RNN run by torch.func.functional_call with every weight_hh replaced
    by raw * mask (the masks npseq drew): values and every gradient, including the raw
    weight's through the mask."""
    name, H, D, T, B, L, bi, proj, lengths, q, seed = case
    ours, theirs = TORCH_LAYERS[name]
    rng = np.random.default_rng(seed)
    extra = {"proj_size": proj} if proj else {}
    m = randomise(ours(D, H, num_layers=L, bidirectional=bi, weight_dropout=q, seed=seed,
                       **extra), rng)
    ref = theirs(D, H, num_layers=L, bidirectional=bi, **extra).double()
    x = rng.uniform(-1, 1, (T, B, D))
    Hout, LD = proj or H, L * (2 if bi else 1)
    h0 = rng.uniform(-1, 1, (LD, B, Hout))
    state = (h0, rng.uniform(-1, 1, (LD, B, H))) if name == "lstm" else h0
    dout = rng.uniform(-1, 1, (T, B, Hout * (2 if bi else 1)))
    dstate = ((rng.uniform(-1, 1, (LD, B, Hout)), rng.uniform(-1, 1, (LD, B, H)))
              if name == "lstm" else rng.uniform(-1, 1, (LD, B, Hout)))
    record = npseq_masks(m, x, lengths)
    out, final, dx, dstate0, grads = run_npseq(m, x, state, lengths, dout, dstate)

    raw = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    used = dict(raw)
    for layer in range(L):
        for direction in range(2 if bi else 1):
            key = "weight_hh" + m.param_suffix(layer, direction)
            used[key] = raw[key] * torch.tensor(record.weight_masks[layer][direction])
    xt = torch.tensor(x, requires_grad=True)
    st_t = tuple(torch.tensor(s, requires_grad=True) for s in
                 (state if name == "lstm" else (state,)))
    inp = xt
    if lengths is not None:
        inp = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                      enforce_sorted=False)
    out_t, fin_t = torch.func.functional_call(ref, used, (inp, st_t if name == "lstm"
                                                          else st_t[0]))
    if lengths is not None:
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, total_length=T)
    fin_t = fin_t if name == "lstm" else (fin_t,)
    loss = (out_t * torch.tensor(dout)).sum() + sum(
        (f * torch.tensor(d)).sum() for f, d in
        zip(fin_t, dstate if name == "lstm" else (dstate,)))
    loss.backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(final if name == "lstm" else (final,), fin_t):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(dstate0 if name == "lstm" else (dstate0,), st_t):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, v in raw.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=k)


# The cell equations, written here from the papers (torch's gate orders), with the masks:
# m (B, H_out) on h_prev where it enters the recurrent product (Gal & Ghahramani 2016; the
# GRU's update z * h_prev reads the unmasked carry, as Keras's GRU), M on W_hh (Wan et al.
# 2013), zoneout's 0/1 keep masks per step (Krueger et al. 2017):
#     new = cell(x_t, m * h_prev; W_hh * M)
#     carry_t = zkeep_t * carry_{t-1} + (1 - zkeep_t) * new
# and, for a padded step (t >= length), the carry passes through and the output is 0.
def torch_step(name, P, x_t, h, c, m):
    hr = h if m is None else m * h
    gx = x_t @ P["weight_ih"].T + P["bias_ih"]
    W, b = P["weight_hh"], P["bias_hh"]
    if name == "rnn_tanh":
        return torch.tanh(gx + hr @ W.T + b), None
    if name == "lstm":
        i, f, g, o = (gx + hr @ W.T + b).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_new = torch.sigmoid(o) * torch.tanh(c)
        return (h_new @ P["weight_hr"].T if "weight_hr" in P else h_new), c
    H = h.shape[1]
    gx_r, gx_z, gx_n = gx.chunk(3, dim=1)
    if name == "gru":  # PyTorch's: r * (W_hn h + b_hn)
        gh_r, gh_z, gh_n = (hr @ W.T + b).chunk(3, dim=1)
        r, z = torch.sigmoid(gx_r + gh_r), torch.sigmoid(gx_z + gh_z)
        n = torch.tanh(gx_n + r * gh_n)
    else:  # gru_reset_before (Cho et al. 2014): W_hn (r * h)
        gh_r, gh_z = (hr @ W[:2 * H].T + b[:2 * H]).chunk(2, dim=1)
        r, z = torch.sigmoid(gx_r + gh_r), torch.sigmoid(gx_z + gh_z)
        n = torch.tanh(gx_n + (r * hr) @ W[2 * H:].T + b[2 * H:])
    return (1 - z) * n + z * h, None


def torch_stack(name, P, x, h0, c0, record, lengths, L, dirs):
    T, B = x.shape[:2]
    valid = (torch.ones(T, B, 1, dtype=torch.bool) if lengths is None else
             (torch.arange(T)[:, None] < torch.tensor(lengths))[..., None])
    inp, finals_h, finals_c = x, [], []
    for layer in range(L):
        outs = []
        for d in range(dirs):
            idx = layer * dirs + d
            sfx = "_l%d" % layer + ("_reverse" if d else "")
            p = {k[:-len(sfx)]: v for k, v in P.items() if k.endswith(sfx)}
            M = record.weight_masks[layer][d]
            if M is not None:
                p["weight_hh"] = p["weight_hh"] * torch.tensor(M)
            m = record.recurrent_masks[layer][d]
            m = None if m is None else torch.tensor(m)
            zones = record.records[layer][d].zoneout or (None, None)
            h, c = h0[idx], (c0[idx] if c0 is not None else None)
            out = [None] * T
            for t in (range(T - 1, -1, -1) if d else range(T)):
                h_new, c_new = torch_step(name, p, inp[t], h, c, m)
                if zones[0] is not None:
                    zk = torch.tensor(zones[0][t])
                    h_new = zk * h + (1 - zk) * h_new
                if c is not None and zones[1] is not None:
                    zk = torch.tensor(zones[1][t])
                    c_new = zk * c + (1 - zk) * c_new
                out[t] = torch.where(valid[t], h_new, torch.zeros_like(h_new))
                h = torch.where(valid[t], h_new, h)
                c = torch.where(valid[t], c_new, c) if c is not None else None
            outs.append(torch.stack(out))
            finals_h.append(h)
            finals_c.append(c)
        inp = torch.cat(outs, dim=2)
    return inp, torch.stack(finals_h), (torch.stack(finals_c) if c0 is not None else None)


CELL_LOOP_LAYERS = {"lstm": (npseq.LSTM, {}), "gru": (npseq.GRU, {}),
                    "gru_reset_before": (npseq.GRU, {"reset_after": False}),
                    "rnn_tanh": (npseq.RNN, {})}


@st.composite
def cell_loop_cases(draw):
    name = draw(st.sampled_from(sorted(CELL_LOOP_LAYERS)))
    H, D = draw(st.integers(2, 4)), draw(st.integers(1, 3))
    T, B = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    rate = st.sampled_from((0.3, 0.6))
    chosen = draw(st.sets(st.sampled_from(("recurrent_dropout", "weight_dropout", "zoneout")),
                          min_size=1))
    options = {k: draw(rate) for k in sorted(chosen)}
    if "zoneout" in options and name == "lstm":
        options["zoneout"] = (options["zoneout"], draw(rate))
    if name == "lstm" and draw(st.booleans()):
        options["proj_size"] = draw(st.integers(1, H - 1))
    lengths = (draw(hnp.arrays(np.int64, (B,), elements=st.integers(1, T)))
               if draw(st.booleans()) else None)
    return (name, H, D, T, B, draw(st.integers(1, 2)), draw(st.booleans()), options, lengths,
            draw(st.booleans()), draw(st.integers(0, 2 ** 16)))


@settings(max_examples=examples(30))
@given(cell_loop_cases())
def test_zoneout_and_recurrent_dropout_are_a_torch_cell_loop_with_the_same_masks(case):
    """Every option alone and combined, stacked, both directions, unequal lengths, with
    checkpointing or not: values and every gradient to 1e-10 in float64."""
    name, H, D, T, B, L, bi, options, lengths, checkpoint, seed = case
    cls, variant = CELL_LOOP_LAYERS[name]
    rng = np.random.default_rng(seed)
    m = randomise(cls(D, H, num_layers=L, bidirectional=bi, seed=seed,
                      checkpoint_every=2 if checkpoint else None, **variant, **options), rng)
    Hout, dirs = m.output_size, m.num_directions
    LD = L * dirs
    x = rng.uniform(-1, 1, (T, B, D))
    h0 = rng.uniform(-1, 1, (LD, B, Hout))
    c0 = rng.uniform(-1, 1, (LD, B, H)) if name == "lstm" else None
    state = (h0, c0) if name == "lstm" else h0
    dout = rng.uniform(-1, 1, (T, B, Hout * dirs))
    dh_n = rng.uniform(-1, 1, (LD, B, Hout))
    dc_n = rng.uniform(-1, 1, (LD, B, H)) if name == "lstm" else None
    dstate = (dh_n, dc_n) if name == "lstm" else dh_n
    record = npseq_masks(m, x, lengths)
    out, final, dx, dstate0, grads = run_npseq(m, x, state, lengths, dout, dstate)

    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    xt, h0t = torch.tensor(x, requires_grad=True), torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True) if c0 is not None else None
    out_t, h_n, c_n = torch_stack(name, P, xt, h0t, c0t, record, lengths, L, dirs)
    loss = (out_t * torch.tensor(dout)).sum() + (h_n * torch.tensor(dh_n)).sum()
    if c_n is not None:
        loss = loss + (c_n * torch.tensor(dc_n)).sum()
    loss.backward()
    close = dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out, out_t.detach().numpy(), **close)
    if name == "lstm":
        np.testing.assert_allclose(final[0], h_n.detach().numpy(), **close)
        np.testing.assert_allclose(final[1], c_n.detach().numpy(), **close)
        np.testing.assert_allclose(dstate0[0], h0t.grad.numpy(), **close)
        np.testing.assert_allclose(dstate0[1], c0t.grad.numpy(), **close)
    else:
        np.testing.assert_allclose(final, h_n.detach().numpy(), **close)
        np.testing.assert_allclose(dstate0, h0t.grad.numpy(), **close)
    np.testing.assert_allclose(dx, xt.grad.numpy(), **close)
    for k, v in P.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), err_msg=k, **close)


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_reset_before", "rnn_tanh"])
def test_a_cell_loop_is_the_torch_cell_loop_with_the_cells_masks(name):
    """The cells (npseq.LSTMCell...) with all three options, their masks read from the
    documented attributes recurrent_mask, weight_mask and zoneout_mask after each call."""
    cls = {"lstm": npseq.LSTMCell, "rnn_tanh": npseq.RNNCell}.get(name, npseq.GRUCell)
    variant = {"reset_after": False} if name == "gru_reset_before" else {}
    zoneout = (0.3, 0.5) if name == "lstm" else 0.4
    rng = np.random.default_rng(21)
    cell = randomise(cls(3, 4, recurrent_dropout=0.5, weight_dropout=0.3, zoneout=zoneout,
                         seed=2, **variant), rng)
    T, B = 5, 3
    xs = rng.uniform(-1, 1, (T, B, 3))
    n = cell.kind.num_states
    s0 = [rng.uniform(-1, 1, (B, 4)) for _ in range(n)]
    ups = [[rng.uniform(-1, 1, (B, 4)) for _ in range(n)] for _ in range(T)]
    pack = (lambda s: tuple(s)) if n == 2 else (lambda s: s[0])
    flat = (lambda s: list(s)) if n == 2 else (lambda s: [s])
    state, states, zoneouts = pack(s0), [], []
    for t in range(T):
        state = cell(xs[t], state)
        states.append(flat(state))
        zoneouts.append(cell.zoneout_mask)
    dstate, dxs = None, [None] * T
    for t in reversed(range(T)):
        d = ups[t] if dstate is None else [u + v for u, v in zip(ups[t], flat(dstate))]
        dxs[t], dstate = cell.backward(pack(d))

    P = {k: torch.tensor(v, requires_grad=True) for k, v in cell.params.items()}
    p = dict(P, weight_hh=P["weight_hh"] * torch.tensor(cell.weight_mask))
    m = torch.tensor(cell.recurrent_mask)
    xt = torch.tensor(xs, requires_grad=True)
    st_t = [torch.tensor(s, requires_grad=True) for s in s0]
    h, c = st_t[0], (st_t[1] if n == 2 else None)
    loss = 0
    for t in range(T):
        h_new, c_new = torch_step(name, p, xt[t], h, c, m)
        zk = [torch.tensor(z) for z in zoneouts[t]]
        h = zk[0] * h + (1 - zk[0]) * h_new
        if n == 2:
            c = zk[1] * c + (1 - zk[1]) * c_new
        for got, want in zip(states[t], [h, c][:n]):
            np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-10, atol=1e-12)
        loss = loss + sum((s * torch.tensor(u)).sum() for s, u in zip([h, c][:n], ups[t]))
    loss.backward()
    np.testing.assert_allclose(np.array(dxs), xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(flat(dstate), st_t):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, v in P.items():
        np.testing.assert_allclose(cell.grads[k], v.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=k)


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_past_the_drivers_blocks_with_checkpointing(name):
    """T * B = 1120 rows: several blocks of the driver's products, checkpoint segments that
    straddle them, both directions, unequal lengths, all three options."""
    cls, variant = CELL_LOOP_LAYERS[name]
    rng = np.random.default_rng(30)
    options = dict(recurrent_dropout=0.4, weight_dropout=0.3,
                   zoneout=(0.2, 0.1) if name == "lstm" else 0.2)
    m = randomise(cls(3, 4, bidirectional=True, seed=5, checkpoint_every=7, **options), rng)
    T, B = 140, 8
    x = rng.uniform(-1, 1, (T, B, 3))
    lengths = rng.integers(1, T + 1, B)
    dout = rng.uniform(-1, 1, (T, B, 8))
    record = npseq_masks(m, x, lengths)
    out, _, dx, _, grads = run_npseq(m, x, None, lengths, dout, None)
    P = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    zeros = torch.zeros(2, B, 4, dtype=torch.float64)
    out_t, _, _ = torch_stack(name, P, xt, zeros, zeros if name == "lstm" else None, record,
                              lengths, 1, 2)
    (out_t * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(out, out_t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, v in P.items():
        np.testing.assert_allclose(grads[k], v.grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=k)
