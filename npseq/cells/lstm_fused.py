"""The plain LSTM over a whole sequence in few NumPy calls: the fused path of ``LSTM``.

The step functions of :mod:`npseq.cells.lstm` are the reference; this module computes the
same equations for a whole sequence, with fewer NumPy calls a step, and the BPTT driver runs
it for the plain case (with or without lengths; no zoneout, recurrent dropout, projection,
checkpointing or capture; :func:`npseq.bptt.sequence_forward` says when).
``tests/test_fused.py`` checks it against the step functions, to float rounding. At a padded
step (lengths) the carry passes through and the output is zero, as in :mod:`npseq.bptt`: the
backward zeroes that step's factors, sets its ``f`` to 1 and passes ``dh`` on.

Layout. The loop runs *feature-major*: a step's gates are the rows of a ``(4H, B)`` array
and its batch the columns, ``a = W x^T + W_hh h_prev^T + b``. Each gate is then one
contiguous block of rows, which NumPy's elementwise calls run three to four times faster
than the strided column blocks of a ``(B, 4H)`` array, and the product ``W_hh h^T`` runs
10-30% faster than ``h W_hh^T`` for B >= 32 (``docs/speed.md``). The output and the weight
gradients are formed batch-major, as the rest of npseq reads them.

Forward, per step. The path orders its gates sigmoid first, ``[i, f, o, g]`` (the rows of
PyTorch's ``[i, f, g, o]`` weights permuted once a call), so that the three sigmoid gates
are one block of rows. In float32 their rows of ``W_ih``, ``W_hh`` and the biases are
scaled by 1/2 (exact in binary floating point), so that one ``tanh`` over the whole
pre-activation gives all four gates (in float64 the sigmoid gates take SciPy's ``expit``,
as the step does: :func:`.fused.tanh_form`)::

    z = tanh([a_i / 2, a_f / 2, a_o / 2, a_g])
    i, f, o = z_ifo / 2 + 1/2              sigma(a) = tanh(a / 2) / 2 + 1/2
    g = z_g                                 phi = tanh
    c = f * c_prev + i * g ;  h = o * tanh(c)

Backward. The factors of the step backward that do not depend on the incoming gradient are
formed for a block of steps at once, before the block's time loop::

    K  = o * (1 - tanh(c)^2)
    P  = [g * i (1 - i),  c_prev * f (1 - f),  i * (1 - g^2)]          (3, H) per row
    Q  = tanh(c) * o (1 - o)

so that a step is the step backward of :func:`~npseq.cells.lstm.lstm_step_backward`
regrouped, its gate gradients ``da`` in PyTorch's order::

    dc = dc + dh * K
    da = [dc * P_i, dc * P_f, dc * P_g, dh * Q]
    dc_prev = dc * f ;  dh_prev = W_hh^T da

and the weight gradients and ``dx`` are one product each per block, as in the driver. The
block's arrays are made once a call and reused.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.cells.base import block_steps
from npseq.cells.fused import (activate, add_block_grads, as_rows, gate_scale, input_rows,
                               previous, swap_last_axes, tanh_form, times_sigmoid_slope,
                               times_tanh_slope, transposed, visit_blocks, visit_times)

ORDER = (0, 1, 3, 2)  # the fused path's gates i, f, o, g, as PyTorch's gates i, f, g, o


class LSTMFusedState(NamedTuple):
    """What :func:`lstm_fused_backward` needs from :func:`lstm_fused_forward`, by time.
    The loop's arrays are feature-major: a step's gates are rows, its batch columns."""

    x: np.ndarray  # (T, B, D)
    h: np.ndarray  # (T, H, B) the carry h after each step (our own copy)
    c: np.ndarray  # (T, H, B) the carry c after each step
    phi_c: np.ndarray  # (T, H, B) tanh of the step's new c
    gates: np.ndarray  # (T, 4H, B) i, f, o, g (ORDER)
    carry0: tuple  # (h0, c0)
    reverse: bool
    mask: Optional[np.ndarray] = None  # (T, B, 1) bool, true at the real steps


def applies(p: dict) -> bool:
    """Whether the fused path takes these parameters: both weight matrices, no projection."""
    return "weight_ih" in p and "weight_hh" in p and "weight_hr" not in p


def gate_rows(H: int) -> np.ndarray:
    """``(4H,)``: the rows of PyTorch's ``[i, f, g, o]`` weights in the path's order."""
    return np.concatenate([np.arange(k * H, (k + 1) * H) for k in ORDER])


def lstm_fused_forward(x: np.ndarray, carry0: tuple, p: dict, reverse: bool = False,
                       keep: bool = True, mask: Optional[np.ndarray] = None
                       ) -> tuple[np.ndarray, tuple, Optional[LSTMFusedState]]:
    """The plain LSTM over ``x (T, B, D)`` from ``carry0 = (h0, c0)``.

    Returns ``out (T, B, H)``, the carry after the last step visited, and the state for
    :func:`lstm_fused_backward` (None with ``keep=False``: then nothing outlives its step).
    With ``mask (T, B, 1)``, a padded step keeps the carry and outputs zero, as in
    :mod:`npseq.bptt`.
    """
    T, B, D = x.shape
    h0, c0 = carry0
    H = c0.shape[-1]
    dtype = x.dtype
    form = tanh_form(dtype)
    rows = gate_rows(H)
    half = gate_scale(H, 4, 3, dtype)[:, None]  # float32: 1/2 on i, f, o; 1 on g
    w_hh = p["weight_hh"][rows] * half  # (4H, H): a = W_hh h_prev, feature-major
    gates = input_rows(x, p["weight_ih"][rows] * half)  # (T, 4H, B): all steps at once
    biases = [p[name] for name in ("bias_ih", "bias_hh") if name in p]
    if biases:
        gates += sum(biases)[rows, None] * half  # b_ih + b_hh, added once
    m = None if mask is None else mask.transpose(0, 2, 1)  # (T, 1, B)
    hs = np.empty((T, H, B), dtype=dtype)  # the output, feature-major
    carried = np.empty((T, H, B), dtype=dtype) if keep and mask is not None else hs
    if keep:
        cs, phis = np.empty((T, H, B), dtype=dtype), np.empty((T, H, B), dtype=dtype)
    phi = np.empty((H, B), dtype=dtype)
    c_buf = np.empty((2, H, B), dtype=dtype)  # alternating: the new c, the previous one
    rec = np.empty((4 * H, B), dtype=dtype)
    ig = np.empty((H, B), dtype=dtype)
    h, c = np.ascontiguousarray(h0.T), np.ascontiguousarray(c0.T)
    for t in visit_times(0, T, reverse):
        z = gates[t]
        i, f, o, g = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
        np.matmul(w_hh, h, rec)
        np.add(z, rec, z)  # a = W_ih x + W_hh h_prev + b
        activate(z, z[:3 * H], g, form)  # i, f, o = sigma(a); g = tanh(a)
        c_new = cs[t] if keep and mask is None else c_buf[t % 2]
        np.multiply(f, c, c_new)  # f * c_prev
        np.multiply(i, g, ig)
        np.add(c_new, ig, c_new)  # c = f * c_prev + i * g
        phi_c = phis[t] if keep else phi
        np.tanh(c_new, phi_c)
        np.multiply(o, phi_c, hs[t])  # h = o * tanh(c)
        if m is None:
            h, c = hs[t], c_new
        else:  # a padded step keeps the carry and outputs zero
            h, c = np.where(m[t], hs[t], h), np.where(m[t], c_new, c)
            hs[t] *= m[t]
            if keep:
                carried[t], cs[t] = h, c
    out = swap_last_axes(hs)  # (T, B, H), a new array
    carry = (h.T.copy(), c.T.copy())
    if not keep:
        return out, carry, None
    return out, carry, LSTMFusedState(x, carried, cs, phis, gates, carry0, reverse, mask)


def lstm_fused_backward(dout: np.ndarray, dcarry_last: tuple, state: LSTMFusedState, p: dict,
                        trace: bool = False) -> tuple:
    """Backward of :func:`lstm_fused_forward`; returns what
    :func:`npseq.bptt.sequence_backward` returns (``dx``, ``dcarry0``, ``grads`` and, with
    ``trace``, the gradient of each step's carry)."""
    x, hs, cs, phis, gates, (h0, c0), reverse, mask = state
    T, B, D = x.shape
    H = cs.shape[1]
    dtype = dout.dtype
    w_hh_t = transposed(p["weight_hh"])  # (H, 4H): dh_prev = W_hh^T da, feature-major
    dx = np.empty(x.shape, dtype=dtype)
    dcarries: tuple = ((np.empty((T, B, H), dtype), np.empty((T, B, H), dtype))
                       if trace else ())
    dh, dc = (np.array(d.T, dtype=dtype, order="C") for d in dcarry_last)  # (H, B), our own
    m_all = None if mask is None else mask.transpose(0, 2, 1)  # (T, 1, B)
    grads: dict = {}
    # each block's arrays, made once and reused (feature-major, (steps, ., B))
    S = min(block_steps(B), T)
    K_, Q_, F_, douts_ = (np.empty((S, H, B), dtype=dtype) for _ in range(4))
    P_ = np.empty((S, 3, H, B), dtype=dtype)
    da_ = np.empty((S, 4 * H, B), dtype=dtype)  # each step's da, PyTorch's order i, f, g, o
    rows_buf, h_rows_buf = np.empty(S * 4 * H * B, dtype), np.empty(S * H * B, dtype)
    dhk = np.empty((H, B), dtype=dtype)
    dh_pad = np.empty((H, B), dtype=dtype)
    for start, stop in visit_blocks(T, B, reverse):
        n = stop - start
        z = gates[start:stop]
        i, f, o, g = (z[:, k * H:(k + 1) * H] for k in range(4))
        phi = phis[start:stop]
        K, Q, F, douts, P, da = K_[:n], Q_[:n], F_[:n], douts_[:n], P_[:n], da_[:n]
        times_tanh_slope(o, phi, K)  # K = o (1 - tanh(c)^2)
        times_sigmoid_slope(g, i, P[:, 0])  # P_i = g i (1 - i)
        c_prev = previous(cs, c0.T, start, stop, reverse)
        times_sigmoid_slope(c_prev, f, P[:, 1])  # P_f = c_prev f (1 - f)
        times_tanh_slope(i, g, P[:, 2])  # P_g = i (1 - g^2)
        times_sigmoid_slope(phi, o, Q)  # Q = tanh(c) o (1 - o)
        np.copyto(F, f)
        np.copyto(douts, dout[start:stop].transpose(0, 2, 1))
        if m_all is not None:  # a padded step: no gate gradient, dh and dc pass through
            m = m_all[start:stop]
            pad = ~m  # (steps, 1, B)
            douts *= m
            K *= m
            P *= m[:, None]
            Q *= m
            np.copyto(F, 1, where=pad)
        da_ifg = da[:, :3 * H].reshape(n, 3, H, B)
        for t in reversed(visit_times(start, stop, reverse)):
            k = t - start
            np.add(dh, douts[k], dh)
            if trace:  # zero at a padded step, which produces no carry
                dcarries[0][t], dcarries[1][t] = ((dh.T, dc.T) if mask is None else
                                                  (dh.T * mask[t], dc.T * mask[t]))
            np.multiply(dh, K[k], dhk)
            np.add(dc, dhk, dc)  # c reaches h through tanh(c)
            np.multiply(P[k], dc, da_ifg[k])  # da_i, da_f, da_g
            np.multiply(dh, Q[k], da[k, 3 * H:])  # da_o
            np.multiply(dc, F[k], dc)  # dc_prev = dc * f
            if mask is None:
                np.matmul(w_hh_t, da[k], dh)  # dh_prev = W_hh^T da
            else:  # a padded step passes dh on
                np.multiply(dh, pad[k], dh_pad)
                np.matmul(w_hh_t, da[k], dh)
                np.add(dh, dh_pad, dh)
        da_rows = as_rows(da, rows_buf)  # (steps B, 4H) for the block's products
        h_rows = as_rows(previous(hs, h0.T, start, stop, reverse), h_rows_buf)
        add_block_grads(grads, x[start:stop], h_rows, da_rows, da_rows, p)
        np.matmul(da_rows, p["weight_ih"], out=dx[start:stop].reshape(-1, D))
    if trace:
        return dx, (dh.T.copy(), dc.T.copy()), grads, dcarries
    return dx, (dh.T.copy(), dc.T.copy()), grads
