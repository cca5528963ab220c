"""Optimizers, clip_grad_norm and ParamVector, without torch (parity is in test_optim_torch)."""
import numpy as np
import pytest
import scipy.optimize

import npseq
from npseq import losses, optim


def make(shape=(3, 2), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = {"w": rng.standard_normal(shape).astype(dtype),
              "b": rng.standard_normal(shape[:1]).astype(dtype)}
    grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
    return params, grads


def test_sgd_momentum_nesterov_weight_decay_by_hand():
    params, grads = make()
    p0, g = params["w"].copy(), grads["w"].copy()
    opt = optim.SGD(params, grads, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
    opt.step()
    g1 = g + 0.01 * p0
    b1 = g1  # the buffer starts as the first gradient
    p1 = p0 - 0.1 * (g1 + 0.9 * b1)
    np.testing.assert_allclose(params["w"], p1, rtol=1e-14)
    opt.step()
    g2 = g + 0.01 * p1
    b2 = 0.9 * b1 + g2
    np.testing.assert_allclose(params["w"], p1 - 0.1 * (g2 + 0.9 * b2), rtol=1e-14)


def test_first_steps_of_adaptive_methods_by_hand():
    """At t = 1 Adam moves each weight by lr * g / (|g| + eps'): about lr, sign of -g."""
    for cls, expected in [
        (optim.Adam, lambda p, g: p - 0.01 * g / (np.abs(g) + 1e-8)),
        (optim.Adagrad, lambda p, g: p - 0.01 * g / (np.abs(g) + 1e-10)),
        (optim.RMSprop, lambda p, g: p - 0.01 * g / (np.sqrt(0.01) * np.abs(g) + 1e-8)),
    ]:
        params, grads = make()
        p0 = params["w"].copy()
        cls(params, grads, lr=0.01).step()
        np.testing.assert_allclose(params["w"], expected(p0, grads["w"]), rtol=1e-13,
                                   err_msg=cls.__name__)


def test_adamw_decays_weights_directly():
    params, grads = make()
    p0 = params["w"].copy()
    for g in grads.values():
        g.fill(0)  # a zero gradient: Adam's step is exactly 0, only the decay acts
    opt = optim.AdamW(params, grads, lr=0.1, weight_decay=0.5)
    opt.step()
    opt.step()
    np.testing.assert_allclose(params["w"], p0 * 0.95 ** 2, rtol=1e-14)
    params, grads = make()
    for g in grads.values():
        g.fill(0)
    optim.Adam(params, grads, lr=0.1, weight_decay=0.5).step()  # L2 through the gradient
    g = 0.5 * p0
    np.testing.assert_allclose(params["w"], p0 - 0.1 * g / (np.abs(g) + 1e-8), rtol=1e-13)


def test_step_updates_the_live_arrays_of_a_model_and_lr_is_settable():
    rng = np.random.default_rng(0)
    lin = npseq.Linear(3, 1, seed=0)
    w_true = rng.standard_normal((1, 3))
    x = rng.standard_normal((64, 3))
    y = x @ w_true.T + 0.5
    w_id = id(lin.params["weight"])
    opt = optim.Adam(lin.params, lin.grads, lr=0.05)
    first = None
    for step in range(300):
        opt.zero_grad()
        loss, dy = losses.mse_loss(lin(x), y)
        lin.backward(dy)
        opt.step()
        first = loss if first is None else first
        if step == 200:
            opt.lr = 0.01
    assert id(lin.params["weight"]) == w_id
    assert opt.lr == 0.01
    assert loss < 1e-4 * first
    np.testing.assert_allclose(lin.params["weight"], w_true, atol=1e-2)


def test_zero_grad():
    params, grads = make()
    opt = optim.SGD(params, grads, lr=0.1)
    opt.zero_grad()
    assert not any(g.any() for g in grads.values())


def test_float32_parameters_stay_float32_and_repr_shows_the_options():
    params, grads = make(dtype=np.float32)
    for cls in (optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad):
        opt = cls(params, grads, lr=0.1)
        opt.step()
        assert repr(opt).startswith(f"{cls.__name__}(lr=0.1, ")
        assert "weight_decay=" in repr(opt)
    assert all(p.dtype == np.float32 for p in params.values())


@pytest.mark.parametrize("call, err, match", [
    (lambda p, g: optim.SGD(p, g, lr=-1), ValueError, "lr: expected a finite number >= 0"),
    (lambda p, g: optim.SGD(p, g, lr="1"), TypeError, "lr"),
    (lambda p, g: optim.SGD(p, g, lr=0.1, nesterov=True), ValueError, "nesterov"),
    (lambda p, g: optim.SGD(p, g, lr=0.1, momentum=-0.5), ValueError, "momentum"),
    (lambda p, g: optim.Adam(p, g, betas=(0.9, 1.0)), ValueError, r"betas\[1\]"),
    (lambda p, g: optim.Adam(p, g, betas=0.9), TypeError, "betas"),
    (lambda p, g: optim.RMSprop(p, g, eps=float("nan")), ValueError, "eps"),
    (lambda p, g: optim.Adagrad(p, g, weight_decay=-1), ValueError, "weight_decay"),
    (lambda p, g: optim.Adam(p, {"w": g["w"]}), KeyError,
     r"^grads: expected the keys of params \['w', 'b'\], got missing keys \['b'\]$"),
    (lambda p, g: optim.Adam(p, {**g, "c": g["b"]}), KeyError,
     r"^grads: expected the keys of params \['w', 'b'\], got unexpected keys \['c'\]$"),
    (lambda p, g: optim.SGD(p, {"w": g["w"], "c": g["b"]}, lr=0.1), KeyError,
     r"got missing keys \['b'\] and unexpected keys \['c'\]$"),
    (lambda p, g: optim.Adam(p, {**g, "b": np.zeros(5)}), ValueError, r"grads\['b'\]"),
    (lambda p, g: optim.Adam([1.0], g), TypeError, "params: expected a dict"),
    (lambda p, g: optim.Adam({"w": [1.0]}, {"w": [0.0]}), TypeError, r"params\['w'\]"),
    (lambda p, g: optim.Adam({}, {}), ValueError, "params"),
])
def test_bad_arguments_are_named(call, err, match):
    params, grads = make()
    with pytest.raises(err, match=match):
        call(params, grads)
    opt = optim.Adam(params, grads)
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -0.1


# -- clip_grad_norm ----------------------------------------------------------------------

def test_clip_grad_norm_returns_the_norm_before_and_scales_to_max_norm():
    _, grads = make()
    before = {k: g.copy() for k, g in grads.items()}
    norm = np.sqrt(sum(np.sum(g ** 2) for g in before.values()))
    total = optim.clip_grad_norm(grads, 0.5)
    assert isinstance(total, float) and total == pytest.approx(norm, rel=1e-14)
    scale = 0.5 / (norm + 1e-6)
    for k in grads:
        np.testing.assert_allclose(grads[k], before[k] * scale, rtol=1e-14)
    # below the threshold nothing changes
    again = {k: g.copy() for k, g in grads.items()}
    assert optim.clip_grad_norm(grads, 10.0) == pytest.approx(0.5, rel=1e-5)
    for k in grads:
        np.testing.assert_array_equal(grads[k], again[k])


def test_clip_grad_norm_inf_norm_and_errors():
    grads = {"a": np.array([1.0, -3.0]), "b": np.array([[2.0]])}
    assert optim.clip_grad_norm(grads, 1.0, norm_type=float("inf")) == 3.0
    np.testing.assert_allclose(grads["a"], np.array([1.0, -3.0]) / (3 + 1e-6), rtol=1e-14)
    with pytest.raises(ValueError, match="max_norm"):
        optim.clip_grad_norm(grads, -1.0)
    with pytest.raises(TypeError, match="grads"):
        optim.clip_grad_norm([[1.0]], 1.0)


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0])
def test_clip_grad_norm_does_not_overflow_or_underflow(scale, norm_type):
    """|g|**p of float64 gradients near 1e200 overflows (and near 1e-200 underflows): the
    norm is still exact and the gradients are scaled to max_norm, not zeroed."""
    grads = {"a": np.array([3.0, -4.0]) * scale, "b": np.array([[12.0]]) * scale}
    norm = {2.0: 13.0, 1.0: 19.0, 3.0: (27 + 64 + 1728) ** (1 / 3)}[norm_type] * scale
    total = optim.clip_grad_norm(grads, 2.0, norm_type)
    assert total == pytest.approx(norm, rel=1e-14, abs=0)  # abs=0: 1e-200 is not 0
    coef = min(2.0 / (norm + 1e-6), 1.0)  # tiny gradients: below max_norm, kept as they are
    np.testing.assert_allclose(grads["a"], np.array([3.0, -4.0]) * scale * coef, rtol=1e-14)
    np.testing.assert_allclose(grads["b"], np.array([[12.0]]) * scale * coef, rtol=1e-14)


def test_clip_grad_norm_of_inf_nan_and_zero_gradients_is_torchs():
    """An inf gradient has an inf norm (every gradient then becomes zero, 0 * inf = nan
    aside), a nan one a nan norm, all-zero ones a zero norm, as in PyTorch."""
    with np.errstate(invalid="ignore"):  # inf * 0
        assert optim.clip_grad_norm({"a": np.array([np.inf, 1.0])}, 1.0) == np.inf
    assert np.isnan(optim.clip_grad_norm({"a": np.array([np.nan, 1.0])}, 1.0))
    zeros = {"a": np.zeros(3), "b": np.zeros((2, 2))}
    assert optim.clip_grad_norm(zeros, 1.0) == 0.0
    assert not any(g.any() for g in zeros.values())


# -- ParamVector -------------------------------------------------------------------------

def test_param_vector_round_trip_order_and_dtype():
    params, grads = make(dtype=np.float32)
    originals = {k: v.copy() for k, v in params.items()}
    pv = optim.ParamVector(params, grads)
    theta = pv.get()
    assert theta.dtype == np.float64 and theta.shape == (9,) and len(pv) == 9
    np.testing.assert_array_equal(theta, np.concatenate([originals["w"].ravel(),
                                                         originals["b"]]))
    np.testing.assert_array_equal(pv.grad(), np.concatenate([grads["w"].ravel(), grads["b"]]))
    theta[0] = 123.0  # get() is a copy
    assert params["w"][0, 0] == originals["w"][0, 0]
    w_live = params["w"]
    new = np.arange(9.0)
    pv.set(new)
    assert params["w"] is w_live and params["w"].dtype == np.float32
    np.testing.assert_array_equal(params["w"], np.arange(6.0).reshape(3, 2))
    np.testing.assert_array_equal(params["b"], [6.0, 7.0, 8.0])
    np.testing.assert_array_equal(new, np.arange(9.0))
    np.testing.assert_array_equal(pv.get(), new)
    with pytest.raises(ValueError, match=r"theta: expected shape \(9,\)"):
        pv.set(np.zeros(8))
    with pytest.raises(TypeError, match="theta"):
        pv.set(np.array(["a"] * 9))


def test_lbfgs_through_param_vector_trains_a_tiny_gru():
    """Full-batch L-BFGS-B with the hand-written gradient: the loss falls by a large factor."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 16, 2))  # (T, B, D)
    y = np.tanh(0.5 * x[:, :, 0].sum(0) - 0.3 * x[-1, :, 1])  # (B,)
    gru = npseq.GRU(2, 4, seed=1)
    pv = optim.ParamVector(gru.params, gru.grads)

    def fun(theta):
        pv.set(theta)
        gru.zero_grad()
        out, _ = gru(x)
        loss, dpred = losses.mse_loss(out[-1, :, 0], y)
        dout = np.zeros_like(out)
        dout[-1, :, 0] = dpred
        gru.backward(dout)
        return loss, pv.grad()

    theta0 = pv.get()
    # the gradient agrees with scipy's finite differences
    err = scipy.optimize.check_grad(lambda t: fun(t)[0], lambda t: fun(t)[1], theta0)
    assert err < 1e-5 * np.linalg.norm(fun(theta0)[1])
    loss0 = fun(theta0)[0]
    res = scipy.optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B",
                                  options={"maxiter": 200})
    assert res.fun < loss0 / 50
    pv.set(res.x)
    assert fun(pv.get())[0] == pytest.approx(res.fun, rel=1e-12)
