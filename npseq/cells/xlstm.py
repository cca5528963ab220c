"""sLSTM and mLSTM (Beck et al. 2024, "xLSTM: Extended Long Short-Term Memory"), recurrent form.

Both have an exponential input gate ``i = exp(i~)`` and a forget gate ``f = sigmoid(f~)`` or
``exp(f~)``, a normaliser state ``n`` and a stabiliser state ``m``. The carry holds the
*stabilised* states ``c~ = c exp(-m)``, ``n~ = n exp(-m)`` (``C~`` for the mLSTM), with::

    m_t = max(log f_t + m_{t-1}, i~_t)                       the stabiliser
    i'  = exp(i~ - m_t)          f' = exp(log f + m_{t-1} - m_t)    both in (0, 1]

so no exponential is ever taken of a positive number: float32 stays finite at
pre-activations of +-1e4. The outputs do not depend on ``m`` (numerator and denominator of
``h`` carry the same factor ``exp(-m)``); see ``docs/xlstm.md`` for the derivations, for how
the backward treats ``dm``, and for what the gradient through time does.

* :data:`SLSTM_*` kinds: carry ``(h, c, n, m)``, each (B, H); input projection
  ``gx = W_ih x + b_ih`` of the four gates in the order (i, f, z, o) as the NX-AI code;
  recurrent weights block-diagonal per head, ``weight_r (4, NH, dh, dh)``, no ``weight_hh``.
* :data:`MLSTM_*` kinds: carry ``(h, C, n, m)`` of sizes ``(H, NH*dh*dh, H, NH)`` (``C`` is
  the per-head ``dh x dh`` matrix memory, flattened; ``n`` per head ``dh``; ``m`` one per
  head); no recurrent weight in any gate, so ``has_weight_ih=False`` and ``has_weight_hh=
  False``: the step reads ``x`` itself and owns the projections ``weight_q``, ``weight_k``,
  ``weight_v``, ``weight_o`` (H, D), ``weight_i``, ``weight_f`` (NH, D) and their biases.
"""
from __future__ import annotations

from functools import lru_cache, partial
from typing import Any, NamedTuple

import numpy as np
from scipy.special import expit

from npseq.activations import sigmoid
from npseq.cells.base import CellKind, ParamSpec, StepGrads

__all__ = ["SLSTMCache", "slstm_step_forward", "slstm_step_backward", "slstm_kind",
           "MLSTMCache", "mlstm_step_forward", "mlstm_step_backward", "mlstm_kind",
           "log_forget", "log_forget_grad", "FORGET_GATES"]

FORGET_GATES = ("sigmoid", "exp")


def log_forget(f_tilde: np.ndarray, forget: str) -> np.ndarray:
    """``log f`` from the pre-activation: ``log sigmoid(f~) = -log(1 + exp(-f~))``, computed
    without overflow, or ``f~`` itself for ``f = exp(f~)``."""
    if forget == "exp":
        return f_tilde
    return -np.logaddexp(0, -f_tilde)


def log_forget_grad(f_tilde: np.ndarray, forget: str) -> np.ndarray:
    """``d log f / d f~``: ``sigmoid(-f~)`` (``1 - f``), or 1 for ``f = exp(f~)``."""
    if forget == "exp":
        return np.ones_like(f_tilde)
    return expit(-f_tilde)


def _heads(a: np.ndarray, num_heads: int) -> np.ndarray:
    """``(B, NH*dh)`` -> ``(B, NH, dh)`` (a view)."""
    return a.reshape(a.shape[0], num_heads, -1)


# -- sLSTM ----------------------------------------------------------------------------------
class SLSTMCache(NamedTuple):
    """What :func:`slstm_step_backward` needs; every field (B, H) but ``h_prev``'s heads."""

    h_prev: np.ndarray  # (B, H) the h that entered the recurrent product
    c_prev: np.ndarray  # (B, H) c~_{t-1}
    n_prev: np.ndarray  # (B, H) n~_{t-1}
    f_tilde: np.ndarray  # (B, H) forget pre-activation, for d log f / d f~
    i_tilde: np.ndarray  # (B, H)
    a: np.ndarray  # (B, H) log f + m_{t-1}
    from_a: np.ndarray  # (B, H) bool: the max took a (else i~, or the unit was empty)
    i: np.ndarray  # (B, H) i' = exp(i~ - m)
    f: np.ndarray  # (B, H) f' = exp(a - m), 0 for an empty unit
    z: np.ndarray  # (B, H) tanh(z~)
    o: np.ndarray  # (B, H) sigmoid(o~)
    c: np.ndarray  # (B, H) c~_t
    n: np.ndarray  # (B, H) n~_t


def slstm_step_forward(gx: np.ndarray, carry: tuple, p: dict, num_heads: int = 1,
                       forget: str = "sigmoid") -> tuple[tuple, SLSTMCache]:
    """One sLSTM step (stabilised).

    Parameters
    ----------
    gx : ndarray, shape (B, 4H)
        Input projection ``W_ih x + b_ih``, gate blocks (i, f, z, o).
    carry : tuple ``(h_prev, c_prev, n_prev, m_prev)``, each (B, H)
    p : dict with ``weight_r (4, NH, dh, dh)``: per gate and head, the block ``R_g^(j)`` of
        the block-diagonal recurrent matrix
    num_heads : int
        NH; ``H = NH * dh``. Head j's gates read only head j of ``h_prev``.
    forget : {"sigmoid", "exp"}

    Returns
    -------
    carry : tuple ``(h, c, n, m)``
    cache : SLSTMCache

    Notes
    -----
    ::

        g  = gx + blockdiag(R) h_prev          (B, 4H): (i~, f~, z~, o~)
        a  = log f(f~) + m_prev                log sigmoid(f~), or f~ with forget="exp"
        m  = max(a, i~)                        i~ where n_prev == 0 (an empty unit)
        i' = exp(i~ - m)
        f' = exp(a - m)                        0 where n_prev == 0: nothing to forget
        z  = tanh(z~)
        o  = sigmoid(o~)
        c  = f' * c_prev + i' * z
        n  = f' * n_prev + i'
        h  = o * c / n

    An empty unit (``n_prev == 0``, as in the zero state) starts afresh, ``c = z``,
    ``n = 1``, ``m = i~`` (the NX-AI code's start): for the zero state these are the
    paper's ``c_1 = i_1 z_1``, ``n_1 = i_1`` exactly, with no 0/0 when ``i_1`` underflows;
    the unit's ``c_prev`` is not read (its gradient there is zero).
    """
    h_prev, c_prev, n_prev, m_prev = carry
    B, H = h_prev.shape
    R = p["weight_r"]  # (4, NH, dh, dh)
    gh = _heads(h_prev, num_heads).transpose(1, 0, 2)[None] @ R.transpose(0, 1, 3, 2)
    g = gx + gh.transpose(2, 0, 1, 3).reshape(B, 4 * H)  # (B, 4H); gh was (4, NH, B, dh)
    i_tilde, f_tilde, z_tilde, o_tilde = (g[:, k * H:(k + 1) * H] for k in range(4))
    a = log_forget(f_tilde, forget) + m_prev
    empty = n_prev == 0  # a unit that holds nothing starts afresh: m = i~, f' = 0
    from_a = (a >= i_tilde) & ~empty
    m = np.where(from_a, a, i_tilde)
    i = np.exp(i_tilde - m)
    f = np.exp(np.where(empty, -np.inf, a - m))
    z = np.tanh(z_tilde)
    o = sigmoid(o_tilde)
    c = f * c_prev + i * z
    n = f * n_prev + i
    h = o * c / n
    return (h, c, n, m), SLSTMCache(h_prev, c_prev, n_prev, f_tilde, i_tilde, a, from_a, i, f,
                                    z, o, c, n)


def slstm_step_backward(dcarry: tuple, cache: SLSTMCache, p: dict, num_heads: int = 1,
                        forget: str = "sigmoid") -> StepGrads:
    """Backward of :func:`slstm_step_forward`.

    Returns
    -------
    StepGrads
        ``dgx = dg (B, 4H)``, ``dgh = None`` (no ``weight_hh``), ``dcarry_prev = (dh_prev,
        dc_prev, dn_prev, dm_prev)``, ``dparams = {"weight_r": dR}``.

    Notes
    -----
    One line a derivative, the forward's lines in reverse order. ``dm`` arrives with the
    carry; after this step's own terms the ``dm`` that reaches the max is zero up to
    rounding unless the loss reads ``m`` itself (the outputs do not depend on ``m``:
    ``docs/xlstm.md``)::

        do    = dh * c / n
        dc   += dh * o / n
        dn   -= dh * o * c / n**2
        di'   = dc * z + dn                    c = f' c_prev + i' z,  n = f' n_prev + i'
        df'   = dc * c_prev + dn * n_prev
        dz    = dc * i'
        dc_prev = dc * f';  dn_prev = dn * f'
        dm   -= di' * i' + df' * f'            i' = exp(i~ - m), f' = exp(a - m)
        di~   = di' * i' + dm * [max took i~]
        da    = df' * f' + dm * [max took a]
        dm_prev = da
        df~   = da * dlogf/df~                 sigmoid(-f~), or 1
        dz~   = dz * (1 - z**2);  do~ = do * o * (1 - o)
        dR    = sum_batch dg^T h_prev (per gate and head);  dh_prev = blockdiag(R)^T dg
    """
    dh, dc, dn, dm = dcarry
    q = cache
    B, H = dh.shape
    do = dh * q.c / q.n
    dc = dc + dh * q.o / q.n
    dn = dn - dh * q.o * q.c / (q.n * q.n)
    di = dc * q.z + dn
    df = dc * q.c_prev + dn * q.n_prev
    dz = dc * q.i
    dc_prev = dc * q.f
    dn_prev = dn * q.f
    di_exp, df_exp = di * q.i, df * q.f
    dm = dm - di_exp - df_exp
    di_tilde = di_exp + np.where(q.from_a, 0, dm)
    da = df_exp + np.where(q.from_a, dm, 0)
    dm_prev = da
    df_tilde = da * log_forget_grad(q.f_tilde, forget)
    dz_tilde = dz * (1 - q.z * q.z)
    do_tilde = do * q.o * (1 - q.o)
    dg = np.concatenate([di_tilde, df_tilde, dz_tilde, do_tilde], axis=1)  # (B, 4H)
    dg4 = dg.reshape(B, 4, num_heads, -1).transpose(1, 2, 0, 3)  # (4, NH, B, dh)
    hp = _heads(q.h_prev, num_heads).transpose(1, 0, 2)  # (NH, B, dh)
    dR = dg4.transpose(0, 1, 3, 2) @ hp[None]  # (4, NH, dh, dh): sum_b dg[b]^T h_prev[b]
    dh_prev = (dg4 @ p["weight_r"]).sum(axis=0)  # (NH, B, dh)
    dh_prev = dh_prev.transpose(1, 0, 2).reshape(B, H)
    return StepGrads(dgx=dg, dgh=None, dcarry_prev=(dh_prev, dc_prev, dn_prev, dm_prev),
                     dparams={"weight_r": dR})


def _r_shape(hidden_size: int, num_heads: int) -> tuple:
    """``weight_r``'s shape (4, NH, dh, dh) for ``H = NH * dh``."""
    return (4, num_heads, hidden_size // num_heads, hidden_size // num_heads)


@lru_cache(maxsize=None)
def slstm_kind(num_heads: int = 1, forget: str = "sigmoid") -> CellKind:
    """The sLSTM kind of ``num_heads`` and a forget gate ("sigmoid" or "exp"), checked by
    the caller; one object per pair, so layers of the same options share their kind."""
    spec = ParamSpec("weight_r", partial(_r_shape, num_heads=num_heads))
    return CellKind(f"SLSTM_{forget.upper()}_NH{num_heads}", 4, 4,
                    partial(slstm_step_forward, num_heads=num_heads, forget=forget),
                    partial(slstm_step_backward, num_heads=num_heads, forget=forget),
                    extra_params=(spec,), has_weight_hh=False,
                    state_names=("h", "c", "n", "m"))


# -- mLSTM ----------------------------------------------------------------------------------
class MLSTMCache(NamedTuple):
    """What :func:`mlstm_step_backward` needs (heads split: NH heads of dh features)."""

    x: np.ndarray  # (B, D) the step's input (the step owns the projections)
    C_prev: np.ndarray  # (B, NH, dh, dh) C~_{t-1}
    n_prev: np.ndarray  # (B, NH, dh) n~_{t-1}
    f_tilde: np.ndarray  # (B, NH)
    i_tilde: np.ndarray  # (B, NH)
    a: np.ndarray  # (B, NH) log f + m_{t-1}
    from_a: np.ndarray  # (B, NH) bool: the max took a (else i~, or the head was empty)
    i: np.ndarray  # (B, NH) i' = exp(i~ - m)
    f: np.ndarray  # (B, NH) f' = exp(a - m), 0 for an empty head
    q: np.ndarray  # (B, NH, dh)
    k: np.ndarray  # (B, NH, dh) scaled by 1/sqrt(dh)
    v: np.ndarray  # (B, NH, dh)
    o: np.ndarray  # (B, H) sigmoid(o~)
    C: np.ndarray  # (B, NH, dh, dh) C~_t
    n: np.ndarray  # (B, NH, dh) n~_t
    s: np.ndarray  # (B, NH) n~ . q
    den: np.ndarray  # (B, NH) max(|s|, exp(-m))
    h_tilde: np.ndarray  # (B, NH, dh) C~ q / den


def _linear(x: np.ndarray, p: dict, name: str) -> np.ndarray:
    """``x W^T + b`` of the projection ``name`` (``weight_name``, ``bias_name`` if any)."""
    y = x @ p["weight_" + name].T
    if "bias_" + name in p:
        y += p["bias_" + name]
    return y


def mlstm_step_forward(x: np.ndarray, carry: tuple, p: dict, num_heads: int = 1,
                       forget: str = "sigmoid") -> tuple[tuple, MLSTMCache]:
    """One mLSTM step (stabilised), per head a ``dh x dh`` matrix memory.

    Parameters
    ----------
    x : ndarray, shape (B, D)
        The step's input itself (the kind has no ``weight_ih``: the step projects).
    carry : tuple ``(h_prev, C_prev, n_prev, m_prev)`` of shapes (B, H), (B, NH*dh*dh),
        (B, H), (B, NH); ``C_prev[b]`` is the NH matrices ``C~ (dh, dh)`` row-major
    p : dict with ``weight_q``, ``weight_k``, ``weight_v``, ``weight_o`` (H, D),
        ``weight_i``, ``weight_f`` (NH, D), and with ``bias=True`` the ``bias_*`` of each
    num_heads : int
    forget : {"sigmoid", "exp"}

    Returns
    -------
    carry : tuple ``(h, C, n, m)``
    cache : MLSTMCache

    Notes
    -----
    Per head (``v k^T`` an outer product, ``C~ q`` a matrix-vector product)::

        q = W_q x + b_q;  k = (W_k x + b_k) / sqrt(dh);  v = W_v x + b_v      (B, NH, dh)
        i~ = W_i x + b_i;  f~ = W_f x + b_f                                   (B, NH)
        o = sigmoid(W_o x + b_o)                                              (B, H)
        a  = log f(f~) + m_prev
        m  = max(a, i~)                         i~ for an empty head (n_prev = 0)
        i' = exp(i~ - m);  f' = exp(a - m)      f' = 0 for an empty head

    An empty head (``n_prev`` the zero vector, as in the zero state) starts afresh as the
    sLSTM's empty unit: ``m = i~``, ``C = v k^T``, ``n = k``, its ``C_prev`` not read.
    Without this, a forget gate ``exp(f~)`` at ``f~ = 1e4`` would set ``m = 1e4`` over an
    empty memory, ``i'`` would underflow, and the backward would need ``0 * exp(1e4)``.
        C  = f' C_prev + i' v k^T
        n  = f' n_prev + i' k
        s  = n . q
        den = max(|s|, exp(-m))                 = exp(-m) max(|n_true . q|, 1)
                                                at least the smallest normal number: no
                                                0/0 when s = 0 and exp(-m) underflows
        h~ = C q / den
        h  = o * h~
    """
    h_prev, C_prev, n_prev, m_prev = carry
    B, H = h_prev.shape
    NH = num_heads
    dh = H // NH
    q = _heads(_linear(x, p, "q"), NH)
    k = _heads(_linear(x, p, "k"), NH) * (1.0 / dh ** 0.5)
    v = _heads(_linear(x, p, "v"), NH)
    i_tilde = _linear(x, p, "i")
    f_tilde = _linear(x, p, "f")
    o = sigmoid(_linear(x, p, "o"))
    C_prev = C_prev.reshape(B, NH, dh, dh)
    n_prev = _heads(n_prev, NH)
    a = log_forget(f_tilde, forget) + m_prev
    empty = np.all(n_prev == 0, axis=-1)  # (B, NH) a head that holds nothing starts afresh
    from_a = (a >= i_tilde) & ~empty
    m = np.where(from_a, a, i_tilde)
    i = np.exp(i_tilde - m)
    f = np.exp(np.where(empty, -np.inf, a - m))
    C = f[..., None, None] * C_prev + i[..., None, None] * (v[..., :, None] * k[..., None, :])
    n = f[..., None] * n_prev + i[..., None] * k
    s = np.einsum("bjd,bjd->bj", n, q)
    with np.errstate(over="ignore"):  # exp(-m) = inf for m < -log(max float): h~ = 0, exact
        den = np.maximum(np.maximum(np.abs(s), np.exp(-m)), np.finfo(s.dtype).tiny)
    h_tilde = (C @ q[..., None])[..., 0] / den[..., None]
    h = o * h_tilde.reshape(B, H)
    cache = MLSTMCache(x, C_prev, n_prev, f_tilde, i_tilde, a, from_a, i, f, q, k, v, o, C, n,
                       s, den, h_tilde)
    return (h, C.reshape(B, -1), n.reshape(B, H), m), cache


def mlstm_step_backward(dcarry: tuple, cache: MLSTMCache, p: dict, num_heads: int = 1,
                        forget: str = "sigmoid") -> StepGrads:
    """Backward of :func:`mlstm_step_forward`.

    Returns
    -------
    StepGrads
        ``dgx = dx (B, D)`` (the step read ``x``), ``dgh = None``, ``dcarry_prev = (dh_prev,
        dC_prev, dn_prev, dm_prev)`` with ``dh_prev = 0`` (no gate reads ``h_prev``), and
        ``dparams``: the gradient of every ``weight_*`` and ``bias_*``, summed over the batch.

    Notes
    -----
    One line a derivative, the forward's lines in reverse order (``dm`` as for the sLSTM:
    the part that reaches the max is zero up to rounding unless the loss reads ``m``)::

        do     = dh * h~;  dh~ = dh * o
        dnum   = dh~ / den                       num = C q
        dden   = -sum_d dh~ * h~ / den
        ds     = dden * sign(s)  where |s| >= exp(-m)
        dm    += -dden * den      elsewhere       d exp(-m) / dm = -exp(-m) = -den;
                                                computed as sum_d dh~ * h~ (no 0 * inf)
                                                (neither where den is the floor)
        dC    += dnum q^T;  dq = C^T dnum + ds * n;  dn += ds * q
        di'    = sum(dC * v k^T) + dn . k;  df' = sum(dC * C_prev) + dn . n_prev
        dv     = i' dC k;  dk = i' (dC^T v + dn)
        dC_prev = f' dC;  dn_prev = f' dn
        dm    -= di' i' + df' f'
        di~    = di' i' + dm * [max took i~];  da = df' f' + dm * [max took a]
        dm_prev = da;  df~ = da * dlogf/df~;  do~ = do * o * (1 - o)
        dW_* = sum_batch d*^T x;  db_* = sum_batch d*;  dx = sum_* d* W_*
    """
    dh, dC, dn, dm = dcarry
    c = cache
    B, H = dh.shape
    NH = num_heads
    dh_ = H // NH
    dC = dC.reshape(B, NH, dh_, dh_)
    dn = _heads(dn, NH)
    do = dh * c.h_tilde.reshape(B, H)
    dh_tilde = _heads(dh * c.o, NH)
    dnum = dh_tilde / c.den[..., None]
    dh_dot_h = np.einsum("bjd,bjd->bj", dh_tilde, c.h_tilde)  # (B, NH)
    dden = -dh_dot_h / c.den
    by_s = np.abs(c.s) >= c.den  # the max took |s| (else exp(-m), or the floor)
    by_m = ~by_s & (c.den > np.finfo(c.den.dtype).tiny)
    ds = np.where(by_s, dden * np.sign(c.s), 0)
    dm = dm + np.where(by_m, dh_dot_h, 0)  # -dden * den, also where den = exp(-m) = inf
    dC = dC + dnum[..., :, None] * c.q[..., None, :]
    dq = (dnum[..., None, :] @ c.C)[..., 0, :] + ds[..., None] * c.n
    dn = dn + ds[..., None] * c.q
    dCk = (dC @ c.k[..., None])[..., 0]  # (B, NH, dh): dC k
    di = np.einsum("bjd,bjd->bj", dCk, c.v) + np.einsum("bjd,bjd->bj", dn, c.k)
    df = np.einsum("bjde,bjde->bj", dC, c.C_prev) + np.einsum("bjd,bjd->bj", dn, c.n_prev)
    dv = c.i[..., None] * dCk
    dk = c.i[..., None] * ((c.v[..., None, :] @ dC)[..., 0, :] + dn)
    dC_prev = c.f[..., None, None] * dC
    dn_prev = c.f[..., None] * dn
    di_exp, df_exp = di * c.i, df * c.f
    dm = dm - di_exp - df_exp
    di_tilde = di_exp + np.where(c.from_a, 0, dm)
    da = df_exp + np.where(c.from_a, dm, 0)
    dm_prev = da
    df_tilde = da * log_forget_grad(c.f_tilde, forget)
    do_tilde = do * c.o * (1 - c.o)
    grads = {"q": dq.reshape(B, H), "k": dk.reshape(B, H) * (1.0 / dh_ ** 0.5),
             "v": dv.reshape(B, H), "i": di_tilde, "f": df_tilde, "o": do_tilde}
    dparams: dict = {}
    dx: Any = None
    for name, d in grads.items():  # y = x W^T + b: dW = d^T x, db = sum d, dx += d W
        dparams["weight_" + name] = d.T @ c.x
        if "bias_" + name in p:
            dparams["bias_" + name] = d.sum(axis=0)
        dx = d @ p["weight_" + name] if dx is None else dx + d @ p["weight_" + name]
    dcarry_prev = (np.zeros_like(dh), dC_prev.reshape(B, -1), dn_prev.reshape(B, H), dm_prev)
    return StepGrads(dgx=dx, dgh=None, dcarry_prev=dcarry_prev, dparams=dparams)


def _mlstm_sizes(hidden_size: int, num_heads: int) -> tuple:
    """The carry sizes ``(H, NH*dh*dh, H, NH)`` of ``(h, C, n, m)``."""
    return (hidden_size, hidden_size * hidden_size // num_heads, hidden_size, num_heads)


def forget_bias_init(rng: np.random.Generator, shape: tuple) -> np.ndarray:
    """The NX-AI initial forget bias of the mLSTM: ``linspace(3, 6)`` over the heads (a
    forget gate near 1, a long memory, at the start of training); draws nothing."""
    return np.linspace(3.0, 6.0, shape[0])


@lru_cache(maxsize=None)
def mlstm_kind(num_heads: int = 1, forget: str = "sigmoid", bias: bool = True) -> CellKind:
    """The mLSTM kind of ``num_heads``, a forget gate and ``bias``, checked by the caller;
    one object per triple, so layers of the same options share their kind."""
    specs = [ParamSpec("weight_" + g, ("H", "D")) for g in "qkvo"]
    specs += [ParamSpec("weight_" + g, (num_heads, "D")) for g in "if"]
    if bias:
        specs += [ParamSpec("bias_" + g, ("H",)) for g in "qkvo"]
        specs += [ParamSpec("bias_i", (num_heads,)),
                  ParamSpec("bias_f", (num_heads,), init=forget_bias_init)]
    return CellKind(f"MLSTM_{forget.upper()}_NH{num_heads}" + ("" if bias else "_NOBIAS"), 1,
                    4, partial(mlstm_step_forward, num_heads=num_heads, forget=forget),
                    partial(mlstm_step_backward, num_heads=num_heads, forget=forget),
                    extra_params=tuple(specs), has_weight_ih=False, has_weight_hh=False,
                    state_names=("h", "C", "n", "m"),
                    state_sizes=partial(_mlstm_sizes, num_heads=num_heads))
