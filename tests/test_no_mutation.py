"""Nothing the caller passes in is modified: inputs, states, lengths, upstream gradients,
state dicts.

Every array handed to npseq is made read-only (an in-place write would raise) and a copy is
compared with it after the call (a write through some other path would show). The arrays
are given in the module's own dtype, so that no cast makes a private copy first.
"""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npseq
from npseq.gradcheck import check_gradients, numerical_gradient
from strategies import cell_cases, layer_cases, make_cell

DTYPES = (np.float32, np.float64)


def frozen(tree, dtype=None):
    """A read-only copy of an array, or of each array in a tuple (None stays None)."""
    if tree is None:
        return None
    if isinstance(tree, (tuple, list)):
        return tuple(frozen(t, dtype) for t in tree)
    arr = np.array(tree, dtype=dtype)
    arr.flags.writeable = False
    return arr


def snapshot(tree):
    if tree is None:
        return None
    if isinstance(tree, (tuple, list)):
        return tuple(snapshot(t) for t in tree)
    return np.array(tree, copy=True)


def assert_unchanged(tree, before):
    if tree is None:
        assert before is None
        return
    if isinstance(tree, (tuple, list)):
        assert len(tree) == len(before)
        for t, b in zip(tree, before):
            assert_unchanged(t, b)
        return
    assert not tree.flags.writeable
    np.testing.assert_array_equal(tree, before, strict=True)


@given(cell_cases(), st.sampled_from(DTYPES))
def test_cell_forward_and_backward_leave_their_arguments_alone(case, dtype):
    cell = make_cell(case.kind, case.cell.input_size, case.cell.hidden_size,
                     bias=case.cell.bias, dtype=dtype)
    cell.load_state_dict(case.cell.state_dict())
    x, state, dstate = (frozen(a, dtype) for a in (case.x, case.state, case.dstate))
    before = [snapshot(a) for a in (x, state, dstate)]
    cell(x, state)
    cell.backward(dstate)
    for a, b in zip((x, state, dstate), before):
        assert_unchanged(a, b)


@given(layer_cases(), st.sampled_from(DTYPES), st.booleans())
def test_layer_forward_and_backward_leave_their_arguments_alone(case, dtype, lengths_as_list):
    m = case.config.build(dtype=dtype)
    x, state, dout, dstate = (frozen(a, dtype) for a in (case.x, case.state, case.dout,
                                                         case.dstate))
    lengths = frozen(case.lengths)
    if lengths_as_list and lengths is not None:
        lengths = [int(n) for n in lengths]
        lengths_before = list(lengths)
    args = (x, state, dout, dstate) + (() if isinstance(lengths, list) else (lengths,))
    before = [snapshot(a) for a in args]
    m(x, state, lengths)
    m.backward(dout, dstate)
    for a, b in zip(args, before):
        assert_unchanged(a, b)
    if isinstance(lengths, list):
        assert lengths == lengths_before


@pytest.mark.parametrize("make", [lambda: npseq.LSTM(3, 4, num_layers=2, proj_size=2, seed=0),
                                  lambda: npseq.GRUCell(3, 4, seed=0),
                                  lambda: npseq.RNN(3, 4, bias=False, dtype=np.float32, seed=0)])
def test_load_state_dict_copies_in_and_leaves_the_mapping_alone(make):
    source = make()
    source.load_state_dict({k: v + 1 for k, v in source.params.items()})  # unlike make()'s
    sd = {k: frozen(v) for k, v in source.state_dict().items()}
    ids, before = {k: id(v) for k, v in sd.items()}, snapshot(tuple(sd.values()))
    m = make()
    m.load_state_dict(sd)
    assert {k: id(v) for k, v in sd.items()} == ids
    assert_unchanged(tuple(sd.values()), before)
    for k, p in m.params.items():
        np.testing.assert_array_equal(p, sd[k])
        assert not np.shares_memory(p, sd[k])
        p += 1  # the module's own, writable arrays: the caller's stay as they were
    assert_unchanged(tuple(sd.values()), before)


def test_state_dict_returns_copies():
    m = npseq.GRU(2, 3, seed=0)
    before = snapshot(tuple(m.params.values()))
    for v in m.state_dict().values():
        v += 1
    for p, b in zip(m.params.values(), before):
        np.testing.assert_array_equal(p, b, strict=True)


@pytest.mark.parametrize("batch_first", [False, True])
def test_truncated_bptt_leaves_x_state_and_dout_alone(batch_first):
    m = npseq.LSTM(2, 3, batch_first=batch_first, seed=0)
    rng = np.random.default_rng(0)
    x = frozen(rng.standard_normal((4, 7, 2) if batch_first else (7, 4, 2)))
    state = frozen((rng.standard_normal((1, 4, 3)), rng.standard_normal((1, 4, 3))))
    douts = []

    def loss_and_grad(out, start, stop):
        dout = frozen(rng.standard_normal(out.shape))
        douts.append((dout, snapshot(dout)))
        return 0.0, dout

    before = snapshot((x, state))
    npseq.truncated_bptt(m, x, 3, loss_and_grad, state=state)
    assert_unchanged((x, state), before)
    assert len(douts) == 3
    for dout, copy in douts:
        assert_unchanged(dout, copy)


@pytest.mark.parametrize("make, x_shape, state_shapes", [
    (lambda: npseq.LSTMCell(2, 3, seed=0), (2, 2), [(2, 3), (2, 3)]),
    (lambda: npseq.GRU(2, 3, num_layers=2, dropout=0.5, seed=0), (3, 2, 2), [(2, 2, 3)]),
])
def test_check_gradients_leaves_x_state_and_parameters_alone(make, x_shape, state_shapes):
    m = make()
    rng = np.random.default_rng(1)
    x = frozen(rng.standard_normal(x_shape))
    parts = frozen([rng.standard_normal(s) for s in state_shapes])
    state = parts if len(parts) == 2 else parts[0]
    before, params = snapshot((x, state)), snapshot(tuple(m.params.values()))
    errors = check_gradients(m, x, state)
    assert max(errors.values()) < 1e-6
    assert_unchanged((x, state), before)
    for p, b in zip(m.params.values(), params):
        np.testing.assert_array_equal(p, b, strict=True)  # restored bit for bit


def test_numerical_gradient_restores_what_it_perturbs():
    x = np.random.default_rng(2).standard_normal((3, 4))
    copy = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(np.sin(x))), x)
    np.testing.assert_array_equal(x, copy, strict=True)
    np.testing.assert_allclose(grad, np.cos(x), rtol=1e-8)


# -- the training toolkit -------------------------------------------------------------------------
def test_losses_leave_logits_targets_and_masks_alone():
    rng = np.random.default_rng(3)
    z = frozen(rng.standard_normal((4, 3, 5)))
    y = frozen(rng.integers(0, 5, (4, 3)))
    mask = frozen(rng.random((4, 3)) < 0.7)
    t = frozen(rng.random((4, 3, 5)))
    args = (z, y, mask, t)
    before = snapshot(args)
    npseq.losses.cross_entropy(z, y, mask=mask)
    npseq.losses.softmax(z, axis=1)
    npseq.losses.mse_loss(z, t)
    npseq.losses.bce_with_logits(z, t)
    assert_unchanged(args, before)


@pytest.mark.parametrize("dtype", DTYPES)
def test_model_with_heads_leaves_its_arguments_alone(dtype):
    rng = np.random.default_rng(4)
    m = npseq.Sequential(npseq.Embedding(6, 3, dtype=dtype, seed=0),
                         npseq.GRU(3, 4, batch_first=True, dtype=dtype, seed=1),
                         npseq.LastStep(), npseq.Linear(4, 2, dtype=dtype, seed=2))
    idx = frozen(rng.integers(0, 6, (2, 5)))
    lengths = frozen(np.array([5, 3]))
    h0 = frozen(rng.standard_normal((1, 2, 4)), dtype)
    dy = frozen(rng.standard_normal((2, 2)), dtype)
    args = (idx, lengths, h0, dy)
    before = snapshot(args)
    m(idx, h0, lengths)
    m.backward(dy)
    assert_unchanged(args, before)


@pytest.mark.parametrize("make", [
    lambda p, g: npseq.optim.SGD(p, g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1),
    lambda p, g: npseq.optim.Adam(p, g, weight_decay=0.1),
    lambda p, g: npseq.optim.AdamW(p, g),
    lambda p, g: npseq.optim.RMSprop(p, g, momentum=0.5, centered=True, weight_decay=0.1),
    lambda p, g: npseq.optim.Adagrad(p, g, weight_decay=0.1)])
def test_optimizer_steps_change_the_parameters_only(make):
    m = npseq.LSTM(2, 3, seed=0)
    rng = np.random.default_rng(5)
    for g in m.grads.values():
        g[...] = rng.standard_normal(g.shape)
    grads_before, params_before = snapshot(tuple(m.grads.values())), snapshot(
        tuple(m.params.values()))
    opt = make(m.params, m.grads)
    opt.step()
    opt.step()
    for g, b in zip(m.grads.values(), grads_before):
        np.testing.assert_array_equal(g, b, strict=True)
    assert all(not np.array_equal(p, b) for p, b in zip(m.params.values(), params_before))
