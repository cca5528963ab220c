"""LSTM cell with layer normalisation (Ba, Kiros & Hinton, 2016), and layer norm itself.

Layer normalisation of a vector ``a`` of N features (per row of a batch)::

    LN(a; gamma, beta) = gamma * (a - mean(a)) / sqrt(var(a) + eps) + beta

with learned gain ``gamma`` and bias ``beta`` (N,) and ``eps = 1e-5`` (PyTorch's
``nn.LayerNorm`` default). The cell normalises, as Ba et al. do, the input projection and
the recurrent projection separately, each over all 4H gate pre-activations together, and the
cell state before the output activation; the carried ``c`` is *not* normalised, so the
cell path ``dc_prev = dc * f`` of the LSTM is kept::

    a = LN_ih(W_ih x + b_ih) + LN_hh(W_hh h_prev + b_hh)
    h = o * tanh(LN_c(c))

The parameters are PyTorch's LSTM ones plus ``ln_ih_weight``, ``ln_ih_bias``,
``ln_hh_weight``, ``ln_hh_bias`` (4H,) and ``ln_c_weight``, ``ln_c_bias`` (H,); gains start
at 1 and biases at 0. ``b_ih`` and ``b_hh`` (when ``bias=True``) are part of the projections
and so are added *before* normalisation; with ``bias=False`` the cell is exactly Ba et al.'s,
whose gate bias ``b`` is ``ln_ih_bias + ln_hh_bias`` here.

``LN_ih`` depends on the input only: like the input projection it could be computed for all
time steps before the time loop. It runs inside the step here, to keep the driver's contract
(``step_forward(gx, carry, p)``); it costs O(B * 4H) a step, small beside ``W_hh h_prev``.

Derivation of every backward line: ``docs/variants.md``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, ParamSpec, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]

LN_EPS = 1e-5


class LayerNormCache(NamedTuple):
    a_hat: np.ndarray  # (B, N) the normalised input (a - mean) / std
    rstd: np.ndarray  # (B, 1) 1 / sqrt(var(a) + eps)
    gamma: np.ndarray  # (N,) the gain


def layer_norm_forward(a: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = LN_EPS
                       ) -> tuple[np.ndarray, LayerNormCache]:
    """Layer normalisation over the last axis.

    Parameters
    ----------
    a : ndarray, shape (B, N)
    gamma, beta : ndarray, shape (N,)
    eps : float

    Returns
    -------
    y : ndarray, shape (B, N)
    cache : LayerNormCache

    Notes
    -----
    ::

        mu = mean(a)                          (B, 1), over the N features
        var = mean((a - mu)**2)               (B, 1)
        rstd = 1 / sqrt(var + eps)
        a_hat = (a - mu) * rstd
        y = gamma * a_hat + beta
    """
    mu = a.mean(axis=-1, keepdims=True)  # (B, 1)
    d = a - mu
    var = (d * d).mean(axis=-1, keepdims=True)  # (B, 1)
    rstd = 1.0 / np.sqrt(var + eps)
    a_hat = d * rstd
    return gamma * a_hat + beta, LayerNormCache(a_hat, rstd, gamma)


def layer_norm_backward(dy: np.ndarray, cache: LayerNormCache
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`layer_norm_forward`: returns ``(da, dgamma, dbeta)``.

    Notes
    -----
    The cache keeps ``a_hat`` and ``rstd``; ``mean`` is over the N features, ``sum_B`` over
    the batch::

        dbeta = sum_B dy
        dgamma = sum_B dy * a_hat
        da_hat = dy * gamma
        da = rstd * (da_hat - mean(da_hat) - a_hat * mean(da_hat * a_hat))
    """
    a_hat, rstd, gamma = cache
    dbeta = dy.sum(axis=0)
    dgamma = (dy * a_hat).sum(axis=0)
    da_hat = dy * gamma
    da = rstd * (da_hat - da_hat.mean(axis=-1, keepdims=True)
                 - a_hat * (da_hat * a_hat).mean(axis=-1, keepdims=True))
    return da, dgamma, dbeta


class LayerNormLSTMCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    c_prev: np.ndarray  # (B, H)
    ln_ih: LayerNormCache  # of LN_ih(gx), N = 4H
    ln_hh: LayerNormCache  # of LN_hh(gh), N = 4H
    i: np.ndarray  # (B, H) input gate
    f: np.ndarray  # (B, H) forget gate
    g: np.ndarray  # (B, H) candidate
    o: np.ndarray  # (B, H) output gate
    ln_c: LayerNormCache  # of LN_c(c), N = H
    tc: np.ndarray  # (B, H) act(LN_c(c))


def lstm_layernorm_step_forward(gx: np.ndarray, carry: tuple, p: dict,
                                activation: Activation = TANH,
                                recurrent_activation: Activation = SIGMOID
                                ) -> tuple[tuple, LayerNormLSTMCache]:
    """One layer-normalised LSTM step.

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (i, f, g, o).
    carry : tuple ``(h_prev, c_prev)``, each of shape (B, H)
    p : dict with ``weight_hh (4H, H)``, optionally ``bias_hh (4H,)``, and the gains and
        biases ``ln_ih_weight``, ``ln_ih_bias``, ``ln_hh_weight``, ``ln_hh_bias`` (4H,),
        ``ln_c_weight``, ``ln_c_bias`` (H,)
    activation, recurrent_activation : npseq.activations.Activation
        ``act`` (default "tanh") and ``sig`` (default "sigmoid") below.

    Returns
    -------
    carry : tuple ``(h, c)``
    cache : LayerNormLSTMCache

    Notes
    -----
    ::

        gh = W_hh h_prev + b_hh               (B, 4H)
        a = LN_ih(gx) + LN_hh(gh)             (B, 4H), split into a_i, a_f, a_g, a_o
        i = sig(a_i)
        f = sig(a_f)
        g = act(a_g)
        o = sig(a_o)
        c = f * c_prev + i * g
        h = o * act(LN_c(c))
    """
    act = activation
    sig = recurrent_activation
    h_prev, c_prev = carry
    H = c_prev.shape[-1]
    gh = h_prev @ p["weight_hh"].T  # (B, 4H)
    if "bias_hh" in p:
        gh += p["bias_hh"]
    y_ih, ln_ih = layer_norm_forward(gx, p["ln_ih_weight"], p["ln_ih_bias"])
    y_hh, ln_hh = layer_norm_forward(gh, p["ln_hh_weight"], p["ln_hh_bias"])
    a = y_ih + y_hh  # (B, 4H)
    i = sig.fn(a[:, :H])
    f = sig.fn(a[:, H:2 * H])
    g = act.fn(a[:, 2 * H:3 * H])
    o = sig.fn(a[:, 3 * H:])
    c = f * c_prev + i * g
    y_c, ln_c = layer_norm_forward(c, p["ln_c_weight"], p["ln_c_bias"])
    tc = act.fn(y_c)
    h = o * tc
    return (h, c), LayerNormLSTMCache(h_prev, c_prev, ln_ih, ln_hh, i, f, g, o, ln_c, tc)


def lstm_layernorm_step_backward(dcarry: tuple, cache: LayerNormLSTMCache, p: dict,
                                 activation: Activation = TANH,
                                 recurrent_activation: Activation = SIGMOID) -> StepGrads:
    """Backward of :func:`lstm_layernorm_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh, dc)``, each of shape (B, H): gradients of the new carry
    cache : LayerNormLSTMCache
    p : dict with ``weight_hh (4H, H)``
    activation, recurrent_activation : Activation, as in the forward

    Returns
    -------
    StepGrads
        ``dgx`` and ``dgh`` (B, 4H), the gradients of the two projections before their
        normalisation; ``dcarry_prev = (dh_prev, dc_prev)``; ``dparams`` the gradients of
        the six layer-norm gains and biases.

    Notes
    -----
    One line a derivative, in reverse order of the forward (``dc`` on the right is the
    gradient arriving from the next step; ``LN_backward`` is :func:`layer_norm_backward`)::

        do = dh * act(LN_c(c))
        dy_c = dh * o * act'(act(LN_c(c)))
        dc_ln, dgamma_c, dbeta_c = LN_backward(dy_c)
        dc = dc + dc_ln
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        da = (di * sig'(i), df * sig'(f), dg * act'(g), do * sig'(o))
        dgh, dgamma_hh, dbeta_hh = LN_backward(da)      (of LN_hh)
        dgx, dgamma_ih, dbeta_ih = LN_backward(da)      (of LN_ih)
        dh_prev = dgh W_hh
    """
    act = activation
    sig = recurrent_activation
    dh, dc = dcarry
    i, f, g, o, tc = cache.i, cache.f, cache.g, cache.o, cache.tc
    do = dh * tc
    dy_c = dh * o * act.grad(tc)
    dc_ln, dgamma_c, dbeta_c = layer_norm_backward(dy_c, cache.ln_c)
    dc = dc + dc_ln
    di = dc * g
    df = dc * cache.c_prev
    dg = dc * i
    dc_prev = dc * f
    da = np.concatenate([di * sig.grad(i),
                         df * sig.grad(f),
                         dg * act.grad(g),
                         do * sig.grad(o)], axis=1)  # (B, 4H)
    dgh, dgamma_hh, dbeta_hh = layer_norm_backward(da, cache.ln_hh)
    dgx, dgamma_ih, dbeta_ih = layer_norm_backward(da, cache.ln_ih)
    dh_prev = dgh @ p["weight_hh"]  # (B, H)
    dparams = {"ln_ih_weight": dgamma_ih, "ln_ih_bias": dbeta_ih,
               "ln_hh_weight": dgamma_hh, "ln_hh_bias": dbeta_hh,
               "ln_c_weight": dgamma_c, "ln_c_bias": dbeta_c}
    return StepGrads(dgx=dgx, dgh=dgh, dcarry_prev=(dh_prev, dc_prev), dparams=dparams)


LSTM_LAYERNORM = CellKind(
    "LSTM_LAYERNORM", 4, 2, lstm_layernorm_step_forward, lstm_layernorm_step_backward,
    extra_params=(ParamSpec("ln_ih_weight", ("G*H",), 1.0),
                  ParamSpec("ln_ih_bias", ("G*H",), 0.0),
                  ParamSpec("ln_hh_weight", ("G*H",), 1.0),
                  ParamSpec("ln_hh_bias", ("G*H",), 0.0),
                  ParamSpec("ln_c_weight", ("H",), 1.0),
                  ParamSpec("ln_c_bias", ("H",), 0.0)),
    recurrent_dropout="carry")
