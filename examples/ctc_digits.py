"""Reading strings of handwritten digits with CTC: no alignment of labels to columns is given.

    python examples/ctc_digits.py            # held-out sequence accuracy >= 90%
    python examples/ctc_digits.py --quick    # half a minute of CPU, for CI

Each string is 3 to 7 of scikit-learn's 8x8 digits placed side by side with random gaps of
0 to 3 empty columns; a bidirectional LSTM (two layers) reads it one pixel column (8 values)
per step and a linear layer gives, at every column, scores for 11 classes (blank = 0,
digit d = d + 1)::

    x: (W, B, 8) --BiLSTM(lengths)--> (W, B, 2H) --Linear--> z: (W, B, 11)
    y = log_softmax(z)   loss, dy = ctc_loss(y, digits + 1, W_b, n_b)
    dz = dy - softmax(z) sum_k dy                        (log_softmax backward, by hand)

CTC sums over every way of spreading the n labels over the W columns, so the targets are
just the digit strings. Every epoch builds new training strings from the training images,
each image slightly distorted (moved a row up or down, a column dropped or doubled), since
1,442 images are few. The strings for testing are built from the other images (a fifth of
each class, never trained on); a string counts as read when the greedy (best-path) decoding
equals it exactly. They are read with a running average of the weights (Polyak averaging),
which varies less from epoch to epoch than the latest weights (both are printed). The plot
shows the per-column label probabilities of one held-out string.
"""
import argparse
import contextlib
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, pyplot, savefig, verdict

import numpy as np

import npseq
from npseq import data, losses, optim
from npseq.ctc import ctc_greedy_decode

TARGET_ACCURACY = 0.90
BLANK = 0  # class 0; digit d is class d + 1
MIN_DIGITS, MAX_DIGITS, MAX_GAP = 3, 7, 3


def load_images(seed):
    """The 8x8 digits in [0, 1], split 80/20 within each class: (train, test) pairs."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("ctc_digits.py needs scikit-learn for its bundled digits data set: "
                 "pip install scikit-learn (or the 'examples' extra)")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8), pixel values 0..16
    labels = digits.target
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[:len(idx) // 5]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])


def distort(image, rng):
    """A training image moved up or down by a row or not, and one column dropped or doubled
    or not: digits as a slightly different hand might write them. (8, 8) -> (8, 7..9)."""
    shift = rng.integers(-1, 2)
    image = np.roll(image, shift, axis=0)
    if shift:
        image[0 if shift > 0 else -1] = 0  # the row that came round the edge
    change, j = rng.integers(-1, 2), rng.integers(1, 7)
    if change < 0:
        image = np.delete(image, j, axis=1)
    elif change > 0:
        image = np.insert(image, j, image[:, j], axis=1)
    return image * np.float32(rng.uniform(0.8, 1.2))


def make_strings(images, labels, n, rng, augment=False):
    """``n`` strings of 3..7 digit images with gaps of 0..3 empty columns between them
    (with ``augment``, each image passed through :func:`distort`).

    Returns ``x`` (W, n, 8) zero-padded columns, ``widths`` (n,), ``targets`` (n, 7) classes
    (digit + 1, padded with 0) and ``counts`` (n,) digits per string.
    """
    counts = rng.integers(MIN_DIGITS, MAX_DIGITS + 1, size=n)
    strings, targets = [], np.zeros((n, MAX_DIGITS), dtype=np.int64)
    for i, k in enumerate(counts):
        idx = rng.integers(0, len(images), size=k)
        parts = []
        for j, m in enumerate(idx):
            if j:
                parts.append(np.zeros((rng.integers(0, MAX_GAP + 1), 8), np.float32))
            image = distort(images[m], rng) if augment else images[m]
            parts.append(image.T)  # (8 columns, 8 pixels)
        strings.append(np.concatenate(parts))
        targets[i, :k] = labels[idx] + 1
    widths = np.array([len(s) for s in strings])
    return data.pad_sequence(strings), widths, targets, counts  # x: (W, n, 8), 0 pads


def edit_distance(a, b):
    """Levenshtein distance between two label lists."""
    row = list(range(len(b) + 1))
    for i, p in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, q in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (p != q))
    return row[-1]


def evaluate(model, x, widths, targets, counts, batch=250):
    """Sequence accuracy, label error rate (edits per label) and the decoded strings."""
    decoded = []
    model.eval()  # no dropout
    with npseq.no_grad():
        for s in range(0, x.shape[1], batch):
            w = widths[s:s + batch]
            z, _ = model(x[:w.max(), s:s + batch], lengths=w)
            decoded += ctc_greedy_decode(z, w, blank=BLANK)  # argmax of z = argmax of y
    model.train()
    truth = [list(t[:k]) for t, k in zip(targets, counts)]
    exact = np.mean([d == t for d, t in zip(decoded, truth)])
    errors = sum(edit_distance(d, t) for d, t in zip(decoded, truth)) / counts.sum()
    return float(exact), float(errors), decoded


@contextlib.contextmanager
def weights(model, params):
    """Run the model with other weights (the average), then put its own back."""
    own = {k: v.copy() for k, v in model.params.items()}
    for k, v in model.params.items():
        v[...] = params[k]
    try:
        yield model
    finally:
        for k, v in model.params.items():
            v[...] = own[k]


def plot(out_dir, model, columns, target, decoded):
    """The string's pixels (``columns`` of shape (W, 8)) over its per-column class
    probabilities."""
    plt = pyplot()
    if plt is None:
        return None
    with npseq.no_grad():
        z, _ = model(columns[:, None])  # (W, 1, 11)
    p = losses.softmax(z[:, 0])  # (W, 11)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True,
                                      gridspec_kw=dict(height_ratios=[1, 2]))
    width = len(columns)
    top.imshow(columns.T, cmap="gray_r", aspect="auto",
               extent=(-0.5, width - 0.5, 7.5, -0.5))
    top.set_yticks([])
    truth = "".join(str(k - 1) for k in target)
    read = "".join(str(k - 1) for k in decoded)
    top.set_title(f"held-out string {truth}, read as {read}")
    colors = plt.get_cmap("tab10")
    frames = np.arange(width)
    bottom.plot(frames, p[:, BLANK], color="0.6", linestyle="--", label="blank")
    for d in range(10):
        bottom.plot(frames, p[:, d + 1], color=colors(d), label=str(d))
        top_d = p.argmax(axis=1) == d + 1  # frames where digit d is the most likely class
        starts = top_d & ~np.concatenate([[False], top_d[:-1]])
        for t in np.flatnonzero(starts):
            bottom.annotate(str(d), (t, p[t, d + 1]), textcoords="offset points",
                            xytext=(0, 3), ha="center", fontsize=8, color=colors(d))
    bottom.set_xlabel("column (time step)")
    bottom.set_ylabel("p(class | column)")
    bottom.set_ylim(0, 1.12)
    bottom.legend(ncol=11, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    return savefig(plt, fig, out_dir, "ctc_digits.png")


def fraction(text):
    """argparse type: a number in [0, 1)."""
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return value


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=20,
                   help="epochs, each on new strings (default 20)")
    p.add_argument("--strings", type=positive_int, default=3000,
                   help="training strings (default 3000)")
    p.add_argument("--hidden", type=positive_int, default=64,
                   help="hidden units per direction (default 64)")
    p.add_argument("--layers", type=positive_int, default=2,
                   help="stacked BiLSTM layers (default 2)")
    p.add_argument("--dropout", type=fraction, default=0.2,
                   help="dropout between the layers (default 0.2)")
    p.add_argument("--batch", type=positive_int, default=32, help="strings per step (default 32)")
    p.add_argument("--lr", type=positive_float, default=1e-2,
                   help="Adam learning rate (default 1e-2)")
    p.add_argument("--average", type=fraction, default=0.99,
                   help="decay per step of the running average of the weights that is "
                        "evaluated (default 0.99; 0: the latest weights)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.strings, args.batch, args.average = 3, 1600, 16, 0.9

    (train_images, train_labels), (test_images, test_labels) = load_images(args.seed)
    rng = np.random.default_rng(args.seed)
    x_test, w_test, t_test, n_test = make_strings(test_images, test_labels, 500, rng)
    print(f"ctc digits: {args.strings} new training strings of 3-7 digits an epoch (from "
          f"{len(train_images)} images, distorted), 500 held-out strings ({len(test_images)} "
          f"other images), widths {w_test.min()}-{w_test.max()} columns; "
          f"BiLSTM({args.hidden}, {args.layers} layers, dropout {args.dropout}) + "
          f"Linear({2 * args.hidden}, 11), seed {args.seed}")
    dtype = np.float32
    model = npseq.Sequential(
        npseq.LSTM(8, args.hidden, num_layers=args.layers, dropout=args.dropout,
                   bidirectional=True, dtype=dtype, seed=args.seed),
        npseq.Linear(2 * args.hidden, 11, dtype=dtype, seed=args.seed + 1))
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    average = {k: v.copy() for k, v in model.params.items()}  # Polyak average of the weights

    clock = Clock()
    N = args.strings
    for epoch in range(1, args.epochs + 1):
        opt.lr = args.lr * (1 - (epoch - 1) / args.epochs)  # decays linearly towards 0
        x_train, w_train, t_train, n_train = make_strings(train_images, train_labels, N, rng,
                                                          augment=True)
        total = 0.0
        for start in range(0, N, args.batch):
            idx = np.arange(start, min(start + args.batch, N))
            widths = w_train[idx]
            z, _ = model(x_train[:widths.max(), idx], lengths=widths)  # (W, B, 11)
            y = losses.log_softmax(z)
            loss, dy = losses.ctc_loss(y, t_train[idx], widths, n_train[idx], blank=BLANK)
            dz = dy - np.exp(y) * dy.sum(axis=2, keepdims=True)  # log_softmax backward
            opt.zero_grad()
            model.backward(dz)
            optim.clip_grad_norm(model.grads, 5.0)
            opt.step()
            for k, v in model.params.items():
                average[k] += (1 - args.average) * (v - average[k])
            total += loss * len(idx)
        raw, _, _ = evaluate(model, x_test, w_test, t_test, n_test)
        with weights(model, average):
            acc, errors, _ = evaluate(model, x_test, w_test, t_test, n_test)
        print(f"epoch {epoch:3d}  train CTC loss {total / N:.4f} (per label)  held-out: "
              f"sequence accuracy {acc:.1%} (latest weights {raw:.1%}), label error rate "
              f"{errors:.2%}  {clock}", flush=True)

    with weights(model, average):
        acc, errors, decoded = evaluate(model, x_test, w_test, t_test, n_test)
        plot(args.out_dir, model, x_test[:w_test[0], 0], t_test[0, :n_test[0]], decoded[0])
    print(f"summary: ctc digits: held-out sequence accuracy {acc:.1%}, label error rate "
          f"{errors:.2%} after {args.epochs} epochs on {N} strings; {clock():.0f}s")
    return verdict(args.quick, acc >= TARGET_ACCURACY,
                   f"held-out sequence accuracy >= {TARGET_ACCURACY:.0%}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
