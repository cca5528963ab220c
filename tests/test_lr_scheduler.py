"""Learning-rate schedules and clip_grad_norm's max_norm, without torch (parity with
torch.optim.lr_scheduler is in test_lr_scheduler_torch)."""
import math

import numpy as np
import pytest

from npseq import optim


def sgd(lr=0.2):
    return optim.SGD({"w": np.ones(2)}, {"w": np.ones(2)}, lr=lr)


def rates(sched, steps, metrics=None):
    out = []
    for t in range(steps):
        sched.optimizer.step()
        sched.step() if metrics is None else sched.step(metrics[t])
        out.append(sched.get_last_lr()[0])
    return out


def test_step_lr_follows_its_closed_form():
    sched = optim.StepLR(sgd(0.2), step_size=3, gamma=0.5)
    assert sched.get_last_lr() == [0.2] and sched.last_epoch == 0
    got = rates(sched, 20)
    want = [0.2 * 0.5 ** (t // 3) for t in range(1, 21)]
    np.testing.assert_allclose(got, want, rtol=1e-15)
    assert sched.optimizer.lr == got[-1] and sched.last_epoch == 20


def test_cosine_annealing_lr_follows_its_closed_form_over_two_periods():
    opt = sgd(0.2)
    sched = optim.CosineAnnealingLR(opt, T_max=5, eta_min=0.02)
    got = rates(sched, 20)
    want = [0.02 + 0.18 * (1 + math.cos(math.pi * t / 5)) / 2 for t in range(1, 21)]
    np.testing.assert_allclose(got, want, rtol=1e-13)
    assert got[4] == pytest.approx(0.02, rel=1e-13) and got[9] == pytest.approx(0.2)


def test_schedules_carry_a_rate_set_by_hand():
    opt = sgd(0.2)
    sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    rates(sched, 1)
    opt.lr = 1.0                            # by hand, between steps
    assert rates(sched, 3) == [0.5, 0.5, 0.25]


def test_reduce_lr_on_plateau_by_hand():
    opt = sgd(1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=2, factor=0.5, cooldown=1, min_lr=0.3)
    #            best 3, 2: good; three bad -> reduce at the 3rd; cooldown 1; min_lr 0.3
    metrics = [3.0, 2.0, 2.5, 2.0, 2.1, 2.2, 2.2, 2.2, 2.2, 2.2, 2.2, 2.2, 2.2, 2.2, 1.0]
    got = rates(sched, len(metrics), metrics)
    assert got == [1.0, 1.0, 1.0, 1.0, 0.5,   # bad: 2.5, 2.0 (not < 2.0), 2.1 -> 0.5
                   0.5,                       # cooldown: the bad epoch is not counted
                   0.5, 0.5, 0.3,             # three bad -> max(0.25, min_lr 0.3)
                   0.3, 0.3, 0.3,             # cooldown, two bad
                   0.3,                       # third bad: max(0.15, 0.3) = 0.3, no change
                   0.3, 0.3]                  # (cooldown, then 1.0 improves)
    assert sched.best == 1.0 and sched.num_bad_epochs == 0


def test_reduce_lr_on_plateau_max_mode_and_thresholds():
    opt = sgd(1.0)
    sched = optim.ReduceLROnPlateau(opt, mode="max", patience=0, threshold=0.1,
                                    threshold_mode="abs")
    assert rates(sched, 3, [0.5, 0.65, 0.7]) == [1.0, 1.0, 0.1]  # 0.7 < 0.65 + 0.1: bad
    opt = sgd(1.0)
    sched = optim.ReduceLROnPlateau(opt, patience=0, threshold=0.1)  # min, rel
    assert rates(sched, 3, [1.0, 0.85, 0.8]) == [1.0, 1.0, 0.1]     # 0.8 > 0.85 * 0.9: bad


def test_get_last_lr_is_a_copy_and_repr_shows_the_options():
    sched = optim.CosineAnnealingLR(sgd(), T_max=4)
    sched.get_last_lr().append(9.0)
    assert sched.get_last_lr() == [0.2]
    assert repr(sched) == "CosineAnnealingLR(T_max=4, eta_min=0.0)"
    assert repr(optim.StepLR(sgd(), 2)) == "StepLR(step_size=2, gamma=0.1)"


@pytest.mark.parametrize("call, err, match", [
    (lambda o: optim.StepLR({"lr": 0.1}, 2), TypeError, "optimizer: expected an npseq.optim"),
    (lambda o: optim.StepLR(o, 0), ValueError, "step_size: expected an integer >= 1"),
    (lambda o: optim.StepLR(o, 2.5), TypeError, "step_size"),
    (lambda o: optim.StepLR(o, 2, gamma=-0.5), ValueError, "gamma"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: optim.CosineAnnealingLR(o, T_max=3, eta_min=-1.0), ValueError, "eta_min"),
    (lambda o: optim.ReduceLROnPlateau(o, mode="lowest"), ValueError, "mode: expected 'min'"),
    (lambda o: optim.ReduceLROnPlateau(o, factor=1.0), ValueError, "factor: .* < 1.0"),
    (lambda o: optim.ReduceLROnPlateau(o, patience=-1), ValueError, "patience"),
    (lambda o: optim.ReduceLROnPlateau(o, threshold_mode="relative"), ValueError,
     "threshold_mode"),
    (lambda o: optim.ReduceLROnPlateau(o, cooldown=1.5), TypeError, "cooldown"),
    (lambda o: optim.ReduceLROnPlateau(o, min_lr=float("nan")), ValueError, "min_lr"),
    (lambda o: optim.ReduceLROnPlateau(o).step("0.5"), TypeError, "metric: expected a number"),
    (lambda o: optim.ReduceLROnPlateau(o).step(np.array([0.5, 0.4])), TypeError, "metric"),
    (lambda o: optim.ReduceLROnPlateau(o).step(None), TypeError, "metric"),
])
def test_bad_schedule_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call(sgd())


@pytest.mark.parametrize("max_norm", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_clip_grad_norm_rejects_a_max_norm_that_is_not_positive_and_finite(max_norm):
    grads = {"a": np.array([1.0, -3.0]), "b": np.array([[2.0]])}
    with pytest.raises(ValueError, match=r"^max_norm: expected a finite number > 0, got "):
        optim.clip_grad_norm(grads, max_norm)
    np.testing.assert_array_equal(grads["a"], [1.0, -3.0])  # untouched, not zeroed
    with pytest.raises(TypeError, match="max_norm"):
        optim.clip_grad_norm(grads, True)
