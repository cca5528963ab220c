"""LSTM cell with PyTorch's gate order (i, f, g, o) and optional projection ``W_hr``.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.activations import ACTIVATIONS
from npseq.cells.base import CellKind, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class LSTMCache(NamedTuple):
    h_prev: np.ndarray  # (B, H_out) carry before the step
    c_prev: np.ndarray  # (B, H)
    i: np.ndarray  # (B, H) input gate
    f: np.ndarray  # (B, H) forget gate
    g: np.ndarray  # (B, H) candidate
    o: np.ndarray  # (B, H) output gate
    tc: np.ndarray  # (B, H) tanh(c)
    m: Optional[np.ndarray]  # (B, H) o * tanh(c), kept only with a projection


def lstm_step_forward(gx, carry, p, activation=TANH, recurrent_activation=SIGMOID):
    """One LSTM step.

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (i, f, g, o).
    carry : tuple ``(h_prev, c_prev)`` of shapes (B, H_out), (B, H)
    p : dict with ``weight_hh (4H, H_out)``, optional ``bias_hh (4H,)`` and
        ``weight_hr (H_out, H)``; ``H_out`` is ``proj_size`` with a projection, else H.
    activation, recurrent_activation : npseq.activations.Activation
        Replace tanh (on g and c) and sigmoid (on i, f, o); PyTorch's LSTM has the defaults.

    Returns
    -------
    carry : tuple ``(h, c)``
    cache : LSTMCache

    Notes
    -----
    ::

        a = gx + W_hh h_prev + b_hh          (B, 4H), split into a_i, a_f, a_g, a_o
        i = sigmoid(a_i)
        f = sigmoid(a_f)
        g = tanh(a_g)
        o = sigmoid(a_o)
        c = f * c_prev + i * g
        h = o * tanh(c)                      without projection
        h = W_hr (o * tanh(c))               with projection
    """
    tanh = activation.fn
    sigmoid = recurrent_activation.fn
    h_prev, c_prev = carry
    H = c_prev.shape[-1]
    a = h_prev @ p["weight_hh"].T  # (B, 4H)
    a += gx
    if "bias_hh" in p:
        a += p["bias_hh"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    g = tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    c = f * c_prev
    c += i * g
    tc = tanh(c)
    h = o * tc
    m = None
    if "weight_hr" in p:
        m = h
        h = m @ p["weight_hr"].T  # (B, H_out)
    return (h, c), LSTMCache(h_prev, c_prev, i, f, g, o, tc, m)


def lstm_step_backward(dcarry, cache, p, activation=TANH, recurrent_activation=SIGMOID,
                       *, out=None):
    """Backward of :func:`lstm_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh, dc)`` of shapes (B, H_out), (B, H): gradients of the new carry
    cache : LSTMCache
    p : dict with ``weight_hh`` and, with a projection, ``weight_hr``
    activation, recurrent_activation : Activation, as in the forward
    out : ndarray, shape (B, 4H), optional
        Where to write ``da`` (the BPTT driver passes a row of its block of ``dgx``).

    Returns
    -------
    StepGrads
        ``dgx = dgh = da`` (B, 4H), ``dcarry_prev = (dh_prev, dc_prev)`` and, with a
        projection, ``dparams = {"weight_hr": dW_hr}``.

    Notes
    -----
    One line a derivative, in reverse order of the forward (``dc`` on the right is the
    gradient arriving from the next step)::

        dW_hr = dh^T m ;  dm = dh W_hr        with projection (else dm = dh)
        do = dm * tanh(c)
        dc = dc + dm * o * (1 - tanh(c)**2)
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        da_i = di * i * (1 - i)
        da_f = df * f * (1 - f)
        da_g = dg * (1 - g**2)
        da_o = do * o * (1 - o)
        dh_prev = da W_hh
    """
    tanh_grad = activation.grad
    sigmoid_grad = recurrent_activation.grad
    dh, dc = dcarry
    i, f, g, o, tc = cache.i, cache.f, cache.g, cache.o, cache.tc
    dparams = {}
    if "weight_hr" in p:
        dparams["weight_hr"] = dh.T @ cache.m  # (H_out, H)
        dh = dh @ p["weight_hr"]  # dm, (B, H)
    do = dh * tc
    dc = dc + dh * o * tanh_grad(tc)
    di = dc * g
    df = dc * cache.c_prev
    dg = dc * i
    dc_prev = dc * f
    H = i.shape[-1]
    da = np.empty((di.shape[0], 4 * H), di.dtype) if out is None else out  # (B, 4H)
    np.multiply(di, sigmoid_grad(i), out=da[:, :H])  # da_i
    np.multiply(df, sigmoid_grad(f), out=da[:, H:2 * H])  # da_f
    np.multiply(dg, tanh_grad(g), out=da[:, 2 * H:3 * H])  # da_g
    np.multiply(do, sigmoid_grad(o), out=da[:, 3 * H:])  # da_o
    dh_prev = da @ p["weight_hh"]  # (B, H_out)
    return StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev, dc_prev), dparams=dparams)


LSTM = CellKind("LSTM", 4, 2, lstm_step_forward, lstm_step_backward, supports_proj_size=True)
