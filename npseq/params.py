"""Parameter names, shapes and initial values: one place for cells and layers.

A cell has the parameters of one layer and direction, keyed as a :class:`~npseq.CellKind`'s
step functions read them (``p``): ``weight_ih (G*H, D)`` and ``bias_ih (G*H,)`` if the kind
has input weights, ``weight_hh (G*H, H_out)`` and ``bias_hh (G*H,)`` if it has a recurrent
matrix, ``weight_hr (H_out, H)`` with a projection, and the kind's own parameters
(:class:`~npseq.ParamSpec`). A layer has one such set per layer and direction, each key
suffixed as PyTorch suffixes it: ``weight_ih_l0``, ``bias_hh_l1_reverse``.

Initial values are PyTorch's: every parameter from U(-1/sqrt(H), 1/sqrt(H)), drawn in key
order, except a kind's parameters with an ``init`` of their own.
"""
from __future__ import annotations

from typing import Any, Optional

from numpy.typing import DTypeLike

import numpy as np

from npseq.cells.base import STANDARD_PARAMS, CellKind

__all__ = ["suffix", "param_specs", "stack_param_specs", "init_params", "layer_params"]


def suffix(layer: int, direction: int) -> str:
    """PyTorch's parameter suffix: ``_l{layer}``, plus ``_reverse`` for direction 1."""
    return f"_l{layer}" + ("_reverse" if direction else "")


def param_specs(kind: CellKind, input_size: int, hidden_size: int, bias: bool = True,
                proj_size: int = 0, sfx: str = "") -> dict:
    """``{name + sfx: (shape, init)}`` of one layer and direction, in the order drawn.

    ``init`` is None (uniform), a number (fill) or a function ``(rng, shape) -> array``.
    """
    G, H = kind.num_gates, hidden_size
    H_out = proj_size or hidden_size
    specs: dict[str, tuple[Any, Any]] = {}
    if kind.has_weight_ih:
        specs["weight_ih"] = ((G * H, input_size), None)
    if kind.has_weight_hh:
        specs["weight_hh"] = ((G * H, H_out), None)
    if bias and kind.has_weight_ih:
        specs["bias_ih"] = ((G * H,), None)
    if bias and kind.has_weight_hh:
        specs["bias_hh"] = ((G * H,), None)
    if proj_size:
        specs["weight_hr"] = ((proj_size, H), None)
    for spec in kind.extra_params:
        specs[spec.name] = (spec.resolve_shape(H, input_size, G), spec.init)
    return {name + sfx: value for name, value in specs.items()}


def stack_param_specs(kind: CellKind, input_size: int, hidden_size: int, num_layers: int,
                      num_directions: int, bias: bool = True, proj_size: int = 0) -> dict:
    """:func:`param_specs` of every layer and direction of a stack, suffixed.

    Layer 0 reads ``input_size`` features; layer k > 0 reads the previous layer's output,
    both directions concatenated: ``num_directions * H_out``.
    """
    H_out = proj_size or hidden_size
    specs = {}
    for layer in range(num_layers):
        layer_input = input_size if layer == 0 else num_directions * H_out
        for direction in range(num_directions):
            specs.update(param_specs(kind, layer_input, hidden_size, bias, proj_size,
                                     suffix(layer, direction)))
    return specs


def init_params(rng: np.random.Generator, specs: dict, hidden_size: int,
                dtype: DTypeLike) -> dict:
    """Initial values of :func:`param_specs`: U(-1/sqrt(H), 1/sqrt(H)) in key order, except
    where a spec has its own ``init`` (a constant draws nothing from ``rng``)."""
    bound = 1.0 / np.sqrt(hidden_size)
    params = {}
    for name, (shape, init) in specs.items():
        if init is None:
            value = rng.uniform(-bound, bound, size=shape)
        elif callable(init):
            value = np.asarray(init(rng, shape))
            if value.shape != tuple(shape):
                raise ValueError(f"init of {name!r}: expected an array of shape {shape}, got "
                                 f"{value.shape}")
        else:
            value = np.full(shape, init)
        params[name] = value.astype(dtype)
    return params


def layer_params(params: dict, kind: CellKind, layer: int = 0, direction: int = 0,
                 sfx: Optional[str] = None) -> dict:
    """The parameters of one layer and direction keyed without suffix: the step's ``p``.

    The arrays are the module's own (not copies). ``sfx`` overrides the suffix ("" for a
    cell's parameters).
    """
    sfx = suffix(layer, direction) if sfx is None else sfx
    names = STANDARD_PARAMS + tuple(spec.name for spec in kind.extra_params)
    return {name: params[name + sfx] for name in names if name + sfx in params}
