"""The cells' step functions: one module a cell, forward and backward side by side.

=========  =====================================  ==================
cell       step functions                         CellKind
=========  =====================================  ==================
Elman RNN  ``rnn_step_forward/rnn_step_backward``  ``RNN_TANH``, ``RNN_RELU``
LSTM       ``lstm_step_forward/lstm_step_backward`` ``LSTM``
GRU        ``gru_step_forward/gru_step_backward``  ``GRU``
=========  =====================================  ==================

Cells without a full recurrent matrix (``has_weight_hh=False``): :mod:`.indrnn` (IndRNN, a
recurrent vector ``u``) and :mod:`.minrnn` (minGRU and minLSTM, gates that read only ``x``,
also run by the parallel scan of :mod:`npseq.scan`); derivations in ``docs/modern.md``.
:mod:`.lru` is the LRU (Orvieto et al. 2023), a complex diagonal recurrence held in real
arrays, with neither ``weight_ih`` nor ``weight_hh`` (``lru_kind``; ``docs/lru.md``).

The plain LSTM and GRU also have a fused whole-sequence path (``CellKind.fused``:
:mod:`.lstm_fused`, :mod:`.gru_fused`, sharing :mod:`.fused`), which the BPTT driver takes
where it applies; it equals their step functions to rounding.

The variants (:mod:`.lstm_layernorm`, :mod:`.lstm_labml`, :mod:`.lstm_peephole`,
:mod:`.gru_reset_before`, each ``<module>_step_forward/_step_backward``; CellKinds
``LSTM_LAYERNORM``, ``LSTM_LAYERNORM_LABML``, ``LSTM_PEEPHOLE``, ``GRU_RESET_BEFORE``) are chosen from the layer options by :mod:`.variants`; derivations in
``docs/variants.md``.
"""
from npseq.cells.base import (CellCache, CellKind, StepGrads, cell_backward, cell_forward,
                              input_projection, param_grads)
from npseq.cells.gru import GRU, GRUCache, gru_step_backward, gru_step_forward
from npseq.cells.lstm import LSTM, LSTMCache, lstm_step_backward, lstm_step_forward
from npseq.cells.rnn import RNN_RELU, RNN_TANH, RNNCache, rnn_step_backward, rnn_step_forward
from npseq.cells.gru_reset_before import GRU_RESET_BEFORE
from npseq.cells.lstm_layernorm import LSTM_LAYERNORM
from npseq.cells.lstm_labml import LSTM_LAYERNORM_LABML
from npseq.cells.lstm_peephole import LSTM_PEEPHOLE
