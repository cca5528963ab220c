"""Every public entry point rejects a wrong argument at the boundary, naming it.

Each test draws a valid setting (sizes, layouts, states), breaks exactly one argument, and
asserts an error of the right type whose message starts with the argument's name and says
what was expected and what was given::

    state[1] (c0): expected shape (2, 3, 4) (num_layers * num_directions, batch,
    hidden_size), got (2, 3, 5)

Entry points: the constructors of RNNCell/LSTMCell/GRUCell/RNN/LSTM/GRU, the cells' and the
layers' ``forward`` and ``backward``, ``load_state_dict``, ``truncated_bptt``.
"""
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import npseq
from strategies import KINDS, layer_cases, make_cell, pack_state, unpack_state

CELLS = {"RNNCell": npseq.RNNCell, "LSTMCell": npseq.LSTMCell, "GRUCell": npseq.GRUCell}
LAYERS = {"RNN": npseq.RNN, "LSTM": npseq.LSTM, "GRU": npseq.GRU}


def assert_names(err, name):
    """The message starts with ``name`` and says what was expected and what was given."""
    message = str(err.value)
    assert message.startswith(name + ":") or message.startswith(name + " ("), message
    assert "expected" in message and "got" in message, message


def call_fails(call, exc, name):
    with pytest.raises(exc) as err:
        call()
    assert_names(err, name)


def wrong_shape(draw, shape):
    """``shape`` with one axis resized, or an axis added or removed."""
    how = draw(st.sampled_from(("resize", "add", "drop") if shape else ("add",)))
    shape = list(shape)
    if how == "resize":
        axis = draw(st.integers(0, len(shape) - 1))
        shape[axis] = draw(st.integers(0, 6).filter(lambda n: n != shape[axis]))
    elif how == "add":
        shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 3)))
    else:
        del shape[draw(st.integers(0, len(shape) - 1))]
    return tuple(shape)


# -- constructors -------------------------------------------------------------------------------
SIZE_BAD = [(2.0, TypeError), ("3", TypeError), (None, TypeError), (True, TypeError),
            ([3], TypeError), (0, ValueError), (-1, ValueError)]
BAD = {
    "input_size": SIZE_BAD,
    "hidden_size": SIZE_BAD,
    "num_layers": [(1.0, TypeError), (True, TypeError), ("2", TypeError), (0, ValueError),
                   (-2, ValueError)],
    "bias": [(1, TypeError), ("yes", TypeError), (None, TypeError), (np.array([True]),
                                                                   TypeError)],
    "dropout": [("0.1", TypeError), (None, TypeError), (True, TypeError), (-0.1, ValueError),
                (1.0, ValueError), (1.5, ValueError), (float("nan"), ValueError)],
    "nonlinearity": [("sigmoid", ValueError), ("Tanh", ValueError), ("", ValueError),
                     (None, TypeError), (1, TypeError), (np.array(["tanh", "relu"]),
                                                         TypeError)],
    "proj_size": [(1.5, TypeError), (-1, ValueError), ("hidden", ValueError),
                  ("hidden+1", ValueError)],
    "dtype": [(np.int64, ValueError), (np.float16, ValueError), (np.complex128, ValueError),
              (bool, ValueError), ("foo", TypeError), (object(), TypeError)],
    "seed": [(1.5, TypeError), ("0", TypeError), (-1, ValueError)],
}
BAD["batch_first"] = BAD["bidirectional"] = BAD["bias"]
BAD["peephole"] = BAD["reset_after"] = BAD["bias"]  # the cell variants
# layer_norm: a bool, or the string "labml": another string is a bad value of a right type
BAD["layer_norm"] = [(1, TypeError), ("yes", ValueError), ("Labml", ValueError),
                     (None, TypeError), (np.array([True]), TypeError)]
BAD["activation"] = BAD["recurrent_activation"] = [("foo", ValueError), ("Tanh", ValueError),
                                                   (3, TypeError), (None, TypeError)]
BAD["checkpoint_every"] = [(0, ValueError), (1.5, TypeError), (True, TypeError)]
_LSTM_VARIANT = ("layer_norm", "peephole", "activation", "recurrent_activation")
_GRU_VARIANT = ("reset_after", "activation", "recurrent_activation")
ARGS = {
    "RNNCell": ("input_size", "hidden_size", "bias", "nonlinearity", "dtype", "seed"),
    "LSTMCell": ("input_size", "hidden_size", "bias", "dtype", "seed") + _LSTM_VARIANT,
    "GRUCell": ("input_size", "hidden_size", "bias", "dtype", "seed") + _GRU_VARIANT,
    "RNN": ("input_size", "hidden_size", "num_layers", "nonlinearity", "bias", "batch_first",
            "dropout", "bidirectional", "dtype", "seed", "checkpoint_every"),
    "LSTM": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "proj_size", "dtype", "seed", "checkpoint_every") + _LSTM_VARIANT,
    "GRU": ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
            "bidirectional", "dtype", "seed", "checkpoint_every") + _GRU_VARIANT,
}


@st.composite
def bad_constructions(draw, cls_name, arg):
    """Valid sizes, then one bad value of ``arg``: (cls, kwargs, expected error)."""
    value, exc = draw(st.sampled_from(BAD[arg]))
    kwargs = dict(input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(1, 4)))
    if arg in ("dropout", "num_layers") and cls_name in LAYERS:
        kwargs["num_layers"] = 2  # a valid dropout with one layer only warns
    if arg == "proj_size" and isinstance(value, str):  # "hidden" or "hidden+1"
        value = kwargs["hidden_size"] + (value == "hidden+1")
    kwargs[arg] = value
    return {**CELLS, **LAYERS}[cls_name], kwargs, exc


@pytest.mark.parametrize("cls_name, arg", [(c, a) for c in sorted(ARGS) for a in ARGS[c]])
@given(data=st.data())
def test_constructor_rejects_a_bad_argument(cls_name, arg, data):
    cls, kwargs, exc = data.draw(bad_constructions(cls_name, arg))
    call_fails(lambda: cls(**kwargs), exc, arg)


def test_proj_size_is_lstm_only_and_below_hidden_size():
    call_fails(lambda: npseq.LSTM(3, 4, proj_size=4), ValueError, "proj_size")
    assert npseq.LSTM(3, 4, proj_size=3).params["weight_hr_l0"].shape == (3, 4)


@pytest.mark.parametrize("cls", [npseq.RNN, npseq.LSTM, npseq.GRU])
def test_dropout_with_one_layer_warns_like_pytorch(cls):
    with pytest.warns(UserWarning, match=r"^dropout: .*num_layers > 1.*dropout=0.5 and "
                                         r"num_layers=1") as record:
        cls(3, 4, dropout=0.5)
    assert record[0].filename == __file__  # attributed to the caller, not to npseq
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cls(3, 4, num_layers=2, dropout=0.5)
        cls(3, 4, dropout=0.0)


# -- layers: forward ----------------------------------------------------------------------------
def _state_name(kind, part, backward=False):
    labels = ("dh_n", "dc_n") if backward else ("h0", "c0")
    prefix = "dstate" if backward else "state"
    return f"{prefix}[{part}] ({labels[part]})" if kind == "lstm" else f"{prefix} ({labels[0]})"


@st.composite
def bad_layer_forwards(draw):
    """A layer, valid (x, state, lengths) with one of them broken: (call, exc, name)."""
    case = draw(layer_cases(with_state=True))
    cfg = case.config
    m = cfg.build()
    x, state, lengths = case.x, case.state, case.lengths
    parts = list(unpack_state(state))
    T, B = cfg.seq_len, cfg.batch
    what = draw(st.sampled_from(["x rank", "x features", "x dtype", "x empty", "state shape",
                                 "state dtype", "state type", "lengths count", "lengths range",
                                 "lengths dtype"]))
    if what == "x rank":
        x = np.zeros(draw(st.sampled_from([(), (cfg.input_size,), (1, 2, 3, cfg.input_size)])))
        exc, name = ValueError, "x"
    elif what == "x features":
        x = np.zeros(x.shape[:-1] + (draw(st.integers(0, 6).filter(
            lambda d: d != cfg.input_size)),))
        exc, name = ValueError, "x"
    elif what == "x dtype":
        x = draw(st.sampled_from([x + 1j, x.astype(str), x.astype(object),
                                  [[1.0, 2.0], [3.0]], "abc", None]))
        exc, name = TypeError, "x"
    elif what == "x empty":
        shape = list(x.shape)
        shape[draw(st.sampled_from([0, 1] if len(shape) == 3 else [0]))] = 0
        x = np.zeros(shape)
        exc, name = ValueError, "x"
    elif what == "state shape":
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = np.zeros(wrong_shape(draw, parts[part].shape))
        state = pack_state(cfg.kind, parts)
        exc, name = ValueError, _state_name(cfg.kind, part)
    elif what == "state dtype":
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = draw(st.sampled_from([parts[part] + 1j, parts[part].astype(str), "h"]))
        state = pack_state(cfg.kind, parts)
        exc, name = TypeError, _state_name(cfg.kind, part)
    elif what == "state type":  # a tuple for GRU/RNN, a bare array (or a 1- or 3-tuple) for LSTM
        state = (draw(st.sampled_from([parts[0], (parts[0],), tuple(parts) * 2]))
                 if cfg.kind == "lstm" else (parts[0],))
        exc, name = TypeError, "state"
    elif what == "lengths count":
        B_ = 1 if B is None else B
        lengths = np.ones(draw(st.sampled_from([(0,), (B_ + 1,), (B_, 1), (1, B_)])), int)
        exc, name = ValueError, "lengths"
    elif what == "lengths range":
        lengths = np.full(1 if B is None else B, T)
        lengths[draw(st.integers(0, len(lengths) - 1))] = draw(st.sampled_from([0, -1, T + 1]))
        exc, name = ValueError, "lengths"
    else:
        full = np.full(1 if B is None else B, T)
        lengths = draw(st.sampled_from([full.astype(bool), full - 0.5, full * np.nan,
                                        full * np.inf, full.astype(str), full + 0j]))
        exc, name = TypeError, "lengths"
    return (lambda: m(x, state, lengths)), exc, name


@given(bad_layer_forwards())
def test_layer_forward_rejects_a_bad_argument(case):
    call, exc, name = case
    call_fails(call, exc, name)


# -- layers: backward ---------------------------------------------------------------------------
@st.composite
def bad_layer_backwards(draw):
    """A layer after a valid forward; (dout, dstate) with one broken, and valid ones."""
    case = draw(layer_cases())
    cfg = case.config
    m = cfg.build()
    m(case.x, case.state, case.lengths)
    dout, parts = case.dout, list(unpack_state(case.dstate))
    what = draw(st.sampled_from(["dout shape", "dout dtype", "dstate shape", "dstate type"]))
    if what == "dout shape":
        dout, exc, name = np.zeros(wrong_shape(draw, dout.shape)), ValueError, "dout"
    elif what == "dout dtype":
        dout, exc, name = draw(st.sampled_from([dout + 1j, dout.astype(str)])), TypeError, "dout"
    elif what == "dstate shape":
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = np.zeros(wrong_shape(draw, parts[part].shape))
        exc, name = ValueError, _state_name(cfg.kind, part, backward=True)
    else:
        parts = [parts[0]] if cfg.kind == "lstm" else [(parts[0],)]
        exc, name = TypeError, "dstate"
    dstate = parts[0] if len(parts) == 1 else tuple(parts)
    return m, (dout, dstate), exc, name, (case.dout, case.dstate)


@given(bad_layer_backwards())
def test_layer_backward_rejects_a_bad_gradient_and_keeps_its_forward(case):
    m, bad, exc, name, good = case
    call_fails(lambda: m.backward(*bad), exc, name)
    m.backward(*good)  # the failed call did not consume the forward's record
    with pytest.raises(RuntimeError, match="^backward: no forward call to pair it with"):
        m.backward(*good)


# -- cells --------------------------------------------------------------------------------------
@st.composite
def bad_cell_calls(draw):
    """A cell and one broken argument of forward (x, state) or backward (dstate)."""
    kind = draw(st.sampled_from(KINDS))
    D, H = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = draw(st.none() | st.integers(1, 3))
    lead = () if batch is None else (batch,)
    cell = make_cell(kind, D, H)
    x = np.ones(lead + (D,))
    parts = [np.ones(lead + (H,))] * (2 if kind == "lstm" else 1)
    labels = ("h", "c")
    what = draw(st.sampled_from(["x rank", "x features", "x dtype", "state shape",
                                 "state type", "dstate shape", "dstate type", "dstate None"]))
    step = "backward" if what.startswith("dstate") else "forward"
    prefix = "dstate" if step == "backward" else "state"
    if what == "x rank":
        x, exc, name = np.ones(draw(st.sampled_from([(), (1, 1, D)]))), ValueError, "x"
    elif what == "x features":
        x = np.ones(lead + (draw(st.integers(0, 6).filter(lambda d: d != D)),))
        exc, name = ValueError, "x"
    elif what == "x dtype":
        x, exc, name = draw(st.sampled_from([x + 1j, x.astype(str), "x"])), TypeError, "x"
    elif what.endswith("shape"):
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = np.ones(wrong_shape(draw, parts[part].shape))
        label = ("d" if step == "backward" else "") + labels[part]
        name = f"{prefix}[{part}] ({label})" if kind == "lstm" else prefix
        exc = ValueError
    elif what.endswith("type"):
        parts = [parts[0]] if kind == "lstm" else [(parts[0],)]
        exc, name = TypeError, prefix
    else:
        parts, exc, name = [None], TypeError, "dstate"
    state = parts[0] if len(parts) == 1 else tuple(parts)
    if step == "forward":
        return (lambda: cell(x, state)), exc, name
    cell(x)
    return (lambda: cell.backward(state)), exc, name


@given(bad_cell_calls())
def test_cell_rejects_a_bad_argument(case):
    call, exc, name = case
    call_fails(call, exc, name)


# -- backward without a forward -----------------------------------------------------------------
@pytest.mark.parametrize("name", sorted({**CELLS, **LAYERS}))
def test_backward_without_forward_says_so(name):
    m = {**CELLS, **LAYERS}[name](3, 4, seed=0)
    x = np.ones((2, 3)) if name in CELLS else np.ones((5, 2, 3))
    dstate = (np.ones((2, 4)), np.ones((2, 4))) if name == "LSTMCell" else np.ones((2, 4))

    def backward():
        return m.backward(dstate) if name in CELLS else m.backward(np.ones((5, 2, 4)))

    message = "^backward: no forward call to pair it with"
    with pytest.raises(RuntimeError, match=message):
        backward()
    with npseq.no_grad():
        m(x)
    with pytest.raises(RuntimeError, match=message + ".*no_grad"):
        backward()
    m(x)
    if name in CELLS:  # a cell keeps a stack: two calls, two backward steps
        m(x)
        backward()
    else:  # a layer keeps its latest forward only, and says when it drops one
        with pytest.warns(npseq.UnpairedForwardWarning, match="no_grad"):
            m(x)
    backward()
    with pytest.raises(RuntimeError, match=message):
        backward()


# -- load_state_dict ----------------------------------------------------------------------------
MODULES = [lambda: npseq.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=1),
           lambda: npseq.GRU(2, 3, bias=False, seed=2), lambda: npseq.RNNCell(3, 2, seed=3),
           lambda: npseq.LSTMCell(2, 2, seed=4)]


@st.composite
def bad_state_dicts(draw):
    m = draw(st.sampled_from(MODULES))()
    sd = {k: v + 1 for k, v in m.state_dict().items()}  # a partial load would show
    key = draw(st.sampled_from(sorted(sd)))
    what = draw(st.sampled_from(["missing", "unexpected", "shape", "dtype", "not a mapping"]))
    if what == "missing":
        del sd[key]
        exc, name, named = KeyError, "state_dict", key
    elif what == "unexpected":
        sd[key + "_extra"] = sd[key]
        exc, name, named = KeyError, "state_dict", key + "_extra"
    elif what == "shape":
        sd[key] = np.zeros(wrong_shape(draw, sd[key].shape))
        exc, name, named = ValueError, f"state_dict[{key!r}]", key
    elif what == "dtype":
        sd[key] = draw(st.sampled_from([sd[key] + 1j, sd[key].astype(str), None]))
        exc, name, named = TypeError, f"state_dict[{key!r}]", key
    else:
        sd = draw(st.sampled_from([list(sd.items()), list(sd.values()), None, "weights"]))
        exc, name, named = TypeError, "state_dict", "mapping"
    return m, sd, exc, name, named


@given(bad_state_dicts())
def test_load_state_dict_names_the_problem_and_changes_nothing(case):
    m, sd, exc, name, named = case
    before = m.state_dict()
    with pytest.raises(exc) as err:
        m.load_state_dict(sd)
    assert_names(err, name)
    assert named in str(err.value)
    for k, v in m.params.items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_of_another_architecture_names_every_key():
    gru = npseq.GRU(3, 4, num_layers=2, seed=0)
    with pytest.raises(ValueError) as err:  # same keys, LSTM's 4H rows instead of 3H
        gru.load_state_dict(npseq.LSTM(3, 4, num_layers=2).state_dict())
    assert_names(err, "state_dict['weight_ih_l0']")
    for k in gru.params:
        assert f"state_dict[{k!r}]: expected shape {gru.params[k].shape}" in str(err.value)
    assert str(err.value).endswith("another architecture or size? This module is "
                                   "GRU(3, 4, num_layers=2, dtype=float64))")
    with pytest.raises(KeyError) as err:
        gru.load_state_dict(npseq.GRU(3, 4, num_layers=1).state_dict())
    assert str(err.value).startswith("state_dict: expected the keys of this module, got "
                                     "missing keys ['weight_ih_l1', ")


# -- truncated_bptt -----------------------------------------------------------------------------
def _loss_and_grad(out, start, stop):
    return float(np.sum(out)), np.ones_like(out)


@st.composite
def bad_truncated_bptt_calls(draw):
    """A layer and a valid long sequence, then one broken argument: (call, exc, name)."""
    case = draw(layer_cases(configs=None, with_lengths=False))
    cfg = case.config
    args = dict(module=cfg.build(), x=case.x, k=draw(st.integers(1, 4)),
                loss_and_grad=_loss_and_grad, state=case.state, on_chunk=None)
    what = draw(st.sampled_from(["module", "k", "loss_and_grad", "on_chunk", "x rank",
                                 "x features", "x empty", "x dtype", "state", "dout"]))
    if what == "module":
        value = draw(st.sampled_from([make_cell("gru", cfg.input_size, 2), "GRU", None]))
        change, exc, name = dict(module=value), TypeError, "module"
    elif what == "k":
        value, exc = draw(st.sampled_from([(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                           (True, TypeError), ("2", TypeError)]))
        change, name = dict(k=value), "k"
    elif what == "loss_and_grad":
        value = draw(st.sampled_from([None, 3, lambda out, a, b: out,  # not a pair
                                      lambda out, a, b: (out, out),  # the loss is no number
                                      lambda out, a, b: (0.0, out, out)]))
        change, exc, name = dict(loss_and_grad=value), TypeError, "loss_and_grad"
    elif what == "on_chunk":
        change, exc, name = dict(on_chunk=draw(st.sampled_from([3, "print"]))), TypeError, \
            "on_chunk"
    elif what == "x rank":
        x = np.ones(draw(st.sampled_from([(), (3,), (2, 2, 2, cfg.input_size)])))
        change, exc, name = dict(x=x), ValueError, "x"
    elif what == "x features":
        x = np.ones(case.x.shape[:-1] + (cfg.input_size + draw(st.integers(1, 3)),))
        change, exc, name = dict(x=x), ValueError, "x"
    elif what == "x empty":
        time_axis = 1 if cfg.batch_first and cfg.batch is not None else 0
        shape = list(case.x.shape)
        shape[time_axis] = 0
        change, exc, name = dict(x=np.ones(shape)), ValueError, "x"
    elif what == "x dtype":
        change, exc, name = dict(x=case.x.astype(str)), TypeError, "x"
    elif what == "state":
        parts = [np.zeros(s) for s in cfg.state_shapes()]
        part = draw(st.integers(0, len(parts) - 1))
        parts[part] = np.zeros(wrong_shape(draw, parts[part].shape))
        change, exc = dict(state=pack_state(cfg.kind, parts)), ValueError
        name = _state_name(cfg.kind, part)
    else:
        change, exc, name = dict(loss_and_grad=lambda out, a, b: (0.0, out[..., :-1])), \
            ValueError, "dout"
    args.update(change)
    return (lambda: npseq.truncated_bptt(**args)), exc, name


@given(bad_truncated_bptt_calls())
def test_truncated_bptt_rejects_a_bad_argument(case):
    call, exc, name = case
    call_fails(call, exc, name)


# -- the training toolkit: Linear, Embedding, losses, optimizers, Sequential, save/load --------
def _after_forward(module, x):
    module(x)
    return module


_gru = npseq.GRU(3, 4, seed=0)
_z, _y = np.zeros((2, 3)), np.array([1, 0])
TOOLKIT_BAD = [
    ("in_features", ValueError, lambda: npseq.Linear(0, 2)),
    ("out_features", TypeError, lambda: npseq.Linear(3, 2.0)),
    ("bias", TypeError, lambda: npseq.Linear(3, 2, bias=1)),
    ("x", ValueError, lambda: npseq.Linear(3, 2)(np.ones((4, 5)))),
    ("x", TypeError, lambda: npseq.Linear(3, 2)(np.ones((4, 3)) * 1j)),
    ("dy", ValueError, lambda: _after_forward(npseq.Linear(3, 2), np.ones((4, 3))).backward(
        np.ones((4, 3)))),
    ("padding_idx", ValueError, lambda: npseq.Embedding(5, 3, padding_idx=7)),
    ("embedding_dim", ValueError, lambda: npseq.Embedding(5, 0)),
    ("idx", TypeError, lambda: npseq.Embedding(5, 3)(np.array([1.5]))),
    ("idx", TypeError, lambda: npseq.Embedding(5, 3)(np.array([True]))),
    ("idx", ValueError, lambda: npseq.Embedding(5, 3)(np.array([5]))),
    ("dy", ValueError, lambda: _after_forward(npseq.Embedding(5, 3), np.array([1, 2])).backward(
        np.ones((2, 4)))),
    ("logits", TypeError, lambda: npseq.losses.cross_entropy("abc", _y)),
    ("logits", ValueError, lambda: npseq.losses.cross_entropy(np.float64(1.0), _y)),
    ("target", TypeError, lambda: npseq.losses.cross_entropy(_z, _y.astype(float))),
    ("target", ValueError, lambda: npseq.losses.cross_entropy(_z, np.array([1, 0, 1]))),
    ("target", ValueError, lambda: npseq.losses.cross_entropy(_z, np.array([3, 0]))),
    ("mask", TypeError, lambda: npseq.losses.cross_entropy(_z, _y, mask=np.array([1, 0]))),
    ("reduction", ValueError, lambda: npseq.losses.cross_entropy(_z, _y, reduction="none")),
    ("reduction", TypeError, lambda: npseq.losses.cross_entropy(_z, _y, reduction=None)),
    ("reduction", TypeError, lambda: npseq.losses.mse_loss(_z, _z, reduction=1)),
    ("reduction", ValueError, lambda: npseq.losses.mse_loss(_z, _z, reduction="Mean")),
    ("reduction", TypeError, lambda: npseq.losses.bce_with_logits(_z, _z, reduction=["sum"])),
    ("axis", ValueError, lambda: npseq.losses.softmax(_z, axis=2)),
    ("axis", TypeError, lambda: npseq.losses.log_softmax(_z, axis=1.0)),
    ("target", ValueError, lambda: npseq.losses.mse_loss(np.ones(3), np.ones(4))),
    ("target", ValueError, lambda: npseq.losses.bce_with_logits(np.ones(3), np.ones((3, 1)))),
    ("lr", ValueError, lambda: npseq.optim.SGD(_gru.params, _gru.grads, lr=-1)),
    ("params", TypeError, lambda: npseq.optim.SGD([1, 2], _gru.grads, lr=0.1)),
    ("grads", KeyError, lambda: npseq.optim.Adam(_gru.params, {})),
    ("betas[0]", ValueError, lambda: npseq.optim.Adam(_gru.params, _gru.grads, betas=(1, 0.9))),
    ("eps", ValueError, lambda: npseq.optim.Adam(_gru.params, _gru.grads, eps=-1)),
    ("max_norm", ValueError, lambda: npseq.optim.clip_grad_norm(_gru.grads, -1.0)),
    ("max_norm", TypeError, lambda: npseq.optim.clip_grad_norm(_gru.grads, "1")),
    ("modules", ValueError, lambda: npseq.Sequential(npseq.Linear(3, 2))),
    ("x", ValueError, lambda: npseq.Sequential(npseq.GRU(3, 4))(np.ones((5, 2, 4)))),
    ("lengths", ValueError, lambda: npseq.Sequential(npseq.GRU(3, 4), npseq.LastStep())(
        np.ones((5, 2, 3)), lengths=[6, 1])),
    ("dy", ValueError, lambda: _after_forward(npseq.Sequential(
        npseq.GRU(3, 4), npseq.LastStep(), npseq.Linear(4, 2)), np.ones((5, 2, 3))).backward(
        np.ones((2, 3)))),
    ("model", TypeError, lambda: npseq.save("unused.npz", object())),
]


@pytest.mark.parametrize("name, exc, call", TOOLKIT_BAD,
                         ids=[f"{i}-{c[0]}" for i, c in enumerate(TOOLKIT_BAD)])
def test_toolkit_rejects_a_bad_argument(name, exc, call):
    with pytest.raises(exc) as err:
        call()
    assert str(err.value.args[0]).startswith(name + ":"), err.value  # args: KeyError quotes


@pytest.mark.parametrize("make", [lambda: npseq.Linear(3, 2), lambda: npseq.Embedding(5, 3)])
def test_toolkit_backward_without_forward_says_so(make):
    with pytest.raises(RuntimeError, match="^backward: no forward call to pair it with"):
        make().backward(np.ones((2, 2)))


def test_loading_a_file_of_another_architecture_names_every_key(tmp_path):
    path = tmp_path / "lstm.npz"
    npseq.save(path, npseq.LSTM(3, 4, seed=0))
    assert isinstance(npseq.load(path), npseq.LSTM)  # the file rebuilds its own model
    gru = npseq.GRU(3, 4, seed=0)
    with np.load(path) as data:
        weights = {k: data[k] for k in data.files if k != "__npseq__"}
    with pytest.raises(ValueError) as err:
        gru.load_state_dict(weights)
    for k in gru.params:
        assert f"state_dict[{k!r}]: expected shape {gru.params[k].shape}, got " \
               f"{weights[k].shape}" in str(err.value)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not an archive")
    with pytest.raises(ValueError, match="not an npseq file"):
        npseq.load(junk)
