"""Sequence layers with the API of ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``.

A layer stacks ``num_layers`` recurrent layers, each run in one or two directions by the
pure core :func:`npseq.stack.stack_forward` / :func:`npseq.stack.stack_backward`. Layer k+1
reads layer k's output, both directions concatenated, after dropout in training mode.
Parameters are named as PyTorch names them (``weight_ih_l0``, ``bias_hh_l1_reverse``,
``weight_hr_l0`` ...), with PyTorch's shapes (:mod:`npseq.params`).

A layer's ``forward`` and ``backward`` do four things: validate, lay out (``batch_first``,
unbatched input: :mod:`npseq.layout`), call the core, keep the record between the two.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq import grad_mode
from npseq._validation import (as_array, check_bool, check_choice, check_dtype, check_int,
                               check_probability, check_shape, make_rng, warn)
from npseq.cells import rnn, variants
from npseq.cells.base import CellKind
from npseq.layout import (carries_from_state, from_time_major, lengths_mask, sequence_input,
                          state_from_carries, to_time_major)
from npseq.module import Module
from npseq.params import init_params, layer_params, stack_param_specs, suffix
from npseq.stack import StackRecord, stack_backward, stack_forward

__all__ = ["RNNBase", "RNN", "LSTM", "GRU"]


class LayerRecord(NamedTuple):
    """What one forward call of a layer leaves for its backward."""

    stack: StackRecord
    shape_out: tuple  # shape of ``out`` as returned to the caller
    batch: int
    unbatched: bool


class RNNBase(Module):
    """What :class:`RNN`, :class:`LSTM`, :class:`GRU` and :class:`~npseq.Recurrent` share:
    a stack of layers of one :class:`~npseq.CellKind`, as ``torch.nn.RNNBase``.

    Besides ``forward``/``backward``, it offers the seams that tools build on:
    :meth:`layer_params` (the ``p`` a step function reads), :meth:`state_to_carries` and
    :meth:`carries_to_state` (the public state and the core's carries), and the pure core
    itself, :func:`npseq.stack.stack_forward`.
    """

    kind: CellKind

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, dtype=np.float64, seed=None,
                 *, checkpoint_every=None, weight_dropout=0.0, zoneout=0.0):
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
        if self.proj_size and not self.kind.supports_proj_size:
            raise ValueError(f"proj_size: only the plain LSTM supports a projection (not "
                             f"{self.kind.name}), got {proj_size}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected 0 <= proj_size < hidden_size "
                             f"({self.hidden_size}), got {self.proj_size}")
        self.num_directions = 2 if self.bidirectional else 1
        self.weight_dropout = check_probability("weight_dropout", weight_dropout)
        if self.weight_dropout > 0 and not self.kind.has_weight_hh:
            raise ValueError(f"weight_dropout: drops entries of weight_hh, which "
                             f"{self.kind.name} does not have; expected 0, got {weight_dropout}")
        rates = self._zoneout_rates(zoneout)
        self.zoneout = rates[0] if len(set(rates)) == 1 else rates  # as given, for repr/save
        self.rng = make_rng(seed)  # draws the initial weights, then the dropout masks
        self.checkpoint_every = checkpoint_every
        specs = stack_param_specs(self.kind, self.input_size, self.hidden_size,
                                  self.num_layers, self.num_directions, self.bias,
                                  self.proj_size)
        self.params = init_params(self.rng, specs, self.hidden_size, self.dtype)
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

    def _zoneout_rates(self, zoneout):
        """``zoneout`` (a rate, or one per state) -> a tuple of rates in [0, 1)."""
        n = self.kind.num_states
        rates = zoneout if isinstance(zoneout, (tuple, list)) else (zoneout,) * n
        if len(rates) != n:
            raise ValueError(f"zoneout: expected a rate or a tuple of {n} (one per state "
                             f"{self.kind.carry_names()}), got {zoneout!r}")
        return tuple(check_probability(f"zoneout[{k}]" if isinstance(zoneout, (tuple, list))
                                       else "zoneout", r) for k, r in enumerate(rates))

    def core_options(self) -> dict:
        """The keyword arguments of :func:`npseq.stack.stack_forward` for this layer's
        configuration and mode: dropout, weight_dropout, zoneout, training, rng,
        checkpoint_every."""
        return dict(dropout=self.dropout, weight_dropout=self.weight_dropout,
                    zoneout=self._zoneout_rates(self.zoneout), training=self.training,
                    rng=self.rng,
                    checkpoint_every=self.checkpoint_every)

    @property
    def output_size(self) -> int:
        """Features of ``h`` per direction: ``proj_size`` if set, else ``hidden_size``."""
        return self.proj_size or self.hidden_size

    def layer_params(self, layer: int = 0, direction: int = 0) -> dict:
        """The parameters of one layer and direction keyed without suffix: the ``p`` that
        the step functions read (the live arrays, not copies)."""
        layer = check_int("layer", layer, minimum=0, maximum=self.num_layers - 1)
        direction = check_int("direction", direction, minimum=0,
                              maximum=self.num_directions - 1)
        return layer_params(self.params, self.kind, layer, direction)

    def stack_params(self) -> list:
        """``[[layer_params(l, d) for d in directions] for l in layers]``: the ``layers``
        argument of :func:`npseq.stack.stack_forward`."""
        return [[layer_params(self.params, self.kind, layer, direction)
                 for direction in range(self.num_directions)]
                for layer in range(self.num_layers)]

    @staticmethod
    def param_suffix(layer: int, direction: int) -> str:
        """PyTorch's suffix of a layer's parameter names: ``_l1``, ``_l0_reverse`` ..."""
        return suffix(layer, direction)

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                        {**_DEFAULTS, **variants.VARIANT_DEFAULTS}.items()
                        if getattr(self, k, d) != d)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}{extra}, "
                f"dtype={self.dtype.name})")

    # -- forward ---------------------------------------------------------------------------
    def __call__(self, x, state=None, lengths=None, *, capture=None):
        return self.forward(x, state, lengths, capture=capture)

    def forward(self, x, state=None, lengths=None, *, capture=None):
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
        capture : dict, optional, keyword only
            If given, ``capture[(layer, direction)]`` is set to the list of the T step caches
            of that layer and direction (named tuples of the gate activations, each (B, .);
            time first whatever ``batch_first``; B = 1 for unbatched input), also inside
            ``no_grad()`` and with checkpointing.

        Returns
        -------
        out : ndarray, shape (T, B, num_directions * H_out) in the layout of ``x``
        state : ``h_n``, or ``(h_n, c_n)`` for LSTM, shaped like ``state``

        The record for :meth:`backward` is kept unless inside :func:`npseq.no_grad`; it
        replaces (with an :class:`~npseq.module.UnpairedForwardWarning`) the record of an
        earlier forward that no backward used.
        """
        if capture is not None and not isinstance(capture, dict):
            raise TypeError(f"capture: expected None or a dict to fill, got "
                            f"{type(capture).__name__}")
        x, unbatched = sequence_input(x, self.dtype, self.input_size, self.batch_first)
        T, B = x.shape[:2]
        carries = self.state_to_carries(state, B, unbatched)
        mask = lengths_mask(lengths, T, B, unbatched)
        keep = grad_mode.is_grad_enabled()
        out, finals, record = stack_forward(self.kind, self.stack_params(), x, carries, mask,
                                            keep=keep, capture=capture, **self.core_options())
        out = from_time_major(out, self.batch_first, unbatched)
        self._push(LayerRecord(record, out.shape, B, unbatched))  # nothing inside no_grad()
        return out, self.carries_to_state(finals, unbatched)

    # -- backward --------------------------------------------------------------------------
    def backward(self, dout, dstate=None, *, trace=None):
        """Backward of the latest forward call (outside ``no_grad()``), once.

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

        Raises
        ------
        RuntimeError
            No forward to pair with (none yet, the latest ran inside ``no_grad()``, or it
            was paired already).
        """
        if trace is not None and not isinstance(trace, dict):
            raise TypeError(f"trace: expected None or a dict to fill, got {type(trace).__name__}")
        record = self._peek()
        if dout is None:
            dout = np.zeros(record.shape_out, self.dtype)
        dout = check_shape("dout", as_array("dout", dout, self.dtype), record.shape_out,
                           "(the shape of out of the latest forward call)")
        dout = to_time_major(dout, self.batch_first, record.unbatched)
        dfinals = self.check_dstate(dstate)
        self._pop()  # only once dout and dstate passed their checks

        layers = self.stack_params()
        dx, dcarries, grads = stack_backward(self.kind, layers, record.stack, dout, dfinals,
                                             trace=trace)
        for layer, directions in enumerate(grads):
            for direction, layer_grads in enumerate(directions):
                sfx = suffix(layer, direction)
                self._accumulate({k + sfx: g for k, g in layer_grads.items()})
        dx = from_time_major(dx, self.batch_first, record.unbatched)
        return dx, self.carries_to_state(dcarries, record.unbatched)

    def check_dstate(self, dstate) -> tuple:
        """Check a final-state gradient against the pending forward record, as
        :meth:`backward` does; returns it as the core's carries (zeros where None).

        :class:`~npseq.Sequential` calls this before any of its modules consumes a record.
        """
        record = self._peek()
        return self.state_to_carries(dstate, record.batch, record.unbatched, argname="dstate")

    # -- the public state and the core's carries -------------------------------------------
    def state_to_carries(self, state, batch: int, unbatched: bool = False,
                         argname: str = "state") -> tuple:
        """A public state (``h``, ``(h, c)`` or a longer tuple, or their gradients) -> the
        core's carries, each ``(num_layers * num_directions, batch, .)``, checked and cast;
        None gives zeros."""
        LD = self.num_layers * self.num_directions
        sizes = self.kind.carry_sizes(self.hidden_size, self.output_size)
        labels = tuple(f"d{name}_n" if argname.startswith("d") else f"{name}0"
                       for name in self.kind.carry_names())
        if self.kind.state_sizes is None:
            features = tuple("hidden_size)" if k or not self.proj_size else "proj_size)"
                             for k in range(len(sizes)))
        else:  # a kind's own sizes, given as numbers
            features = tuple(f"{size})" for size in sizes)
        what = tuple("(num_layers * num_directions, " + ("" if unbatched else "batch, ")
                     + feature for feature in features)
        return carries_from_state(argname, state, labels=labels,
                                  shapes=tuple((LD, batch, s) for s in sizes), what=what,
                                  dtype=self.dtype, owner=type(self).__name__,
                                  unbatched=unbatched)

    def carries_to_state(self, carries: tuple, unbatched: bool = False):
        """The core's carries -> the public state: ``h`` or ``(h, c)``, without the batch
        axis for unbatched input."""
        return state_from_carries(carries, unbatched)


_DEFAULTS = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 proj_size=0, weight_dropout=0.0, zoneout=0.0)


class RNN(RNNBase):
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
    weight_dropout : float in [0, 1), keyword only, default 0
        DropConnect on every ``weight_hh`` in training (Wan et al. 2013; AWD-LSTM's weight
        drop): one mask per forward call, shared by all steps and sequences, kept entries
        scaled by 1/(1-p); the gradient reaches the raw weight through the mask.
    zoneout : float in [0, 1), or one per state (``(p_h, p_c)`` for LSTM), keyword only
        Zoneout (Krueger et al. 2017): in training each unit keeps its previous value with
        probability p at each step; in evaluation the carry is ``p * prev + (1 - p) * new``.
        Masks (every layer class) come from ``seed``'s generator, drawn at each forward
        call; a truncated-BPTT chunk is one call, so it draws its own.

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
                 seed=None, *, checkpoint_every=None, weight_dropout=0.0, zoneout=0.0):
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.kind = rnn.RNN_TANH if nonlinearity == "tanh" else rnn.RNN_RELU
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         weight_dropout=weight_dropout, zoneout=zoneout)


class LSTM(RNNBase):
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
                 recurrent_activation="sigmoid", checkpoint_every=None, weight_dropout=0.0,
                 zoneout=0.0):
        self.kind = variants.lstm_kind(layer_norm, peephole, activation, recurrent_activation)
        self.layer_norm, self.peephole = bool(layer_norm), bool(peephole)  # checked by lstm_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, seed,
                         checkpoint_every=checkpoint_every, weight_dropout=weight_dropout,
                         zoneout=zoneout)


class GRU(RNNBase):
    """GRU layer, as ``torch.nn.GRU``, gate order (r, z, n).

    Parameters as :class:`RNN` (no ``nonlinearity``), plus, keyword only, the variants of
    :class:`~npseq.GRUCell`::

        reset_after=True, activation="tanh", recurrent_activation="sigmoid"

    ``out, h_n = m(x, h0)``; ``dx, dh0 = m.backward(dout, dh_n)``.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float64, seed=None, *,
                 reset_after=True, activation="tanh", recurrent_activation="sigmoid",
                 checkpoint_every=None, weight_dropout=0.0, zoneout=0.0):
        self.kind = variants.gru_kind(reset_after, activation, recurrent_activation)
        self.reset_after = bool(reset_after)  # checked by gru_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         weight_dropout=weight_dropout, zoneout=zoneout)
