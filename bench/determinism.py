"""What deterministic ops cost (`train.deterministic`, on by default), and what they buy: the same repeats
trained with and without them, side by side in one run, round after round, alternating.

Each round of each side is a fresh process (TensorFlow reads parts of its determinism switch once per
process, so one process cannot time both sides fairly) that trains `--repeats` repeats of the default
experiment's network (depth 2, dense 64, contrast + brightness + rotation + warp in the model) through
`train.run` as a trial does: the first repeat builds, the others reuse the compiled model. Every round uses
the same seeds. Columns: per-repeat wall and CPU time inside the process (median over rounds and repeats;
the TensorFlow import is not counted), the ratio to the non-deterministic side, and the largest |Δ val_loss|
between any two rounds of one side: 0 when the side is reproducible across processes, the thread-timing
drift when it is not.

    python bench/determinism.py                                  # default data: digits 16x16, 150 images (~4 min)
    python bench/determinism.py --image-size 32 --train-samples 0 --epochs 10   # all 1,437 digits at 32x32
    python bench/determinism.py --tiny                           # smoke setting used by the tests

`--tiny` is a smoke run of the code, not a measurement: one round, both sides one after the other in one worker
process (off first: TensorFlow keeps part of the switch on once it was on), 1 epoch on 64 images.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

import _common
from _common import machine, median, rounds_text, table

SIDES = {"deterministic ops (default)": True, "train.deterministic: false": False}


def worker(args) -> None:
    """Each side of `args.worker` (`off`, `on` or `off,on`) in turn in this process; one JSON line per side."""
    for side in args.worker.split(","):
        train_side(side == "on", args)


def train_side(on: bool, args) -> None:
    """Train the repeats in this process with deterministic ops `on`; print one JSON line."""
    from augsweep import runtime
    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import train
    from augsweep.training.data import load_dataset

    runtime.set_determinism(on)
    device = runtime.configure_device()
    ds = load_dataset(DatasetConfig("digits", (args.image_size,) * 2, train_samples=args.train_samples or None), 0)
    config = TrialConfig(2, dense_units=64, learning_rate=0.003, augmentations=(
        ("contrast", (("factor", 0.3),)), ("brightness", (("factor", 0.1),)), ("rotation", (("factor", 0.1),)),
        ("warp", (("factor", 0.1), ("kind", "translation")))))
    settings = TrainConfig(epochs=args.epochs, batch_size=32, learning_rate=0.003)
    out = {"device": device, "images": len(ds.x_train), "wall": [], "cpu": [], "curves": []}
    for r in range(args.repeats):
        w, c = time.perf_counter(), time.process_time()
        history = train.run(config, ds, settings, repeat_seeds(0, r)).history
        out["wall"].append(time.perf_counter() - w)
        out["cpu"].append(time.process_time() - c)
        out["curves"].append(history["val_loss"].astype(float).tolist())
    print(json.dumps(out))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=2, help="repeats per process (the first builds, the rest reuse)")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--train-samples", type=int, default=150, help="0: all training digits")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    p.add_argument("--worker", choices=("on", "off", "off,on"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.rounds, args.repeats, args.train_samples = 1, 1, 1, 64
    if args.worker:
        worker(args)
        return 0

    # One process per side and round; the smoke run trains both sides in one (off first, then on).
    processes = [[(name, on)] for name, on in SIDES.items()]
    if args.tiny:
        processes = [sorted(SIDES.items(), key=lambda side: side[1])]
    results: dict[str, list[dict]] = {name: [] for name in SIDES}
    for _ in range(args.rounds):
        for sides in processes:
            cmd = [sys.executable, __file__, "--worker", ",".join("on" if on else "off" for _, on in sides),
                   "--epochs", str(args.epochs), "--repeats", str(args.repeats), "--image-size",
                   str(args.image_size), "--train-samples", str(args.train_samples)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=_common.ROOT, check=True)
            lines = done.stdout.strip().splitlines()[-len(sides):]
            for (name, _), line in zip(sides, lines):
                results[name].append(json.loads(line))
    base = "train.deterministic: false"
    walls = {n: [w for res in results[n] for w in res["wall"]] for n in SIDES}
    cpus = {n: [c for res in results[n] for c in res["cpu"]] for n in SIDES}
    rows = []
    for name in SIDES:
        curves = np.array([res["curves"] for res in results[name]])  # rounds x repeats x epochs
        drift = float(np.max(np.abs(curves - curves[0]))) if len(curves) > 1 else float("nan")
        rows.append([name, median(walls[name]), median(cpus[name]), median(walls[name]) / median(walls[base]),
                     median(cpus[name]) / median(cpus[base]), f"{drift:.2g}", rounds_text(walls[name])])
    first = results[base][0]
    where = "both sides in one process" if args.tiny else "a fresh process each"
    print(f"deterministic ops: {args.repeats} repeat(s) of {args.epochs} epochs per process, digits "
          f"{args.image_size}x{args.image_size}, {first['images']} training images, {args.rounds} alternating "
          f"rounds ({where}), same seeds every round; {first['device']}; {machine()}")
    print(table(["side", "wall s per repeat", "CPU s per repeat", "wall ratio", "CPU ratio",
                 "max |Δ val_loss| across processes", "wall per repeat s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
