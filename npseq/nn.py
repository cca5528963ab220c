"""Feed-forward pieces around a recurrent layer: :class:`Linear` and :class:`Embedding`.

Both follow ``torch.nn.Linear`` and ``torch.nn.Embedding``: the same arguments, parameter
names, shapes and initialisation. As the cells and layers, each forward call pushes what its
backward needs and each ``backward`` pops the most recent one (LIFO); parameter gradients
add into ``grads``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq._typing import ArrayLike, DTypeLike, FloatArray, Seed
from npseq._validation import (as_array, check_bool, check_dtype, check_int, check_probability,
                               check_shape, make_rng, reject_packed_sequence)
from npseq.module import Module

__all__ = ["Linear", "Embedding"]


class LinearCache(NamedTuple):
    x: np.ndarray  # (..., in_features) the input


class Linear(Module):
    """Affine map ``y = x W^T + b`` on the last axis, as ``torch.nn.Linear``.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
        With the parameter ``bias``.
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of the initial parameters, U(-1/sqrt(in_features), 1/sqrt(in_features)) for
        ``weight`` and ``bias``, as PyTorch.

    Attributes
    ----------
    params : dict
        ``weight`` (out_features, in_features), ``bias`` (out_features,).
    grads : dict
        Same keys and shapes.

    Notes
    -----
    Forward and backward, summing over every leading axis of ``x``::

        y  = x W^T + b          (..., out)
        dx = dy W               (..., in)
        dW = sum dy^T x         (out, in)
        db = sum dy             (out,)

    Examples
    --------
    >>> import numpy as np, npseq
    >>> lin = npseq.Linear(3, 2, seed=0)
    >>> y = lin(np.ones((5, 4, 3)))
    >>> y.shape
    (5, 4, 2)
    >>> dx = lin.backward(np.ones((5, 4, 2)))
    >>> dx.shape, lin.grads["weight"].shape
    ((5, 4, 3), (2, 3))
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None) -> None:
        super().__init__(check_dtype(dtype))
        self.in_features = check_int("in_features", in_features, minimum=1)
        self.out_features = check_int("out_features", out_features, minimum=1)
        self.bias = check_bool("bias", bias)
        rng = make_rng(seed)
        bound = 1.0 / np.sqrt(self.in_features)
        shapes: dict[str, tuple[int, ...]] = {"weight": (self.out_features, self.in_features)}
        if self.bias:
            shapes["bias"] = (self.out_features,)
        self.params = {k: rng.uniform(-bound, bound, size=s).astype(self.dtype)
                       for k, s in shapes.items()}
        self._init_grads()

    def __repr__(self):
        return (f"Linear({self.in_features}, {self.out_features}, bias={self.bias}, "
                f"dtype={self.dtype.name})")

    def __call__(self, x: ArrayLike) -> FloatArray:
        return self.forward(x)

    def forward(self, x: ArrayLike) -> FloatArray:
        """``y = x W^T + b``.

        Parameters
        ----------
        x : array_like, shape (..., in_features)

        Returns
        -------
        y : ndarray, shape (..., out_features)
        """
        x = as_array("x", x, self.dtype)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"x: expected shape (..., {self.in_features}) (last axis "
                             f"in_features), got {x.shape}")
        y = x @ self.params["weight"].T
        if self.bias:
            y += self.params["bias"]
        self._push(LinearCache(x))  # nothing inside no_grad()
        return y

    def backward(self, dy: Optional[ArrayLike]) -> Optional[FloatArray]:
        """Backward of the most recent :meth:`forward` not yet paired with a backward.

        Parameters
        ----------
        dy : array_like, shape (..., out_features), the gradient of ``y`` (None for zero)

        Returns
        -------
        dx : ndarray, shape (..., in_features), or None when ``dy`` is None

        ``dW = sum dy^T x`` and ``db = sum dy`` are added into :attr:`grads`.
        """
        x = self._peek().x
        if dy is not None:
            dy = check_shape("dy", as_array("dy", dy, self.dtype),
                             x.shape[:-1] + (self.out_features,), "(the shape of y)")
        self._pop()  # only once dy passed its checks
        if dy is None:
            return None
        dy2 = dy.reshape(-1, self.out_features)  # (N, out)
        grads = {"weight": dy2.T @ x.reshape(-1, self.in_features)}  # (out, in)
        if self.bias:
            grads["bias"] = dy2.sum(axis=0)  # (out,)
        self._accumulate(grads)
        return dy @ self.params["weight"]  # (..., in)


class EmbeddingCache(NamedTuple):
    idx: np.ndarray  # (...) the looked-up rows
    row_scale: Optional[np.ndarray]  # (num_embeddings,) the word mask m = kept / (1 - p), or
    #                                  None when no row was dropped (eval mode or dropout 0)


class Embedding(Module):
    """A lookup table ``y = W[idx]``, as ``torch.nn.Embedding``.

    Parameters
    ----------
    num_embeddings : int
        Rows of the table (the vocabulary size).
    embedding_dim : int
    padding_idx : int or None
        A row that stays zero: initialised to zero and never given a gradient. Negative
        values count from the end, as in PyTorch.
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator
        Source of the initial table, N(0, 1) as PyTorch, then of the dropout masks.
    dropout : float in [0, 1), default 0
        Embedding dropout (Merity et al. 2017): in training mode, each forward call drops
        whole rows of the table (whole words) with probability ``dropout`` and scales the
        other rows by ``1 / (1 - dropout)``. 0 (the default) is the plain lookup.

    Attributes
    ----------
    params : dict
        ``weight`` (num_embeddings, embedding_dim).
    rng : numpy.random.Generator
        The source of the dropout masks (after the initial table was drawn from it).

    Notes
    -----
    Forward and backward; the gradient of the table is sparse, only the rows that were
    looked up receive one, and a row looked up k times receives the sum of k gradients::

        y = W[idx]                          (..., embedding_dim)
        dW[r] += sum_{j : idx_j = r} dy_j   for every r != padding_idx

    ``backward`` adds into ``grads["weight"]`` with ``np.add.at`` (which sums repeated
    indices) and returns None: integer inputs have no gradient.

    With ``dropout = p > 0`` in training mode, each forward call draws one mask over the
    vocabulary from :attr:`rng` (AWD-LSTM's ``embedded_dropout``): a dropped word is zero at
    every position where it occurs in the batch, a kept word is scaled::

        kept[r] ~ Bernoulli(1 - p)                      (num_embeddings,), once per call
        m[r]    = kept[r] / (1 - p)
        y       = (m[:, None] * W)[idx] = m[idx][..., None] * W[idx]
        dW[r]  += m[r] * sum_{j : idx_j = r} dy_j       the gradient through the same mask

    In evaluation mode, or with ``dropout = 0``, nothing is drawn and the lookup is plain.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> emb = npseq.Embedding(10, 4, padding_idx=0, seed=0)
    >>> y = emb(np.array([[1, 2], [0, 2]]))
    >>> y.shape
    (2, 2, 4)
    >>> emb.backward(np.ones((2, 2, 4)))
    >>> emb.grads["weight"][[0, 1, 2, 3], 0]
    array([0., 1., 2., 0.])
    """

    def __init__(self, num_embeddings: int, embedding_dim: int,
                 padding_idx: Optional[int] = None, dtype: DTypeLike = np.float64,
                 seed: Seed = None, *, dropout: float = 0.0) -> None:
        super().__init__(check_dtype(dtype))
        self.num_embeddings = check_int("num_embeddings", num_embeddings, minimum=1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
        if padding_idx is not None:
            padding_idx = check_int("padding_idx", padding_idx, minimum=-self.num_embeddings,
                                    maximum=self.num_embeddings - 1)
            padding_idx %= self.num_embeddings
        self.padding_idx = padding_idx
        self.dropout = check_probability("dropout", dropout)
        self.rng = make_rng(seed)  # draws the initial table, then the dropout masks
        weight = self.rng.standard_normal((self.num_embeddings, self.embedding_dim))
        if padding_idx is not None:
            weight[padding_idx] = 0
        self.params = {"weight": weight.astype(self.dtype)}
        self._init_grads()

    def __repr__(self):
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        pad += f", dropout={self.dropout}" if self.dropout else ""
        return (f"Embedding({self.num_embeddings}, {self.embedding_dim}{pad}, "
                f"dtype={self.dtype.name})")

    def __call__(self, idx: ArrayLike) -> FloatArray:
        return self.forward(idx)

    def forward(self, idx: ArrayLike) -> FloatArray:
        """``y = W[idx]``; in training mode with ``dropout > 0``, ``y = m[idx][..., None] * W[idx]``
        with a new word mask ``m`` (see the class Notes).

        Parameters
        ----------
        idx : array_like of int, any shape (...), values in 0..num_embeddings-1

        Returns
        -------
        y : ndarray, shape (..., embedding_dim), a copy of the rows
        """
        reject_packed_sequence("idx", idx)
        try:
            idx = np.array(idx)  # a copy: kept for backward
        except (ValueError, TypeError) as err:
            raise TypeError(f"idx: expected an array of integers, got {type(idx).__name__} "
                            f"({err})") from None
        if idx.dtype.kind not in "iu":
            raise TypeError(f"idx: expected an array of integers, got dtype {idx.dtype}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.num_embeddings):
            raise ValueError(f"idx: expected values in 0..{self.num_embeddings - 1} "
                             f"(num_embeddings - 1), got values from {idx.min()} to "
                             f"{idx.max()}")
        y = self.params["weight"][idx]  # (..., embedding_dim)
        row_scale = None
        if self.training and self.dropout > 0:
            kept = self.rng.random(self.num_embeddings) >= self.dropout  # (V,) P = 1 - p
            row_scale = kept.astype(self.dtype) / self.dtype.type(  # type: ignore[call-overload]
                1 - self.dropout)  # m (V,)
            y *= row_scale[idx][..., None]  # y = m[idx] * W[idx]
        self._push(EmbeddingCache(idx, row_scale))  # nothing inside no_grad()
        return y

    def backward(self, dy: Optional[ArrayLike]) -> None:
        """Backward of the most recent :meth:`forward` not yet paired with a backward.

        Parameters
        ----------
        dy : array_like, shape (..., embedding_dim), the gradient of ``y`` (None for zero)

        Returns
        -------
        None
            The table's gradient is added into ``grads["weight"]``, touched rows only.
        """
        idx, row_scale = self._peek()
        if dy is not None:
            dy = check_shape("dy", as_array("dy", dy, self.dtype),
                             idx.shape + (self.embedding_dim,), "(the shape of y)")
        self._pop()  # only once dy passed its checks
        if dy is None:
            return None
        if row_scale is not None:
            dy = dy * row_scale[idx][..., None]  # through the word mask: m[idx_j] dy_j
        if self.padding_idx is not None:
            counted = idx != self.padding_idx
            idx, dy = idx[counted], dy[counted]  # type: ignore[index]
        np.add.at(self.grads["weight"], idx, dy)  # dW[idx_j] += dy_j, repeats summed
        return None
