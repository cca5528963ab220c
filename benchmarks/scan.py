"""minGRU and minLSTM by the parallel scan against their sequential loop and npseq's GRU, LSTM.

    python benchmarks/scan.py              # T = 64 .. 16384, B=16, D=H=128, float32 (minutes)
    python benchmarks/scan.py --quick      # T = 64, 256, 1024
    python benchmarks/scan.py --T 4096     # one length

Per row: forward + backward wall time (``out, _ = m(x); m.backward(dout)``), median of
``--repeat`` runs after one warm-up run, and the peak memory that NumPy allocated during one
forward + backward (``tracemalloc``, a separate run: it slows NumPy's allocations down).
One BLAS thread by default (``--threads``), so that the numbers compare the algorithms and
not the scheduling on a shared machine. Prints a Markdown table, the crossover length (the
shortest T at which the scan beats the loop) and the speed-ups at T = 4096.

On machines that force slow OpenBLAS kernels, run it as
``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/scan.py``.
"""
from __future__ import annotations

import argparse
import os
import sys

_threads = "1"
for _i, _arg in enumerate(sys.argv):
    if _arg == "--threads" and _i + 1 < len(sys.argv):
        _threads = sys.argv[_i + 1]
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)

import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import npseq  # noqa: E402

class ProductsOnly:
    """Not a layer: only the three matrix products that every path of a minGRU layer does,
    ``gx = x W_ih^T``, ``dW_ih = dgx^T x``, ``dx = dgx W_ih``, over the whole sequence. No
    path can be faster than this; ``loop / this`` bounds the speed-up of any scan."""

    def __init__(self, D, H, dtype, seed=0, G=2):
        rng = np.random.default_rng(seed)
        self.w = rng.uniform(-0.1, 0.1, (G * H, D)).astype(dtype)

    def __call__(self, x):
        self.x2 = x.reshape(-1, x.shape[-1])
        return self.x2 @ self.w.T, None

    def backward(self, dout):
        dgx = np.concatenate([dout, dout], axis=-1).reshape(-1, self.w.shape[0])
        return dgx @ self.w, dgx.T @ self.x2


MODELS = [
    ("minGRU scan", npseq.MinGRU, dict(parallel=True)),
    ("minGRU loop", npseq.MinGRU, dict(parallel=False)),
    ("minLSTM scan", npseq.MinLSTM, dict(parallel=True)),
    ("minLSTM loop", npseq.MinLSTM, dict(parallel=False)),
    ("GRU", npseq.GRU, {}),
    ("LSTM", npseq.LSTM, {}),
    ("minGRU products only", ProductsOnly, {}),
]
FULL_T = (64, 256, 1024, 4096, 16384)
QUICK_T = (64, 256, 1024)


def fwd_bwd(m, x, dout):
    m(x)
    m.backward(dout)


def measure(m, x, dout, repeat):
    """(median seconds, peak MiB) of one forward + backward."""
    fwd_bwd(m, x, dout)  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fwd_bwd(m, x, dout)
        times.append(time.perf_counter() - start)
    tracemalloc.start()
    try:
        fwd_bwd(m, x, dout)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return float(np.median(times)), peak / 2 ** 20


def run(lengths, B=16, D=128, H=128, repeat=3, models=MODELS, out=print):
    """Measure every model at every T; returns ``{(name, T): (seconds, MiB)}``."""
    rng = np.random.default_rng(0)
    results = {}
    out(f"B={B} D={D} H={H} float32, {os.environ['OPENBLAS_NUM_THREADS']} BLAS thread(s), "
        f"forward + backward, median of {repeat}")
    out("")
    out("| T | model | time (ms) | peak memory (MiB) | vs minGRU loop |")
    out("|---:|---|---:|---:|---:|")
    for T in lengths:
        x = rng.standard_normal((T, B, D)).astype(np.float32)
        dout = rng.standard_normal((T, B, H)).astype(np.float32)
        for name, cls, options in models:
            m = cls(D, H, dtype=np.float32, seed=0, **options)
            results[(name, T)] = measure(m, x, dout, repeat)
            del m
        base = results.get(("minGRU loop", T))
        for name, _, _ in models:
            seconds, mib = results[(name, T)]
            ratio = f"{base[0] / seconds:.1f}x" if base else ""
            out(f"| {T} | {name} | {seconds * 1e3:.1f} | {mib:.0f} | {ratio} |")
    return results


def summary(results, lengths, out=print):
    """The crossover lengths and the speed-ups at T = 4096 (if measured)."""
    out("")
    for cell in ("minGRU", "minLSTM"):
        measured = [T for T in sorted(lengths)
                    if (f"{cell} scan", T) in results and (f"{cell} loop", T) in results]
        faster = [results[(f"{cell} scan", T)][0] < results[(f"{cell} loop", T)][0]
                  for T in measured]
        # the crossover: the shortest T from which the scan is faster at every longer T
        since = next((T for j, T in enumerate(measured) if all(faster[j:])), None)
        out(f"{cell}: crossover at T = {since} (the scan is faster from there on)"
            if since is not None else
            f"{cell}: no crossover (the scan is slower at the longest T measured)")
    for T in lengths:
        if ("minGRU products only", T) in results and ("minGRU loop", T) in results:
            out(f"T={T}: the input products alone take "
                f"{results[('minGRU products only', T)][0] / results[('minGRU loop', T)][0]:.0%}"
                f" of the minGRU loop's time: no path can be more than "
                f"{results[('minGRU loop', T)][0] / results[('minGRU products only', T)][0]:.1f}x"
                f" faster than the loop")
    if ("minGRU scan", 4096) in results:
        scan = results[("minGRU scan", 4096)][0]
        for other in ("minGRU loop", "GRU", "LSTM"):
            out(f"T=4096: minGRU scan is {results[(other, 4096)][0] / scan:.1f}x faster than "
                f"{other}")
        out(f"T=4096: minLSTM scan is "
            f"{results[('minLSTM loop', 4096)][0] / results[('minLSTM scan', 4096)][0]:.1f}x "
            f"faster than minLSTM loop")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 64, 256, 1024")
    parser.add_argument("--T", type=int, nargs="+", help="sequence lengths to measure")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    args = parser.parse_args(argv)
    lengths = tuple(args.T) if args.T else QUICK_T if args.quick else FULL_T
    results = run(lengths, repeat=args.repeat)
    summary(results, lengths)


if __name__ == "__main__":
    main()
