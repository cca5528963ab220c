"""Attention and Seq2Seq against PyTorch compositions written here from the equations.

float64; torch's autograd is the oracle for every gradient. The torch side is built from
``torch.nn`` pieces and tensor operations only (no npseq code), with npseq's parameters
copied in by name.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from npseq import losses  # noqa: E402
from npseq.seq2seq import Seq2Seq  # noqa: E402
from strategies import examples  # noqa: E402
from test_attention import attention_cases  # noqa: E402

pytestmark = pytest.mark.torch


def t(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def torch_attention(kind, p, q, K, V, mask):
    """context, weights by the equations: scores, masked_fill(-inf), softmax, weighted sum."""
    if kind == "additive":
        a = (q @ p["weight_q"].T)[:, None, :] + K @ p["weight_k"].T
        if "bias" in p:
            a = a + p["bias"]
        e = torch.tanh(a) @ p["v"]
    elif kind == "general":
        e = torch.einsum("bq,qk,bsk->bs", q, p["weight"], K)
    else:
        e = torch.einsum("bk,bsk->bs", q, K)
    w = torch.softmax(e.masked_fill(~mask, float("-inf")), dim=1)
    return torch.einsum("bs,bsv->bv", w, V), w


@settings(max_examples=examples(40))
@given(attention_cases())
def test_attention_matches_torch(case):
    att = case.att
    c, w = att(case.q, case.K, case.V, lengths=case.lengths)
    dq, dK, dV = att.backward(case.dc, case.dw)
    tp = {k: t(v, True) for k, v in att.params.items()}
    tq, tK, tV = t(case.q, True), t(case.K, True), t(case.V, True)
    tc, tw = torch_attention(case.kind, tp, tq, tK, tV, torch.tensor(case.mask))
    np.testing.assert_allclose(c, tc.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(w == 0, tw.detach().numpy() == 0)
    np.testing.assert_allclose(w, tw.detach().numpy(), rtol=1e-12, atol=1e-15)
    loss = (tc * t(case.dc)).sum() + (0 if case.dw is None else (tw * t(case.dw)).sum())
    loss.backward()
    for name, ours, theirs in [("query", dq, tq), ("keys", dK, tK), ("values", dV, tV)] + [
            (k, att.grads[k], tp[k]) for k in att.params]:
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-10, atol=1e-13,
                                   err_msg=name)


class TorchSeq2Seq(torch.nn.Module):
    """The encoder-decoder of npseq.seq2seq, from its docstring's equations, in torch."""

    def __init__(self, m: Seq2Seq):
        super().__init__()
        self.cell, self.kind = m.cell, m.attention_kind
        E, H, He, V = m.embedding_dim, m.hidden_size, m.encoder_hidden_size, m.tgt_vocab_size
        layer = torch.nn.LSTM if m.cell == "lstm" else torch.nn.GRU
        cell = torch.nn.LSTMCell if m.cell == "lstm" else torch.nn.GRUCell
        self.src_embedding = torch.nn.Embedding(m.src_vocab_size, E)
        self.encoder = layer(E, He, bidirectional=m.bidirectional)
        self.bridge = torch.nn.Linear(m.key_size, H)
        self.tgt_embedding = torch.nn.Embedding(V, E)
        self.decoder = cell(E + H, H)
        self.attention = torch.nn.ParameterDict(
            {k: torch.nn.Parameter(torch.zeros(v.shape)) for k, v in m.attention.params.items()})
        self.combine = torch.nn.Linear(m.key_size + H, H)
        self.out = torch.nn.Linear(H, V)
        self.double()
        with torch.no_grad():
            for k, v in self.named_parameters():
                v.copy_(torch.tensor(m.params[k]))

    def forward(self, src, src_lengths, tgt_in):
        S, B = src.shape
        x = self.src_embedding(src)
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, src_lengths, enforce_sorted=False)
        out, state = self.encoder(packed)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=S)
        h_n = state[0] if self.cell == "lstm" else state  # (D, B, He)
        s0 = torch.tanh(self.bridge(h_n.transpose(0, 1).reshape(B, -1)))
        state = (s0, torch.zeros_like(s0)) if self.cell == "lstm" else s0
        K = out.transpose(0, 1)  # (B, S, Dk)
        mask = torch.arange(S)[None, :] < src_lengths[:, None]
        h_tilde = torch.zeros_like(s0)
        logits = []
        for y_t in self.tgt_embedding(tgt_in):
            state = self.decoder(torch.cat([y_t, h_tilde], 1), state)
            h = state[0] if self.cell == "lstm" else state
            c, _ = torch_attention(self.kind, dict(self.attention), h, K, K, mask)
            h_tilde = torch.tanh(self.combine(torch.cat([c, h], 1)))
            logits.append(self.out(h_tilde))
        return torch.stack(logits)


@settings(max_examples=examples(16))
@given(st.sampled_from(("lstm", "gru")), st.booleans(),
       st.sampled_from(("general", "additive", "dot")), st.integers(1, 5), st.integers(1, 4),
       st.integers(1, 3), st.integers(0, 2**32 - 1))
def test_seq2seq_logits_and_loss_gradients_match_torch(cell, bidirectional, attention, S, T, B,
                                                       seed):
    rng = np.random.default_rng(seed)
    H = 4
    model = Seq2Seq(5, 6, 3, H, cell=cell, bidirectional=bidirectional,
                    encoder_hidden_size=H // 2 if bidirectional else H, attention=attention,
                    seed=seed)
    for p in model.params.values():
        p[...] = rng.uniform(-0.8, 0.8, p.shape)
    ref = TorchSeq2Seq(model)
    src = rng.integers(0, 5, (S, B))
    src_lengths = rng.integers(1, S + 1, B)
    src_lengths[0] = S  # pad_packed_sequence pads to the longest: keep one full
    tgt_out = rng.integers(0, 6, (T, B))
    tgt_in = np.concatenate([np.full((1, B), 1), tgt_out[:-1]])
    tgt_mask = np.arange(T)[:, None] < rng.integers(1, T + 1, B)[None, :]

    logits = model(src, src_lengths, tgt_in)
    loss, dlogits = losses.cross_entropy(logits, tgt_out, mask=tgt_mask)
    model.zero_grad()
    model.backward(dlogits)

    tlogits = ref(torch.tensor(src), torch.tensor(src_lengths), torch.tensor(tgt_in))
    np.testing.assert_allclose(logits, tlogits.detach().numpy(), rtol=1e-11, atol=1e-13)
    tloss = torch.nn.functional.cross_entropy(tlogits[torch.tensor(tgt_mask)],
                                              torch.tensor(tgt_out[tgt_mask]))
    assert abs(loss - tloss.item()) < 1e-12 * max(1, abs(loss))
    tloss.backward()
    for k, v in ref.named_parameters():
        np.testing.assert_allclose(model.grads[k], v.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)
    assert {k for k, _ in ref.named_parameters()} == set(model.params)
