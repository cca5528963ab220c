"""LRU against a torch reference written here from the paper's equations in complex tensors
(Orvieto et al. 2023, and its appendix A code), autograd as the oracle: values and every
gradient to 1e-10 in float64, stacked, both directions, lengths (each sequence run alone in
the reference), a long sequence past the driver's blocks, checkpointing."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npseq.lru import LRU  # noqa: E402

pytestmark = pytest.mark.torch


def step(u, x, p):
    """One LRU step: x complex (N,), u real (D,) -> (y (H,), x (N,))."""
    lam = torch.exp(-torch.exp(p["nu_log"]) + 1j * torch.exp(p["theta_log"]))
    B_norm = (p["B_re"] + 1j * p["B_im"]) * torch.exp(p["gamma_log"])[:, None]
    C = p["C_re"] + 1j * p["C_im"]
    x = lam * x + B_norm @ u.to(B_norm.dtype)
    y = (C @ x).real + p["D"] @ u + (p["bias_y"] if "bias_y" in p else 0)
    return y, x


def reference(params, u, x0, lengths, num_layers, num_directions, N):
    """out (T, B, dirs*H) and x_n (L*dirs, B, 2N) real, one sequence at a time."""
    T, B, _ = u.shape
    outs, finals = [], [[None] * B for _ in range(num_layers * num_directions)]
    for b in range(B):
        n = lengths[b]
        layer_in = [u[t, b] for t in range(n)]
        for layer in range(num_layers):
            per_dir = []
            for d in range(num_directions):
                sfx = f"_l{layer}" + ("_reverse" if d else "")
                p = {k[:-len(sfx)]: v for k, v in params.items() if k.endswith(sfx)}
                s0 = x0[layer * num_directions + d, b]
                x, ys = torch.complex(s0[:N], s0[N:]), [None] * n
                for t in (range(n - 1, -1, -1) if d else range(n)):
                    ys[t], x = step(layer_in[t], x, p)
                finals[layer * num_directions + d][b] = torch.cat([x.real, x.imag])
                per_dir.append(ys)
            layer_in = [torch.cat([ys[t] for ys in per_dir]) for t in range(n)]
        H_out = layer_in[0].shape[0]
        pad = [torch.zeros(H_out, dtype=u.dtype)] * (T - n)
        outs.append(torch.stack(layer_in + pad))
    return torch.stack(outs, dim=1), torch.stack([torch.stack(f) for f in finals])


def random_params(m, rng):
    for k, v in m.params.items():
        name = k.split("_l")[0]
        if name == "nu_log":
            v[...] = rng.uniform(-3, 1, v.shape)
        elif name in ("theta_log", "gamma_log"):
            v[...] = rng.uniform(-1.5, 1, v.shape)
        else:
            v[...] = rng.choice([-1.0, 1.0], v.shape) * rng.uniform(0.1, 1, v.shape)


@pytest.mark.parametrize("T, B, lengths, checkpoint_every", [
    (9, 3, [9, 4, 1], None),
    (9, 3, [2, 9, 5], 4),
    (300, 2, [300, 170], None),  # T*B past the driver's block of 512 rows
])
@pytest.mark.parametrize("bias", [True, False])
def test_values_and_every_gradient_match_torch_autograd(T, B, lengths, checkpoint_every,
                                                        bias):
    rng = np.random.default_rng(T + B + bias)
    D, H, N, L = 3, 4, 5, 2
    m = LRU(D, H, num_layers=L, bidirectional=True, bias=bias, state_size=N,
            checkpoint_every=checkpoint_every, seed=0)
    random_params(m, rng)
    u, x0 = rng.standard_normal((T, B, D)), rng.standard_normal((2 * L, B, 2 * N))
    dout, dx_n = rng.standard_normal((T, B, 2 * H)), rng.standard_normal((2 * L, B, 2 * N))

    out, x_n = m(u, x0, lengths=lengths)
    du, dx0 = m.backward(dout, dx_n)

    tp = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    tu, tx0 = (torch.tensor(a, requires_grad=True) for a in (u, x0))
    t_out, t_xn = reference(tp, tu, tx0, lengths, L, 2, N)
    loss = (t_out * torch.tensor(dout)).sum() + (t_xn * torch.tensor(dx_n)).sum()
    loss.backward()

    pairs = [(out, t_out.detach()), (x_n, t_xn.detach()), (du, tu.grad), (dx0, tx0.grad)]
    pairs += [(m.grads[k], tp[k].grad) for k in m.params]
    assert len(pairs) == 4 + len(m.params) == 4 + 4 * (8 + bias)
    for got, want in pairs:
        want = want.numpy()
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-10 * max(1, np.abs(want).max()))
