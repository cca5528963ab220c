"""Sequence layers with the API of ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``.

A layer stacks ``num_layers`` recurrent layers, each run in one or two directions by the
BPTT driver (:mod:`npseq.bptt`). Layer k+1 reads layer k's output, both directions
concatenated, after dropout in training mode. Parameters are named as PyTorch names them
(``weight_ih_l0``, ``bias_hh_l1_reverse``, ``weight_hr_l0`` ...), with PyTorch's shapes.

Inside, everything is laid out ``(T, B, features)``; ``batch_first`` and unbatched input are
converted at the boundary, in :meth:`_RNNBase.forward` and :meth:`_RNNBase.backward`.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq import grad_mode
from npseq._validation import (as_array, check_bool, check_choice, check_dtype, check_int,
                               check_lengths, check_probability, check_shape, make_rng, warn)
from npseq.bptt import sequence_backward, sequence_forward
from npseq.cell import uniform_init
from npseq.cells import rnn, variants
from npseq.cells.base import CellKind
from npseq.module import Module

__all__ = ["RNN", "LSTM", "GRU"]


class _Tape(NamedTuple):
    """What one forward call leaves for its backward."""

    records: list  # records[layer][direction]: SequenceRecord
    dropout_masks: list  # per layer below the top: (T, B, D*H_out) scaled mask, or None
    shape_out: tuple  # shape of ``out`` as returned to the caller
    batch: int
    unbatched: bool


class _RNNBase(Module):
    """Common machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU`."""

    kind: CellKind

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float64, seed=None,
                 *, checkpoint_every=None):
        super().__init__(check_dtype(dtype))
        self.input_size = check_int("input_size", input_size, minimum=1)
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        self.num_layers = check_int("num_layers", num_layers, minimum=1)
        self.bias = check_bool("bias", bias)
        self.batch_first = check_bool("batch_first", batch_first)
        self.dropout = check_probability("dropout", dropout)
        if self.dropout > 0 and self.num_layers == 1:
            warn(f"dropout: dropout acts between stacked layers (on every layer's output but "
                 f"the last), so non-zero dropout expects num_layers > 1, got "
                 f"dropout={self.dropout} and num_layers=1")
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.proj_size = check_int("proj_size", proj_size, minimum=0)
        if self.proj_size and self.kind.name != "LSTM":
            raise ValueError(f"proj_size: only the plain LSTM supports a projection (not "
                             f"{self.kind.name}), got {proj_size}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected 0 <= proj_size < hidden_size "
                             f"({self.hidden_size}), got {self.proj_size}")
        self.num_directions = 2 if self.bidirectional else 1
        self.rng = make_rng(seed)  # draws the initial weights, then the dropout masks
        self.checkpoint_every = checkpoint_every

        G, H, H_out = self.kind.num_gates, self.hidden_size, self.output_size
        shapes, fill = {}, {}
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.num_directions * H_out
            for direction in range(self.num_directions):
                sfx = self._suffix(layer, direction)
                shapes[f"weight_ih{sfx}"] = (G * H, layer_input)
                shapes[f"weight_hh{sfx}"] = (G * H, H_out)
                if self.bias:
                    shapes[f"bias_ih{sfx}"] = (G * H,)
                    shapes[f"bias_hh{sfx}"] = (G * H,)
                if self.proj_size:
                    shapes[f"weight_hr{sfx}"] = (self.proj_size, H)
                extra, extra_fill = variants.extra_param_shapes(self.kind, H, sfx)
                shapes.update(extra)
                fill.update(extra_fill)
        self.params = uniform_init(self.rng, shapes, H, self.dtype, fill)
        self._init_grads()

    @property
    def checkpoint_every(self) -> Optional[int]:
        """Gradient checkpointing: keep the carry of every k-th step only (None: keep all).

        The backward recomputes the steps in between from the kept carries: memory for the
        activations of about ``T / k + k`` steps instead of ``T``, for one more forward pass.
        The gradients are exactly those computed without it. Settable at any time; it acts
        on the forward calls that follow.
        """
        return self._checkpoint_every

    @checkpoint_every.setter
    def checkpoint_every(self, k):
        self._checkpoint_every = None if k is None else check_int("checkpoint_every", k,
                                                                  minimum=1)

    @property
    def output_size(self) -> int:
        """Features of ``h`` per direction: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @staticmethod
    def _suffix(layer, direction):
        return f"_l{layer}" + ("_reverse" if direction else "")

    def _layer_params(self, layer, direction):
        """The parameters of one layer and direction, keyed without the suffix."""
        sfx = self._suffix(layer, direction)
        names = _PARAM_NAMES + tuple(spec.name for spec in self.kind.extra_params)
        return {name: self.params[name + sfx] for name in names if name + sfx in self.params}

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                        {**_DEFAULTS, **variants.VARIANT_DEFAULTS}.items()
                        if getattr(self, k, d) != d)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={self.dtype.name})")

    # -- forward ---------------------------------------------------------------------------
    def __call__(self, x, state=None, lengths=None):
        return self.forward(x, state, lengths)

    def forward(self, x, state=None, lengths=None):
        """Run the stacked layers over a sequence.

        Parameters
        ----------
        x : array_like, shape (T, B, input_size), (B, T, input_size) with ``batch_first``,
            or unbatched (T, input_size)
        state : initial state, None for zeros
            GRU/RNN: ``h0`` of shape (num_layers * num_directions, B, H_out);
            LSTM: ``(h0, c0)``, ``c0`` of shape (num_layers * num_directions, B, hidden_size).
            Unbatched input takes states without the B axis.
        lengths : array_like of int, shape (B,), optional
            Valid length of each sequence, 1..T, in any order (as
            ``pack_padded_sequence(..., enforce_sorted=False)``). Outputs past a sequence's
            length are zero and its final state is taken at its last valid step.

        Returns
        -------
        out : ndarray, shape (T, B, num_directions * H_out) in the layout of ``x``
        state : ``h_n``, or ``(h_n, c_n)`` for LSTM, shaped like ``state``
        """
        x = as_array("x", x, self.dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            layout = "(batch, seq_len" if self.batch_first else "(seq_len, batch"
            raise ValueError(f"x: expected shape {layout}, {self.input_size}) or unbatched "
                             f"(seq_len, {self.input_size}), got {x.shape}")
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B = x.shape[:2]
        if T == 0 or B == 0:
            raise ValueError(f"x: expected at least one time step and one sequence, got "
                             f"shape {x.shape}")
        carries = self._state_in("state", state, B, unbatched)
        mask = self._mask(lengths, T, B, unbatched)
        keep = grad_mode.is_grad_enabled()

        records, dropout_masks, finals = [], [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs, layer_records = [], []
            for direction in range(self.num_directions):
                idx = layer * self.num_directions + direction
                carry0 = tuple(c[idx] for c in carries)
                out, carry, record = sequence_forward(
                    self.kind, layer_input, carry0, self._layer_params(layer, direction),
                    mask=mask, reverse=bool(direction), keep=keep,
                    checkpoint_every=self.checkpoint_every)
                outs.append(out)
                finals.append(carry)
                layer_records.append(record)
            records.append(layer_records)
            layer_out = np.concatenate(outs, axis=2) if len(outs) == 2 else outs[0]
            if layer < self.num_layers - 1 and self.training and self.dropout > 0:
                # inverted dropout: keep with probability 1 - p, scale kept values by 1/(1-p)
                keep_mask = self.rng.random(layer_out.shape) >= self.dropout
                drop = keep_mask.astype(self.dtype) / self.dtype.type(1 - self.dropout)
                layer_out = layer_out * drop
                dropout_masks.append(drop)
            else:
                dropout_masks.append(None)
            layer_input = layer_out

        out = layer_input
        out = out[:, 0] if unbatched else (out.transpose(1, 0, 2) if self.batch_first else out)
        if keep:
            self._push(_Tape(records, dropout_masks, out.shape, B, unbatched))
        state_n = tuple(np.stack([carry[i] for carry in finals])
                        for i in range(self.kind.num_states))  # (L*D, B, .)
        return out, self._state_out(state_n, unbatched)

    # -- backward --------------------------------------------------------------------------
    def backward(self, dout, dstate=None, *, trace=None):
        """Backward of the most recent forward call not yet paired with a backward.

        Parameters
        ----------
        dout : array_like, the gradient of ``out``, shaped like it (None for zeros)
        dstate : gradient of the final state, shaped like it (None for zeros; for LSTM either
            half of the tuple may be None)
        trace : dict, optional
            If given, ``trace[(layer, direction)]`` is set to the gradient of the loss with
            respect to the carry at every time step of that layer and direction: a tuple
            ``(dh,)`` or ``(dh, dc)`` of arrays shaped (T, B, .) (time first, whatever
            ``batch_first``; B = 1 for unbatched input); see
            :func:`npseq.bptt.sequence_backward`.

        Returns
        -------
        dx : ndarray, shaped like ``x``
        dstate0 : gradient of the initial state: ``dh0``, or ``(dh0, dc0)`` for LSTM

        The parameter gradients are added into :attr:`grads`.
        """
        if trace is not None and not isinstance(trace, dict):
            raise TypeError(f"trace: expected None or a dict to fill, got {type(trace).__name__}")
        tape = self._peek()
        B, unbatched = tape.batch, tape.unbatched
        if dout is None:
            dout = np.zeros(tape.shape_out, self.dtype)
        dout = check_shape("dout", as_array("dout", dout, self.dtype), tape.shape_out,
                           "(the shape of out)")
        if unbatched:
            dout = dout[:, None, :]
        elif self.batch_first:
            dout = dout.transpose(1, 0, 2)
        dcarries = self._state_in("dstate", dstate, B, unbatched)
        self._pop()  # only once dout and dstate passed their checks

        H_out = self.output_size
        dstate0 = [np.empty_like(d) for d in dcarries]
        dlayer_out = dout
        for layer in reversed(range(self.num_layers)):
            if tape.dropout_masks[layer] is not None:
                dlayer_out = dlayer_out * tape.dropout_masks[layer]
            dlayer_in = None
            for direction in range(self.num_directions):
                idx = layer * self.num_directions + direction
                record = tape.records[layer][direction]
                sfx = self._suffix(layer, direction)
                dx, dcarry0, grads, *dtrace = sequence_backward(
                    self.kind, dlayer_out[:, :, direction * H_out:(direction + 1) * H_out],
                    tuple(d[idx] for d in dcarries), record,
                    self._layer_params(layer, direction), trace=trace is not None)
                if trace is not None:
                    trace[(layer, direction)] = dtrace[0]
                self._accumulate({k + sfx: g for k, g in grads.items()})
                for d0, d in zip(dstate0, dcarry0):
                    d0[idx] = d
                dlayer_in = dx if dlayer_in is None else dlayer_in + dx
            dlayer_out = dlayer_in

        dx = dlayer_out
        dx = dx[:, 0] if unbatched else (dx.transpose(1, 0, 2) if self.batch_first else dx)
        return dx, self._state_out(tuple(dstate0), unbatched)

    # -- boundary helpers ------------------------------------------------------------------
    def _state_in(self, argname, state, B, unbatched):
        """Public state -> tuple of (L*D, B, .) arrays (zeros where None)."""
        n = self.kind.num_states
        LD = self.num_layers * self.num_directions
        sizes = (self.output_size, self.hidden_size)[:n]
        labels = (("dh_n", "dc_n") if argname.startswith("d") else ("h0", "c0"))[:n]
        if state is None:
            return tuple(np.zeros((LD, B, s), self.dtype) for s in sizes)
        if n == 2:
            if not isinstance(state, (tuple, list)) or len(state) != 2:
                given = (f"a {type(state).__name__} of length {len(state)}"
                         if isinstance(state, (tuple, list)) else type(state).__name__)
                raise TypeError(f"{argname}: expected a tuple ({', '.join(labels)}) for "
                                f"{type(self).__name__}, got {given}")
            parts = tuple(state)
            names = tuple(f"{argname}[{i}] ({labels[i]})" for i in range(2))
        else:
            if isinstance(state, (tuple, list)):
                raise TypeError(f"{argname}: expected an array for {type(self).__name__}, got "
                                f"a {type(state).__name__} (only LSTM states are tuples)")
            parts, names = (state,), (f"{argname} ({labels[0]})",)
        carries = []
        for name, part, size in zip(names, parts, sizes):
            expected = (LD, size) if unbatched else (LD, B, size)
            if part is None:
                part = np.zeros(expected, self.dtype)
            what = ("(num_layers * num_directions, " + ("" if unbatched else "batch, ")
                    + ("hidden_size)" if size == self.hidden_size else "proj_size)"))
            part = check_shape(name, as_array(name, part, self.dtype), expected, what)
            carries.append(part[:, None, :] if unbatched else part)
        return tuple(carries)

    def _state_out(self, carries, unbatched):
        carries = tuple(c[:, 0] for c in carries) if unbatched else carries
        return carries if self.kind.num_states == 2 else carries[0]

    def _mask(self, lengths, T, B, unbatched) -> Optional[np.ndarray]:
        """``lengths`` -> bool mask (T, B, 1), or None when every sequence is full."""
        if lengths is None:
            return None
        arr = check_lengths(lengths, T, B, scalar_ok=unbatched)
        if np.all(arr == T):
            return None
        return (np.arange(T)[:, None] < arr[None, :])[:, :, None]  # (T, B, 1)


_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
_DEFAULTS = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 proj_size=0)


class RNN(_RNNBase):
    """Elman RNN layer, as ``torch.nn.RNN``.

    Parameters
    ----------
    input_size, hidden_size : int
    num_layers : int, default 1
    nonlinearity : {"tanh", "relu"}
    bias : bool, default True
    batch_first : bool, default False
    dropout : float in [0, 1), default 0
        Dropout on the output of every layer but the last, in training mode.
    bidirectional : bool, default False
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of the initial weights and of the dropout masks.
    checkpoint_every : int, optional, keyword only
        Gradient checkpointing (every layer class): keep the carry of every k-th step only
        and recompute the others in backward; see :attr:`checkpoint_every`.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.RNN(3, 4, num_layers=2, seed=0)
    >>> out, h_n = m(np.ones((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> dx, dh0 = m.backward(np.ones_like(out))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, dtype=np.float64,
                 seed=None, *, checkpoint_every=None):
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.kind = rnn.RNN_TANH if nonlinearity == "tanh" else rnn.RNN_RELU
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every)


class LSTM(_RNNBase):
    """LSTM layer, as ``torch.nn.LSTM``, gate order (i, f, g, o).

    Parameters as :class:`RNN` (no ``nonlinearity``), plus

    proj_size : int, default 0
        With ``proj_size > 0``, ``h = W_hr (o * tanh(c))`` has ``proj_size`` features.

    Keyword only, the variants of :class:`~npseq.LSTMCell` (each layer and direction has its
    own ``ln_*`` or ``weight_ch`` parameters, suffixed ``_l0``, ``_l1_reverse``...)::

        layer_norm=False, peephole=False, activation="tanh", recurrent_activation="sigmoid"

    A projection needs the plain cell (no ``layer_norm`` or ``peephole``).

    ``out, (h_n, c_n) = m(x, (h0, c0))``;
    ``dx, (dh0, dc0) = m.backward(dout, (dh_n, dc_n))``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float64, seed=None,
                 *, layer_norm=False, peephole=False, activation="tanh",
                 recurrent_activation="sigmoid", checkpoint_every=None):
        self.kind = variants.lstm_kind(layer_norm, peephole, activation, recurrent_activation)
        self.layer_norm, self.peephole = bool(layer_norm), bool(peephole)  # checked by lstm_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, seed,
                         checkpoint_every=checkpoint_every)


class GRU(_RNNBase):
    """GRU layer, as ``torch.nn.GRU``, gate order (r, z, n).

    Parameters as :class:`RNN` (no ``nonlinearity``), plus, keyword only, the variants of
    :class:`~npseq.GRUCell`::

        reset_after=True, activation="tanh", recurrent_activation="sigmoid"

    ``out, h_n = m(x, h0)``; ``dx, dh0 = m.backward(dout, dh_n)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float64, seed=None, *,
                 reset_after=True, activation="tanh", recurrent_activation="sigmoid",
                 checkpoint_every=None):
        self.kind = variants.gru_kind(reset_after, activation, recurrent_activation)
        self.reset_after = bool(reset_after)  # checked by gru_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every)
