"""Paired-seed ablation around one base configuration (the design is in `variants`).

MLflow is the ablation's store: one parent run (tag `kind=ablation`, `ablation_id` = hash of the
experiment, the base and R) and one nested run per configuration x seed. Rerunning continues:
finished runs are kept, runs left RUNNING by a killed process are marked KILLED and retrained.

`members` (`--members`): how the trainings still to do are grouped into compiled programs, as the sweep's
(`runs.members`). `auto` trains those the stacked engine accepts (`training.stacked`: one network shape, the same
image counts, every augmentation in the model, float32, TensorFlow) as stacked programs of up to `AUTO_STACKED`
members, the rest as branches of up to R (`repeat.group_engine`'s fallback); an explicit N trains branches of at
most N (`training.group`: each member bit for bit its training alone); 1 trains one at a time (the reference
path). Every member keeps its own nested run, opened (RUNNING) before its program starts, its epochs logged by its
own callback, its own end, evaluation and artifacts, and the engine that computed it (tag `engine=stacked`, which
`--reproduce` retrains through). The ablation's id ignores `members`: a resumed ablation continues whatever
trained its finished runs, and retrains only the missing (variant, seed) pairs.
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
from .cotrain import PROGRAM_DATA_BYTES
from .lifecycle import TrainingRun
from .members import AUTO, AUTO_STACKED, describe, one_per_program
from .repeat import RepeatOutcome, group_engine, preview_images, train_members, train_repeat
from .reproduce import TAG_ENGINE
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
                 echo: Callable[[str], None] = print, env: RunEnv | None = None,
                 members: int | str = 1) -> AblationOutcome:
    """Train every variant with the same `repeats` seeds (resuming), logged under one MLflow parent run.
    `env`: how this process trains, as its entry point set it up; set up from the experiment when None.
    `members`: trainings per compiled program, as the entry point checked it (`arguments.members`; `ablation_members`:
    auto, N, or 1 one at a time)."""
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
    per_program, rule = ablation_members(members, exp)
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
              rec.TAG_STUDY: stores.study_name, "members": per_program, "members_rule": rule or "--members N"},
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
    todo = [_Training(vs[0], ",".join(x.name for x in vs), s, any(x.kind == "none" for x in vs))
            for vs in by_key.values() for s in seeds if (vs[0].key, s.repeat) not in done]
    # (`none` may share its trainings with a leave-one-out variant listed before it: its affinity is measured.)
    total = len(by_key) * R
    trainer = _VariantTrainer(tracker, exp, dataset, aid, env, {name: dict(params) for name, params in extra})
    programs = plan_programs(todo, trainer, per_program, members == AUTO, R)
    echo(f"augsweep ablation: base {base.label()} ({base_source}); {len(variants)} variants "
         f"({len(by_key)} distinct) x {R} seeds on {dataset.describe()}; device {env.device}; "
         f"{describe(per_program, rule)}; {total - len(todo)}/{total} trainings done, {len(todo)} to go"
         + (f" ({describe_plan(programs)})" if per_program > 1 and todo else ""))
    failed = 0
    failures: list[str] = []
    started_all = time.perf_counter()
    i = total - len(todo)

    def report(t: _Training, ok: bool, line: str) -> None:
        nonlocal i, failed
        i += 1
        failed += 0 if ok else 1
        if not ok:
            failures.append(f"{t.names} r{t.seeds.repeat}: {line.removeprefix('FAILED (').removesuffix(')')}")
        echo(f"[{i:>3}/{total}] {t.names:<28} r{t.seeds.repeat}  {line}"
             f"  elapsed {time.perf_counter() - started_all:5.0f}s")

    try:
        for program in programs:
            trainer.train_program(program, report)
    except BaseException:
        tracker.end_parent(KILLED)
        raise
    tracker.client.set_tag(parent, rec.TAG_FAILED_TRAININGS, str(failed))
    tracker.end_parent(FINISHED if not failed else FAILED)
    return AblationOutcome(parent, variants, R, len(todo), failed, base_source, failures)


def ablation_members(members, exp: Experiment) -> tuple[int, str]:
    """`--members` of an ablation: (trainings per program at most, the rule in words; "" for an explicit count).
    `auto`: stacked programs of up to `AUTO_STACKED` on TensorFlow (the stacked engine), else one at a time; an
    explicit N: branches of N on TensorFlow. Elsewhere a grouped member's batches are not its lone training's
    (`training.group`), and `--reproduce` retrains alone: one at a time there, as the sweep does."""
    from .. import runtime as rt

    if members == AUTO:
        alone = one_per_program(exp)
        if alone:
            return 1, alone
        if rt.backend() != "tensorflow":
            return 1, f"one per program: on {rt.backend()} a grouped member's batches are not its lone training's"
        if exp.train.mixed_precision:
            return 1, "one per program: the stacked engine computes in float32 (train.mixed_precision is on)"
        return AUTO_STACKED, (f"stacked programs of up to {AUTO_STACKED} trainings of one network shape, about 3x "
                              "less CPU per training than one at a time, within rounding of it, reproduced exactly; "
                              "what cannot stack as branches of a variant's seeds")
    n = int(members)
    if n > 1 and rt.backend() != "tensorflow":
        return 1, f"one per program: on {rt.backend()} a grouped member's batches are not its lone training's"
    return n, ""


@dataclass(frozen=True)
class _Training:
    """One (variant, seed) training still to do: the first variant of its key, the names of every variant that
    shares it, its seeds, and whether it is the plain network's (whose affinity is measured)."""

    variant: Variant
    names: str
    seeds: RepeatSeeds
    affinity: bool


ALONE, BRANCHES = "alone", "branches"  # a program's engine: `train_repeat`, `training.group`; or stacked.ENGINE


def plan_programs(todo: Sequence[_Training], trainer: "_VariantTrainer", per_program: int, auto: bool,
                  repeats: int) -> list[tuple[str, list[_Training]]]:
    """The trainings to do as programs, (engine, trainings) in the order they first appear: one at a time for
    `per_program` 1; else, with `auto`, the trainings `repeat.group_engine` lets stack in stacked programs of up
    to `per_program` (those that stack together: one network shape, the same image counts), and the others as
    branches of up to `repeats`; without `auto`, branches of up to `per_program`. A program holds at most as
    many members as `cotrain.PROGRAM_DATA_BYTES` of their data copies allow; a program of one trains alone."""
    from ..training import group, stacked

    if per_program <= 1:
        return [(ALONE, [t]) for t in todo]
    exp = trainer.exp
    programs: list[tuple[str, list[_Training], list]] = []
    for t in todo:
        data = trainer.data(t.seeds)
        member = group.Member(t.variant.config, data, t.seeds)
        engine = BRANCHES
        if auto:
            engine, _ = group_engine(t.variant.config, [data], exp.train, [t.seeds], exp.model, "auto")
        limit = per_program if engine == stacked.ENGINE or not auto else repeats
        fits = stacked.stackable if engine == stacked.ENGINE else group.groupable
        nbytes = sum(int(getattr(a, "nbytes", 0)) for a in (data.x_train, data.y_train, data.x_val, data.y_val))
        limit = max(1, min(limit, PROGRAM_DATA_BYTES // max(nbytes, 1)))
        for chosen, trainings, members in programs:
            if chosen == engine and len(members) < limit and not fits([*members, member], exp.train, exp.model):
                trainings.append(t)
                members.append(member)
                break
        else:
            programs.append((engine, [t], [member]))
    return [(engine if len(trainings) > 1 else ALONE, trainings) for engine, trainings, _ in programs]


def describe_plan(programs: Sequence[tuple[str, Sequence]]) -> str:
    """The programs in words, e.g. `1 stacked program of 24, 2 trained alone`."""
    from ..training import stacked

    parts = []
    for engine, what in ((stacked.ENGINE, "stacked"), (BRANCHES, "branches")):
        sizes = [len(ts) for e, ts in programs if e == engine]
        if sizes:
            parts.append(f"{len(sizes)} {what} program{'s' if len(sizes) > 1 else ''} of "
                         + "/".join(str(n) for n in sizes))
    alone = sum(1 for e, _ in programs if e == ALONE)
    if alone:
        parts.append(f"{alone} trained alone")
    return ", ".join(parts)


def _end_with(run: TrainingRun, exc: BaseException) -> None:
    """End an open member run as `TrainingRun` ends one whose training raised `exc`: FAILED with its reason and
    traceback, KILLED for Ctrl-C and SIGTERM (left RUNNING for a tracking server that stopped answering)."""
    try:
        with run:
            raise exc
    except BaseException as e:  # noqa: BLE001 - `exc` itself, re-raised by the block; anything else is new
        if e is not exc:
            raise


@dataclass(frozen=True)
class _VariantTrainer:
    """Trains (variant, seed) trainings, each into its own nested MLflow run (`TrainingRun`: one failure policy
    with the sweep's trials), one program at a time; what every training of one ablation shares."""

    tracker: Tracker
    exp: Experiment
    dataset: Dataset
    aid: str  # the ablation's id (tag `ablation_id`)
    env: RunEnv
    affinity_augs: Mapping  # the augmentations whose affinity the plain network's trainings measure

    def data(self, s: RepeatSeeds) -> Dataset:
        """Fresh splits as well as fresh seeds: the base was chosen on the sweep's replicates (their splits
        included)."""
        return replicate_data(self.dataset, self.exp, ablation_index(s.repeat))

    def _open(self, t: _Training) -> TrainingRun:
        """The training's nested run, started (RUNNING)."""
        exp, v, s = self.exp, t.variant, t.seeds
        params = {**v.config.flat(), "seed": exp.seed, "repeat": s.repeat, **s.as_param(),
                  **split_param(self.dataset, exp, ablation_index(s.repeat), s.repeat)}
        tags = {rec.TAG_KIND: KIND_RUN, rec.TAG_ABLATION_ID: self.aid, "variant": v.name, rec.TAG_VARIANTS: t.names,
                "variant_kind": v.kind, rec.TAG_VARIANT_KEY: v.key, rec.TAG_SEED_INDEX: s.repeat,
                **rec.env_tags(self.env)}
        return TrainingRun(self.tracker, f"{v.name} r{s.repeat}", params, tags, f"{v.name} r{s.repeat}")

    def train_program(self, program: tuple[str, Sequence[_Training]],
                      report: Callable[[_Training, bool, str], None]) -> None:
        """Train one program's trainings; `report(training, trained, the line to print)` as each run ends. Every run
        is opened before the program starts; a failure of the program fails each of its runs with the reason (a
        training whose augmentation layers cannot be built fails alone, before the program), and the ablation goes
        on; Ctrl-C, SIGTERM (also raised by `report`) and a tracking server that stopped answering end every run
        still open, then propagate."""
        from ..training import group
        from .objective import interrupt_check

        engine, trainings = program
        opened: list[TrainingRun] = []
        try:
            for t in trainings:
                opened.append(self._open(t))
            runtime.freeze_long_lived_objects()
            ready = []
            for t, run in zip(trainings, list(opened)):
                try:
                    if engine != ALONE:  # what each member's own augmentation layers need, built alone first
                        group.placement_layers(t.variant.config.enabled, list(t.variant.config.enabled), t.seeds.aug)
                    ready.append((t, run))
                except Exception as e:  # noqa: BLE001 - this training fails alone; the program trains the others
                    opened.remove(run)
                    _end_with(run, e)
                    report(t, False, f"FAILED ({failure_reason(e)})")
            if not ready:
                return
            try:
                outcomes = self._train(engine, ready, [[interrupt_check()] for _ in ready])
            except TrackingUnavailable:
                raise
            except Exception as e:  # noqa: BLE001 - recorded in each member's run; the ablation goes on
                for t, run in ready:
                    opened.remove(run)
                    _end_with(run, e)
                    report(t, False, f"FAILED ({failure_reason(e)})")
                return
            for (t, run), done in zip(ready, outcomes):
                opened.remove(run)
                report(t, *self._finish(t, run, done, len(ready)))
        except BaseException as e:  # Ctrl-C, SIGTERM, the tracking server gone: no run is left RUNNING by them
            for run in opened:
                _end_with(run, e)
            raise

    def _train(self, engine: str, ready: Sequence[tuple[_Training, TrainingRun]],
               live: Sequence[Sequence]) -> list[RepeatOutcome]:
        """Train the program: alone (`train_repeat`) or as one program of branches or stacked members, each with
        its own run's epoch logger (and `live`) and the non-finite stop (its own: a diverged member ends alone)."""
        from ..training import group
        from ..training.checks import stop_on_non_finite

        exp = self.exp
        loggers = [self.tracker.epoch_logger(run.run_id, t.seeds.repeat) for t, run in ready]
        if engine == ALONE:
            (t, _), = ready
            return [train_repeat(t.variant.config, self.data(t.seeds), exp.train, t.seeds,
                                 [loggers[0], *live[0]], model=exp.model)]
        members = [group.Member(t.variant.config, self.data(t.seeds), t.seeds, [stop_on_non_finite(), logger, *cbs])
                   for (t, _), logger, cbs in zip(ready, loggers, live)]
        return train_members(members, exp.train, exp.model, engine)

    def _finish(self, t: _Training, run: TrainingRun, done: RepeatOutcome, size: int) -> tuple[bool, str]:
        """Summarise, evaluate and end one trained member's run; (trained, the line to print). A failure here
        fails this run only (Ctrl-C, SIGTERM and a tracking server that stopped answering are raised)."""
        try:
            with run:
                dataset = self.data(t.seeds)
                run.histories.append(done.history)
                summary = done.check(chance_loss(dataset.num_classes))
                run.metrics.update({
                    "best_val_loss": summary["best_val_loss"],
                    repeat_metric("best_val_loss", t.seeds.repeat): summary["best_val_loss"],
                    "final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
                    "gap": summary["gap"], "best_epoch": summary["best_epoch"]})
                if "best_val_accuracy" in summary:
                    run.metrics["best_val_accuracy"] = summary["best_val_accuracy"]
                self._evaluate(run, done, t.seeds, t.affinity, dataset)
                done.model = None
                run.images = preview_images(t.variant.config, dataset, t.seeds.aug)
                run.tags["aug_placement"] = done.placement
                run.tags["members"] = size
                if done.engine != "keras":  # `--reproduce` retrains through the engine that computed it
                    run.tags[TAG_ENGINE] = done.engine
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
