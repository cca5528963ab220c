"""Every example runs in its ``--quick`` mode, from a fresh working directory, so none can rot.

Each example is a script run as a user runs it (``python examples/<name>.py --quick``) with
the interpreter running the tests; it must exit 0, print its summary line and, when matplotlib
is installed, save its plot into ``--out-dir``.
"""
import copy
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import npseq

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# script -> the start of its summary line
CASES = {
    "adding.py": "summary: adding problem T=20: test MSE LSTM",
    "char_lm.py": "summary: char LM: held-out",
    "digits.py": "summary: digits: test accuracy",
    "reber.py": "summary: embedded Reber:",
    "lbfgs.py": "summary: L-BFGS delayed echo",
    "ctc_digits.py": "summary: ctc digits: held-out sequence accuracy",
    "irnn_adding.py": "summary: IRNN adding T=20: test MSE IRNN",
    "gradient_flow.py": "summary: gradient flow T=12: ||dL/dh_0|| / max_t ||dL/dh_t|| "
                        "after training:",
    "regularisation.py": "summary: regularisation: LM held-out bpc plain",
}

NEEDS_SKLEARN = {"digits.py", "ctc_digits.py"}


# ctc_digits.py --quick (seed 0) measured 22.2% of held-out strings read exactly and a label
# error rate of 27.4%; a model still on CTC's all-blank plateau reads 0% with 86-100% errors
QUICK_MIN_ACCURACY, QUICK_MAX_ERRORS = 5.0, 60.0


def ctc_digits_learned(summary):
    """--quick is too short for the 90% target, but it must have learned to read digits."""
    found = re.search(r"sequence accuracy ([\d.]+)%, label error rate ([\d.]+)%", summary)
    assert found, summary
    accuracy, errors = float(found[1]), float(found[2])
    assert accuracy >= QUICK_MIN_ACCURACY and errors <= QUICK_MAX_ERRORS, summary


def numbers_after(label, summary):
    """The numbers printed after ``label`` in a summary line."""
    found = re.search(re.escape(label) + r"\s*([-+\d.eE,]+)", summary)
    assert found, (label, summary)
    return float(found[1].replace(",", "").rstrip("."))


# What each --quick run (seed 0) printed when these checks were written, and the bound with
# a margin that a broken backward or a diverging run would cross. The quick runs are too
# short for the examples' targets; they must still produce sane, learning numbers.
def adding_sane(summary):  # measured: LSTM 0.1675, GRU 0.1637, RNN 0.1682, baseline 0.1666
    for model in ("LSTM", "GRU", "RNN"):
        assert 0.05 < numbers_after(model, summary) < 0.3, summary


def char_lm_learned(summary):  # measured 4.518 bits/char; uniform over the ~100 symbols: 6.6
    assert numbers_after("held-out", summary) < 5.5, summary


def digits_learned(summary):  # measured 78.03% after 2 epochs; chance is 10%
    assert numbers_after("test accuracy", summary) > 50, summary


def lbfgs_learned(summary):  # measured test MSE 0.388 against 0.801 for predicting 0
    assert numbers_after("test MSE", summary) < 0.6, summary


def irnn_sane(summary):  # measured IRNN 0.1456, tanh RNN 0.1787, baseline 0.1666
    assert numbers_after("test MSE IRNN", summary) < 0.2, summary
    assert 0.05 < numbers_after("tanh RNN", summary) < 0.3, summary


def reber_learned(summary):  # measured 84.1% of steps right after 80 updates; 0% at the start
    assert numbers_after("steps right", summary) > 50, summary


def gradient_flow_sane(summary):
    """Measured ratios RNN (tanh) 2.8e-05, LSTM 3.4e-03, GRU 6.7e-03 and MSEs 0.224, 0.183,
    0.231 (the predict-1 baseline is 1/6): the gated cells pass on over 10x more gradient."""
    found = re.search(r"RNN \(tanh\) (\S+), LSTM (\S+), GRU (\S+); test MSE RNN \(tanh\) "
                      r"(\S+), LSTM (\S+), GRU (\S+)$", summary)
    assert found, summary
    rnn, lstm, gru, *mse = map(float, found.groups())
    assert 0 < rnn < 1 and lstm > 10 * rnn and gru > 10 * rnn, summary
    assert all(0.05 < m < 0.5 for m in mse), summary


def regularisation_sane(summary):
    """measured: held-out bpc plain 5.460, AWD 5.982 (12 steps); uniform over its 72
    characters log2(72) = 6.17; IRNN part as irnn_adding.py --quick: 0.1456, 0.1787"""
    assert numbers_after("LM held-out bpc plain", summary) < 5.9, summary
    assert numbers_after("AWD", summary) < 6.1, summary
    assert numbers_after("test MSE IRNN", summary) < 0.2, summary
    assert 0.05 < numbers_after("tanh RNN", summary) < 0.3, summary


# script -> a check of the numbers its --quick run prints in its summary line
QUICK_RESULT_CHECKS = {"ctc_digits.py": ctc_digits_learned, "adding.py": adding_sane,
                       "char_lm.py": char_lm_learned, "digits.py": digits_learned,
                       "lbfgs.py": lbfgs_learned, "irnn_adding.py": irnn_sane,
                       "reber.py": reber_learned, "gradient_flow.py": gradient_flow_sane,
                       "regularisation.py": regularisation_sane}


def has(module):
    return importlib.util.find_spec(module) is not None


def run(script, tmp_path, *args):
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_quick(script, tmp_path):
    if script in NEEDS_SKLEARN and not has("sklearn"):
        pytest.skip(f"{script} needs scikit-learn (CI installs it)")
    proc = run(script, tmp_path, "--quick", "--out-dir", "plots")
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1 and summary[0].startswith(CASES[script]), proc.stdout
    if script in QUICK_RESULT_CHECKS:
        QUICK_RESULT_CHECKS[script](summary[0])
    png = tmp_path / "plots" / script.replace(".py", ".png")
    if has("matplotlib"):
        assert png.is_file() and png.stat().st_size > 1000, proc.stdout
    else:
        assert "skipped the plot" in proc.stdout and not png.exists()


# the gradient checks run in full (a few seconds): script -> the start of its summary line
CHECKS = {
    "custom_cell.py": "summary: custom cell LEAKY_RNN: worst relative gradient error",
    "gradcheck_cells.py": "summary: gradcheck: 7 cells and layers, worst relative gradient "
                          "error",
}


@pytest.mark.parametrize("script", sorted(CHECKS))
def test_gradient_check_examples_reach_their_result(script, tmp_path):
    proc = run(script, tmp_path)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    summary = [line for line in lines if line.startswith("summary: ")]
    assert len(summary) == 1 and summary[0].startswith(CHECKS[script]), proc.stdout
    assert numbers_after("worst relative gradient error", summary[0]) < 1e-6, summary
    assert lines[-1] == ("expected result reached: every gradient within 1e-06 of central "
                         "differences"), proc.stdout


@pytest.mark.slow
def test_digits_bidirectional_final_state_head_learns(tmp_path):
    """--bidirectional: BiLSTM + FinalState + Linear (torch's cat(h_n[-2], h_n[-1]) head)."""
    if not has("sklearn"):
        pytest.skip("digits.py needs scikit-learn (CI installs it)")
    proc = run("digits.py", tmp_path, "--quick", "--bidirectional", "--out-dir", "plots")
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    assert "BiLSTM(64) + FinalState + Linear(128, 10)" in proc.stdout
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")]
    assert len(summary) == 1, proc.stdout
    digits_learned(summary[0])  # measured 83.38% after 2 epochs; chance is 10%


@pytest.mark.parametrize("script, flag, value", [
    ("adding.py", "--models", "LSTM,TRANSFORMER"),
    ("adding.py", "--T", "1"),
    ("adding.py", "--steps", "0"),
    ("char_lm.py", "--lr", "-0.1"),
    ("lbfgs.py", "--delay", "0"),
    ("ctc_digits.py", "--average", "1.5"),
    ("irnn_adding.py", "--T", "1"),
    ("regularisation.py", "--part", "rnn"),
    ("regularisation.py", "--seeds", "3"),
    ("regularisation.py", "--train-chars", "100"),
])
def test_bad_flag_is_rejected(script, flag, value, tmp_path):
    proc = run(script, tmp_path, flag, value)
    assert proc.returncode == 2  # argparse's usage error, before any training
    assert flag in proc.stderr and value in proc.stderr, proc.stderr


def run_without(module, script, tmp_path, *args):
    """Run an example as if ``module`` were not installed (its import raises ImportError)."""
    code = (f"import runpy, sys; sys.modules[{module!r}] = None; "
            f"sys.path.insert(0, {str(EXAMPLES)!r}); "
            f"sys.argv = [{script!r}, *{list(args)!r}]; "
            f"runpy.run_path({str(EXAMPLES / script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_without_matplotlib_the_plot_is_skipped(tmp_path):
    proc = run_without("matplotlib", "reber.py", tmp_path, "--quick")
    assert proc.returncode == 0, proc.stderr
    assert "matplotlib is not installed: skipped the plot" in proc.stdout
    assert "summary: embedded Reber:" in proc.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize("script", sorted(NEEDS_SKLEARN))
def test_digits_without_scikit_learn_says_what_to_install(script, tmp_path):
    proc = run_without("sklearn", script, tmp_path, "--quick")
    assert proc.returncode == 1
    assert "needs scikit-learn" in proc.stderr and "pip install scikit-learn" in proc.stderr


@pytest.mark.slow
def test_irnn_adding_quick_prints_its_numbers(tmp_path):
    """The summary's numbers: two finite MSEs and the predict-1 baseline, about 1/6."""
    import re

    proc = run("irnn_adding.py", tmp_path, "--quick", "--out-dir", "plots")
    assert proc.returncode == 0, proc.stderr
    summary = [line for line in proc.stdout.splitlines() if line.startswith("summary: ")][0]
    match = re.fullmatch(r"summary: IRNN adding T=20: test MSE IRNN (\S+), tanh RNN (\S+) "
                         r"\(baseline (\S+)\); \d+s", summary)
    assert match, summary
    irnn, tanh, baseline = map(float, match.groups())
    assert 0 < irnn < 1 and 0 < tanh < 1  # finite, and not diverged
    assert abs(baseline - 1 / 6) < 0.03  # 1000 test sequences: std of the estimate ~0.006
    assert "quick run: too short for the result" in proc.stdout


@pytest.fixture
def regularisation(monkeypatch):
    """examples/regularisation.py imported as a module (it imports its sibling examples)."""
    monkeypatch.syspath_prepend(str(EXAMPLES))
    import regularisation
    return regularisation


def char_lm_batch(seed, V=7, T=6, B=3):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))


def test_regularisation_eval_mode_is_the_plain_model(regularisation):
    """Evaluation of every configuration without zoneout is the plain model, bit for bit:
    the masks are off and AR/TAR only shape training; zoneout's expectation is not."""
    x, _ = char_lm_batch(0)
    plain = regularisation.CharLM(7, 4, 5, {}, seed=3).eval()
    with npseq.no_grad():
        expected, _ = plain(x)
        for name, config in regularisation.CONFIGS.items():
            model = regularisation.CharLM(7, 4, 5, config, seed=3).eval()
            logits, _ = model(x)
            zoned = "zoneout" in config.get("lstm", {})
            assert np.array_equal(logits, expected) != zoned, name
            model.train()
            trained, _ = model(x)
            assert np.array_equal(trained, expected) == (name in ("plain", "AR/TAR")), name


def test_regularisation_awd_gradient_matches_central_differences(regularisation):
    """The example's wiring (AR after the output dropout, TAR before it, every mask) gives the
    gradient of its objective: float64 central differences under the same masks."""
    config = dict(regularisation.CONFIGS[regularisation.AWD], lstm=dict(
        weight_dropout=0.3, zoneout=(0.2, 0.3)))  # every option of the table at once
    model = regularisation.CharLM(7, 4, 5, config, seed=1, dtype=np.float64)
    rng = np.random.default_rng(2)
    for m in model.modules:  # random non-zero biases, as the other gradient tests
        for key, value in m.params.items():
            if key.startswith("bias"):
                value[...] = rng.uniform(-0.5, 0.5, value.shape)
    x, y = char_lm_batch(4)
    state0 = (rng.standard_normal((1, 3, 5)), rng.standard_normal((1, 3, 5)))
    drawing = [m for m in model.modules if hasattr(m, "rng")]  # all but the Linear head
    generators = [copy.deepcopy(m.rng) for m in drawing]

    def objective():
        for m, g in zip(drawing, generators):
            m.rng = copy.deepcopy(g)  # the same masks at every evaluation
        loss, _ = model.step_loss(x, y, state0)
        return loss

    for g in model.grads.values():
        g[...] = 0
    objective()
    analytic = {k: g.copy() for k, g in model.grads.items()}
    eps = 1e-6
    for key, param in model.params.items():
        flat = param.reshape(-1)
        for j in rng.choice(flat.size, size=min(4, flat.size), replace=False):
            saved = flat[j]
            flat[j] = saved + eps
            up = objective()
            flat[j] = saved - eps
            down = objective()
            flat[j] = saved
            numeric = (up - down) / (2 * eps)
            assert abs(numeric - analytic[key].reshape(-1)[j]) < 1e-6 * max(1, abs(numeric)), \
                (key, j, numeric, analytic[key].reshape(-1)[j])
