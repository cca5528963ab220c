"""npseq against torch.nn and a textbook NumPy loop: time, GFLOP/s, activation memory.

Usage::

    python benchmarks/bench_rnn.py [--quick] [--cells LSTM,GRU,RNN]
                                   [--dtypes float32,float64] [--threads N] [--repeats R]
                                   [--torch-no-onednn]

Prints the machine, then one markdown table: for every cell, dtype and shape (T, B, D, H) of
the grid, npseq's forward+backward and forward-only (``npseq.no_grad()``) median times, their
ratio to ``torch.nn.LSTM/GRU/RNN`` with the same weights and ``torch.set_num_threads`` equal
to the BLAS threads (columns left out without torch), the textbook loop's time over npseq's
(``benchmarks/textbook.py``), npseq's achieved GFLOP/s (the matrix products of forward and
backward, ``6 T B G H (D + H)``) against this machine's matrix-product peak for the dtype
(a 1024 x 1024 product timed in the same rounds, so that load on a shared machine hits
both), and the memory of the activations a forward keeps for its backward (tracemalloc, the
output itself not counted). Contenders run interleaved, one timed run each per round, each
after 50 ms of untimed runs of its own (``_settled_time``); medians over the rounds.
A last line measures gradient checkpointing at T=2000, B=32, D=H=256 (LSTM).
Ratios below 1 mean npseq is faster. ``--quick`` (fewer steps and rounds) runs in about a
minute and a half; the full run in about 8 minutes.

On a CPU, ``torch.nn.LSTM`` in float32 runs oneDNN's fused LSTM kernels
(``aten::mkldnn_rnn_layer`` and its backward); GRU, RNN and float64 run ATen's loop of
per-step operators. ``--torch-no-onednn`` sets ``torch.backends.mkldnn.enabled = False``,
which makes the LSTM take that loop too.
"""
import argparse
import os
import platform
import sys
import time
import tracemalloc

GRID = [(50, 16, 32, 32), (100, 32, 64, 128), (100, 64, 256, 256), (200, 1, 64, 128),
        (100, 64, 512, 512)]
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="T/5 and 3 rounds: about a minute")
    ap.add_argument("--cells", default="LSTM,GRU,RNN")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="BLAS threads and torch threads (default: all cores)")
    ap.add_argument("--repeats", type=int, default=None, help="rounds (default 7, quick 3)")
    ap.add_argument("--no-checkpoint", action="store_true", help="skip the checkpointing line")
    ap.add_argument("--torch-no-onednn", action="store_true",
                    help="torch.backends.mkldnn.enabled = False: torch's LSTM without oneDNN")
    args = ap.parse_args(argv)
    args.cells = [c.strip().upper() for c in args.cells.split(",")]
    args.dtypes = [d.strip() for d in args.dtypes.split(",")]
    bad = [c for c in args.cells if c not in GATES] + [d for d in args.dtypes
                                                       if d not in ("float32", "float64")]
    if bad:
        ap.error(f"unknown cells or dtypes: {bad}")
    args.repeats = args.repeats or (3 if args.quick else 7)
    return args


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:  # BLAS reads its thread count when numpy is first imported
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(ARGS.threads)

import numpy as np  # noqa: E402

import npseq  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import textbook  # noqa: E402

try:
    import torch
except ImportError:  # the torch columns are left out
    torch = None


# -- the machine -----------------------------------------------------------------------------
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
    try:
        from threadpoolctl import threadpool_info
        blas += "; " + ", ".join(f"{i['internal_api']} {i['version']} {i['num_threads']} "
                                 f"threads" for i in threadpool_info()
                                 if i["user_api"] == "blas")
    except ImportError:
        pass
    versions = f"numpy {np.__version__}" + (f", torch {torch.__version__}" if torch else
                                            ", torch not installed")
    return (f"machine: {cpu}, {os.cpu_count()} cores; {threads} BLAS/torch threads; "
            f"BLAS: {blas}; {versions}; Python {platform.python_version()}")


PEAK_N = 1024  # the matrix product that measures the peak: (n x n) @ (n x n)


def matmul(dtype, n=PEAK_N):
    """A function running one n x n matrix product of ``dtype``."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    return lambda: a @ b


def matmul_peak(dtype, rounds=7):
    """Best GFLOP/s of the peak product."""
    product = matmul(dtype)
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


def make_case(cell, dtype, T, B, D, H, seed=0):
    rng = np.random.default_rng(seed)
    m = getattr(npseq, cell)(D, H, dtype=dtype, seed=seed)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dout = rng.standard_normal((T, B, H)).astype(dtype)
    return m, x, dout


def npseq_fwd_bwd(m, x, dout):
    m(x)
    m.backward(dout)


def npseq_fwd(m, x):
    with npseq.no_grad():
        m(x)


def torch_contenders(cell, m, x, dout):
    tm = getattr(torch.nn, cell)(m.input_size, m.hidden_size)
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


def flops(cell, T, B, D, H):
    """Multiply-adds x 2 of the matrix products of forward + backward."""
    return 6 * T * B * GATES[cell] * H * (D + H)


def bench_row(cell, dtype, shape, repeats):
    T, B, D, H = shape
    m, x, dout = make_case(cell, dtype, T, B, D, H)
    runs = {"np_fb": lambda: npseq_fwd_bwd(m, x, dout), "np_f": lambda: npseq_fwd(m, x)}
    if torch is not None:
        runs["t_fb"], runs["t_f"] = torch_contenders(cell, m, x, dout)
    runs["tb_fb"] = lambda: textbook.backward(cell, dout, textbook.forward(cell, x, m.params)[1],
                                              m.params)
    runs["peak"] = matmul(dtype)  # the peak, measured in the same rounds as the contenders
    for fn in runs.values():  # warm up
        fn()
    times = {k: [] for k in runs}
    for _ in range(repeats):
        for k, fn in runs.items():
            times[k].append(_settled_time(fn))
    med = {k: float(np.median(v)) for k, v in times.items()}
    gflops = flops(cell, T, B, D, H) / med["np_fb"] / 1e9
    peak = 2 * PEAK_N ** 3 / med["peak"] / 1e9
    row = [cell, np.dtype(dtype).name, f"({T}, {B}, {D}, {H})",
           f"{med['np_fb'] * 1e3:.1f}", f"{med['np_f'] * 1e3:.1f}"]
    if torch is not None:
        row += [f"{med['np_fb'] / med['t_fb']:.2f}", f"{med['np_f'] / med['t_f']:.2f}"]
    row += [f"{med['tb_fb'] / med['np_fb']:.1f}x",
            f"{gflops:.1f} ({100 * gflops / peak:.0f}%)",
            f"{kept_bytes(m, x) / 2 ** 20:.1f}"]
    return row


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
            f"{np.median(ckpt):.2f} s ({np.median(ckpt) / np.median(plain):.2f}x)")


def main(args):
    if torch is not None:
        torch.set_num_threads(args.threads)
        if args.torch_no_onednn:
            torch.backends.mkldnn.enabled = False
    print(machine(args.threads))
    check_textbook()
    peaks = {d: matmul_peak(d) for d in args.dtypes}
    print(f"matmul peak ({PEAK_N} x {PEAK_N} product, best of 7): " + ", ".join(
        f"{d} {p:.1f} GFLOP/s" for d, p in peaks.items()) + "; the % peak column divides by "
        "the median of the same product timed in every round of its row")
    grid = [(max(10, T // 5), B, D, H) for T, B, D, H in GRID] if args.quick else GRID
    head = ["cell", "dtype", "(T, B, D, H)", "fwd+bwd ms", "fwd ms"]
    if torch is not None:
        head += ["fwd+bwd / torch", "fwd / torch"]
    head += ["textbook / npseq", "GFLOP/s (% peak)", "kept MB"]
    print(f"\n{args.repeats} interleaved rounds, medians; "
          f"command: python benchmarks/bench_rnn.py {' '.join(sys.argv[1:])}\n")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for cell in args.cells:
        for dtype in args.dtypes:
            for shape in grid:
                row = bench_row(cell, np.dtype(dtype).type, shape, args.repeats)
                print("| " + " | ".join(row) + " |", flush=True)
    if not args.no_checkpoint:
        print()
        print(checkpoint_line(1 if args.quick else 3, T=400 if args.quick else 2000))


if __name__ == "__main__":
    main(ARGS)
