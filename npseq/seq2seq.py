"""An attention encoder-decoder (Luong et al. 2015) trained by teacher forcing.

::

    src (S, B) --Embedding--> (S, B, E) --LSTM/GRU encoder (bidirectional)--> keys (B, S, Dk)
                                                     final state --bridge--> decoder state s_0
    tgt_in (T, B) --Embedding--> y_t (B, E)
    for t in 0..T-1:                                    (the decoder, one cell step at a time)
        s_t        = cell([y_t, h~_{t-1}], s_{t-1})     input feeding: h~_{-1} = 0
        c_t, w_t   = attention(h_t, keys, keys, src_lengths)
        h~_t       = tanh(W_c [c_t, h_t] + b_c)
    logits = out(h~)                                     (T, B, V)

Training, with ``tgt_in`` the targets shifted right behind the start token and a mask for
the padding past each target's length::

    logits = model(src, src_lengths, tgt_in)
    loss, dlogits = npseq.losses.cross_entropy(logits, tgt_out, mask=tgt_mask)
    model.backward(dlogits)             # into model.grads, keyed like model.params
    opt.step()                          # any npseq.optim optimizer over model.params

Decoding, under ``npseq.no_grad()`` inside: :meth:`Seq2Seq.greedy_decode` and
:meth:`Seq2Seq.beam_search`. Token arrays are time-major ``(T, B)`` on the way in, as
npseq's layers; decoded sequences come back batch-major ``(B, L)``, one row per source.
The backward is derived in ``docs/attention.md``.
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Union

import numpy as np

from npseq import grad_mode
from npseq._typing import ArrayLike, DTypeLike, FloatArray, Seed
from npseq._validation import (as_array, check_bool, check_choice, check_dtype, check_int,
                               check_lengths, check_shape, make_rng)
from npseq.attention import AdditiveAttention, MultiplicativeAttention, key_mask
from npseq.cell import GRUCell, LSTMCell
from npseq.layers import GRU, LSTM
from npseq.losses import log_softmax
from npseq.module import Module
from npseq.nn import Embedding, Linear

__all__ = ["Seq2Seq", "Decoded"]


class Decoded(NamedTuple):
    """Decoded sequences, one row per source sequence."""

    tokens: np.ndarray  # (B, L) int64, the end token included, pad_index after it
    lengths: np.ndarray  # (B,) tokens per row, the end token included when it was emitted
    log_prob: np.ndarray  # (B,) sum of the log-probabilities of the row's tokens
    score: np.ndarray  # (B,) log_prob / ((5 + length) / 6) ** alpha (alpha = 0: log_prob)
    attention: np.ndarray  # (B, L, S) the attention weights of each output step


class _StepCache(NamedTuple):
    """One decoder step, for the backward (the cell keeps its own record)."""

    z: np.ndarray  # (B, Dk + H) [c_t, h_t], the input of the combine layer
    h_tilde: np.ndarray  # (B, H) tanh(W_c z + b_c), the attentional vector
    attention: tuple  # the attention's cache (AttentionCache)


class _Record(NamedTuple):
    """What one forward call leaves for its backward."""

    steps: list  # _StepCache per target step
    s0: np.ndarray  # (B, H) the decoder's initial h, tanh(bridge(h_n))
    shape_logits: tuple  # (T, B, V)
    src_shape: tuple  # (S, B)


class Seq2Seq(Module):
    """Encoder-decoder with attention and input feeding, every backward written by hand.

    Parameters
    ----------
    src_vocab_size, tgt_vocab_size : int
        Tokens of the source and of the target vocabulary.
    embedding_dim : int
        E, features of both embeddings.
    hidden_size : int
        H, the decoder cell's hidden size (and the size of the attentional vector h~).
    cell : {"lstm", "gru"}, default "lstm"
        The encoder layer (npseq.LSTM or npseq.GRU) and the decoder cell (npseq.LSTMCell or
        npseq.GRUCell).
    bidirectional : bool, default True
        A bidirectional encoder: keys of size ``2 * encoder_hidden_size``.
    encoder_hidden_size : int, optional
        Hidden size of each encoder direction; default ``hidden_size``.
    attention : {"general", "dot", "additive"}, default "general"
        Luong's ``general`` (:class:`~npseq.attention.MultiplicativeAttention`) or ``dot``
        (needs keys of size ``hidden_size``), or Bahdanau's additive score
        (:class:`~npseq.attention.AdditiveAttention`).
    attention_size : int, optional
        Width of the additive score's hidden layer; default ``hidden_size``.
    pad_index, bos_index, eos_index : int, default 0, 1, 2
        Target tokens: padding, start (the first decoder input) and end.
    dtype : numpy.float64 (default) or numpy.float32
    seed : None, int or numpy.random.Generator

    Attributes
    ----------
    src_embedding, encoder, bridge, tgt_embedding, decoder, attention, combine, out
        The sub-modules: Embedding(src_vocab, E), LSTM/GRU(E, He, bidirectional),
        Linear(D*He, H), Embedding(tgt_vocab, E), LSTMCell/GRUCell(E + H, H), the attention,
        Linear(D*He + H, H), Linear(H, tgt_vocab).
    params, grads : dict
        Flat dicts keyed ``"<sub-module>.<name>"`` (``"encoder.weight_ih_l0_reverse"``,
        ``"attention.weight"``, ``"out.bias"`` ...), holding the sub-modules' live arrays,
        so an optimizer over ``params`` updates them.

    Notes
    -----
    Forward, for each target step t (``Dk = D * He``, ``h_t`` the cell's hidden state)::

        s_0  = tanh(W_b [h_n^fwd, h_n^bwd] + b_b)       decoder h_0 (c_0 = 0 for the LSTM)
        x_t  = [E_tgt[tgt_in_t], h~_{t-1}]              (B, E + H), h~_{-1} = 0
        s_t  = cell(x_t, s_{t-1})
        c_t, w_t = attention(h_t, K, K, src_lengths)    K = encoder outputs (B, S, Dk)
        z_t  = [c_t, h_t]                               (B, Dk + H)
        h~_t = tanh(z_t W_c^T + b_c)                    (B, H)
        logits_t = h~_t W_o^T + b_o                     (B, V)

    Backward through time, t = T-1 .. 0 (:meth:`backward`), with ``dh~_T = 0`` from the
    input feeding past the last step and ``ds_T = 0``::

        dh~_t          = dlogits_t W_o + dh~_t^(next input)
        da_t           = dh~_t * (1 - h~_t**2)
        dz_t           = da_t W_c;   [dc_t, dh_t^z] = dz_t
        dh_t^q, dK_t, dV_t = attention.backward(dc_t)
        dK            += dK_t + dV_t                    keys are the values
        dx_t, ds_{t-1} = cell.backward(ds_t + (dh_t^z + dh_t^q))
        [dy_t, dh~_{t-1}^(next input)] = dx_t

    then the bridge, the encoder (``encoder.backward(dK, dh_n)``) and the embeddings.

    Examples
    --------
    >>> import numpy as np
    >>> from npseq.seq2seq import Seq2Seq
    >>> from npseq import losses
    >>> model = Seq2Seq(7, 6, embedding_dim=4, hidden_size=5, seed=0)
    >>> src = np.array([[3, 4], [5, 6], [4, 0]])            # (S, B), second source of length 2
    >>> tgt_in = np.array([[1, 1], [3, 4]])                 # (T, B): start token, then y_0
    >>> tgt_out = np.array([[3, 4], [2, 2]])                # (T, B): y_0, then the end token
    >>> logits = model(src, [3, 2], tgt_in)
    >>> logits.shape
    (2, 2, 6)
    >>> loss, dlogits = losses.cross_entropy(logits, tgt_out)
    >>> model.backward(dlogits)
    >>> out = model.greedy_decode(src, [3, 2], max_length=4)
    >>> out.tokens.shape[0], out.attention.shape[::2]
    (2, (2, 3))
    """

    #: constructor arguments kept under another attribute name (read by npseq.save)
    CONFIG_ATTRIBUTES = {"attention": "attention_kind"}

    pad_index: int  # set in __init__ with bos_index and eos_index, each checked
    bos_index: int
    eos_index: int
    attention: Union[AdditiveAttention, MultiplicativeAttention]

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embedding_dim: int,
                 hidden_size: int, *, cell: str = "lstm", bidirectional: bool = True,
                 encoder_hidden_size: Optional[int] = None, attention: str = "general",
                 attention_size: Optional[int] = None, pad_index: int = 0, bos_index: int = 1,
                 eos_index: int = 2, dtype: DTypeLike = np.float64, seed: Seed = None) -> None:
        super().__init__(check_dtype(dtype))
        self.src_vocab_size = check_int("src_vocab_size", src_vocab_size, minimum=1)
        self.tgt_vocab_size = check_int("tgt_vocab_size", tgt_vocab_size, minimum=1)
        self.embedding_dim = E = check_int("embedding_dim", embedding_dim, minimum=1)
        self.hidden_size = H = check_int("hidden_size", hidden_size, minimum=1)
        self.cell = check_choice("cell", cell, ("lstm", "gru"))
        self.bidirectional = check_bool("bidirectional", bidirectional)
        self.encoder_hidden_size = He = (H if encoder_hidden_size is None else check_int(
            "encoder_hidden_size", encoder_hidden_size, minimum=1))
        self.attention_kind = check_choice("attention", attention, ("general", "dot",
                                                                    "additive"))
        self.attention_size = (H if attention_size is None else check_int(
            "attention_size", attention_size, minimum=1))
        V = self.tgt_vocab_size
        for name, value in (("pad_index", pad_index), ("bos_index", bos_index),
                            ("eos_index", eos_index)):
            setattr(self, name, check_int(name, value, minimum=0, maximum=V - 1))
        if self.bos_index == self.eos_index:
            raise ValueError(f"eos_index: expected a token other than bos_index "
                             f"({self.bos_index}), got {self.eos_index}")
        D = 2 if self.bidirectional else 1
        self.key_size = Dk = D * He
        if self.attention_kind == "dot" and Dk != H:
            raise ValueError(f"attention: 'dot' expects keys of the decoder's size "
                             f"(hidden_size {H}), got keys of size {Dk} (num_directions * "
                             f"encoder_hidden_size); use 'general' or set "
                             f"encoder_hidden_size={H // D if H % D == 0 else '...'}")
        rng = make_rng(seed)
        dt = self.dtype
        layer, cell_cls = (LSTM, LSTMCell) if self.cell == "lstm" else (GRU, GRUCell)
        self.src_embedding = Embedding(self.src_vocab_size, E, dtype=dt, seed=rng)
        self.encoder = layer(E, He, bidirectional=self.bidirectional, dtype=dt, seed=rng)
        self.bridge = Linear(Dk, H, dtype=dt, seed=rng)
        self.tgt_embedding = Embedding(V, E, dtype=dt, seed=rng)
        self.decoder = cell_cls(E + H, H, dtype=dt, seed=rng)
        if self.attention_kind == "additive":
            self.attention = AdditiveAttention(H, Dk, self.attention_size, dtype=dt, seed=rng)
        else:
            self.attention = MultiplicativeAttention(H, Dk, score=self.attention_kind,
                                                     dtype=dt, seed=rng)
        self.combine = Linear(Dk + H, H, dtype=dt, seed=rng)
        self.out = Linear(H, V, dtype=dt, seed=rng)
        self.params = {f"{n}.{k}": v for n, m in self.named_modules() for k, v in m.params.items()}
        self.grads = {f"{n}.{k}": v for n, m in self.named_modules() for k, v in m.grads.items()}

    def named_modules(self) -> list[tuple[str, Module]]:
        """``[(name, sub-module)]`` in the order of the forward pass."""
        return [(n, getattr(self, n)) for n in ("src_embedding", "encoder", "bridge",
                                                "tgt_embedding", "decoder", "attention",
                                                "combine", "out")]

    def __repr__(self):
        inner = "".join(f"\n  ({n}): {m!r}" for n, m in self.named_modules())
        return f"Seq2Seq({inner}\n)"

    def clear_records(self) -> Seq2Seq:
        """Drop the pending forward record and those of every sub-module; returns self."""
        super().clear_records()
        for _, m in self.named_modules():
            m.clear_records()
        return self

    def train(self, mode: bool = True) -> Seq2Seq:
        super().train(mode)
        for _, m in self.named_modules():
            m.train(mode)
        return self

    # -- forward: teacher forcing --------------------------------------------------------------
    def __call__(self, src: ArrayLike, src_lengths: Optional[ArrayLike],
                 tgt_in: ArrayLike) -> FloatArray:
        return self.forward(src, src_lengths, tgt_in)

    def forward(self, src: ArrayLike, src_lengths: Optional[ArrayLike],
                tgt_in: ArrayLike) -> FloatArray:
        """Logits of every target step, the decoder reading the true previous tokens.

        Parameters
        ----------
        src : array_like of int, shape (S, B)
            Source tokens, time-major, padded past each length (any padding token).
        src_lengths : array_like of int, shape (B,), or None
            Valid tokens of each source, 1..S; None for all S.
        tgt_in : array_like of int, shape (T, B)
            The decoder's inputs: ``bos_index``, then the target tokens but the last
            (teacher forcing). Steps past a target's length may hold any token: mask them in
            the loss, and their logits get zero gradient.

        Returns
        -------
        logits : ndarray, shape (T, B, tgt_vocab_size)
        """
        src, src_lengths = self._check_src(src, src_lengths)
        tgt_in = self._check_tokens("tgt_in", tgt_in, self.tgt_vocab_size, "(T, batch)")
        if tgt_in.shape[1] != src.shape[1]:
            raise ValueError(f"tgt_in: expected shape (T, {src.shape[1]}) (the batch of src), "
                             f"got {tgt_in.shape}")
        keep = grad_mode.is_grad_enabled()
        self._drop_unpaired("a new forward call replaced it" if keep
                            else "a forward inside npseq.no_grad() followed it")
        self.clear_records()  # the sub-modules' records of an unpaired forward, if any
        K, mask, state, s0 = self._encode(src, src_lengths)
        y = self.tgt_embedding(tgt_in)  # (T, B, E)
        B = src.shape[1]
        h_tilde = np.zeros((B, self.hidden_size), self.dtype)  # input feeding: h~_{-1} = 0
        steps, h_tildes = [], []
        for t in range(tgt_in.shape[0]):
            state, h_tilde, _, cache = self._decoder_step(y[t], state, h_tilde, K, mask)
            steps.append(cache)
            h_tildes.append(h_tilde)
        logits = self.out(np.stack(h_tildes))  # (T, B, V)
        self._push(_Record(steps, s0, logits.shape, src.shape))  # nothing inside no_grad()
        return logits

    def _encode(self, src, src_lengths):
        """Encoder, keys, mask and the decoder's initial state (records kept if grad mode)."""
        x = self.src_embedding(src)  # (S, B, E)
        out, state_n = self.encoder(x, lengths=src_lengths)  # (S, B, Dk)
        h_n = state_n[0] if self.cell == "lstm" else state_n  # (D, B, He)
        S, B = src.shape
        h_cat = h_n.transpose(  # type: ignore[union-attr]
            1, 0, 2).reshape(B, self.key_size)  # (B, D*He) [fwd, bwd]
        s0 = np.tanh(self.bridge(h_cat))  # (B, H)
        state = (s0, np.zeros_like(s0)) if self.cell == "lstm" else s0
        K = out.transpose(1, 0, 2)  # (B, S, Dk): keys and values
        return K, key_mask(src_lengths, S, B), state, s0

    def _decoder_step(self, y_t, state, h_tilde_prev, K, mask):
        """One decoder step; returns ``(state, h_tilde, weights, cache)``."""
        state = self.decoder(np.concatenate([y_t, h_tilde_prev], axis=1), state)
        h = state[0] if self.cell == "lstm" else state  # (B, H)
        c, w, att_cache = self.attention.apply(h, K, K, mask)  # (B, Dk), (B, S)
        z = np.concatenate([c, h], axis=1)  # (B, Dk + H)
        p = self.combine.params
        h_tilde = np.tanh(z @ p["weight"].T + p["bias"])  # (B, H)
        return state, h_tilde, w, _StepCache(z, h_tilde, att_cache)

    # -- backward through time -----------------------------------------------------------------
    def backward(self, dlogits: ArrayLike) -> None:
        """Backward of the most recent :meth:`forward` not yet paired with a backward.

        Parameters
        ----------
        dlogits : array_like, shape (T, B, tgt_vocab_size), the gradient of ``logits``

        Returns
        -------
        None
            The inputs are tokens; every parameter gradient is added into :attr:`grads`.
        """
        rec = self._peek()
        dlogits = check_shape("dlogits", as_array("dlogits", dlogits, self.dtype),
                              rec.shape_logits, "(the shape of logits)")
        self._pop()  # only once dlogits passed its checks
        T, B, _ = rec.shape_logits
        Dk, E = self.key_size, self.embedding_dim
        W_c = self.combine.params["weight"]
        dh_tildes = self.out.backward(dlogits)  # (T, B, H)
        S = rec.src_shape[0]
        dK = np.zeros((B, S, Dk), self.dtype)  # keys are the values: both gradients add here
        dy = np.empty((T, B, E), self.dtype)
        dh_tilde_next = np.zeros((B, self.hidden_size), self.dtype)  # from x_{t+1}
        ds = None  # gradient of s_t from step t+1: none past the last step
        dW_c = np.zeros_like(W_c)
        db_c = np.zeros_like(self.combine.params["bias"])
        datt = {k: np.zeros_like(v) for k, v in self.attention.params.items()}
        for t in reversed(range(T)):
            z, h_tilde, att_cache = rec.steps[t]
            dh_tilde = dh_tildes[t] + dh_tilde_next  # type: ignore[index]  # (B, H)
            da = dh_tilde * (1 - h_tilde * h_tilde)  # backprop through tanh
            dW_c += da.T @ z
            db_c += da.sum(axis=0)
            dz = da @ W_c  # (B, Dk + H)
            dc, dh = dz[:, :Dk], dz[:, Dk:]
            dq, dK_t, dV_t, dp = self.attention.apply_backward(dc, None, att_cache)
            for k, g in dp.items():
                datt[k] += g
            dK += dK_t
            dK += dV_t
            dh = dh + dq  # h_t is the query and part of z_t
            if self.cell == "lstm":
                dstate = (dh if ds is None else ds[0] + dh, None if ds is None else ds[1])
            else:
                dstate = dh if ds is None else ds + dh
            dx, ds = self.decoder.backward(dstate)  # (B, E + H)
            dy[t] = dx[:, :E]
            dh_tilde_next = dx[:, E:]
        # h~_{-1} = 0 is a constant: dh_tilde_next is dropped here; so is dc_0 (c_0 = 0)
        self.combine.grads["weight"] += dW_c
        self.combine.grads["bias"] += db_c
        for k, g in datt.items():
            self.attention.grads[k] += g
        self.tgt_embedding.backward(dy)
        ds0 = (ds[0] if self.cell == "lstm" else ds) * (  # type: ignore[index]
            1 - rec.s0 * rec.s0)  # through tanh
        dh_cat = self.bridge.backward(ds0)  # (B, D*He)
        D = 2 if self.bidirectional else 1
        dh_n = dh_cat.reshape(  # type: ignore[union-attr]
            B, D, self.encoder_hidden_size).transpose(1, 0, 2)  # (D, B, He)
        dstate_n = (dh_n, None) if self.cell == "lstm" else dh_n
        dx_src, _ = self.encoder.backward(dK.transpose(1, 0, 2), dstate_n)  # (S, B, E)
        self.src_embedding.backward(dx_src)

    # -- decoding ------------------------------------------------------------------------------
    def greedy_decode(self, src: ArrayLike, src_lengths: Optional[ArrayLike] = None,
                      max_length: int = 50, alpha: float = 0.0) -> Decoded:
        """The most probable token at each step, until the end token or ``max_length``.

        Parameters
        ----------
        src : array_like of int, shape (S, B)
        src_lengths : array_like of int, shape (B,), or None for all S
        max_length : int, default 50
            Most tokens per output, the end token included.
        alpha : float >= 0, default 0
            Only for the reported ``score``: ``log_prob / ((5 + length) / 6) ** alpha``.

        Returns
        -------
        Decoded
            ``tokens (B, L)`` with ``L <= max_length``, pad_index after each end token.
        """
        src, src_lengths = self._check_src(src, src_lengths)
        max_length = check_int("max_length", max_length, minimum=1)
        alpha = _check_alpha(alpha)
        S, B = src.shape
        with grad_mode.no_grad():
            K, mask, state, _ = self._encode(src, src_lengths)
            y = np.full(B, self.bos_index)
            h_tilde = np.zeros((B, self.hidden_size), self.dtype)
            tokens = np.full((B, max_length), self.pad_index, np.int64)
            attention = np.zeros((B, max_length, S), self.dtype)
            log_prob = np.zeros(B)
            lengths = np.zeros(B, np.int64)
            done = np.zeros(B, bool)
            rows = np.arange(B)
            for t in range(max_length):
                logp, state, h_tilde, w = self._logp_step(y, state, h_tilde, K, mask)
                y = np.argmax(logp, axis=1)  # (B,)
                live = ~done
                tokens[live, t] = y[live]
                attention[live, t] = w[live]
                log_prob[live] += logp[rows, y][live]
                lengths[live] += 1
                done |= y == self.eos_index
                if done.all():
                    break
        L = int(lengths.max())
        return Decoded(tokens[:, :L], lengths, log_prob, log_prob / _length_penalty(lengths,
                                                                                     alpha),
                       attention[:, :L])

    def beam_search(self, src: ArrayLike, src_lengths: Optional[ArrayLike] = None,
                    beam_size: int = 5, max_length: int = 50, alpha: float = 0.0,
                    greedy_fallback: bool = True) -> Decoded:
        """Batched beam search: the ``beam_size`` best prefixes of each source, step by step.

        Parameters
        ----------
        src : array_like of int, shape (S, B)
        src_lengths : array_like of int, shape (B,), or None for all S
        beam_size : int >= 1, default 5
        max_length : int, default 50
            Most tokens per output, the end token included.
        alpha : float >= 0, default 0
            Length normalisation (Wu et al. 2016): hypotheses are ranked by
            ``log_prob / ((5 + length) / 6) ** alpha``; 0 ranks by ``log_prob``.
        greedy_fallback : bool, default True
            Also decode greedily and return the greedy output where it ranks higher. Beam
            search can prune the greedy prefix and end below it (its survivors may all fall
            later); with the fallback, the result never ranks below greedy decoding.

        Returns
        -------
        Decoded
            The best hypothesis of each source.

        Notes
        -----
        At each step every live hypothesis of a source is extended by every token and the
        candidates are taken best first: one ending with ``eos_index`` is set aside as
        finished, any other fills one of the ``beam_size`` live slots, until the slots are
        full. A source is done when it has ``beam_size`` finished hypotheses or (with
        ``alpha = 0``) when its best finished hypothesis scores at least its best live one
        (log-probabilities only fall as a prefix grows). At ``max_length`` the live
        hypotheses count as finished. With ``beam_size=1`` this is greedy decoding.
        """
        src, src_lengths = self._check_src(src, src_lengths)
        k_beam = check_int("beam_size", beam_size, minimum=1)
        max_length = check_int("max_length", max_length, minimum=1)
        alpha = _check_alpha(alpha)
        greedy_fallback = check_bool("greedy_fallback", greedy_fallback)
        S, B = src.shape
        V, eos = self.tgt_vocab_size, self.eos_index
        with grad_mode.no_grad():
            K, mask, state, _ = self._encode(src, src_lengths)
            rep = np.repeat(np.arange(B), k_beam)  # (B*k,) row -> source
            K, mask = K[rep], mask[rep]
            state = tuple(s[rep] for s in state) if self.cell == "lstm" else state[rep]
            h_tilde = np.zeros((B * k_beam, self.hidden_size), self.dtype)
            y = np.full(B * k_beam, self.bos_index)
            beam_logp = np.full((B, k_beam), -np.inf)
            beam_logp[:, 0] = 0.0  # one live hypothesis at the start, not k copies
            hist_tok = np.zeros((B, k_beam, 0), np.int64)
            hist_att = np.zeros((B, k_beam, 0, S), self.dtype)
            finished: list[list] = [[] for _ in range(B)]  # (log_prob, tokens, attention)
            done = np.zeros(B, bool)
            for t in range(max_length):
                logp, state, h_tilde, w = self._logp_step(y, state, h_tilde, K, mask)
                cand = (beam_logp[:, :, None] + logp.reshape(B, k_beam, V)).reshape(B, -1)
                order = np.argsort(-cand, axis=1, kind="stable")  # best first, ties: low index
                new_logp = np.full((B, k_beam), -np.inf)
                parent = np.zeros((B, k_beam), np.int64)
                token = np.full((B, k_beam), eos, np.int64)
                w = w.reshape(B, k_beam, S)
                for b in np.flatnonzero(~done):
                    n = 0
                    for j in order[b]:
                        score = cand[b, j]
                        if n == k_beam or score == -np.inf:
                            break
                        k, v = divmod(int(j), V)
                        if v == eos:
                            finished[b].append((score, np.append(hist_tok[b, k], eos),
                                                np.concatenate([hist_att[b, k], w[b, k][None]])))
                        else:
                            new_logp[b, n], parent[b, n], token[b, n] = score, k, v
                            n += 1
                rows = (np.arange(B)[:, None] * k_beam + parent).reshape(-1)  # (B*k,)
                state = (tuple(s[rows] for s in state) if self.cell == "lstm"
                         else state[rows])
                h_tilde, y = h_tilde[rows], token.reshape(-1)
                hist_tok = np.concatenate([np.take_along_axis(hist_tok, parent[:, :, None], 1),
                                           token[:, :, None]], axis=2)
                hist_att = np.concatenate([hist_att[np.arange(B)[:, None], parent],
                                           w[np.arange(B)[:, None], parent][:, :, None]],
                                          axis=2)
                beam_logp = new_logp
                for b in np.flatnonzero(~done):
                    best_done = max((f[0] for f in finished[b]), default=-np.inf)
                    done[b] = (len(finished[b]) >= k_beam
                               or (alpha == 0 and best_done >= beam_logp[b].max()))
                if done.all():
                    break
            for b in np.flatnonzero(~done):  # max_length reached: live hypotheses count
                for k in range(k_beam):
                    if beam_logp[b, k] > -np.inf:
                        finished[b].append((beam_logp[b, k], hist_tok[b, k], hist_att[b, k]))
        best = []
        for b in range(B):  # type: ignore[assignment]  # b was a numpy index above
            scores = [f[0] / _length_penalty(len(f[1]), alpha) for f in finished[b]]
            best.append(finished[b][int(np.argmax(scores))])
        lengths = np.array([len(f[1]) for f in best], np.int64)
        L = int(lengths.max())
        tokens = np.full((B, L), self.pad_index, np.int64)
        attention = np.zeros((B, L, S), self.dtype)
        for b, (_, tok, att) in enumerate(best):  # type: ignore[assignment]
            tokens[b, :len(tok)] = tok
            attention[b, :len(tok)] = att
        log_prob = np.array([f[0] for f in best], np.float64)
        out = Decoded(tokens, lengths, log_prob, log_prob / _length_penalty(lengths, alpha),
                      attention)
        if greedy_fallback and k_beam > 1:
            out = _better(out, self.greedy_decode(src, src_lengths, max_length, alpha),
                          self.pad_index)
        return out

    def _logp_step(self, y, state, h_tilde, K, mask):
        """One decoding step from tokens ``y`` (N,): ``(log p (N, V), state, h~, weights)``."""
        state, h_tilde, w, _ = self._decoder_step(self.tgt_embedding(y), state, h_tilde, K,
                                                  mask)
        return log_softmax(self.out(h_tilde)), state, h_tilde, w

    # -- boundary ------------------------------------------------------------------------------
    def _check_tokens(self, name: str, tokens: ArrayLike, vocab: int, what: str) -> np.ndarray:
        arr = np.asarray(tokens)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected an array of integer token ids, got dtype "
                            f"{arr.dtype}")
        if arr.ndim != 2 or 0 in arr.shape:
            raise ValueError(f"{name}: expected shape {what} (time-major, non-empty), got "
                             f"{arr.shape}")
        if arr.min() < 0 or arr.max() >= vocab:
            raise ValueError(f"{name}: expected token ids in 0..{vocab - 1}, got values from "
                             f"{arr.min()} to {arr.max()}")
        return arr

    def _check_src(self, src: ArrayLike, src_lengths: Optional[ArrayLike]
                   ) -> tuple[np.ndarray, Optional[np.ndarray]]:
        src = self._check_tokens("src", src, self.src_vocab_size, "(S, batch)")
        S, B = src.shape
        if src_lengths is not None:
            src_lengths = check_lengths(src_lengths, S, B, name="src_lengths")
        return src, src_lengths


def _check_alpha(alpha):
    if isinstance(alpha, (bool, np.bool_)) or not isinstance(alpha, (int, float, np.floating,
                                                                     np.integer)):
        raise TypeError(f"alpha: expected a number >= 0, got {alpha!r}")
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha: expected a finite number >= 0, got {alpha!r}")
    return float(alpha)


def _length_penalty(length, alpha):
    """Wu et al. (2016): ``((5 + length) / 6) ** alpha``; 1 for alpha = 0."""
    return ((5.0 + np.asarray(length, np.float64)) / 6.0) ** alpha


def _better(a: Decoded, b: Decoded, pad_index: int) -> Decoded:
    """Row by row, ``b`` where it scores strictly higher than ``a``."""
    take_b = b.score > a.score
    if not take_b.any():
        return a
    L = max(a.tokens.shape[1], b.tokens.shape[1])
    S = a.attention.shape[2]

    def widen(d):
        tok = np.full((len(d.lengths), L), pad_index, np.int64)
        tok[:, :d.tokens.shape[1]] = d.tokens
        att = np.zeros((len(d.lengths), L, S), d.attention.dtype)
        att[:, :d.attention.shape[1]] = d.attention
        return tok, att

    (ta, aa), (tb, ab) = widen(a), widen(b)
    pick = take_b[:, None]
    tokens = np.where(pick, tb, ta)
    attention = np.where(pick[:, :, None], ab, aa)
    L = int(np.where(take_b, b.lengths, a.lengths).max())
    return Decoded(tokens[:, :L], np.where(take_b, b.lengths, a.lengths),
                   np.where(take_b, b.log_prob, a.log_prob), np.where(take_b, b.score, a.score),
                   attention[:, :L])
