"""Argument checks for the public boundary.

Every message names the argument, what was expected and what was given, so that a wrong
shape fails here and never as a broadcasting error deep inside a step function.

Policies (what a NumPy user expects, where PyTorch and NumPy differ):

* Arrays: anything NumPy turns into a real array is accepted (lists, bool, integer, float
  arrays, tensors through ``numpy.asarray``) and cast to the module's dtype; complex, string
  and object arrays are a ``TypeError`` (a cast would drop the imaginary part or fail later).
  A finite value too large for the module's dtype (1e300 into float32) is a ``ValueError``
  instead of a silent ``inf``.
* NaN and inf in an input flow through to the outputs, as in NumPy and PyTorch: they are not
  checked for, since a check would cost a pass over every input of every call.
* Lengths are integers; floats holding whole numbers (``3.0``) are accepted, bools are not.
"""
from __future__ import annotations

import numbers
import os
import sys
import warnings
from types import FrameType
from collections.abc import Collection, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class StateDictKeyError(KeyError):
    """A ``KeyError`` from ``load_state_dict`` whose message prints as written.

    (``KeyError`` itself prints the ``repr`` of its message, quotes and escapes included.)
    """

    def __str__(self):
        return str(self.args[0]) if self.args else ""


def check_int(name: str, value: Any, minimum: Optional[int] = None,
              maximum: Optional[int] = None) -> int:
    """An integer (not a bool) with optional bounds; returns it as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_choice(name: str, value: Any, choices: Collection[str]) -> str:
    """One of the strings ``choices``."""
    if isinstance(value, str) and value in choices:  # first: the step functions call this
        return value
    expected = " or ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected {expected}, got {value!r} ({type(value).__name__})")
    raise ValueError(f"{name}: expected {expected}, got {value!r}")


def check_positive(name: str, value: Any) -> float:
    """A finite real number > 0 (not a bool), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {value!r} "
                        f"({type(value).__name__})")
    if not (np.isfinite(value) and value > 0):  # type: ignore[call-overload, operator]
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def check_callable(name, value, signature, optional=False):
    """A callable (or None if ``optional``); ``signature`` describes what it is called with."""
    if value is None and optional:
        return None
    if not callable(value):
        expected = "a callable " + signature + (" or None" if optional else "")
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__}")
    return value


def check_dtype(dtype: Any, name: str = "dtype") -> np.dtype[Any]:
    """float32 or float64, as a ``numpy.dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_probability(name: str, value: Any) -> float:
    """A real number in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:  # type: ignore[operator]
        raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
    return float(value)


def make_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """``None``, an integer seed or a ``numpy.random.Generator`` -> a Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{name}: expected None, an integer or a numpy.random.Generator, "
                    f"got {seed!r}")


PACKED_SEQUENCE_HELP = (
    "npseq takes padded arrays with lengths= instead of a PackedSequence; convert it with\n"
    "    x, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed)   # x: (T, B, *)\n"
    "    out, state = m(x.detach().numpy(), lengths=lengths.numpy())\n"
    "or pad a list of arrays with npseq.data.pad_sequence(sequences) and pass "
    "lengths=[len(s) for s in sequences]")


def reject_packed_sequence(name, value):
    """A ``TypeError`` for a ``torch.nn.utils.rnn.PackedSequence`` (or any object with its
    ``data`` and ``batch_sizes``), saying how to pass padded arrays with ``lengths=``.

    Detected by its attributes, so torch is not imported.
    """
    if hasattr(value, "batch_sizes") and hasattr(value, "data") and not isinstance(
            value, np.ndarray):
        raise TypeError(f"{name}: expected an array, got a packed sequence "
                        f"({type(value).__name__}). {PACKED_SEQUENCE_HELP}")


def as_array(name: str, value: Any, dtype: Any) -> NDArray[Any]:
    """A real numeric array-like, cast to ``dtype`` (never modified in place later).

    A ``PackedSequence`` is a ``TypeError`` that shows how to pass ``lengths=`` instead.
    """
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    reject_packed_sequence(name, value)
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} "
                        f"({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    dtype = np.dtype(dtype)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > dtype.itemsize:
        with np.errstate(over="raise"):
            try:
                return arr.astype(dtype)
            except FloatingPointError:
                big = np.max(np.abs(arr[np.isfinite(arr)]))
                raise ValueError(f"{name}: expected values that fit in {dtype} (magnitude "
                                 f"<= {np.finfo(dtype).max:.3g}), got values up to "
                                 f"{big:.3g}") from None
    return arr.astype(dtype, copy=False)


def check_shape(name: str, arr: NDArray[Any], expected: Sequence[int], what: str = ""
                ) -> NDArray[Any]:
    """``arr.shape == expected``; ``what`` describes the expected dimensions."""
    if arr.shape != tuple(expected):
        detail = f" {what}" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{detail}, got {arr.shape}")
    return arr


def check_lengths(lengths: Any, T: int, B: int, scalar_ok: bool = False, name: str = "lengths",
                  minimum: int = 1, bound: str = "the sequence length") -> NDArray[np.int64]:
    """Sequence lengths -> an int64 array of shape ``(B,)`` with values in ``minimum..T``.

    ``scalar_ok`` also accepts a single length (for an unbatched sequence, B = 1); ``bound``
    names what ``T`` is in the message.
    """
    try:
        arr = np.asarray(lengths)
    except (ValueError, TypeError):
        raise TypeError(f"{name}: expected a 1-D array of integers, got "
                        f"{type(lengths).__name__}") from None
    if arr.dtype.kind == "f":
        whole = np.isfinite(arr) & (arr == np.round(arr))  # 3.0 is a length, 2.5 and nan not
        if not np.all(whole):
            raise TypeError(f"{name}: expected integers, "
                            f"got {arr[~whole].flat[0].item()!r} in an "
                            f"array of dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    elif arr.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if scalar_ok and arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.shape != (B,):
        raise ValueError(f"{name}: expected shape ({B},), one length per sequence, got "
                         f"{arr.shape}")
    if B and (arr.min() < minimum or arr.max() > T):
        raise ValueError(f"{name}: expected every length in {minimum}..{T} ({bound}), got "
                         f"values from {arr.min()} to {arr.max()}")
    return arr.astype(np.int64, copy=False)


def warn(message, category=UserWarning):
    """``warnings.warn``, attributed to the first caller outside npseq (its file and line)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame: Optional[FrameType]
    frame, level = sys._getframe(0), 1  # level 1 is this function
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
