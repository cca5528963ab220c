"""The base of every npseq module: parameters, gradients, and the record of a forward call.

A forward call in training keeps a *record*: what its backward needs. A backward pairs with
a record and consumes it. How many records a module holds:

* a layer, a model or a head (:class:`Module`) holds the record of its **latest** forward
  call only. A new forward replaces a record that no backward used, and says so with an
  :class:`UnpairedForwardWarning` (it is usually an evaluation that should have run inside
  ``with npseq.no_grad():``); a forward inside ``no_grad()`` keeps no record, so a backward
  after it fails with a message instead of pairing with an older forward. Memory never
  grows with forward calls that no backward follows.
* a cell (``keeps_stack = True``) holds a last-in first-out stack, one record per call: a
  loop over time written by hand runs its backward steps in reverse order, as BPTT does.

:meth:`Module.clear_records` drops whatever is pending; :attr:`Module.pending_records` counts
it. Write a module of your own (e.g. a head) by subclassing :class:`Module`: set
``self.params``, call ``self._init_grads()``, push a record at the end of ``forward`` with
``self._push(record)`` (which keeps nothing inside ``no_grad()``),
and in ``backward`` read it with ``self._peek()``, check the arguments, then ``self._pop()``
it and add parameter gradients with ``self._accumulate(grads)``.
"""
from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from npseq import grad_mode
from npseq._validation import StateDictKeyError, as_array

__all__ = ["Module", "UnpairedForwardWarning"]


ModuleT = TypeVar("ModuleT", bound="Module")


class UnpairedForwardWarning(UserWarning):
    """A forward call's record was dropped before any backward used it."""


class Module:
    """Parameters and their gradients, as dicts keyed like PyTorch's ``state_dict``.

    Attributes
    ----------
    params : dict of str -> ndarray
        The live parameter arrays. An optimizer updates them in place.
    grads : dict of str -> ndarray
        Same keys and shapes; ``backward`` adds into them, :meth:`zero_grad` resets them.
    training : bool
        Training mode (dropout on); :meth:`eval` turns it off.
    """

    def __init__(self, dtype: DTypeLike) -> None:
        self.dtype = np.dtype(dtype)
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True
        self._records: list = []  # pending forward records (at most one unless keeps_stack)
        self._latest_kept = True  # False after a forward inside no_grad()

    #: Cells keep one record per call (last in, first out); other modules only the latest.
    keeps_stack = False

    def _init_grads(self) -> None:
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        for g in self.grads.values():
            g.fill(0)

    def train(self: ModuleT, mode: bool = True) -> ModuleT:
        """Set training mode (dropout active); returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode: expected True or False, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self: ModuleT) -> ModuleT:
        """Set evaluation mode (no dropout); returns self."""
        return self.train(False)

    def state_dict(self) -> dict:
        """Copies of the parameters."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict: Mapping[str, ArrayLike]) -> None:
        """Copy parameters in from a mapping of array-likes with exactly this module's keys.

        Every key and shape is checked before any parameter is written, and one error names
        every problem found; the mapping and its arrays are not modified.

        Raises
        ------
        TypeError
            ``state_dict`` is not a mapping, or a value is not a real numeric array.
        KeyError
            Keys are missing or unexpected (all of them are named, and any wrong shapes).
        ValueError
            Values have the wrong shape (every such key is named).
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"state_dict: expected a mapping of parameter names to arrays, "
                            f"got {type(state_dict).__name__}")
        missing = [k for k in self.params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self.params]
        new, wrong = {}, []
        for k, target in self.params.items():
            if k in state_dict:
                value = as_array(f"state_dict[{k!r}]", _to_numpy(state_dict[k]), self.dtype)
                if value.shape != target.shape:
                    wrong.append(f"state_dict[{k!r}]: expected shape {target.shape}, "
                                 f"got {value.shape}")
                new[k] = value
        if missing or unexpected or wrong:
            problems = [f"missing keys {missing}"] if missing else []
            problems += [f"unexpected keys {unexpected}"] if unexpected else []
            messages = (["state_dict: expected the keys of this module, got "
                         + " and ".join(problems)] if problems else []) + wrong
            raise (StateDictKeyError if problems else ValueError)(
                "; ".join(messages) + f" (a state dict of another architecture or size? "
                f"This module is {self!r})")
        for k, value in new.items():  # all checked before any is written
            self.params[k][...] = value

    def num_parameters(self) -> int:
        """Total number of scalar parameters (PyTorch's ``sum(p.numel() ...)``)."""
        return int(sum(v.size for v in self.params.values()))

    @property
    def pending_records(self) -> int:
        """How many forward records wait for a backward (0 or 1; any number for a cell)."""
        return len(self._records)

    def clear_records(self: ModuleT) -> ModuleT:
        """Drop every pending forward record (and free its memory); returns self.

        A backward afterwards fails until the next forward call outside ``no_grad()``.
        """
        self._records.clear()
        return self

    def _drop_unpaired(self, why):
        """Drop a pending record that no backward used, with a warning saying ``why``."""
        if self.pending_records and not self.keeps_stack:
            warnings.warn(UnpairedForwardWarning(
                f"{type(self).__name__}.forward: dropped the record of an earlier forward "
                f"call that no backward used ({why}; a backward pairs with the latest forward "
                f"only). To evaluate without keeping records, run the forward inside `with "
                f"npseq.no_grad():`; to drop a record on purpose, call .clear_records() "
                f"first."), stacklevel=4)
            self.clear_records()

    def _push(self, record):
        """Keep ``record`` for the backward of this forward call; inside ``no_grad()`` keep
        nothing, and note that the latest forward kept no record."""
        if not grad_mode.is_grad_enabled():
            if not self.keeps_stack:
                self._drop_unpaired("a forward inside npseq.no_grad() followed it")
                self._latest_kept = False
            return
        self._drop_unpaired("a new forward call replaced it")
        self._records.append(record)
        self._latest_kept = True

    def _peek(self):
        """The record a backward pairs with, left in place.

        ``backward`` checks its arguments against it and only then pops it, so that a
        backward call that fails its checks can be corrected and repeated.
        """
        if not self._records:
            name = type(self).__name__
            if not self._latest_kept:
                raise RuntimeError(f"backward: no forward call to pair it with: the latest "
                                   f"forward of this {name} ran inside npseq.no_grad() and "
                                   f"kept no record; run the forward outside no_grad() "
                                   f"before a backward")
            raise RuntimeError(f"backward: no forward call to pair it with (each backward "
                               f"pairs with one forward call of this {name}, the latest); "
                               f"call the module on an input first, outside npseq.no_grad()")
        return self._records[-1]

    def _pop(self):
        record = self._peek()
        self._records.pop()
        return record

    def _accumulate(self, grads):
        for k, g in grads.items():
            self.grads[k] += g


def _to_numpy(value):
    """Accept tensors of other libraries that offer ``.detach().cpu().numpy()``."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value
