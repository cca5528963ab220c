"""sLSTM and mLSTM against torch references written here from the paper's equations (Beck et
al. 2024), autograd as the oracle: values and every gradient to 1e-10 in float64, stacked,
both directions, lengths (each sequence run alone in the reference), both forget gates,
with and without bias, from a given state and from the empty one.

The reference runs the paper's *unstabilised* recurrence on the true states ``c``, ``n``
(``C`` for the mLSTM), ``i = exp(i~)``, and tracks the stabiliser ``m`` beside it only to
state the final states as npseq keeps them, ``c~ = c exp(-m)``: so none of the stabilised
algebra of npseq.cells.xlstm is shared with it."""
import zlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npseq.xlstm import MLSTM, SLSTM  # noqa: E402

pytestmark = pytest.mark.torch
F = torch.nn.functional


def log_f(f_tilde, forget):
    return F.logsigmoid(f_tilde) if forget == "sigmoid" else f_tilde


def slstm_step(x, state, p, H, NH, forget):
    """Beck et al. 2024, eqs. (8)-(17) (sLSTM), with the stabiliser (15)-(17) beside."""
    h, c, n, m = state
    R = torch.cat([torch.block_diag(*p["weight_r"][g]) for g in range(4)])  # (4H, H)
    pre = p["weight_ih"] @ x + (p["bias_ih"] if "bias_ih" in p else 0) + R @ h
    i_t, f_t, z_t, o_t = pre[:H], pre[H:2 * H], pre[2 * H:3 * H], pre[3 * H:]
    i, f = torch.exp(i_t), torch.exp(log_f(f_t, forget))
    z, o = torch.tanh(z_t), torch.sigmoid(o_t)
    m_new = torch.where(n == 0, i_t, torch.maximum(log_f(f_t, forget) + m, i_t))
    c = f * c + i * z
    n = f * n + i
    return o * c / n, c, n, m_new


def mlstm_step(x, state, p, H, NH, forget):
    """Beck et al. 2024, eqs. (19)-(27) (mLSTM), per head, with the stabiliser beside."""
    h, C, n, m = state  # C (NH, dh, dh), n (NH, dh), m (NH,): true (unstabilised) states
    dh = H // NH

    def lin(g):
        return p["weight_" + g] @ x + (p["bias_" + g] if "bias_" + g in p else 0)

    q, k, v = lin("q").reshape(NH, dh), lin("k").reshape(NH, dh) / dh ** 0.5, \
        lin("v").reshape(NH, dh)
    i_t, f_t, o = lin("i"), lin("f"), torch.sigmoid(lin("o"))
    i, f = torch.exp(i_t), torch.exp(log_f(f_t, forget))
    empty = torch.all(n == 0, dim=-1)
    m_new = torch.where(empty, i_t, torch.maximum(log_f(f_t, forget) + m, i_t))
    C = f[:, None, None] * C + i[:, None, None] * (v[:, :, None] * k[:, None, :])
    n = f[:, None] * n + i[:, None] * k
    num = (C @ q[:, :, None])[:, :, 0]
    den = torch.clamp((n * q).sum(-1).abs(), min=1.0)  # max(|n . q|, 1)
    return o * (num / den[:, None]).reshape(H), C, n, m_new


def reference(cls, params, x, state0, lengths, L, NH, forget):
    """out (T, B, 2H) and the final state (4 parts, each (2L, B, .)), one sequence at a
    time; the states in and out are npseq's stabilised ones."""
    T, B, _ = x.shape
    H = state0[0].shape[-1]
    dh = H // NH
    step = slstm_step if cls is SLSTM else mlstm_step
    outs, finals = [], [[None] * B for _ in range(2 * L)]
    for b in range(B):
        T_b = lengths[b]
        layer_in = [x[t, b] for t in range(T_b)]
        for layer in range(L):
            per_dir = []
            for d in range(2):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                p = {k[:-len(sfx)]: v for k, v in params.items() if k.endswith(sfx)}
                h, c, n, m = (s[2 * layer + d, b] for s in state0)
                if cls is MLSTM:
                    c, n = c.reshape(NH, dh, dh), n.reshape(NH, dh)
                    c, n = c * torch.exp(m)[:, None, None], n * torch.exp(m)[:, None]
                else:
                    c, n = c * torch.exp(m), n * torch.exp(m)  # the true states
                state, hs = (h, c, n, m), [None] * T_b
                for t in (range(T_b - 1, -1, -1) if d else range(T_b)):
                    state = step(layer_in[t], state, p, H, NH, forget)
                    hs[t] = state[0]
                h, c, n, m = state
                if cls is MLSTM:  # back to npseq's stabilised, flattened form
                    c = (c * torch.exp(-m)[:, None, None]).reshape(-1)
                    n = (n * torch.exp(-m)[:, None]).reshape(-1)
                else:
                    c, n = c * torch.exp(-m), n * torch.exp(-m)
                finals[2 * layer + d][b] = (h, c, n, m)
                per_dir.append(hs)
            layer_in = [torch.cat([hs[t] for hs in per_dir]) for t in range(T_b)]
        pad = [torch.zeros(2 * H, dtype=x.dtype)] * (T - T_b)
        outs.append(torch.stack(layer_in + pad))
    final = tuple(torch.stack([torch.stack([f[b][k] for b in range(B)]) for f in finals])
                  for k in range(4))
    return torch.stack(outs, dim=1), final


@pytest.mark.parametrize("start", ["state", "empty"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("cls", [SLSTM, MLSTM])
def test_values_and_every_gradient_match_torch_autograd(cls, forget, bias, start):
    rng = np.random.default_rng(zlib.crc32(f"{cls.__name__}{forget}{bias}{start}".encode()))
    T, B, D, H, NH, L = 7, 3, 3, 4, 2, 2
    m = cls(D, H, num_layers=L, bidirectional=True, bias=bias, num_heads=NH,
            forget=forget, seed=0)
    for k, v in m.params.items():
        v[...] = rng.uniform(-1, 1, v.shape)
        if k.startswith("bias"):
            v[...] = np.sign(v) * (0.1 + np.abs(v) / 2)
    x = rng.standard_normal((T, B, D))
    sizes = m.kind.carry_sizes(H)
    if start == "state":
        state0 = [rng.uniform(-1, 1, (2 * L, B, s)) for s in sizes]
        if cls is SLSTM:
            state0[2] = rng.uniform(1, 2, state0[2].shape)  # n~ >= 1, as after any step
    else:  # the empty state: the first step restarts the stabiliser at m = i~
        state0 = [np.zeros((2 * L, B, s)) for s in sizes]
    lengths = [7, 4, 1]
    dout = rng.standard_normal((T, B, 2 * H))
    dstate = [rng.standard_normal((2 * L, B, s)) for s in sizes]

    out, state = m(x, None if start == "empty" else tuple(state0), lengths=lengths)
    dx, dstate0 = m.backward(dout, tuple(dstate))

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    tx = torch.tensor(x, requires_grad=True)
    ts0 = [torch.tensor(s, requires_grad=True) for s in state0]
    t_out, t_state = reference(cls, tp, tx, ts0, lengths, L, NH, forget)
    loss = (t_out * torch.tensor(dout)).sum() + sum(
        (s * torch.tensor(d)).sum() for s, d in zip(t_state, dstate))
    loss.backward()

    pairs = [(out, t_out.detach()), (dx, tx.grad)]
    pairs += [(a, b.detach()) for a, b in zip(state, t_state)]
    pairs += [(m.grads[k], tp[k].grad) for k in m.params]
    if start == "state":  # at the empty state npseq's step does not read c_prev (C_prev):
        grads0 = [s.grad for s in ts0]  # see docs/xlstm.md
        if cls is MLSTM:  # no gate reads h_prev: autograd never reaches h0
            assert grads0[0] is None
            grads0[0] = torch.zeros_like(ts0[0])
        pairs += list(zip(dstate0, grads0))
    assert len(pairs) == 2 + 4 + len(m.params) + (4 if start == "state" else 0)
    for got, want in pairs:
        want = want.numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))
