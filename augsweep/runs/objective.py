"""Optuna objective: trial -> configuration -> `repeats` paired trainings -> mean best val_loss.

The only module that wires Optuna (pruning reports) and MLflow (tracking) into training, both
as Keras callbacks; `train` itself knows neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .. import runtime
from ..experiment import space
from ..experiment.schema import Experiment
from ..experiment.seeding import point_seeds, repeat_seeds
from ..runtime import RunEnv, store_write
from ..stores import records as rec
from ..stores.tracking import FINISHED, KILLED, Tracker, repeat_metric
from ..training import group as group_training
from ..training import stacked, train
from ..training.checks import chance_loss, failure_reason
from ..training.data import Dataset
from ..training.resample import replicate_data, split_param
from . import cotrain
from .cotrain import CoTrainCache
from .lifecycle import TrainingRun
from .progress import SweepProgress
from .repeat import MODEL_ARTIFACT, group_engine, preview_images, replay, save_model, train_group, train_repeat
from .sidecar import Sidecar


def interrupt_check():
    """Keras callback: at each epoch's end, deliver a Ctrl-C/SIGTERM that was swallowed on its way (raised
    inside a finalizer of the training's objects, where Python drops exceptions: `runtime.raise_if_interrupted`),
    so the trial fails and the sweep exits 130/143 instead of training on."""
    import keras

    class InterruptCheck(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            runtime.raise_if_interrupted()

    return InterruptCheck()


def pruning_callback(trial, repeat: int, epochs: int):
    """Keras callback: `trial.report(val_loss, step)` each epoch, stop training when Optuna prunes.

    Steps run across repeats (`repeat * epochs + epoch`): every trial's repeat r uses the same
    seeds, so the pruner compares trials at equal steps under common random numbers. Without a
    pruner (`NopPruner`) nobody reads the values during training, so the repeat's reports are
    written when training ends rather than one storage round trip per epoch.
    """
    import keras
    import optuna

    callbacks = keras.callbacks
    batched = isinstance(getattr(getattr(trial, "study", None), "pruner", None), optuna.pruners.NopPruner)

    class OptunaPruning(callbacks.Callback):
        pruned_at: int | None = None

        def __init__(self):
            super().__init__()
            self.pending: list[tuple[float, int]] = []

        def on_epoch_end(self, epoch, logs=None):
            value = float((logs or {}).get("val_loss", float("nan")))
            if not math.isfinite(value):
                return  # stop_on_non_finite handles divergence; a NaN report would poison the pruner
            if batched:
                self.pending.append((value, repeat * epochs + epoch))
                return
            # The pruner's read is a storage session too: a SIGTERM inside its commit left Optuna unable to
            # fail the trial ("Should not reach", CI 2026-12-05), so both are held until the session ends.
            with store_write():
                trial.report(value, repeat * epochs + epoch)
                prune = trial.should_prune()
            if prune:
                self.pruned_at = epoch
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            with store_write():
                for value, step in self.pending:
                    trial.report(value, step)
            self.pending = []

    return OptunaPruning()


@dataclass
class Objective:
    """Callable for `study.optimize`: trains one configuration `repeats` times and logs it."""

    experiment: Experiment
    dataset: Dataset
    tracker: Tracker
    env: RunEnv  # how this process trains: its device, dtype policy, determinism and threads tag each trial run
    grid: bool = False
    extra_tags: dict = field(default_factory=dict)
    progress: SweepProgress | None = None  # per-epoch terminal progress (the sweep's); None: silent
    members: int = 1  # members per program (`runs.members`): above `repeats`, queued design points train along
    engine: str = "branches"  # how a program of members computes (`runs.members.engine_for`, `repeat.group_engine`)
    # Queued design points this process co-trained, until their trials run here (`runs.cotrain`).
    cotrained: CoTrainCache = field(default_factory=CoTrainCache)
    # Trains queued points of the block's other network shapes beside this process (`runs.sidecar`); None: here.
    sidecar: Sidecar | None = None

    def __call__(self, trial) -> float:
        runtime.raise_if_interrupted()  # one that arrived between trials and was swallowed on its way
        runtime.freeze_long_lived_objects()
        exp = self.experiment
        config = space.sample(trial, exp.search_space, exp.train.learning_rate, grid=self.grid)
        flat = config.flat(exp.search_space.augmentation_names)
        trial.set_user_attr(rec.CONFIG, flat)
        # A design block trains with fresh seeds, shared by all of its points (seed index b*R + r).
        # A design point retried after a failure (attempt > 0) trains on fresh seeds in the same slots.
        block = int(trial.user_attrs.get(rec.BLOCK, 0))
        attempt = int(trial.user_attrs.get(rec.SEED_ATTEMPT, 0))
        seeds = point_seeds(exp.seed, block, exp.repeats, attempt)
        # Per-repeat keys use the repeat's position in the trial (0..repeats-1) in every block, for the seeds
        # param, the curves and the best value alike, so runs of different blocks share their metric names.
        params = {**flat, "seed": exp.seed, "repeats": exp.repeats,
                  **{k: v for r, s in enumerate(seeds) for k, v in s.as_param(r).items()},
                  **{k: v for r, s in enumerate(seeds) for k, v in split_param(self.dataset, exp, s.repeat, r).items()}}
        where = train.plan_placement(config, exp.train)
        with TrainingRun(self.tracker, f"t{trial.number:02d} {config.label()}", params,
                         {rec.TAG_TRIAL: trial.number, rec.TAG_STUDY: trial.study.study_name,
                          rec.TAG_KIND: rec.KIND_TRIAL, "aug_placement": where.label, **rec.env_tags(self.env),
                          **self.extra_tags},
                         title=f"trial {trial.number}: d{config.depth} {config.parameters()}") as run:
            trial.set_user_attr(rec.MLFLOW_RUN_ID, run.run_id)
            # What optuna-dashboard shows beside each trial: its configuration and a link to its MLflow run.
            trial.set_user_attr(rec.CONFIG_NAME, config.label())
            trial.set_user_attr(rec.MLFLOW_RUN_URL, self.tracker.run_url(run.run_id))
            shown = self.progress.trial(trial.number, config.label()) if self.progress is not None else None
            try:
                return self._train(trial, config, seeds, run, shown)
            finally:
                if shown is not None:
                    shown.close()
        # No gc.collect() after a trial: the next build's keras.backend.clear_session() runs one anyway.

    def _train(self, trial, config, seeds, run: TrainingRun, shown) -> float:
        """Train the repeats into `run`; tell Optuna how the trial ended only once its run holds it (the run's
        failure policy is `TrainingRun`'s; this adds the trial's side: its repeats and failure reason)."""
        import optuna

        exp = self.experiment
        summaries: list[dict] = []
        try:
            for r, s, done, prune in self._repeats(trial, config, seeds, run, shown):
                run.tags["jit_compile"] = done.jit_compile
                if done.engine != "keras":  # `--reproduce` retrains through the engine that computed it
                    run.tags["engine"] = done.engine
                run.histories.append(done.history)
                # A diverged training is an outcome, not a hole: scored by what it reached (checks.py).
                summaries.append(done.check(chance_loss(self.dataset.num_classes)))
                run.metrics[repeat_metric("best_val_loss", r)] = summaries[-1]["best_val_loss"]
                # The trial's best repeat so far is kept as a file (the report registers the best
                # configuration's best seed from it, and never retrains); saved now because the next
                # repeat reuses (resets) this very model.
                best = summaries[-1]["best_val_loss"]
                if math.isfinite(best) and best <= min(x["best_val_loss"] for x in summaries
                                                       if math.isfinite(x["best_val_loss"])):
                    _keep_model(done, config, exp.train, run.tmp / MODEL_ARTIFACT)
                    run.tags[rec.TAG_MODEL_REPEAT] = r
                done.model = None  # the next repeat reuses it (training.reuse) or frees it by building anew
                if prune.pruned_at is not None:
                    raise optuna.TrialPruned(f"pruned at repeat {s.repeat}, epoch {prune.pruned_at}")
            value = float(np.mean([r["best_val_loss"] for r in summaries]))
            trial.set_user_attr(rec.REPEATS, summaries)
            diverged = sum(1 for r in summaries if "diverged_epoch" in r)
            if diverged:
                run.tags["diverged_repeats"] = diverged
            # Written before Optuna is told: a trial counts as COMPLETE only once its run holds every
            # metric and artifact. (Finishing on a background thread after the tell once lost a COMPLETE
            # trial's data to a kill, an OOM or a read-only store in that second.)
            # A kill during the write leaves the trial RUNNING; the resume fails it and retries it once.
            run.metrics["best_val_loss"] = value
            run.images = self._preview(config)
            if (run.tmp / MODEL_ARTIFACT).is_file():
                run.artifacts.append(run.tmp / MODEL_ARTIFACT)
            run.end(FINISHED, "COMPLETE")
            return value
        except optuna.TrialPruned as e:
            trial.set_user_attr(rec.REPEATS, summaries)
            run.images = self._preview(config)
            run.end(KILLED, "PRUNED", (rec.TAG_PRUNE_REASON, str(e)))
            raise
        except BaseException as e:  # the trial's side of a failure; `run` closes the MLflow run on the way out
            trial.set_user_attr(rec.FAILURE_REASON, failure_reason(e))
            trial.set_user_attr(rec.REPEATS, summaries)
            raise

    def _dataset(self, seeds) -> Dataset:
        """The data one seed replicate trains and validates on: the replicate's own split (b*R + r; never the retry
        attempt), shared by every design point, or the experiment's one split (`dataset.resample: none`)."""
        return replicate_data(self.dataset, self.experiment, seeds.repeat)

    def _repeats(self, trial, config, seeds, run: TrainingRun, shown):
        """(index, seeds, trained repeat, its pruning listener) in repeat order: trained one at a time with every
        listener live, or (`members` > 1) `members` at a time as one program, each member's epochs then handed
        in repeat order to its tracking and pruning listeners (`replay`), so that the curves logged and the
        pruner's decisions are those of one-at-a-time training; repeats after a pruned one are never logged.
        With `members` above the repeats, the program also trains queued design points of the trial's block for
        later (`runs.cotrain`), and a trial this process trained that way earlier is replayed, not trained."""
        exp = self.experiment
        size = min(self.members, len(seeds))
        points = -(-self.members // len(seeds)) if self.members > len(seeds) else 1
        if size > 1 and runtime.backend() != "tensorflow":
            # Elsewhere a grouped member's batch order is not its lone training's, and `--reproduce` retrains alone.
            size = points = 1
        datasets = [self._dataset(s) for s in seeds]
        if size > 1 and group_training.groupable([group_training.Member(config, d, s) for s, d in zip(seeds, datasets)],
                                                 exp.train, exp.model):
            size = points = 1  # they cannot share a program (a pretrained base, streamed files): one at a time
        if size < len(seeds):
            points = 1  # design points share a program only with all of their repeats in it
        if points > 1:
            if self.sidecar is not None:
                self.sidecar.collect(wait_for=trial.number)
                if self.sidecar.trouble():  # the points it could not train are trained here, at their cost
                    run.tags["cotrain_helper"] = self.sidecar.trouble()
            done = self.cotrained.take(cotrain.training_key(trial.study.study_name, exp, config, seeds, datasets))
            if done is not None:
                run.tags["members"] = done.members
                run.tags["cotrained"] = (f"replayed: trained earlier with {done.points - 1} other design point(s)"
                                         + (" in a helper process" if done.beside else ""))
                yield from self._replayed(trial, run, list(zip(seeds, done.outcomes)))
                return
            yield from self._cotrained(trial, config, seeds, datasets, run, shown, points)
            return
        run.tags["members"] = size
        for start in range(0, len(seeds), size):
            chunk = list(enumerate(seeds))[start:start + size]
            if size == 1:
                r, s = chunk[0]
                prune = pruning_callback(trial, s.repeat, exp.train.epochs)
                listeners = [prune, self.tracker.epoch_logger(run.run_id, r, since=run.started), interrupt_check()]
                done = train_repeat(config, datasets[r], exp.train, s,
                                    listeners + ([shown.callback(s.repeat)] if shown is not None else []),
                                    model=exp.model)
                yield r, s, done, prune
                continue
            live = [[interrupt_check()] + ([shown.callback(s.repeat)] if shown is not None else []) for _, s in chunk]
            group = train_group(config, [datasets[r] for r, _ in chunk], exp.train, [s for _, s in chunk],
                                live, model=exp.model, engine=self.engine)
            yield from self._replayed(trial, run, [(s, done) for (_, s), done in zip(chunk, group)], start)

    def _replayed(self, trial, run: TrainingRun, outcomes, start: int = 0):
        """Hand trained repeats' epochs to their tracking and pruning listeners in repeat order (`replay`)."""
        for r, (s, done) in enumerate(outcomes, start):
            prune = pruning_callback(trial, s.repeat, self.experiment.train.epochs)
            replay(done, [prune, self.tracker.epoch_logger(run.run_id, r, since=run.started)])
            yield r, s, done, prune

    def _cotrained(self, trial, config, seeds, datasets, run: TrainingRun, shown, points: int):
        """Train the trial's repeats in one program with those of up to `points` - 1 queued design points of its
        block, keep theirs for later (`runs.cotrain`) and replay its own. A failure fails this trial only: nothing
        of the program is kept."""
        exp = self.experiment
        own = cotrain.Point(trial.number, config, list(seeds), datasets)
        members = [group_training.Member(config, d, s) for s, d in zip(seeds, datasets)]
        engine, _ = group_engine(config, datasets, exp.train, seeds, exp.model, self.engine)
        # A stacked program holds one network shape: queued points of another depth wait for a program of theirs.
        fits = ((lambda more: not stacked.stackable(members + more, exp.train, exp.model)) if engine == "stacked"
                else (lambda more: not group_training.groupable(members + more, exp.train, exp.model)))
        others = []
        points = cotrain.points_that_fit(datasets, points)  # each member's arrays are copied into the program
        # With a helper process, one read of the queue serves both: this program's shape here, the others there.
        beside = engine == "stacked" and self.sidecar is not None
        queued = cotrain.queued_points(trial.study, trial, exp, self.grid, self._dataset, self.cotrained,
                                       None if beside else points - 1,
                                       depth=config.depth if engine == "stacked" and not beside else None)
        for p in queued:
            more = [group_training.Member(p.config, d, s) for s, d in zip(p.seeds, p.datasets)]
            if len(others) < points - 1 and fits(more):
                members += more
                others.append(p)
        if beside:
            self._beside(trial, [p for p in queued if p not in others], stacked.network_shape(config), points,
                         engine)
        live = [[interrupt_check()] + ([shown.callback(s.repeat)] if shown is not None else []) for s in seeds]
        mine, trained = cotrain.train_points(own, others, exp, live, lambda: [interrupt_check()], engine)
        for p, entry in zip(others, trained):
            self.cotrained.put(cotrain.training_key(trial.study.study_name, exp, p.config, p.seeds, p.datasets), entry)
        run.tags["members"] = len(members)
        run.tags["cotrained"] = f"trained with {len(others)} queued design point(s)"
        # What co-training has cost this process so far: copies dropped unused were trained twice.
        c = self.cotrained
        run.tags["cotrain_cache"] = f"co-trained {c.trained}, replayed {c.replayed}, dropped unused {c.wasted}"
        yield from self._replayed(trial, run, list(zip(seeds, mine)))

    def _beside(self, trial, queued: list, own: tuple, points: int, engine: str) -> None:
        """Send the `queued` points of network shapes other than `own` to the helper process, up to `points` per
        program, one program per shape, to train while this process trains its own (`runs.sidecar`)."""
        exp = self.experiment
        shapes: dict[tuple, list] = {}
        for p in queued:
            shape = stacked.network_shape(p.config)
            if shape != own and len(shapes.setdefault(shape, [])) < points:
                shapes[shape].append(p)
        for group in shapes.values():
            members = [group_training.Member(p.config, d, s) for p in group for s, d in zip(p.seeds, p.datasets)]
            if not stacked.stackable(members, exp.train, exp.model) and self.sidecar.usable(group):
                keys = [cotrain.training_key(trial.study.study_name, exp, p.config, p.seeds, p.datasets)
                        for p in group]
                self.sidecar.submit(group, keys, exp, engine)

    def _preview(self, config):
        """The preview grid of the configuration's augmentations, on the first repeat's augmentation seed."""
        return preview_images(config, self.dataset, repeat_seeds(self.experiment.seed, 0).aug)


def _keep_model(done, config, settings, path) -> None:
    """Write the repeat's model as the trial's artifact file: saved from the live network, or the bytes a
    co-training saved (`cotrain.SavedModel`); a co-trained repeat kept without them removes the file (only a
    trial about to be pruned keeps such a repeat, and a pruned trial logs no model)."""
    if isinstance(done.model, cotrain.SavedModel):
        path.write_bytes(done.model)
    elif done.model is None:
        path.unlink(missing_ok=True)
    else:
        save_model(done, config, settings, path)
