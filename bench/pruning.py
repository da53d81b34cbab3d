"""Does pruning pay? The same random-sampler sweep (fixed seed, same configurations in the same
order) with no pruner and with each pruner `sweep.make_pruner` offers (plus the median pruner's
earlier default settings), interleaved trial by trial in one process (the order rotated each round,
after one untimed warm-up trial): configurations per hour (wall
and CPU time), how many trials were pruned and after how many epochs, and the best value reached.

The "noise" figure is the seed-to-seed difference of the best unpruned configuration (trained once
more with the next repeat's seeds), the scale against which best values are compared. The fixed
cost per trial and the cost per epoch are fitted (least squares, all sweeps' trials) from each
trial's seconds and epochs run; they give the speed-up a pruner can reach at most.

    python bench/pruning.py            # ~7 minutes on 2 shared CPU cores (digits 32x32, 20 trials each)
    python bench/pruning.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import _common
from _common import machine, table


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.trials, args.epochs = 1, 2  # one trial per sweep: every pruner still trains, the table is complete

    import numpy as np
    import optuna

    from augsweep import runtime
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.runs.objective import Objective
    from augsweep.runs.sweep import make_pruner, make_sampler
    from augsweep.stores.study import make_storage
    from augsweep.stores.tracking import Tracker
    from augsweep.training import reuse, train

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
        def named(pruner: str):
            return make_pruner(dataclasses.replace(exp, pruner=pruner))

        pruners = {
            "none": named("none"),
            "median, before (startup 5, warm-up epochs // 2)":
                optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=max(1, exp.train.epochs // 2)),
            "median (startup 4, warm-up 0)": named("median"),
            "successive_halving (min_resource 1, rf 3)": named("successive_halving"),
            "hyperband (min_resource 1, rf 3)": named("hyperband"),
        }
        sweeps = {}
        env = runtime.setup(exp.train.deterministic, exp.train.mixed_precision)
        for i, (name, pruner) in enumerate(pruners.items()):
            tracker = Tracker(stores.tracking_uri, f"{exp.name}-{i}", stores.artifact_location)
            tracker.start_parent(name, {"kind": "sweep"}, {}, {})
            study = optuna.create_study(study_name=f"{exp.name}-{i}", storage=make_storage(stores.storage_url),
                                        sampler=make_sampler(exp), pruner=pruner)
            sweeps[name] = {"study": study, "objective": Objective(exp, ds, tracker, env), "wall": [], "cpu": [],
                            "tracker": tracker}
        # One untimed trial first: the process's first trial pays one-off costs (first trace, gc freeze).
        warm = optuna.create_study(study_name=f"{exp.name}-warm-up", storage=make_storage(stores.storage_url),
                                   sampler=make_sampler(exp))
        warm.optimize(sweeps["none"]["objective"], n_trials=1)
        order = list(sweeps.values())
        for k in range(args.trials):  # interleaved: trial k of every sweep runs back to back, order rotated
            for s in order[k % len(order):] + order[:k % len(order)]:
                # Trial k is the same configuration in every sweep: without this the sweeps after the first in a
                # round would reuse its compiled model, which a real random sweep (new magnitudes) never does.
                reuse.clear()
                w, c = time.perf_counter(), time.process_time()
                s["study"].optimize(s["objective"], n_trials=1)
                s["wall"].append(time.perf_counter() - w)
                s["cpu"].append(time.process_time() - c)
        for s in sweeps.values():
            s["tracker"].end_parent()

        unpruned = sweeps["none"]["study"]
        best = unpruned.best_trial
        again = train.run(TrialConfig.from_flat(best.user_attrs["config"]), ds, exp.train, repeat_seeds(exp.seed, 1))
        noise = abs(again.best_val_loss - best.value)

    # Seconds of a trial = fixed + per_epoch x epochs run (least squares over every sweep's trials).
    epochs_run = {n: [len(t.intermediate_values) for t in s["study"].trials] for n, s in sweeps.items()}
    x = np.concatenate([epochs_run[n] for n in sweeps]).astype(float)
    fits = {}
    for clock in ("wall", "cpu"):
        y = np.concatenate([s[clock] for s in sweeps.values()])
        per_epoch, fixed = np.polyfit(x, y, 1) if len(set(x)) > 1 else (float("nan"), float("nan"))
        fits[clock] = (fixed, per_epoch)

    base = sweeps["none"]
    rate0 = {clock: args.trials / sum(base[clock]) * 3600 for clock in ("wall", "cpu")}
    rows = []
    for name, s in sweeps.items():
        trials = s["study"].trials
        pruned = [len(t.intermediate_values) for t in trials if t.state.name == "PRUNED"]
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        rate = {clock: args.trials / sum(s[clock]) * 3600 for clock in ("wall", "cpu")}
        best_value = min(t.value for t in complete) if complete else float("nan")
        at = ",".join(f"{e}:{pruned.count(e)}" for e in sorted(set(pruned))) or "-"
        rows.append([name, f"{sum(s['wall']):.1f}", f"{sum(s['cpu']):.1f}", f"{rate['wall']:.0f}",
                     f"{rate['wall'] / rate0['wall']:.2f}", f"{rate['cpu'] / rate0['cpu']:.2f}",
                     f"{len(pruned)}/{len(trials)}", at, f"{np.mean(epochs_run[name]):.2f}",
                     f"{best_value:.4f}", f"{best_value - best.value:+.4f}", f"{noise:.4f}"])
    print(f"pruning: {ds.describe()}, default search space, random sampler seed 0, {args.trials} trials "
          f"per sweep, {args.epochs} epochs, 1 repeat, interleaved trial by trial; {machine()}")
    print(table(["pruner", "sweep s", "CPU s", "configurations/hour", "ratio to none", "ratio (CPU)", "pruned",
                 "pruned after epochs:count", "epochs/trial", "best value", "best - best(none)", "noise"], rows))
    print(f"noise: best unpruned configuration retrained with the next repeat's seeds differs by {noise:.4f}")
    for clock, (fixed, per_epoch) in fits.items():
        full = fixed + per_epoch * args.epochs
        bound = (full / 3 - fixed) / per_epoch if per_epoch > 0 else float("nan")
        print(f"fit ({clock}): a trial costs {fixed:.2f} s fixed + {per_epoch:.2f} s per epoch; a full trial "
              f"{full:.2f} s; 3x needs <= {bound:.2f} epochs per trial on average; a trial pruned after one "
              f"epoch alone is {full / (fixed + per_epoch):.2f}x cheaper than a full one")
    return 0


if __name__ == "__main__":
    sys.exit(main())
