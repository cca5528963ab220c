"""Add a cell of your own to npseq: a leaky Elman cell, run and gradient-checked.

    python examples/custom_cell.py

A cell is two functions, one step forward and its backward, described by an
``npseq.CellKind``; ``npseq.Recurrent`` then runs it stacked, in both directions, over
sequences of different lengths, and ``npseq.gradcheck.check_gradients`` checks every
gradient by central differences. See docs/custom_cells.md. It ends with a ``summary:`` line
and whether the expected result was reached: every gradient within 1e-6 (relative error)
of central differences.

The cell is a leaky integrator: each unit keeps a learned fraction of its previous state::

    a = gx + W_hh h_prev + b_hh          gx = W_ih x + b_ih, computed by the driver
    u = tanh(a)
    lam = sigmoid(leak)                  leak: a parameter of shape (H,), one rate a unit
    h = (1 - lam) * h_prev + lam * u
"""
import sys
from typing import NamedTuple

import numpy as np

import npseq
from npseq.activations import sigmoid
from npseq.gradcheck import check_gradients, format_report


class LeakyCache(NamedTuple):
    h_prev: np.ndarray  # (B, H) the driver pairs dgh with it: dW_hh = sum dgh^T h_prev
    u: np.ndarray  # (B, H) tanh(a)
    lam: np.ndarray  # (H,) sigmoid(leak)


def leaky_step_forward(gx, carry, p):
    """One step: ``gx (B, H)``, ``carry = (h_prev,)``, ``p`` this layer's parameters."""
    (h_prev,) = carry
    a = gx + h_prev @ p["weight_hh"].T  # (B, H)
    if "bias_hh" in p:
        a = a + p["bias_hh"]
    u = np.tanh(a)
    lam = sigmoid(p["leak"])  # (H,)
    h = (1 - lam) * h_prev + lam * u
    return (h,), LeakyCache(h_prev, u, lam)


def leaky_step_backward(dcarry, cache, p):
    """Backward of one step, one line a derivative, in reverse order of the forward."""
    (dh,) = dcarry
    h_prev, u, lam = cache
    dlam = (dh * (u - h_prev)).sum(axis=0)  # (H,), summed over the batch
    dleak = dlam * lam * (1 - lam)
    du = dh * lam
    da = du * (1 - u * u)  # (B, H): the gradient of both gx and W_hh h_prev + b_hh
    dh_prev = dh * (1 - lam) + da @ p["weight_hh"]
    return npseq.StepGrads(dgx=da, dgh=da, dcarry_prev=(dh_prev,), dparams={"leak": dleak})


LEAKY_RNN = npseq.CellKind(
    "LEAKY_RNN", num_gates=1, num_states=1,
    step_forward=leaky_step_forward, step_backward=leaky_step_backward,
    extra_params=(npseq.ParamSpec("leak", shape=("H",), init=0.0),))  # lam = 1/2

TOLERANCE = 1e-6  # a correct backward shows ~1e-10; a wrong derivative, 1e-3 and more


def main(argv=None):
    rng = np.random.default_rng(0)
    B, T, D, H = 3, 5, 2, 4
    layer = npseq.Recurrent(LEAKY_RNN, D, H, num_layers=2, bidirectional=True,
                            batch_first=True, seed=0)
    print(layer)
    print("parameters:", ", ".join(f"{k} {v.shape}" for k, v in layer.params.items()))

    x = rng.standard_normal((B, T, D))
    lengths = [5, 2, 4]
    out, h_n = layer(x, lengths=lengths)
    dx, dh0 = layer.backward(rng.standard_normal(out.shape), rng.standard_normal(h_n.shape))
    print(f"out {out.shape}, h_n {h_n.shape}, dx {dx.shape}, dh0 {dh0.shape}")

    # gradient check: random non-zero parameters (leaks too), a random initial state
    for p in layer.params.values():
        p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.8, p.shape)
    h0 = rng.standard_normal(h_n.shape)
    errors = check_gradients(layer, x, h0, lengths=lengths)
    print("\n2 layers, bidirectional, lengths", lengths)
    print(format_report(errors))

    cell = npseq.RecurrentCell(LEAKY_RNN, D, H, seed=0)
    cell_errors = check_gradients(cell, rng.standard_normal((B, D)), rng.standard_normal((B, H)))
    print("\none step (RecurrentCell)")
    print(format_report(cell_errors))
    worst = max(max(errors.values()), max(cell_errors.values()))
    print(f"summary: custom cell LEAKY_RNN: worst relative gradient error {worst:.1e} over "
          f"{len(errors) + len(cell_errors)} tensors (2-layer bidirectional layer with "
          f"lengths, one step)")
    # the verdict line of _common.verdict, written out: tests/test_custom_cell.py runs this
    # file as a module, without examples/ on sys.path
    reached = worst < TOLERANCE
    print(f"expected result {'reached' if reached else 'NOT reached'}: every gradient within "
          f"{TOLERANCE:.0e} of central differences")
    return 0 if reached else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
