"""The open core: forward records that cannot pair with the wrong backward, the cell
contract the driver honours whatever a step returns, and cells without a full ``W_hh``."""
import ast
import copy
import io
import pathlib
import pickle
import tracemalloc
import warnings
from typing import NamedTuple

import numpy as np
import pytest

import npseq
from npseq.gradcheck import check_gradients

REPO = pathlib.Path(__file__).resolve().parents[1]


# -- 1. a backward pairs with the latest forward, and memory does not pile up --------------
def test_forwards_without_backward_keep_one_record_and_say_so():
    m = npseq.LSTM(8, 16, seed=0)
    x = np.random.default_rng(0).standard_normal((20, 4, 8))
    m(x)
    tracemalloc.start()
    try:
        with pytest.warns(npseq.UnpairedForwardWarning, match="no_grad.*clear_records"):
            m(x)
        after_two = tracemalloc.get_traced_memory()[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", npseq.UnpairedForwardWarning)
            for _ in range(10):
                m(x)
        after_twelve = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert m.pending_records == 1
    assert after_twelve < after_two + 100_000  # not ten more records (each ~0.3 MB)


def test_a_grad_forward_between_forward_and_backward_is_flagged_when_it_drops_the_record():
    rng = np.random.default_rng(1)
    m = npseq.GRU(3, 5, seed=0)
    xa, xb = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 3))
    out_a, _ = m(xa)
    with pytest.warns(npseq.UnpairedForwardWarning, match="dropped the record"):
        m(xb)  # a validation forward outside no_grad()


def test_a_no_grad_forward_leaves_nothing_to_pair_with_even_after_an_unbatched_forward():
    rng = np.random.default_rng(2)
    m = npseq.LSTM(3, 4, seed=0)
    m(rng.standard_normal((5, 3)))  # unbatched
    with npseq.no_grad(), pytest.warns(npseq.UnpairedForwardWarning, match="no_grad"):
        out, _ = m(rng.standard_normal((5, 2, 3)))
    with pytest.raises(RuntimeError, match="^backward: no forward call to pair it with.*"
                                           "no_grad"):
        m.backward(np.ones_like(out))
    # the evaluation idiom keeps nothing and warns about nothing
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with npseq.no_grad():
            m(rng.standard_normal((5, 2, 3)))
    assert m.pending_records == 0


def test_a_backward_after_the_right_forward_equals_a_fresh_module():
    rng = np.random.default_rng(3)
    m = npseq.LSTM(3, 4, num_layers=2, seed=0)
    twin = copy.deepcopy(m)
    xa, xb = rng.standard_normal((6, 2, 3)), rng.standard_normal((6, 2, 3))
    dout = rng.standard_normal((6, 2, 4))
    with npseq.no_grad():
        m(xb)  # an evaluation in between is harmless
    m(xa)
    dx, _ = m.backward(dout)
    twin(xa)
    dx_twin, _ = twin.backward(dout)
    np.testing.assert_array_equal(dx, dx_twin)


def test_cells_keep_a_stack_and_clear_records_empties_it():
    cell = npseq.GRUCell(2, 3, seed=0)
    x = np.ones((4, 2))
    for _ in range(3):
        cell(x)
    assert cell.pending_records == 3
    cell.backward(np.ones((4, 3)))
    assert cell.pending_records == 2
    assert cell.clear_records() is cell and cell.pending_records == 0
    with pytest.raises(RuntimeError, match="no forward call to pair it with"):
        cell.backward(np.ones((4, 3)))


# -- 2. the driver honours the step contract, whatever a step returns ----------------------
class ElmanCache(NamedTuple):
    h_prev: np.ndarray
    h: np.ndarray


def elman_forward(gx, carry, p):
    (h_prev,) = carry
    h = np.tanh(gx + h_prev @ p["weight_hh"].T + p["bias_hh"])
    return (h,), ElmanCache(h_prev, h)


def elman_backward_fresh(dcarry, cache, p, out=None):
    """Declares ``out`` but returns a fresh array (allowed by the contract)."""
    da = dcarry[0] * (1 - cache.h ** 2)
    return npseq.StepGrads(da, da, (da @ p["weight_hh"],), {})


def elman_backward_mixed(dcarry, cache, p):
    """``dgh is dgx`` at some steps, a separate equal array at others (data dependent)."""
    da = dcarry[0] * (1 - cache.h ** 2)
    dgh = da if cache.h_prev.sum() > 0 else da.copy()
    return npseq.StepGrads(da, dgh, (da @ p["weight_hh"],), {})


def elman_backward_mixed_out(dcarry, cache, p, *, out=None):
    """Writes ``out`` at some steps, returns a fresh ``dgx`` (and ``dgh``) at others."""
    if cache.h_prev.sum() > 0:
        da = np.multiply(dcarry[0], 1 - cache.h ** 2, out=out)
        return npseq.StepGrads(da, da, (da @ p["weight_hh"],), {})
    da = dcarry[0] * (1 - cache.h ** 2)
    return npseq.StepGrads(da, da.copy(), (da @ p["weight_hh"],), {})


@pytest.mark.parametrize("backward", [elman_backward_fresh, elman_backward_mixed,
                                      elman_backward_mixed_out])
def test_any_step_that_honours_the_contract_gets_the_gradients_of_the_builtin(backward):
    """Against npseq.RNN with the same weights, over several blocks (T*B = 600 rows) and
    both directions with lengths; then against central differences on a small case."""
    rng = np.random.default_rng(4)
    kind = npseq.CellKind("ELMAN", 1, 1, elman_forward, backward)
    T, B = 150, 4
    m = npseq.Recurrent(kind, 2, 3, num_layers=2, bidirectional=True, seed=0)
    ref = npseq.RNN(2, 3, num_layers=2, bidirectional=True, seed=0)
    for k in m.params:
        m.params[k][...] = ref.params[k] = rng.uniform(-0.8, 0.8, m.params[k].shape)
    x = rng.standard_normal((T, B, 2))
    lengths = [150, 97, 150, 3]
    dout = rng.standard_normal((T, B, 6))
    dh_n = rng.standard_normal((4, B, 3))
    results = []
    for module in (m, ref):
        module(x, lengths=lengths)
        results.append(module.backward(dout, dh_n))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-13)
    for k in m.grads:
        np.testing.assert_allclose(m.grads[k], ref.grads[k], rtol=1e-11, atol=1e-12,
                                   err_msg=k)
    small = npseq.Recurrent(kind, 2, 3, num_layers=2, bidirectional=True, seed=1)
    errors = check_gradients(small, rng.standard_normal((5, 3, 2)),
                             rng.standard_normal((4, 3, 3)), lengths=[5, 2, 4])
    assert max(errors.values()) < 1e-7, errors


def test_the_kind_knows_whether_its_backward_takes_out():
    for backward, takes in ((elman_backward_fresh, True), (elman_backward_mixed, False),
                            (elman_backward_mixed_out, True)):
        assert npseq.CellKind("E", 1, 1, elman_forward, backward).backward_takes_out == takes


def test_the_contract_is_in_the_cellkind_docstring():
    doc = npseq.CellKind.__doc__
    for phrase in ("step_forward(gx, carry, p)", "step_backward(dcarry, cache, p)", "out",
                   "h_prev", "dgh", "has_weight_hh"):
        assert phrase in doc


# -- 4. a cell without W_hh: IndRNN (Li et al. 2018), h = tanh(W x + b + u * h_prev) ---------
class IndCache(NamedTuple):
    h_prev: np.ndarray  # (B, H)
    h: np.ndarray  # (B, H)


def indrnn_forward(gx, carry, p):
    (h_prev,) = carry
    h = np.tanh(gx + p["u"] * h_prev)
    return (h,), IndCache(h_prev, h)


def indrnn_backward(dcarry, cache, p):
    da = dcarry[0] * (1 - cache.h ** 2)  # through tanh
    return npseq.StepGrads(dgx=da, dgh=None, dcarry_prev=(da * p["u"],),
                           dparams={"u": (da * cache.h_prev).sum(axis=0)})


def uniform_0_1(rng, shape):
    return rng.uniform(0, 1, shape)


INDRNN = npseq.CellKind("INDRNN", 1, 1, indrnn_forward, indrnn_backward,
                        extra_params=(npseq.ParamSpec("u", ("H",), init=uniform_0_1),),
                        has_weight_hh=False)


def _indrnn_reference(params, x, lengths, num_layers=2):
    """The stacked bidirectional IndRNN written out, one sequence at a time."""
    T, B, _ = x.shape
    out = np.zeros((T, B, 2 * params["u_l0"].size))
    for b in range(B):
        n = lengths[b]
        layer_in = x[:n, b]
        for layer in range(num_layers):
            outs = []
            for sfx in (f"_l{layer}", f"_l{layer}_reverse"):
                W, bias, u = (params[k + sfx] for k in ("weight_ih", "bias_ih", "u"))
                h, hs = np.zeros(u.size), [None] * n
                for t in (range(n - 1, -1, -1) if "reverse" in sfx else range(n)):
                    h = np.tanh(W @ layer_in[t] + bias + u * h)
                    hs[t] = h
                outs.append(np.array(hs))
            layer_in = np.concatenate(outs, axis=1)
        out[:n, b] = layer_in
    return out


def test_a_cell_without_weight_hh_runs_stacked_bidirectional_with_lengths():
    rng = np.random.default_rng(5)
    m = npseq.Recurrent(INDRNN, 3, 4, num_layers=2, bidirectional=True, seed=0)
    assert sorted(m.params) == sorted(f"{k}_l{i}{r}" for k in ("weight_ih", "bias_ih", "u")
                                      for i in (0, 1) for r in ("", "_reverse"))
    assert m.params["weight_ih_l1"].shape == (4, 8)
    assert np.all((m.params["u_l0"] >= 0) & (m.params["u_l0"] < 1))
    assert npseq.analysis.count_parameters(m) == 2 * (4 * 3 + 4 + 4) + 2 * (4 * 8 + 4 + 4)
    x = rng.standard_normal((6, 3, 3))
    lengths = [6, 2, 5]
    with npseq.no_grad():
        out, _ = m(x, lengths=lengths)
    np.testing.assert_allclose(out, _indrnn_reference(m.params, x, lengths), rtol=1e-13,
                               atol=1e-14)
    errors = check_gradients(m, x, rng.standard_normal((4, 3, 4)), lengths=lengths)
    assert max(errors.values()) < 1e-7, errors
    assert set(errors) == {"x", "state"} | set(m.params)


def test_a_cell_without_weight_hh_saves_loads_and_pickles(tmp_path):
    rng = np.random.default_rng(6)
    m = npseq.Recurrent(INDRNN, 3, 4, num_layers=2, bidirectional=True, seed=0)
    model = npseq.Sequential(m, npseq.LastStep(), npseq.Linear(8, 2, seed=1))
    x = rng.standard_normal((5, 2, 3))
    with npseq.no_grad():
        want, _ = model(x, lengths=[5, 3])
    path = tmp_path / "indrnn.npz"
    npseq.save(path, model)
    with pytest.raises(ValueError, match="kinds=\\[INDRNN\\]"):
        npseq.load(path)
    for loaded in (npseq.load(path, kinds=[INDRNN]),
                   pickle.loads(pickle.dumps(model))):
        with npseq.no_grad():
            got, _ = loaded(x, lengths=[5, 3])
        np.testing.assert_array_equal(got, want)
    cell = npseq.RecurrentCell(INDRNN, 3, 4, seed=2)
    buffer = io.BytesIO()
    npseq.save(buffer, cell)
    buffer.seek(0)
    again = npseq.load(buffer, kinds=INDRNN)
    for k in cell.params:
        np.testing.assert_array_equal(again.params[k], cell.params[k])


def _flat(tree):
    if isinstance(tree, tuple):
        return np.concatenate([_flat(t) for t in tree])
    return np.ravel(tree)


def test_builtin_kinds_with_options_pickle():
    x = np.random.default_rng(8).standard_normal((4, 2))
    for m in (npseq.LSTM(2, 3, layer_norm=True, activation="relu", seed=0),
              npseq.GRU(2, 3, reset_after=False, seed=0), npseq.RNN(2, 3, nonlinearity="relu"),
              npseq.LSTMCell(2, 3, peephole=True, recurrent_activation="hard_sigmoid")):
        again = pickle.loads(pickle.dumps(m))
        with npseq.no_grad():
            want, got = m(x), again(x)
        np.testing.assert_array_equal(_flat(want), _flat(got))


# -- an input projection of the cell's own: has_weight_ih=False, gx is x -------------------
class OwnInputCache(NamedTuple):
    x: np.ndarray
    h_prev: np.ndarray
    h: np.ndarray


def own_input_forward(gx, carry, p):  # gx is x itself: (B, D)
    (h_prev,) = carry
    h = np.tanh(gx @ p["w"].T + p["u"] * h_prev)
    return (h,), OwnInputCache(gx, h_prev, h)


def own_input_backward(dcarry, cache, p):
    da = dcarry[0] * (1 - cache.h ** 2)
    return npseq.StepGrads(dgx=da @ p["w"], dgh=None, dcarry_prev=(da * p["u"],),
                           dparams={"w": da.T @ cache.x, "u": (da * cache.h_prev).sum(0)})


OWN_INPUT = npseq.CellKind("OWN_INPUT", 1, 1, own_input_forward, own_input_backward,
                           extra_params=(npseq.ParamSpec("w", ("H", "D")),
                                         npseq.ParamSpec("u", ("H",))),
                           has_weight_ih=False, has_weight_hh=False)


def test_a_cell_without_weight_ih_gets_x_and_returns_dx():
    rng = np.random.default_rng(7)
    m = npseq.Recurrent(OWN_INPUT, 3, 4, num_layers=2, bidirectional=True, bias=True, seed=0)
    assert sorted(m.params) == sorted(f"{k}_l{i}{r}" for k in ("w", "u") for i in (0, 1)
                                      for r in ("", "_reverse"))
    assert m.params["w_l1_reverse"].shape == (4, 8)
    errors = check_gradients(m, rng.standard_normal((5, 3, 3)),
                             rng.standard_normal((4, 3, 4)), lengths=[5, 1, 3])
    assert max(errors.values()) < 1e-7, errors


# -- 3. every module keeps to other modules' public names -----------------------------------
def test_no_module_of_npseq_reads_another_modules_private_names():
    allowed = {"_replace", "_fields", "_asdict", "_make", "_field_defaults", "_getframe"}
    hits = []
    for path in sorted((REPO / "npseq").rglob("*.py")):
        tree = ast.parse(path.read_text())
        own, bases = set(), set()
        for n in ast.walk(tree):
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)):
                own.add(n.name)
                if isinstance(n, ast.ClassDef):
                    bases |= {b.id for b in n.bases if isinstance(b, ast.Name)}
            elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
                own.add(n.attr)
            elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
                own.add(n.id)
        for n in ast.walk(tree):
            if (isinstance(n, ast.Attribute) and n.attr.startswith("_")
                    and not n.attr.startswith("__") and n.attr not in allowed
                    and n.attr not in own
                    and not (isinstance(n.value, ast.Name) and n.value.id in ("self", "cls"))):
                hits.append(f"{path.name}:{n.lineno} .{n.attr}")
            elif (isinstance(n, ast.ImportFrom) and n.module
                  and n.module != "npseq._validation"):
                hits += [f"{path.name}:{n.lineno} imports {a.name}" for a in n.names
                         if a.name.startswith("_") and a.name not in bases]
    assert hits == []


def test_no_activation_is_looked_up_by_name_inside_the_time_loop(monkeypatch):
    m = npseq.LSTM(2, 3, activation="relu", recurrent_activation="hard_sigmoid", seed=0)
    calls = []
    real = npseq.activations.check_choice

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(npseq.activations, "check_choice", counting)
    out, _ = m(np.ones((10, 2, 2)))
    m.backward(np.ones_like(out))
    assert calls == []
