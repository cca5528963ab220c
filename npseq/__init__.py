"""npseq: recurrent neural networks in pure NumPy, every gradient written by hand.

Cells (one step): :class:`RNNCell`, :class:`LSTMCell`, :class:`GRUCell`.
Layers (whole sequences, stacked, bidirectional): :class:`RNN`, :class:`LSTM`, :class:`GRU`.
Both follow PyTorch's ``torch.nn`` API, parameter names, shapes and gate order.
Modern recurrences (same conventions): :class:`IndRNN`, :class:`MinGRU`, :class:`MinLSTM`
(the last two also by a parallel scan, :mod:`npseq.scan`), :class:`LRU`, and the xLSTM's
:class:`SLSTM` and :class:`MLSTM`.
Your own cell (a step forward and a step backward, a :class:`CellKind`):
:class:`Recurrent`, :class:`RecurrentCell`.
Gradient checking: :mod:`npseq.gradcheck`.
Study tools: :mod:`npseq.analysis` (gradient and Jacobian norms over time, gate statistics,
parameter counts), :mod:`npseq.rtrl` (real-time recurrent learning), :mod:`npseq.tasks`
(the long-range benchmark tasks: adding, copy memory, delayed echo, sequential MNIST).
Training: :class:`Linear`, :class:`Embedding`, :class:`Sequential`, the heads
:class:`LastStep` and :class:`FinalState`, :mod:`npseq.losses`, :mod:`npseq.optim`
(optimizers, learning-rate schedules), :func:`save`, :func:`load`; :mod:`npseq.data`
(padding, batches bucketed by length), :func:`sample` (temperature and top-k sampling of
tokens).
Sequence labelling: :func:`losses.ctc_loss`, decoders in :mod:`npseq.ctc`.
Sequence to sequence: :class:`AdditiveAttention`, :class:`MultiplicativeAttention`,
:class:`Seq2Seq` (teacher forcing, greedy and beam-search decoding).
Regularisation: the layers' and cells' ``recurrent_dropout=``, ``weight_dropout=`` and
``zoneout=``, :class:`Dropout`, :class:`LockedDropout`, ``Embedding(dropout=)``,
``losses.ar_loss``/``tar_loss``; initialisations: :mod:`npseq.init`.
A head of your own: subclass :class:`Module` (see its module docstring).
The pure core under every layer: :mod:`npseq.stack` (time-major stack forward/backward),
over :mod:`npseq.bptt` (one layer, one direction); :mod:`npseq.layout` and
:mod:`npseq.params` hold the boundary layout and the parameter shapes.
"""
from npseq.module import Module, UnpairedForwardWarning
from npseq.cell import GRUCell, LSTMCell, RNNCell, RNNCellBase
from npseq.grad_mode import enable_grad, is_grad_enabled, no_grad
from npseq.layers import GRU, LSTM, RNN, RNNBase
from npseq.cells.base import CellKind, ParamSpec, StepGrads
from npseq.recurrent import Recurrent, RecurrentCell
from npseq.modern import IndRNN, MinGRU, MinLSTM
from npseq.lru import LRU
from npseq.xlstm import MLSTM, SLSTM
from npseq.model import FinalState, LastStep, Sequential
from npseq.io import load, save
from npseq.nn import Embedding, Linear
from npseq.tbptt import truncated_bptt
from npseq.sampling import sample
from npseq.attention import AdditiveAttention, MultiplicativeAttention
from npseq.seq2seq import Seq2Seq
from npseq.dropout import Dropout, LockedDropout
from npseq import (analysis, ctc, data, gradcheck, init, layout, losses, optim, params, rtrl,
                   sampling, scan, stack, tasks)

__version__ = "0.1.0"

__all__ = ["RNNCell", "LSTMCell", "GRUCell", "RNN", "LSTM", "GRU", "Recurrent",
           "RecurrentCell", "RNNBase", "RNNCellBase", "Module", "UnpairedForwardWarning",
           "CellKind", "ParamSpec", "StepGrads", "no_grad", "enable_grad", "is_grad_enabled",
           "gradcheck", "truncated_bptt", "Linear", "Embedding", "Sequential", "LastStep",
           "FinalState", "save", "load", "losses", "optim", "analysis", "rtrl", "stack",
           "layout", "params", "data", "sampling", "sample", "ctc", "AdditiveAttention",
           "MultiplicativeAttention", "Seq2Seq", "Dropout", "LockedDropout", "init", "IndRNN",
           "MinGRU", "MinLSTM", "scan", "LRU", "SLSTM", "MLSTM",
           "tasks"]
