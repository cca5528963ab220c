"""Optimizers over ``params``/``grads`` dicts, with the semantics of ``torch.optim``.

An optimizer holds the live arrays of ``model.params`` and ``model.grads`` (the same keys) and
updates the parameters in place::

    opt = optim.Adam(model.params, model.grads, lr=1e-3)
    for x, y in batches:
        opt.zero_grad()
        out, _ = model(x)
        loss, dout = losses.mse_loss(out, y)
        model.backward(dout)
        optim.clip_grad_norm(model.grads, 1.0)
        opt.step()

Each update rule is written in the ``Notes`` of its class, as in PyTorch's documentation, and
gives the same numbers as ``torch.optim`` (the tests compare them to 1e-12 in float64).
:class:`ParamVector` flattens parameters and gradients for ``scipy.optimize``.

Learning-rate schedules (:class:`StepLR`, :class:`CosineAnnealingLR`,
:class:`ReduceLROnPlateau`) set ``opt.lr`` between steps, with the arguments and the numbers
of ``torch.optim.lr_scheduler``::

    sched = optim.CosineAnnealingLR(opt, T_max=epochs)
    for epoch in range(epochs):
        ...                     # opt.step() for each batch
        sched.step()            # ReduceLROnPlateau: sched.step(val_loss)
"""
from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Mapping

import numpy as np

from npseq._typing import ArrayLike, Params
from npseq._validation import (StateDictKeyError, check_choice, check_int,
                               check_positive)

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "clip_grad_norm",
           "ParamVector", "LRScheduler", "StepLR", "CosineAnnealingLR", "ReduceLROnPlateau"]


def _check_number(name, value, minimum=0.0, below=None):
    """A real number ``>= minimum`` (and ``< below`` if given), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < minimum or (below is not None and value >= below):
        upper = f" and < {below}" if below is not None else ""
        raise ValueError(f"{name}: expected a finite number >= {minimum}{upper}, got {value}")
    return value


def _check_betas(betas):
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas: expected a pair (beta1, beta2), got {betas!r}")
    return (_check_number("betas[0]", betas[0], 0.0, 1.0),
            _check_number("betas[1]", betas[1], 0.0, 1.0))


def _check_params_grads(params, grads):
    """Two dicts of float arrays with the same keys and shapes (the live arrays are kept)."""
    for name, d in (("params", params), ("grads", grads)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name}: expected a dict of parameter names to arrays (e.g. "
                            f"model.{name}), got {type(d).__name__}")
    missing = [k for k in params if k not in grads]
    unexpected = [k for k in grads if k not in params]
    if missing or unexpected:
        problems = [f"missing keys {missing}"] if missing else []
        problems += [f"unexpected keys {unexpected}"] if unexpected else []
        raise StateDictKeyError(f"grads: expected the keys of params {list(params)}, got "
                                + " and ".join(problems))
    if not params:
        raise ValueError("params: expected at least one parameter, got an empty dict")
    for k, p in params.items():
        g = grads[k]
        for name, a in ((f"params[{k!r}]", p), (f"grads[{k!r}]", g)):
            if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
                raise TypeError(f"{name}: expected a float numpy array (updated in place), "
                                f"got {type(a).__name__}"
                                + (f" of dtype {a.dtype}" if isinstance(a, np.ndarray) else ""))
        if g.shape != p.shape:
            raise ValueError(f"grads[{k!r}]: expected shape {p.shape} (that of params[{k!r}]), "
                             f"got {g.shape}")
    return dict(params), {k: grads[k] for k in params}


class Optimizer:
    """Base class: keeps the dicts, the learning rate and per-parameter state.

    Subclasses implement ``_update(p, g, state)``, which changes ``p`` in place; ``state`` is
    a dict of this parameter's buffers, empty before the first step. ``g`` already includes
    the L2 penalty ``weight_decay * p``, except for decoupled weight decay (AdamW), which the
    subclass applies to ``p`` itself.
    """

    weight_decay = 0.0
    decoupled_weight_decay = False

    def __init__(self, params: Params, grads: Params, lr: float) -> None:
        self.params, self.grads = _check_params_grads(params, grads)
        self.lr = lr
        self.state: dict[str, dict] = {k: {} for k in self.params}

    @property
    def lr(self) -> float:
        """The learning rate; settable (e.g. by a schedule) between steps."""
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_number("lr", value)

    def step(self) -> None:
        """Update every parameter in place from its current gradient."""
        for k, p in self.params.items():
            g = self.grads[k]
            if self.weight_decay and not self.decoupled_weight_decay:
                g = g + self.weight_decay * p  # L2 penalty: d/dp (weight_decay / 2) |p|^2
            self._update(p, g, self.state[k])

    def zero_grad(self) -> None:
        """Set every gradient to zero (in place)."""
        for g in self.grads.values():
            g.fill(0)

    def _update(self, p, g, state):
        raise NotImplementedError

    def __repr__(self):
        names = [a for a in inspect.signature(type(self).__init__).parameters
                 if a not in ("self", "params", "grads")]
        opts = ", ".join(f"{a}={getattr(self, a)!r}" for a in names)
        return f"{type(self).__name__}({opts})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as ``torch.optim.SGD``.

    Parameters
    ----------
    params, grads : dict of str -> ndarray
        The live parameters and their gradients (e.g. ``model.params``, ``model.grads``).
    lr : float
    momentum : float, default 0
    dampening : float, default 0
    nesterov : bool, default False
        Needs ``momentum > 0`` and ``dampening == 0``.
    weight_decay : float, default 0
        L2 penalty added to the gradient.

    Notes
    -----
    For each parameter ``p`` with gradient ``g`` (``b`` is the momentum buffer, which
    starts as the first ``g``)::

        g = g + weight_decay p
        b = momentum b + (1 - dampening) g       (b = g at the first step)
        g = g + momentum b                       with nesterov
        g = b                                    without
        p = p - lr g
    """

    def __init__(self, params: Params, grads: Params, lr: float, momentum: float = 0.0,
                 dampening: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        self.momentum = _check_number("momentum", momentum)
        self.dampening = _check_number("dampening", dampening)
        if not isinstance(nesterov, (bool, np.bool_)):
            raise TypeError(f"nesterov: expected True or False, got {nesterov!r}")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"nesterov: needs momentum > 0 and dampening == 0, got "
                             f"momentum={self.momentum}, dampening={self.dampening}")
        self.nesterov = bool(nesterov)
        self.weight_decay = _check_number("weight_decay", weight_decay)


    def _update(self, p, g, state):
        if self.momentum:
            if "momentum_buffer" not in state:
                b = state["momentum_buffer"] = g.copy()
            else:
                b = state["momentum_buffer"]
                b *= self.momentum
                b += (1 - self.dampening) * g
            g = g + self.momentum * b if self.nesterov else b
        p -= self.lr * g


class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (L2 weight decay added to the gradient).

    Parameters
    ----------
    params, grads : dict of str -> ndarray
    lr : float, default 1e-3
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moment estimates.
    eps : float, default 1e-8
    weight_decay : float, default 0

    Notes
    -----
    At step ``t = 1, 2, ...``, with ``m`` and ``v`` starting at zero::

        g = g + weight_decay p
        m = beta1 m + (1 - beta1) g
        v = beta2 v + (1 - beta2) g**2
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, params: Params, grads: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        self.betas = _check_betas(betas)
        self.eps = _check_number("eps", eps)
        self.weight_decay = _check_number("weight_decay", weight_decay)


    def _update(self, p, g, state):
        beta1, beta2 = self.betas
        if self.decoupled_weight_decay:
            p *= 1 - self.lr * self.weight_decay
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p), exp_avg_sq=np.zeros_like(p))
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # m = beta1 m + (1 - beta1) g
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = self.lr / (1 - beta1 ** t)
        denom = np.sqrt(v) / np.sqrt(1 - beta2 ** t) + self.eps
        p -= step_size * m / denom


class AdamW(Adam):
    """Adam with decoupled weight decay, as ``torch.optim.AdamW``.

    Parameters as :class:`Adam`, but ``weight_decay`` defaults to 1e-2.

    Notes
    -----
    The weights decay directly, before the Adam step (which then uses ``g`` unchanged)::

        p = p (1 - lr weight_decay)
        m, v, p updated as in Adam with weight_decay = 0
    """

    decoupled_weight_decay = True  # the weights decay directly, not through the gradient

    def __init__(self, params: Params, grads: Params, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2) -> None:
        super().__init__(params, grads, lr, betas, eps, weight_decay)


class RMSprop(Optimizer):
    """RMSprop, as ``torch.optim.RMSprop``.

    Parameters
    ----------
    params, grads : dict of str -> ndarray
    lr : float, default 1e-2
    alpha : float, default 0.99
        Decay rate of the mean square.
    eps : float, default 1e-8
    momentum : float, default 0
    centered : bool, default False
        Normalise by the estimated variance instead of the mean square.
    weight_decay : float, default 0

    Notes
    -----
    With ``v``, ``mu`` and ``b`` starting at zero::

        g  = g + weight_decay p
        v  = alpha v + (1 - alpha) g**2
        mu = alpha mu + (1 - alpha) g              centered only
        d  = sqrt(v - mu**2) + eps                 centered
        d  = sqrt(v) + eps                         otherwise
        b  = momentum b + g / d ;  p = p - lr b    with momentum > 0
        p  = p - lr g / d                          without
    """

    def __init__(self, params: Params, grads: Params, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, momentum: float = 0.0, centered: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(params, grads, lr)
        self.alpha = _check_number("alpha", alpha)
        self.eps = _check_number("eps", eps)
        self.momentum = _check_number("momentum", momentum)
        if not isinstance(centered, (bool, np.bool_)):
            raise TypeError(f"centered: expected True or False, got {centered!r}")
        self.centered = bool(centered)
        self.weight_decay = _check_number("weight_decay", weight_decay)


    def _update(self, p, g, state):
        if not state:
            state["square_avg"] = np.zeros_like(p)
            if self.centered:
                state["grad_avg"] = np.zeros_like(p)
            if self.momentum:
                state["momentum_buffer"] = np.zeros_like(p)
        v = state["square_avg"]
        v *= self.alpha
        v += (1 - self.alpha) * g * g
        if self.centered:
            mu = state["grad_avg"]
            mu += (1 - self.alpha) * (g - mu)  # mu = alpha mu + (1 - alpha) g
            d = np.sqrt(v - mu * mu) + self.eps
        else:
            d = np.sqrt(v) + self.eps
        if self.momentum:
            b = state["momentum_buffer"]
            b *= self.momentum
            b += g / d
            p -= self.lr * b
        else:
            p -= self.lr * g / d


class Adagrad(Optimizer):
    """Adagrad, as ``torch.optim.Adagrad``.

    Parameters
    ----------
    params, grads : dict of str -> ndarray
    lr : float, default 1e-2
    lr_decay : float, default 0
    weight_decay : float, default 0
    initial_accumulator_value : float, default 0
    eps : float, default 1e-10

    Notes
    -----
    At step ``t = 1, 2, ...``, with ``s`` starting at ``initial_accumulator_value``::

        g = g + weight_decay p
        s = s + g**2
        p = p - lr / (1 + (t - 1) lr_decay) * g / (sqrt(s) + eps)
    """

    def __init__(self, params: Params, grads: Params, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10) -> None:
        super().__init__(params, grads, lr)
        self.lr_decay = _check_number("lr_decay", lr_decay)
        self.weight_decay = _check_number("weight_decay", weight_decay)
        self.initial_accumulator_value = _check_number("initial_accumulator_value",
                                                       initial_accumulator_value)
        self.eps = _check_number("eps", eps)


    def _update(self, p, g, state):
        if not state:
            state.update(step=0, sum=np.full_like(p, self.initial_accumulator_value))
        state["step"] += 1
        s = state["sum"]
        s += g * g
        clr = self.lr / (1 + (state["step"] - 1) * self.lr_decay)
        p -= clr * g / (np.sqrt(s) + self.eps)


def clip_grad_norm(grads: Params, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients in place so that their global norm is at most ``max_norm``.

    As ``torch.nn.utils.clip_grad_norm_``.

    Parameters
    ----------
    grads : dict of str -> ndarray (e.g. ``model.grads``), or a list of arrays
    max_norm : float
        A finite number > 0 (0 would zero every gradient: a ``ValueError``).
    norm_type : float, default 2.0
        The p of the p-norm, or ``float("inf")`` for the largest absolute value.

    Returns
    -------
    total_norm : float
        The norm of all gradients together, BEFORE clipping.

    Notes
    -----
    ::

        total_norm = (sum over every gradient entry |g|**p) ** (1/p)
                   = m (sum (|g| / m)**p) ** (1/p),   m = max |g|  (no overflow)
        g = g * min(1, max_norm / (total_norm + 1e-6))
    """
    arrays = list(grads.values()) if isinstance(grads, Mapping) else grads
    if not isinstance(arrays, (list, tuple)) or not all(
            isinstance(g, np.ndarray) and g.dtype.kind == "f" for g in arrays):
        raise TypeError(f"grads: expected a dict (or list) of float numpy arrays, got "
                        f"{type(grads).__name__}")
    max_norm = check_positive("max_norm", max_norm)
    inf_norm = norm_type == float("inf")
    if not inf_norm:
        norm_type = _check_number("norm_type", norm_type, minimum=1.0)
    if not arrays:
        return 0.0
    largest = max(float(np.max(np.abs(g), initial=0.0)) for g in arrays)  # the inf-norm
    if inf_norm:
        total = largest
    else:
        # scaled by the largest |g| first, so that |g|**p neither overflows (|g| ~ 1e200)
        # nor underflows (|g| ~ 1e-200): total = m (sum (|g| / m)**p)**(1/p)
        m = largest if 0 < largest < np.inf else 1.0  # 0, inf or nan: nothing to scale
        sums = [np.sum((np.abs(g.astype(np.float64)) / m) ** norm_type) for g in arrays]
        total = m * float(np.sum(sums) ** (1.0 / norm_type))
    coef = min(max_norm / (total + 1e-6), 1.0)
    for g in arrays:
        g *= g.dtype.type(coef)
    return total


class ParamVector:
    """All parameters (and gradients) as one flat float64 vector, for ``scipy.optimize``.

    Parameters
    ----------
    params, grads : dict of str -> ndarray
        The live arrays (e.g. ``model.params``, ``model.grads``), in a fixed key order.

    Examples
    --------
    Full-batch training with L-BFGS, the gradient written by hand::

        pv = optim.ParamVector(model.params, model.grads)

        def fun(theta):
            pv.set(theta)
            model.zero_grad()
            out, _ = model(x)
            loss, dout = losses.mse_loss(out, y)
            model.backward(dout)
            return loss, pv.grad()

        res = scipy.optimize.minimize(fun, pv.get(), jac=True, method="L-BFGS-B")
        pv.set(res.x)
    """

    def __init__(self, params: Params, grads: Params) -> None:
        self.params, self.grads = _check_params_grads(params, grads)
        self.keys = list(self.params)
        sizes = [self.params[k].size for k in self.keys]
        self._bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(int)

    @property
    def size(self) -> int:
        """Length of the vector: the number of scalar parameters."""
        return int(self._bounds[-1])

    def __len__(self) -> int:
        return self.size

    def _flat(self, arrays: Params) -> np.ndarray:
        return np.concatenate([arrays[k].reshape(-1) for k in self.keys]).astype(np.float64)

    def get(self) -> np.ndarray:
        """A 1-D float64 copy of all parameters, in the order of :attr:`keys`."""
        return self._flat(self.params)

    def grad(self) -> np.ndarray:
        """A 1-D float64 copy of all gradients, in the same order as :meth:`get`."""
        return self._flat(self.grads)

    def set(self, theta: ArrayLike) -> None:
        """Write a vector from :meth:`get` (or an optimizer) into the live parameter arrays.

        Values are cast to each parameter's dtype; ``theta`` itself is not modified.
        """
        try:
            theta = np.asarray(theta)
        except (ValueError, TypeError):
            raise TypeError(f"theta: expected a 1-D array of floats, got "
                            f"{type(theta).__name__}") from None
        if theta.dtype.kind not in "iuf":
            raise TypeError(f"theta: expected a 1-D array of floats, got dtype {theta.dtype}")
        if theta.shape != (self.size,):
            raise ValueError(f"theta: expected shape ({self.size},) (the number of "
                             f"parameters), got {theta.shape}")
        for k, lo, hi in zip(self.keys, self._bounds[:-1], self._bounds[1:]):
            p = self.params[k]
            p[...] = theta[lo:hi].reshape(p.shape)


# -- learning-rate schedules -----------------------------------------------------------------
def _check_optimizer(optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected an npseq.optim optimizer (SGD, Adam, ...), got "
                        f"{type(optimizer).__name__}")
    return optimizer


class LRScheduler:
    """Base class of the schedules: sets ``optimizer.lr`` once per :meth:`step`.

    As ``torch.optim.lr_scheduler.LRScheduler`` for an optimizer with one parameter group:
    the schedule starts at ``last_epoch = 0`` with the optimizer's current learning rate
    (``base_lrs``), and each ``step()``, called after ``optimizer.step()``, advances
    ``last_epoch`` by one and writes the next learning rate into ``optimizer.lr``. A rate set
    by hand between steps is carried on, as in PyTorch (the rules are written recursively,
    from the current rate).

    Subclasses implement ``_next_lr(lr)``: the rate at ``last_epoch`` (already advanced) from
    the current one.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _check_optimizer(optimizer)
        self.base_lrs = [optimizer.lr]
        self.last_epoch = 0
        self._last_lr = [optimizer.lr]

    def step(self) -> None:
        """Advance the schedule by one epoch (or step) and set the optimizer's rate."""
        self.last_epoch += 1
        self.optimizer.lr = self._next_lr(self.optimizer.lr)
        self._last_lr = [self.optimizer.lr]

    def get_last_lr(self) -> list[float]:
        """The learning rate set by the last :meth:`step`, as a list of one float (PyTorch
        returns one per parameter group; an npseq optimizer has one)."""
        return list(self._last_lr)

    def _next_lr(self, lr):
        raise NotImplementedError

    def __repr__(self):
        names = [a for a in inspect.signature(type(self).__init__).parameters
                 if a not in ("self", "optimizer")]
        opts = ", ".join(f"{a}={getattr(self, a)!r}" for a in names)
        return f"{type(self).__name__}({opts})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps, as
    ``torch.optim.lr_scheduler.StepLR``.

    Parameters
    ----------
    optimizer : Optimizer
    step_size : int, >= 1
        Steps between two decays.
    gamma : float, default 0.1
        Factor of each decay (>= 0).

    Notes
    -----
    At step ``t = 1, 2, ...`` (``lr_0`` is the optimizer's rate when the schedule is made)::

        lr_t = lr_{t-1} * gamma     if t % step_size == 0
        lr_t = lr_{t-1}             otherwise
             = lr_0 * gamma ** (t // step_size)   (without changes by hand)

    Examples
    --------
    >>> import numpy as np
    >>> from npseq import optim
    >>> params, grads = {"w": np.zeros(3)}, {"w": np.zeros(3)}
    >>> opt = optim.SGD(params, grads, lr=1.0)
    >>> sched = optim.StepLR(opt, step_size=2, gamma=0.5)
    >>> rates = []
    >>> for epoch in range(5):
    ...     opt.step()
    ...     sched.step()
    ...     rates.append(sched.get_last_lr()[0])
    >>> rates
    [1.0, 0.5, 0.5, 0.25, 0.25]
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_int("step_size", step_size, minimum=1)
        self.gamma = _check_number("gamma", gamma)

    def _next_lr(self, lr):
        if self.last_epoch % self.step_size != 0:
            return lr
        return lr * self.gamma


class CosineAnnealingLR(LRScheduler):
    """Anneal the learning rate from its start to ``eta_min`` along a half cosine of
    ``T_max`` steps, as ``torch.optim.lr_scheduler.CosineAnnealingLR``.

    Parameters
    ----------
    optimizer : Optimizer
    T_max : int, >= 1
        Steps of the half period: the rate reaches ``eta_min`` at ``t = T_max``.
    eta_min : float, default 0
        The smallest learning rate.

    Notes
    -----
    Without changes by hand the rate follows (``lr_0`` the starting rate)::

        lr_t = eta_min + (lr_0 - eta_min) (1 + cos(pi t / T_max)) / 2

    and past ``T_max`` it climbs back (a cosine of period ``2 T_max``, no restart). As
    PyTorch, each step is computed from the current rate::

        lr_t = eta_min + (lr_{t-1} - eta_min) (1 + cos(pi t / T_max))
                                            / (1 + cos(pi (t - 1) / T_max))
        lr_t = lr_{t-1} + (lr_0 - eta_min) (1 - cos(pi / T_max)) / 2
                    when (t - 1 - T_max) % (2 T_max) == 0 (the denominator above is 0)

    so a rate set by hand below ``eta_min`` can become negative a few steps later, which the
    optimizer rejects (a ``ValueError``; PyTorch would step with it).
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_int("T_max", T_max, minimum=1)
        self.eta_min = _check_number("eta_min", eta_min)

    def _next_lr(self, lr):
        t, T_max, eta_min, base_lr = self.last_epoch, self.T_max, self.eta_min, self.base_lrs[0]
        if (t - 1 - T_max) % (2 * T_max) == 0:  # just past the trough
            return lr + (base_lr - eta_min) * (1 - math.cos(math.pi / T_max)) / 2
        return ((1 + math.cos(math.pi * t / T_max))
                / (1 + math.cos(math.pi * (t - 1) / T_max))
                * (lr - eta_min) + eta_min)


class ReduceLROnPlateau(LRScheduler):
    """Multiply the learning rate by ``factor`` when a metric has stopped improving, as
    ``torch.optim.lr_scheduler.ReduceLROnPlateau``.

    Call ``step(metric)`` once per epoch with the monitored value (e.g. the validation loss).

    Parameters
    ----------
    optimizer : Optimizer
    mode : {"min", "max"}, default "min"
        Whether the metric improves by falling (a loss) or by rising (an accuracy).
    factor : float, default 0.1
        ``new_lr = lr * factor``; in ``[0, 1)``.
    patience : int, default 10
        Epochs without improvement tolerated; the rate falls on the next one.
    threshold : float, default 1e-4
        How much better than the best value a metric must be to count as an improvement.
    threshold_mode : {"rel", "abs"}, default "rel"
    cooldown : int, default 0
        Epochs after a reduction during which bad epochs are not counted.
    min_lr : float, default 0
        The rate never falls below it.
    eps : float, default 1e-8
        A reduction smaller than ``eps`` is skipped.

    Notes
    -----
    With ``mode="min"``, a metric ``a`` improves on the best value so far when::

        a < best (1 - threshold)    threshold_mode "rel"
        a < best - threshold        threshold_mode "abs"

    (``mode="max"``: ``a > best (1 + threshold)``, ``a > best + threshold``). Each step::

        bad = 0 if improved (best = a) else bad + 1
        bad = 0 while in cooldown (cooldown counter > 0, counted down)
        if bad > patience:  lr = max(lr factor, min_lr) unless that changes lr by <= eps;
                            cooldown counter = cooldown; bad = 0

    A NaN metric never improves.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_lr: float = 0.0, eps: float = 1e-8) -> None:
        super().__init__(optimizer)
        self.mode = check_choice("mode", mode, ("min", "max"))
        self.factor = _check_number("factor", factor, 0.0, 1.0)
        self.patience = check_int("patience", patience, minimum=0)
        self.threshold = _check_number("threshold", threshold)
        self.threshold_mode = check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
        self.cooldown = check_int("cooldown", cooldown, minimum=0)
        self.min_lr = _check_number("min_lr", min_lr)
        self.eps = _check_number("eps", eps)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0

    def _is_better(self, a):
        if self.mode == "min" and self.threshold_mode == "rel":
            return a < self.best * (1.0 - self.threshold)
        if self.mode == "min":
            return a < self.best - self.threshold
        if self.threshold_mode == "rel":
            return a > self.best * (self.threshold + 1.0)
        return a > self.best + self.threshold

    def step(self, metric: float) -> None:  # type: ignore[override]
        """Count one epoch with the monitored ``metric`` (a number) and reduce the rate if it
        has not improved for more than ``patience`` epochs."""
        if isinstance(metric, (bool, np.bool_)) or not (
                isinstance(metric, numbers.Real)
                or (isinstance(metric, np.ndarray) and metric.shape == ()
                    and metric.dtype.kind in "iuf")):
            raise TypeError(f"metric: expected a number (e.g. the validation loss), got "
                            f"{metric!r} ({type(metric).__name__})")
        current = float(metric)
        self.last_epoch += 1
        if self._is_better(current):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0  # bad epochs in cooldown are not counted
        if self.num_bad_epochs > self.patience:
            old_lr = self.optimizer.lr
            new_lr = max(old_lr * self.factor, self.min_lr)
            if old_lr - new_lr > self.eps:
                self.optimizer.lr = new_lr
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [self.optimizer.lr]
