"""Dropout modules: :class:`Dropout` (an element-wise mask) and :class:`LockedDropout` (one mask
per sequence, shared by every time step: variational dropout between layers).

Both are inverted dropout: in training mode each element is kept with probability ``1 - p``
and the kept ones are scaled by ``1 / (1 - p)``, so that the expectation of the output is the
input; in evaluation mode (``.eval()``) and at ``p = 0`` the output is the input, bit for bit,
and nothing is drawn. Masks come from the module's own generator ``rng`` (built from
``seed=``), drawn afresh at every forward call in training mode; the backward multiplies the
upstream gradient by the mask of the forward it pairs with.

Both work inside :class:`~npseq.Sequential`, before the recurrent layer (on its input) and
after it (on its output, before a head).
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

from npseq._typing import ArrayLike, FloatArray, Seed
from npseq._validation import (as_array, check_bool, check_probability, check_shape, make_rng,
                               reject_packed_sequence)
from npseq.layout import from_time_major, to_time_major
from npseq.module import Module

__all__ = ["Dropout", "LockedDropout"]


class DropoutRecord(NamedTuple):
    """What a dropout forward leaves for its backward."""

    mask: Optional[np.ndarray]  # the scaled mask m = kept / (1 - p), broadcastable to x;
    #                             None when nothing was dropped (eval mode or p = 0)
    shape: tuple  # shape of x (and y)
    dtype: np.dtype


def _float_input(name: str, x: ArrayLike) -> np.ndarray:
    """A real array as float: float32 stays float32, anything else becomes float64."""
    reject_packed_sequence(name, x)
    is32 = isinstance(x, np.ndarray) and x.dtype == np.float32
    return as_array(name, x, np.float32 if is32 else np.float64)


def _scaled_mask(rng, shape, p, dtype):
    """``kept / (1 - p)`` with ``kept ~ Bernoulli(1 - p)`` element-wise, of ``shape``."""
    kept = rng.random(shape) >= p  # P(kept) = 1 - p
    return kept.astype(dtype) / dtype.type(1 - p)


class _DropoutBase(Module):
    forward: Callable[[ArrayLike], FloatArray]  # each subclass's own
    _apply: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def __init__(self, p: float, seed: Seed) -> None:
        super().__init__(np.float64)  # no parameters; outputs keep the input's dtype
        self.p = check_probability("p", p)
        self.rng = make_rng(seed)  # draws the masks

    def __call__(self, x: ArrayLike) -> FloatArray:
        return self.forward(x)

    def _active(self):
        return self.training and self.p > 0

    def backward(self, dy: Optional[ArrayLike]) -> Optional[FloatArray]:
        """Backward of the latest forward call (outside ``no_grad()``), once.

        Parameters
        ----------
        dy : array_like, the gradient of ``y``, shaped like it (None for zero)

        Returns
        -------
        dx : ndarray shaped like ``x``, ``dy * m`` with the forward's mask ``m`` (``dy``
            itself, as a copy, when nothing was dropped), or None when ``dy`` is None
        """
        mask, shape, dtype = self._peek()
        if dy is not None:
            dy = check_shape("dy", as_array("dy", dy, dtype), shape, "(the shape of y)")
        self._pop()  # only once dy passed its checks
        if dy is None:
            return None
        if mask is None:
            return np.array(dy)  # dx = dy
        return self._apply(dy, mask)  # dx = dy * m


class Dropout(_DropoutBase):
    """Inverted dropout on every element, as ``torch.nn.Dropout``.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        Probability that an element is zeroed, in training mode.
    seed : None, int or numpy.random.Generator
        Source of the masks (the module's ``rng``).

    Notes
    -----
    In training mode with ``p > 0``, each forward call draws a new mask of the shape of
    ``x`` from ``rng``; forward and backward::

        kept ~ Bernoulli(1 - p), element-wise          (same shape as x)
        m    = kept / (1 - p)
        y    = x * m
        dx   = dy * m

    In evaluation mode or with ``p = 0``: ``y = x`` (bit for bit, a copy), ``dx = dy``, and
    nothing is drawn from ``rng``. A float32 input gives a float32 output; any other
    real input becomes float64.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> drop = npseq.Dropout(0.5, seed=0)
    >>> y = drop(np.ones((2, 4)))
    >>> sorted(set(y.ravel().tolist()))          # dropped, or scaled by 1 / (1 - p)
    [0.0, 2.0]
    >>> bool(np.all(drop.backward(np.ones((2, 4))) == y))
    True
    >>> drop.eval()(np.ones((2, 4))).tolist()[0]
    [1.0, 1.0, 1.0, 1.0]
    """

    def __init__(self, p: float = 0.5, seed: Seed = None) -> None:
        super().__init__(p, seed)

    def __repr__(self):
        return f"Dropout(p={self.p})"

    @staticmethod
    def _apply(a, mask):
        return a * mask

    def forward(self, x: ArrayLike) -> FloatArray:
        """``y = x * m`` in training mode, ``y = x`` in evaluation mode or at ``p = 0``.

        Parameters
        ----------
        x : array_like, any shape

        Returns
        -------
        y : ndarray shaped like ``x``
        """
        x = _float_input("x", x)
        mask = _scaled_mask(self.rng, x.shape, self.p, x.dtype) if self._active() else None
        y = np.array(x) if mask is None else x * mask
        self._push(DropoutRecord(mask, x.shape, x.dtype))  # nothing inside no_grad()
        return y


class LockedDropout(_DropoutBase):
    """Variational (locked) dropout for sequences: one mask per sequence, shared by all steps.

    Gal & Ghahramani (2016); the ``LockedDropout`` of AWD-LSTM (Merity et al. 2017), used on
    the input of a recurrent layer, between layers and on the last layer's output.

    Parameters
    ----------
    p : float in [0, 1), default 0.5
        Probability that a feature of a sequence is zeroed (at every step), in training mode.
    batch_first : bool, default False
        Layout of ``x``: (T, B, F), or (B, T, F) with ``batch_first``. Inside a
        :class:`~npseq.Sequential` give it the recurrent layer's ``batch_first``.
    seed : None, int or numpy.random.Generator
        Source of the masks (the module's ``rng``).

    Notes
    -----
    In training mode with ``p > 0``, each forward call draws one mask of shape ``(B, F)``
    (``(1, F)`` for unbatched input) from ``rng``, and every time step uses it::

        kept[b, f] ~ Bernoulli(1 - p)                  (B, F), once per forward call
        m          = kept / (1 - p)
        y[t, b, f] = x[t, b, f] * m[b, f]              for every t
        dx[t, b, f] = dy[t, b, f] * m[b, f]

    A unit dropped in a sequence is dropped at every step of it, so the layer that reads ``y``
    sees the same thinned network throughout the sequence. In evaluation mode or with
    ``p = 0``: ``y = x`` (bit for bit, a copy), ``dx = dy``, nothing is drawn. Padded steps
    (past a sequence's length) are multiplied like the others; the layer ignores them.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> drop = npseq.LockedDropout(0.5, seed=0)
    >>> y = drop(np.ones((3, 2, 4)))             # (T, B, F)
    >>> bool(np.all(y[0] == y[1]) and np.all(y[1] == y[2]))   # the same mask at every step
    True
    """

    def __init__(self, p: float = 0.5, batch_first: bool = False, seed: Seed = None) -> None:
        super().__init__(p, seed)
        self.batch_first = check_bool("batch_first", batch_first)

    def __repr__(self):
        extra = ", batch_first=True" if self.batch_first else ""
        return f"LockedDropout(p={self.p}{extra})"

    def _apply(self, a, mask):
        """``a * m`` at every step: ``mask`` is (B, F), ``a`` in the module's layout."""
        unbatched = a.ndim == 2
        seq = to_time_major(a, self.batch_first, unbatched)  # (T, B, F)
        return from_time_major(seq * mask[None], self.batch_first, unbatched)

    def forward(self, x: ArrayLike) -> FloatArray:
        """``y[t] = x[t] * m`` at every step ``t`` in training mode, ``y = x`` otherwise.

        Parameters
        ----------
        x : array_like, shape (T, B, F), (B, T, F) with ``batch_first``, or unbatched (T, F)

        Returns
        -------
        y : ndarray shaped like ``x``
        """
        x = _float_input("x", x)
        if x.ndim not in (2, 3):
            layout = "(batch, seq_len, features)" if self.batch_first else \
                "(seq_len, batch, features)"
            raise ValueError(f"x: expected shape {layout} or unbatched (seq_len, features), "
                             f"got {x.shape}")
        mask = None
        if self._active():
            B = 1 if x.ndim == 2 else x.shape[0 if self.batch_first else 1]
            mask = _scaled_mask(self.rng, (B, x.shape[-1]), self.p, x.dtype)  # (B, F)
        y = np.array(x) if mask is None else self._apply(x, mask)
        self._push(DropoutRecord(mask, x.shape, x.dtype))  # nothing inside no_grad()
        return y
