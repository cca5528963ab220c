"""IRNN: a ReLU RNN with identity initialisation learns the adding problem at T=150.

    python examples/irnn_adding.py            # T=150, under three minutes on 2 cores
    python examples/irnn_adding.py --quick    # a few seconds, for CI

Le, Jaitly & Hinton (2015), "A simple way to initialize recurrent networks of rectified
linear units": an Elman RNN with ReLU units whose recurrent matrix starts as the identity and
whose biases start at zero (``npseq.init.identity_``) learns long-range dependencies that a
tanh RNN with the default initialisation does not. With ``W_hh = I`` a step is
``h = relu(W_ih x + h_prev)``: the state is copied forward and the gradient flows back through
the steps with Jacobian ``I`` on the active units, instead of shrinking at every step.

The task is the adding problem of ``examples/adding.py`` (its data generator is reused): two
channels, values in [0, 1) and two markers; the target is the sum of the two marked values.
Always predicting 1 scores a mean squared error of about 0.167.

The IRNN's first few hundred steps are not smooth: with ``W_hh = I`` a ReLU state that grows
is not damped, and the training MSE of a batch can jump by many orders of magnitude (the
clipped gradient contains it) before the model settles and learns; expect such lines in the
progress output.

Both models are ``Sequential(RNN, LastStep(), Linear(H, 1))``, trained on the same fresh
batches with Adam (its learning rate annealed to 0 along a half cosine over the run, so that
the final model is not caught in one of Adam's late spikes) and the gradient's norm clipped
to 1, for the same number of steps, then scored on a held-out test set.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, save_plot, verdict

import numpy as np

import npseq
from adding import adding_batch
from npseq import losses, optim

BASELINE_FRACTION = 0.1  # "learns": test MSE below a tenth of the predict-1 baseline
TANH_FRACTION = 0.8  # "does not learn": tanh RNN test MSE above 0.8 times the baseline


def build(kind, hidden, seed):
    """``Sequential(RNN, LastStep(), Linear(hidden, 1))`` in float32.

    ``"IRNN"``: ReLU units, ``W_hh = I`` and zero biases; ``"tanh RNN"``: PyTorch's default.
    """
    dtype = np.float32
    if kind == "IRNN":
        layer = npseq.init.identity_(npseq.RNN(2, hidden, nonlinearity="relu", dtype=dtype,
                                               seed=seed))
    else:
        layer = npseq.RNN(2, hidden, nonlinearity="tanh", dtype=dtype, seed=seed)
    return npseq.Sequential(layer, npseq.LastStep(),
                            npseq.Linear(hidden, 1, dtype=dtype, seed=seed + 1))


def mse(model, x, y):
    """Mean squared error of ``model`` on ``(x, y)``, without keeping anything for backward."""
    with npseq.no_grad():
        pred, _ = model(x)
    return losses.mse_loss(pred, y)[0]


def train(kind, args, val, clock):
    """Train one model for ``args.steps`` steps; returns it and its curve [(step, val MSE)]."""
    model = build(kind, args.hidden, args.seed)
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.steps)  # to 0 at the last step
    rng = np.random.default_rng(args.seed + 100)  # the same training batches for both models
    curve, running = [], []
    for step in range(1, args.steps + 1):
        x, y = adding_batch(rng, args.T, args.batch)
        pred, _ = model(x)
        loss, dpred = losses.mse_loss(pred, y)
        opt.zero_grad()
        model.backward(dpred)
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step()
        schedule.step()
        running.append(loss)
        if step % args.eval_every == 0 or step == args.steps:
            val_mse = mse(model, *val)
            curve.append((step, val_mse))
            print(f"{kind:8s} step {step:5d}  train MSE {np.mean(running):.4f}  "
                  f"val MSE {val_mse:.4f}  {clock}", flush=True)
            running = []
    return model, curve


def settings(argv=None):
    """The command line's settings (``--quick``: T=20, 30 steps), checked."""
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--T", type=positive_int, default=150, help="sequence length (default 150)")
    p.add_argument("--steps", type=positive_int, default=2500,
                   help="training steps per model (default 2500)")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units (default 64)")
    p.add_argument("--batch", type=positive_int, default=32,
                   help="sequences per step (default 32)")
    p.add_argument("--lr", type=positive_float, default=1e-3,
                   help="Adam learning rate (default 1e-3)")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.steps = 20, 30
    args.eval_every = 10 if args.quick else 100
    if args.T < 2:
        p.error(f"--T: expected a sequence length of at least 2, got {args.T}")
    return args


def held_out(args):
    """``(val, test, baseline)``: 500 validation and 1000 test sequences from the seed, and
    the test MSE of always predicting 1."""
    val = adding_batch(np.random.default_rng(args.seed + 1), args.T, 500)
    test = adding_batch(np.random.default_rng(args.seed + 2), args.T, 1000)
    return val, test, float(np.mean((test[1] - 1.0) ** 2))


def main(argv=None):
    args = settings(argv)
    print(f"adding problem: T={args.T}, batch {args.batch}, hidden {args.hidden}, "
          f"Adam lr {args.lr} (cosine to 0), {args.steps} steps per model, seed {args.seed}")
    val, test, baseline = held_out(args)
    print(f"baseline (always predict 1): test MSE {baseline:.4f}")

    clock = Clock()
    results, curves = {}, {}
    for kind in ("IRNN", "tanh RNN"):
        start = clock()
        model, curve = train(kind, args, val, clock)
        results[kind] = (mse(model, *test), clock() - start)
        curves[kind] = tuple(zip(*curve))

    print()
    print(f"{'model':9s} {'test MSE':>9s} {'time':>7s}")
    for kind, (test_mse, seconds) in results.items():
        print(f"{kind:9s} {test_mse:9.4f} {seconds:6.1f}s")
    save_plot(args.out_dir, "irnn_adding.png", curves, "training step", "validation MSE",
              f"adding problem, T={args.T}: IRNN against tanh RNN", logy=True,
              hline=(baseline, "predict 1"))

    irnn, tanh = results["IRNN"][0], results["tanh RNN"][0]
    reached = irnn < BASELINE_FRACTION * baseline and tanh > TANH_FRACTION * baseline
    print(f"summary: IRNN adding T={args.T}: test MSE IRNN {irnn:.4f}, tanh RNN {tanh:.4f} "
          f"(baseline {baseline:.4f}); {clock():.0f}s")
    return verdict(args.quick, reached,
                   f"IRNN test MSE < {BASELINE_FRACTION} x baseline "
                   f"({BASELINE_FRACTION * baseline:.4f}) and tanh RNN test MSE > "
                   f"{TANH_FRACTION} x baseline ({TANH_FRACTION * baseline:.4f})")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
