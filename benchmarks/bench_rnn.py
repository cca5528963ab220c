"""npseq against torch.nn and a textbook NumPy loop: time, GFLOP/s, activation memory.

Usage::

    python benchmarks/bench_rnn.py [--quick] [--cells LSTM,GRU,RNN]
                                   [--dtypes float32,float64] [--threads N] [--repeats R]
                                   [--torch-no-onednn] [--no-checkpoint] [--keep-env]
                                   [--peak-only] [--fused-ab]

``--fused-ab`` prints, instead of the comparison with torch, npseq's fused paths (the plain
LSTM and GRU, ``CellKind.fused``) against its own step loop (``npseq.bptt.FUSED = False``),
timed interleaved at every grid shape: about 5 minutes for LSTM and GRU in both dtypes.

Run time on 2 idle cores: 6-10 minutes for the default run (36 rows), about a minute with
``--quick`` (T/5, 3 rounds, the checkpointing line at T=400). Under load it is far longer:
with other programs keeping the load average at 1.6-4 on 2 cores, the default run took 29.5
minutes (at 7, its first 7 of 30 rows took 25). The run prints the load average at its start
and end, and its own run time last.

The user's kernel. OpenBLAS picks its kernels for the CPU it runs on, unless the environment
variables ``OPENBLAS_CORETYPE`` (and ``OPENBLAS_L2_SIZE``) force others: some machines set them
so that older OpenBLAS builds work, and they slow a current numpy's products (on an AVX-512
CPU, ``OPENBLAS_CORETYPE=Haswell`` runs the AVX2 kernels). A user's machine has neither. So
that npseq is timed as a user would run it, the script, when either is set, unsets both and
re-executes itself (``os.execve``, before numpy is imported) with that environment: the
change is for this process only. ``--keep-env`` keeps the environment as given. The output
says what was unset and which kernel OpenBLAS runs (threadpoolctl, an optional dependency:
``pip install threadpoolctl``).

Prints the environment, the kernel, the machine, the load average, the matrix-product peak,
a legend of the columns and one markdown table: for every cell, dtype and shape (T, B, D, H)
of the grid, npseq's forward+backward and forward-only (``npseq.no_grad()``) median times,
their ratio to ``torch.nn.LSTM/GRU/RNN`` with the same weights and ``torch.set_num_threads``
equal to the BLAS threads (columns left out without torch), the textbook loop's time over
npseq's (``benchmarks/textbook.py``), npseq's achieved GFLOP/s (the matrix products of
forward and backward, ``6 T B G H (D + H)``) against this machine's matrix-product peak for
the dtype (a 1024 x 1024 product timed in the same rounds, so that load on a shared machine
hits both), the memory of the activations a forward keeps for its backward (tracemalloc,
the output itself not counted), the spread of the times over the rounds, and a flag on rows
not to be trusted (the rule: ``FLAG_RULE``). Contenders run interleaved, one timed run each
per round, each after 50 ms of untimed runs of its own (``_settled_time``); medians over the
rounds. A last line measures gradient checkpointing at T=2000, B=32, D=H=256 (LSTM).
Ratios below 1 mean npseq is faster. ``--peak-only`` prints the environment, the kernel and
the matrix-product peak and stops (a few seconds): run it with and without the variables to
see what they cost.

On a CPU, ``torch.nn.LSTM`` in float32 runs oneDNN's fused LSTM kernels
(``aten::mkldnn_rnn_layer`` and its backward); GRU, RNN and float64 run ATen's loop of
per-step operators. ``--torch-no-onednn`` sets ``torch.backends.mkldnn.enabled = False``,
which makes the LSTM take that loop too.
"""
import argparse
import os
import platform
import sys
import textwrap
import time
import tracemalloc

START = time.perf_counter()
GRID = [(50, 16, 32, 32), (100, 32, 64, 128), (100, 64, 256, 256), (200, 1, 64, 128),
        (100, 64, 512, 512), (100, 32, 64, 128, 2, True)]  # (T, B, D, H[, layers, bidir.])
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # unset for the timing process
UNSET_NOTE = "NPSEQ_BENCH_UNSET"  # what the re-executed process was started without


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="T/5, 3 rounds, checkpointing at T=400: about a minute on 2 idle "
                         "cores (the default run: 6-10)")
    ap.add_argument("--cells", default="LSTM,GRU,RNN")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="BLAS threads and torch threads (default: all cores)")
    ap.add_argument("--repeats", type=int, default=None, help="rounds (default 7, quick 3)")
    ap.add_argument("--no-checkpoint", action="store_true", help="skip the checkpointing line")
    ap.add_argument("--torch-no-onednn", action="store_true",
                    help="torch.backends.mkldnn.enabled = False: torch's LSTM without oneDNN")
    ap.add_argument("--keep-env", action="store_true",
                    help="keep OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE if set (default: "
                         "unset both and re-execute, so OpenBLAS runs a user's kernel)")
    ap.add_argument("--fused-ab", action="store_true",
                    help="instead of the table against torch: npseq's fused paths (the plain "
                         "LSTM and GRU) against its step loop (npseq.bptt.FUSED off), "
                         "interleaved, at every grid shape")
    ap.add_argument("--peak-only", action="store_true",
                    help="print the environment, the kernel and the matrix-product peak "
                         "(best of 30), then stop")
    args = ap.parse_args(argv)
    args.cells = [c.strip().upper() for c in args.cells.split(",")]
    args.dtypes = [d.strip() for d in args.dtypes.split(",")]
    bad = [c for c in args.cells if c not in GATES] + [d for d in args.dtypes
                                                       if d not in ("float32", "float64")]
    if bad:
        ap.error(f"unknown cells or dtypes: {bad}")
    if args.repeats is not None and args.repeats < 2:
        ap.error(f"--repeats must be at least 2 (a spread needs two rounds), got {args.repeats}")
    args.repeats = args.repeats or (3 if args.quick else 7)
    return args


def users_environment(environ):
    """``environ`` without ``BLAS_OVERRIDES``, and the overrides it had (name -> value)."""
    removed = {k: environ[k] for k in BLAS_OVERRIDES if k in environ}
    return {k: v for k, v in environ.items() if k not in BLAS_OVERRIDES}, removed


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # BLAS reads its thread count and kernel when numpy is first imported
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)
    if not ARGS.keep_env:
        _env, _removed = users_environment(os.environ)
        if _removed:  # start again, numpy not yet imported, without the overrides
            _env[UNSET_NOTE] = ", ".join(f"{k}={v}" for k, v in _removed.items())
            sys.stdout.flush()
            os.execve(sys.executable, [sys.executable] + sys.orig_argv[1:], _env)

import numpy as np  # noqa: E402

import npseq  # noqa: E402
import npseq.bptt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textbook  # noqa: E402

try:
    import torch
except ImportError:  # the torch columns are left out
    torch = None


# -- the machine -----------------------------------------------------------------------------
def environment_line(keep_env, environ=os.environ):
    """What the script did with ``BLAS_OVERRIDES``."""
    present = ", ".join(f"{k}={environ[k]}" for k in BLAS_OVERRIDES if k in environ)
    if present:
        how = ("kept (--keep-env)" if keep_env else
               "still set (the script re-executes without them only when run as a program)")
        return f"environment: {present} {how}: OpenBLAS may run another kernel than a user's"
    if environ.get(UNSET_NOTE):
        return (f"environment: {environ[UNSET_NOTE]} unset for this run (the script "
                f"re-executed itself without them; --keep-env keeps them)")
    return (f"environment: neither {BLAS_OVERRIDES[0]} nor {BLAS_OVERRIDES[1]} set: OpenBLAS "
            f"picks its kernel for this CPU")


def kernel_line():
    """The kernel each loaded OpenBLAS reports, with its library, version and threads."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "kernel: unknown (pip install threadpoolctl)"
    libs = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not libs:
        return "kernel: unknown (threadpoolctl finds no BLAS library loaded)"
    libs.sort(key=lambda i: "numpy" not in i["filepath"])  # numpy's own BLAS first
    return "kernel: " + "; ".join(
        f"{i.get('architecture') or 'not reported'} ({i['internal_api']} {i['version']}, "
        f"{os.path.basename(os.path.dirname(i['filepath']))}, {i['num_threads']} threads)"
        for i in libs)


def load_line(when):
    """The 1-minute load average: above the core count, other programs share the cores."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return f"load {when}: unknown"
    return f"load {when}: {load:.2f} (1-minute average) on {os.cpu_count()} cores"


def machine(threads):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = "unknown BLAS"
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{cfg['name']} {cfg.get('version', '')}".strip()
    except Exception:  # older numpy: no dict mode
        pass
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                            ", torch not installed")
    return (f"machine: {cpu}, {os.cpu_count()} cores; {threads} BLAS/torch threads; "
            f"numpy's BLAS: {blas}; {versions}; Python {platform.python_version()}")


PEAK_N = 1024  # the matrix product that measures the peak: (n x n) @ (n x n)


def matmul(dtype, library="numpy"):
    """A function running one ``PEAK_N x PEAK_N`` matrix product of ``dtype``, in NumPy (its
    OpenBLAS) or in torch (``torch.matmul``: its own BLAS, MKL in the x86 CPU wheels)."""
    n = PEAK_N
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    if library == "torch":
        a, b = torch.from_numpy(a), torch.from_numpy(b)
        return lambda: torch.matmul(a, b)
    return lambda: a @ b


def torch_blas():
    """The BLAS torch was built with (``BLAS_INFO`` of ``torch.__config__.show()``)."""
    info = [part.split("=", 1)[1] for part in torch.__config__.show().replace(",", " ").split()
            if part.startswith("BLAS_INFO=")]
    return info[0] if info else "unknown BLAS"


def matmul_peak(dtype, rounds=7, library="numpy"):
    """Best GFLOP/s of the peak product."""
    product = matmul(dtype, library)
    product()
    return 2 * PEAK_N ** 3 / min(_time(product) for _ in range(rounds)) / 1e9


# -- contenders ------------------------------------------------------------------------------
def _time(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


SETTLE = 0.05  # seconds of untimed runs before each timed run (see _settled_time)


def _settled_time(fn):
    """Time one run of ``fn`` after running it untimed for ``SETTLE`` seconds (at least once).

    The contenders' thread pools do not go to sleep when a run ends: torch's OpenMP threads
    spin for a while, waiting for more work (Intel OpenMP's KMP_BLOCKTIME, 200 ms by default),
    and OpenBLAS's threads do the same. A run started right after the other library's run
    shares the cores with those spinning threads. Measured here at LSTM (50, 16, 32, 32):
    npseq's first runs after a torch run took 4-10 ms instead of 2.8 ms, for about 15 ms.
    Settling measures every contender as a program that uses only that library would see it.
    """
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < SETTLE:
        fn()
    return _time(fn)


def make_case(cell, dtype, T, B, D, H, num_layers=1, bidirectional=False, seed=0):
    rng = np.random.default_rng(seed)
    m = getattr(npseq, cell)(D, H, num_layers=num_layers, bidirectional=bidirectional,
                             dtype=dtype, seed=seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dout = rng.standard_normal((T, B, H * m.num_directions)).astype(dtype)
    return m, x, dout


def shape_label(shape):
    """``(T, B, D, H)``, followed by the layers and ``bidir.`` for a stacked or two-way one."""
    T, B, D, H, num_layers, bidirectional = _full(shape)
    extra = (f" x{num_layers}" if num_layers > 1 else "") + (" bidir." if bidirectional else "")
    return f"({T}, {B}, {D}, {H}){extra}"


def _full(shape):
    """A grid entry with its defaults: ``(T, B, D, H, num_layers, bidirectional)``."""
    return tuple(shape) + (1, False)[len(shape) - 4:]


def npseq_fwd_bwd(m, x, dout):
    m(x)
    m.backward(dout)


def npseq_fwd(m, x):
    with npseq.no_grad():
        m(x)


def torch_contenders(cell, m, x, dout):
    tm = getattr(torch.nn, cell)(m.input_size, m.hidden_size, num_layers=m.num_layers,
                                 bidirectional=m.bidirectional)
    tm = tm.to(getattr(torch, m.dtype.name))
    tm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in m.params.items()})
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    dt = torch.from_numpy(dout.copy())

    def fwd_bwd():
        tm.zero_grad()
        xt.grad = None
        out, _ = tm(xt)
        out.backward(dt)

    def fwd():
        with torch.no_grad():
            tm(xt)
    return fwd_bwd, fwd


def check_textbook():
    """The textbook loop agrees with npseq (float64, every cell) before it is timed."""
    for cell in GATES:
        m, x, dout = make_case(cell, np.float64, 5, 3, 4, 6, seed=1)
        for v in m.params.values():
            v += 0.1  # non-zero biases
        out, _ = m(x)
        dx, _ = m.backward(dout)
        out_tb, cache = textbook.forward(cell, x, m.params)
        dx_tb, grads = textbook.backward(cell, dout, cache, m.params)
        assert np.allclose(out_tb, out, rtol=1e-10, atol=1e-12), cell
        assert np.allclose(dx_tb, dx, rtol=1e-10, atol=1e-12), cell
        for k in grads:
            assert np.allclose(grads[k], m.grads[k], rtol=1e-10, atol=1e-12), (cell, k)


def kept_bytes(m, x, checkpoint_every=None):
    """Bytes a forward leaves for its backward (tracemalloc), its output not counted."""
    m.checkpoint_every = checkpoint_every
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out, _ = m(x)
    kept = tracemalloc.get_traced_memory()[0] - before - out.nbytes
    tracemalloc.stop()
    m.clear_records()
    m.checkpoint_every = None
    return kept


def peak_bytes(m, x, dout, checkpoint_every=None):
    """Peak traced bytes over a forward and its backward, above what was there before."""
    m.checkpoint_every = checkpoint_every
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    npseq_fwd_bwd(m, x, dout)
    peak = tracemalloc.get_traced_memory()[1] - before
    tracemalloc.stop()
    m.checkpoint_every = None
    return peak


def flops(cell, T, B, D, H, num_layers=1, bidirectional=False):
    """Multiply-adds x 2 of the matrix products of forward + backward, every layer and
    direction (a layer above the first reads ``directions * H`` inputs)."""
    directions = 2 if bidirectional else 1
    inputs = [D] + [directions * H] * (num_layers - 1)
    return sum(6 * T * B * GATES[cell] * H * (d + H) * directions for d in inputs)


SPREAD_LIMIT = 0.10  # largest (q75 - q25) / median of a timed run in a row to be trusted
RATIO_RANGE = (0.05, 20.0)  # a ratio outside this is a 20-fold gap: suspect load, not code
FLAG_RULE = (f"'!' when a timed run of the row (npseq, torch, textbook or the peak product) "
             f"has a spread above {SPREAD_LIMIT:.0%}, a ratio falls outside "
             f"{RATIO_RANGE[0]}-{RATIO_RANGE[1]:.0f} (a 20-fold gap: suspect load, not code), or "
             f"% peak exceeds 100 (the peak product was slowed in that row's rounds), with the "
             f"reasons; re-run flagged rows on a quieter machine")
RUN_NAMES = {"np_fb": "npseq fwd+bwd", "np_f": "npseq fwd", "t_fb": "torch fwd+bwd",
             "t_f": "torch fwd", "tb_fb": "textbook fwd+bwd", "peak": "peak product"}


def columns(with_torch):
    """The table's header."""
    head = ["cell", "dtype", "(T, B, D, H)", "fwd+bwd ms", "fwd ms"]
    if with_torch:
        head += ["fwd+bwd / torch", "fwd / torch"]
    head += ["textbook / npseq", "GFLOP/s (% peak)", "kept MB"]
    return head + ["spread npseq / torch" if with_torch else "spread npseq", "flags"]


def legend(threads):
    """What each column of the table means, one line each (printed before the table)."""
    text = {
        "fwd+bwd ms": "npseq: median time of a forward (recording) and its backward",
        "fwd ms": "npseq: median time of a forward alone under npseq.no_grad()",
        "fwd+bwd / torch": "npseq's fwd+bwd over torch.nn's (same weights, "
                           f"torch.set_num_threads({threads})); below 1: npseq is faster",
        "fwd / torch": "the same for a forward alone (npseq.no_grad() against "
                       "torch.no_grad())",
        "textbook / npseq": "benchmarks/textbook.py's fwd+bwd over npseq's; above 1: npseq "
                            "is faster ('-' for a stacked or bidirectional shape: the "
                            "textbook loop is one layer, one direction)",
        "GFLOP/s (% peak)": "npseq's fwd+bwd: 6 T B G H (D + H) flops of its products over "
                            f"its time (summed over layers and directions, D the layer's "
                            f"input); % of the {PEAK_N} x {PEAK_N} product timed in the same "
                            "rounds",
        "kept MB": "activations a forward keeps for its backward (tracemalloc; output not "
                   "counted)",
        "spread npseq / torch": "(q75 - q25) / median of the times over the rounds, the larger "
                                "of fwd+bwd and fwd, for npseq / for torch",
        "spread npseq": "(q75 - q25) / median of npseq's times over the rounds, the larger "
                        "of fwd+bwd and fwd",
        "flags": "ok, or " + FLAG_RULE,
    }
    head = columns(torch is not None)
    width = max(len(c) for c in head)
    return ["columns:"] + [textwrap.fill(text[c], 100, initial_indent=f"  {c:<{width}}  ",
                                         subsequent_indent=" " * (width + 4))
                           for c in head[3:]]


def _num(x, decimals):
    """``x`` with ``decimals`` decimals, or two significant digits where those would show 0."""
    s = f"{x:.{decimals}f}"
    return f"{x:.2g}" if x != 0 and float(s) == 0 else s


def spread(times):
    """Interquartile range over median of a run's times."""
    q25, med, q75 = np.percentile(times, [25, 50, 75])
    return (q75 - q25) / med


def bench_row(cell, dtype, shape, repeats):
    """One row of the table: a list of strings in the order of ``columns``."""
    full = _full(shape)
    m, x, dout = make_case(cell, dtype, *full)
    runs = {"np_fb": lambda: npseq_fwd_bwd(m, x, dout), "np_f": lambda: npseq_fwd(m, x)}
    if torch is not None:
        runs["t_fb"], runs["t_f"] = torch_contenders(cell, m, x, dout)
    if full[4:] == (1, False):  # the textbook loop is one layer, one direction
        runs["tb_fb"] = lambda: textbook.backward(cell, dout, textbook.forward(cell, x,
                                                                               m.params)[1],
                                                  m.params)
    runs["peak"] = matmul(dtype)  # the peak, measured in the same rounds as the contenders
    for fn in runs.values():  # warm up
        fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_settled_time(fn))
    med = {k: float(np.median(v)) for k, v in times.items()}
    spr = {k: spread(v) for k, v in times.items()}
    gflops = flops(cell, *full) / med["np_fb"] / 1e9
    pct = 100 * gflops / (2 * PEAK_N ** 3 / med["peak"] / 1e9)
    ratios = [med["tb_fb"] / med["np_fb"]] if "tb_fb" in med else []
    row = [cell, np.dtype(dtype).name, shape_label(shape),
           _num(med["np_fb"] * 1e3, 1), _num(med["np_f"] * 1e3, 1)]
    if torch is not None:
        ratios = [med["np_fb"] / med["t_fb"], med["np_f"] / med["t_f"]] + ratios
        row += [_num(r, 2) for r in ratios[:2]]
    textbook_ratio = _num(med["tb_fb"] / med["np_fb"], 1) + "x" if "tb_fb" in med else "-"
    row += [textbook_ratio, f"{_num(gflops, 1)} ({_num(pct, 0)}%)",
            _num(kept_bytes(m, x) / 2 ** 20, 1)]
    sides = [("np_fb", "np_f")] + ([("t_fb", "t_f")] if torch is not None else [])
    row.append(" / ".join(f"{100 * max(spr[a], spr[b]):.0f}%" for a, b in sides))
    why = [f"{RUN_NAMES[k]} spread {100 * s:.0f}%" for k, s in spr.items() if s > SPREAD_LIMIT]
    why += [f"ratio {_num(r, 2)}" for r in ratios if not RATIO_RANGE[0] <= r <= RATIO_RANGE[1]]
    why += [f"{pct:.0f}% of peak"] if pct > 100 else []
    row.append("! " + "; ".join(why) if why else "ok")
    return row


def fused_row(cell, dtype, shape, repeats):
    """One row of the ``--fused-ab`` table: the step loop and the fused path, timed
    interleaved in the same rounds, their medians, ratios (fused / steps) and spreads."""
    full = _full(shape)
    m, x, dout = make_case(cell, dtype, *full)

    def under(fused, fn):
        def run():
            npseq.bptt.FUSED = fused
            try:
                fn()
            finally:
                npseq.bptt.FUSED = True
        return run
    runs = {(part, fused): under(fused, fn) for fused in (False, True)
            for part, fn in (("fb", lambda: npseq_fwd_bwd(m, x, dout)),
                             ("f", lambda: npseq_fwd(m, x)))}
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_settled_time(fn))
    med = {k: float(np.median(v)) for k, v in times.items()}
    spr = max(spread(v) for v in times.values())
    row = [cell, np.dtype(dtype).name, shape_label(shape)]
    for part in ("fb", "f"):
        row += [_num(med[(part, False)] * 1e3, 1), _num(med[(part, True)] * 1e3, 1),
                _num(med[(part, True)] / med[(part, False)], 2)]
    row += [f"{100 * spr:.0f}%", "ok" if spr <= SPREAD_LIMIT else "! spread"]
    return row


FUSED_COLUMNS = ["cell", "dtype", "(T, B, D, H)", "steps fwd+bwd ms", "fused fwd+bwd ms",
                 "fused / steps", "steps fwd ms", "fused fwd ms", "fused / steps (fwd)",
                 "spread", "flags"]


def fused_table(args, grid):
    """``--fused-ab``: the fused paths against the step loop, for the cells that have one."""
    cells = [c for c in args.cells if getattr(npseq, c)(1, 1).kind.fused is not None]
    print(f"\n{args.repeats} interleaved rounds, medians; npseq's fused path against its step "
          f"loop (npseq.bptt.FUSED = False), forward+backward and forward alone under "
          f"no_grad(); below 1: the fused path is faster; spread: the largest (q75 - q25) / "
          f"median of the four timed runs; cells with a fused path: {', '.join(cells)}\n")
    print("| " + " | ".join(FUSED_COLUMNS) + " |")
    print("|" + "---|" * len(FUSED_COLUMNS))
    for cell in cells:
        for dtype in args.dtypes:
            for shape in grid:
                print("| " + " | ".join(fused_row(cell, np.dtype(dtype).type, shape,
                                                  args.repeats)) + " |", flush=True)


def checkpoint_line(repeats, T=2000, B=32, H=256, dtype=np.float32):
    k = int(round(np.sqrt(T)))
    m, x, dout = make_case("LSTM", dtype, T, B, H, H)
    plain, ckpt = [], []
    npseq_fwd_bwd(m, x, dout)
    for _ in range(repeats):
        m.checkpoint_every = None
        plain.append(_time(lambda: npseq_fwd_bwd(m, x, dout)))
        m.checkpoint_every = k
        ckpt.append(_time(lambda: npseq_fwd_bwd(m, x, dout)))
    m.checkpoint_every = None
    mem_plain, mem_ckpt = peak_bytes(m, x, dout), peak_bytes(m, x, dout, k)
    return (f"checkpointing, LSTM {np.dtype(dtype).name} T={T}, B={B}, D=H={H}, "
            f"checkpoint_every={k}: peak memory of forward+backward "
            f"{mem_plain / 2 ** 20:.0f} MB -> {mem_ckpt / 2 ** 20:.0f} MB "
            f"({mem_plain / mem_ckpt:.1f}x less), time {np.median(plain):.2f} s -> "
            f"{np.median(ckpt):.2f} s ({np.median(ckpt) / np.median(plain):.2f}x; min-max over "
            f"{repeats} rounds {min(plain):.2f}-{max(plain):.2f} s and "
            f"{min(ckpt):.2f}-{max(ckpt):.2f} s)")


def main(args, grid=None):
    """Print the whole report; ``grid`` replaces the shapes (tests run one tiny row)."""
    if torch is not None:
        torch.set_num_threads(args.threads)
        if args.torch_no_onednn:
            torch.backends.mkldnn.enabled = False
    print(environment_line(args.keep_env))
    print(kernel_line())
    print(machine(args.threads))
    print(load_line("at start"))
    rounds = 30 if args.peak_only else 7
    peaks = {d: matmul_peak(d, rounds) for d in args.dtypes}
    print(f"matmul peak ({PEAK_N} x {PEAK_N} product, best of {rounds}): " + ", ".join(
        f"{d} {p:.1f} GFLOP/s" for d, p in peaks.items()))
    if torch is not None:  # where the products rule, the two BLAS libraries set the pace
        print(f"torch's own product, same size ({torch_blas()}): " + ", ".join(
            f"{d} {matmul_peak(d, rounds, 'torch'):.1f} GFLOP/s" for d in args.dtypes))
    if args.peak_only:
        return
    if grid is None:
        grid = [(max(10, g[0] // 5),) + g[1:] for g in GRID] if args.quick else GRID
    if args.fused_ab:
        fused_table(args, grid)
        print(load_line("at end"))
        print(f"run time: {(time.perf_counter() - START) / 60:.1f} min")
        return
    check_textbook()
    print(f"\n{args.repeats} interleaved rounds, medians; "
          f"command: python benchmarks/bench_rnn.py {' '.join(sys.argv[1:])}\n")
    print("\n".join(legend(args.threads)) + "\n")
    head = columns(torch is not None)
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    flagged = total = 0
    for cell in args.cells:
        for dtype in args.dtypes:
            for shape in grid:
                row = bench_row(cell, np.dtype(dtype).type, shape, args.repeats)
                flagged, total = flagged + (row[-1] != "ok"), total + 1
                print("| " + " | ".join(row) + " |", flush=True)
    print(f"\nflagged rows: {flagged} of {total}")
    if not args.no_checkpoint:
        print(checkpoint_line(1 if args.quick else 3, T=400 if args.quick else 2000))
    print(load_line("at end"))
    print(f"run time: {(time.perf_counter() - START) / 60:.1f} min")


if __name__ == "__main__":
    main(ARGS)
