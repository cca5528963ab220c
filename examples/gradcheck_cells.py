"""Gradient-check every npseq cell and layer against central differences; print a table.

    python examples/gradcheck_cells.py

Each row is one module; each column the worst relative error over a group of tensors
(input, states, parameters). A correct hand-written backward shows errors near 1e-10. It
ends with a ``summary:`` line and whether the expected result was reached: every module's
every gradient within 1e-6 of central differences.
"""
import sys
import time

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import verdict

import numpy as np

import npseq
from npseq.gradcheck import check_gradients

TOLERANCE = 1e-6  # a correct backward shows ~1e-10; a wrong derivative, 1e-3 and more


def randomise(module, rng):
    """Random weights and non-zero biases of a typical scale."""
    for p in module.params.values():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)


def main(argv=None):
    rng = np.random.default_rng(0)
    T, B, D, H = 4, 3, 3, 4
    cases = [
        ("RNNCell(tanh)", npseq.RNNCell(D, H, seed=1), (B, D), (B, H)),
        ("RNNCell(relu)", npseq.RNNCell(D, H, nonlinearity="relu", seed=1), (B, D), (B, H)),
        ("LSTMCell", npseq.LSTMCell(D, H, seed=1), (B, D), ((B, H), (B, H))),
        ("GRUCell", npseq.GRUCell(D, H, seed=1), (B, D), (B, H)),
        ("RNN 2 layers, bidir", npseq.RNN(D, H, 2, bidirectional=True, seed=1), (T, B, D),
         (4, B, H)),
        ("LSTM 2 layers, bidir, proj", npseq.LSTM(D, H, 2, bidirectional=True, proj_size=2,
                                                 seed=1), (T, B, D), ((4, B, 2), (4, B, H))),
        ("GRU 2 layers, dropout", npseq.GRU(D, H, 2, dropout=0.3, seed=1), (T, B, D),
         (2, B, H)),
    ]
    print(f"{'module':<28} {'input':>9} {'state':>9} {'params':>9}  time")
    worst, worst_name = 0.0, ""
    for name, module, x_shape, state_shape in cases:
        randomise(module, rng)
        x = rng.standard_normal(x_shape)
        state = (tuple(rng.standard_normal(s) for s in state_shape)
                 if isinstance(state_shape[0], tuple) else rng.standard_normal(state_shape))
        start = time.perf_counter()
        errors = check_gradients(module, x, state)
        params = max(e for k, e in errors.items() if k in module.params)
        states = max(e for k, e in errors.items() if k.startswith("state"))
        if max(errors.values()) >= worst:
            worst, worst_name = max(errors.values()), name
        print(f"{name:<28} {errors['x']:9.1e} {states:9.1e} {params:9.1e}  "
              f"{time.perf_counter() - start:.2f}s")
    print(f"summary: gradcheck: {len(cases)} cells and layers, worst relative gradient error "
          f"{worst:.1e} ({worst_name})")
    return verdict(False, worst < TOLERANCE,
                   f"every gradient within {TOLERANCE:.0e} of central differences")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
