"""The networks as pure builders: the course's custom convnet, and a base (a Keras application, or the
convnet's conv blocks from a weights file) under the course's head.

A base's preprocessing (its own `preprocess_input`, applied to images in [0, 1] scaled to [0, 255]):

| base | preprocessing |
|---|---|
| convnet | none (images stay in [0, 1], as it was trained) |
| vgg16, vgg19, resnet50 | `caffe`: RGB -> BGR, minus the ImageNet channel means |
| mobilenetv2 | `tf`: scaled to [-1, 1] |
| efficientnetb0 | none outside: the network rescales and normalises inside itself |

Grayscale images fed to an application (trained on RGB) have their one channel repeated three times.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import replace
from pathlib import Path
from typing import Sequence

from ..experiment.keys import COURSE_DENSE_UNITS, COURSE_FILTERS
from ..experiment.schema import ConfigError, ModelConfig, max_depth

# base -> (keras.applications constructor, module holding its preprocess_input)
APPLICATIONS = {
    "vgg16": ("VGG16", "vgg16"),
    "vgg19": ("VGG19", "vgg19"),
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2"),
    "efficientnetb0": ("EfficientNetB0", "efficientnet"),
    "resnet50": ("ResNet50", "resnet50"),
}
# Where Keras downloads ImageNet weights from, and the prefix of their file names in its cache.
IMAGENET_HOST = "storage.googleapis.com:443"  # AUGSWEEP_IMAGENET_HOST=host:port overrides (tests: a closed port)
CACHE_PREFIX = {"vgg16": "vgg16", "vgg19": "vgg19", "mobilenetv2": "mobilenet_v2", "efficientnetb0": "efficientnetb0",
                "resnet50": "resnet50"}
PROBE_SECONDS = 5.0


def _init(seed: int, k: int):
    import keras

    return keras.initializers.GlorotUniform(seed=seed + k)


# Initialiser seed offsets of the convnet's layers (`_init(seed, k)`): block i's conv gets k = i.
_HEAD_OFFSETS = {"dense": 100, "output": 101}


def _init_offset(layer_name: str) -> int | None:
    """`k` of `_init(seed, k)` for a convnet layer, or None for a layer without a seeded kernel."""
    if layer_name in _HEAD_OFFSETS:
        return _HEAD_OFFSETS[layer_name]
    m = re.fullmatch(r"block(\d+)_conv", layer_name)
    return int(m.group(1)) - 1 if m else None


def reinitialize_convnet(net, seed: int) -> bool:
    """Give a built convnet (`build_convnet`) the weights a fresh build with `seed` would have: each kernel
    drawn again by its layer's initialiser with that seed (seeded initialisers are stateless), biases from
    theirs. False, with nothing changed, if the network holds weights this function does not know how to set
    (the caller must then build afresh)."""
    plan = []
    for layer in net.layers:
        if not layer.weights:
            continue  # augmentation and pooling layers (seed-generator state is reset by the caller)
        k = _init_offset(layer.name)
        if k is None or {id(w) for w in layer.weights} != {id(layer.kernel), id(layer.bias)}:
            return False
        plan.append((layer, _init(seed, k)))
    for layer, kernel_init in plan:
        layer.kernel_initializer = kernel_init
        layer.kernel.assign(kernel_init(tuple(layer.kernel.shape), dtype=layer.kernel.dtype))
        layer.bias.assign(layer.bias_initializer(tuple(layer.bias.shape), dtype=layer.bias.dtype))
    return True


def _conv_blocks(depth: int, filters: int, seed: int) -> list:
    """`depth` blocks of Conv2D(ReLU, same) + MaxPool2D, filters doubling (first kernel 5, then 3)."""
    from keras import layers

    out = []
    for i in range(depth):
        out += [
            layers.Conv2D(filters * 2**i, 5 if i == 0 else 3, padding="same", activation="relu",
                          kernel_initializer=_init(seed, i), name=f"block{i + 1}_conv"),
            layers.MaxPool2D(name=f"block{i + 1}_pool"),
        ]
    return out


def _head(num_classes: int, dense_units: int, seed: int) -> list:
    """The course's head: Flatten -> Dense(dense_units, relu) -> Dense(1, sigmoid) or softmax."""
    from keras import layers

    binary = num_classes == 2
    return [
        layers.Flatten(name="flatten"),
        layers.Dense(dense_units, activation="relu", kernel_initializer=_init(seed, 100), name="dense"),
        # float32 output keeps the loss stable under mixed precision.
        layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax",
                     kernel_initializer=_init(seed, 101), dtype="float32", name="output"),
    ]


def build_convnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    depth: int,
    filters: int = COURSE_FILTERS,
    dense_units: int = COURSE_DENSE_UNITS,
    augmentation_layers: Sequence = (),
    seed: int = 0,
):
    """`depth` blocks of Conv2D(ReLU, same) + MaxPool2D, filters doubling from `filters`
    (first kernel 5, then 3), head Flatten -> Dense(dense_units, relu) -> sigmoid/softmax.

    Augmentation layers sit between the input and the first block, so they run on the
    accelerator and only in training. Every initialiser gets its own seed.
    """
    import keras

    _check_depth(depth, input_shape)
    stack = [keras.Input(shape=input_shape, name="image"), *augmentation_layers,
             *_conv_blocks(depth, filters, seed), *_head(num_classes, dense_units, seed)]
    return keras.Sequential(stack, name=f"convnet_d{depth}")


def _check_depth(depth: int, input_shape) -> None:
    if depth < 1 or depth > max_depth(input_shape[:2]):
        raise ValueError(
            f"depth must be in [1, {max_depth(input_shape[:2])}] for {input_shape[0]}x{input_shape[1]} "
            f"images. Received: depth={depth}"
        )


def convnet_base(input_shape: tuple[int, int, int], depth: int, filters: int = COURSE_FILTERS, seed: int = 0):
    """The convnet's conv blocks alone (what `make pretrain` saves and `model.base: convnet` loads)."""
    import keras

    _check_depth(depth, input_shape)
    return keras.Sequential([keras.Input(shape=input_shape, name="image"), *_conv_blocks(depth, filters, seed)],
                            name="convnet_base")


def base_input_shape(cfg: ModelConfig, input_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """What the base sees: the images themselves (convnet) or RGB (applications)."""
    return input_shape if cfg.base == "convnet" else (*input_shape[:2], 3)


def build_base(cfg: ModelConfig, input_shape: tuple[int, int, int], seed: int = 0):
    """The base with its weights loaded (`cfg.weights`) and `cfg.trainable` applied."""
    import keras

    shape = base_input_shape(cfg, input_shape)
    if cfg.base == "convnet":
        base = convnet_base(shape, cfg.depth, cfg.filters, seed)
    else:
        ctor = getattr(keras.applications, APPLICATIONS[cfg.base][0])
        base = ctor(include_top=False, weights="imagenet" if cfg.weights == "imagenet" else None, input_shape=shape)
    if cfg.weights not in ("none", "imagenet"):
        load_base_weights(base, cfg.weights, cfg.base)
    set_trainable(base, cfg.trainable)
    return base


def weighted_layers(base) -> list:
    """The base's layers that hold weights, bottom to top (what `trainable: N` counts)."""
    return [layer for layer in base.layers if layer.weights]


def set_trainable(base, trainable: bool | int) -> None:
    """True: every layer trains; False: the base is frozen; N: only the top N layers with weights train."""
    if isinstance(trainable, bool):
        base.trainable = trainable
        return
    layers = weighted_layers(base)
    if trainable > len(layers):
        raise ConfigError(f"model.trainable must be at most the base's {len(layers)} layers with weights. "
                          f"Received: trainable={trainable}")
    base.trainable = True
    for layer in layers[: len(layers) - trainable]:
        layer.trainable = False


def _snake(name: str) -> str:
    """Keras's file key for a layer class (`Conv2D` -> `conv2d`), as `.weights.h5` files store them."""
    name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()


def _stored_h5(handle) -> dict[str, list[tuple]]:
    """File key -> shapes of its variables, for the top-level layers of a Keras weights file."""
    layers = handle.get("layers")
    out = {}
    for key in (layers.keys() if layers is not None else ()):
        vars_ = layers[key].get("vars")
        out[key] = [tuple(vars_[str(i)].shape) for i in range(len(vars_))] if vars_ is not None else []
    return out


def _expected(base) -> list[tuple[str, object, list[tuple]]]:
    """(file key, layer, variable shapes) for every top-level layer, in the order Keras saves them."""
    used: dict[str, int] = {}
    out = []
    for layer in base.layers:
        key = _snake(type(layer).__name__)
        used[key] = used.get(key, -1) + 1
        out.append((key if used[key] == 0 else f"{key}_{used[key]}", layer, [tuple(w.shape) for w in layer.weights]))
    return out


def _mismatch(path: str, base_name: str, layer: str, have, want) -> ConfigError:
    return ConfigError(f"model.weights: {path} does not fit model.base: {base_name}: first mismatching layer "
                       f"{layer!r} (file: {have}, model: {want})")


def load_base_weights(base, path: str, base_name: str) -> None:
    """Load a `.weights.h5` (matched layer by layer, in order) or `.keras` file (matched by layer name)
    into `base`; a file that does not fit names the first layer that differs (`ConfigError`)."""
    import h5py

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"model.weights file not found. Received: weights={path!r}")
    try:
        if path.endswith(".keras"):
            _load_keras_file(base, path, base_name)
            return
        with h5py.File(p, "r") as handle:
            stored = _stored_h5(handle)
    except ConfigError:
        raise
    except Exception as e:  # noqa: BLE001 - h5py, zip and Keras deserialisation each raise their own kinds
        text = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise ConfigError(f"model.weights: {path} is not a readable Keras weights file ({text})") from None
    expected = _expected(base)
    for key, layer, shapes in expected:
        if not shapes:
            continue
        if shapes != stored.get(key, []):
            raise _mismatch(path, base_name, layer.name, stored.get(key, "missing"), shapes)
    extra = sorted(k for k, v in stored.items() if v and k not in {k for k, _, _ in expected})
    if extra:
        raise _mismatch(path, base_name, extra[0], "present", "no such layer")
    base.load_weights(path)


def _load_keras_file(base, path: str, base_name: str) -> None:
    """A whole saved model (`.keras`): every layer of the base takes the weights of the layer of the same name."""
    import keras

    saved = keras.saving.load_model(path, compile=False, safe_mode=True)

    def walk(model):
        for layer in model.layers:
            yield layer
            if hasattr(layer, "layers"):
                yield from walk(layer)

    by_name = {layer.name: layer for layer in walk(saved)}
    for layer in weighted_layers(base):
        theirs = by_name.get(layer.name)
        want = [tuple(w.shape) for w in layer.weights]
        have = [tuple(w.shape) for w in theirs.weights] if theirs is not None else "missing"
        if have != want:
            raise _mismatch(path, base_name, layer.name, have, want)
        layer.set_weights(theirs.get_weights())


def _preprocess_layer(base_name: str):
    """A layer applying the application's `preprocess_input` to images in [0, 1] (scaled to [0, 255])."""
    import keras

    module = getattr(keras.applications, APPLICATIONS[base_name][1])

    class Preprocess(keras.layers.Layer):
        def call(self, x):
            return module.preprocess_input(x * 255.0)

    return Preprocess(name=f"{base_name}_preprocess")


def build_model(
    cfg: ModelConfig,
    input_shape: tuple[int, int, int],
    num_classes: int,
    depth: int,
    filters: int = COURSE_FILTERS,
    dense_units: int = COURSE_DENSE_UNITS,
    augmentation_layers: Sequence = (),
    seed: int = 0,
):
    """The experiment's network: the convnet, or (`cfg.uses_base`) augmentation -> [gray to RGB] ->
    preprocessing -> base -> the course's head. Augmentation layers run only in training."""
    if not cfg.uses_base:
        return build_convnet(input_shape, num_classes, depth, filters, dense_units, augmentation_layers, seed)
    import keras
    from keras import layers

    base = build_base(cfg, input_shape, seed)
    inputs = keras.Input(shape=input_shape, name="image")
    x = inputs
    for layer in augmentation_layers:
        x = layer(x)
    if cfg.base != "convnet":
        if input_shape[-1] == 1:
            x = layers.Concatenate(name="gray_to_rgb")([x, x, x])
        x = _preprocess_layer(cfg.base)(x)
    x = base(x)
    for layer in _head(num_classes, dense_units, seed):
        x = layer(x)
    return keras.Model(inputs, x, name=f"{cfg.base}_transfer")


def imagenet_reachable(base_name: str) -> bool:
    """ImageNet weights are in Keras's cache, or their host answers within `PROBE_SECONDS`."""
    import socket

    cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"
    if cache.is_dir() and any(f.name.startswith(CACHE_PREFIX[base_name]) and "notop" in f.name
                              for f in cache.iterdir()):
        return True
    answer: list[bool] = []

    def probe():  # in a thread: name resolution has no timeout of its own
        try:
            host, port = os.environ.get("AUGSWEEP_IMAGENET_HOST", IMAGENET_HOST).rsplit(":", 1)
            socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
            answer.append(True)
        except OSError:
            answer.append(False)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(PROBE_SECONDS)
    return bool(answer and answer[0])


def check_model(cfg: ModelConfig, input_shape: tuple[int, int, int]) -> None:
    """Pre-flight (before any store is written): ImageNet weights reachable, a weights file fits the base,
    `trainable` fits it. Bad input raises `ConfigError` (one line)."""
    if not cfg.uses_base:
        return
    if cfg.weights == "imagenet":
        if not imagenet_reachable(cfg.base):
            raise ConfigError(f"model.weights: imagenet weights for {cfg.base} are not in the Keras cache and "
                              f"cannot be downloaded (no network); use weights: PATH with a local .weights.h5 or "
                              f".keras file. Received: weights='imagenet'")
        cfg = replace(cfg, weights="none")  # the architecture alone, to check `trainable` against it
    import keras

    build_base(cfg, input_shape)  # loads and checks the weights file, applies `trainable`
    keras.backend.clear_session()


def accuracy_name(num_classes: int) -> str:
    """Keras's own metric name: `binary_accuracy` for two classes, `accuracy` otherwise."""
    return "binary_accuracy" if num_classes == 2 else "accuracy"


def compile_model(model, num_classes: int, learning_rate: float, epsilon: float = 0.01,
                  jit_compile="auto"):
    """Adam (the course's epsilon=0.01) with binary or sparse categorical cross-entropy."""
    import keras

    binary = num_classes == 2
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, epsilon=epsilon),
        loss="binary_crossentropy" if binary else "sparse_categorical_crossentropy",
        metrics=[accuracy_name(num_classes)],
        jit_compile=jit_compile,
    )
    return model
