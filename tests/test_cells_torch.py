"""PyTorch parity of the cells: values and every gradient over several steps equal
``torch.nn.RNNCell/LSTMCell/GRUCell`` to 1e-10 in float64, with random weights and non-zero
biases; parameter names, shapes and the initialisation bound are PyTorch's."""
import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from scipy import stats  # noqa: E402

from strategies import (KINDS, arrays, examples, make_cell, num_states, pack_state,  # noqa: E402
                        param_arrays, unpack_state, upstream_arrays)

pytestmark = pytest.mark.torch
TOL = dict(rtol=1e-10, atol=1e-10)


def torch_cell(kind, D, H, bias):
    if kind.startswith("rnn_"):
        return torch.nn.RNNCell(D, H, bias=bias, nonlinearity=kind[4:], dtype=torch.float64)
    cls = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind]
    return cls(D, H, bias=bias, dtype=torch.float64)


def to_numpy(t):
    return t.detach().numpy()


@st.composite
def multi_step_cases(draw):
    """A cell kind, sizes, T steps of input (batched or not), initial state, parameters with
    non-zero biases, and upstream gradients of every step's h and of the last state."""
    kind = draw(st.sampled_from(KINDS))
    D, H, T = draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    batch = draw(st.sampled_from((None, 1, 2, 3)))
    bias = draw(st.booleans())
    lead = () if batch is None else (batch,)
    shapes = {k: v.shape for k, v in make_cell(kind, D, H, bias).params.items()}
    return dict(kind=kind, D=D, H=H, bias=bias, params=draw(param_arrays(shapes, H)),
                xs=draw(arrays((T,) + lead + (D,))),
                state=[draw(arrays(lead + (H,))) for _ in range(num_states(kind))],
                douts=draw(upstream_arrays((T,) + lead + (H,))),
                dstate=[draw(upstream_arrays(lead + (H,))) for _ in range(num_states(kind))])


@given(case=multi_step_cases())
@settings(max_examples=examples(40))
def test_cell_over_several_steps_equals_torch(case):
    kind = case["kind"]
    tc = torch_cell(kind, case["D"], case["H"], case["bias"])
    with torch.no_grad():
        for k, p in tc.named_parameters():
            p.copy_(torch.from_numpy(case["params"][k]))
    cell = make_cell(kind, case["D"], case["H"], case["bias"])
    cell.load_state_dict({k: to_numpy(v) for k, v in tc.state_dict().items()})

    # torch: autograd through the loop
    xs = torch.tensor(case["xs"], requires_grad=True)
    s0 = [torch.tensor(s, requires_grad=True) for s in case["state"]]
    state = tuple(s0) if kind == "lstm" else s0[0]
    hs = []
    for t in range(len(xs)):
        state = tc(xs[t], state)
        hs.append(unpack_state(state)[0])
    loss = sum((h * torch.from_numpy(d)).sum() for h, d in zip(hs, case["douts"]))
    loss = loss + sum((s * torch.from_numpy(d)).sum()
                      for s, d in zip(unpack_state(state), case["dstate"]))
    loss.backward()

    # npseq: the same loop by hand, backward in reverse order
    np_state = pack_state(kind, case["state"])
    np_hs = []
    for x_t in case["xs"]:
        np_state = cell(x_t, np_state)
        np_hs.append(unpack_state(np_state)[0])
    dcarry = tuple(case["dstate"])
    dxs = [None] * len(case["xs"])
    for t in reversed(range(len(case["xs"]))):
        dcarry = (dcarry[0] + case["douts"][t],) + dcarry[1:]
        dxs[t], dprev = cell.backward(pack_state(kind, dcarry))
        dcarry = unpack_state(dprev)

    for a, b in zip(np_hs, hs):
        np.testing.assert_allclose(a, to_numpy(b), **TOL)
    for a, b in zip(unpack_state(np_state), unpack_state(state)):
        np.testing.assert_allclose(a, to_numpy(b), **TOL)
    np.testing.assert_allclose(np.stack(dxs), xs.grad.numpy(), **TOL)
    for a, b in zip(dcarry, s0):
        np.testing.assert_allclose(a, b.grad.numpy(), **TOL)
    for k, p in tc.named_parameters():
        np.testing.assert_allclose(cell.grads[k], p.grad.numpy(), **TOL)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bias", [True, False])
def test_state_dict_keys_shapes_and_order_are_torchs(kind, bias):
    tc, cell = torch_cell(kind, 3, 5, bias), make_cell(kind, 3, 5, bias)
    assert list(cell.state_dict()) == list(tc.state_dict())
    for k, v in tc.state_dict().items():
        assert cell.params[k].shape == tuple(v.shape)
        assert cell.grads[k].shape == tuple(v.shape)


@pytest.mark.parametrize("kind", KINDS)
def test_torch_state_dict_loads_as_written_in_the_issue(kind):
    """``{k: v.numpy() ...}`` and even the tensors themselves load; float32 too."""
    tc = torch_cell(kind, 3, 4, True)
    cell = make_cell(kind, 3, 4)
    cell.load_state_dict({k: v.numpy() for k, v in tc.state_dict().items()})
    for k, v in tc.state_dict().items():
        np.testing.assert_array_equal(cell.params[k], v.numpy())
    tc32 = tc.float()
    cell32 = make_cell(kind, 3, 4, dtype=np.float32)
    cell32.load_state_dict(tc32.state_dict())
    for k, v in tc32.state_dict().items():
        np.testing.assert_array_equal(cell32.params[k], v.numpy())


@pytest.mark.parametrize("kind", KINDS)
def test_initialisation_matches_torchs_distribution(kind):
    """Statistically, not by seed: npseq's and torch's initial values come from the same
    U(-1/sqrt(H), 1/sqrt(H)) (two-sample Kolmogorov-Smirnov test, and the same bound)."""
    H = 32
    torch.manual_seed(0)
    t_values = np.concatenate([v.numpy().ravel() for v in torch_cell(kind, 16, H, True)
                               .state_dict().values()])
    n_values = np.concatenate([v.ravel() for v in make_cell(kind, 16, H, seed=0)
                               .params.values()])
    assert t_values.size == n_values.size
    bound = 1 / np.sqrt(H)
    assert np.max(np.abs(n_values)) <= bound and np.max(np.abs(t_values)) <= bound
    assert stats.ks_2samp(n_values, t_values).pvalue > 1e-3
    # and the test has power: a twice narrower range is told apart
    assert stats.ks_2samp(n_values / 2, t_values).pvalue < 1e-6
