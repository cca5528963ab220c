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

from typing import NamedTuple, Optional

import numpy as np

from npseq.bptt import sequence_backward, sequence_forward
from npseq.cells.base import CellKind

__all__ = ["StackRecord", "stack_forward", "stack_backward"]


class StackRecord(NamedTuple):
    """What :func:`stack_backward` needs from :func:`stack_forward`."""

    records: list  # records[layer][direction]: npseq.bptt.SequenceRecord
    dropout_masks: list  # per layer: the scaled mask (T, B, D*H_out) on its output, or None


def stack_forward(kind: CellKind, layers: list, x: np.ndarray, carries: tuple,
                  mask: Optional[np.ndarray] = None, *, dropout: float = 0.0,
                  rng: Optional[np.random.Generator] = None, keep: bool = True,
                  checkpoint_every: Optional[int] = None, capture: Optional[dict] = None):
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
        Inverted dropout on the output of every layer but the last (0: none). Masks are
        drawn from ``rng``, one per layer, of that layer's output shape.
    keep : bool
        Return a record for :func:`stack_backward`; with False the record is None.
    checkpoint_every : int, optional
        Gradient checkpointing in every layer and direction (:mod:`npseq.bptt`).
    capture : dict, optional
        Filled with ``capture[(layer, direction)]``: the list of the T step caches (the gate
        activations), indexed by time.

    Returns
    -------
    out : ndarray, shape (T, B, num_directions * H_out)
    finals : tuple of ndarrays, each (L*D, B, .): the carry after the last step of each
        layer and direction
    record : StackRecord or None
    """
    num_directions = len(layers[0])
    records, dropout_masks, finals = [], [], []
    layer_input = x
    for layer, directions in enumerate(layers):
        outs, layer_records = [], []
        for direction, p in enumerate(directions):
            idx = layer * num_directions + direction
            caches = None
            if capture is not None:
                caches = capture[(layer, direction)] = [None] * x.shape[0]
            out, carry, record = sequence_forward(
                kind, layer_input, tuple(c[idx] for c in carries), p, mask=mask,
                reverse=bool(direction), keep=keep, checkpoint_every=checkpoint_every,
                capture=caches)
            outs.append(out)
            finals.append(carry)
            layer_records.append(record)
        records.append(layer_records)
        layer_out = np.concatenate(outs, axis=2) if num_directions == 2 else outs[0]
        drop = None
        if dropout > 0 and layer < len(layers) - 1:
            # inverted dropout: keep with probability 1 - p, scale kept values by 1/(1-p)
            kept = rng.random(layer_out.shape) >= dropout
            drop = kept.astype(layer_out.dtype) / layer_out.dtype.type(1 - dropout)
            layer_out = layer_out * drop
        dropout_masks.append(drop)
        layer_input = layer_out
    finals = tuple(np.stack([carry[k] for carry in finals]) for k in range(kind.num_states))
    return layer_input, finals, StackRecord(records, dropout_masks) if keep else None


def stack_backward(kind: CellKind, layers: list, record: StackRecord, dout: np.ndarray,
                   dfinals: tuple, *, trace: Optional[dict] = None):
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
    """
    num_directions = len(layers[0])
    H_out = dout.shape[-1] // num_directions
    dcarries = tuple(np.empty_like(d) for d in dfinals)
    grads = [[None] * num_directions for _ in layers]
    dlayer_out = dout
    for layer in reversed(range(len(layers))):
        if record.dropout_masks[layer] is not None:
            dlayer_out = dlayer_out * record.dropout_masks[layer]
        dlayer_in = None
        for direction, p in enumerate(layers[layer]):
            idx = layer * num_directions + direction
            dx, dcarry0, grads[layer][direction], *dtrace = sequence_backward(
                kind, dlayer_out[:, :, direction * H_out:(direction + 1) * H_out],
                tuple(d[idx] for d in dfinals), record.records[layer][direction], p,
                trace=trace is not None)
            if trace is not None:
                trace[(layer, direction)] = dtrace[0]
            for d0, d in zip(dcarries, dcarry0):
                d0[idx] = d
            dlayer_in = dx if dlayer_in is None else dlayer_in + dx
        dlayer_out = dlayer_in
    return dlayer_out, dcarries, grads
