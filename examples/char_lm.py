"""A character-level language model (min-char-rnn, done properly) on Python's own help text.

    python examples/char_lm.py            # held-out bits per character < 2.1
    python examples/char_lm.py --quick    # a few seconds, for CI

The text is the help topics that every CPython install carries (``pydoc_data.topics``: about
460,000 characters of reference documentation). The model reads one character a step and
predicts the next::

    ids (T, B)  --Embedding-->  (T, B, E)  --LSTM-->  (T, B, H)  --Linear-->  logits (T, B, V)

trained with truncated backpropagation through time: the training text is cut into B parallel
streams, each read in chunks of k characters; the state is carried from one chunk to the next
(forward over the whole stream) but the gradient stops at each chunk's start
(``npseq.truncated_bptt``, with an optimizer step after each chunk). Evaluation reports bits per character on the last 10% of the text, which the
model never trains on (``loss / ln 2``; a uniform guess over its ~100 distinct characters
costs about 6.7 bits, one that knows only how often each character occurs about 4.7 bits).
Then it samples text at a few temperatures: ``p = softmax(logits / temperature)``.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, save_plot, verdict

import numpy as np

import npseq
from npseq import losses, optim

TARGET_BPC = 2.1  # uniform guess: 6.7 bits; character frequencies alone: 4.7 bits


def load_text():
    """Python's help topics as one string, in a fixed order."""
    from pydoc_data.topics import topics
    return "\n".join(topics[key] for key in sorted(topics))


def streams(ids, B):
    """Cut a 1-D id sequence into B contiguous streams: shape (len // B, B)."""
    T = len(ids) // B
    return ids[:T * B].reshape(B, T).T


def bits_per_char(model, data, k):
    """Mean cross-entropy in bits of predicting ``data[t + 1]`` from ``data[:t + 1]``.

    ``data`` is (T, B) streams; the state is carried over the whole stream, in chunks of k.
    """
    state, total, count = None, 0.0, 0
    with npseq.no_grad():
        for start in range(0, data.shape[0] - 1, k):
            x, y = data[start:start + k], data[start + 1:start + k + 1]
            logits, state = model(x[:len(y)], state)
            loss, _ = losses.cross_entropy(logits, y, reduction="sum")
            total, count = total + loss, count + y.size
    return total / count / np.log(2)


def sample(model, prompt_ids, n, temperature, rng):
    """``n`` ids drawn one at a time from ``softmax(logits / temperature)``, after a prompt."""
    with npseq.no_grad():
        logits, state = model(np.asarray(prompt_ids)[:, None])  # (T, 1, V)
        out = []
        for _ in range(n):
            p = losses.softmax(logits[-1, 0].astype(np.float64) / temperature)
            nxt = int(rng.choice(len(p), p=p))
            out.append(nxt)
            logits, state = model(np.array([[nxt]]), state)
    return out


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--steps", type=positive_int, default=2000, help="updates (default 2000)")
    p.add_argument("--hidden", type=positive_int, default=128,
                   help="LSTM hidden units (default 128)")
    p.add_argument("--embed", type=positive_int, default=32, help="embedding size (default 32)")
    p.add_argument("--batch", type=positive_int, default=32, help="parallel streams (default 32)")
    p.add_argument("--bptt", type=positive_int, default=50,
                   help="truncation length k (default 50)")
    p.add_argument("--lr", type=positive_float, default=5e-3,
                   help="Adam learning rate (default 5e-3)")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.hidden = 30, 32

    text = load_text()
    chars = sorted(set(text))
    index = {ch: i for i, ch in enumerate(chars)}
    ids = np.array([index[ch] for ch in text], dtype=np.int64)
    V, n_val = len(chars), len(ids) // 10
    train, val = streams(ids[:-n_val], args.batch), streams(ids[-n_val:], args.batch)
    if args.quick:
        val = val[:200]
    print(f"char LM: {len(ids):,} characters of pydoc_data.topics, {V} distinct; "
          f"train on {train.size:,}, held out {val.size:,}; Embedding({V}, {args.embed}) + "
          f"LSTM({args.hidden}) + Linear({args.hidden}, {V}); {args.batch} streams, "
          f"k={args.bptt}, seed {args.seed}")

    dtype = np.float32
    model = npseq.Sequential(
        npseq.Embedding(V, args.embed, dtype=dtype, seed=args.seed),
        npseq.LSTM(args.embed, args.hidden, dtype=dtype, seed=args.seed + 1),
        npseq.Linear(args.hidden, V, dtype=dtype, seed=args.seed + 2))
    opt = optim.Adam(model.params, model.grads, lr=args.lr)

    clock = Clock()
    k, step = args.bptt, 0
    log_every = 10 if args.quick else 100
    curve_steps, curve_train, curve_val, running = [], [], [], []

    def loss_and_grad(logits, start, stop):  # the targets are the next characters
        return losses.cross_entropy(logits, train[start + 1:stop + 1])

    def update(start, stop, loss):  # after each chunk's backward
        nonlocal step
        step += 1
        optim.clip_grad_norm(model.grads, 5.0)
        opt.step()
        opt.zero_grad()
        running.append(loss / np.log(2))
        if step % log_every == 0 or step == args.steps:
            curve_steps.append(step)
            curve_train.append(float(np.mean(running)))
            running.clear()
            line = f"step {step:5d}  train {curve_train[-1]:.3f} bits/char"
            if step % (5 * log_every) == 0 or step == args.steps:
                curve_val.append((step, bits_per_char(model, val, 200)))
                line += f"  held-out {curve_val[-1][1]:.3f} bits/char"
            print(f"{line}  {clock}", flush=True)

    while step < args.steps:  # passes over the streams, each from the zero state
        chunks = min((train.shape[0] - 1) // k, args.steps - step)  # whole chunks of k
        npseq.truncated_bptt(model, train[:chunks * k], k, loss_and_grad, on_chunk=update)

    rng = np.random.default_rng(args.seed)
    prompt = "The "
    for temperature in (0.5, 0.8, 1.0):
        out = sample(model, [index[ch] for ch in prompt], 100 if args.quick else 300,
                     temperature, rng)
        print(f"\n--- sample at temperature {temperature} ---\n{prompt}"
              + "".join(chars[i] for i in out))
    print()

    save_plot(args.out_dir, "char_lm.png",
              {"train": (curve_steps, curve_train), "held-out": tuple(zip(*curve_val))},
              "update", "bits per character", "character-level LSTM on pydoc_data.topics")
    bpc = curve_val[-1][1]
    print(f"summary: char LM: held-out {bpc:.3f} bits/char after {args.steps} updates "
          f"({args.steps * k * args.batch:,} characters read); {clock():.0f}s")
    return verdict(args.quick, bpc < TARGET_BPC,
                   f"held-out bits per character < {TARGET_BPC}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
