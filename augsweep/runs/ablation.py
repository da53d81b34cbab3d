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
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

import yaml

from .. import runtime
from ..runtime import RunEnv
from ..experiment.schema import ConfigError, Experiment
from ..experiment.seeding import RepeatSeeds, ablation_seeds
from ..experiment.space import TrialConfig
from ..experiment.variants import Variant, base_from_file, build_variants, candidates, config_key
from ..stores import records as rec
from ..stores.records import KIND_ABLATION as KIND_PARENT
from ..stores.records import KIND_ABLATION_RUN as KIND_RUN
from ..stores.records import SPEC_ARTIFACT
from ..stores.study import Stores, identity, load_study_readonly
from ..stores.tracking import FAILED, FINISHED, KILLED, RUNNING, Tracker, repeat_metric, scratch_dir
from ..training import evaluate
from ..training.checks import chance_loss, failure_reason
from ..training.data import Dataset, load_dataset
from ..training.model import check_model
from .repeat import preview_images, train_repeat, write_artifacts
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


def ablation_id(exp: Experiment, base: TrialConfig, repeats: int) -> str:
    """What identifies an ablation: the experiment (as the sweep sees it), the base and the seeds."""
    text = f"{identity(exp)}|{config_key(base)}|{exp.seed}|{repeats}|fresh-seeds"  # seeds past the sweep's
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
    aid = ablation_id(exp, base, R)
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
                "epochs": exp.train.epochs, "batch_size": exp.train.batch_size, "repeats": R,
                "seed": exp.seed, "variants": len(variants), "base": base.label()},
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
    affinity_augs = {name: dict(params) for name, params in extra}
    failed = 0
    failures: list[str] = []
    started_all = time.perf_counter()
    try:
        for i, (v, s) in enumerate(todo, start=1):
            names = ",".join(x.name for x in by_key[v.key])
            # `none` may share its trainings with a leave-one-out variant listed before it.
            plain = any(x.kind == "none" for x in by_key[v.key])
            ok, line = _train_variant(tracker, exp, dataset, v, names, s, aid, env,
                                      affinity_augs if plain else None)
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


def _train_variant(tracker, exp: Experiment, dataset: Dataset, v: Variant, names: str, s: RepeatSeeds,
                   aid: str, env: RunEnv, affinity_augs: Mapping | None) -> tuple[bool, str]:
    """Train one variant with one seed into its own nested MLflow run; never raises for a failed training."""
    flat = v.config.flat()
    params = {**flat, "seed": exp.seed, "repeat": s.repeat, **s.as_param()}
    run_id = tracker.start_trial(
        f"{v.name} r{s.repeat}", params,
        {rec.TAG_KIND: KIND_RUN, rec.TAG_ABLATION_ID: aid, "variant": v.name, rec.TAG_VARIANTS: names,
         "variant_kind": v.kind, rec.TAG_VARIANT_KEY: v.key, rec.TAG_SEED_INDEX: s.repeat, **rec.env_tags(env)},
    )
    started = time.perf_counter()
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        try:
            runtime.freeze_long_lived_objects()
            done = train_repeat(v.config, dataset, exp.train, s, [tracker.epoch_logger(run_id, s.repeat)],
                                model=exp.model)
            summary = done.check(chance_loss(dataset.num_classes))
            metrics = {"best_val_loss": summary["best_val_loss"], repeat_metric("best_val_loss", s.repeat): summary["best_val_loss"],
                       "final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
                       "gap": summary["gap"], "best_epoch": summary["best_epoch"]}
            if "best_val_accuracy" in summary:
                metrics["best_val_accuracy"] = summary["best_val_accuracy"]
            artifacts = []
            classes = evaluate.per_class(done.model, dataset.x_val, dataset.y_val, dataset.class_names)
            classes.to_csv(tmp / "per_class.csv", index=False)
            artifacts.append(tmp / "per_class.csv")
            for row in classes.itertuples(index=False):
                metrics[f"class_val_loss/{_metric_name(row[0])}"] = row.val_loss
                metrics[f"class_val_accuracy/{_metric_name(row[0])}"] = row.val_accuracy
            if affinity_augs:
                aff = evaluate.affinity(done.model, dataset.x_val, dataset.y_val, dataset.num_classes,
                                        affinity_augs, s.aug)
                aff.to_csv(tmp / "affinity.csv", index=False)
                artifacts.append(tmp / "affinity.csv")
                for row in aff.itertuples(index=False):
                    metrics[f"affinity/{row.augmentation}"] = row.affinity
            done.model = None
            artifacts += write_artifacts(tmp, done.history, f"{v.name} r{s.repeat}",
                                         preview_images(v.config, dataset, s.aug))
            metrics["trial_seconds"] = time.perf_counter() - started
            tracker.finish_trial(run_id, FINISHED, done.history.drop(columns="repeat"), metrics,
                                 {rec.TAG_STATE: "COMPLETE", "aug_placement": done.placement}, artifacts)
            return True, f"best_val_loss {summary['best_val_loss']:.4f}  {metrics['trial_seconds']:5.1f}s"
        except BaseException as e:  # noqa: BLE001 - every failure must close the MLflow run
            reason = failure_reason(e)
            status = KILLED if isinstance(e, (KeyboardInterrupt, SystemExit)) else FAILED
            try:
                tracker.finish_trial(run_id, status, None, {"trial_seconds": time.perf_counter() - started},
                                     {rec.TAG_STATE: "FAIL", rec.TAG_FAILURE_REASON: reason}, [],
                                     {"traceback.txt": "".join(traceback.format_exception(e))})
            except Exception:
                pass
            if status == KILLED:
                raise
            return False, f"FAILED ({reason})"
