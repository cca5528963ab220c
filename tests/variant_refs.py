"""Reference forwards of the cell variants, written from the papers, for NumPy and torch alike.

One layer, one direction, whole sequences: a plain loop over time using only ``@``, ``.T``,
``*``, ``+`` and slicing, so the same lines run on NumPy arrays (``test_variants.py``
compares npseq's forward with them) and on torch tensors (``test_variants_torch.py`` lets
autograd differentiate them). The activations, the layer norm and ``stack`` come from the
caller's library. Nothing here calls npseq.
"""


def ref_lstm(x, h, c, P, act, sig, stack, ln=None, peephole=False):
    """LSTM over ``x (T, B, D)`` from ``(h, c)``; ``ln(v, gain, bias)`` for Ba et al.'s
    layer-normalised cell, ``peephole`` for Gers et al.'s. Returns ``(out, h, c)``."""
    H = h.shape[-1]
    outs = []
    for x_t in x:
        gx = x_t @ P["weight_ih"].T + P["bias_ih"]
        gh = h @ P["weight_hh"].T + P["bias_hh"]
        if ln is None:
            a = gx + gh
        else:
            a = ln(gx, P["ln_ih_weight"], P["ln_ih_bias"]) + ln(gh, P["ln_hh_weight"],
                                                                P["ln_hh_bias"])
        a_i, a_f, a_g, a_o = (a[:, k * H:(k + 1) * H] for k in range(4))
        if peephole:
            a_i = a_i + P["weight_ch"][0] * c
            a_f = a_f + P["weight_ch"][1] * c
        c = sig(a_f) * c + sig(a_i) * act(a_g)
        if peephole:
            a_o = a_o + P["weight_ch"][2] * c
        c_out = c if ln is None else ln(c, P["ln_c_weight"], P["ln_c_bias"])
        h = sig(a_o) * act(c_out)
        outs.append(h)
    return stack(outs), h, c


def ref_gru(x, h, P, act, sig, stack, reset_after=True):
    """GRU over ``x (T, B, D)`` from ``h``: PyTorch's (``reset_after``) or Cho et al.'s.
    Returns ``(out, h)``."""
    H = h.shape[-1]
    W_hr, W_hz, W_hn = (P["weight_hh"][k * H:(k + 1) * H] for k in range(3))
    b_hr, b_hz, b_hn = (P["bias_hh"][k * H:(k + 1) * H] for k in range(3))
    outs = []
    for x_t in x:
        gx = x_t @ P["weight_ih"].T + P["bias_ih"]
        x_r, x_z, x_n = (gx[:, k * H:(k + 1) * H] for k in range(3))
        r = sig(x_r + h @ W_hr.T + b_hr)
        z = sig(x_z + h @ W_hz.T + b_hz)
        if reset_after:
            n = act(x_n + r * (h @ W_hn.T + b_hn))
        else:
            n = act(x_n + (r * h) @ W_hn.T + b_hn)
        h = (1 - z) * n + z * h
        outs.append(h)
    return stack(outs), h


def ref_forward(is_lstm, x, carry, P, options, activations, layer_norm, stack):
    """The reference of a layer's variant options (``layer_norm``, ``peephole``,
    ``reset_after``, ``activation``, ``recurrent_activation``): ``(out, carry)`` from the
    carry ``(h, c)`` or ``(h,)``. ``activations`` maps the names to functions."""
    act = activations[options.get("activation", "tanh")]
    sig = activations[options.get("recurrent_activation", "sigmoid")]
    if is_lstm:
        ln = layer_norm if options.get("layer_norm") else None
        out, h, c = ref_lstm(x, *carry, P, act, sig, stack, ln=ln,
                             peephole=options.get("peephole", False))
        return out, (h, c)
    out, h = ref_gru(x, *carry, P, act, sig, stack, reset_after=options.get("reset_after", True))
    return out, (h,)
