"""npseq.sample / npseq.sampling.probabilities: softmax with temperature and top-k."""
import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra import numpy as hnp

import npseq
from npseq.sampling import probabilities, sample


def softmax_by_hand(z, temperature=1.0, keep=None):
    """The reference, from the definition: exp(z / T) / sum exp(z / T) over the kept ids."""
    w = np.exp((z - z.max()) / temperature)
    if keep is not None:
        w = np.where(keep, w, 0.0)
    return w / w.sum()


@st.composite
def logit_rows(draw):
    B, V = draw(st.integers(1, 5)), draw(st.integers(1, 12))
    z = draw(hnp.arrays(np.float64, (B, V), elements=st.floats(-20, 20, allow_nan=False)))
    return z


@given(logit_rows(), st.integers(0, 2 ** 32 - 1))
def test_top_k_one_is_the_argmax(z, seed):
    ids = sample(z, top_k=1, rng=seed, temperature=3.0)
    assert ids.shape == z.shape[:1] and ids.dtype == np.int64
    # every drawn id has the largest logit of its row (ties: any of them)
    np.testing.assert_array_equal(z[np.arange(len(z)), ids], z.max(axis=1))


@given(logit_rows(), st.integers(1, 12), st.integers(0, 2 ** 32 - 1))
def test_draws_come_from_the_top_k_only(z, k, seed):
    ids = sample(np.repeat(z, 50, axis=0), top_k=k, rng=seed)  # 50 draws per row
    rows = np.repeat(z, 50, axis=0)
    kth = np.sort(rows, axis=1)[:, ::-1][:, min(k, z.shape[1]) - 1]  # k-th largest per row
    assert np.all(rows[np.arange(len(rows)), ids] >= kth)


def test_a_small_temperature_concentrates_on_the_argmax():
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20, 7))          # distinct logits, gaps about 0.1 or more
    z *= 1e3                                  # large logits and a tiny temperature: no overflow
    draws = sample(np.repeat(z, 200, axis=0), temperature=1e-3, rng=1)
    np.testing.assert_array_equal(draws, np.repeat(z.argmax(axis=1), 200))
    p = probabilities(z, temperature=1e-3)
    assert np.all(np.isfinite(p)) and np.array_equal(p.argmax(axis=1), z.argmax(axis=1))


@pytest.mark.parametrize("temperature, top_k", [(1.0, None), (0.7, None), (2.5, None),
                                                (0.7, 3), (1.0, 5)])
def test_frequencies_over_many_draws_match_the_softmax(temperature, top_k):
    """n draws: each count is binomial(n, p_k); it must lie within 5 standard deviations
    of n p_k (with a fixed seed the test is deterministic; 5 sd fails by chance < 1e-6)."""
    z = np.array([1.5, -0.5, 0.3, 2.0, -3.0, 0.0, 1.0])
    keep = None if top_k is None else z >= np.sort(z)[::-1][top_k - 1]
    p = softmax_by_hand(z, temperature, keep)
    n = 40_000
    ids = sample(np.broadcast_to(z, (n, len(z))), temperature, top_k,
                 rng=np.random.default_rng(12345))
    counts = np.bincount(ids, minlength=len(z))
    sd = np.sqrt(n * p * (1 - p))
    assert np.all(np.abs(counts - n * p) <= 5 * sd + 1e-12), (counts, n * p, sd)
    if keep is not None:
        assert not counts[~keep].any()       # the tokens left out are never drawn
    np.testing.assert_allclose(probabilities(z, temperature, top_k), p, rtol=1e-14, atol=0)


def test_rows_are_drawn_from_their_own_distributions():
    z = np.full((3, 4), -np.inf)
    z[0, 1] = 0.0                            # row 0: only token 1
    z[1, [0, 3]] = [0.0, np.log(3.0)]        # row 1: tokens 0 and 3 in ratio 1:3
    z[2] = 0.0                               # row 2: uniform
    ids = sample(np.broadcast_to(z, (5000, 3, 4)), rng=7)  # (5000, 3)
    assert ids.shape == (5000, 3)
    assert np.all(ids[:, 0] == 1)
    assert set(ids[:, 1].tolist()) == {0, 3}
    frac = np.mean(ids[:, 1] == 3)
    assert abs(frac - 0.75) <= 5 * np.sqrt(0.75 * 0.25 / 5000)
    assert set(ids[:, 2].tolist()) == {0, 1, 2, 3}


def test_one_row_gives_a_0d_array_and_seeds_reproduce():
    z = np.array([0.1, 0.5, 0.2])
    one = npseq.sample(z, rng=3)
    assert one.shape == () and int(one) in (0, 1, 2)
    gen_a, gen_b = np.random.default_rng(5), np.random.default_rng(5)
    a = [int(sample(z, rng=gen_a)) for _ in range(30)]
    b = [int(sample(z, rng=gen_b)) for _ in range(30)]
    assert a == b and len(set(a)) > 1       # a Generator advances between calls
    assert len({int(sample(z, rng=4)) for _ in range(10)}) == 1  # an int seed: one draw
    assert sample([[1, 0], [0, 1]], top_k=1).tolist() == [0, 1]   # integer logits


def test_the_logits_are_not_modified():
    z = np.array([[3.0, 1.0, 2.0]])
    before = z.copy()
    sample(z, temperature=0.5, top_k=2, rng=0)
    np.testing.assert_array_equal(z, before)


@pytest.mark.parametrize("call, err, match", [
    (lambda: sample(np.zeros((2, 0))), ValueError, r"logits: expected shape \(\.\.\., V\)"),
    (lambda: sample(3.0), ValueError, "logits: expected shape"),
    (lambda: sample([0.0, np.nan]), ValueError, "logits: expected finite values or -inf"),
    (lambda: sample([0.0, np.inf]), ValueError, "logits: expected finite values or -inf"),
    (lambda: sample([-np.inf, -np.inf]), ValueError, "a row of -inf only"),
    (lambda: sample(["a", "b"]), TypeError, "logits"),
    (lambda: sample([1.0, 2.0], temperature=0), ValueError, "temperature: expected a finite"),
    (lambda: sample([1.0, 2.0], temperature=-1.0), ValueError, "temperature"),
    (lambda: sample([1.0, 2.0], temperature=np.inf), ValueError, "temperature"),
    (lambda: sample([1.0, 2.0], temperature="hot"), TypeError, "temperature"),
    (lambda: sample([1.0, 2.0], top_k=0), ValueError, "top_k: expected an integer >= 1"),
    (lambda: sample([1.0, 2.0], top_k=1.5), TypeError, "top_k"),
    (lambda: sample([1.0, 2.0], rng="x"), TypeError, "rng: expected None, an integer"),
    (lambda: sample([1.0, 2.0], rng=-1), ValueError, "rng"),
])
def test_bad_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()
