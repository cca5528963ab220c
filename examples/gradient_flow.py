"""Gradient flow through time in RNN(tanh), LSTM and GRU, at initialisation and after training.

The task is the adding problem of ``examples/adding.py`` (Hochreiter & Schmidhuber, 1997),
whose data generator this script imports. Each input step is a pair ``(u_t, marker_t)``,
with u_t drawn from U(0, 1). Exactly two steps are marked, one in each half of the
sequence, and the target is the sum of the two marked u's. A model must carry the first
marked value across the second half of the sequence. Predicting the mean of the target (1)
gives a mean squared error of 1/6, about 0.167.

For each cell, a recurrent layer and a linear head read the last step (the LSTM's forget
gate biased open, ``b_if + b_hf = 1``, as is common practice). The loss gradient
enters only at the last step, so ``||dL/dh_t||`` (from :func:`npseq.analysis.gradient_norms`)
shows how much of it reaches step t; for the LSTM, ``||dL/dc_t||`` too (dashed). The
script prints a table and writes one PNG with two panels (at initialisation, after
training), log scale. It ends with a ``summary:`` line and whether the expected result was
reached: after training, the gated cells (LSTM, GRU) solve the task (MSE < 0.05) and at
least 1e-3 of the largest gradient norm reaches the first step, while in the tanh RNN less
than 1e-6 of it does (it vanishes on the way back).

    python examples/gradient_flow.py             # T = 50, H = 32, 600 Adam steps (~1 min)
    python examples/gradient_flow.py --quick     # tiny sizes, a few seconds
    python examples/gradient_flow.py --out-dir plots     # writes plots/gradient_flow.png

The PNG needs matplotlib (``pip install matplotlib``); without it only the table is printed.
"""
from __future__ import annotations

import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import parser, pyplot, savefig, verdict

import numpy as np  # noqa: E402

import npseq  # noqa: E402
from npseq.analysis import gradient_norms  # noqa: E402

from adding import adding_batch  # noqa: E402

MODELS = {"RNN (tanh)": npseq.RNN, "LSTM": npseq.LSTM, "GRU": npseq.GRU}
GATED = ("LSTM", "GRU")
SOLVED_MSE = 0.05  # predicting the mean (1) gives 1/6
REACHES, VANISHES = 1e-3, 1e-6  # ||dL/dh_0|| / max_t ||dL/dh_t|| after training


class Regressor:
    """A recurrent layer and a linear head on its last step."""

    def __init__(self, cls, hidden_size, seed):
        self.rnn = cls(2, hidden_size, seed=seed)
        if cls is npseq.LSTM:  # forget gate biased open, b_if + b_hf = 1 (Jozefowicz et al. 2015)
            H = hidden_size
            self.rnn.params["bias_ih_l0"][H:2 * H] = 1.0
            self.rnn.params["bias_hh_l0"][H:2 * H] = 0.0
        self.head = npseq.Linear(hidden_size, 1, seed=seed)
        self.params = {**{"rnn." + k: v for k, v in self.rnn.params.items()},
                       **{"head." + k: v for k, v in self.head.params.items()}}
        self.grads = {**{"rnn." + k: v for k, v in self.rnn.grads.items()},
                      **{"head." + k: v for k, v in self.head.grads.items()}}

    def _head_loss(self, out, y, reduction):
        """The head on the last step, the MSE, and its gradient with respect to ``out``."""
        pred = self.head(out[-1])
        loss, dpred = npseq.losses.mse_loss(pred, y, reduction=reduction)
        dout = np.zeros_like(out)
        dout[-1] = self.head.backward(dpred)  # the loss reads only the last step
        return loss, dout

    def train_step(self, x, y, opt):
        opt.zero_grad()
        out, _ = self.rnn(x)
        loss, dout = self._head_loss(out, y, "mean")
        self.rnn.backward(dout)
        npseq.optim.clip_grad_norm(self.grads, 1.0)
        opt.step()
        return loss

    def flow(self, x, y):
        """MSE and ``{"h": ||dL/dh_t||, "c": ...}`` over t on a fixed batch.

        Each sequence's own squared error is its loss (``reduction="sum"``), so the norms do
        not shrink with the batch size. The model's gradients are left as they were.
        """
        with npseq.no_grad():
            out, _ = self.rnn(x)
        saved = {k: g.copy() for k, g in self.head.grads.items()}
        loss, dout = self._head_loss(out, y, "sum")
        for k, g in saved.items():
            self.head.grads[k][...] = g
        return loss / len(y), gradient_norms(self.rnn, x, dout)[(0, 0)]


def run(T, hidden_size, steps, batch, seed, lr):
    """Train each model; return {model: {"init"/"trained": (loss, norms)}}."""
    rng = np.random.default_rng(seed)
    x_eval, y_eval = adding_batch(rng, T, 256, dtype=np.float64)
    results = {}
    for name, cls in MODELS.items():
        model = Regressor(cls, hidden_size, seed)
        results[name] = {"init": model.flow(x_eval, y_eval)}
        opt = npseq.optim.Adam(model.params, model.grads, lr=lr)
        data_rng = np.random.default_rng(seed + 1)  # the same batches for every model
        for _ in range(steps):
            model.train_step(*adding_batch(data_rng, T, batch, dtype=np.float64), opt)
        results[name]["trained"] = model.flow(x_eval, y_eval)
    return results


def table(results, T):
    """One row per model, stage and state (h; c for the LSTM): norms at t = 0, T/2, T-1.

    ``first/max`` is the norm at t = 0 over the largest norm. For c it is 0 at t = T-1: the
    loss reads h_T, and c_T reaches it only inside the last step.
    """
    cols = [0, T // 2, T - 1]
    head = (f"{'model':<11} {'stage':<8} {'MSE':>7} {'state':>5} "
            + " ".join(f"{'|dL/d._' + str(t) + '|':>12}" for t in cols)
            + f" {'first/max':>11}")
    lines = [head]
    for name, stages in results.items():
        for stage, (loss, norms) in stages.items():
            for state, n in norms.items():
                lines.append(f"{name:<11} {stage:<8} {loss:7.4f} {state:>5} "
                             + " ".join(f"{n[t]:12.3e}" for t in cols)
                             + f" {n[0] / n.max():11.3e}")
    return "\n".join(lines)


def plot(results, T, out_dir):
    """Two panels (at initialisation, after training); returns the path, or None."""
    plt = pyplot()
    if plt is None:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, stage in zip(axes, ("init", "trained")):
        for color, (name, stages) in zip(("C0", "C1", "C2"), results.items()):
            loss, norms = stages[stage]
            ax.semilogy(np.arange(T), norms["h"], color=color,
                        label=f"{name} h (MSE {loss:.3g})")
            if "c" in norms:  # the LSTM's cell state: the path dc_prev = dc * f
                c = np.where(norms["c"] > 0, norms["c"], np.nan)  # 0 at T-1 (see table)
                ax.semilogy(np.arange(T), c, color=color, linestyle="--", label=f"{name} c")
        ax.set_title("at initialisation" if stage == "init" else "after training")
        ax.set_xlabel("time step t (loss at the last step)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    axes[0].set_ylabel("||dL/dh_t|| (dashed: ||dL/dc_t||), batch mean")
    fig.suptitle(f"Gradient reaching each step, adding problem, T = {T}")
    fig.tight_layout()
    return savefig(plt, fig, out_dir, "gradient_flow.png")


def main(argv=None):
    args = parser("Gradient norms over time: RNN(tanh), LSTM and GRU on the adding "
                  "problem").parse_args(argv)
    if args.quick:
        T, hidden, steps, batch = 12, 8, 20, 16
    else:
        T, hidden, steps, batch = 50, 32, 600, 64
    results = run(T, hidden, steps, batch, args.seed, lr=1e-2)
    print(f"adding problem, T = {T}, hidden_size = {hidden}, {steps} Adam steps of batch "
          f"{batch}; norms on 256 held-out sequences (mean over the batch)")
    print(table(results, T))
    plot(results, T, args.out_dir)
    ratio = {name: stages["trained"][1]["h"][0] / stages["trained"][1]["h"].max()
             for name, stages in results.items()}
    mse = {name: stages["trained"][0] for name, stages in results.items()}
    print(f"summary: gradient flow T={T}: ||dL/dh_0|| / max_t ||dL/dh_t|| after training: "
          + ", ".join(f"{name} {r:.1e}" for name, r in ratio.items())
          + "; test MSE " + ", ".join(f"{name} {m:.3g}" for name, m in mse.items()))
    reached = (all(ratio[n] >= REACHES and mse[n] < SOLVED_MSE for n in GATED)
               and ratio["RNN (tanh)"] < VANISHES)
    return verdict(args.quick, reached,
                   f"LSTM and GRU: MSE < {SOLVED_MSE} and >= {REACHES:.0e} of the largest "
                   f"gradient norm at step 0; RNN (tanh): < {VANISHES:.0e} of it")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
