"""minGRU and minLSTM (Feng et al. 2024, "Were RNNs All We Needed?").

Their gates read only the input, never ``h_prev``, so the recurrence is linear in ``h``::

    h = a * h_prev + b              a, b functions of gx = W_ih x + b_ih only

One set of equations serves two paths: the *gates* ``gx -> (a, b)`` and their backward
``(da, db) -> dgx`` are written once here, for any leading axes; the sequential step
(:func:`min_step_forward`, a :class:`~npseq.CellKind` the BPTT driver runs) and the parallel
scan over the whole sequence (:mod:`npseq.scan`, used by :class:`npseq.MinGRU` and
:class:`npseq.MinLSTM` with ``parallel=True``) both call them. Derivations:
``docs/modern.md``.

The candidate goes through the paper's ``g`` (its log-space version, appendix B.3), which
is positive and continuous; its derivative jumps at 0 (1/4 on the left, 1 on the right)::

    g(v) = v + 1/2      if v >= 0
         = sigmoid(v)   if v < 0
    g'   = 1 where g >= 1/2,  g (1 - g) where g < 1/2      (from the output)

The kinds have no ``weight_hh`` (``has_weight_hh=False``): ``weight_ih (G*H, D)`` and
``bias_ih (G*H,)`` hold the gate blocks, in the order (z, h~) for minGRU (G = 2) and
(f, i, h~) for minLSTM (G = 3).
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from npseq.activations import sigmoid
from npseq.cells.base import CellKind, StepGrads

__all__ = ["g", "g_grad", "MinGRUGates", "mingru_gates", "mingru_gates_backward",
           "MinLSTMGates", "minlstm_gates", "minlstm_gates_backward", "MinCache",
           "min_step_forward", "min_step_backward", "mingru_step_forward",
           "mingru_step_backward", "minlstm_step_forward", "minlstm_step_backward",
           "MINGRU", "MINLSTM", "GATES"]


def g(v: np.ndarray) -> np.ndarray:
    """``v + 1/2`` for ``v >= 0``, ``sigmoid(v)`` below: positive, continuous, linear growth.

    Written as ``max(v, 0) + sigmoid(min(v, 0))`` (the same values: ``sigmoid(0) = 1/2``),
    element-wise arithmetic that is several times faster than ``np.where``.
    """
    return np.maximum(v, 0) + sigmoid(np.minimum(v, 0))


def g_grad(y: np.ndarray) -> np.ndarray:
    """Derivative of :func:`g` where it returned ``y``: 1 where ``y >= 1/2``, else
    ``y (1 - y)`` (the sigmoid's). As arithmetic: with ``s = min(y, 1/2)``,
    ``s (1 - s) + 3/4 * [y >= 1/2]`` (``1/4 + 3/4 = 1`` on the right)."""
    s = np.minimum(y, 0.5)
    return s * (1 - s) + (y >= 0.5) * y.dtype.type(0.75)


def _softplus(v):
    """``log(1 + exp(v)) = max(v, 0) + log1p(exp(-|v|))``, without overflow (and 15x faster
    on float32 than ``np.logaddexp(0, v)``)."""
    return np.maximum(v, 0) + np.log1p(np.exp(-np.abs(v)))


# -- minGRU -----------------------------------------------------------------------------------
class MinGRUGates(NamedTuple):
    z: np.ndarray  # (..., H) update gate, sigmoid(gx_z)
    h_tilde: np.ndarray  # (..., H) candidate, g(gx_h)


def mingru_gates(gx: np.ndarray) -> tuple[np.ndarray, np.ndarray, MinGRUGates]:
    """minGRU's coefficients from its input projection.

    Parameters
    ----------
    gx : ndarray, shape (..., 2H), gate blocks (z, h~)

    Returns
    -------
    a, b : ndarrays, shape (..., H)
    gates : MinGRUGates

    Notes
    -----
    ::

        z  = sigmoid(gx_z)
        h~ = g(gx_h)
        a  = 1 - z
        b  = z * h~                        so h = (1 - z) * h_prev + z * h~
    """
    H = gx.shape[-1] // 2
    z = sigmoid(gx[..., :H])
    h_tilde = g(gx[..., H:])
    return 1 - z, z * h_tilde, MinGRUGates(z, h_tilde)


def mingru_gates_backward(da: np.ndarray, db: np.ndarray, gates: Any,
                          out: Optional[np.ndarray] = None) -> np.ndarray:
    """Backward of :func:`mingru_gates`: ``dgx (..., 2H)`` from ``da``, ``db (..., H)``.

    Notes
    -----
    ::

        dz  = db * h~ - da
        dh~ = db * z
        dgx_z = dz * z (1 - z)
        dgx_h = dh~ * g'(h~)
    """
    z, h_tilde = gates
    H = z.shape[-1]
    if out is None:
        out = np.empty(z.shape[:-1] + (2 * H,), np.result_type(da, db, z))
    dgx_z, dgx_h = out[..., :H], out[..., H:]  # written in place: no concatenation
    dz = np.multiply(db, h_tilde, out=dgx_z)
    dz -= da
    dh_tilde = np.multiply(db, z, out=dgx_h)
    dz *= z * (1 - z)  # dgx_z
    dh_tilde *= g_grad(h_tilde)  # dgx_h
    return out


# -- minLSTM ----------------------------------------------------------------------------------
class MinLSTMGates(NamedTuple):
    f_n: np.ndarray  # (..., H) normalised forget gate f / (f + i)
    i_n: np.ndarray  # (..., H) normalised input gate i / (f + i)
    h_tilde: np.ndarray  # (..., H) candidate, g(gx_h)
    sf: np.ndarray  # (..., H) sigmoid(-gx_f) = 1 - f, the derivative of log f
    si: np.ndarray  # (..., H) sigmoid(-gx_i) = 1 - i


def minlstm_gates(gx: np.ndarray) -> tuple[np.ndarray, np.ndarray, MinLSTMGates]:
    """minLSTM's coefficients from its input projection.

    Parameters
    ----------
    gx : ndarray, shape (..., 3H), gate blocks (f, i, h~)

    Returns
    -------
    a, b : ndarrays, shape (..., H)
    gates : MinLSTMGates

    Notes
    -----
    The paper's normalised gates ``f' = f / (f + i)``, ``i' = i / (f + i)`` with
    ``f = sigmoid(gx_f)``, ``i = sigmoid(gx_i)``, computed from logarithms so that no
    input overflows (``-log sigmoid(v) = softplus(-v)``)::

        d  = softplus(-gx_f) - softplus(-gx_i)          = log i - log f
        f' = sigmoid(-d)                                = f / (f + i)
        i' = sigmoid(d)                                 = i / (f + i)
        h~ = g(gx_h)
        a  = f'
        b  = i' * h~                       so h = f' * h_prev + i' * h~
    """
    H = gx.shape[-1] // 3
    gx_f, gx_i = gx[..., :H], gx[..., H:2 * H]
    d = _softplus(-gx_f) - _softplus(-gx_i)
    f_n = sigmoid(-d)
    i_n = sigmoid(d)
    h_tilde = g(gx[..., 2 * H:])
    gates = MinLSTMGates(f_n, i_n, h_tilde, sigmoid(-gx_f), sigmoid(-gx_i))
    return f_n, i_n * h_tilde, gates


def minlstm_gates_backward(da: np.ndarray, db: np.ndarray, gates: Any,
                           out: Optional[np.ndarray] = None) -> np.ndarray:
    """Backward of :func:`minlstm_gates`: ``dgx (..., 3H)`` from ``da``, ``db (..., H)``.

    Notes
    -----
    One line a derivative, in reverse order of the forward
    (``d softplus(-v) / dv = -sigmoid(-v)``)::

        di' = db * h~
        dh~ = db * i'
        df' = da
        dd  = (di' - df') * f' * i'         sigmoid'(d) = sigmoid'(-d) = f' i'
        dgx_f = -dd * sigmoid(-gx_f)
        dgx_i =  dd * sigmoid(-gx_i)
        dgx_h = dh~ * g'(h~)
    """
    f_n, i_n, h_tilde, sf, si = gates
    H = f_n.shape[-1]
    if out is None:
        out = np.empty(f_n.shape[:-1] + (3 * H,), np.result_type(da, db, f_n))
    dgx_f, dgx_i, dgx_h = out[..., :H], out[..., H:2 * H], out[..., 2 * H:]  # in place
    di_n = db * h_tilde
    dh_tilde = np.multiply(db, i_n, out=dgx_h)
    df_n = da
    dd = np.subtract(di_n, df_n, out=di_n)
    dd *= f_n * i_n
    np.multiply(dd, sf, out=dgx_f)
    np.negative(dgx_f, out=dgx_f)  # dgx_f = -dd * sigmoid(-gx_f)
    np.multiply(dd, si, out=dgx_i)  # dgx_i = dd * sigmoid(-gx_i)
    dh_tilde *= g_grad(h_tilde)  # dgx_h
    return out


# -- the sequential step, shared by both cells ------------------------------------------------
class MinCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) carry before the step
    a: np.ndarray  # (B, H) coefficient of h_prev
    gates: Any  # MinGRUGates or MinLSTMGates


def min_step_forward(gx: np.ndarray, carry: tuple, p: dict, gates_forward: Callable
                     ) -> tuple[tuple, MinCache]:
    """One step of a recurrence linear in ``h``: ``h = a * h_prev + b``.

    Parameters
    ----------
    gx : ndarray, shape (B, G*H), the input projection ``W_ih x + b_ih``
    carry : tuple ``(h_prev,)``
    p : dict (unused: the gates read only ``gx``)
    gates_forward : :func:`mingru_gates` or :func:`minlstm_gates`

    Notes
    -----
    ::

        a, b = gates(gx)
        h = a * h_prev + b
    """
    (h_prev,) = carry
    a, b, gates = gates_forward(gx)
    h = a * h_prev + b
    return (h,), MinCache(h_prev, a, gates)


def min_step_backward(dcarry: tuple, cache: MinCache, p: dict, gates_backward: Callable, *,
                      out: Optional[np.ndarray] = None) -> StepGrads:
    """Backward of :func:`min_step_forward`.

    Returns
    -------
    StepGrads
        ``dgx (B, G*H)`` (written into ``out`` when given), ``dgh = None`` (no ``W_hh``),
        ``dcarry_prev = (dh * a,)``, no other parameter.

    Notes
    -----
    ::

        da = dh * h_prev
        db = dh
        dh_prev = dh * a
        dgx = gates_backward(da, db)
    """
    (dh,) = dcarry
    da = dh * cache.h_prev
    db = dh
    dh_prev = dh * cache.a
    dgx = gates_backward(da, db, cache.gates, out=out)
    return StepGrads(dgx=dgx, dgh=None, dcarry_prev=(dh_prev,), dparams={})


def mingru_step_forward(gx: np.ndarray, carry: tuple, p: dict) -> tuple[tuple, MinCache]:
    """minGRU step: :func:`min_step_forward` with :func:`mingru_gates`."""
    return min_step_forward(gx, carry, p, mingru_gates)


def mingru_step_backward(dcarry: tuple, cache: MinCache, p: dict, *,
                         out: Optional[np.ndarray] = None) -> StepGrads:
    """Backward of :func:`mingru_step_forward`."""
    return min_step_backward(dcarry, cache, p, mingru_gates_backward, out=out)


def minlstm_step_forward(gx: np.ndarray, carry: tuple, p: dict) -> tuple[tuple, MinCache]:
    """minLSTM step: :func:`min_step_forward` with :func:`minlstm_gates`."""
    return min_step_forward(gx, carry, p, minlstm_gates)


def minlstm_step_backward(dcarry: tuple, cache: MinCache, p: dict, *,
                          out: Optional[np.ndarray] = None) -> StepGrads:
    """Backward of :func:`minlstm_step_forward`."""
    return min_step_backward(dcarry, cache, p, minlstm_gates_backward, out=out)


MINGRU = CellKind("MINGRU", 2, 1, mingru_step_forward, mingru_step_backward,
                  has_weight_hh=False)
MINLSTM = CellKind("MINLSTM", 3, 1, minlstm_step_forward, minlstm_step_backward,
                   has_weight_hh=False)

#: The gates of each kind, by name: ``(gates_forward, gates_backward)``, for the scan path.
GATES = {"MINGRU": (mingru_gates, mingru_gates_backward),
         "MINLSTM": (minlstm_gates, minlstm_gates_backward)}
