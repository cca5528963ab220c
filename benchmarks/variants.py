"""What the cell variants cost: forward + backward time beside the plain LSTM and GRU.

    python benchmarks/variants.py            # T=100, B=32, D=64, H=128, a few seconds
    python benchmarks/variants.py --quick    # T=20

CPU time of this process (``time.process_time``, one BLAS thread), best of ``--repeat``
runs of ``out, _ = m(x); m.backward(dout)`` in float64; on a shared machine the wall-clock
time also counts other processes' time slices.
"""
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import npseq  # noqa: E402

VARIANTS = [
    ("LSTM", npseq.LSTM, {}),
    ("LSTM layer_norm=True", npseq.LSTM, dict(layer_norm=True)),
    ("LSTM peephole=True", npseq.LSTM, dict(peephole=True)),
    ("LSTM relu / hard_sigmoid", npseq.LSTM,
     dict(activation="relu", recurrent_activation="hard_sigmoid")),
    ("GRU", npseq.GRU, {}),
    ("GRU reset_after=False", npseq.GRU, dict(reset_after=False)),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T=20 instead of 100")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    T, B, D, H = (20 if args.quick else 100), 32, 64, 128
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D))
    dout = rng.standard_normal((T, B, H))
    print(f"T={T} B={B} D={D} H={H} float64, CPU ms, best of {args.repeat}")
    print("| cell | forward + backward (ms) | / plain |")
    print("|---|---:|---:|")
    plain = {}
    for name, cls, options in VARIANTS:
        m = cls(D, H, seed=0, **options)
        best = np.inf
        for _ in range(args.repeat):
            start = time.process_time()
            m(x)
            m.backward(dout)
            best = min(best, time.process_time() - start)
        plain.setdefault(cls, best)
        print(f"| {name} | {best * 1e3:.1f} | {best / plain[cls]:.2f} |")


if __name__ == "__main__":
    main()
