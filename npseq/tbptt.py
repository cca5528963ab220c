"""Truncated backpropagation through time over a long sequence.

A long sequence is cut into chunks of ``k`` steps. Each chunk runs forward from the state the
previous chunk ended in, so the forward pass over all chunks equals one pass over the whole
sequence. Each chunk's backward stops at its first step: the gradient of the state it started
from is dropped, which bounds memory and time per update by ``k`` steps, as when language
models are trained on long texts::

    state = None
    for chunk in chunks of k steps:
        out, state = model(chunk, state)          # carried forward
        loss, dout = loss_and_grad(out, ...)
        model.backward(dout)                      # no gradient into the previous chunk
        optimizer step (optional)

With ``k >= T`` this is plain BPTT over the whole sequence.

Dropout masks: each chunk is one forward call, so by default (``masks="chunk"``) every
chunk draws its own masks, as AWD-LSTM's training loop does: a recurrent-dropout or
weight-drop mask "per sequence" is per chunk. With ``masks="sequence"`` the layers keep the
recurrent-dropout and weight-drop masks of the first chunk for all the chunks of the call
(:attr:`npseq.RNNBase.keep_dropout_masks`); zoneout (a mask per step) and the dropout
between layers or of a :class:`~npseq.LockedDropout` (a mask per call) are still drawn per
chunk.
"""
from __future__ import annotations

import numbers
from typing import Callable, Optional, Union

import numpy as np

from npseq._typing import ArrayLike, FloatArray, State, StateLike
from npseq._validation import check_callable, check_choice, check_int
from npseq.layers import RNNBase
from npseq.model import Sequential
from npseq.nn import Embedding

__all__ = ["truncated_bptt", "time_chunks"]


def time_chunks(T: int, k: int) -> list[tuple[int, int]]:
    """The ``(start, stop)`` pairs that cut ``range(T)`` into chunks of ``k`` steps."""
    T = check_int("T", T, minimum=1)
    k = check_int("k", k, minimum=1)
    return [(start, min(start + k, T)) for start in range(0, T, k)]


def _feature_axes(module: Union[RNNBase, Sequential]) -> int:
    """Trailing feature axes of ``x``: 1 for a layer's (..., input_size), 0 for the token ids
    of a :class:`~npseq.Sequential` that starts with an :class:`~npseq.Embedding`."""
    first = module[0] if isinstance(module, Sequential) else module
    return 0 if isinstance(first, Embedding) else 1


def truncated_bptt(module: Union[RNNBase, Sequential], x: ArrayLike, k: int,
                   loss_and_grad: Callable[[FloatArray, int, int], tuple[float, ArrayLike]],
                   state: StateLike = None,
                   on_chunk: Optional[Callable[[int, int, float], object]] = None, *,
                   masks: str = "chunk") -> tuple[float, State]:
    """Run a layer over ``x`` in chunks of ``k`` steps, back-propagating within each chunk.

    Parameters
    ----------
    module : npseq.RNN, npseq.LSTM, npseq.GRU, or an npseq.Sequential around one
    x : array_like
        The whole sequence in the layer's layout: (T, B, D), (B, T, D) with ``batch_first``,
        or unbatched (T, D); for a Sequential that starts with an Embedding, integer token
        ids (T, B), (B, T) or (T,). Each chunk is checked and cast by ``module`` itself.
    k : int
        Steps per chunk (the truncation length).
    loss_and_grad : callable ``(out, start, stop) -> (loss, dout)``
        Loss of one chunk's output ``out`` (time steps ``start:stop`` of the sequence) and its
        gradient, shaped like ``out``.
    state : initial state, optional (None for zeros)
    on_chunk : callable ``(start, stop, loss)``, optional
        Called after each chunk's backward, e.g. to take an optimizer step and zero the
        gradients. Without it, the gradients of all chunks add up in ``module.grads``.
    masks : {"chunk", "sequence"}, keyword only, default "chunk"
        "chunk": every chunk draws its own recurrent-dropout and weight-drop masks.
        "sequence": one set for the whole of ``x``, drawn at the first chunk (the layers'
        :attr:`~npseq.RNNBase.keep_dropout_masks` is set for the call and restored after,
        their kept masks forgotten before and after).

    Returns
    -------
    total_loss : float
        Sum of the chunks' losses.
    state : the state after the last step (carry it into the next call to continue).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.GRU(2, 3, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((10, 4, 2))
    >>> def loss_and_grad(out, start, stop):
    ...     return 0.5 * float(np.sum(out ** 2)), out
    >>> loss, h = npseq.truncated_bptt(m, x, 4, loss_and_grad)
    """
    if not all(hasattr(module, a) for a in ("forward", "backward", "dtype", "batch_first")):
        raise TypeError(f"module: expected a layer (npseq.RNN, LSTM or GRU) that runs whole "
                        f"sequences, got {type(module).__name__}")
    k = check_int("k", k, minimum=1)
    masks = check_choice("masks", masks, ("chunk", "sequence"))
    check_callable("loss_and_grad", loss_and_grad, "(out, start, stop) -> (loss, dout)")
    check_callable("on_chunk", on_chunk, "(start, stop, loss)", optional=True)
    try:
        x = np.asarray(x)  # not cast: the module's own forward checks and casts each chunk
    except (ValueError, TypeError) as err:
        raise TypeError(f"x: expected an array, got {type(x).__name__} ({err})") from None
    features = _feature_axes(module)
    time_axis = 1 if module.batch_first and x.ndim == features + 2 else 0
    if x.ndim not in (features + 1, features + 2) or x.shape[time_axis] == 0:
        what = (f"a {features + 2}-D batch or a {features + 1}-D unbatched sequence"
                + (" of token ids" if features == 0 else ""))
        raise ValueError(f"x: expected {what} with at least one time step, got shape "
                         f"{x.shape}")
    layers = [m for m in (module.modules if isinstance(module, Sequential) else [module])
              if hasattr(m, "keep_dropout_masks")] if masks == "sequence" else []
    saved = [m.keep_dropout_masks for m in layers]
    for m in layers:  # one set of masks for the whole of x
        m.keep_dropout_masks = True
        m.reset_dropout_mask()
    try:
        return _run_chunks(module, x, k, loss_and_grad, state, on_chunk, time_axis)
    finally:
        for m, keep in zip(layers, saved):
            m.keep_dropout_masks = keep
            m.reset_dropout_mask()


def _run_chunks(module, x, k, loss_and_grad, state, on_chunk, time_axis):
    """The loop of :func:`truncated_bptt` over the chunks of ``x``."""
    total = 0.0
    for start, stop in time_chunks(x.shape[time_axis], k):
        chunk = x[:, start:stop] if time_axis == 1 else x[start:stop]
        out, state = module(chunk, state)
        result = loss_and_grad(out, start, stop)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise TypeError(f"loss_and_grad: expected it to return a pair (loss, dout), got "
                            f"{type(result).__name__}")
        loss, dout = result
        if not isinstance(loss, numbers.Real):
            raise TypeError(f"loss_and_grad: expected a real number as the loss, got "
                            f"{type(loss).__name__}")
        module.backward(dout)  # the gradient of the chunk's initial state is dropped
        total += float(loss)
        if on_chunk is not None:
            on_chunk(start, stop, loss)
    return total, state  # the module's: T >= 1 steps ran
