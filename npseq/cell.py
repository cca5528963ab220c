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

import numpy as np

from npseq._validation import as_array, check_bool, check_choice, check_dtype, check_int, make_rng
from npseq.cells import base, rnn, variants
from npseq.layout import carries_from_state, state_from_carries
from npseq.module import Module
from npseq.params import init_params, param_specs

__all__ = ["RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]


class RNNCellBase(Module):
    """One step of a recurrent cell of any :class:`~npseq.CellKind`, as
    ``torch.nn.RNNCellBase``; subclasses fix the kind.

    Every call keeps a record and :meth:`backward` pops the most recent one (a last-in
    first-out stack, ``keeps_stack = True``), so a loop over time written by hand runs its
    backward in reverse order; :meth:`clear_records` empties the stack.
    """

    kind: base.CellKind
    keeps_stack = True

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, seed=None):
        super().__init__(check_dtype(dtype))
        self.input_size = check_int("input_size", input_size, minimum=1)
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        self.bias = check_bool("bias", bias)
        specs = param_specs(self.kind, self.input_size, self.hidden_size, self.bias)
        self.params = init_params(make_rng(seed), specs, self.hidden_size, self.dtype)
        self._init_grads()

    def __repr__(self):
        options = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                          variants.VARIANT_DEFAULTS.items() if getattr(self, k, d) != d)
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, "
                f"bias={self.bias}{options}, dtype={self.dtype.name})")

    # -- the public step -------------------------------------------------------------------
    def __call__(self, x, state=None):
        return self.forward(x, state)

    def forward(self, x, state=None):
        """One step: ``x`` of shape (B, input_size) or unbatched (input_size,).

        ``state`` is the previous state (None for zeros); returns the new state. The record
        for :meth:`backward` is pushed unless inside :func:`npseq.no_grad`.
        """
        x = as_array("x", x, self.dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"x: expected shape (batch, {self.input_size}) or "
                             f"({self.input_size},), got {x.shape}")
        unbatched = x.ndim == 1
        xb = x[None] if unbatched else x
        carry = self.state_to_carry(state, xb.shape[0], unbatched)
        carry, cache = base.cell_forward(self.kind, xb, carry, self.params)
        self._push((cache, xb.shape[0], unbatched))  # nothing inside no_grad()
        return self.carry_to_state(carry, unbatched)

    def backward(self, dstate):
        """Backward of the most recent :meth:`forward` call not yet paired with one.

        Returns ``(dx, dstate_prev)`` and adds the parameter gradients into ``grads``.
        """
        cache, batch, unbatched = self._peek()
        dcarry = self.state_to_carry(dstate, batch, unbatched, argname="dstate",
                                     allow_none=False)
        self._pop()  # only once dstate passed its checks
        dx, dcarry_prev, dparams = base.cell_backward(self.kind, dcarry, cache, self.params)
        self._accumulate(dparams)
        dx = dx[0] if unbatched else dx
        return dx, self.carry_to_state(dcarry_prev, unbatched)

    # -- the public state and the carry ----------------------------------------------------
    def state_to_carry(self, state, batch: int, unbatched: bool = False,
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

    def carry_to_state(self, carry: tuple, unbatched: bool = False):
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
        Source of the initial weights, U(-1/sqrt(H), 1/sqrt(H)).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> cell = npseq.RNNCell(3, 4, seed=0)
    >>> h = cell(np.ones((2, 3)))
    >>> dx, dh_prev = cell.backward(np.ones((2, 4)))
    >>> dx.shape, dh_prev.shape
    ((2, 3), (2, 4))
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh",
                 dtype=np.float64, seed=None):
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("tanh", "relu"))
        self.kind = rnn.RNN_TANH if nonlinearity == "tanh" else rnn.RNN_RELU
        super().__init__(input_size, hidden_size, bias, dtype, seed)


class LSTMCell(RNNCellBase):
    """LSTM cell with gate order (i, f, g, o), as torch.nn.LSTMCell.

    ``h, c = cell(x, (h, c))``; ``dx, (dh_prev, dc_prev) = cell.backward((dh, dc))``, where
    either of ``dh``, ``dc`` may be None for zero. Parameters as :class:`RNNCell` (no
    ``nonlinearity``), plus the variants (keyword only; see :mod:`npseq.cells.variants`):

    layer_norm : bool, default False
        Layer normalisation of both projections and of ``c`` before the output activation
        (Ba et al. 2016), with gains ``ln_*_weight`` (init 1) and biases ``ln_*_bias``
        (init 0): :mod:`npseq.cells.lstm_layernorm`.
    peephole : bool, default False
        Peephole connections (Gers et al. 2002), ``weight_ch`` of shape (3, hidden_size):
        :mod:`npseq.cells.lstm_peephole`. At most one of ``layer_norm``, ``peephole``.
    activation : str, default "tanh"
        Replaces tanh on the candidate g and on the cell output (e.g. "relu").
    recurrent_activation : str, default "sigmoid"
        Replaces the sigmoid of the gates i, f, o (e.g. "hard_sigmoid").
    """

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, seed=None, *,
                 layer_norm=False, peephole=False, activation="tanh",
                 recurrent_activation="sigmoid"):
        self.kind = variants.lstm_kind(layer_norm, peephole, activation, recurrent_activation)
        self.layer_norm, self.peephole = bool(layer_norm), bool(peephole)  # checked by lstm_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, bias, dtype, seed)


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

    def __init__(self, input_size, hidden_size, bias=True, dtype=np.float64, seed=None, *,
                 reset_after=True, activation="tanh", recurrent_activation="sigmoid"):
        self.kind = variants.gru_kind(reset_after, activation, recurrent_activation)
        self.reset_after = bool(reset_after)  # checked by gru_kind
        self.activation, self.recurrent_activation = activation, recurrent_activation
        super().__init__(input_size, hidden_size, bias, dtype, seed)
