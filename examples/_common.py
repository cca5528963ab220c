"""Small helpers shared by the examples: command-line flags, progress lines, an optional plot.

Nothing here is part of npseq; each example reads as a standalone script and only imports
these few lines of plumbing (``python examples/<name>.py`` puts this folder on ``sys.path``).

Importing this module also keeps BLAS to one thread, so the examples import it before numpy:
their matrices are small (hidden sizes 16 to 128), where BLAS threads cost more than they
save, and on a machine shared with other jobs they make every step several times slower.
"""
import argparse
import os
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # read when numpy loads its BLAS, so before that


def parser(description):
    """An argument parser with the flags every example takes: --quick, --seed, --out-dir."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a run of a few seconds (for CI): too short to reach the result")
    p.add_argument("--seed", type=int, default=0, help="seed of the data and the weights")
    p.add_argument("--out-dir", default=".", help="folder for the PNG plot (default: .)")
    return p


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text}")
    return value


def positive_float(text):
    """argparse type: a float > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


class Clock:
    """Wall time since the clock was made, for progress lines."""

    def __init__(self):
        self.start = time.perf_counter()

    def __call__(self):
        return time.perf_counter() - self.start

    def __str__(self):
        return f"{self():6.1f}s"


def pyplot():
    """``matplotlib.pyplot`` drawing to files, or None (and says so) when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: skipped the plot "
              "(pip install matplotlib, or the 'examples' extra)")
        return None
    return plt


def savefig(plt, fig, out_dir, filename):
    """Write ``fig`` as ``out_dir/filename``, close it and say where; returns the path."""
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, filename)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    print(f"saved the plot to {path}")
    return path


def save_plot(out_dir, filename, curves, xlabel, ylabel, title, logy=False, hline=None):
    """Save ``curves`` ({label: (xs, ys)}) as a PNG when matplotlib is installed.

    Returns the path written, or None (and says so) when matplotlib is missing.
    """
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for label, (xs, ys) in curves.items():
        ax.plot(xs, ys, label=label)
    if hline is not None:
        value, label = hline
        ax.axhline(value, color="gray", linestyle="--", linewidth=1, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return savefig(plt, fig, out_dir, filename)


def verdict(quick, reached, expected):
    """Say whether the expected result was reached; return the exit code.

    A ``--quick`` run is too short to reach anything: it passes when it ran to the end.
    """
    if quick:
        print("quick run: too short for the result; run without --quick")
        return 0
    print(f"expected result {'reached' if reached else 'NOT reached'}: {expected}")
    return 0 if reached else 1
