"""GRU cell as PyTorch defines it: gate order (r, z, n), reset gate applied after ``W_hn``.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npseq.activations import ACTIVATIONS
from npseq.cells.base import CellKind, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class GRUCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    r: np.ndarray  # (B, H) reset gate
    z: np.ndarray  # (B, H) update gate
    n: np.ndarray  # (B, H) candidate
    gh_n: np.ndarray  # (B, H) W_hn h_prev + b_hn, which r multiplies


def gru_step_forward(gx, carry, p, activation=TANH, recurrent_activation=SIGMOID):
    """One GRU step.

    Parameters
    ----------
    gx : ndarray, shape (B, 3H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (r, z, n).
    carry : tuple ``(h_prev,)``, h_prev of shape (B, H)
    p : dict with ``weight_hh (3H, H)`` and optionally ``bias_hh (3H,)``
    activation, recurrent_activation : npseq.activations.Activation
        Replace tanh (on n) and sigmoid (on r, z); PyTorch's GRU has the defaults.

    Returns
    -------
    carry : tuple ``(h,)``
    cache : GRUCache

    Notes
    -----
    ::

        gh = W_hh h_prev + b_hh               (B, 3H), split into gh_r, gh_z, gh_n
        r = sigmoid(gx_r + gh_r)
        z = sigmoid(gx_z + gh_z)
        n = tanh(gx_n + r * gh_n)
        h = (1 - z) * n + z * h_prev
    """
    tanh = activation.fn
    sigmoid = recurrent_activation.fn
    (h_prev,) = carry
    H = h_prev.shape[-1]
    gh = h_prev @ p["weight_hh"].T  # (B, 3H)
    if "bias_hh" in p:
        gh += p["bias_hh"]
    r = sigmoid(gx[:, :H] + gh[:, :H])
    z = sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    gh_n = gh[:, 2 * H:]
    n = tanh(gx[:, 2 * H:] + r * gh_n)
    h = (1 - z) * n + z * h_prev
    return (h,), GRUCache(h_prev, r, z, n, gh_n)


def gru_step_backward(dcarry, cache, p, activation=TANH, recurrent_activation=SIGMOID,
                      *, out=None):
    """Backward of :func:`gru_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh,)``, dh of shape (B, H): gradient of the new carry
    cache : GRUCache
    p : dict with ``weight_hh (3H, H)``
    activation, recurrent_activation : Activation, as in the forward
    out : ndarray, shape (B, 3H), optional
        Where to write ``dgx`` (the BPTT driver passes a row of its block of ``dgx``).

    Returns
    -------
    StepGrads
        ``dgx = (da_r, da_z, da_n)`` and ``dgh = (da_r, da_z, da_n * r)``, each (B, 3H),
        and ``dcarry_prev = (dh_prev,)``.

    Notes
    -----
    One line a derivative, in reverse order of the forward (``a_n = gx_n + r * gh_n``)::

        dn = dh * (1 - z)
        dz = dh * (h_prev - n)
        dh_prev = dh * z                      (direct path; the gates add dgh W_hh below)
        da_n = dn * (1 - n**2)
        dr = da_n * gh_n
        da_z = dz * z * (1 - z)
        da_r = dr * r * (1 - r)
        dgh_n = da_n * r                      dgh = (da_r, da_z, dgh_n)
        dh_prev = dh_prev + dgh W_hh
    """
    tanh_grad = activation.grad
    sigmoid_grad = recurrent_activation.grad
    (dh,) = dcarry
    r, z, n, gh_n = cache.r, cache.z, cache.n, cache.gh_n
    H = r.shape[-1]
    dgx = np.empty((dh.shape[0], 3 * H), np.result_type(dh, n)) if out is None else out
    da_r, da_z, da_n = dgx[:, :H], dgx[:, H:2 * H], dgx[:, 2 * H:]  # views: (B, H) each
    dn = dh * (1 - z)
    dz = dh * (cache.h_prev - n)
    dh_prev = dh * z
    np.multiply(dn, tanh_grad(n), out=da_n)
    dr = da_n * gh_n
    np.multiply(dz, sigmoid_grad(z), out=da_z)
    np.multiply(dr, sigmoid_grad(r), out=da_r)
    dgh = dgx.copy()  # (B, 3H), then its n block becomes dgh_n
    np.multiply(da_n, r, out=dgh[:, 2 * H:])  # dgh_n
    dh_prev += dgh @ p["weight_hh"]
    return StepGrads(dgx=dgx, dgh=dgh, dcarry_prev=(dh_prev,), dparams={})


GRU = CellKind("GRU", 3, 1, gru_step_forward, gru_step_backward)
