"""Attention over a padded set of keys: additive (Bahdanau) and multiplicative (Luong).

One query per sequence attends over that sequence's keys and returns the weighted sum of its
values (the *context*) and the weights themselves (for plotting)::

    context, weights = attention(query, keys, values, lengths=src_lengths)
    # query (B, Dq), keys (B, S, Dk), values (B, S, Dv) -> context (B, Dv), weights (B, S)
    dquery, dkeys, dvalues = attention.backward(dcontext)

Layout: **batch first** for keys and values, ``(B, S, D)``, so that ``weights[b]`` is one row
per query, as plotted. (npseq's recurrent layers are time-major: transpose their ``out`` once
with ``out.transpose(1, 0, 2)``.) One call attends with one query per sequence: a decoder
calls the module once per step, as it steps its cell.

Padded keys are masked: a key past ``lengths[b]`` (or where ``mask[b]`` is False) gets a score
of ``-inf``, hence a weight of exactly 0, and exactly zero gradient for itself and its value.

Records: as the cells, each forward call pushes its record and each ``backward`` pops the most
recent one (LIFO), so a loop over decoder steps runs its backward in reverse. The same forward
and backward are also available as pure functions of arrays, :meth:`_AttentionBase.apply` and
:meth:`_AttentionBase.apply_backward`, which keep no record: the caller keeps the cache.
The derivations are in ``docs/attention.md``.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import numpy as np

from npseq._typing import ArrayLike, DTypeLike, FloatArray, Seed
from npseq._validation import (as_array, check_bool, check_choice, check_dtype, check_int,
                               check_lengths, check_shape, make_rng)
from npseq.module import Module

__all__ = ["AdditiveAttention", "MultiplicativeAttention", "masked_softmax",
           "masked_softmax_backward"]


# -- the parts every score function shares ----------------------------------------------------
def masked_softmax(e: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of scores ``e`` (B, S), masked positions weighted exactly 0.

    Notes
    -----
    ::

        e'_s = e_s where mask_s else -inf
        w_s  = exp(e'_s - m) / sum_j exp(e'_j - m),   m = max_j e'_j

    Each row needs at least one unmasked position; ``exp(-inf) = 0`` gives the masked zeros.
    """
    e = np.where(mask, e, -np.inf)  # (B, S)
    m = e.max(axis=-1, keepdims=True)  # (B, 1), finite: each row has a valid key
    with np.errstate(under="ignore"):
        z = np.exp(e - m)  # (B, S), 0 where masked
    return z / z.sum(axis=-1, keepdims=True)


def masked_softmax_backward(dw: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Backward of :func:`masked_softmax` from its output ``w``: returns ``de`` (B, S).

    Notes
    -----
    ::

        de_s = w_s (dw_s - sum_j w_j dw_j)

    A masked position has ``w_s = 0``, so ``de_s = 0``: nothing flows to a padded key.
    """
    return w * (dw - np.sum(w * dw, axis=-1, keepdims=True))


class AttentionCache(NamedTuple):
    """What an attention backward needs; ``extra`` is the score function's own cache."""

    q: np.ndarray  # (B, Dq) query
    K: np.ndarray  # (B, S, Dk) keys
    V: np.ndarray  # (B, S, Dv) values
    w: np.ndarray  # (B, S) attention weights, 0 where masked
    extra: tuple  # the score's cache: (u,) for additive, (qW,) for multiplicative


class _AttentionBase(Module):
    _scores: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, tuple]]  # each subclass's
    _scores_backward: Callable[..., tuple[np.ndarray, np.ndarray, dict]]
    """Validation, masks and records; subclasses give ``_scores`` and ``_scores_backward``.

    Like a cell, an attention module is called once per decoder step, so it keeps a
    last-in first-out stack of records (``keeps_stack``): a decoder loop written by hand runs
    its backward steps in reverse order.
    """

    query_size: int
    key_size: int
    keeps_stack = True

    def __call__(self, query: ArrayLike, keys: ArrayLike, values: ArrayLike,
                 lengths: Optional[ArrayLike] = None, mask: Optional[ArrayLike] = None
                 ) -> tuple[FloatArray, FloatArray]:
        return self.forward(query, keys, values, lengths, mask)

    def forward(self, query: ArrayLike, keys: ArrayLike, values: ArrayLike,
                lengths: Optional[ArrayLike] = None, mask: Optional[ArrayLike] = None
                ) -> tuple[FloatArray, FloatArray]:
        """Attend with one query per sequence over its keys.

        Parameters
        ----------
        query : array_like, shape (B, query_size)
        keys : array_like, shape (B, S, key_size)
        values : array_like, shape (B, S, Dv), any Dv (often the keys themselves)
        lengths : array_like of int, shape (B,), optional
            Valid keys of each sequence, 1..S: keys at positions >= lengths[b] are padding.
        mask : array_like of bool, shape (B, S), optional
            True for a valid key; each row needs at least one. At most one of ``lengths``
            and ``mask``; with neither, every key is valid.

        Returns
        -------
        context : ndarray, shape (B, Dv), ``sum_s weights[:, s] * values[:, s]``
        weights : ndarray, shape (B, S), each row sums to 1, exactly 0 at masked keys
        """
        q, K, V, mask = self._check_inputs(query, keys, values, lengths, mask)
        context, w, cache = self._apply(q, K, V, mask)
        self._push(cache)  # nothing inside no_grad()
        return context, w.copy()

    def backward(self, dcontext: ArrayLike, dweights: Optional[ArrayLike] = None
                 ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Backward of the most recent :meth:`forward` not yet paired with a backward.

        Parameters
        ----------
        dcontext : array_like, shape (B, Dv), the gradient of ``context``
        dweights : array_like, shape (B, S), optional, the gradient of ``weights`` (e.g.
            from a penalty on them); None for zero

        Returns
        -------
        dquery : ndarray, shape (B, query_size)
        dkeys : ndarray, shape (B, S, key_size), zero at masked keys
        dvalues : ndarray, shape (B, S, Dv), zero at masked keys

        The parameter gradients are added into :attr:`grads`.
        """
        cache = self._peek()
        B, S, Dv = cache.V.shape
        dc = check_shape("dcontext", as_array("dcontext", dcontext, self.dtype), (B, Dv),
                         "(the shape of context)")
        dw = None
        if dweights is not None:
            dw = check_shape("dweights", as_array("dweights", dweights, self.dtype), (B, S),
                             "(the shape of weights)")
        self._pop()  # only once the gradients passed their checks
        dq, dK, dV, dparams = self._apply_backward(dc, dw, cache)
        self._accumulate(dparams)
        return dq, dK, dV

    def apply(self, q: np.ndarray, K: np.ndarray, V: np.ndarray, mask: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray, AttentionCache]:
        """The forward as a pure function of arrays: keeps no record, checks nothing.

        ``q (B, Dq)``, ``K (B, S, Dk)``, ``V (B, S, Dv)``, ``mask (B, S)`` bool (True =
        valid), all of this module's dtype. Returns ``(context, weights, cache)``; pass the
        cache to :meth:`apply_backward`. For callers that keep their own records (e.g.
        :class:`npseq.Seq2Seq`).
        """
        return self._apply(q, K, V, mask)

    def apply_backward(self, dc: np.ndarray, dw: Optional[np.ndarray], cache: AttentionCache
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
        """The backward of :meth:`apply`: returns ``(dq, dK, dV, dparams)``.

        ``dw`` may be None. ``dparams`` is keyed like :attr:`params`; nothing is added into
        :attr:`grads`: the caller adds it.
        """
        return self._apply_backward(dc, dw, cache)

    # -- the shared forward and backward ------------------------------------------------------
    def _apply(self, q, K, V, mask):
        e, extra = self._scores(q, K)  # (B, S)
        w = masked_softmax(e, mask)  # (B, S)
        context = np.einsum("bs,bsv->bv", w, V)  # (B, Dv)
        return context, w, AttentionCache(q, K, V, w, extra)

    def _apply_backward(self, dc, dw, cache):
        q, K, V, w, extra = cache
        dV = w[:, :, None] * dc[:, None, :]  # (B, S, Dv), 0 where masked
        dw_total = np.einsum("bsv,bv->bs", V, dc)  # (B, S)
        if dw is not None:
            dw_total += dw
        de = masked_softmax_backward(dw_total, w)  # (B, S), 0 where masked
        dq, dK, dparams = self._scores_backward(de, q, K, extra)
        return dq, dK, dV, dparams

    # -- boundary ----------------------------------------------------------------------------
    def _check_inputs(self, query, keys, values, lengths, mask):
        q = as_array("query", query, self.dtype)
        if q.ndim != 2 or q.shape[1] != self.query_size:
            raise ValueError(f"query: expected shape (batch, {self.query_size}) (query_size "
                             f"last), got {q.shape}")
        B = q.shape[0]
        K = as_array("keys", keys, self.dtype)
        if K.ndim != 3 or K.shape[0] != B or K.shape[2] != self.key_size:
            raise ValueError(f"keys: expected shape ({B}, S, {self.key_size}) (batch, keys, "
                             f"key_size; batch first), got {K.shape}")
        S = K.shape[1]
        if S == 0 or B == 0:
            raise ValueError(f"keys: expected at least one key and one sequence, got shape "
                             f"{K.shape}")
        V = as_array("values", values, self.dtype)
        if V.ndim != 3 or V.shape[:2] != (B, S):
            raise ValueError(f"values: expected shape ({B}, {S}, Dv) (batch and keys as "
                             f"keys), got {V.shape}")
        if lengths is not None and mask is not None:
            raise ValueError("lengths, mask: expected at most one of them, got both")
        if lengths is not None:
            n = check_lengths(lengths, S, B)
            mask = np.arange(S)[None, :] < n[:, None]  # (B, S)
        elif mask is not None:
            m = np.asarray(mask)
            if m.dtype != np.bool_:
                raise TypeError(f"mask: expected a boolean array (True = valid key), got "
                                f"dtype {m.dtype}")
            mask = check_shape("mask", m, (B, S), "(batch, keys)").copy()
            empty = ~mask.any(axis=1)
            if empty.any():
                raise ValueError(f"mask: expected at least one valid (True) key per row, got "
                                 f"none in row {int(np.argmax(empty))}")
        else:
            mask = np.ones((B, S), bool)
        return q, K, V, mask


class AdditiveAttention(_AttentionBase):
    """Additive attention (Bahdanau, Cho & Bengio 2015): ``e = v^T tanh(W_q q + W_k k + b)``.

    Parameters
    ----------
    query_size : int
        Features of a query (Dq), e.g. the decoder's hidden size.
    key_size : int
        Features of a key (Dk), e.g. the encoder's output size.
    attention_size : int
        A, the width of the hidden layer of the score.
    bias : bool, default True
        With the parameter ``bias`` inside the tanh (Bahdanau's equations have none).
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of the initial parameters: ``weight_q``, ``weight_k`` and ``bias`` as
        ``torch.nn.Linear(Dq, A)`` and ``Linear(Dk, A)`` initialise theirs,
        ``v`` from U(-1/sqrt(A), 1/sqrt(A)).

    Attributes
    ----------
    params, grads : dict
        ``weight_q (A, Dq)``, ``weight_k (A, Dk)``, ``bias (A,)``, ``v (A,)``.

    Notes
    -----
    For each sequence b and key s (the query is broadcast over the keys)::

        u_s = tanh(q W_q^T + k_s W_k^T + b)      (B, S, A)
        e_s = u_s . v                            (B, S)
        w   = masked_softmax(e)                  (B, S)
        c   = sum_s w_s values_s                 (B, Dv)

    Backward (``_scores_backward``), given ``de`` from the softmax::

        dv      = sum_{b,s} de_s u_s
        da_s    = de_s v * (1 - u_s**2)          (B, S, A)
        dW_k    = sum_{b,s} da_s^T k_s           dkeys_s = da_s W_k
        dW_q    = sum_b (sum_s da_s)^T q         dquery  = (sum_s da_s) W_q
        db      = sum_{b,s} da_s

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.attention import AdditiveAttention
    >>> att = AdditiveAttention(4, 6, 5, seed=0)
    >>> c, w = att(np.ones((2, 4)), np.ones((2, 3, 6)), np.ones((2, 3, 7)), lengths=[3, 1])
    >>> c.shape, w[1]
    ((2, 7), array([1., 0., 0.]))
    >>> dq, dk, dv = att.backward(np.ones((2, 7)))
    """

    def __init__(self, query_size: int, key_size: int, attention_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None) -> None:
        super().__init__(check_dtype(dtype))
        self.query_size = check_int("query_size", query_size, minimum=1)
        self.key_size = check_int("key_size", key_size, minimum=1)
        self.attention_size = check_int("attention_size", attention_size, minimum=1)
        self.bias = check_bool("bias", bias)
        rng = make_rng(seed)
        A = self.attention_size
        bounds = {"weight_q": 1 / np.sqrt(self.query_size), "weight_k": 1 / np.sqrt(
            self.key_size), "bias": 1 / np.sqrt(self.query_size), "v": 1 / np.sqrt(A)}
        shapes: dict[str, tuple[int, ...]] = {"weight_q": (A, self.query_size),
                                              "weight_k": (A, self.key_size)}
        if self.bias:
            shapes["bias"] = (A,)
        shapes["v"] = (A,)
        self.params = {k: rng.uniform(-bounds[k], bounds[k], size=s).astype(self.dtype)
                       for k, s in shapes.items()}
        self._init_grads()

    def __repr__(self):
        return (f"AdditiveAttention({self.query_size}, {self.key_size}, "
                f"{self.attention_size}, bias={self.bias}, dtype={self.dtype.name})")

    def _scores(self, q, K):
        p = self.params
        a = (K @ p["weight_k"].T) + (q @ p["weight_q"].T)[:, None, :]  # (B, S, A)
        if self.bias:
            a += p["bias"]
        u = np.tanh(a)  # (B, S, A)
        e = u @ p["v"]  # (B, S)
        return e, (u,)

    def _scores_backward(self, de, q, K, extra):
        (u,) = extra
        p = self.params
        dparams = {"v": np.einsum("bs,bsa->a", de, u)}  # (A,)
        da = de[:, :, None] * p["v"] * (1 - u * u)  # (B, S, A), backprop through tanh
        dparams["weight_k"] = np.einsum("bsa,bsk->ak", da, K)  # (A, Dk)
        dK = da @ p["weight_k"]  # (B, S, Dk)
        da_q = da.sum(axis=1)  # (B, A): the query is broadcast over the keys
        dparams["weight_q"] = da_q.T @ q  # (A, Dq)
        dq = da_q @ p["weight_q"]  # (B, Dq)
        if self.bias:
            dparams["bias"] = da_q.sum(axis=0)  # (A,)
        return dq, dK, dparams


class MultiplicativeAttention(_AttentionBase):
    """Multiplicative attention (Luong, Pham & Manning 2015): ``dot`` or ``general`` scores.

    Parameters
    ----------
    query_size : int
        Features of a query (Dq).
    key_size : int
        Features of a key (Dk); ``score="dot"`` needs ``key_size == query_size``.
    score : {"general", "dot"}
        ``"general"``: ``e = q^T W k`` with the parameter ``weight`` (Dq, Dk);
        ``"dot"``: ``e = q . k``, no parameters.
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of ``weight``, U(-1/sqrt(Dk), 1/sqrt(Dk)) as ``torch.nn.Linear(Dk, Dq)``.

    Attributes
    ----------
    params, grads : dict
        ``weight (Dq, Dk)`` for ``"general"``; empty for ``"dot"``.

    Notes
    -----
    With ``W = I`` for ``"dot"``; the query is projected once, not every key::

        r   = q W                         (B, Dk)
        e_s = r . k_s                     (B, S)
        w   = masked_softmax(e)           (B, S)
        c   = sum_s w_s values_s          (B, Dv)

    Backward (``_scores_backward``), given ``de`` from the softmax::

        dkeys_s = de_s r                  (B, S, Dk)
        dr      = sum_s de_s k_s          (B, Dk)
        dW      = q^T dr                  (Dq, Dk)
        dquery  = dr W^T                  (B, Dq)

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.attention import MultiplicativeAttention
    >>> att = MultiplicativeAttention(4, 6, score="general", seed=0)
    >>> c, w = att(np.ones((2, 4)), np.ones((2, 3, 6)), np.ones((2, 3, 6)), lengths=[2, 3])
    >>> w.round(3)
    array([[0.5  , 0.5  , 0.   ],
           [0.333, 0.333, 0.333]])
    """

    def __init__(self, query_size: int, key_size: int, score: str = "general",
                 dtype: DTypeLike = np.float64, seed: Seed = None) -> None:
        super().__init__(check_dtype(dtype))
        self.query_size = check_int("query_size", query_size, minimum=1)
        self.key_size = check_int("key_size", key_size, minimum=1)
        self.score = check_choice("score", score, ("general", "dot"))
        if self.score == "dot" and self.key_size != self.query_size:
            raise ValueError(f"key_size: score='dot' expects key_size == query_size "
                             f"({self.query_size}), got {self.key_size}")
        if self.score == "general":
            bound = 1 / np.sqrt(self.key_size)
            self.params = {"weight": make_rng(seed).uniform(
                -bound, bound, size=(self.query_size, self.key_size)).astype(self.dtype)}
        self._init_grads()

    def __repr__(self):
        return (f"MultiplicativeAttention({self.query_size}, {self.key_size}, "
                f"score={self.score!r}, dtype={self.dtype.name})")

    def _scores(self, q, K):
        r = q @ self.params["weight"] if self.score == "general" else q  # (B, Dk)
        e = np.einsum("bsk,bk->bs", K, r)  # (B, S)
        return e, (r,)

    def _scores_backward(self, de, q, K, extra):
        (r,) = extra
        dK = de[:, :, None] * r[:, None, :]  # (B, S, Dk)
        dr = np.einsum("bs,bsk->bk", de, K)  # (B, Dk)
        if self.score == "dot":
            return dr, dK, {}
        dparams = {"weight": q.T @ dr}  # (Dq, Dk)
        dq = dr @ self.params["weight"].T  # (B, Dq)
        return dq, dK, dparams


def key_mask(lengths: Optional[np.ndarray], S: int, B: int) -> np.ndarray:
    """Boolean mask (B, S), True at the first ``lengths[b]`` keys (all True for None)."""
    if lengths is None:
        return np.ones((B, S), bool)
    return np.arange(S)[None, :] < np.asarray(lengths)[:, None]
