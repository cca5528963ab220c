"""The plain GRU over a whole sequence in few NumPy calls: the fused path of ``GRU``.

The step functions of :mod:`npseq.cells.gru` are the reference; this module computes the same
equations for a whole sequence, and the BPTT driver runs it for the plain case (with or
without lengths; no zoneout, recurrent dropout, checkpointing or capture).
``tests/test_fused.py`` checks it against the step functions, to float rounding. At a padded
step (lengths) the carry passes through and the output is zero, as in :mod:`npseq.bptt`: the
backward zeroes that step's factors and sets its ``z`` to 1, so that ``dh`` passes through.

The loop runs feature-major, as :mod:`.lstm_fused`'s does (each gate a block of rows).

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
    dh_prev = dh * z + W_hh^T dgh
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.cells.base import block_steps
from npseq.cells.fused import (activate, add_block_grads, as_rows, gate_scale, input_rows,
                               previous, swap_last_axes, tanh_form, times_sigmoid_slope,
                               times_tanh_slope, transposed, visit_blocks, visit_times)


class GRUFusedState(NamedTuple):
    """What :func:`gru_fused_backward` needs from :func:`gru_fused_forward`, by time. The
    loop's arrays are feature-major (:mod:`.lstm_fused`): a step's gates are rows."""

    x: np.ndarray  # (T, B, D)
    h: np.ndarray  # (T, H, B) the carry after each step (our own copy)
    gates: np.ndarray  # (T, 3H, B) r, z, n
    gh_n: np.ndarray  # (T, H, B) W_hn h_prev + b_hn
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
    (h0,) = carry0
    H = h0.shape[-1]
    dtype = x.dtype
    form = tanh_form(dtype)
    half = gate_scale(H, 3, 2, dtype)[:, None]  # float32: 1/2 on r and z, 1 on n
    w_hh = p["weight_hh"] * half  # (3H, H): gh = W_hh h_prev, feature-major
    gates = input_rows(x, p["weight_ih"] * half)  # (T, 3H, B): all steps at once
    b_hn = None
    if "bias_ih" in p:
        gates += p["bias_ih"][:, None] * half
    if "bias_hh" in p:
        gates[:, :2 * H] += p["bias_hh"][:2 * H, None] * half[:2 * H]  # b_hr, b_hz
        b_hn = p["bias_hh"][2 * H:, None]
    m = None if mask is None else mask.transpose(0, 2, 1)  # (T, 1, B)
    hs = np.empty((T, H, B), dtype=dtype)  # the output, feature-major
    carried = np.empty((T, H, B), dtype=dtype) if keep and mask is not None else hs
    gh_ns = np.empty((T, H, B), dtype=dtype) if keep else None
    gh = np.empty((3 * H, B), dtype=dtype)
    tmp = np.empty((H, B), dtype=dtype)
    h = np.ascontiguousarray(h0.T)
    for t in visit_times(0, T, reverse):
        z = gates[t]
        rz, r, u, gx_n = z[:2 * H], z[:H], z[H:2 * H], z[2 * H:]  # u: the update gate z
        np.matmul(w_hh, h, gh)
        np.add(rz, gh[:2 * H], rz)
        activate(rz, rz, None, form)  # r, z = sigma(a_r), sigma(a_z)
        gh_n = gh[2 * H:] if gh_ns is None else gh_ns[t]
        if b_hn is not None:
            np.add(gh[2 * H:], b_hn, gh_n)
        elif gh_ns is not None:
            np.copyto(gh_n, gh[2 * H:])
        np.multiply(r, gh_n, tmp)
        np.add(gx_n, tmp, gx_n)
        np.tanh(gx_n, gx_n)  # n = tanh(gx_n + r * gh_n)
        np.subtract(h, gx_n, tmp)
        np.multiply(tmp, u, tmp)  # z * (h_prev - n)
        np.add(gx_n, tmp, hs[t])  # h = n + z * (h_prev - n)
        if m is None:
            h = hs[t]
        else:  # a padded step keeps the carry and outputs zero
            h = np.where(m[t], hs[t], h)
            hs[t] *= m[t]
            if keep:
                carried[t] = h
    out = swap_last_axes(hs)  # (T, B, H), a new array
    carry = (h.T.copy(),)
    if not keep:
        return out, carry, None
    return out, carry, GRUFusedState(x, carried, gates, gh_ns, h0,  # type: ignore[arg-type]
                                     reverse, mask)


def gru_fused_backward(dout: np.ndarray, dcarry_last: tuple, state: GRUFusedState, p: dict,
                       trace: bool = False) -> tuple:
    """Backward of :func:`gru_fused_forward`; returns what
    :func:`npseq.bptt.sequence_backward` returns (``dx``, ``dcarry0``, ``grads`` and, with
    ``trace``, the gradient of each step's carry)."""
    x, hs, gates, gh_ns, h0, reverse, mask = state
    T, B, D = x.shape
    H = hs.shape[1]
    dtype = dout.dtype
    w_hh_t = transposed(p["weight_hh"])  # (H, 3H): W_hh^T dgh, feature-major
    dx = np.empty(x.shape, dtype=dtype)
    dcarries: tuple = (np.empty((T, B, H), dtype),) if trace else ()
    dh = np.array(dcarry_last[0].T, dtype=dtype, order="C")  # (H, B), our own
    m_all = None if mask is None else mask.transpose(0, 2, 1)  # (T, 1, B)
    grads: dict = {}
    # each block's arrays, made once and reused (feature-major, (steps, ., B))
    S = min(block_steps(B), T)
    Z_, tmp_, douts_ = (np.empty((S, H, B), dtype=dtype) for _ in range(3))
    A_, A_h_ = (np.empty((S, 3, H, B), dtype=dtype) for _ in range(2))  # factors of dgx, dgh
    dgx_, dgh_ = (np.empty((S, 3 * H, B), dtype=dtype) for _ in range(2))
    dh_z = np.empty((H, B), dtype=dtype)
    rows_bufs = [np.empty(S * G * B, dtype) for G in (3 * H, 3 * H, H)]  # dgx, dgh, h_prev
    for start, stop in visit_blocks(T, B, reverse):
        n = stop - start
        g = gates[start:stop]
        r, u, n_ = (g[:, k * H:(k + 1) * H] for k in range(3))  # u: the update gate z
        h_prev = previous(hs, h0.T, start, stop, reverse)
        Z, tmp, douts, A, A_h = Z_[:n], tmp_[:n], douts_[:n], A_[:n], A_h_[:n]
        dgx, dgh = dgx_[:n], dgh_[:n]
        np.subtract(1, u, tmp)
        times_tanh_slope(tmp, n_, A[:, 2])  # A_n = (1 - z) (1 - n^2)
        np.subtract(h_prev, n_, tmp)
        times_sigmoid_slope(tmp, u, A[:, 1])  # A_z = (h_prev - n) z (1 - z)
        np.multiply(A[:, 2], gh_ns[start:stop], tmp)
        times_sigmoid_slope(tmp, r, A[:, 0])  # A_r = A_n gh_n r (1 - r)
        np.copyto(A_h, A)  # the factors of dgh: A_n times r
        A_h[:, 2] *= r
        np.copyto(Z, u)
        np.copyto(douts, dout[start:stop].transpose(0, 2, 1))
        if m_all is not None:  # a padded step: no gate gradient, dh passes through (z = 1)
            m = m_all[start:stop]
            douts *= m
            A *= m[:, None]
            A_h *= m[:, None]
            np.copyto(Z, 1, where=~m)
        dgx3, dgh3 = dgx.reshape(n, 3, H, B), dgh.reshape(n, 3, H, B)
        for t in reversed(visit_times(start, stop, reverse)):
            k = t - start
            np.add(dh, douts[k], dh)
            if trace:  # zero at a padded step, which produces no carry
                dcarries[0][t] = dh.T if mask is None else dh.T * mask[t]
            np.multiply(A[k], dh, dgx3[k])
            np.multiply(A_h[k], dh, dgh3[k])
            np.multiply(dh, Z[k], dh_z)  # the direct path through z * h_prev
            np.matmul(w_hh_t, dgh[k], dh)
            np.add(dh, dh_z, dh)  # dh_prev = dh z + W_hh^T dgh
        dgx_rows = as_rows(dgx, rows_bufs[0])  # (steps B, 3H) for the block's products
        add_block_grads(grads, x[start:stop], as_rows(h_prev, rows_bufs[2]), dgx_rows,
                        as_rows(dgh, rows_bufs[1]), p)
        np.matmul(dgx_rows, p["weight_ih"], out=dx[start:stop].reshape(-1, D))
    if trace:
        return dx, (dh.T.copy(),), grads, dcarries
    return dx, (dh.T.copy(),), grads
