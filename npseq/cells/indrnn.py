"""IndRNN (Li et al. 2018): a recurrence without ``W_hh``, one recurrent weight per unit.

Forward and backward of the recurrence, given the input projection ``gx = W_ih x + b_ih``
(see :mod:`npseq.cells.base`). The kind has no ``weight_hh`` (``has_weight_hh=False``); its
own parameter ``u (H,)`` multiplies ``h_prev`` element-wise, so unit j sees only its own past.
Derivation and what the gradient through time does: ``docs/modern.md``.
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, ParamSpec, StepGrads

__all__ = ["IndRNNCache", "indrnn_step_forward", "indrnn_step_backward", "uniform_0_1",
           "INDRNN_RELU", "INDRNN_TANH", "indrnn_kind"]

RELU = ACTIVATIONS["relu"]


class IndRNNCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    h: np.ndarray  # (B, H) act(a), kept to differentiate act from its output


def indrnn_step_forward(gx: np.ndarray, carry: tuple, p: dict, activation: Activation = RELU
                        ) -> tuple[tuple, IndRNNCache]:
    """One IndRNN step.

    Parameters
    ----------
    gx : ndarray, shape (B, H)
        Input projection ``W_ih x + b_ih``.
    carry : tuple ``(h_prev,)``, h_prev of shape (B, H)
    p : dict with ``u (H,)``, the recurrent weight of each unit
    activation : npseq.activations.Activation
        ``act``: relu (the paper's default) or tanh.

    Returns
    -------
    carry : tuple ``(h,)``
    cache : IndRNNCache

    Notes
    -----
    ::

        a = gx + u * h_prev            (B, H); u * h_prev is element-wise, no matrix
        h = act(a)
    """
    (h_prev,) = carry
    h = activation.fn(gx + p["u"] * h_prev)
    return (h,), IndRNNCache(h_prev, h)


def indrnn_step_backward(dcarry: tuple, cache: IndRNNCache, p: dict,
                         activation: Activation = RELU) -> StepGrads:
    """Backward of :func:`indrnn_step_forward`.

    Returns
    -------
    StepGrads
        ``dgx = da`` (B, H), ``dgh = None`` (no ``W_hh``), ``dcarry_prev = (da * u,)`` and
        ``dparams = {"u": sum_b da * h_prev}``.

    Notes
    -----
    One line a derivative, in reverse order of the forward::

        da = dh * act'(h)              act' from the output: 1[h > 0] for relu, 1 - h**2 for tanh
        du = sum_batch da * h_prev
        dh_prev = da * u
    """
    (dh,) = dcarry
    da = dh * activation.grad(cache.h)
    du = (da * cache.h_prev).sum(axis=0)
    dh_prev = da * p["u"]
    return StepGrads(dgx=da, dgh=None, dcarry_prev=(dh_prev,), dparams={"u": du})


def uniform_0_1(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """The paper's initial recurrent weights: ``u ~ U(0, 1)``."""
    return rng.uniform(0.0, 1.0, size=shape)


_U = (ParamSpec("u", ("H",), init=uniform_0_1),)

INDRNN_RELU = CellKind("INDRNN_RELU", 1, 1, indrnn_step_forward, indrnn_step_backward,
                       extra_params=_U, has_weight_hh=False, recurrent_dropout="carry")
INDRNN_TANH = CellKind("INDRNN_TANH", 1, 1,
                       partial(indrnn_step_forward, activation=ACTIVATIONS["tanh"]),
                       partial(indrnn_step_backward, activation=ACTIVATIONS["tanh"]),
                       extra_params=_U, has_weight_hh=False, recurrent_dropout="carry")


def indrnn_kind(nonlinearity: str) -> CellKind:
    """The IndRNN kind of a nonlinearity ("relu" or "tanh", checked by the caller)."""
    return INDRNN_RELU if nonlinearity == "relu" else INDRNN_TANH
