"""Several trainings as one compiled program: a group of members, each exactly the training `train.run` does alone.

One small convnet's training is mostly framework overhead (a handful of optimizer steps per epoch, a validation
pass, callbacks, each paid per training). A group pays it once for all its members: one Keras model holds every
member's network as an independent branch with its own input, one `fit` steps them together, and the loss it
minimises is the sum of the members' losses (summed, never averaged: a 1/N scale would change Adam's updates
through its epsilon).

What each member keeps from training alone, and why it is the same training:

- its own network, built by the same builder with its own `init` seed (the same initial weights) and its own
  augmentation layers seeded by its `aug` seed (the same draws, in the same order: one call per step);
- its own batch order: its own `tf.data` pipeline, shuffled with its `order` seed under the same global seed a
  lone training sets, so every epoch's batches are the lone training's; the members' pipelines are zipped;
- its own data: one `Dataset` per member (they may all be the same object); only the number of steps per epoch
  must agree, so that the members step together;
- its own loss and optimizer state: the gradient of a sum with respect to one member's weights is that member's
  gradient (no other term depends on them), and Adam's moments are per variable, so its updates are its own;
- its own curves: the group's per-output logs are renamed back to Keras's names (`loss`, `val_loss`, accuracy)
  and handed to the member's own callbacks (tracking, pruning, the non-finite check, early stopping), which see
  the member's branch as their `model`;
- its own end: a callback that sets `stop_training` stops that member alone. Its history is cut at that epoch,
  its weights are kept as they were then (early stopping's restored best included), and the others go on; the
  group stops once every member has. A stopped member's branch keeps computing until then (cheaper than
  retracing a smaller program), but nothing after its stop reaches its outcome.

On the TensorFlow backend with deterministic ops each member's curves equal its lone training's bit for bit
(`tests/test_group_training.py`). Other backends (JAX on a GPU) have no `tf.data`: there the members' batches come
from per-member permutations drawn from each member's `order` seed (`_numpy_batches`), so each member keeps its own
order, but not the one Keras's array adapter gives a lone training on that backend: the same experiment with other
draws, not the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .. import augment, runtime
from ..experiment.schema import ModelConfig, TrainConfig
from ..experiment.seeding import RepeatSeeds
from ..experiment.space import TrialConfig
from . import reuse, train
from .data import Dataset, ImageFiles
from .model import accuracy_name, build_model


@dataclass
class Member:
    """One training of a group: what `train.run` takes for one repeat, and the callbacks that listen to it."""

    config: TrialConfig
    dataset: Dataset
    seeds: RepeatSeeds
    callbacks: Sequence = field(default_factory=tuple)


def groupable(members: Sequence[Member], settings: TrainConfig, model: ModelConfig = ModelConfig()) -> str:
    """Why these members cannot train as one program ("" when they can)."""
    if not members:
        return "no members"
    if model.uses_base:
        return "a pretrained base trains one member per program"
    if len({m.config.learning_rate for m in members}) > 1:
        return "members with different learning rates"
    if any(isinstance(m.dataset.x_train, ImageFiles) for m in members):
        return "streamed image folders train one member per program"
    if len({_steps(m.dataset, settings.batch_size) for m in members}) > 1:
        return "members with different numbers of steps per epoch"
    if len({(tuple(m.dataset.input_shape), int(m.dataset.num_classes)) for m in members}) > 1:
        return "members with different image shapes or classes"
    if runtime.dtype_policy() == "mixed_float16":
        return "mixed_float16's loss scale would skip every member's step when one member overflows"
    return ""


def _steps(dataset: Dataset, batch_size: int) -> int:
    n = int(dataset.x_train.shape[0])
    return max(1, n // batch_size) if n >= batch_size else 1


def _member_net(member: Member, settings: TrainConfig, model: ModelConfig, index: int):
    """The member's network, as `train.build` makes it (without its compile), named for its place in the group."""
    plan = train.plan_placement(member.config, settings)
    enabled = member.config.enabled
    layers = placement_layers(enabled, plan.in_model, member.seeds.aug)
    net = build_model(model, member.dataset.input_shape, member.dataset.num_classes, member.config.depth,
                      member.config.filters, member.config.dense_units, layers, seed=member.seeds.init)
    net.lone_name = net.name  # given back after training, so that a saved member is named as a lone model
    net.name = f"member{index}"  # the program's outputs need distinct names
    data_layers = augment.build_layers({n: enabled[n] for n in plan.in_data}, member.seeds.aug)
    return net, data_layers, plan.label


def placement_layers(enabled, in_model, aug_seed: int) -> list:
    """The member's in-model augmentation layers, as `train.build` makes them."""
    from . import placement

    return placement.jit_capable(augment.build_layers({n: enabled[n] for n in in_model}, aug_seed), runtime.backend())


def build_group(members: Sequence[Member], settings: TrainConfig, model: ModelConfig = ModelConfig()):
    """(compiled group model, member networks, per-member data-pipeline layers, placement labels)."""
    import keras

    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    reuse.clear()
    runtime.release_traced_gradients()
    nets, data_layers, labels = [], [], []
    for k, m in enumerate(members):
        train.set_global_seed(m.seeds.order)  # what a lone `build` does first
        net, layers, label = _member_net(m, settings, model, k)
        nets.append(net)
        data_layers.append(layers)
        labels.append(label)
    inputs = [keras.Input(shape=m.dataset.input_shape, name=f"image{k}") for k, m in enumerate(members)]
    group = keras.Model(inputs, [net(x) for net, x in zip(nets, inputs)], name="group")
    first = members[0]
    jit = {"auto": "auto", "true": True, "false": False}[settings.jit_compile]
    binary = first.dataset.num_classes == 2
    # One loss per output, each weighted 1: Keras sums them; Adam as `model.compile_model` sets it up.
    group.compile(optimizer=keras.optimizers.Adam(learning_rate=first.config.learning_rate,
                                                  epsilon=settings.adam_epsilon),
                  loss=["binary_crossentropy" if binary else "sparse_categorical_crossentropy"] * len(nets),
                  metrics=[[accuracy_name(first.dataset.num_classes)] for _ in nets], jit_compile=jit)
    return group, nets, data_layers, labels


def _tf_pipelines(members, settings, data_layers, drop_remainder: bool = True):
    """Zipped per-member `tf.data` pipelines: each member's batches are those `train.fit` feeds it alone."""
    import tensorflow as tf

    parts = []
    for m, layers in zip(members, data_layers):
        train.set_global_seed(m.seeds.order)  # tf.data reads the global seed when the shuffle is made
        parts.append(train.input_pipeline(m.dataset.x_train, m.dataset.y_train, settings.batch_size,
                                          m.seeds.order, drop_remainder=drop_remainder, augmentation_layers=layers))
    val_batch = max(settings.batch_size, train.VALIDATION_BATCH)
    datasets = [m.dataset for m in members]
    if all(d is datasets[0] for d in datasets):  # one validation pipeline fed to every branch
        one = train.input_pipeline(datasets[0].x_val, datasets[0].y_val, val_batch, shuffle=False,
                                   drop_remainder=False)
        n = len(members)
        val = one.map(lambda x, y: ((x,) * n, (y,) * n))
    else:
        val = tf.data.Dataset.zip(tuple(train.input_pipeline(d.x_val, d.y_val, val_batch, shuffle=False,
                                                             drop_remainder=False) for d in datasets))
        val = val.map(_unzip)
    return tf.data.Dataset.zip(tuple(parts)).map(_unzip), val


def _unzip(*pairs):
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def _numpy_batches(members, settings, epochs: int):
    """Other backends: per-member batch orders drawn from each member's `order` seed, as a Python generator of
    whole batches (the last partial batch dropped, as the TensorFlow pipeline does)."""
    rngs = [np.random.default_rng(m.seeds.order) for m in members]
    steps = _steps(members[0].dataset, settings.batch_size)

    def gen():
        while True:
            orders = [rng.permutation(int(m.dataset.x_train.shape[0])) for m, rng in zip(members, rngs)]
            for s in range(steps):
                idx = [o[s * settings.batch_size:(s + 1) * settings.batch_size] for o in orders]
                yield (tuple(np.asarray(m.dataset.x_train[i]) for m, i in zip(members, idx)),
                       tuple(np.asarray(m.dataset.y_train[i]) for m, i in zip(members, idx)))

    return gen(), steps


class _Members:
    """The Keras callback that splits the group's epoch logs into each member's, and ends members one by one."""

    def __new__(cls, nets, member_callbacks, metric_names, read=None):
        """`read(logs, k, net, name)`: member k's value of metric `name` (Keras's name: `loss`, `val_loss`, ...)
        in the program's epoch logs, None when absent; by default the branch's `<net name>_<metric>` entry."""
        import keras

        def by_branch(logs, k, net, key):
            val = key.startswith("val_")
            name = f"{'val_' if val else ''}{net.name}_{key[4:] if val else key}"
            return float(logs[name]) if name in logs else None

        read = read or by_branch

        class MemberCallbacks(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.nets = nets
                self.lists = [list(cbs) for cbs in member_callbacks]
                self.histories: list[dict[str, list[float]]] = [{} for _ in nets]
                self.stopped: list[int | None] = [None] * len(nets)  # epoch each member stopped at
                self.snapshots: list = [None] * len(nets)
                for net, cbs in zip(nets, self.lists):
                    net.stop_training = False
                    for cb in cbs:
                        cb.set_model(net)

            def _each(self, hook, *args):
                for k, cbs in enumerate(self.lists):
                    if self.stopped[k] is None:
                        for cb in cbs:
                            getattr(cb, hook)(*args)

            def on_train_begin(self, logs=None):
                self._each("on_train_begin", None)

            def on_epoch_begin(self, epoch, logs=None):
                self._each("on_epoch_begin", epoch, None)

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                for k, (net, cbs) in enumerate(zip(self.nets, self.lists)):
                    if self.stopped[k] is not None:
                        continue
                    own = {}
                    for key in metric_names:  # Keras's names and order, as a lone training logs them
                        value = read(logs, k, net, key)
                        if value is not None:
                            own[key] = value
                    for key, v in own.items():
                        self.histories[k].setdefault(key, []).append(v)
                    for cb in cbs:
                        cb.on_epoch_end(epoch, dict(own))
                    if net.stop_training:
                        self._stop(k, epoch)
                if all(s is not None for s in self.stopped):
                    self.model.stop_training = True

            def _stop(self, k, epoch):
                self.stopped[k] = epoch
                for cb in self.lists[k]:
                    cb.on_train_end(None)
                # Taken after its callbacks ran: early stopping may have restored its best weights.
                self.snapshots[k] = self.nets[k].get_weights()

            def on_train_end(self, logs=None):
                self._each("on_train_end", None)
                for k, net in enumerate(self.nets):
                    if self.snapshots[k] is not None:
                        net.set_weights(self.snapshots[k])  # what it trained until its own stop

        return MemberCallbacks()


def metric_names(num_classes: int) -> list[str]:
    """The keys of a lone training's epoch logs, in Keras's order."""
    acc = accuracy_name(num_classes)
    return [acc, "loss", f"val_{acc}", "val_loss"]


def run_group(members: Sequence[Member], settings: TrainConfig, model: ModelConfig = ModelConfig()):
    """Train the members as one program: (one `train.RepeatResult` per member, its history cut at its own stop and
    its model its branch of the program, valid until the next build; the compiled program)."""

    why = groupable(members, settings, model)
    if why:
        raise ValueError(f"these trainings cannot run as one program: {why}")
    group, nets, data_layers, labels = build_group(members, settings, model)
    lists = [[*m.callbacks, *train.stopping_callbacks(settings)] for m in members]
    splitter = _Members(nets, lists, metric_names(members[0].dataset.num_classes))
    try:
        if runtime.backend() == "tensorflow":
            train_data, val_data = _tf_pipelines(members, settings, data_layers)
            group.fit(train_data, validation_data=val_data, epochs=settings.epochs, shuffle=False, verbose=0,
                      callbacks=[splitter])
        else:
            if any(data_layers):
                raise ValueError("augmentation in the input pipeline needs the TensorFlow backend")
            batches, steps = _numpy_batches(members, settings, settings.epochs)
            first = members[0].dataset
            val = (tuple(m.dataset.x_val for m in members), tuple(m.dataset.y_val for m in members))
            if all(m.dataset is first for m in members):
                val = ((first.x_val,) * len(members), (first.y_val,) * len(members))
            group.fit(batches, steps_per_epoch=steps, validation_data=val, epochs=settings.epochs, verbose=0,
                      validation_batch_size=max(settings.batch_size, train.VALIDATION_BATCH), callbacks=[splitter])
    except BaseException:
        reuse.clear()
        raise
    for net in nets:
        net.name = net.lone_name
    return [train.RepeatResult(train.history_frame(h), net, label)
            for h, net, label in zip(splitter.histories, nets, labels)], group
