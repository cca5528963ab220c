"""LSTM cell with peephole connections (Gers, Schraudolph & Schmidhuber, 2002).

The gates also see the cell state through diagonal (per-unit) weights: the input and forget
gates see ``c_prev``, the output gate sees the new ``c``. The peephole weights are one
parameter ``weight_ch`` of shape ``(3, H)``, rows ``(w_ci, w_cf, w_co)``; everything else is
PyTorch's LSTM (gate order (i, f, g, o), ``weight_ih``, ``weight_hh``, ``bias_ih``,
``bias_hh``). With ``weight_ch = 0`` the cell is exactly :mod:`npseq.cells.lstm`.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`). Derivation: ``docs/variants.md``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, ParamSpec, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class PeepholeLSTMCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    c_prev: np.ndarray  # (B, H)
    i: np.ndarray  # (B, H) input gate
    f: np.ndarray  # (B, H) forget gate
    g: np.ndarray  # (B, H) candidate
    c: np.ndarray  # (B, H) new cell state, which the output gate sees
    o: np.ndarray  # (B, H) output gate
    tc: np.ndarray  # (B, H) act(c)


def lstm_peephole_step_forward(gx: np.ndarray, carry: tuple, p: dict,
                               activation: Activation = TANH,
                               recurrent_activation: Activation = SIGMOID
                               ) -> tuple[tuple, PeepholeLSTMCache]:
    """One peephole LSTM step.

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (i, f, g, o).
    carry : tuple ``(h_prev, c_prev)``, each of shape (B, H)
    p : dict with ``weight_hh (4H, H)``, ``weight_ch (3, H)`` and optionally ``bias_hh (4H,)``
    activation, recurrent_activation : npseq.activations.Activation
        ``act`` (default "tanh") and ``sig`` (default "sigmoid") below.

    Returns
    -------
    carry : tuple ``(h, c)``
    cache : PeepholeLSTMCache

    Notes
    -----
    ``w_ci, w_cf, w_co`` are the rows of ``weight_ch``; ``*`` is the elementwise product::

        a = gx + W_hh h_prev + b_hh          (B, 4H), split into a_i, a_f, a_g, a_o
        i = sig(a_i + w_ci * c_prev)
        f = sig(a_f + w_cf * c_prev)
        g = act(a_g)
        c = f * c_prev + i * g
        o = sig(a_o + w_co * c)
        h = o * act(c)
    """
    act = activation
    sig = recurrent_activation
    h_prev, c_prev = carry
    H = c_prev.shape[-1]
    w_ci, w_cf, w_co = p["weight_ch"]
    a = h_prev @ p["weight_hh"].T  # (B, 4H)
    a += gx
    if "bias_hh" in p:
        a += p["bias_hh"]
    i = sig.fn(a[:, :H] + w_ci * c_prev)
    f = sig.fn(a[:, H:2 * H] + w_cf * c_prev)
    g = act.fn(a[:, 2 * H:3 * H])
    c = f * c_prev + i * g
    o = sig.fn(a[:, 3 * H:] + w_co * c)
    tc = act.fn(c)
    h = o * tc
    return (h, c), PeepholeLSTMCache(h_prev, c_prev, i, f, g, c, o, tc)


def lstm_peephole_step_backward(dcarry: tuple, cache: PeepholeLSTMCache, p: dict,
                                activation: Activation = TANH,
                                recurrent_activation: Activation = SIGMOID) -> StepGrads:
    """Backward of :func:`lstm_peephole_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh, dc)``, each of shape (B, H): gradients of the new carry
    cache : PeepholeLSTMCache
    p : dict with ``weight_hh (4H, H)`` and ``weight_ch (3, H)``
    activation, recurrent_activation : Activation, as in the forward

    Returns
    -------
    StepGrads
        ``dgx = dgh = da`` (B, 4H), ``dcarry_prev = (dh_prev, dc_prev)`` and
        ``dparams = {"weight_ch": (dw_ci, dw_cf, dw_co)}`` (3, H).

    Notes
    -----
    One line a derivative, in reverse order of the forward (``dc`` on the right is the
    gradient arriving from the next step; ``sum_B`` sums over the batch)::

        do = dh * act(c)
        da_o = do * sig'(o)
        dw_co = sum_B da_o * c
        dc = dc + dh * o * act'(act(c)) + da_o * w_co
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        da_g = dg * act'(g)
        da_f = df * sig'(f)
        da_i = di * sig'(i)
        dw_cf = sum_B da_f * c_prev
        dw_ci = sum_B da_i * c_prev
        dc_prev = dc * f + da_f * w_cf + da_i * w_ci
        dh_prev = da W_hh
    """
    act = activation
    sig = recurrent_activation
    dh, dc = dcarry
    i, f, g, c, o, tc, c_prev = cache.i, cache.f, cache.g, cache.c, cache.o, cache.tc, cache.c_prev
    w_ci, w_cf, w_co = p["weight_ch"]
    do = dh * tc
    da_o = do * sig.grad(o)
    dw_co = (da_o * c).sum(axis=0)
    dc = dc + dh * o * act.grad(tc) + da_o * w_co
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    da_g = dg * act.grad(g)
    da_f = df * sig.grad(f)
    da_i = di * sig.grad(i)
    dw_cf = (da_f * c_prev).sum(axis=0)
    dw_ci = (da_i * c_prev).sum(axis=0)
    dc_prev = dc * f + da_f * w_cf + da_i * w_ci
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)  # (B, 4H)
    dh_prev = da @ p["weight_hh"]  # (B, H)
    return StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev, dc_prev),
                     dparams={"weight_ch": np.stack([dw_ci, dw_cf, dw_co])})


LSTM_PEEPHOLE = CellKind("LSTM_PEEPHOLE", 4, 2, lstm_peephole_step_forward,
                         lstm_peephole_step_backward,
                         extra_params=(ParamSpec("weight_ch", (3, "H")),),
                         recurrent_dropout="carry")
