"""Drawing tokens from a language model's logits: softmax with a temperature and top-k.

::

    rng = np.random.default_rng(0)
    logits, state = model(np.array([[token]]), state)       # (1, 1, V)
    token = int(sample(logits[0, 0], temperature=0.8, top_k=10, rng=rng))
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.typing import NDArray

from npseq._typing import ArrayLike, FloatArray, Seed
from npseq._validation import as_array, check_int, check_positive, make_rng
from npseq.losses import softmax

__all__ = ["sample", "probabilities"]


def probabilities(logits: ArrayLike, temperature: float = 1.0,
                  top_k: Optional[int] = None) -> FloatArray:
    """The distribution :func:`sample` draws from: ``softmax(logits / temperature)`` over the
    ``top_k`` largest logits.

    Parameters
    ----------
    logits : array_like, shape (..., V)
        Unnormalised log-probabilities over ``V`` tokens, in the last axis. ``-inf`` marks a
        token that is never drawn; NaN and ``+inf`` are a ``ValueError``.
    temperature : float, default 1.0
        A finite number > 0. Below 1 the distribution is sharper (towards the argmax),
        above 1 flatter. For greedy decoding use ``top_k=1``.
    top_k : int or None, default None
        Keep only the tokens whose logit is at least the ``top_k``-th largest of its row
        (ties with it are kept too, so a row can keep more); ``top_k >= V`` keeps all.

    Returns
    -------
    p : ndarray of float64, shape (..., V)
        Each row sums to 1; the tokens left out have probability exactly 0.

    Notes
    -----
    For each row ``z`` of the logits, with ``m = max_j z_j`` and ``z_(k)`` its k-th largest::

        keep_j = z_j >= z_(top_k)                      (every j without top_k)
        p_j    = exp((z_j - m) / temperature) / sum_{i kept} exp((z_i - m) / temperature)
                 for kept j, 0 otherwise

    Subtracting ``m`` first keeps every exponent <= 0, so a small temperature does not
    overflow: it sends the probability to the largest logits.
    """
    z = as_array("logits", logits, np.float64)
    if z.ndim == 0 or z.shape[-1] == 0:
        raise ValueError(f"logits: expected shape (..., V) with V >= 1 tokens in the last "
                         f"axis, got {z.shape}")
    if np.isnan(z).any() or np.isposinf(z).any():
        raise ValueError("logits: expected finite values or -inf, got NaN or +inf")
    m = z.max(axis=-1, keepdims=True)  # (..., 1)
    if np.isneginf(m).any():
        raise ValueError("logits: expected at least one finite logit in every row, got a row "
                         "of -inf only")
    temperature = check_positive("temperature", temperature)
    V = z.shape[-1]
    if top_k is not None:
        top_k = check_int("top_k", top_k, minimum=1)
        if top_k < V:
            kth = np.partition(z, V - top_k, axis=-1)[..., V - top_k:V - top_k + 1]  # (..., 1)
            z = np.where(z >= kth, z, -np.inf)
    with np.errstate(over="ignore"):
        scaled = (z - m) / temperature  # <= 0; -inf for the tokens left out
    return softmax(scaled)


def sample(logits: ArrayLike, temperature: float = 1.0, top_k: Optional[int] = None,
           rng: Seed = None) -> NDArray[np.int64]:
    """Draw one token id per row of ``logits`` from :func:`probabilities`.

    Parameters
    ----------
    logits : array_like, shape (..., V)
        E.g. a language model's output at its last step, ``(B, V)``, or one row ``(V,)``.
    temperature : float, default 1.0
        A finite number > 0; see :func:`probabilities`.
    top_k : int or None, default None
        Draw only among the ``top_k`` largest logits of each row; ``top_k=1`` is the argmax.
    rng : None, int or numpy.random.Generator
        Source of randomness. Pass one Generator for a whole generation loop: an integer
        seeds a new Generator at every call (the same draw each time for the same logits).

    Returns
    -------
    ids : ndarray of int64, shape (...)
        The drawn token of each row: a 0-d array for 1-D logits (``int(ids)`` is the token).

    Notes
    -----
    Inverse-CDF sampling with one uniform ``u`` in [0, 1) per row::

        c_j = p_0 + ... + p_j
        id  = the first j with c_j > u c_{V-1}

    Scaling ``u`` by the total ``c_{V-1}`` (1 up to rounding) makes ``id`` always a token
    with ``p_id > 0``.

    Examples
    --------
    >>> import numpy as np
    >>> from npseq import sample
    >>> logits = np.array([[2.0, 1.0, 0.5, -1.0], [0.0, 0.0, 9.0, 0.0]])
    >>> sample(logits, top_k=1)
    array([0, 2])
    >>> rng = np.random.default_rng(0)
    >>> draws = sample(np.broadcast_to(logits[0], (10000, 4)), top_k=2, rng=rng)
    >>> sorted(set(draws.tolist()))              # only the two largest logits
    [0, 1]
    """
    rng = make_rng(rng, "rng")
    p = probabilities(logits, temperature, top_k)  # (..., V)
    c = np.cumsum(p, axis=-1)  # (..., V)
    u = rng.random(p.shape[:-1])[..., None]  # (..., 1), in [0, 1)
    return np.sum(c <= u * c[..., -1:], axis=-1).astype(np.int64)
