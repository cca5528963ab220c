"""labml's LayerNorm LSTM against a torch module written here from labml's equations
(``labml_nn/lstm``: ``hidden_lin`` with a bias, ``input_lin`` without, ``nn.LayerNorm`` on
each of the four gate chunks and on ``c``), autograd as the oracle: values and every
gradient to 1e-10 in float64, as a cell and as a stacked bidirectional layer with lengths
(each sequence run alone in the reference)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import npseq  # noqa: E402

pytestmark = pytest.mark.torch


class LabmlLSTMCell(torch.nn.Module):
    """labml's cell: ifgo = hidden_lin(h) + input_lin(x); LN per gate; LN on c for h."""

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        self.hidden_size = hidden_size
        self.hidden_lin = torch.nn.Linear(hidden_size, 4 * hidden_size, bias=bias)
        self.input_lin = torch.nn.Linear(input_size, 4 * hidden_size, bias=False)
        self.layer_norm = torch.nn.ModuleList([torch.nn.LayerNorm(hidden_size)
                                               for _ in range(4)])
        self.layer_norm_c = torch.nn.LayerNorm(hidden_size)

    def forward(self, x, h, c):
        ifgo = self.hidden_lin(h) + self.input_lin(x)
        ifgo = ifgo.chunk(4, dim=-1)
        i, f, g, o = [self.layer_norm[k](ifgo[k]) for k in range(4)]
        c_next = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h_next = torch.sigmoid(o) * torch.tanh(self.layer_norm_c(c_next))
        return h_next, c_next


def torch_cell(p, input_size, hidden_size, bias):
    """A labml cell holding npseq's parameters ``p`` (suffix removed); labml's one bias is
    npseq's b_ih + b_hh."""
    cell = LabmlLSTMCell(input_size, hidden_size, bias).double()
    with torch.no_grad():
        cell.hidden_lin.weight.copy_(torch.tensor(p["weight_hh"]))
        cell.input_lin.weight.copy_(torch.tensor(p["weight_ih"]))
        if bias:
            cell.hidden_lin.bias.copy_(torch.tensor(p["bias_hh"] + p["bias_ih"]))
        for k, name in enumerate("ifgo"):
            cell.layer_norm[k].weight.copy_(torch.tensor(p[f"ln_{name}_weight"]))
            cell.layer_norm[k].bias.copy_(torch.tensor(p[f"ln_{name}_bias"]))
        cell.layer_norm_c.weight.copy_(torch.tensor(p["ln_c_weight"]))
        cell.layer_norm_c.bias.copy_(torch.tensor(p["ln_c_bias"]))
    return cell


def torch_grads(cell, bias):
    """The torch cell's gradients keyed as npseq's (the one bias' gradient for both)."""
    grads = {"weight_hh": cell.hidden_lin.weight.grad, "weight_ih": cell.input_lin.weight.grad}
    if bias:
        grads["bias_hh"] = grads["bias_ih"] = cell.hidden_lin.bias.grad
    for k, name in enumerate("ifgo"):
        grads[f"ln_{name}_weight"] = cell.layer_norm[k].weight.grad
        grads[f"ln_{name}_bias"] = cell.layer_norm[k].bias.grad
    grads["ln_c_weight"] = cell.layer_norm_c.weight.grad
    grads["ln_c_bias"] = cell.layer_norm_c.bias.grad
    return {k: v.numpy() for k, v in grads.items()}


def randomise(module, rng):
    for v in module.params.values():
        v[...] = rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.1, 0.9, v.shape)


def close(got, want):
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))


@pytest.mark.parametrize("bias", [True, False])
def test_cell_values_and_every_gradient_match_labmls_module(bias):
    rng = np.random.default_rng(1 + bias)
    D, H, B = 3, 5, 4
    cell = npseq.LSTMCell(D, H, bias=bias, layer_norm="labml", seed=0)
    randomise(cell, rng)
    x, h0, c0 = (rng.standard_normal(shape) for shape in ((B, D), (B, H), (B, H)))
    dh, dc = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    h, c = cell(x, (h0, c0))
    dx, (dh0, dc0) = cell.backward((dh, dc))

    ref = torch_cell(cell.params, D, H, bias)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    t_h, t_c = ref(tx, th0, tc0)
    ((t_h * torch.tensor(dh)).sum() + (t_c * torch.tensor(dc)).sum()).backward()
    for got, want in ((h, t_h.detach()), (c, t_c.detach()), (dx, tx.grad), (dh0, th0.grad),
                      (dc0, tc0.grad)):
        close(got, want.numpy())
    want = torch_grads(ref, bias)
    assert set(want) == set(cell.grads)
    for k in want:
        close(cell.grads[k], want[k])


@pytest.mark.parametrize("T, B, lengths, checkpoint_every", [
    (7, 3, [7, 3, 1], None),
    (7, 3, [4, 7, 2], 3),
    (20, 3, [20, 11, 6], 7),  # (the driver's blocks are checked with the LRU's test)
])
def test_layer_values_and_every_gradient_match_labml_cells_run_per_sequence(
        T, B, lengths, checkpoint_every):
    rng = np.random.default_rng(T)
    D, H, L = 3, 4, 2
    m = npseq.LSTM(D, H, L, bidirectional=True, layer_norm="labml",
                   checkpoint_every=checkpoint_every, seed=0)
    randomise(m, rng)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((2 * L, B, H)), rng.standard_normal((2 * L, B, H))
    dout = rng.standard_normal((T, B, 2 * H))
    dh_n, dc_n = rng.standard_normal((2 * L, B, H)), rng.standard_normal((2 * L, B, H))
    out, (h_n, c_n) = m(x, (h0, c0), lengths=lengths)
    dx, (dh0, dc0) = m.backward(dout, (dh_n, dc_n))

    cells = {}  # (layer, direction) -> torch cell
    for layer in range(L):
        for d in range(2):
            p = m.layer_params(layer, d)
            cells[layer, d] = torch_cell(p, D if layer == 0 else 2 * H, H, True)
    tx, th0, tc0 = (torch.tensor(a, requires_grad=True) for a in (x, h0, c0))
    outs, finals = [], {}
    for b in range(B):
        n = lengths[b]
        layer_in = [tx[t, b:b + 1] for t in range(n)]
        for layer in range(L):
            per_dir = []
            for d in range(2):
                k = layer * 2 + d
                h, c, hs = th0[k, b:b + 1], tc0[k, b:b + 1], [None] * n
                for t in (range(n - 1, -1, -1) if d else range(n)):
                    h, c = cells[layer, d](layer_in[t], h, c)
                    hs[t] = h
                finals[k, b] = (h, c)
                per_dir.append(hs)
            layer_in = [torch.cat([hs[t] for hs in per_dir], dim=1) for t in range(n)]
        pad = [torch.zeros(1, 2 * H, dtype=torch.float64)] * (T - n)
        outs.append(torch.cat(layer_in + pad))
    t_out = torch.stack(outs, dim=1)
    t_hn = torch.stack([torch.cat([finals[k, b][0] for b in range(B)]) for k in range(2 * L)])
    t_cn = torch.stack([torch.cat([finals[k, b][1] for b in range(B)]) for k in range(2 * L)])
    loss = ((t_out * torch.tensor(dout)).sum() + (t_hn * torch.tensor(dh_n)).sum()
            + (t_cn * torch.tensor(dc_n)).sum())
    loss.backward()
    for got, want in ((out, t_out), (h_n, t_hn), (c_n, t_cn)):
        close(got, want.detach().numpy())
    for got, want in ((dx, tx.grad), (dh0, th0.grad), (dc0, tc0.grad)):
        close(got, want.numpy())
    checked = set()
    for (layer, d), cell in cells.items():
        sfx = m.param_suffix(layer, d)
        for k, g in torch_grads(cell, True).items():
            close(m.grads[k + sfx], g)
            checked.add(k + sfx)
    assert checked == set(m.params)
