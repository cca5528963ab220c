"""Sequences past one block of the BPTT driver, against independent references.

The driver forms the input projection, ``dx`` and the weight gradients one block of about 512
rows of ``(T*B, .)`` at a time. Every other test of the layers has ``T*B`` within one block,
so a gradient summed over only some blocks, or a reverse direction that visits its blocks in
forward order, passes them. Here ``T*B`` is 1100 to 1500 rows (with small H and D to stay
fast), in both directions, with unequal unsorted lengths and an initial state, and the
gradients are checked against central differences of the layer's own forward, contracted
with random upstream gradients of ``out`` and of the final state:

* fixed cases for LSTM (with and without projection), GRU, RNN tanh and relu: every tensor
  (x, h0 [and c0], every parameter) by a few random entries and one random direction;
* a Hypothesis property over the cell variants (layer_norm, peephole, reset_after,
  activations), ``checkpoint_every`` and 1-2 layers: every tensor along a random direction,
  and the float32 layer against the float64 one within a tolerance derived from the sizes;
* float32 variants at sizes that take the fast float32 sigmoid (gate blocks of at least
  1024 elements, see ``npseq/activations.py``), parameter gradients against float64.

PyTorch parity at these sizes is in ``test_multiblock_torch.py``.
"""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from strategies import (LayerConfig, examples, lengths_for, long_configs, num_states,
                        pack_state, randomise, seeded_case, unpack_state)

FD_EPS = 1e-5  # step of the entry-wise central differences
FD_TOL = 1e-6  # their error: ~eps**2 (truncation) + 1e-16 * sum|L terms| / eps (rounding)
ENTRIES = 3  # random entries checked per tensor, besides one random direction
F32 = np.finfo(np.float32).eps  # 2**-23: the rounding of one float32 operation is u = F32/2


def loss_terms(m, case, x, state):
    """``[out * dout, h_n * dh_n (, c_n * dc_n)]``: the terms of the contracted loss."""
    out, state_n = m(x, state, lengths=case.lengths)
    return [o * u for o, u in zip([out, *unpack_state(state_n)],
                                  [case.dout, *unpack_state(case.dstate)])]


def analytic_gradients(m, case, x, state):
    """Gradients of ``L = <out, dout> + <state_n, dstate>`` from one forward and backward."""
    m.zero_grad()
    m(x, state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout, case.dstate)
    grads = {"x": dx, **{k: g.copy() for k, g in m.grads.items()}}
    if state is not None:
        grads.update({f"state[{i}]": d for i, d in enumerate(unpack_state(dstate0))})
    return grads


def sampled_gradient_errors(m, case, rng, entries=ENTRIES, eps=FD_EPS):
    """Relative errors of every gradient of ``m`` against central differences of L.

    For each tensor (x, each initial state, each parameter): ``entries`` random entries,
    ``|analytic - numeric| / max |analytic|`` over the tensor, and one random direction v,
    ``|<analytic, v> - dL/dv| / (|analytic| |v|)``. The worst of them per tensor.

    A random direction sees a wrong gradient anywhere in the tensor (except for directions
    of measure zero), diluted by about sqrt(size); the entries see it undiluted.
    """
    x = np.array(case.x, dtype=np.float64)
    states = [] if case.state is None else [np.array(s) for s in unpack_state(case.state)]
    state = pack_state(case.config.kind, states) if states else None

    def loss():
        with npseq.no_grad():
            return float(sum(np.sum(t) for t in loss_terms(m, case, x, state)))

    def along(arr, delta):  # dL/d(delta) at arr, by central differences of step eps
        saved = arr.copy()
        arr += eps * delta
        plus = loss()
        arr[...] = saved
        arr -= eps * delta
        minus = loss()
        arr[...] = saved
        return (plus - minus) / (2 * eps)

    analytic = analytic_gradients(m, case, x, state)
    tensors = {"x": x, **{f"state[{i}]": s for i, s in enumerate(states)}, **m.params}
    errors = {}
    for name, arr in tensors.items():
        a = analytic[name]
        # a gradient that is exactly zero (no path to L: W_hh when every sequence is one
        # step from a zero state) is checked absolutely: its differences must vanish
        scale = np.max(np.abs(a)) or 1.0
        worst = 0.0
        for j in rng.choice(arr.size, min(entries, arr.size), replace=False):
            e_j = np.zeros(arr.shape)
            e_j.reshape(-1)[j] = 1.0
            worst = max(worst, abs(a.reshape(-1)[j] - along(arr, e_j)) / scale)
        v = rng.standard_normal(arr.shape)
        worst = max(worst, abs(np.sum(a * v) - along(arr, v))
                    / ((np.linalg.norm(a) or 1.0) * np.linalg.norm(v)))
        errors[name] = worst
    return errors


def assert_every_tensor_checked(errors, m, case):
    n = 0 if case.state is None else num_states(case.config.kind)
    assert set(errors) == {"x", *(f"state[{i}]" for i in range(n)), *m.params}


# -- fixed cases: every kind the layers have, in both directions ------------------------------
T, B, D, H = 270, 5, 2, 3  # 1350 rows: two full blocks of about 512 and a part of one
LENGTHS = np.array([270, 97, 1, 203, 150])  # unequal, unsorted, one of length 1
CASES = {
    "lstm": LayerConfig("lstm", D, H, bidirectional=True, seq_len=T, batch=B),
    "lstm_proj": LayerConfig("lstm", D, H, bidirectional=True, proj_size=2, seq_len=T,
                             batch=B, batch_first=True),
    "gru": LayerConfig("gru", D, H, bidirectional=True, seq_len=T, batch=B),
    "rnn_tanh": LayerConfig("rnn_tanh", D, H, bidirectional=True, seq_len=T, batch=B),
    "rnn_relu": LayerConfig("rnn_relu", D, H, bidirectional=True, seq_len=T, batch=B,
                            batch_first=True),
}


def elman_relu_preactivations(m, case):
    """Every ``a = W_ih x + b_ih + W_hh h_prev + b_hh`` of a one-layer relu RNN at the real
    steps, both directions, written here from the equations (no npseq code)."""
    x = case.x.transpose(1, 0, 2) if case.config.batch_first else case.x  # (T, B, D)
    found = []
    for b, n in enumerate(case.lengths):
        for direction, sfx in enumerate(("_l0", "_l0_reverse")):
            p = {k: m.params[k + sfx] for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
            h = case.state[direction, b]
            for t in (range(n - 1, -1, -1) if direction else range(n)):
                a = p["weight_ih"] @ x[t, b] + p["bias_ih"] + p["weight_hh"] @ h + p["bias_hh"]
                h = np.maximum(a, 0)
                found.append(a)
    return np.array(found)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_gradient_past_one_block_matches_central_differences(name):
    cfg = CASES[name]
    # relu: a seed whose 4326 pre-activations all keep 50 steps eps from the kink
    rng = np.random.default_rng(sum(map(ord, name)) + (13 if name == "rnn_relu" else 0))
    m = randomise(cfg.build(), rng)
    case = seeded_case(cfg, int(rng.integers(2 ** 31)), lengths=LENGTHS)
    if cfg.kind == "rnn_relu":  # a perturbation moves them by a few eps: none crosses it
        assert np.min(np.abs(elman_relu_preactivations(m, case))) > 50 * FD_EPS
    errors = sampled_gradient_errors(m, case, rng)
    assert_every_tensor_checked(errors, m, case)
    assert max(errors.values()) < FD_TOL, errors


# -- a property over the variants, checkpointing and float32 ------------------------------------
def float32_tolerance(cfg):
    """How far a float32 result may be from float64, relative to the tensor's largest entry.

    Every float32 operation rounds with a relative error of at most u = 2**-24. These errors
    behave as independent, zero-mean random variables (Higham and Mary, "A new approach to
    probabilistic rounding error analysis", 2019): after n operations they add up to at most
    lam * sqrt(n) * u, except with probability about exp(-lam**2 / 2). Here a value at step t
    of the top layer has been through L * t steps, each a dot product of K = (inputs + H_out
    + H) terms and some 20 elementwise operations (gates, layer norm, the carry update), and
    a weight gradient is a sum over the N = T*B rows:

        n = L * T * (K + 20) + N,    tolerance = lam * sqrt(n) * u,  lam = 10

    (the worst of 250 random draws of ``long_configs`` came to 1 * sqrt(n) * u).
    """
    K = (cfg.num_directions * cfg.output_size + cfg.input_size) + cfg.output_size + \
        cfg.hidden_size
    n = cfg.num_layers * cfg.seq_len * (K + 20) + cfg.seq_len * cfg.batch
    return 10 * np.sqrt(n) * F32 / 2


@st.composite
def long_cases(draw, **kw):
    cfg = draw(long_configs(**kw))
    lengths = draw(st.none() | lengths_for(cfg.seq_len, cfg.batch))
    return seeded_case(cfg, draw(st.integers(0, 2 ** 31)), lengths=lengths,
                       with_state=draw(st.booleans()))


def directional_errors(m, case, rng, eps=1e-6):
    """``|<analytic, v> - dL/dv| / (|analytic| |v|)`` for one random direction per tensor."""
    return sampled_gradient_errors(m, case, rng, entries=0, eps=eps)


def results(m, case):
    """out, the final state, dx, the initial state's gradient and every parameter gradient."""
    m.zero_grad()
    out, state_n = m(case.x.astype(m.dtype), case.state, lengths=case.lengths)
    dx, dstate0 = m.backward(case.dout.astype(m.dtype), case.dstate)
    found = {"out": out, "dx": dx, **{k: g.copy() for k, g in m.grads.items()}}
    found.update({f"state_n[{i}]": s for i, s in enumerate(unpack_state(state_n))})
    if case.state is not None:
        found.update({f"dstate0[{i}]": d for i, d in enumerate(unpack_state(dstate0))})
    return found


@settings(max_examples=examples(8))
@given(case=long_cases(kinds=("rnn_tanh", "lstm", "gru")), seed=st.integers(0, 2 ** 16))
def test_variants_past_one_block_match_central_differences_and_float32(case, seed):
    """Drawn: kind, variant, 1-2 layers, directions, batch_first, checkpoint_every, lengths
    or none, initial state or none. The float64 gradients (checkpointed if drawn) against
    central differences; the float32 layer with the same parameters against float64."""
    cfg = case.config
    rng = np.random.default_rng(seed)
    m64 = randomise(cfg.build(), rng)
    errors = directional_errors(m64, case, rng)
    assert_every_tensor_checked(errors, m64, case)
    assert max(errors.values()) < FD_TOL, errors

    m32 = cfg.build(np.float32)
    m32.load_state_dict(m64.params)
    want, got = results(m64, case), results(m32, case)
    assert got.keys() == want.keys()
    tol = float32_tolerance(cfg)
    for k in want:
        assert got[k].dtype == np.float32, k
        scale = np.max(np.abs(want[k]))
        assert np.max(np.abs(got[k] - want[k])) <= tol * scale, (k, tol)


# -- float32 at sizes that take the fast sigmoid ------------------------------------------------
# npseq/activations.py: a float32 sigmoid over an array of 1024 elements or more uses
# 0.5 * tanh(0.5 a) + 0.5. The gates are (B, H) blocks: B * H = 64 * 32 = 2048 elements.
FAST = dict(seq_len=12, batch=64, input_size=5, hidden_size=32)
FLOAT32_VARIANTS = {
    "lstm": ("lstm", {}), "lstm_proj": ("lstm", {}),
    "lstm_layer_norm": ("lstm", {"layer_norm": True}),
    "lstm_peephole": ("lstm", {"peephole": True}),
    "gru": ("gru", {}), "gru_reset_before": ("gru", {"reset_after": False}),
    "gru_hard_sigmoid": ("gru", {"recurrent_activation": "hard_sigmoid"}),
}


@pytest.mark.parametrize("name", sorted(FLOAT32_VARIANTS))
def test_float32_variants_with_fast_sigmoid_match_float64(name):
    kind, options = FLOAT32_VARIANTS[name]
    cfg = LayerConfig(kind, bidirectional=True, options=options,
                      proj_size=8 if name == "lstm_proj" else 0, **FAST)
    rng = np.random.default_rng(sum(map(ord, name)))
    m64 = randomise(cfg.build(), rng)
    m32 = cfg.build(np.float32)
    m32.load_state_dict(m64.params)
    case = seeded_case(cfg, int(rng.integers(2 ** 31)),
                       lengths=rng.integers(1, cfg.seq_len + 1, cfg.batch))
    want, got = results(m64, case), results(m32, case)
    assert got.keys() == want.keys() and set(m64.params) < set(got)
    tol = float32_tolerance(cfg)
    for k in want:
        assert got[k].dtype == np.float32, k
        scale = np.max(np.abs(want[k]))
        assert scale > 0 and np.max(np.abs(got[k] - want[k])) <= tol * scale, (k, tol)
