"""Training returns data: a per-epoch history frame. Tracking and pruning listen via callbacks.

Fast path (TensorFlow backend): the arrays become tensors once per process, each epoch is a
seeded shuffle of indices gathered into full batches (the last partial batch is dropped, so
every step has one shape and nothing is retraced), geometric augmentations placed in the
pipeline by `placement.plan` run per batch, and batches are prefetched. Other backends feed
the arrays through Keras's own adapter.

A repeat whose network has the structure of the previous one trains the same compiled model, reset to its
own seeds, instead of a fresh build (`train.reuse_compiled`; `reuse` says when and why it is exact).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .. import augment, runtime
from ..experiment.schema import ModelConfig, TrainConfig
from ..experiment.seeding import RepeatSeeds
from ..experiment.space import TrialConfig
from . import placement, reuse
from .data import Dataset, ImageFiles
from .model import build_model, compile_model


@dataclass
class RepeatResult:
    """One training run: its history (Keras names, one row per epoch) and the model (valid until the next
    `run`, which may reset and retrain it: `reuse`)."""

    history: pd.DataFrame
    model: object
    placement: str = "model"  # where the augmentations ran (`placement.Placement.label`)

    @property
    def best_val_loss(self) -> float:
        v = self.history["val_loss"].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        return float(v.min()) if len(v) else float("nan")


def history_frame(history: dict[str, list[float]]) -> pd.DataFrame:
    """Keras `History.history` -> DataFrame indexed by epoch (0-based), columns in Keras's names."""
    frame = pd.DataFrame({k: list(map(float, v)) for k, v in history.items()})
    frame.index.name = "epoch"
    return frame


def plan_placement(config: TrialConfig, settings: TrainConfig, where: str = "auto"):
    """Where this configuration's augmentations run on this backend and device (`where`: auto | model | data)."""
    return placement.plan(list(augment.build_order(config.enabled)), backend=runtime.backend(),
                          accelerator=runtime.has_accelerator(), jit_compile=settings.jit_compile,
                          placement=where)


def build(config: TrialConfig, dataset: Dataset, settings: TrainConfig, seeds: RepeatSeeds,
          in_model: Sequence[str] | None = None, model: ModelConfig = ModelConfig()):
    """A fresh compiled model for one repeat of one configuration (clears the Keras session).

    `in_model` names the augmentations built into the model (default: all that are on); `model` says
    which network (the convnet, or a base under the course's head).
    """
    import keras

    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session()  # also resets the global dtype policy: put the run's back
    keras.mixed_precision.set_global_policy(policy)
    reuse.clear()  # the session that held the cached model is gone
    runtime.release_traced_gradients()  # TensorFlow's registry would keep every earlier model's graphs
    set_global_seed(seeds.order)
    enabled = config.enabled
    chosen = enabled if in_model is None else {n: enabled[n] for n in in_model}
    layers = placement.jit_capable(augment.build_layers(chosen, seeds.aug), runtime.backend())
    net = build_model(model, dataset.input_shape, dataset.num_classes, config.depth, config.filters,
                      config.dense_units, layers, seed=seeds.init)
    jit = {"auto": "auto", "true": True, "false": False}[settings.jit_compile]
    return compile_model(net, dataset.num_classes, config.learning_rate, settings.adam_epsilon, jit)


_TENSORS: dict = {}
_MAX_TENSORS = 4  # train and validation images and labels of one dataset


def _tensor(a):
    """`a` as a TensorFlow tensor, converted once per process (the latest dataset's arrays are kept)."""
    import tensorflow as tf

    key = (id(a), a.shape, str(a.dtype))
    if key not in _TENSORS:
        while len(_TENSORS) >= _MAX_TENSORS:
            _TENSORS.pop(next(iter(_TENSORS)))
        # The array stays referenced so its id cannot be reused by another array.
        _TENSORS[key] = (a, tf.constant(a))
    return _TENSORS[key][1]


def _gather(x, y):
    """Batch of indices -> (images, labels): gathered from tensors in memory, or (`ImageFiles`, the streaming
    path) decoded from the files (or their cache file) in parallel, in order."""
    import tensorflow as tf

    yt = _tensor(y)
    if not isinstance(x, ImageFiles):
        xt = _tensor(x)
        return lambda i: (tf.gather(xt, i), tf.gather(yt, i)), {}

    def load(i):
        images = tf.numpy_function(x.load, [i], tf.float32, stateful=False)
        return tf.ensure_shape(images, [None, *x.shape[1:]]), tf.gather(yt, i)

    return load, {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}


def input_pipeline(x, y, batch_size: int, seed: int | None = None, shuffle: bool = True,
                   drop_remainder: bool = True, augmentation_layers: Sequence = ()):
    """`tf.data` batches of (x, y): seeded per-epoch shuffle of indices, whole batches, the images gathered
    (arrays) or decoded (`ImageFiles`: the same batches, streamed from disk), augmentation, prefetch."""
    import tensorflow as tf

    n = int(x.shape[0])
    if drop_remainder and n < batch_size:
        drop_remainder = False  # fewer images than one batch: train on what there is
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    gather, options = _gather(x, y)
    ds = ds.map(gather, **options)
    if augmentation_layers:
        def augment_batch(images, labels):
            for layer in augmentation_layers:
                images = layer(images, training=True)
            return images, labels

        ds = ds.map(augment_batch)  # sequential: the layers' seed state advances in a fixed order
    return ds.prefetch(tf.data.AUTOTUNE)


# Validation has no backward pass and no per-batch state: few large batches cut the per-step overhead
# that dominates small images (loss and accuracy are means, so only the float summation order changes).
VALIDATION_BATCH = 512


def fit(model, dataset: Dataset, epochs: int, batch_size: int, callbacks: Sequence = (), *,
        data_augmentation: Sequence = (), seed: int = 0, drop_remainder: bool = True) -> pd.DataFrame:
    """Train on the dataset, validate each epoch, return the history frame.

    `data_augmentation`: layers applied in the input pipeline (TensorFlow backend only).
    """
    if runtime.backend() == "tensorflow":
        train_data = input_pipeline(dataset.x_train, dataset.y_train, batch_size, seed,
                                    drop_remainder=drop_remainder, augmentation_layers=data_augmentation)
        val_data = input_pipeline(dataset.x_val, dataset.y_val, max(batch_size, VALIDATION_BATCH), shuffle=False,
                                  drop_remainder=False)
        history = model.fit(train_data, validation_data=val_data, epochs=epochs, shuffle=False,
                            verbose=0, callbacks=list(callbacks))
    else:
        if data_augmentation:
            raise ValueError("augmentation in the input pipeline needs the TensorFlow backend")
        if dataset.pipeline == "stream":
            raise ValueError("streaming image folders needs the TensorFlow backend (tf.data); "
                             "set dataset.stream: false")
        history = model.fit(
            dataset.x_train, dataset.y_train,
            validation_data=(dataset.x_val, dataset.y_val),
            epochs=epochs, batch_size=batch_size, shuffle=True, verbose=0,
            validation_batch_size=max(batch_size, VALIDATION_BATCH), callbacks=list(callbacks),
        )
    return history_frame(history.history)


def stopping_callbacks(settings: TrainConfig) -> list:
    """The Keras callbacks that end one training early, as the settings ask (a group gives each member its own)."""
    import keras

    if settings.until_converged is not None:
        # The converged outcome: stop once val_loss has not improved for `patience` epochs and keep the best
        # weights, so the model handed back is the one whose val_loss is the outcome.
        return [keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", restore_best_weights=True,
                                              patience=settings.until_converged.patience)]
    return [keras.callbacks.EarlyStopping(patience=settings.early_stopping)] if settings.early_stopping else []


def run(config: TrialConfig, dataset: Dataset, settings: TrainConfig, seeds: RepeatSeeds,
        callbacks: Sequence = (), where: str = "auto", model: ModelConfig = ModelConfig()) -> RepeatResult:
    """Build and train one repeat; `callbacks` (tracking, pruning) come from the caller."""
    plan = plan_placement(config, settings, where)
    net = acquire_model(config, dataset, settings, seeds, plan.in_model, model)
    data_layers = augment.build_layers({n: config.enabled[n] for n in plan.in_data}, seeds.aug)
    extra = stopping_callbacks(settings)
    try:
        frame = fit(net, dataset, settings.epochs, settings.batch_size, [*callbacks, *extra],
                    data_augmentation=data_layers, seed=seeds.order)
    except BaseException:
        reuse.clear()  # a step interrupted half-way: never hand this model to another repeat
        raise
    return RepeatResult(frame, net, plan.label)


def acquire_model(config: TrialConfig, dataset: Dataset, settings: TrainConfig, seeds: RepeatSeeds,
                  in_model: Sequence[str], model: ModelConfig = ModelConfig()):
    """The compiled model for one repeat: the cached one of the same structure reset to `seeds`
    (`train.reuse_compiled`, the plain convnet; see `reuse`), else a fresh `build`. The model returned by
    one `run` is valid until the next `run` (which may reset and retrain it)."""
    fresh = lambda: build(config, dataset, settings, seeds, in_model=in_model, model=model)  # noqa: E731
    if not reuse.enabled(settings.reuse_compiled, runtime.backend()) or model.uses_base:
        reuse.clear()
        return fresh()
    key = reuse.structure_key(config, dataset, settings, in_model, model, runtime.backend(), runtime.dtype_policy(),
                              runtime.deterministic_ops())
    set_global_seed(seeds.order)  # what `build` does first; a reused model skips `build`
    net, _ = reuse.acquire(key, seeds, config.learning_rate, fresh, list(in_model))
    return net


def set_global_seed(seed: int) -> None:
    """Seed Python, NumPy and the backend: Keras's `set_random_seed`, which also seeds TensorFlow (its `tf.data`
    shuffles). Under another backend nothing here uses TensorFlow, and that call would import it wherever it is
    installed (about 4 CPU-s a process, measured on `bench/gpu.py --tiny`): the same seeds are set without it."""
    import keras

    if runtime.backend() == "tensorflow":
        keras.utils.set_random_seed(seed)
        return
    import random

    try:  # what `set_random_seed` sets besides TensorFlow's seed: Keras's global seed, its seed generator reset
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # a Keras laid out otherwise: its public call, TensorFlow import and all
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
