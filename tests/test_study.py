"""The study example runs: examples/gradient_flow.py --quick prints its table and its plot."""
import re

import numpy as np
import pytest

from test_examples import has, run, run_without

MODEL_ROWS = [("RNN (tanh)", "init", "h"), ("RNN (tanh)", "trained", "h"),
              ("LSTM", "init", "h"), ("LSTM", "init", "c"),
              ("LSTM", "trained", "h"), ("LSTM", "trained", "c"),
              ("GRU", "init", "h"), ("GRU", "trained", "h")]


def _table(stdout):
    """(model, stage, state) keys and the numbers: MSE, three norms, first/max."""
    rows = [line.split() for line in stdout.splitlines()
            if re.match(r"(RNN \(tanh\)|LSTM|GRU)\s", line)]
    keys = [(" ".join(r[:-7]), r[-7], r[-5]) for r in rows]
    numbers = np.array([[float(v) for v in (r[-6],) + tuple(r[-4:])] for r in rows])
    return keys, numbers


@pytest.mark.slow
def test_gradient_flow_quick_prints_the_table_and_saves_the_plot(tmp_path):
    proc = run("gradient_flow.py", tmp_path, "--quick", "--out-dir", "plots")
    assert proc.returncode == 0, proc.stderr
    keys, numbers = _table(proc.stdout)
    assert keys == MODEL_ROWS
    assert np.all(np.isfinite(numbers)) and np.all(numbers[:, 0] > 0)  # MSE
    h_rows = [k for k, key in enumerate(keys) if key[2] == "h"]
    assert np.all(numbers[h_rows, 1:] > 0)  # some gradient reaches every printed step
    assert np.all(numbers[:, -1] <= 1)  # first/max
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1 and summary[0].startswith("summary: gradient flow T=12")
    png = tmp_path / "plots" / "gradient_flow.png"
    if has("matplotlib"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    else:
        assert "skipped the plot" in proc.stdout and not png.exists()


@pytest.mark.slow
def test_gradient_flow_without_matplotlib_prints_the_table_only(tmp_path):
    proc = run_without("matplotlib", "gradient_flow.py", tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib is not installed: skipped the plot" in proc.stdout
    assert _table(proc.stdout)[0] == MODEL_ROWS
    assert not list(tmp_path.glob("*.png"))
