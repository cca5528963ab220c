"""Argument checks for the public boundary.

Every message names the argument, what was expected and what was given, so that a wrong
shape fails here and never as a broadcasting error deep inside a step function.
"""
from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_int(name, value, minimum=None, maximum=None):
    """An integer (not a bool) with optional bounds; returns it as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name}: expected an integer <= {maximum}, got {value}")
    return value


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_dtype(dtype, name="dtype"):
    """float32 or float64, as a ``numpy.dtype``."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{name}: expected numpy.float32 or numpy.float64, got {dtype!r}") from None
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"{name}: expected numpy.float32 or numpy.float64, got {dt}")
    return dt


def check_probability(name, value):
    """A real number in [0, 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value}")
    return float(value)


def make_rng(seed, name="seed"):
    """``None``, an integer seed or a ``numpy.random.Generator`` -> a Generator."""
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, numbers.Integral) and not isinstance(seed, (bool, np.bool_)):
        if seed < 0:
            raise ValueError(f"{name}: expected a non-negative integer, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"{name}: expected None, an integer or a numpy.random.Generator, "
                    f"got {seed!r}")


def as_array(name, value, dtype):
    """A real numeric array-like, cast to ``dtype`` (never modified in place later)."""
    if value is None:
        raise TypeError(f"{name}: expected an array, got None")
    try:
        arr = np.asarray(value)
    except (ValueError, TypeError) as err:
        raise TypeError(f"{name}: expected a numeric array, got {type(value).__name__} "
                        f"({err})") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name}: expected a real numeric array, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def check_shape(name, arr, expected, what=""):
    """``arr.shape == expected``; ``what`` describes the expected dimensions."""
    if arr.shape != tuple(expected):
        detail = f" {what}" if what else ""
        raise ValueError(f"{name}: expected shape {tuple(expected)}{detail}, got {arr.shape}")
    return arr
