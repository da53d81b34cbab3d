"""The exported answer used where augsweep is not installed: `augmentation.py` builds the registry's very layers
with Keras alone, on images of any shape; `augmentation.keras` loads and runs on any shape; and the lines that
load the registered model work as printed from any folder, leaving no stray `mlflow.db` behind."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from augsweep import augment
from augsweep.experiment.schema import DatasetConfig
from augsweep.experiment.space import TrialConfig
from augsweep.report.export import (
    Recommendation,
    block_from_source,
    block_source,
    load_model_lines,
    model_input_text,
    portable_tracking_uri,
    write_block,
)

SHAPES = ((32, 32, 3), (16, 16, 1))
SEED = 1234


def _rec(*augs) -> Recommendation:
    return Recommendation(TrialConfig(1, augmentations=augs), "d1 planted", "best",
                          "the best configuration by its mean", 0.5, 3, 1, 0.45, "run")


GEOMETRIC = _rec(("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.4),)),
                 ("rotation", (("factor", 0.2),)), ("warp", (("kind", "translation"), ("factor", 0.2))))
CROP = _rec(("flip", (("mode", "horizontal"),)), ("crop", (("factor", 0.25),)))

# Runs in one fresh `python -I` for every block, each written to a folder of its own (FOLDERS, in order). An
# editable install of augsweep is found even with -I, so the script makes it unimportable first: anything in
# augmentation.py that needed augsweep would fail. Every block's `augmentation.keras` is first loaded with Keras
# alone, before any augmentation.py is imported (importing one registers its own layers with Keras); then each
# folder's augmentation.py is imported afresh, as `augmentation`, from its folder.
FRESH = textwrap.dedent("""
    import json, os, sys
    sys.modules["augsweep"] = None
    try:
        import augsweep
    except ImportError:
        pass
    else:
        raise SystemExit("augsweep is importable")
    import numpy as np, keras

    results = {}
    for folder in FOLDERS:  # before anything registers augmentation.py's own layers
        try:
            keras.saving.load_model(os.path.join(folder, "augmentation.keras"))
            results[folder] = {"keras_alone": True}
        except Exception:
            results[folder] = {"keras_alone": False}
    for folder in FOLDERS:
        os.chdir(folder)
        sys.path.insert(0, folder)
        sys.modules.pop("augmentation", None)
        from augmentation import augmentation_block

        assert os.path.dirname(sys.modules["augmentation"].__file__) == folder  # this folder's file, imported afresh
        result = results[folder]
        block = augmentation_block()
        result["configs"] = [[type(layer).__name__, layer.get_config()] for layer in block.layers]
        for i, shape in enumerate(SHAPES):
            x = np.load(f"x{i}.npy")
            fresh, loaded = augmentation_block(), keras.saving.load_model("augmentation.keras")
            np.save(f"py{i}.npy", keras.ops.convert_to_numpy(fresh(x, training=True)))
            np.save(f"keras{i}.npy", keras.ops.convert_to_numpy(loaded(x, training=True)))
            np.save(f"fixed{i}.npy", keras.ops.convert_to_numpy(augmentation_block(shape)(x, training=True)))
            assert np.array_equal(keras.ops.convert_to_numpy(fresh(x, training=False)), x)
            assert np.array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)), x)
        once = keras.saving.load_model("augmentation.keras")  # one block, images of both shapes in turn
        assert [once(np.load(f"x{i}.npy"), training=True).shape for i in range(2)] == [(4, *s) for s in SHAPES]
        model = keras.Sequential([keras.saving.load_model("augmentation.keras"), keras.layers.Conv2D(4, 3),
                                  keras.layers.Flatten(), keras.layers.Dense(1)])  # no keras.Input needed
        assert model(np.load("x0.npy"), training=True).shape == (4, 1)
        sys.path.remove(folder)
    for result in results.values():
        result["augsweep_loaded"] = sorted(m for m, v in sys.modules.items() if m.startswith("augsweep") and v)
    print(json.dumps(results))
""")


def _json(value):
    """`value` as it reads back from JSON (tuples become lists), as configurations are saved."""
    return json.loads(json.dumps(value))


def _registry_outputs(rec, x):
    """What the sweep trained with: the registry's layers, built afresh for this shape, applied in order."""
    out = x
    for layer in augment.build_layers(rec.config.enabled, SEED):
        out = layer(out, training=True)
    return np.asarray(out)


@pytest.mark.slow
def test_exported_blocks_run_without_augsweep_on_any_shape_and_are_the_registrys(tmp_path):
    """Two blocks, each exported as a report writes it: flip, contrast, rotation and translation (Keras's own
    layers: its `augmentation.keras` loads with Keras alone) and flip with the crop (augsweep's own layer: it
    needs its `augmentation.py` imported). Both are checked in one fresh interpreter without augsweep, each
    `augmentation.keras` loaded before any `augmentation.py` is imported."""
    rng = np.random.default_rng(0)
    xs = [rng.random((4, *shape), dtype=np.float32) for shape in SHAPES]
    recs = {"geometric": GEOMETRIC, "crop": CROP}
    for name, rec in recs.items():
        folder = tmp_path / name
        folder.mkdir()
        files = write_block(rec, SEED, (16, 16, 1), "planted", folder,
                            model_input_text(DatasetConfig(source="digits", image_size=(16, 16))))
        source = files[0].read_text()
        nodes = list(ast.walk(ast.parse(source)))
        imported = {a.name for n in nodes if isinstance(n, ast.Import) for a in n.names}
        assert imported | {n.module for n in nodes if isinstance(n, ast.ImportFrom)} == {"zlib", "keras"}
        assert "pixel values / 16" in source  # what the registered model takes
        for i, x in enumerate(xs):
            np.save(folder / f"x{i}.npy", x)
    folders = [str(tmp_path / name) for name in recs]
    script = f"SHAPES = {SHAPES!r}\nFOLDERS = {folders!r}\n{FRESH}"
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for name, rec in recs.items():
        result = results[str(tmp_path / name)]
        assert result["augsweep_loaded"] == []
        # A block of Keras's own layers loads with Keras alone; one holding the crop needs augmentation.py imported.
        assert result["keras_alone"] is (rec is GEOMETRIC), name
        registry = [[type(layer).__name__, _json(layer.get_config())]
                    for layer in augment.build_layers(rec.config.enabled, SEED)]
        assert result["configs"] == registry, name
        for i, x in enumerate(xs):
            want = _registry_outputs(rec, x)
            assert want.shape == x.shape and not np.allclose(want, x)
            for kind in ("py", "keras", "fixed"):
                np.testing.assert_allclose(np.load(tmp_path / name / f"{kind}{i}.npy"), want, rtol=1e-6, atol=1e-6,
                                           err_msg=f"{name}: {kind} on {x.shape}")


def _every_registry_layer():
    """Every registry entry once (warp with each kind) as recommendations of a few augmentations each."""
    yield _rec(("flip", (("mode", "both"),)), ("contrast", (("factor", 0.3),)), ("brightness", (("factor", 0.2),)),
               ("rotation", (("factor", 0.1),)))
    for kind in augment.WARP_KINDS:
        yield _rec(("warp", (("kind", kind), ("factor", 0.2))))
    yield _rec(("crop", (("factor", 0.5),)), ("randaugment", (("factor", 0.5),)), ("trivialaugment", ()))


def _name(rec) -> str:
    return "+".join(p.get("kind", a) for a, p in rec.config.enabled.items())


@pytest.mark.filterwarnings("ignore:You are saving a model that has not yet been built")  # unbuilt on purpose
@pytest.mark.parametrize("rec", list(_every_registry_layer()), ids=_name)
def test_every_registry_layer_is_written_with_its_configuration_and_outputs(rec, tmp_path):
    block = block_from_source(block_source(rec, SEED, (16, 16, 1), "planted"))
    registry = augment.build_layers(rec.config.enabled, SEED)
    assert len(block.layers) == len(registry)
    x = np.random.default_rng(1).random((6, 20, 20, 3), dtype=np.float32)
    for mine, theirs in zip(block.layers, registry):
        if type(theirs).__name__ == "TrivialAugment":  # its operations are arguments of the exported class
            assert {**mine.get_config(), "operations": None} == {**theirs.get_config(), "operations": None}
            assert [m.get_config() | {"name": ""} for m in mine.op_layers] == \
                [t.get_config() | {"name": ""} for t in theirs.op_layers]
        else:
            assert (type(mine).__name__, mine.get_config()) == (type(theirs).__name__, theirs.get_config())
        for _ in range(2):  # the random streams stay together over calls
            np.testing.assert_allclose(np.asarray(mine(x, training=True)), np.asarray(theirs(x, training=True)),
                                       rtol=1e-6, atol=1e-6, err_msg=type(theirs).__name__)
    block.save(tmp_path / "block.keras")  # every layer's configuration loads back
    import keras

    loaded = keras.saving.load_model(tmp_path / "block.keras")
    assert [_json(la.get_config()) for la in loaded.layers] == [_json(la.get_config()) for la in block.layers]


def test_the_crop_resamples_images_whose_size_is_known_only_at_run_time():
    import tensorflow as tf

    from augsweep.augment.standalone import RandomCropResize

    layer = RandomCropResize(0.25, seed=3)
    run = tf.function(lambda t: layer(t, training=True), input_signature=[tf.TensorSpec((None, None, None, None))])
    for shape in ((2, 9, 11, 2), (1, 32, 32, 3)):
        x = np.random.default_rng(0).random(shape, dtype=np.float32)
        y = np.asarray(run(x))
        assert y.shape == x.shape and not np.allclose(y, x) and y.min() >= x.min() and y.max() <= x.max()


def test_load_lines_name_an_absolute_store_and_never_a_password(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_model_lines("sqlite:///mlruns/mlflow.db", "digits-best", 3) == [
        "import mlflow",
        f"mlflow.set_tracking_uri('sqlite:///{tmp_path.resolve() / 'mlruns' / 'mlflow.db'}')",
        "model = mlflow.keras.load_model('models:/digits-best/3')",
    ]
    lines = load_model_lines("http://bob:s3:cr@t@mlflow.example:5000", "s", 1, ["flip", "crop"])
    assert "mlflow.set_tracking_uri('http://mlflow.example:5000')" in lines and "s3:cr@t" not in "".join(lines)
    assert any("MLFLOW_TRACKING_PASSWORD" in line for line in lines)
    assert lines[1:3] == ["from augsweep.augment.layers import layer_classes",
                          "layer_classes()  # registers augsweep's own layers, which the model holds"]
    both = load_model_lines("sqlite:////m/mlflow.db", "s", 1, {"flip": {"mode": "both"}})
    assert "layer_classes()" in "".join(both)
    assert "layer_classes()" not in "".join(load_model_lines("sqlite:////m/mlflow.db", "s", 1, {"flip": {}}))
    assert portable_tracking_uri("postgresql+psycopg://bob:pw@db:5432/ml") == ("postgresql+psycopg://bob@db:5432/ml",
                                                                               False)
    assert portable_tracking_uri("sqlite:////abs/mlflow.db") == ("sqlite:////abs/mlflow.db", False)


def test_model_input_says_how_each_source_prepares_images():
    text = {s: model_input_text(DatasetConfig(source=s, image_size=(24, 24), classes=2))
            for s in ("digits", "synthetic", "folder", "fashion_mnist")}
    assert "/ 16" in text["digits"] and "/ 255" in text["folder"] and "/ 255" in text["fashion_mnist"]
    assert "car, truck)" in text["synthetic"] and "RGB" in text["folder"]
    assert all("(N, 24, 24, channels)" in t and "[0, 1]" in t for t in text.values())


def test_registered_model_loads_as_printed_from_any_folder(tiny_report, tmp_path):
    """The registered best model (conftest's `tiny_report`, through the API) loads in a fresh process by the
    printed lines alone, from a folder of its own, and predicts class probabilities; the augmentation block is
    inside it."""
    from augsweep.stores.tracking import tracking_uri_for

    folder, exp, _, rep, _ = tiny_report
    lines = load_model_lines(tracking_uri_for(folder / "mlruns"), f"{exp.name}-best", rep.model_version.version,
                             rep.best.config.enabled)
    script = "\n".join([*lines, "import numpy as np",
                        "p = np.asarray(model.predict(np.full((3, 8, 8, 1), 0.5, np.float32), verbose=0))",
                        "assert p.shape == (3, 10) and np.allclose(p.sum(axis=1), 1, atol=1e-4), p",
                        "def names(layer):",
                        "    return [layer.name, *[n for inner in getattr(layer, 'layers', []) for n in names(inner)]]",
                        "print('augmentations', sorted(n for n in names(model) if n.startswith('aug_')))"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run([sys.executable, "-I", "-c", script], cwd=elsewhere, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert list(elsewhere.iterdir()) == []  # no mlflow.db (nor mlruns) left where it ran
    # The augmentation block inside the registered model is the best configuration's, no more and no fewer
    # (an empty list when the best configuration has no augmentation).
    expected = sorted(f"aug_{name}" for name in rep.best.config.enabled)
    assert f"augmentations {expected}" in done.stdout.splitlines(), done.stdout
