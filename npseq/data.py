"""Variable-length sequences: padding, unpadding and batches bucketed by length.

As ``torch.nn.utils.rnn`` for NumPy arrays. npseq's layers take a padded array and
``lengths=`` where PyTorch takes a ``PackedSequence``::

    x = data.pad_sequence(sequences)                  # (T, B, *), T the longest length
    out, state = model(x, lengths=[len(s) for s in sequences])

:class:`BucketIterator` yields such batches, each made of sequences of about the same length
(little padding), shuffled by a seed::

    for x, lengths, y in data.BucketIterator(sequences, labels, batch_size=32, seed=0):
        logits, _ = model(x, lengths=lengths)
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray

from npseq._typing import ArrayLike, Seed
from npseq._validation import (check_bool, check_choice, check_int, check_lengths,
                               make_rng, reject_packed_sequence)

__all__ = ["pad_sequence", "unpad_sequence", "BucketIterator"]

_SIDES = ("right", "left")


def _as_sequences(sequences, name="sequences", min_length=0):
    """A list of real arrays of shape ``(L_i, *)`` with the same trailing dimensions."""
    reject_packed_sequence(name, sequences)
    if isinstance(sequences, (str, bytes, Mapping)) or not hasattr(sequences, "__iter__"):
        raise TypeError(f"{name}: expected a list of arrays of shape (L, *), got "
                        f"{type(sequences).__name__}")
    arrays: list[np.ndarray] = []
    for i, s in enumerate(sequences):
        try:
            a = np.asarray(s)
        except (ValueError, TypeError) as err:
            raise TypeError(f"{name}[{i}]: expected an array of shape (L, *), got "
                            f"{type(s).__name__} ({err})") from None
        if a.dtype.kind not in "biuf":
            raise TypeError(f"{name}[{i}]: expected a real numeric array, got dtype {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"{name}[{i}]: expected an array of shape (L, *) (a sequence of "
                             f"L steps), got a scalar")
        if a.shape[1:] != (arrays[0].shape[1:] if arrays else a.shape[1:]):
            raise ValueError(f"{name}[{i}]: expected shape (L, *{arrays[0].shape[1:]}) (the "
                             f"trailing dimensions of {name}[0]), got {a.shape}")
        if len(a) < min_length:
            raise ValueError(f"{name}[{i}]: expected at least {min_length} step, got "
                             f"shape {a.shape}")
        arrays.append(a)
    if not arrays:
        raise ValueError(f"{name}: expected at least one sequence, got none")
    return arrays


def _check_padding_value(name, value, dtype):
    """A real number that ``dtype`` holds exactly (a whole number for integer arrays)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r} ({type(value).__name__})")
    if dtype.kind in "biu" and not (np.isfinite(value)  # type: ignore[call-overload]
                                     and float(value).is_integer()):
        raise ValueError(f"{name}: expected a whole number for sequences of dtype {dtype}, "
                         f"got {value!r}")
    if dtype.kind in "iu" and not (
            np.iinfo(dtype).min <= value <= np.iinfo(dtype).max):  # type: ignore[operator]
        raise ValueError(f"{name}: expected a value that fits in {dtype}, got {value!r}")
    if dtype.kind == "b" and value not in (0, 1):
        raise ValueError(f"{name}: expected 0 or 1 for sequences of dtype bool, got {value!r}")
    return value


def _pad(arrays, batch_first, padding_value, padding_side, name="padding_value"):
    """Pad validated arrays (no checks of their own)."""
    dtype = np.result_type(*arrays)
    padding_value = _check_padding_value(name, padding_value, dtype)
    B, T, trailing = len(arrays), max(len(a) for a in arrays), arrays[0].shape[1:]
    out = np.full((B, T) + trailing if batch_first else (T, B) + trailing, padding_value,
                  dtype=dtype)
    for b, a in enumerate(arrays):
        L = len(a)
        steps = slice(0, L) if padding_side == "right" else slice(T - L, T)
        if batch_first:
            out[b, steps] = a
        else:
            out[steps, b] = a
    return out


def pad_sequence(sequences: Sequence[ArrayLike], batch_first: bool = False,
                 padding_value: float = 0.0, padding_side: str = "right") -> NDArray[Any]:
    """Stack sequences of different lengths into one array, padded to the longest.

    As ``torch.nn.utils.rnn.pad_sequence``.

    Parameters
    ----------
    sequences : list of array_like, each of shape (L_i, *)
        The same trailing dimensions ``*`` (none for 1-D sequences such as token ids);
        ``L_i = 0`` is allowed.
    batch_first : bool, default False
        Return ``(B, T, *)`` instead of ``(T, B, *)``.
    padding_value : float, default 0.0
        The value of the padded entries; a whole number for integer sequences.
    padding_side : {"right", "left"}, default "right"
        ``"right"``: sequence ``b`` fills steps ``0..L_b-1``, the padding comes after it;
        ``"left"``: it fills the last ``L_b`` steps, the padding comes before it.

    Returns
    -------
    padded : ndarray, shape (T, B, *) or (B, T, *)
        ``T = max L_i``, ``B = len(sequences)``; the dtype NumPy gives the sequences together
        (integer token ids stay integers). A new array: the sequences are copied.

    Raises
    ------
    TypeError
        ``sequences`` is not a list of real arrays (a ``PackedSequence`` included).
    ValueError
        No sequences, differing trailing dimensions, or a ``padding_value`` the dtype cannot
        hold.

    Examples
    --------
    >>> from npseq.data import pad_sequence
    >>> pad_sequence([[1, 2, 3], [4], [5, 6]], batch_first=True)
    array([[1, 2, 3],
           [4, 0, 0],
           [5, 6, 0]])
    >>> pad_sequence([[1, 2, 3], [4]], padding_value=-1, padding_side="left")  # (T, B)
    array([[ 1, -1],
           [ 2, -1],
           [ 3,  4]])
    """
    arrays = _as_sequences(sequences)
    batch_first = check_bool("batch_first", batch_first)
    padding_side = check_choice("padding_side", padding_side, _SIDES)
    return _pad(arrays, batch_first, padding_value, padding_side)


def unpad_sequence(padded_sequences: ArrayLike, lengths: ArrayLike, batch_first: bool = False,
                   padding_side: str = "right") -> list[NDArray[Any]]:
    """Split a padded array into its sequences, the inverse of :func:`pad_sequence`.

    As ``torch.nn.utils.rnn.unpad_sequence`` (which has no ``padding_side``: right only).

    Parameters
    ----------
    padded_sequences : array_like, shape (T, B, *) or (B, T, *) with ``batch_first``
    lengths : array_like of int, shape (B,), values in 0..T
    batch_first : bool, default False
    padding_side : {"right", "left"}, default "right"
        Where the padding is: sequence ``b`` is the first ``lengths[b]`` steps (``"right"``)
        or the last ones (``"left"``).

    Returns
    -------
    sequences : list of B ndarrays, sequence ``b`` of shape (lengths[b], *)
        Copies: ``padded_sequences`` is neither modified nor shared.

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.data import unpad_sequence
    >>> unpad_sequence(np.array([[1, 4], [2, 0], [3, 0]]), [3, 1])
    [array([1, 2, 3]), array([4])]
    """
    reject_packed_sequence("padded_sequences", padded_sequences)
    try:
        padded = np.asarray(padded_sequences)
    except (ValueError, TypeError) as err:
        raise TypeError(f"padded_sequences: expected an array of shape (T, B, *), got "
                        f"{type(padded_sequences).__name__} ({err})") from None
    if padded.dtype.kind not in "biuf":
        raise TypeError(f"padded_sequences: expected a real numeric array, got dtype "
                        f"{padded.dtype}")
    batch_first = check_bool("batch_first", batch_first)
    padding_side = check_choice("padding_side", padding_side, _SIDES)
    if padded.ndim < 2:
        raise ValueError(f"padded_sequences: expected shape "
                         f"{'(B, T, *)' if batch_first else '(T, B, *)'} (at least 2 "
                         f"dimensions), got {padded.shape}")
    if not batch_first:
        padded = padded.swapaxes(0, 1)  # (B, T, *), a view
    B, T = padded.shape[:2]
    lengths = check_lengths(lengths, T, B, minimum=0)
    if padding_side == "right":
        return [padded[b, :L].copy() for b, L in enumerate(lengths)]
    return [padded[b, T - L:].copy() for b, L in enumerate(lengths)]


class BucketIterator:
    """Batches of sequences of similar length, padded, with their lengths and targets.

    Iterating gives one epoch of ``(x, lengths, y)``; every iteration (epoch) draws a new
    order from ``seed``. Sequences of similar length share a batch, so a batch is padded to
    little more than its own sequences' lengths.

    Parameters
    ----------
    sequences : list of array_like, each of shape (L_i, *) with L_i >= 1
        The inputs, e.g. feature arrays ``(L_i, D)`` or token ids ``(L_i,)``.
    y : array_like of shape (N, ...), list of N array_likes, or None
        Targets. With ``y_per_step=False`` (default), one target per sequence (a label, a
        vector): batch ``y`` is ``y[batch indices]``, shape ``(B, ...)``. With
        ``y_per_step=True``, a sequence of targets per input sequence, of the same length
        (``(L_i, ...)``): batch ``y`` is padded like ``x``. ``None``: batch ``y`` is
        ``None``.
    batch_size : int, default 32
    seed : None, int or numpy.random.Generator
        Source of the order (a Generator is used, and advanced, as it is). The same seed
        gives the same batches in the same order, epoch after epoch.
    shuffle : bool, default True
        ``False``: batches in order of increasing length, ties in the order given, the
        remainder batch last, no randomness.
    drop_last : bool, default False
        Leave out ``N % batch_size`` sequences each epoch (drawn at random when shuffling,
        the longest otherwise), so that every batch has ``batch_size`` sequences.
    batch_first : bool, default False
        ``x`` (and a per-step ``y``) of shape ``(B, T, *)`` instead of ``(T, B, *)``.
    padding_value : float, default 0.0
        Padding of ``x``.
    y_per_step : bool, default False
    y_padding_value : float, default 0
        Padding of a per-step ``y``. ``-100``, the default ``ignore_index`` of
        :func:`npseq.losses.cross_entropy`, makes the loss skip padded targets.

    Yields
    ------
    x : ndarray, shape (T, B, *) or (B, T, *)
        ``T`` is the longest length in this batch; the dtype of the sequences.
    lengths : ndarray of int64, shape (B,)
    y : ndarray or None

    Notes
    -----
    The bucketing rule. Each epoch:

    1. the indices are shuffled (ties in length are broken at random); with ``drop_last``,
       ``N % batch_size`` of them are set aside;
    2. the rest are sorted by length (a stable sort, so ties keep the shuffled order) and cut
       into runs of ``batch_size`` consecutive indices; the one shorter run, if
       ``N % batch_size > 0`` and not ``drop_last``, sits at a random place among them;
    3. the batches are shuffled.

    So each batch is a run of consecutive sequences in order of length: every sequence of
    the epoch outside a batch is at most as long as the batch's shortest or at least as
    long as its longest. Every index is in exactly one batch of an epoch (with ``drop_last``:
    in at most one). A batch's padding is the spread of lengths within its run.

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.data import BucketIterator
    >>> rng = np.random.default_rng(0)
    >>> sequences = [rng.standard_normal((L, 3)) for L in rng.integers(2, 30, size=100)]
    >>> labels = rng.integers(0, 2, size=100)
    >>> batches = BucketIterator(sequences, labels, batch_size=16, seed=0)
    >>> len(batches)
    7
    >>> for x, lengths, y in batches:       # one epoch
    ...     assert x.shape == (lengths.max(), len(lengths), 3) and y.shape == lengths.shape
    """

    def __init__(self, sequences: Sequence[ArrayLike], y: Optional[ArrayLike] = None,
                 batch_size: int = 32, seed: Seed = None, shuffle: bool = True,
                 drop_last: bool = False, batch_first: bool = False,
                 padding_value: float = 0.0, y_per_step: bool = False,
                 y_padding_value: float = 0) -> None:
        self.sequences = [a.copy() for a in _as_sequences(sequences, min_length=1)]
        N = len(self.sequences)
        self.batch_size = check_int("batch_size", batch_size, minimum=1)
        self.shuffle = check_bool("shuffle", shuffle)
        self.drop_last = check_bool("drop_last", drop_last)
        self.batch_first = check_bool("batch_first", batch_first)
        self.y_per_step = check_bool("y_per_step", y_per_step)
        _check_padding_value("padding_value", padding_value, np.result_type(*self.sequences))
        self.padding_value = padding_value
        self.y_padding_value = y_padding_value
        self.rng = make_rng(seed)
        self.lengths = np.array([len(a) for a in self.sequences], dtype=np.int64)  # (N,)
        if drop_last and N < self.batch_size:
            raise ValueError(f"batch_size: expected at most {N} (the number of sequences) "
                             f"with drop_last=True, got {self.batch_size}: no batch is full")
        self.y = self._check_y(y, N)

    def _check_y(self, y, N):
        if y is None:
            return None
        if self.y_per_step:
            ys = [a.copy() for a in _as_sequences(y, name="y")]
            if len(ys) != N:
                raise ValueError(f"y: expected {N} target sequences (one per sequence), got "
                                 f"{len(ys)}")
            for i, (a, L) in enumerate(zip(ys, self.lengths)):
                if len(a) != L:
                    raise ValueError(f"y[{i}]: expected {L} steps (the length of "
                                     f"sequences[{i}]) with y_per_step=True, got shape "
                                     f"{a.shape}")
            _check_padding_value("y_padding_value", self.y_padding_value, np.result_type(*ys))
            return ys
        reject_packed_sequence("y", y)
        try:
            arr = np.array(y)  # a copy
        except (ValueError, TypeError) as err:
            raise TypeError(f"y: expected an array of shape (N, ...) with one target per "
                            f"sequence (or y_per_step=True for sequences of targets), got "
                            f"{type(y).__name__} ({err})") from None
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"y: expected a real numeric array, got dtype {arr.dtype}")
        if arr.ndim == 0 or len(arr) != N:
            raise ValueError(f"y: expected shape ({N}, ...), one target per sequence, got "
                             f"{arr.shape}")
        return arr

    def __len__(self) -> int:
        """Batches per epoch."""
        N, bs = len(self.sequences), self.batch_size
        return N // bs if self.drop_last else -(-N // bs)

    def batch_indices(self) -> list[NDArray[np.int64]]:
        """The indices of one epoch's batches (a list of int64 arrays), drawn as
        :meth:`__iter__` draws them: calling it advances the seed's generator."""
        N, bs = len(self.sequences), self.batch_size
        order = self.rng.permutation(N) if self.shuffle else np.arange(N)
        rest = N % bs
        if self.drop_last and rest:
            if self.shuffle:
                order = order[rest:]  # a random subset of rest indices set aside
            else:
                order = order[np.argsort(self.lengths[order], kind="stable")][:N - rest]
        order = order[np.argsort(self.lengths[order], kind="stable")]  # (n,) by length
        n = len(order)
        full = n // bs
        sizes = [bs] * full
        if n % bs:  # the one short run: at a random place among the runs, last if not shuffled
            sizes.insert(int(self.rng.integers(full + 1)) if self.shuffle else full, n % bs)
        batches = np.split(order, np.cumsum(sizes)[:-1])
        if self.shuffle:
            batches = [batches[i] for i in self.rng.permutation(len(batches))]
        return batches

    def __iter__(self) -> Iterator[tuple[NDArray[Any], NDArray[np.int64], Optional[NDArray[Any]]]]:
        for idx in self.batch_indices():
            x = _pad([self.sequences[i] for i in idx], self.batch_first, self.padding_value,
                     "right")
            lengths = self.lengths[idx]  # (B,)
            if self.y is None:
                y = None
            elif self.y_per_step:
                y = _pad([self.y[i] for i in idx], self.batch_first, self.y_padding_value,
                         "right", name="y_padding_value")
            else:
                y = self.y[idx]
            yield x, lengths, y

    def __repr__(self):
        return (f"BucketIterator({len(self.sequences)} sequences, batch_size="
                f"{self.batch_size}, shuffle={self.shuffle}, drop_last={self.drop_last}, "
                f"batch_first={self.batch_first})")
