"""PyTorch parity of FinalState in a Sequential: ``torch.cat((h_n[-2], h_n[-1]), dim=1)``
(or ``h_n[-1]``) after a torch LSTM/GRU over a packed batch of unequal lengths, then a
Linear; the output and every gradient (each weight, the input, the initial state) equal
npseq's to 1e-10 in float64, with a random upstream gradient on ``y`` and on the final
state."""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import npseq  # noqa: E402
from npseq.model import FinalState  # noqa: E402

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("batch_first", [False, True])
def test_final_state_head_matches_torch(kind, bidirectional, batch_first):
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    I, H, L, C, T, B = 3, 4, 2, 5, 6, 4
    D = 2 if bidirectional else 1
    lengths = np.array([6, 2, 5, 3])
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind]
    rnn_t = cls(I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first,
                dtype=torch.float64)
    lin_t = torch.nn.Linear(D * H, C, dtype=torch.float64)
    with torch.no_grad():  # every parameter redrawn: biases non-zero, both signs
        for p in list(rnn_t.parameters()) + list(lin_t.parameters()):
            p.uniform_(-0.7, 0.7)

    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    states = [rng.standard_normal((L * D, B, H)) for _ in range(2 if kind == "lstm" else 1)]
    G = rng.standard_normal((B, C))
    Gs = [rng.standard_normal((L * D, B, H)) for _ in states]

    # torch: the idiom written out
    x_t = torch.tensor(x, requires_grad=True)
    s_t = [torch.tensor(s, requires_grad=True) for s in states]
    packed = pack_padded_sequence(x_t, torch.tensor(lengths), batch_first=batch_first,
                                  enforce_sorted=False)
    _, state_n = rnn_t(packed, tuple(s_t) if kind == "lstm" else s_t[0])
    state_n = state_n if kind == "lstm" else (state_n,)
    h_n = state_n[0]
    feat = torch.cat((h_n[-2], h_n[-1]), dim=1) if bidirectional else h_n[-1]
    y_t = lin_t(feat)
    loss = (y_t * torch.tensor(G)).sum() + sum((a * torch.tensor(g)).sum()
                                               for a, g in zip(state_n, Gs))
    loss.backward()

    # npseq: the same weights in a Sequential
    rnn = (npseq.LSTM if kind == "lstm" else npseq.GRU)(
        I, H, num_layers=L, bidirectional=bidirectional, batch_first=batch_first)
    rnn.load_state_dict({k: v.detach().numpy() for k, v in rnn_t.state_dict().items()})
    lin = npseq.Linear(D * H, C)
    lin.load_state_dict({k: v.detach().numpy() for k, v in lin_t.state_dict().items()})
    model = npseq.Sequential(rnn, FinalState(), lin)
    state = tuple(states) if kind == "lstm" else states[0]
    y, state_np = model(x, state, lengths)
    dx, dstate0 = model.backward(G, tuple(Gs) if kind == "lstm" else Gs[0])

    np.testing.assert_allclose(y, y_t.detach().numpy(), **TOL)
    state_np = state_np if kind == "lstm" else (state_np,)
    for a, b in zip(state_np, state_n):
        np.testing.assert_allclose(a, b.detach().numpy(), **TOL)
    grads_t = {f"0.{k}": p.grad for k, p in rnn_t.named_parameters()}
    grads_t.update({f"2.{k}": p.grad for k, p in lin_t.named_parameters()})
    assert sorted(grads_t) == sorted(model.grads)
    for k, g in grads_t.items():
        np.testing.assert_allclose(model.grads[k], g.numpy(), err_msg=k, **TOL)
    np.testing.assert_allclose(dx, x_t.grad.numpy(), **TOL)
    dstate0 = dstate0 if kind == "lstm" else (dstate0,)
    for a, b in zip(dstate0, s_t):
        np.testing.assert_allclose(a, b.grad.numpy(), **TOL)
