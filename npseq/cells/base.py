"""What every cell shares: the input projection, the weight gradients, one step of a cell.

A recurrent cell is split in two parts that every cell in npseq shares:

1. The *input projection* ``gx = x W_ih^T + b_ih``. It does not depend on the carry, so the
   BPTT driver computes it for all time steps in one matrix product before the time loop.
2. The *recurrence* ``carry, cache = step_forward(gx, carry_prev, p)``: everything that
   depends on the previous carry, including the recurrent product ``h_prev W_hh^T + b_hh``.
   Its backward ``step_backward(dcarry, cache, p)`` returns a :class:`StepGrads`: the
   gradient of the input projection ``dgx``, of the recurrent pre-activation ``dgh``, of the
   previous carry, and of any parameter that is neither ``weight_ih``/``weight_hh`` nor a
   bias (e.g. the LSTM projection ``weight_hr``).

The gradients of ``weight_ih``, ``weight_hh`` and the biases are sums of outer products of
``dgx``/``dgh`` with the inputs of the two projections. :func:`param_grads` forms them in one
matrix product each, for one step (``(B, .)`` arrays) or for a whole sequence
(``(T, B, .)`` arrays) alike.

``p`` is a dict of one layer's parameters keyed without the PyTorch layer suffix:
``weight_ih (G*H, D)``, ``weight_hh (G*H, H_out)``, optional ``bias_ih (G*H,)``,
``bias_hh (G*H,)`` and ``weight_hr (H_out, H)``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np


class StepGrads(NamedTuple):
    """Gradients returned by a cell's ``step_backward``."""

    dgx: np.ndarray  # (B, G*H) gradient of the input projection gx = x W_ih^T + b_ih
    dgh: np.ndarray  # (B, G*H) gradient of the recurrent projection gh = h_prev W_hh^T + b_hh
    dcarry_prev: tuple  # ((B, H_out),) or ((B, H_out), (B, H)): gradient of the previous carry
    dparams: dict  # gradients of the cell's other parameters (e.g. "weight_hr"), maybe empty;
    # a key the driver also forms ("weight_hh", "bias_hh") is added to its after-loop gradient


class ParamSpec(NamedTuple):
    """A parameter of a cell besides ``weight_ih``, ``weight_hh``, the biases and ``weight_hr``.

    Layers name it with the layer suffix (``name + "_l0"``); ``p`` holds it as ``name``.
    """

    name: str  # e.g. "weight_ch"
    shape: Callable[[int], tuple]  # hidden_size -> shape, e.g. lambda H: (3, H)
    init: Optional[float] = None  # None: U(-1/sqrt(H), 1/sqrt(H)) as the weights; else filled


class CellKind(NamedTuple):
    """A cell as the BPTT driver sees it: sizes and the pair of step functions.

    ``step_forward(gx, carry, p) -> (carry, cache)`` and
    ``step_backward(dcarry, cache, p) -> StepGrads``. Every cache has a field ``h_prev``.
    See ``docs/custom_cells.md`` for writing one.
    """

    name: str  # "RNN_TANH", "RNN_RELU", "LSTM" or "GRU"
    num_gates: int  # G: rows of weight_ih are G * hidden_size
    num_states: int  # 1 for (h,), 2 for (h, c)
    step_forward: Callable[..., tuple]
    step_backward: Callable[..., StepGrads]
    extra_params: tuple = ()  # ParamSpecs of the cell's own parameters (e.g. peepholes)


def input_projection(x: np.ndarray, p: dict) -> np.ndarray:
    """``gx = x W_ih^T + b_ih`` for ``x`` of shape ``(..., D)``; returns ``(..., G*H)``.

    One 2-D product over all the leading axes: NumPy runs ``(T, B, D) @ (D, G*H)`` as T
    separate ``(B, D)`` products, 1.3x (B = 64) to 2.5x (B = 1) slower than the same rows as
    one ``(T*B, D)`` product.
    """
    w = p["weight_ih"]
    gx = (x.reshape(-1, x.shape[-1]) @ w.T).reshape(x.shape[:-1] + w.shape[:1])
    if "bias_ih" in p:
        gx += p["bias_ih"]
    return gx


def param_grads(x: np.ndarray, h_prev: np.ndarray, dgx: np.ndarray, dgh: np.ndarray,
                p: dict) -> dict:
    """Gradients of ``weight_ih``, ``weight_hh`` and the biases, summed over leading axes.

    ``x (..., D)``, ``h_prev (..., H_out)``, ``dgx`` and ``dgh (..., G*H)``, where ``...`` is
    ``(B,)`` for one step or ``(T, B)`` for a sequence::

        dW_ih = sum dgx^T x        db_ih = sum dgx
        dW_hh = sum dgh^T h_prev   db_hh = sum dgh
    """
    gh_size = dgx.shape[-1]
    dgx2 = dgx.reshape(-1, gh_size)
    dgh2 = dgh.reshape(-1, gh_size)
    grads = {
        "weight_ih": dgx2.T @ x.reshape(-1, x.shape[-1]),
        "weight_hh": dgh2.T @ h_prev.reshape(-1, h_prev.shape[-1]),
    }
    if "bias_ih" in p:
        grads["bias_ih"] = dgx2.sum(axis=0)
        grads["bias_hh"] = dgh2.sum(axis=0)
    return grads


class CellCache(NamedTuple):
    """What :func:`cell_backward` needs: the step's input and the recurrence's cache."""

    x: np.ndarray  # (B, D)
    step: Any  # the cell's own named cache


def cell_forward(kind: CellKind, x: np.ndarray, carry: tuple, p: dict):
    """One full step of a cell: input projection, then the recurrence.

    Returns ``(carry, cache)``; ``x`` is ``(B, D)``, ``carry`` a tuple of ``(B, .)`` arrays.
    """
    carry, step_cache = kind.step_forward(input_projection(x, p), carry, p)
    return carry, CellCache(x, step_cache)


def cell_backward(kind: CellKind, dcarry: tuple, cache: CellCache, p: dict):
    """Backward of :func:`cell_forward`: returns ``(dx, dcarry_prev, dparams)``.

    ``dparams`` has a gradient for every key of ``p``::

        dx = dgx W_ih
    """
    g = kind.step_backward(dcarry, cache.step, p)
    dx = g.dgx @ p["weight_ih"]
    dparams = add_grads(param_grads(cache.x, cache.step.h_prev, g.dgx, g.dgh, p), g.dparams)
    return dx, g.dcarry_prev, dparams


def add_grads(total: dict, grads: dict) -> dict:
    """Add the arrays of ``grads`` into ``total`` by key (a new key is taken as is)."""
    for name, value in grads.items():
        total[name] = total[name] + value if name in total else value
    return total
