"""PyTorch parity of the layers: over the whole configuration space (cell kind,
nonlinearity, 1-3 layers, bidirectional, batch_first, unbatched, bias, proj_size, initial
state or not, and packed variable-length batches via ``pack_padded_sequence(...,
enforce_sorted=False)`` / ``pad_packed_sequence(total_length=T)``), outputs, final states and
every gradient equal ``torch.nn.RNN/LSTM/GRU`` to 1e-10 in float64, with random weights and
non-zero biases moved over by ``load_state_dict``."""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy import stats  # noqa: E402
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence  # noqa: E402

from strategies import (KINDS, LayerCase, LayerConfig, examples, layer_cases,  # noqa: E402
                        layer_configs, pack_state, unpack_state)

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-10)


def torch_layer(cfg: LayerConfig, seed: int):
    """The torch module of ``cfg`` in float64, every parameter redrawn from U(-0.7, 0.7)."""
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(cfg.kind, torch.nn.RNN)
    m = cls(cfg.input_size, cfg.hidden_size, dtype=torch.float64, **cfg.kwargs())
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.uniform_(-0.7, 0.7, generator=gen)
    return m


def npseq_from(cfg, tm):
    m = cfg.build()
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return m


def torch_run(cfg, tm, case):
    """Forward (packed when the case has lengths) and autograd of
    L = <out, dout> + <h_n, dh_n> [+ <c_n, dc_n>]."""
    x = torch.tensor(case.x, requires_grad=True)
    s0 = None if case.state is None else [torch.tensor(s, requires_grad=True)
                                          for s in unpack_state(case.state)]
    state = None if s0 is None else pack_state(cfg.kind, s0)
    if case.lengths is None:
        out, state_n = tm(x, state)
    else:
        packed = pack_padded_sequence(x, torch.as_tensor(case.lengths),
                                      batch_first=cfg.batch_first, enforce_sorted=False)
        out, state_n = tm(packed, state)
        out, _ = pad_packed_sequence(out, batch_first=cfg.batch_first,
                                     total_length=cfg.seq_len)
    state_n = unpack_state(state_n)
    loss = (out * torch.from_numpy(case.dout)).sum()
    for s, d in zip(state_n, unpack_state(case.dstate)):
        loss = loss + (s * torch.from_numpy(d)).sum()
    loss.backward()
    return dict(out=out.detach().numpy(), state_n=[s.detach().numpy() for s in state_n],
                dx=x.grad.numpy(),
                dstate0=[] if s0 is None else [s.grad.numpy() for s in s0],
                grads={k: p.grad.numpy() for k, p in tm.named_parameters()})


def npseq_run(m, case):
    out, state_n = m(case.x, case.state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout, case.dstate)
    return dict(out=out, state_n=list(unpack_state(state_n)), dx=dx,
                dstate0=[] if case.state is None else list(unpack_state(dstate0)),
                grads=m.grads)


def assert_same(ours, theirs):
    np.testing.assert_allclose(ours["out"], theirs["out"], **TOL)
    assert len(ours["state_n"]) == len(theirs["state_n"])
    for a, b in zip(ours["state_n"], theirs["state_n"]):
        np.testing.assert_allclose(a, b, **TOL)
    np.testing.assert_allclose(ours["dx"], theirs["dx"], **TOL)
    assert len(ours["dstate0"]) == len(theirs["dstate0"])
    for a, b in zip(ours["dstate0"], theirs["dstate0"]):
        np.testing.assert_allclose(a, b, **TOL)
    assert list(ours["grads"]) == list(theirs["grads"])
    for k in theirs["grads"]:
        np.testing.assert_allclose(ours["grads"][k], theirs["grads"][k], err_msg=k, **TOL)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
@settings(max_examples=examples(40))
def test_layer_equals_torch(kind, data, seed):
    case = data.draw(layer_cases(configs=layer_configs(kinds=(kind,), dropout=False)))
    tm = torch_layer(case.config, seed)
    assert_same(npseq_run(npseq_from(case.config, tm), case), torch_run(case.config, tm, case))


def corner_configs():
    """Fixed configurations, so every run covers packed sequences with projections,
    bidirectional stacks, batch_first and unbatched input, whatever the draws above."""
    out = []
    for kind in KINDS:
        proj = 2 if kind == "lstm" else 0
        out += [
            (LayerConfig(kind, 3, 4, num_layers=3, bidirectional=True, batch_first=True,
                         proj_size=proj, seq_len=5, batch=3), True, True),
            (LayerConfig(kind, 2, 3, num_layers=2, bias=False, proj_size=proj and 1,
                         seq_len=4, batch=4), True, False),
            (LayerConfig(kind, 3, 4, num_layers=2, bidirectional=True, proj_size=proj,
                         seq_len=4, batch=None), False, True),
        ]
    return out


@pytest.mark.parametrize("cfg, with_lengths, with_state", corner_configs(),
                         ids=[f"{c.kind}-{i % 3}" for i, (c, _, _) in
                              enumerate(corner_configs())])
@given(data=st.data(), seed=st.integers(0, 2 ** 16))
@settings(max_examples=examples(4))
def test_layer_equals_torch_in_corners(cfg, with_lengths, with_state, data, seed):
    case = data.draw(layer_cases(configs=st.just(cfg), with_lengths=with_lengths,
                                 with_state=with_state))
    tm = torch_layer(cfg, seed)
    assert_same(npseq_run(npseq_from(cfg, tm), case), torch_run(cfg, tm, case))


@pytest.mark.parametrize("kind", KINDS)
def test_packed_batch_with_unsorted_lengths_and_length_one(kind):
    """A fixed packed batch: unsorted lengths, one of length 1, none of length T (so
    total_length matters), bidirectional, two layers, with an initial state."""
    rng = np.random.default_rng(0)
    cfg = LayerConfig(kind, 3, 4, num_layers=2, bidirectional=True, seq_len=6, batch=4,
                      proj_size=3 if kind == "lstm" else 0)
    case = next_case(cfg, rng, lengths=np.array([3, 1, 5, 2]), with_state=True)
    tm = torch_layer(cfg, 1)
    ours = npseq_run(npseq_from(cfg, tm), case)
    assert_same(ours, torch_run(cfg, tm, case))
    assert not np.any(ours["out"][5:])  # past the longest length: zeros, as torch pads


def next_case(cfg, rng, lengths=None, with_state=True):
    state = (pack_state(cfg.kind, [rng.standard_normal(s) for s in cfg.state_shapes()])
             if with_state else None)
    return LayerCase(cfg, rng.standard_normal(cfg.x_shape()), lengths, state,
                     rng.standard_normal(cfg.out_shape()),
                     pack_state(cfg.kind, [rng.standard_normal(s) for s in cfg.state_shapes()]))


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_in_eval_mode_equals_torch(kind):
    """Dropout masks cannot match torch's generator, but in eval() both turn it off."""
    rng = np.random.default_rng(2)
    cfg = LayerConfig(kind, 3, 4, num_layers=3, dropout=0.5, seq_len=4, batch=2)
    tm = torch_layer(cfg, 3).eval()
    m = npseq_from(cfg, tm).eval()
    case = next_case(cfg, rng)
    assert_same(npseq_run(m, case), torch_run(cfg, tm, case))


@given(cfg=layer_configs(dropout=False))
@settings(max_examples=examples(20))
def test_state_dict_keys_shapes_and_order_are_torchs(cfg):
    tm = torch_layer(cfg, 0)
    m = cfg.build()
    assert list(m.state_dict()) == list(tm.state_dict())
    for k, v in tm.state_dict().items():
        assert m.params[k].shape == tuple(v.shape)


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_matches_torchs_distribution(kind):
    """Statistically, not by seed: every parameter of npseq's and torch's layers comes from
    U(-1/sqrt(H), 1/sqrt(H))."""
    cfg = LayerConfig(kind, 16, 32, num_layers=2, bidirectional=True,
                      proj_size=8 if kind == "lstm" else 0)
    torch.manual_seed(0)
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind, torch.nn.RNN)
    tm = cls(16, 32, dtype=torch.float64, **cfg.kwargs())
    m = cfg.build()
    bound = 1 / np.sqrt(32)
    t_values = np.concatenate([v.numpy().ravel() for v in tm.state_dict().values()])
    n_values = np.concatenate([v.ravel() for v in m.params.values()])
    assert np.max(np.abs(n_values)) <= bound and np.max(np.abs(t_values)) <= bound
    assert stats.ks_2samp(n_values, t_values).pvalue > 1e-3
    assert stats.ks_2samp(n_values * 0.9, t_values).pvalue < 1e-6  # the test has power
