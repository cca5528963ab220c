"""Initialisations of recurrent layers that PyTorch leaves to the user, acting on ``params``.

Each helper takes a layer (:class:`~npseq.RNN`, :class:`~npseq.LSTM`, :class:`~npseq.GRU`,
stacked and bidirectional included) or a cell (:class:`~npseq.RNNCell` ...), overwrites some
of its parameters **in place** (an optimizer built on ``module.params`` keeps working) and
returns the module, so that it can be written inline::

    lstm = npseq.init.forget_bias_(npseq.LSTM(10, 32, seed=0), 1.0)

The default initialisation stays PyTorch's (:mod:`npseq.params`); these are opt-in.

Functions
---------
orthogonal_(module, gain=1.0, seed=None)   orthogonal recurrent matrices, one per gate block
                                           (Saxe et al. 2014)
forget_bias_(module, value=1.0)            LSTM forget-gate bias (Jozefowicz et al. 2015)
identity_(module, scale=1.0)               identity recurrent matrix, zero biases (IRNN, Le
                                           et al. 2015)
chrono_(module, max_len, seed=None)        chrono initialisation of the gate biases (Tallec &
                                           Ollivier 2018)

Gate blocks: a recurrent matrix ``weight_hh`` of shape ``(G*H, H_out)`` stacks ``G`` blocks of
``H`` rows, in PyTorch's gate order: (i, f, g, o) for LSTM, (r, z, n) for GRU, one block for
the Elman RNN. Biases ``bias_ih`` and ``bias_hh`` (``G*H,``) follow the same order; a gate's
pre-activation receives their **sum**, so a helper that sets a gate's bias to ``b`` writes
``b / 2`` into each of the two (the split is a convention: only the sum enters the forward,
and the two receive equal gradients for RNN and LSTM, so they stay equal in training).
"""
from __future__ import annotations

import numbers
from typing import TypeVar, Union

import numpy as np

from npseq._typing import Seed
from npseq._validation import check_int, make_rng
from npseq.cell import GRUCell, LSTMCell, RNNCell, RNNCellBase
from npseq.layers import GRU, LSTM, RNN, RNNBase
from npseq.params import layer_params

#: A recurrent layer or cell, returned as given.
InitT = TypeVar("InitT", bound=Union[RNNBase, RNNCellBase])

__all__ = ["orthogonal_", "forget_bias_", "identity_", "chrono_"]


def _blocks(module, where):
    """Every (label, p) of a layer's layers and directions, or of a cell: ``p`` the live
    parameters keyed without suffix."""
    if isinstance(module, RNNBase):
        return [(f"layer {layer}, direction {direction}", module.layer_params(layer, direction))
                for layer in range(module.num_layers)
                for direction in range(module.num_directions)]
    if isinstance(module, RNNCellBase):
        return [("cell", layer_params(module.params, module.kind, sfx=""))]
    raise TypeError(f"{where}: expected an npseq recurrent layer or cell (npseq.LSTM, "
                    f"npseq.GRUCell, ...), got {type(module).__name__}")


def _check_real(name, value):
    """A finite real number (not a bool), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite real number, got {value!r} "
                        f"({type(value).__name__})")
    if not np.isfinite(value):  # type: ignore[call-overload]
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    return float(value)


def _set_gate_bias(p, gate, H, total, where):
    """Write ``total / 2`` into the ``gate`` block of ``bias_ih`` and of ``bias_hh``."""
    if "bias_ih" not in p or "bias_hh" not in p:
        raise ValueError(f"{where}: expected a module with biases, got one built with "
                         f"bias=False")
    rows = slice(gate * H, (gate + 1) * H)
    for name in ("bias_ih", "bias_hh"):
        p[name][rows] = total / 2


def _orthogonal(rng, rows, cols):
    """A (rows, cols) matrix with orthonormal rows (rows <= cols) or columns (rows > cols),
    drawn uniformly (Haar) as ``torch.nn.init.orthogonal_``: QR of a Gaussian matrix with the
    signs of R's diagonal moved into Q."""
    A = rng.standard_normal((max(rows, cols), min(rows, cols)))
    Q, R = np.linalg.qr(A)  # Q (max, min) with orthonormal columns
    Q *= np.sign(np.diag(R))  # makes the distribution uniform over orthogonal matrices
    return Q if rows >= cols else Q.T


def orthogonal_(module: InitT, gain: float = 1.0, seed: Seed = None) -> InitT:
    """Orthogonal recurrent matrices, one per gate block (Saxe et al. 2014); in place.

    Parameters
    ----------
    module : an npseq recurrent layer or cell with a ``weight_hh`` (every kind but a custom
        one without it), float32 or float64
    gain : float, default 1.0
        Scale of every block.
    seed : None, int or numpy.random.Generator
        Source of the random orthogonal matrices (independent of the module's own ``rng``).

    Returns
    -------
    module

    Notes
    -----
    Every block ``W_k = weight_hh[k*H:(k+1)*H]`` of shape ``(H, H_out)`` of every layer and
    direction is replaced by ``gain * Q`` with ``Q`` drawn uniformly among the matrices with
    orthonormal rows, so that::

        W_k W_k^T = gain**2 I_H           (H <= H_out: every kind without a projection)
        W_k^T W_k = gain**2 I_H_out       (H > H_out: LSTM with proj_size)

    Each gate's recurrent map then preserves the norm of ``h_prev`` (times ``gain``): the
    linearised recurrence neither shrinks nor grows it, the regime Saxe et al. study. The
    input weights and biases are left as they were.
    """
    gain = _check_real("gain", gain)
    rng = make_rng(seed)
    for label, p in _blocks(module, "module"):
        if "weight_hh" not in p:
            raise ValueError(f"module: expected a recurrent matrix weight_hh, but the cell "
                             f"kind {module.kind.name!r} has none")
        W = p["weight_hh"]
        G = module.kind.num_gates
        H = W.shape[0] // G
        for k in range(G):
            W[k * H:(k + 1) * H] = gain * _orthogonal(rng, H, W.shape[1])
    return module


def _check_lstm(module, name):
    if not isinstance(module, (LSTM, LSTMCell)):
        raise TypeError(f"module: {name} expects an npseq.LSTM or npseq.LSTMCell (gate order "
                        f"i, f, g, o), got {type(module).__name__}")
    if module.layer_norm:
        raise ValueError(f"module: {name} expects an LSTM without layer_norm (its bias_ih and "
                         f"bias_hh are added before the normalisation; set the forget block "
                         f"of ln_ih_bias / ln_hh_bias instead, or ln_f_bias with "
                         f"layer_norm='labml')")


def forget_bias_(module: InitT, value: float = 1.0) -> InitT:
    """Set the LSTM forget-gate bias to ``value`` (Jozefowicz et al. 2015); in place.

    Parameters
    ----------
    module : npseq.LSTM or npseq.LSTMCell (not ``layer_norm``), built with ``bias=True``
    value : float, default 1.0
        The forget gate's total bias ``b_if + b_hf``.

    Returns
    -------
    module

    Notes
    -----
    The forget gate is the second block of ``H`` rows (gate order i, f, g, o). Its
    pre-activation receives ``b_if + b_hf``; each is set to ``value / 2``, so that::

        f = sigmoid(W_if x + W_hf h_prev + value)

    and at the start of training ``f`` is near ``sigmoid(1) = 0.73`` instead of 0.5: the cell
    state is kept longer, and the gradient through ``c`` decays more slowly. Keras's
    ``unit_forget_bias=True`` does the same with its single bias. Every layer and direction
    is set; the other blocks are left as they were.
    """
    _check_lstm(module, "forget_bias_")
    value = _check_real("value", value)
    for label, p in _blocks(module, "module"):
        _set_gate_bias(p, 1, module.hidden_size, value, f"module ({label})")
    return module


def identity_(module: InitT, scale: float = 1.0) -> InitT:
    """Identity recurrent matrix and zero biases, for ReLU RNNs (IRNN, Le et al. 2015).

    Parameters
    ----------
    module : npseq.RNN or npseq.RNNCell (``nonlinearity="relu"`` is the IRNN; ``"tanh"`` is
        accepted)
    scale : float, default 1.0
        The recurrent matrix becomes ``scale * I``; Le et al. use 1, and a smaller value
        (e.g. 0.01) for tasks that need to forget.

    Returns
    -------
    module

    Notes
    -----
    With ``W_hh = I`` and zero biases, the ReLU RNN's step is::

        h = relu(W_ih x + h_prev)

    which, for non-negative ``h``, copies the state forward and adds the input: without input
    the state stays where it is, and the gradient passes through the time steps with
    Jacobian ``I`` (on the active units), neither vanishing nor exploding. The input weights
    ``W_ih`` keep their initialisation.
    """
    if not isinstance(module, (RNN, RNNCell)):
        raise TypeError(f"module: identity_ expects an npseq.RNN or npseq.RNNCell (one gate "
                        f"block, square weight_hh), got {type(module).__name__}")
    scale = _check_real("scale", scale)
    for label, p in _blocks(module, "module"):
        p["weight_hh"][...] = scale * np.eye(module.hidden_size)
        for name in ("bias_ih", "bias_hh"):
            if name in p:
                p[name][...] = 0
    return module


def chrono_(module: InitT, max_len: int, seed: Seed = None) -> InitT:
    """Chrono initialisation of the gate biases (Tallec & Ollivier 2018); in place.

    Parameters
    ----------
    module : npseq.LSTM / LSTMCell (not ``layer_norm``) or npseq.GRU / GRUCell, with biases
        and the sigmoid as ``recurrent_activation``
    max_len : int >= 3
        ``T_max``, the longest time dependency expected in the data.
    seed : None, int or numpy.random.Generator
        Source of the uniform draws (independent of the module's own ``rng``).

    Returns
    -------
    module

    Notes
    -----
    A gate ``f = sigmoid(b)`` that keeps the previous state makes a leaky unit with a
    characteristic memory of ``1 / (1 - f) = 1 + exp(b)`` steps. Chrono spreads those
    memories over ``[2, T_max]`` by drawing, for every unit independently::

        LSTM:  b_f ~ log(U(1, T_max - 1)),   b_i = -b_f
        GRU:   b_z ~ log(U(1, T_max - 1))

    (``b`` is the total bias ``b_ih + b_hh``, half in each). For the LSTM this is the paper's
    rule: the input gate opens as much as the forget gate keeps. For the GRU, whose update
    ``h = (1 - z) * n + z * h_prev`` (PyTorch's convention) makes ``z`` the fraction kept, the
    update gate is the forget gate's analogue and gets the same draw: this follows from the
    leaky-unit argument above (a GRU with ``z`` fixed is a leaky unit with memory
    ``1 / (1 - z)``) and is not copied from a GRU formula of the paper. The other blocks are
    left as they were.
    """
    if isinstance(module, (GRU, GRUCell)):
        gates = {"z": 1}  # (r, z, n)
    else:
        _check_lstm(module, "chrono_")
        gates = {"f": 1, "i": 0}  # (i, f, g, o)
    if module.recurrent_activation != "sigmoid":  # type: ignore[union-attr]
        raise ValueError(f"module: chrono_ expects recurrent_activation='sigmoid' (the "
                         f"memory 1 + exp(b) is that of a sigmoid gate), got "
                         f"{module.recurrent_activation!r}")  # type: ignore[union-attr]
    max_len = check_int("max_len", max_len, minimum=3)
    rng = make_rng(seed)
    H = module.hidden_size
    for label, p in _blocks(module, "module"):
        b = np.log(rng.uniform(1, max_len - 1, size=H))  # (H,) forget / update gate bias
        if "f" in gates:
            _set_gate_bias(p, gates["f"], H, b, f"module ({label})")
            _set_gate_bias(p, gates["i"], H, -b, f"module ({label})")
        else:
            _set_gate_bias(p, gates["z"], H, b, f"module ({label})")
    return module
