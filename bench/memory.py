"""Memory across many trials in one process: RSS (and device memory on a GPU) after each trial,
augsweep's objective vs a plain Keras loop training the same kind of model.

Each side runs in its own fresh process (memory is per process); the script runs both, one
after the other, in one invocation. augsweep's side is the real objective on real stores
(Optuna + MLflow on SQLite, artifacts), a random sampler over depth and flip/contrast/rotation/
warp, so models of different shapes and both augmentation placements follow each other.
`--tiny` is a smoke run of the code, not a measurement: both sides in one worker process, one
after the other (the second side's RSS includes the first's), one epoch per trial.

    python bench/memory.py               # 50 trials per side, ~2-3 minutes on 2 CPU cores
    python bench/memory.py --tiny        # smoke setting used by the tests
    python bench/memory.py --repeats 3   # augsweep's trials of 3 repeats: repeats 2-3 reuse the compiled model
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import _common
from _common import machine, objective_on_temp_stores, table

MB = 1024 * 1024


def rss_bytes() -> int:
    """Resident set size of this process."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def device_bytes() -> int | None:
    """Bytes in use on the first accelerator, or None on CPU."""
    from augsweep import runtime

    if not runtime.has_accelerator():
        return None
    backend = runtime.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    if backend == "jax":
        import jax

        return int((jax.local_devices()[0].memory_stats() or {}).get("bytes_in_use", 0))
    if backend == "torch":
        import torch

        return int(torch.cuda.memory_allocated())
    return None


def epochs(tiny: bool) -> int:
    return 1 if tiny else 2


def experiment(tiny: bool, repeats: int = 1) -> dict:
    return {
        "name": "bench-memory",
        "dataset": {"source": "synthetic", "image_size": [16, 16] if tiny else [32, 32],
                    "samples": 96 if tiny else 200},
        "search_space": {"depth": {"low": 1, "high": 2}, "augmentations": {
            "flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]},
            "rotation": {"factor": [0.02, 0.2]}, "warp": {"kind": ["translation"], "factor": [0.05, 0.2]}}},
        "train": {"epochs": epochs(tiny), "batch_size": 32, "learning_rate": 0.003},
        "trials": 100_000, "repeats": repeats, "sampler": "random", "pruner": "none", "seed": 0,
    }


def worker_ours(trials: int, tiny: bool, repeats: int = 1) -> None:
    from augsweep import runtime

    runtime.configure_device()
    with objective_on_temp_stores(experiment(tiny, repeats)) as (_, study, objective):
        for i in range(trials):
            study.optimize(objective, n_trials=1)
            print(json.dumps({"side": "ours", "trial": i + 1, "rss": rss_bytes(), "device": device_bytes()}),
                  flush=True)


def worker_plain(trials: int, tiny: bool) -> None:
    import keras
    from keras import layers

    from augsweep import runtime
    from augsweep.experiment import DatasetConfig
    from augsweep.training.data import load_dataset

    runtime.configure_device()
    ds = load_dataset(DatasetConfig("synthetic", (16, 16) if tiny else (32, 32), samples=96 if tiny else 200), 0)
    for i in range(trials):
        keras.backend.clear_session()
        keras.utils.set_random_seed(i)
        model = keras.Sequential([
            keras.Input(shape=ds.input_shape),
            layers.RandomFlip("horizontal", seed=i),
            layers.RandomContrast(0.3, value_range=(0, 1), seed=i),
            *([layers.RandomRotation(0.1, seed=i)] if i % 2 else []),
            layers.Conv2D(32, 5, padding="same", activation="relu"), layers.MaxPool2D(),
            *([layers.Conv2D(64, 3, padding="same", activation="relu"), layers.MaxPool2D()] if i % 3 else []),
            layers.Flatten(), layers.Dense(6, activation="relu"), layers.Dense(1, activation="sigmoid"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(0.003, epsilon=0.01), loss="binary_crossentropy",
                      metrics=["binary_accuracy"])
        model.fit(ds.x_train, ds.y_train, validation_data=(ds.x_val, ds.y_val), epochs=epochs(tiny),
                  batch_size=32, verbose=0)
        print(json.dumps({"side": "plain", "trial": i + 1, "rss": rss_bytes(), "device": device_bytes()}),
              flush=True)


def run_worker(kinds: list[str], trials: int, tiny: bool, repeats: int = 1) -> dict[str, list[dict]]:
    """The sides `kinds`, one after the other in one fresh worker process: side -> its points per trial."""
    cmd = [sys.executable, __file__, "--worker", ",".join(kinds), "--trials", str(trials), "--repeats", str(repeats)]
    cmd += ["--tiny"] if tiny else []
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, cwd=_common.ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{'+'.join(kinds)} worker failed:\n{out.stderr[-3000:]}")
    points = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {kind: [pt for pt in points if pt["side"] == kind] for kind in kinds}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=50)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # the sides this worker runs, in order: ours,plain
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    p.add_argument("--repeats", type=int, default=1,
                   help="augsweep's repeats per trial (repeats 2..R reuse the compiled model: training.reuse)")
    args = p.parse_args(argv)
    if args.tiny and not args.worker:
        args.trials = 2  # the fewest in which growth from one trial to the next is measured
    if args.worker:
        for kind in args.worker.split(","):
            if kind == "ours":
                worker_ours(args.trials, args.tiny, args.repeats)
            elif kind == "plain":
                worker_plain(args.trials, args.tiny)
            else:
                p.error(f"unknown worker side {kind!r}")
        return 0

    if args.tiny:  # both sides in one process: the smoke run pays one TensorFlow import, not two
        points = run_worker(["ours", "plain"], args.trials, args.tiny, args.repeats)
    else:
        points = {**run_worker(["ours"], args.trials, args.tiny, args.repeats),
                  **run_worker(["plain"], args.trials, args.tiny)}
    sides = {"augsweep objective": points["ours"], "plain Keras loop": points["plain"]}
    n = args.trials
    marks = sorted({1, min(5, n), min(10, n), min(25, n), n})
    rows = []
    for name, points in sides.items():
        rss = [pt["rss"] / MB for pt in points]
        dev = [pt["device"] / MB if pt["device"] is not None else None for pt in points]
        ref = min(5, n) - 1  # growth after the first trials' lazy imports and caches
        row = [name] + [f"{rss[m - 1]:.0f}" for m in marks]
        row += [f"{rss[-1] - rss[0]:.0f}", f"{rss[-1] - rss[ref]:.0f}"]
        row += [f"{dev[-1] - dev[0]:.0f}" if dev[0] is not None else "n/a (CPU)"]
        rows.append(row)
    print(f"memory after each of {n} trials in one process; {machine()}")
    print(table(["side"] + [f"RSS MB after {m}" for m in marks]
                + ["growth 1->last MB", f"growth {min(5, n)}->last MB", "device growth MB"], rows))
    ours = [pt["rss"] / MB for pt in sides["augsweep objective"]]
    print("augsweep RSS per trial (MB): " + " ".join(f"{v:.0f}" for v in ours))
    print(f"augsweep RSS growth over {n} trials: {ours[-1] - ours[0]:.0f} MB (target < 200 MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
