"""Saving and loading models: one ``.npz`` file with the weights and how to rebuild the model.

The file is a plain NumPy archive, readable without npseq::

    data = np.load("model.npz")
    data["0.weight_ih_l0"]            # every parameter, under its state_dict key
    json.loads(str(data["__npseq__"]))  # {"format": "npseq", "version": 1, "model": {...}}

The ``model`` entry names the class and its constructor arguments, e.g.
``{"class": "LSTM", "args": {"input_size": 3, "hidden_size": 8, ...}}``; a
:class:`~npseq.Sequential` lists its modules under ``"modules"``. :func:`load` rebuilds the
model from it and copies the weights in, after checking that the file matches.
"""
from __future__ import annotations

import inspect
import json
import os
import zipfile
from collections.abc import Iterable
from typing import IO, Any, Union

import numpy as np

from npseq.cell import GRUCell, LSTMCell, RNNCell
from npseq.cells.base import CellKind
from npseq.dropout import Dropout, LockedDropout
from npseq.layers import GRU, LSTM, RNN
from npseq.model import FinalState, LastStep, Sequential
from npseq.lru import LRU
from npseq.modern import IndRNN, MinGRU, MinLSTM
from npseq.module import Module
from npseq.nn import Embedding, Linear
from npseq.recurrent import Recurrent, RecurrentCell
from npseq.seq2seq import Seq2Seq
from npseq.xlstm import MLSTM, SLSTM

#: What ``save`` and ``load`` take as ``path``: a file name or a binary file object.
PathLike = Union[str, "os.PathLike[str]", IO[bytes]]

__all__ = ["save", "load"]

CONFIG_KEY = "__npseq__"
FORMAT_VERSION = 1
CLASSES = {cls.__name__: cls for cls in (RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, Linear,
                                         Embedding, LastStep, FinalState, Sequential,
                                         Recurrent, RecurrentCell, Dropout, LockedDropout,
                                         IndRNN, MinGRU, MinLSTM, Seq2Seq, LRU, SLSTM, MLSTM)}


def _config(module: Any, where: str = "model") -> dict:
    """Class name and constructor arguments, read back from the module's attributes.

    An argument is read from the attribute of its name, or from the attribute that the
    class's ``CONFIG_ATTRIBUTES`` maps it to (e.g. Seq2Seq's ``attention`` argument, kept as
    ``attention_kind`` because ``attention`` is its attention module).
    """
    name = type(module).__name__
    if CLASSES.get(name) is not type(module):
        raise TypeError(f"{where}: expected one of {sorted(CLASSES)} to save, got {name}")
    if isinstance(module, Sequential):
        return {"class": name, "modules": [_config(m, f"{where}[{i}]")
                                           for i, m in enumerate(module.modules)]}
    args = {}
    renamed = getattr(type(module), "CONFIG_ATTRIBUTES", {})
    for arg in inspect.signature(type(module).__init__).parameters:
        if arg in ("self", "seed"):  # the weights are saved; the seed is not needed
            continue
        if arg == "dtype":
            value = module.dtype.name
        elif arg == "kind":  # a cell of the user's: saved by name, given again to load()
            value = module.kind.name  # type: ignore[union-attr]
        elif hasattr(module, renamed.get(arg, arg)):
            value = getattr(module, renamed.get(arg, arg))
        else:
            raise TypeError(f"{where}: cannot save {name}: its constructor argument {arg!r} "
                            f"is not kept as an attribute")
        if isinstance(value, tuple) and all(isinstance(v, (int, float)) for v in value):
            value = list(value)  # e.g. zoneout=(p_h, p_c)
        elif value is not None and not isinstance(value, (bool, int, float, str)):
            raise TypeError(f"{where}: cannot save argument {arg}={value!r} of {name} (only "
                            f"None, numbers, strings and tuples of numbers are saved)")
        args[arg] = value
    return {"class": name, "args": args}


def save(path: PathLike, model: Module) -> None:
    """Save a model's weights and configuration to one ``.npz`` file.

    Parameters
    ----------
    path : str, os.PathLike or a binary file object
        Written exactly as given (no ``.npz`` is appended).
    model : npseq.RNN, LSTM, GRU, RNNCell, LSTMCell, GRUCell, Linear, Embedding, LastStep,
        FinalState, Dropout, LockedDropout, IndRNN, MinGRU, MinLSTM, Seq2Seq, Recurrent,
        RecurrentCell, or a Sequential of these. A ``Recurrent`` or ``RecurrentCell`` saves
        its cell kind by name; :func:`load` takes the kind again.

    Raises
    ------
    TypeError
        The model (or one of its modules) is of a class that cannot be rebuilt.

    Examples
    --------
    >>> import numpy as np, npseq, tempfile, os
    >>> model = npseq.Sequential(npseq.GRU(2, 4, seed=0), npseq.Linear(4, 1, seed=1))
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> npseq.save(path, model)
    >>> same = npseq.load(path)
    >>> x = np.ones((3, 1, 2))
    >>> bool(np.all(same(x)[0] == model(x)[0]))
    True
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected an npseq model, got {type(model).__name__}")
    config = {"format": "npseq", "version": FORMAT_VERSION, "model": _config(model)}
    arrays = dict(model.params)
    arrays[CONFIG_KEY] = np.array(json.dumps(config))
    if isinstance(path, (str, os.PathLike)):
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    elif hasattr(path, "write"):
        np.savez(path, **arrays)
    else:
        raise TypeError(f"path: expected a file name or a binary file object, got "
                        f"{type(path).__name__}")


def _build(config, where, kinds):
    """A model from its configuration (weights still random)."""
    if not isinstance(config, dict) or not isinstance(config.get("class"), str):
        raise ValueError(f"{where}: expected {{'class': ..., 'args': ...}}, got {config!r}")
    name = config["class"]
    if name not in CLASSES:
        raise ValueError(f"{where}: unknown class {name!r}; expected one of "
                         f"{sorted(CLASSES)}")
    if name == "Sequential":
        modules = config.get("modules")
        if not isinstance(modules, list):
            raise ValueError(f"{where}: expected a list of modules for Sequential")
        return Sequential(*[_build(c, f"{where}[{i}]", kinds)
                            for i, c in enumerate(modules)])
    args = dict(config.get("args", {}))
    if "kind" in args:
        kind = args["kind"]
        if kind not in kinds:
            raise ValueError(f"{where}: the file holds a {name} of the cell kind {kind!r}; "
                             f"pass that npseq.CellKind to load, e.g. npseq.load(path, "
                             f"kinds=[{kind}]) (got kinds for {sorted(kinds)})")
        args["kind"] = kinds[kind]
    try:
        return CLASSES[name](**args)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: cannot rebuild {name} from {args!r}: {err}") from None


def load(path: PathLike, kinds: Union[CellKind, Iterable[CellKind]] = ()) -> Module:
    """Rebuild a model saved by :func:`save` and copy its weights in.

    Parameters
    ----------
    path : str, os.PathLike or a binary file object
    kinds : CellKind or iterable of CellKind, optional
        The cell kinds of the ``Recurrent``/``RecurrentCell`` modules in the file, matched
        by name (a file keeps a kind's name, not its step functions).

    Returns
    -------
    The model, in training mode, its weights those of the file.

    Raises
    ------
    ValueError
        Not an npseq file (not an ``.npz`` archive, or no npseq configuration in it), an
        unknown class, or a weight of the wrong shape (the key is named).
    KeyError
        Weights missing from the file or not expected by the model (all keys are named).
    """
    kinds = _kinds_by_name(kinds)
    label = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "file"
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{label}: not an npseq file (not a NumPy .npz archive: {err})") \
            from None
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(f"{label}: not an npseq file (a single .npy array, not an .npz "
                         f"archive)")
    with data:
        if CONFIG_KEY not in data.files:
            raise ValueError(f"{label}: not an npseq file (no {CONFIG_KEY!r} entry with the "
                             f"model's configuration; was it written by npseq.save?)")
        try:
            config = json.loads(str(data[CONFIG_KEY]))
        except (ValueError, TypeError) as err:
            raise ValueError(f"{label}: not an npseq file (unreadable configuration: "
                             f"{err})") from None
        if not isinstance(config, dict) or config.get("format") != "npseq":
            raise ValueError(f"{label}: not an npseq file (configuration without "
                             f"format 'npseq')")
        if config.get("version") != FORMAT_VERSION:
            raise ValueError(f"{label}: unsupported npseq file version "
                             f"{config.get('version')!r}; this npseq reads version "
                             f"{FORMAT_VERSION}")
        model = _build(config.get("model"), f"{label}: model", kinds)
        weights = {k: data[k] for k in data.files if k != CONFIG_KEY}
    try:
        model.load_state_dict(weights)
    except (KeyError, ValueError) as err:
        message = err.args[0] if err.args else str(err)
        raise type(err)(f"{label}: {message}") from None
    return model


def _kinds_by_name(kinds: Any) -> dict:
    """``kinds`` (a CellKind or an iterable of them) as ``{name: kind}``."""
    if isinstance(kinds, CellKind):
        kinds = (kinds,)
    try:
        kinds = tuple(kinds)
    except TypeError:
        raise TypeError(f"kinds: expected an npseq.CellKind or an iterable of them, got "
                        f"{type(kinds).__name__}") from None
    for i, kind in enumerate(kinds):
        if not isinstance(kind, CellKind):
            raise TypeError(f"kinds[{i}]: expected an npseq.CellKind, got "
                            f"{type(kind).__name__}")
    return {kind.name: kind for kind in kinds}
