"""Connectionist temporal classification (Graves et al. 2006): the loss and two decoders.

:func:`ctc_loss` is ``torch.nn.functional.ctc_loss`` (its shapes, reductions and
``zero_infinity``) with a hand-written gradient; :func:`ctc_greedy_decode` reads the best
path; :func:`ctc_prefix_beam_search` searches over label sequences. The derivation, mapped to
the lines below, is in ``docs/ctc.md``.

Notation (as ``docs/ctc.md``): ``y[t, k]`` the log-probability of class ``k`` at frame ``t``
(``log_probs``), ``l`` a target of ``S`` labels, ``l'`` its extension with blanks
``(blank, l_1, blank, l_2, ..., l_S, blank)`` of length ``L = 2S + 1``, ``alpha`` and
``beta`` the forward and backward variables in log space.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import numpy as np

from npseq._typing import ArrayLike, FloatArray
from npseq._validation import (as_array, check_bool, check_choice, check_int, check_lengths,
                               check_shape)

__all__ = ["ctc_loss", "ctc_greedy_decode", "ctc_prefix_beam_search"]

_REDUCTIONS = ("none", "mean", "sum")


# --------------------------------------------------------------------------------------------
# argument checks (the public boundary)


def _log_probs_array(log_probs):
    """(T, B, C) or (T, C) float array -> (array of shape (T, B, C), unbatched flag)."""
    is32 = isinstance(log_probs, np.ndarray) and log_probs.dtype == np.float32
    y = as_array("log_probs", log_probs, np.float32 if is32 else np.float64)
    if y.ndim not in (2, 3):
        raise ValueError(f"log_probs: expected shape (T, B, C) or (T, C) for one sequence, "
                         f"got {y.shape}")
    if min(y.shape) < 1:
        raise ValueError(f"log_probs: expected at least one frame, sequence and class, got "
                         f"shape {y.shape}")
    unbatched = y.ndim == 2
    return (y[:, None, :] if unbatched else y), unbatched


def _input_lengths(input_lengths, T, B, unbatched):
    """Input lengths in 1..T (all T when None) as int64 (B,)."""
    if input_lengths is None:
        return np.full(B, T, dtype=np.int64)
    return check_lengths(input_lengths, T, B, scalar_ok=unbatched, name="input_lengths")


def _targets_array(targets, B, unbatched):
    """Padded targets as int64 (B, S); unbatched (S,) becomes (1, S)."""
    try:
        l = np.asarray(targets)
    except (ValueError, TypeError):
        raise TypeError(f"targets: expected an array of integer labels, got "
                        f"{type(targets).__name__}") from None
    if l.size == 0 and l.dtype.kind in "biuf":  # [] is float64 to NumPy
        l = l.astype(np.int64)
    if l.dtype.kind not in "iu":
        raise TypeError(f"targets: expected integer labels, got dtype {l.dtype}")
    if unbatched:
        if l.ndim != 1:
            raise ValueError(f"targets: expected shape (S,) for one sequence (log_probs of "
                             f"shape (T, C)), got {l.shape}")
        return l[None, :].astype(np.int64)
    if l.ndim != 2 or l.shape[0] != B:
        raise ValueError(f"targets: expected shape ({B}, S), padded labels of each sequence, "
                         f"got {l.shape}")
    return l.astype(np.int64)


def _target_lengths(target_lengths, S, B, unbatched):
    """Target lengths in 0..S as int64 (B,)."""
    return check_lengths(target_lengths, S, B, scalar_ok=unbatched, name="target_lengths",
                         minimum=0, bound="the width of targets")


def _check_labels(l, S_b, C, blank):
    """Every label within its target length is a class in 0..C-1 other than the blank."""
    counted = np.arange(l.shape[1]) < S_b[:, None]  # (B, S)
    bad = counted & ((l < 0) | (l >= C) | (l == blank))
    if np.any(bad):
        b, s = np.argwhere(bad)[0]
        raise ValueError(f"targets: expected labels in 0..{C - 1} other than the blank "
                         f"({blank}) within each target length, got {l[b, s]} at [{b}, {s}]")


# --------------------------------------------------------------------------------------------
# the loss


class CTCCache(NamedTuple):
    """What the gradient needs from the forward and backward recursions."""
    l_ext: np.ndarray  # (B, L) int   l', the target with blanks around and between labels
    alpha: np.ndarray  # (T, B, L)    log forward variables, -inf past each input length
    beta: np.ndarray   # (T, B, L)    log backward variables, -inf past each input length
    log_p: np.ndarray  # (B,)         log p(l | x), -inf where no alignment exists


def _extend(l, S_b, blank):
    """``l'`` (B, L), the positions that exist ``valid`` (B, L) and where a skip is allowed.

    ``l'_s`` is the blank at even ``s`` and label ``l_{(s+1)/2}`` at odd ``s``; position ``s``
    exists for ``s < 2 S_b + 1``. The path may jump from ``s - 2`` to ``s`` when ``l'_s`` is a
    label different from ``l'_{s-2}`` (two equal labels need a blank between them).
    """
    B, S = l.shape
    L = 2 * S + 1
    l_ext = np.full((B, L), blank, dtype=np.int64)
    l_ext[:, 1::2] = np.where(np.arange(S) < S_b[:, None], l, blank)
    valid = np.arange(L) < 2 * S_b[:, None] + 1  # (B, L)
    skip = np.zeros((B, L), dtype=bool)
    skip[:, 2:] = (l_ext[:, 2:] != blank) & (l_ext[:, 2:] != l_ext[:, :-2])
    return l_ext, valid, skip


def _shift(a, k):
    """``a`` moved ``k`` places right along the last axis (``k < 0``: left), -inf filled in."""
    out = np.full_like(a, -np.inf)
    if k > 0:
        out[..., k:] = a[..., :-k]
    else:
        out[..., :k] = a[..., -k:]
    return out


def ctc_forward_backward(y: np.ndarray, l: np.ndarray, T_b: np.ndarray, S_b: np.ndarray,
                         blank: int) -> CTCCache:
    """The log forward and backward variables of CTC, and ``log p(l | x)``.

    Parameters
    ----------
    y : ndarray, shape (T, B, C)
        Log-probabilities (``log_probs``).
    l : ndarray of int, shape (B, S)
        Padded targets (labels past ``S_b`` are ignored).
    T_b : ndarray of int, shape (B,)
        Input lengths in 1..T.
    S_b : ndarray of int, shape (B,)
        Target lengths in 0..S.
    blank : int

    Returns
    -------
    CTCCache

    Notes
    -----
    With ``y'[t, s] = y[t, l'_s]`` and ``lse`` a log-sum-exp (``numpy.logaddexp``)::

        alpha[0, 0] = y'[0, 0],  alpha[0, 1] = y'[0, 1],  alpha[0, s] = -inf for s >= 2
        alpha[t, s] = lse(alpha[t-1, s], alpha[t-1, s-1], alpha[t-1, s-2] if skip[s])
                      + y'[t, s]
        log p       = lse(alpha[T_b-1, L_b-1], alpha[T_b-1, L_b-2])

        beta[T_b-1, s] = 0 for s in (L_b-1, L_b-2), else -inf
        beta[t, s]  = lse(beta[t+1, s]   + y'[t+1, s],
                          beta[t+1, s+1] + y'[t+1, s+1],
                          beta[t+1, s+2] + y'[t+1, s+2] if skip[s+2])

    ``alpha[t, s]`` is the log-probability of the frames 0..t on the paths at ``s`` at time
    ``t``, ``beta[t, s]`` that of the frames t+1..T_b-1 given ``s`` at ``t`` (it does not
    include frame ``t``: then ``alpha + beta`` counts every frame once). Both are -inf at
    positions past ``L_b = 2 S_b + 1`` and at frames past ``T_b``.
    """
    T, B, _ = y.shape
    l_ext, valid, skip = _extend(l, S_b, blank)
    L = l_ext.shape[1]
    y_ext = np.take_along_axis(y, np.broadcast_to(l_ext, (T, B, L)), axis=2)  # (T, B, L) y'
    live = np.arange(T)[:, None] < T_b  # (T, B) frame t is within sequence b
    ninf = y.dtype.type(-np.inf)

    alpha = np.full((T, B, L), ninf, dtype=y.dtype)
    alpha[0, :, :2] = y_ext[0, :, :2]
    alpha[0] = np.where(valid, alpha[0], ninf)
    for t in range(1, T):
        a = alpha[t - 1]  # (B, L)
        a = np.logaddexp(np.logaddexp(a, _shift(a, 1)), np.where(skip, _shift(a, 2), ninf))
        alpha[t] = np.where(valid & live[t][:, None], a + y_ext[t], ninf)

    last = alpha[T_b - 1, np.arange(B)]  # (B, L) alpha[T_b - 1]
    end = (np.arange(L) == 2 * S_b[:, None]) | (np.arange(L) == 2 * S_b[:, None] - 1)
    log_p = np.logaddexp.reduce(np.where(end, last, ninf), axis=1)  # (B,)

    beta = np.full((T, B, L), ninf, dtype=y.dtype)
    beta_end = np.where(end, y.dtype.type(0), ninf)  # (B, L) beta[T_b - 1]
    for t in range(T - 1, -1, -1):
        if t < T - 1:
            n = beta[t + 1] + y_ext[t + 1]  # (B, L) the frame t+1 taken at s
            b = np.logaddexp(np.logaddexp(n, _shift(n, -1)),
                             _shift(np.where(skip, n, ninf), -2))
        else:
            b = beta_end
        b = np.where(live[t][:, None] & valid, b, ninf)
        beta[t] = np.where((t == T_b - 1)[:, None], beta_end, b)  # type: ignore[index]
    return CTCCache(l_ext, alpha, beta, log_p)


def ctc_occupancy(cache: CTCCache, T_b: np.ndarray, C: int) -> np.ndarray:
    """``d(-log p)/dy``: minus the posterior of each class at each frame, (T, B, C).

    Notes
    -----
    Every path of frames 0..T_b-1 passes through exactly one position ``s`` at frame ``t``,
    and ``y[t, k]`` enters a path's log-probability once if the path emits ``k`` at ``t``::

        p                  = sum_s exp(alpha[t, s] + beta[t, s])      for every t < T_b
        gamma[t, s]        = exp(alpha[t, s] + beta[t, s]) / p         (sums to 1 over s)
        d(-log p)/dy[t, k] = - sum_{s : l'_s = k} gamma[t, s]

    ``p`` is taken frame by frame as the sum in the first line (rather than the ``log p`` of
    the forward pass): equal in exact arithmetic, and in float32 the rounding that
    ``alpha + beta`` gathers over a thousand frames is common to the whole frame and cancels.
    Where ``p = 0`` (no alignment) the gradient is NaN, as PyTorch's; zero past ``T_b``.
    """
    T, B, L = cache.alpha.shape
    ab = cache.alpha + cache.beta  # (T, B, L) log of the paths through (t, s)
    m = ab.max(axis=2, keepdims=True)  # (T, B, 1)
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(under="ignore"):
        w = np.exp(ab - m)  # (T, B, L)
    p = w.sum(axis=2, keepdims=True)  # (T, B, 1) p, scaled by exp(-m)
    live = (np.arange(T)[:, None] < T_b)[..., None]  # (T, B, 1)
    feasible = np.isfinite(cache.log_p)[None, :, None]  # (1, B, 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = np.where(live, np.where(feasible, w / p, np.nan), 0).astype(w.dtype)
    onehot = np.arange(C) == cache.l_ext[..., None]  # (B, L, C)
    return -np.einsum("tbs,bsc->tbc", gamma, onehot.astype(w.dtype))  # (T, B, C)


def ctc_loss(log_probs: ArrayLike, targets: ArrayLike, input_lengths: ArrayLike,
             target_lengths: ArrayLike, blank: int = 0, reduction: str = "mean",
             zero_infinity: bool = False) -> tuple[Union[float, FloatArray], FloatArray]:
    """CTC loss and its gradient, as ``torch.nn.functional.ctc_loss``.

    Parameters
    ----------
    log_probs : array_like, shape (T, B, C) or (T, C) for one sequence
        Log-probabilities of the C classes (blank included) at each frame, e.g. the output
        of ``losses.log_softmax``. float32 stays float32, anything else becomes float64.
    targets : array_like of int, shape (B, S), or (S,) for one sequence
        Labels padded to a common width ``S``; the labels of sequence ``b`` are
        ``targets[b, :target_lengths[b]]``, each in 0..C-1 and not the blank.
    input_lengths : array_like of int, shape (B,) (or an int for one sequence)
        Frames of each sequence, in 1..T.
    target_lengths : array_like of int, shape (B,) (or an int for one sequence)
        Labels of each sequence, in 0..S.
    blank : int, default 0
        The blank class.
    reduction : {"mean", "sum", "none"}
        ``"none"``: the loss of each sequence, an array of shape (B,) (shape () for one
        sequence). ``"sum"``: their sum. ``"mean"``: each divided by its target length
        (1 if it is 0), then averaged over the batch, as PyTorch.
    zero_infinity : bool, default False
        Replace infinite losses (no alignment of the target fits in the input) and their
        gradients by zero; otherwise such a loss is ``inf`` and its gradient NaN.

    Returns
    -------
    loss : float, or ndarray of shape (B,) for ``reduction="none"``
    dlog_probs : ndarray, shape of ``log_probs``
        Derivative of the loss with respect to ``log_probs`` taken as free inputs (for
        ``"none"``, of the sum of the losses); zero past each input length. It is not what
        ``torch.autograd`` gives for ``log_probs`` (see Notes).

    Raises
    ------
    TypeError, ValueError
        For an argument of the wrong type, shape or value; the message names the argument.

    Notes
    -----
    With ``alpha``, ``beta`` and ``gamma`` as in :func:`ctc_forward_backward` and
    :func:`ctc_occupancy`, ``l_b`` the loss of sequence ``b`` and ``w_b`` its weight in the
    reduction (1 for ``"sum"`` and ``"none"``, ``1 / (B max(S_b, 1))`` for ``"mean"``)::

        l_b          = -log p(l_b | x_b) = -lse(alpha[T_b-1, L_b-1], alpha[T_b-1, L_b-2])
        L            = sum_b w_b l_b
        dL/dy[t,b,k] = -w_b sum_{s : l'_s = k} gamma[t, b, s]

    PyTorch's gradient for ``log_probs`` adds ``exp(log_probs)`` to this (it is the
    gradient for the logits of a ``log_softmax``, into which the term cancels since
    ``sum_k dL/dy[t, b, k] = -w_b``): compare the two after a ``log_softmax`` backward.

    Examples
    --------
    >>> import numpy as np
    >>> from npseq import losses
    >>> y = losses.log_softmax(np.zeros((4, 1, 3)))  # 4 frames, uniform over 3 classes
    >>> loss, dy = losses.ctc_loss(y, [[1, 2]], [4], [2], reduction="sum")
    >>> round(loss, 4)  # 15 alignments of "12" in 4 frames, each (1/3)**4: -log(15/81)
    1.6864
    >>> dy.shape
    (4, 1, 3)
    """
    y, unbatched = _log_probs_array(log_probs)
    T, B, C = y.shape
    blank = check_int("blank", blank, 0, C - 1)
    l = _targets_array(targets, B, unbatched)
    T_b = _input_lengths(input_lengths, T, B, unbatched)
    S_b = _target_lengths(target_lengths, l.shape[1], B, unbatched)
    check_choice("reduction", reduction, _REDUCTIONS)
    zero_infinity = check_bool("zero_infinity", zero_infinity)
    _check_labels(l, S_b, C, blank)

    cache = ctc_forward_backward(y, l, T_b, S_b, blank)
    nll = -cache.log_p  # (B,)
    dy = ctc_occupancy(cache, T_b, C)  # (T, B, C) d l_b / dy
    if zero_infinity:
        infinite = np.isinf(nll)
        nll = np.where(infinite, 0, nll).astype(y.dtype)
        dy[:, infinite] = 0
    if reduction == "none":
        loss = nll[0] if unbatched else nll
        w = np.ones(B, dtype=y.dtype)
    elif reduction == "sum":
        w = np.ones(B, dtype=y.dtype)
        loss = float(np.sum(nll.astype(np.float64)))
    else:
        w = (1 / (B * np.maximum(S_b, 1))).astype(y.dtype)  # (B,)
        loss = float(np.sum(nll.astype(np.float64) * (1 / (B * np.maximum(S_b, 1)))))
    dy *= w[:, None]
    return loss, (dy[:, 0] if unbatched else dy)


# --------------------------------------------------------------------------------------------
# decoding


def _decode_args(log_probs, input_lengths, blank):
    y, unbatched = _log_probs_array(log_probs)
    T, B, C = y.shape
    T_b = _input_lengths(input_lengths, T, B, unbatched)
    blank = check_int("blank", blank, 0, C - 1)
    return y, unbatched, T_b, blank


def ctc_greedy_decode(log_probs: ArrayLike, input_lengths: Optional[ArrayLike] = None,
                      blank: int = 0) -> Union[list[int], list[list[int]]]:
    """Best-path decoding: the most likely class at each frame, repeats merged, blanks dropped.

    Parameters
    ----------
    log_probs : array_like, shape (T, B, C) or (T, C) for one sequence
        Log-probabilities (or any scores: only their argmax is used).
    input_lengths : array_like of int, shape (B,) (or an int for one sequence), optional
        Frames of each sequence, in 1..T; all T when omitted.
    blank : int, default 0

    Returns
    -------
    list of list of int
        The labels of each sequence; for ``log_probs`` of shape (T, C), one list.

    Notes
    -----
    ::

        pi_t = argmax_k y[t, k]                 (the first such k on ties)
        B(pi) = pi with runs of equal classes merged, then blanks removed

    ``B(pi)`` is the labelling of the single most likely path; it need not be the most
    likely labelling (see :func:`ctc_prefix_beam_search`).

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.ctc import ctc_greedy_decode
    >>> frames = [1, 1, 0, 1, 2, 2, 0]  # argmax per frame
    >>> ctc_greedy_decode(np.log(np.eye(3)[frames] * 0.9 + 0.05))
    [1, 1, 2]
    """
    y, unbatched, T_b, blank = _decode_args(log_probs, input_lengths, blank)
    pi = np.argmax(y, axis=2)  # (T, B)
    out = []
    for b in range(y.shape[1]):
        path = pi[:T_b[b], b]
        new = np.ones(len(path), dtype=bool)
        new[1:] = path[1:] != path[:-1]  # first frame of each run
        out.append([int(k) for k in path[new] if k != blank])
    return out[0] if unbatched else out


def _lse(a, b):
    return float(np.logaddexp(a, b))


def ctc_prefix_beam_search(log_probs: ArrayLike, input_lengths: Optional[ArrayLike] = None,
                           beam_size: int = 8, blank: int = 0, nbest: Optional[int] = None
                           ) -> Union[list, tuple[list[int], float]]:
    """Prefix beam search: the most likely labellings, summed over their alignments.

    Parameters
    ----------
    log_probs : array_like, shape (T, B, C) or (T, C) for one sequence
        Log-probabilities of the classes at each frame.
    input_lengths : array_like of int, shape (B,) (or an int for one sequence), optional
        Frames of each sequence, in 1..T; all T when omitted.
    beam_size : int >= 1, default 8
        Prefixes kept after each frame.
    blank : int, default 0
    nbest : int >= 1, optional
        Return the ``nbest`` best labellings of each sequence (fewer if the beam holds
        fewer) instead of the best one.

    Returns
    -------
    list
        Per sequence ``(labels, log_prob)``, the best labelling (a list of int) and its
        log-probability as the search found it; with ``nbest``, a list of such pairs, best
        first. For ``log_probs`` of shape (T, C), the result of the one sequence.

    Notes
    -----
    Each prefix ``g`` in the beam carries two log-probabilities of the frames so far: of the
    paths that collapse to ``g`` and end in a blank (``p_b``) or in ``g``'s last label
    (``p_nb``). At frame ``t``, for every kept prefix and class ``k``::

        k = blank:      p_b(g)     += lse(p_b(g), p_nb(g)) + y[t, blank]
        k = last(g):    p_nb(g)    += p_nb(g) + y[t, k]        (a repeat merges)
                        p_nb(g+k)  += p_b(g) + y[t, k]          (a blank separates)
        other k:        p_nb(g+k)  += lse(p_b(g), p_nb(g)) + y[t, k]

    (``+=`` adds probabilities: ``lse`` in log space.) The ``beam_size`` prefixes of largest
    ``lse(p_b, p_nb)`` are kept. With a beam holding every prefix the scores are the exact
    ``log p(labelling | x)``; a pruned beam gives lower bounds and may miss the best one.
    Ties are broken towards the shorter, then the smaller labelling, so the result is
    deterministic.
    """
    y, unbatched, T_b, blank = _decode_args(log_probs, input_lengths, blank)
    beam_size = check_int("beam_size", beam_size, 1)
    if nbest is not None:
        nbest = check_int("nbest", nbest, 1)
    ninf = -np.inf
    C = y.shape[2]
    results = []
    for b in range(y.shape[1]):
        beam = {(): (0.0, ninf)}  # prefix -> (p_b, p_nb), before any frame: the empty prefix
        for t in range(T_b[b]):
            yt = y[t, b].astype(np.float64)  # (C,)
            new: dict = {}

            def add(g, pb, pnb):
                old_b, old_nb = new.get(g, (ninf, ninf))
                new[g] = (_lse(old_b, pb), _lse(old_nb, pnb))

            for g, (pb, pnb) in beam.items():
                p = _lse(pb, pnb)
                for k in range(C):
                    if k == blank:
                        add(g, p + yt[k], ninf)
                    elif g and g[-1] == k:
                        add(g, ninf, pnb + yt[k])
                        add(g + (k,), ninf, pb + yt[k])
                    else:
                        add(g + (k,), ninf, p + yt[k])
            ranked = sorted(new.items(), key=lambda e: (-_lse(*e[1]), len(e[0]), e[0]))
            beam = dict(ranked[:beam_size])
        ranked = [(list(g), _lse(pb, pnb)) for g, (pb, pnb) in beam.items()]
        ranked.sort(key=lambda e: (-e[1], len(e[0]), e[0]))
        results.append(ranked[0] if nbest is None else ranked[:nbest])
    return results[0] if unbatched else results
