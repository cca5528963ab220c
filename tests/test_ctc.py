"""CTC: the loss against brute force and central differences, float32 at T=1000, decoders.

References independent of :mod:`npseq.ctc`: enumerating every path of a tiny input (the
definition of the loss, ``p(l|x) = sum over paths pi with B(pi) = l of prod_t y[t, pi_t]``),
central differences of the loss, and hand-made decoding cases.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from npseq import losses
from npseq.ctc import ctc_greedy_decode, ctc_loss, ctc_prefix_beam_search
from npseq.gradcheck import numerical_gradient, rel_error
from strategies import examples


def collapse(path, blank):
    """B(pi): merge runs of equal classes, then drop the blanks."""
    return tuple(k for i, k in enumerate(path) if k != blank and (i == 0 or path[i - 1] != k))


def needed_frames(labels):
    """The fewest frames that hold ``labels``: one per label, one blank per repeated pair."""
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def brute_force_probs(y, blank):
    """``{labelling: p(labelling | x)}`` by enumerating all C**T paths of ``y`` (T, C)."""
    T, C = y.shape
    probs = {}
    for path in itertools.product(range(C), repeat=T):
        g = collapse(path, blank)
        probs[g] = probs.get(g, 0.0) + math.exp(sum(y[t, k] for t, k in enumerate(path)))
    return probs


@st.composite
def ctc_cases(draw, max_T=7, max_B=3, max_C=4):
    """log_probs (T, B, C) (free, not normalised), padded targets, lengths, blank.

    Labels come from few classes, so repeats ("aa", which need a blank between) are common;
    each target is cut to what its input length can hold and is often exactly that long
    (T_b = S_b + repeats, a single alignment). Padding holds junk (-7, C + 3) that must be
    ignored.
    """
    T = draw(st.integers(1, max_T))
    B = draw(st.integers(1, max_B))
    C = draw(st.integers(2, max_C))
    blank = draw(st.integers(0, C - 1))
    labels = [k for k in range(C) if k != blank]
    S = draw(st.integers(0, T))
    T_b, S_b, targets = [], [], np.full((B, S), -7, dtype=np.int64)
    for b in range(B):
        T_b.append(draw(st.integers(1, T)))
        seq = draw(st.lists(st.sampled_from(labels), min_size=S, max_size=S))
        fits = max(n for n in range(S + 1) if needed_frames(seq[:n]) <= T_b[b])
        S_b.append(draw(st.just(fits) | st.integers(0, fits)))
        targets[b, :S_b[b]] = seq[:S_b[b]]
        targets[b, S_b[b]:] = draw(st.sampled_from([-7, C + 3, blank]))
    y = draw(hnp.arrays(np.float64, (T, B, C), elements=st.floats(-4, 1), fill=st.nothing()))
    return y, targets, np.array(T_b), np.array(S_b), blank


def weighted(reduction, w):
    """The scalar whose gradient a test checks: ``sum_b w_b l_b`` for "none", else ``w L``."""
    def f(y, *args, **kwargs):
        loss, dy = ctc_loss(y, *args, reduction=reduction, **kwargs)
        if reduction == "none":
            return float(np.sum(w * loss)), dy * w[:, None]
        return w[0] * loss, w[0] * dy
    return f


@settings(max_examples=examples(60))
@given(ctc_cases(), st.sampled_from(["none", "mean", "sum"]), st.data())
def test_gradient_matches_central_differences(case, reduction, data):
    y, targets, T_b, S_b, blank = case
    B = y.shape[1]
    w = data.draw(hnp.arrays(np.float64, (B,), elements=st.floats(0.2, 2) | st.floats(-2, -0.2)))
    f = weighted(reduction, w)
    args = (targets, T_b, S_b)
    loss, dy = f(y, *args, blank=blank)
    assert dy.shape == y.shape and dy.dtype == y.dtype
    x = y.copy()
    numeric = numerical_gradient(lambda: f(x, *args, blank=blank)[0], x)
    assert rel_error(dy, numeric) < 1e-7
    past = np.arange(y.shape[0])[:, None] >= T_b  # (T, B) frames past each input length
    assert not dy[past].any()


@settings(max_examples=examples(40))
@given(ctc_cases(max_T=4, max_B=2, max_C=3))
def test_loss_is_minus_log_of_the_sum_over_paths(case):
    y, targets, T_b, S_b, blank = case
    loss, dy = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction="none")
    for b in range(y.shape[1]):
        probs = brute_force_probs(y[:T_b[b], b], blank)
        expected = -math.log(probs[tuple(targets[b, :S_b[b]])])
        assert loss[b] == pytest.approx(expected, rel=1e-12, abs=1e-12)


@settings(max_examples=examples(30))
@given(ctc_cases())
def test_each_frame_gives_minus_one_in_total(case):
    """The gradient of l_b at a frame is minus a posterior over positions: it sums to -1."""
    y, targets, T_b, S_b, blank = case
    _, dy = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction="sum")
    live = np.arange(y.shape[0])[:, None] < T_b  # (T, B)
    np.testing.assert_allclose(dy.sum(axis=2)[live], -1, rtol=0, atol=1e-12)
    assert np.all(dy <= 0)


@settings(max_examples=examples(30))
@given(ctc_cases())
def test_reductions_from_the_losses_of_each_sequence(case):
    y, targets, T_b, S_b, blank = case
    each, d_each = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction="none")
    total, d_total = ctc_loss(y, targets, T_b, S_b, blank=blank, reduction="sum")
    mean, d_mean = ctc_loss(y, targets, T_b, S_b, blank=blank)
    B = y.shape[1]
    per_label = 1 / (B * np.maximum(S_b, 1))  # as torch: divide by S_b (1 if 0), mean over B
    assert total == pytest.approx(math.fsum(each), rel=1e-12)
    assert mean == pytest.approx(math.fsum(each * per_label), rel=1e-12)
    np.testing.assert_array_equal(d_total, d_each)
    np.testing.assert_allclose(d_mean, d_each * per_label[:, None], rtol=1e-15, atol=0)


def test_empty_target_is_all_blanks():
    rng = np.random.default_rng(0)
    y = losses.log_softmax(rng.normal(size=(5, 2, 4)))
    loss, dy = ctc_loss(y, np.zeros((2, 0), dtype=int), [5, 3], [0, 0], blank=2,
                        reduction="none")
    np.testing.assert_allclose(loss, [-y[:, 0, 2].sum(), -y[:3, 1, 2].sum()], rtol=1e-14)
    expected = np.zeros_like(y)
    expected[:, 0, 2] = -1
    expected[:3, 1, 2] = -1
    np.testing.assert_array_equal(dy, expected)


def test_repeated_labels_need_a_blank_between():
    """"aa" in 3 frames has one alignment (a, blank, a); in 2 frames none."""
    y = np.log(np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3], [0.1, 0.7, 0.2]]))  # (T=3, C=3)
    loss, dy = ctc_loss(y, [1, 1], 3, 2, reduction="sum")
    assert loss == pytest.approx(-math.log(0.5 * 0.6 * 0.7), rel=1e-14)
    np.testing.assert_array_equal(dy, -np.eye(3)[[1, 0, 1]])
    loss, dy = ctc_loss(y[:2], [1, 1], 2, 2, reduction="sum")
    assert loss == math.inf and np.isnan(dy).all()
    loss, dy = ctc_loss(y[:2], [1, 1], 2, 2, reduction="sum", zero_infinity=True)
    assert loss == 0 and not dy.any()
    loss, _ = ctc_loss(y[:2], [1, 2], 2, 2, reduction="sum")  # "ab" fits in 2 frames
    assert loss == pytest.approx(-math.log(0.5 * 0.3), rel=1e-14)


def test_infeasible_sequence_is_inf_with_nan_gradient_and_others_unharmed():
    rng = np.random.default_rng(1)
    y = losses.log_softmax(rng.normal(size=(4, 2, 3)))
    targets = np.array([[1, 1, 1], [1, 2, 0]])
    T_b, S_b = [4, 4], [3, 2]  # "aaa" needs 5 frames
    each, dy = ctc_loss(y, targets, T_b, S_b, reduction="none")
    alone, d_alone = ctc_loss(y[:, 1:], targets[1:], T_b[1:], S_b[1:], reduction="none")
    assert each[0] == math.inf and np.isnan(dy[:, 0]).all()
    assert each[1] == alone[0] and np.array_equal(dy[:, 1:], d_alone)
    mean, d_mean = ctc_loss(y, targets, T_b, S_b, zero_infinity=True)
    assert mean == pytest.approx(alone[0] / 2 / 2, rel=1e-14)  # B = 2 still counts both
    assert not d_mean[:, 0].any()
    np.testing.assert_allclose(d_mean[:, 1], d_alone[:, 0] / 4, rtol=1e-15)


def test_unbatched_equals_a_batch_of_one_and_inputs_are_not_changed():
    rng = np.random.default_rng(2)
    y = losses.log_softmax(rng.normal(size=(6, 1, 5)))
    targets = np.array([[3, 1, 3]])
    keep = y.copy(), targets.copy()
    batched = ctc_loss(y, targets, [5], [3], reduction="none")
    single = ctc_loss(y[:, 0], targets[0], 5, 3, reduction="none")
    assert np.shape(single[0]) == () and single[0] == batched[0][0]
    np.testing.assert_array_equal(single[1], batched[1][:, 0])
    assert np.array_equal(y, keep[0]) and np.array_equal(targets, keep[1])


@st.composite
def long_cases(draw):
    B = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    return B, seed


@settings(max_examples=examples(4))
@given(long_cases())
def test_float32_at_T_1000_is_finite_and_close_to_float64(case):
    B, seed = case
    rng = np.random.default_rng(seed)
    T, C = 1000, 20
    y64 = losses.log_softmax(2 * rng.normal(size=(T, B, C)))  # about -3.5 a frame
    T_b = rng.integers(500, T + 1, size=B)
    T_b[0] = T
    S_b = rng.integers(0, 120, size=B)
    targets = rng.integers(1, C, size=(B, 120))
    l64, d64 = ctc_loss(y64, targets, T_b, S_b, reduction="none")
    l32, d32 = ctc_loss(y64.astype(np.float32), targets, T_b, S_b, reduction="none")
    assert l32.dtype == np.float32 and d32.dtype == np.float32
    assert np.all(np.isfinite(l32)) and np.all(np.isfinite(d32))
    assert np.all(l64 > 1000)  # losses in the thousands: far outside exp's float32 range
    # the loss adds T numbers of size ~3.5 in float32 (rounding ~ 6e-8 of each sum)
    np.testing.assert_allclose(l32, l64, rtol=1e-5)
    # posteriors in [0, 1]: alpha + beta ~ -3000 carries ~2e-4 of absolute rounding
    np.testing.assert_allclose(d32, d64, rtol=0, atol=2e-3)


# --------------------------------------------------------------------------------------------
# decoding


def test_greedy_decode_hand_made():
    frames = [[0, 1, 1, 0, 1, 2, 2, 0, 0], [2, 2, 2, 0, 3, 3, 0, 0, 0]]  # (B, T) argmax
    y = np.log(np.eye(4)[np.array(frames).T] * 0.9 + 0.025)  # (T, B, C)
    assert ctc_greedy_decode(y) == [[1, 1, 2], [2, 3]]
    assert ctc_greedy_decode(y, input_lengths=[5, 3]) == [[1, 1], [2]]
    assert ctc_greedy_decode(y, blank=2) == [[0, 1, 0, 1, 0], [0, 3, 0]]
    assert ctc_greedy_decode(y[:, 1]) == [2, 3]  # one sequence (T, C)
    assert ctc_greedy_decode(np.log(np.full((3, 1, 3), 1 / 3))) == [[]]  # ties: first class


@st.composite
def dominated_cases(draw):
    """Frames whose top class has probability >= 1 - eps with (1 - eps)**T > 1/2.

    The best path's labelling then has p > 1/2 and so does each of its prefixes at every
    frame, so a beam of one keeps it: prefix beam search (beam 1) equals greedy decoding.
    """
    T = draw(st.integers(1, 8))
    C = draw(st.integers(2, 5))
    blank = draw(st.integers(0, C - 1))
    top = draw(hnp.arrays(np.int64, (T,), elements=st.integers(0, C - 1)))
    rest = draw(hnp.arrays(np.float64, (T, C), elements=st.floats(0.1, 1)))
    eps = 0.5 / T / 2  # (1 - eps)**T >= 1 - T eps = 3/4
    p = eps * rest / rest.sum(axis=1, keepdims=True)
    p[np.arange(T), top] += 1 - eps  # rows sum to 1
    return np.log(p), blank


@settings(max_examples=examples(40))
@given(dominated_cases())
def test_beam_of_one_equals_greedy_where_the_best_path_dominates(case):
    y, blank = case
    labels, log_p = ctc_prefix_beam_search(y, beam_size=1, blank=blank)
    assert labels == ctc_greedy_decode(y, blank=blank)
    assert log_p > math.log(0.5)


@st.composite
def tiny_cases(draw):
    T = draw(st.integers(1, 5))
    C = draw(st.integers(2, 3))
    z = draw(hnp.arrays(np.float64, (T, C), elements=st.floats(-3, 3)))
    return losses.log_softmax(z), draw(st.integers(0, C - 1))


def exact_log_prob(y, labels, blank):
    """log p(labels | x) from ctc_loss (the alpha recursion, not the beam search)."""
    return -ctc_loss(y, np.array(labels, dtype=int), y.shape[0], len(labels), blank=blank,
                     reduction="sum")[0]


@settings(max_examples=examples(40))
@given(tiny_cases())
def test_full_beam_finds_the_most_likely_labelling_by_brute_force(case):
    y, blank = case
    probs = brute_force_probs(y, blank)
    ranked = ctc_prefix_beam_search(y, beam_size=len(probs), blank=blank, nbest=len(probs))
    assert len(ranked) == len(probs)  # every labelling with p > 0 is in the beam
    for labels, log_p in ranked:  # with nothing pruned the scores are exact
        assert math.exp(log_p) == pytest.approx(probs[tuple(labels)], rel=1e-10)
    assert [lp for _, lp in ranked] == sorted((lp for _, lp in ranked), reverse=True)
    best, log_p = ranked[0]
    assert probs[tuple(best)] == pytest.approx(max(probs.values()), rel=1e-12)
    greedy = ctc_greedy_decode(y, blank=blank)
    assert log_p >= exact_log_prob(y, greedy, blank) - 1e-12  # never below greedy
    assert log_p >= np.sum(y.max(axis=1)) - 1e-12  # nor below the best path alone


@settings(max_examples=examples(40))
@given(tiny_cases(), st.integers(1, 4))
def test_pruned_beam_scores_are_lower_bounds(case, beam_size):
    y, blank = case
    for labels, log_p in ctc_prefix_beam_search(y, beam_size=beam_size, blank=blank,
                                                nbest=beam_size):
        assert log_p <= exact_log_prob(y, labels, blank) + 1e-12


def test_a_pruned_beam_can_end_below_greedy():
    """Why "a beam never scores below greedy" holds only for a beam that keeps every prefix.

    Frame 0 keeps "" and "2" and drops "1" (2/9 < 3/9 < 4/9); "1" then only collects the
    paths (blank, 1): p("2") = 31/90 found, p("1") = 32/90 missed, and greedy reads "1".
    """
    y = np.log(np.array([[4 / 9, 2 / 9, 3 / 9], [0.1, 0.5, 0.4]]))
    assert ctc_greedy_decode(y) == [1]
    assert exact_log_prob(y, [1], 0) == pytest.approx(math.log(32 / 90), rel=1e-14)
    labels, log_p = ctc_prefix_beam_search(y, beam_size=2)
    assert labels == [2] and log_p == pytest.approx(math.log(31 / 90), rel=1e-14)
    assert ctc_prefix_beam_search(y, beam_size=3)[0] == [1]


def test_beam_search_batch_lengths_and_nbest():
    rng = np.random.default_rng(3)
    y = losses.log_softmax(rng.normal(size=(6, 3, 4)))
    out = ctc_prefix_beam_search(y, input_lengths=[6, 4, 1], beam_size=5, nbest=3)
    assert len(out) == 3 and all(len(r) == 3 for r in out[:2])
    for b, T_b in enumerate([6, 4, 1]):
        assert out[b] == ctc_prefix_beam_search(y[:T_b, b], beam_size=5, nbest=3)
    assert len(out[2]) == 3  # one frame: "" and the three one-label sequences, best 3
    best = ctc_prefix_beam_search(y, input_lengths=[6, 4, 1], beam_size=5)
    assert best == [r[0] for r in out]


# --------------------------------------------------------------------------------------------
# validation

Y = np.log(np.full((4, 2, 3), 1 / 3))
GOOD = dict(log_probs=Y, targets=np.array([[1, 2], [2, 0]]), input_lengths=[4, 3],
            target_lengths=[2, 1])


@pytest.mark.parametrize("name, value, error", [
    ("log_probs", np.zeros((4, 2, 3, 1)), ValueError),
    ("log_probs", np.zeros((0, 2, 3)), ValueError),
    ("log_probs", np.zeros((4, 0, 3)), ValueError),
    ("log_probs", np.array([["a"]]), TypeError),
    ("targets", np.array([[1.0, 2.0], [2.0, 0.0]]), TypeError),
    ("targets", np.array([1, 2]), ValueError),
    ("targets", np.array([[1, 2]]), ValueError),
    ("targets", np.array([[1, 3], [2, 0]]), ValueError),
    ("targets", np.array([[1, 0], [2, 0]]), ValueError),  # the blank inside a target
    ("targets", np.array([[1, -1], [2, 0]]), ValueError),
    ("input_lengths", [4], ValueError),
    ("input_lengths", [5, 3], ValueError),
    ("input_lengths", [0, 3], ValueError),
    ("input_lengths", [2.5, 3], TypeError),
    ("target_lengths", [3, 1], ValueError),
    ("target_lengths", [-1, 1], ValueError),
    ("target_lengths", [2], ValueError),
    ("target_lengths", ["2", "1"], TypeError),
    ("blank", 3, ValueError),
    ("blank", 1.0, TypeError),
    ("reduction", "max", ValueError),
    ("zero_infinity", 1, TypeError),
])
def test_loss_validation_names_the_argument(name, value, error):
    kwargs = dict(GOOD, **{name: value})
    with pytest.raises(error, match=name):
        ctc_loss(**kwargs)


@pytest.mark.parametrize("fn", [ctc_greedy_decode, ctc_prefix_beam_search])
@pytest.mark.parametrize("name, value, error", [
    ("log_probs", np.zeros(3), ValueError),
    ("input_lengths", [4, 5], ValueError),
    ("input_lengths", [4], ValueError),
    ("blank", -1, ValueError),
])
def test_decoder_validation_names_the_argument(fn, name, value, error):
    kwargs = {"log_probs": Y, name: value}
    with pytest.raises(error, match=name):
        fn(**kwargs)


@pytest.mark.parametrize("name, value, error", [
    ("beam_size", 0, ValueError), ("beam_size", 2.0, TypeError),
    ("nbest", 0, ValueError), ("nbest", "all", TypeError),
])
def test_beam_search_validation_names_the_argument(name, value, error):
    with pytest.raises(error, match=name):
        ctc_prefix_beam_search(Y, **{name: value})
