"""Parameter counts of npseq.analysis equal PyTorch's for the same configuration."""
import pytest

torch = pytest.importorskip("torch")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import npseq  # noqa: E402
from npseq.analysis import count_parameters, parameter_summary  # noqa: E402

from strategies import examples, layer_configs  # noqa: E402

pytestmark = pytest.mark.torch

TORCH_LAYERS = {"rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN, "lstm": torch.nn.LSTM,
                "gru": torch.nn.GRU}

CONFIGS = [  # (kind, input_size, hidden_size, constructor keywords)
    ("lstm", 7, 5, dict(num_layers=3, proj_size=3, bidirectional=True)),
    ("lstm", 7, 5, dict(num_layers=3, proj_size=2, bias=False)),
    ("lstm", 1, 9, dict(num_layers=3, bidirectional=True, bias=False)),
    ("gru", 4, 6, dict(num_layers=3, bidirectional=True)),
    ("gru", 4, 6, dict(num_layers=2, bias=False, bidirectional=True)),
    ("rnn_relu", 3, 8, dict(num_layers=3, bidirectional=True)),
    ("rnn_tanh", 3, 8, dict(num_layers=1, bias=False)),
]


def _torch_layer(kind, D, H, kw):
    kw = dict(kw)
    if kind.startswith("rnn_"):
        kw["nonlinearity"] = kind[4:]
    return TORCH_LAYERS[kind](D, H, **kw)


def _npseq_layer(kind, D, H, kw):
    kw = dict(kw)
    if kind.startswith("rnn_"):
        return npseq.RNN(D, H, nonlinearity=kind[4:], **kw)
    return {"lstm": npseq.LSTM, "gru": npseq.GRU}[kind](D, H, **kw)


def _assert_counts_match(ours, theirs):
    want = {name: (tuple(p.shape), p.numel()) for name, p in theirs.named_parameters()}
    summary = parameter_summary(ours)
    assert {name: (shape, n) for name, shape, n in summary.rows} == want
    assert [name for name, _, _ in summary.rows] == list(want)  # PyTorch's order
    assert summary.total == count_parameters(ours) == sum(p.numel() for p in theirs.parameters())


@pytest.mark.parametrize("kind, D, H, kw", CONFIGS)
def test_layer_counts_equal_torch(kind, D, H, kw):
    _assert_counts_match(_npseq_layer(kind, D, H, kw), _torch_layer(kind, D, H, kw))


@settings(max_examples=examples(30))
@given(cfg=layer_configs(max_layers=3, max_size=6, dropout=False))
def test_drawn_layer_counts_equal_torch(cfg):
    _assert_counts_match(cfg.build(), _torch_layer(cfg.kind, cfg.input_size, cfg.hidden_size,
                                                   {k: v for k, v in cfg.kwargs().items()
                                                    if k != "nonlinearity"}))


@settings(max_examples=examples(12))
@given(kind=st.sampled_from(["rnn", "lstm", "gru"]), D=st.integers(1, 6), H=st.integers(1, 6),
       bias=st.booleans())
def test_cell_counts_equal_torch(kind, D, H, bias):
    ours = {"rnn": npseq.RNNCell, "lstm": npseq.LSTMCell, "gru": npseq.GRUCell}[kind](
        D, H, bias=bias)
    theirs = {"rnn": torch.nn.RNNCell, "lstm": torch.nn.LSTMCell,
              "gru": torch.nn.GRUCell}[kind](D, H, bias=bias)
    _assert_counts_match(ours, theirs)
