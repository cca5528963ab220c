"""Handwritten digits read row by row: an LSTM classifies 8x8 images as 8-step sequences.

    python examples/digits.py            # test accuracy >= 95%
    python examples/digits.py --quick    # a few seconds, for CI

The MNIST-by-rows classifier of course notes, on the small digits set that scikit-learn ships
(1,797 images of 8x8 pixels, no download). Each image is a sequence of T=8 steps, one row of
8 pixels a step; the LSTM's output at the last step goes through a linear layer to 10 class
scores::

    x: (8, B, 8)  --LSTM-->  out: (8, B, H)  --LastStep-->  (B, H)  --Linear-->  (B, 10)

trained with softmax cross-entropy and Adam (learning rate decaying linearly) on an 80/20
split made within each class.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, save_plot, verdict

import numpy as np

import npseq
from npseq import losses, optim

TARGET_ACCURACY = 0.95


def load_data(seed):
    """The digits as sequences of rows, split 80/20 within each class.

    Returns ``(x_train, y_train), (x_test, y_test)``; ``x`` of shape (8, N, 8) in [0, 1].
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("digits.py needs scikit-learn for its bundled digits data set: "
                 "pip install scikit-learn (or the 'examples' extra)")
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)  # (N, 8, 8), pixel values 0..16
    labels = digits.target
    rng = np.random.default_rng(seed)
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):  # a fifth of each class goes to the test set
        idx = rng.permutation(np.flatnonzero(labels == c))
        test[idx[:len(idx) // 5]] = True
    as_seq = lambda a: a.transpose(1, 0, 2)  # (N, rows, cols) -> (T=rows, N, cols)
    return ((as_seq(images[~test]), labels[~test]), (as_seq(images[test]), labels[test]))


def accuracy(model, x, y):
    with npseq.no_grad():
        logits, _ = model(x)
    return float(np.mean(np.argmax(logits, axis=1) == y))


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=25, help="passes over the training set")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units (default 64)")
    p.add_argument("--batch", type=positive_int, default=32, help="images per step (default 32)")
    p.add_argument("--lr", type=positive_float, default=5e-3,
                   help="Adam learning rate (default 5e-3)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2

    (x_train, y_train), (x_test, y_test) = load_data(args.seed)
    N = len(y_train)
    print(f"digits: {N} training and {len(y_test)} test images as 8 rows of 8 pixels; "
          f"LSTM({args.hidden}) + LastStep + Linear({args.hidden}, 10), seed {args.seed}")
    dtype = np.float32
    model = npseq.Sequential(npseq.LSTM(8, args.hidden, dtype=dtype, seed=args.seed),
                             npseq.LastStep(),
                             npseq.Linear(args.hidden, 10, dtype=dtype, seed=args.seed + 1))
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    rng = np.random.default_rng(args.seed + 1)

    clock = Clock()
    epochs, train_losses, test_accs = [], [], []
    for epoch in range(1, args.epochs + 1):
        opt.lr = args.lr * (1 - (epoch - 1) / args.epochs)  # decays linearly towards 0
        order = rng.permutation(N)
        total = 0.0
        for start in range(0, N, args.batch):
            idx = order[start:start + args.batch]
            logits, _ = model(x_train[:, idx])
            loss, dlogits = losses.cross_entropy(logits, y_train[idx])
            opt.zero_grad()
            model.backward(dlogits)
            opt.step()
            total += loss * len(idx)
        acc = accuracy(model, x_test, y_test)
        epochs.append(epoch)
        train_losses.append(total / N)
        test_accs.append(acc)
        print(f"epoch {epoch:3d}  train loss {total / N:.4f}  test accuracy {acc:.2%}  "
              f"{clock}", flush=True)

    train_acc = accuracy(model, x_train, y_train)
    save_plot(args.out_dir, "digits.png", {"test accuracy": (epochs, test_accs),
                                           "train loss": (epochs, train_losses)},
              "epoch", "accuracy / loss", "digits read row by row (LSTM)")
    print(f"summary: digits: test accuracy {test_accs[-1]:.2%} (train {train_acc:.2%}) "
          f"after {args.epochs} epochs; {clock():.0f}s")
    return verdict(args.quick, test_accs[-1] >= TARGET_ACCURACY,
                   f"test accuracy >= {TARGET_ACCURACY:.0%}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
