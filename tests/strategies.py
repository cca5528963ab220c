"""Hypothesis strategies shared by npseq's tests: sizes first, then arrays of those sizes.

Every strategy is an ``@st.composite`` that draws sizes and then float64 arrays with
``hypothesis.extra.numpy.arrays``; nothing uses the global ``np.random``. Arrays are drawn
element by element (``fill=st.nothing()``), so an upstream gradient is never a constant array,
and biases are drawn bounded away from zero (:func:`nonzero_floats`).

Main entry points
-----------------
``cell_cases()``      a cell of every kind with drawn parameters, input, state and upstream
                      gradient (batched or unbatched): a :class:`CellCase`
``layer_configs()``   a point of a layer's configuration space: a :class:`LayerConfig`
``layer_cases()``     a configuration with its input, lengths, state and upstream gradients:
                      a :class:`LayerCase`
``long_configs()``    a configuration whose T*B spans several blocks of the BPTT driver, with
                      a cell variant, ``checkpoint_every`` and lengths: a :class:`LayerConfig`
``seeded_case(cfg)``  arrays for such a configuration, from a seed (they are too large to draw
                      element by element): a :class:`LayerCase`
``randomise(m, rng)`` every parameter of a module random and non-zero
``examples(n)``       ``n`` scaled by the active Hypothesis profile (for expensive tests)

Cell kinds are named ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` and ``"gru"`` (:data:`KINDS`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import npseq

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


def examples(n: int) -> int:
    """``n`` examples under the ``dev`` profile (40 examples), scaled for the active one."""
    return max(2, round(n * settings.default.max_examples / 40))


# -- elements and arrays ---------------------------------------------------------------------
def floats(scale: float = 1.0, tiny: float = 1e-2):
    """Floats in ``[-scale, scale]`` that are 0 or at least ``tiny`` in magnitude.

    Values like 1e-168 are left out: a gradient that small (an input of 1e-168 times a
    weight) is below what central differences resolve, so a relative error on it means
    nothing. Zero stays in, about one draw in eight: exact zeros (a zero state, a zero
    input) are good cases, but mostly-zero inputs put many ReLUs exactly on their kink.
    """
    nonzero = nonzero_floats(min(tiny, scale), scale)
    return st.integers(0, 7).flatmap(lambda i: st.just(0.0) if i == 0 else nonzero)


def nonzero_floats(low: float = 0.1, high: float = 1.0):
    """Floats with ``low <= |v| <= high``, either sign: biases that are surely non-zero."""
    magnitude = st.floats(low, high, allow_nan=False, allow_infinity=False)
    return st.tuples(st.sampled_from((-1.0, 1.0)), magnitude).map(lambda t: t[0] * t[1])


def arrays(shape, elements=None):
    """A float64 array of ``shape``, every element drawn from ``elements`` (default [-1, 1])."""
    return hnp.arrays(np.float64, tuple(shape), elements=floats() if elements is None else elements,
                      fill=st.nothing())


def upstream_arrays(shape):
    """A random upstream gradient: every element non-zero, either sign (never all ones)."""
    return arrays(shape, nonzero_floats(0.1, 1.0))


def param_arrays(shapes: dict, hidden_size: int):
    """A dict of parameters: weights in +-1/sqrt(H) (PyTorch's init range), biases non-zero."""
    bound = 1.0 / np.sqrt(hidden_size)
    return st.fixed_dictionaries({
        k: arrays(s, nonzero_floats(0.05, max(0.1, bound)) if k.startswith("bias")
                  else floats(bound))
        for k, s in shapes.items()})


# -- constructors ----------------------------------------------------------------------------
def make_cell(kind: str, input_size: int, hidden_size: int, bias: bool = True,
              dtype=np.float64, seed=0):
    """The npseq cell of ``kind``."""
    if kind.startswith("rnn_"):
        return npseq.RNNCell(input_size, hidden_size, bias=bias, nonlinearity=kind[4:],
                             dtype=dtype, seed=seed)
    cls = {"lstm": npseq.LSTMCell, "gru": npseq.GRUCell}[kind]
    return cls(input_size, hidden_size, bias=bias, dtype=dtype, seed=seed)


def num_states(kind: str) -> int:
    return 2 if kind == "lstm" else 1


def pack_state(kind: str, parts):
    """A list of state arrays -> the public state: ``(h, c)`` for LSTM, else ``h``."""
    parts = tuple(parts)
    return parts if kind == "lstm" else parts[0]


def unpack_state(state):
    """The public state (an array or a tuple) -> a tuple of arrays."""
    return tuple(state) if isinstance(state, (tuple, list)) else (state,)


# -- cells -----------------------------------------------------------------------------------
@dataclass
class CellCase:
    """A cell with drawn parameters, an input, a previous state and an upstream gradient."""

    kind: str
    cell: object
    x: np.ndarray  # (B, D) or unbatched (D,)
    state: object  # h, or (h, c) for LSTM; shaped (B, H) or (H,)
    dstate: object  # upstream gradient of the new state, shaped like ``state``
    batch: Optional[int]  # None when unbatched

    def preactivation(self) -> np.ndarray:
        """``W_ih x + b_ih + W_hh h + b_hh`` (for keeping ReLU away from its kink)."""
        p = self.cell.params
        h = unpack_state(self.state)[0]
        a = self.x @ p["weight_ih"].T + h @ p["weight_hh"].T
        return a + p["bias_ih"] + p["bias_hh"] if "bias_ih" in p else a


@st.composite
def cell_cases(draw, kinds=KINDS, max_size=4, max_batch=3, bias=None):
    """A :class:`CellCase`: sizes, batch (None for unbatched), bias on/off, then arrays."""
    kind = draw(st.sampled_from(kinds))
    D = draw(st.integers(1, max_size))
    H = draw(st.integers(1, max_size))
    batch = draw(st.sampled_from((None, *range(1, max_batch + 1))))
    with_bias = draw(st.booleans()) if bias is None else bias
    cell = make_cell(kind, D, H, bias=with_bias, seed=0)
    cell.load_state_dict(draw(param_arrays({k: v.shape for k, v in cell.params.items()}, H)))
    lead = () if batch is None else (batch,)
    x = draw(arrays(lead + (D,)))
    state = pack_state(kind, [draw(arrays(lead + (H,))) for _ in range(num_states(kind))])
    dstate = pack_state(kind, [draw(upstream_arrays(lead + (H,)))
                               for _ in range(num_states(kind))])
    return CellCase(kind, cell, x, state, dstate, batch)


# -- layers ----------------------------------------------------------------------------------
@dataclass
class LayerConfig:
    """One point of the configuration space of :class:`npseq.RNN`, ``LSTM`` and ``GRU``."""

    kind: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    dropout: float = 0.0
    bidirectional: bool = False
    proj_size: int = 0
    seq_len: int = 3
    batch: Optional[int] = 2  # None for unbatched input
    seed: int = 0
    options: dict = field(default_factory=dict)  # variant options (layer_norm=True, ...)
    checkpoint_every: Optional[int] = None

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.proj_size or self.hidden_size

    def kwargs(self) -> dict:
        """Constructor keyword arguments shared by npseq and torch.nn (no dtype, no seed)."""
        kw = dict(num_layers=self.num_layers, bias=self.bias, batch_first=self.batch_first,
                  dropout=self.dropout, bidirectional=self.bidirectional)
        if self.kind == "lstm":
            kw["proj_size"] = self.proj_size
        if self.kind.startswith("rnn_"):
            kw["nonlinearity"] = self.kind[4:]
        return kw

    def build(self, dtype=np.float64):
        """The npseq layer (weights from ``seed``: U(+-1/sqrt(H)), biases non-zero a.s.)."""
        cls = {"lstm": npseq.LSTM, "gru": npseq.GRU}.get(self.kind, npseq.RNN)
        return cls(self.input_size, self.hidden_size, dtype=dtype, seed=self.seed,
                   checkpoint_every=self.checkpoint_every, **self.kwargs(), **self.options)

    def x_shape(self) -> tuple:
        T, B, D = self.seq_len, self.batch, self.input_size
        if B is None:
            return (T, D)
        return (B, T, D) if self.batch_first else (T, B, D)

    def out_shape(self) -> tuple:
        return self.x_shape()[:-1] + (self.num_directions * self.output_size,)

    def state_shapes(self) -> list:
        """Shapes of ``h_0`` [and ``c_0``]: (L*D, B, H_out) [(L*D, B, H)], no B unbatched."""
        lead = (self.num_layers * self.num_directions,)
        lead += () if self.batch is None else (self.batch,)
        sizes = (self.output_size, self.hidden_size)[:num_states(self.kind)]
        return [lead + (s,) for s in sizes]


@st.composite
def layer_configs(draw, kinds=KINDS, max_layers=3, max_size=4, max_len=5, max_batch=3,
                  dropout=True):
    """A :class:`LayerConfig` drawn over the whole configuration space."""
    kind = draw(st.sampled_from(kinds))
    H = draw(st.integers(1, max_size))
    num_layers = draw(st.integers(1, max_layers))
    with_proj = kind == "lstm" and H > 1 and draw(st.booleans())
    proj = draw(st.integers(1, H - 1)) if with_proj else 0
    p = draw(st.sampled_from((0.0, 0.25, 0.5))) if dropout and num_layers > 1 else 0.0
    return LayerConfig(
        kind=kind, input_size=draw(st.integers(1, max_size)), hidden_size=H,
        num_layers=num_layers, bias=draw(st.booleans()), batch_first=draw(st.booleans()),
        dropout=p, bidirectional=draw(st.booleans()), proj_size=proj,
        seq_len=draw(st.integers(1, max_len)),
        batch=draw(st.sampled_from((None, *range(1, max_batch + 1)))),
        seed=draw(st.integers(0, 2 ** 16)))


@dataclass
class LayerCase:
    """A configuration, its input, lengths, initial state and upstream gradients."""

    config: LayerConfig
    x: np.ndarray
    lengths: Optional[np.ndarray]  # (B,) ints in 1..T, any order; None for full sequences
    state: object  # h0, or (h0, c0) for LSTM; None for zeros
    dout: np.ndarray
    dstate: object  # gradient of h_n [and c_n], shaped like the state
    extra: dict = field(default_factory=dict)


def lengths_for(T: int, B: int):
    """Lengths in 1..T for B sequences, in any order (often some of length 1)."""
    return hnp.arrays(np.int64, (B,), elements=st.integers(1, T), fill=st.nothing())


@st.composite
def layer_cases(draw, configs=None, with_lengths=None, with_state=None):
    """A :class:`LayerCase` for a config drawn from ``configs`` (default :func:`layer_configs`).

    ``with_lengths`` / ``with_state``: None to draw whether, else force. Lengths are drawn
    only for batched input.
    """
    cfg = draw(configs if configs is not None else layer_configs())
    use_lengths = draw(st.booleans()) if with_lengths is None else with_lengths
    use_state = draw(st.booleans()) if with_state is None else with_state
    x = draw(arrays(cfg.x_shape()))
    lengths = None
    if use_lengths and cfg.batch is not None:
        lengths = draw(lengths_for(cfg.seq_len, cfg.batch))
    state = (pack_state(cfg.kind, [draw(arrays(s)) for s in cfg.state_shapes()])
             if use_state else None)
    dout = draw(upstream_arrays(cfg.out_shape()))
    dstate = pack_state(cfg.kind, [draw(upstream_arrays(s)) for s in cfg.state_shapes()])
    return LayerCase(cfg, x, lengths, state, dout, dstate)


# -- sequences past one block ----------------------------------------------------------------
# The BPTT driver forms the input projection and the weight gradients one block of about 512
# rows of (T*B, .) at a time. T*B drawn in [MIN_ROWS, MAX_ROWS] spans two or more blocks, so
# a block summed wrongly, or a direction visiting its blocks in the wrong order, shows.
MIN_ROWS, MAX_ROWS = 1100, 1500

# Variant options drawn for the LSTM and GRU: every activation smooth. With thousands of
# units, some sit within a finite-difference step (or a float32 rounding) of a kink (ReLU at
# 0; hard_sigmoid at +-3, where layer norm puts many gate pre-activations), and crossing it
# moves a gradient by a whole row. Fixed cases check ReLU (central differences) and
# hard_sigmoid (float32 against float64) at these sizes.
# Well-conditioned models only, so that float32 and central differences are held to what
# the sizes predict: the LSTM keeps tanh as its activation (with a sigmoid, g > 0 makes c
# grow to about g / (1 - f) and its gradients sums that cancel); the GRU keeps sigmoid gates
# (with tanh, z < 0 makes h = (1 - z) n + z h_prev grow); tanh gates on a layer-normalised
# LSTM, whose gate pre-activations never shrink, make it chaotic over 1000 steps (central
# differences then err by O(1), shrinking as eps**2: truncation, not a wrong gradient).
ACTIVATIONS = {"lstm": ("tanh",), "gru": ("tanh", "sigmoid")}
GATE_ACTIVATIONS = {"lstm": ("sigmoid", "tanh"), "gru": ("sigmoid",), "layer_norm": ("sigmoid",)}


@st.composite
def variant_options(draw, kind: str, hidden_size: int, torch_only: bool = False):
    """Constructor options of a cell variant for ``kind`` (``{}`` for the RNNs).

    LSTM: a projection, ``layer_norm`` or ``peephole`` (or none), with drawn activations;
    GRU: ``reset_after`` with drawn activations. ``torch_only``: only what torch.nn has (a
    projection), returned as ``{"proj_size": p}`` or ``{}``.
    """
    if kind.startswith("rnn_"):
        return {}
    structure = (("plain", "proj") if kind == "lstm" else ("plain",)) if torch_only else (
        ("plain", "proj", "layer_norm", "peephole") if kind == "lstm" else
        ("plain", "reset_before"))
    choice = draw(st.sampled_from(structure))
    options = {}
    if choice == "proj" and hidden_size > 1:
        options["proj_size"] = draw(st.integers(1, hidden_size - 1))
    elif choice in ("layer_norm", "peephole"):
        options[choice] = True
    elif choice == "reset_before":
        options["reset_after"] = False
    if not torch_only:
        options["activation"] = draw(st.sampled_from(ACTIVATIONS[kind]))
        gates = GATE_ACTIVATIONS["layer_norm" if choice == "layer_norm" else kind]
        options["recurrent_activation"] = draw(st.sampled_from(gates))
    return options


@st.composite
def long_configs(draw, kinds=KINDS, max_layers=2, max_size=3, max_batch=8, variants=True,
                 checkpointing=True, bidirectional=None, min_layers=1):
    """A :class:`LayerConfig` with ``MIN_ROWS <= T*B <= MAX_ROWS`` (several driver blocks).

    Draws the cell kind, its variant options (only torch.nn's with ``variants=False``),
    ``min_layers``..``max_layers`` layers, both directions or one (or as ``bidirectional``
    forces), ``batch_first``, ``checkpoint_every`` (None, or 1 up to past T) and small
    feature sizes (to stay fast). No dropout, batched.
    """
    kind = draw(st.sampled_from(kinds))
    H = draw(st.integers(2, max_size + 1))
    B = draw(st.integers(1, max_batch))
    T = draw(st.integers(-(-MIN_ROWS // B), MAX_ROWS // B))
    options = dict(draw(variant_options(kind, H, torch_only=not variants)))
    proj = options.pop("proj_size", 0)
    if options.get("layer_norm"):  # over few units layer norm is near-singular: over long
        H = max(H, 8)  # sequences its 1/std makes central differences err by O(1) (a dev
        # run drew H=4, T=1100, B=1: error 0.1, with gradients bit-equal to before the
        # core's rewrite, so the conditioning and not the backward)
    k = None
    if checkpointing and draw(st.booleans()):
        k = draw(st.sampled_from((1, 2, 7, 64, T - 1, T + 5)))
    return LayerConfig(
        kind=kind, input_size=draw(st.integers(1, max_size)), hidden_size=H,
        num_layers=draw(st.integers(min_layers, max_layers)), bias=True,
        batch_first=draw(st.booleans()),
        bidirectional=draw(st.booleans()) if bidirectional is None else bidirectional,
        proj_size=proj,
        seq_len=T, batch=B, seed=draw(st.integers(0, 2 ** 16)), options=options,
        checkpoint_every=k)


def randomise(module, rng):
    """Every parameter random and non-zero, in place: weights in +-1/sqrt(H) (as PyTorch's
    init), biases of either sign with |b| in [0.1, 0.5], layer-norm gains in [0.5, 1.5]."""
    bound = 1.0 / np.sqrt(module.hidden_size)
    for name, p in module.params.items():
        if name.startswith("ln_") and "_weight" in name:
            p[...] = rng.uniform(0.5, 1.5, p.shape)
        elif "bias" in name:
            p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.1, 0.5, p.shape)
        else:
            p[...] = rng.choice([-1.0, 1.0], p.shape) * rng.uniform(0.05, bound, p.shape)
    return module


def seeded_case(cfg: LayerConfig, seed: int, lengths=None, with_state=True) -> LayerCase:
    """A :class:`LayerCase` for ``cfg`` whose arrays come from ``numpy.random`` seeded with
    ``seed`` (hypothesis draws the seed): x and the initial state in [-1, 1], upstream
    gradients of either sign with magnitude in [0.1, 1] (never constant).

    Element-by-element drawing (``arrays``) is the rule for small arrays; at thousands of
    rows it takes seconds an example and its shrinking of single elements means nothing.
    """
    rng = np.random.default_rng(seed)

    def upstream(shape):
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.1, 1.0, shape)

    state = (pack_state(cfg.kind, [rng.uniform(-1, 1, s) for s in cfg.state_shapes()])
             if with_state else None)
    return LayerCase(cfg, rng.uniform(-1, 1, cfg.x_shape()),
                     None if lengths is None else np.asarray(lengths), state,
                     upstream(cfg.out_shape()),
                     pack_state(cfg.kind, [upstream(s) for s in cfg.state_shapes()]))
