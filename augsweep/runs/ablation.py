"""Paired-seed ablation around one base configuration (the design is in `variants`).

MLflow is the ablation's store: one parent run (tag `kind=ablation`, `ablation_id` = hash of the
experiment, the base and R) and one nested run per configuration x seed. Rerunning continues:
finished runs are kept, runs left RUNNING by a killed process are marked KILLED and retrained.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import yaml

from .. import runtime
from ..augment import revisions
from ..experiment.identity import identity
from ..experiment.schema import ConfigError, Experiment
from ..experiment.seeding import RepeatSeeds, ablation_index, ablation_seeds
from ..experiment.space import TrialConfig
from ..experiment.variants import Variant, base_from_file, build_variants, candidates, config_key
from ..learned import chance_loss_of
from ..runtime import RunEnv
from ..stores import records as rec
from ..stores.records import KIND_ABLATION as KIND_PARENT
from ..stores.records import KIND_ABLATION_RUN as KIND_RUN
from ..stores.records import SPEC_ARTIFACT
from ..stores.study import Stores, load_study_readonly
from ..stores.tracking import FAILED, FINISHED, KILLED, RUNNING, Tracker, TrackingUnavailable, repeat_metric
from ..training import evaluate
from ..training.checks import chance_loss, failure_reason
from ..training.data import Dataset, load_dataset
from ..training.model import check_model
from ..training.resample import replicate_data, split_param
from .lifecycle import TrainingRun
from .repeat import preview_images, train_repeat
from .sweep import model_tags


def base_from_sweep(exp: Experiment, stores: Stores) -> tuple[TrialConfig, str]:
    """The best completed trial of the experiment's sweep, and a sentence saying so."""
    import optuna

    study_name, storage_url = stores.study_name, stores.storage_label
    study = load_study_readonly(stores)
    complete = [] if study is None else study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(
            f"no base configuration for the ablation: study {study_name!r} has no completed trial in "
            f"{storage_url}. Run the sweep first: {stores.command('sweep.py', exp)}; or set ablation.base in "
            f"{exp.path}"
        )
    best = min(complete, key=lambda t: t.value)
    return (TrialConfig.from_flat(best.user_attrs[rec.CONFIG]),
            f"best completed trial t{best.number:02d} of study {study_name!r} (value {best.value:.4f})")


def ablation_id(exp: Experiment, base: TrialConfig, repeats: int, variants: Sequence[Variant] = ()) -> str:
    """What identifies an ablation: the experiment (as the sweep sees it), the base, the seeds, and the meaning of
    every augmentation its variants train where that changed (a TrivialAugment baseline trained before its contrast
    became symmetric is not this ablation's)."""
    text = f"{identity(exp)}|{config_key(base)}|{exp.seed}|{repeats}|fresh-seeds"  # seeds past the sweep's
    trained = revisions({name: params for v in variants for name, params in v.config.enabled.items()})
    if trained:
        text += f"|{sorted(trained.items())}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _metric_name(text: str) -> str:
    """MLflow metric names allow letters, digits, _ - . / and spaces."""
    return re.sub(r"[^\w\-. /]", "_", str(text))


@dataclass
class AblationOutcome:
    """What an ablation did, for the terminal summary and for tests."""

    parent_run_id: str
    variants: list[Variant]
    repeats: int
    trained_now: int
    failed: int
    base_source: str
    failures: list = field(default_factory=list)  # "variant rR: reason" of every training that failed now


def _spec(exp: Experiment, base: TrialConfig, base_source: str, variants: Sequence[Variant],
          repeats: int, extra) -> dict:
    return {
        "experiment": exp.name,
        "base": base.flat(),
        "base_label": base.label(),
        "base_source": base_source,
        "repeats": repeats,
        "seed": exp.seed,
        "candidates": [name for name, _ in extra],
        "variants": [{"name": v.name, "kind": v.kind, "augmentation": v.augmentation, "key": v.key,
                      "label": v.config.label(), "config": v.config.flat()} for v in variants],
    }


def run_ablation(exp: Experiment, stores: Stores, repeats: int | None = None,
                 echo: Callable[[str], None] = print, env: RunEnv | None = None) -> AblationOutcome:
    """Train every variant with the same `repeats` seeds (resuming), logged under one MLflow parent run.
    `env`: how this process trains, as its entry point set it up; set up from the experiment when None."""
    R = repeats if repeats is not None else exp.ablation.repeats
    if R < 1:
        raise ConfigError(f"--repeats must be >= 1. Received: repeats={R}")
    # Everything that can be wrong with the input is found before any store is written.
    dataset = load_dataset(exp.dataset, exp.seed, exp.path)
    for note in dataset.warnings:
        echo(f"warning: {note}")
    check_model(exp.model, dataset.input_shape)
    if exp.ablation.base is not None:
        base, base_source = base_from_file(exp), f"ablation.base in {exp.path}"
    else:
        base, base_source = base_from_sweep(exp, stores)
    extra = candidates(base, exp)
    variants = build_variants(base, extra, exp.ablation.baselines)
    aid = ablation_id(exp, base, R, variants)
    # Fresh seeds, never used by the sweep: the base was picked on the sweep's seeds (selection on noise).
    seeds = [ablation_seeds(exp.seed, r) for r in range(R)]

    if stores.embedded_tracking:
        stores.mlruns.mkdir(parents=True, exist_ok=True)
    env = env or runtime.setup(exp.train.deterministic, exp.train.mixed_precision)
    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    client = tracker.client
    found = client.search_runs(
        [tracker.experiment_id], f"{rec.kind_filter(KIND_PARENT)} and tags.{rec.TAG_ABLATION_ID} = '{aid}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    spec = _spec(exp, base, base_source, variants, R, extra)
    parent = tracker.start_parent(
        run_name=f"ablation {base.label()} x{R}",
        tags={rec.TAG_KIND: KIND_PARENT, rec.TAG_ABLATION_ID: aid, "base": base.label(), "base_source": base_source,
              "repeats": R, rec.TAG_GIT_COMMIT: runtime.git_commit(), **rec.env_tags(env),
              rec.TAG_DATASET_FINGERPRINT: dataset.fingerprint,
              "data_pipeline": dataset.pipeline, **model_tags(exp),
              rec.TAG_STUDY: stores.study_name},
        params={"dataset": exp.dataset.source, "image_size": "x".join(map(str, exp.dataset.image_size)),
                rec.PARAM_DATA_SPLIT: rec.data_split(dataset.pool is not None),
                "epochs": exp.train.epochs, "batch_size": exp.train.batch_size, "repeats": R,
                "seed": exp.seed, "variants": len(variants), "base": base.label(),
                rec.PARAM_CLASSES: dataset.num_classes,
                rec.PARAM_CHANCE: round(chance_loss_of(dataset.y_val, dataset.num_classes), 6)},
        files={"experiment.yaml": yaml.safe_dump(exp.resolved(), sort_keys=False),
               "versions.yaml": yaml.safe_dump(runtime.package_versions(), sort_keys=True),
               SPEC_ARTIFACT: json.dumps(spec, indent=1, sort_keys=True)},
        resume_run_id=found[0].info.run_id if found else None,
    )

    done: set[tuple[str, int]] = set()
    for run in client.search_runs([tracker.experiment_id], rec.children_filter(parent),
                                  max_results=50_000):
        key, seed = run.data.tags.get(rec.TAG_VARIANT_KEY), run.data.tags.get(rec.TAG_SEED_INDEX)
        if run.info.status == FINISHED and key is not None and seed is not None:
            done.add((key, int(seed)))
        elif run.info.status == RUNNING:  # left behind by a killed process: one ablation runs at a time
            client.set_tag(run.info.run_id, rec.TAG_FAILURE_REASON, "interrupted (found RUNNING at resume)")
            client.set_terminated(run.info.run_id, KILLED)

    by_key: dict[str, list[Variant]] = {}
    for v in variants:
        by_key.setdefault(v.key, []).append(v)
    todo = [(vs[0], s) for vs in by_key.values() for s in seeds if (vs[0].key, s.repeat) not in done]
    total = len(by_key) * R
    echo(f"augsweep ablation: base {base.label()} ({base_source}); {len(variants)} variants "
         f"({len(by_key)} distinct) x {R} seeds on {dataset.describe()}; device {env.device}; "
         f"{total - len(todo)}/{total} trainings done, {len(todo)} to go")
    trainer = _VariantTrainer(tracker, exp, dataset, aid, env, {name: dict(params) for name, params in extra})
    failed = 0
    failures: list[str] = []
    started_all = time.perf_counter()
    try:
        for i, (v, s) in enumerate(todo, start=1):
            names = ",".join(x.name for x in by_key[v.key])
            # `none` may share its trainings with a leave-one-out variant listed before it.
            plain = any(x.kind == "none" for x in by_key[v.key])
            ok, line = trainer.train(v, names, s, affinity=plain)
            failed += 0 if ok else 1
            if not ok:
                failures.append(f"{names} r{s.repeat}: {line.removeprefix('FAILED (').removesuffix(')')}")
            echo(f"[{total - len(todo) + i:>3}/{total}] {names:<28} r{s.repeat}  {line}"
                 f"  elapsed {time.perf_counter() - started_all:5.0f}s")
    except BaseException:
        tracker.end_parent(KILLED)
        raise
    tracker.client.set_tag(parent, rec.TAG_FAILED_TRAININGS, str(failed))
    tracker.end_parent(FINISHED if not failed else FAILED)
    return AblationOutcome(parent, variants, R, len(todo), failed, base_source, failures)


@dataclass(frozen=True)
class _VariantTrainer:
    """Trains one variant with one seed into its own nested MLflow run (`TrainingRun`: one failure policy with
    the sweep's trials); what every training of one ablation shares."""

    tracker: Tracker
    exp: Experiment
    dataset: Dataset
    aid: str  # the ablation's id (tag `ablation_id`)
    env: RunEnv
    affinity_augs: Mapping  # the augmentations whose affinity the plain network's trainings measure

    def train(self, v: Variant, names: str, s: RepeatSeeds, affinity: bool) -> tuple[bool, str]:
        """(trained, the line to print); a failed training is recorded and reported, never raised (Ctrl-C,
        SIGTERM and a tracking server that stopped answering are)."""
        exp = self.exp
        # Fresh splits as well as fresh seeds: the base was chosen on the sweep's replicates (their splits included).
        dataset = replicate_data(self.dataset, exp, ablation_index(s.repeat))
        params = {**v.config.flat(), "seed": exp.seed, "repeat": s.repeat, **s.as_param(),
                  **split_param(self.dataset, exp, ablation_index(s.repeat), s.repeat)}
        tags = {rec.TAG_KIND: KIND_RUN, rec.TAG_ABLATION_ID: self.aid, "variant": v.name, rec.TAG_VARIANTS: names,
                "variant_kind": v.kind, rec.TAG_VARIANT_KEY: v.key, rec.TAG_SEED_INDEX: s.repeat,
                **rec.env_tags(self.env)}
        try:
            with TrainingRun(self.tracker, f"{v.name} r{s.repeat}", params, tags, f"{v.name} r{s.repeat}") as run:
                runtime.freeze_long_lived_objects()
                done = train_repeat(v.config, dataset, exp.train, s, [self.tracker.epoch_logger(run.run_id, s.repeat)],
                                    model=exp.model)
                run.histories.append(done.history)
                summary = done.check(chance_loss(dataset.num_classes))
                run.metrics.update({
                    "best_val_loss": summary["best_val_loss"],
                    repeat_metric("best_val_loss", s.repeat): summary["best_val_loss"],
                    "final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
                    "gap": summary["gap"], "best_epoch": summary["best_epoch"]})
                if "best_val_accuracy" in summary:
                    run.metrics["best_val_accuracy"] = summary["best_val_accuracy"]
                self._evaluate(run, done, s, affinity, dataset)
                done.model = None
                run.images = preview_images(v.config, dataset, s.aug)
                run.tags["aug_placement"] = done.placement
                run.end(FINISHED, "COMPLETE")
                return True, f"best_val_loss {summary['best_val_loss']:.4f}  {run.seconds():5.1f}s"
        except TrackingUnavailable:
            raise  # the store is gone: every later training would wait for it again
        except Exception as e:  # noqa: BLE001 - recorded by `TrainingRun`; the ablation goes on with the next one
            return False, f"FAILED ({failure_reason(e)})"

    def _evaluate(self, run: TrainingRun, done, s: RepeatSeeds, affinity: bool, dataset: Dataset) -> None:
        """Per-class validation loss and accuracy, and (the plain network) each augmentation's affinity, on the
        validation images `dataset` the repeat trained against."""
        classes = evaluate.per_class(done.model, dataset.x_val, dataset.y_val, dataset.class_names)
        classes.to_csv(run.tmp / "per_class.csv", index=False)
        run.artifacts.append(run.tmp / "per_class.csv")
        for row in classes.itertuples(index=False):
            run.metrics[f"class_val_loss/{_metric_name(row[0])}"] = row.val_loss
            run.metrics[f"class_val_accuracy/{_metric_name(row[0])}"] = row.val_accuracy
        if affinity and self.affinity_augs:
            aff = evaluate.affinity(done.model, dataset.x_val, dataset.y_val, dataset.num_classes,
                                    self.affinity_augs, s.aug)
            aff.to_csv(run.tmp / "affinity.csv", index=False)
            run.artifacts.append(run.tmp / "affinity.csv")
            for row in aff.itertuples(index=False):
                run.metrics[f"affinity/{row.augmentation}"] = row.affinity
