"""Images per second of a Car-or-Truck-style folder (JPEG photos, 128x128) read the two ways augsweep can:
in memory (every image decoded once into an array, then gathered per batch) and streamed from disk by
tf.data (each batch decoded per epoch; optionally from a `.npy` cache file of the decoded pixels), side by
side in one run: the input pipeline alone, and a training epoch of the course's convnet on top of it.

    python bench/streaming.py            # about 3 minutes on 2 CPU cores (800 images, 128x128)
    python bench/streaming.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

import _common  # noqa: F401 - sets sys.path and TF log level
from _common import alternate, machine, median, table


def make_folder(root: Path, n: int, size: int) -> None:
    """`train/{car,truck}/*.jpg` and `valid/...` of smooth random photos at 1.25x `size` (so both paths resize)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    side = int(size * 1.25)
    for split, count in (("train", n), ("valid", max(4, n // 8))):
        for c, name in enumerate(("car", "truck")):
            (root / split / name).mkdir(parents=True)
            for i in range(count // 2):
                low = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
                img = Image.fromarray(low).resize((side, side), Image.BILINEAR)
                img.save(root / split / name / f"{i}.jpg", quality=90)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a few images, one round (smoke test)")
    p.add_argument("--images", type=int, default=800)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    n, size, rounds = (32, 32, 1) if args.tiny else (args.images, args.size, args.rounds)

    import tensorflow as tf

    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import train
    from augsweep.training.data import load_dataset

    tf.get_logger().setLevel("ERROR")  # one model per path: Keras's retracing notes are expected here
    batch = 32
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "car-or-truck"
        make_folder(root, n, size)
        cfg = DatasetConfig("folder", (size, size), path=str(root))
        loads = {}
        for name, c in (("in memory", DatasetConfig(**{**cfg.__dict__, "stream": "false"})),
                        ("streamed", DatasetConfig(**{**cfg.__dict__, "stream": "true"})),
                        ("streamed + cache", DatasetConfig(**{**cfg.__dict__, "stream": "true",
                                                              "cache": str(Path(tmp) / "cache" / "px")}))):
            started = time.perf_counter()
            loads[name] = (load_dataset(c, 0), time.perf_counter() - started)
        sets = {name: ds for name, (ds, _) in loads.items()}

        def pipeline(ds):
            def run():
                for _ in train.input_pipeline(ds.x_train, ds.y_train, batch, seed=1):
                    pass
            return run

        tcfg = TrainConfig(epochs=1, batch_size=batch)
        config = TrialConfig(3, augmentations=(("flip", (("mode", "horizontal"),)),))
        models = {name: train.build(config, ds, tcfg, repeat_seeds(0, 0)) for name, ds in sets.items()}

        def epoch(name):
            def run():
                train.fit(models[name], sets[name], 1, batch, seed=1)
            return run

        for name in sets if not args.tiny else ():  # warm-up: tracing, thread pools, the cache file's pages
            pipeline(sets[name])()
            epoch(name)()
        wall_p, _ = alternate({name: pipeline(ds) for name, ds in sets.items()}, rounds)
        wall_t, _ = alternate({name: epoch(name) for name in sets}, rounds)

    images = (n // batch) * batch
    base_p, base_t = median(wall_p["in memory"]), median(wall_t["in memory"])
    rows = []
    for name in sets:
        p_s, t_s = median(wall_p[name]), median(wall_t[name])
        rows.append([name, f"{loads[name][1]:.1f}", f"{images / p_s:.0f}", f"{base_p / p_s:.2f}",
                     f"{images / t_s:.0f}", f"{base_t / t_s:.2f}"])
    print(f"machine: {machine()}")
    print(f"{n} JPEG images resized to {size}x{size}, batch {batch}, medians of {rounds} round(s); "
          f"ratio = in memory's time / this path's time (above 1: faster)")
    print(table(["path", "load s", "pipeline images/s", "pipeline ratio", "training images/s", "training ratio"],
                rows))
    mem = n * size * size * 3 * 4 / 2**20
    print(f"in-memory arrays: {mem:.0f} MiB of float32 pixels; streamed: the file list (peak RSS of this "
          f"process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
