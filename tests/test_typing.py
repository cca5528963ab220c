"""The public API is typed: mypy passes on the package, a user's wrong call is caught, and
every parameter and return of the public entry points carries an annotation.

mypy is in the ``test`` extra, so these tests run (never skip) wherever the README's test
command runs; without mypy they fail and say what to install.
"""
import configparser
import importlib
import inspect
import pathlib
import pkgutil
import subprocess
import sys

import pytest

import npseq

REPO = pathlib.Path(__file__).resolve().parents[1]


def _mypy(*args, cwd=REPO):
    """``python -m mypy *args`` with the repository's setup.cfg; returns (exit code, output)."""
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.fail("mypy is not installed: pip install '.[test]' (the test extra has it)")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--config-file",
                           str(REPO / "setup.cfg"), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def test_mypy_passes_on_the_package():
    code, output = _mypy("npseq")
    assert code == 0, f"mypy found problems in npseq:\n{output}"
    assert "Success: no issues found" in output


def test_mypy_catches_a_wrong_call_and_infers_array_results(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(
        "import numpy as np\n"
        "import npseq\n"
        "m = npseq.LSTM(3, '8')\n"                          # hidden_size: str, not int
        "out, state = m(np.zeros((5, 2, 3)))\n"
        "reveal_type(out)\n"
        "loss, dz = npseq.losses.cross_entropy(out, np.zeros((5, 2), int))\n"
        "reveal_type(loss)\n"
        "npseq.optim.Adam(m.params, m.grads, lr='fast')\n")  # lr: str, not float
    code, output = _mypy(str(user))
    assert code == 1, output
    assert 'Argument 2 to "LSTM" has incompatible type "str"; expected "int"' in output, output
    assert 'Argument "lr" to "Adam" has incompatible type "str"; expected "float"' in output, \
        output
    assert 'Revealed type is "numpy.ndarray[' in output and "floating" in output, output
    assert any(f'Revealed type is "{t}"' in output for t in ("float", "builtins.float")), output
    assert output.count("error:") == 2, output


def test_the_package_ships_py_typed():
    assert (REPO / "npseq" / "py.typed").is_file()
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert cfg["options.package_data"]["npseq"].split() == ["py.typed"]
    assert any(r.startswith("mypy") for r in cfg["options.extras_require"]["test"].split())


# -- every public entry point is annotated ------------------------------------------------
def _public_modules():
    names = ["npseq"]
    for info in pkgutil.walk_packages(npseq.__path__, "npseq."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return [importlib.import_module(n) for n in names]


def _entry_points():
    """(qualified name, function) of every public function and of every public method,
    ``__init__`` and ``__call__`` of every public class, each where it is defined."""
    found = {}
    for module in _public_modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(obj):
                found[f"{module.__name__}.{name}"] = obj
            elif inspect.isclass(obj) and not issubclass(obj, tuple):  # NamedTuples: fields
                for attr, member in vars(obj).items():
                    if isinstance(member, (staticmethod, classmethod)):
                        member = member.__func__
                    elif isinstance(member, property):
                        member = member.fset or member.fget
                    if inspect.isfunction(member) and (not attr.startswith("_")
                                                       or attr in ("__init__", "__call__")):
                        found[f"{module.__name__}.{name}.{attr}"] = member
    return found


def _unannotated(fn):
    sig = inspect.signature(fn)
    missing = [p.name for p in sig.parameters.values()
               if p.name not in ("self", "cls") and p.annotation is inspect.Parameter.empty]
    if sig.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def test_every_public_entry_point_is_annotated():
    entries = _entry_points()
    # the discovery finds what a user calls (so that the count below means something)
    for name in ["npseq.layers.RNNBase.__init__", "npseq.layers.RNNBase.forward",
                 "npseq.layers.RNNBase.backward", "npseq.layers.LSTM.__init__",
                 "npseq.cell.RNNCellBase.forward", "npseq.losses.cross_entropy",
                 "npseq.optim.Adam.__init__", "npseq.io.save", "npseq.io.load",
                 "npseq.data.BucketIterator.__init__", "npseq.seq2seq.Seq2Seq.beam_search",
                 "npseq.cells.lstm.lstm_step_backward", "npseq.grad_mode.no_grad"]:
        assert name in entries, name
    n_params = sum(len([p for p in inspect.signature(f).parameters if p not in ("self", "cls")])
                   for f in entries.values())
    assert len(entries) >= 200 and n_params >= 600, (len(entries), n_params)
    missing = {name: m for name, fn in sorted(entries.items()) if (m := _unannotated(fn))}
    assert missing == {}, f"unannotated parameters (or return) of public entry points: {missing}"


def test_the_annotation_check_sees_a_missing_annotation():
    def typed(x: int, *, y: float = 1.0) -> float:
        return x + y

    def untyped(x, y: float = 1.0) -> float:
        return x + y

    def no_return(x: int):
        return x

    assert _unannotated(typed) == []
    assert _unannotated(untyped) == ["x"]
    assert _unannotated(no_return) == ["return"]
