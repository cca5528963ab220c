"""The adding problem: LSTM and GRU learn it, a tanh RNN does not.

    python examples/adding.py            # T=100, about two minutes on 2 cores
    python examples/adding.py --quick    # a few seconds, for CI

The task (Hochreiter & Schmidhuber 1997, experiment 4; Le, Jaitly & Hinton 2015). Each
input is a sequence of T steps with two channels: a value drawn uniformly from [0, 1], and a
marker that is 1 at exactly two steps (one in each half of the sequence) and 0 elsewhere.
The target, read at the last step, is the sum of the two marked values::

    value   0.31  0.77  0.05  ...  0.62  0.18  ...  0.94
    marker  0     1     0     ...  0     1     ...  0        target = 0.77 + 0.18 = 0.95

Predicting the mean, 1, whatever the input gives a mean squared error of 1/6 (about 0.167:
the variance of a sum of two uniforms). To do better a model must hold the first marked value
for up to T steps, until the second arrives: a long-range dependency that a plain tanh RNN
does not learn (its gradient vanishes over T steps) and that gated cells learn.

Each model is ``Sequential(layer, LastStep(), Linear(H, 1))``, trained on fresh batches with
Adam, the gradient's norm clipped to 1. It trains until its validation MSE falls below a
tenth of the target 0.01, or for at most ``--steps`` steps, then is scored on a held-out test
set. The LSTM starts with its forget-gate bias raised by 1 (Gers et al. 2000; Jozefowicz et
al. 2015), so that its cell state starts out remembering.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, save_plot, verdict

import numpy as np

import npseq
from npseq import losses, optim

TARGET_MSE = 0.01  # what "learned the task" means here


def adding_batch(rng, T, B, dtype=np.float32):
    """A batch of the adding problem.

    Returns
    -------
    x : ndarray, shape (T, B, 2)
        Channel 0: values in [0, 1); channel 1: two markers, one in each half.
    y : ndarray, shape (B, 1)
        The sum of the two marked values.
    """
    values = rng.random((T, B))
    markers = np.zeros((T, B))
    batch = np.arange(B)
    markers[rng.integers(0, T // 2, B), batch] = 1.0  # first marker: in the first half
    markers[rng.integers(T // 2, T, B), batch] = 1.0  # second marker: in the second half
    x = np.stack([values, markers], axis=-1).astype(dtype)
    y = np.sum(values * markers, axis=0)[:, None].astype(dtype)
    return x, y


def build(kind, hidden, seed):
    """``Sequential(layer, LastStep(), Linear(hidden, 1))`` in float32."""
    dtype = np.float32
    if kind == "LSTM":
        layer = npseq.LSTM(2, hidden, dtype=dtype, seed=seed)
        # forget-gate bias 1: gate order (i, f, g, o), so f is the second block of H rows
        layer.params["bias_hh_l0"][hidden:2 * hidden] += 1.0
    elif kind == "GRU":
        layer = npseq.GRU(2, hidden, dtype=dtype, seed=seed)
    else:
        layer = npseq.RNN(2, hidden, nonlinearity="tanh", dtype=dtype, seed=seed)
    return npseq.Sequential(layer, npseq.LastStep(), npseq.Linear(hidden, 1, dtype=dtype,
                                                                  seed=seed + 1))


def mse(model, x, y):
    """Mean squared error of ``model`` on ``(x, y)``, without keeping anything for backward."""
    with npseq.no_grad():
        pred, _ = model(x)
    return losses.mse_loss(pred, y)[0]


def train(kind, args, val, clock):
    """Train one model; returns it and its curve [(step, validation MSE)]."""
    model = build(kind, args.hidden, args.seed)
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    rng = np.random.default_rng(args.seed + 100)  # the same training batches for every model
    curve, running = [], []
    for step in range(1, args.steps + 1):
        x, y = adding_batch(rng, args.T, args.batch)
        pred, _ = model(x)
        loss, dpred = losses.mse_loss(pred, y)
        opt.zero_grad()
        model.backward(dpred)
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step()
        running.append(loss)
        if step % args.eval_every == 0 or step == args.steps:
            val_mse = mse(model, *val)
            curve.append((step, val_mse))
            print(f"{kind:4s} step {step:5d}  train MSE {np.mean(running):.4f}  "
                  f"val MSE {val_mse:.4f}  {clock}", flush=True)
            running = []
            if val_mse < TARGET_MSE / 10:
                print(f"{kind:4s} reached val MSE < {TARGET_MSE / 10} at step {step}: stop")
                break
    return model, curve


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--T", type=positive_int, default=100, help="sequence length (default 100)")
    p.add_argument("--steps", type=positive_int, default=3000,
                   help="most training steps per model (default 3000)")
    p.add_argument("--hidden", type=positive_int, default=32, help="hidden units (default 32)")
    p.add_argument("--batch", type=positive_int, default=64,
                   help="sequences per step (default 64)")
    p.add_argument("--lr", type=positive_float, default=1e-2,
                   help="Adam learning rate (default 1e-2)")
    p.add_argument("--models", default="LSTM,GRU,RNN",
                   help="comma-separated subset of LSTM,GRU,RNN (default all three)")
    args = p.parse_args(argv)
    if args.quick:
        args.T, args.steps = 20, 40
    args.eval_every = 10 if args.quick else 100
    kinds = [k.strip().upper() for k in args.models.split(",")]
    unknown = [k for k in kinds if k not in ("LSTM", "GRU", "RNN")]
    if unknown or not kinds:
        p.error(f"--models: expected names among LSTM, GRU, RNN, got {args.models!r}")
    if args.T < 2:
        p.error(f"--T: expected a sequence length of at least 2, got {args.T}")

    print(f"adding problem: T={args.T}, batch {args.batch}, hidden {args.hidden}, "
          f"Adam lr {args.lr}, at most {args.steps} steps per model, seed {args.seed}")
    val = adding_batch(np.random.default_rng(args.seed + 1), args.T, 500)
    test = adding_batch(np.random.default_rng(args.seed + 2), args.T, 1000)
    baseline = float(np.mean((test[1] - 1.0) ** 2))
    print(f"baseline (always predict 1): test MSE {baseline:.4f}")

    clock = Clock()
    results, curves = {}, {}
    for kind in kinds:
        start = clock()
        model, curve = train(kind, args, val, clock)
        results[kind] = (mse(model, *test), curve[-1][0], clock() - start)
        curves[kind] = tuple(zip(*curve))

    print()
    print(f"{'model':6s} {'test MSE':>9s} {'steps':>6s} {'time':>7s}")
    for kind, (test_mse, steps, seconds) in results.items():
        print(f"{kind:6s} {test_mse:9.4f} {steps:6d} {seconds:6.1f}s")
    save_plot(args.out_dir, "adding.png", curves, "training step", "validation MSE",
              f"adding problem, T={args.T}", logy=True, hline=(baseline, "predict 1"))

    gated = [k for k in ("LSTM", "GRU") if k in results]
    reached = (all(results[k][0] < TARGET_MSE for k in gated)
               and ("RNN" not in results or results["RNN"][0] > TARGET_MSE))
    scores = ", ".join(f"{k} {v[0]:.4f}" for k, v in results.items())
    print(f"summary: adding problem T={args.T}: test MSE {scores} (baseline {baseline:.4f}); "
          f"{clock():.0f}s")
    expected = [f"{k} test MSE < {TARGET_MSE}" for k in gated]
    if "RNN" in results:
        expected.append(f"tanh RNN test MSE > {TARGET_MSE} (it does not learn the task)")
    return verdict(args.quick, reached, ", ".join(expected))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
