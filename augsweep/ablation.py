"""Paired-seed ablation around one base configuration, and `--reproduce` of any logged training.

Variants (each trained with the same R seeds as every other variant and as the sweep's repeats):
the base; the base minus each of its augmentations (leave-one-out); no augmentation; no
augmentation plus each augmentation alone (add-one-in, over the base's augmentations and the rest
of the search space at their midpoints); and two baselines from the literature on the base's
network, RandAugment and TrivialAugment-style. Variants with identical configurations (the base
minus its only augmentation is `none`) share one set of trainings.

MLflow is the ablation's store: one parent run (tag `kind=ablation`, `ablation_id` = hash of the
experiment, the base and R) and one nested run per configuration x seed. Rerunning continues:
finished runs are kept, runs left RUNNING by a killed process are marked KILLED and retrained.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import yaml

from . import augment, evaluate, plots, runtime, train
from .config import Choice, ConfigError, Experiment, FloatRange, IntRange
from .data import Dataset, load_dataset
from .model import accuracy_name
from .objective import NonFiniteLoss, failure_reason, first_non_finite_epoch, stop_on_non_finite, summarize_repeat
from .policies import POLICIES
from .seeding import RepeatSeeds, enable_determinism, repeat_seeds
from .space import TrialConfig

KIND_PARENT, KIND_RUN = "ablation", "ablation-run"
LEAVE_ONE_OUT, ADD_ONE_IN = "leave-one-out", "add-one-in"
SPEC_ARTIFACT = "ablation.json"


@dataclass(frozen=True)
class Variant:
    """One configuration of the ablation: its name, what kind of change it is, and what it trains."""

    name: str  # base | base-flip | none | none+flip | randaugment | trivialaugment
    kind: str  # base | leave-one-out | none | add-one-in | baseline
    augmentation: str | None
    config: TrialConfig

    @property
    def key(self) -> str:
        """Identity of what is trained: variants with equal keys share their trainings."""
        return config_key(self.config)


def config_key(config: TrialConfig) -> str:
    """Short stable hash of a configuration (augmentations in a canonical order)."""
    flat = config.flat(sorted(config.enabled))
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _midpoint(param) -> Any:
    return param.midpoint() if isinstance(param, (IntRange, FloatRange, Choice)) else param


def candidates(base: TrialConfig, exp: Experiment) -> list[tuple[str, tuple]]:
    """Augmentations to add one at a time: the base's (at its magnitudes), then the search space's others
    (at their midpoints). The literature's policies are baselines, not candidates."""
    out = [(name, params) for name, params in base.augmentations if name not in POLICIES]
    have = {name for name, _ in out}
    for name, params in exp.search_space.augmentations:
        if name not in have and name not in POLICIES:
            out.append((name, tuple((p, _midpoint(v)) for p, v in params)))
    return out


def _with_augs(base: TrialConfig, augs) -> TrialConfig:
    return TrialConfig(base.depth, base.filters, base.dense_units, base.learning_rate, tuple(augs))


def build_variants(base: TrialConfig, extra: Sequence[tuple[str, tuple]], baselines: bool = True) -> list[Variant]:
    """All variants of an ablation around `base` (pure; the order is the order they train in)."""
    out = [Variant("base", "base", None, base)]
    for name, _ in base.augmentations:
        rest = [(n, p) for n, p in base.augmentations if n != name]
        out.append(Variant(f"base-{name}", LEAVE_ONE_OUT, name, _with_augs(base, rest)))
    out.append(Variant("none", "none", None, _with_augs(base, [])))
    for name, params in extra:
        out.append(Variant(f"none+{name}", ADD_ONE_IN, name, _with_augs(base, [(name, params)])))
    if baselines:
        out.append(Variant("randaugment", "baseline", None,
                           _with_augs(base, [("randaugment", (("factor", 0.5),))])))
        out.append(Variant("trivialaugment", "baseline", None, _with_augs(base, [("trivialaugment", ())])))
    return out


def comparison_table(variants: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per augmentation, the paired comparisons the variants afford (`name`, `kind`, `augmentation` each):
    leave-one-out = base vs base without it; add-one-in = none + it vs none."""
    rows = []
    for v in variants:
        if v["kind"] == LEAVE_ONE_OUT:
            rows.append(dict(augmentation=v["augmentation"], comparison=LEAVE_ONE_OUT, with_variant="base",
                             without_variant=v["name"]))
        elif v["kind"] == ADD_ONE_IN:
            rows.append(dict(augmentation=v["augmentation"], comparison=ADD_ONE_IN, with_variant=v["name"],
                             without_variant="none"))
    return pd.DataFrame(rows, columns=["augmentation", "comparison", "with_variant", "without_variant"])


def comparisons(variants: Sequence[Variant]) -> pd.DataFrame:
    """`comparison_table` of `Variant`s."""
    return comparison_table([{"name": v.name, "kind": v.kind, "augmentation": v.augmentation} for v in variants])


def base_from_file(exp: Experiment) -> TrialConfig:
    """`ablation.base` as a configuration (unset widths and learning rate from the search space/train)."""
    b = exp.ablation.base
    sp = exp.search_space
    lr = b.learning_rate if b.learning_rate is not None else (
        exp.train.learning_rate if sp.learning_rate is None else float(_midpoint(sp.learning_rate)))
    return TrialConfig(
        depth=b.depth,
        filters=b.filters if b.filters is not None else int(_midpoint(sp.filters)),
        dense_units=b.dense_units if b.dense_units is not None else int(_midpoint(sp.dense_units)),
        learning_rate=float(lr),
        augmentations=b.augmentations,
    )


def _sqlite_missing(url: str) -> bool:
    return url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists()


def load_study_readonly(storage_url: str, study_name: str):
    """The sweep's study, or None when there is none (never creates a store)."""
    import optuna

    from .sweep import make_storage

    if _sqlite_missing(storage_url):
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        return optuna.load_study(study_name=study_name, storage=make_storage(storage_url))
    except KeyError:
        return None


def base_from_sweep(exp: Experiment, storage_url: str, study_name: str) -> tuple[TrialConfig, str]:
    """The best completed trial of the experiment's sweep, and a sentence saying so."""
    import optuna

    study = load_study_readonly(storage_url, study_name)
    complete = [] if study is None else study.get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(
            f"no base configuration for the ablation: study {study_name!r} has no completed trial in "
            f"{storage_url}. Run the sweep first (make sweep) or set ablation.base in {exp.path}"
        )
    best = min(complete, key=lambda t: t.value)
    return (TrialConfig.from_flat(best.user_attrs["config"]),
            f"best completed trial t{best.number:02d} of study {study_name!r} (value {best.value:.4f})")


def ablation_id(exp: Experiment, base: TrialConfig, repeats: int) -> str:
    """What identifies an ablation: the experiment (as the sweep sees it), the base and the seeds."""
    from .sweep import identity

    text = f"{identity(exp)}|{config_key(base)}|{exp.seed}|{repeats}"
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


def run_ablation(exp: Experiment, repeats: int | None = None, mlruns: str | Path = "mlruns",
                 storage: str | None = None, tracking_uri: str | None = None, study_name: str | None = None,
                 echo: Callable[[str], None] = print) -> AblationOutcome:
    """Train every variant with the same `repeats` seeds (resuming), logged under one MLflow parent run."""
    from .sweep import resolve_stores
    from .tracking import FAILED, FINISHED, KILLED, RUNNING, Tracker

    R = repeats if repeats is not None else exp.ablation.repeats
    if R < 1:
        raise ConfigError(f"--repeats must be >= 1. Received: repeats={R}")
    # Everything that can be wrong with the input is found before any store is written.
    dataset = load_dataset(exp.dataset, exp.seed)
    for note in dataset.warnings:
        echo(f"warning: {note}")
    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)
    if exp.ablation.base is not None:
        base, base_source = base_from_file(exp), f"ablation.base in {exp.path}"
    else:
        base, base_source = base_from_sweep(exp, stores.storage_url, stores.study_name)
    extra = candidates(base, exp)
    variants = build_variants(base, extra, exp.ablation.baselines)
    aid = ablation_id(exp, base, R)
    seeds = [repeat_seeds(exp.seed, r) for r in range(R)]

    if tracking_uri is None:
        stores.mlruns.mkdir(parents=True, exist_ok=True)
    device = runtime.configure_device()
    policy = runtime.set_precision(exp.train.mixed_precision)
    tracker = Tracker(stores.tracking_uri, exp.name, stores.artifact_location)
    client = tracker.client
    found = client.search_runs(
        [tracker.experiment_id], f"tags.kind = '{KIND_PARENT}' and tags.ablation_id = '{aid}'",
        order_by=["attributes.start_time DESC"], max_results=1)
    spec = _spec(exp, base, base_source, variants, R, extra)
    parent = tracker.start_parent(
        run_name=f"ablation {base.label()} x{R}",
        tags={"kind": KIND_PARENT, "ablation_id": aid, "base": base.label(), "base_source": base_source,
              "repeats": R, "git_commit": runtime.git_commit(), "device": device, "dtype_policy": policy,
              "backend": runtime.backend(), "dataset_fingerprint": dataset.fingerprint,
              "study": stores.study_name},
        params={"dataset": exp.dataset.source, "image_size": "x".join(map(str, exp.dataset.image_size)),
                "epochs": exp.train.epochs, "batch_size": exp.train.batch_size, "repeats": R,
                "seed": exp.seed, "variants": len(variants), "base": base.label()},
        files={"experiment.yaml": yaml.safe_dump(exp.resolved(), sort_keys=False),
               "versions.yaml": yaml.safe_dump(runtime.package_versions(), sort_keys=True),
               SPEC_ARTIFACT: json.dumps(spec, indent=1, sort_keys=True)},
        resume_run_id=found[0].info.run_id if found else None,
    )

    done: set[tuple[str, int]] = set()
    for run in client.search_runs([tracker.experiment_id], f"tags.mlflow.parentRunId = '{parent}'",
                                  max_results=50_000):
        key, seed = run.data.tags.get("variant_key"), run.data.tags.get("seed_index")
        if run.info.status == FINISHED and key is not None and seed is not None:
            done.add((key, int(seed)))
        elif run.info.status == RUNNING:  # left behind by a killed process: one ablation runs at a time
            client.set_tag(run.info.run_id, "failure_reason", "interrupted (found RUNNING at resume)")
            client.set_terminated(run.info.run_id, KILLED)

    by_key: dict[str, list[Variant]] = {}
    for v in variants:
        by_key.setdefault(v.key, []).append(v)
    todo = [(vs[0], s) for vs in by_key.values() for s in seeds if (vs[0].key, s.repeat) not in done]
    total = len(by_key) * R
    echo(f"augsweep ablation: base {base.label()} ({base_source}); {len(variants)} variants "
         f"({len(by_key)} distinct) x {R} seeds on {dataset.describe()}; device {device}; "
         f"{total - len(todo)}/{total} trainings done, {len(todo)} to go")
    affinity_augs = {name: dict(params) for name, params in extra}
    failed = 0
    started_all = time.perf_counter()
    try:
        for i, (v, s) in enumerate(todo, start=1):
            names = ",".join(x.name for x in by_key[v.key])
            # `none` may share its trainings with a leave-one-out variant listed before it.
            plain = any(x.kind == "none" for x in by_key[v.key])
            ok, line = _train_variant(tracker, exp, dataset, v, names, s, aid, device,
                                      affinity_augs if plain else None)
            failed += 0 if ok else 1
            echo(f"[{total - len(todo) + i:>3}/{total}] {names:<28} r{s.repeat}  {line}"
                 f"  elapsed {time.perf_counter() - started_all:5.0f}s")
    except BaseException:
        tracker.end_parent(KILLED)
        raise
    tracker.client.set_tag(parent, "failed_trainings", failed)
    tracker.end_parent(FINISHED if not failed else FAILED)
    return AblationOutcome(parent, variants, R, len(todo), failed, base_source)


def _train_variant(tracker, exp: Experiment, dataset: Dataset, v: Variant, names: str, s: RepeatSeeds,
                   aid: str, device: str, affinity_augs: Mapping | None) -> tuple[bool, str]:
    """Train one variant with one seed into its own nested MLflow run; never raises for a failed training."""
    from .tracking import FAILED, FINISHED, KILLED, scratch_dir

    flat = v.config.flat()
    params = {**flat, "seed": exp.seed, "repeat": s.repeat, **s.as_param()}
    run_id = tracker.start_trial(
        f"{v.name} r{s.repeat}", params,
        {"kind": KIND_RUN, "ablation_id": aid, "variant": v.name, "variants": names, "variant_kind": v.kind,
         "variant_key": v.key, "seed_index": s.repeat, "device": device},
    )
    acc = accuracy_name(dataset.num_classes)
    started = time.perf_counter()
    with scratch_dir() as tmp:
        tmp = Path(tmp)
        artifacts = []
        try:
            runtime.freeze_long_lived_objects()
            result = train.run(v.config, dataset, exp.train, s,
                               callbacks=[stop_on_non_finite(), tracker.epoch_logger(run_id, s.repeat)])
            history = result.history.reset_index().assign(repeat=s.repeat)
            placement = result.placement
            by_epoch = history.set_index("epoch")
            bad = first_non_finite_epoch(by_epoch)
            if bad is not None:
                raise NonFiniteLoss(f"non-finite loss at epoch {bad} (seed {s.repeat})")
            summary = summarize_repeat(by_epoch, acc)
            metrics = {"best_val_loss": summary["best_val_loss"], f"best_val_loss/r{s.repeat}": summary["best_val_loss"],
                       "final_loss": summary["final_loss"], "final_val_loss": summary["final_val_loss"],
                       "gap": summary["gap"], "best_epoch": summary["best_epoch"]}
            if "best_val_accuracy" in summary:
                metrics["best_val_accuracy"] = summary["best_val_accuracy"]
            classes = evaluate.per_class(result.model, dataset.x_val, dataset.y_val, dataset.class_names)
            classes.to_csv(tmp / "per_class.csv", index=False)
            artifacts.append(tmp / "per_class.csv")
            for row in classes.itertuples(index=False):
                metrics[f"class_val_loss/{_metric_name(row[0])}"] = row.val_loss
                metrics[f"class_val_accuracy/{_metric_name(row[0])}"] = row.val_accuracy
            if affinity_augs:
                aff = evaluate.affinity(result.model, dataset.x_val, dataset.y_val, dataset.num_classes,
                                        affinity_augs, s.aug)
                aff.to_csv(tmp / "affinity.csv", index=False)
                artifacts.append(tmp / "affinity.csv")
                for row in aff.itertuples(index=False):
                    metrics[f"affinity/{row.augmentation}"] = row.affinity
            del result
            cols = ["repeat", "epoch", *[c for c in history.columns if c not in ("repeat", "epoch")]]
            history[cols].to_csv(tmp / "history.csv", index=False)
            artifacts.append(tmp / "history.csv")
            artifacts.append(plots.learning_curves(history, tmp / "learning_curves.png", f"{v.name} r{s.repeat}"))
            if v.config.enabled:
                images = augment.preview(v.config.enabled, s.aug, dataset.x_train[0])
                artifacts.append(plots.image_grid(images, tmp / "augmentation_preview.png"))
            metrics["trial_seconds"] = time.perf_counter() - started
            tracker.finish_trial(run_id, FINISHED, history.drop(columns="repeat"), metrics,
                                 {"state": "COMPLETE", "aug_placement": placement}, artifacts)
            return True, f"best_val_loss {summary['best_val_loss']:.4f}  {metrics['trial_seconds']:5.1f}s"
        except BaseException as e:  # noqa: BLE001 - every failure must close the MLflow run
            reason = failure_reason(e)
            status = KILLED if isinstance(e, (KeyboardInterrupt, SystemExit)) else FAILED
            try:
                tracker.finish_trial(run_id, status, None, {"trial_seconds": time.perf_counter() - started},
                                     {"state": "FAIL", "failure_reason": reason}, [],
                                     {"traceback.txt": "".join(traceback.format_exception(e))})
            except Exception:
                pass
            if status == KILLED:
                raise
            return False, f"FAILED ({reason})"


def summary_lines(outcome: AblationOutcome, exp: Experiment, mlruns: str | Path) -> list[str]:
    """End-of-ablation pointer to the report."""
    lines = [f"\nablation: {len(outcome.variants)} variants x {outcome.repeats} seeds "
             f"({outcome.trained_now} trained now, {outcome.failed} failed); MLflow parent run "
             f"{outcome.parent_run_id}"]
    lines += ["", "Look further:",
              f"  python report.py {exp.path} --mlruns {mlruns}   # paired effects, baselines, per-class, affinity",
              "  make ui                                  # the ablation's runs in the MLflow UI"]
    return lines


# ----------------------------------------------------------------------------- reproduce


def latest_ablation(client, experiment_id: str):
    """The most recent ablation parent run of an MLflow experiment, or None."""
    runs = client.search_runs([experiment_id], f"tags.kind = '{KIND_PARENT}'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def _targets(exp: Experiment, target: str, stores, client, experiment_id: str):
    """(label, config, [(seeds, logged val_loss by epoch)]) of a trial number or an ablation variant."""
    if re.fullmatch(r"t?\d+", target):
        number = int(target.lstrip("t"))
        study = load_study_readonly(stores.storage_url, stores.study_name)
        trials = [t for t in (study.get_trials(deepcopy=False) if study else []) if t.number == number]
        if not trials or "config" not in trials[0].user_attrs:
            raise ConfigError(f"--reproduce: study {stores.study_name!r} has no trial {number}. "
                              f"Received: reproduce={target!r}")
        trial = trials[0]
        run_id = trial.user_attrs.get("mlflow_run_id")
        run = client.get_run(run_id)
        config = TrialConfig.from_flat(trial.user_attrs["config"])
        out = []
        for key, text in sorted(run.data.params.items()):
            m = re.fullmatch(r"seeds_r(\d+)", key)
            if m:
                r = int(m.group(1))
                out.append((RepeatSeeds.from_param(text, r), client.get_metric_history(run_id, f"val_loss/r{r}")))
        return f"trial t{number:02d} {config.label()}", config, out
    parent = latest_ablation(client, experiment_id)
    if parent is None:
        raise ConfigError(f"--reproduce: {target!r} is not a trial number and the experiment has no ablation. "
                          f"Received: reproduce={target!r}")
    runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                              max_results=50_000)
    mine = [r for r in runs if target in r.data.tags.get("variants", "").split(",") and r.info.status == "FINISHED"]
    if not mine:
        names = sorted({n for r in runs for n in r.data.tags.get("variants", "").split(",") if n})
        raise ConfigError(f"--reproduce: no finished ablation run of variant {target!r}; variants: "
                          f"{', '.join(names) or 'none'}. Received: reproduce={target!r}")
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(Path(client.download_artifacts(parent.info.run_id, SPEC_ARTIFACT, tmp)).read_text())
    config = TrialConfig.from_flat(next(v["config"] for v in spec["variants"] if v["name"] == target))
    out = []
    for run in sorted(mine, key=lambda r: int(r.data.tags["seed_index"])):
        r = int(run.data.tags["seed_index"])
        out.append((RepeatSeeds.from_param(run.data.params[f"seeds_r{r}"], r),
                    client.get_metric_history(run.info.run_id, f"val_loss/r{r}")))
    return f"variant {target} {config.label()}", config, out


TOLERANCE = 1e-5


def reproduce(exp: Experiment, target: str, mlruns: str | Path = "mlruns", storage: str | None = None,
              tracking_uri: str | None = None, study_name: str | None = None,
              echo: Callable[[str], None] = print) -> float:
    """Retrain a logged trial (number) or ablation variant (name) with its logged seeds; print logged vs
    new per-epoch val_loss; return the largest absolute difference. Reads the stores, writes nothing."""
    from .sweep import resolve_stores
    from .tracking import client_for

    dataset = load_dataset(exp.dataset, exp.seed)
    stores = resolve_stores(exp, mlruns, storage, tracking_uri, study_name)
    if tracking_uri is None and not (Path(mlruns) / "mlflow.db").exists():
        raise ConfigError(f"--reproduce: no MLflow store under {mlruns}/. Received: mlruns={str(mlruns)!r}")
    client = client_for(stores.tracking_uri)
    mexp = client.get_experiment_by_name(exp.name)
    if mexp is None:
        raise ConfigError(f"--reproduce: MLflow has no experiment {exp.name!r} in {stores.tracking_uri}. "
                          f"Received: reproduce={target!r}")
    label, config, logged = _targets(exp, target, stores, client, mexp.experiment_id)
    deterministic = enable_determinism()
    runtime.configure_device()
    runtime.set_precision(exp.train.mixed_precision)
    echo(f"reproducing {label}: {len(logged)} seed(s) x {exp.train.epochs} epochs"
         f"{' (op determinism on)' if deterministic else ''}")
    echo(f"  {'seed':>4}  {'epoch':>5}  {'logged val_loss':>16}  {'new val_loss':>16}  {'|diff|':>9}")
    worst = 0.0
    for seeds, history in logged:
        if not history:
            echo(f"  r{seeds.repeat}: nothing logged (pruned or failed before its first epoch); skipped")
            continue
        new = train.run(config, dataset, exp.train, seeds).history["val_loss"].to_numpy(dtype=float)
        for m in sorted(history, key=lambda m: m.step):
            if m.step >= len(new):
                continue
            diff = abs(new[m.step] - m.value)
            worst = max(worst, diff) if np.isfinite(diff) else float("inf")
            echo(f"  {'r' + str(seeds.repeat):>4}  {m.step:>5}  {m.value:16.8f}  {new[m.step]:16.8f}  {diff:9.2e}")
    verdict = "match" if worst <= TOLERANCE else "DIFFER"
    echo(f"max |diff| = {worst:.3g} (tolerance {TOLERANCE:g}): {verdict}")
    return worst


def main_ablation(args) -> int:
    """Entry point behind `sweep.py EXPERIMENT --ablation [--repeats R]`."""
    from .config import load_experiment

    exp = load_experiment(args.experiment)
    outcome = run_ablation(exp, repeats=args.repeats, mlruns=args.mlruns, storage=args.storage,
                           tracking_uri=args.tracking_uri, study_name=args.study_name)
    print("\n".join(summary_lines(outcome, exp, args.mlruns)), flush=True)
    return 0


def main_reproduce(args) -> int:
    """Entry point behind `sweep.py EXPERIMENT --reproduce TRIAL|VARIANT`: exit 1 when it does not match."""
    from .config import load_experiment

    exp = load_experiment(args.experiment)
    worst = reproduce(exp, args.reproduce, mlruns=args.mlruns, storage=args.storage,
                      tracking_uri=args.tracking_uri, study_name=args.study_name)
    return 0 if worst <= TOLERANCE else 1
