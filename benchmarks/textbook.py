"""The baseline a student would write: one cell step at a time, as in course notes.

Each step computes ``x_t W_ih^T + b_ih + h W_hh^T + b_hh`` with two separate products, keeps a
tuple cache, and its backward forms the weight gradients step by step. Nothing is fused or
preallocated. It is correct (``bench_rnn.py`` checks it against npseq before timing) and is
the "textbook" column of the benchmark.

Parameters are a dict keyed like PyTorch's single-layer ``state_dict``
(``weight_ih_l0, weight_hh_l0, bias_ih_l0, bias_hh_l0``); inputs are ``(T, B, D)``, the initial
state is zero. ``forward(x) -> (out, cache)``, ``backward(dout, cache) -> (dx, grads)``.
"""
import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# -- one step of each cell -------------------------------------------------------------------
def rnn_step_forward(x, h_prev, P):
    h = np.tanh(x @ P["weight_ih_l0"].T + P["bias_ih_l0"] + h_prev @ P["weight_hh_l0"].T
                + P["bias_hh_l0"])
    return h, (x, h_prev, h)


def rnn_step_backward(dh, cache, P, grads):
    x, h_prev, h = cache
    da = dh * (1 - h ** 2)
    grads["weight_ih_l0"] += da.T @ x
    grads["weight_hh_l0"] += da.T @ h_prev
    grads["bias_ih_l0"] += da.sum(axis=0)
    grads["bias_hh_l0"] += da.sum(axis=0)
    return da @ P["weight_ih_l0"], da @ P["weight_hh_l0"]


def lstm_step_forward(x, h_prev, c_prev, P):
    H = h_prev.shape[1]
    a = x @ P["weight_ih_l0"].T + P["bias_ih_l0"] + h_prev @ P["weight_hh_l0"].T + P["bias_hh_l0"]
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H:2 * H])
    g = np.tanh(a[:, 2 * H:3 * H])
    o = sigmoid(a[:, 3 * H:])
    c = f * c_prev + i * g
    h = o * np.tanh(c)
    return h, c, (x, h_prev, c_prev, i, f, g, o, c)


def lstm_step_backward(dh, dc, cache, P, grads):
    x, h_prev, c_prev, i, f, g, o, c = cache
    tc = np.tanh(c)
    do = dh * tc
    dc = dc + dh * o * (1 - tc ** 2)
    di = dc * g
    df = dc * c_prev
    dg = dc * i
    da = np.hstack([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)])
    grads["weight_ih_l0"] += da.T @ x
    grads["weight_hh_l0"] += da.T @ h_prev
    grads["bias_ih_l0"] += da.sum(axis=0)
    grads["bias_hh_l0"] += da.sum(axis=0)
    return da @ P["weight_ih_l0"], da @ P["weight_hh_l0"], dc * f


def gru_step_forward(x, h_prev, P):
    H = h_prev.shape[1]
    gi = x @ P["weight_ih_l0"].T + P["bias_ih_l0"]
    gh = h_prev @ P["weight_hh_l0"].T + P["bias_hh_l0"]
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    n = np.tanh(gi[:, 2 * H:] + r * gh[:, 2 * H:])
    h = (1 - z) * n + z * h_prev
    return h, (x, h_prev, r, z, n, gh[:, 2 * H:])


def gru_step_backward(dh, cache, P, grads):
    x, h_prev, r, z, n, gh_n = cache
    dn = dh * (1 - z)
    dz = dh * (h_prev - n)
    da_n = dn * (1 - n ** 2)
    da_r = da_n * gh_n * r * (1 - r)
    da_z = dz * z * (1 - z)
    dgi = np.hstack([da_r, da_z, da_n])
    dgh = np.hstack([da_r, da_z, da_n * r])
    grads["weight_ih_l0"] += dgi.T @ x
    grads["weight_hh_l0"] += dgh.T @ h_prev
    grads["bias_ih_l0"] += dgi.sum(axis=0)
    grads["bias_hh_l0"] += dgh.sum(axis=0)
    return dgi @ P["weight_ih_l0"], dh * z + dgh @ P["weight_hh_l0"]


# -- the loops over time ---------------------------------------------------------------------
def forward(cell, x, P):
    """Run ``cell`` ("RNN", "LSTM" or "GRU") over ``x (T, B, D)`` from a zero state."""
    T, B, _ = x.shape
    H = P["weight_hh_l0"].shape[1]
    h = np.zeros((B, H), x.dtype)
    c = np.zeros((B, H), x.dtype)
    out, cache = [], []
    for t in range(T):
        if cell == "LSTM":
            h, c, step_cache = lstm_step_forward(x[t], h, c, P)
        elif cell == "GRU":
            h, step_cache = gru_step_forward(x[t], h, P)
        else:
            h, step_cache = rnn_step_forward(x[t], h, P)
        out.append(h)
        cache.append(step_cache)
    return np.stack(out), cache


def backward(cell, dout, cache, P):
    """Gradients of ``sum(out * dout)``: ``dx (T, B, D)`` and a dict of parameter gradients."""
    grads = {k: np.zeros_like(v) for k, v in P.items()}
    T, B, H = dout.shape
    dx = np.zeros((T, B, P["weight_ih_l0"].shape[1]), dout.dtype)
    dh_next = np.zeros((B, H), dout.dtype)
    dc_next = np.zeros((B, H), dout.dtype)
    for t in reversed(range(T)):
        dh = dout[t] + dh_next
        if cell == "LSTM":
            dx[t], dh_next, dc_next = lstm_step_backward(dh, dc_next, cache[t], P, grads)
        elif cell == "GRU":
            dx[t], dh_next = gru_step_backward(dh, cache[t], P, grads)
        else:
            dx[t], dh_next = rnn_step_backward(dh, cache[t], P, grads)
    return dx, grads
