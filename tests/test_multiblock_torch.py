"""PyTorch parity past one block of the BPTT driver: T*B of 1100 to 1500 rows.

``torch.nn.LSTM`` (with and without ``proj_size``), ``GRU`` and ``RNN`` (tanh, relu), two
layers, both directions, packed batches of unequal unsorted lengths
(``pack_padded_sequence(..., enforce_sorted=False)``), an initial state, random upstream
gradients of ``out`` and of the final state: outputs, final states, ``dx``, ``dh0``, ``dc0``
and every parameter gradient equal torch's autograd to 1e-10 in float64, with and without
``checkpoint_every``. ``test_multiblock.py`` checks the same sizes by central differences.
"""
import dataclasses

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from strategies import (LayerConfig, examples, lengths_for, long_configs,  # noqa: E402
                        pack_state, seeded_case, unpack_state)

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-10)


def torch_layer(cfg, seed):
    """The torch module of ``cfg`` in float64, every parameter from U(-0.6, 0.6)."""
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cfg.kind, torch.nn.RNN)
    m = cls(cfg.input_size, cfg.hidden_size, dtype=torch.float64, **cfg.kwargs())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.6, 0.6, generator=gen)
    return m


def torch_run(cfg, tm, case):
    """Packed forward and autograd of L = <out, dout> + <h_n, dh_n> [+ <c_n, dc_n>]."""
    x = torch.tensor(case.x, requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in unpack_state(case.state)]
    packed = pack_padded_sequence(x, torch.as_tensor(case.lengths), batch_first=cfg.batch_first,
                                  enforce_sorted=False)
    out, state_n = tm(packed, pack_state(cfg.kind, s0))
    out, _ = pad_packed_sequence(out, batch_first=cfg.batch_first, total_length=cfg.seq_len)
    state_n = unpack_state(state_n)
    loss = (out * torch.from_numpy(case.dout)).sum()
    for s, d in zip(state_n, unpack_state(case.dstate)):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    found = {"out": out, "dx": x.grad, **{f"state_n[{i}]": s for i, s in enumerate(state_n)},
             **{f"dstate0[{i}]": s.grad for i, s in enumerate(s0)},
             **{k: p.grad for k, p in tm.named_parameters()}}
    return {k: v.detach().numpy() for k, v in found.items()}


def npseq_run(cfg, tm, case):
    m = cfg.build()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    out, state_n = m(case.x, case.state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout, case.dstate)
    return {"out": out, "dx": dx, **{f"state_n[{i}]": s for i, s in enumerate(
        unpack_state(state_n))}, **{f"dstate0[{i}]": d for i, d in enumerate(
            unpack_state(dstate0))}, **m.grads}


def assert_same(ours, theirs):
    assert sorted(ours) == sorted(theirs)
    for k in theirs:
        assert ours[k].shape == theirs[k].shape, k
        np.testing.assert_allclose(ours[k], theirs[k], err_msg=k, **TOL)


T, B = 230, 6  # 1380 rows: two full blocks of about 512 and a part of one
LENGTHS = np.array([101, 230, 1, 64, 229, 180])  # unequal, unsorted, one of length 1
CONFIGS = {
    "lstm": LayerConfig("lstm", 3, 4, num_layers=2, bidirectional=True, seq_len=T, batch=B),
    "lstm_proj": LayerConfig("lstm", 3, 4, num_layers=2, bidirectional=True, proj_size=2,
                             batch_first=True, seq_len=T, batch=B),
    "gru": LayerConfig("gru", 3, 4, num_layers=2, bidirectional=True, seq_len=T, batch=B),
    "rnn_tanh": LayerConfig("rnn_tanh", 3, 4, num_layers=2, bidirectional=True, seq_len=T,
                            batch=B, batch_first=True),
    "rnn_relu": LayerConfig("rnn_relu", 3, 4, num_layers=2, bidirectional=True, seq_len=T,
                            batch=B),
}


@pytest.mark.parametrize("checkpoint_every", [None, 17])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_layer_past_one_block_equals_torch(name, checkpoint_every):
    cfg = dataclasses.replace(CONFIGS[name], checkpoint_every=checkpoint_every)
    seed = sum(map(ord, name))
    case = seeded_case(cfg, seed, lengths=LENGTHS)
    tm = torch_layer(cfg, seed)
    assert_same(npseq_run(cfg, tm, case), torch_run(cfg, tm, case))


@settings(max_examples=examples(6))
@given(cfg=long_configs(variants=False, max_size=4), data=st.data(), seed=st.integers(0, 2 ** 16))
def test_drawn_layers_past_one_block_equal_torch(cfg, data, seed):
    """Drawn: kind, projection or not, 1-2 layers, directions, batch_first,
    checkpoint_every, sizes with T*B past one block, lengths in 1..T."""
    case = seeded_case(cfg, seed, lengths=data.draw(lengths_for(cfg.seq_len, cfg.batch)))
    tm = torch_layer(cfg, seed)
    assert_same(npseq_run(cfg, tm, case), torch_run(cfg, tm, case))
