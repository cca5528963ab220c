"""Time and peak memory of BPTT and RTRL for one LSTM layer, as T and H grow.

    python benchmarks/rtrl_vs_bptt.py            # the table in docs/gradients.md, about 1 min
    python benchmarks/rtrl_vs_bptt.py --quick    # smaller sizes, a few seconds

BPTT = ``m(x)`` then ``m.backward(dout)``; RTRL = ``npseq.rtrl.rtrl_gradients(m, x, dout)``.
Both compute the same gradients (checked here on every row). The time is the CPU time of
this process (``time.process_time``, one BLAS thread), best of ``--repeat`` runs: on a
shared machine the wall-clock time also counts the time slices given to other processes.
The memory is the peak of NumPy allocations during one run, measured with ``tracemalloc``,
and includes the caches (BPTT) or the sensitivities (RTRL). The last lines fit the slopes
of log(time) and log(memory) against log(T) and log(H). "RTRL GFLOP/s" is the rate of
RTRL's dominant products, ``2 T B S^2 P`` flops (S = 2H, P parameters): it rises with H as
the products grow, which is why the measured H slope stays below 4.
"""
from __future__ import annotations

import os

# one BLAS thread: on a small shared machine, OpenBLAS threads that wait for each other make
# a 32 x 32 by 32 x 1408 product take 50 ms instead of 0.1 ms and drown the measurement
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

import npseq  # noqa: E402
from npseq.rtrl import rtrl_gradients  # noqa: E402


def bptt(m, x, dout):
    m.zero_grad()
    m(x)
    m.backward(dout)
    return m.grads


def rtrl(m, x, dout):
    return rtrl_gradients(m, x, dout).grads


def measure(fn, m, x, dout, repeat):
    fn(m, x, dout)  # warm-up
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn(m, x, dout)
        best = min(best, time.process_time() - start)
    tracemalloc.start()
    grads = fn(m, x, dout)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak, {k: g.copy() for k, g in grads.items()}


def row(T, H, D, B, repeat):
    rng = np.random.default_rng(0)
    m = npseq.LSTM(D, H, seed=0)
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, H))
    tb, mb, gb = measure(bptt, m, x, dout, repeat)
    tr, mr, gr = measure(rtrl, m, x, dout, repeat)
    err = max(npseq.gradcheck.rel_error(gb[k], gr[k]) for k in gb)
    assert err < 1e-10, err
    S, P = 2 * H, m.num_parameters()  # carry (h, c), parameters
    flops = 2 * T * B * S * S * P  # the products A_t S_{t-1}, RTRL's dominant term
    return dict(T=T, H=H, P=P, bptt_ms=1e3 * tb, rtrl_ms=1e3 * tr, gflops=flops / tr / 1e9,
                bptt_kib=mb / 1024, rtrl_kib=mr / 1024, err=err)


def slope(xs, ys):
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    D, B = 4, 1
    if args.quick:
        Ts, T_fixed, Hs, H_fixed = (10, 20, 40), 10, (4, 8, 16), 4
    else:
        Ts, T_fixed, Hs, H_fixed = (25, 50, 100, 200), 25, (8, 16, 32, 64), 8
    print(f"one LSTM layer, input_size={D}, batch={B}, float64, CPU time best of {args.repeat}")
    print(f"{'T':>5} {'H':>4} {'params':>7} {'BPTT ms':>9} {'RTRL ms':>10} {'ratio':>7} "
          f"{'BPTT KiB':>9} {'RTRL KiB':>10} {'RTRL GFLOP/s':>12} {'rel. err':>9}")
    sweeps = {"T": [row(T, H_fixed, D, B, args.repeat) for T in Ts],
              "H": [row(T_fixed, H, D, B, args.repeat) for H in Hs]}
    for name, rows in sweeps.items():
        for r in rows:
            print(f"{r['T']:5d} {r['H']:4d} {r['P']:7d} {r['bptt_ms']:9.2f} "
                  f"{r['rtrl_ms']:10.2f} {r['rtrl_ms'] / r['bptt_ms']:7.1f} "
                  f"{r['bptt_kib']:9.1f} {r['rtrl_kib']:10.1f} {r['gflops']:12.2f} "
                  f"{r['err']:9.1e}")
        print()
    for name, rows in sweeps.items():
        xs = [r[name] for r in rows]
        print(f"slope in log {name}:  time BPTT {slope(xs, [r['bptt_ms'] for r in rows]):.2f}, "
              f"RTRL {slope(xs, [r['rtrl_ms'] for r in rows]):.2f};  "
              f"memory BPTT {slope(xs, [r['bptt_kib'] for r in rows]):.2f}, "
              f"RTRL {slope(xs, [r['rtrl_kib'] for r in rows]):.2f}")


if __name__ == "__main__":
    main()
