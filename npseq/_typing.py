"""The type aliases of npseq's public signatures, in NumPy's typing (``numpy.typing``).

Inputs are ``ArrayLike`` (anything ``numpy.asarray`` takes); outputs are ``NDArray``.
A recurrent state is ``h`` or, for LSTM-like kinds, the pair ``(h, c)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["ArrayLike", "DTypeLike", "NDArray", "FloatArray", "IntArray", "BoolArray", "State",
           "StateLike", "Params", "Seed", "ZoneoutLike"]

#: A floating-point array (float32 or float64: a module's ``dtype``).
FloatArray = NDArray[np.floating[Any]]
#: An integer array (token indices, lengths).
IntArray = NDArray[np.integer[Any]]
#: A boolean array (masks).
BoolArray = NDArray[np.bool_]
#: A returned state: ``h``, or ``(h, c)`` for LSTM-like kinds.
State = Union[FloatArray, tuple[FloatArray, FloatArray]]
#: A state as passed in: None (zeros), ``h``, or ``(h, c)`` whose halves may be None.
StateLike = Union[ArrayLike, tuple[Optional[ArrayLike], Optional[ArrayLike]], None]
#: Parameters or gradients keyed like PyTorch's ``state_dict`` (a module's ``params``, ``grads``).
Params = Mapping[str, NDArray[Any]]
#: What ``seed=`` takes: None (fresh entropy), an integer, or a ``numpy.random.Generator``.
Seed = Union[int, np.random.Generator, None]
#: What ``zoneout=`` takes: one rate, or one rate per state.
ZoneoutLike = Union[float, tuple[float, ...]]
