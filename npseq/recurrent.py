"""A layer and a cell for a recurrence of your own: :class:`Recurrent`, :class:`RecurrentCell`.

Write the two step functions of a cell, describe it with a :class:`~npseq.cells.base.CellKind`,
and these classes give it everything the built-in cells have: stacking, both directions,
``lengths``, dropout, ``batch_first``, unbatched input, state in and out, ``state_dict`` and
:func:`npseq.gradcheck.check_gradients`. See ``docs/custom_cells.md`` and
``examples/custom_cell.py``::

    kind = npseq.CellKind("MYCELL", num_gates=2, num_states=1,
                          step_forward=my_step_forward, step_backward=my_step_backward)
    layer = npseq.Recurrent(kind, input_size=3, hidden_size=8, num_layers=2,
                            bidirectional=True)
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from npseq._typing import DTypeLike, Seed, ZoneoutLike
from npseq.cell import RNNCellBase
from npseq.cells.base import CellKind, check_kind
from npseq.layers import RNNBase

__all__ = ["Recurrent", "RecurrentCell"]


class Recurrent(RNNBase):
    """A stack of recurrent layers of any :class:`~npseq.cells.base.CellKind`.

    Parameters
    ----------
    kind : CellKind
        The cell: its gate count G, its number of states (1: the carry is ``(h,)``, state
        ``h`` as for a GRU; 2: ``(h, c)``, state ``(h, c)`` as for an LSTM), its step
        functions and its extra parameters.
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, dtype,
    seed : as :class:`npseq.RNN`
        Every layer and direction has ``weight_ih_l{k} (G*H, input)``,
        ``weight_hh_l{k} (G*H, H)``, with ``bias`` ``bias_ih_l{k}``, ``bias_hh_l{k}``
        ``(G*H,)``, and one of each of ``kind.extra_params``, suffixed the same way
        (``_reverse`` for the reverse direction).
    checkpoint_every, weight_dropout, zoneout, recurrent_dropout : keyword only
        As :class:`npseq.RNN`; ``recurrent_dropout > 0`` needs a kind that declares how it
        takes the mask (``CellKind.recurrent_dropout``, ``docs/custom_cells.md``).

    Examples
    --------
    The Elman cell, as a user would write it, is :class:`npseq.RNN`:

    >>> import numpy as np, npseq
    >>> from npseq.cells.rnn import rnn_step_forward, rnn_step_backward
    >>> kind = npseq.CellKind("ELMAN", 1, 1, rnn_step_forward, rnn_step_backward)
    >>> m = npseq.Recurrent(kind, 3, 4, num_layers=2, bidirectional=True, seed=0)
    >>> out, h_n = m(np.ones((5, 2, 3)), lengths=[5, 3])
    >>> out.shape, h_n.shape
    ((5, 2, 8), (4, 2, 4))
    >>> dx, dh0 = m.backward(np.ones_like(out))
    """

    def __init__(self, kind: CellKind, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: DTypeLike = np.float64, seed: Seed = None,
                 *, checkpoint_every: Optional[int] = None, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0, recurrent_dropout: float = 0.0) -> None:
        self.kind = check_kind(kind)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, dtype, seed, checkpoint_every=checkpoint_every,
                         weight_dropout=weight_dropout, zoneout=zoneout,
                         recurrent_dropout=recurrent_dropout)

    def __repr__(self):
        return super().__repr__().replace("(", f"({self.kind.name}, ", 1)


class RecurrentCell(RNNCellBase):
    """One step of any :class:`~npseq.cells.base.CellKind`, as :class:`npseq.RNNCell`.

    The state is an array ``h`` for a kind with one state, a tuple ``(h, c)`` with two (a
    tuple of its ``num_states`` parts, named by ``kind.carry_names()``, with more).

    Parameters
    ----------
    kind : CellKind
    input_size, hidden_size, bias, dtype, seed : as :class:`npseq.RNNCell`
    recurrent_dropout, weight_dropout, zoneout : keyword only, as :class:`npseq.RNNCell`
    """

    def __init__(self, kind: CellKind, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: DTypeLike = np.float64, seed: Seed = None, *,
                 recurrent_dropout: float = 0.0, weight_dropout: float = 0.0,
                 zoneout: ZoneoutLike = 0.0) -> None:
        self.kind = check_kind(kind)
        super().__init__(input_size, hidden_size, bias, dtype, seed,
                         recurrent_dropout=recurrent_dropout, weight_dropout=weight_dropout,
                         zoneout=zoneout)

    def __repr__(self):
        return super().__repr__().replace("(", f"({self.kind.name}, ", 1)
