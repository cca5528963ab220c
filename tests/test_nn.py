"""Linear and Embedding: finite-difference gradients, initialisation, validation."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import npseq
from npseq.gradcheck import numerical_gradient, rel_error

finite = st.floats(0.1, 2) | st.floats(-2, -0.1)  # well scaled: rel. errors meaningful


@st.composite
def linear_cases(draw):
    """(in, out, bias, x, dy): x of 1 to 3 dims, dy a random upstream gradient."""
    n_in = draw(st.integers(1, 4))
    n_out = draw(st.integers(1, 4))
    lead = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=3))
    x = draw(hnp.arrays(np.float64, lead + (n_in,), elements=finite))
    dy = draw(hnp.arrays(np.float64, lead + (n_out,), elements=finite))
    return n_in, n_out, draw(st.booleans()), x, dy, draw(st.integers(0, 2**16))


@given(linear_cases())
def test_linear_gradients_match_finite_differences(case):
    n_in, n_out, bias, x, dy, seed = case
    lin = npseq.Linear(n_in, n_out, bias=bias, seed=seed)
    x_in = x.copy()

    def loss():
        with npseq.no_grad():
            return float(np.sum(lin(x_in) * dy))

    lin(x_in)
    dx = lin.backward(dy)
    assert dx.shape == x.shape
    assert rel_error(dx, numerical_gradient(loss, x_in)) < 1e-7
    for k, p in lin.params.items():
        assert rel_error(lin.grads[k], numerical_gradient(loss, p)) < 1e-7, k
    np.testing.assert_array_equal(x_in, x)


def test_linear_forward_is_the_affine_map_and_init_is_torchs_range():
    lin = npseq.Linear(50, 40, seed=1)
    W, b = lin.params["weight"], lin.params["bias"]
    assert W.shape == (40, 50) and b.shape == (40,)
    bound = 1 / np.sqrt(50)
    assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(W).max() > 0.9 * bound  # uniform over the whole range, not a narrow one
    assert np.all(b != 0)
    x = np.random.default_rng(0).standard_normal((3, 50))
    np.testing.assert_allclose(lin(x), np.einsum("ni,oi->no", x, W) + b, rtol=1e-13)


def test_linear_grads_accumulate_and_backward_pairs_with_the_latest_forward():
    rng = np.random.default_rng(0)
    lin = npseq.Linear(3, 2, seed=0)
    x1, x2 = rng.standard_normal((4, 3)), rng.standard_normal((5, 3))
    d1, d2 = rng.standard_normal((4, 2)), rng.standard_normal((5, 2))
    lin(x2)
    dx2 = lin.backward(d2)
    lin(x1)
    dx1 = lin.backward(d1)
    assert dx2.shape == (5, 3) and dx1.shape == (4, 3)
    np.testing.assert_allclose(lin.grads["weight"], d1.T @ x1 + d2.T @ x2, rtol=1e-13)
    np.testing.assert_allclose(lin.grads["bias"], d1.sum(0) + d2.sum(0), rtol=1e-13)
    with pytest.raises(RuntimeError, match="no forward"):
        lin.backward(d1)


def test_linear_float32_and_no_grad():
    lin = npseq.Linear(3, 2, dtype=np.float32, seed=0)
    assert lin.params["weight"].dtype == np.float32
    with npseq.no_grad():
        y = lin(np.ones((2, 3)))
    assert y.dtype == np.float32
    with pytest.raises(RuntimeError):
        lin.backward(np.ones((2, 2)))


def test_linear_backward_none_pops_and_returns_none():
    lin = npseq.Linear(3, 2, seed=0)
    lin(np.ones((2, 3)))
    assert lin.backward(None) is None
    assert not lin.grads["weight"].any()
    with pytest.raises(RuntimeError):
        lin.backward(None)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(in_features=0, out_features=2), ValueError, "in_features"),
    (dict(in_features=2.0, out_features=2), TypeError, "in_features"),
    (dict(in_features=2, out_features=-1), ValueError, "out_features"),
    (dict(in_features=2, out_features=2, bias=1), TypeError, "bias"),
    (dict(in_features=2, out_features=2, dtype=np.int32), ValueError, "dtype"),
    (dict(in_features=2, out_features=2, seed="a"), TypeError, "seed"),
])
def test_linear_rejects_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        npseq.Linear(**kwargs)


def test_linear_rejects_bad_inputs():
    lin = npseq.Linear(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 3\).*got \(2, 4\)"):
        lin(np.ones((2, 4)))
    with pytest.raises(TypeError, match="x"):
        lin(np.array(["a", "b", "c"]))
    lin(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 2\)"):
        lin.backward(np.ones((2, 3)))


# -- Embedding ---------------------------------------------------------------------------

@st.composite
def embedding_cases(draw):
    """(num, dim, padding_idx, idx with repeats, dy)."""
    num = draw(st.integers(1, 6))
    dim = draw(st.integers(1, 3))
    padding_idx = draw(st.none() | st.integers(-num, num - 1))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=1, max_side=4))
    idx = draw(hnp.arrays(np.int64, shape, elements=st.integers(0, num - 1)))
    dy = draw(hnp.arrays(np.float64, shape + (dim,), elements=finite))
    return num, dim, padding_idx, idx, dy, draw(st.integers(0, 2**16))


@given(embedding_cases())
def test_embedding_gradient_matches_finite_differences(case):
    num, dim, padding_idx, idx, dy, seed = case
    emb = npseq.Embedding(num, dim, padding_idx=padding_idx, seed=seed)
    idx_in = idx.copy()
    y = emb(idx_in)
    assert y.shape == idx.shape + (dim,)
    assert emb.backward(dy) is None

    def loss():
        with npseq.no_grad():
            return float(np.sum(emb(idx_in) * dy))

    expected = numerical_gradient(loss, emb.params["weight"])
    if padding_idx is not None:  # the padding row gets no gradient, whatever it is used for
        expected[padding_idx % num] = 0
    assert rel_error(emb.grads["weight"], expected) < 1e-7
    np.testing.assert_array_equal(idx_in, idx)


def test_embedding_repeated_indices_sum_and_untouched_rows_stay_zero():
    emb = npseq.Embedding(5, 2, padding_idx=4, seed=0)
    assert not emb.params["weight"][4].any()
    dy = np.random.default_rng(0).standard_normal((4, 2))
    emb(np.array([1, 3, 1, 4]))
    emb.backward(dy)
    g = emb.grads["weight"]
    np.testing.assert_allclose(g[1], dy[0] + dy[2], rtol=1e-14)
    np.testing.assert_allclose(g[3], dy[1], rtol=1e-14)
    assert not g[[0, 2, 4]].any()


def test_embedding_init_is_standard_normal():
    w = npseq.Embedding(2000, 10, seed=0).params["weight"]
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1) < 0.02
    assert npseq.Embedding(3, 2, padding_idx=-1, seed=0).padding_idx == 2


def test_embedding_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_embeddings"):
        npseq.Embedding(0, 2)
    with pytest.raises(ValueError, match="padding_idx"):
        npseq.Embedding(3, 2, padding_idx=3)
    emb = npseq.Embedding(3, 2, seed=0)
    with pytest.raises(TypeError, match="idx: expected an array of integers, got dtype float"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(ValueError,
                       match=r"idx: expected values in 0\.\.2.*got values from 0 to 3"):
        emb(np.array([0, 3]))
    with pytest.raises(ValueError, match="idx"):
        emb(np.array([-1]))
    emb(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"dy: expected shape \(2, 2\)"):
        emb.backward(np.ones((2, 3)))


@pytest.mark.parametrize("make, x, dy_bad, dy_good", [
    (lambda: npseq.Linear(3, 2, seed=0), np.ones((4, 3)), np.ones((4, 3)), np.ones((4, 2))),
    (lambda: npseq.Embedding(5, 2, seed=0), np.array([[1, 4], [0, 1]]), np.ones((2, 2, 3)),
     np.arange(8.0).reshape(2, 2, 2)),
])
def test_backward_with_a_wrong_dy_keeps_the_forward_for_a_retry(make, x, dy_bad, dy_good):
    """A rejected dy leaves the forward record on the tape: the corrected call succeeds and
    gives the gradients of a first-time call."""
    module, fresh = make(), make()
    module(x)
    fresh(x)
    with pytest.raises(ValueError, match="dy: expected shape"):
        module.backward(dy_bad)
    with pytest.raises(TypeError, match="dy"):
        module.backward(np.array(["a"]))
    module.backward(dy_good)
    fresh.backward(dy_good)
    for k in module.grads:
        np.testing.assert_array_equal(module.grads[k], fresh.grads[k])
    assert fresh.grads["weight"].any()
    with pytest.raises(RuntimeError, match="no forward"):  # now it was paired
        module.backward(dy_good)
