"""Regularisation and initialisation that matter: AWD-LSTM's toolkit on a char LM, and IRNN.

    python examples/regularisation.py               # both parts, each ~3 minutes on 2 cores
    python examples/regularisation.py --part lm     # only the language models
    python examples/regularisation.py --part irnn   # only IRNN against tanh RNN
    python examples/regularisation.py --quick       # a few seconds, for CI

Part ``lm``. A character-level LSTM language model, sized to overfit: it trains on a small
piece of Python's help text (``pydoc_data.topics``: 5,000 characters by default, each read
about 100 times in the budget) and is scored on 10,000 other characters, which it never
trains on. The two come from the same stretch of text (its first 15,000 characters), cut into
blocks of 500 characters dealt evenly to the two sides, so that they cover the same topics
and the difference between them measures memorisation, not a change of subject. The
model::

    ids (T, B) --Embedding(dropout=pe)--> LockedDropout(pi) --> LSTM(weight_dropout, zoneout)
               --> h (T, B, H) --LockedDropout(po)--> hd --Linear--> logits (T, B, V)
    loss = cross_entropy(logits) + AR: alpha mean(hd**2) + TAR: beta mean((h[t+1] - h[t])**2)

Every configuration of ``CONFIGS`` (no regularisation; each technique alone; the AWD-LSTM
combination of Merity et al. 2017) trains with the same budget: the same steps, batch,
truncation length, Adam with the same learning rate annealed to 0 along a half cosine, the
same gradient clipping; three seeds each (weights, masks and the order of the data). The
training text is cut into ``--batch`` parallel streams read in chunks of ``--bptt``
characters, the state carried from one chunk to the next, the gradient stopped at each
chunk's start (truncated BPTT). The example prints and plots the held-out bits per
character along training (mean over seeds, the seeds' standard deviation as a band) and the
final gap between held-out and training text; both are scored in evaluation mode
(``model.eval()``: no masks, zoneout's expectation), inside ``npseq.no_grad()``.

Part ``irnn``. Le, Jaitly & Hinton (2015): on the adding problem at T=150 a ReLU RNN whose
recurrent matrix starts as the identity learns where a tanh RNN with the default
initialisation does not. This part runs ``examples/irnn_adding.py``'s training with its
default settings (imported, not copied) and states its verdict.

The runs of a part are independent and go to ``--jobs`` worker processes (default 2).
"""
import argparse
import sys
from concurrent.futures import ProcessPoolExecutor

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_int, pyplot, savefig, verdict

import numpy as np

import irnn_adding
import npseq
from char_lm import bits_per_char, load_text, streams
from npseq import losses, optim

# The configurations, one per line: the keywords of the model (all default to off). ``lstm``
# holds npseq.LSTM keywords, so a new recurrent option is one more line here.
CONFIGS = {
    "plain": {},
    "locked dropout": dict(input_dropout=0.2, output_dropout=0.4),
    "embedding dropout": dict(embedding_dropout=0.1),
    "weight drop": dict(lstm=dict(weight_dropout=0.5)),
    "recurrent dropout": dict(lstm=dict(recurrent_dropout=0.25)),
    "zoneout": dict(lstm=dict(zoneout=(0.05, 0.5))),
    "AR/TAR": dict(ar=2.0, tar=1.0),
    "AWD (all but zoneout)": dict(input_dropout=0.2, output_dropout=0.4, embedding_dropout=0.1,
                                  lstm=dict(weight_dropout=0.5), ar=2.0, tar=1.0),
}
PLAIN, AWD = "plain", "AWD (all but zoneout)"
BLOCK = 500  # characters: the text is cut into blocks, each for training or held out


class CharLM:
    """Embedding -> LockedDropout -> LSTM -> LockedDropout -> Linear, with AR and TAR.

    Parameters
    ----------
    V : int, the number of distinct characters
    embed, hidden : int, the embedding and LSTM sizes
    config : dict, a value of ``CONFIGS``
    seed : int, the seed of the weights and of every mask
    dtype : numpy.float32 (default) or numpy.float64
    """

    def __init__(self, V, embed, hidden, config, seed, dtype=np.float32):
        unknown = set(config) - {"embedding_dropout", "input_dropout", "output_dropout",
                                 "lstm", "ar", "tar"}
        if unknown:
            raise ValueError(f"config: unknown keys {sorted(unknown)}")
        self.embed = npseq.Embedding(V, embed, dtype=dtype, seed=seed,
                                     dropout=config.get("embedding_dropout", 0.0))
        self.drop_in = npseq.LockedDropout(config.get("input_dropout", 0.0), seed=seed + 1)
        self.lstm = npseq.LSTM(embed, hidden, dtype=dtype, seed=seed + 2,
                               **config.get("lstm", {}))
        self.drop_out = npseq.LockedDropout(config.get("output_dropout", 0.0), seed=seed + 3)
        self.head = npseq.Linear(hidden, V, dtype=dtype, seed=seed + 4)
        self.alpha, self.beta = config.get("ar", 0.0), config.get("tar", 0.0)
        modules = (self.embed, self.drop_in, self.lstm, self.drop_out, self.head)
        self.modules = modules
        self.params = {f"{i}.{k}": v for i, m in enumerate(modules) for k, v in m.params.items()}
        self.grads = {f"{i}.{k}": v for i, m in enumerate(modules) for k, v in m.grads.items()}

    def train(self, mode=True):
        for m in self.modules:
            m.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x, state=None):
        """``x`` (T, B) ids -> logits (T, B, V), the LSTM state, ``h`` and ``hd`` (T, B, H)."""
        e = self.drop_in(self.embed(x))  # (T, B, E)
        h, state = self.lstm(e, state)  # (T, B, H)
        hd = self.drop_out(h)  # (T, B, H)
        return self.head(hd), state, h, hd

    def __call__(self, x, state=None):  # the (logits, state) interface of char_lm.bits_per_char
        logits, state, _, _ = self.forward(x, state)
        return logits, state

    def step_loss(self, x, y, state):
        """Forward and backward of one chunk; the gradients are added into :attr:`grads`.

        Returns the objective ``cross-entropy (nats/char) + AR + TAR`` and the final state.
        AR is on the output after dropout, TAR on it before dropout, as AWD-LSTM.
        """
        logits, state, h, hd = self.forward(x, state)
        loss, dlogits = losses.cross_entropy(logits, y)
        dhd = self.head.backward(dlogits)  # (T, B, H)
        if self.alpha:
            ar, dar = losses.ar_loss(hd, self.alpha)
            loss, dhd = loss + ar, dhd + dar
        dh = self.drop_out.backward(dhd)  # (T, B, H)
        if self.beta:
            tar, dtar = losses.tar_loss(h, self.beta)
            loss, dh = loss + tar, dh + dtar
        de, _ = self.lstm.backward(dh)  # the gradient stops at the chunk's start
        self.embed.backward(self.drop_in.backward(de))
        return loss, state


def lm_data(args):
    """The training streams, held-out streams, a training sample to score, and V."""
    text = load_text()
    if args.train_chars + args.heldout_chars > len(text):
        raise ValueError(f"--train-chars + --heldout-chars: expected at most {len(text):,} "
                         f"(the text's length), got {args.train_chars + args.heldout_chars:,}")
    n = args.train_chars + args.heldout_chars
    blocks = [text[i:i + BLOCK] for i in range(0, n, BLOCK)]  # the first n characters
    # block i is held out when floor((i + 1) f) > floor(i f), f the held-out fraction: the
    # held-out blocks are spread evenly, so the two texts cover the same topics
    heldout = [(i + 1) * args.heldout_chars // n > i * args.heldout_chars // n
               for i in range(len(blocks))]
    train_text = "".join(b for b, out in zip(blocks, heldout) if not out)
    heldout_text = "".join(b for b, out in zip(blocks, heldout) if out)
    chars = sorted(set(train_text + heldout_text))
    index = {ch: i for i, ch in enumerate(chars)}

    def ids(s):
        return np.array([index[ch] for ch in s], dtype=np.int64)

    train_ids = ids(train_text)
    return dict(train=streams(train_ids, args.batch),
                heldout=streams(ids(heldout_text), args.batch),
                train_sample=streams(train_ids[:args.heldout_chars], args.batch), V=len(chars))


def train_lm(task):
    """Train one (configuration, seed); returns its held-out curve and final scores."""
    name, seed, args, data = task
    clock = Clock()
    model = CharLM(data["V"], args.embed, args.hidden, CONFIGS[name], seed)
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.steps)  # to 0 at the last step
    train, k = data["train"], args.bptt
    chunks = (train.shape[0] - k) // k  # whole chunks of k (and their targets) in a pass
    rng = np.random.default_rng(seed + 1000)  # where each pass starts: the order of the data
    curve, state, offset = [], None, 0
    for step in range(1, args.steps + 1):
        if step == 1 or (step - 1) % chunks == 0:  # a new pass, from a random offset
            offset, state = int(rng.integers(k)), None
        start = offset + ((step - 1) % chunks) * k
        x, y = train[start:start + k], train[start + 1:start + k + 1]  # (k, B) each
        opt.zero_grad()
        _, state = model.step_loss(x, y, state)
        optim.clip_grad_norm(model.grads, args.clip)
        opt.step()
        schedule.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            curve.append((step, bits_per_char(model, data["heldout"], 200)))
            model.train()
    model.eval()
    train_bpc = bits_per_char(model, data["train_sample"], 200)
    return dict(name=name, seed=seed, curve=curve, heldout=curve[-1][1], train=train_bpc,
                seconds=clock())


def train_irnn(task):
    """Train one model of ``irnn_adding.py`` (``"IRNN"`` or ``"tanh RNN"``); its test MSE."""
    kind, ns = task
    clock = Clock()
    val, test, baseline = irnn_adding.held_out(ns)
    model, curve = irnn_adding.train(kind, ns, val, clock)
    return dict(kind=kind, curve=curve, test=irnn_adding.mse(model, *test), seconds=clock(),
                baseline=baseline)


def run_all(fn, tasks, jobs):
    """``fn`` over ``tasks`` in ``jobs`` worker processes; results in the order of ``tasks``."""
    if jobs == 1:
        yield from map(fn, tasks)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(fn, tasks)


def mean_sd(values):
    """Mean and standard deviation (ddof 1: the seeds' spread) of a few numbers."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def lm_part(args, clock):
    """Train every configuration with every seed; print the table; return the verdict."""
    data = lm_data(args)
    reads = args.steps * args.batch * args.bptt // args.train_chars
    print(f"part lm: char LM on pydoc_data.topics: train on {args.train_chars:,} characters, "
          f"held out {args.heldout_chars:,} others (blocks of {BLOCK} of the same text); "
          f"V={data['V']}, Embedding({data['V']}, {args.embed}) + LSTM({args.hidden}) + "
          f"Linear; {args.steps} steps of {args.batch} streams x {args.bptt} characters "
          f"(each training character read ~{reads}x), Adam lr {args.lr} (cosine to 0), clip "
          f"{args.clip}; seeds {args.seeds}; {len(CONFIGS)} configurations x "
          f"{len(args.seeds)} seeds on {args.jobs} processes",
          flush=True)
    start = clock()
    tasks = [(name, seed, args, data) for name in CONFIGS for seed in args.seeds]
    runs = {name: [] for name in CONFIGS}
    for r in run_all(train_lm, tasks, args.jobs):
        best_step, best = min(r["curve"], key=lambda sc: sc[1])
        print(f"  {r['name']:22s} seed {r['seed']}: held-out {r['heldout']:.3f} bits/char "
              f"(best {best:.3f} at step {best_step}), train {r['train']:.3f}, gap "
              f"{r['heldout'] - r['train']:+.3f}  {r['seconds']:5.1f}s  {clock}", flush=True)
        runs[r["name"]].append(r)

    table = {}
    print(f"\n{'configuration':22s} {'held-out bpc':>16s} {'train bpc':>10s} {'gap':>7s}")
    for name, rs in runs.items():
        held, sd = mean_sd([r["heldout"] for r in rs])
        train_bpc = mean_sd([r["train"] for r in rs])[0]
        gap = mean_sd([r["heldout"] - r["train"] for r in rs])[0]
        table[name] = (held, sd, gap)
        print(f"{name:22s} {held:8.3f} +- {sd:.3f} {train_bpc:10.3f} {gap:+7.3f}")
    seconds = clock() - start
    print(f"part lm: {seconds:.0f}s (wall)\n", flush=True)

    (plain, plain_sd, _), (awd, awd_sd, _) = table[PLAIN], table[AWD]
    reached = plain - awd > plain_sd + awd_sd
    text = (f"LM held-out bpc plain {plain:.3f} +- {plain_sd:.3f}, AWD {awd:.3f} +- "
            f"{awd_sd:.3f} (mean +- sd of {len(args.seeds)} seeds): plain - AWD = "
            f"{plain - awd:+.3f} against spreads {plain_sd:.3f} + {awd_sd:.3f}, "
            f"{'reached' if reached else 'NOT reached'}")
    return dict(runs=runs, table=table, reached=reached, text=text, seconds=seconds)


def irnn_settings(args):
    """``examples/irnn_adding.py``'s default settings (its --quick ones with --quick)."""
    return irnn_adding.settings(["--seed", str(args.seeds[0])]
                                + (["--quick"] if args.quick else []))


def irnn_part(args, clock):
    """IRNN against tanh RNN on the adding problem; returns the verdict."""
    ns = irnn_settings(args)
    print(f"part irnn: adding problem T={ns.T}, batch {ns.batch}, hidden {ns.hidden}, Adam lr "
          f"{ns.lr} (cosine to 0), {ns.steps} steps per model, seed {ns.seed} "
          f"(examples/irnn_adding.py)", flush=True)
    start = clock()
    results = {r["kind"]: r for r in run_all(train_irnn, [(kind, ns) for kind in
                                                           ("IRNN", "tanh RNN")], args.jobs)}
    baseline = results["IRNN"]["baseline"]
    irnn, tanh = results["IRNN"]["test"], results["tanh RNN"]["test"]
    for kind, r in results.items():
        print(f"  {kind:8s} test MSE {r['test']:.4f}  {r['seconds']:5.1f}s")
    seconds = clock() - start
    print(f"part irnn: {seconds:.0f}s (wall)\n", flush=True)
    reached = (irnn < irnn_adding.BASELINE_FRACTION * baseline
               and tanh > irnn_adding.TANH_FRACTION * baseline)
    text = (f"IRNN adding T={ns.T}: test MSE IRNN {irnn:.4f}, tanh RNN {tanh:.4f} (baseline "
            f"{baseline:.4f}), {'reached' if reached else 'NOT reached'}")
    return dict(results=results, baseline=baseline, reached=reached, text=text,
                seconds=seconds)


def plot(out_dir, lm, irnn):
    """One PNG: held-out curves and final gaps (part lm), validation MSE (part irnn)."""
    plt = pyplot()
    if plt is None:
        return None
    panels = (2 if lm else 0) + (1 if irnn else 0)
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels, 4.4), squeeze=False)
    axes = list(axes[0])
    if lm:
        ax = axes.pop(0)
        for name, rs in lm["runs"].items():
            steps = np.array([s for s, _ in rs[0]["curve"]])
            bpc = np.array([[b for _, b in r["curve"]] for r in rs])  # (seeds, points)
            mean, sd = bpc.mean(0), bpc.std(0, ddof=1) if len(rs) > 1 else 0 * bpc[0]
            line, = ax.plot(steps, mean, label=name, linewidth=2 if name in (PLAIN, AWD) else 1)
            ax.fill_between(steps, mean - sd, mean + sd, color=line.get_color(), alpha=0.2)
        ax.set_xlabel("training step")
        ax.set_ylabel("held-out bits per character")
        ax.set_title("char LSTM LM: held-out (mean, band: +- sd of seeds)", fontsize=10)
        ax.legend(fontsize=8)
        ax = axes.pop(0)
        names = list(lm["runs"])
        gaps = [[r["heldout"] - r["train"] for r in lm["runs"][n]] for n in names]
        ax.barh(names, [np.mean(g) for g in gaps],
                xerr=[np.std(g, ddof=1) if len(g) > 1 else 0 for g in gaps], color="tab:gray")
        ax.invert_yaxis()
        ax.set_xlabel("held-out bpc - train bpc at the end")
        ax.set_title("overfitting: the final train/held-out gap", fontsize=10)
    if irnn:
        ax = axes.pop(0)
        for kind, r in irnn["results"].items():
            ax.plot(*zip(*r["curve"]), label=kind)
        ax.axhline(irnn["baseline"], color="gray", linestyle="--", linewidth=1,
                   label="predict 1")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel("validation MSE")
        ax.set_title("adding problem: IRNN against tanh RNN", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return savefig(plt, fig, out_dir, "regularisation.png")


def seed_list(text):
    """argparse type: comma-separated integers, at least two (the spread needs two)."""
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"expected at least two distinct seeds, got {text}")
    return seeds


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--part", choices=("lm", "irnn", "all"), default="all",
                   help="which part to run (default all)")
    p.add_argument("--seeds", type=seed_list, default=None,
                   help="seeds of the LM runs, comma-separated (default --seed .. --seed+2)")
    p.add_argument("--jobs", type=positive_int, default=2,
                   help="worker processes (default 2)")
    p.add_argument("--steps", type=positive_int, default=300,
                   help="LM updates per run (default 300)")
    p.add_argument("--hidden", type=positive_int, default=128,
                   help="LSTM hidden units (default 128)")
    p.add_argument("--embed", type=positive_int, default=32, help="embedding size (default 32)")
    p.add_argument("--batch", type=positive_int, default=32, help="parallel streams (default 32)")
    p.add_argument("--bptt", type=positive_int, default=50,
                   help="truncation length k (default 50)")
    p.add_argument("--train-chars", type=positive_int, default=5_000,
                   help="characters of training text (default 5,000)")
    p.add_argument("--heldout-chars", type=positive_int, default=10_000,
                   help="characters of held-out text (default 10,000)")
    p.add_argument("--eval-every", type=positive_int, default=25,
                   help="LM steps between held-out scores (default 25)")
    args = p.parse_args(argv)
    args.lr, args.clip = 1e-2, 1.0  # Adam's rate (annealed to 0) and the gradient norm's cap
    if args.seeds is None:
        args.seeds = [args.seed, args.seed + 1, args.seed + 2]
    if args.quick:
        args.steps, args.hidden, args.train_chars, args.heldout_chars = 12, 16, 8_000, 3_200
        args.eval_every = 4
    if args.train_chars < 2 * args.batch * (args.bptt + 1):
        p.error(f"--train-chars: expected at least 2 x batch x (bptt + 1) = "
                f"{2 * args.batch * (args.bptt + 1)}, got {args.train_chars}")
    if args.heldout_chars < 2 * args.batch:
        p.error(f"--heldout-chars: expected at least 2 x batch = {2 * args.batch}, got "
                f"{args.heldout_chars}")

    clock = Clock()
    lm = lm_part(args, clock) if args.part in ("lm", "all") else None
    irnn = irnn_part(args, clock) if args.part in ("irnn", "all") else None
    plot(args.out_dir, lm, irnn)
    parts = [part for part in (lm, irnn) if part is not None]
    print("summary: regularisation: " + "; ".join(part["text"] for part in parts)
          + f"; {clock():.0f}s")
    expected = []
    if lm:
        expected.append("AWD's mean held-out bpc below plain's by more than the two seeds' "
                        "standard deviations")
    if irnn:
        expected.append(f"IRNN test MSE < {irnn_adding.BASELINE_FRACTION} x baseline and tanh "
                        f"RNN test MSE > {irnn_adding.TANH_FRACTION} x baseline")
    return verdict(args.quick, all(part["reached"] for part in parts), "; ".join(expected))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
