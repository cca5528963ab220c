"""Handwritten digits read row by row: an LSTM classifies 8x8 images as 8-step sequences.

    python examples/digits.py            # test accuracy >= 95%
    python examples/digits.py --quick    # a few seconds, for CI
    python examples/digits.py --bidirectional    # BiLSTM + FinalState + Linear

The MNIST-by-rows classifier of course notes, on the small digits set that scikit-learn ships
(1,797 images of 8x8 pixels, no download). Each image is a sequence of T=8 steps, one row of
8 pixels a step; the LSTM's output at the last step goes through a linear layer to 10 class
scores::

    x: (8, B, 8)  --LSTM-->  out: (8, B, H)  --LastStep-->  (B, H)  --Linear-->  (B, 10)

With ``--bidirectional`` it is PyTorch's bidirectional classifier instead, the last layer's
final states of both directions concatenated (``torch.cat((h_n[-2], h_n[-1]), dim=1)``)::

    x: (8, B, 8)  --BiLSTM-->  h_n: (2, B, H)  --FinalState-->  (B, 2H)  --Linear-->  (B, 10)

trained with softmax cross-entropy and Adam on an 80/20 split made within each class. The
training part gives up a tenth of its images as a validation set; the rest is served in
shuffled batches by :class:`npseq.data.BucketIterator`, the learning rate follows
:class:`npseq.optim.CosineAnnealingLR` over the epochs, and training stops early: when the
validation loss has not improved for ``--patience`` epochs, the parameters of the best
epoch are put back, and those are the ones tested.
"""
import sys

# first: it keeps BLAS to one thread before numpy loads (see _common.py)
from _common import Clock, parser, positive_float, positive_int, pyplot, savefig, verdict

import numpy as np

import npseq
from npseq import data, losses, optim
from npseq.model import FinalState

TARGET_ACCURACY = 0.95


def load_data(seed):
    """The digits as sequences of rows, split 80/20 within each class; a tenth of the 80%
    (within each class) is the validation set.

    Returns ``(x_train, y_train), (x_val, y_val), (x_test, y_test)``; ``x`` of shape
    (8, N, 8) in [0, 1].
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
    part = np.zeros(len(labels), dtype=int)  # 0 train, 1 validation, 2 test
    for c in range(10):  # a fifth of each class to the test set, a tenth of the rest to val
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = len(idx) // 5
        part[idx[:n_test]] = 2
        part[idx[n_test:n_test + (len(idx) - n_test) // 10]] = 1
    as_seq = lambda a: a.transpose(1, 0, 2)  # (N, rows, cols) -> (T=rows, N, cols)
    return tuple((as_seq(images[part == k]), labels[part == k]) for k in range(3))


def evaluate(model, x, y):
    """Mean cross-entropy and accuracy on a whole set, without keeping records."""
    with npseq.no_grad():
        logits, _ = model(x)
    loss, _ = losses.cross_entropy(logits, y)
    return float(loss), float(np.mean(np.argmax(logits, axis=1) == y))


def plot(out_dir, name, epochs, train_losses, val_losses, val_accs, test_accs, best_epoch):
    """Two panels with their own axes: the losses, and the accuracies."""
    plt = pyplot()
    if plt is None:
        return None
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, train_losses, marker="o", markersize=3, label="train")
    ax_loss.plot(epochs, val_losses, marker="s", markersize=3, linestyle="--",
                 label="validation")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy (log scale)")
    ax_loss.set_title("loss")
    ax_acc.plot(epochs, val_accs, marker="s", markersize=3, linestyle="--", color="C1",
                label="validation")
    ax_acc.plot(epochs, test_accs, marker="^", markersize=3, color="C2", label="test")
    ax_acc.set_ylabel("accuracy")
    ax_acc.set_title("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.axvline(best_epoch, color="gray", linestyle=":", linewidth=1,
                   label=f"best epoch ({best_epoch}), kept")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle(f"digits read row by row ({name}), early stopping on the validation loss")
    fig.tight_layout()
    return savefig(plt, fig, out_dir, "digits.png")


def main(argv=None):
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--epochs", type=positive_int, default=25,
                   help="at most this many passes over the training set (default 25)")
    p.add_argument("--patience", type=positive_int, default=5,
                   help="stop after this many epochs without a better validation loss "
                        "(default 5)")
    p.add_argument("--hidden", type=positive_int, default=64, help="hidden units (default 64)")
    p.add_argument("--batch", type=positive_int, default=32, help="images per step (default 32)")
    p.add_argument("--lr", type=positive_float, default=5e-3,
                   help="Adam learning rate at the start (default 5e-3)")
    p.add_argument("--bidirectional", action="store_true",
                   help="a bidirectional LSTM read through its final states (FinalState)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = 2

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = load_data(args.seed)
    N = len(y_train)
    dtype, H = np.float32, args.hidden
    if args.bidirectional:  # torch: Linear(torch.cat((h_n[-2], h_n[-1]), dim=1))
        model = npseq.Sequential(
            npseq.LSTM(8, H, bidirectional=True, dtype=dtype, seed=args.seed),
            FinalState(), npseq.Linear(2 * H, 10, dtype=dtype, seed=args.seed + 1))
    else:
        model = npseq.Sequential(npseq.LSTM(8, H, dtype=dtype, seed=args.seed),
                                 npseq.LastStep(),
                                 npseq.Linear(H, 10, dtype=dtype, seed=args.seed + 1))
    print(f"digits: {N} training, {len(y_val)} validation and {len(y_test)} test images as 8 "
          f"rows of 8 pixels; " + (f"BiLSTM({H}) + FinalState + Linear({2 * H}, 10)"
                                   if args.bidirectional else
                                   f"LSTM({H}) + LastStep + Linear({H}, 10)")
          + f", seed {args.seed}")
    opt = optim.Adam(model.params, model.grads, lr=args.lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=args.epochs)  # to 0 at the last epoch
    batches = data.BucketIterator(list(x_train.transpose(1, 0, 2)), y_train,
                                  batch_size=args.batch, seed=args.seed + 1)

    clock = Clock()
    epochs, train_losses, val_losses, val_accs, test_accs = [], [], [], [], []
    best_loss, best_epoch, best_params = np.inf, 0, None
    for epoch in range(1, args.epochs + 1):
        total = 0.0
        for x, lengths, y in batches:  # x (8, B, 8), one shuffled epoch
            logits, _ = model(x, lengths=lengths)
            loss, dlogits = losses.cross_entropy(logits, y)
            opt.zero_grad()
            model.backward(dlogits)
            opt.step()
            total += loss * len(y)
        lr = opt.lr
        schedule.step()
        val_loss, val_acc = evaluate(model, x_val, y_val)
        test_acc = evaluate(model, x_test, y_test)[1]  # for the plot only: never chooses
        for series, value in zip((epochs, train_losses, val_losses, val_accs, test_accs),
                                 (epoch, total / N, val_loss, val_acc, test_acc)):
            series.append(value)
        better = val_loss < best_loss
        if better:  # early stopping: keep a copy of the best parameters so far
            best_loss, best_epoch = val_loss, epoch
            best_params = {k: v.copy() for k, v in model.params.items()}
        print(f"epoch {epoch:3d}  lr {lr:.2e}  train loss {total / N:.4f}  validation loss "
              f"{val_loss:.4f} {'(best)' if better else '      '} accuracy {val_acc:.2%}  "
              f"{clock}", flush=True)
        if epoch - best_epoch >= args.patience and epoch < args.epochs:
            print(f"stopped early: no better validation loss for {args.patience} epochs")
            break

    model.load_state_dict(best_params)  # the parameters of the best epoch
    _, test_acc = evaluate(model, x_test, y_test)
    _, train_acc = evaluate(model, x_train, y_train)
    plot(args.out_dir, "BiLSTM + FinalState" if args.bidirectional else "LSTM", epochs,
         train_losses, val_losses, val_accs, test_accs, best_epoch)
    print(f"summary: digits: test accuracy {test_acc:.2%} (train {train_acc:.2%}) with the "
          f"parameters of epoch {best_epoch} (best validation loss {best_loss:.4f}), "
          f"{len(epochs)} of {args.epochs} epochs run; {clock():.0f}s")
    return verdict(args.quick, test_acc >= TARGET_ACCURACY,
                   f"test accuracy >= {TARGET_ACCURACY:.0%}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
