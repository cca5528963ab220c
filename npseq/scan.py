"""The first-order linear scan ``h_t = a_t * h_{t-1} + b_t`` over a whole sequence at once.

minGRU and minLSTM (:mod:`npseq.cells.minrnn`) have gates that read only ``x_t``, so their
recurrence is this scan, element-wise in ``h``. :func:`linear_scan` computes it without a
loop of T steps; its backward (:func:`linear_scan_backward`) is the same scan run in reverse
time. Derivation in ``docs/modern.md``.

The scan is *blocked* (a two-level scan): time is cut into ``n`` blocks of ``K`` steps
(``K`` about ``sqrt(T)``, the last block padded with ``a = 1, b = 0``, which carry ``h``
through unchanged)::

    1. within every block at once, from a zero start:     (K steps, each over all n blocks)
         l_k = a_k * l_{k-1} + b_k        P_k = a_k * P_{k-1}        (P: product of a)
    2. the carry across blocks:                           (n steps of (B, H) arrays)
         s_{c+1} = P_{c, K-1} * s_c + l_{c, K-1},   s_0 = h0
    3. every step:   h_{c, k} = l_{c, k} + P_{c, k} * s_c

so a Python loop of ``K + n`` (about ``2 sqrt(T)``) steps, each over an array of ``n`` or
``K`` times the batch, instead of ``T`` steps over the batch. There is no division and no
logarithm: exact for any signs of ``a`` and ``b`` (zeros included), and finite whenever the
sequential loop is.

The layer-level functions (:func:`scan_sequence_forward`, :func:`scan_stack_forward` and
their backwards) are the parallel path of :class:`npseq.MinGRU` and :class:`npseq.MinLSTM`.
They run over the sequence in chunks of :func:`chunk_steps` steps (about 1024 rows), each
chunk's gates and scan at once, so that the arrays of a chunk stay in the CPU's cache; the
carry, and in the backward its gradient, pass from chunk to chunk.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional

import numpy as np

from npseq.cells.base import add_grads, input_backward, input_projection, param_grads
from npseq.stack import StackRecord, dropout_mask

__all__ = ["block_size", "chunk_steps", "linear_scan", "linear_scan_backward", "ScanRecord",
           "scan_sequence_forward", "scan_sequence_backward", "scan_stack_forward",
           "scan_stack_backward"]


def block_size(T: int) -> int:
    """Steps per block for a sequence of ``T``: ``ceil(sqrt(T))``, the fewest loop steps."""
    return max(1, math.isqrt(T - 1) + 1) if T > 1 else 1


def linear_scan(a: np.ndarray, b: np.ndarray, h0: np.ndarray,
                block: Optional[int] = None) -> np.ndarray:
    """``h_t = a_t * h_{t-1} + b_t`` for t = 0..T-1, from ``h_{-1} = h0``.

    Parameters
    ----------
    a, b : ndarray, shape (T, ...)
    h0 : ndarray, shape (...)
    block : int, optional
        Steps per block (default :func:`block_size`); 1 and T give the plain loop.

    Returns
    -------
    h : ndarray, shape (T, ...), a new array
    """
    T, rest = a.shape[0], a.shape[1:]
    K = block_size(T) if block is None else int(block)
    n = -(-T // K)
    pad = n * K - T
    if pad:  # a = 1, b = 0: the padded steps carry h through
        a = np.concatenate([a, np.ones((pad,) + rest, a.dtype)])
        b = np.concatenate([b, np.zeros((pad,) + rest, b.dtype)])
    A = a.reshape((n, K) + rest)  # (n, K, ...)
    Bv = b.reshape((n, K) + rest)
    # 1. within the blocks, from a zero start: l (local h) and P (product of a)
    l = np.empty(A.shape, np.result_type(a, b, h0))  # (n, K, ...)
    P = np.empty(A.shape, a.dtype)
    l[:, 0] = Bv[:, 0]
    P[:, 0] = A[:, 0]
    for k in range(1, K):
        np.multiply(A[:, k], l[:, k - 1], out=l[:, k])
        l[:, k] += Bv[:, k]
        np.multiply(A[:, k], P[:, k - 1], out=P[:, k])
    # 2. the carry across blocks: s[c] is h before block c
    s = np.empty((n,) + rest, l.dtype)  # (n, ...)
    s[0] = h0
    for c in range(1, n):
        np.multiply(P[c - 1, K - 1], s[c - 1], out=s[c])
        s[c] += l[c - 1, K - 1]
    # 3. every step: h = l + P * s
    P *= s[:, None]
    P += l
    return P.reshape((n * K,) + rest)[:T]


def linear_scan_backward(dh: np.ndarray, dh_last: np.ndarray, a: np.ndarray, h: np.ndarray,
                         h0: np.ndarray, block: Optional[int] = None
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backward of :func:`linear_scan`.

    Parameters
    ----------
    dh : ndarray, shape (T, ...)
        Gradient of ``h_t`` from outside the scan (e.g. the layer's output gradient).
    dh_last : ndarray, shape (...)
        Gradient of the final ``h_{T-1}`` as the carry (the final state's gradient).
    a : ndarray, shape (T, ...), as in the forward
    h : ndarray, shape (T, ...), the forward's result
    h0 : ndarray, shape (...)

    Returns
    -------
    g : ndarray, shape (T, ...)
        ``dL/dh_t``, the total gradient of every ``h_t``; it is also ``db_t``.
    da : ndarray, shape (T, ...)
    dh0 : ndarray, shape (...)

    Notes
    -----
    ``h_t`` enters the loss directly (``dh_t``) and through ``h_{t+1} = a_{t+1} h_t + ...``,
    so its total gradient is a linear scan in reverse time, with ``a`` shifted by one::

        g_{T-1} = dh_{T-1} + dh_last
        g_t     = a_{t+1} * g_{t+1} + dh_t            (reverse linear_scan)
        db_t    = g_t
        da_t    = g_t * h_{t-1}                        (h_{-1} = h0)
        dh0     = a_0 * g_0
    """
    # a_next[t] = a_{t+1}, visited from T-1 down: a_next of the last step is unused (the
    # reverse scan starts from g_T = dh_last with coefficient 1)
    a_next = np.empty_like(a)
    a_next[:-1] = a[1:]
    a_next[-1] = 1
    g = linear_scan(a_next[::-1], dh[::-1], dh_last, block)[::-1]  # (T, ...)
    h_prev = np.concatenate([h0[None], h[:-1]])  # (T, ...)
    da = g * h_prev
    dh0 = a[0] * g[0]
    return g, da, dh0


# -- one layer, one direction, by the scan: the parallel path of MinGRU and MinLSTM ---------
class ScanRecord(NamedTuple):
    """What :func:`scan_sequence_backward` needs from :func:`scan_sequence_forward`."""

    x: np.ndarray  # (T, B, D) the layer's input
    h0: np.ndarray  # (B, H) the initial carry
    chunks: list  # per chunk, in visit order: (a, h, gates), each field (steps, B, H)
    mask: Optional[np.ndarray]  # (T, B, 1) bool, or None when every step is real
    reverse: bool
    chunk: int  # steps per chunk


_CHUNK_ROWS = 1024  # rows (steps * batch) per chunk: its arrays stay in the CPU's cache


def chunk_steps(B: int) -> int:
    """Steps per chunk of the scan path for a batch of ``B``."""
    return max(1, -(-_CHUNK_ROWS // B))


def _visit_order(arr: Optional[np.ndarray], reverse: bool) -> Any:
    """``arr`` (T, ...) in the order a direction visits the steps (a view); None stays."""
    return arr[::-1] if reverse and arr is not None else arr


def scan_sequence_forward(gates_forward: Callable, x: np.ndarray, h0: np.ndarray, p: dict,
                          mask: Optional[np.ndarray] = None, reverse: bool = False,
                          keep: bool = True, block: Optional[int] = None,
                          chunk: Optional[int] = None
                          ) -> tuple[np.ndarray, np.ndarray, Optional[ScanRecord]]:
    """One layer and direction of a recurrence ``h = a(x) * h_prev + b(x)``, by the scan.

    The same result as :func:`npseq.bptt.sequence_forward` with the kind whose step is
    ``h = a * h_prev + b`` (:func:`npseq.cells.minrnn.min_step_forward`).

    Parameters
    ----------
    gates_forward : callable ``gx (steps, B, G*H) -> (a, b, gates)``
        e.g. :func:`npseq.cells.minrnn.mingru_gates`.
    x : ndarray, shape (T, B, D)
    h0 : ndarray, shape (B, H)
    p : dict with ``weight_ih`` and optionally ``bias_ih``
    mask : bool ndarray, shape (T, B, 1), optional
    reverse : bool
    keep : bool
        Return a record for :func:`scan_sequence_backward` (None otherwise).
    block : int, optional
        Steps per block of :func:`linear_scan`.
    chunk : int, optional
        Steps per chunk (default :func:`chunk_steps`).

    Returns
    -------
    out : ndarray, shape (T, B, H), ``h`` at every step, zero at padded steps
    h_n : ndarray, shape (B, H), the carry after the last step visited
    record : ScanRecord or None

    Notes
    -----
    The sequence is taken in visit order (time-flipped for the reverse direction) and in
    chunks of ``chunk`` steps, so that a chunk's arrays stay in the CPU's cache; the carry
    passes from one chunk to the next. Per chunk, every step at once::

        gx = x W_ih^T + b_ih                         (steps, B, G*H), one product
        a, b = gates(gx)                             (steps, B, H) each
        a, b = where(mask, a, 1), where(mask, b, 0)
        h = linear_scan(a, b, h_start)
        out = where(mask, h, 0)

    A padded step must pass the carry through: ``a = 1, b = 0`` there. In the reverse
    direction the padded steps of a sequence come *first* in visit order: they carry
    ``h0`` unchanged up to the sequence's last real step, which is where the reverse
    direction starts (as the BPTT driver and PyTorch's packed sequences do).
    """
    T, B = x.shape[:2]
    C = chunk_steps(B) if chunk is None else int(chunk)
    xv, mv = _visit_order(x, reverse), _visit_order(mask, reverse)
    out = np.empty((T, B, h0.shape[-1]), dtype=x.dtype)  # (T, B, H)
    outv = _visit_order(out, reverse)
    chunks, h_start = [], h0
    for s in range(0, T, C):
        sl = slice(s, min(s + C, T))
        a, b, gates = gates_forward(input_projection(xv[sl], p))
        if mv is not None:
            a = np.where(mv[sl], a, 1)
            b = np.where(mv[sl], b, 0)
        h = linear_scan(a, b, h_start, block)  # (steps, B, H)
        outv[sl] = h if mv is None else np.where(mv[sl], h, 0)
        if keep:
            chunks.append((a, h, gates))
        h_start = h[-1]
    record = ScanRecord(x, h0, chunks, mask, reverse, C) if keep else None
    return out, h_start.copy(), record


def scan_sequence_backward(gates_backward: Callable, dout: np.ndarray, dh_n: np.ndarray,
                           record: ScanRecord, p: dict, block: Optional[int] = None
                           ) -> tuple[np.ndarray, np.ndarray, dict, np.ndarray]:
    """Backward of :func:`scan_sequence_forward`.

    Parameters
    ----------
    gates_backward : callable ``(da, db, gates) -> dgx``
    dout : ndarray, shape (T, B, H), gradient of ``out``
    dh_n : ndarray, shape (B, H), gradient of the final carry
    record : ScanRecord
    p : dict, as in the forward

    Returns
    -------
    dx : ndarray, shape (T, B, D)
    dh0 : ndarray, shape (B, H)
    grads : dict, ``weight_ih`` (and ``bias_ih``)
    dh : ndarray, shape (T, B, H)
        ``dL/dh_t``, the total gradient of the carry at every step (time order, zero at
        padded steps): the ``trace`` of :func:`npseq.bptt.sequence_backward`.

    Notes
    -----
    Chunks in reverse visit order; the gradient that leaves a chunk through its first
    carry (``a_0 g_0``) enters the chunk before as the gradient of its last ``h``. Per
    chunk, the reverse scan (:func:`linear_scan_backward`), then the gates and the input
    projection, each one product over the chunk's steps::

        dout = where(mask, dout, 0)                  a padded step's output is a constant 0
        g, da, dcarry = linear_scan_backward(dout, dcarry, a, h, h_start)
        da, db = where(mask, da, 0), where(mask, g, 0)   a, b were constants at padded steps
        dgx = gates_backward(da, db)                 (steps, B, G*H)
        dW_ih += sum_t dgx_t^T x_t    db_ih += sum_t dgx_t    dx = dgx W_ih
    """
    x, h0, chunks, mask, reverse, C = record
    T = x.shape[0]
    xv, mv = _visit_order(x, reverse), _visit_order(mask, reverse)
    doutv = _visit_order(dout, reverse)
    dx = np.empty(x.shape, dtype=dout.dtype)  # (T, B, D)
    dh = np.empty(dout.shape, dtype=dout.dtype)  # (T, B, H)
    dxv, dhv = _visit_order(dx, reverse), _visit_order(dh, reverse)
    grads: dict[str, np.ndarray]
    grads, dcarry = {}, dh_n
    for j in reversed(range(len(chunks))):
        sl = slice(j * C, min((j + 1) * C, T))
        a, h, gates = chunks[j]
        h_start = h0 if j == 0 else chunks[j - 1][1][-1]
        d = doutv[sl] if mv is None else np.where(mv[sl], doutv[sl], 0)
        g, da, dcarry = linear_scan_backward(d, dcarry, a, h, h_start, block)
        if mv is not None:
            g = np.where(mv[sl], g, 0)
            da = np.where(mv[sl], da, 0)
        dhv[sl] = g
        dgx = gates_backward(da, g, gates)  # (steps, B, G*H)
        add_grads(grads, param_grads(xv[sl], None, dgx, None, p))
        dxv[sl] = input_backward(dgx.reshape(-1, dgx.shape[-1]), p).reshape(dxv[sl].shape)
    return dx, dcarry, grads, dh


# -- a stack of layers, each in one or two directions: as npseq.stack, by the scan ----------
def scan_stack_forward(gates_forward: Callable, layers: list, x: np.ndarray, h0: np.ndarray,
                       mask: Optional[np.ndarray] = None, *, dropout: float = 0.0,
                       rng: Optional[np.random.Generator] = None, keep: bool = True,
                       block: Optional[int] = None
                       ) -> tuple[np.ndarray, np.ndarray, Optional[StackRecord]]:
    """:func:`npseq.stack.stack_forward` for a recurrence linear in ``h``, by the scan.

    Same arguments and results (``h0`` is the one carry, ``(L*D, B, H)``; ``finals`` is
    ``h_n (L*D, B, H)``; the record a :class:`npseq.stack.StackRecord` of
    :class:`ScanRecord`). Dropout masks are drawn from ``rng`` in the same order and shapes
    as :func:`npseq.stack.stack_forward` draws them, so both paths see the same masks.
    """
    num_directions = len(layers[0])
    records, dropout_masks, finals = [], [], []
    layer_input = x
    for layer, directions in enumerate(layers):
        outs, layer_records = [], []
        for direction, p in enumerate(directions):
            out, h_n, record = scan_sequence_forward(
                gates_forward, layer_input, h0[layer * num_directions + direction], p, mask,
                reverse=bool(direction), keep=keep, block=block)
            outs.append(out)
            finals.append(h_n)
            layer_records.append(record)
        records.append(layer_records)
        layer_out = np.concatenate(outs, axis=2) if num_directions == 2 else outs[0]
        drop = None
        if dropout > 0 and layer < len(layers) - 1:
            drop = dropout_mask(rng, layer_out.shape, dropout,  # type: ignore[arg-type]
                                layer_out.dtype)
            layer_out = layer_out * drop
        dropout_masks.append(drop)
        layer_input = layer_out
    return layer_input, np.stack(finals), StackRecord(records, dropout_masks) if keep else None


def scan_stack_backward(gates_backward: Callable, layers: list, record: StackRecord,
                        dout: np.ndarray, dh_n: np.ndarray, *, trace: Optional[dict] = None,
                        block: Optional[int] = None) -> tuple[np.ndarray, np.ndarray, list]:
    """Backward of :func:`scan_stack_forward`, as :func:`npseq.stack.stack_backward`.

    Returns ``dx (T, B, D)``, ``dh0 (L*D, B, H)`` and ``grads[layer][direction]``; fills
    ``trace[(layer, direction)] = (dh,)`` when given.
    """
    num_directions = len(layers[0])
    H = dout.shape[-1] // num_directions
    dh0 = np.empty_like(dh_n)
    grads: list = [[None] * num_directions for _ in layers]
    dlayer_out = dout
    for layer in reversed(range(len(layers))):
        if record.dropout_masks[layer] is not None:
            dlayer_out = dlayer_out * record.dropout_masks[layer]
        dlayer_in: Any = None
        for direction, p in enumerate(layers[layer]):
            idx = layer * num_directions + direction
            dx, dh0[idx], grads[layer][direction], dh = scan_sequence_backward(
                gates_backward, dlayer_out[:, :, direction * H:(direction + 1) * H],
                dh_n[idx], record.records[layer][direction], p, block)
            if trace is not None:
                trace[(layer, direction)] = (dh,)
            dlayer_in = dx if dlayer_in is None else dlayer_in + dx
        dlayer_out = dlayer_in
    return dlayer_out, dh0, grads
