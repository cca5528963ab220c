"""Parity with torch.optim.lr_scheduler: the learning rates over many steps are torch's."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from npseq import optim  # noqa: E402

pytestmark = pytest.mark.torch

STEPS = 40


def pair(lr):
    """An npseq SGD and a torch SGD with the same learning rate."""
    params, grads = {"w": np.zeros(2)}, {"w": np.zeros(2)}
    tparam = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    tparam.grad = torch.zeros(2, dtype=torch.float64)
    return optim.SGD(params, grads, lr=lr), torch.optim.SGD([tparam], lr=lr)


def run(ours, theirs, opt, topt, metrics=None, change_at=None):
    """Step both schedules; returns the two lists of learning rates (after each step)."""
    got, want = [ours.get_last_lr()[0]], [theirs.get_last_lr()[0]]
    for t in range(STEPS):
        opt.step()
        topt.step()
        if t == change_at:  # a rate set by hand between steps: both carry it on
            opt.lr = 0.3 * opt.lr
            topt.param_groups[0]["lr"] = 0.3 * topt.param_groups[0]["lr"]
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[t])
            theirs.step(metrics[t])
        got.append(ours.get_last_lr()[0])
        want.append(theirs.get_last_lr()[0])
        assert opt.lr == got[-1]
        assert topt.param_groups[0]["lr"] == want[-1]
    return got, want


@pytest.mark.parametrize("change_at", [None, 6])
@pytest.mark.parametrize("kwargs", [dict(step_size=1), dict(step_size=3, gamma=0.5),
                                    dict(step_size=7, gamma=0.9), dict(step_size=5, gamma=0.0)])
def test_step_lr_matches_torch(kwargs, change_at):
    opt, topt = pair(0.2)
    got, want = run(optim.StepLR(opt, **kwargs),
                    torch.optim.lr_scheduler.StepLR(topt, **kwargs), opt, topt,
                    change_at=change_at)
    assert got == want  # the same float operations in the same order: bit for bit


# a rate set by hand below eta_min can turn negative in the recursion (in torch too): the
# changes by hand are made with eta_min = 0
@pytest.mark.parametrize("kwargs, change_at", [
    (dict(T_max=10), None), (dict(T_max=10), 4), (dict(T_max=1), None), (dict(T_max=1), 4),
    (dict(T_max=3), 4), (dict(T_max=7, eta_min=0.01), None),
    (dict(T_max=40, eta_min=0.05), None), (dict(T_max=3, eta_min=0.1), None)])
def test_cosine_annealing_lr_matches_torch(kwargs, change_at):
    opt, topt = pair(0.2)
    got, want = run(optim.CosineAnnealingLR(opt, **kwargs),
                    torch.optim.lr_scheduler.CosineAnnealingLR(topt, **kwargs), opt, topt,
                    change_at=change_at)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-17)


def plateau_metrics(seed):
    """Falling, then flat (never below 1.0) with a few real and a few tiny improvements."""
    rng = np.random.default_rng(seed)
    falling = np.linspace(2.0, 1.0, 8)
    flat = 1.0 + 1e-3 * rng.random(STEPS - 8)
    flat[[13, 25]] = [0.95, 0.9]                 # improvements under every threshold here
    flat[[17, 29]] = [0.95 - 5e-5, 0.9 - 5e-5]   # improvements only under threshold <= 5e-5
    return list(np.concatenate([falling, flat]))


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(patience=0),
    dict(patience=2, factor=0.5, cooldown=3),
    dict(patience=1, factor=0.5, threshold=1e-2, threshold_mode="abs", min_lr=0.01),
    dict(mode="max", patience=2, factor=0.3, threshold=0.0),
    dict(mode="max", patience=1, threshold=1e-3, threshold_mode="abs", cooldown=1),
    dict(patience=0, factor=0.5, eps=0.06),  # 0.2 -> 0.1, then 0.1 -> 0.05 is skipped
])
@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_lr_on_plateau_matches_torch(kwargs, seed):
    metrics = plateau_metrics(seed)
    if kwargs.get("mode") == "max":
        metrics = [-m for m in metrics]
    opt, topt = pair(0.2)
    ours = optim.ReduceLROnPlateau(opt, **kwargs)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    got, want = run(ours, theirs, opt, topt, metrics=metrics)
    assert got == want
    assert len(set(got)) > 1, "the metrics never triggered a reduction: a weak case"
    assert ours.best == theirs.best and ours.num_bad_epochs == theirs.num_bad_epochs


def test_reduce_lr_on_plateau_takes_a_torch_scalar_and_nan_like_torch():
    opt, topt = pair(0.2)
    ours = optim.ReduceLROnPlateau(opt, patience=1)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=1)
    for m in [1.0, math.nan, math.nan, 0.5, math.nan, math.nan]:
        ours.step(np.float64(m))
        theirs.step(torch.tensor(m))
        assert ours.get_last_lr() == theirs.get_last_lr()
