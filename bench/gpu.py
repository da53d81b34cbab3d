"""Images per second of the course's convnet at 128x128 on synthetic data, beside the arithmetic.

Batch 64 and 256, fp32 and bf16 (mixed precision), without augmentation and with all four of
flip+contrast+rotation+warp (placed as the sweep places them), trained through augsweep's own
builder and input path. Each figure is printed beside the FLOP count per training image (1.06
GFLOP at 128x128, depth 3) and the device's peak. Backend-neutral: runs under
KERAS_BACKEND=tensorflow, jax or torch; only the TensorFlow backend trains with TensorFlow (Keras's
`set_random_seed` still imports it, where it is installed, to seed it too).

    python bench/gpu.py                         # under 5 minutes on one GPU
    KERAS_BACKEND=jax python bench/gpu.py
    python bench/gpu.py --tiny                  # seconds on a CPU (smoke test)
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import _common  # noqa: F401 - sets sys.path and the TF log level
from _common import machine, table

# Dense peak FLOP/s (bf16 tensor cores, fp32 without TF32) and memory bandwidth, from the vendors'
# data sheets (SXM parts); matched by substring of the device name.
PEAKS = {
    "H200": (989e12, 67e12, 4.8e12),
    "H100": (989e12, 67e12, 3.35e12),
    "A100": (312e12, 19.5e12, 2.0e12),
    "L40S": (362e12, 91.6e12, 0.864e12),
    "L4": (121e12, 30.3e12, 0.3e12),
    "A10": (125e12, 31.2e12, 0.6e12),
    "T4": (65e12, 8.1e12, 0.32e12),
}
AUGS = (("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.3),)),
        ("rotation", (("factor", 0.1),)), ("warp", (("kind", "translation"), ("factor", 0.1))))


def train_flops_per_image(height: int, width: int, depth: int, filters: int = 32, channels: int = 3,
                          dense_units: int = 6) -> float:
    """Multiply-adds x2 of one training step per image: forward, plus backward (weights and inputs)
    for every layer except the first convolution's input gradient."""
    forward, first = 0.0, 0.0
    h, w, c = height, width, channels
    for i in range(depth):
        k, out = (5 if i == 0 else 3), filters * 2**i
        f = 2.0 * h * w * out * k * k * c
        forward += f
        first = first or f
        h, w, c = h // 2, w // 2, out
    forward += 2.0 * h * w * c * dense_units + 2.0 * dense_units
    return 3 * forward - first


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--images", type=int, default=2048, help="synthetic training images")
    p.add_argument("--batch-sizes", default="64,256")
    p.add_argument("--seconds", type=float, default=8.0, help="timed training per variant")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run on a CPU (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        # two steps of 16 images per epoch; no seconds asked: one timed epoch per variant after its warm-up
        args.image_size, args.depth, args.images, args.batch_sizes, args.seconds = 16, 2, 32, "16", 0.0

    import keras
    import numpy as np

    from augsweep import augment as aug
    from augsweep import runtime
    from augsweep.experiment import TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import train
    from augsweep.training.data import Dataset, make_synthetic

    device = runtime.configure_device()
    backend = runtime.backend()
    size = (args.image_size, args.image_size)
    t = time.perf_counter()
    base_n = min(args.images, 512)
    x, y = make_synthetic(base_n, size, 2, 0)
    reps = math.ceil(args.images / base_n)
    x, y = np.concatenate([x] * reps)[: args.images], np.concatenate([y] * reps)[: args.images]
    ds = Dataset(x, y, x[:256], y[:256], ("car", "truck"), "synthetic")
    made = time.perf_counter() - t
    flops = train_flops_per_image(*size, args.depth)
    peak = next((v for k, v in PEAKS.items() if k in device), None)
    seeds = repeat_seeds(0, 0)

    def measure(batch: int, mixed: bool, augment: bool):
        runtime.set_precision(mixed)
        try:
            config = TrialConfig(args.depth, learning_rate=1e-3, augmentations=AUGS if augment else ())
            tcfg = TrainConfig(batch_size=batch, jit_compile="auto")
            where = train.plan_placement(config, tcfg)
            model = train.build(config, ds, tcfg, seeds, in_model=where.in_model)
            data_layers = aug.build_layers({a: config.enabled[a] for a in where.in_data}, seeds.aug)
            steps = len(x) // batch
            if backend == "tensorflow":
                data = train.input_pipeline(x, y, batch, seeds.order, augmentation_layers=data_layers)

                def fit(epochs):
                    model.fit(data, epochs=epochs, verbose=0)
            else:
                xs, ys = x[: steps * batch], y[: steps * batch]

                def fit(epochs):
                    model.fit(xs, ys, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)

            fit(1)  # warm-up: tracing and XLA compilation
            t0 = time.perf_counter()
            fit(1)
            one = time.perf_counter() - t0
            epochs = max(1, math.ceil(args.seconds / max(one, 1e-6)))
            t0 = time.perf_counter()
            fit(epochs)
            seconds = time.perf_counter() - t0
            return steps * batch * epochs / seconds, where.label, bool(model.jit_compile)
        finally:
            runtime.set_precision(False)
            keras.backend.clear_session()

    rows = []
    started = time.perf_counter()
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for mixed in (False, True):
            for augment in (False, True):
                ips, label, jit = measure(batch, mixed, augment)
                achieved = ips * flops
                top = None if peak is None else (peak[0] if mixed else peak[1])
                rows.append([batch, "bf16" if mixed else "fp32", "all four" if augment else "none", label,
                             "on" if jit else "off", f"{ips:.0f}", f"{achieved / 1e12:.2f}",
                             f"{100 * achieved / top:.1f}%" if top else "n/a",
                             f"{top / flops:.0f}" if top else "n/a"])
    print(f"gpu throughput: course convnet depth {args.depth} at {size[0]}x{size[1]}x3, {len(x)} synthetic images "
          f"(made in {made:.1f} s), backend {backend}, {device}; {machine()}")
    print(f"arithmetic: {flops / 1e9:.3f} GFLOP per training image (forward + backward)"
          + (f"; device peak {peak[0] / 1e12:.0f} TFLOP/s bf16, {peak[1] / 1e12:.1f} TFLOP/s fp32, "
             f"{peak[2] / 1e12:.2f} TB/s" if peak else "; device peak unknown (not in PEAKS)"))
    print(table(["batch", "precision", "augmentation", "placement", "XLA", "images/s", "TFLOP/s",
                 "% of peak", "images/s at peak"], rows))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
