"""The Linear Recurrent Unit as a layer: :class:`LRU` (Orvieto et al. 2023).

A :class:`~npseq.layers.RNNBase` of the LRU :class:`~npseq.CellKind`
(:mod:`npseq.cells.lru`), so the BPTT driver runs it with everything the other layers have:
stacking, ``bidirectional``, ``batch_first``, ``lengths``, ``dropout``, ``checkpoint_every``,
states in and out, save/load, pickling. Its public state is the complex state ``x`` as a
real array ``[Re x | Im x]``; derivations in ``docs/lru.md``.
"""
from __future__ import annotations

import numbers
from typing import Any, NamedTuple, Optional

import numpy as np

from npseq._typing import DTypeLike, Seed
from npseq._validation import check_bool, check_int, check_positive
from npseq.cells.lru import gamma_log_init, lru_kind, lru_lambda
from npseq.layers import RNNBase
from npseq.layout import carries_from_state, state_from_carries
from npseq.scan import linear_scan, linear_scan_backward

__all__ = ["LRU", "LRUScanRecord", "lru_scan_forward", "lru_scan_backward"]


def _check_radius(name: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {value!r} "
                        f"({type(value).__name__})")
    if not 0 <= float(value) <= 1:
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

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, state_size: Optional[int] = None, r_min: float = 0.0, r_max: float = 1.0,
                 max_phase: float = 2 * np.pi, checkpoint_every: Optional[int] = None) -> None:
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
    def state_to_carries(self, state: Any, batch: int, unbatched: bool = False,
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

    def carries_to_state(self, carries: tuple, unbatched: bool = False) -> Any:
        """The core's carries ``(y, x)`` -> the public state ``x``."""
        return state_from_carries(carries[1:], unbatched)

    def __repr__(self) -> str:
        extra = "".join(f", {k}={getattr(self, k)!r}" for k, d in
                        (("state_size", self.hidden_size), ("r_min", 0.0), ("r_max", 1.0),
                         ("max_phase", 2 * np.pi)) if getattr(self, k) != d)
        return super().__repr__()[:-1] + extra + ")"


# -- the recurrence as one linear scan: one layer, one direction -----------------------------
class LRUScanRecord(NamedTuple):
    """What :func:`lru_scan_backward` needs from :func:`lru_scan_forward` (complex arrays)."""

    u: np.ndarray  # (T, B, D) the input
    x0: np.ndarray  # (B, N) complex, the initial state
    x: np.ndarray  # (T, B, N) complex, every state
    bu: np.ndarray  # (T, B, N) complex, B u
    lam: np.ndarray  # (N,) complex
    gamma: np.ndarray  # (N,)
    block: Optional[int]


def lru_scan_forward(u: np.ndarray, x0: np.ndarray, p: dict, block: Optional[int] = None
                     ) -> tuple[np.ndarray, np.ndarray, "LRUScanRecord"]:
    """The LRU over a whole sequence by :func:`npseq.scan.linear_scan`, with no loop of T
    steps: one layer, one direction, every step real (no ``lengths``).

    Parameters
    ----------
    u : ndarray, shape (T, B, D)
    x0 : ndarray, shape (B, 2N), ``[Re x0 | Im x0]``
    p : dict of one layer's parameters without suffix (:meth:`LRU.layer_params`), as
        :func:`~npseq.cells.lru.lru_step_forward` reads them
    block : int, optional
        Steps per block of the scan (default ``ceil(sqrt(T))``).

    Returns
    -------
    y : ndarray, shape (T, B, H)
    x_n : ndarray, shape (B, 2N), the final state ``[Re | Im]``
    record : LRUScanRecord

    Notes
    -----
    The state recurrence is the first-order linear scan, in complex numbers, with the same
    coefficient at every step; the read-out is one product over all steps::

        x_t = lambda * x_{t-1} + b_t,    b_t = gamma * (B u_t)       (linear_scan)
        y_t = Re(C x_t) + D u_t + b
    """
    N = p["nu_log"].shape[0]
    lam_re, lam_im = lru_lambda(p["nu_log"], p["theta_log"])
    lam = lam_re + 1j * lam_im  # (N,)
    gamma = np.exp(p["gamma_log"])
    x0c = x0[:, :N] + 1j * x0[:, N:]  # (B, N)
    bu = u @ (p["B_re"] + 1j * p["B_im"]).T  # (T, B, N)
    x = linear_scan(np.broadcast_to(lam, bu.shape), gamma * bu, x0c, block)  # (T, B, N)
    y = x.real @ p["C_re"].T - x.imag @ p["C_im"].T + u @ p["D"].T  # (T, B, H)
    if "bias_y" in p:
        y += p["bias_y"]
    x_n = np.concatenate([x[-1].real, x[-1].imag], axis=1)
    return y, x_n, LRUScanRecord(u, x0c, x, bu, lam, gamma, block)


def lru_scan_backward(dy: np.ndarray, dx_n: np.ndarray, record: LRUScanRecord,
                      p: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """Backward of :func:`lru_scan_forward`: returns ``(du, dx0, grads)``.

    Notes
    -----
    The lines of :func:`~npseq.cells.lru.lru_step_backward` over all steps at once; the
    state's total gradient ``g_t`` is the reverse scan with ``conj(lambda)``
    (:func:`npseq.scan.linear_scan_backward`)::

        dx_out_t = dy_t conj(C)                       the read-out's share of dx_t
        g_{T-1} = dx_out_{T-1} + dx_n,  g_t = conj(lambda) g_{t+1} + dx_out_t
        dx0 = conj(lambda) g_0
        dlambda = sum_{t, batch} conj(x_{t-1}) g_t;   ds = conj(lambda) dlambda
        dgamma = sum Re(conj(B u_t) g_t);   d(Bu)_t = gamma g_t
        dB = sum d(Bu)_t^T u_t;   du_t = dy_t D + Re(d(Bu)_t conj(B))
        dC = sum dy_t^T conj(x_t);   dD = sum dy_t^T u_t;   db = sum dy_t
    """
    r = record
    N = r.lam.shape[0]
    T, Bt = dy.shape[:2]
    dx_out = dy @ p["C_re"] - 1j * (dy @ p["C_im"])  # (T, B, N)
    dx_last = dx_n[:, :N] + 1j * dx_n[:, N:]
    lam_conj = np.broadcast_to(r.lam.conj(), dx_out.shape)  # (T, B, N)
    g, _, dx0c = linear_scan_backward(dx_out, dx_last, lam_conj, r.x, r.x0, r.block)
    x_prev = np.concatenate([r.x0[None], r.x[:-1]])  # (T, B, N)
    dlam = (x_prev.conj() * g).sum(axis=(0, 1))  # (N,)
    ds = r.lam.conj() * dlam
    dgamma = (r.bu.conj() * g).real.sum(axis=(0, 1))
    dbu = r.gamma * g  # (T, B, N)
    rows = lambda a: a.reshape(T * Bt, a.shape[-1])  # noqa: E731
    dB = rows(dbu).T @ rows(r.u)  # (N, D) complex
    dC = rows(dy).T @ rows(r.x).conj()  # (H, N) complex
    grads = {"nu_log": -np.exp(p["nu_log"]) * ds.real,
             "theta_log": np.exp(p["theta_log"]) * ds.imag,
             "gamma_log": r.gamma * dgamma,
             "B_re": dB.real, "B_im": dB.imag, "C_re": dC.real, "C_im": dC.imag,
             "D": rows(dy).T @ rows(r.u)}
    if "bias_y" in p:
        grads["bias_y"] = dy.sum(axis=(0, 1))
    du = dy @ p["D"] + (dbu @ (p["B_re"] - 1j * p["B_im"])).real  # (T, B, D)
    dx0 = np.concatenate([dx0c.real, dx0c.imag], axis=1)
    return du, dx0, grads
