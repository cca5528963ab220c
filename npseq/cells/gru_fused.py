"""The plain GRU over a whole sequence in few NumPy calls: the fused path of ``GRU``.

The step functions of :mod:`npseq.cells.gru` are the reference; this module computes the same
equations for a whole sequence, and the BPTT driver runs it for the plain case (with or
without lengths; no zoneout, recurrent dropout, checkpointing or capture).
``tests/test_fused.py`` checks it against the step functions, to float rounding. At a padded
step (lengths) the carry passes through and the output is zero, as in :mod:`npseq.bptt`: the
backward zeroes that step's factors and sets its ``z`` to 1, so that ``dh`` passes through.

Forward, per step. In float32 the rows of the weights and biases that feed ``r`` and ``z``
are scaled by 1/2, so that one ``tanh`` gives both sigmoid gates
(``sigma(a) = tanh(a / 2) / 2 + 1/2``; float64 takes ``expit``: :func:`.fused.tanh_form`);
``b_hr`` and ``b_hz`` join the input projection, ``b_hn`` stays inside ``r * (...)``::

    gh = W_hh h_prev ;  gh_n = gh_n + b_hn
    [r, z] = sigma(gx_rz + gh_rz)
    n = tanh(gx_n + r * gh_n)
    h = n + z * (h_prev - n)                  = (1 - z) * n + z * h_prev

Backward. Every gate gradient of the step backward
(:func:`~npseq.cells.gru.gru_step_backward`) is ``dh`` times a factor that does not depend on
``dh``; the factors are formed for a block of steps at once::

    A_n = (1 - z) * (1 - n^2)
    A_z = (h_prev - n) * z (1 - z)
    A_r = A_n * gh_n * r (1 - r)

so that a step is::

    dgx = dh * [A_r, A_z, A_n]
    dgh = dh * [A_r, A_z, A_n * r]
    dh_prev = dh * z + dgh W_hh
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.cells.base import times_transpose
from npseq.cells.fused import (activate, add_block_grads, gate_scale, previous,
                               visit_blocks, visit_times)


class GRUFusedState(NamedTuple):
    """What :func:`gru_fused_backward` needs from :func:`gru_fused_forward`, by time."""

    x: np.ndarray  # (T, B, D)
    h: np.ndarray  # (T, B, H) the carry after each step (our own copy)
    gates: np.ndarray  # (T, B, 3H) r, z, n
    gh_n: np.ndarray  # (T, B, H) W_hn h_prev + b_hn
    h0: np.ndarray  # (B, H)
    reverse: bool
    mask: Optional[np.ndarray] = None  # (T, B, 1) bool, true at the real steps


def applies(p: dict) -> bool:
    """Whether the fused path takes these parameters: both weight matrices."""
    return "weight_ih" in p and "weight_hh" in p


def gru_fused_forward(x: np.ndarray, carry0: tuple, p: dict, reverse: bool = False,
                      keep: bool = True, mask: Optional[np.ndarray] = None
                      ) -> tuple[np.ndarray, tuple, Optional[GRUFusedState]]:
    """The plain GRU over ``x (T, B, D)`` from ``carry0 = (h0,)``.

    Returns ``out (T, B, H)``, the carry after the last step visited, and the state for
    :func:`gru_fused_backward` (None with ``keep=False``). With ``mask (T, B, 1)``, a padded
    step keeps the carry and outputs zero, as in :mod:`npseq.bptt`.
    """
    T, B, D = x.shape
    (h,) = carry0
    h0, H = h, h.shape[-1]
    dtype = x.dtype
    half = gate_scale(H, 3, (0, 1), dtype)  # float32: 1/2 on r and z, 1 on n
    w_ih = np.asfortranarray(p["weight_ih"] * half[:, None])  # W^T row-major for the products
    w_hh = np.asfortranarray(p["weight_hh"] * half[:, None])
    gates = times_transpose(x.reshape(T * B, D), w_ih).reshape(T, B, 3 * H)  # all steps at once
    b_hn = None
    if "bias_ih" in p:
        gates += p["bias_ih"] * half
    if "bias_hh" in p:
        gates[..., :2 * H] += p["bias_hh"][:2 * H] * half[:2 * H]  # b_hr, b_hz
        b_hn = p["bias_hh"][2 * H:]
    out = np.empty((T, B, H), dtype=dtype)
    gh_ns = np.empty((T, B, H), dtype=dtype) if keep else None
    hs = np.empty((T, B, H), dtype=dtype) if keep and mask is not None else None
    gh = np.empty((B, 3 * H), dtype=dtype)
    tmp = np.empty((B, H), dtype=dtype)
    for t in visit_times(0, T, reverse):
        z = gates[t]
        rz, gx_n = z[:, :2 * H], z[:, 2 * H:]
        np.matmul(h, w_hh.T, out=gh)
        rz += gh[:, :2 * H]
        activate(rz, H, (0, 1), half[:2 * H])  # r, z = sigma(a_r), sigma(a_z)
        gh_n = gh[:, 2 * H:]
        if b_hn is not None:
            gh_n += b_hn
        if gh_ns is not None:
            gh_ns[t] = gh_n
        np.multiply(rz[:, :H], gh_n, out=tmp)  # r * gh_n
        gx_n += tmp
        np.tanh(gx_n, out=gx_n)  # n
        np.subtract(h, gx_n, out=tmp)
        tmp *= rz[:, H:]  # z * (h_prev - n)
        np.add(gx_n, tmp, out=out[t])
        if mask is None:
            h = out[t]
        else:  # a padded step keeps the carry and outputs zero
            h = np.where(mask[t], out[t], h)
            out[t] *= mask[t]
            if hs is not None:
                hs[t] = h
    carry = (h.copy(),)
    if not keep:
        return out, carry, None
    return out, carry, GRUFusedState(x, out.copy() if hs is None else hs, gates,
                                     gh_ns, h0, reverse, mask)  # type: ignore[arg-type]


def gru_fused_backward(dout: np.ndarray, dcarry_last: tuple, state: GRUFusedState, p: dict,
                       trace: bool = False) -> tuple:
    """Backward of :func:`gru_fused_forward`; returns what
    :func:`npseq.bptt.sequence_backward` returns (``dx``, ``dcarry0``, ``grads`` and, with
    ``trace``, the gradient of each step's carry)."""
    x, hs, gates, gh_ns, h0, reverse, mask = state
    T, B, D = x.shape
    H = hs.shape[-1]
    w_hh = np.ascontiguousarray(p["weight_hh"])
    dx = np.empty(x.shape, dtype=dout.dtype)
    dcarries: tuple = (np.empty((T, B, H), dout.dtype),) if trace else ()
    (dh,) = dcarry_last
    grads: dict = {}
    for start, stop in visit_blocks(T, B, reverse):
        g = gates[start:stop]
        r, z, n = (g[..., k * H:(k + 1) * H] for k in range(3))
        h_prev = previous(hs, h0, start, stop, reverse)
        A = np.empty((stop - start, B, 3, H), dtype=dout.dtype)  # the factors of dgx
        np.multiply(1 - z, 1 - n * n, out=A[:, :, 2])  # A_n
        np.multiply(h_prev - n, z * (1 - z), out=A[:, :, 1])  # A_z
        np.multiply(A[:, :, 2] * gh_ns[start:stop], r * (1 - r), out=A[:, :, 0])  # A_r
        A_h = A.copy()  # the factors of dgh: A_n times r
        A_h[:, :, 2] *= r
        Z = np.ascontiguousarray(z)
        if mask is not None:  # a padded step: no gate gradient, dh passes through (z = 1)
            m = mask[start:stop]
            A *= m[..., None]
            A_h *= m[..., None]
            Z[~np.broadcast_to(m, Z.shape)] = 1
        dgx = np.empty((stop - start, B, 3 * H), dtype=dout.dtype)
        dgh = np.empty((stop - start, B, 3 * H), dtype=dout.dtype)
        dgx3, dgh3 = dgx.reshape(stop - start, B, 3, H), dgh.reshape(stop - start, B, 3, H)
        for t in reversed(visit_times(start, stop, reverse)):
            k = t - start
            dh = dh + (dout[t] if mask is None else dout[t] * mask[t])
            if trace:  # zero at a padded step, which produces no carry
                dcarries[0][t] = dh if mask is None else dh * mask[t]
            d = dh[:, None, :]
            np.multiply(A[k], d, out=dgx3[k])
            np.multiply(A_h[k], d, out=dgh3[k])
            dh_prev = dh * Z[k]  # the direct path through z * h_prev
            dh_prev += dgh[k] @ w_hh
            dh = dh_prev
        add_block_grads(grads, x[start:stop], h_prev, dgx, dgh, p)
        np.matmul(dgx.reshape(-1, 3 * H), p["weight_ih"], out=dx[start:stop].reshape(-1, D))
    if trace:
        return dx, (dh,), grads, dcarries
    return dx, (dh,), grads
