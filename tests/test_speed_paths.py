"""The engine's extra paths pinned to the plain ones: trace hook, no-grad forward, checkpointing."""
import re

import numpy as np
import pytest

import npseq
from npseq.bptt import sequence_backward, sequence_forward
from npseq.cells.gru import GRU
from npseq.cells.lstm import LSTM
from npseq.cells.rnn import RNN_RELU, RNN_TANH

KINDS = {"LSTM": LSTM, "GRU": GRU, "RNN_TANH": RNN_TANH, "RNN_RELU": RNN_RELU}


def _layer_params(kind, D, H, rng, proj=0):
    G = kind.num_gates
    H_out = proj or H
    p = {"weight_ih": rng.uniform(-0.6, 0.6, (G * H, D)),
         "weight_hh": rng.uniform(-0.6, 0.6, (G * H, H_out)),
         "bias_ih": rng.uniform(-0.5, 0.5, G * H),
         "bias_hh": rng.uniform(-0.5, 0.5, G * H)}
    if proj:
        p["weight_hr"] = rng.uniform(-0.6, 0.6, (proj, H))
    return p


def _carry(kind, B, H, rng, proj=0):
    sizes = ((proj or H), H)[:kind.num_states]
    return tuple(rng.standard_normal((B, s)) for s in sizes)


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize("reverse", [False, True])
def test_trace_is_the_gradient_of_each_carry(name, reverse):
    """trace[t] = dout[t] + the gradient a backward over the remaining steps sends to carry_t."""
    kind = KINDS[name]
    rng = np.random.default_rng(1)
    T, B, D, H = 5, 3, 4, 6
    p = _layer_params(kind, D, H, rng)
    x = rng.standard_normal((T, B, D))
    carry0 = _carry(kind, B, H, rng)
    dout = rng.standard_normal((T, B, H))
    dlast = _carry(kind, B, H, rng)
    _, _, record = sequence_forward(kind, x, carry0, p, reverse=reverse)
    *_, trace = sequence_backward(kind, dout, dlast, record, p, trace=True)
    assert len(trace) == kind.num_states and all(a.shape[:2] == (T, B) for a in trace)
    for t in range(T):
        done = slice(0, t + 1) if not reverse else slice(t, T)  # steps up to and with t
        rest = slice(t + 1, T) if not reverse else slice(0, t)
        _, carry_t, _ = sequence_forward(kind, x[done], carry0, p, reverse=reverse, keep=False)
        if rest.stop - rest.start == 0:
            expected = (dlast[0] + dout[t],) + dlast[1:]
        else:
            _, _, rec = sequence_forward(kind, x[rest], carry_t, p, reverse=reverse)
            _, dcarry_t, _ = sequence_backward(kind, dout[rest], dlast, rec, p)
            expected = (dcarry_t[0] + dout[t],) + tuple(dcarry_t[1:])
        for got, want in zip(trace, expected):
            np.testing.assert_allclose(got[t], want, rtol=1e-12, atol=1e-12)


def test_trace_off_returns_three_values_and_layer_trace_fills_dict():
    rng = np.random.default_rng(2)
    m = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    x = rng.standard_normal((2, 5, 3))
    out, _ = m(x, lengths=[5, 3])
    dout = rng.standard_normal(out.shape)
    m2 = npseq.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True, seed=0)
    m2(x, lengths=[5, 3])
    trace = {}
    dx, _ = m.backward(dout, trace=trace)
    dx2, _ = m2.backward(dout)
    np.testing.assert_array_equal(dx, dx2)
    assert sorted(trace) == [(0, 0), (0, 1), (1, 0), (1, 1)]
    for dh, dc in trace.values():
        assert dh.shape == (5, 2, 4) and dc.shape == (5, 2, 4)
        assert np.all(dh[3:, 1] == 0) and np.all(dc[3:, 1] == 0)  # padded steps of sequence 1
        assert np.any(dh[:3, 1] != 0)
    # the top layer's forward-direction dh at the last step is the output gradient there
    np.testing.assert_array_equal(trace[(1, 0)][0][4, 0], dout[0, 4, :4])
    with pytest.raises(TypeError, match="trace"):
        m(x)
        m.backward(dout, trace=[])


# -- gradient checkpointing: exactly the plain gradients ------------------------------------
def _fwd_bwd(m, x, lengths, dout, dstate):
    m.zero_grad()
    out, state = m(x, lengths=lengths)
    dx, dstate0 = m.backward(dout, dstate)
    return out, state, dx, dstate0, {k: v.copy() for k, v in m.grads.items()}


def _assert_same(a, b):
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    elif isinstance(a, tuple):
        for u, v in zip(a, b):
            _assert_same(u, v)
    else:
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layer, kw", [("LSTM", {}), ("LSTM", {"proj_size": 2}), ("GRU", {}),
                                       ("RNN", {}), ("RNN", {"nonlinearity": "relu"})])
@pytest.mark.parametrize("block_rows", [6, 512])  # several blocks per sequence, or one
def test_checkpointing_gives_exactly_the_plain_gradients(layer, kw, block_rows, monkeypatch):
    import npseq.bptt
    monkeypatch.setattr(npseq.cells.base, "_BLOCK_ROWS", block_rows)
    monkeypatch.setattr(npseq.bptt, "FUSED", False)  # checkpointing runs the steps
    rng = np.random.default_rng(3)
    T, B, D, H = 11, 3, 4, 5
    m = getattr(npseq, layer)(D, H, num_layers=2, bidirectional=True, seed=4, **kw)
    for v in m.params.values():  # non-zero biases, weights large enough to matter
        v[...] = rng.uniform(-0.8, 0.8, v.shape)
    x = rng.standard_normal((T, B, D))
    out, state = m(x)
    m.backward(np.zeros_like(out))
    dout = rng.standard_normal(out.shape)
    state_shapes = state if isinstance(state, tuple) else (state,)
    dstate = tuple(rng.standard_normal(s.shape) for s in state_shapes)
    dstate = dstate if isinstance(state, tuple) else dstate[0]
    for lengths in (None, [11, 4, 7]):
        plain = _fwd_bwd(m, x, lengths, dout, dstate)
        for k in (1, 2, 3, 5, 11, 50):
            m.checkpoint_every = k
            _assert_same(_fwd_bwd(m, x, lengths, dout, dstate), plain)
        m.checkpoint_every = None


def test_checkpointed_record_keeps_only_every_kth_carry():
    rng = np.random.default_rng(5)
    p = _layer_params(LSTM, 3, 4, rng)
    x = rng.standard_normal((10, 2, 3))
    _, _, record = sequence_forward(LSTM, x, _carry(LSTM, 2, 4, rng), p, checkpoint_every=4)
    assert record.caches is None and sorted(record.checkpoints) == [0, 4, 8]
    _, _, record = sequence_forward(LSTM, x, _carry(LSTM, 2, 4, rng), p, reverse=True,
                                    checkpoint_every=4)
    assert sorted(record.checkpoints) == [1, 5, 9]


def test_checkpoint_every_is_validated_and_settable():
    m = npseq.GRU(3, 4, checkpoint_every=8)
    assert m.checkpoint_every == 8
    m.checkpoint_every = None
    assert m.checkpoint_every is None
    for bad in (0, -2, 2.5, "3", True):
        with pytest.raises((TypeError, ValueError), match="checkpoint_every"):
            m.checkpoint_every = bad
    with pytest.raises((TypeError, ValueError), match="checkpoint_every"):
        npseq.LSTM(3, 4, checkpoint_every=0)


# -- no-grad forward and the plain step contract --------------------------------------------
@pytest.mark.parametrize("layer", ["LSTM", "GRU", "RNN"])
def test_no_grad_forward_equals_forward_and_keeps_nothing(layer):
    rng = np.random.default_rng(6)
    m = getattr(npseq, layer)(3, 4, num_layers=2, bidirectional=True, seed=0)
    x = rng.standard_normal((7, 2, 3))
    out, state = m(x, lengths=[7, 3])
    with npseq.no_grad(), pytest.warns(npseq.UnpairedForwardWarning):
        out2, state2 = m(x, lengths=[7, 3])
    _assert_same((out2, state2), (out, state))
    assert m.pending_records == 0  # the no-grad call dropped the first record, kept none
    with pytest.raises(RuntimeError, match="no_grad"):  # nothing to pair a backward with
        m.backward(rng.standard_normal(out.shape))


@pytest.mark.parametrize("name", sorted(KINDS))
def test_a_kind_with_the_plain_signature_gets_the_same_gradients(name, monkeypatch):
    """The driver passes ``out=`` only to step functions that take it; results are equal
    (exactly: both run step by step, the fused paths off)."""
    import npseq.bptt
    monkeypatch.setattr(npseq.bptt, "FUSED", False)
    kind = KINDS[name]
    # (a plain step_forward takes no recurrent_mask=, so such a kind cannot declare "step")
    plain = kind._replace(step_forward=lambda gx, carry, p: kind.step_forward(gx, carry, p),
                          step_backward=lambda dc, cache, p: kind.step_backward(dc, cache, p),
                          recurrent_dropout=("carry" if kind.recurrent_dropout == "carry"
                                             else None))
    rng = np.random.default_rng(7)
    p = _layer_params(kind, 3, 4, rng)
    x = rng.standard_normal((6, 2, 3))
    carry0 = _carry(kind, 2, 4, rng)
    dout = rng.standard_normal((6, 2, 4))
    dlast = _carry(kind, 2, 4, rng)
    mask = np.array([[True, True]] * 4 + [[True, False]] * 2)[:, :, None]
    results = []
    for k in (kind, plain):
        out, carry, record = sequence_forward(k, x, carry0, p, mask=mask)
        results.append((out, carry) + sequence_backward(k, dout, dlast, record, p))
    _assert_same(results[0][:4], results[1][:4])
    _assert_same(results[0][4], results[1][4])


# -- the benchmark's textbook baseline is correct -------------------------------------------
def _benchmark_module(name):
    """Import ``benchmarks/<name>.py`` (the folder is not a package)."""
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_textbook_baseline_matches_npseq(cell):
    textbook = _benchmark_module("textbook")
    rng = np.random.default_rng(8)
    m = getattr(npseq, cell)(4, 6, seed=1)
    for v in m.params.values():
        v[...] = rng.uniform(-0.7, 0.7, v.shape)
    x = rng.standard_normal((5, 3, 4))
    dout = rng.standard_normal((5, 3, 6))
    out, _ = m(x)
    dx, _ = m.backward(dout)
    out_tb, cache = textbook.forward(cell, x, m.params)
    dx_tb, grads = textbook.backward(cell, dout, cache, m.params)
    np.testing.assert_allclose(out_tb, out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx_tb, dx, rtol=1e-10, atol=1e-12)
    assert grads.keys() == m.grads.keys()
    for k in grads:
        np.testing.assert_allclose(grads[k], m.grads[k], rtol=1e-10, atol=1e-12, err_msg=k)


# -- the benchmark script runs ----------------------------------------------------------------
@pytest.mark.parametrize("cell, shape, label", [
    ("LSTM", (3, 2, 4, 5), "(3, 2, 4, 5)"), ("GRU", (3, 2, 4, 5), "(3, 2, 4, 5)"),
    ("LSTM", (3, 2, 4, 5, 2, True), "(3, 2, 4, 5) x2 bidir.")])
def test_benchmark_row_runs(cell, shape, label, monkeypatch, capsys):
    """``benchmarks/bench_rnn.py`` on one tiny row prints what it documents: structure only.

    The kernel line, a legend naming every column before the table, the table's columns, and
    every number finite and non-negative. Never a timing. The environment is kept as given.
    """
    import math
    import re
    bench = _benchmark_module("bench_rnn")
    monkeypatch.setattr(bench, "SETTLE", 0.001)
    monkeypatch.setattr(bench, "PEAK_N", 64)
    args = bench.parse_args(["--cells", cell, "--dtypes", "float64", "--repeats", "2",
                             "--no-checkpoint", "--keep-env"])
    bench.main(args, grid=[shape])
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"kernel: \S.*", line) for line in lines), lines
    assert any(line.startswith("environment: ") for line in lines), lines
    table = [i for i, line in enumerate(lines) if line.startswith("|")]
    assert len(table) == 3, lines  # header, rule, one row
    head = [c.strip() for c in lines[table[0]].strip("|").split("|")]
    ratios = ["fwd+bwd / torch", "fwd / torch"] if bench.torch is not None else []
    spread = "spread npseq / torch" if bench.torch is not None else "spread npseq"
    assert head == (["cell", "dtype", "(T, B, D, H)", "fwd+bwd ms", "fwd ms"] + ratios
                    + ["textbook / npseq", "GFLOP/s (% peak)", "kept MB", spread, "flags"])
    legend = lines[lines.index("columns:") + 1:table[0]]  # printed before the table
    for column in head[3:]:
        assert any(line.strip().startswith(column + "  ") for line in legend), column
    row = dict(zip(head, (c.strip() for c in lines[table[2]].strip("|").split("|"))))
    assert len(row) == len(head)
    assert [row["cell"], row["dtype"], row["(T, B, D, H)"]] == [cell, "float64", label]
    stacked = len(shape) > 4
    if stacked:  # the textbook loop is one layer, one direction: no column for it here
        assert row["textbook / npseq"] == "-"
    assert row["flags"] == "ok" or row["flags"].startswith("! "), row
    number = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"
    shapes = {"textbook / npseq": rf"({number})x",
              "GFLOP/s (% peak)": rf"({number}) \(({number})%\)",
              spread: " / ".join([rf"({number})%"] * (2 if ratios else 1))}
    for column in head[3:-1]:
        if stacked and column == "textbook / npseq":
            continue
        match = re.fullmatch(shapes.get(column, f"({number})"), row[column])
        assert match, (column, row[column])
        assert all(math.isfinite(float(v)) and float(v) >= 0 for v in match.groups()), row
    for column in ["fwd+bwd ms", "fwd ms"] + ratios + ["textbook / npseq"] * (not stacked):
        assert float(re.match(number, row[column]).group()) > 0, (column, row)  # never 0.00


def test_benchmark_fused_ab_table(monkeypatch, capsys):
    """``bench_rnn.py --fused-ab`` prints one row per cell that has a fused path (LSTM, GRU;
    not RNN), with its columns and finite non-negative numbers: structure only."""
    import math
    import re
    bench = _benchmark_module("bench_rnn")
    monkeypatch.setattr(bench, "SETTLE", 0.001)
    monkeypatch.setattr(bench, "PEAK_N", 64)
    args = bench.parse_args(["--fused-ab", "--cells", "LSTM,GRU,RNN", "--dtypes", "float64",
                             "--repeats", "2", "--keep-env"])
    bench.main(args, grid=[(3, 2, 4, 5, 2, True)])
    lines = capsys.readouterr().out.splitlines()
    table = [line for line in lines if line.startswith("|")]
    assert [c.strip() for c in table[0].strip("|").split("|")] == bench.FUSED_COLUMNS
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [r[0] for r in rows] == ["LSTM", "GRU"], rows
    for r in rows:
        assert r[2] == "(3, 2, 4, 5) x2 bidir."
        for value in r[3:9]:
            assert math.isfinite(float(value)) and float(value) > 0, r
        assert re.fullmatch(r"\d+%", r[9]) and r[10] in ("ok", "! spread"), r
    assert bench.npseq.bptt.FUSED is True  # restored after every timed run


def test_benchmark_runs_without_the_blas_overrides():
    """Run as a program, ``bench_rnn.py`` re-executes itself without OPENBLAS_CORETYPE/L2_SIZE.

    The environment line reports "unset" only if neither variable is in the re-executed
    process's environment. The test's own environment is left as it is.
    """
    import os
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).parents[1]
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", OPENBLAS_L2_SIZE="2097152",
               PYTHONPATH=os.pathsep.join([str(root)] + [os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, str(root / "benchmarks" / "bench_rnn.py"),
                          "--peak-only", "--dtypes", "float32", "--threads", "1"], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    lines = out.splitlines()
    assert ("environment: OPENBLAS_CORETYPE=Haswell, OPENBLAS_L2_SIZE=2097152 unset for this "
            "run") in lines[0], out
    assert lines[1].startswith("kernel: "), out
    import importlib.util
    if importlib.util.find_spec("torch") is None:
        assert lines[-1].startswith("matmul peak"), out
    else:  # torch's own product of the same size follows NumPy's
        assert lines[-2].startswith("matmul peak"), out
        assert lines[-1].startswith("torch's own product, same size ("), out
        assert "float32" in lines[-1] and lines[-1].endswith("GFLOP/s"), out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("D", [1, 2, 7])
def test_times_transpose_gives_the_bits_of_the_product(D, dtype):
    """One input feature takes a broadcast multiply instead of a BLAS product with an inner
    size of 1: the same bits (each entry is one multiplication); other sizes the product."""
    from npseq.cells.base import times_transpose
    rng = np.random.default_rng(D)
    x = rng.standard_normal((300, D)).astype(dtype)
    w = rng.standard_normal((12, D)).astype(dtype)
    got = times_transpose(x, w)
    assert got.shape == (300, 12) and got.dtype == dtype
    np.testing.assert_array_equal(got, x @ w.T)


def test_ab_revisions_prints_one_row_a_shape_and_names_a_bad_revision():
    """``benchmarks/ab_revisions.py`` imports npseq at a git revision beside the working
    tree and prints one row a grid shape (structure only: the times are the machine's)."""
    import os
    import pathlib
    import subprocess
    import sys
    root = pathlib.Path(__file__).parents[1]
    if not (root / ".git").exists():
        pytest.skip("not a git checkout: ab_revisions.py reads git revisions")
    script = str(root / "benchmarks" / "ab_revisions.py")
    env = dict(os.environ, PYTHONPATH="")  # the revisions are imported from their folders
    run = subprocess.run([sys.executable, script, "HEAD", "--quick", "--cells", "RNN",
                          "--rounds", "2"], env=env, capture_output=True, text=True,
                         timeout=300, check=True).stdout
    rows = [line for line in run.splitlines() if line.startswith("| RNN | float32 |")]
    assert len(rows) == 6, run
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 11, row
        for value in cells[3:9]:
            assert float(value) > 0, row
        assert cells[10] in ("ok", "! spread"), row
    bad = subprocess.run([sys.executable, script, "no-such-revision"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0
    assert "expected a git revision" in bad.stderr and "'no-such-revision'" in bad.stderr
