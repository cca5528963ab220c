"""Seq2Seq: gradients of the loss by central differences, masks, decoding, validation."""
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npseq
from npseq import losses, optim
from npseq.gradcheck import numerical_gradient
from npseq.seq2seq import Seq2Seq
from strategies import examples

PAD, BOS, EOS = 0, 1, 2
EPS = 1e-5  # central differences: round-off ~1e-11 * |loss|, truncation ~EPS**2


@dataclass
class Seq2SeqCase:
    model: Seq2Seq
    src: np.ndarray  # (S, B)
    src_lengths: np.ndarray  # (B,)
    tgt_in: np.ndarray  # (T, B)
    tgt_out: np.ndarray  # (T, B)
    tgt_mask: np.ndarray  # (T, B) bool


def build(cell, bidirectional, attention, src_vocab=5, tgt_vocab=6, E=2, H=3, seed=0):
    """A small model; with ``dot`` the keys (``D * He`` features) have the decoder's size H."""
    if attention == "dot" and bidirectional:
        H, He = 2, 1
    else:
        He = 2 if bidirectional and attention != "dot" else H
    return Seq2Seq(src_vocab, tgt_vocab, E, H, cell=cell, bidirectional=bidirectional,
                   encoder_hidden_size=He, attention=attention, attention_size=3,
                   pad_index=PAD, bos_index=BOS, eos_index=EOS, seed=seed)


@st.composite
def seq2seq_cases(draw):
    """Cell, direction, score; then sizes (S != T allowed), lengths (1 and full likely), data.

    Parameters are redrawn from U(-0.8, 0.8) with a drawn seed (hundreds of them: drawing
    each element with Hypothesis would be slow), so every bias is non-zero and every
    gate and tanh works away from both its linear and its saturated range.
    """
    cell = draw(st.sampled_from(("lstm", "gru")))
    bidirectional = draw(st.booleans())
    attention = draw(st.sampled_from(("general", "additive", "dot")))
    S, T, B = draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    model = build(cell, bidirectional, attention, seed=seed)
    for p in model.params.values():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    src_lengths = np.array(draw(st.lists(st.sampled_from(sorted({1, S})) | st.integers(1, S),
                                         min_size=B, max_size=B)))
    tgt_lengths = np.array(draw(st.lists(st.sampled_from(sorted({1, T})) | st.integers(1, T),
                                         min_size=B, max_size=B)))
    src = rng.integers(0, model.src_vocab_size, (S, B))
    tgt_out = rng.integers(0, model.tgt_vocab_size, (T, B))
    tgt_in = np.concatenate([np.full((1, B), BOS), tgt_out[:-1]])
    tgt_mask = np.arange(T)[:, None] < tgt_lengths[None, :]
    return Seq2SeqCase(model, src, src_lengths, tgt_in, tgt_out, tgt_mask)


def loss_fn(case):
    def f():
        with npseq.no_grad():
            logits = case.model(case.src, case.src_lengths, case.tgt_in)
        return losses.cross_entropy(logits, case.tgt_out, mask=case.tgt_mask,
                                    reduction="sum")[0]
    return f


def close(analytic, numeric, rtol=1e-7, floor=1e-2):
    """``max |a - n| <= rtol * max(max |a|, max |n|, floor)``.

    The floor is the round-off of central differences: about ``|loss| * 1e-16 / eps``, up to
    1e-10 for a summed cross-entropy of 10 with ``eps = 1e-5`` (:data:`EPS`), so an array of
    gradients of 1e-4 (the bridge's, when few steps follow it) is compared to 1e-9, not to
    1e-11.
    """
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), floor)
    return np.max(np.abs(analytic - numeric)) <= rtol * scale


@settings(max_examples=examples(16))
@given(seq2seq_cases())
def test_loss_gradient_of_every_parameter_matches_central_differences(case):
    model = case.model
    model.zero_grad()
    logits = model(case.src, case.src_lengths, case.tgt_in)
    _, dlogits = losses.cross_entropy(logits, case.tgt_out, mask=case.tgt_mask,
                                      reduction="sum")
    model.backward(dlogits)
    f = loss_fn(case)
    for k, p in model.params.items():
        if k.endswith("embedding.weight"):
            continue  # below: only the rows looked up
        assert close(model.grads[k], numerical_gradient(f, p, eps=EPS)), k
    for name, tokens in (("src_embedding", case.src), ("tgt_embedding", case.tgt_in)):
        rows = np.unique(tokens)
        table = model.params[f"{name}.weight"]
        sub = table[rows].copy()

        def g():
            table[rows] = sub
            return f()
        numeric = numerical_gradient(g, sub, eps=EPS)
        table[rows] = sub
        assert close(model.grads[f"{name}.weight"][rows], numeric), name
        unused = np.setdiff1d(np.arange(len(table)), rows)
        assert np.all(model.grads[f"{name}.weight"][unused] == 0), name


@settings(max_examples=examples(20))
@given(seq2seq_cases(), st.integers(0, 2**32 - 1))
def test_padding_past_the_lengths_changes_nothing(case, seed):
    """Other tokens in the padding of sources and targets: the same valid logits, gradients."""
    model = case.model
    rng = np.random.default_rng(seed)
    S, T = case.src.shape[0], case.tgt_in.shape[0]
    src_pad = np.arange(S)[:, None] >= case.src_lengths[None, :]
    src2 = np.where(src_pad, rng.integers(0, model.src_vocab_size, case.src.shape), case.src)
    # tgt_in[t] only feeds steps >= t, all masked when t >= length
    tgt_in2 = np.where(case.tgt_mask, case.tgt_in,
                       rng.integers(0, model.tgt_vocab_size, case.tgt_in.shape))
    results = []
    for src, tgt_in in ((case.src, case.tgt_in), (src2, tgt_in2)):
        model.zero_grad()
        logits = model(src, case.src_lengths, tgt_in)
        _, dlogits = losses.cross_entropy(logits, case.tgt_out, mask=case.tgt_mask)
        model.backward(dlogits)
        results.append((logits[case.tgt_mask], {k: g.copy() for k, g in model.grads.items()}))
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-12, atol=1e-14)
    for k in results[0][1]:
        if k.endswith("embedding.weight"):
            continue  # padding rows looked up in one run only; their gradient is 0 in both
        np.testing.assert_allclose(results[0][1][k], results[1][1][k], rtol=1e-10,
                                   atol=1e-13, err_msg=k)


def test_params_are_the_sub_modules_arrays_and_an_optimizer_trains_them():
    model = build("lstm", True, "general", seed=1)
    assert "encoder.weight_ih_l0_reverse" in model.params
    assert {"decoder.weight_ih", "attention.weight", "combine.weight", "out.bias",
            "bridge.weight", "src_embedding.weight", "tgt_embedding.weight"} <= set(model.params)
    assert model.params["decoder.weight_ih"] is model.decoder.params["weight_ih"]
    assert model.grads["attention.weight"] is model.attention.grads["weight"]
    assert model.decoder.params["weight_ih"].shape == (4 * 3, 2 + 3)  # [E, H] input feeding
    rng = np.random.default_rng(0)
    src, tgt = rng.integers(0, 5, (4, 3)), rng.integers(3, 6, (3, 3))
    tgt_in = np.concatenate([np.full((1, 3), BOS), tgt[:-1]])
    opt = optim.Adam(model.params, model.grads, lr=0.05)
    first = None
    for _ in range(200):
        opt.zero_grad()
        loss, dlogits = losses.cross_entropy(model(src, None, tgt_in), tgt)
        model.backward(dlogits)
        opt.step()
        first = loss if first is None else first
    assert loss < 0.1 * first
    out = model.greedy_decode(src, max_length=3)
    np.testing.assert_array_equal(out.tokens, tgt.T)  # learned by heart


def teacher_forced_log_prob(model, src, src_lengths, tokens, lengths):
    """Sum of log p of each row's tokens, by the training forward (not the decoding code)."""
    B = tokens.shape[0]
    tgt_out = tokens.T  # (L, B)
    tgt_in = np.concatenate([np.full((1, B), BOS), tgt_out[:-1]])
    with npseq.no_grad():
        logp = losses.log_softmax(model(src, src_lengths, tgt_in))  # (L, B, V)
    picked = np.take_along_axis(logp, tgt_out[:, :, None], axis=2)[:, :, 0]
    valid = np.arange(tokens.shape[1])[:, None] < lengths[None, :]
    return np.sum(np.where(valid, picked, 0.0), axis=0)


@st.composite
def decoding_cases(draw):
    cell = draw(st.sampled_from(("lstm", "gru")))
    attention = draw(st.sampled_from(("general", "additive")))
    S, B = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    model = Seq2Seq(6, 5, 3, 4, cell=cell, attention=attention, seed=seed)
    scale = draw(st.sampled_from((0.5, 1.5)))  # flat or peaked output distributions
    for p in model.params.values():
        p[...] = rng.uniform(-scale, scale, p.shape)
    src = rng.integers(0, 6, (S, B))
    src_lengths = rng.integers(1, S + 1, B)
    return model, src, src_lengths


@settings(max_examples=examples(30))
@given(decoding_cases(), st.integers(1, 6))
def test_greedy_picks_the_argmax_and_reports_its_log_prob(case, max_length):
    model, src, src_lengths = case
    out = model.greedy_decode(src, src_lengths, max_length=max_length)
    B = src.shape[1]
    assert out.tokens.shape == (B, out.lengths.max()) and out.lengths.max() <= max_length
    tgt_out = out.tokens.T
    tgt_in = np.concatenate([np.full((1, B), BOS), tgt_out[:-1]])
    with npseq.no_grad():
        logits = model(src, src_lengths, tgt_in)
    for b in range(B):
        L = out.lengths[b]
        np.testing.assert_array_equal(out.tokens[b, :L], np.argmax(logits[:L, b], axis=1))
        assert np.all(out.tokens[b, :L - 1] != EOS)  # stops at the first end token
        assert out.tokens[b, L - 1] == EOS or L == max_length
        assert np.all(out.tokens[b, L:] == model.pad_index)
    np.testing.assert_allclose(
        out.log_prob, teacher_forced_log_prob(model, src, src_lengths, out.tokens, out.lengths),
        rtol=1e-12, atol=1e-12)
    valid = np.arange(out.tokens.shape[1])[None, :] < out.lengths[:, None]
    np.testing.assert_allclose(out.attention.sum(axis=2)[valid], 1, rtol=1e-12)
    pad = np.arange(src.shape[0])[None, None, :] >= src_lengths[:, None, None]
    assert np.all(np.broadcast_to(pad, out.attention.shape) <= (out.attention == 0))


@settings(max_examples=examples(30))
@given(decoding_cases(), st.integers(1, 6))
def test_beam_of_one_is_greedy(case, max_length):
    model, src, src_lengths = case
    greedy = model.greedy_decode(src, src_lengths, max_length=max_length)
    beam = model.beam_search(src, src_lengths, beam_size=1, max_length=max_length,
                             greedy_fallback=False)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_allclose(beam.log_prob, greedy.log_prob, rtol=1e-12)
    np.testing.assert_allclose(beam.attention, greedy.attention, rtol=1e-12, atol=1e-15)


@settings(max_examples=examples(30))
@given(decoding_cases(), st.integers(2, 4), st.integers(1, 6))
def test_beam_never_scores_below_greedy(case, beam_size, max_length):
    model, src, src_lengths = case
    greedy = model.greedy_decode(src, src_lengths, max_length=max_length)
    greedy_score = teacher_forced_log_prob(model, src, src_lengths, greedy.tokens,
                                           greedy.lengths)
    beam = model.beam_search(src, src_lengths, beam_size=beam_size, max_length=max_length)
    beam_score = teacher_forced_log_prob(model, src, src_lengths, beam.tokens, beam.lengths)
    np.testing.assert_allclose(beam.log_prob, beam_score, rtol=1e-12, atol=1e-12)
    assert np.all(beam_score >= greedy_score - 1e-12)
    for b in range(src.shape[1]):
        L = beam.lengths[b]
        assert np.all(beam.tokens[b, :L - 1] != EOS)
        assert beam.tokens[b, L - 1] == EOS or L == max_length


@settings(max_examples=examples(12))
@given(decoding_cases(), st.sampled_from((0.0, 0.7)))
def test_a_wide_beam_finds_the_best_of_all_sequences(case, alpha):
    """A beam as wide as the number of prefixes keeps them all: exhaustive search."""
    model, src, src_lengths = case
    V, max_length = model.tgt_vocab_size, 3
    others = [t for t in range(V) if t != EOS]
    seqs = [list(p) + [EOS] for n in range(max_length) for p in
            itertools.product(others, repeat=n)]
    seqs += [list(p) for p in itertools.product(others, repeat=max_length)]
    B = src.shape[1]
    scores = []
    for seq in seqs:
        tokens = np.tile(np.array(seq + [PAD] * (max_length - len(seq))), (B, 1))
        lengths = np.full(B, len(seq))
        lp = teacher_forced_log_prob(model, src, src_lengths, tokens, lengths)
        scores.append(lp / ((5 + len(seq)) / 6) ** alpha)
    best = np.max(scores, axis=0)  # (B,)
    beam = model.beam_search(src, src_lengths, beam_size=len(others) ** max_length,
                             max_length=max_length, alpha=alpha, greedy_fallback=False)
    np.testing.assert_allclose(beam.score, best, rtol=1e-12)
    np.testing.assert_allclose(beam.score, beam.log_prob / ((5 + beam.lengths) / 6) ** alpha,
                               rtol=1e-14)


def test_decoding_keeps_no_records():
    model = build("gru", True, "additive", seed=0)
    src = np.array([[1, 2], [3, 4]])
    model.greedy_decode(src, max_length=3)
    model.beam_search(src, beam_size=2, max_length=3)
    for name, m in model.named_modules():
        with pytest.raises(RuntimeError, match="no forward"):
            m.backward(None) if name != "attention" else m.backward(np.ones((2, 2)))


@pytest.mark.parametrize("kwargs, match", [
    (dict(cell="rnn"), "cell"),
    (dict(attention="concat"), "attention"),
    (dict(attention="dot", bidirectional=True), "attention"),
    (dict(eos_index=1), "eos_index"),
    (dict(bos_index=9), "bos_index"),
    (dict(hidden_size=0), "hidden_size"),
    (dict(bidirectional=1), "bidirectional"),
])
def test_constructor_errors_name_the_argument(kwargs, match):
    args = dict(src_vocab_size=5, tgt_vocab_size=6, embedding_dim=2, hidden_size=3)
    args.update(kwargs)
    with pytest.raises((TypeError, ValueError), match=match):
        Seq2Seq(**args)


@pytest.mark.parametrize("call, match", [
    (lambda m: m(np.ones((3, 2)), None, np.ones((2, 2), int)), "src"),
    (lambda m: m(np.full((3, 2), 7), None, np.ones((2, 2), int)), "src"),
    (lambda m: m(np.ones(3, int), None, np.ones((2, 2), int)), "src"),
    (lambda m: m(np.ones((3, 2), int), [4, 1], np.ones((2, 2), int)), "src_lengths"),
    (lambda m: m(np.ones((3, 2), int), [1, 1, 1], np.ones((2, 2), int)), "src_lengths"),
    (lambda m: m(np.ones((3, 2), int), None, np.ones((2, 3), int)), "tgt_in"),
    (lambda m: m(np.ones((3, 2), int), None, np.full((2, 2), 6)), "tgt_in"),
    (lambda m: m.greedy_decode(np.ones((3, 2), int), max_length=0), "max_length"),
    (lambda m: m.beam_search(np.ones((3, 2), int), beam_size=0), "beam_size"),
    (lambda m: m.beam_search(np.ones((3, 2), int), alpha=-1.0), "alpha"),
    (lambda m: m.beam_search(np.ones((3, 2), int), alpha="0"), "alpha"),
    (lambda m: m.beam_search(np.ones((3, 2), int), greedy_fallback=None), "greedy_fallback"),
])
def test_call_errors_name_the_argument(call, match):
    model = build("lstm", True, "general")
    with pytest.raises((TypeError, ValueError), match=match):
        call(model)


def test_backward_checks_dlogits_and_keeps_the_record():
    model = build("lstm", False, "general")
    logits = model(np.ones((3, 2), int), None, np.ones((2, 2), int))
    with pytest.raises(ValueError, match="dlogits"):
        model.backward(np.ones((2, 2, 5)))
    model.backward(np.ones_like(logits))  # the record is still there
    with pytest.raises(RuntimeError, match="no forward"):
        model.backward(np.ones_like(logits))


def test_without_the_fallback_a_beam_can_end_below_greedy():
    """Why ``greedy_fallback`` exists: a found case where beam search (2) prunes the greedy
    prefix and all its survivors fall below it (on random models about 3% of sources)."""
    rng = np.random.default_rng(5)
    model = Seq2Seq(6, 5, 3, 4, seed=5)
    for p in model.params.values():
        p[...] = rng.uniform(-1.5, 1.5, p.shape)
    src, src_lengths = rng.integers(0, 6, (4, 8)), rng.integers(1, 5, 8)
    greedy = model.greedy_decode(src, src_lengths, max_length=6)
    raw = model.beam_search(src, src_lengths, beam_size=2, max_length=6,
                            greedy_fallback=False)
    below = raw.log_prob < greedy.log_prob - 1e-9
    assert below.any()
    safe = model.beam_search(src, src_lengths, beam_size=2, max_length=6)
    np.testing.assert_array_equal(safe.log_prob[below], greedy.log_prob[below])
    np.testing.assert_array_equal(safe.tokens[below, :greedy.tokens.shape[1]],
                                  greedy.tokens[below, :safe.tokens.shape[1]])
    np.testing.assert_array_equal(safe.log_prob[~below], raw.log_prob[~below])


def test_arguments_are_left_alone_and_state_dicts_round_trip():
    rng = np.random.default_rng(0)
    model = build("gru", True, "additive", seed=3)
    src, lengths = rng.integers(0, 5, (4, 3)), np.array([4, 1, 2])
    tgt_in = rng.integers(0, 6, (2, 3))
    copies = [a.copy() for a in (src, lengths, tgt_in)]
    logits = model(src, lengths, tgt_in)
    dlogits = rng.standard_normal(logits.shape)
    dcopy = dlogits.copy()
    model.backward(dlogits)
    model.beam_search(src, lengths, beam_size=2, max_length=3)
    for a, b in zip((src, lengths, tgt_in, dlogits), copies + [dcopy]):
        np.testing.assert_array_equal(a, b)
    other = build("gru", True, "additive", seed=4)
    other.load_state_dict(model.state_dict())
    with npseq.no_grad():
        np.testing.assert_array_equal(other(src, lengths, tgt_in), logits)


@pytest.mark.parametrize("cell, attention", [("lstm", "general"), ("gru", "additive"),
                                             ("lstm", "dot")])
def test_save_and_load_rebuild_the_same_model(tmp_path, cell, attention):
    rng = np.random.default_rng(1)
    kwargs = dict(cell=cell, attention=attention, bidirectional=attention != "dot",
                  attention_size=3 if attention == "additive" else None, pad_index=1,
                  bos_index=2, eos_index=0, seed=7)
    model = Seq2Seq(6, 5, 3, 4, **kwargs)
    for p in model.params.values():  # not the constructor's draws: the file's weights count
        p[...] = rng.uniform(-1, 1, p.shape)
    path = tmp_path / "s2s.npz"
    npseq.save(path, model)
    same = npseq.load(path)
    assert isinstance(same, Seq2Seq) and repr(same) == repr(model)
    for name in ("cell", "bidirectional", "attention_kind", "attention_size", "pad_index",
                 "bos_index", "eos_index"):
        assert getattr(same, name) == getattr(model, name), name
    src, lengths = rng.integers(0, 6, (4, 3)), np.array([4, 2, 3])
    tgt_in = rng.integers(0, 5, (3, 3))
    with npseq.no_grad():
        np.testing.assert_array_equal(same(src, lengths, tgt_in), model(src, lengths, tgt_in))
    a = same.greedy_decode(src, lengths, max_length=4)
    b = model.greedy_decode(src, lengths, max_length=4)
    np.testing.assert_array_equal(a.tokens, b.tokens)
