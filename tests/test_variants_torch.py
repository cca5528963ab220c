"""The cell variants against PyTorch autograd of independent forwards written in torch.

PyTorch has no layer-normalised, peephole or reset-before cell, nor activation options; so
each forward is written from the papers' equations (``variant_refs.py``, run on torch
tensors, with ``F.layer_norm``), and autograd differentiates it. npseq's hand-written
backward must give the same gradient of every input, state and parameter, in float64.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import npseq  # noqa: E402
from variant_refs import ref_forward  # noqa: E402

pytestmark = pytest.mark.torch

# not F.hardsigmoid: in float64 its backward uses 1/6 rounded to float32 (0.16666667163...),
# a relative error of 3e-8 in every gradient that passes through it
ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
       "hard_sigmoid": lambda a: torch.clamp(a / 6 + 0.5, 0, 1)}


def torch_layer_norm(v, w, b):
    return F.layer_norm(v, v.shape[-1:], w, b, 1e-5)


CASES = [
    (npseq.LSTM, dict(layer_norm=True)),
    (npseq.LSTM, dict(peephole=True)),
    (npseq.LSTM, dict(layer_norm=True, activation="relu", recurrent_activation="hard_sigmoid")),
    (npseq.LSTM, dict(peephole=True, activation="sigmoid", recurrent_activation="tanh")),
    (npseq.LSTM, dict(activation="relu", recurrent_activation="hard_sigmoid")),
    (npseq.GRU, dict(reset_after=False)),
    (npseq.GRU, dict(reset_after=False, activation="relu", recurrent_activation="hard_sigmoid")),
    (npseq.GRU, dict(activation="sigmoid", recurrent_activation="hard_sigmoid")),
]


@pytest.mark.parametrize("layer_cls,options", CASES)
def test_bidirectional_layer_matches_torch_autograd(layer_cls, options):
    rng = np.random.default_rng(sum(map(ord, layer_cls.__name__ + str(options))))
    T, B, D, H = 5, 3, 3, 4
    m = layer_cls(D, H, bidirectional=True, seed=0, **options)
    for p in m.params.values():
        p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.8, p.shape)
    n = m.kind.num_states
    x = rng.standard_normal((T, B, D))
    state = [rng.standard_normal((2, B, H)) for _ in range(n)]
    dout = rng.standard_normal((T, B, 2 * H))
    dstate = [rng.standard_normal((2, B, H)) for _ in range(n)]

    out, state_n = m(x, tuple(state) if n == 2 else state[0])
    dx, dstate0 = m.backward(dout, tuple(dstate) if n == 2 else dstate[0])
    state_n = state_n if n == 2 else (state_n,)
    dstate0 = dstate0 if n == 2 else (dstate0,)

    tx = torch.tensor(x, requires_grad=True)
    tstate = [torch.tensor(s, requires_grad=True) for s in state]
    tparams = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    outs, finals = [], []
    for direction, sfx in enumerate(("_l0", "_l0_reverse")):
        P = {k[:-len(sfx)]: v for k, v in tparams.items() if k.endswith(sfx)}
        xs = tx if direction == 0 else tx.flip(0)
        carry = [s[direction] for s in tstate]
        o, final = ref_forward(layer_cls is npseq.LSTM, xs, carry, P, options, ACT,
                               torch_layer_norm, torch.stack)
        outs.append(o if direction == 0 else o.flip(0))
        finals.append(final)
    t_out = torch.cat(outs, dim=2)
    t_state_n = [torch.stack([f[k] for f in finals]) for k in range(n)]
    loss = (t_out * torch.tensor(dout)).sum() + sum(
        (s * torch.tensor(d)).sum() for s, d in zip(t_state_n, dstate))
    loss.backward()

    np.testing.assert_allclose(out, t_out.detach().numpy(), rtol=1e-12, atol=1e-13)
    for a, b in zip(state_n, t_state_n):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    for a, b in zip(dstate0, tstate):
        np.testing.assert_allclose(a, b.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k, g in m.grads.items():
        np.testing.assert_allclose(g, tparams[k].grad.numpy(), rtol=1e-10, atol=1e-12,
                                   err_msg=k)
