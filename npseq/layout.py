"""The layout of arrays at the public boundary, converted once, in one place.

Inside npseq everything is time-major: a sequence batch is ``(T, B, features)`` and a state
is a tuple of carries, each ``(L*D, B, features)`` for a layer (``L*D`` = layers times
directions) or ``(B, features)`` for a cell. At the boundary a caller may pass
``batch_first`` arrays ``(B, T, features)``, unbatched ones (no ``B`` axis), and a state as
one array (``h``) or a tuple (``(h, c)``). The functions here convert between the two and
check what they convert; layers, cells, models and the study tools all use them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from npseq._typing import ArrayLike, DTypeLike, State, StateLike
from npseq._validation import as_array, check_lengths, check_shape

__all__ = ["to_time_major", "from_time_major", "sequence_input", "carries_from_state",
           "state_from_carries", "lengths_mask"]


def to_time_major(x: np.ndarray, batch_first: bool, unbatched: bool) -> np.ndarray:
    """``(T, B, F)`` from ``(T, B, F)``, ``(B, T, F)`` with ``batch_first``, or unbatched
    ``(T, F)`` (as a batch of one). A view, not a copy."""
    if unbatched:
        return x[:, None]
    return x.transpose(1, 0, 2) if batch_first else x


def from_time_major(y: np.ndarray, batch_first: bool, unbatched: bool) -> np.ndarray:
    """The inverse of :func:`to_time_major`: ``(T, B, F)`` back to the caller's layout."""
    if unbatched:
        return y[:, 0]
    return y.transpose(1, 0, 2) if batch_first else y


def sequence_input(x: ArrayLike, dtype: DTypeLike, input_size: int, batch_first: bool,
                   name: str = "x") -> tuple[np.ndarray, bool]:
    """A layer's input, checked and cast: ``(x as (T, B, D), unbatched)``.

    Raises
    ------
    ValueError
        ``x`` is not ``(seq_len, batch, input_size)`` (``(batch, seq_len, input_size)``
        with ``batch_first``) or unbatched ``(seq_len, input_size)``, or has no time step or
        no sequence.
    """
    x = as_array(name, x, dtype)
    if x.ndim not in (2, 3) or x.shape[-1] != input_size:
        layout = "(batch, seq_len" if batch_first else "(seq_len, batch"
        raise ValueError(f"{name}: expected shape {layout}, {input_size}) or unbatched "
                         f"(seq_len, {input_size}), got {x.shape}")
    unbatched = x.ndim == 2
    xb = to_time_major(x, batch_first, unbatched)
    if 0 in xb.shape[:2]:
        raise ValueError(f"{name}: expected at least one time step and one sequence, got "
                         f"shape {x.shape}")
    return xb, unbatched


def carries_from_state(argname: str, state: StateLike, *, labels: tuple, shapes: tuple,
                       what: tuple, dtype: DTypeLike, owner: str, unbatched: bool,
                       allow_none: bool = True) -> tuple:
    """A public state (an array, or a tuple of two or more) -> the carry tuple, checked and
    cast.

    Parameters
    ----------
    argname : the argument's name in messages ("state", "dstate", "h0" ...)
    state : None (zeros, if ``allow_none``), an array (one label), or a tuple/list of
        ``len(labels)`` parts, each None (zeros) or an array
    labels : one name per part, e.g. ("h0", "c0")
    shapes : the expected *batched* shape of each part, e.g. ((L*D, B, H_out), (L*D, B, H))
    what : one description per part for messages, e.g. "(num_layers * num_directions,
        batch, hidden_size)"
    owner : the class name, for messages
    unbatched : the parts come without their batch axis (the second to last)

    Returns
    -------
    tuple of arrays of ``shapes`` (a batch axis of 1 inserted for unbatched input)
    """
    n = len(labels)
    given_shapes = tuple(s[:-2] + s[-1:] for s in shapes) if unbatched else shapes
    if state is None:
        if not allow_none:
            raise TypeError(f"{argname}: expected the gradient of the new state, got None")
        return tuple(np.zeros(s, dtype) for s in shapes)
    if n >= 2:
        if not isinstance(state, (tuple, list)) or len(state) != n:
            given = (f"a {type(state).__name__} of length {len(state)}"
                     if isinstance(state, (tuple, list)) else type(state).__name__)
            raise TypeError(f"{argname}: expected a tuple ({', '.join(labels)}) for {owner}, "
                            f"got {given}")
        parts = tuple(state)
        names = tuple(f"{argname}[{i}] ({labels[i]})" for i in range(n))
    else:
        if isinstance(state, (tuple, list)):
            raise TypeError(f"{argname}: expected an array for {owner}, got a "
                            f"{type(state).__name__} (only states of several parts, as the "
                            f"LSTM's, are tuples)")
        parts, names = (state,), (f"{argname} ({labels[0]})",)
    carries = []
    for name, part, shape, description in zip(names, parts, given_shapes, what):
        if part is None:  # one part of an LSTM (or longer) state or of its gradient: zeros
            part = np.zeros(shape, dtype)
        part = check_shape(name, as_array(name, part, dtype), shape, description)
        carries.append(np.expand_dims(part, -2) if unbatched else part)
    return tuple(carries)


def state_from_carries(carries: tuple, unbatched: bool) -> State:
    """The carry tuple -> the public state: its batch axis dropped for unbatched input, and
    one array (``h``) rather than a tuple of one (two or more parts stay a tuple)."""
    if unbatched:
        carries = tuple(c[..., 0, :] for c in carries)
    return carries if len(carries) >= 2 else carries[0]


def lengths_mask(lengths: Optional[ArrayLike], T: int, B: int,
                 unbatched: bool = False) -> Optional[np.ndarray]:
    """``lengths`` -> a bool mask ``(T, B, 1)``, true at real steps; None when every
    sequence has all ``T`` steps (or ``lengths`` is None)."""
    if lengths is None:
        return None
    arr = check_lengths(lengths, T, B, scalar_ok=unbatched)
    if np.all(arr == T):
        return None
    return (np.arange(T)[:, None] < arr[None, :])[:, :, None]  # (T, B, 1)
