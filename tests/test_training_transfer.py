"""A base under the course's head: frozen really is frozen, `trainable: N` trains exactly the top N layers,
weights files round-trip, mismatched files and unreachable ImageNet weights stop before any store."""

from __future__ import annotations

import numpy as np
import pytest

from augsweep.experiment import ConfigError, ModelConfig, TrainConfig
from augsweep.experiment.seeding import repeat_seeds
from augsweep.experiment.space import TrialConfig
from augsweep.training import train
from augsweep.training.data import Dataset
from augsweep.training.model import build_model, convnet_base, weighted_layers
from tests.helpers import read_stores, run_in_process, sweep, tiny_experiment

SHAPE = (16, 16, 1)


def tiny_data(n=64, seed=0, classes=3) -> Dataset:
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int32)
    x = rng.random((n, *SHAPE), dtype=np.float32) * 0.3 + y[:, None, None, None] / classes
    return Dataset(x[:48], y[:48], x[48:], y[48:], tuple("abc"[:classes]), "test")


def saved_base(path, depth=3, filters=4, seed=7) -> list[np.ndarray]:
    """A self-made convnet base written to `path` (a `.weights.h5`); its weights, layer by layer."""
    base = convnet_base(SHAPE, depth, filters, seed=seed)
    base.save_weights(path)
    return [layer.get_weights() for layer in weighted_layers(base)]


def error_line(stderr: str) -> str:
    """The one `error:` line, last on stderr (TensorFlow's own C++ start-up chatter may precede it)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-2000:]
    return errors[0]


def base_of(model):
    return next(layer for layer in model.layers if layer.name == "convnet_base")


def train_once(cfg: ModelConfig, epochs=2):
    config = TrialConfig(0, dense_units=8, learning_rate=0.01, augmentations=(("flip", (("mode", "horizontal"),)),))
    done = train.run(config, tiny_data(), TrainConfig(epochs=epochs, batch_size=16), repeat_seeds(0, 0), model=cfg)
    return done.model


def test_frozen_base_is_identical_after_training_and_only_the_head_changes(tmp_path):
    path = tmp_path / "base.weights.h5"
    saved = saved_base(path)
    cfg = ModelConfig("convnet", str(path), False, depth=3, filters=4)
    before_head = build_model(cfg, SHAPE, 3, 0, dense_units=8, seed=repeat_seeds(0, 0).init)
    head_before = [before_head.get_layer(n).get_weights() for n in ("dense", "output")]
    model = train_once(cfg)
    for layer, weights in zip(weighted_layers(base_of(model)), saved):
        for a, b in zip(layer.get_weights(), weights):
            np.testing.assert_array_equal(a, b)  # bit for bit: the base never trained
    for name, weights in zip(("dense", "output"), head_before):
        assert not np.allclose(model.get_layer(name).get_weights()[0], weights[0])  # the head did
    assert [layer.name for layer in model.layers[:2]] == ["image", "aug_flip"]  # augmentation in front of the base


def test_trainable_two_changes_exactly_the_top_two_layers(tmp_path):
    path = tmp_path / "base.weights.h5"
    saved = saved_base(path, depth=3)
    model = train_once(ModelConfig("convnet", str(path), 2, depth=3, filters=4))
    changed = [not all(np.array_equal(a, b) for a, b in zip(layer.get_weights(), weights))
               for layer, weights in zip(weighted_layers(base_of(model)), saved)]
    assert changed == [False, True, True]


def test_weights_file_round_trips_both_formats(tmp_path):
    saved = saved_base(tmp_path / "base.weights.h5", depth=2)
    keras_file = tmp_path / "base.keras"
    donor = convnet_base(SHAPE, 2, 4, seed=7)
    donor.save(keras_file)
    for path in (tmp_path / "base.weights.h5", keras_file):
        model = build_model(ModelConfig("convnet", str(path), False, depth=2, filters=4), SHAPE, 2, 0)
        for layer, weights in zip(weighted_layers(base_of(model)), saved):
            for a, b in zip(layer.get_weights(), weights):
                np.testing.assert_array_equal(a, b)
        assert model.output_shape == (None, 1)  # two classes: one sigmoid unit


def test_mismatched_file_names_the_first_layer_that_differs(tmp_path):
    saved_base(tmp_path / "narrow.weights.h5", depth=2, filters=4)
    with pytest.raises(ConfigError, match=r"narrow.weights.h5 does not fit model.base: convnet: first mismatching "
                                          r"layer 'block1_conv' \(file: \[\(5, 5, 1, 4\), \(4,\)\], model: "
                                          r"\[\(5, 5, 1, 8\), \(8,\)\]\)"):
        build_model(ModelConfig("convnet", str(tmp_path / "narrow.weights.h5"), False, depth=2, filters=8), SHAPE, 2, 0)
    with pytest.raises(ConfigError, match=r"first mismatching layer 'block3_conv' \(file: missing"):
        build_model(ModelConfig("convnet", str(tmp_path / "narrow.weights.h5"), False, depth=3, filters=4), SHAPE, 2, 0)


def frozen_experiment(weights, **overrides) -> dict:
    exp = tiny_experiment(model={"base": "convnet", "weights": str(weights), "depth": 2, "filters": 4},
                          dataset={"image_size": [16, 16]}, **overrides)
    exp["search_space"].pop("depth")
    return exp


def test_mismatched_file_exits_2_before_any_trial_in_either_store(tmp_path, write_experiment):
    saved_base(tmp_path / "gray.weights.h5", depth=2)  # one input channel; the synthetic images are RGB
    exp = write_experiment(frozen_experiment(tmp_path / "gray.weights.h5"))
    result = run_in_process("sweep.py", exp, "--mlruns", tmp_path / "mlruns")
    assert result.returncode == 2, result.stderr[-2000:]
    line = error_line(result.stderr)
    assert "gray.weights.h5" in line and "'block1_conv'" in line
    assert not (tmp_path / "mlruns").exists()  # neither the Optuna nor the MLflow store was created


def test_imagenet_without_network_fails_in_the_preflight_naming_the_alternative(tmp_path, write_experiment):
    exp = tiny_experiment(model={"base": "vgg16", "weights": "imagenet"}, dataset={"image_size": [32, 32]})
    exp["search_space"].pop("depth")
    # What the tool answers, through sweep.py's entry function in this process (the preflight reads both variables
    # when it runs): no second interpreter start-up.
    result = run_in_process("sweep.py", write_experiment(exp), "--mlruns", tmp_path / "mlruns",
                            env={"AUGSWEEP_IMAGENET_HOST": "127.0.0.1:9", "KERAS_HOME": str(tmp_path / "keras")})
    assert result.returncode == 2, result.stderr[-2000:]
    line = error_line(result.stderr)
    assert "weights: PATH" in line and "vgg16" in line
    assert not (tmp_path / "mlruns").exists()


def test_frozen_base_sweep_end_to_end_reports_that_depth_is_not_searched(tmp_path, write_experiment):
    path = tmp_path / "rgb.weights.h5"
    base = convnet_base((16, 16, 3), 2, 4, seed=3)
    base.save_weights(path)
    exp = write_experiment(frozen_experiment(path, trials=2, train={"epochs": 1}))
    sweep(exp, tmp_path / "mlruns")
    view = read_stores(exp, tmp_path / "mlruns")
    parent = next(r for r in view.runs if r.data.tags.get("kind") == "sweep")
    assert parent.data.tags["model_base"] == "convnet" and parent.data.tags["model_trainable"] == "false"
    assert all(t.params.get("depth", 0) == 0 for t in view.trials) and len(view.trial_runs) == 2
    assert all(r.info.run_name.split()[1] == "base" for r in view.trial_runs)
    from tests.helpers import report

    out, _ = report(exp, tmp_path / "mlruns", tmp_path / "report")
    text = (out / "report.md").read_text()
    assert "a `convnet` base (weights from" in text and "Depth is not searched" in text


def test_application_base_on_grayscale_images_trains():
    """MobileNetV2 (random weights, frozen but for its top layer) on 1-channel images: repeated to RGB,
    preprocessed as the application expects, augmentation in front, the course's head."""
    import keras

    rng = np.random.default_rng(0)
    x = rng.random((24, 32, 32, 1), dtype=np.float32)
    y = (np.arange(24) % 2).astype(np.int32)
    ds = Dataset(x[:16], y[:16], x[16:], y[16:], ("a", "b"), "test")
    cfg = ModelConfig("mobilenetv2", "none", 1)
    model = train.build(TrialConfig(0, dense_units=4, augmentations=(("flip", (("mode", "horizontal"),)),)), ds,
                        TrainConfig(epochs=1, batch_size=8), repeat_seeds(0, 0), model=cfg)
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["image", "aug_flip", "gray_to_rgb", "mobilenetv2_preprocess", "mobilenetv2_1.00_32"]
    assert names[-3:] == ["flatten", "dense", "output"] and model.output_shape == (None, 1)
    base = model.get_layer("mobilenetv2_1.00_32")
    assert [layer.trainable for layer in weighted_layers(base)][-2:] == [False, True]
    history = train.fit(model, ds, 1, 8)
    assert np.isfinite(history["loss"]).all()
    x255 = np.full((1, 32, 32, 3), 0.5, np.float32)
    pre = model.get_layer("mobilenetv2_preprocess")
    np.testing.assert_allclose(np.asarray(pre(x255)), keras.applications.mobilenet_v2.preprocess_input(x255 * 255))


@pytest.mark.parametrize("base, module", [("vgg16", "vgg16"), ("efficientnetb0", "efficientnet")])
def test_application_bases_build_with_their_own_preprocessing(base, module):
    import keras

    model = build_model(ModelConfig(base, "none", False), (32, 32, 3), 5, 0, dense_units=16)
    assert model.output_shape == (None, 5) and model.get_layer("dense").units == 16
    assert "gray_to_rgb" not in [layer.name for layer in model.layers]  # RGB images go straight in
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype=np.float32)
    expected = getattr(keras.applications, module).preprocess_input(x * 255.0)
    np.testing.assert_allclose(np.asarray(model.get_layer(f"{base}_preprocess")(x)), expected, rtol=1e-6)
    frozen = [layer for layer in model.layers if isinstance(layer, keras.Model)][0]
    assert not frozen.trainable and not frozen.trainable_weights


def test_unreadable_weights_file_is_a_config_error(tmp_path):
    for name in ("junk.weights.h5", "junk.keras"):
        (tmp_path / name).write_bytes(b"not a weights file")
        with pytest.raises(ConfigError, match=rf"model.weights: .*{name} is not a readable Keras weights file"):
            build_model(ModelConfig("convnet", str(tmp_path / name), False, depth=1), SHAPE, 2, 0)
    with pytest.raises(ConfigError, match=r"model.weights file not found"):
        build_model(ModelConfig("convnet", str(tmp_path / "none.keras"), False, depth=1), SHAPE, 2, 0)
