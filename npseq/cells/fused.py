"""What the fused whole-sequence paths share (:mod:`.lstm_fused`, :mod:`.gru_fused`).

A fused path runs a cell's plain case over a whole sequence in few NumPy calls a step and
equals the cell's step functions to float rounding (``CellKind.fused``). These helpers walk
a sequence as the BPTT driver does: in blocks of :func:`~npseq.cells.base.block_steps` steps,
in the order a direction visits them, with one weight-gradient product per block.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np
from scipy.special import expit

from npseq.cells.base import block_steps, param_grads

__all__ = ["tanh_form", "gate_scale", "activate", "transposed", "BATCHED_INPUT_ENTRIES",
           "input_rows", "swap_last_axes", "as_rows", "times_sigmoid_slope", "times_tanh_slope",
           "visit_times", "block_slice", "visit_blocks", "previous", "add_block_grads"]


def tanh_form(dtype: Any) -> bool:
    """Whether a fused path computes its sigmoid gates as ``tanh(a / 2) / 2 + 1/2``: in
    float32, as :func:`npseq.activations.sigmoid` does for large arrays. Other dtypes take
    SciPy's ``expit``, exact to the last bit where the gate is tiny (the tanh form rounds
    ``sigma(-40)`` to 0 in float64); float64 is the dtype of gradient checks."""
    return np.dtype(dtype) == np.float32


def gate_scale(H: int, num_gates: int, num_sigmoid: int, dtype: Any) -> np.ndarray:
    """``(G*H,)``: with :func:`tanh_form`, 1/2 on the rows of the first ``num_sigmoid``
    gates (a fused path orders its gates sigmoid first) and 1 elsewhere; else all 1.

    With those rows of the weights and biases scaled by 1/2 (exact in binary floating
    point), one ``tanh`` over a whole pre-activation row gives ``tanh(a / 2)`` on the sigmoid
    gates, and ``sigma(a) = tanh(a / 2) / 2 + 1/2``.
    """
    scale = np.ones(num_gates * H, dtype=dtype)
    if tanh_form(dtype):
        scale[:num_sigmoid * H] = 0.5
    return scale


def activate(z: np.ndarray, s: np.ndarray, rest: Optional[np.ndarray], tanh_form: bool) -> None:
    """In place on a step's pre-activations ``z``: the sigmoid on its view ``s``, ``tanh``
    on its view ``rest`` (None: every gate is a sigmoid gate); ``s`` and ``rest`` cover ``z``.
    In the tanh form the rows of ``s`` come scaled by 1/2 and one ``tanh`` covers ``z``."""
    if tanh_form:
        np.tanh(z, z)
        np.multiply(s, 0.5, s)  # tanh(a / 2) / 2 + 1/2 = sigma(a)
        np.add(s, 0.5, s)
    else:
        expit(s, s)
        if rest is not None:
            np.tanh(rest, rest)


def transposed(w: np.ndarray, rows: int = 64) -> np.ndarray:
    """A C-contiguous copy of ``w.T``, copied ``rows`` rows of ``w`` at a time.

    The fused backwards multiply by ``W_hh^T`` every step; a product reading ``W^T`` laid out
    row-major ran faster here than one reading the transposed view ``W.T`` (``h @ W^T`` at
    (B, H) = (32, 128): 31.5 us against 42.4). NumPy's own transposing copy of a 2048 x 512 float32 matrix takes about 8 times longer
    than this blocked copy (7.5 ms against 0.9 ms: each of its column writes strides 8 KiB).
    """
    out = np.empty((w.shape[1], w.shape[0]), dtype=w.dtype)
    for start in range(0, w.shape[0], rows):
        out[:, start:start + rows] = w[start:start + rows].T
    return out


#: Weights of at most this many entries (G * D) take the batched product a step in
#: :func:`input_rows`; larger ones one product a block of rows and a copy.
BATCHED_INPUT_ENTRIES = 65536


def input_rows(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``(T, G, B)``: ``w x_t^T`` for each step of ``x (T, B, D)`` and ``w (G, D)``, each
    step's input projection feature-major, as the fused loops read it.

    With a small ``w`` (``BATCHED_INPUT_ENTRIES``), one batched product, a product a step
    looped over in C, written in place; with a larger one, one product ``W x^T`` a block of
    about 512 rows (:func:`~.base.block_steps` steps) into one reused array, each copied into
    the result with its step and feature axes swapped (runs of B numbers). Measured here
    (float32, 2 threads): batched 0.12 ms against 0.32 at (T, B, D, G) = (50, 16, 32, 128) and
    1.4 against 2.2 at (100, 32, 64, 512); blocks 60 ms against 70 at (100, 64, 512, 2048),
    4.6 against 5.3 at (100, 32, 256, 512). One product over all the steps and one copy make
    a second array as large as the result, whose fresh pages cost more than the copy on a
    virtual machine. With one sequence the product is feature-major already; with one input
    feature it is the broadcast multiplication of :func:`~.base.times_transpose`.
    """
    T, B, D = x.shape
    G = w.shape[0]
    if D == 1:
        return w[:, 0][None, :, None] * x.transpose(0, 2, 1)
    if B == 1:
        return (x.reshape(T, D) @ w.T).reshape(T, G, 1)
    if G * D <= BATCHED_INPUT_ENTRIES:
        return np.matmul(w, x.transpose(0, 2, 1))
    out = np.empty((T, G, B), dtype=np.result_type(x, w))
    S = min(block_steps(B), T)
    buf = np.empty(G * S * B, dtype=out.dtype)
    for start in range(0, T, S):
        n = min(S, T - start)
        cols = buf[:G * n * B].reshape(G, n * B)  # W x^T for the block's rows: (G, steps, B)
        np.matmul(w, x[start:start + n].reshape(n * B, D).T, out=cols)
        np.copyto(out[start:start + n], cols.reshape(G, n, B).transpose(1, 0, 2))
    return out


def swap_last_axes(a: np.ndarray) -> np.ndarray:
    """``(T, M, N) -> (T, N, M)``, C-contiguous: from feature-major ``(T, N, B)`` to
    batch-major ``(T, B, N)``."""
    return np.ascontiguousarray(a.transpose(0, 2, 1))


def as_rows(a: np.ndarray, buf: Optional[np.ndarray] = None) -> np.ndarray:
    """Feature-major steps ``a (n, N, B)`` as the rows ``(n B, N)`` (step by step, in each
    the batch) that the weight-gradient and input-gradient products of a block read.

    A Fortran-ordered view of a copy with ``a``'s first two axes swapped, which moves runs of
    ``B`` numbers (about 4 times faster than the element-by-element transposing copy to
    ``(n, B, N)``), made in the flat array ``buf`` when given (reused from block to block);
    with ``B = 1``, a view of ``a`` itself.
    """
    n, N, B = a.shape
    if B == 1:
        return a.reshape(n, N)
    cols = (np.empty((N, n, B), dtype=a.dtype) if buf is None else
            buf[:N * n * B].reshape(N, n, B))
    np.copyto(cols, a.transpose(1, 0, 2))
    return cols.reshape(N, n * B).T


def times_sigmoid_slope(u: np.ndarray, s: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = u * s (1 - s)``: ``u`` times the sigmoid's slope where it took the value
    ``s``. Into ``out``, with no temporary."""
    np.subtract(1, s, out)
    np.multiply(s, out, out)
    return np.multiply(u, out, out)


def times_tanh_slope(u: np.ndarray, t: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = u * (1 - t^2)``: ``u`` times the slope of ``tanh`` where it took the value
    ``t``. Into ``out``, with no temporary."""
    np.multiply(t, t, out)
    np.subtract(1, out, out)
    return np.multiply(u, out, out)


def visit_times(start: int, stop: int, reverse: bool) -> range:
    """The times ``start..stop-1`` in the order a direction visits them."""
    return range(stop - 1, start - 1, -1) if reverse else range(start, stop)


def block_slice(j: int, T: int, S: int, reverse: bool) -> slice:
    """The time slice of block ``j``: the j-th run of ``S`` steps in visit order."""
    if reverse:
        return slice(max(T - (j + 1) * S, 0), T - j * S)
    return slice(j * S, min((j + 1) * S, T))


def visit_blocks(T: int, B: int, reverse: bool) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of each block of steps, the last visited first (for a backward)."""
    S = block_steps(B)
    for j in reversed(range(-(-T // S))):
        block = block_slice(j, T, S, reverse)
        yield block.start, block.stop


def previous(a: np.ndarray, first: np.ndarray, start: int, stop: int, reverse: bool
             ) -> np.ndarray:
    """For each step of ``a[start:stop]`` (values after each step, by time), the value before
    it: the previous step in visit order, ``first`` before the first step visited."""
    T = a.shape[0]
    if not reverse:
        return a[start - 1:stop - 1] if start > 0 else np.concatenate([first[None],
                                                                        a[:stop - 1]])
    return a[start + 1:stop + 1] if stop < T else np.concatenate([a[start + 1:], first[None]])


def add_block_grads(grads: dict, x: np.ndarray, h_prev: np.ndarray, dgx: np.ndarray,
                    dgh: np.ndarray, p: dict) -> None:
    """Add one block's ``param_grads`` to ``grads``: in place into the arrays of earlier
    blocks, which ``param_grads`` made (nothing given is changed)."""
    for name, grad in param_grads(x, h_prev, dgx, dgh, p).items():
        if name in grads:
            grads[name] += grad
        else:
            grads[name] = grad
