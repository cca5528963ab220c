"""The Linear Recurrent Unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
for Long Sequences"): a complex diagonal linear recurrence, written in real arithmetic.

With a complex state ``x (N,)`` per sequence, input ``u (D,)`` and output ``y (H,)``::

    lambda = exp(-exp(nu_log) + i exp(theta_log))          (N,) complex, |lambda| < 1
    gamma = exp(gamma_log)                                  (N,) real, starts sqrt(1 - |lambda|^2)
    x = lambda * x_prev + gamma * (B u)                     B = B_re + i B_im   (N, D)
    y = Re(C x) + D u + b                                   C = C_re + i C_im   (H, N)

npseq holds every parameter and the state as real arrays: ``nu_log``, ``theta_log``,
``gamma_log`` (N,), ``B_re``, ``B_im`` (N, D), ``C_re``, ``C_im`` (H, N), ``D`` (H, D) and,
with ``bias=True``, ``bias_y`` (H,); the state is ``x = [Re x | Im x]`` of shape (B, 2N).
``D`` is a full (H, D) matrix, the feed-through of a general state-space model: the paper's
diagonal ``D * u`` (for D = H) is its special case ``D = diag(d)``, and a full matrix also
serves the layers whose input size is not H (any stacked bidirectional layer reads 2H).

The kind has neither ``weight_ih`` nor ``weight_hh`` (``gx = u`` itself). Its carry is
``(y, x)``: ``y (B, H)`` is the step's output, as the :class:`~npseq.CellKind` contract asks
of ``carry[0]``, and ``x (B, 2N)`` is the state. The step reads only ``x_prev``; ``y_prev``
is carried for the contract only, so its gradient is zero.

The initialisation is the paper's (its ring initialisation and the reference code of its
appendix A): ``|lambda|`` uniform on the ring ``[r_min, r_max]`` of the complex plane
(``|lambda|^2`` uniform in ``[r_min^2, r_max^2]``), the phase uniform in ``(0, max_phase)``,
``B`` Glorot, ``N(0, 1 / (2 D))`` in each part, ``C`` ``N(0, 1 / N)`` in each part,
``gamma_log = log sqrt(1 - |lambda|^2)`` (:func:`gamma_log_init`, set by the layer since it
depends on ``nu_log``), and ``D`` ``N(0, 1 / D)`` (the paper's ``N(0, 1)`` diagonal has
the same output variance per unit). Derivations and the complex chain rule: ``docs/lru.md``.
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import NamedTuple

import numpy as np

from npseq.cells.base import CellKind, ParamSpec, StepGrads

__all__ = ["LRUCache", "lru_lambda", "lru_step_forward", "lru_step_backward",
           "nu_log_init", "theta_log_init", "gamma_log_init", "lru_kind"]


class LRUCache(NamedTuple):
    u: np.ndarray  # (B, D) the step's input
    x_prev_re: np.ndarray  # (B, N) state before the step, real part
    x_prev_im: np.ndarray  # (B, N) imaginary part
    x_re: np.ndarray  # (B, N) state after the step
    x_im: np.ndarray  # (B, N)
    bu_re: np.ndarray  # (B, N) Re(B u)
    bu_im: np.ndarray  # (B, N) Im(B u)
    lam_re: np.ndarray  # (N,) Re(lambda)
    lam_im: np.ndarray  # (N,) Im(lambda)
    gamma: np.ndarray  # (N,) exp(gamma_log)


def lru_lambda(nu_log: np.ndarray, theta_log: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(Re lambda, Im lambda)`` of ``lambda = exp(-exp(nu_log) + i exp(theta_log))``.

    ``|lambda| = exp(-exp(nu_log))`` is below 1 for every finite ``nu_log`` (in floating
    point it rounds to 1 once ``exp(nu_log)`` is below the rounding unit, ~1e-16 in
    float64): the parametrisation keeps the recurrence stable whatever the optimiser does.
    """
    r = np.exp(-np.exp(nu_log))  # (N,) |lambda|
    theta = np.exp(theta_log)  # (N,) arg(lambda)
    return r * np.cos(theta), r * np.sin(theta)


def lru_step_forward(gx: np.ndarray, carry: tuple, p: dict) -> tuple[tuple, LRUCache]:
    """One LRU step.

    Parameters
    ----------
    gx : ndarray, shape (B, D)
        The input ``u`` itself (the kind has no ``weight_ih``).
    carry : tuple ``(y_prev, x_prev)``, shapes (B, H) and (B, 2N)
        ``x_prev = [Re x_prev | Im x_prev]``; ``y_prev`` is not read.
    p : dict with ``nu_log``, ``theta_log``, ``gamma_log`` (N,), ``B_re``, ``B_im`` (N, D),
        ``C_re``, ``C_im`` (H, N), ``D`` (H, D), optionally ``bias_y`` (H,)

    Returns
    -------
    carry : tuple ``(y, x)``
    cache : LRUCache

    Notes
    -----
    Complex equations on the left, the real lines that compute them on the right::

        lambda = exp(-exp(nu_log) + i exp(theta_log))   lam_re, lam_im = lru_lambda(...)
        gamma = exp(gamma_log)
        Bu = B u                                        bu_re = u B_re^T,  bu_im = u B_im^T
        x = lambda * x_prev + gamma * Bu                x_re = lam_re x_prev_re - lam_im x_prev_im
                                                               + gamma bu_re
                                                        x_im = lam_re x_prev_im + lam_im x_prev_re
                                                               + gamma bu_im
        y = Re(C x) + D u + b                           y = x_re C_re^T - x_im C_im^T + u D^T + b
    """
    u = gx
    _, x_prev = carry
    N = p["nu_log"].shape[0]
    x_prev_re, x_prev_im = x_prev[:, :N], x_prev[:, N:]
    lam_re, lam_im = lru_lambda(p["nu_log"], p["theta_log"])
    gamma = np.exp(p["gamma_log"])
    bu_re = u @ p["B_re"].T  # (B, N)
    bu_im = u @ p["B_im"].T
    x_re = lam_re * x_prev_re - lam_im * x_prev_im + gamma * bu_re
    x_im = lam_re * x_prev_im + lam_im * x_prev_re + gamma * bu_im
    y = x_re @ p["C_re"].T - x_im @ p["C_im"].T + u @ p["D"].T  # (B, H)
    if "bias_y" in p:
        y += p["bias_y"]
    x = np.concatenate([x_re, x_im], axis=1)  # (B, 2N)
    return (y, x), LRUCache(u, x_prev_re, x_prev_im, x_re, x_im, bu_re, bu_im, lam_re,
                            lam_im, gamma)


def lru_step_backward(dcarry: tuple, cache: LRUCache, p: dict) -> StepGrads:
    """Backward of :func:`lru_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dy, dx)``, shapes (B, H) and (B, 2N)
    cache : LRUCache
    p : dict, as the forward's

    Returns
    -------
    StepGrads
        ``dgx = du`` (B, D), ``dgh = None``, ``dcarry_prev = (0, dx_prev)`` and the
        gradients of every parameter in ``dparams``.

    Notes
    -----
    A complex quantity ``z`` has the gradient ``dz = dL/dRe z + i dL/dIm z``. For ``w = a z``
    (a, z complex) it is ``dz = conj(a) dw`` and ``da = sum_batch conj(z) dw``; for
    ``lambda = exp(s)``, ``ds = conj(lambda) dlambda`` (``docs/lru.md`` derives these).
    One line a derivative, in reverse order of the forward::

        db = sum_batch dy
        dD = dy^T u;   du = dy D
        dC_re = dy^T x_re;   dC_im = -dy^T x_im
        dx = dx + C^H dy                 dx_re += dy C_re,  dx_im -= dy C_im
        dgamma = sum_batch Re(conj(Bu) dx)          = sum (bu_re dx_re + bu_im dx_im)
        dBu = gamma dx
        dB_re = dBu_re^T u;   dB_im = dBu_im^T u;   du += dBu_re B_re + dBu_im B_im
        dx_prev = conj(lambda) dx        re: lam_re dx_re + lam_im dx_im
                                         im: lam_re dx_im - lam_im dx_re
        dlambda = sum_batch conj(x_prev) dx
        ds = conj(lambda) dlambda        s = -exp(nu_log) + i exp(theta_log)
        dnu_log = -exp(nu_log) Re(ds);   dtheta_log = exp(theta_log) Im(ds)
        dgamma_log = gamma dgamma
    """
    dy, dx = dcarry
    c = cache
    N = c.lam_re.shape[0]
    dparams = {}
    if "bias_y" in p:
        dparams["bias_y"] = dy.sum(axis=0)
    dparams["D"] = dy.T @ c.u  # (H, D)
    du = dy @ p["D"]  # (B, D)
    dparams["C_re"] = dy.T @ c.x_re  # (H, N)
    dparams["C_im"] = -(dy.T @ c.x_im)
    dx_re = dx[:, :N] + dy @ p["C_re"]  # (B, N)
    dx_im = dx[:, N:] - dy @ p["C_im"]
    dgamma = (c.bu_re * dx_re + c.bu_im * dx_im).sum(axis=0)  # (N,)
    dbu_re = c.gamma * dx_re
    dbu_im = c.gamma * dx_im
    dparams["B_re"] = dbu_re.T @ c.u  # (N, D)
    dparams["B_im"] = dbu_im.T @ c.u
    du += dbu_re @ p["B_re"] + dbu_im @ p["B_im"]
    dx_prev_re = c.lam_re * dx_re + c.lam_im * dx_im
    dx_prev_im = c.lam_re * dx_im - c.lam_im * dx_re
    dlam_re = (c.x_prev_re * dx_re + c.x_prev_im * dx_im).sum(axis=0)  # (N,)
    dlam_im = (c.x_prev_re * dx_im - c.x_prev_im * dx_re).sum(axis=0)
    ds_re = c.lam_re * dlam_re + c.lam_im * dlam_im
    ds_im = c.lam_re * dlam_im - c.lam_im * dlam_re
    dparams["nu_log"] = -np.exp(p["nu_log"]) * ds_re
    dparams["theta_log"] = np.exp(p["theta_log"]) * ds_im
    dparams["gamma_log"] = c.gamma * dgamma
    dx_prev = np.concatenate([dx_prev_re, dx_prev_im], axis=1)  # (B, 2N)
    return StepGrads(dgx=du, dgh=None, dcarry_prev=(np.zeros_like(dy), dx_prev),
                     dparams=dparams)


# -- the paper's initialisation --------------------------------------------------------------
def nu_log_init(rng: np.random.Generator, shape: tuple, r_min: float = 0.0,
                r_max: float = 1.0) -> np.ndarray:
    """``nu_log`` with ``|lambda|^2`` uniform in ``[r_min^2, r_max^2]`` (the ring).

    ``|lambda| = exp(-exp(nu_log))``, so ``nu_log = log(-log(|lambda|^2) / 2)``. The uniform
    draw excludes 0 (a zero radius would give ``nu_log = inf``).
    """
    v = rng.uniform(np.finfo(np.float64).tiny, 1.0, size=shape)
    r2 = v * (r_max ** 2 - r_min ** 2) + r_min ** 2  # (N,) |lambda|^2
    return np.log(-0.5 * np.log(r2))


def theta_log_init(rng: np.random.Generator, shape: tuple,
                   max_phase: float = 2 * np.pi) -> np.ndarray:
    """``theta_log = log(theta)``, ``theta`` uniform in ``(0, max_phase)``."""
    return np.log(max_phase * rng.uniform(np.finfo(np.float64).tiny, 1.0, size=shape))


def gamma_log_init(nu_log: np.ndarray) -> np.ndarray:
    """``gamma_log = log sqrt(1 - |lambda|^2)``, the paper's normalisation, from ``nu_log``.

    Computed as ``0.5 * log(-expm1(-2 exp(nu_log)))`` in float64, which stays finite when
    ``|lambda|`` is within rounding of 1, where ``1 - |lambda|^2`` would round to 0.
    """
    nu_log = np.asarray(nu_log, dtype=np.float64)
    return 0.5 * np.log(-np.expm1(-2.0 * np.exp(nu_log)))


def glorot_b(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """``B_re``, ``B_im`` of shape (N, D): ``N(0, 1 / (2 D))``, Glorot as the paper's code."""
    return rng.normal(0.0, 1.0 / np.sqrt(2 * shape[1]), size=shape)


def glorot_c(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """``C_re``, ``C_im`` of shape (H, N): ``N(0, 1 / N)``."""
    return rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)


def glorot_d(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """``D`` of shape (H, D): ``N(0, 1 / D)``."""
    return rng.normal(0.0, 1.0 / np.sqrt(shape[1]), size=shape)


@lru_cache(maxsize=None)
def lru_kind(state_size: int, r_min: float = 0.0, r_max: float = 1.0,
             max_phase: float = 2 * np.pi, bias: bool = True) -> CellKind:
    """The LRU :class:`~npseq.CellKind` of ``N = state_size`` and an initial ring (checked by
    the caller). ``bias`` adds ``bias_y (H,)``, starting at 0. ``gamma_log`` starts at 0 here:
    set it with :func:`gamma_log_init` from ``nu_log`` (:class:`npseq.LRU` does).

    The carry is ``(y, x)`` with ``x`` of ``2 * state_size`` features: run the kind through
    :class:`npseq.LRU`, whose public state is ``x``. A generic ``npseq.Recurrent`` of this
    kind would build its second state with ``hidden_size`` features, which fits only when
    ``hidden_size == 2 * state_size``."""
    N = state_size
    specs: tuple[ParamSpec, ...] = (
        ParamSpec("nu_log", (N,), partial(nu_log_init, r_min=r_min, r_max=r_max)),
        ParamSpec("theta_log", (N,), partial(theta_log_init, max_phase=max_phase)),
        ParamSpec("B_re", (N, "D"), glorot_b),
        ParamSpec("B_im", (N, "D"), glorot_b),
        ParamSpec("C_re", ("H", N), glorot_c),
        ParamSpec("C_im", ("H", N), glorot_c),
        ParamSpec("D", ("H", "D"), glorot_d),
        ParamSpec("gamma_log", (N,), 0.0))
    if bias:
        specs += (ParamSpec("bias_y", ("H",), 0.0),)
    return CellKind("LRU", 1, 2, lru_step_forward, lru_step_backward, extra_params=specs,
                    has_weight_ih=False, has_weight_hh=False)
