"""Several trainings of the plain convnet as one fused network: the members' weights stacked on a leading member axis.

`training.group` runs every member's own small ops (a branch per member), so on a CPU it saves only what a program
pays once. This engine computes most of each step for all members in one op instead:

- a convolution is each member's own convolution op on its slice (M ops per layer, each a real convolution kernel:
  measured faster than the alternative kept as `conv="patches"`, the members' image patches, copied exactly by a
  depthwise convolution with one-hot taps, times their stacked kernels in one batched matmul);
- a dense layer is one batched matmul over the member axis (again with the bias as a row of the matrix);
- ReLU, max-pooling and the softmax run on the members' batches merged into one.

Validation has no gradient and one large batch per member (every validation image), so there each member runs its
slices of the weights through the very ops a lone Keras `Conv2D`/`Dense` runs: a few big ops per member cost less
than patches.

Every member keeps its own training: its own data (each member's arrays, its own batch indices), its own initial
weights (its slice drawn by the lone build's seeded initialisers), its own augmentation layers seeded by its `aug`
seed and called once per step on its own slice, its own loss (the program minimises the sum of the members' mean
losses: the gradient of a sum with respect to one member's slice is its own gradient; a non-finite loss in one
member stays in its slice), its own Adam state (Adam is elementwise and the project sets no global-norm clipping, so
one Adam over stacked variables is M independent Adams), its own per-epoch curves and its own end (a callback that
stops it cuts its history there and keeps its weights as they were then; the others go on).

Nothing reduces across members: per-member convolutions are ops of one member's shape, batched matmuls compute each
slice by itself, and the dense biases and the per-member mean loss are matmuls too (a bias is a row of its matrix, a
mean a matmul with ones), not reductions whose kernel could change its summation order with the number of members.
So a member's numbers do not depend on who trains beside it: on TensorFlow with deterministic ops, member k of a
stacked group equals the same member trained alone through this engine bit for bit (`tests/test_stacked_training.py`;
under JAX, where XLA fuses the whole program, they agreed to 2.4e-7). Against the reference path (Keras
`Conv2D`/`Dense`, `train.run`) it computes the same functions with other kernels: its curves agree to a stated
tolerance, not bit for bit. A group trained here says so (`RepeatOutcome.engine`), and `--reproduce` of a run tagged
`engine=stacked` retrains its repeats alone through this engine.

Batch orders: on TensorFlow each member's batches are those its lone `train.fit` draws (its `order`-seeded `tf.data`
shuffle, reshuffled each epoch, zipped with the other members' and iterated by `fit` as a lone `fit` iterates it);
other backends draw per-member permutations from the `order` seed
(`group._numpy_batches`' rule).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .. import runtime
from ..experiment.schema import ModelConfig, TrainConfig
from . import group, reuse, train
from .data import ImageFiles
from .model import _HEAD_OFFSETS, _check_depth, _init, accuracy_name, build_convnet

ENGINE = "stacked"  # the run tag / param value naming this engine
MEMBERS_PREFIX = "members_"  # the program's logs: `members_loss` etc., one value per member
CONVOLUTIONS = ("members", "patches")  # how the training step convolves (`_build_engine`); the first is the default


def network_shape(config) -> tuple[int, int, int]:
    """What one stacked program holds one of: a configuration's depth, filters and dense units."""
    return config.depth, config.filters, config.dense_units


def stackable(members: Sequence[group.Member], settings: TrainConfig, model: ModelConfig = ModelConfig()) -> str:
    """Why these members cannot train as one stacked program ("" when they can)."""
    why = group.groupable(members, settings, model)
    if why:
        return why
    if any(isinstance(m.dataset.x_train, ImageFiles) for m in members):
        return "streamed image folders train one member per program"
    if runtime.dtype_policy() != "float32":
        return f"the stacked engine computes in float32 (dtype policy {runtime.dtype_policy()})"
    shapes = {network_shape(m.config) for m in members}
    if len(shapes) > 1:
        return "members with different depths, filters or dense units (one stacked program per network shape)"
    if len({int(m.dataset.x_train.shape[0]) for m in members}) > 1:
        return "members with different numbers of training images"
    if len({int(m.dataset.x_val.shape[0]) for m in members}) > 1:
        return "members with different numbers of validation images"
    return ""


def _weight_specs(input_shape, num_classes: int, depth: int, filters: int, dense_units: int):
    """(name, shape, initialiser offset or None for a zero bias) of one member's weights, in a lone convnet's
    `get_weights` order."""
    h, w, c = input_shape
    specs = []
    for i in range(depth):
        size, out = (5 if i == 0 else 3), filters * 2**i
        specs += [(f"block{i + 1}_kernel", (size, size, c, out), i), (f"block{i + 1}_bias", (out,), None)]
        h, w, c = h // 2, w // 2, out
    out = 1 if num_classes == 2 else num_classes
    specs += [("dense_kernel", (h * w * c, dense_units), _HEAD_OFFSETS["dense"]), ("dense_bias", (dense_units,), None),
              ("output_kernel", (dense_units, out), _HEAD_OFFSETS["output"]), ("output_bias", (out,), None)]
    return specs


def initial_weights(seed: int, input_shape, num_classes: int, depth: int, filters: int, dense_units: int) -> list:
    """One member's initial weights: what a lone `build_convnet(..., seed=seed)` draws (seeded initialisers are
    stateless), zero biases."""
    from keras import ops

    out = []
    for _, shape, k in _weight_specs(input_shape, num_classes, depth, filters, dense_units):
        out.append(np.zeros(shape, np.float32) if k is None
                   else np.asarray(ops.convert_to_numpy(_init(seed, k)(shape, dtype="float32"))))
    return out


def _sum_last(x):
    """Sum over the last axis of [M, B] as a batched matmul with ones: each member's row summed by itself, in the same
    order whatever the number of members (a reduction kernel may change its order with the shape)."""
    from keras import ops

    return ops.squeeze(ops.matmul(ops.expand_dims(x, -2), ops.ones_like(ops.expand_dims(x, -1))), (-2, -1))


def _build_engine(m: int, input_shape, num_classes: int, depth: int, filters: int, dense_units: int,
                  augmentation: Sequence[Sequence], conv: str = CONVOLUTIONS[0]):
    """The stacked network of `m` members: call([M, B, H, W, C]) -> [M, B, classes]; `augmentation[k]` member k's
    in-model augmentation layers (training only). `conv`: how the training step convolves, `members` (each member's
    own convolution op on its slice: M ops per layer, each a real convolution kernel) or `patches` (one batched
    matmul of all members' patches with their stacked kernels)."""
    if conv not in CONVOLUTIONS:
        raise ValueError(f"conv must be one of {CONVOLUTIONS}. Received: conv={conv!r}")
    import keras
    from keras import ops

    specs = _weight_specs(input_shape, num_classes, depth, filters, dense_units)
    binary = num_classes == 2

    class PerMember(keras.metrics.Metric):
        """A mean per member over the epoch's batches: total [M] and one count; its result is the vector [M] (one
        log entry for all members, not M scalars: each would cost ops and a conversion every epoch)."""

        def __init__(self, name):
            super().__init__(name=name)
            self.total = self.add_variable(shape=(m,), initializer="zeros", name="total")
            self.count = self.add_variable(shape=(), initializer="zeros", name="count")

        def update_state(self, values, weight):
            self.total.assign_add(values * weight)
            self.count.assign_add(ops.cast(weight, "float32"))

        def result(self):
            return ops.divide(self.total, ops.maximum(self.count, 1.0))

        def reset_state(self):
            self.total.assign(ops.zeros((m,)))
            self.count.assign(0.0)

    class StackedConvnet(keras.Model):
        def __init__(self):
            super().__init__(name=f"stacked_convnet_d{depth}")
            self.members = m
            self.augment_layers = [list(layers) for layers in augmentation]
            self.stacked = [self.add_weight(shape=(m, *shape), initializer="zeros", name=name)
                            for name, shape, _ in specs]
            self.loss_per_member = PerMember(f"{MEMBERS_PREFIX}loss")
            self.accuracy_per_member = PerMember(MEMBERS_PREFIX + accuracy_name(num_classes))

        def build(self, input_shape):  # the stacked weights are made above, their shapes known from the start
            self.built = True

        def call(self, x, training=False):
            x = ops.cast(x, "float32")
            if training and any(self.augment_layers):
                parts = []
                for k, layers in enumerate(self.augment_layers):
                    xk = x[k]
                    for layer in layers:
                        xk = layer(xk, training=True)
                    parts.append(xk)
                x = ops.stack(parts)
            if not training:
                return ops.stack([self._member(x[k], k) for k in range(m)])
            h, w, _ = input_shape
            for i in range(depth):
                if conv == "members":
                    x = self._conv_members(x, self.stacked[2 * i], self.stacked[2 * i + 1], h, w)
                else:
                    x = self._conv(x, self.stacked[2 * i], self.stacked[2 * i + 1], h, w)
                h, w = h // 2, w // 2
            x = ops.reshape(x, (m, -1, int(np.prod(x.shape[2:]))))
            x = ops.relu(self._affine(x, self.stacked[-4], self.stacked[-3]))
            return self._activation(self._affine(x, self.stacked[-2], self.stacked[-1]))

        def _activation(self, logits):
            return ops.sigmoid(logits) if binary else ops.softmax(logits, axis=-1)

        def _member(self, x, k):
            """Member k's forward pass without a gradient (validation): its slices of the weights through the ops a
            lone Keras `Conv2D`/`Dense` runs. An evaluation batch is large (every validation image), so a member's
            ops are few and big: cheaper than patches, and each member's numbers are its own by construction."""
            for i in range(depth):
                kernel, bias = self.stacked[2 * i][k], self.stacked[2 * i + 1][k]
                x = ops.relu(ops.conv(x, kernel, strides=1, padding="same") + ops.reshape(bias, (1, 1, 1, -1)))
                x = ops.max_pool(x, pool_size=2, strides=2, padding="valid")
            x = ops.reshape(x, (-1, int(np.prod(x.shape[1:]))))
            x = ops.relu(ops.matmul(x, self.stacked[-4][k]) + self.stacked[-3][k])
            return self._activation(ops.matmul(x, self.stacked[-2][k]) + self.stacked[-1][k])

        @staticmethod
        def _with_ones(x):
            return ops.concatenate([x, ops.ones_like(x[..., :1])], axis=-1)

        def _conv(self, x, kernel, bias, h, w):
            size, cin, out = kernel.shape[1], kernel.shape[3], kernel.shape[4]
            k = cin * size * size
            # The patches as a depthwise convolution of the members' merged batch with one-hot taps: it copies each
            # input channel's k*k neighbours (zero-padded, as `padding="same"`) into channels (c, i, j), exactly, and
            # its input gradient is one kernel (shifted slices' gradients are many full-size pads).
            patches = ops.depthwise_conv(ops.reshape(x, (-1, h, w, cin)), self._taps(size, cin), strides=1,
                                         padding="same")
            patches = ops.reshape(patches, (m, -1, k))
            kernel = ops.reshape(ops.transpose(kernel, (0, 3, 1, 2, 4)), (m, k, out))
            y = ops.relu(self._affine(patches, kernel, bias))
            y = ops.max_pool(ops.reshape(y, (-1, h, w, out)), pool_size=2, strides=2, padding="valid")
            return ops.reshape(y, (m, -1, h // 2, w // 2, out))

        def _conv_members(self, x, kernel, bias, h, w):
            """Each member's own convolution op (and bias) on its slice, then ReLU and pooling on the merged batch.
            M small ops per layer, but each is a real convolution kernel with its gradients (patches are copies
            that cost more than the arithmetic at these sizes); unstacking keeps the gradient a stack, not M pads."""
            out = kernel.shape[4]
            kernel, bias = ops.convert_to_tensor(kernel), ops.convert_to_tensor(bias)  # JAX cannot unstack a variable
            xs, ks, bs = ops.unstack(x, axis=0), ops.unstack(kernel, axis=0), ops.unstack(bias, axis=0)
            y = ops.stack([ops.conv(a, b, strides=1, padding="same") + ops.reshape(c, (1, 1, 1, -1))
                           for a, b, c in zip(xs, ks, bs)])
            y = ops.max_pool(ops.reshape(ops.relu(y), (-1, h, w, out)), pool_size=2, strides=2, padding="valid")
            return ops.reshape(y, (m, -1, h // 2, w // 2, out))

        def _affine(self, x, kernel, bias):
            """x @ kernel + bias per member, the bias a row of the matrix (a column of ones in x), so that its
            gradient is part of the batched matmul's, computed per member (not a reduction over the rows)."""
            return ops.matmul(self._with_ones(x), ops.concatenate([kernel, bias[:, None, :]], axis=1))

        @staticmethod
        def _taps(size, cin):
            taps = np.zeros((size, size, cin, size * size), np.float32)
            for i in range(size):
                for j in range(size):
                    taps[i, j, :, i * size + j] = 1.0
            return ops.convert_to_tensor(taps)

        def per_member(self, y, y_pred):
            """(mean loss [M], correct predictions [M], batch size) of each member's batch."""
            y = ops.convert_to_tensor(y)
            b = ops.cast(ops.shape(y_pred)[1], "float32")
            if binary:
                ce = keras.losses.binary_crossentropy(ops.cast(y, "float32")[..., None], y_pred)
                hit = ops.cast(ops.equal(ops.cast(y_pred[..., 0] > 0.5, "int32"), ops.cast(y, "int32")), "float32")
            else:
                ce = keras.losses.sparse_categorical_crossentropy(y, y_pred)
                hit = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), ops.cast(y, "int32")),
                               "float32")
            return _sum_last(ce) / b, _sum_last(hit), b

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            loss, _, _ = self.per_member(y, y_pred)
            return ops.sum(loss)  # summed, never averaged: each member's gradient is its own

        def compute_metrics(self, x, y, y_pred, sample_weight=None):
            loss, hit, b = self.per_member(y, y_pred)
            self.loss_per_member.update_state(loss, b)
            self.accuracy_per_member.update_state(hit / b, b)
            return self.get_metrics_result()

    net = StackedConvnet()
    net.build((m, None, *input_shape))
    return net


@dataclass
class MemberView:
    """What a member's callbacks see as their `model`: its stop flag, and its slice of the stacked weights in a lone
    convnet's `get_weights` order."""

    engine: object
    index: int
    stop_training: bool = False

    def _sync(self):
        sync = getattr(self.engine, "jax_state_sync", None)
        if sync is not None:
            sync()

    def get_weights(self) -> list:
        self._sync()
        return [np.array(v.numpy()[self.index]) for v in self.engine.stacked]

    def set_weights(self, weights) -> None:
        self._sync()
        for v, w in zip(self.engine.stacked, weights):
            full = np.array(v.numpy())
            full[self.index] = w
            v.assign(full)


def _tf_batches(members, settings: TrainConfig):
    """TensorFlow: `tf.data` batches of (x [M, B, ...], y [M, B]): each member's indices from its lone training's own
    shuffle (its `order`-seeded pipeline made under its global seed, iterated by `fit` as a lone `fit` iterates
    it), its images gathered from its own arrays."""
    import tensorflow as tf

    parts = []
    for mem in members:
        n = int(mem.dataset.x_train.shape[0])
        train.set_global_seed(mem.seeds.order)  # tf.data reads the global seed when the shuffle is made
        shuffled = tf.data.Dataset.range(n).shuffle(n, seed=mem.seeds.order, reshuffle_each_iteration=True)
        parts.append(shuffled.batch(min(settings.batch_size, n), drop_remainder=True))
    idx = tf.data.Dataset.zip(tuple(parts)).map(lambda *i: tf.stack(i))
    datasets = [mem.dataset for mem in members]
    if all(d is datasets[0] for d in datasets):
        xt, yt = train._tensor(datasets[0].x_train), train._tensor(datasets[0].y_train)
        batches = idx.map(lambda i: (tf.gather(xt, i), tf.gather(yt, i)))
    else:
        xt = tf.constant(np.stack([d.x_train for d in datasets]))
        yt = tf.constant(np.stack([d.y_train for d in datasets]))
        batches = idx.map(lambda i: (tf.gather(xt, i, batch_dims=1), tf.gather(yt, i, batch_dims=1)))
    return batches.prefetch(tf.data.AUTOTUNE)


def _numpy_orders(members, settings: TrainConfig) -> tuple[np.ndarray, int]:
    """Other backends: every member's batch indices for every epoch, [epochs, steps, M, B], drawn as
    `group._numpy_batches` draws them (a permutation per epoch from the member's `order` seed)."""
    steps = group._steps(members[0].dataset, settings.batch_size)
    rngs = [np.random.default_rng(mem.seeds.order) for mem in members]
    n = int(members[0].dataset.x_train.shape[0])
    b = min(settings.batch_size, n)
    idx = np.empty((settings.epochs, steps, len(members), b), np.int64)
    for e in range(settings.epochs):
        orders = [rng.permutation(n) for rng in rngs]
        for s in range(steps):
            for k, o in enumerate(orders):
                idx[e, s, k] = o[s * b:(s + 1) * b]
    return idx, steps


def _numpy_batches(members, idx):
    """Generator of (x [M, B, ...], y [M, B]) over every epoch's steps: each member's images from its own arrays."""
    datasets = [mem.dataset for mem in members]
    same = all(d is datasets[0] for d in datasets)

    def gen():
        for epoch in idx:
            for step in epoch:
                if same:
                    yield datasets[0].x_train[step], datasets[0].y_train[step]
                else:
                    yield (np.stack([d.x_train[i] for d, i in zip(datasets, step)]),
                           np.stack([d.y_train[i] for d, i in zip(datasets, step)]))

    return gen()


def lone_network(member: group.Member, weights: list, in_model: Sequence[str] = ()):
    """Member k as the lone Keras convnet `train.build` makes (augmentation layers in front), holding `weights`."""
    from .group import placement_layers

    cfg, ds = member.config, member.dataset
    layers = placement_layers(cfg.enabled, list(cfg.enabled) if in_model is None else in_model, member.seeds.aug)
    net = build_convnet(ds.input_shape, ds.num_classes, cfg.depth, cfg.filters, cfg.dense_units, layers,
                        seed=member.seeds.init)
    net.set_weights(weights)
    return net


class _Networks:
    """Each member's trained network as a lone Keras convnet, built on first use (a trial saves or evaluates only
    some of its repeats)."""

    def __init__(self, members, weights):
        self.members, self.weights, self.built = members, weights, {}

    def get(self, k: int):
        if k not in self.built:
            self.built[k] = lone_network(self.members[k], self.weights[k], list(self.members[k].config.enabled))
        return self.built[k]


def run_stacked(members: Sequence[group.Member], settings: TrainConfig, model: ModelConfig = ModelConfig(),
                conv: str = CONVOLUTIONS[0]):
    """Train the members as one stacked program: (one (history frame, trained weights) per member, its history cut
    at its own stop; a `_Networks` giving member k's lone Keras network; the compiled program)."""
    import keras

    why = stackable(members, settings, model)
    if why:
        raise ValueError(f"these trainings cannot run as one stacked program: {why}")
    first = members[0]
    cfg, ds = first.config, first.dataset
    _check_depth(cfg.depth, ds.input_shape)
    policy = keras.mixed_precision.global_policy()
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(policy)
    reuse.clear()
    runtime.release_traced_gradients()
    augmentation = []
    for mem in members:
        train.set_global_seed(mem.seeds.order)  # what a lone `build` does first
        augmentation.append(group.placement_layers(mem.config.enabled, list(mem.config.enabled), mem.seeds.aug))
    net = _build_engine(len(members), ds.input_shape, ds.num_classes, cfg.depth, cfg.filters, cfg.dense_units,
                        augmentation, conv)
    inits = [initial_weights(mem.seeds.init, ds.input_shape, ds.num_classes, cfg.depth, cfg.filters,
                             cfg.dense_units) for mem in members]
    for j, v in enumerate(net.stacked):
        v.assign(np.stack([w[j] for w in inits]))
    jit = {"auto": "auto", "true": True, "false": False}[settings.jit_compile]
    net.compile(optimizer=keras.optimizers.Adam(learning_rate=cfg.learning_rate, epsilon=settings.adam_epsilon),
                jit_compile=jit)
    # Adam's moments made now, not inside the first traced step (TensorFlow would then trace the step twice).
    net.optimizer.build(net.trainable_variables)
    views = [MemberView(net, k) for k in range(len(members))]
    lists = [[*mem.callbacks, *train.stopping_callbacks(settings)] for mem in members]
    splitter = _splitter(views, lists, group.metric_names(ds.num_classes))
    if all(mem.dataset is ds for mem in members):
        xv = np.broadcast_to(ds.x_val, (len(members), *ds.x_val.shape))
        yv = np.broadcast_to(ds.y_val, (len(members), *ds.y_val.shape))
    else:
        xv = np.stack([mem.dataset.x_val for mem in members])
        yv = np.stack([mem.dataset.y_val for mem in members])
    try:
        val = (np.ascontiguousarray(xv), np.ascontiguousarray(yv))
        if runtime.backend() == "tensorflow":
            net.fit(_tf_batches(members, settings), epochs=settings.epochs, verbose=0, shuffle=False,
                    validation_data=val, validation_batch_size=len(members), callbacks=[splitter])
        else:
            idx, steps = _numpy_orders(members, settings)
            net.fit(_numpy_batches(members, idx), steps_per_epoch=steps, epochs=settings.epochs, verbose=0,
                    validation_data=val, validation_batch_size=len(members), callbacks=[splitter])
    except BaseException:
        reuse.clear()
        raise
    final = [view.get_weights() for view in views]
    from .train import history_frame

    return [history_frame(h) for h in splitter.histories], _Networks(list(members), final), net, final


def _splitter(views, member_callbacks, metric_names):
    """The Keras callback that hands each member its own epoch logs (Keras's names and order) and ends members one
    by one: `group._Members`, reading member k's entry of the program's per-member vectors (`members_loss`, ...)."""

    def by_slice(logs, k, view, key):
        val = key.startswith("val_")
        name = f"{'val_' if val else ''}{MEMBERS_PREFIX}{key[4:] if val else key}"
        return float(np.atleast_1d(np.asarray(logs[name]))[k]) if name in logs else None

    return group._Members(views, member_callbacks, metric_names, read=by_slice)
