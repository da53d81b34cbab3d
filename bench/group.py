"""CPU-seconds per training of the default network: alone against N trainings as one compiled program.

The network and budget are the default experiment's (digits at 16x16, 150 training and 360 validation images,
depth 2, 16/32 filters, Dense 64, batch 32, Adam lr 0.003), with the course's flip + contrast in the model (both
trace under XLA, so every approach below can train them). Sides, run in turn round by round in one process:

- `alone`: `train.run` N times in a row, as a trial's repeats train today (the compiled model reused between
  repeats, `training.reuse`);
- `branches`: `training.group.run_group`, one Keras model holding the N members as independent branches (own
  inputs, own batch orders, summed losses): the path `--members` takes; Keras traces the whole step, every member
  unrolled in it, as one `tf.function`;
- `branches+xla`: the same program compiled by XLA (`jit_compile: true`): the members' loop inside one jitted step;
- `grouped conv`: the members fused into one network: their images concatenated on channels, `Conv2D(groups=N)`
  (one kernel call for all members), per-member dense layers as one batched `einsum` (XLA: TensorFlow's CPU
  kernels have no grouped convolution);
- `stacked`: `training.stacked.run_stacked`, the members' weights stacked on a leading axis: dense layers one
  batched matmul for all members, ReLU, pooling, loss and one Adam over the stacked variables on all of them at
  once; each member's own convolution op on its slice (M ops per layer, each a real convolution kernel); each
  member's own augmentation, data and batch order; validation through each member's own slices;
- `stacked-patches`: the same with every convolution of the training step one batched matmul of all members'
  patches (copied by a depthwise convolution with one-hot taps) times their stacked kernels.

Each side reports CPU-seconds of this process (all threads) per training, build and tracing included. The floor
is the arithmetic of one training (multiply-adds of the forward pass x 2 FLOP, x 3 for a training step, over the
images seen per epoch and the epochs) at the rate one core sustains on a big batch of these very layers.

    python bench/group.py                                # ~10 minutes on 2 shared cores
    python bench/group.py --sizes 4,16,64 --epochs 20    # fewer epochs: per-training figures scale per epoch
    python bench/group.py --sizes 4,16,32 --sides alone,branches,stacked     # the stacked engine against both
    KERAS_BACKEND=jax python bench/group.py --sides alone,branches,grouped,stacked   # the JAX path (make bench-gpu)
    python bench/group.py --tiny                         # seconds (tests)
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401 - sets sys.path and the TF log level
from _common import machine, median, rounds_text, table

AUGS = (("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.3),)))
SIDES = ("alone", "branches", "branches+xla", "grouped", "stacked", "stacked-patches")


def forward_macs(net) -> int:
    """Multiply-adds of one image's forward pass through the convnet's Conv2D and Dense layers."""
    total = 0
    for layer in net.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, out = layer.output.shape
            kh, kw, cin, _ = layer.kernel.shape
            total += h * w * out * kh * kw * cin
        elif kind == "Dense":
            cin, out = layer.kernel.shape
            total += cin * out
    return int(total)


def conv_rate(net, images: int = 4096, rounds: int = 3) -> float:
    """FLOP/s this process sustains on the network's own forward pass over one big batch (inference)."""
    import numpy as np

    x = np.random.default_rng(0).random((images, *net.input_shape[1:]), dtype=np.float32)
    run = net.predict_on_batch
    run(x[:8])
    best = float("inf")
    for _ in range(rounds):
        c = time.process_time()
        run(x)
        best = min(best, time.process_time() - c)
    return 2.0 * forward_macs(net) * images / best


def grouped_model(n: int, input_shape, num_classes: int, depth: int, filters: int, dense_units: int, seeds,
                  config, jit=True):
    """N convnets fused into one: per-member augmentation, channels concatenated, grouped convolutions, batched
    dense layers (keras.ops only, so it runs on any backend). Initial weights are each member's lone build's."""
    import keras
    import numpy as np
    from keras import layers, ops

    from augsweep import augment
    from augsweep.training.model import build_convnet

    class GroupDense(layers.Layer):
        """Dense per member: inputs (N, B, in) -> (N, B, out) with kernels (N, in, out)."""

        def __init__(self, n, units, activation, **kw):
            super().__init__(**kw)
            self.n, self.units, self.activation = n, units, keras.activations.get(activation)

        def build(self, shape):
            self.kernel = self.add_weight(shape=(self.n, shape[-1], self.units), initializer="zeros")
            self.bias = self.add_weight(shape=(self.n, 1, self.units), initializer="zeros")

        def call(self, x):
            return self.activation(ops.einsum("nbi,nio->nbo", x, self.kernel) + self.bias)

    lone = [build_convnet(input_shape, num_classes, depth, filters, dense_units, seed=s.init) for s in seeds]
    inputs = [keras.Input(shape=input_shape, name=f"image{k}") for k in range(n)]
    xs = []
    for k, x in enumerate(inputs):
        layers_k = augment.build_layers(config.enabled, seeds[k].aug)
        xs.append(keras.Sequential(layers_k, name=f"augment{k}")(x) if layers_k else x)
    x = layers.Concatenate(axis=-1)(xs) if n > 1 else xs[0]
    convs = []
    for i in range(depth):
        conv = layers.Conv2D(n * filters * 2**i, 5 if i == 0 else 3, padding="same", activation="relu", groups=n)
        convs.append(conv)
        x = layers.MaxPool2D()(conv(x))
    h, w, c = x.shape[1], x.shape[2], x.shape[3] // n
    x = layers.Reshape((h, w, n, c))(x)
    x = layers.Permute((3, 1, 2, 4))(x)  # (B, N, h, w, c): each member's own flatten order
    x = layers.Reshape((n, h * w * c))(x)
    x = layers.Lambda(lambda t: ops.transpose(t, (1, 0, 2)))(x)  # (N, B, features)
    dense = GroupDense(n, dense_units, "relu")
    out = GroupDense(n, num_classes, "softmax")
    y = out(dense(x))
    outputs = [layers.Lambda(lambda t, k=k: t[k], name=f"member{k}")(y) for k in range(n)]
    model = keras.Model(inputs, outputs)
    # Each member's initial weights are its lone build's: grouped kernels are the members' side by side.
    lone_convs = [[layer for layer in net.layers if type(layer).__name__ == "Conv2D"] for net in lone]
    value = ops.convert_to_numpy
    for i, conv in enumerate(convs):
        conv.kernel.assign(np.concatenate([value(m[i].kernel) for m in lone_convs], axis=-1))
    dense.kernel.assign(np.stack([value(net.get_layer("dense").kernel) for net in lone]))
    out.kernel.assign(np.stack([value(net.get_layer("output").kernel) for net in lone]))
    return model


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="4,8,16", help="members per program, comma-separated")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--sides", default=",".join(SIDES))
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="without deterministic ops (Keras turns XLA off under TensorFlow's determinism, so "
                        "branches+xla only differs from branches here)")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:  # the grouped network's first trace alone takes a minute on a loaded 2-core machine
        args.sizes, args.epochs, args.rounds, args.sides = "2", 2, 1, "alone,branches"
    sizes = [int(s) for s in args.sizes.split(",")]
    sides = [s for s in args.sides.split(",") if s]

    from dataclasses import replace

    import keras
    import numpy as np

    from augsweep import runtime
    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import sweep_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import group, stacked, train
    from augsweep.training.data import load_dataset

    env = runtime.setup(args.deterministic, False)  # as a sweep trains: deterministic ops, one thread each
    ds = load_dataset(DatasetConfig("digits", (16, 16), train_samples=150), 0)
    config = TrialConfig(2, filters=16, dense_units=64, learning_rate=0.003, augmentations=AUGS)
    settings = TrainConfig(epochs=args.epochs, batch_size=32, learning_rate=0.003)

    def alone(n):
        for s in range(n):
            train.run(config, ds, settings, sweep_seeds(0, s))

    curves: dict[tuple[str, int], list] = {}  # (side, n) -> each member's val_loss per epoch

    def branches(n, jit="auto"):
        members = [group.Member(config, ds, sweep_seeds(0, s)) for s in range(n)]
        results, _ = group.run_group(members, replace(settings, jit_compile=jit))
        curves[("branches", n)] = [r.history["val_loss"].to_numpy() for r in results]

    def grouped(n):
        keras.backend.clear_session()
        seeds = [sweep_seeds(0, s) for s in range(n)]
        model = grouped_model(n, ds.input_shape, ds.num_classes, 2, 16, 64, seeds, config)
        model.compile(optimizer=keras.optimizers.Adam(0.003, epsilon=settings.adam_epsilon),
                      loss=["sparse_categorical_crossentropy"] * n, metrics=[["accuracy"] for _ in range(n)],
                      jit_compile=True)
        members = [group.Member(config, ds, s) for s in seeds]
        if runtime.backend() == "tensorflow":
            data, val = group._tf_pipelines(members, settings, [[] for _ in members])
            history = model.fit(data, validation_data=val, epochs=settings.epochs, verbose=0)
        else:
            batches, steps = group._numpy_batches(members, settings, settings.epochs)
            history = model.fit(batches, steps_per_epoch=steps, epochs=settings.epochs, verbose=0,
                                validation_data=((ds.x_val,) * n, (ds.y_val,) * n), validation_batch_size=512)
        curves[("grouped", n)] = [np.asarray(history.history[f"val_member{k}_loss"]) for k in range(n)]

    def stacked_side(n, conv="members"):
        members = [group.Member(config, ds, sweep_seeds(0, s)) for s in range(n)]
        histories, _, _, _ = stacked.run_stacked(members, settings, conv=conv)
        curves[("stacked" if conv == "members" else "stacked-patches", n)] = [h["val_loss"].to_numpy()
                                                                               for h in histories]

    fns = {"alone": alone, "branches": branches, "branches+xla": lambda n: branches(n, "true"),
           "grouped": grouped, "stacked": stacked_side, "stacked-patches": lambda n: stacked_side(n, "patches")}
    if runtime.backend() != "tensorflow" or env.deterministic:
        sides = [s for s in sides if s != "branches+xla"]  # JAX compiles every step anyway; TF: XLA is off
    cpu: dict[tuple[str, int], list[float]] = {}
    alone_n = min(4, max(sizes))  # a trial's repeats: the first builds, the others reuse its compiled model
    for _ in range(args.rounds):
        for n in sizes:
            for side in sides:
                if side == "alone" and n != sizes[0]:
                    continue  # one training at a time costs the same whatever the group size
                k = alone_n if side == "alone" else n
                c = time.process_time()
                fns[side](k)
                cpu.setdefault((side, 1 if side == "alone" else n), []).append((time.process_time() - c) / k)
                print(f"  {side} x{k}: {cpu[(side, 1 if side == 'alone' else n)][-1]:.2f} CPU-s per training",
                      flush=True)
    # The floor: one training's arithmetic at this core's rate on the same layers.
    keras.backend.clear_session()
    net = train.build(config, ds, settings, sweep_seeds(0, 0), in_model=())
    macs = forward_macs(net)
    steps = len(ds.x_train) // settings.batch_size
    flops = 2.0 * macs * (3 * steps * settings.batch_size + len(ds.x_val)) * settings.epochs
    rate = conv_rate(net, 512 if args.tiny else 8192)
    floor = flops / rate
    alone_s = median(cpu[("alone", 1)]) if "alone" in sides else 0
    print(f"CPU-s per training, {args.epochs} epochs, {args.rounds} round(s); backend {env.backend}; deterministic "
          f"ops {env.deterministic}; threads per training {env.training_threads}; {machine()}")
    rows = []
    for (side, n), values in cpu.items():
        v = median(values)
        rows.append([side, n, v, f"{alone_s / v:.2f}x" if alone_s else "-", f"{v / floor:.1f}x", rounds_text(values)])
    print(table(["approach", "members", "CPU-s per training", "vs alone", "vs floor", "rounds"], rows))
    print(f"floor: {macs:,} multiply-adds per image forward; {flops / 1e9:.1f} GFLOP per training "
          f"({steps} steps x {settings.batch_size} images x 3 + {len(ds.x_val)} validation images, per epoch, "
          f"x {settings.epochs} epochs); this core sustains {rate / 1e9:.1f} GFLOP/s on the network's forward pass "
          f"over a big batch: {floor:.2f} CPU-s per training")
    for n in sizes:  # grouped and stacked compute the same functions with other kernels: how far apart
        for side in ("grouped", "stacked", "stacked-patches"):
            if (side, n) in curves and ("branches", n) in curves:
                pairs = list(zip(curves[(side, n)], curves[("branches", n)]))
                gap = max(float(np.max(np.abs(a - b))) for a, b in pairs)
                best = max(abs(float(a.min()) - float(b.min())) for a, b in pairs)
                print(f"{side} vs branches (= each training alone), {n} members: max |diff| of val_loss "
                      f"{gap:.2g} over every epoch, {best:.2g} in best val_loss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
