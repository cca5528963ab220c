"""Cell objects: one time step, with PyTorch's ``torch.nn.RNNCell/LSTMCell/GRUCell`` API.

Each call pushes its cache and each ``backward`` pops the most recent one, so a loop over time
written by hand runs its backward in reverse order, as backpropagation through time does::

    cell = npseq.LSTMCell(3, 5, seed=0)
    state = None
    for x_t in xs:                       # forward, t = 0, 1, 2
        state = cell(x_t, state)
    dstate = (dh, dc)
    for t in reversed(range(3)):         # backward, t = 2, 1, 0
        dx_t, dstate = cell.backward(dstate)
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq._typing import ArrayLike, DTypeLike, FloatArray, Seed, State, StateLike, ZoneoutLike
from npseq._validation import as_array, check_bool, check_choice, check_dtype, check_int, make_rng
from npseq.cells import base, rnn, variants
from npseq.layers import check_recurrent_regularisers, zoneout_rates
from npseq.layout import carries_from_state, state_from_carries
from npseq.module import Module
from npseq.params import init_params, param_specs
from npseq.stack import dropout_mask

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "CellRecord"]

#: The cells' regularisation options with their defaults (for repr).
_REGULARISATION = dict(recurrent_dropout=0.0, weight_dropout=0.0, zoneout=0.0)


class CellRecord(NamedTuple):
    """What one call of a cell leaves for its backward."""

    cache: base.CellCache
    batch: int
    unbatched: bool
    weight_mask: Optional[np.ndarray]  # (G*H, H) weight_dropout's scaled mask of W_hh, or None
    recurrent_mask: Optional[np.ndarray]  # (B, H) recurrent_dropout's scaled mask, or None
    zoneout: Optional[tuple]  # per state: None, the keep probability, or a (B, H) 0/1 mask


class RNNCellBase(Module):
    """One step of a recurrent cell of any :class:`~npseq.CellKind`, as
    ``torch.nn.RNNCellBase``; subclasses fix the kind.

    Every call keeps a record and :meth:`backward` pops the most recent one (a last-in
    first-out stack, ``keeps_stack = True``), so a loop over time written by hand runs its
    backward in reverse order; :meth:`clear_records` empties the stack.

    Regularisation (keyword only, all 0 by default, active in training mode only; see
    ``docs/regularisation.md``). A cell does not know where a sequence starts, so it keeps
    the masks that belong to a whole sequence, as Keras's cells do: **the recurrent dropout
    mask and the weight-drop mask are drawn from** :attr:`rng` **at the first training call
    after construction or after** :meth:`reset_dropout_mask`, **and kept until the next
    reset**; call ``reset_dropout_mask()`` before each new sequence (or batch). Zoneout
    draws a fresh mask at every call (every step). The kept masks are the attributes
    :attr:`recurrent_mask` and :attr:`weight_mask`, the latest call's zoneout masks
    :attr:`zoneout_mask` (None when not drawn).

    Parameters
    ----------
    input_size, hidden_size, bias, dtype, seed : as :class:`RNNCell`
    recurrent_dropout : float in [0, 1)
        ``h_prev`` enters the recurrent product as ``m * h_prev``, ``m`` of shape
        (batch, hidden_size), kept entries 1/(1-p) (Gal & Ghahramani 2016).
    weight_dropout : float in [0, 1)
        DropConnect on ``weight_hh``: ``W_hh * M``, one mask of W_hh's shape, kept entries
        1/(1-p) (Wan et al. 2013).
    zoneout : float in [0, 1), or ``(p_h, p_c)`` for two states
        Each unit keeps its previous value with probability p (Krueger et al. 2017); in
        evaluation the new state is ``p * prev + (1 - p) * new``.
    """

    kind: base.CellKind
    keeps_stack = True

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None, *,
                 recurrent_dropout: float = 0.0, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0) -> None:
        super().__init__(check_dtype(dtype))
        self.input_size = check_int("input_size", input_size, minimum=1)
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        self.bias = check_bool("bias", bias)
        self.recurrent_dropout, self.weight_dropout = check_recurrent_regularisers(
            self.kind, recurrent_dropout, weight_dropout)
        rates = zoneout_rates(zoneout, self.kind.num_states)
        self.zoneout = rates[0] if len(set(rates)) == 1 else rates  # as given, for repr/save
        self.rng = make_rng(seed)  # draws the initial weights, then the masks
        specs = param_specs(self.kind, self.input_size, self.hidden_size, self.bias)
        self.params = init_params(self.rng, specs, self.hidden_size, self.dtype)
        self._init_grads()
        self.recurrent_mask: Optional[np.ndarray] = None  # (B, H) kept until
        # reset_dropout_mask()
        self.weight_mask: Optional[np.ndarray] = None  # (G*H, H) kept until reset_dropout_mask()
        self.zoneout_mask: Optional[tuple] = None  # the latest training call's zoneout masks,
        # per state

    def __repr__(self):
        options = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                          {**variants.VARIANT_DEFAULTS, **_REGULARISATION}.items()
                          if getattr(self, k, d) != d)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"bias={self.bias}{options}, dtype={self.dtype.name})")

    def reset_dropout_mask(self) -> "RNNCellBase":
        """Forget the kept recurrent-dropout and weight-drop masks: the next training call
        draws new ones. Call it at the start of every sequence (or batch). Returns self."""
        self.recurrent_mask = None
        self.weight_mask = None
        return self

    def _masks(self, batch: int) -> tuple:
        """The masks of a call: ``(weight_mask, recurrent_mask, zoneout)``, drawn as the
        class docstring says (nothing drawn in evaluation or at rate 0)."""
        if not self.training:
            rates = zoneout_rates(self.zoneout, self.kind.num_states)
            return None, None, (tuple(z or None for z in rates) if any(rates) else None)
        if self.weight_dropout > 0 and self.weight_mask is None:
            self.weight_mask = dropout_mask(self.rng, self.params["weight_hh"].shape,
                                            self.weight_dropout, self.dtype)
        if self.recurrent_dropout > 0:
            if self.recurrent_mask is None:
                self.recurrent_mask = dropout_mask(self.rng, (batch, self.hidden_size),
                                                   self.recurrent_dropout, self.dtype)
            elif self.recurrent_mask.shape[0] != batch:
                raise ValueError(f"x: the kept recurrent-dropout mask is for a batch of "
                                 f"{self.recurrent_mask.shape[0]}, got a batch of {batch}; "
                                 f"call reset_dropout_mask() before a new batch")
        zones = None
        rates = zoneout_rates(self.zoneout, self.kind.num_states)
        if any(rates):  # a 0/1 keep mask per state, fresh at every step
            zones = tuple((self.rng.random((batch, self.hidden_size)) < z).astype(self.dtype)
                          if z > 0 else None for z in rates)
            self.zoneout_mask = zones
        return self.weight_mask, self.recurrent_mask, zones

    def _step_params(self, weight_mask: Optional[np.ndarray]) -> dict:
        """The parameters a step reads: ``W_hh * M`` under weight drop."""
        if weight_mask is None:
            return self.params
        return dict(self.params, weight_hh=self.params["weight_hh"] * weight_mask)

    # -- the public step -------------------------------------------------------------------
    def __call__(self, x: ArrayLike, state: StateLike = None) -> State:
        return self.forward(x, state)

    def forward(self, x: ArrayLike, state: StateLike = None) -> State:
        """One step: ``x`` of shape (B, input_size) or unbatched (input_size,).

        ``state`` is the previous state (None for zeros); returns the new state. The record
        for :meth:`backward` is pushed unless inside :func:`npseq.no_grad`.

        Notes
        -----
        With the options on (``m`` the recurrent mask, ``M`` the weight mask, ``z`` zoneout's
        0/1 mask in training or its rate in evaluation, per state)::

            new = step(x, (m * h_prev, c_prev); W_hh * M)     the GRU: m inside its step
            carry = z * carry_prev + (1 - z) * new
        """
        x = as_array("x", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {x.shape}")
        unbatched = x.ndim == 1
        xb = x[None] if unbatched else x
        carry_prev = self.state_to_carry(state, xb.shape[0], unbatched)
        weight_mask, recurrent_mask, zones = self._masks(xb.shape[0])
        carry, cache = base.cell_forward(self.kind, xb, carry_prev,
                                         self._step_params(weight_mask), recurrent_mask)
        if zones is not None:  # keep the previous value with weight z, per state
            carry = tuple(n if z is None else z * c + (1 - z) * n
                          for n, c, z in zip(carry, carry_prev, zones))
        self._push(CellRecord(cache, xb.shape[0], unbatched, weight_mask, recurrent_mask,
                              zones))  # nothing inside no_grad()
        return self.carry_to_state(carry, unbatched)

    def backward(self, dstate: StateLike) -> tuple[FloatArray, State]:
        """Backward of the most recent :meth:`forward` call not yet paired with one.

        Returns ``(dx, dstate_prev)`` and adds the parameter gradients into ``grads``.

        Notes
        -----
        The forward's lines in reverse::

            dnew = (1 - z) * dcarry ;  dcarry_prev = z * dcarry      zoneout's two paths
            dx, dcarry_prev += step backward of dnew                 (m * dh_prev for m)
            dW_hh = dW_hh_masked * M                                 weight drop
        """
        record = self._peek()
        dcarry = self.state_to_carry(dstate, record.batch, record.unbatched,
                                     argname="dstate", allow_none=False)
        self._pop()  # only once dstate passed its checks
        dnew, dkept = dcarry, None
        if record.zoneout is not None:  # the step's share (1 - z), the kept share z
            dnew = tuple(d if z is None else (1 - z) * d for d, z in zip(dcarry, record.zoneout))
            dkept = tuple(None if z is None else z * d for d, z in zip(dcarry, record.zoneout))
        dx, dcarry_prev, dparams = base.cell_backward(
            self.kind, dnew, record.cache, self._step_params(record.weight_mask),
            record.recurrent_mask)
        if dkept is not None:
            dcarry_prev = tuple(d if k is None else d + k for d, k in zip(dcarry_prev, dkept))
        if record.weight_mask is not None:  # W_hh entered as W_hh * M
            dparams["weight_hh"] = dparams["weight_hh"] * record.weight_mask
        self._accumulate(dparams)
        dx = dx[0] if record.unbatched else dx
        return dx, self.carry_to_state(dcarry_prev, record.unbatched)

    # -- the public state and the carry ----------------------------------------------------
    def state_to_carry(self, state: StateLike, batch: int, unbatched: bool = False,
                       argname: str = "state", allow_none: bool = True) -> tuple:
        """A public state (an array, or ``(h, c)`` for two states) or its gradient -> the
        carry tuple of (B, H) arrays, checked and cast; None gives zeros."""
        sizes = self.kind.carry_sizes(self.hidden_size)
        labels = tuple(("d" if argname.startswith("d") else "") + name
                       for name in self.kind.carry_names())
        what = tuple(f"({size},)" if unbatched else f"(batch, {size})" for size in sizes)
        if self.kind.state_sizes is None:
            what = ("(hidden_size,)" if unbatched else "(batch, hidden_size)",) * len(sizes)
        return carries_from_state(argname, state, labels=labels,
                                  shapes=tuple((batch, size) for size in sizes), what=what,
                                  dtype=self.dtype, owner=type(self).__name__,
                                  unbatched=unbatched, allow_none=allow_none)

    def carry_to_state(self, carry: tuple, unbatched: bool = False) -> State:
        """The carry tuple -> the public state (``h`` or ``(h, c)``)."""
        return state_from_carries(carry, unbatched)


class RNNCell(RNNCellBase):
    """Elman RNN cell, ``h = act(W_ih x + b_ih + W_hh h_prev + b_hh)``, as torch.nn.RNNCell.

    Parameters
    ----------
    input_size, hidden_size : int
    bias : bool
        With ``bias_ih`` and ``bias_hh``.
    nonlinearity : {"tanh", "relu"}
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of the initial weights, U(-1/sqrt(H), 1/sqrt(H)), then of the masks.
    recurrent_dropout, weight_dropout, zoneout : keyword only, default 0
        Regularisation in training mode; the recurrent and weight masks are kept from the
        first training call until :meth:`~RNNCellBase.reset_dropout_mask` (see
        :class:`RNNCellBase`).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> cell = npseq.RNNCell(3, 4, seed=0)
    >>> h = cell(np.ones((2, 3)))
    >>> dx, dh_prev = cell.backward(np.ones((2, 4)))
    >>> dx.shape, dh_prev.shape
    ((2, 3), (2, 4))
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: DTypeLike = np.float64,
                 seed: Seed = None, *, recurrent_dropout: float = 0.0,
                 weight_dropout: float = 0.0, zoneout: ZoneoutLike = 0.0) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.kind = rnn.RNN_TANH if nonlinearity == "tanh" else rnn.RNN_RELU
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout,
                         zoneout=zoneout)


class LSTMCell(RNNCellBase):
    """LSTM cell with gate order (i, f, g, o), as torch.nn.LSTMCell.

    ``h, c = cell(x, (h, c))``; ``dx, (dh_prev, dc_prev) = cell.backward((dh, dc))``, where
    either of ``dh``, ``dc`` may be None for zero. Parameters as :class:`RNNCell` (no
    ``nonlinearity``; ``zoneout`` may be ``(p_h, p_c)``), plus the variants (keyword only;
    see :mod:`npseq.cells.variants`):

    layer_norm : bool or "labml", default False
        True: layer normalisation of both projections and of ``c`` before the output
        activation (Ba et al. 2016), with gains ``ln_*_weight`` (init 1) and biases
        ``ln_*_bias`` (init 0): :mod:`npseq.cells.lstm_layernorm`. "labml": the labml
        annotated implementation's placement, one LayerNorm on each gate pre-activation of
        the summed projections (``ln_i_*``, ``ln_f_*``, ``ln_g_*``, ``ln_o_*``) and one on
        ``c`` (``ln_c_*``): :mod:`npseq.cells.lstm_labml`.
    peephole : bool, default False
        Peephole connections (Gers et al. 2002), ``weight_ch`` of shape (3, hidden_size):
        :mod:`npseq.cells.lstm_peephole`. At most one of ``layer_norm``, ``peephole``.
    activation : str, default "tanh"
        Replaces tanh on the candidate g and on the cell output (e.g. "relu").
    recurrent_activation : str, default "sigmoid"
        Replaces the sigmoid of the gates i, f, o (e.g. "hard_sigmoid").
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None, *, layer_norm: bool = False,
                 peephole: bool = False, activation: str = "tanh",
                 recurrent_activation: str = "sigmoid", recurrent_dropout: float = 0.0,
                 weight_dropout: float = 0.0, zoneout: ZoneoutLike = 0.0) -> None:
        self.kind = variants.lstm_kind(layer_norm, peephole, activation, recurrent_activation)
        self.layer_norm = variants.check_layer_norm(layer_norm)  # checked by lstm_kind too
        self.peephole = bool(peephole)
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout,
                         zoneout=zoneout)


class GRUCell(RNNCellBase):
    """GRU cell with gate order (r, z, n), as torch.nn.GRUCell.

    ``h = cell(x, h)``; ``dx, dh_prev = cell.backward(dh)``. Parameters as :class:`RNNCell`
    (no ``nonlinearity``), plus the variants (keyword only; see :mod:`npseq.cells.variants`):

    reset_after : bool, default True
        PyTorch's GRU, ``n = tanh(W_in x + b_in + r * (W_hn h_prev + b_hn))``; with False the
        original GRU (Cho et al. 2014), ``n = tanh(W_in x + b_in + W_hn (r * h_prev) + b_hn)``:
        :mod:`npseq.cells.gru_reset_before`.
    activation : str, default "tanh"
        Replaces tanh on the candidate n.
    recurrent_activation : str, default "sigmoid"
        Replaces the sigmoid of the gates r, z.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None, *, reset_after: bool = True,
                 activation: str = "tanh", recurrent_activation: str = "sigmoid",
                 recurrent_dropout: float = 0.0, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0) -> None:
        self.kind = variants.gru_kind(reset_after, activation, recurrent_activation)
        self.reset_after = bool(reset_after)  # checked by gru_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout,
                         zoneout=zoneout)
