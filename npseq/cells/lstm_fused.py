"""The plain LSTM over a whole sequence in few NumPy calls: the fused path of ``LSTM``.

The step functions of :mod:`npseq.cells.lstm` are the reference; this module computes the
same equations for a whole sequence, with fewer NumPy calls a step, and the BPTT driver runs
it for the plain case (with or without lengths; no zoneout, recurrent dropout, projection,
checkpointing or capture; :func:`npseq.bptt.sequence_forward` says when).
``tests/test_fused.py`` checks it against the step functions, to float rounding. At a padded
step (lengths) the carry passes through and the output is zero, as in :mod:`npseq.bptt`: the
backward zeroes that step's factors, sets its ``f`` to 1 and passes ``dh`` on.

Forward, per step (``docs/speed.md``). In float32 the rows of ``W_ih``, ``W_hh`` and the
biases that feed the three sigmoid gates are scaled by 1/2 (exact in binary floating point),
so that one ``tanh`` over the whole pre-activation row gives all four gates (in float64 the
sigmoid gates take SciPy's ``expit``, as the step does: :func:`.fused.tanh_form`)::

    z = tanh([a_i / 2, a_f / 2, a_g, a_o / 2])
    i, f, o = z_i / 2 + 1/2, ...           sigma(a) = tanh(a / 2) / 2 + 1/2
    g = z_g                                 phi = tanh
    c = f * c_prev + i * g ;  h = o * tanh(c)

Backward. The factors of the step backward that do not depend on the incoming gradient are
formed for a block of steps at once, before the block's time loop::

    K  = o * (1 - tanh(c)^2)
    P  = [g * i (1 - i),  c_prev * f (1 - f),  i * (1 - g^2)]          (3, H) per row
    Q  = tanh(c) * o (1 - o)

so that a step is the step backward of :func:`~npseq.cells.lstm.lstm_step_backward`
regrouped::

    dc = dc + dh * K
    da = [dc * P_i, dc * P_f, dc * P_g, dh * Q]
    dc_prev = dc * f ;  dh_prev = da W_hh

and the weight gradients and ``dx`` are one product each per block, as in the driver.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from npseq.cells.base import times_transpose
from npseq.cells.fused import (activate, add_block_grads, gate_scale, previous,
                               visit_blocks, visit_times)


class LSTMFusedState(NamedTuple):
    """What :func:`lstm_fused_backward` needs from :func:`lstm_fused_forward`, by time."""

    x: np.ndarray  # (T, B, D)
    h: np.ndarray  # (T, B, H) the carry h after each step (our own copy)
    c: np.ndarray  # (T, B, H) the carry c after each step
    phi_c: np.ndarray  # (T, B, H) tanh of the step's new c
    gates: np.ndarray  # (T, B, 4H) i, f, g, o
    carry0: tuple  # (h0, c0)
    reverse: bool
    mask: Optional[np.ndarray] = None  # (T, B, 1) bool, true at the real steps


def applies(p: dict) -> bool:
    """Whether the fused path takes these parameters: both weight matrices, no projection."""
    return "weight_ih" in p and "weight_hh" in p and "weight_hr" not in p


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
    h, c = carry0
    H = c.shape[-1]
    dtype = x.dtype
    half = gate_scale(H, 4, (0, 1, 3), dtype)  # float32: 1/2 on i, f, o; 1 on g
    w_ih = np.asfortranarray(p["weight_ih"] * half[:, None])  # W^T row-major for the products
    w_hh = np.asfortranarray(p["weight_hh"] * half[:, None])
    gates = times_transpose(x.reshape(T * B, D), w_ih).reshape(T, B, 4 * H)  # all steps at once
    biases = [p[name] for name in ("bias_ih", "bias_hh") if name in p]
    if biases:
        gates += sum(biases) * half  # b_ih + b_hh, added once
    out = np.empty((T, B, H), dtype=dtype)
    hs = np.empty((T, B, H), dtype=dtype) if keep and mask is not None else None
    if keep:
        cs, phis = np.empty((T, B, H), dtype=dtype), np.empty((T, B, H), dtype=dtype)
    phi = np.empty((B, H), dtype=dtype)
    c_buf = np.empty((2, B, H), dtype=dtype)  # alternating: the new c, the previous one
    rec = np.empty((B, 4 * H), dtype=dtype)
    ig = np.empty((B, H), dtype=dtype)
    for n, t in enumerate(visit_times(0, T, reverse)):
        z = gates[t]
        np.matmul(h, w_hh.T, out=rec)
        z += rec
        activate(z, H, (0, 1, 3), half)  # i, f, o = sigma(a); g = tanh(a)
        c_new = cs[t] if keep and mask is None else c_buf[n % 2]
        np.multiply(z[:, H:2 * H], c, out=c_new)  # f * c_prev
        np.multiply(z[:, :H], z[:, 2 * H:3 * H], out=ig)  # i * g
        c_new += ig
        phi_c = phis[t] if keep else phi
        np.tanh(c_new, out=phi_c)
        np.multiply(z[:, 3 * H:], phi_c, out=out[t])  # o * tanh(c)
        if mask is None:
            h, c = out[t], c_new
        else:  # a padded step keeps the carry and outputs zero
            h, c = np.where(mask[t], out[t], h), np.where(mask[t], c_new, c)
            out[t] *= mask[t]
            if hs is not None:
                hs[t], cs[t] = h, c
    carry = (h.copy(), c.copy())
    if not keep:
        return out, carry, None
    kept_h = out.copy() if hs is None else hs  # the carried h: the output, unless masked
    return out, carry, LSTMFusedState(x, kept_h, cs, phis, gates, carry0, reverse, mask)


def lstm_fused_backward(dout: np.ndarray, dcarry_last: tuple, state: LSTMFusedState, p: dict,
                        trace: bool = False) -> tuple:
    """Backward of :func:`lstm_fused_forward`; returns what
    :func:`npseq.bptt.sequence_backward` returns (``dx``, ``dcarry0``, ``grads`` and, with
    ``trace``, the gradient of each step's carry)."""
    x, hs, cs, phis, gates, (h0, c0), reverse, mask = state
    T, B, D = x.shape
    H = cs.shape[-1]
    w_hh = np.ascontiguousarray(p["weight_hh"])
    dx = np.empty(x.shape, dtype=dout.dtype)
    dcarries: tuple = ((np.empty((T, B, H), dout.dtype), np.empty((T, B, H), dout.dtype))
                       if trace else ())
    dh, dc = dcarry_last
    grads: dict = {}
    dhk = np.empty((B, H), dtype=dout.dtype)
    for start, stop in visit_blocks(T, B, reverse):
        z = gates[start:stop]
        i, f, g, o = (z[..., k * H:(k + 1) * H] for k in range(4))
        phi = phis[start:stop]
        K = o * (1 - phi * phi)
        P = np.empty((stop - start, B, 3, H), dtype=dout.dtype)
        np.multiply(g, i * (1 - i), out=P[:, :, 0])
        np.multiply(previous(cs, c0, start, stop, reverse), f * (1 - f), out=P[:, :, 1])
        np.multiply(i, 1 - g * g, out=P[:, :, 2])
        Q = phi * (o * (1 - o))
        F = np.ascontiguousarray(f)
        if mask is not None:  # a padded step: no gate gradient, dh and dc pass through
            m = mask[start:stop]
            K *= m
            P *= m[..., None]
            Q *= m
            F[~np.broadcast_to(m, F.shape)] = 1
            pad = ~m  # (steps, B, 1)
        da = np.empty((stop - start, B, 4 * H), dtype=dout.dtype)
        da4 = da.reshape(stop - start, B, 4, H)
        for t in reversed(visit_times(start, stop, reverse)):
            k = t - start
            dh = dh + (dout[t] if mask is None else dout[t] * mask[t])
            if trace:  # zero at a padded step, which produces no carry
                dcarries[0][t], dcarries[1][t] = ((dh, dc) if mask is None else
                                                  (dh * mask[t], dc * mask[t]))
            np.multiply(dh, K[k], out=dhk)
            dc = dc + dhk  # c reaches h through tanh(c)
            np.multiply(P[k], dc[:, None, :], out=da4[k, :, :3])  # da_i, da_f, da_g
            np.multiply(dh, Q[k], out=da4[k, :, 3])  # da_o
            dc = dc * F[k]
            if mask is None:
                dh = da[k] @ w_hh
            else:
                dh = da[k] @ w_hh + dh * pad[k]
        add_block_grads(grads, x[start:stop], previous(hs, h0, start, stop, reverse), da, da, p)
        np.matmul(da.reshape(-1, 4 * H), p["weight_ih"], out=dx[start:stop].reshape(-1, D))
    if trace:
        return dx, (dh, dc), grads, dcarries
    return dx, (dh, dc), grads
