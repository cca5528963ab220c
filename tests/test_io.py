"""save/load: a round trip for every model kind; bad files rejected with a clear message."""
import io
import json

import numpy as np
import pytest

import npseq

RNG = np.random.default_rng(0)
X3 = RNG.standard_normal((4, 2, 3))  # (T, B, 3)

MODELS = {
    "RNN-relu-2-layers-bi": lambda: npseq.RNN(3, 4, num_layers=2, nonlinearity="relu",
                                              bidirectional=True, seed=1),
    "LSTM-proj-batch_first": lambda: npseq.LSTM(3, 5, num_layers=2, proj_size=2,
                                                batch_first=True, dropout=0.25, seed=2),
    "LSTM-layer_norm": lambda: npseq.LSTM(3, 4, layer_norm=True, seed=3),
    "LSTM-peephole-no-bias": lambda: npseq.LSTM(3, 4, peephole=True, bias=False, seed=4),
    "GRU-reset_before-float32": lambda: npseq.GRU(3, 4, reset_after=False, dtype=np.float32,
                                                  seed=5),
    "RNNCell": lambda: npseq.RNNCell(3, 4, nonlinearity="relu", seed=6),
    "LSTMCell": lambda: npseq.LSTMCell(3, 4, seed=7),
    "GRUCell": lambda: npseq.GRUCell(3, 4, bias=False, seed=8),
    "Linear": lambda: npseq.Linear(3, 2, seed=9),
    "Linear-no-bias": lambda: npseq.Linear(3, 2, bias=False, seed=9),
    "Embedding": lambda: npseq.Embedding(7, 3, padding_idx=2, seed=10),
    "LastStep": lambda: npseq.LastStep(),
    "Sequential": lambda: npseq.Sequential(npseq.LSTM(3, 4, seed=11), npseq.LastStep(),
                                           npseq.Linear(4, 2, seed=12)),
    "Sequential-embedding": lambda: npseq.Sequential(npseq.Embedding(7, 3, seed=13),
                                                     npseq.GRU(3, 4, seed=14),
                                                     npseq.Linear(4, 7, seed=15)),
}


def run(model):
    """The model's outputs on a fixed input, in evaluation mode."""
    name = type(model).__name__
    if name == "Embedding" or (name == "Sequential" and
                               type(model[0]).__name__ == "Embedding"):
        x = np.array([[0, 2, 6], [1, 1, 3]])
    elif name in ("RNNCell", "LSTMCell", "GRUCell"):
        x = X3[0]
    else:
        x = X3
    with npseq.no_grad():
        out = model(x)
    flat = out if isinstance(out, tuple) else (out,)
    return [a for o in flat for a in (o if isinstance(o, tuple) else (o,))]


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_gives_equal_outputs(name, tmp_path):
    model = MODELS[name]()
    model.eval()
    for p in model.params.values():  # weights that no constructor would draw
        p += 0.5
    path = tmp_path / "model.npz"
    npseq.save(path, model)
    loaded = npseq.load(path)
    loaded.eval()
    assert type(loaded) is type(model) and repr(loaded) == repr(model)
    assert list(loaded.params) == list(model.params)
    for k, p in model.params.items():
        assert loaded.params[k].dtype == p.dtype
        np.testing.assert_array_equal(loaded.params[k], p, err_msg=k)
    for a, b in zip(run(model), run(loaded)):
        np.testing.assert_array_equal(a, b)


def test_file_is_written_exactly_at_path_and_readable_without_npseq(tmp_path):
    model = npseq.Sequential(npseq.GRU(3, 4, seed=0), npseq.Linear(4, 1, seed=1))
    path = tmp_path / "weights.bin"
    npseq.save(str(path), model)
    assert path.exists() and not (tmp_path / "weights.bin.npz").exists()
    with np.load(path) as data:
        config = json.loads(str(data["__npseq__"]))
        np.testing.assert_array_equal(data["1.weight"], model.params["1.weight"])
    gru = config["model"]["modules"][0]
    assert gru["class"] == "GRU"
    assert {"input_size": 3, "hidden_size": 4, "num_layers": 1, "bias": True,
            "batch_first": False, "dropout": 0.0, "bidirectional": False, "dtype": "float64",
            "reset_after": True}.items() <= gru["args"].items()
    assert "seed" not in gru["args"]
    buffer = io.BytesIO()  # file objects work too
    npseq.save(buffer, model)
    buffer.seek(0)
    np.testing.assert_array_equal(npseq.load(buffer).params["1.bias"], model.params["1.bias"])


def write_npz(path, config, arrays):
    arrays = dict(arrays)
    if config is not None:
        arrays["__npseq__"] = np.array(config if isinstance(config, str) else json.dumps(config))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


def saved(tmp_path):
    """A valid file's configuration and weights, to be spoiled by each test."""
    model = npseq.Sequential(npseq.GRU(3, 4, seed=0), npseq.Linear(4, 1, seed=1))
    npseq.save(tmp_path / "ok.npz", model)
    with np.load(tmp_path / "ok.npz") as data:
        config = json.loads(str(data["__npseq__"]))
        weights = {k: data[k] for k in data.files if k != "__npseq__"}
    return config, weights


def test_missing_and_unexpected_keys_are_named(tmp_path):
    config, weights = saved(tmp_path)
    del weights["1.bias"]
    weights["2.weight"] = np.zeros(3)
    path = write_npz(tmp_path / "bad.npz", config, weights)
    with pytest.raises(KeyError) as info:
        npseq.load(path)
    assert "1.bias" in str(info.value) and "2.weight" in str(info.value)
    assert "bad.npz" in str(info.value)


def test_shape_mismatch_names_the_key(tmp_path):
    config, weights = saved(tmp_path)
    weights["0.weight_hh_l0"] = np.zeros((12, 5))
    path = write_npz(tmp_path / "bad.npz", config, weights)
    with pytest.raises(ValueError, match=r"0\.weight_hh_l0.*\(12, 4\).*\(12, 5\)"):
        npseq.load(path)


def test_unknown_class_and_bad_arguments(tmp_path):
    config, weights = saved(tmp_path)
    config["model"]["modules"][1]["class"] = "Conv1d"
    with pytest.raises(ValueError, match=r"model\[1\]: unknown class 'Conv1d'"):
        npseq.load(write_npz(tmp_path / "a.npz", config, weights))
    config, weights = saved(tmp_path)
    config["model"]["modules"][0]["args"]["hidden_size"] = -4
    with pytest.raises(ValueError, match=r"model\[0\]: cannot rebuild GRU.*hidden_size"):
        npseq.load(write_npz(tmp_path / "b.npz", config, weights))


@pytest.mark.parametrize("spoil, match", [
    (lambda c, w, p: write_npz(p, None, w), "not an npseq file.*__npseq__"),
    (lambda c, w, p: write_npz(p, "{not json", w), "unreadable configuration"),
    (lambda c, w, p: write_npz(p, {**c, "format": "other"}, w), "format 'npseq'"),
    (lambda c, w, p: write_npz(p, {**c, "version": 99}, w), "version 99"),
    (lambda c, w, p: (p.write_text("hello"), p)[1], "not an npseq file"),
    (lambda c, w, p: np.save(p, np.zeros(3)) or p.with_suffix(".npy"), "single .npy"),
])
def test_files_that_are_not_npseq_files_are_rejected(spoil, match, tmp_path):
    config, weights = saved(tmp_path)
    path = spoil(config, weights, tmp_path / "bad")
    with pytest.raises(ValueError, match=match):
        npseq.load(path)


def test_save_rejects_what_it_cannot_rebuild(tmp_path):
    with pytest.raises(TypeError, match="model: expected an npseq model"):
        npseq.save(tmp_path / "x.npz", {"weight": np.zeros(2)})

    class MyHead(npseq.Linear):
        pass

    model = npseq.Sequential(npseq.GRU(2, 3, seed=0), MyHead(3, 1, seed=0))
    with pytest.raises(TypeError, match=r"model\[1\]: expected one of .* got MyHead"):
        npseq.save(tmp_path / "x.npz", model)
    with pytest.raises(FileNotFoundError):
        npseq.load(tmp_path / "missing.npz")
