"""What the fused whole-sequence paths share (:mod:`.lstm_fused`, :mod:`.gru_fused`).

A fused path runs a cell's plain case over a whole sequence in few NumPy calls a step and
equals the cell's step functions to float rounding (``CellKind.fused``). These helpers walk
a sequence as the BPTT driver does: in blocks of :func:`~npseq.cells.base.block_steps` steps,
in the order a direction visits them, with one weight-gradient product per block.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np
from scipy.special import expit

from npseq.cells.base import block_steps, param_grads

__all__ = ["tanh_form", "gate_scale", "activate", "visit_times", "block_slice", "visit_blocks",
           "previous", "add_block_grads"]


def tanh_form(dtype: Any) -> bool:
    """Whether a fused path computes its sigmoid gates as ``tanh(a / 2) / 2 + 1/2``: in
    float32, as :func:`npseq.activations.sigmoid` does for large arrays. Other dtypes take
    SciPy's ``expit``, exact to the last bit where the gate is tiny (the tanh form rounds
    ``sigma(-40)`` to 0 in float64); float64 is the dtype of gradient checks."""
    return np.dtype(dtype) == np.float32


def gate_scale(H: int, num_gates: int, sigmoid_gates: tuple, dtype: Any) -> np.ndarray:
    """``(G*H,)``: with :func:`tanh_form`, 1/2 on the rows of the sigmoid gates and 1
    elsewhere; else all 1.

    With those rows of the weights and biases scaled by 1/2 (exact in binary floating
    point), one ``tanh`` over a whole pre-activation row gives ``tanh(a / 2)`` on the sigmoid
    gates, and ``sigma(a) = tanh(a / 2) / 2 + 1/2`` is ``z * scale + (1 - scale)``.
    """
    scale = np.ones(num_gates * H, dtype=dtype)
    if tanh_form(dtype):
        for k in sigmoid_gates:
            scale[k * H:(k + 1) * H] = 0.5
    return scale


def activate(z: np.ndarray, H: int, sigmoid_gates: tuple, scale: np.ndarray) -> None:
    """In place on pre-activation rows ``z (B, G*H)`` (the sigmoid rows scaled by
    ``scale``): the sigmoid on ``sigmoid_gates``, tanh on the other gates."""
    if tanh_form(z.dtype):
        np.tanh(z, out=z)
        z *= scale  # sigmoid gates: tanh(a / 2) / 2 + 1/2 = sigma(a); the others: tanh(a)
        z += 1 - scale
        return
    G = z.shape[-1] // H
    for k in range(G):
        block = z[..., k * H:(k + 1) * H]
        (expit if k in sigmoid_gates else np.tanh)(block, out=block)


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
    """Add one block's ``param_grads`` to ``grads`` (new arrays: nothing given is changed)."""
    for name, grad in param_grads(x, h_prev, dgx, dgh, p).items():
        grads[name] = grads[name] + grad if name in grads else grad
