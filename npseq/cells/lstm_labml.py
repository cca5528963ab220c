"""The LayerNorm LSTM cell of the labml annotated implementation (``labml_nn/lstm``).

Its placement of layer normalisation differs from Ba et al.'s (:mod:`.lstm_layernorm`): the
two projections are *added first*, then each of the four gate pre-activations gets a
LayerNorm of its own over its H features; ``c`` is normalised only on its way to ``h``::

    ifgo = W_hh h_prev + b_hh + W_ih x                      (B, 4H), split into a_i, a_f, a_g, a_o
    c = sig(LN_f(a_f)) * c_prev + sig(LN_i(a_i)) * act(LN_g(a_g))
    h = sig(LN_o(a_o)) * act(LN_c(c))

labml's input projection has no bias; npseq keeps PyTorch's two biases ``bias_ih`` and
``bias_hh``, which enter only through their sum ``b_ih + b_hh`` (labml's ``b_hh``), so the
functions computed are the same and their gradients are equal (a free test). The LayerNorm
gains and biases are ``ln_i_weight``, ``ln_i_bias``, ``ln_f_*``, ``ln_g_*``, ``ln_o_*`` and
``ln_c_*``, each (H,), gains starting at 1 and biases at 0 (as ``torch.nn.LayerNorm``,
``eps = 1e-5``). Derivation: ``docs/variants.md``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, ParamSpec, StepGrads
from npseq.cells.lstm_layernorm import LayerNormCache, layer_norm_backward, layer_norm_forward

__all__ = ["LabmlLSTMCache", "lstm_labml_step_forward", "lstm_labml_step_backward",
           "GATE_NORMS", "LSTM_LAYERNORM_LABML"]

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]

#: The gate LayerNorms in gate order: parameters ``ln_{k}_weight``, ``ln_{k}_bias``.
GATE_NORMS = ("i", "f", "g", "o")


class LabmlLSTMCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    c_prev: np.ndarray  # (B, H)
    ln_ifgo: LayerNormCache  # of the four gate LayerNorms at once, rows (B, 4, H)
    i: np.ndarray  # (B, H) input gate sig(LN_i(a_i))
    f: np.ndarray  # (B, H) forget gate
    g: np.ndarray  # (B, H) candidate act(LN_g(a_g))
    o: np.ndarray  # (B, H) output gate
    ln_c: LayerNormCache  # of LN_c(c)
    tc: np.ndarray  # (B, H) act(LN_c(c))


def _gate_affine(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """The four gate LayerNorms' gains and biases stacked in gate order: two (4, H) arrays."""
    return (np.stack([p[f"ln_{k}_weight"] for k in GATE_NORMS]),
            np.stack([p[f"ln_{k}_bias"] for k in GATE_NORMS]))


def lstm_labml_step_forward(gx: np.ndarray, carry: tuple, p: dict,
                            activation: Activation = TANH,
                            recurrent_activation: Activation = SIGMOID
                            ) -> tuple[tuple, LabmlLSTMCache]:
    """One step of labml's LayerNorm LSTM.

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (i, f, g, o).
    carry : tuple ``(h_prev, c_prev)``, each of shape (B, H)
    p : dict with ``weight_hh (4H, H)``, optionally ``bias_hh (4H,)``, and ``ln_i_weight``,
        ``ln_i_bias``, ..., ``ln_o_bias``, ``ln_c_weight``, ``ln_c_bias`` (H,)
    activation, recurrent_activation : npseq.activations.Activation
        ``act`` (default tanh) and ``sig`` (default sigmoid) below.

    Returns
    -------
    carry : tuple ``(h, c)``
    cache : LabmlLSTMCache

    Notes
    -----
    ::

        a = gx + W_hh h_prev + b_hh            (B, 4H) = labml's ifgo, split a_i, a_f, a_g, a_o
        n_k = LN_k(a_k)                        k in (i, f, g, o): one LayerNorm each, over H
        i = sig(n_i)
        f = sig(n_f)
        g = act(n_g)
        o = sig(n_o)
        c = f * c_prev + i * g
        h = o * act(LN_c(c))
    """
    act, sig = activation, recurrent_activation
    h_prev, c_prev = carry
    B, H = c_prev.shape
    a = gx + h_prev @ p["weight_hh"].T  # (B, 4H)
    if "bias_hh" in p:
        a += p["bias_hh"]
    gamma, beta = _gate_affine(p)  # (4, H) each
    n, ln_ifgo = layer_norm_forward(a.reshape(B, 4, H), gamma, beta)  # (B, 4, H)
    i = sig.fn(n[:, 0])
    f = sig.fn(n[:, 1])
    g = act.fn(n[:, 2])
    o = sig.fn(n[:, 3])
    c = f * c_prev + i * g
    y_c, ln_c = layer_norm_forward(c, p["ln_c_weight"], p["ln_c_bias"])
    tc = act.fn(y_c)
    h = o * tc
    return (h, c), LabmlLSTMCache(h_prev, c_prev, ln_ifgo, i, f, g, o, ln_c, tc)


def lstm_labml_step_backward(dcarry: tuple, cache: LabmlLSTMCache, p: dict,
                             activation: Activation = TANH,
                             recurrent_activation: Activation = SIGMOID) -> StepGrads:
    """Backward of :func:`lstm_labml_step_forward`.

    Returns
    -------
    StepGrads
        ``dgx = dgh = da`` (B, 4H), the gradient of the summed projections (the same
        array: ``a`` is their sum); ``dcarry_prev = (dh_prev, dc_prev)``; ``dparams`` the
        gradients of the ten LayerNorm gains and biases.

    Notes
    -----
    One line a derivative, in reverse order of the forward (``dc`` on the right arrives from
    the next step; ``LN_backward`` is :func:`~npseq.cells.lstm_layernorm.layer_norm_backward`,
    run on the four gates at once, rows (B, 4, H))::

        do = dh * act(LN_c(c))
        dy_c = dh * o * act'(act(LN_c(c)))
        dc_ln, dgamma_c, dbeta_c = LN_backward(dy_c)
        dc = dc + dc_ln
        di = dc * g
        df = dc * c_prev
        dg = dc * i
        dc_prev = dc * f
        dn = (di * sig'(i), df * sig'(f), dg * act'(g), do * sig'(o))      (B, 4, H)
        da, dgamma_ifgo, dbeta_ifgo = LN_backward(dn)                      (the four LN_k)
        dgx = dgh = da
        dh_prev = da W_hh
    """
    act, sig = activation, recurrent_activation
    dh, dc = dcarry
    i, f, g, o, tc = cache.i, cache.f, cache.g, cache.o, cache.tc
    B, H = dh.shape
    do = dh * tc
    dy_c = dh * o * act.grad(tc)
    dc_ln, dgamma_c, dbeta_c = layer_norm_backward(dy_c, cache.ln_c)
    dc = dc + dc_ln
    di = dc * g
    df = dc * cache.c_prev
    dg = dc * i
    dc_prev = dc * f
    dn = np.stack([di * sig.grad(i), df * sig.grad(f), dg * act.grad(g), do * sig.grad(o)],
                  axis=1)  # (B, 4, H)
    da, dgamma, dbeta = layer_norm_backward(dn, cache.ln_ifgo)  # (B, 4, H), (4, H), (4, H)
    da = da.reshape(B, 4 * H)
    dh_prev = da @ p["weight_hh"]  # (B, H)
    dparams = {"ln_c_weight": dgamma_c, "ln_c_bias": dbeta_c}
    for j, k in enumerate(GATE_NORMS):
        dparams[f"ln_{k}_weight"] = dgamma[j]
        dparams[f"ln_{k}_bias"] = dbeta[j]
    return StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev, dc_prev), dparams=dparams)


LSTM_LAYERNORM_LABML = CellKind(
    "LSTM_LAYERNORM_LABML", 4, 2, lstm_labml_step_forward, lstm_labml_step_backward,
    extra_params=tuple(ParamSpec(f"ln_{k}_{w}", ("H",), 1.0 if w == "weight" else 0.0)
                       for k in GATE_NORMS + ("c",) for w in ("weight", "bias")),
    recurrent_dropout="carry")  # h_prev enters only W_hh h_prev: the driver masks the carry
