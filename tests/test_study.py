"""The study example runs: examples/gradient_flow.py --quick writes its table and its PNG."""
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

EXAMPLE = pathlib.Path(__file__).resolve().parent.parent / "examples" / "gradient_flow.py"


@pytest.mark.slow
def test_gradient_flow_quick_prints_the_table_and_writes_the_png(tmp_path):
    pytest.importorskip("matplotlib")
    run = subprocess.run([sys.executable, str(EXAMPLE), "--quick", "--out", "flow.png"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = [line.split() for line in run.stdout.splitlines()
            if re.match(r"(RNN \(tanh\)|LSTM|GRU)\s", line)]
    # model (1 or 2 words), stage, MSE, state, three norms, first/max
    keys = [(" ".join(r[:-7]), r[-7], r[-5]) for r in rows]
    assert keys == [("RNN (tanh)", "init", "h"), ("RNN (tanh)", "trained", "h"),
                    ("LSTM", "init", "h"), ("LSTM", "init", "c"),
                    ("LSTM", "trained", "h"), ("LSTM", "trained", "c"),
                    ("GRU", "init", "h"), ("GRU", "trained", "h")]
    numbers = np.array([[float(v) for v in (r[-6],) + tuple(r[-4:])] for r in rows])
    assert np.all(np.isfinite(numbers)) and np.all(numbers[:, 0] > 0)  # MSE
    h_rows = [k for k, key in enumerate(keys) if key[2] == "h"]
    assert np.all(numbers[h_rows, 1:] > 0)  # gradient reaches every printed step
    assert np.all(numbers[:, -1] <= 1)  # first/max
    png = (tmp_path / "flow.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "wrote flow.png" in run.stdout
