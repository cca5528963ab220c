"""The Linear Recurrent Unit as a layer: :class:`LRU` (Orvieto et al. 2023).

A :class:`~npseq.layers.RNNBase` of the LRU :class:`~npseq.CellKind`
(:mod:`npseq.cells.lru`), so the BPTT driver runs it with everything the other layers have:
stacking, ``bidirectional``, ``batch_first``, ``lengths``, ``dropout``, ``checkpoint_every``,
states in and out, save/load, pickling. Its public state is the complex state ``x`` as a
real array ``[Re x | Im x]``; derivations in ``docs/lru.md``.
"""
from __future__ import annotations

import numbers

import numpy as np

from npseq._validation import check_bool, check_int, check_positive
from npseq.cells.lru import gamma_log_init, lru_kind
from npseq.layers import RNNBase
from npseq.layout import carries_from_state, state_from_carries

__all__ = ["LRU"]


def _check_radius(name, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {value!r} "
                        f"({type(value).__name__})")
    if not 0 <= value <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value!r}")
    return float(value)


class LRU(RNNBase):
    """Linear Recurrent Unit layer (Orvieto et al. 2023): a complex diagonal linear
    recurrence with a real read-out::

        x = lambda * x_prev + gamma * (B u)         x complex (N,), B = B_re + i B_im
        y = Re(C x) + D u + b                       C = C_re + i C_im
        lambda = exp(-exp(nu_log) + i exp(theta_log)),   gamma = exp(gamma_log)

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.GRU`
        ``hidden_size`` is H, the size of the output ``y``. Every layer and direction has
        ``nu_log_l{k}``, ``theta_log_l{k}``, ``gamma_log_l{k}`` (N,), ``B_re_l{k}``,
        ``B_im_l{k}`` (N, input), ``C_re_l{k}``, ``C_im_l{k}`` (H, N), ``D_l{k}`` (H, input)
        and, with ``bias``, an output bias ``bias_y_l{k}`` (H,), starting at 0 (so the initial
        layer is the paper's). ``D`` is a full matrix: the paper's diagonal skip ``d * u``
        is the case ``D = diag(d)`` when input = H, and layers whose input is not H (the
        first, or any stacked bidirectional one, which reads 2H) need the matrix.
    state_size : int, optional, keyword only
        N, the size of the complex state; default ``hidden_size``.
    r_min, r_max : float, 0 <= r_min < r_max <= 1, defaults 0 and 1, keyword only
        The initial ``|lambda|`` is drawn on the ring ``r_min <= |lambda| <= r_max``
        (``|lambda|^2`` uniform), as in the paper (its defaults; for long-range tasks it
        uses e.g. ``r_min=0.9, r_max=0.999``).
    max_phase : float > 0, default 2 pi, keyword only
        The initial phase ``arg(lambda)`` is uniform in ``(0, max_phase)`` (the paper uses
        ``pi / 10`` on some long-range tasks).
    checkpoint_every : int, optional, keyword only
        As :class:`npseq.RNN`.

    Notes
    -----
    ``gamma_log`` starts at ``log sqrt(1 - |lambda|^2)``, the paper's normalisation of the
    input, and is then a parameter of its own, trained as the paper's reference code does.
    ``|lambda| = exp(-exp(nu_log)) < 1`` for every ``nu_log``: no update makes the
    recurrence unstable.

    The state: ``out, x_n = m(u, x0)``; ``du, dx0 = m.backward(dout, dx_n)``, with ``x0`` and
    ``x_n`` of shape (num_layers * num_directions, B, 2N), the real parts of the complex state
    in the first N columns and the imaginary parts in the last N.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.LRU(3, 4, num_layers=2, state_size=6, seed=0, r_min=0.5, r_max=0.99)
    >>> out, x_n = m(np.ones((5, 2, 3)))
    >>> out.shape, x_n.shape
    ((5, 2, 4), (2, 2, 12))
    >>> du, dx0 = m.backward(np.ones_like(out))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, dtype=np.float64, seed=None, *,
                 state_size=None, r_min=0.0, r_max=1.0, max_phase=2 * np.pi,
                 checkpoint_every=None):
        hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        self.state_size = (hidden_size if state_size is None
                           else check_int("state_size", state_size, minimum=1))
        self.r_min = _check_radius("r_min", r_min)
        self.r_max = _check_radius("r_max", r_max)
        if not self.r_min < self.r_max:
            raise ValueError(f"r_min, r_max: expected 0 <= r_min < r_max <= 1, got "
                             f"r_min={r_min!r} and r_max={r_max!r}")
        self.max_phase = check_positive("max_phase", max_phase)
        self.kind = lru_kind(self.state_size, self.r_min, self.r_max, self.max_phase,
                             check_bool("bias", bias))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every)
        for name, value in self.params.items():  # the paper's gamma from the drawn lambda
            if name.startswith("nu_log"):
                self.params["gamma_log" + name[len("nu_log"):]][...] = gamma_log_init(value)

    # -- the public state is x; the carry is (y, x) ----------------------------------------
    def state_to_carries(self, state, batch: int, unbatched: bool = False,
                         argname: str = "state") -> tuple:
        """A public state ``x`` (or its gradient), shape (num_layers * num_directions, B, 2N)
        -> the core's carries ``(y, x)``, ``y`` zeros (the step does not read it)."""
        LD = self.num_layers * self.num_directions
        label = "dx_n" if argname.startswith("d") else "x0"
        what = ("(num_layers * num_directions, " + ("" if unbatched else "batch, ")
                + "2 * state_size)")
        (x,) = carries_from_state(argname, state, labels=(label,),
                                  shapes=((LD, batch, 2 * self.state_size),), what=(what,),
                                  dtype=self.dtype, owner=type(self).__name__,
                                  unbatched=unbatched)
        return np.zeros((LD, batch, self.hidden_size), self.dtype), x

    def carries_to_state(self, carries: tuple, unbatched: bool = False):
        """The core's carries ``(y, x)`` -> the public state ``x``."""
        return state_from_carries(carries[1:], unbatched)

    def __repr__(self):
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                        (("state_size", self.hidden_size), ("r_min", 0.0), ("r_max", 1.0),
                         ("max_phase", 2 * np.pi)) if getattr(self, k) != d)
        return super().__repr__()[:-1] + extra + ")"
