"""Losses and their gradients, as ``torch.nn.functional`` computes them.

Every loss returns ``(loss, grad)``: the loss as a Python float and its gradient with respect
to the first argument, shaped like it (and of its dtype), ready to pass to a ``backward``::

    loss, dlogits = losses.cross_entropy(logits, target)
    model.backward(dlogits)

Reductions are ``"mean"`` (the default, as PyTorch) and ``"sum"``; :func:`ctc_loss` (from
:mod:`npseq.ctc`, its loss of label sequences without alignment) also takes ``"none"``. Every function is
numerically stable: finite and warning-free for logits of any finite size (``+-1e4`` in
float32 included). Where ``exp`` of a very negative number underflows to zero, zero is the
correctly rounded result, so underflow is not reported.
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from npseq._typing import ArrayLike, FloatArray
from npseq._validation import as_array, check_bool, check_choice, check_lengths, check_shape
from npseq.activations import sigmoid
from npseq.ctc import ctc_loss

__all__ = ["softmax", "log_softmax", "cross_entropy", "mse_loss", "bce_with_logits", "ctc_loss",
           "ar_loss", "tar_loss"]

_REDUCTIONS = ("mean", "sum")


def _float_array(name: str, value: ArrayLike) -> np.ndarray:
    """A real array as float: float32 stays float32, anything else becomes float64."""
    is32 = isinstance(value, np.ndarray) and value.dtype == np.float32
    return as_array(name, value, np.float32 if is32 else np.float64)


def _check_axis(axis, ndim):
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis: expected an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis: expected an axis of an array with {ndim} dimensions, "
                         f"got {axis}")


def log_softmax(logits: ArrayLike, axis: int = -1) -> FloatArray:
    """``log softmax(z)`` along ``axis``, stable for any finite ``z``.

    Notes
    -----
    ::

        log_softmax(z)_k = (z_k - m) - log sum_j exp(z_j - m),   m = max_j z_j

    Subtracting the maximum keeps every ``exp`` argument <= 0: no overflow, and the largest
    term is exactly 1, so the sum is >= 1 and its log is finite.
    """
    z = _float_array("logits", logits)
    _check_axis(axis, z.ndim)
    shifted = z - z.max(axis=axis, keepdims=True)
    with np.errstate(under="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(logits: ArrayLike, axis: int = -1) -> FloatArray:
    """``softmax(z)_k = exp(z_k) / sum_j exp(z_j)`` along ``axis``, as ``exp(log_softmax)``."""
    with np.errstate(under="ignore"):
        return np.exp(log_softmax(logits, axis))


def _reduce(losses, weight, reduction):
    """Weighted sum of per-position losses and the factor of each position's gradient.

    ``"sum"``: ``L = sum w l``; ``"mean"``: ``L = sum w l / sum w`` (NaN when ``sum w = 0``,
    as PyTorch; the gradient is then zero).
    """
    total = float(np.sum(losses * weight))
    if reduction == "sum":
        return total, weight
    count = float(np.sum(weight))
    if count == 0:
        return float("nan"), weight
    return total / count, weight / weight.dtype.type(count)


def cross_entropy(logits: ArrayLike, target: ArrayLike, ignore_index: int = -100,
                  mask: Optional[ArrayLike] = None, reduction: str = "mean"
                  ) -> tuple[float, FloatArray]:
    """Softmax cross-entropy over the last axis, as ``torch.nn.functional.cross_entropy``.

    Parameters
    ----------
    logits : array_like, shape (..., C)
        Unnormalised scores; ``...`` may be (N,) for classification or (T, B) for a loss at
        every time step.
    target : array_like of int, shape (...)
        Class indices in 0..C-1, or ``ignore_index``.
    ignore_index : int, default -100
        Positions whose target equals it count for nothing.
    mask : array_like of bool, shape (...), optional
        Positions where it is False count for nothing (e.g. padding past each sequence's
        length).
    reduction : {"mean", "sum"}
        ``"mean"`` divides by the number of counted positions (NaN if there are none, as
        PyTorch).

    Returns
    -------
    loss : float
    dlogits : ndarray, shape (..., C)

    Notes
    -----
    With ``p = softmax(z)``, ``y`` the target, ``w`` 1 at counted positions else 0, and
    ``N = sum w`` for ``"mean"`` (``N = 1`` for ``"sum"``)::

        l_n = -log p_n[y_n] = logsumexp(z_n) - z_n[y_n]
        L   = sum_n w_n l_n / N
        dz_n = w_n (p_n - onehot(y_n)) / N
    """
    z = _float_array("logits", logits)
    if z.ndim == 0:
        raise ValueError("logits: expected shape (..., C) with the classes last, got a scalar")
    C = z.shape[-1]
    y = np.asarray(target)
    if y.dtype.kind not in "iu":
        raise TypeError(f"target: expected an array of integer class indices, got dtype "
                        f"{y.dtype}")
    check_shape("target", y, z.shape[:-1], "(the shape of logits without its last axis)")
    if isinstance(ignore_index, (bool, np.bool_)) or not isinstance(ignore_index,
                                                                     (int, np.integer)):
        raise TypeError(f"ignore_index: expected an integer, got {ignore_index!r}")
    check_choice("reduction", reduction, _REDUCTIONS)
    counted = y != ignore_index
    if mask is not None:
        m = np.asarray(mask)
        if m.dtype != np.bool_:
            raise TypeError(f"mask: expected a boolean array (False = ignore), got dtype "
                            f"{m.dtype}")
        counted = counted & check_shape("mask", m, y.shape, "(the shape of target)")
    bad = counted & ((y < 0) | (y >= C))
    if np.any(bad):
        raise ValueError(f"target: expected class indices in 0..{C - 1} or ignore_index "
                         f"({ignore_index}), got {y[bad].flat[0]}")
    y = np.where(counted, y, 0)[..., None]  # (..., 1), ignored positions point at class 0

    logp = log_softmax(z)  # (..., C)
    nll = -np.take_along_axis(logp, y, axis=-1)[..., 0]  # (...)
    loss, w = _reduce(nll, counted.astype(z.dtype), reduction)
    with np.errstate(under="ignore"):
        dz = np.exp(logp)  # p
    np.put_along_axis(dz, y, np.take_along_axis(dz, y, axis=-1) - 1, axis=-1)  # p - onehot(y)
    dz *= w[..., None]
    return loss, dz


def mse_loss(pred: ArrayLike, target: ArrayLike, reduction: str = "mean"
             ) -> tuple[float, FloatArray]:
    """Mean squared error, as ``torch.nn.functional.mse_loss``.

    Parameters
    ----------
    pred : array_like, any shape
    target : array_like, same shape
    reduction : {"mean", "sum"}

    Returns
    -------
    loss : float
    dpred : ndarray shaped like ``pred``

    Notes
    -----
    With ``N`` the number of elements for ``"mean"`` (1 for ``"sum"``)::

        L     = sum (pred - target)**2 / N
        dpred = 2 (pred - target) / N
    """
    pred = _float_array("pred", pred)
    target = check_shape("target", as_array("target", target, pred.dtype), pred.shape,
                         "(the shape of pred)")
    check_choice("reduction", reduction, _REDUCTIONS)
    diff = pred - target
    loss, w = _reduce(diff * diff, np.ones_like(diff), reduction)
    return loss, 2 * diff * w


def bce_with_logits(logits: ArrayLike, target: ArrayLike, reduction: str = "mean"
                    ) -> tuple[float, FloatArray]:
    """Binary cross-entropy on logits, as ``torch.nn.functional.binary_cross_entropy_with_logits``.

    Parameters
    ----------
    logits : array_like, any shape
    target : array_like, same shape, values in [0, 1] (soft labels allowed)
    reduction : {"mean", "sum"}

    Returns
    -------
    loss : float
    dlogits : ndarray shaped like ``logits``

    Notes
    -----
    With ``s = sigmoid(z)`` and ``N`` the number of elements for ``"mean"`` (1 for
    ``"sum"``)::

        l  = -(y log s + (1 - y) log(1 - s))
           = max(z, 0) - z y + log(1 + exp(-|z|))      stable form, no overflow
        L  = sum l / N
        dz = (s - y) / N
    """
    z = _float_array("logits", logits)
    y = check_shape("target", as_array("target", target, z.dtype), z.shape,
                    "(the shape of logits)")
    check_choice("reduction", reduction, _REDUCTIONS)
    with np.errstate(under="ignore"):
        nll = np.maximum(z, 0) - z * y + np.log1p(np.exp(-np.abs(z)))
    loss, w = _reduce(nll, np.ones_like(z), reduction)
    return loss, (sigmoid(z) - y) * w


# -- activation regularisation (Merity et al. 2017) ------------------------------------------
def _sequence_and_weights(name, h, lengths, batch_first):
    """``h`` as (T, B, F) (a view) and the weight (T, B) of every step: 1 at the steps
    before each sequence's length, 0 at padded steps (all 1 without ``lengths``)."""
    h = _float_array(name, h)
    batch_first = check_bool("batch_first", batch_first)
    if h.ndim not in (2, 3):
        layout = "(batch, seq_len, features)" if batch_first else "(seq_len, batch, features)"
        raise ValueError(f"{name}: expected shape {layout} or unbatched (seq_len, features), "
                         f"got {h.shape}")
    unbatched = h.ndim == 2
    seq = h[:, None] if unbatched else (h.transpose(1, 0, 2) if batch_first else h)
    T, B = seq.shape[:2]
    if lengths is None:
        return seq, np.ones((T, B), seq.dtype), unbatched
    n = check_lengths(lengths, T, B, scalar_ok=unbatched)  # (B,)
    return seq, (np.arange(T)[:, None] < n[None, :]).astype(seq.dtype), unbatched


def _check_scale(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
            or not (np.isfinite(value)  # type: ignore[call-overload]
                    and value >= 0):  # type: ignore[operator]
        raise (TypeError if not isinstance(value, numbers.Real) or isinstance(
            value, (bool, np.bool_)) else ValueError)(
            f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def _back_to_layout(dseq, unbatched, batch_first):
    if unbatched:
        return dseq[:, 0]
    return dseq.transpose(1, 0, 2) if batch_first else dseq


def ar_loss(h: ArrayLike, alpha: float = 2.0, lengths: Optional[ArrayLike] = None,
            batch_first: bool = False, reduction: str = "mean") -> tuple[float, FloatArray]:
    """Activation regularisation, AR (Merity et al. 2017): ``alpha`` times the mean square of
    the outputs.

    AWD-LSTM applies it to the last layer's output *after* dropout:
    ``alpha * dropped_rnn_h.pow(2).mean()``.

    Parameters
    ----------
    h : array_like, shape (T, B, F), (B, T, F) with ``batch_first``, or unbatched (T, F)
        The outputs to regularise (e.g. a layer's ``out`` after a :class:`~npseq.LockedDropout`).
    alpha : float >= 0, default 2.0 (AWD-LSTM's value)
    lengths : array_like of int, shape (B,), optional
        Valid length of each sequence, 1..T: padded steps count for nothing, neither in the
        sum nor in the count ``N``.
    batch_first : bool, default False
        Layout of ``h``.
    reduction : {"mean", "sum"}

    Returns
    -------
    loss : float
    dh : ndarray shaped like ``h`` (zero at padded steps)

    Notes
    -----
    With ``w[t, b]`` 1 at valid steps (``t < lengths[b]``) and 0 at padded ones, ``N`` the
    number of valid elements ``F * sum_b lengths[b]`` for ``"mean"`` (``T * B * F`` without
    ``lengths``, exactly ``.mean()``), 1 for ``"sum"``::

        L  = alpha * sum_{t,b,f} w[t,b] h[t,b,f]**2 / N
        dh = 2 alpha w h / N
    """
    alpha = _check_scale("alpha", alpha)
    check_choice("reduction", reduction, _REDUCTIONS)
    seq, w, unbatched = _sequence_and_weights("h", h, lengths, batch_first)  # (T,B,F), (T,B)
    loss, wn = _reduce(seq * seq, np.broadcast_to(w[..., None], seq.shape), reduction)  # wn=w/N
    dseq = 2 * alpha * wn * seq  # (T, B, F)
    return alpha * loss, _back_to_layout(dseq, unbatched, batch_first)


def tar_loss(h: ArrayLike, beta: float = 1.0, lengths: Optional[ArrayLike] = None,
             batch_first: bool = False, reduction: str = "mean") -> tuple[float, FloatArray]:
    """Temporal activation regularisation, TAR (Merity et al. 2017): ``beta`` times the mean
    square of the change of the outputs from one step to the next.

    AWD-LSTM applies it to the last layer's output *before* dropout:
    ``beta * (rnn_h[1:] - rnn_h[:-1]).pow(2).mean()``.

    Parameters
    ----------
    h : array_like, shape (T, B, F), (B, T, F) with ``batch_first``, or unbatched (T, F)
    beta : float >= 0, default 1.0 (AWD-LSTM's value)
    lengths : array_like of int, shape (B,), optional
        Valid length of each sequence, 1..T: a difference counts only when both of its steps
        are valid (``t + 1 < lengths[b]``), so a padded step never enters, and a sequence of
        length 1 contributes nothing.
    batch_first : bool, default False
    reduction : {"mean", "sum"}

    Returns
    -------
    loss : float
        NaN with ``"mean"`` when no difference counts (T = 1, or every length 1), as
        ``.mean()`` of an empty tensor in PyTorch; its gradient is then zero.
    dh : ndarray shaped like ``h``

    Notes
    -----
    With ``d[t] = h[t+1] - h[t]`` for ``t = 0..T-2``, ``w[t, b]`` 1 when both steps are valid
    (``t + 1 < lengths[b]``), ``N = F * sum_b (lengths[b] - 1)`` for ``"mean"``
    (``(T - 1) * B * F`` without ``lengths``, exactly ``.mean()``), 1 for ``"sum"``::

        L        = beta * sum_{t,b,f} w[t,b] d[t,b,f]**2 / N
        g[t]     = 2 beta w[t] d[t] / N                 (T-1, B, F)
        dh[t+1] += g[t]
        dh[t]   -= g[t]
    """
    beta = _check_scale("beta", beta)
    check_choice("reduction", reduction, _REDUCTIONS)
    seq, w, unbatched = _sequence_and_weights("h", h, lengths, batch_first)  # (T,B,F), (T,B)
    d = seq[1:] - seq[:-1]  # (T-1, B, F)
    w_pair = w[1:]  # (T-1, B): step t+1 valid implies step t valid
    loss, wn = _reduce(d * d, np.broadcast_to(w_pair[..., None], d.shape), reduction)
    g = 2 * beta * wn * d  # (T-1, B, F)
    dseq = np.zeros_like(seq)  # (T, B, F)
    dseq[1:] += g
    dseq[:-1] -= g
    return beta * loss, _back_to_layout(dseq, unbatched, batch_first)
