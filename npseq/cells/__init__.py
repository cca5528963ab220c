"""The cells' step functions: one module a cell, forward and backward side by side.

=========  =====================================  ==================
cell       step functions                         CellKind
=========  =====================================  ==================
Elman RNN  ``rnn_step_forward/rnn_step_backward``  ``RNN_TANH``, ``RNN_RELU``
LSTM       ``lstm_step_forward/lstm_step_backward`` ``LSTM``
GRU        ``gru_step_forward/gru_step_backward``  ``GRU``
=========  =====================================  ==================
"""
from npseq.cells.base import (CellCache, CellKind, StepGrads, cell_backward, cell_forward,
                              input_projection, param_grads)
from npseq.cells.gru import GRU, GRUCache, gru_step_backward, gru_step_forward
from npseq.cells.lstm import LSTM, LSTMCache, lstm_step_backward, lstm_step_forward
from npseq.cells.rnn import RNN_RELU, RNN_TANH, RNNCache, rnn_step_backward, rnn_step_forward
