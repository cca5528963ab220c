"""The xLSTM's recurrent layers (Beck et al. 2024): :class:`SLSTM` and :class:`MLSTM`.

Each is a :class:`~npseq.layers.RNNBase` of a built-in :class:`~npseq.CellKind`
(:mod:`npseq.cells.xlstm`), so the BPTT driver runs it with everything the other layers have
(stacking, ``bidirectional``, ``batch_first``, ``lengths``, ``dropout``, ``checkpoint_every``,
states in and out, save/load, pickling). Their carry has four parts, so their state is a
tuple of four arrays. Derivations in ``docs/xlstm.md``.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from npseq._typing import DTypeLike, Seed
from npseq._validation import check_bool, check_choice, check_int
from npseq.cells.base import CellKind
from npseq.cells.xlstm import FORGET_GATES, mlstm_kind, slstm_kind
from npseq.layers import RNNBase

__all__ = ["SLSTM", "MLSTM"]


def _check_heads(num_heads: int, hidden_size: int) -> int:
    """``num_heads``, an integer >= 1 that divides ``hidden_size``."""
    hidden_size = check_int("hidden_size", hidden_size, minimum=1)
    num_heads = check_int("num_heads", num_heads, minimum=1)
    if hidden_size % num_heads:
        raise ValueError(f"num_heads: expected a divisor of hidden_size ({hidden_size}), got "
                         f"{num_heads}")
    return num_heads


class _XLSTM(RNNBase):
    """What :class:`SLSTM` and :class:`MLSTM` share: ``num_heads`` and ``forget``."""

    num_heads: int
    forget: str

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, num_heads: int = 1, forget: str = "sigmoid",
                 checkpoint_every: Optional[int] = None) -> None:
        self.num_heads = _check_heads(num_heads, hidden_size)
        self.forget = check_choice("forget", forget, FORGET_GATES)
        self.kind = self.make_kind(check_bool("bias", bias))
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every)

    def make_kind(self, bias: bool) -> CellKind:
        """The cell kind of this layer's ``num_heads``, ``forget`` (and ``bias``)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        extra = f", num_heads={self.num_heads}" if self.num_heads != 1 else ""
        extra += f", forget={self.forget!r}" if self.forget != "sigmoid" else ""
        return super().__repr__()[:-1] + extra + ")"


class SLSTM(_XLSTM):
    """sLSTM layer (Beck et al. 2024): exponential input gate, normaliser and stabiliser
    states, recurrent weights mixing within each head.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.GRU`
        Every layer and direction has ``weight_ih_l{k} (4H, input)`` and, with ``bias``,
        ``bias_ih_l{k} (4H,)``, gate blocks in the order (i, f, z, o) (as the NX-AI code),
        and ``weight_r_l{k} (4, num_heads, H/num_heads, H/num_heads)``: per gate and head the
        block of the block-diagonal recurrent matrix (no ``weight_hh``, no ``bias_hh``). All
        start U(-1/sqrt(H), 1/sqrt(H)).
    num_heads : int, default 1, keyword only
        Heads of the recurrent mixing; must divide ``hidden_size``. With one head the
        recurrent matrix of each gate is full.
    forget : {"sigmoid", "exp"}, default "sigmoid", keyword only
        The forget gate ``f = sigmoid(f~)`` or ``f = exp(f~)`` (the paper allows both).
    checkpoint_every : int, optional, keyword only
        As :class:`npseq.RNN`.

    Notes
    -----
    Per step (equations and code: :func:`npseq.cells.xlstm.slstm_step_forward`)::

        (i~, f~, z~, o~) = W_ih x + b_ih + blockdiag(R) h_prev
        c = f c_prev + i z,   n = f n_prev + i,   h = o * c / n
        i = exp(i~),  f = sigmoid(f~) or exp(f~),  z = tanh(z~),  o = sigmoid(o~)

    computed in the stabilised form: the carry holds ``c~ = c exp(-m)``, ``n~ = n exp(-m)``
    and the stabiliser ``m = max(log f + m_prev, i~)``, so float32 stays finite at
    pre-activations of +-1e4. ``out, (h_n, c_n, n_n, m_n) = m(x, (h0, c0, n0, m0))``, each
    part of the state shaped (num_layers * num_directions, B, H); ``state=None`` is the
    empty state (all zero: where ``n_prev == 0`` the stabiliser restarts at ``m = i~``).
    ``dx, (dh0, dc0, dn0, dm0) = m.backward(dout, (dh_n, dc_n, dn_n, dm_n))``.

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.SLSTM(3, 4, num_layers=2, num_heads=2, seed=0)
    >>> out, (h_n, c_n, n_n, m_n) = m(np.ones((5, 2, 3)))
    >>> out.shape, h_n.shape
    ((5, 2, 4), (2, 2, 4))
    >>> dx, dstate0 = m.backward(np.ones_like(out))
    """

    def make_kind(self, bias: bool) -> CellKind:
        """The sLSTM kind (its gate biases are the layer's ``bias_ih``)."""
        return slstm_kind(self.num_heads, self.forget)


class MLSTM(_XLSTM):
    """mLSTM layer (Beck et al. 2024): a matrix memory per head, ``C = f C_prev + i v k^T``,
    read by a query; no recurrent weights (the gates read only ``x``).

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.GRU`
        Every layer and direction has ``weight_q_l{k}``, ``weight_k_l{k}``, ``weight_v_l{k}``,
        ``weight_o_l{k}`` (H, input) and ``weight_i_l{k}``, ``weight_f_l{k}`` (num_heads,
        input), with ``bias`` a ``bias_*_l{k}`` for each (no ``weight_ih``/``weight_hh``).
        All start U(-1/sqrt(H), 1/sqrt(H)) except ``bias_f``, ``linspace(3, 6)`` over the
        heads as in the NX-AI code (a long memory at the start).
    num_heads : int, default 1, keyword only
        NH heads of ``dh = H / num_heads`` features, each with its own ``dh x dh`` memory and
        scalar gates ``i``, ``f``; must divide ``hidden_size``.
    forget : {"sigmoid", "exp"}, default "sigmoid", keyword only
    checkpoint_every : int, optional, keyword only
        As :class:`npseq.RNN`.

    Notes
    -----
    Per step and head (equations and code: :func:`npseq.cells.xlstm.mlstm_step_forward`)::

        q = W_q x + b_q,  k = (W_k x + b_k) / sqrt(dh),  v = W_v x + b_v
        C = f C_prev + i v k^T,   n = f n_prev + i k
        h = o * C q / max(|n . q|, 1),   i = exp(i~),  o = sigmoid(W_o x + b_o)

    in the stabilised form (``m = max(log f + m_prev, i~)``, as :class:`SLSTM`).
    ``out, (h_n, C_n, n_n, m_n) = m(x, (h0, C0, n0, m0))``, shaped (num_layers *
    num_directions, B, .) with ``.`` = H, H * H / num_heads (each head's ``C`` row-major),
    H, num_heads. ``dx, dstate0 = m.backward(dout, dstate)`` as :class:`SLSTM`; ``dh0`` is
    zero (no gate reads ``h_prev``).

    Examples
    --------
    >>> import numpy as np, npseq
    >>> m = npseq.MLSTM(3, 4, num_heads=2, seed=0)
    >>> out, (h_n, C_n, n_n, m_n) = m(np.ones((5, 2, 3)))
    >>> out.shape, C_n.shape, m_n.shape
    ((5, 2, 4), (1, 2, 8), (1, 2, 2))
    >>> dx, dstate0 = m.backward(np.ones_like(out))
    """

    def make_kind(self, bias: bool) -> CellKind:
        """The mLSTM kind (its projections' biases belong to the kind)."""
        return mlstm_kind(self.num_heads, self.forget, bias)
