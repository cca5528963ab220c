"""A recurrent layer and its heads as one model: :class:`Sequential`, and the heads
:class:`LastStep` (reads ``out``) and :class:`FinalState` (reads the final state).

:class:`Sequential` does what one writes by hand around a layer, and nothing else::

    # model = Sequential(lstm, LastStep(), Linear(H, C))   is the same as
    out, state = lstm(x, state, lengths)
    y = head(out, lengths=lengths, batch_first=lstm.batch_first)   # LastStep
    y = linear(y)
    ...
    dy = linear.backward(dy)
    dout = head.backward(dy)
    dx, dstate0 = lstm.backward(dout, dstate)

    # model = Sequential(lstm, FinalState(), Linear(D * H, C))   is the same as
    out, (h_n, c_n) = lstm(x, state, lengths)
    y = head((h_n, c_n), num_directions=lstm.num_directions)   # FinalState: (B, D * H)
    y = linear(y)
    ...
    dy = linear.backward(dy)
    dh_n, dc_n = head.backward(dy)                              # dc_n = 0
    dx, dstate0 = lstm.backward(None, (dh_n + dstate[0], dc_n + dstate[1]))

Its ``params`` and ``grads`` are flat dicts keyed ``"<index>.<name>"`` (as PyTorch's
``nn.Sequential`` state_dict) that hold the sub-modules' own arrays, so an optimizer over
``model.params`` updates the sub-modules.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple, Optional, cast

import numpy as np

from npseq import grad_mode
from npseq._typing import ArrayLike, FloatArray, State, StateLike
from npseq._validation import as_array, check_bool, check_int, check_lengths, check_shape
from npseq.layers import RNNBase
from npseq.layout import from_time_major, to_time_major
from npseq.module import Module

__all__ = ["Sequential", "LastStep", "FinalState"]


class LastStepCache(NamedTuple):
    last: np.ndarray  # (B,) index of the step taken from each sequence
    shape: tuple  # shape of ``out``
    batch_first: bool
    dtype: np.dtype


class LastStep(Module):
    """The output at the last step of each sequence: ``(T, B, F) -> (B, F)``.

    Without ``lengths`` this is ``out[-1]``; with ``lengths`` it is ``out[lengths[b] - 1, b]``
    for each sequence ``b``, its last valid step. Inside a :class:`Sequential` the model
    passes on the ``lengths`` it was called with and its layer's ``batch_first``.

    For a bidirectional layer this takes ``out[last]`` of both directions, as is usually done
    in PyTorch (the reverse direction has then seen only the last step).

    Notes
    -----
    With ``t_b = lengths[b] - 1`` (or ``T - 1``)::

        y[b]          = out[t_b, b]
        dout[t_b, b]  = dy[b],  dout = 0 at every other step

    Examples
    --------
    >>> import numpy as np, npseq
    >>> head = npseq.LastStep()
    >>> out = np.arange(12.0).reshape(3, 2, 2)          # (T, B, F)
    >>> head(out, lengths=[3, 1])
    array([[8., 9.],
           [2., 3.]])
    >>> head.backward(np.ones((2, 2)))[:, :, 0]
    array([[0., 1.],
           [0., 0.],
           [1., 0.]])
    """

    uses_lengths = True  # Sequential passes ``lengths`` and ``batch_first`` to it

    def __init__(self) -> None:
        super().__init__(np.float64)  # no parameters; outputs keep the input's dtype

    def __repr__(self):
        return "LastStep()"

    def __call__(self, out: ArrayLike, lengths: Optional[ArrayLike] = None,
                 batch_first: bool = False) -> FloatArray:
        return self.forward(out, lengths, batch_first)

    def forward(self, out: ArrayLike, lengths: Optional[ArrayLike] = None,
                batch_first: bool = False) -> FloatArray:
        """Take the output at each sequence's last valid step.

        Parameters
        ----------
        out : array_like, shape (T, B, F), (B, T, F) with ``batch_first``, or unbatched (T, F)
        lengths : array_like of int, shape (B,), optional
            Valid length of each sequence, in 1..T; None for all T.
        batch_first : bool

        Returns
        -------
        y : ndarray, shape (B, F), or (F,) for unbatched ``out``
        """
        out = np.asarray(out)
        if out.dtype.kind != "f":
            out = as_array("out", out, np.float64)
        if out.ndim not in (2, 3):
            raise ValueError(f"out: expected shape (seq_len, batch, features), (batch, "
                             f"seq_len, features) with batch_first, or (seq_len, features), "
                             f"got {out.shape}")
        batch_first = check_bool("batch_first", batch_first)
        unbatched = out.ndim == 2
        seq = to_time_major(out, batch_first, unbatched)  # (T, B, F)
        T, B = seq.shape[:2]
        last = (np.full(B, T - 1) if lengths is None
                else check_lengths(lengths, T, B, scalar_ok=unbatched) - 1)  # (B,)
        y = seq[last, np.arange(B)]  # (B, F)
        self._push(LastStepCache(last, out.shape, batch_first, out.dtype))  # not in no_grad()
        return y[0] if unbatched else y

    def backward(self, dy: Optional[ArrayLike]) -> Optional[FloatArray]:
        """Scatter ``dy`` back to the steps :meth:`forward` took; zero elsewhere.

        Returns ``dout`` shaped like ``out`` (None when ``dy`` is None).
        """
        last, shape, batch_first, dtype = self._peek()
        unbatched = len(shape) == 2
        T, B, F = (shape[0], 1, shape[1]) if unbatched else (
            (shape[1], shape[0], shape[2]) if batch_first else shape)
        if dy is not None:
            dy = check_shape("dy", as_array("dy", dy, dtype), (F,) if unbatched else (B, F),
                             "(the shape of y)")
        self._pop()  # only once dy passed its checks
        if dy is None:
            return None
        dseq = np.zeros((T, B, F), dtype)
        dseq[last, np.arange(B)] = dy.reshape(B, F)
        return from_time_major(dseq, batch_first, unbatched)


class FinalStateCache(NamedTuple):
    shapes: tuple  # shape of each part of the state: (h_n.shape,) or (h_n.shape, c_n.shape)
    num_directions: int  # D: the last D rows of h_n are read
    dtype: np.dtype


class FinalState(Module):
    """The last layer's final ``h``, its directions concatenated: ``h_n -> (B, D * H_out)``.

    PyTorch's idiom for a (bidirectional) classifier, ``torch.cat((h_n[-2], h_n[-1]),
    dim=1)``, as a head: ``Sequential(LSTM(I, H, bidirectional=True), FinalState(),
    Linear(2 * H, C))``. For an LSTM it reads the ``h_n`` of ``(h_n, c_n)``; with one
    direction it is ``h_n[-1]``. With ``lengths`` the layer's final state is already taken
    at each sequence's last valid step (as with a ``PackedSequence`` in PyTorch), so the
    reverse direction has read each whole sequence.

    Inside a :class:`Sequential` it must come right after the recurrent layer: the model
    passes it the layer's final state and ``num_directions`` instead of ``out``, and routes
    its backward into the layer's final-state gradient (``out`` then gets no gradient).

    Notes
    -----
    With ``L`` layers and ``D`` directions, ``h_n`` has rows ``l * D + d``; the last layer's
    rows are ``h_n[-D:]``, forward direction first::

        y                    = [h_n[L*D - D], ..., h_n[L*D - 1]]     concatenated on features
        dh_n[L*D - D + d]    = dy[..., d*H_out : (d+1)*H_out]        for d in 0..D-1
        dh_n                 = 0 at the rows of the other layers;  dc_n = 0

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.model import FinalState
    >>> head = FinalState()
    >>> h_n = np.arange(8.0).reshape(4, 1, 2)      # (num_layers * num_directions, B, H)
    >>> head(h_n, num_directions=2)                # cat(h_n[-2], h_n[-1])
    array([[4., 5., 6., 7.]])
    >>> head.backward(np.array([[1.0, 2.0, 3.0, 4.0]]))[:, 0]
    array([[0., 0.],
           [0., 0.],
           [1., 2.],
           [3., 4.]])
    """

    uses_state = True  # Sequential passes it the layer's final state and num_directions

    def __init__(self) -> None:
        super().__init__(np.float64)  # no parameters; outputs keep the state's dtype

    def __repr__(self) -> str:
        return "FinalState()"

    def __call__(self, state: StateLike, num_directions: int = 1) -> FloatArray:
        return self.forward(state, num_directions)

    def forward(self, state: StateLike, num_directions: int = 1) -> FloatArray:
        """Concatenate the last layer's final ``h`` over its directions.

        Parameters
        ----------
        state : ndarray ``h_n``, or a tuple ``(h_n, c_n)`` (LSTM)
            As a recurrent layer returns it: ``h_n`` of shape (num_layers * num_directions,
            B, H_out), or (num_layers * num_directions, H_out) for unbatched input.
        num_directions : {1, 2}, default 1
            2 for a bidirectional layer.

        Returns
        -------
        y : ndarray, shape (B, num_directions * H_out), or (num_directions * H_out,) for
            unbatched ``h_n``
        """
        num_directions = check_int("num_directions", num_directions, minimum=1, maximum=2)
        parts = tuple(state) if isinstance(state, (tuple, list)) else (state,)
        if len(parts) not in (1, 2):
            raise TypeError(f"state: expected h_n or a tuple (h_n, c_n), got a "
                            f"{type(state).__name__} of length {len(parts)}")
        names: tuple[str, ...] = ("state",) if len(parts) == 1 else ("state[0] (h_n)", "state[1] (c_n)")
        arrays = [p if isinstance(p, np.ndarray) and p.dtype.kind == "f"
                  else as_array(name, p, np.float64) for name, p in zip(names, parts)]
        h_n = arrays[0]
        if h_n.ndim not in (2, 3) or len(h_n) % num_directions:
            raise ValueError(f"{names[0]}: expected h_n of shape (num_layers * "
                             f"num_directions, batch, H_out) or unbatched (num_layers * "
                             f"num_directions, H_out), its first axis a multiple of "
                             f"num_directions ({num_directions}), got {h_n.shape}")
        if len(arrays) == 2 and arrays[1].shape[:-1] != h_n.shape[:-1]:
            raise ValueError(f"{names[1]}: expected shape {h_n.shape[:-1] + ('hidden_size',)} "
                             f"(that of h_n but the last axis), got {arrays[1].shape}")
        shapes = tuple(a.shape for a in arrays)
        y = np.concatenate(list(h_n[-num_directions:]), axis=-1)  # (B, D * H_out)
        self._push(FinalStateCache(shapes, num_directions, h_n.dtype))  # not in no_grad()
        return y

    def backward(self, dy: Optional[ArrayLike]) -> Optional[State]:
        """Put ``dy`` back into the last layer's rows of ``dh_n``; zero elsewhere.

        Returns the gradient of the state, shaped like it: ``dh_n``, or ``(dh_n, dc_n)``
        with ``dc_n = 0`` for an LSTM's state (None when ``dy`` is None).
        """
        shapes, D, dtype = self._peek()
        h_shape = shapes[0]  # (L*D, B, H_out) or (L*D, H_out)
        if dy is not None:
            dy = check_shape("dy", as_array("dy", dy, dtype),
                             h_shape[1:-1] + (D * h_shape[-1],), "(the shape of y)")
        self._pop()  # only once dy passed its checks
        if dy is None:
            return None
        dh_n = np.zeros(h_shape, dtype)
        for d, dy_d in enumerate(np.split(dy, D, axis=-1)):  # forward direction first
            dh_n[len(dh_n) - D + d] = dy_d  # the last layer's rows only
        if len(shapes) == 1:
            return dh_n
        return dh_n, np.zeros(shapes[1], dtype)  # (dh_n, dc_n), dc_n = 0


def _add_states(a: Any, b: Any) -> Any:
    """The sum of two state gradients (``dh`` or ``(dh, dc)``), None standing for zero."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(b, tuple):
        return tuple(_add_states(ai, bi) for ai, bi in zip(a, b))
    return np.asarray(a) + b


class Sequential(Module):
    """A recurrent layer with modules before it (e.g. an Embedding) and heads after it.

    Parameters
    ----------
    *modules : npseq modules
        Exactly one recurrent layer (:class:`~npseq.RNN`, :class:`~npseq.LSTM`,
        :class:`~npseq.GRU`); the modules before it transform ``x`` (e.g. an
        :class:`~npseq.Embedding` of token ids), the heads after it transform the layer's
        ``out`` (e.g. :class:`LastStep`, :class:`~npseq.Linear`), or its final state
        (:class:`FinalState`, right after the layer). The usual call is
        ``Sequential(rnn, *heads)``. Every module with parameters must have the same dtype.

    Attributes
    ----------
    params, grads : dict
        Keyed ``"<index>.<name>"`` (``"0.weight_ih_l0"``, ``"1.weight"`` ...), holding the
        sub-modules' live arrays.

    Notes
    -----
    Forward applies the modules in order; backward applies their backwards in reverse
    order, each consuming the record of its latest forward (a backward pairs with the
    latest forward call, once, as for a single layer)::

        x_0 = x
        x_{i+1} = m_i(x_i)                  out, state = rnn(x_r, state, lengths)
        dx_i = m_i.backward(dx_{i+1})       dx_r, dstate0 = rnn.backward(dout, dstate)

    A module after the layer that declares ``uses_lengths = True`` (as :class:`LastStep`)
    is called as ``m(y, lengths=lengths, batch_first=rnn.batch_first)``. A module that
    declares ``uses_state = True`` (as :class:`FinalState`) must come right after the layer;
    it is called as ``m(state, num_directions=rnn.num_directions)`` on the layer's final
    state, and its backward's result is added to ``dstate`` (``dout`` is then zero)::

        y_{r+1} = m_{r+1}(state)            dstate' = dstate + m_{r+1}.backward(dy_{r+1})
                                            dx_r, dstate0 = rnn.backward(0, dstate')

    Examples
    --------
    >>> import numpy as np, npseq
    >>> model = npseq.Sequential(npseq.LSTM(3, 8, seed=0), npseq.LastStep(),
    ...                          npseq.Linear(8, 2, seed=1))
    >>> y, (h, c) = model(np.ones((5, 4, 3)), lengths=[5, 3, 2, 5])
    >>> y.shape
    (4, 2)
    >>> dx, (dh0, dc0) = model.backward(np.ones((4, 2)))
    >>> sorted(model.params)[:2]
    ['0.bias_hh_l0', '0.bias_ih_l0']
    """

    def __init__(self, *modules: Module) -> None:
        layers = [i for i, m in enumerate(modules) if isinstance(m, RNNBase)]
        if len(layers) != 1:
            raise ValueError(f"modules: expected exactly one recurrent layer (npseq.RNN, "
                             f"LSTM or GRU), got {len(layers)} among "
                             f"{[type(m).__name__ for m in modules]}")
        for i, m in enumerate(modules):
            if not isinstance(m, Module) or not callable(getattr(m, "backward", None)):
                raise TypeError(f"modules[{i}]: expected an npseq module with forward and "
                                f"backward (Linear, Embedding, LastStep, ...), got "
                                f"{type(m).__name__}")
        for i, m in enumerate(modules):
            if getattr(m, "uses_state", False) and i != layers[0] + 1:
                raise ValueError(f"modules[{i}]: {type(m).__name__} reads the recurrent "
                                 f"layer's final state, so it must come right after the layer "
                                 f"(at index {layers[0] + 1}), got it at index {i}")
        self.modules: list[Any] = list(modules)
        self.index = layers[0]
        self.rnn = cast(RNNBase, modules[self.index])
        super().__init__(self.rnn.dtype)
        for i, m in enumerate(modules):
            if m.params and m.dtype != self.dtype:
                raise ValueError(f"modules[{i}]: expected dtype {self.dtype} (that of the "
                                 f"recurrent layer), got {type(m).__name__} of dtype "
                                 f"{m.dtype}")
        self.params = {f"{i}.{k}": v for i, m in enumerate(modules) for k, v in m.params.items()}
        self.grads = {f"{i}.{k}": v for i, m in enumerate(modules) for k, v in m.grads.items()}
        self.training = self.rnn.training

    @property
    def batch_first(self) -> bool:
        """The recurrent layer's ``batch_first``: the layout of ``x`` (and of ``y`` while it
        has a time axis)."""
        return self.rnn.batch_first

    def __getitem__(self, i: int) -> Module:
        return self.modules[i]

    def __len__(self) -> int:
        return len(self.modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.modules)

    def __repr__(self):
        inner = "".join(f"\n  ({i}): {m!r}" for i, m in enumerate(self.modules))
        return f"Sequential({inner}\n)"

    def train(self, mode: bool = True) -> Sequential:
        """Set training mode on every sub-module (dropout active); returns self."""
        super().train(mode)
        for m in self.modules:
            m.train(mode)
        return self

    @property
    def pending_records(self) -> int:
        """Forward records waiting for a backward (those of the recurrent layer)."""
        return self.rnn.pending_records

    def clear_records(self) -> Sequential:
        """Drop the pending forward records of every module; returns self."""
        for m in self.modules:
            m.clear_records()
        return self

    def __call__(self, x: ArrayLike, state: StateLike = None,
                 lengths: Optional[ArrayLike] = None) -> tuple[FloatArray, State]:
        return self.forward(x, state, lengths)

    def forward(self, x: ArrayLike, state: StateLike = None,
                lengths: Optional[ArrayLike] = None) -> tuple[FloatArray, State]:
        """Run the modules in order.

        Parameters
        ----------
        x : the input of the first module: for the layer itself, (T, B, input_size),
            (B, T, input_size) with ``batch_first``, or unbatched (T, input_size)
        state : the layer's initial state, None for zeros
        lengths : array_like of int, shape (B,), optional
            Valid length of each sequence; passed to the layer and to the heads that use it.

        Returns
        -------
        y : the output of the last module
        state : the layer's final state (``h_n``, or ``(h_n, c_n)`` for LSTM)
        """
        self._drop_unpaired("a new forward call replaced it" if grad_mode.is_grad_enabled()
                            else "a forward inside npseq.no_grad() followed it")
        for m in self.modules[:self.index]:
            x = m(x)
        y, state = self.rnn(x, state, lengths)
        for m in self.modules[self.index + 1:]:
            if getattr(m, "uses_state", False):  # right after the layer: reads its state
                y = m(state, num_directions=self.rnn.num_directions)
            elif getattr(m, "uses_lengths", False):
                y = m(y, lengths=lengths, batch_first=self.rnn.batch_first)
            else:
                y = m(y)
        return y, state

    def backward(self, dy: Optional[ArrayLike], dstate: StateLike = None
                 ) -> tuple[Optional[FloatArray], State]:
        """Backward of the most recent forward call not yet paired with a backward.

        Parameters
        ----------
        dy : gradient of ``y``, shaped like it (None for zero)
        dstate : gradient of the final state (None for zero)

        Returns
        -------
        dx : gradient of ``x`` (None when the first module is an Embedding)
        dstate0 : gradient of the initial state

        Every sub-module adds its parameter gradients into its ``grads`` (the same arrays as
        this model's :attr:`grads`).
        """
        self.rnn.check_dstate(dstate)  # before any sub-module consumes its record
        for m in reversed(self.modules[self.index + 1:]):
            if getattr(m, "uses_state", False):  # its gradient goes to the final state
                dstate = _add_states(dstate, m.backward(dy))
                dy = None  # out fed no head: its gradient is zero
            else:
                dy = m.backward(dy)
        dx, dstate0 = self.rnn.backward(dy, dstate)
        for m in reversed(self.modules[:self.index]):
            dx = m.backward(dx)
        return dx, dstate0
