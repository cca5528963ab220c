"""The backpropagation-through-time driver: one cell's step functions run over a sequence.

One driver serves every cell: the cell (a :class:`~npseq.cells.base.CellKind`) supplies
``step_forward``/``step_backward``; the driver owns the loop over time, in either direction,
and the masking of padded steps. The layers in :mod:`npseq.layers` call it once per layer and
direction.

What makes it fast is what stays *out* of the time loop (see ``docs/gradients.md`` and
``docs/speed.md``):

* the input projection ``gx = x W_ih^T + b_ih`` is one matrix product per *block* of steps
  (:func:`~npseq.cells.base.input_projection`), not one per step;
* ``dW_ih``, ``dW_hh``, the biases and ``dx = dgx W_ih`` are one product each per block
  (:func:`~npseq.cells.base.param_grads`), summed over the blocks.

Only the recurrent product ``h_prev W_hh^T`` and its backward ``da W_hh`` stay in the loop,
inside the cell's step functions.

A block is ``block_steps(B)`` consecutive steps in the order the direction visits them
(about 512 rows of ``(T*B, .)``). The blocks are the same in every pass and do not depend
on ``checkpoint_every``, which is what makes a checkpointed backward give gradients
*exactly* equal to the plain step loop's: the same products over the same rows, summed in the same
order. Per block the forward keeps only that block's ``gx`` and the backward only that
block's ``dgx``, so neither holds a ``(T, B, G*H)`` array.

A kind may have a *fused path* (``CellKind.fused``: the plain LSTM and GRU,
:mod:`npseq.cells.lstm_fused` and :mod:`npseq.cells.gru_fused`): the same equations for the
whole sequence in fewer NumPy calls a step. :func:`sequence_forward` takes it when the call
has no ``zoneout``, ``recurrent_mask``, ``checkpoint_every`` or ``capture`` and
``FUSED`` is true; the record then holds the fused path's state and
:func:`sequence_backward` hands it back to the fused backward. It equals the step loop to
rounding, not to the bit.

Gradient checkpointing (``checkpoint_every=k``) keeps no step caches in the forward, only the
carry before every k-th step (in visit order). The backward recomputes the k steps of a
segment from its carry, with the same step function, when it first needs one of their
caches; so it holds the caches of one segment at a time, at the price of a second forward.

Variable lengths use a boolean ``mask`` of shape ``(T, B, 1)``, true where step t of
sequence b is real. At a padded step the carry passes through unchanged and the output is
zero, so a forward sequence ends holding its state at its last valid step, and a reverse
sequence starts from the initial state at its last valid step, as with PyTorch's packed
sequences::

    carry_t = where(mask_t, step(carry_{t-1}), carry_{t-1})
    out_t   = where(mask_t, h_t, 0)

Zoneout (``zoneout=``, per state a weight ``z``: a 0/1 mask in training, the keep
probability in evaluation) mixes the step's result with the previous carry before the
masking above, and its backward splits the gradient between the two paths (see
``docs/regularisation.md``)::

    carry_t = z_t * carry_{t-1} + (1 - z_t) * step(carry_{t-1})

Recurrent dropout (``recurrent_mask=m``, one ``(B, H_out)`` mask for the whole sequence)
changes only what the step's recurrent product reads: for a kind with
``recurrent_dropout="carry"`` the step gets ``(m * h_{t-1}, c_{t-1})`` and its ``dh_prev``
is multiplied by ``m`` on the way back; a ``"step"`` kind gets ``recurrent_mask=m`` and
applies it itself. Zoneout's kept path and the padded steps see the unmasked carry::

    carry_t = z_t * carry_{t-1} + (1 - z_t) * step((m * h_{t-1}, c_{t-1}))
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np

from npseq.cells.base import (CellKind, add_grads, block_steps, input_projection,
                              masked_dcarry_prev, masked_step_forward, param_grads)
from npseq.cells.fused import block_slice, visit_times

#: Run a kind's fused path (``CellKind.fused``) where it applies. False: every kind runs
#: step by step (the reference; checkpointing always does).
FUSED = True


class SequenceRecord(NamedTuple):
    """What :func:`sequence_backward` needs from :func:`sequence_forward`."""

    x: np.ndarray  # (T, B, D) the layer's input
    caches: Optional[list]  # T step caches, indexed by time; None with checkpointing
    mask: Optional[np.ndarray]  # (T, B, 1) bool, or None when every step is real
    reverse: bool
    checkpoints: Optional[dict] = None  # time of a segment's first step -> carry before it
    checkpoint_every: Optional[int] = None  # k, steps per segment
    zoneout: Optional[tuple] = None  # per state: None, a weight z, or (T, B, .) 0/1 masks
    recurrent_mask: Optional[np.ndarray] = None  # (B, H_out) recurrent dropout's mask m
    fused: Any = None  # the state of the kind's fused path, when the forward took it


def _forward_layout(p: dict) -> dict:
    """``p`` with the weights that multiply from the right stored column-major (same values).

    The forward products are ``x W_ih^T``, ``h_prev W_hh^T`` and ``m W_hr^T``; with ``W``
    column-major, ``W^T`` is row-major and BLAS runs them faster (2x for small H). Every
    forward pass, including a checkpoint's recomputation, reads the weights this way.
    """
    return {k: np.asfortranarray(v) if k in ("weight_ih", "weight_hh", "weight_hr") else v
            for k, v in p.items()}


class _Projections:
    """``gx[t]`` for any t, computed one block at a time and kept for the two latest blocks.

    Every pass (forward, checkpoint recomputation) reads ``gx`` through this, so a step sees
    bit-for-bit the same projection whichever pass runs it.
    """

    def __init__(self, x, p, reverse):
        self.x, self.p, self.reverse = x, p, reverse
        self.T, self.S = x.shape[0], block_steps(x.shape[1])
        self.blocks = {}  # block index -> (start, gx of the block (steps, B, G*H))

    def __getitem__(self, t):
        j = (self.T - 1 - t if self.reverse else t) // self.S
        if j not in self.blocks:
            if len(self.blocks) == 2:
                del self.blocks[next(iter(self.blocks))]  # the older one
            sl = block_slice(j, self.T, self.S, self.reverse)
            self.blocks[j] = (sl.start, input_projection(self.x[sl], self.p))
        start, gx = self.blocks[j]
        return gx[t - start]


def _zone_weight(z, t):
    """Zoneout's weight of the previous carry at step t: None, a number, or ``z[t]``."""
    return z if z is None or np.isscalar(z) else z[t]


def _run_steps(kind, gx, times, carry, p, mask, out=None, caches=None, zoneout=None,
               recurrent_mask=None):
    """Forward over ``times`` from ``carry``: the one time loop of every forward pass.

    Writes ``out[t]`` (if ``out`` is given) and ``caches[t]`` (if ``caches`` is given);
    returns the carry after the last step.
    """
    for t in times:
        new, cache = masked_step_forward(kind, gx[t], carry, p, recurrent_mask)
        if zoneout is not None:  # keep the previous value with weight z, per state
            zs = (_zone_weight(z, t) for z in zoneout)
            new = tuple(n if z is None else z * c + (1 - z) * n
                        for n, c, z in zip(new, carry, zs))
        if mask is None:
            carry = new
            if out is not None:
                out[t] = new[0]
        else:
            carry = tuple(np.where(mask[t], n, c) for n, c in zip(new, carry))
            if out is not None:
                out[t] = np.where(mask[t], new[0], 0)
        if caches is not None:
            caches[t] = cache
    return carry


def sequence_forward(kind: CellKind, x: np.ndarray, carry0: tuple, p: dict,
                     mask: Optional[np.ndarray] = None, reverse: bool = False,
                     keep: bool = True, checkpoint_every: Optional[int] = None,
                     capture: Optional[list] = None, zoneout: Optional[tuple] = None,
                     recurrent_mask: Optional[np.ndarray] = None
                     ) -> tuple[np.ndarray, tuple, Optional[SequenceRecord]]:
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
        Keep what a backward pass needs; with False the record is None and no step cache
        outlives its step.
    checkpoint_every : int, optional
        Keep no step caches, only the carry before every k-th step visited; the backward
        recomputes the steps in between. Gradients are exactly those of the plain step
        path.
    capture : list of length T, optional
        Filled with the step caches, indexed by time (the gate activations a study tool
        reads), whatever ``keep`` and ``checkpoint_every``.
    zoneout : tuple, optional
        One entry per state: None, a number z, or an array (T, B, .) of 0/1 keep masks.
        The carry after step t is ``z * carry_{t-1} + (1 - z) * step(carry_{t-1})``
        (Krueger et al. 2017): a mask in training, the keep probability in evaluation.
    recurrent_mask : ndarray, shape (B, H_out), optional
        Recurrent dropout's mask ``m`` (0 or 1/(1-q)), the same at every step: the
        recurrent product reads ``m * h_prev`` (Gal & Ghahramani 2016). The kind must have
        ``recurrent_dropout`` set (:class:`~npseq.cells.base.CellKind`).

    Returns
    -------
    out : ndarray, shape (T, B, H_out)
        ``h`` at every step (zero at padded steps).
    carry : tuple
        The carry after the last step visited.
    record : SequenceRecord or None
    """
    fused = kind.fused
    if (FUSED and fused is not None and kind.step_forward is fused.step_forward
            and kind.step_backward is fused.step_backward and zoneout is None
            and recurrent_mask is None and checkpoint_every is None and capture is None
            and fused.applies(p)):
        out, carry, state = fused.forward(x, carry0, p, reverse, keep, mask)
        return out, carry, (SequenceRecord(x, None, mask, reverse, fused=state) if keep
                            else None)
    T, B = x.shape[:2]
    p = _forward_layout(p)
    gx = _Projections(x, p, reverse)
    out = np.empty((T, B, carry0[0].shape[-1]), dtype=x.dtype)  # (T, B, H_out)
    times = visit_times(0, T, reverse)
    if recurrent_mask is not None and kind.recurrent_dropout is None:
        raise ValueError(f"recurrent_mask: {kind.name} does not take recurrent dropout "
                         f"(its CellKind.recurrent_dropout is None), got a mask")
    rm = recurrent_mask
    if not keep:
        return out, _run_steps(kind, gx, times, carry0, p, mask, out, capture, zoneout,
                               rm), None
    if checkpoint_every is None:
        caches = [None] * T
        carry = _run_steps(kind, gx, times, carry0, p, mask, out, caches, zoneout, rm)
        if capture is not None:
            capture[:] = caches
        return out, carry, SequenceRecord(x, caches, mask, reverse, zoneout=zoneout,
                                          recurrent_mask=rm)
    checkpoints, carry = {}, carry0
    for s in range(0, T, checkpoint_every):
        segment = times[s:s + checkpoint_every]
        checkpoints[segment[0]] = carry
        carry = _run_steps(kind, gx, segment, carry, p, mask, out, capture, zoneout, rm)
    return out, carry, SequenceRecord(x, None, mask, reverse, checkpoints, checkpoint_every,
                                      zoneout, rm)


class _Recomputed:
    """The step caches of a checkpointed record, one segment at a time, recomputed on demand."""

    def __init__(self, kind, record, p):
        p = _forward_layout(p)
        self.kind, self.record, self.p = kind, record, p
        self.gx = _Projections(record.x, p, record.reverse)
        self.times = visit_times(0, record.x.shape[0], record.reverse)
        self.caches = {}

    def __getitem__(self, t):
        if t not in self.caches:
            k = self.record.checkpoint_every
            s = self.times.index(t) // k * k  # visit position of the segment's first step
            segment = self.times[s:s + k]
            self.caches = {}  # drop the segment before: the backward is done with it
            _run_steps(self.kind, self.gx, segment, self.record.checkpoints[segment[0]],
                       self.p, self.record.mask, caches=self.caches,
                       zoneout=self.record.zoneout,
                       recurrent_mask=self.record.recurrent_mask)
        return self.caches[t]


def sequence_backward(kind: CellKind, dout: np.ndarray, dcarry_last: tuple,
                      record: SequenceRecord, p: dict, trace: bool = False) -> tuple:
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
    after each block of steps the weight gradients get one product each::

        dx    = dgx W_ih
        dW_ih = sum_t dgx_t^T x_t        dW_hh = sum_t dgh_t^T h_prev_t

    With recurrent dropout on a ``"carry"`` kind the step saw ``m * h_prev``, so its
    ``dh_prev`` is the gradient of that product's input: ``dh_{t-1} = m * dh_prev`` (the
    ``h_prev_t`` of dW_hh is the masked one the step kept).
    """
    if record.fused is not None:  # the forward took the kind's fused path
        return kind.fused.backward(dout, dcarry_last, record.fused, p,  # type: ignore[union-attr]
                                   trace)
    caches: Any  # the list of step caches, or a checkpointed record's recomputed ones
    x, caches, mask, reverse = record[:4]
    if caches is None:
        caches = _Recomputed(kind, record, p)
    T, B = x.shape[:2]
    S = block_steps(B)
    gx_size = p["weight_ih"].shape[0] if "weight_ih" in p else x.shape[-1]  # G*H, or D
    recurrent = "weight_hh" in p  # dW_hh needs dgh and h_prev
    dx = np.empty(x.shape, dtype=dout.dtype)  # (T, B, D)
    grads: dict[str, np.ndarray]
    dparams: dict[str, np.ndarray]
    grads, dparams = {}, {}
    dcarry = dcarry_last
    dcarries = tuple(np.empty((T,) + d.shape, dout.dtype) for d in dcarry) if trace else ()
    for j in reversed(range(-(-T // S))):
        block = block_slice(j, T, S, reverse)
        steps = block.stop - block.start
        dgx = np.empty((steps, B, gx_size), dtype=dout.dtype)
        dgh: Optional[np.ndarray] = None  # a separate (steps, B, G*H) buffer once a step's dgh
        # is not its dgx
        h_prev: Any = (np.empty((steps, B, dcarry[0].shape[-1]), dtype=dout.dtype)
                  if recurrent else None)
        for t in reversed(visit_times(block.start, block.stop, reverse)):
            i = t - block.start
            cache = caches[t]
            if mask is None:
                dcarry = dstep = (dcarry[0] + dout[t],) + dcarry[1:]
            else:
                dcarry = (dcarry[0] + np.where(mask[t], dout[t], 0),) + dcarry[1:]
                dstep = tuple(np.where(mask[t], d, 0) for d in dcarry)
            dnew, dkept = dstep, None
            if record.zoneout is not None:  # the step's share (1 - z), the kept share z
                zs = [_zone_weight(z, t) for z in record.zoneout]
                dnew = tuple(d if z is None else (1 - z) * d for d, z in zip(dstep, zs))
                dkept = tuple(None if z is None else z * d for d, z in zip(dstep, zs))
            row = dgx[i]  # (B, G*H), offered to a step that takes ``out``
            if kind.backward_takes_out:
                g = kind.step_backward(dnew, cache, p, out=row)
            else:
                g = kind.step_backward(dnew, cache, p)
            if g.dgx is not row:  # a fresh array, whether or not the step took ``out``
                row[...] = g.dgx
            # a "carry" kind's step read m * h_prev: dh_prev = m * d(m * h_prev)
            dprev = masked_dcarry_prev(kind, g.dcarry_prev, record.recurrent_mask)
            if dkept is not None:
                dprev = tuple(d if k is None else d + k for d, k in zip(dprev, dkept))
            if mask is None:
                dcarry = dprev
            else:  # a padded step passed its carry through: its gradient passes back as is
                dcarry = tuple(np.where(mask[t], dp, d) for dp, d in zip(dprev, dcarry))
            if recurrent:
                if g.dgh is not g.dgx:
                    if dgh is None:
                        dgh = dgx.copy()  # the steps visited so far shared their dgx
                    dgh[i] = g.dgh
                elif dgh is not None:
                    dgh[i] = row
                h_prev[i] = cache.h_prev
            for trace_k, d in zip(dcarries, dstep):
                trace_k[t] = d
            add_grads(dparams, g.dparams)
        add_grads(grads, param_grads(x[block], h_prev, dgx, dgx if dgh is None else dgh, p))
        if "weight_ih" in p:  # dx = dgx W_ih, one (steps*B, G*H) @ (G*H, D) product
            np.matmul(dgx.reshape(-1, gx_size), p["weight_ih"],
                      out=dx[block].reshape(-1, x.shape[-1]))
        else:  # gx was x itself
            dx[block] = dgx
    grads = add_grads(grads, dparams)
    if trace:
        return dx, dcarry, grads, dcarries
    return dx, dcarry, grads
