"""Optuna + MLflow bookkeeping per trial and per epoch, measured inside real trials.

Trials run through augsweep's real objective on real stores (Optuna on SQLite with heartbeat,
MLflow on SQLite with artifacts). Timing wrappers around `train.run` and around each callback's
`on_epoch_end` split every trial's wall time into training and bookkeeping, so both sides of
the ratio come from the same trial:

* per epoch: the pruning report (`trial.report` + `should_prune`), the MLflow epoch log, the
  non-finite check;
* per trial: everything else outside `model.fit` (Optuna ask/tell and heartbeat, MLflow run
  creation, params, summary metrics, history.csv, learning curves, augmentation preview,
  artifact copies, `set_terminated`, `gc.collect`).

    python bench/bookkeeping.py           # ~2 minutes on 2 CPU cores
    python bench/bookkeeping.py --tiny    # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys
import time

import _common
from _common import machine, median, objective_on_temp_stores, rounds_text, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.trials = 2, 1

    from augsweep.runs import objective as objective_mod
    from augsweep.runs import repeat as repeat_mod
    from augsweep.stores.tracking import Tracker
    from augsweep.training import train

    keys = ("train", "callbacks", "train_end", "train_cpu", "callbacks_cpu", "train_end_cpu")
    clock = dict.fromkeys(keys, 0.0) | {"epochs": 0}

    def timed_callback(cb):
        for hook in ("on_epoch_end", "on_train_end"):
            inner = getattr(cb, hook)

            def timed(*a, _inner=inner, _key="callbacks" if hook == "on_epoch_end" else "train_end", **k):
                t, c = time.perf_counter(), time.process_time()
                try:
                    return _inner(*a, **k)
                finally:
                    clock[_key] += time.perf_counter() - t
                    clock[_key + "_cpu"] += time.process_time() - c

            setattr(cb, hook, timed)
        return cb

    real_run, real_prune, real_nonfinite = train.run, objective_mod.pruning_callback, repeat_mod.stop_on_non_finite

    def run(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            result = real_run(*a, **k)
            clock["epochs"] += len(result.history)
            return result
        finally:
            clock["train"] += time.perf_counter() - t
            clock["train_cpu"] += time.process_time() - c

    train.run = run
    objective_mod.pruning_callback = lambda *a, **k: timed_callback(real_prune(*a, **k))
    repeat_mod.stop_on_non_finite = lambda: timed_callback(real_nonfinite())

    class TimedTracker(Tracker):
        def epoch_logger(self, run_id, repeat, since=None):
            return timed_callback(super().epoch_logger(run_id, repeat, since))

    root = _common.ROOT
    exp_dict = {
        "name": "bench-bookkeeping",
        "dataset": {"source": "synthetic", "image_size": [16, 16], "samples": 96} if args.tiny
        else {"source": "digits", "image_size": [32, 32]},
        "search_space": str(root / "search_spaces" / "default.yaml") if not args.tiny
        else {"depth": {"low": 1, "high": 2}, "augmentations": {"flip": {"mode": ["horizontal"]},
                                                                "rotation": {"factor": [0.02, 0.2]}}},
        "train": {"epochs": args.epochs, "batch_size": 64, "learning_rate": 0.003},
        "trials": 1000, "repeats": 1, "sampler": "random", "pruner": "median", "seed": 0,
    }
    rows, per_epoch, per_epoch_cpu = [], [], []
    try:
        with objective_on_temp_stores(exp_dict, TimedTracker) as (ds, study, objective):
            if not args.tiny:  # the smoke run states no figure: its one trial is also the first
                study.optimize(objective, n_trials=1)  # warm-up: store creation, first imports and graphs
            for _ in range(args.trials):
                clock.update(dict.fromkeys(keys, 0.0), epochs=0)
                t, c = time.perf_counter(), time.process_time()
                study.optimize(objective, n_trials=1)
                wall, cpu = time.perf_counter() - t, time.process_time() - c
                fit = clock["train"] - clock["callbacks"] - clock["train_end"]
                fit_cpu = clock["train_cpu"] - clock["callbacks_cpu"] - clock["train_end_cpu"]
                rows.append((wall, fit, wall - fit - clock["callbacks"], clock["callbacks"], clock["epochs"],
                             cpu, fit_cpu, cpu - fit_cpu - clock["callbacks_cpu"]))
                per_epoch.append(clock["callbacks"] / max(1, clock["epochs"]))
                per_epoch_cpu.append(clock["callbacks_cpu"] / max(1, clock["epochs"]))
    finally:  # the timing wrappers out again: whatever runs next in this process trains unwrapped
        train.run, objective_mod.pruning_callback, repeat_mod.stop_on_non_finite = real_run, real_prune, real_nonfinite

    walls, fits, fixed, cbs, epochs, cpus, fit_cpus, fixed_cpu = zip(*rows)
    e, e_cpu = median(per_epoch), median(per_epoch_cpu)
    share = (median(fixed) + args.epochs * e) / 10.0
    share_cpu = (median(fixed_cpu) + args.epochs * e_cpu) / 10.0
    print(f"bookkeeping inside {args.trials} real trials ({ds.describe()}, {args.epochs} epochs, Optuna + "
          f"MLflow on SQLite, median pruner); {machine()}")
    print(table(["figure", "wall (median)", "wall per trial", "CPU (median)", "CPU per trial"], [
        ["trial s", f"{median(walls):.3f}", rounds_text(walls), f"{median(cpus):.3f}", rounds_text(cpus)],
        ["model.fit s (callbacks excluded)", f"{median(fits):.3f}", rounds_text(fits),
         f"{median(fit_cpus):.3f}", rounds_text(fit_cpus)],
        ["bookkeeping per trial s (outside fit)", f"{median(fixed):.3f}", rounds_text(fixed, "{:.3f}"),
         f"{median(fixed_cpu):.3f}", rounds_text(fixed_cpu, "{:.3f}")],
        ["bookkeeping per epoch ms (callbacks)", f"{1000 * e:.1f}",
         rounds_text([1000 * x for x in per_epoch], "{:.1f}"),
         f"{1000 * e_cpu:.1f}", rounds_text([1000 * x for x in per_epoch_cpu], "{:.1f}")],
    ]))
    print(f"share of a 10 s trial with {args.epochs} epochs: {100 * share:.1f}% wall, {100 * share_cpu:.1f}% CPU "
          f"(target < 2%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
