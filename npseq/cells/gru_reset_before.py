"""GRU cell in its original formulation (Cho et al., 2014): reset gate before ``W_hn``.

PyTorch's GRU (:mod:`npseq.cells.gru`, Keras's ``reset_after=True``) resets the product:
``n = tanh(gx_n + r * (W_hn h_prev + b_hn))``. The original cell resets the state before the
product: ``n = tanh(gx_n + W_hn (r * h_prev) + b_hn)`` (Keras's ``reset_after=False``).
Parameters keep PyTorch's names, shapes and gate order (r, z, n).

Only the rows of ``W_hh`` for r and z multiply ``h_prev``; the rows for n multiply
``r * h_prev``, which differs at every step. So the step returns ``dgh`` with a zero n
block, and the gradient of the n rows of ``weight_hh`` (and of ``bias_hh``) in ``dparams``,
which the driver adds to the weight gradients it forms from ``dgh`` after the loop.

Forward and backward of the recurrence, given the input projection
``gx = W_ih x + b_ih`` (see :mod:`npseq.cells.base`). Derivation: ``docs/variants.md``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.activations import ACTIVATIONS, Activation
from npseq.cells.base import CellKind, StepGrads

TANH, SIGMOID = ACTIVATIONS["tanh"], ACTIVATIONS["sigmoid"]


class ResetBeforeGRUCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) h_prev as it enters W_hh: m * h_prev with recurrent dropout
    r: np.ndarray  # (B, H) reset gate
    z: np.ndarray  # (B, H) update gate
    rh: np.ndarray  # (B, H) r * h_prev (masked as above), the input of W_hn
    n: np.ndarray  # (B, H) candidate
    h_carry: Optional[np.ndarray] = None  # (B, H) the unmasked carry, as it enters z * h_prev;
    # None without recurrent dropout (then it is h_prev)
    mask: Optional[np.ndarray] = None  # (B, H) recurrent dropout's mask m, or None


def gru_reset_before_step_forward(gx: np.ndarray, carry: tuple, p: dict,
                                  activation: Activation = TANH,
                                  recurrent_activation: Activation = SIGMOID, *,
                                  recurrent_mask: Optional[np.ndarray] = None
                                  ) -> tuple[tuple, ResetBeforeGRUCache]:
    """One step of the GRU with the reset gate before the hidden product.

    Parameters
    ----------
    gx : ndarray, shape (B, 3H)
        Input projection ``W_ih x + b_ih``, gate blocks in the order (r, z, n).
    carry : tuple ``(h_prev,)``, h_prev of shape (B, H)
    p : dict with ``weight_hh (3H, H)`` and optionally ``bias_hh (3H,)``
    activation, recurrent_activation : npseq.activations.Activation
        ``act`` (default "tanh") and ``sig`` (default "sigmoid") below.
    recurrent_mask : ndarray, shape (B, H), optional, keyword only
        Recurrent dropout's mask ``m``: every recurrent product reads ``h_rec = m * h_prev``
        and the update ``z * h_prev`` the carry itself (Keras's ``reset_after=False``).

    Returns
    -------
    carry : tuple ``(h,)``
    cache : ResetBeforeGRUCache

    Notes
    -----
    ``W_hr, W_hz, W_hn`` are the row blocks of ``weight_hh``, ``b_hr, b_hz, b_hn`` of
    ``bias_hh``::

        h_rec = m * h_prev                    with recurrent dropout; else h_rec = h_prev
        r = sig(gx_r + W_hr h_rec + b_hr)
        z = sig(gx_z + W_hz h_rec + b_hz)
        rh = r * h_rec
        n = act(gx_n + W_hn rh + b_hn)
        h = (1 - z) * n + z * h_prev          the carry itself, not h_rec
    """
    act = activation
    sig = recurrent_activation
    (h_prev,) = carry
    H = h_prev.shape[-1]
    W_hh = p["weight_hh"]
    h_rec = h_prev if recurrent_mask is None else recurrent_mask * h_prev  # (B, H)
    a = h_rec @ W_hh[:2 * H].T  # (B, 2H): the r and z blocks
    a += gx[:, :2 * H]
    if "bias_hh" in p:
        a += p["bias_hh"][:2 * H]
    r = sig.fn(a[:, :H])
    z = sig.fn(a[:, H:])
    rh = r * h_rec
    a_n = rh @ W_hh[2 * H:].T  # (B, H)
    a_n += gx[:, 2 * H:]
    if "bias_hh" in p:
        a_n += p["bias_hh"][2 * H:]
    n = act.fn(a_n)
    h = (1 - z) * n + z * h_prev
    if recurrent_mask is None:
        return (h,), ResetBeforeGRUCache(h_prev, r, z, rh, n)
    return (h,), ResetBeforeGRUCache(h_rec, r, z, rh, n, h_prev, recurrent_mask)


def gru_reset_before_step_backward(dcarry: tuple, cache: ResetBeforeGRUCache, p: dict,
                                   activation: Activation = TANH,
                                   recurrent_activation: Activation = SIGMOID) -> StepGrads:
    """Backward of :func:`gru_reset_before_step_forward`.

    Parameters
    ----------
    dcarry : tuple ``(dh,)``, dh of shape (B, H): gradient of the new carry
    cache : ResetBeforeGRUCache
    p : dict with ``weight_hh (3H, H)`` and optionally ``bias_hh (3H,)``
    activation, recurrent_activation : Activation, as in the forward

    Returns
    -------
    StepGrads
        ``dgx = (da_r, da_z, da_n)``, ``dgh = (da_r, da_z, 0)`` (B, 3H),
        ``dcarry_prev = (dh_prev,)`` and ``dparams`` with the n rows of ``weight_hh`` and
        ``bias_hh`` (zero in the r and z rows, which the driver forms from ``dgh``).

    Notes
    -----
    One line a derivative, in reverse order of the forward (``sum_B`` sums over the batch)::

        dn = dh * (1 - z)
        dz = dh * (h_prev - n)                h_prev: the unmasked carry
        dh_prev = dh * z                      (direct path)
        da_n = dn * act'(n)
        dW_hn = da_n^T rh ;  db_hn = sum_B da_n
        drh = da_n W_hn
        dr = drh * h_rec
        dh_rec = drh * r
        da_z = dz * sig'(z)
        da_r = dr * sig'(r)
        dh_rec = dh_rec + da_r W_hr + da_z W_hz
        dh_prev = dh_prev + dh_rec            without recurrent dropout
        dh_prev = dh_prev + m * dh_rec        with it
    """
    act = activation
    sig = recurrent_activation
    (dh,) = dcarry
    r, z, rh, n, h_rec = cache.r, cache.z, cache.rh, cache.n, cache.h_prev
    h_prev = h_rec if cache.h_carry is None else cache.h_carry  # the unmasked carry
    H = h_prev.shape[-1]
    W_hh = p["weight_hh"]
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    da_n = dn * act.grad(n)
    dparams = {"weight_hh": np.zeros_like(W_hh)}
    dparams["weight_hh"][2 * H:] = da_n.T @ rh  # (H, H), dW_hn
    if "bias_hh" in p:
        dparams["bias_hh"] = np.zeros_like(p["bias_hh"])
        dparams["bias_hh"][2 * H:] = da_n.sum(axis=0)  # db_hn
    drh = da_n @ W_hh[2 * H:]  # (B, H)
    dr = drh * h_rec
    dh_rec = drh * r
    da_z = dz * sig.grad(z)
    da_r = dr * sig.grad(r)
    da_rz = np.concatenate([da_r, da_z], axis=1)  # (B, 2H)
    dh_rec += da_rz @ W_hh[:2 * H]
    if cache.mask is None:
        dh_prev += dh_rec
    else:
        dh_prev += cache.mask * dh_rec
    dgx = np.concatenate([da_rz, da_n], axis=1)  # (B, 3H)
    dgh = np.concatenate([da_rz, np.zeros_like(da_n)], axis=1)  # (B, 3H)
    return StepGrads(dgx=dgx, dgh=dgh, dcarry_prev=(dh_prev,), dparams=dparams)


GRU_RESET_BEFORE = CellKind("GRU_RESET_BEFORE", 3, 1, gru_reset_before_step_forward,
                            gru_reset_before_step_backward, recurrent_dropout="step")
