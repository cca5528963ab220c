"""IndRNN, minGRU and minLSTM against torch references written here from the papers'
equations (autograd as the oracle): values and every gradient to 1e-10 in float64, stacked,
both directions, lengths (each sequence run alone in the reference), both paths."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import npseq  # noqa: E402

pytestmark = pytest.mark.torch


def g(v):  # Feng et al. 2024, appendix B.3
    return torch.where(v >= 0, v + 0.5, torch.sigmoid(v))


def step(name, x, h, p, H):
    """One step of each cell, written from its paper."""
    gx = p["weight_ih"] @ x + (p["bias_ih"] if "bias_ih" in p else 0)
    if name == "indrnn_relu":  # Li et al. 2018: h = relu(W x + b + u * h_prev)
        return torch.relu(gx + p["u"] * h)
    if name == "indrnn_tanh":
        return torch.tanh(gx + p["u"] * h)
    if name.startswith("mingru"):  # h = (1 - z) h_prev + z h~
        z, h_tilde = torch.sigmoid(gx[:H]), g(gx[H:])
        return (1 - z) * h + z * h_tilde
    f, i, h_tilde = torch.sigmoid(gx[:H]), torch.sigmoid(gx[H:2 * H]), g(gx[2 * H:])
    return f / (f + i) * h + i / (f + i) * h_tilde  # minLSTM, normalised gates


def reference(name, params, x, h0, lengths, num_layers, num_directions, H):
    """out (T, B, D*H) and h_n (L*D, B, H), one sequence at a time."""
    T, B, _ = x.shape
    outs, finals = [], [[None] * B for _ in range(num_layers * num_directions)]
    for b in range(B):
        n = lengths[b]
        layer_in = [x[t, b] for t in range(n)]
        for layer in range(num_layers):
            per_dir = []
            for d in range(num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                p = {k[:-len(sfx)]: v for k, v in params.items() if k.endswith(sfx)}
                h, hs = h0[layer * num_directions + d, b], [None] * n
                for t in (range(n - 1, -1, -1) if d else range(n)):
                    h = step(name, layer_in[t], h, p, H)
                    hs[t] = h
                finals[layer * num_directions + d][b] = h
                per_dir.append(hs)
            layer_in = [torch.cat([hs[t] for hs in per_dir]) for t in range(n)]
        pad = [torch.zeros(num_directions * H, dtype=x.dtype)] * (T - n)
        outs.append(torch.stack(layer_in + pad))
    return torch.stack(outs, dim=1), torch.stack([torch.stack(f) for f in finals])


NAMES = ("indrnn_relu", "indrnn_tanh", "mingru", "mingru_loop", "minlstm", "minlstm_loop")


def make(name, D, H, **kwargs):
    if name.startswith("indrnn"):
        return npseq.IndRNN(D, H, nonlinearity=name[7:], **kwargs)
    cls = npseq.MinGRU if name.startswith("mingru") else npseq.MinLSTM
    return cls(D, H, parallel=not name.endswith("_loop"), **kwargs)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("name", NAMES)
def test_values_and_every_gradient_match_torch_autograd(name, bias):
    rng = np.random.default_rng(hash((name, bias)) % 2 ** 32)
    T, B, D, H, L = 9, 3, 3, 4, 2
    m = make(name, D, H, num_layers=L, bidirectional=True, bias=bias, seed=0)
    for k, v in m.params.items():
        v[...] = rng.uniform(-1, 1, v.shape)
        if k.startswith("bias"):
            v[...] = np.sign(v) * (0.1 + np.abs(v) / 2)
    x, h0 = rng.standard_normal((T, B, D)), rng.standard_normal((2 * L, B, H))
    lengths = [9, 4, 1]
    dout, dh_n = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((2 * L, B, H))

    out, h_n = m(x, h0, lengths=lengths)
    dx, dh0 = m.backward(dout, dh_n)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    tx, th0 = (torch.tensor(a, requires_grad=True) for a in (x, h0))
    t_out, t_hn = reference(name, tp, tx, th0, lengths, L, 2, H)
    loss = (t_out * torch.tensor(dout)).sum() + (t_hn * torch.tensor(dh_n)).sum()
    loss.backward()

    pairs = [(out, t_out.detach()), (h_n, t_hn.detach()), (dx, tx.grad), (dh0, th0.grad)]
    pairs += [(m.grads[k], tp[k].grad) for k in m.params]
    for got, want in pairs:
        want = want.numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))
