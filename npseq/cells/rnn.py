"""Elman RNN cell: ``h = act(W_ih x + b_ih + W_hh h_prev + b_hh)``, act tanh or relu.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple, Optional

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, StepGrads

TANH, RELU = ACTIVATIONS["tanh"], ACTIVATIONS["relu"]


class RNNCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    h: np.ndarray  # (B, H) act(a), the new carry


def rnn_step_forward(gx: np.ndarray, carry: tuple, p: dict, nonlinearity: Activation = TANH
                     ) -> tuple[tuple, RNNCache]:
    """One step of the Elman recurrence.

    Parameters
    ----------
    gx : ndarray, shape (B, H)
        Input projection ``W_ih x + b_ih``.
    carry : tuple ``(h_prev,)``, h_prev of shape (B, H)
    p : dict with ``weight_hh (H, H)`` and optionally ``bias_hh (H,)``
    nonlinearity : npseq.activations.Activation, TANH or RELU

    Returns
    -------
    carry : tuple ``(h,)``, h of shape (B, H)
    cache : RNNCache

    Notes
    -----
    ::

        a = gx + W_hh h_prev + b_hh
        h = act(a)
    """
    act = nonlinearity
    (h_prev,) = carry
    a = h_prev @ p["weight_hh"].T  # (B, H)
    a += gx
    if "bias_hh" in p:
        a += p["bias_hh"]
    h = act.fn(a)
    return (h,), RNNCache(h_prev, h)


def rnn_step_backward(dcarry: tuple, cache: RNNCache, p: dict, nonlinearity: Activation = TANH, *,
                      out: Optional[np.ndarray] = None) -> StepGrads:
    """Backward of :func:`rnn_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh,)``, dh of shape (B, H): gradient of the new carry
    cache : RNNCache
    p : dict with ``weight_hh (H, H)``
    nonlinearity : npseq.activations.Activation, TANH or RELU
    out : ndarray, shape (B, H), optional
        Where to write ``da`` (the BPTT driver passes a row of its block of ``dgx``).

    Returns
    -------
    StepGrads
        ``dgx = dgh = da`` and ``dcarry_prev = (dh_prev,)``.

    Notes
    -----
    One line a derivative, in reverse order of the forward::

        da = dh * act'(a)         act' from the output: 1 - h**2 (tanh), [h > 0] (relu)
        dh_prev = da W_hh
    """
    act = nonlinearity
    (dh,) = dcarry
    da = np.multiply(dh, act.grad(cache.h), out=out)  # (B, H)
    dh_prev = da @ p["weight_hh"]  # (B, H)
    return StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev,), dparams={})


RNN_TANH = CellKind("RNN_TANH", 1, 1, partial(rnn_step_forward, nonlinearity=TANH),
                    partial(rnn_step_backward, nonlinearity=TANH), recurrent_dropout="carry")
RNN_RELU = CellKind("RNN_RELU", 1, 1, partial(rnn_step_forward, nonlinearity=RELU),
                    partial(rnn_step_backward, nonlinearity=RELU), recurrent_dropout="carry")
