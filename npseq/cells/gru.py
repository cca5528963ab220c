"""GRU cell as PyTorch defines it: gate order (r, z, n), reset gate applied after ``W_hn``.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells import gru_fused
from npseq.cells.base import CellKind, FusedPath, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class GRUCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) h_prev as it enters W_hh: m * h_prev with recurrent dropout
    r: np.ndarray  # (B, H) reset gate, sigma(a_r)
    z: np.ndarray  # (B, H) update gate, sigma(a_z)
    n: np.ndarray  # (B, H) candidate, phi(a_n)
    gh_n: np.ndarray  # (B, H) W_hn h_prev + b_hn, which r multiplies
    h_carry: Optional[np.ndarray] = None  # (B, H) the unmasked carry, as it enters z * h_prev;
    # None without recurrent dropout (then it is h_prev)
    mask: Optional[np.ndarray] = None  # (B, H) recurrent dropout's mask m, or None


def gru_step_forward(gx: np.ndarray, carry: tuple, p: dict, activation: Activation = TANH,
                     recurrent_activation: Activation = SIGMOID, *,
                     recurrent_mask: Optional[np.ndarray] = None) -> tuple[tuple, GRUCache]:
    """One GRU step.

    Parameters
    ----------
    gx : ndarray, shape (B, 3H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (r, z, n).
    carry : tuple ``(h_prev,)``, h_prev of shape (B, H)
    p : dict with ``weight_hh (3H, H)`` and optionally ``bias_hh (3H,)``
    activation, recurrent_activation : npseq.activations.Activation
        ``phi`` (tanh by default, on n) and ``sigma`` (the sigmoid by default, on r, z);
        PyTorch's GRU has the defaults.
    recurrent_mask : ndarray, shape (B, H), optional, keyword only
        Recurrent dropout's mask ``m`` (0 or 1/(1-q)): the carry enters the recurrent
        product as ``m * h_prev`` and the update ``z * h_prev`` unmasked (Keras's GRU).

    Returns
    -------
    carry : tuple ``(h,)``
    cache : GRUCache

    Notes
    -----
    With ``sigma = recurrent_activation`` and ``phi = activation``::

        h_rec = m * h_prev                    with recurrent dropout; else h_rec = h_prev
        gh = W_hh h_rec + b_hh                (B, 3H), split into gh_r, gh_z, gh_n
        a_r = gx_r + gh_r ;  r = sigma(a_r)
        a_z = gx_z + gh_z ;  z = sigma(a_z)
        a_n = gx_n + r * gh_n ;  n = phi(a_n)
        h = (1 - z) * n + z * h_prev          the carry itself, not h_rec
    """
    sigma, phi = recurrent_activation, activation
    (h_prev,) = carry
    H = h_prev.shape[-1]
    h_rec = h_prev if recurrent_mask is None else recurrent_mask * h_prev  # (B, H)
    gh = h_rec @ p["weight_hh"].T  # (B, 3H)
    if "bias_hh" in p:
        gh += p["bias_hh"]
    r = sigma.fn(gx[:, :H] + gh[:, :H])
    z = sigma.fn(gx[:, H:2 * H] + gh[:, H:2 * H])
    gh_n = gh[:, 2 * H:]
    n = phi.fn(gx[:, 2 * H:] + r * gh_n)
    h = (1 - z) * n + z * h_prev
    if recurrent_mask is None:
        return (h,), GRUCache(h_prev, r, z, n, gh_n)
    return (h,), GRUCache(h_rec, r, z, n, gh_n, h_prev, recurrent_mask)


def gru_step_backward(dcarry: tuple, cache: GRUCache, p: dict, activation: Activation = TANH,
                      recurrent_activation: Activation = SIGMOID, *,
                      out: Optional[np.ndarray] = None) -> StepGrads:
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
    One line a derivative, in reverse order of the forward; ``sigma'`` and ``phi'`` are
    written from the outputs (``s (1 - s)`` and ``1 - t**2`` for the defaults)::

        dn = dh * (1 - z)
        dz = dh * (h_prev - n)                h_prev: the unmasked carry
        dh_prev = dh * z                      the direct path; the gates add dgh W_hh below
        da_n = dn * phi'(n)
        dr = da_n * gh_n
        da_z = dz * sigma'(z)
        da_r = dr * sigma'(r)
        dgx = [da_r, da_z, da_n]              gx_n enters a_n as it is
        dgh = [da_r, da_z, da_n * r]          gh_n enters a_n times r
        dh_prev = dh_prev + dgh W_hh          without recurrent dropout
        dh_prev = dh_prev + m * (dgh W_hh)    with it: the product saw m * h_prev
    """
    sigma, phi = recurrent_activation, activation
    (dh,) = dcarry
    r, z, n, gh_n = cache.r, cache.z, cache.n, cache.gh_n
    dn = dh * (1 - z)
    h_prev = cache.h_prev if cache.mask is None else cache.h_carry  # the unmasked carry
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    da_n = dn * phi.grad(n)
    dr = da_n * gh_n
    da_z = dz * sigma.grad(z)
    da_r = dr * sigma.grad(r)
    dgx = np.concatenate([da_r, da_z, da_n], axis=1, out=out)  # (B, 3H)
    dgh = np.concatenate([da_r, da_z, da_n * r], axis=1)  # (B, 3H)
    if cache.mask is None:
        dh_prev += dgh @ p["weight_hh"]
    else:
        dh_prev += cache.mask * (dgh @ p["weight_hh"])
    return StepGrads(dgx=dgx, dgh=dgh, dcarry_prev=(dh_prev,), dparams={})


GRU = CellKind("GRU", 3, 1, gru_step_forward, gru_step_backward, recurrent_dropout="step",
               fused=FusedPath(gru_step_forward, gru_step_backward, gru_fused.applies,
                               gru_fused.gru_fused_forward, gru_fused.gru_fused_backward))
