"""A switch for inference: ``with npseq.no_grad(): ...`` keeps no records for backward;
``with npseq.enable_grad(): ...`` turns them back on inside it."""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether forward calls keep what a backward pass needs (the default)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Forward calls inside the block keep no caches: less memory and time, no backward.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.GRU(3, 4, seed=0)
    >>> with npseq.no_grad():
    ...     out, h = m(np.ones((5, 2, 3)))
    """
    previous = is_grad_enabled()
    _state.enabled = False
    try:
        yield
    finally:
        _state.enabled = previous


@contextlib.contextmanager
def enable_grad() -> Iterator[None]:
    """Forward calls inside the block keep their records, even inside :func:`no_grad`.

    Examples
    --------
    >>> import npseq
    >>> with npseq.no_grad():
    ...     with npseq.enable_grad():
    ...         npseq.is_grad_enabled()
    True
    """
    previous = is_grad_enabled()
    _state.enabled = True
    try:
        yield
    finally:
        _state.enabled = previous
