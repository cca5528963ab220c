"""Parity with PyTorch: optimizers, clip_grad_norm, losses, Linear and Embedding (float64)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import npseq  # noqa: E402
from npseq import losses, optim  # noqa: E402

pytestmark = pytest.mark.torch

STEPS = 5

CASES = [
    ("SGD", "SGD", dict(lr=0.1)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.9, dampening=0.3, weight_decay=0.05)),
    ("SGD", "SGD", dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("Adam", "Adam", dict()),
    ("Adam", "Adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1)),
    ("AdamW", "AdamW", dict()),
    ("AdamW", "AdamW", dict(lr=0.05, betas=(0.7, 0.9), eps=1e-4, weight_decay=0.3)),
    ("RMSprop", "RMSprop", dict()),
    ("RMSprop", "RMSprop", dict(lr=0.01, alpha=0.9, eps=1e-6, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", "RMSprop", dict(lr=0.01, centered=True, momentum=0.3)),
    ("Adagrad", "Adagrad", dict()),
    ("Adagrad", "Adagrad", dict(lr=0.1, lr_decay=0.1, weight_decay=0.1,
                                initial_accumulator_value=0.2, eps=1e-6)),
]


@pytest.mark.parametrize("ours, theirs, kwargs", CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_optimizer_matches_torch(ours, theirs, kwargs):
    rng = np.random.default_rng(0)
    shapes = {"weight": (4, 3), "bias": (4,)}
    params = {k: rng.standard_normal(s) for k, s in shapes.items()}
    grads = {k: np.zeros(s) for k, s in shapes.items()}
    tparams = [torch.tensor(params[k], requires_grad=True) for k in shapes]
    opt = getattr(optim, ours)(params, grads, **kwargs)
    topt = getattr(torch.optim, theirs)(tparams, **kwargs)
    for step in range(STEPS):
        for k, tp in zip(shapes, tparams):
            g = rng.standard_normal(shapes[k])  # a new gradient each step
            grads[k][...] = g
            tp.grad = torch.tensor(g)
        if step == 3:  # a learning-rate change between steps, as a schedule makes
            opt.lr = 0.5 * opt.lr
            for group in topt.param_groups:
                group["lr"] = 0.5 * group["lr"]
        opt.step()
        topt.step()
        for k, tp in zip(shapes, tparams):
            np.testing.assert_allclose(params[k], tp.detach().numpy(), rtol=1e-12, atol=1e-12,
                                       err_msg=f"{ours} {kwargs} step {step} {k}")


@pytest.mark.parametrize("scale", [1.0, 1e100, 1e-100])  # torch's |g|**3 is finite here
@pytest.mark.parametrize("max_norm, norm_type", [(0.5, 2.0), (100.0, 2.0), (0.5, 1.0),
                                                 (0.5, 3.0), (0.5, float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type, scale):
    rng = np.random.default_rng(1)
    grads = {"a": scale * rng.standard_normal((3, 4)), "b": scale * rng.standard_normal(5)}
    tps = []
    for g in grads.values():
        tp = torch.zeros(g.shape, dtype=torch.float64, requires_grad=True)
        tp.grad = torch.tensor(g)
        tps.append(tp)
    total = optim.clip_grad_norm(grads, max_norm, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-13, abs=0)
    for g, tp in zip(grads.values(), tps):
        np.testing.assert_allclose(g, tp.grad.numpy(), rtol=1e-13)


def torch_grad(fn, z, *args, **kwargs):
    tz = torch.tensor(z, requires_grad=True)
    loss = fn(tz, *args, **kwargs)
    loss.backward()
    return float(loss.detach()), tz.grad.numpy()


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("shape", [(6,), (4, 3)])
def test_cross_entropy_matches_torch(reduction, shape):
    rng = np.random.default_rng(2)
    C = 5
    z = 3 * rng.standard_normal(shape + (C,))
    y = rng.integers(0, C, size=shape)
    y.flat[1] = -1  # ignore_index below
    loss, grad = losses.cross_entropy(z, y, ignore_index=-1, reduction=reduction)
    # torch wants the classes on axis 1: (N, C, T)
    tz = z if len(shape) == 1 else z.transpose(1, 2, 0)
    ty = y if len(shape) == 1 else y.T
    tloss, tgrad = torch_grad(F.cross_entropy, tz, torch.tensor(ty), ignore_index=-1,
                              reduction=reduction)
    tgrad = tgrad if len(shape) == 1 else tgrad.transpose(2, 0, 1)
    assert loss == pytest.approx(tloss, rel=1e-13)
    np.testing.assert_allclose(grad, tgrad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mse_and_bce_match_torch(reduction):
    rng = np.random.default_rng(3)
    z = 4 * rng.standard_normal((3, 4))
    t = rng.standard_normal((3, 4))
    p = rng.random((3, 4))
    for ours, theirs, target in [(losses.mse_loss, F.mse_loss, t),
                                 (losses.bce_with_logits,
                                  F.binary_cross_entropy_with_logits, p)]:
        loss, grad = ours(z, target, reduction=reduction)
        tloss, tgrad = torch_grad(theirs, z, torch.tensor(target), reduction=reduction)
        assert loss == pytest.approx(tloss, rel=1e-13)
        np.testing.assert_allclose(grad, tgrad, rtol=1e-12)


def test_log_softmax_matches_torch_at_extremes():
    z = np.array([[1e4, -1e4, 3.0], [0.5, -2.0, 1.0]])
    np.testing.assert_allclose(losses.log_softmax(z),
                               torch.log_softmax(torch.tensor(z), -1).numpy(), rtol=1e-14)


def test_linear_matches_torch():
    rng = np.random.default_rng(4)
    lin = npseq.Linear(3, 4, seed=0)
    tlin = torch.nn.Linear(3, 4, dtype=torch.float64)
    tlin.load_state_dict({k: torch.tensor(v) for k, v in lin.params.items()})
    x = rng.standard_normal((2, 5, 3))
    dy = rng.standard_normal((2, 5, 4))
    tx = torch.tensor(x, requires_grad=True)
    ty = tlin(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(lin(x), ty.detach().numpy(), rtol=1e-13)
    np.testing.assert_allclose(lin.backward(dy), tx.grad.numpy(), rtol=1e-13)
    for k, tp in tlin.named_parameters():
        np.testing.assert_allclose(lin.grads[k], tp.grad.numpy(), rtol=1e-13)
    assert sorted(lin.params) == sorted(tlin.state_dict())


def test_embedding_matches_torch():
    rng = np.random.default_rng(5)
    emb = npseq.Embedding(6, 3, padding_idx=2, seed=0)
    temb = torch.nn.Embedding(6, 3, padding_idx=2, dtype=torch.float64)
    temb.load_state_dict({"weight": torch.tensor(emb.params["weight"])})
    idx = np.array([[0, 2, 1], [1, 1, 5]])
    dy = rng.standard_normal((2, 3, 3))
    ty = temb(torch.tensor(idx))
    ty.backward(torch.tensor(dy))
    np.testing.assert_array_equal(emb(idx), ty.detach().numpy())
    emb.backward(dy)
    np.testing.assert_allclose(emb.grads["weight"], temb.weight.grad.numpy(), rtol=1e-14)


def test_sequential_with_lengths_matches_torch():
    """LSTM (batch_first) + LastStep with lengths + Linear, against the same model written
    in PyTorch with pack_padded_sequence: output and every parameter gradient."""
    rng = np.random.default_rng(6)
    model = npseq.Sequential(npseq.LSTM(3, 4, batch_first=True, seed=0), npseq.LastStep(),
                             npseq.Linear(4, 2, seed=1))
    for k, p in model.params.items():
        if "bias" in k:
            p[...] = rng.uniform(-0.8, 0.8, p.shape)
    lstm = torch.nn.LSTM(3, 4, batch_first=True, dtype=torch.float64)
    lin = torch.nn.Linear(4, 2, dtype=torch.float64)
    lstm.load_state_dict({k[2:]: torch.tensor(v) for k, v in model.params.items()
                          if k.startswith("0.")})
    lin.load_state_dict({k[2:]: torch.tensor(v) for k, v in model.params.items()
                         if k.startswith("2.")})
    x = rng.standard_normal((3, 5, 3))
    lengths = np.array([2, 5, 4])
    dy = rng.standard_normal((3, 2))

    y, _ = model(x, lengths=lengths)
    model.backward(dy)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths),
                                                     batch_first=True, enforce_sorted=False)
    out, _ = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    ty = lin(out[torch.arange(3), torch.tensor(lengths) - 1])
    ty.backward(torch.tensor(dy))

    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    for prefix, module in (("0.", lstm), ("2.", lin)):
        for k, tp in module.named_parameters():
            np.testing.assert_allclose(model.grads[prefix + k], tp.grad.numpy(), rtol=1e-12,
                                       atol=1e-14, err_msg=k)
