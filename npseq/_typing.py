"""The type aliases of npseq's public signatures, in NumPy's typing (``numpy.typing``).

Inputs are ``ArrayLike`` (anything ``numpy.asarray`` takes); outputs are ``NDArray``.
A recurrent state is ``h`` or, for LSTM-like kinds, the pair ``(h, c)``.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__all__ = ["ArrayLike", "DTypeLike", "NDArray", "FloatArray", "State", "StateLike",
           "Params", "Seed", "ZoneoutLike"]

FloatArray = NDArray[np.floating[Any]]
"""A floating-point array (float32 or float64: a module's ``dtype``)."""
State = Union[FloatArray, tuple[FloatArray, FloatArray]]
"""A returned state: ``h``, or ``(h, c)`` for LSTM-like kinds."""
StateLike = Union[ArrayLike, tuple[Optional[ArrayLike], Optional[ArrayLike]], None]
"""A state as passed in: None (zeros), ``h``, or ``(h, c)`` whose halves may be None."""
Params = Mapping[str, NDArray[Any]]
"""Parameters or gradients keyed like PyTorch's ``state_dict``: a module's ``params`` and
``grads``."""
Seed = Union[int, np.random.Generator, None]
"""What ``seed=`` takes: None (fresh entropy), an integer, or a ``numpy.random.Generator``."""
ZoneoutLike = Union[float, tuple[float, ...]]
"""What ``zoneout=`` takes: one rate, or one rate per state."""
