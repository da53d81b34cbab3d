"""The course's custom convnet as a pure builder: a function of its parameters, nothing else."""

from __future__ import annotations

from typing import Sequence

from ..experiment.schema import max_depth


def build_convnet(
    input_shape: tuple[int, int, int],
    num_classes: int,
    depth: int,
    filters: int = 32,
    dense_units: int = 6,
    augmentation_layers: Sequence = (),
    seed: int = 0,
):
    """`depth` blocks of Conv2D(ReLU, same) + MaxPool2D, filters doubling from `filters`
    (first kernel 5, then 3), head Flatten -> Dense(dense_units, relu) -> sigmoid/softmax.

    Augmentation layers sit between the input and the first block, so they run on the
    accelerator and only in training. Every initialiser gets its own seed.
    """
    import keras
    from keras import layers

    if depth < 1 or depth > max_depth(input_shape[:2]):
        raise ValueError(
            f"depth must be in [1, {max_depth(input_shape[:2])}] for {input_shape[0]}x{input_shape[1]} "
            f"images. Received: depth={depth}"
        )

    def init(k: int):
        return keras.initializers.GlorotUniform(seed=seed + k)

    stack = [keras.Input(shape=input_shape, name="image"), *augmentation_layers]
    for i in range(depth):
        stack += [
            layers.Conv2D(filters * 2**i, 5 if i == 0 else 3, padding="same", activation="relu",
                          kernel_initializer=init(i), name=f"block{i + 1}_conv"),
            layers.MaxPool2D(name=f"block{i + 1}_pool"),
        ]
    binary = num_classes == 2
    stack += [
        layers.Flatten(name="flatten"),
        layers.Dense(dense_units, activation="relu", kernel_initializer=init(100), name="dense"),
        # float32 output keeps the loss stable under mixed precision.
        layers.Dense(1 if binary else num_classes, activation="sigmoid" if binary else "softmax",
                     kernel_initializer=init(101), dtype="float32", name="output"),
    ]
    return keras.Sequential(stack, name=f"convnet_d{depth}")


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
