"""Study tools: how gradients flow through time, how the gates behave, what a model holds.

=============================  ===========================================================
``gradient_norms``             ``||dL/dh_t||`` (and ``||dL/dc_t||``) over t, per layer and
                               direction, from one backward pass
``jacobian_norms``             ``||dh_T/dh_t||`` over t for one layer (or a cell), exact
``gate_statistics``            per gate: mean activation and fraction saturated
``format_gate_statistics``     those statistics as a table
``count_parameters``           total number of scalar parameters, as PyTorch counts them
``parameter_summary``          per tensor: name, shape, count; prints as a table
=============================  ===========================================================

Every function leaves the module as it found it: each runs the pure core
(:func:`npseq.stack.stack_forward` / :func:`~npseq.stack.stack_backward`, or a cell's step
functions) on the module's parameters, so the parameters, the gradients in ``module.grads``,
the random generator (dropout masks, drawn from a copy of it) and a pending forward record
all stay unchanged. The inputs are never modified. Each function runs its forward in the
module's current mode (``train()``/``eval()``), inside :func:`npseq.no_grad` too.

See ``docs/gradients.md`` (section 6) for what these quantities mean.
"""
from __future__ import annotations

import copy
import numbers
from collections.abc import Mapping
from typing import NamedTuple, Optional, Union

import numpy as np

from npseq._typing import ArrayLike, FloatArray, StateLike
from npseq._validation import as_array, check_int, check_shape
from npseq.cell import RNNCellBase
from npseq.cells.base import cell_backward, cell_forward
from npseq.layers import RNNBase
from npseq.layout import from_time_major, lengths_mask, sequence_input, to_time_major
from npseq.module import Module
from npseq.stack import stack_backward, stack_forward

__all__ = ["gradient_norms", "jacobian_norms", "gate_statistics", "format_gate_statistics",
           "count_parameters", "parameter_summary", "ParameterSummary"]

# A unit counts as saturated where its activation's derivative is close to zero:
# sigmoid s < 1 - threshold or s > threshold; tanh |t| > threshold; relu y == 0.
SATURATION_THRESHOLD = 0.95
_GATES = ("i", "f", "g", "o", "r", "z", "n")
_CANDIDATES = ("g", "n")  # the gates under ``activation``; the others under
# ``recurrent_activation``; the plain RNN's "h" under ``nonlinearity``


# -- helpers ---------------------------------------------------------------------------------
def _check_layer(module, name="module"):
    if not isinstance(module, RNNBase):
        raise TypeError(f"{name}: expected an npseq.RNN, npseq.LSTM or npseq.GRU layer, got "
                        f"{type(module).__name__}")
    return module


def _run_forward(module, x, state, lengths, *, keep=True, capture=None):
    """The module's forward through the pure core, leaving the module untouched.

    Returns ``(x as (T, B, D), unbatched, valid, out (T, B, .), record)``, ``valid`` a bool
    (T, B), true at the real steps. Dropout masks (in training mode) come from a copy of
    the module's generator.
    """
    xb, unbatched = sequence_input(x, module.dtype, module.input_size, module.batch_first)
    T, B = xb.shape[:2]
    carries = module.state_to_carries(state, B, unbatched)
    mask = lengths_mask(lengths, T, B, unbatched)  # (T, B, 1) or None
    options = dict(module.core_options(), rng=copy.deepcopy(module.rng))
    out, _, record = stack_forward(module.kind, module.stack_params(), xb, carries, mask,
                                   keep=keep, capture=capture, **options)
    valid = np.ones((T, B), dtype=bool) if mask is None else mask[:, :, 0]
    return xb, unbatched, valid, out, record


def _reduce(norms, valid, per_sequence):
    """(T, B) norms -> (T, B) with NaN at padded steps, or their mean over the real sequences."""
    norms = np.where(valid, norms, np.nan)
    if per_sequence:
        return norms
    counts = valid.sum(axis=1)
    total = np.where(valid, norms, 0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


# -- gradient norms --------------------------------------------------------------------------
def gradient_norms(module: RNNBase, x: ArrayLike, dout: Optional[ArrayLike] = None,
                   dstate: StateLike = None, state: StateLike = None,
                   lengths: Optional[ArrayLike] = None, *, per_sequence: bool = False
                   ) -> dict[tuple[int, int], dict[str, FloatArray]]:
    """Norm of the gradient that reaches the carry at every time step, from one backward.

    Runs ``module(x, state, lengths)`` and ``module.backward(dout, dstate)`` once, and reads
    the gradient of the loss with respect to every carry that the backward forms (the
    ``trace`` of :meth:`npseq.LSTM.backward`). At step t this is
    ``dL/dh_t = dout_t + (gradient arriving from the later steps)``, which is the total
    gradient of the state h_t of that layer and direction.

    Parameters
    ----------
    module : npseq.RNN, npseq.LSTM or npseq.GRU
    x : array_like, the layer's input (any layout the layer accepts)
    dout : array_like, optional
        Gradient of the loss with respect to ``out``, shaped like ``out`` (None for zeros).
    dstate : optional
        Gradient with respect to the final state, shaped like it (None for zeros). At least
        one of ``dout`` and ``dstate`` must be given.
    state : initial state, optional
    lengths : array_like of int, shape (B,), optional
    per_sequence : bool, default False
        False: for every t, average the per-sequence norms over the batch. True: keep one
        norm per sequence.

    Returns
    -------
    dict
        ``{(layer, direction): {"h": norms, "c": norms}}``. ``"c"`` is present for the LSTM
        only; a kind with a longer carry has one entry per part, named as
        :meth:`npseq.CellKind.carry_names` (the sLSTM's ``h, c, n, m``). ``norms`` has
        shape (T,), or (T, B) with ``per_sequence``, and is indexed by
        the position in the sequence (in both directions). ``norms[t]`` is the Euclidean
        norm over features, ``||dL/dh_t||_2`` for each sequence, averaged over the
        sequences when ``per_sequence`` is False. Steps past a sequence's length are NaN,
        and are left out of the average.

    Raises
    ------
    TypeError
        ``module`` is not a layer, or ``per_sequence`` is not a bool.
    ValueError
        Both ``dout`` and ``dstate`` are None, or an argument does not match the layer
        (the layer's own checks).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> from npseq.analysis import gradient_norms
    >>> m = npseq.LSTM(2, 8, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((20, 4, 2))
    >>> norms = gradient_norms(m, x, dstate=(np.ones((1, 4, 8)), None))
    >>> norms[(0, 0)]["h"].shape, norms[(0, 0)]["c"].shape
    ((20,), (20,))
    """
    _check_layer(module)
    if not isinstance(per_sequence, (bool, np.bool_)):
        raise TypeError(f"per_sequence: expected True or False, got {per_sequence!r}")
    if dout is None and dstate is None:
        raise ValueError("dout, dstate: expected at least one upstream gradient (the gradient "
                         "of the loss with respect to out or to the final state), got None "
                         "for both")
    xb, unbatched, valid, out, record = _run_forward(module, x, state, lengths)
    shape_out = from_time_major(out, module.batch_first, unbatched).shape
    dout = (np.zeros_like(out) if dout is None else to_time_major(
        check_shape("dout", as_array("dout", dout, module.dtype), shape_out,
                    "(the shape of out)"), module.batch_first, unbatched))
    dfinals = module.state_to_carries(dstate, xb.shape[1], unbatched, argname="dstate")
    trace: dict = {}
    stack_backward(module.kind, module.stack_params(), record, dout, dfinals, trace=trace)
    result = {}
    for key, dcarries in trace.items():
        names = module.kind.carry_names()  # ("h",), ("h", "c"), or e.g. ("h", "c", "n", "m")
        result[key] = {name: _reduce(np.linalg.norm(d, axis=-1), valid, per_sequence)
                       for name, d in zip(names, dcarries)}
    return result


# -- Jacobian norms --------------------------------------------------------------------------
def _matrix_norms(J, ord):
    """Norms of the (K, H) matrices in the last two axes of ``J``."""
    if ord == 2:
        return np.linalg.norm(J, ord=2, axis=(-2, -1))
    return np.linalg.norm(J, ord="fro", axis=(-2, -1))


def _layer_jacobians(module, x, state, layer, direction):
    """dh_T/dh_t for one layer and direction: (T, B, H_out, H_out), rows indexing h_T."""
    xb, unbatched = sequence_input(x, module.dtype, module.input_size, module.batch_first)
    T, B = xb.shape[:2]
    K = module.output_size  # one backward row for each entry of h_T
    carries = module.state_to_carries(state, B, unbatched)  # (L*D, B, .) each
    x_rep = np.repeat(xb, K, axis=1)  # sequence b*K + k is a copy of sequence b
    carries_rep = tuple(np.repeat(c, K, axis=1) for c in carries)
    layers = module.stack_params()
    # as in evaluation (no masks): every copy must see the same map from h_t to h_T
    options = dict(module.core_options(), training=False)
    out, _, record = stack_forward(module.kind, layers, x_rep, carries_rep, **options)
    idx = layer * module.num_directions + direction
    dfinals = [np.zeros_like(c) for c in carries_rep]
    dfinals[0][idx] = np.tile(np.eye(K, dtype=module.dtype), (B, 1))  # row b*K + k: e_k
    trace: dict = {}
    stack_backward(module.kind, layers, record,  # type: ignore[arg-type]  # keep=True
                   np.zeros_like(out), tuple(dfinals),
                   trace=trace)
    dh = trace[(layer, direction)][0]  # (T, B*K, H_out): row k is d h_T[k] / d h_t
    return dh.reshape(T, B, K, dh.shape[-1])


def _cell_jacobians(cell, x, state):
    """dh_T/dh_t for a cell run over x of shape (T, B, D) or (T, D)."""
    x = as_array("x", x, cell.dtype)
    if x.ndim not in (2, 3) or x.shape[-1] != cell.input_size or x.shape[0] == 0:
        raise ValueError(f"x: expected a sequence of shape (seq_len, batch, "
                         f"{cell.input_size}) or (seq_len, {cell.input_size}), got {x.shape}")
    unbatched = x.ndim == 2
    xb = x[:, None] if unbatched else x
    T, B = xb.shape[:2]
    K = H = cell.hidden_size
    carry = cell.state_to_carry(state, B, unbatched)  # tuple of (B, H)
    carry = tuple(np.repeat(c, K, axis=0) for c in carry)  # row b*K + k: copy k of b
    caches = []
    for t in range(T):
        carry, cache = cell_forward(cell.kind, np.repeat(xb[t], K, axis=0), carry,
                                    cell.params)
        caches.append(cache)
    basis = np.tile(np.eye(K, dtype=cell.dtype), (B, 1))  # row b*K + k: e_k
    dcarry = (basis,) + tuple(np.zeros_like(basis) for _ in carry[1:])
    rows = np.empty((T, B * K, H), cell.dtype)
    for t in reversed(range(T)):
        rows[t] = dcarry[0]
        _, dcarry, _ = cell_backward(cell.kind, dcarry, caches[t], cell.params)
    return rows.reshape(T, B, K, H)


def jacobian_norms(module_or_cell: Union[RNNBase, RNNCellBase], x: ArrayLike,
                   state: StateLike = None, *, ord: Union[int, str] = 2, layer: int = 0,
                   direction: int = 0, per_sequence: bool = False) -> FloatArray:
    """Norms of the Jacobians ``dh_T/dh_t`` of the final state with respect to every state.

    The Jacobians are exact. The batch is copied ``K = H_out`` times, and one backward pass
    sends the basis vector ``e_k`` from ``h_T`` in copy k, so it produces every row of
    every ``dh_T/dh_t`` at once. For the LSTM, the cell state ``c_t`` is held fixed: this is
    the partial Jacobian along the carry ``(h_t, c_t)``. A layer runs without dropout here
    (as in ``eval()``), so that the map from ``h_t`` to ``h_T`` is deterministic; its mode
    is left as it was.

    Parameters
    ----------
    module_or_cell : npseq.RNN / LSTM / GRU layer, or npseq.RNNCell / LSTMCell / GRUCell
        A layer is run over ``x`` as usual, and the Jacobians are those of one of its
        layers and directions. A cell is run step by step over ``x``.
    x : array_like
        For a layer, its usual input. For a cell, a sequence of shape (T, B, input_size) or
        unbatched (T, input_size).
    state : initial state, optional
    ord : {2, "fro"}, default 2
        2: spectral norm (largest singular value). "fro": Frobenius norm.
    layer, direction : int, default 0
        Which layer and direction of a stacked or bidirectional layer (ignored for a cell).
        For ``direction=1``, ``h_T`` is the reverse direction's final state, the one after
        step 0.
    per_sequence : bool, default False
        False: the mean over the batch of each sequence's norm. True: one norm per sequence.

    Returns
    -------
    ndarray, shape (T,) or (T, B) with ``per_sequence``
        Entry t is ``||dh_T/dh_t||``, where h_t is the state produced at position t of the
        sequence. At the last step visited (t = T-1 forward, t = 0 reverse) it is the
        identity, with norm 1 (spectral) or sqrt(H_out) (Frobenius).

    Raises
    ------
    TypeError
        ``module_or_cell`` is neither a layer nor a cell.
    ValueError
        ``ord``, ``layer`` or ``direction`` is out of range, or ``x``/``state`` does not fit.
    """
    if isinstance(ord, (bool, np.bool_)) or not isinstance(ord, (str, numbers.Integral)):
        raise TypeError(f"ord: expected 2 (spectral) or 'fro' (Frobenius), got {ord!r} "
                        f"({type(ord).__name__})")
    if ord not in (2, "fro"):
        raise ValueError(f"ord: expected 2 (spectral) or 'fro' (Frobenius), got {ord!r}")
    if not isinstance(per_sequence, (bool, np.bool_)):
        raise TypeError(f"per_sequence: expected True or False, got {per_sequence!r}")
    if isinstance(module_or_cell, RNNCellBase):
        J = _cell_jacobians(module_or_cell, x, state)
    elif isinstance(module_or_cell, RNNBase):
        m = module_or_cell
        layer = check_int("layer", layer, minimum=0, maximum=m.num_layers - 1)
        direction = check_int("direction", direction, minimum=0,
                              maximum=m.num_directions - 1)
        J = _layer_jacobians(m, x, state, layer, direction)
    else:
        raise TypeError(f"module_or_cell: expected an npseq layer (RNN, LSTM, GRU) or cell "
                        f"(RNNCell, LSTMCell, GRUCell), got {type(module_or_cell).__name__}")
    norms = _matrix_norms(J, ord)  # (T, B)
    return norms if per_sequence else norms.mean(axis=1)


# -- gate statistics -------------------------------------------------------------------------
def _activation(module, gate):
    """The name of the activation that produced ``gate`` in ``module``'s cell."""
    if gate == "h":
        return getattr(module, "nonlinearity", "tanh")
    if gate in _CANDIDATES:
        return getattr(module, "activation", "tanh")
    return getattr(module, "recurrent_activation", "sigmoid")


def _saturated(values, activation, threshold):
    """Bool array: where the unit sits on a flat part of its activation."""
    if activation in ("sigmoid", "hard_sigmoid"):  # values in [0, 1]
        return (values < 1 - threshold) | (values > threshold)
    if activation == "tanh":
        return np.abs(values) > threshold
    if activation == "relu":
        return values <= 0  # zero output, zero derivative
    raise ValueError(f"module: no saturation rule for the activation {activation!r}")


def gate_statistics(module: RNNBase, x: ArrayLike, state: StateLike = None,
                    lengths: Optional[ArrayLike] = None, *,
                    threshold: float = SATURATION_THRESHOLD
                    ) -> dict[tuple[int, int], dict[str, dict[str, float]]]:
    """Mean activation and fraction saturated of every gate, per layer and direction.

    One forward pass. The gate values are read from its step caches (the layer's
    ``capture=``), by their names: ``i, f, g, o`` (LSTM) and ``r, z, n`` (GRU). The plain RNN has
    no gates; its state ``h = act(a)`` is reported under ``"h"``. Statistics are taken over
    all units, all sequences of the batch and all real time steps (padding is left out).

    A unit is *saturated* where its activation is flat, so that the gradient through it is
    nearly zero. The activation of each gate is the module's: ``recurrent_activation``
    (default sigmoid) for i, f, o, r, z; ``activation`` (default tanh) for g and n;
    ``nonlinearity`` for the RNN's h.

    * sigmoid and hard_sigmoid: ``s < 1 - threshold`` or ``s > threshold``, by default
      below 0.05 or above 0.95 (for the sigmoid, ``s (1 - s) < 0.0475``);
    * tanh: ``|t| > threshold``, by default 0.95 (``1 - t**2 < 0.0975``);
    * relu: output 0.

    A cell of your own is covered through the same field names (``i, f, g, o, r, z, n``,
    or ``h``); a layer whose caches have none of them gets an empty dict.

    Parameters
    ----------
    module : npseq.RNN, npseq.LSTM or npseq.GRU
    x : array_like, the layer's input
    state : initial state, optional
    lengths : array_like of int, shape (B,), optional
    threshold : float in (0.5, 1), default 0.95

    Returns
    -------
    dict
        ``{(layer, direction): {gate: {"mean": float, "saturated": float}}}`` with gates in
        the cell's order. :func:`format_gate_statistics` prints it as a table.
    """
    _check_layer(module)
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold: expected a number in (0.5, 1), got {threshold!r}")
    if not 0.5 < threshold < 1:
        raise ValueError(f"threshold: expected a number in (0.5, 1), got {threshold!r}")
    capture = {}  # (layer, direction) -> the T step caches
    valid = _run_forward(module, x, state, lengths, keep=False, capture=capture)[2]
    stats = {}
    for (layer, direction), caches in capture.items():
        first = caches[0]
        gates = ([name for name in _GATES if hasattr(first, name)]
                 or [name for name in ("h",) if hasattr(first, name)])
        stats[(layer, direction)] = {}
        for name in gates:
            values = np.stack([getattr(cache, name) for cache in caches])[valid]  # (steps, H)
            sat = _saturated(values, _activation(module, name), threshold)
            stats[(layer, direction)][name] = {"mean": float(values.mean()),
                                               "saturated": float(sat.mean())}
    return stats


def format_gate_statistics(stats: Mapping) -> str:
    """A plain-text table of :func:`gate_statistics`: one row per layer, direction and gate.

    Raises
    ------
    TypeError
        ``stats`` is not shaped as :func:`gate_statistics` returns it.
    """
    expected = ("stats: expected the dict of gate_statistics, {(layer, direction): {gate: "
                "{'mean': float, 'saturated': float}}}, got ")
    if not isinstance(stats, Mapping):
        raise TypeError(expected + type(stats).__name__)
    for key, gates in stats.items():
        if not (isinstance(key, tuple) and len(key) == 2
                and all(isinstance(k, numbers.Integral) for k in key) and key[1] in (0, 1)):
            raise TypeError(expected + f"the key {key!r}")
        if not isinstance(gates, Mapping) or not all(
                isinstance(v, Mapping) and all(isinstance(v.get(f), numbers.Real)
                                               for f in ("mean", "saturated"))
                for v in gates.values()):
            raise TypeError(expected + f"{gates!r} at {key!r}")
    lines = ["layer  direction  gate      mean  saturated"]
    for (layer, direction), gates in stats.items():
        for name, s in gates.items():
            lines.append(f"{layer:5d}  {('forward', 'reverse')[direction]:>9}  {name:>4}  "
                         f"{s['mean']:8.4f}  {s['saturated']:9.4f}")
    return "\n".join(lines)


# -- parameters ------------------------------------------------------------------------------
def _check_module(module):
    if not isinstance(module, Module):
        raise TypeError(f"module: expected an npseq cell or layer, got "
                        f"{type(module).__name__}")
    return module


def count_parameters(module: Module) -> int:
    """Total number of scalar parameters, PyTorch's ``sum(p.numel() for p in m.parameters())``.

    Examples
    --------
    >>> import npseq
    >>> from npseq.analysis import count_parameters
    >>> count_parameters(npseq.LSTM(10, 20))  # 4*20*(10 + 20) + 2*4*20
    2560
    """
    return _check_module(module).num_parameters()


class ParameterSummary(NamedTuple):
    """Per-tensor parameter counts; ``str()`` gives a table."""

    rows: list  # [(name, shape, count)] in the order of module.params (PyTorch's)
    total: int

    def __str__(self):
        width = max([len("tensor")] + [len(name) for name, _, _ in self.rows])
        shape_width = max([len("shape")] + [len(str(shape)) for _, shape, _ in self.rows])
        lines = [f"{'tensor':<{width}}  {'shape':<{shape_width}}  {'count':>10}"]
        lines += [f"{name:<{width}}  {str(shape):<{shape_width}}  {count:>10,d}"
                  for name, shape, count in self.rows]
        lines.append(f"{'total':<{width}}  {'':<{shape_width}}  {self.total:>10,d}")
        return "\n".join(lines)


def parameter_summary(module: Module) -> ParameterSummary:
    """Name, shape and number of entries of every parameter tensor, and the total.

    Examples
    --------
    >>> import npseq
    >>> from npseq.analysis import parameter_summary
    >>> print(parameter_summary(npseq.GRU(3, 4)))
    tensor        shape         count
    weight_ih_l0  (12, 3)          36
    weight_hh_l0  (12, 4)          48
    bias_ih_l0    (12,)            12
    bias_hh_l0    (12,)            12
    total                         108
    """
    _check_module(module)
    rows = [(name, tuple(p.shape), int(p.size)) for name, p in module.params.items()]
    return ParameterSummary(rows, count_parameters(module))
