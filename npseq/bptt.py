"""The backpropagation-through-time driver: one cell's step functions run over a sequence.

One driver serves every cell: the cell (a :class:`~npseq.cells.base.CellKind`) supplies
``step_forward``/``step_backward``; the driver owns the loop over time, in either direction,
and the masking of padded steps. The layers in :mod:`npseq.layers` call it once per layer and
direction.

What makes it fast is what stays *out* of the time loop (see ``docs/gradients.md``):

* the input projection ``gx = x W_ih^T + b_ih`` of all T steps is one matrix product before
  the loop (:func:`~npseq.cells.base.input_projection`);
* ``dW_ih``, ``dW_hh`` and the biases are one product each after the backward loop
  (:func:`~npseq.cells.base.param_grads`), and so is ``dx = dgx W_ih``.

Only the recurrent product ``h_prev W_hh^T`` and its backward ``da W_hh`` stay in the loop,
inside the cell's step functions.

Variable lengths use a boolean ``mask`` of shape ``(T, B, 1)``, true where step t of
sequence b is real. At a padded step the carry passes through unchanged and the output is
zero, so a forward sequence ends holding its state at its last valid step, and a reverse
sequence starts from the initial state at its last valid step, as with PyTorch's packed
sequences::

    carry_t = where(mask_t, step(carry_{t-1}), carry_{t-1})
    out_t   = where(mask_t, h_t, 0)
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.cells.base import CellKind, add_grads, input_projection, param_grads


class SequenceRecord(NamedTuple):
    """What :func:`sequence_backward` needs from :func:`sequence_forward`."""

    x: np.ndarray  # (T, B, D) the layer's input
    caches: list  # T step caches, indexed by time
    mask: Optional[np.ndarray]  # (T, B, 1) bool, or None when every step is real
    reverse: bool


def _times(T: int, reverse: bool) -> range:
    """Time indices in the order a direction visits them."""
    return range(T - 1, -1, -1) if reverse else range(T)


def sequence_forward(kind: CellKind, x: np.ndarray, carry0: tuple, p: dict,
                     mask: Optional[np.ndarray] = None, reverse: bool = False,
                     keep: bool = True):
    """Run one direction of one layer over a sequence.

    Parameters
    ----------
    kind : CellKind
    x : ndarray, shape (T, B, D)
    carry0 : tuple of (B, H_out) [and (B, H)] arrays, the initial carry
    p : dict of the layer's parameters without suffix (``weight_ih``, ``weight_hh``, ...)
    mask : bool ndarray, shape (T, B, 1), optional
    reverse : bool
        Visit time steps from last to first.
    keep : bool
        Keep the step caches for a backward pass; with False the record is None.

    Returns
    -------
    out : ndarray, shape (T, B, H_out)
        ``h`` at every step (zero at padded steps).
    carry : tuple
        The carry after the last step visited.
    record : SequenceRecord or None
    """
    T, B = x.shape[:2]
    gx = input_projection(x, p)  # (T, B, G*H): every step's input projection at once
    out = np.empty((T, B, carry0[0].shape[-1]), dtype=gx.dtype)  # (T, B, H_out)
    caches = [None] * T if keep else None
    carry = carry0
    for t in _times(T, reverse):
        new, cache = kind.step_forward(gx[t], carry, p)
        if mask is None:
            carry = new
            out[t] = new[0]
        else:
            carry = tuple(np.where(mask[t], n, c) for n, c in zip(new, carry))
            out[t] = np.where(mask[t], new[0], 0)
        if keep:
            caches[t] = cache
    record = SequenceRecord(x, caches, mask, reverse) if keep else None
    return out, carry, record


def sequence_backward(kind: CellKind, dout: np.ndarray, dcarry_last: tuple,
                      record: SequenceRecord, p: dict, trace: bool = False):
    """Backward of :func:`sequence_forward`.

    Parameters
    ----------
    kind : CellKind
    dout : ndarray, shape (T, B, H_out)
        Gradient of ``out``.
    dcarry_last : tuple
        Gradient of the final carry (``h_n`` [and ``c_n``] of this layer and direction).
    record : SequenceRecord
    p : dict of the layer's parameters
    trace : bool
        Also return the gradient of the loss with respect to the carry at every step.

    Returns
    -------
    dx : ndarray, shape (T, B, D)
    dcarry0 : tuple, the gradient of the initial carry
    grads : dict, the gradient of every key of ``p``
    dcarries : tuple of ndarrays of shapes (T, B, H_out) [and (T, B, H)], only with ``trace``
        ``dcarries[k][t]`` is the total gradient of the carry that step t produced:
        ``dL/dh_t`` after the output gradient of step t joined the gradient coming from the
        step after it (and ``dL/dc_t`` for an LSTM), indexed by time in either direction.
        It is zero at the padded steps of a sequence (a padded step produces no carry).

    Notes
    -----
    Steps are visited in the reverse of the forward order. At each step the output's
    gradient joins the carry's (``dh_t = dout_t + dh`` arriving from the step after), the
    step's backward turns it into ``dgx_t``, ``dgh_t`` and the previous carry's gradient, and
    after the loop the weight gradients are formed in one product each::

        dx    = dgx W_ih
        dW_ih = sum_t dgx_t^T x_t        dW_hh = sum_t dgh_t^T h_prev_t
    """
    x, caches, mask, reverse = record
    T, B = x.shape[:2]
    gh_size = p["weight_hh"].shape[0]  # G*H
    dgx = np.empty((T, B, gh_size), dtype=dout.dtype)  # (T, B, G*H)
    dgh = np.empty((T, B, gh_size), dtype=dout.dtype)  # (T, B, G*H)
    dparams = {}
    dcarry = dcarry_last
    dcarries = tuple(np.empty((T,) + d.shape, dout.dtype) for d in dcarry) if trace else ()
    for t in reversed(_times(T, reverse)):
        if mask is None:
            dcarry = dstep = (dcarry[0] + dout[t],) + dcarry[1:]
            g = kind.step_backward(dcarry, caches[t], p)
            dcarry = g.dcarry_prev
        else:
            dcarry = (dcarry[0] + np.where(mask[t], dout[t], 0),) + dcarry[1:]
            dstep = tuple(np.where(mask[t], d, 0) for d in dcarry)
            g = kind.step_backward(dstep, caches[t], p)
            # a padded step passed its carry through: its gradient passes back unchanged
            dcarry = tuple(np.where(mask[t], dp, d) for dp, d in zip(g.dcarry_prev, dcarry))
        for trace_k, d in zip(dcarries, dstep):
            trace_k[t] = d
        dgx[t] = g.dgx
        dgh[t] = g.dgh
        add_grads(dparams, g.dparams)
    h_prev = np.stack([cache.h_prev for cache in caches])  # (T, B, H_out)
    grads = add_grads(param_grads(x, h_prev, dgx, dgh, p), dparams)
    dx = dgx @ p["weight_ih"]  # (T, B, D)
    if trace:
        return dx, dcarry, grads, dcarries
    return dx, dcarry, grads
