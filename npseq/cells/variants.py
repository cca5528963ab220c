"""Choosing a cell variant: the layer and cell options -> a :class:`CellKind`.

=======================  ==========================================  =====================
option                   cell                                        module
=======================  ==========================================  =====================
LSTM (default)           PyTorch's LSTM                              :mod:`.lstm`
``layer_norm=True``      layer-normalised LSTM (Ba et al. 2016)      :mod:`.lstm_layernorm`
``layer_norm="labml"``   labml's LayerNorm LSTM (LN on each gate)    :mod:`.lstm_labml`
``peephole=True``        peephole LSTM (Gers et al. 2002)            :mod:`.lstm_peephole`
GRU (default)            PyTorch's GRU, ``reset_after=True``         :mod:`.gru`
``reset_after=False``    original GRU (Cho et al. 2014)              :mod:`.gru_reset_before`
=======================  ==========================================  =====================

``activation`` (default "tanh") replaces tanh on the candidate (and, in an LSTM, on the cell
output) and ``recurrent_activation`` (default "sigmoid") replaces the sigmoid of the gates,
as Keras names them; every step function above takes them as keyword arguments
(:class:`~npseq.activations.Activation` objects, bound once per kind). The
defaults return the very CellKind objects of the plain cells.
"""
from __future__ import annotations

from functools import partial
from typing import Union

import numpy as np

from npseq._validation import check_bool
from npseq.activations import get_activation
from npseq.cells import gru, lstm
from npseq.cells.base import CellKind
from npseq.cells.gru_reset_before import GRU_RESET_BEFORE
from npseq.cells.lstm_labml import LSTM_LAYERNORM_LABML
from npseq.cells.lstm_layernorm import LSTM_LAYERNORM
from npseq.cells.lstm_peephole import LSTM_PEEPHOLE

__all__ = ["lstm_kind", "gru_kind", "with_activations", "check_layer_norm", "VARIANT_DEFAULTS"]

#: The values of ``layer_norm`` besides False and True (Ba et al.).
LAYER_NORMS = ("labml",)


def with_activations(kind: CellKind, activation: str = "tanh",
                     recurrent_activation: str = "sigmoid") -> CellKind:
    """``kind`` with its step functions bound to the given activations, once.

    Both names are checked and looked up here (:data:`npseq.activations.ACTIVATIONS`), and
    the step functions receive the :class:`~npseq.activations.Activation` objects, so no
    step looks a name up; with the defaults ``kind`` itself is returned.
    """
    bound = dict(activation=get_activation(activation, "activation"),
                 recurrent_activation=get_activation(recurrent_activation,
                                                     "recurrent_activation"))
    if (activation, recurrent_activation) == ("tanh", "sigmoid"):
        return kind
    return kind._replace(step_forward=partial(kind.step_forward, **bound),
                         step_backward=partial(kind.step_backward, **bound))


def check_layer_norm(value: Union[bool, str]) -> Union[bool, str]:
    """``layer_norm``: False, True (Ba et al. 2016) or "labml" (labml's placement); returned
    as a bool or that string."""
    if isinstance(value, str):
        if value in LAYER_NORMS:
            return value
        raise ValueError(f"layer_norm: expected False, True (Ba et al.) or 'labml', got "
                         f"{value!r}")
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"layer_norm: expected False, True (Ba et al.) or 'labml', got "
                        f"{value!r}")
    return bool(value)


def lstm_kind(layer_norm: Union[bool, str] = False, peephole: bool = False,
              activation: str = "tanh", recurrent_activation: str = "sigmoid") -> CellKind:
    """The LSTM variant of the given options (at most one of ``layer_norm``, ``peephole``).

    ``layer_norm=True`` is Ba et al.'s cell (:mod:`.lstm_layernorm`), ``layer_norm="labml"``
    labml's (:mod:`.lstm_labml`)."""
    layer_norm = check_layer_norm(layer_norm)
    peephole = check_bool("peephole", peephole)
    if layer_norm and peephole:
        raise ValueError("layer_norm, peephole: expected at most one of them set, got both")
    kind = (LSTM_LAYERNORM_LABML if layer_norm == "labml" else LSTM_LAYERNORM if layer_norm
            else LSTM_PEEPHOLE if peephole else lstm.LSTM)
    return with_activations(kind, activation, recurrent_activation)


def gru_kind(reset_after: bool = True, activation: str = "tanh",
             recurrent_activation: str = "sigmoid") -> CellKind:
    """The GRU variant of the given options."""
    kind = gru.GRU if check_bool("reset_after", reset_after) else GRU_RESET_BEFORE
    return with_activations(kind, activation, recurrent_activation)


#: The variant options of the LSTM and GRU layers and cells, with their defaults (for repr).
VARIANT_DEFAULTS = dict(layer_norm=False, peephole=False, reset_after=True, activation="tanh",
                        recurrent_activation="sigmoid")
