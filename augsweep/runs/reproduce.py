"""`sweep.py EXPERIMENT --reproduce TRIAL|VARIANT`: retrain a logged training with its logged seeds and
compare per-epoch val_loss with what was logged. Reads the stores, writes nothing.

The retraining always runs with deterministic ops. A training that was logged with them (run tag
`deterministic: true`, the default since `train.deterministic`) must match to `TOLERANCE`; one logged without
(the tag `false`, or absent: runs from before the setting) took a thread-timing-dependent path, so it can
only be compared with seed noise: the spread of the logged seeds' val_loss at the same epoch.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import runtime
from ..experiment.schema import ConfigError, Experiment
from ..experiment.seeding import RepeatSeeds
from ..experiment.space import TrialConfig
from ..stores import records as rec
from ..stores.records import SPEC_ARTIFACT, latest_ablation
from ..stores.study import Stores, load_study_readonly
from ..stores.tracking import client_for, repeat_metric_history
from ..training import train
from ..training.data import Dataset, load_dataset
from ..training.resample import logged_split, replicate_data


def _deterministic(run) -> bool:
    return run.data.tags.get(rec.TAG_DETERMINISTIC) == "true"


TAG_ENGINE = "engine"  # "stacked": trained by `training.stacked`; absent: Keras's own layers (alone or a branch)


def _engine(run) -> str:
    return run.data.tags.get(TAG_ENGINE, "keras")


def _pinned(runs) -> bool:
    """Whether the original trained with one CPU thread per op (tag `training_threads` = 1; runs logged before
    the tag existed used TensorFlow's default threads)."""
    return any(r.data.tags.get(rec.TAG_TRAINING_THREADS) == "1" for r in runs)


def _targets(exp: Experiment, target: str, stores, client, experiment_id: str):
    """(label, config, [(seeds, logged val_loss by epoch, logged deterministically, logged split or None, engine)], one
    thread per op) of a trial number or an ablation variant."""
    if re.fullmatch(r"t?\d+", target):
        number = int(target.lstrip("t"))
        study = load_study_readonly(stores)
        trials = [t for t in (study.get_trials(deepcopy=False) if study else []) if t.number == number]
        if not trials or rec.CONFIG not in trials[0].user_attrs:
            raise ConfigError(f"--reproduce: study {stores.study_name!r} has no trial {number}. "
                              f"Received: reproduce={target!r}")
        trial = trials[0]
        record = rec.TrialRecord.from_trial(trial)
        run_id = record.mlflow_run_id
        run = client.get_run(run_id)
        config = TrialConfig.from_flat(record.config)
        out = []
        for key, text in sorted(run.data.params.items()):
            m = re.fullmatch(r"seeds_r(\d+)", key)
            if m:
                r = int(m.group(1))
                out.append((RepeatSeeds.from_param(text, r), repeat_metric_history(client, run_id, "val_loss", r),
                            _deterministic(run), logged_split(run.data.params, r), _engine(run)))
        return f"trial t{number:02d} {config.label()}", config, out, _pinned([run])
    parent = latest_ablation(client, experiment_id)
    if parent is None:
        raise ConfigError(f"--reproduce: {target!r} is not a trial number and the experiment has no ablation. "
                          f"Received: reproduce={target!r}")
    runs = client.search_runs([experiment_id], rec.children_filter(parent.info.run_id),
                              max_results=50_000)
    mine = [r for r in runs if target in rec.variant_names(r.data.tags) and r.info.status == "FINISHED"]
    if not mine:
        names = sorted({n for r in runs for n in rec.variant_names(r.data.tags)})
        raise ConfigError(f"--reproduce: no finished ablation run of variant {target!r}; variants: "
                          f"{', '.join(names) or 'none'}. Received: reproduce={target!r}")
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(Path(client.download_artifacts(parent.info.run_id, SPEC_ARTIFACT, tmp)).read_text())
    config = TrialConfig.from_flat(next(v["config"] for v in spec["variants"] if v["name"] == target))
    out = []
    for run in sorted(mine, key=lambda r: int(r.data.tags[rec.TAG_SEED_INDEX])):
        r = int(run.data.tags[rec.TAG_SEED_INDEX])
        out.append((RepeatSeeds.from_param(run.data.params[f"seeds_r{r}"], r),
                    repeat_metric_history(client, run.info.run_id, "val_loss", r), _deterministic(run),
                    logged_split(run.data.params, r), _engine(run)))
    return f"variant {target} {config.label()}", config, out, _pinned(mine)


TOLERANCE = 1e-5


@dataclass(frozen=True)
class Reproduction:
    """What `--reproduce` found: the largest |logged - new| val_loss, the bound it was held to, the verdict."""

    worst: float
    tolerance: float  # TOLERANCE (deterministic original), the seed noise (otherwise), nan (no bound)
    verdict: str  # match | DIFFER | within seed noise | beyond seed noise | not checked

    @property
    def ok(self) -> bool:
        return self.verdict in ("match", "within seed noise")


def seed_noise(logged: list) -> float:
    """The largest spread (max - min) of the logged seeds' val_loss at one epoch; nan with fewer than 2 seeds."""
    by_epoch: dict[int, list[float]] = {}
    for _, history, *_ in logged:
        for m in history:
            by_epoch.setdefault(m.step, []).append(m.value)
    spreads = [max(v) - min(v) for v in by_epoch.values() if len(v) >= 2 and np.all(np.isfinite(v))]
    return float(max(spreads)) if spreads else float("nan")


def _logged_data(dataset: Dataset, exp: Experiment, split: tuple[int, str] | None, what: str) -> Dataset:
    """The images a logged repeat trained on: its replicate's own split, drawn again from the pool, or the
    experiment's one split; a split that cannot be drawn again exactly is refused, not silently replaced."""
    if split is None:
        if dataset.pool is not None:
            raise ConfigError(f"--reproduce: {what} trained on one fixed data split, but {exp.path} draws a split "
                              f"per seed replicate; add `dataset.resample: none` to reproduce it. "
                              f"Received: resample={exp.dataset.resample!r}")
        return dataset
    index, logged = split
    if dataset.pool is None:
        raise ConfigError(f"--reproduce: {what} trained on the split of seed replicate {index}, but {exp.path} has "
                          f"one fixed data split; set `dataset.resample: replicate` to reproduce it. "
                          f"Received: resample={exp.dataset.resample!r}")
    data = replicate_data(dataset, exp, index)
    if not data.fingerprint.startswith(logged):
        raise ConfigError(f"--reproduce: the split of seed replicate {index} drawn now is not the one {what} "
                          f"trained on (data {data.fingerprint[:16]}, logged {logged}): the dataset or its keys "
                          f"changed. Received: path={exp.dataset.path or exp.dataset.source!r}")
    return data


def _retrain(config: TrialConfig, data: Dataset, exp: Experiment, seeds: RepeatSeeds, engine: str) -> np.ndarray:
    """The val_loss curve of one repeat trained again alone: through the stacked engine as a group of one when it
    trained there (a member's numbers there do not depend on the others: `training.stacked`), else `train.run`."""
    if engine == "stacked":
        from ..training import group, stacked

        histories, _, _, _ = stacked.run_stacked([group.Member(config, data, seeds)], exp.train, exp.model)
        return histories[0]["val_loss"].to_numpy(dtype=float)
    return train.run(config, data, exp.train, seeds, model=exp.model).history["val_loss"].to_numpy(dtype=float)


def reproduce(exp: Experiment, stores: Stores, target: str, echo: Callable[[str], None] = print) -> Reproduction:
    """Retrain a logged trial (number) or ablation variant (name) with its logged seeds; print logged vs
    new per-epoch val_loss and the verdict. Reads the stores, writes nothing."""
    dataset = load_dataset(exp.dataset, exp.seed, exp.path)
    if not stores.has_tracking_store():
        raise ConfigError(f"--reproduce: no MLflow store under {stores.mlruns}/. "
                          f"Received: mlruns={str(stores.mlruns)!r}")
    client = client_for(stores.tracking_uri)
    mexp = client.get_experiment_by_name(exp.name)
    if mexp is None:
        raise ConfigError(f"--reproduce: MLflow has no experiment {exp.name!r} in {stores.tracking_label}. "
                          f"Received: reproduce={target!r}")
    label, config, logged, pinned = _targets(exp, target, stores, client, mexp.experiment_id)
    # The retraining is always deterministic (the original may not have been), on the original's CPU threads:
    # a reduction's summation order depends on how many threads split it.
    runtime.setup(True, exp.train.mixed_precision, pin_threads=pinned)
    exact = bool(logged) and all(d for _, _, d, _, _ in logged)
    echo(f"reproducing {label}: {len(logged)} seed(s) x {exp.train.epochs} epochs (deterministic ops)")
    if not exact:
        echo("  the original ran without deterministic ops (train.deterministic: false, or logged before it "
             "existed): it can only be compared within seed noise")
    echo(f"  {'seed':>4}  {'epoch':>5}  {'logged val_loss':>16}  {'new val_loss':>16}  {'|diff|':>9}")
    worst = 0.0
    for seeds, history, _, split, engine in logged:
        if not history:
            echo(f"  r{seeds.repeat}: nothing logged (pruned or failed before its first epoch); skipped")
            continue
        data = _logged_data(dataset, exp, split, f"{label} r{seeds.repeat}")
        new = _retrain(config, data, exp, seeds, engine)
        for m in sorted(history, key=lambda m: m.step):
            if m.step >= len(new):
                continue
            diff = abs(new[m.step] - m.value)
            worst = max(worst, diff) if np.isfinite(diff) else float("inf")
            echo(f"  {'r' + str(seeds.repeat):>4}  {m.step:>5}  {m.value:16.8f}  {new[m.step]:16.8f}  {diff:9.2e}")
    if exact:
        result = Reproduction(worst, TOLERANCE, "match" if worst <= TOLERANCE else "DIFFER")
        echo(f"max |diff| = {worst:.3g} (tolerance {TOLERANCE:g}, the original ran deterministically): "
             f"{result.verdict}")
        return result
    noise = seed_noise(logged)
    if not np.isfinite(noise):
        result = Reproduction(worst, noise, "not checked")
        echo(f"max |diff| = {worst:.3g}: not checked (one seed logged, so no seed noise to compare with; "
             f"rerun with train.deterministic: true for an exact check)")
        return result
    result = Reproduction(worst, noise, "within seed noise" if worst <= noise else "beyond seed noise")
    echo(f"max |diff| = {worst:.3g} vs seed noise {noise:.3g} (the largest spread of the logged seeds at one "
         f"epoch): {result.verdict}")
    return result
