"""Does pruning pay? The same random-sampler sweep (fixed seed, same configurations in the same
order) with no pruner, with the project's median pruner and with an eager median pruner,
interleaved trial by trial in one process: configurations per hour and best value reached.

The "noise" column is the seed-to-seed difference of the best unpruned configuration (trained
once more with the next repeat's seeds), the scale against which best values are compared.

    python bench/pruning.py            # ~4 minutes on 2 shared CPU cores (digits 32x32, 12 trials each)
    python bench/pruning.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
from _common import machine, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=12)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.trials, args.epochs = 4, 2

    import optuna

    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.runs.objective import Objective
    from augsweep.runs.sweep import make_pruner, make_sampler
    from augsweep.stores.study import make_storage
    from augsweep.stores.tracking import Tracker
    from augsweep.training import train

    exp_dict = {
        "name": "bench-pruning",
        "dataset": {"source": "synthetic", "image_size": [16, 16], "samples": 96} if args.tiny
        else {"source": "digits", "image_size": [32, 32]},
        "search_space": str(_common.ROOT / "search_spaces" / "default.yaml"),
        "train": {"epochs": args.epochs, "batch_size": 64, "learning_rate": 0.003},
        "trials": args.trials, "repeats": 1, "sampler": "random", "pruner": "median", "seed": 0,
    }
    if args.tiny:
        exp_dict["search_space"] = {"depth": {"low": 1, "high": 2},
                                    "augmentations": {"flip": {"mode": ["horizontal"]}}}
    with _common.temp_stores(exp_dict) as (exp, ds, stores):
        pruners = {
            "none": optuna.pruners.NopPruner(),
            "median (augsweep default settings)": make_pruner(exp),
            "median, eager (startup 3, warm-up 1 epoch)": optuna.pruners.MedianPruner(n_startup_trials=3,
                                                                                      n_warmup_steps=1),
        }
        sweeps = {}
        for i, (name, pruner) in enumerate(pruners.items()):
            tracker = Tracker(stores.tracking_uri, f"{exp.name}-{i}", stores.artifact_location)
            tracker.start_parent(name, {"kind": "sweep"}, {}, {})
            study = optuna.create_study(study_name=f"{exp.name}-{i}", storage=make_storage(stores.storage_url),
                                        sampler=make_sampler(exp), pruner=pruner)
            sweeps[name] = {"study": study, "objective": Objective(exp, ds, tracker), "seconds": 0.0,
                            "tracker": tracker}
        for _ in range(args.trials):  # interleaved: trial k of every sweep runs back to back
            for s in sweeps.values():
                t = time.perf_counter()
                s["study"].optimize(s["objective"], n_trials=1)
                s["seconds"] += time.perf_counter() - t
        for s in sweeps.values():
            s["tracker"].end_parent()

        unpruned = sweeps["none"]["study"]
        best = unpruned.best_trial
        again = train.run(TrialConfig.from_flat(best.user_attrs["config"]), ds, exp.train, repeat_seeds(exp.seed, 1))
        noise = abs(again.best_val_loss - best.value)

    base = sweeps["none"]
    rate0 = args.trials / base["seconds"] * 3600
    rows = []
    for name, s in sweeps.items():
        trials = s["study"].trials
        states = [t.state.name for t in trials]
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        rate = args.trials / s["seconds"] * 3600
        best_value = min(t.value for t in complete) if complete else float("nan")
        rows.append([name, f"{s['seconds']:.1f}", f"{rate:.0f}", f"{rate / rate0:.2f}", states.count("PRUNED"),
                     f"{best_value:.4f}", f"{best_value - best.value:+.4f}"])
    print(f"pruning: {ds.describe()}, default search space, random sampler seed 0, {args.trials} trials "
          f"per sweep, {args.epochs} epochs, 1 repeat, interleaved trial by trial; {machine()}")
    print(table(["pruner", "sweep s", "configurations/hour", "ratio to none", "pruned", "best value",
                 "best - best(none)"], rows))
    print(f"noise: best unpruned configuration retrained with the next repeat's seeds differs by {noise:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
