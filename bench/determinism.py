"""What deterministic ops cost (`train.deterministic`, on by default), and what they buy: the same repeat trained
with and without them, side by side in one run, round after round, alternating.

Both sides train one repeat of the default experiment's network (depth 2, dense 64, contrast + brightness +
rotation + warp in the model) through `train.run`, from a fresh build each time (`reuse_compiled: false`, so
each side pays the same fixed cost), with the *same seeds* every round. Columns: per-repeat wall and CPU time
(median of the rounds), the ratio to the non-deterministic side, and the largest |Δ val_loss| between any
two rounds of one side: 0 when the side is reproducible, the thread-timing drift when it is not.

    python bench/determinism.py                                  # default data: digits 16x16, 150 images (~2 min)
    python bench/determinism.py --image-size 32 --train-samples 0    # all 1,437 digits at 32x32 (~5 min)
    python bench/determinism.py --tiny                           # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import _common  # noqa: F401 - sets sys.path and the TF log level
from _common import alternate, machine, median, rounds_text, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--train-samples", type=int, default=150, help="0: all training digits")
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.rounds = 2, 1

    from augsweep import runtime
    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import train
    from augsweep.training.data import load_dataset

    device = runtime.configure_device()
    size = (args.image_size, args.image_size)
    ds = load_dataset(DatasetConfig("digits", size, train_samples=args.train_samples or None), 0)
    config = TrialConfig(2, dense_units=64, learning_rate=0.003, augmentations=(
        ("contrast", (("factor", 0.3),)), ("brightness", (("factor", 0.1),)), ("rotation", (("factor", 0.1),)),
        ("warp", (("factor", 0.1), ("kind", "translation")))))
    settings = TrainConfig(epochs=args.epochs, batch_size=32, learning_rate=0.003, reuse_compiled="false")
    curves: dict[str, list[np.ndarray]] = {}

    def side(name: str, on: bool):
        def repeat():
            runtime.set_determinism(on)
            w, c = _common.timed(lambda: curves.setdefault(name, []).append(
                train.run(config, ds, settings, repeat_seeds(0, 0)).history["val_loss"].to_numpy(dtype=float)))
            return w, c
        return repeat

    sides = {"deterministic ops (default)": True, "train.deterministic: false": False}
    wall, cpu = alternate({name: side(name, on) for name, on in sides.items()}, args.rounds)
    base = "train.deterministic: false"
    rows = []
    for name in sides:
        runs = np.stack(curves[name])
        drift = float(np.max(np.abs(runs - runs[0]))) if len(runs) > 1 else float("nan")
        rows.append([name, median(wall[name]), median(cpu[name]), median(wall[name]) / median(wall[base]),
                     median(cpu[name]) / median(cpu[base]), f"{drift:.2g}", rounds_text(wall[name])])
    print(f"deterministic ops: one {args.epochs}-epoch repeat, digits {size[0]}x{size[1]}, {len(ds.x_train)} "
          f"training images, {args.rounds} alternating rounds, same seeds every round; backend "
          f"{runtime.backend()}; {device}; {machine()}")
    print(table(["side", "wall s", "CPU s", "wall ratio", "CPU ratio", "max |Δ val_loss| across rounds",
                 "wall rounds s"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
