"""The long-range benchmark suite: a grid of (task, model, seed) runs, locally or on Dask.

    python benchmarks/long_range.py --quick                    # the whole grid, tiny, < 2 min
    python benchmarks/long_range.py --jobs 2                   # the default grid, 2 processes
    python benchmarks/long_range.py --scheduler tcp://HOST:8786    # the same runs on Dask
    python benchmarks/long_range.py --tasks adding-200 --models LSTM,GRU,RNN --seeds 0,1
    python benchmarks/long_range.py --models LSTM,mypkg.cells:LEAKY   # your own CellKind

One run is one plain function call, ``run_one(task, model, seed, settings) -> dict``: it
builds the task (:mod:`npseq.tasks`) and the model, trains it with Adam, evaluates it on the
task's validation set every ``eval_every`` steps (its learning curve, and the step at which
it first met the task's "solved" threshold there, where it stops), then measures the test set
once, at the end; it returns those metrics, its wall time and its parameter count. The test
set never decides anything in a run. Each finished run is appended to the
output file as one JSON line, so an interrupted grid started again with the same ``--out``
skips the runs already there and does the rest.

Models (``MODELS``, one entry each; add yours with one line, or ``--models module:attr``):
``RNN`` (tanh), ``IRNN`` (ReLU, identity recurrent matrix, zero biases: Le et al. 2015),
``LSTM`` (forget-gate bias 1), ``GRU``, ``IndRNN``, ``MinGRU``, ``MinLSTM``, ``LRU``
(eigenvalue moduli in [0.9, 0.999]), ``sLSTM`` (one head): one layer each,
its hidden size chosen so that the whole model (layer + linear read-out) has about
``--params`` parameters (printed before the grid). ``LSTM256x2`` is the configuration a user
learned from: a 2-layer LSTM with hidden size 256, Adam at 1e-3, whatever ``--params``;
the default grid (no ``--models``) runs it on ``mnist-rows`` only, with ``LSTM256x2drop``,
the same with dropout and zoneout (the ablation). Not in the default grid: ``LSTMchrono``,
an LSTM with the chrono initialisation for the task's length, and ``mLSTM`` (at most 64
units; slow).

Tasks: ``DEFAULT_TASKS`` (under an hour on 2 cores), or ``--full`` for ``FULL_TASKS``, which
adds adding-500, copy-200 and pixel MNIST (many hours: a pixel-MNIST LSTM step takes about a
second).
``module:attr`` names an :class:`npseq.CellKind` (run by :class:`npseq.Recurrent`) or a
factory ``f(input_size, hidden_size, num_layers, dtype=, seed=) -> layer`` (a layer class
such as ``npseq.GRU`` is one); it must be
importable where the run executes (each worker process, each Dask worker).

Execution: ``--jobs N`` runs N spawned processes (``concurrent.futures``), each with BLAS
limited to one thread; ``--scheduler tcp://HOST:PORT`` submits the same calls to a
``dask.distributed.Client`` (see docs/long_range.md for starting the scheduler and workers).
A progress bar when tqdm is installed (plain lines otherwise) and a summary line after each
run. At the end: a Markdown table (``--report``) and one PNG of learning curves per task.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import importlib
import json
import math
import os
import sys
import time
from typing import Callable, Optional

import numpy as np

import npseq
from npseq import optim, tasks
from npseq.analysis import count_parameters

BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
DTYPE = np.float32


# -- models --------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A model of the grid: ``factory(input_size, hidden_size, num_layers, dtype=, seed=)``
    returns the recurrent layer (a layer class such as ``npseq.GRU`` is such a factory); ``hidden_size=None`` matches the parameter budget, a number
    fixes it; ``lr`` (if set) overrides the grid's learning rate."""

    factory: Callable
    num_layers: int = 1
    hidden_size: Optional[int] = None
    lr: Optional[float] = None
    note: str = ""
    max_hidden: Optional[int] = None  # a cap below the grid's --max-hidden
    takes_length: bool = False  # the factory also takes max_len=, the task's sequence length


MODELS = {
    "RNN": ModelSpec(lambda i, h, n, **kw: npseq.RNN(i, h, n, "tanh", **kw), note="tanh"),
    "IRNN": ModelSpec(lambda i, h, n, **kw: npseq.init.identity_(npseq.RNN(i, h, n, "relu",
                                                                           **kw)),
                      lr=1e-3, note="ReLU, W_hh = I, b = 0, Adam 1e-3 (1e-2 diverges)"),
    "LSTM": ModelSpec(lambda i, h, n, **kw: npseq.init.forget_bias_(npseq.LSTM(i, h, n, **kw)),
                      note="forget-gate bias 1"),
    "LSTMchrono": ModelSpec(lambda i, h, n, max_len, **kw: npseq.init.chrono_(
        npseq.LSTM(i, h, n, **kw), max(max_len, 3), seed=kw["seed"]), takes_length=True,
        note="chrono initialisation, T_max = the sequence length (Tallec & Ollivier 2018)"),
    "GRU": ModelSpec(lambda *a, **kw: npseq.GRU(*a, **kw)),
    "IndRNN": ModelSpec(lambda *a, **kw: npseq.IndRNN(*a, **kw), note="ReLU"),
    "MinGRU": ModelSpec(lambda *a, **kw: npseq.MinGRU(*a, **kw), note="parallel scan"),
    "MinLSTM": ModelSpec(lambda *a, **kw: npseq.MinLSTM(*a, **kw), note="parallel scan"),
    "LSTM256x2": ModelSpec(lambda *a, **kw: npseq.LSTM(*a, **kw), num_layers=2,
                           hidden_size=256, lr=1e-3,
                           note="the user configuration: 2 x LSTM-256, Adam 1e-3"),
    "LSTM256x2drop": ModelSpec(lambda *a, **kw: npseq.LSTM(*a, dropout=0.3, zoneout=0.1, **kw),
                               num_layers=2, hidden_size=256, lr=1e-3,
                               note="the same, dropout 0.3 between the layers, zoneout 0.1"),
    "LRU": ModelSpec(lambda *a, **kw: npseq.LRU(*a, r_min=0.9, r_max=0.999, **kw),
                     note="eigenvalue moduli in [0.9, 0.999] (Orvieto et al.'s long-range "
                          "setting)"),
    "sLSTM": ModelSpec(lambda *a, **kw: npseq.SLSTM(*a, **kw), note="one head"),
    "mLSTM": ModelSpec(lambda *a, **kw: npseq.MLSTM(*a, **kw), max_hidden=64,
                       note="one head; at most 64 units: its (H, H) matrix memory makes a "
                            "step cost B H^2 (about 1 s a training step at T = 100, B = 64, "
                            "H = 64 here), so it is not in the default list"),
    # one line per new layer with the (input_size, hidden_size, num_layers, ...) signature,
    # looked up when a run builds it
}
DEFAULT_MODELS = ("RNN", "IRNN", "LSTM", "GRU", "IndRNN", "MinGRU", "MinLSTM", "LRU", "sLSTM")


def resolve_model(name) -> ModelSpec:
    """A registry name, or ``"module:attr"``: a CellKind or a layer factory."""
    if not isinstance(name, str):
        raise TypeError(f"model: expected a name such as 'LSTM' or 'module:attr', got {name!r}")
    if name in MODELS:
        return MODELS[name]
    if ":" not in name:
        raise ValueError(f"model: expected one of {', '.join(MODELS)} or 'module:attr' (a "
                         f"CellKind or a layer factory), got {name!r}")
    module_name, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"model: cannot load {name!r} ({err}); the module must be "
                         f"importable where the run executes") from None
    if isinstance(obj, npseq.CellKind):
        return ModelSpec(lambda *a, **kw: npseq.Recurrent(obj, *a, **kw),
                         note=f"CellKind {obj.name}")
    if callable(obj):
        return ModelSpec(obj, note="user factory")
    raise TypeError(f"model: {name!r} is a {type(obj).__name__}, expected an npseq.CellKind "
                    f"or a callable (input_size, hidden_size, num_layers, dtype=, seed=) -> "
                    f"layer")


def build_model(spec, task, hidden_size, seed):
    """``Sequential(layer, LastStep(), Linear)`` (read-out at the last step) or
    ``Sequential(layer, Linear)`` (at every step), as ``task.readout`` says."""
    length = {"max_len": task.test_set()[0].shape[0]} if spec.takes_length else {}
    layer = spec.factory(task.input_size, hidden_size, spec.num_layers, dtype=DTYPE, seed=seed,
                         **length)
    head = npseq.Linear(layer.output_size * layer.num_directions, task.output_size,
                        dtype=DTYPE, seed=seed + 1)
    if task.readout == "last":
        return npseq.Sequential(layer, npseq.LastStep(), head)
    return npseq.Sequential(layer, head)


def match_hidden_size(spec, task, params, maximum=256):
    """The hidden size at most ``maximum`` whose model has the parameter count closest to
    ``params`` (bisection: the count grows with the hidden size); ``spec.hidden_size`` if
    fixed.

    Cells without a recurrent matrix (IndRNN, MinGRU, MinLSTM) have about ``G (D + 2) H``
    parameters for ``D`` inputs: on the adding problem (``D = 2``) a budget that gives an
    LSTM 48 units would give them over a thousand, and a step over a thousand units costs
    more than the budget suggests. ``maximum`` caps that (and ``spec.max_hidden``, if lower);
    such a model then has fewer
    parameters than the budget, as the printed table shows."""
    if spec.hidden_size is not None:
        return spec.hidden_size
    count = lambda h: count_parameters(build_model(spec, task, h, 0))
    lo, hi = 1, min(maximum, spec.max_hidden or maximum)
    while lo < hi:  # smallest h with count(h) >= params
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if count(mid) < params else (lo, mid)
    if lo > 1 and abs(count(lo - 1) - params) <= abs(count(lo) - params):
        return lo - 1
    return lo


# -- one run -------------------------------------------------------------------------------
QUICK_SETTINGS = dict(steps=4, batch=8, lr=1e-2, eval_every=2, params=600, max_hidden=32,
                      test_size=32, val_size=32, clip=1.0, schedule="none",
                      stop_when_solved=True)
DEFAULT_SETTINGS = dict(steps=3000, batch=64, lr=1e-2, eval_every=100, params=10_000,
                        max_hidden=256, test_size=1000, val_size=1000, clip=1.0,
                        schedule="cosine", stop_when_solved=True)
SETTING_HELP = {"val_size": "validation sequences of the generated tasks; the MNIST tasks "
                            f"validate on at most their {tasks.MNIST_VAL_SIZE} held-out digits"}
QUICK_TASKS = ("adding-20", "copy-10", "echo-5", "mnist-rows", "mnist-pixels")
DEFAULT_TASKS = ("adding-100", "adding-200", "copy-100", "echo-20", "mnist-rows")
FULL_TASKS = DEFAULT_TASKS + ("adding-500", "copy-200", "mnist-pixels")  # --full: hours
ROW_KEYS = ("key", "task", "model", "seed", "settings", "hidden_size", "num_layers",
            "params", "metric", "higher_is_better", "final", "metrics", "validation",
            "validation_metrics", "baseline", "threshold", "solved", "steps_to_threshold",
            "steps", "curve", "wall_time", "time_per_step")


def curve_key(metric) -> str:
    """The key of the validation metric in a row's ``curve``: ``"val_" + metric``."""
    return "val_" + metric


def has_validation(row) -> bool:
    """Whether ``row`` was run with the validation set (rows written before it existed
    stopped on the test set and have neither ``validation`` nor ``curve["val_..."]``)."""
    return "validation" in row and curve_key(row["metric"]) in row.get("curve", {})


def run_key(task, model, seed) -> str:
    """The key of a run in the output file: ``task|model|seed``."""
    return f"{task}|{model}|{seed}"


@contextlib.contextmanager
def one_blas_thread():
    """BLAS limited to one thread for the block (threadpoolctl when installed; otherwise the
    environment variables, which only act on a process that has not yet loaded numpy)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


def evaluate(model, task, x, target, chunk=250):
    """The task's metrics of ``model`` on ``(x, target)``, in chunks, nothing kept, in eval
    mode (no dropout); the model is left in training mode."""
    preds = []
    model.eval()
    with npseq.no_grad():
        for start in range(0, x.shape[1], chunk):
            pred, _ = model(x[:, start:start + chunk])
            preds.append(pred)
    model.train()
    axis = 0 if task.readout == "last" else 1
    return task.metrics(np.concatenate(preds, axis=axis), target)


def run_one(task, model, seed, settings) -> dict:
    """Train one model on one task; returns the row written to the output file.

    Parameters
    ----------
    task : str
        A name for :func:`npseq.tasks.make_task` (``"adding-200"`` ...).
    model : str
        A name of ``MODELS`` or ``"module:attr"``.
    seed : int
        Seeds the weights and the training batches (the validation and test sets are fixed
        by the task).
    settings : dict
        ``steps, batch, lr, eval_every, params, max_hidden, test_size, val_size, clip,
        schedule ("none" or "cosine"), stop_when_solved`` (see ``DEFAULT_SETTINGS``;
        ``val_size`` is capped at the MNIST tasks' 500 held-out digits, 1,000 if absent).

    Returns
    -------
    dict with the keys ``ROW_KEYS``:

    - ``curve``: ``{"step", "train_loss", "val_<metric>"}``, the headline metric on the
      *validation* set every ``eval_every`` steps (and at the last step);
    - ``steps_to_threshold``: the first evaluated step whose *validation* metric met the
      threshold (None if none did); with ``stop_when_solved`` the run stops there;
    - ``validation``, ``validation_metrics``: the validation metrics at the end;
    - ``final``, ``metrics``: the *test* metrics, measured once, after training stopped;
      ``solved``: whether ``final`` (the test metric) meets the threshold;
    - ``wall_time`` and ``time_per_step`` (training steps only) in seconds.
    """
    start = time.perf_counter()
    with one_blas_thread():
        return _train(task, model, seed, dict(settings), start)


def task_val_size(task_name, settings) -> int:
    """The validation size a run uses: ``settings["val_size"]`` (1,000 if absent), at most
    the 500 held-out digits of the MNIST tasks."""
    size = settings.get("val_size", 1000)
    return min(size, tasks.MNIST_VAL_SIZE) if task_name.startswith("mnist-") else size


def _train(task_name, model_name, seed, s, start):
    task = tasks.make_task(task_name, test_size=s["test_size"],
                           val_size=task_val_size(task_name, s))
    spec = resolve_model(model_name)
    hidden = match_hidden_size(spec, task, s["params"], s["max_hidden"])
    net = build_model(spec, task, hidden, seed)
    layer = net.rnn
    lr = spec.lr if spec.lr is not None else s["lr"]
    opt = optim.Adam(net.params, net.grads, lr=lr)
    schedule = optim.CosineAnnealingLR(opt, T_max=s["steps"]) if s["schedule"] == "cosine" \
        else None
    rng = np.random.default_rng([seed, 1])
    x_val, y_val = task.validation_set()  # every choice of the run is made on this set
    val_key = curve_key(task.metric)
    curve = {"step": [], "train_loss": [], val_key: []}
    reached, running, train_time, step, validation = None, [], 0.0, 0, {}
    for step in range(1, s["steps"] + 1):
        x, y = task.batch(rng, s["batch"])
        tick = time.perf_counter()
        pred, _ = net(x)
        loss, dpred = task.loss(pred, y)
        opt.zero_grad()
        net.backward(dpred)
        optim.clip_grad_norm(net.grads, s["clip"])
        opt.step()
        if hasattr(layer, "constrain"):
            layer.constrain()
        train_time += time.perf_counter() - tick
        if schedule is not None:
            schedule.step()
        running.append(loss)
        if step % s["eval_every"] == 0 or step == s["steps"]:
            validation = evaluate(net, task, x_val, y_val)
            value = validation[task.metric]
            curve["step"].append(step)
            curve["train_loss"].append(float(np.mean(running)))
            curve[val_key].append(float(value))
            running = []
            if reached is None and task.solved(value):
                reached = step
                if s["stop_when_solved"]:
                    break
    # the last step is always evaluated (or the loop stopped at an evaluation), so
    # ``validation`` holds the metrics at the end; the test set is measured once, now
    x_test, y_test = task.test_set()
    final = evaluate(net, task, x_test, y_test)
    return {"key": run_key(task_name, model_name, seed), "task": task_name,
            "model": model_name, "seed": seed, "settings": s, "hidden_size": hidden,
            "num_layers": spec.num_layers, "params": count_parameters(net),
            "metric": task.metric, "higher_is_better": task.higher_is_better,
            "final": float(final[task.metric]),
            "metrics": {k: float(v) for k, v in final.items()},
            "validation": float(validation[task.metric]),
            "validation_metrics": {k: float(v) for k, v in validation.items()},
            "baseline": float(task.baseline), "threshold": float(task.threshold),
            "solved": task.solved(final[task.metric]), "steps_to_threshold": reached,
            "steps": step, "curve": curve, "wall_time": time.perf_counter() - start,
            "time_per_step": train_time / step}


# -- the grid ------------------------------------------------------------------------------
def read_rows(path) -> list:
    """The rows already in ``path`` (JSON lines); a truncated last line is ignored."""
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut off by an interruption: that run is done again
    return rows


def append_row(path, row):
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")
        f.flush()


class Progress:
    """A tqdm bar when tqdm is installed and ``bar``, else plain lines; plus a summary line
    after every run: finished, solved (on the test set), the run's headline test and
    validation metrics, and the step at which the validation metric met the threshold."""

    def __init__(self, total, bar=True):
        self.total, self.done, self.solved = total, 0, 0
        self.tqdm = None
        if bar:
            try:
                from tqdm import tqdm
                self.tqdm = tqdm(total=total, unit="run", file=sys.stderr)
            except ImportError:
                pass

    def update(self, row):
        self.done += 1
        self.solved += bool(row["solved"])
        reached = row["steps_to_threshold"]
        met = f"at step {reached}" if reached else "never"
        line = (f"[{self.done}/{self.total}] {row['task']} {row['model']} seed {row['seed']}: "
                f"test {row['metric']} {row['final']:.4g} "
                f"({'solved' if row['solved'] else 'not solved'}; validation "
                f"{row['validation']:.4g}, baseline {row['baseline']:.4g}), "
                f"threshold met on validation {met}, "
                f"{row['params']} params, {row['wall_time']:.1f}s | solved so far "
                f"{self.solved}/{self.done}")
        if self.tqdm is not None:
            self.tqdm.update(1)
            self.tqdm.write(line)
        else:
            print(line, flush=True)

    def close(self):
        if self.tqdm is not None:
            self.tqdm.close()


@contextlib.contextmanager
def blas_env_for_children():
    """One BLAS thread in the processes started inside the block: the variables are read
    when a worker's numpy loads, before any initializer could run."""
    saved = {k: os.environ.get(k) for k in BLAS_THREAD_VARS}
    os.environ.update({k: "1" for k in BLAS_THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_grid(task_names, model_names, seeds, settings, out, jobs=1, scheduler=None,
             bar=True):
    """Run every (task, model, seed) not yet in ``out``; returns all the rows of ``out``.

    ``scheduler``: None (local: ``jobs`` spawned processes, or this process if ``jobs`` is
    1), a Dask scheduler address ``"tcp://host:port"``, or a ``dask.distributed`` cluster
    object (``LocalCluster``).
    """
    rows = read_rows(out)
    if rows or os.path.exists(out):  # rewrite without a line cut off by an interruption,
        tmp = out + ".tmp"  # so that the rows appended next start on their own line
        with open(tmp, "w") as f:
            f.writelines(json.dumps(row) + "\n" for row in rows)
        os.replace(tmp, out)
    done = {row["key"] for row in rows}
    todo = [(t, m, s) for t in task_names for m in model_names for s in seeds
            if run_key(t, m, s) not in done]
    print(f"{len(done)} runs already in {out}; {len(todo)} to run", flush=True)
    progress = Progress(len(todo), bar)
    try:
        if not todo:
            pass
        elif scheduler is not None:
            _run_dask(todo, settings, out, scheduler, progress)
        elif jobs > 1:
            import concurrent.futures as cf
            import multiprocessing
            with blas_env_for_children(), cf.ProcessPoolExecutor(
                    jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                futures = [pool.submit(run_one, t, m, s, settings) for t, m, s in todo]
                for future in cf.as_completed(futures):
                    row = future.result()
                    append_row(out, row)
                    progress.update(row)
        else:
            for t, m, s in todo:
                row = run_one(t, m, s, settings)
                append_row(out, row)
                progress.update(row)
    finally:
        progress.close()
    return read_rows(out)


def _run_dask(todo, settings, out, scheduler, progress):
    try:
        from dask.distributed import Client, as_completed
    except ImportError:
        raise ImportError("--scheduler needs dask.distributed: pip install 'dask[distributed]' "
                          "(or npseq's 'longrange' extra)") from None
    with Client(scheduler) as client:
        if __name__ != "__main__":  # workers import this module by name: ship it to them
            client.upload_file(__file__)
        futures = [client.submit(run_one, t, m, s, settings, pure=False) for t, m, s in todo]
        for future in as_completed(futures):
            row = future.result()
            append_row(out, row)
            progress.update(row)


# -- the report ----------------------------------------------------------------------------
# Published figures, each checked against its source (see docs/long_range.md).
PUBLISHED = {}


def _spread(values):
    if len(values) == 1:
        return ""
    return f" ± {np.std(values, ddof=1):.2g}"


def _format(value, metric):
    return f"{value:.1%}" if metric.endswith("accuracy") else f"{value:.4f}"


OLD_ROWS_NOTE = ("† includes runs made before the validation set existed: they stopped on, "
                 "and measured their steps to threshold on, the test set.")


def markdown_table(rows) -> str:
    """A Markdown table, one line per (task, model), in the order of ``FULL_TASKS`` and
    ``MODELS`` (others after, in the order they come): the headline metric on the test set
    (mean ± standard deviation over seeds), its mean on the validation set at the end, the
    baseline, the runs solved (test metric), the mean step at which the validation metric
    met the threshold (over the runs that met it), the mean wall time, and a published
    figure if one is known.

    Rows written before the validation set existed (no ``validation``; they stopped on the
    test set) are kept: their validation cell is left out of the mean (``-`` if none has
    one), and a line with any of them is marked † in the steps column, explained below the
    table."""
    groups = {}
    for row in rows:
        groups.setdefault((row["task"], row["model"]), []).append(row)
    order = lambda names: {n: j for j, n in enumerate(dict.fromkeys(names))}  # first place
    task_rank = order(list(FULL_TASKS) + [r["task"] for r in rows])
    model_rank = order(list(MODELS) + [r["model"] for r in rows])
    groups = dict(sorted(groups.items(), key=lambda kv: (task_rank[kv[0][0]],
                                                         model_rank[kv[0][1]])))
    lines = ["| task | model | params | test metric (mean ± sd) | validation | baseline | "
             "solved (test) | steps to threshold (validation) | time/run | time/step | "
             "published |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    any_old = False
    for (task, model), group in groups.items():
        metric = group[0]["metric"]
        finals = [r["final"] for r in group]
        validations = [r["validation"] for r in group if has_validation(r)]
        old = len(validations) < len(group)
        any_old |= old
        reached = [r["steps_to_threshold"] for r in group if r["steps_to_threshold"]]
        steps = (f"{np.mean(reached):.0f}" if reached else "-") + (" †" if old else "")
        valid = _format(np.mean(validations), metric) if validations else "-"
        published = PUBLISHED.get((task, model), "")
        lines.append(
            f"| {task} | {model} | {group[0]['params']} | {metric} "
            f"{_format(np.mean(finals), metric)}{_spread(finals)} | {valid} | "
            f"{_format(group[0]['baseline'], metric)} | "
            f"{sum(r['solved'] for r in group)}/{len(group)} | {steps} | "
            f"{np.mean([r['wall_time'] for r in group]):.0f}s | "
            f"{1000 * np.mean([r['time_per_step'] for r in group]):.1f}ms | {published} |")
    if any_old:
        lines += ["", OLD_ROWS_NOTE]
    return "\n".join(lines) + "\n"


def plot_curves(rows, out_dir):
    """One PNG per task: the headline metric on the validation set (the curve's
    ``"val_<metric>"``) against the training step, one colour per model, one line per seed;
    the baseline dashed. Rows written before the validation set existed (their curve is on
    the test set) are left out, and a task with only such rows gets no plot. Returns the
    paths written ([] without matplotlib, and says so)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib, or the "
              "'examples' extra)")
        return []
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    kept = [r for r in rows if has_validation(r)]
    if len(kept) < len(rows):
        print(f"plots: left out {len(rows) - len(kept)} runs made before the validation set "
              f"existed (their curves are on the test set)")
    for task in dict.fromkeys(r["task"] for r in kept):
        group = [r for r in kept if r["task"] == task]
        metric = group[0]["metric"]
        fig, ax = plt.subplots(figsize=(7, 4.2))
        models = list(dict.fromkeys(r["model"] for r in group))
        palette = (lambda i: f"C{i}") if len(models) <= 10 else plt.get_cmap("tab20")
        colours, labelled = {m: palette(i % 20) for i, m in enumerate(models)}, set()
        for row in group:
            label = None if row["model"] in labelled else row["model"]
            labelled.add(row["model"])
            colour = colours[row["model"]]
            ax.plot(row["curve"]["step"], row["curve"][curve_key(metric)], color=colour,
                    label=label,
                    marker="." if len(row["curve"]["step"]) < 30 else None)
        ax.axhline(group[0]["baseline"], color="gray", linestyle="--", linewidth=1,
                   label="baseline")
        ax.axhline(group[0]["threshold"], color="gray", linestyle=":", linewidth=1,
                   label="solved")
        if not group[0]["higher_is_better"]:
            ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_ylabel(f"validation {metric}")
        ax.set_title(f"{task}: {len(group)} runs")
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = os.path.join(out_dir, f"long_range_{task}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


# -- command line --------------------------------------------------------------------------
def parameter_table(task_names, model_names, params, max_hidden) -> str:
    """The hidden size and parameter count of every (task, model), as printed before the
    grid."""
    lines = [f"{'task':14s} {'model':12s} {'hidden':>6s} {'params':>8s}"]
    for t in task_names:
        task = tasks.make_task(t, test_size=1)
        for m in model_names:
            spec = resolve_model(m)
            h = match_hidden_size(spec, task, params, max_hidden)
            n = count_parameters(build_model(spec, task, h, 0))
            lines.append(f"{t:14s} {m:12s} {h:6d} {n:8d}")
    return "\n".join(lines)


def _names(text):
    return [n.strip() for n in text.split(",") if n.strip()]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="the whole grid on tiny settings (for tests; meaningless numbers)")
    p.add_argument("--tasks", help="comma-separated task names (default: "
                   + ",".join(DEFAULT_TASKS) + "; --full adds " + ",".join(FULL_TASKS[
                       len(DEFAULT_TASKS):]) + ")")
    p.add_argument("--full", action="store_true",
                   help="every task of the suite (many hours on 2 cores: the pixel-MNIST "
                        "LSTM alone takes over an hour)")
    p.add_argument("--models", help="comma-separated names of MODELS or module:attr "
                   "(default: " + ",".join(DEFAULT_MODELS) + ")")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--scheduler", help="a Dask scheduler address, tcp://HOST:PORT")
    p.add_argument("--out", help="JSON-lines file of the runs (default "
                   "long_range[_quick].jsonl); an existing file is resumed")
    p.add_argument("--report", help="Markdown table (default: beside --out, .md)")
    p.add_argument("--plots", default=".", help="folder for the PNGs (default .)")
    p.add_argument("--no-progress", action="store_true", help="plain lines, no tqdm bar")
    for key, value in DEFAULT_SETTINGS.items():
        if not isinstance(value, bool):
            p.add_argument("--" + key.replace("_", "-"), type=type(value),
                           help=f"{SETTING_HELP.get(key, '')} (default {value}; --quick: "
                                f"{QUICK_SETTINGS[key]})".lstrip())
    args = p.parse_args(argv)
    settings = dict(QUICK_SETTINGS if args.quick else DEFAULT_SETTINGS)
    for key in settings:
        if getattr(args, key, None) is not None:
            settings[key] = getattr(args, key)
    task_names = _names(args.tasks) if args.tasks else list(
        QUICK_TASKS if args.quick else FULL_TASKS if args.full else DEFAULT_TASKS)
    model_names = _names(args.models) if args.models else list(DEFAULT_MODELS)
    seeds = [int(s) for s in _names(args.seeds)]
    if args.jobs < 1:
        p.error(f"--jobs: expected an integer >= 1, got {args.jobs}")
    for name in model_names:
        try:
            resolve_model(name)
        except (ValueError, TypeError) as err:
            p.error(f"--models: {err}")
    available = []
    for t in task_names:
        try:
            tasks.make_task(t, test_size=1)
        except ImportError as err:
            print(f"skipped {t}: {err}")
            continue
        except (ValueError, TypeError) as err:
            p.error(f"--tasks: {err}")
        try:  # the sizes, checked before any run
            tasks.make_task(t, test_size=settings["test_size"],
                            val_size=task_val_size(t, settings))
        except (ValueError, TypeError) as err:
            p.error(f"--test-size/--val-size: {err}")
        available.append(t)
    out = args.out or ("long_range_quick.jsonl" if args.quick else "long_range.jsonl")
    report = args.report or os.path.splitext(out)[0] + ".md"

    blocks = [(available, model_names)]  # (tasks, models) grids, run one after the other
    if not args.models and not args.quick and "mnist-rows" in available:
        # the user configuration on its task, plain and regularised (the ablation)
        blocks.append((["mnist-rows"], ["LSTM256x2", "LSTM256x2drop"]))
    print("settings: " + ", ".join(f"{k}={v}" for k, v in settings.items()))
    for block_tasks, block_models in blocks:
        print(parameter_table(block_tasks, block_models, settings["params"],
                              settings["max_hidden"]), flush=True)
    start = time.perf_counter()
    wanted = {run_key(t, m, s) for ts, ms in blocks for t in ts for m in ms for s in seeds}
    for block_tasks, block_models in blocks:
        run_grid(block_tasks, block_models, seeds, settings, out, args.jobs, args.scheduler,
                 bar=not args.no_progress)
    rows = [r for r in read_rows(out) if r["key"] in wanted]
    old = sum(not has_validation(r) for r in rows)
    if old:
        print(f"{old} of the {len(rows)} runs in {out} were made before the validation set "
              f"existed (they stopped on the test set); kept as they are, marked † in the "
              f"table; delete them from the file to run them again")
    table = markdown_table(rows)
    with open(report, "w") as f:
        f.write(table)
    print(table)
    for path in plot_curves(rows, args.plots):
        print(f"saved the plot to {path}")
    solved = sum(r["solved"] for r in rows)
    print(f"summary: long-range grid: {len(rows)} runs ({len(available)} tasks x "
          f"{len(model_names)} models x {len(seeds)} seeds"
          f"{' + LSTM256x2(drop) on mnist-rows' if len(blocks) > 1 else ''}), {solved} solved; "
          f"table in {report}; {time.perf_counter() - start:.0f}s")
    return 0


if __name__ == "__main__":
    # run as a module named long_range (not __main__), so that worker processes and Dask
    # workers unpickle run_one by reference from the same file
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import long_range
    sys.exit(long_range.main(sys.argv[1:]))
