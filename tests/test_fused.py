"""The fused paths (npseq.cells.lstm_fused, gru_fused) against the step functions they
accelerate.

The step functions of npseq.cells.lstm and .gru are the reference: with
``npseq.bptt.FUSED = False``
the driver runs them step by step. The fused path must give the same values, gradients and
traces to float rounding, in both directions, across several backward blocks (T * B well past
the 512 rows of a block, with a small and a large batch), with random non-zero biases and
random upstream gradients of the output and of both final states. It is also checked against
central differences on its own, and it must not be taken where it does not apply.
"""
import numpy as np
import pytest

import npseq
import npseq.bptt
from npseq.bptt import sequence_backward, sequence_forward
from npseq.cells import GRU, LSTM
from npseq.cells import gru_fused, lstm_fused
from npseq.gradcheck import check_gradients
from npseq.stack import stack_backward, stack_forward

TOL = {np.float64: 1e-12, np.float32: 2e-5}


KINDS = {"LSTM": LSTM, "GRU": GRU}


def _carry(kind, B, H, rng=None):
    """An initial carry: random (h[, c]) with a generator, zeros without."""
    shape = (B, H)
    return tuple(np.zeros(shape) if rng is None else rng.uniform(-1, 1, shape)
                 for _ in range(kind.num_states))


def _layer(D, H, num_layers, bidirectional, dtype, seed, cell="LSTM"):
    m = getattr(npseq, cell)(D, H, num_layers=num_layers, bidirectional=bidirectional, dtype=dtype,
                   seed=seed)
    rng = np.random.default_rng(seed + 100)
    for v in m.params.values():  # non-zero biases, weights large enough to saturate some gates
        v[...] = rng.uniform(-0.9, 0.9, v.shape)
    return m


def _run(m, x, carries, dout, dfinals, fused, monkeypatch, mask=None):
    monkeypatch.setattr(npseq.bptt, "FUSED", fused)
    layers = m.stack_params()
    out, finals, record = stack_forward(m.kind, layers, x, carries, mask)
    for per_layer in record.records:
        for rec in per_layer:
            assert (rec.fused is not None) == fused  # the path under test was the one taken
    trace = {}
    dx, dcarries, grads = stack_backward(m.kind, layers, record, dout, dfinals, trace=trace)
    return out, finals, dx, dcarries, grads, trace


def _close(a, b, tol, what):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _close(a[k], b[k], tol, f"{what}[{k}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), what
        for j, (u, v) in enumerate(zip(a, b)):
            _close(u, v, tol, f"{what}[{j}]")
    else:
        scale = max(np.abs(b).max(), 1e-30)
        err = np.abs(np.asarray(a, np.float64) - b).max() / scale
        assert err < tol, f"{what}: relative error {err:.2e} >= {tol:.0e}"


@pytest.mark.parametrize("lengths", [False, True])
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("T, B, D, H, num_layers, bidirectional", [
    (5, 3, 4, 6, 1, False),  # one block
    (400, 3, 4, 6, 2, True),  # 171 steps a block: 3 blocks, the last one short
    (21, 64, 5, 7, 2, True),  # 8 steps a block: 3 blocks
    (1, 2, 3, 4, 1, True),  # a single step
    (600, 1, 3, 4, 1, True),  # one sequence: 512 steps a block, 2 blocks
    (7, 2, 1, 3, 2, False),  # one feature: the input product is a broadcast multiplication
    (200, 3, 400, 64, 1, True),  # W_ih past fused.BATCHED_INPUT_ENTRIES: products a block, 2
])
def test_fused_equals_the_step_functions(T, B, D, H, num_layers, bidirectional, dtype, cell,
                                         lengths, monkeypatch):
    """With ``lengths``, unequal lengths from 1 to T (one full), as the layers mask them:
    the upstream gradient is random at the padded steps too, where it must be ignored."""
    m = _layer(D, H, num_layers, bidirectional, dtype, seed=T + B, cell=cell)
    S = m.kind.num_states
    rng = np.random.default_rng(T * B)
    LD = num_layers * (2 if bidirectional else 1)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    carries = tuple(rng.uniform(-1, 1, (LD, B, H)).astype(dtype) for _ in range(S))
    dout = rng.standard_normal((T, B, H * (2 if bidirectional else 1))).astype(dtype)
    dfinals = tuple(rng.standard_normal((LD, B, H)).astype(dtype) for _ in range(S))
    mask = None
    if lengths:
        L = rng.integers(1, T + 1, B)
        L[0] = T
        mask = (np.arange(T)[:, None] < L[None, :])[..., None]  # (T, B, 1)
    before = [a.copy() for a in (x, dout) + carries + dfinals]
    fused = _run(m, x, carries, dout, dfinals, True, monkeypatch, mask)
    steps = _run(m, x, carries, dout, dfinals, False, monkeypatch, mask)
    for a, b in zip((x, dout) + carries + dfinals, before):
        np.testing.assert_array_equal(a, b)  # nothing passed in was modified
    for name, a, b in zip(("out", "finals", "dx", "dcarries", "grads", "trace"), fused, steps):
        _close(a, b, TOL[dtype], name)
    assert fused[0].dtype == dtype and fused[2].dtype == dtype


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("reverse", [False, True])
def test_fused_forward_without_a_record_gives_the_same_output_and_keeps_nothing(reverse, cell,
                                                                               monkeypatch):
    m = _layer(3, 5, 1, False, np.float64, seed=1, cell=cell)
    kind, p = KINDS[cell], m.layer_params()
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 4, 3))
    carry0 = _carry(kind, 4, 5, rng)
    out, carry, record = sequence_forward(kind, x, carry0, p, reverse=reverse)
    out2, carry2, record2 = sequence_forward(kind, x, carry0, p, reverse=reverse, keep=False)
    assert record.fused is not None and record2 is None
    np.testing.assert_array_equal(out, out2)
    for c, c2 in zip(carry, carry2):
        np.testing.assert_array_equal(c, c2)
    monkeypatch.setattr(npseq.bptt, "FUSED", False)
    out3, carry3, _ = sequence_forward(kind, x, carry0, p, reverse=reverse, keep=False)
    _close(out, out3, 1e-13, "out")
    _close(carry, carry3, 1e-13, "carry")


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_the_output_handed_out_can_be_changed_before_the_backward(cell):
    """The fused record keeps its own copy of h: a caller writing into the output it got
    does not change the gradients."""
    m = _layer(3, 5, 1, False, np.float64, seed=3, cell=cell)
    kind, p = KINDS[cell], m.layer_params()
    rng = np.random.default_rng(4)
    x = rng.standard_normal((12, 2, 3))
    carry0 = _carry(kind, 2, 5)
    dout = rng.standard_normal((12, 2, 5))
    dlast = _carry(kind, 2, 5, rng)
    out, _, record = sequence_forward(kind, x, carry0, p)
    assert record.fused is not None
    expected = sequence_backward(kind, dout, dlast, record, p)
    out[...] = 7.0
    got = sequence_backward(kind, dout, dlast, record, p)
    np.testing.assert_array_equal(got[0], expected[0])  # dx
    for a, b in zip(got[1], expected[1]):  # dh0, dc0
        np.testing.assert_array_equal(a, b)
    for k in expected[2]:
        np.testing.assert_array_equal(got[2][k], expected[2][k], err_msg=k)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_fused_layer_against_central_differences(bidirectional, cell):
    """An independent check: the layer (which takes the fused path) against central
    differences of its own forward, for x, the initial state and every parameter."""
    m = _layer(3, 4, 2, bidirectional, np.float64, seed=5, cell=cell)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((9, 2, 3))
    LD = 2 * (2 if bidirectional else 1)
    state = tuple(rng.uniform(-1, 1, (LD, 2, 4)) for _ in range(m.kind.num_states))
    state = state if cell == "LSTM" else state[0]
    errors = check_gradients(m, x, state, seed=7)
    names = {"state[0]", "state[1]"} if cell == "LSTM" else {"state"}
    assert set(errors) >= {"x", "weight_hh_l0", "bias_hh_l1"} | names
    assert max(errors.values()) < 1e-7, errors


@pytest.mark.parametrize("cell, options, why", [
    ("LSTM", dict(proj_size=2), "a projection"),
    ("LSTM", dict(zoneout=0.2), "zoneout"),
    ("GRU", dict(zoneout=0.2), "zoneout"),
    ("LSTM", dict(recurrent_dropout=0.3), "recurrent dropout"),
    ("GRU", dict(recurrent_dropout=0.3), "recurrent dropout"),
    ("LSTM", dict(checkpoint_every=3), "checkpointing"),
    ("GRU", dict(checkpoint_every=3), "checkpointing"),
    ("LSTM", dict(peephole=True), "another cell (peepholes)"),
    ("LSTM", dict(layer_norm=True), "another cell (layer norm)"),
    ("GRU", dict(reset_after=False), "another cell (reset before W_hn)"),
])
def test_the_fused_path_is_not_taken_where_it_does_not_apply(cell, options, why):
    m = getattr(npseq, cell)(3, 4, seed=0, **options)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    layers = m.stack_params()
    carries = m.state_to_carries(None, 2)
    kw = {}
    if "zoneout" in options:
        kw["zoneout"] = (0.2,) * m.kind.num_states
    if "recurrent_dropout" in options:
        kw["recurrent_dropout"] = 0.3
    _, _, record = stack_forward(m.kind, layers, x, carries,
                                 checkpoint_every=options.get("checkpoint_every"),
                                 rng=np.random.default_rng(1), **kw)
    assert record.records[0][0].fused is None, why


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_capture_takes_the_steps_and_lengths_the_fused_path(cell):
    m = getattr(npseq, cell)(3, 4, seed=0)
    kind, p = KINDS[cell], m.layer_params()
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    carry0 = _carry(kind, 2, 4)
    mask = np.ones((6, 2, 1), bool)
    mask[4:, 1] = False
    record = sequence_forward(kind, x, carry0, p, mask=mask)[2]
    assert record.fused is not None and record.mask is mask
    capture = [None] * 6
    assert sequence_forward(kind, x, carry0, p, capture=capture)[2].fused is None
    assert capture[0] is not None  # the gate activations a study tool reads
    assert sequence_forward(kind, x, carry0, p)[2].fused is not None


def test_a_kind_derived_from_lstm_with_other_step_functions_never_takes_it():
    from functools import partial
    from npseq.activations import ACTIVATIONS
    from npseq.cells.lstm import lstm_step_backward, lstm_step_forward
    relu = ACTIVATIONS["relu"]
    kind = LSTM._replace(step_forward=partial(lstm_step_forward, activation=relu),
                         step_backward=partial(lstm_step_backward, activation=relu))
    assert kind.fused is LSTM.fused  # inherited, but it must not apply
    m = npseq.LSTM(3, 4, seed=0)
    x = np.random.default_rng(0).standard_normal((6, 2, 3))
    carry0 = (np.zeros((2, 4)), np.zeros((2, 4)))
    record = sequence_forward(kind, x, carry0, m.layer_params())[2]
    assert record.fused is None


def test_applies_and_the_field_are_checked():
    assert lstm_fused.applies({"weight_ih": 1, "weight_hh": 1})
    assert not lstm_fused.applies({"weight_ih": 1, "weight_hh": 1, "weight_hr": 1})
    assert gru_fused.applies({"weight_ih": 1, "weight_hh": 1})
    assert not gru_fused.applies({"weight_ih": 1})
    with pytest.raises(TypeError, match="fused: expected None or an npseq.cells.base.FusedPath"):
        LSTM._replace(fused=lambda: None)


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_float64_keeps_the_relative_precision_of_tiny_gates(cell, monkeypatch):
    """Saturated gates (pre-activations near -40): in float64 the fused path takes expit, as
    the steps do, so tiny gate values and what they feed keep their relative precision (the
    tanh form would round sigma(-40) ~ 4e-18 to 0)."""
    m = _layer(2, 3, 1, False, np.float64, seed=9, cell=cell)
    for v in m.params.values():
        v *= 0.1
    m.params["bias_ih_l0"][...] = -40.0  # every gate near sigma(-40) or tanh(-40)
    x = np.ones((3, 2, 2))
    carries = m.state_to_carries(None, 2)
    dout = np.random.default_rng(1).standard_normal((3, 2, 3))
    dfinals = tuple(np.zeros_like(c) for c in carries)
    fused = _run(m, x, carries, dout, dfinals, True, monkeypatch)
    steps = _run(m, x, carries, dout, dfinals, False, monkeypatch)
    for name, a, b in zip(("out", "finals", "dx", "dcarries", "grads"), fused, steps):
        for u, v in zip(*(list(_leaves(t)) for t in (a, b))):
            np.testing.assert_allclose(u, v, rtol=1e-13, atol=0, err_msg=name)
    # LSTM: h = o tanh(c) with o ~ 4e-18; GRU: dh0 = dh z + ... with z ~ 4e-18
    tiny = np.abs(steps[0]) if cell == "LSTM" else np.abs(steps[3][0])
    assert np.all(tiny > 0) and np.all(tiny < 1e-10)  # tiny, not rounded to 0


def _leaves(tree):
    if isinstance(tree, dict):
        for k in sorted(tree):
            yield from _leaves(tree[k])
    elif isinstance(tree, (list, tuple)):
        for t in tree:
            yield from _leaves(t)
    else:
        yield np.asarray(tree)
