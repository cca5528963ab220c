"""The embedded Reber grammar: predict every legal next symbol, the long-range one included.

    python examples/reber.py            # fraction of test strings predicted perfectly
    python examples/reber.py --quick    # a few seconds, for CI

Experiment 1 of Hochreiter & Schmidhuber (1997). A Reber string is a walk through a small
graph from B to E, each of the two edges out of a state taken with probability 1/2::

    start: B, then state 0          state   edges (symbol -> next state)
                                      0     T -> 1     P -> 2
    e.g.  B T X S E                   1     S -> 1     X -> 3
          B P V V E                   2     T -> 2     V -> 4
          B T S S X X T V V E         3     X -> 2     S -> 5
                                      4     P -> 3     V -> 5
                                      5     E (end)

The embedded grammar wraps one Reber string: ``B T <reber> T E`` or ``B P <reber> P E``. All
symbols are predictable only as sets of legal next symbols (after ``B`` either ``T`` or
``P``), except the second to last one: it must repeat the second symbol of the string, seen
up to dozens of steps before. A model that gets it right has kept one bit across the whole
inner string.

The model, ``LSTM(7, H) -> Linear(H, 7)``, reads one one-hot symbol a step and outputs 7
logits, trained with binary cross-entropy against the multi-hot set of legal next symbols
(Adam, variable lengths through ``lengths=``). A string counts as predicted perfectly when,
at every step, the symbols with probability > 0.5 are exactly the legal ones.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, pyplot, savefig, verdict

import numpy as np

import npseq
from npseq import data, losses, optim

SYMBOLS = "BTPSXVE"
# the inner Reber graph: state -> ((symbol, next state), (symbol, next state)); 5 -> E
REBER = {0: (("T", 1), ("P", 2)), 1: (("S", 1), ("X", 3)), 2: (("T", 2), ("V", 4)),
         3: (("X", 2), ("S", 5)), 4: (("P", 3), ("V", 5))}
TARGET_PERFECT = 0.99


def embedded_reber(rng):
    """One string of the embedded grammar and, for each of its symbols, the legal next ones.

    Returns ``(string, legal)``: ``legal[t]`` is the set of symbols that may follow
    ``string[:t + 1]`` (empty after the final E).
    """
    branch = "TP"[rng.integers(2)]
    string, legal = ["B", branch, "B"], [set("TP"), {"B"}, {"T", "P"}]
    state = 0
    while state != 5:
        (s, state) = REBER[state][rng.integers(2)]
        string.append(s)
        legal.append({sym for sym, _ in REBER[state]} if state != 5 else {"E"})
    string += ["E", branch, "E"]
    legal += [{branch}, {"E"}, set()]  # after the inner E only the remembered branch is legal
    return "".join(string), legal


def batch(strings):
    """One-hot inputs (T, B, 7), multi-hot targets (T, B, 7) and lengths (B,), zero-padded
    by :func:`npseq.data.pad_sequence`."""
    eye = np.eye(len(SYMBOLS), dtype=np.float32)
    xs = [eye[[SYMBOLS.index(sym) for sym in string]] for string, _ in strings]  # (L, 7)
    ys = [np.array([eye[[SYMBOLS.index(n) for n in nxt]].sum(axis=0) for nxt in legal])
          for _, legal in strings]  # (L, 7) multi-hot, all zero after the final E
    lengths = np.array([len(s) for s, _ in strings])
    return data.pad_sequence(xs), data.pad_sequence(ys), lengths


def steps_mask(lengths, T):
    """(T, B) bool: the steps that predict a next symbol (every real step but the last)."""
    return np.arange(T)[:, None] < (lengths - 1)[None, :]


def evaluate(model, test):
    """Fraction of strings whose legal-next sets are all predicted exactly, the fraction
    whose penultimate symbol (the long-range one) is, and the fraction of predicting steps
    whose set is."""
    x, y, lengths = test
    with npseq.no_grad():
        logits, _ = model(x, lengths=lengths)
    mask = steps_mask(lengths, x.shape[0])
    right = np.all((logits > 0) == (y > 0.5), axis=2) | ~mask  # (T, B); p > 0.5 <=> logit > 0
    penultimate = right[lengths - 3, np.arange(len(lengths))]  # predicts the repeated branch
    steps_right = (np.sum(right & mask) / np.sum(mask))
    return (float(np.mean(np.all(right, axis=0))), float(np.mean(penultimate)),
            float(steps_right))


def plot(out_dir, steps, perfect, penultimate, steps_right):
    """The three test curves, each with its own line style and marker. Perfect strings and
    the penultimate symbol often coincide (the penultimate symbol is the hard one), so that
    curve is drawn wide and pale under the other: both stay visible."""
    plt = pyplot()
    if plt is None:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot(steps, penultimate, color="C1", linewidth=6, alpha=0.45, marker="o",
            markersize=10, label="penultimate symbol right")  # wide, under the next curve
    ax.plot(steps, perfect, color="C0", linewidth=1.5, marker="x", markersize=6,
            label="strings predicted perfectly")
    ax.plot(steps, steps_right, color="C2", linestyle=":", marker="s", markersize=5,
            label="steps: legal set right")  # on top
    ax.set_ylim(-0.03, 1.05)
    ax.set_xlabel("update")
    ax.set_ylabel("fraction of the test set")
    ax.set_title("embedded Reber grammar (LSTM)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return savefig(plt, fig, out_dir, "reber.png")


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=positive_int, default=1000, help="updates (default 1000)")
    p.add_argument("--hidden", type=positive_int, default=32,
                   help="LSTM hidden units (default 32)")
    p.add_argument("--batch", type=positive_int, default=32,
                   help="strings per update (default 32)")
    p.add_argument("--lr", type=positive_float, default=1e-2,
                   help="Adam learning rate (default 1e-2)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps = 80

    rng = np.random.default_rng(args.seed)
    test = batch([embedded_reber(rng) for _ in range(200 if args.quick else 1000)])
    print(f"embedded Reber grammar: LSTM({args.hidden}) + Linear({args.hidden}, 7), "
          f"{args.batch} strings a step, {args.steps} steps; test set of {len(test[2])} "
          f"strings of length {test[2].min()}..{test[2].max()}; seed {args.seed}")
    dtype = np.float32
    model = npseq.Sequential(npseq.LSTM(7, args.hidden, dtype=dtype, seed=args.seed),
                             npseq.Linear(args.hidden, 7, dtype=dtype, seed=args.seed + 1))
    opt = optim.Adam(model.params, model.grads, lr=args.lr)

    clock = Clock()
    log_every = 10 if args.quick else 100
    curve, running = [], []
    for step in range(1, args.steps + 1):
        x, y, lengths = batch([embedded_reber(rng) for _ in range(args.batch)])
        logits, _ = model(x, lengths=lengths)  # (T, B, 7)
        mask = steps_mask(lengths, x.shape[0])
        loss, dpicked = losses.bce_with_logits(logits[mask], y[mask])  # real steps only
        dlogits = np.zeros_like(logits)
        dlogits[mask] = dpicked
        opt.zero_grad()
        model.backward(dlogits)
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step()
        running.append(loss)
        if step % log_every == 0 or step == args.steps:
            perfect, penultimate, steps_right = evaluate(model, test)
            curve.append((step, perfect, penultimate, steps_right))
            print(f"step {step:5d}  train loss {np.mean(running):.4f}  test: strings perfect "
                  f"{perfect:6.1%}, penultimate symbol right {penultimate:6.1%}, steps right "
                  f"{steps_right:6.1%}  {clock}", flush=True)
            running = []

    steps, perfect, penultimate, steps_right = (list(c) for c in zip(*curve))
    plot(args.out_dir, steps, perfect, penultimate, steps_right)
    print(f"summary: embedded Reber: {perfect[-1]:.1%} of test strings predicted perfectly "
          f"(penultimate symbol {penultimate[-1]:.1%}, steps right {steps_right[-1]:.1%}) "
          f"after {args.steps} updates; {clock():.0f}s")
    return verdict(args.quick, perfect[-1] >= TARGET_PERFECT,
                   f">= {TARGET_PERFECT:.0%} of test strings predicted perfectly")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
