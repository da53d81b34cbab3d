"""A study written without training, in the layout a sweep writes, for the report's tests and bench/report_scale.py.

The default experiment's factorial design (blocks of the 16-run full factorial, enqueued and asked as the
block planner does, each trial with its config, repeats' summaries and MLflow run id) in a real Optuna
study, and a real MLflow store written through augsweep's `Tracker`: a parent run with versions.yaml, one
run per trial with its params, tags, `repeat<r>/<metric>` and mean curves per epoch, summary metrics and
`history.csv`. The histories are seeded synthetic curves with planted effects (translation helps, rotation
hurts), so the same arguments always give the same report, whichever stores hold them.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Planted effects on validation loss (digits-photometric's four augmentations).
EFFECTS = {"contrast": 0.0, "brightness": 0.01, "rotation": 0.05, "warp": -0.04}


def experiment(name: str, trials: int, repeats: int, epochs: int) -> dict:
    """experiments/digits-photometric.yaml (an earlier default) with its search space inline, resized."""
    import yaml

    exp = yaml.safe_load((ROOT / "experiments" / "digits-photometric.yaml").read_text())
    exp["search_space"] = yaml.safe_load((ROOT / "search_spaces" / "digits-photometric.yaml").read_text())
    exp.update(name=name, trials=trials, repeats=repeats)
    exp["train"]["epochs"] = epochs
    if trials > 32:  # a large study is a long factorial sweep run to its cap, not stopped at the first decision
        exp.pop("stop", None)
    return exp


def history(flat: dict, block: int, repeat: int, epochs: int, seed: int):
    """One repeat's per-epoch history in the columns a sweep writes: repeat, epoch, accuracy, loss, val_*."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng([seed, block, repeat, int(flat["design_point"])])
    e = np.arange(epochs)
    shift = sum(v for a, v in EFFECTS.items() if flat.get(f"aug_{a}"))
    loss = 2.3 * np.exp(-e / 8) + 0.05 + rng.normal(0, 0.01, epochs)
    val = 2.3 * np.exp(-e / 9) + 0.35 + shift + 0.002 * e + rng.normal(0, 0.02, epochs)
    return pd.DataFrame({"repeat": repeat, "epoch": e, "accuracy": 1 - loss / 2.5, "loss": loss,
                         "val_accuracy": 1 - val / 2.5, "val_loss": val})


def build_study(folder: Path, name: str, trials: int, repeats: int = 4, epochs: int = 60, storage: str | None = None,
                tracking_uri: str | None = None, pruned_at_start: tuple[int, ...] = ()) -> Path:
    """Write the experiment file under `folder` and its study and runs (embedded stores under `folder/mlruns`,
    or the `storage` and `tracking_uri` given); returns the experiment file's path. Trials numbered in
    `pruned_at_start` are pruned before their first epoch: no curves, no `history.csv`."""
    import optuna
    import pandas as pd
    import yaml

    from augsweep import runtime
    from augsweep.experiment import design, load_experiment, space
    from augsweep.experiment.identity import identity
    from augsweep.runs.blocks import ATTR_DESIGN, BlockPlanner
    from augsweep.runs.sweep import make_sampler
    from augsweep.stores.study import (
        ATTR_EXPERIMENT_HASH,
        ATTR_PARENT_RUN,
        ATTR_TRACKING_URI,
        make_storage,
        resolve_stores,
    )
    from augsweep.stores.tracking import FINISHED, KILLED, Tracker, _metrics, repeat_metric
    from augsweep.training.checks import summarize_repeat

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(experiment(name, trials, repeats, epochs), sort_keys=False))
    exp = load_experiment(path)
    stores = resolve_stores(exp, folder / "mlruns", storage=storage, tracking_uri=tracking_uri)
    stores.make_dirs()
    study = optuna.create_study(study_name=exp.name, storage=make_storage(stores.storage_url),
                                sampler=make_sampler(exp), direction="minimize")
    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    parent = tracker.start_parent(
        f"sweep {exp.name}", {"kind": "sweep", "study": exp.name, "sampler": exp.sampler, "pruner": exp.pruner,
                              "git_commit": "synthetic", "device": "CPU", "backend": "tensorflow", "budget": trials},
        {"dataset": exp.dataset.source, "epochs": epochs, "repeats": repeats},
        {"experiment.yaml": yaml.safe_dump(exp.resolved(), sort_keys=False),
         "versions.yaml": yaml.safe_dump(runtime.package_versions(), sort_keys=True)})
    planner = BlockPlanner(exp, trials, lambda line: None)
    study.set_user_attr(ATTR_PARENT_RUN, parent)
    study.set_user_attr(ATTR_EXPERIMENT_HASH, identity(exp))
    study.set_user_attr(ATTR_TRACKING_URI, stores.tracking_label)
    study.set_user_attr("experiment", exp.resolved())
    study.set_user_attr("dataset_fingerprint", "synthetic")
    study.set_user_attr(ATTR_DESIGN, planner.describe())
    augs = exp.search_space.augmentation_names
    block_size = planner.block_size
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(trials):
            block = number // block_size
            if number % block_size == 0:
                points = design.space_block(exp.search_space, planner.plan, exp.seed, block)
                for i, params in enumerate(points[:trials - number]):
                    study.enqueue_trial(params, user_attrs={"block": block, "design_point": i},
                                        skip_if_exists=False)
            with warnings.catch_warnings():  # Optuna: a heartbeat storage outside optimize(), as our workers ask
                warnings.simplefilter("ignore", UserWarning)
                trial = study.ask()
            config = space.sample(trial, exp.search_space, exp.train.learning_rate)
            flat = config.flat(augs)
            trial.set_user_attr("config", flat)
            params = {**flat, "seed": exp.seed, "repeats": repeats}
            run_id = tracker.start_trial(f"t{trial.number:02d} {config.label()}", params,
                                         {"trial": trial.number, "study": exp.name, "device": "CPU",
                                          "kind": "trial"})
            trial.set_user_attr("mlflow_run_id", run_id)
            trial.set_user_attr("config_name", config.label())
            trial.set_user_attr("mlflow_run_url", tracker.run_url(run_id))
            if trial.number in pruned_at_start:
                tracker.finish_trial(run_id, KILLED, None, {}, {"state": "PRUNED"})
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                continue
            frames = [history({**flat, "design_point": trial.user_attrs["design_point"]}, block, r, epochs,
                              exp.seed) for r in range(repeats)]
            per_epoch = []
            for h in frames:  # what the epoch logger writes: repeat<r>/<keras name>, step = epoch
                for _, row in h.iterrows():
                    r = int(row["repeat"])
                    per_epoch += _metrics({repeat_metric(k, r): row[k] for k in h.columns[2:]}, step=int(row["epoch"]))
            for i in range(0, len(per_epoch), 1000):
                tracker.client.log_batch(run_id, metrics=per_epoch[i:i + 1000])
            summaries = [summarize_repeat(h.set_index("epoch"), "accuracy") for h in frames]
            value = float(sum(s["best_val_loss"] for s in summaries) / repeats)
            trial.set_user_attr("repeats", summaries)
            full = pd.concat(frames, ignore_index=True)
            csv = Path(tmp) / "history.csv"
            full.to_csv(csv, index=False)
            metrics = {"trial_seconds": 1.0, "best_val_loss": value,
                       **{repeat_metric("best_val_loss", r): s["best_val_loss"] for r, s in enumerate(summaries)}}
            tracker.finish_trial(run_id, FINISHED, full, metrics, {"state": "COMPLETE"}, [csv])
            study.tell(trial, value)
    tracker.end_parent()
    return path
