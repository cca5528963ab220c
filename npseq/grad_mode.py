"""A switch for inference: ``with npseq.no_grad(): ...`` keeps no caches for backward."""
from __future__ import annotations

import contextlib
import threading

_state = threading.local()


def is_grad_enabled() -> bool:
    """Whether forward calls keep what a backward pass needs (the default)."""
    return getattr(_state, "enabled", True)


@contextlib.contextmanager
def no_grad():
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
