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
from npseq._typing import (ArrayLike, DTypeLike, FloatArray, Seed, State, StateLike,
                           ZoneoutLike)
from npseq._validation import (as_array, check_bool, check_choice, check_dtype, check_int,
                               check_probability, check_shape, make_rng, warn)
from npseq.cells import rnn, variants
from npseq.cells.base import CellKind
from npseq.layout import (carries_from_state, from_time_major, lengths_mask, sequence_input,
                          state_from_carries, to_time_major)
from npseq.module import Module
from npseq.params import init_params, layer_params, stack_param_specs, suffix
from npseq.stack import StackRecord, dropout_mask, stack_backward, stack_forward

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "zoneout_rates",
           "check_recurrent_regularisers"]


def zoneout_rates(zoneout: ZoneoutLike, num_states: int,
                  names: Optional[tuple] = None) -> tuple:
    """The ``zoneout=`` argument of a layer or cell (a rate, or one per state) -> a tuple of
    ``num_states`` rates in [0, 1), checked; ``names``: the states' (for the message)."""
    n = num_states
    rates = zoneout if isinstance(zoneout, (tuple, list)) else (zoneout,) * n
    if len(rates) != n:
        raise ValueError(f"zoneout: expected a rate or a tuple of {n} (one per state "
                         f"{names or ('h', 'c')[:n]}), got {zoneout!r}")
    return tuple(check_probability(f"zoneout[{k}]" if isinstance(zoneout, (tuple, list))
                                   else "zoneout", r) for k, r in enumerate(rates))


def check_recurrent_regularisers(kind: CellKind, recurrent_dropout: float,
                                  weight_dropout: float) -> tuple[float, float]:
    """``recurrent_dropout`` and ``weight_dropout`` of a layer or cell of ``kind``, checked
    (rates in [0, 1), and 0 where the kind cannot take them)."""
    recurrent = check_probability("recurrent_dropout", recurrent_dropout)
    if recurrent > 0 and kind.recurrent_dropout is None:
        raise ValueError(f"recurrent_dropout: drops h_prev where it enters the recurrent "
                         f"product, which {kind.name} does not support (its "
                         f"CellKind.recurrent_dropout is None); expected 0, got "
                         f"{recurrent_dropout}")
    weight = check_probability("weight_dropout", weight_dropout)
    if weight > 0 and not kind.has_weight_hh:
        raise ValueError(f"weight_dropout: drops entries of weight_hh, which {kind.name} does "
                         f"not have; expected 0, got {weight_dropout}")
    return recurrent, weight


class LayerRecord(NamedTuple):
    """What one forward call of a layer leaves for its backward."""

    stack: Optional[StackRecord]  # None inside no_grad() (then it is not kept)
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

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype: DTypeLike = np.float64,
                 seed: Seed = None, *, checkpoint_every: Optional[int] = None,
                 weight_dropout: float = 0.0, zoneout: ZoneoutLike = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
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
        self.recurrent_dropout, self.weight_dropout = check_recurrent_regularisers(
            self.kind, recurrent_dropout, weight_dropout)
        rates = self._zoneout_rates(zoneout)
        self.zoneout = rates[0] if len(set(rates)) == 1 else rates  # as given, for repr/save
        self.rng = make_rng(seed)  # draws the initial weights, then the dropout masks
        self.checkpoint_every = checkpoint_every
        self.keep_dropout_masks = False
        self.reset_dropout_mask()
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
        The gradients are exactly those of the step-by-step path (a plain LSTM or GRU
        without checkpointing takes its fused path, equal to it to rounding; see
        ``npseq.bptt.FUSED``). Settable at any time; it acts
        on the forward calls that follow.
        """
        return self._checkpoint_every

    @checkpoint_every.setter
    def checkpoint_every(self, k: Optional[int]) -> None:
        self._checkpoint_every = None if k is None else check_int("checkpoint_every", k,
                                                                  minimum=1)

    def _zoneout_rates(self, zoneout):
        """``zoneout`` (a rate, or one per state) -> a tuple of rates in [0, 1)."""
        return zoneout_rates(zoneout, self.kind.num_states, self.kind.carry_names())

    def core_options(self) -> dict:
        """The keyword arguments of :func:`npseq.stack.stack_forward` for this layer's
        configuration and mode: dropout, weight_dropout, zoneout, recurrent_dropout,
        training, rng, checkpoint_every."""
        return dict(dropout=self.dropout, weight_dropout=self.weight_dropout,
                    zoneout=self._zoneout_rates(self.zoneout),
                    recurrent_dropout=self.recurrent_dropout, training=self.training,
                    rng=self.rng,
                    checkpoint_every=self.checkpoint_every)

    @property
    def keep_dropout_masks(self) -> bool:
        """Keep the recurrent-dropout and weight-drop masks across forward calls.

        False (the default): every training forward call draws its own masks, one per
        sequence of that call. True: they are drawn at the first training call after
        :meth:`reset_dropout_mask` and kept, in :attr:`recurrent_masks` and
        :attr:`weight_masks` (``[layer][direction]``), until the next reset, as a cell
        keeps them; so a sequence fed in several calls (``truncated_bptt(...,
        masks="sequence")``) has one mask. Zoneout and the dropout between layers stay
        per call (per step and per call's outputs). Settable at any time.
        """
        return self._keep_dropout_masks

    @keep_dropout_masks.setter
    def keep_dropout_masks(self, keep: bool) -> None:
        self._keep_dropout_masks = check_bool("keep_dropout_masks", keep)

    def reset_dropout_mask(self) -> "RNNBase":
        """Forget the kept masks (:attr:`keep_dropout_masks`); returns self."""
        self.recurrent_masks: Optional[list] = None  # [layer][direction] (B, H_out), or None
        self.weight_masks: Optional[list] = None  # [layer][direction] (G*H, H_out), or None
        return self

    def kept_masks(self, batch: int) -> dict:
        """The ``weight_masks``/``recurrent_masks`` arguments of
        :func:`npseq.stack.stack_forward` for a training call on ``batch`` sequences with
        :attr:`keep_dropout_masks`, drawn if none are kept yet (else ``{}``)."""
        if not (self.training and self.keep_dropout_masks):
            return {}
        layers = self.stack_params()
        if self.weight_masks is None and self.weight_dropout > 0:
            self.weight_masks = [[dropout_mask(self.rng, p["weight_hh"].shape,
                                               self.weight_dropout, self.dtype) for p in ps]
                                 for ps in layers]
        if self.recurrent_masks is None and self.recurrent_dropout > 0:
            self.recurrent_masks = [[dropout_mask(self.rng, (batch, self.output_size),
                                                  self.recurrent_dropout, self.dtype)
                                     for _ in ps] for ps in layers]
        if self.recurrent_masks is not None and self.recurrent_masks[0][0].shape[0] != batch:
            raise ValueError(f"x: the kept recurrent-dropout masks are for a batch of "
                             f"{self.recurrent_masks[0][0].shape[0]}, got a batch of "
                             f"{batch}; call reset_dropout_mask() before a new batch")
        return dict(weight_masks=self.weight_masks, recurrent_masks=self.recurrent_masks)

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
    def __call__(self, x: ArrayLike, state: StateLike = None, lengths: Optional[ArrayLike] = None,
                 *, capture: Optional[dict] = None) -> tuple[FloatArray, State]:
        return self.forward(x, state, lengths, capture=capture)

    def forward(self, x: ArrayLike, state: StateLike = None, lengths: Optional[ArrayLike] = None,
                *, capture: Optional[dict] = None) -> tuple[FloatArray, State]:
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
                                            keep=keep, capture=capture, **self.core_options(),
                                            **self.kept_masks(B))
        out = from_time_major(out, self.batch_first, unbatched)
        self._push(LayerRecord(record, out.shape, B, unbatched))  # nothing inside no_grad()
        return out, self.carries_to_state(finals, unbatched)

    # -- backward --------------------------------------------------------------------------
    def backward(self, dout: Optional[ArrayLike], dstate: StateLike = None, *,
                 trace: Optional[dict] = None) -> tuple[FloatArray, State]:
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

    def check_dstate(self, dstate: StateLike) -> tuple:
        """Check a final-state gradient against the pending forward record, as
        :meth:`backward` does; returns it as the core's carries (zeros where None).

        :class:`~npseq.Sequential` calls this before any of its modules consumes a record.
        """
        record = self._peek()
        return self.state_to_carries(dstate, record.batch, record.unbatched, argname="dstate")

    # -- the public state and the core's carries -------------------------------------------
    def state_to_carries(self, state: StateLike, batch: int, unbatched: bool = False,
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

    def carries_to_state(self, carries: tuple, unbatched: bool = False) -> State:
        """The core's carries -> the public state: ``h`` or ``(h, c)``, without the batch
        axis for unbatched input."""
        return state_from_carries(carries, unbatched)


_DEFAULTS = dict(num_layers=1, bias=True, batch_first=False, dropout=0.0, bidirectional=False,
                 proj_size=0, weight_dropout=0.0, zoneout=0.0, recurrent_dropout=0.0)


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
    recurrent_dropout : float in [0, 1), keyword only, default 0
        Recurrent dropout (Gal & Ghahramani 2016; Keras's ``recurrent_dropout``): in
        training ``h_prev`` enters the recurrent product ``W_hh h_prev`` as ``m * h_prev``,
        with one mask ``m`` of shape (batch, H_out) per layer and direction, drawn once per
        forward call (one per sequence) and reused at every step, kept entries scaled by
        1/(1-p). A GRU's update ``z * h_prev`` reads the unmasked carry. Evaluation uses
        ``h_prev`` itself. See ``docs/regularisation.md``.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.RNN(3, 4, num_layers=2, seed=0)
    >>> out, h_n = m(np.ones((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> dx, dh0 = m.backward(np.ones_like(out))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 dtype: DTypeLike = np.float64, seed: Seed = None, *,
                 checkpoint_every: Optional[int] = None, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0, recurrent_dropout: float = 0.0) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.kind = rnn.RNN_TANH if nonlinearity == "tanh" else rnn.RNN_RELU
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         weight_dropout=weight_dropout, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout)


class LSTM(RNNBase):
    """LSTM layer, as ``torch.nn.LSTM``, gate order (i, f, g, o).

    Parameters as :class:`RNN` (no ``nonlinearity``), plus

    proj_size : int, default 0
        With ``proj_size > 0``, ``h = W_hr (o * tanh(c))`` has ``proj_size`` features.

    Keyword only, the variants of :class:`~npseq.LSTMCell` (each layer and direction has its
    own ``ln_*`` or ``weight_ch`` parameters, suffixed ``_l0``, ``_l1_reverse``...)::

        layer_norm=False, peephole=False, activation="tanh", recurrent_activation="sigmoid"

    ``layer_norm=True`` is Ba et al.'s layer-normalised LSTM, ``layer_norm="labml"`` the
    labml annotated implementation's (a LayerNorm on each gate); see ``docs/variants.md``.

    A projection needs the plain cell (no ``layer_norm`` or ``peephole``).

    ``out, (h_n, c_n) = m(x, (h0, c0))``;
    ``dx, (dh0, dc0) = m.backward(dout, (dh_n, dc_n))``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, dtype: DTypeLike = np.float64,
                 seed: Seed = None, *, layer_norm: bool = False, peephole: bool = False,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 checkpoint_every: Optional[int] = None, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0, recurrent_dropout: float = 0.0) -> None:
        self.kind = variants.lstm_kind(layer_norm, peephole, activation, recurrent_activation)
        self.layer_norm = variants.check_layer_norm(layer_norm)  # checked by lstm_kind too
        self.peephole = bool(peephole)
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, dtype, seed,
                         checkpoint_every=checkpoint_every, weight_dropout=weight_dropout,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)


class GRU(RNNBase):
    """GRU layer, as ``torch.nn.GRU``, gate order (r, z, n).

    Parameters as :class:`RNN` (no ``nonlinearity``), plus, keyword only, the variants of
    :class:`~npseq.GRUCell`::

        reset_after=True, activation="tanh", recurrent_activation="sigmoid"

    ``out, h_n = m(x, h0)``; ``dx, dh0 = m.backward(dout, dh_n)``.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, reset_after: bool = True, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", checkpoint_every: Optional[int] = None,
                 weight_dropout: float = 0.0, zoneout: ZoneoutLike = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        self.kind = variants.gru_kind(reset_after, activation, recurrent_activation)
        self.reset_after = bool(reset_after)  # checked by gru_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         weight_dropout=weight_dropout, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout)
