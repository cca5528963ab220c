"""Full-batch training with SciPy's L-BFGS-B, through the hand-written gradient.

    python examples/lbfgs.py            # test MSE < 0.01 (from about 1)
    python examples/lbfgs.py --quick    # a few seconds, for CI

A small sequence task, the delayed echo: the input is white noise, one value a step, and the
target at step t is the input ``d`` steps before (0 for the first ``d`` steps)::

    x_t ~ N(0, 1),   y_t = x_{t-d}  (t >= d),   y_t = 0  (t < d)

so a model must keep its last ``d`` inputs in its state. Predicting 0 gives an MSE of about
1; the model, ``RNN(1, H, tanh) -> Linear(H, 1)`` at every step, learns it.

:class:`npseq.optim.ParamVector` turns the model's parameter dict into the flat float64
vector SciPy works with: ``fun(theta)`` writes ``theta`` into the live parameters, runs the
model forward and backward over the whole training set, and returns the loss and the flat
gradient. Before training, ``scipy.optimize.check_grad`` compares that gradient with finite
differences of the loss, a check of every hand-written derivative at once.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_int, save_plot, verdict

import numpy as np
from scipy import optimize

import npseq
from npseq import losses, optim

TARGET_MSE = 0.01


def echo_data(rng, T, B, delay):
    """White-noise inputs (T, B, 1) and the same inputs ``delay`` steps later as targets."""
    x = rng.standard_normal((T, B, 1))
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x, y


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--delay", type=positive_int, default=6, help="echo delay d (default 6)")
    p.add_argument("--hidden", type=positive_int, default=16, help="hidden units (default 16)")
    p.add_argument("--maxiter", type=positive_int, default=600,
                   help="L-BFGS iterations (default 600)")
    args = p.parse_args(argv)
    if args.quick:
        args.maxiter = 20

    rng = np.random.default_rng(args.seed)
    T, B = 30, 100
    x, y = echo_data(rng, T, B, args.delay)
    x_test, y_test = echo_data(rng, T, 500, args.delay)
    model = npseq.Sequential(npseq.RNN(1, args.hidden, seed=args.seed),  # float64
                             npseq.Linear(args.hidden, 1, seed=args.seed + 1))
    pv = optim.ParamVector(model.params, model.grads)
    print(f"delayed echo (d={args.delay}): RNN(1, {args.hidden}, tanh) + Linear, {pv.size} "
          f"parameters, full batch of {B} sequences of {T} steps; L-BFGS-B, at most "
          f"{args.maxiter} iterations; seed {args.seed}")

    def fun(theta):
        """Loss and its gradient at ``theta``: what ``minimize(..., jac=True)`` calls."""
        pv.set(theta)
        model.zero_grad()
        pred, _ = model(x)
        loss, dpred = losses.mse_loss(pred, y)
        model.backward(dpred)
        return loss, pv.grad()

    theta0 = pv.get()
    error = optimize.check_grad(lambda t: fun(t)[0], lambda t: fun(t)[1], theta0,
                                seed=args.seed)
    print(f"check_grad at the start: |gradient - finite differences| = {error:.1e} "
          f"(|gradient| = {np.linalg.norm(fun(theta0)[1]):.1e})")

    clock = Clock()
    history = []

    def progress(intermediate_result):
        it = len(history) + 1
        history.append(intermediate_result.fun)
        if it % (5 if args.quick else 50) == 0:
            print(f"iteration {it:4d}  train MSE {intermediate_result.fun:.5f}  {clock}",
                  flush=True)

    result = optimize.minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=progress,
                               options=dict(maxiter=args.maxiter))
    pv.set(result.x)
    with npseq.no_grad():
        pred, _ = model(x_test)
    test_mse, _ = losses.mse_loss(pred, y_test)
    print(f"L-BFGS-B stopped after {result.nit} iterations, {result.nfev} evaluations: "
          f"{result.message}")

    save_plot(args.out_dir, "lbfgs.png", {"train MSE": (range(1, len(history) + 1), history)},
              "L-BFGS iteration", "MSE", f"delayed echo (d={args.delay}), RNN + L-BFGS-B",
              logy=True)
    print(f"summary: L-BFGS delayed echo d={args.delay}: train MSE {result.fun:.5f}, test MSE "
          f"{test_mse:.5f} (predicting 0: {float(np.mean(y_test ** 2)):.3f}) after "
          f"{result.nit} iterations; {clock():.0f}s")
    return verdict(args.quick, test_mse < TARGET_MSE, f"test MSE < {TARGET_MSE}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
