"""Fixed cost per repeat: a fresh build (clear_session + build + compile + trace) against a reused compiled
model (`training.reuse`: weights, optimizer and augmentation seeds reset), measured side by side in one run.

Both sides train the default experiment's network (digits at 16x16, 150 training images, depth 2, dense 64,
contrast + brightness + rotation + warp in the model) through `train.run`, round after round, alternating.
Each side times a 1-epoch and an E-epoch repeat; per epoch = (t_E - t_1) / (E - 1), fixed = t_1 - per epoch.
The reused side first trains one untimed repeat of the same structure (other seeds) so its cache is warm,
as repeats 2..R of a trial find it. Then 50 reused 1-epoch repeats in a row report the process's RSS.

    python bench/reuse.py                  # ~2 minutes on 2 CPU cores
    python bench/reuse.py --tiny           # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys
import time

import _common  # noqa: F401 - sets sys.path and the TF log level
from _common import machine, median, rounds_text, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=6, help="E, the longer repeat (the issue's 6-epoch trial)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=4, help="repeats per trial, for the per-trial line")
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

    runtime.configure_device()
    ds = load_dataset(DatasetConfig("digits", (16, 16), train_samples=150), 0)
    config = TrialConfig(2, dense_units=64, learning_rate=0.003, augmentations=(
        ("contrast", (("factor", 0.3),)), ("brightness", (("factor", 0.1),)), ("rotation", (("factor", 0.1),)),
        ("warp", (("factor", 0.1), ("kind", "translation")))))
    sides = {"fresh build (before)": "false", "reused model (after)": "true"}
    times: dict[str, dict[int, list[float]]] = {s: {1: [], args.epochs: []} for s in sides}

    def repeat(setting: str, epochs: int, seed: int) -> float:
        settings = TrainConfig(epochs=epochs, batch_size=32, reuse_compiled=setting)
        start = time.perf_counter()
        train.run(config, ds, settings, repeat_seeds(0, seed))
        return time.perf_counter() - start

    for r in range(args.rounds):
        for name, setting in sides.items():
            for epochs in (1, args.epochs):
                if setting == "true":
                    repeat(setting, 1, 100 + r)  # warm the cache with the same structure (other seeds)
                times[name][epochs].append(repeat(setting, epochs, r))

    rows, fixed = [], {}
    for name in sides:
        t1, te = median(times[name][1]), median(times[name][args.epochs])
        per_epoch = (te - t1) / (args.epochs - 1)
        fixed[name] = t1 - per_epoch
        rows.append([name, t1, te, per_epoch, fixed[name], rounds_text(times[name][1])])
    before, after = fixed["fresh build (before)"], fixed["reused model (after)"]
    print(f"fixed cost per repeat, {args.rounds} alternating rounds; backend {runtime.backend()}; {machine()}")
    print(table(["side", "1-epoch repeat s", f"{args.epochs}-epoch repeat s", "per epoch s", "fixed s",
                 "1-epoch rounds s"], rows))
    # Memory: many repeats on one reused model (rss from bench/memory.py), after the timed rounds.
    from memory import MB, rss_bytes

    n = 2 if args.tiny else 50  # the smoke run: the fewest in which growth from one repeat to the next shows
    rss = []
    for i in range(n):
        repeat("true", 1, 1000 + i)
        rss.append(rss_bytes() / MB)
    print(f"RSS over {n} reused 1-epoch repeats: {rss[0]:.0f} MB after the first, {rss[min(4, n - 1)]:.0f} MB after "
          f"{min(5, n)}, {rss[-1]:.0f} MB after {n} (growth {rss[-1] - rss[0]:.0f} MB)")
    r = args.repeats
    print(f"fixed cost per repeat: {before:.2f} s fresh -> {after:.2f} s reused ({before - after:.2f} s saved)")
    print(f"fixed cost per {r}-repeat trial (first repeat builds, the others reuse): {r * before:.2f} s -> "
          f"{before + (r - 1) * after:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
