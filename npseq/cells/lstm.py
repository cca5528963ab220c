"""LSTM cell with PyTorch's gate order (i, f, g, o) and optional projection ``W_hr``.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells import lstm_fused
from npseq.cells.base import CellKind, FusedPath, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class LSTMCache(NamedTuple):
    h_prev: np.ndarray  # (B, H_out) carry before the step
    c_prev: np.ndarray  # (B, H)
    i: np.ndarray  # (B, H) input gate, sigma(a_i)
    f: np.ndarray  # (B, H) forget gate, sigma(a_f)
    g: np.ndarray  # (B, H) candidate, phi(a_g)
    o: np.ndarray  # (B, H) output gate, sigma(a_o)
    phi_c: np.ndarray  # (B, H) phi(c)
    m: Optional[np.ndarray]  # (B, H) o * phi(c), kept only with a projection


def lstm_step_forward(gx: np.ndarray, carry: tuple, p: dict, activation: Activation = TANH,
                      recurrent_activation: Activation = SIGMOID) -> tuple[tuple, LSTMCache]:
    """One LSTM step.

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (i, f, g, o).
    carry : tuple ``(h_prev, c_prev)`` of shapes (B, H_out), (B, H)
    p : dict with ``weight_hh (4H, H_out)``, optional ``bias_hh (4H,)`` and
        ``weight_hr (H_out, H)``; ``H_out`` is ``proj_size`` with a projection, else H.
    activation, recurrent_activation : npseq.activations.Activation
        ``phi`` (tanh by default, on g and c) and ``sigma`` (the sigmoid by default, on
        i, f, o); PyTorch's LSTM has the defaults.

    Returns
    -------
    carry : tuple ``(h, c)``
    cache : LSTMCache

    Notes
    -----
    With ``sigma = recurrent_activation`` and ``phi = activation``::

        a = gx + W_hh h_prev + b_hh          (B, 4H), split into a_i, a_f, a_g, a_o
        i = sigma(a_i)
        f = sigma(a_f)
        g = phi(a_g)
        o = sigma(a_o)
        c = f * c_prev + i * g
        m = o * phi(c)
        h = m                                without projection
        h = W_hr m                           with projection
    """
    sigma, phi = recurrent_activation, activation
    h_prev, c_prev = carry
    H = c_prev.shape[-1]
    a = h_prev @ p["weight_hh"].T  # (B, 4H)
    a += gx
    if "bias_hh" in p:
        a += p["bias_hh"]
    i = sigma.fn(a[:, :H])
    f = sigma.fn(a[:, H:2 * H])
    g = phi.fn(a[:, 2 * H:3 * H])
    o = sigma.fn(a[:, 3 * H:])
    c = f * c_prev
    c += i * g
    phi_c = phi.fn(c)
    m = o * phi_c
    if "weight_hr" in p:
        return (m @ p["weight_hr"].T, c), LSTMCache(h_prev, c_prev, i, f, g, o, phi_c, m)
    return (m, c), LSTMCache(h_prev, c_prev, i, f, g, o, phi_c, None)


def lstm_step_backward(dcarry: tuple, cache: LSTMCache, p: dict, activation: Activation = TANH,
                       recurrent_activation: Activation = SIGMOID, *,
                       out: Optional[np.ndarray] = None) -> StepGrads:
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
    One line a derivative, in reverse order of the forward. ``dc`` on the right is the
    gradient arriving from the next step; ``sigma'`` and ``phi'`` are written from the
    outputs (``s (1 - s)`` and ``1 - t**2`` for the defaults)::

        dW_hr = dh^T m ;  dm = dh W_hr        with projection (else dm = dh)
        do = dm * phi(c)
        dc = dc + dm * o * phi'(c)
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        da_i = di * sigma'(i)
        da_f = df * sigma'(f)
        da_g = dg * phi'(g)
        da_o = do * sigma'(o)
        da = [da_i, da_f, da_g, da_o]
        dh_prev = da W_hh
    """
    sigma, phi = recurrent_activation, activation
    dh, dc = dcarry
    i, f, g, o, phi_c = cache.i, cache.f, cache.g, cache.o, cache.phi_c
    dparams = {}
    if "weight_hr" in p:
        dparams["weight_hr"] = dh.T @ cache.m  # (H_out, H)
        dm = dh @ p["weight_hr"]  # (B, H)
    else:
        dm = dh  # h is m
    do = dm * phi_c
    dc = dc + dm * o * phi.grad(phi_c)  # c reaches h through phi(c) too
    di = dc * g
    df = dc * cache.c_prev
    dg = dc * i
    dc_prev = dc * f
    da_i = di * sigma.grad(i)
    da_f = df * sigma.grad(f)
    da_g = dg * phi.grad(g)
    da_o = do * sigma.grad(o)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1, out=out)  # (B, 4H)
    dh_prev = da @ p["weight_hh"]  # (B, H_out)
    return StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev, dc_prev), dparams=dparams)


LSTM = CellKind("LSTM", 4, 2, lstm_step_forward, lstm_step_backward, supports_proj_size=True,
                recurrent_dropout="carry",
                fused=FusedPath(lstm_step_forward, lstm_step_backward, lstm_fused.applies,
                                lstm_fused.lstm_fused_forward, lstm_fused.lstm_fused_backward))
