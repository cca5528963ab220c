"""The pure core of every layer: a stack of recurrent layers, each in one or two directions.

:func:`stack_forward` and :func:`stack_backward` are functions of arrays, time-major
throughout; they keep no state and touch no module. ``npseq.LSTM``, ``npseq.GRU``,
``npseq.RNN`` and ``npseq.Recurrent`` validate their arguments, lay them out, call these two,
and keep the record between them; the study tools call them directly.

For ``LSTM(num_layers=2, bidirectional=True)`` with ``lengths``, read top to bottom::

    layer 0, forward direction:  out_0f, (h, c)_0f = sequence_forward(x, reverse=False)
    layer 0, reverse direction:  out_0r, (h, c)_0r = sequence_forward(x, reverse=True)
    layer 1 reads  x_1 = dropout([out_0f, out_0r])           (T, B, 2 * H_out)
    layer 1, both directions on x_1, as layer 0;  out = [out_1f, out_1r]

and the backward runs the same in reverse: layer 1's two directions each give ``dx_1``, their
sum passes through the dropout mask to layer 0's output, split by direction. ``finals`` and
the initial state are indexed ``layer * num_directions + direction``, as PyTorch's ``h_n``.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import numpy as np
from numpy.typing import DTypeLike

from npseq.bptt import sequence_backward, sequence_forward
from npseq.cells.base import CellKind

__all__ = ["StackRecord", "stack_forward", "stack_backward", "dropout_mask"]


class StackRecord(NamedTuple):
    """What :func:`stack_backward` needs from :func:`stack_forward`."""

    records: list  # records[layer][direction]: npseq.bptt.SequenceRecord
    dropout_masks: list  # per layer: the scaled mask (T, B, D*H_out) on its output, or None
    weight_masks: Optional[list] = None  # [layer][direction]: the scaled DropConnect mask of
    # W_hh, or None
    recurrent_masks: Optional[list] = None  # [layer][direction]: recurrent dropout's scaled
    # mask (B, H_out) on h_prev, or None


def stack_forward(kind: CellKind, layers: list, x: np.ndarray, carries: tuple,
                  mask: Optional[np.ndarray] = None, *, dropout: float = 0.0,
                  weight_dropout: float = 0.0, zoneout: tuple = (),
                  recurrent_dropout: float = 0.0, training: bool = True,
                  rng: Optional[np.random.Generator] = None, keep: bool = True,
                  checkpoint_every: Optional[int] = None, capture: Optional[dict] = None,
                  weight_masks: Optional[list] = None, recurrent_masks: Optional[list] = None
                  ) -> tuple[np.ndarray, tuple, Optional[StackRecord]]:
    """Run a stack of layers over a time-major sequence.

    Parameters
    ----------
    kind : CellKind
    layers : list of lists of dicts
        ``layers[layer][direction]`` is that layer's and direction's ``p`` (parameters keyed
        without suffix); one or two directions, the same number in every layer.
    x : ndarray, shape (T, B, D)
    carries : tuple of ndarrays, each (L*D, B, .)
        The initial carry of every layer and direction (``(h0,)`` or ``(h0, c0)``).
    mask : bool ndarray, shape (T, B, 1), optional
        True at the real steps (see :mod:`npseq.bptt`).
    dropout : float
        Inverted dropout on the output of every layer but the last (0: none), in training.
        Masks are drawn from ``rng``, one per layer, of that layer's output shape.
    weight_dropout : float
        DropConnect on ``weight_hh`` (Wan et al. 2013; AWD-LSTM's weight drop), in
        training: one mask of W_hh's shape per layer, direction and call, shared by every
        step and sequence, kept entries scaled by 1/(1-p). Evaluation uses W_hh itself.
    zoneout : tuple of floats, one per state (or empty)
        Zoneout (Krueger et al. 2017): in training each unit keeps its previous value with
        probability z at each step (a 0/1 mask (T, B, .) per state, layer and direction);
        in evaluation the carry is the expectation ``z * prev + (1 - z) * new``.
    recurrent_dropout : float
        Recurrent dropout (Gal & Ghahramani 2016; Keras's ``recurrent_dropout``), in
        training: one mask ``m`` of shape (B, H_out) per layer, direction and call (one per
        sequence, the same at every step), kept entries 1/(1-q); the recurrent product reads
        ``m * h_prev`` (:mod:`npseq.bptt`). Drawn after that layer and direction's
        weight_dropout and zoneout masks; nothing is drawn at 0 or in evaluation, which
        uses ``h_prev`` itself (the expectation).
    training : bool
        Draw masks (True) or use the expectations (False).
    keep : bool
        Return a record for :func:`stack_backward`; with False the record is None.
    checkpoint_every : int, optional
        Gradient checkpointing in every layer and direction (:mod:`npseq.bptt`).
    capture : dict, optional
        Filled with ``capture[(layer, direction)]``: the list of the T step caches (the gate
        activations), indexed by time.
    weight_masks, recurrent_masks : lists ``[layer][direction]`` of masks, optional
        Masks to use instead of drawing them (in training, where the rate is > 0): the
        scaled masks of W_hh and of h_prev, as :class:`StackRecord` holds them. A layer with
        ``keep_dropout_masks`` passes the masks it keeps across calls.

    Returns
    -------
    out : ndarray, shape (T, B, num_directions * H_out)
    finals : tuple of ndarrays, each (L*D, B, .): the carry after the last step of each
        layer and direction
    record : StackRecord or None
    """
    num_directions = len(layers[0])
    T, B = x.shape[:2]
    finals: Any  # a list of each layer's final carries, then the tuple of them stacked
    record: Any  # each layer's SequenceRecord, then the StackRecord of them all
    records, dropout_masks, finals = [], [], []
    drawn_weight, drawn_recurrent = [], []  # the masks used, [layer][direction]
    layer_input = x
    for layer, directions in enumerate(layers):
        outs, layer_records, layer_weight_masks, layer_recurrent_masks = [], [], [], []
        for direction, p in enumerate(directions):
            idx = layer * num_directions + direction
            carry0 = tuple(c[idx] for c in carries)
            w_mask = None
            if training and weight_dropout > 0:
                w_mask = (weight_masks[layer][direction] if weight_masks is not None else
                          dropout_mask(rng, p["weight_hh"].shape,  # type: ignore[arg-type]
                                       weight_dropout, x.dtype))
                p = dict(p, weight_hh=p["weight_hh"] * w_mask)
            zones = None
            if any(zoneout):  # per state: a 0/1 keep mask in training, z in evaluation
                zones = tuple((rng.random((T, B, c.shape[-1]))  # type: ignore[union-attr]
                               < z).astype(x.dtype)
                              if training and z > 0 else (z or None)
                              for z, c in zip(zoneout, carry0))
            r_mask = None
            if training and recurrent_dropout > 0:  # (B, H_out), one per sequence
                r_mask = (recurrent_masks[layer][direction] if recurrent_masks is not None
                          else dropout_mask(rng,  # type: ignore[arg-type]
                                            (B, carry0[0].shape[-1]), recurrent_dropout,
                                            x.dtype))
            caches = None
            if capture is not None:
                caches = capture[(layer, direction)] = [None] * T
            out, carry, record = sequence_forward(
                kind, layer_input, carry0, p, mask=mask, reverse=bool(direction), keep=keep,
                checkpoint_every=checkpoint_every, capture=caches, zoneout=zones,
                recurrent_mask=r_mask)
            layer_weight_masks.append(w_mask)
            layer_recurrent_masks.append(r_mask)
            outs.append(out)
            finals.append(carry)
            layer_records.append(record)
        records.append(layer_records)
        drawn_weight.append(layer_weight_masks)
        drawn_recurrent.append(layer_recurrent_masks)
        layer_out = np.concatenate(outs, axis=2) if num_directions == 2 else outs[0]
        drop = None
        if training and dropout > 0 and layer < len(layers) - 1:
            drop = dropout_mask(rng, layer_out.shape, dropout,  # type: ignore[arg-type]
                                layer_out.dtype)
            layer_out = layer_out * drop
        dropout_masks.append(drop)
        layer_input = layer_out
    finals = tuple(np.stack([carry[k] for carry in finals]) for k in range(kind.num_states))
    record = (StackRecord(records, dropout_masks, drawn_weight, drawn_recurrent) if keep
              else None)
    return layer_input, finals, record


def dropout_mask(rng: np.random.Generator, shape: tuple, p: float,
                 dtype: DTypeLike) -> np.ndarray:
    """Inverted dropout's mask: 1/(1-p) with probability 1 - p, else 0."""
    kept = rng.random(shape) >= p
    return kept.astype(dtype) / np.dtype(dtype).type(1 - p)  # type: ignore[call-overload]


def stack_backward(kind: CellKind, layers: list, record: StackRecord, dout: np.ndarray,
                   dfinals: tuple, *, trace: Optional[dict] = None
                   ) -> tuple[np.ndarray, tuple, list]:
    """Backward of :func:`stack_forward`.

    Parameters
    ----------
    kind, layers : as in the forward
    record : StackRecord
    dout : ndarray, shape (T, B, num_directions * H_out)
        Gradient of ``out``.
    dfinals : tuple of ndarrays, each (L*D, B, .)
        Gradient of ``finals``.
    trace : dict, optional
        Filled with ``trace[(layer, direction)]``: the gradient of the loss with respect to
        the carry at every step, a tuple of (T, B, .) arrays (see
        :func:`npseq.bptt.sequence_backward`).

    Returns
    -------
    dx : ndarray, shape (T, B, D)
    dcarries : tuple of ndarrays, each (L*D, B, .): gradient of the initial carries
    grads : list of lists of dicts, ``grads[layer][direction]`` keyed as ``layers``

    Notes
    -----
    Layer by layer from the top; within a layer each direction takes its half of the
    output gradient, and the input gradients of the two directions add up::

        dx_l = sum_d sequence_backward(dout_l[..., d * H_out:(d + 1) * H_out])
        dout_{l-1} = dx_l * dropout_mask_{l-1}
        dW_hh = dW_hh_masked * weight_mask          with weight_dropout
    """
    num_directions = len(layers[0])
    H_out = dout.shape[-1] // num_directions
    dcarries = tuple(np.empty_like(d) for d in dfinals)
    grads = [[None] * num_directions for _ in layers]
    dlayer_out = dout
    for layer in reversed(range(len(layers))):
        if record.dropout_masks[layer] is not None:
            dlayer_out = dlayer_out * record.dropout_masks[layer]
        dlayer_in: Any = None
        for direction, p in enumerate(layers[layer]):
            idx = layer * num_directions + direction
            w_mask = record.weight_masks[layer][direction]  # type: ignore[index]
            if w_mask is not None:  # the forward ran with the masked W_hh
                p = dict(p, weight_hh=p["weight_hh"] * w_mask)
            dx, dcarry0, layer_grads, *dtrace = sequence_backward(
                kind, dlayer_out[:, :, direction * H_out:(direction + 1) * H_out],
                tuple(d[idx] for d in dfinals), record.records[layer][direction], p,
                trace=trace is not None)
            if w_mask is not None:  # W_hh entered as W_hh * mask: dW_hh = dW_masked * mask
                layer_grads["weight_hh"] = layer_grads["weight_hh"] * w_mask
            grads[layer][direction] = layer_grads
            if trace is not None:
                trace[(layer, direction)] = dtrace[0]
            for d0, d in zip(dcarries, dcarry0):
                d0[idx] = d
            dlayer_in = dx if dlayer_in is None else dlayer_in + dx
        dlayer_out = dlayer_in
    return dlayer_out, dcarries, grads
