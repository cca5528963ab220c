"""npseq at two git revisions, side by side in one process: is a change faster?

Usage::

    python benchmarks/ab_revisions.py BASE [NEW] [--cells LSTM,GRU,RNN]
                                      [--dtypes float32,float64] [--rounds R] [--quick]

``BASE`` and ``NEW`` are revisions of this repository (``HEAD~1``, a branch, a commit);
without ``NEW`` the working tree is timed against ``BASE``. Each revision's ``npseq`` is
exported (``git archive``) to a temporary folder and imported as ``npseq``; its modules are
then taken out of ``sys.modules`` before the other revision is imported, so that the two
live side by side, each with its own modules (npseq imports nothing inside its functions).

For every cell, dtype and shape of ``bench_rnn.py``'s grid (``--quick``: T/5), the two run
interleaved: each round times a forward with its backward and a forward alone under
``no_grad()`` of each revision, each timed run after 30 ms of untimed runs of the same
contender, the order of the revisions alternating from round to round. The table gives the
medians, the ratio NEW / BASE (below 1: NEW is faster) and the larger spread,
``(q75 - q25) / median`` over the rounds, of the eight timings; rows spreading by more than
10% are flagged. As in ``bench_rnn.py``, the process runs with ``OPENBLAS_CORETYPE`` and
``OPENBLAS_L2_SIZE`` unset (it re-executes itself without them) so that OpenBLAS runs the
kernel a user's machine would. Run time: about a minute for one cell and dtype with the
default 9 rounds on 2 cores, a sixth of that with ``--quick``.
"""
import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if __name__ == "__main__" and any(k in os.environ for k in BLAS_OVERRIDES):
    os.execve(sys.executable, [sys.executable] + sys.argv,  # numpy not imported yet
              {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES})

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = [(50, 16, 32, 32), (100, 32, 64, 128), (100, 64, 256, 256), (200, 1, 64, 128),
        (100, 64, 512, 512), (100, 32, 64, 128, 2, True)]  # bench_rnn.py's grid
SETTLE = 0.03  # seconds of untimed runs before each timed run
FLAG_SPREAD = 0.10


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base", help="the git revision to compare against")
    ap.add_argument("new", nargs="?", default=None,
                    help="the git revision to time (default: the working tree)")
    ap.add_argument("--cells", default="LSTM,GRU,RNN")
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="T/5 at every shape")
    args = ap.parse_args(argv)
    args.cells = [c.strip().upper() for c in args.cells.split(",")]
    args.dtypes = [d.strip() for d in args.dtypes.split(",")]
    bad = [c for c in args.cells if c not in ("LSTM", "GRU", "RNN")]
    bad += [d for d in args.dtypes if d not in ("float32", "float64")]
    if bad:
        ap.error(f"unknown cells or dtypes: {bad} (cells: LSTM, GRU, RNN; dtypes: float32, "
                 f"float64)")
    if args.rounds < 2:
        ap.error(f"--rounds must be at least 2 (a spread needs two rounds), got {args.rounds}")
    return args


def load_revision(rev, folder):
    """Import ``npseq`` at git revision ``rev`` (None: the working tree) and take its modules
    out of ``sys.modules``; returns the package."""
    if rev is None:
        root = REPO
    else:
        root = os.path.join(folder, rev.replace("/", "_"))
        os.makedirs(root)
        archive = subprocess.run(["git", "-C", REPO, "archive", rev, "npseq"],
                                 capture_output=True)
        if archive.returncode != 0:
            raise SystemExit(f"ab_revisions.py: expected a git revision of {REPO} holding "
                             f"npseq/, got {rev!r} ({archive.stderr.decode().strip()})")
        subprocess.run(["tar", "-x", "-C", root], input=archive.stdout, check=True)
    ours = [name for name in sys.modules if name == "npseq" or name.startswith("npseq.")]
    if ours:
        raise RuntimeError(f"npseq is already imported ({ours[0]}): load revisions first")
    sys.path.insert(0, root)
    try:
        package = importlib.import_module("npseq")
    finally:
        sys.path.remove(root)
    for name in [n for n in sys.modules if n == "npseq" or n.startswith("npseq.")]:
        del sys.modules[name]
    return package


def contenders(npseq, cell, dtype, T, B, D, H, num_layers=1, bidirectional=False):
    """(forward with backward, forward alone) of ``npseq.<cell>`` on one fixed case."""
    rng = np.random.default_rng(0)
    m = getattr(npseq, cell)(D, H, num_layers=num_layers, bidirectional=bidirectional,
                             dtype=dtype, seed=0)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    dout = rng.standard_normal((T, B, H * (2 if bidirectional else 1))).astype(dtype)

    def fwd_bwd():
        m(x)
        m.backward(dout)

    def fwd():
        with npseq.no_grad():
            m(x)
    return fwd_bwd, fwd


def settled_time(fn):
    t0 = time.perf_counter()
    fn()
    while time.perf_counter() - t0 < SETTLE:
        fn()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def spread(times):
    q25, med, q75 = np.percentile(times, [25, 50, 75])
    return (q75 - q25) / med


def row(packages, cell, dtype, shape, rounds):
    runs = {(rev, kind): fn for rev, package in packages.items()
            for kind, fn in zip(("fb", "f"), contenders(package, cell, dtype, *shape))}
    times = {key: [] for key in runs}
    for r in range(rounds):
        for key in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            times[key].append(settled_time(runs[key]))
    med = {key: 1e3 * float(np.median(t)) for key, t in times.items()}
    worst = max(spread(t) for t in times.values())
    T, B, D, H = shape[:4]
    label = f"({T}, {B}, {D}, {H})" + (f" x{shape[4]}" if len(shape) > 4 else "") + (
        " bidir." if len(shape) > 5 and shape[5] else "")
    return [cell, dtype, label, f"{med['base', 'fb']:.2f}", f"{med['new', 'fb']:.2f}",
            f"{med['new', 'fb'] / med['base', 'fb']:.2f}", f"{med['base', 'f']:.2f}",
            f"{med['new', 'f']:.2f}", f"{med['new', 'f'] / med['base', 'f']:.2f}",
            f"{100 * worst:.0f}%", "ok" if worst <= FLAG_SPREAD else "! spread"]


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        packages = {"base": load_revision(args.base, folder),
                    "new": load_revision(args.new, folder)}
        print(f"base: {args.base}; new: {args.new or 'the working tree'}; {args.rounds} "
              f"interleaved rounds, medians; ratios new / base (below 1: new is faster); "
              f"load at start {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        head = ["cell", "dtype", "(T, B, D, H)", "base fwd+bwd ms", "new fwd+bwd ms",
                "new / base", "base fwd ms", "new fwd ms", "new / base (fwd)", "spread",
                "flags"]
        print("| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
        for cell in args.cells:
            for dtype in args.dtypes:
                for shape in GRID:
                    if args.quick:
                        shape = (max(shape[0] // 5, 2),) + tuple(shape[1:])
                    print("| " + " | ".join(row(packages, cell, dtype, shape, args.rounds))
                          + " |", flush=True)
    print(f"load at end {os.getloadavg()[0]:.2f}; run time "
          f"{(time.perf_counter() - start) / 60:.1f} min")


if __name__ == "__main__":
    main()
