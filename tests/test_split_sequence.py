"""The backward of a sequence cut in two, with the state gradient carried back across the cut.

Run ``x[:t0]`` from ``state0``, then ``x[t0:]`` from the state it ended in. The backward of
the second part, given its ``dout`` and the final state's gradient, returns the gradient of
its initial state; fed to the first part's backward as the gradient of *its* final state,
the two backwards must give the whole sequence's ``dx`` (the two halves joined), its
``dstate0`` and, summed, its parameter gradients. A state gradient dropped, doubled or taken
at the wrong step, at the cut or in a block around it, shows here. Unidirectional (a reverse
direction runs the other way and cannot be cut like this) and stacked: the carry of every
layer crosses the cut. Sizes past one block of the driver, cut anywhere.

Each part's backward directly follows its own forward, so this holds whether a layer keeps
one record or a stack of them.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from strategies import (KINDS, LayerConfig, examples, long_configs, randomise, seeded_case,
                        unpack_state)

RTOL = 1e-9  # the same sums, grouped differently: rounding only


def split(a, t0, axis):
    return np.split(a, [t0], axis=axis)


def whole_and_split(m, case, t0):
    """``(dx, dstate0, grads)`` of the whole sequence, and the same from the two parts."""
    cfg = case.config
    axis = 1 if cfg.batch_first else 0
    m.zero_grad()
    m(case.x, case.state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout, case.dstate)
    whole = (dx, unpack_state(dstate0), {k: g.copy() for k, g in m.grads.items()})

    x1, x2 = split(case.x, t0, axis)
    dout1, dout2 = split(case.dout, t0, axis)
    lengths2 = None if case.lengths is None else case.lengths - t0  # every length > t0
    m.zero_grad()
    with npseq.no_grad():
        _, state1 = m(x1, case.state)
    m(x2, state1, lengths=lengths2)
    dx2, dstate1 = m.backward(dout2, case.dstate)
    m(x1, case.state)
    dx1, dstate0 = m.backward(dout1, dstate1)  # the gradients add up in m.grads
    parts = (np.concatenate([dx1, dx2], axis=axis), unpack_state(dstate0), m.grads)
    return whole, parts


def assert_same(whole, parts, with_state):
    (dx, dstate0, grads), (dx_p, dstate0_p, grads_p) = whole, parts
    np.testing.assert_allclose(dx_p, dx, rtol=RTOL, atol=RTOL * np.max(np.abs(dx)))
    if with_state:
        for a, b in zip(dstate0_p, dstate0):
            np.testing.assert_allclose(a, b, rtol=RTOL, atol=RTOL * np.max(np.abs(b)))
    assert grads_p.keys() == grads.keys()
    for k in grads:
        np.testing.assert_allclose(grads_p[k], grads[k], rtol=RTOL,
                                   atol=RTOL * np.max(np.abs(grads[k])), err_msg=k)


@pytest.mark.parametrize("kind", KINDS)
def test_split_backward_equals_the_whole(kind):
    T, B = 300, 4  # 1200 rows; the cut at 170 is inside the second block of about 512 rows
    cfg = LayerConfig(kind, 2, 3, num_layers=2, seq_len=T, batch=B,
                      proj_size=2 if kind == "lstm" else 0)
    rng = np.random.default_rng(sum(map(ord, kind)))
    m = randomise(cfg.build(), rng)
    case = seeded_case(cfg, int(rng.integers(2 ** 31)), lengths=np.array([300, 171, 244, 290]))
    assert_same(*whole_and_split(m, case, 170), with_state=True)


@st.composite
def split_cases(draw):
    cfg = draw(long_configs(bidirectional=False, min_layers=2, max_layers=2))
    T, B = cfg.seq_len, cfg.batch
    t0 = draw(st.integers(1, T - 1))
    lengths = draw(st.none() | st.lists(st.integers(t0 + 1, T), min_size=B, max_size=B))
    case = seeded_case(cfg, draw(st.integers(0, 2 ** 31)), lengths=lengths,
                       with_state=draw(st.booleans()))
    return case, t0


@settings(max_examples=examples(8))
@given(case_t0=split_cases(), seed=st.integers(0, 2 ** 16))
def test_split_backward_equals_the_whole_for_drawn_layers(case_t0, seed):
    """Drawn: kind and variant, checkpoint_every, batch_first, sizes past one block, the cut,
    lengths (all past the cut) or none, initial state or none."""
    case, t0 = case_t0
    m = randomise(case.config.build(), np.random.default_rng(seed))
    assert_same(*whole_and_split(m, case, t0), with_state=case.state is not None)

