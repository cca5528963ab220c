"""Gradient checking by central differences, for your own code and for npseq's.

The analytic gradient of a module is compared with a numerical one of the scalar

    L = sum_k <output_k, G_k>

where the ``G_k`` are *random* upstream gradients (a random contraction catches errors that an
all-ones upstream gradient hides, e.g. two outputs swapped). Central differences in float64::

    dL/dtheta_j ~ (L(theta + eps e_j) - L(theta - eps e_j)) / (2 eps)

have an error of order eps**2 (truncation) + 1e-16 / eps (rounding): about 1e-10 at
``eps = 1e-6``, so a correct gradient shows a relative error far below 1e-6.

Functions
---------
numerical_gradient(f, x)       central differences of a scalar function of one array
rel_error(a, b)                max |a - b| / max(max |a|, max |b|)
check_gradients(module, x)     every gradient of a cell or layer: {tensor name: rel. error}
format_report(errors)          those errors as a table
"""
from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Callable, Union

import numpy as np

from npseq._typing import ArrayLike, Seed, StateLike
from npseq._validation import as_array, check_callable, check_positive, make_rng
from npseq.cell import RNNCellBase
from npseq.grad_mode import no_grad
from npseq.layers import RNNBase
from npseq.module import Module

__all__ = ["numerical_gradient", "rel_error", "check_gradients", "format_report"]


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central-difference gradient of ``f()`` with respect to the array ``x``.

    ``f`` takes no argument and reads ``x``, which is perturbed in place one entry at a time
    and restored exactly (the saved value is written back) before this returns.

    Parameters
    ----------
    f : callable returning a float
    x : ndarray of floats, changed in place while this runs
    eps : float, > 0
        Step of the central difference.

    Returns
    -------
    ndarray shaped like ``x``

    Raises
    ------
    TypeError
        ``f`` is not callable, ``x`` is not a float array, ``eps`` is not a number.
    ValueError
        ``eps`` is not finite and positive, or ``x`` cannot be perturbed in place.
    """
    check_callable("f", f, "() -> float")
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise TypeError(f"x: expected a float numpy array (perturbed in place), got "
                        f"{type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, np.ndarray) else ""))
    eps = check_positive("eps", eps)
    grad = np.zeros(x.shape, dtype=np.float64)
    flat = x.reshape(-1)
    if flat.base is not x and not np.shares_memory(flat, x):
        raise ValueError("x: expected a contiguous array that can be perturbed in place")
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + eps
        f_plus = f()
        flat[j] = saved - eps
        f_minus = f()
        flat[j] = saved
        grad.reshape(-1)[j] = (f_plus - f_minus) / (2 * eps)
    return grad


def _check_floor(floor: Any) -> float:
    """A finite real number >= 0 (not a bool), as a float."""
    if isinstance(floor, (bool, np.bool_)) or not isinstance(floor, numbers.Real):
        raise TypeError(f"floor: expected a number >= 0, got {floor!r} "
                        f"({type(floor).__name__})")
    if not (np.isfinite(floor) and floor >= 0):  # type: ignore[call-overload, operator]
        raise ValueError(f"floor: expected a finite number >= 0, got {floor!r}")
    return float(floor)


def rel_error(a: ArrayLike, b: ArrayLike, floor: float = 0.0) -> float:
    """Relative error ``max |a - b| / max(max |a|, max |b|, floor)``; 0 when the
    denominator is zero.

    ``floor`` > 0 measures arrays smaller than it against ``floor``: an absolute error,
    scaled. Central differences have an absolute error of their own, about
    ``1e-16 * |loss| / eps`` (1e-10 at ``eps=1e-6``, whatever the gradient's size), so a
    gradient that is tiny everywhere (a cancellation, a mostly dropped path) shows a large
    relative error that measures the differences, not the backward.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} and {b.shape}")
    floor = _check_floor(floor)
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), floor)
    return 0.0 if scale == 0 else float(np.max(np.abs(a - b)) / scale)


def _flatten(tree):
    """Arrays of a nested tuple (None left out), in order."""
    if tree is None:
        return []
    if isinstance(tree, (tuple, list)):
        return [a for t in tree for a in _flatten(t)]
    return [tree]


def _like(tree, arrays):
    """A tree of the same structure as ``tree`` holding ``arrays`` in order."""
    it = iter(arrays)

    def build(t):
        if t is None:
            return None
        if isinstance(t, (tuple, list)):
            return type(t)(build(s) for s in t)
        return next(it)

    return build(tree)


def _state_names(state, prefix):
    arrays = _flatten(state)
    if len(arrays) == 1:
        return [prefix]
    return [f"{prefix}[{i}]" for i in range(len(arrays))]


def _submodules(module: Any) -> list:
    """``module`` and its sub-modules (a Sequential's), depth first."""
    return [module] + [m for sub in getattr(module, "modules", ()) for m in _submodules(sub)]


def _generators(module: Any) -> list:
    """The random generators of ``module`` and of its sub-modules (a Sequential's)."""
    found: list = []
    for m in _submodules(module):
        g = getattr(m, "rng", None)
        if isinstance(g, np.random.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


def check_gradients(module: Union[RNNBase, RNNCellBase], x: ArrayLike, state: StateLike = None,
                    *, seed: Seed = 0, eps: float = 1e-6, floor: float = 0.0,
                    **forward_kwargs: Any) -> dict[str, float]:
    """Compare every analytic gradient of a cell or layer with central differences.

    The module's forward is called as ``module(x, state, **forward_kwargs)``; its outputs are
    contracted with random upstream gradients drawn from ``seed``; the module's
    ``backward`` gives the analytic gradients of ``x``, of every array in ``state`` and, in
    ``module.grads``, of every parameter. If the module (or a sub-module of a Sequential)
    has a random generator ``rng`` (for dropout masks), it is reset before every forward so
    that each sees the same masks: a layer in training mode with ``dropout``,
    ``recurrent_dropout``, ``weight_dropout`` or ``zoneout`` is checked under the exact
    masks its backward used. A cell's kept masks (``reset_dropout_mask``) are forgotten
    once at the start, so the check's first forward draws them for its own batch and every
    later forward keeps them.

    Neither ``x`` nor ``state`` is modified; the module's parameters are restored exactly
    and its ``grads`` hold the analytic gradients of this check when it returns (what they
    held before is replaced). Forward records the module held are dropped.

    Parameters
    ----------
    module : a cell (``npseq.RNNCell``...) or layer (``npseq.LSTM``...), float64 for a
        meaningful check
    x : array_like, the input
    state : the initial state, or None (then no state gradient is checked)
    seed : None, int or numpy.random.Generator, for the upstream gradients
    eps : float, > 0, the central-difference step
    floor : float, >= 0, the smallest scale an error is measured against
        (:func:`rel_error`); 0: every tensor against its own largest entry

    Returns
    -------
    dict of str -> float
        The relative error (:func:`rel_error` with ``floor``) of each tensor: ``"x"``,
        ``"state"`` or ``"state[0]"``, ``"state[1]"``, and every parameter name.

    Raises
    ------
    TypeError
        ``module`` is not an npseq module with a backward, ``seed``, ``eps`` or ``floor``
        has the wrong type.
    ValueError
        ``eps`` is not finite and positive, ``floor`` not finite and >= 0, or ``seed`` is
        negative.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> cell = npseq.GRUCell(3, 4, seed=0)
    >>> errors = npseq.gradcheck.check_gradients(cell, np.ones((2, 3)), np.ones((2, 4)))
    >>> max(errors.values()) < 1e-7
    True
    """
    if not isinstance(module, Module) or not callable(getattr(module, "backward", None)):
        raise TypeError(f"module: expected an npseq cell or layer (e.g. npseq.GRUCell, "
                        f"npseq.LSTM), got {type(module).__name__}")
    upstream_rng = make_rng(seed)
    eps = check_positive("eps", eps)
    floor = _check_floor(floor)
    x = np.array(as_array("x", x, module.dtype))  # a copy: perturbed in place below
    state_arrays = [np.array(s, dtype=module.dtype) for s in _flatten(state)]
    state = _like(state, state_arrays)
    generators = _generators(module)  # the masks' sources, reset before every forward
    generator_states = [g.bit_generator.state for g in generators]
    is_cell = module.keeps_stack  # a cell: backward(dstate); a layer: backward(dout, dstate)

    def forward():
        for g, saved in zip(generators, generator_states):
            g.bit_generator.state = saved
        return module(x, state, **forward_kwargs)

    for m in _submodules(module):  # a cell's kept masks: drawn again for this batch
        if callable(getattr(m, "reset_dropout_mask", None)):
            m.reset_dropout_mask()
    module.clear_records()  # the check pairs its own forward with its own backward
    with no_grad():
        outputs = forward()  # only their shapes are needed
    upstream = [upstream_rng.standard_normal(o.shape) for o in _flatten(outputs)]

    def loss():
        with no_grad():
            outs = _flatten(forward())
        return float(sum(np.sum(o * u) for o, u in zip(outs, upstream)))

    module.zero_grad()
    forward()
    up_tree = _like(outputs, upstream)
    dx, dstate = module.backward(up_tree) if is_cell else module.backward(*up_tree)
    analytic = {"x": dx}
    analytic.update(zip(_state_names(state, "state"), _flatten(dstate)
                        if state is not None else []))
    analytic.update({k: g.copy() for k, g in module.grads.items()})

    numeric = {"x": numerical_gradient(loss, x, eps)}
    numeric.update(zip(_state_names(state, "state"),
                       [numerical_gradient(loss, s, eps) for s in state_arrays]))
    for k, p in module.params.items():
        numeric[k] = numerical_gradient(loss, p, eps)
    for k, g in module.grads.items():  # leave the check's own gradients, as documented
        g[...] = analytic[k]
    return {k: rel_error(analytic[k], numeric[k], floor) for k in numeric}


def format_report(errors: dict, tol: float = 1e-6) -> str:
    """A plain-text table of :func:`check_gradients` results, worst error last line."""
    if not isinstance(errors, Mapping) or not all(
            isinstance(k, str) and isinstance(e, numbers.Real) for k, e in errors.items()):
        raise TypeError(f"errors: expected the dict of check_gradients, {{tensor name: "
                        f"relative error}}, got {errors!r}")
    tol = check_positive("tol", tol)
    width = max(len(k) for k in errors) if errors else 6
    lines = [f"{'tensor':<{width}}  rel. error  ok"]
    for k, e in errors.items():
        lines.append(f"{k:<{width}}  {e:10.2e}  {'yes' if e < tol else 'NO'}")
    worst = max(errors.values()) if errors else 0.0
    lines.append(f"{'worst':<{width}}  {worst:10.2e}  {'yes' if worst < tol else 'NO'}")
    return "\n".join(lines)
