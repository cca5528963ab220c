"""The base of every npseq object that has parameters."""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from npseq._validation import StateDictKeyError, as_array


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

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.params: dict = {}
        self.grads: dict = {}
        self.training = True
        self._tape: list = []  # one record per forward call, popped by backward (LIFO)

    def _init_grads(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def zero_grad(self):
        """Set every gradient to zero."""
        for g in self.grads.values():
            g.fill(0)

    def train(self, mode=True):
        """Set training mode (dropout active); returns self."""
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode: expected True or False, got {mode!r}")
        self.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (no dropout); returns self."""
        return self.train(False)

    def state_dict(self) -> dict:
        """Copies of the parameters."""
        return {k: v.copy() for k, v in self.params.items()}

    def load_state_dict(self, state_dict):
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

    def _push(self, record):
        self._tape.append(record)

    def _peek(self, what="forward"):
        """The record of the most recent unpaired forward call, left on the tape.

        ``backward`` checks its arguments against it and only then pops it, so that a
        backward call that fails its checks can be corrected and repeated.
        """
        if not self._tape:
            raise RuntimeError(f"backward: no {what} call to pair it with; call the module "
                               f"on an input first (and not inside npseq.no_grad())")
        return self._tape[-1]

    def _pop(self, what="forward"):
        record = self._peek(what)
        self._tape.pop()
        return record

    def _accumulate(self, grads):
        for k, g in grads.items():
            self.grads[k] += g


def _to_numpy(value):
    """Accept tensors of other libraries that offer ``.detach().cpu().numpy()``."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        return value.detach().cpu().numpy()
    return value
