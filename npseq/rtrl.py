"""Real-time recurrent learning (RTRL): the exact gradient, computed forward in time.

BPTT runs forward, keeps every step's cache, and then sends the gradient backward through
time. RTRL needs no backward pass. Alongside the carry, it carries the *sensitivity* of the
carry to every parameter, ``S_t = d carry_t / d theta``, of shape ``(B, S, P)``. Here S is
the size of the carry (H, or 2H for the LSTM's ``(h, c)``) and P is the number of
parameters. Every step updates it and collects the gradient of the loss at that step::

    carry_t = F(carry_{t-1}, theta; x_t)
    A_t = dF/dcarry_{t-1}        (B, S, S)    rows: step_backward on the basis vectors e_k
    I_t = dF/dtheta (immediate)  (B, S, P)    rows: the weight gradients of those rows
    S_t = A_t S_{t-1} + I_t
    dL/dtheta += delta_t S_t     delta_t = (dout_t, 0): the loss's direct gradient at step t

and, after the last step, ``dL/dtheta += dcarry_T S_T`` for the final state's gradient. The
same recursion with ``I_t = 0`` and ``S_0 = identity`` gives the gradient of the initial
state.

The step Jacobians come from the cells' own step functions, so no equation is written
twice. The batch is copied S times, ``step_forward`` runs on the copies, and
``step_backward`` is applied to the basis vectors ``e_k`` of the carry. Row k of the
returned ``dcarry_prev`` is row k of ``A_t``, and the returned ``dgx``, ``dgh`` are the
gradients of row k with respect to the two projections. The parameters enter only through
those projections, so row k of ``I_t`` is the outer product of ``dgx``/``dgh`` with
``x_t``/``h_prev``. This is the per-row form of
:func:`npseq.cells.base.param_grads`.

Cost per step: the product ``A_t S_{t-1}`` takes ``O(B S^2 P)`` time, that is
``O(B H^4)``, against BPTT's ``O(B H^2)``. The sensitivities take ``O(B S P) = O(B H^3)``
memory, which does not grow with T, against BPTT's ``O(T B H)`` caches. See
``docs/gradients.md`` (section 7) and ``benchmarks/rtrl_vs_bptt.py``.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from npseq._typing import ArrayLike, StateLike
from npseq._validation import as_array, check_shape
from npseq.cells.base import input_projection
from npseq.layers import RNNBase
from npseq.layout import from_time_major, sequence_input, to_time_major

__all__ = ["rtrl_gradients", "RTRLResult"]


class RTRLResult(NamedTuple):
    """What :func:`rtrl_gradients` returns."""

    grads: dict  # keyed like module.params / module.grads (e.g. "weight_ih_l0")
    out: np.ndarray  # as module(x, state)[0]
    state: object  # h_n, or (h_n, c_n) for the LSTM, as module(x, state)[1]
    dstate0: object  # gradient of the initial state, as module.backward(...)[1]


def _check_module(module):
    if not isinstance(module, RNNBase):
        raise TypeError(f"module: expected an npseq.RNN, npseq.LSTM or npseq.GRU layer, got "
                        f"{type(module).__name__}")
    if module.num_layers != 1 or module.bidirectional:
        raise ValueError(f"module: RTRL here covers a single unidirectional layer; expected "
                         f"num_layers=1 and bidirectional=False, got "
                         f"num_layers={module.num_layers}, "
                         f"bidirectional={module.bidirectional}")
    if (module.proj_size or module.kind.extra_params or not module.kind.has_weight_ih
            or not module.kind.has_weight_hh):
        raise ValueError(f"module: RTRL here covers weight_ih, weight_hh and the biases only; "
                         f"expected a cell with both and no projection (proj_size=0) and no "
                         f"extra cell parameters, got {module!r}")
    return module


def _immediate(dgx, dgh, x_t, h_prev, names):
    """``I_t``: d carry_t[k] / d theta with the previous carry held fixed, (B, S, P).

    ``dgx``, ``dgh`` are (B, S, G*H): the gradients of carry component k with respect to the
    projections ``gx = x W_ih^T + b_ih`` and ``gh = h_prev W_hh^T + b_hh``.
    """
    B, S = dgx.shape[:2]
    blocks = {"weight_ih": lambda: np.einsum("bkg,bd->bkgd", dgx, x_t),  # dgx_k^T x
              "weight_hh": lambda: np.einsum("bkg,bh->bkgh", dgh, h_prev),  # dgh_k^T h_prev
              "bias_ih": lambda: dgx,
              "bias_hh": lambda: dgh}
    return np.concatenate([blocks[name]().reshape(B, S, -1) for name in names], axis=-1)


def rtrl_gradients(module: RNNBase, x: ArrayLike, dout: ArrayLike, dstate: StateLike = None,
                   state: StateLike = None) -> RTRLResult:
    """Gradients of ``L = <out, dout> + <state_n, dstate>`` by real-time recurrent learning.

    The result equals the BPTT gradients that ``module(x, state)`` followed by
    ``module.backward(dout, dstate)`` would add into ``module.grads``, up to rounding. The
    computation runs forward in time only and keeps no per-step caches.

    Parameters
    ----------
    module : npseq.RNN, npseq.LSTM or npseq.GRU
        One layer (``num_layers=1``), one direction, no projection. Neither its parameters
        nor its ``grads`` are changed.
    x : array_like, the layer's input: (T, B, input_size), (B, T, input_size) with
        ``batch_first``, or unbatched (T, input_size)
    dout : array_like, shaped like ``out``
        Gradient of the loss with respect to the output at every step.
    dstate : optional, shaped like the final state (None for zeros; for the LSTM either half
        may be None)
    state : initial state, optional (None for zeros)

    Returns
    -------
    RTRLResult
        ``(grads, out, state, dstate0)``: ``grads`` is keyed like ``module.grads``; ``out``
        and ``state`` are the forward's outputs; ``dstate0`` is the gradient of the initial
        state.

    Raises
    ------
    TypeError, ValueError
        A module that is not a single unidirectional layer without projection, or an
        argument that does not fit it (the message names it).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> from npseq.rtrl import rtrl_gradients
    >>> m = npseq.GRU(2, 3, seed=0)
    >>> x = np.random.default_rng(0).standard_normal((5, 2, 2))
    >>> dout = np.random.default_rng(1).standard_normal((5, 2, 3))
    >>> grads, out, h_n, dh0 = rtrl_gradients(m, x, dout)
    >>> _ = m(x); _ = m.backward(dout)
    >>> all(np.allclose(grads[k], m.grads[k], rtol=1e-10) for k in m.grads)
    True
    """
    m = _check_module(module)
    xb, unbatched = sequence_input(x, m.dtype, m.input_size, m.batch_first)  # (T, B, D)
    T, B = xb.shape[:2]
    carry = tuple(c[0] for c in m.state_to_carries(state, B, unbatched))  # (B, .) each
    H_out = m.output_size
    out_shape = from_time_major(np.empty((T, B, 0)), m.batch_first, unbatched).shape[:-1]
    dout = check_shape("dout", as_array("dout", dout, m.dtype), out_shape + (H_out,),
                       "(the shape of out)")
    dout = to_time_major(dout, m.batch_first, unbatched)
    dlast = np.concatenate([d[0] for d in m.state_to_carries(dstate, B, unbatched,
                                                             argname="dstate")],
                           axis=-1)  # (B, S)

    p = m.layer_params(0, 0)
    names = list(p)
    sizes = [c.shape[-1] for c in carry]
    S = sum(sizes)
    P = sum(v.size for v in p.values())
    # the basis vectors e_k of the carry, one per copy of each sequence: row b*S + k is e_k
    basis = np.tile(np.eye(S, dtype=m.dtype), (B, 1))  # (B*S, S)
    dbasis = tuple(np.split(basis, np.cumsum(sizes)[:-1], axis=1))

    sens = np.zeros((B, S, P), m.dtype)  # d carry_t / d theta
    sens0 = np.tile(np.eye(S, dtype=m.dtype), (B, 1, 1))  # d carry_t / d carry_0
    grad = np.zeros(P, m.dtype)
    dcarry0 = np.zeros((B, S), m.dtype)
    delta = np.zeros((B, S), m.dtype)  # the loss's direct gradient of carry_t
    out = np.empty((T, B, H_out), m.dtype)
    gx = input_projection(xb, p)  # (T, B, G*H)
    for t in range(T):
        copies = tuple(np.repeat(c, S, axis=0) for c in carry)  # (B*S, .)
        new, cache = m.kind.step_forward(np.repeat(gx[t], S, axis=0), copies, p)
        g = m.kind.step_backward(dbasis, cache, p)  # row b*S + k: d carry_t[b, k]
        if g.dparams:
            raise ValueError(f"module: RTRL here needs a cell whose parameters enter only "
                             f"through gx and gh; this one's step also returns gradients of "
                             f"{sorted(g.dparams)} (e.g. GRU(reset_after=False)), got "
                             f"{m!r}")
        A = np.concatenate(g.dcarry_prev, axis=1).reshape(B, S, S)  # d carry_t / d carry_{t-1}
        I = _immediate(g.dgx.reshape(B, S, -1), g.dgh.reshape(B, S, -1), xb[t], carry[0],
                       names)
        sens = A @ sens + I  # (B, S, P)
        sens0 = A @ sens0  # (B, S, S)
        carry = tuple(c[::S] for c in new)  # every copy holds the same carry
        out[t] = carry[0]
        delta[:, :H_out] = dout[t]
        grad += np.einsum("bk,bkp->p", delta, sens)
        dcarry0 += np.einsum("bk,bkj->bj", delta, sens0)
    grad += np.einsum("bk,bkp->p", dlast, sens)
    dcarry0 += np.einsum("bk,bkj->bj", dlast, sens0)

    grads, start = {}, 0
    for name in names:
        grads[name + m.param_suffix(0, 0)] = grad[start:start + p[name].size].reshape(
            p[name].shape)
        start += p[name].size
    out = from_time_major(out, m.batch_first, unbatched)
    split = np.split(dcarry0, np.cumsum(sizes)[:-1], axis=1)
    return RTRLResult(grads, out, m.carries_to_state(tuple(c[None] for c in carry), unbatched),
                      m.carries_to_state(tuple(d[None] for d in split), unbatched))
