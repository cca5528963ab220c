"""What every cell shares: the cell contract, the input projection, the weight gradients.

A recurrent cell is split in two parts that every cell in npseq shares:

1. The *input projection* ``gx = x W_ih^T + b_ih``. It does not depend on the carry, so the
   BPTT driver computes it for all time steps in one matrix product before the time loop.
   A kind without input weights (``has_weight_ih=False``) gets ``gx = x`` itself.
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

``p`` is a dict of one layer's parameters keyed without the PyTorch layer suffix (see
:mod:`npseq.params`): ``weight_ih (G*H, D)``, ``weight_hh (G*H, H_out)``, optional
``bias_ih (G*H,)``, ``bias_hh (G*H,)``, ``weight_hr (H_out, H)``, and the kind's own
parameters.
"""
from __future__ import annotations

import dataclasses
import inspect
import numbers
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np

__all__ = ["StepGrads", "ParamSpec", "FusedPath", "CellKind", "check_kind", "block_steps",
           "times_transpose", "input_projection",
           "input_backward", "param_grads", "masked_step_forward", "masked_dcarry_prev",
           "cell_forward", "cell_backward", "add_grads", "STANDARD_PARAMS"]

#: The parameters the driver knows by name; a kind's own parameters take other names.
STANDARD_PARAMS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")

_BLOCK_ROWS = 512  # rows (steps * batch) of the per-block products gx, dW, dx


def block_steps(B: int) -> int:
    """Steps per block for a batch of ``B``: enough rows (about 512) for an efficient matrix
    product. The BPTT driver forms ``gx``, the weight gradients and ``dx`` one block of
    steps at a time."""
    return max(1, -(-_BLOCK_ROWS // B))


class FusedPath(NamedTuple):
    """A whole-sequence implementation of a kind's plain case (``CellKind.fused``).

    The driver (:func:`npseq.bptt.sequence_forward`) runs ``forward`` instead of the step
    loop only for a kind whose ``step_forward`` and ``step_backward`` are the very functions
    named here (a kind derived with other step functions never takes it), when ``applies(p)``
    and the call has no zoneout, recurrent dropout, checkpointing or capture. It must equal
    the step functions to float rounding (test it so), with lengths too.

    ``forward(x, carry0, p, reverse, keep, mask) -> (out, carry, state or None)`` (``mask``
    None or ``(T, B, 1)`` bool, as :func:`npseq.bptt.sequence_forward` takes it) and
    ``backward(dout, dcarry_last, state, p, trace)``, which returns what
    :func:`npseq.bptt.sequence_backward` returns.
    """

    step_forward: Callable[..., Any]
    step_backward: Callable[..., Any]
    applies: Callable[[dict], bool]
    forward: Callable[..., tuple]
    backward: Callable[..., tuple]


class StepGrads(NamedTuple):
    """Gradients returned by a cell's ``step_backward``."""

    dgx: np.ndarray  # (B, G*H) gradient of gx (x W_ih^T + b_ih, or x itself without W_ih)
    dgh: Optional[np.ndarray]  # (B, G*H) gradient of gh = h_prev W_hh^T + b_hh; None for a
    # kind without weight_hh
    dcarry_prev: tuple  # ((B, H_out),) or ((B, H_out), (B, H)): gradient of the previous carry
    dparams: dict  # gradients of the cell's other parameters (e.g. "weight_hr"), maybe empty;
    # a key the driver also forms ("weight_hh", "bias_hh") is added to its after-loop gradient


#: One axis of a :class:`ParamSpec` shape: a size, or the name of a size of the layer.
Dim = Union[int, str]
_DIMS = ("H", "D", "G*H")  # hidden_size, the layer's input size, num_gates * hidden_size


class ParamSpec(NamedTuple):
    """A parameter of a cell besides ``weight_ih``, ``weight_hh``, the biases and ``weight_hr``.

    Layers name it with the layer suffix (``name + "_l0"``); ``p`` holds it as ``name``.

    ``shape`` is a tuple whose entries are sizes or the names ``"H"`` (hidden_size), ``"D"``
    (the input size of the layer) and ``"G*H"`` (gates times hidden_size), e.g. ``(3, "H")``;
    a function ``hidden_size -> shape`` is accepted too (a module-level one, so that the
    kind pickles). ``init`` is None for U(-1/sqrt(H), 1/sqrt(H)) as the weights, a number to
    fill the parameter with, or a function ``(rng, shape) -> array`` (module-level, again
    for pickling), e.g. IndRNN's ``u`` drawn from U(0, 1).
    """

    name: str  # e.g. "weight_ch"
    shape: Any  # tuple of Dim, e.g. (3, "H"); or a function hidden_size -> shape
    init: Any = None  # None, a number, or a function (rng, shape) -> ndarray

    def resolve_shape(self, hidden_size: int, input_size: int, num_gates: int) -> tuple:
        """The concrete shape for a layer of these sizes."""
        if callable(self.shape):
            return tuple(int(n) for n in self.shape(hidden_size))
        sizes = {"H": hidden_size, "D": input_size, "G*H": num_gates * hidden_size}
        return tuple(sizes[n] if isinstance(n, str) else int(n) for n in self.shape)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


@dataclasses.dataclass(frozen=True)
class CellKind:
    """A cell as the BPTT driver sees it: its sizes, its parameters and its two step functions.

    The contract (checked here, when the kind is built, so that a malformed kind fails at
    once with the field named):

    ``step_forward(gx, carry, p) -> (carry, cache)``
        ``gx (B, G*H)`` is the input projection ``x W_ih^T + b_ih`` of the step (``x``
        itself, ``(B, D)``, for a kind with ``has_weight_ih=False``); ``carry`` a tuple of
        ``num_states`` arrays ``(B, S_k)`` whose first is ``h``, the step's output (the sizes
        ``S_k`` are ``state_sizes``, by default ``H_out`` for ``h`` and ``H`` for the
        others); ``p`` the
        layer's parameters without suffix. Returns the new carry (same structure) and a
        cache. A kind with ``has_weight_hh`` keeps the ``h`` that entered the recurrent
        product as the cache's field ``h_prev``. Nothing passed in is modified.
    ``step_backward(dcarry, cache, p) -> StepGrads``
        ``dcarry`` is the gradient of the new carry (the step's output gradient already
        added to ``dcarry[0]``). Returns :class:`StepGrads`: ``dgx`` shaped like ``gx``;
        ``dgh (B, G*H)``, the gradient of ``h_prev W_hh^T + b_hh`` (None without
        ``weight_hh``; it may be the very array ``dgx`` when the two are equal, at some
        steps and not at others); ``dcarry_prev`` complete (including ``dgh W_hh``);
        ``dparams``, the gradients of the kind's other parameters summed over the batch.
        If ``step_backward`` has a keyword parameter ``out``, the driver passes a
        ``(B, G*H)`` buffer there; the step may write ``dgx`` into it and return it, or
        return any other array as ``dgx``: the driver uses what is returned.

    Attributes
    ----------
    name : str
        Shown in ``repr`` (e.g. "LSTM", "GRU", "RNN_TANH").
    num_gates : int
        G: ``weight_ih`` and ``weight_hh`` have ``G * hidden_size`` rows.
    num_states : int
        1 for the carry ``(h,)``, 2 for ``(h, c)``, more for a longer carry (e.g. the
        sLSTM's ``(h, c, n, m)``), which then needs ``state_names``. A layer's public state
        is the array ``h`` for one state and a tuple of the ``num_states`` parts otherwise.
    step_forward, step_backward : callables, as above
    extra_params : tuple of ParamSpec
        The kind's own parameters.
    has_weight_ih : bool, default True
        The kind has ``weight_ih (G*H, D)`` (and ``bias_ih`` with ``bias=True``).
    has_weight_hh : bool, default True
        The kind has ``weight_hh (G*H, H_out)`` (and ``bias_hh`` with ``bias=True``).
    supports_proj_size : bool, default False
        Layers of this kind accept ``proj_size`` (``weight_hr``), as the plain LSTM.
    recurrent_dropout : None, "carry" or "step", default None
        How the kind takes recurrent dropout's mask (above).
    state_names : tuple of str, optional
        The name of each part of the carry, used in messages and docs (the initial state
        part k is called ``name + "0"``, its gradient ``"d" + name + "_n"``). Default
        ``("h", "c")[:num_states]``; required when ``num_states > 2``. The first is ``h``.
        Use :meth:`carry_names` to read it.
    state_sizes : function, optional
        ``hidden_size -> tuple of num_states ints``, the feature size of each part of the
        carry (a module-level function, or a ``functools.partial`` of one, so that the kind
        pickles), e.g. the mLSTM's flattened matrix memory of ``H * H / num_heads``
        features. None (default): ``H_out`` (``proj_size`` or ``hidden_size``) for ``h``,
        ``hidden_size`` for every other part. Use :meth:`carry_sizes` to read it.
    fused : FusedPath, optional
        A faster whole-sequence form of the kind's plain case, equal to its step functions
        to float rounding (the plain ``LSTM`` has one: :mod:`npseq.cells.lstm_fused`). The
        step functions stay the definition; ``npseq.bptt.FUSED = False`` turns the fused
        paths off.
    backward_takes_out : bool
        Derived: whether ``step_backward`` declares ``out``.
    """

    name: str
    num_gates: int
    num_states: int
    step_forward: Callable[..., tuple]
    step_backward: Callable[..., StepGrads]
    extra_params: tuple = ()
    has_weight_ih: bool = True
    has_weight_hh: bool = True
    supports_proj_size: bool = False
    recurrent_dropout: Optional[str] = None
    state_names: tuple = ()
    state_sizes: Optional[Callable[[int], tuple]] = None
    fused: Optional[FusedPath] = dataclasses.field(default=None, repr=False)
    backward_takes_out: bool = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = "CellKind"
        if not isinstance(self.name, str):
            raise TypeError(f"{where}.name: expected a string, got {self.name!r}")
        if not _is_int(self.num_gates):
            raise TypeError(f"{where}.num_gates: expected an integer >= 1, got "
                            f"{self.num_gates!r}")
        if self.num_gates < 1:
            raise ValueError(f"{where}.num_gates: expected an integer >= 1, got "
                             f"{self.num_gates!r}")
        if not _is_int(self.num_states) or self.num_states < 1:
            raise ValueError(f"{where}.num_states: expected an integer >= 1 (1: carry (h,), "
                             f"2: carry (h, c)), got {self.num_states!r}")
        if not isinstance(self.state_names, (tuple, list)):
            raise TypeError(f"{where}.state_names: expected a tuple of names, got "
                            f"{self.state_names!r}")
        object.__setattr__(self, "state_names", tuple(self.state_names))
        names = self.carry_names()
        if (len(names) != self.num_states
                or not all(isinstance(n, str) and n.isidentifier() for n in names)
                or len(set(names)) != len(names) or names[0] != "h"):
            raise ValueError(f"{where}.state_names: expected {self.num_states} distinct "
                             f"identifiers, the first 'h' (one per part of the carry; "
                             f"required when num_states > 2), got {self.state_names!r}")
        if self.state_sizes is not None and not callable(self.state_sizes):
            raise TypeError(f"{where}.state_sizes: expected None or a function hidden_size "
                            f"-> tuple of {self.num_states} sizes, got {self.state_sizes!r}")
        for field in ("step_forward", "step_backward"):
            if not callable(getattr(self, field)):
                raise TypeError(f"{where}.{field}: expected a function, got "
                                f"{type(getattr(self, field)).__name__}")
        for field in ("has_weight_ih", "has_weight_hh", "supports_proj_size"):
            if not isinstance(getattr(self, field), (bool, np.bool_)):
                raise TypeError(f"{where}.{field}: expected True or False, got "
                                f"{getattr(self, field)!r}")
        if self.recurrent_dropout not in (None, "carry", "step"):
            raise ValueError(f"{where}.recurrent_dropout: expected None, 'carry' (h_prev "
                             f"enters the step only through the recurrent product) or 'step' "
                             f"(step_forward takes recurrent_mask=), got "
                             f"{self.recurrent_dropout!r}")
        if self.recurrent_dropout == "step" and not _declares(self.step_forward,
                                                              "recurrent_mask"):
            raise TypeError(f"{where}.step_forward: recurrent_dropout='step' expects a "
                            f"step_forward with a keyword parameter recurrent_mask, got one "
                            f"without it")
        if self.fused is not None and not isinstance(self.fused, FusedPath):
            raise TypeError(f"{where}.fused: expected None or an npseq.cells.base.FusedPath, "
                            f"got {type(self.fused).__name__}")
        if not isinstance(self.extra_params, (tuple, list)):
            raise TypeError(f"{where}.extra_params: expected a tuple of npseq.ParamSpec, got "
                            f"{type(self.extra_params).__name__}")
        seen = set(STANDARD_PARAMS)
        for j, spec in enumerate(self.extra_params):
            at = f"{where}.extra_params[{j}]"
            if not isinstance(spec, ParamSpec):
                raise TypeError(f"{at}: expected an npseq.ParamSpec, got {type(spec).__name__}")
            if (not isinstance(spec.name, str) or not spec.name.isidentifier()
                    or spec.name in seen):
                raise ValueError(f"{at}.name: expected a new identifier (not one of "
                                 f"{sorted(seen)}), got {spec.name!r}")
            seen.add(spec.name)
            if not callable(spec.shape) and not (
                    isinstance(spec.shape, tuple)
                    and all((_is_int(n) and n >= 0) or n in _DIMS for n in spec.shape)):
                raise TypeError(f"{at}.shape: expected a tuple of sizes and of the names "
                                f"{list(_DIMS)} (e.g. (3, 'H')), or a function hidden_size "
                                f"-> shape, got {spec.shape!r}")
            if spec.init is not None and not callable(spec.init) and (
                    isinstance(spec.init, (bool, np.bool_))
                    or not isinstance(spec.init, numbers.Real)):
                raise TypeError(f"{at}.init: expected None, a number or a function (rng, "
                                f"shape) -> array, got {spec.init!r}")
        object.__setattr__(self, "extra_params", tuple(self.extra_params))
        object.__setattr__(self, "backward_takes_out", _declares(self.step_backward, "out"))

    def carry_names(self) -> tuple:
        """The name of each part of the carry: ``state_names``, or by default
        ``("h", "c")[:num_states]``."""
        return self.state_names or ("h", "c")[:self.num_states]

    def carry_sizes(self, hidden_size: int, output_size: Optional[int] = None) -> tuple:
        """The feature size of each part of the carry for a layer of ``hidden_size`` units
        (``output_size``: ``proj_size`` if set, else ``hidden_size``)."""
        if self.state_sizes is None:
            return ((output_size or hidden_size),) + (hidden_size,) * (self.num_states - 1)
        sizes = tuple(self.state_sizes(hidden_size))
        if len(sizes) != self.num_states or not all(_is_int(n) and n >= 1 for n in sizes):
            raise ValueError(f"CellKind.state_sizes of {self.name}: expected "
                             f"{self.num_states} sizes >= 1 for hidden_size={hidden_size}, "
                             f"got {sizes!r}")
        return sizes

    def _replace(self, **changes: Any) -> "CellKind":
        """A copy with some fields changed (checked again), as a NamedTuple's ``_replace``."""
        return dataclasses.replace(self, **changes)


def _declares(fn: Callable[..., Any], name: str) -> bool:
    """Whether ``fn`` has a parameter ``name`` (``out=`` of a ``step_backward``,
    ``recurrent_mask=`` of a ``step_forward``)."""
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def check_kind(kind: Any, name: str = "kind") -> CellKind:
    """``kind`` if it is a :class:`CellKind` (checked when it was built), else a TypeError."""
    if not isinstance(kind, CellKind):
        raise TypeError(f"{name}: expected an npseq.CellKind, got {type(kind).__name__}")
    return kind


def times_transpose(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """``x @ w.T`` for ``x (rows, D)`` and ``w (N, D)``.

    With one input feature (D = 1, e.g. MNIST read pixel by pixel) the product is an outer
    product, each entry one multiplication: the broadcast ``x * w[:, 0]`` gives the same bits
    in a quarter to a half of the time BLAS takes for a product with an inner size of 1.
    """
    if x.shape[-1] == 1:
        return x * w[:, 0]
    return x @ w.T


def input_projection(x: np.ndarray, p: dict) -> np.ndarray:
    """``gx = x W_ih^T + b_ih`` for ``x`` of shape ``(..., D)``; returns ``(..., G*H)``.

    Without ``weight_ih`` in ``p`` (a kind with ``has_weight_ih=False``) ``gx`` is ``x``
    itself. One 2-D product over all the leading axes: NumPy runs ``(T, B, D) @ (D, G*H)`` as
    T separate ``(B, D)`` products, 1.3x (B = 64) to 2.5x (B = 1) slower than the same rows
    as one ``(T*B, D)`` product.
    """
    if "weight_ih" not in p:
        return x
    w = p["weight_ih"]
    gx = times_transpose(x.reshape(-1, x.shape[-1]), w).reshape(x.shape[:-1] + w.shape[:1])
    if "bias_ih" in p:
        gx += p["bias_ih"]
    return gx


def input_backward(dgx: np.ndarray, p: dict) -> np.ndarray:
    """``dx = dgx W_ih``, the backward of :func:`input_projection` for ``x`` (``dgx``
    itself without ``weight_ih``)."""
    if "weight_ih" not in p:
        return dgx
    return dgx @ p["weight_ih"]


def param_grads(x: np.ndarray, h_prev: Optional[np.ndarray], dgx: np.ndarray,
                dgh: Optional[np.ndarray], p: dict) -> dict:
    """Gradients of ``weight_ih``, ``weight_hh`` and the biases in ``p``, summed over
    leading axes.

    ``x (..., D)``, ``h_prev (..., H_out)``, ``dgx`` and ``dgh (..., G*H)``, where ``...`` is
    ``(B,)`` for one step or ``(T, B)`` for a sequence::

        dW_ih = sum dgx^T x        db_ih = sum dgx
        dW_hh = sum dgh^T h_prev   db_hh = sum dgh

    A kind without ``weight_ih`` (or ``weight_hh``) has neither the weight nor its bias, and
    gets no gradient for them.
    """
    grads = {}
    if "weight_ih" in p:
        dgx2 = dgx.reshape(-1, dgx.shape[-1])  # (rows, G*H)
        grads["weight_ih"] = dgx2.T @ x.reshape(-1, x.shape[-1])
        if "bias_ih" in p:
            grads["bias_ih"] = dgx2.sum(axis=0)
    if "weight_hh" in p:
        dgh2 = dgh.reshape(-1, dgh.shape[-1])  # type: ignore[union-attr]
        grads["weight_hh"] = dgh2.T @ h_prev.reshape(  # type: ignore[union-attr]
            -1, h_prev.shape[-1])  # type: ignore[union-attr]
        if "bias_hh" in p:  # the same sum as bias_ih's when the two gradients are one array
            grads["bias_hh"] = (grads["bias_ih"].copy() if dgh is dgx and "bias_ih" in grads
                                else dgh2.sum(axis=0))
    return grads


def masked_step_forward(kind: CellKind, gx: np.ndarray, carry: tuple, p: dict,
                        recurrent_mask: Optional[np.ndarray] = None) -> tuple[tuple, Any]:
    """``kind.step_forward(gx, carry, p)`` with recurrent dropout's mask ``m (B, H_out)``.

    None: the plain step. A ``"carry"`` kind steps from ``(m * h_prev, c_prev)``; a
    ``"step"`` kind gets ``recurrent_mask=m`` (see :class:`CellKind`). Its backward's
    ``dcarry_prev`` goes through :func:`masked_dcarry_prev`.
    """
    if recurrent_mask is None:
        return kind.step_forward(gx, carry, p)
    if kind.recurrent_dropout == "carry":
        return kind.step_forward(gx, (recurrent_mask * carry[0],) + carry[1:], p)
    return kind.step_forward(gx, carry, p, recurrent_mask=recurrent_mask)


def masked_dcarry_prev(kind: CellKind, dcarry_prev: tuple,
                       recurrent_mask: Optional[np.ndarray] = None) -> tuple:
    """The gradient of the unmasked carry from a step's ``dcarry_prev``, after
    :func:`masked_step_forward`: a ``"carry"`` kind's step differentiated with respect to
    ``m * h_prev``, so ``dh_prev = m * dh_prev_step``; a ``"step"`` kind's is already it."""
    if recurrent_mask is None or kind.recurrent_dropout != "carry":
        return dcarry_prev
    return (recurrent_mask * dcarry_prev[0],) + tuple(dcarry_prev[1:])


class CellCache(NamedTuple):
    """What :func:`cell_backward` needs: the step's input and the recurrence's cache."""

    x: np.ndarray  # (B, D)
    step: Any  # the cell's own named cache


def cell_forward(kind: CellKind, x: np.ndarray, carry: tuple, p: dict,
                 recurrent_mask: Optional[np.ndarray] = None) -> tuple[tuple, CellCache]:
    """One full step of a cell: input projection, then the recurrence.

    Returns ``(carry, cache)``; ``x`` is ``(B, D)``, ``carry`` a tuple of ``(B, .)`` arrays,
    ``recurrent_mask`` recurrent dropout's ``(B, H_out)`` mask or None
    (:func:`masked_step_forward`).
    """
    carry, step_cache = masked_step_forward(kind, input_projection(x, p), carry, p,
                                            recurrent_mask)
    return carry, CellCache(x, step_cache)


def cell_backward(kind: CellKind, dcarry: tuple, cache: CellCache, p: dict,
                  recurrent_mask: Optional[np.ndarray] = None
                  ) -> tuple[np.ndarray, tuple, dict]:
    """Backward of :func:`cell_forward` (with the same ``recurrent_mask``): returns
    ``(dx, dcarry_prev, dparams)``.

    ``dparams`` has a gradient for every key of ``p``::

        dx = dgx W_ih
    """
    g = kind.step_backward(dcarry, cache.step, p)
    h_prev = cache.step.h_prev if "weight_hh" in p else None
    dparams = add_grads(param_grads(cache.x, h_prev, g.dgx, g.dgh, p), g.dparams)
    dcarry_prev = masked_dcarry_prev(kind, g.dcarry_prev, recurrent_mask)
    return input_backward(g.dgx, p), dcarry_prev, dparams


def add_grads(total: dict, grads: dict) -> dict:
    """Add the arrays of ``grads`` into ``total`` by key (a new key is taken as is)."""
    for name, value in grads.items():
        total[name] = total[name] + value if name in total else value
    return total
