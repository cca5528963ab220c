"""Modern recurrences as layers: :class:`IndRNN`, :class:`MinGRU`, :class:`MinLSTM`.

Each is a :class:`~npseq.layers.RNNBase` of a built-in :class:`~npseq.CellKind`, so the BPTT
driver runs it with everything the other layers have (stacking, ``bidirectional``,
``batch_first``, ``lengths``, ``dropout``, ``checkpoint_every``, states in and out,
save/load, pickling). :class:`MinGRU` and :class:`MinLSTM` also have a parallel path
(``parallel=True``, the default): their gates read only ``x_t``, so ``h_t = a_t h_{t-1} +
b_t`` is linear in ``h`` and the whole sequence is one scan (:mod:`npseq.scan`), forward and
backward. Derivations in ``docs/modern.md``.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional

import numpy as np

from npseq import grad_mode
from npseq._typing import ArrayLike, DTypeLike, FloatArray, Seed, State, StateLike, ZoneoutLike
from npseq._validation import as_array, check_bool, check_choice, check_shape
from npseq.cells.base import CellKind
from npseq.cells.indrnn import indrnn_kind
from npseq.cells.minrnn import GATES, MINGRU, MINLSTM
from npseq.layers import RNNBase
from npseq.layout import from_time_major, lengths_mask, sequence_input, to_time_major
from npseq.params import suffix
from npseq.scan import scan_stack_backward, scan_stack_forward

__all__ = ["IndRNN", "MinGRU", "MinLSTM"]


def _check_max_abs_u(value: Any) -> Optional[float]:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"max_abs_u: expected None or a number > 0, got {value!r} "
                        f"({type(value).__name__})")
    if not (np.isfinite(value) and value > 0):  # type: ignore[call-overload, operator]
        raise ValueError(f"max_abs_u: expected None or a finite number > 0, got {value!r}")
    return float(value)


class IndRNN(RNNBase):
    """Independently recurrent layer (Li et al. 2018): ``h = act(W_ih x + b_ih + u * h_prev)``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.RNN`
        Every layer and direction has ``weight_ih_l{k} (H, input)``, with ``bias``
        ``bias_ih_l{k} (H,)``, and ``u_l{k} (H,)``, the recurrent weight of each unit (no
        ``weight_hh``). ``weight_ih`` and ``bias_ih`` start as PyTorch's, U(-1/sqrt(H),
        1/sqrt(H)); ``u`` starts U(0, 1) as in the paper.
    nonlinearity : {"relu", "tanh"}, default "relu", keyword only
        ``act``; the paper uses relu.
    max_abs_u : float > 0, optional, keyword only
        The paper's constraint on the recurrent weights, ``|u| <= max_abs_u`` (the paper
        takes ``max_abs_u = gamma ** (1 / T)`` for a gradient that neither explodes nor
        vanishes faster than ``gamma`` over ``T`` steps; with relu, e.g. ``2 ** (1 / T)``).
        As in the paper it is a projection after each update: call :meth:`constrain` after
        every optimizer step. The initial ``u`` is constrained at construction. The
        forward itself never clips (so central differences see the plain function).
    checkpoint_every : int, optional, keyword only
        As :class:`npseq.RNN`.
    zoneout, recurrent_dropout : float in [0, 1), keyword only, default 0
        As :class:`npseq.RNN` (``docs/regularisation.md``); ``recurrent_dropout`` masks
        ``h_prev`` where it meets ``u``. IndRNN has no ``weight_hh``, so no
        ``weight_dropout``.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.IndRNN(3, 4, num_layers=2, seed=0, max_abs_u=2 ** (1 / 100))
    >>> out, h_n = m(np.ones((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> dx, dh0 = m.backward(np.ones_like(out))
    >>> # after optimizer.step(): m.constrain()
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, nonlinearity: str = "relu", max_abs_u: Optional[float] = None,
                 checkpoint_every: Optional[int] = None, zoneout: ZoneoutLike = 0.0,
                 recurrent_dropout: float = 0.0) -> None:
        self.nonlinearity = check_choice("nonlinearity", nonlinearity, ("relu", "tanh"))
        self.max_abs_u = _check_max_abs_u(max_abs_u)
        self.kind = indrnn_kind(self.nonlinearity)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         zoneout=zoneout, recurrent_dropout=recurrent_dropout)
        self.constrain()

    def constrain(self) -> None:
        """Clip every ``u`` to ``[-max_abs_u, max_abs_u]`` in place (nothing without
        ``max_abs_u``): the paper's constraint, to call after each optimizer step."""
        if self.max_abs_u is None:
            return
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                u = self.params["u" + suffix(layer, direction)]
                np.clip(u, -self.max_abs_u, self.max_abs_u, out=u)

    def __repr__(self):
        extra = f", nonlinearity={self.nonlinearity!r}"
        if self.max_abs_u is not None:
            extra += f", max_abs_u={self.max_abs_u!r}"
        return super().__repr__()[:-1] + extra + ")"


class _ScanLayerRecord(NamedTuple):
    """What a forward by the scan (``parallel=True``) leaves for its backward."""

    stack: Any  # npseq.stack.StackRecord of npseq.scan.ScanRecord, None inside no_grad()
    shape_out: tuple
    batch: int
    unbatched: bool


class _MinRNN(RNNBase):
    """What :class:`MinGRU` and :class:`MinLSTM` share: two paths, one set of equations."""

    def __init__(self, kind: CellKind, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, parallel: bool = True, checkpoint_every: Optional[int] = None) -> None:
        self.kind = kind
        self.parallel = parallel
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every)

    @property
    def parallel(self) -> bool:
        """Run forward and backward by the scan (True) or by the BPTT driver's loop over
        time (False). Settable at any time; a backward follows the path of its forward."""
        return self._parallel

    @parallel.setter
    def parallel(self, value: bool) -> None:
        self._parallel = check_bool("parallel", value)

    def forward(self, x: ArrayLike, state: StateLike = None, lengths: Optional[ArrayLike] = None,
                *, capture: Optional[dict] = None) -> tuple[FloatArray, State]:
        """As :meth:`npseq.GRU.forward`; by the scan with ``parallel=True``.

        ``capture`` (the step caches) and ``checkpoint_every`` belong to the sequential
        path: with ``parallel=True`` they raise a ValueError that says to set
        ``parallel=False``.
        """
        if not self.parallel:
            return super().forward(x, state, lengths, capture=capture)
        if capture is not None:
            raise ValueError("capture: the parallel path keeps no step caches; set "
                             "parallel=False to capture them")
        if self.checkpoint_every is not None:
            raise ValueError(f"checkpoint_every: gradient checkpointing is a feature of the "
                             f"sequential path; set parallel=False to use it (got "
                             f"checkpoint_every={self.checkpoint_every} with parallel=True)")
        x, unbatched = sequence_input(x, self.dtype, self.input_size, self.batch_first)
        T, B = x.shape[:2]
        (h0,) = self.state_to_carries(state, B, unbatched)
        mask = lengths_mask(lengths, T, B, unbatched)
        out, h_n, record = scan_stack_forward(
            GATES[self.kind.name][0], self.stack_params(), x, h0, mask,
            dropout=self.dropout if self.training else 0.0, rng=self.rng,
            keep=grad_mode.is_grad_enabled())
        out = from_time_major(out, self.batch_first, unbatched)
        self._push(_ScanLayerRecord(record, out.shape, B, unbatched))
        return out, self.carries_to_state((h_n,), unbatched)

    def backward(self, dout: Optional[ArrayLike], dstate: StateLike = None, *,
                 trace: Optional[dict] = None) -> tuple[FloatArray, State]:
        """As :meth:`npseq.GRU.backward`, by the path its forward took (``trace`` too)."""
        record = self._peek()
        if not isinstance(record, _ScanLayerRecord):
            return super().backward(dout, dstate, trace=trace)
        if trace is not None and not isinstance(trace, dict):
            raise TypeError(f"trace: expected None or a dict to fill, got {type(trace).__name__}")
        if dout is None:
            dout = np.zeros(record.shape_out, self.dtype)
        dout = check_shape("dout", as_array("dout", dout, self.dtype), record.shape_out,
                           "(the shape of out of the latest forward call)")
        dout = to_time_major(dout, self.batch_first, record.unbatched)
        (dh_n,) = self.check_dstate(dstate)
        self._pop()  # only once dout and dstate passed their checks
        dx, dh0, grads = scan_stack_backward(GATES[self.kind.name][1], self.stack_params(),
                                             record.stack, dout, dh_n, trace=trace)
        for layer, directions in enumerate(grads):
            for direction, layer_grads in enumerate(directions):
                sfx = suffix(layer, direction)
                self._accumulate({k + sfx: g for k, g in layer_grads.items()})
        dx = from_time_major(dx, self.batch_first, record.unbatched)
        return dx, self.carries_to_state((dh0,), record.unbatched)

    def __repr__(self):
        return super().__repr__()[:-1] + ("" if self.parallel else ", parallel=False") + ")"


_MIN_DOC = """

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.GRU`
        Every layer and direction has ``weight_ih_l{k} ({G}H, input)`` and, with ``bias``,
        ``bias_ih_l{k} ({G}H,)``, gate blocks in the order {order}; no ``weight_hh``.
    parallel : bool, default True, keyword only
        True: forward and backward over the whole sequence by the blocked linear scan
        (:mod:`npseq.scan`), with no loop over the T steps. False: the BPTT driver's loop,
        one step at a time (:mod:`npseq.bptt`), which also offers ``checkpoint_every`` and
        ``capture``. Both give the same values and gradients (to rounding). Settable.
    checkpoint_every : int, optional, keyword only
        Gradient checkpointing of the sequential path (``parallel=False`` only).

    ``out, h_n = m(x, h0)``; ``dx, dh0 = m.backward(dout, dh_n)``, with ``h0`` and ``h_n``
    of shape (num_layers * num_directions, B, H), as :class:`npseq.GRU`.
"""


class MinGRU(_MinRNN):
    __doc__ = """minGRU layer (Feng et al. 2024): ``h = (1 - z) * h_prev + z * g(W_h x + b_h)``,
    ``z = sigmoid(W_z x + b_z)``: gates of the input only, so the recurrence is linear in h.

    Equations: :func:`npseq.cells.minrnn.mingru_gates`; derivations: ``docs/modern.md``.""" + \
        _MIN_DOC.replace("{G}", "2").replace("{order}", "(z, h~)")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, parallel: bool = True, checkpoint_every: Optional[int] = None) -> None:
        super().__init__(MINGRU, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype, seed, parallel=parallel,
                         checkpoint_every=checkpoint_every)


class MinLSTM(_MinRNN):
    __doc__ = """minLSTM layer (Feng et al. 2024): ``h = f' * h_prev + i' * g(W_h x + b_h)``
    with the normalised gates ``f' = f / (f + i)``, ``i' = i / (f + i)``, ``f = sigmoid(W_f x +
    b_f)``, ``i = sigmoid(W_i x + b_i)``: linear in h.

    Equations: :func:`npseq.cells.minrnn.minlstm_gates`; derivations: ``docs/modern.md``.""" + \
        _MIN_DOC.replace("{G}", "3").replace("{order}", "(f, i, h~)")

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, parallel: bool = True, checkpoint_every: Optional[int] = None) -> None:
        super().__init__(MINLSTM, input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype, seed, parallel=parallel,
                         checkpoint_every=checkpoint_every)
