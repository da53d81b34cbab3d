"""Optuna objective: trial -> configuration -> `repeats` paired trainings -> mean best val_loss.

The only module that wires Optuna (pruning reports) and MLflow (tracking) into training, both
as Keras callbacks; `train` itself knows neither.
"""

from __future__ import annotations

import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from . import augment, plots, runtime, space, train
from .config import Experiment
from .data import Dataset
from .model import accuracy_name
from .runtime import store_write
from .seeding import repeat_seeds
from .tracking import FAILED, FINISHED, KILLED, Tracker, scratch_dir


class NonFiniteLoss(RuntimeError):
    """Training diverged (the epoch-end non-finite check stopped it)."""


def _callbacks_module():
    import keras

    return keras.callbacks


def stop_on_non_finite():
    """Keras callback: stop training at the end of an epoch whose loss or val_loss is NaN/inf.

    Checked per epoch, not per batch like Keras's `TerminateOnNaN`: a batch-end callback makes
    Keras fetch the loss after every step and turns off its asynchronous callback dispatch.
    """
    callbacks = _callbacks_module()

    class StopOnNonFinite(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = [(logs or {}).get(k) for k in ("loss", "val_loss")]
            if any(v is not None and not math.isfinite(float(v)) for v in values):
                self.model.stop_training = True

    return StopOnNonFinite()


def pruning_callback(trial, repeat: int, epochs: int):
    """Keras callback: `trial.report(val_loss, step)` each epoch, stop training when Optuna prunes.

    Steps run across repeats (`repeat * epochs + epoch`): every trial's repeat r uses the same
    seeds, so the pruner compares trials at equal steps under common random numbers. Without a
    pruner (`NopPruner`) nobody reads the values during training, so the repeat's reports are
    written when training ends rather than one storage round trip per epoch.
    """
    import optuna

    callbacks = _callbacks_module()
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
            with store_write():
                trial.report(value, repeat * epochs + epoch)
            if trial.should_prune():
                self.pruned_at = epoch
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            with store_write():
                for value, step in self.pending:
                    trial.report(value, step)
            self.pending = []

    return OptunaPruning()


def first_non_finite_epoch(history: pd.DataFrame) -> int | None:
    """First epoch whose loss or val_loss is NaN/inf, if any."""
    cols = [c for c in ("loss", "val_loss") if c in history.columns]
    bad = ~np.isfinite(history[cols].to_numpy(dtype=float)).all(axis=1)
    return int(history.index[bad][0]) if bad.any() else None


def summarize_repeat(history: pd.DataFrame, acc: str) -> dict[str, float]:
    """Per-repeat numbers the report needs (best and final values, generalization gap)."""
    val = history["val_loss"].to_numpy(dtype=float)
    finite = np.isfinite(val)
    best_epoch = int(np.nanargmin(np.where(finite, val, np.nan))) if finite.any() else -1
    last = history.iloc[-1]
    out = {
        "best_val_loss": float(val[best_epoch]) if best_epoch >= 0 else float("nan"),
        "best_epoch": best_epoch,
        "epochs_run": int(len(history)),
        "final_loss": float(last["loss"]),
        "final_val_loss": float(last["val_loss"]),
        "gap": float(last["val_loss"] - last["loss"]),
    }
    if f"val_{acc}" in history.columns:
        out["best_val_accuracy"] = float(np.nanmax(history[f"val_{acc}"].to_numpy(dtype=float)))
    return out


@dataclass
class Objective:
    """Callable for `study.optimize`: trains one configuration `repeats` times and logs it."""

    experiment: Experiment
    dataset: Dataset
    tracker: Tracker
    grid: bool = False
    device: str = "CPU"
    extra_tags: dict = field(default_factory=dict)

    def __call__(self, trial) -> float:
        import optuna

        runtime.freeze_long_lived_objects()
        exp = self.experiment
        config = space.sample(trial, exp.search_space, exp.train.learning_rate, grid=self.grid)
        flat = config.flat(exp.search_space.augmentation_names)
        trial.set_user_attr("config", flat)
        seeds = [repeat_seeds(exp.seed, r) for r in range(exp.repeats)]
        params = {**flat, "seed": exp.seed, "repeats": exp.repeats,
                  **{k: v for s in seeds for k, v in s.as_param().items()}}
        run_name = f"t{trial.number:02d} {config.label()}"
        where = train.plan_placement(config, exp.train)
        run_id = self.tracker.start_trial(
            run_name, params,
            {"trial": trial.number, "study": trial.study.study_name, "device": self.device,
             "kind": "trial", "aug_placement": where.label, "dtype_policy": runtime.dtype_policy(),
             **self.extra_tags},
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        acc = accuracy_name(self.dataset.num_classes)
        histories: list[pd.DataFrame] = []
        summaries: list[dict] = []
        started = time.perf_counter()
        self._run_tags: dict = {}
        with scratch_dir() as tmp:
            tmp = Path(tmp)
            try:
                for s in seeds:
                    prune = pruning_callback(trial, s.repeat, exp.train.epochs)
                    result = train.run(
                        config, self.dataset, exp.train, s,
                        callbacks=[stop_on_non_finite(), prune, self.tracker.epoch_logger(run_id, s.repeat)],
                    )
                    # What Keras resolved `jit_compile` to (false on CPU for "auto").
                    self._run_tags["jit_compile"] = str(bool(result.model.jit_compile)).lower()
                    h = result.history.reset_index().assign(repeat=s.repeat)
                    histories.append(h)
                    del result
                    by_epoch = h.set_index("epoch")
                    bad = first_non_finite_epoch(by_epoch)
                    if bad is not None:
                        raise NonFiniteLoss(f"non-finite loss at epoch {bad} (repeat {s.repeat})")
                    summaries.append(summarize_repeat(by_epoch, acc))
                    if prune.pruned_at is not None:
                        raise optuna.TrialPruned(f"pruned at repeat {s.repeat}, epoch {prune.pruned_at}")
                value = float(np.mean([r["best_val_loss"] for r in summaries]))
                trial.set_user_attr("repeats", summaries)
                self._finish(run_id, FINISHED, "COMPLETE", config, histories, summaries, tmp, started, value,
                             defer=True)
                return value
            except optuna.TrialPruned as e:
                trial.set_user_attr("repeats", summaries)
                self._finish(run_id, KILLED, "PRUNED", config, histories, summaries, tmp, started,
                             reason=str(e), defer=True)
                raise
            except BaseException as e:  # noqa: BLE001 - every failure must close the MLflow run
                reason = failure_reason(e)
                trial.set_user_attr("failure_reason", reason)
                trial.set_user_attr("repeats", summaries)
                tb = "".join(traceback.format_exception(e))
                status = KILLED if isinstance(e, (KeyboardInterrupt, SystemExit)) else FAILED
                try:
                    self._finish(run_id, status, "FAIL", config, histories, summaries, tmp, started,
                                 reason=reason, traceback_text=tb)
                except Exception:  # the store itself failing must not hide the original error
                    try:  # an interruption may have broken the batch above: at least end the run
                        self.tracker.client.set_terminated(run_id, status)
                    except Exception:
                        pass  # left RUNNING: the next resume or --repair closes it (recovery.close_orphan_runs)
                if reason.startswith("out of memory"):
                    release_memory()
                raise
            # No gc.collect() here: the next build's keras.backend.clear_session() runs one anyway.

    def _finish(self, run_id, status, state, config, histories, summaries, tmp: Path, started,
                value: float | None = None, reason: str = "", traceback_text: str = "",
                defer: bool = False) -> None:
        """Close the trial's MLflow run with its curves, summary metrics, tags and artifacts.

        `defer`: plots, artifact copies and the store writes run on the tracker's background
        thread (overlapping the next trial's training); failures are always finished here.
        """
        history = pd.concat(histories, ignore_index=True) if histories else None
        if history is not None and len(history):
            cols = ["repeat", "epoch", *[c for c in history.columns if c not in ("repeat", "epoch")]]
            history = history[cols]
        images = None
        if config.enabled and state != "FAIL":
            # Keras layers stay on this thread; only the PNG is written in the background.
            images = augment.preview(config.enabled, repeat_seeds(self.experiment.seed, 0).aug,
                                     self.dataset.x_train[0])
        metrics = {"trial_seconds": time.perf_counter() - started}
        if value is not None:
            metrics["best_val_loss"] = value
        for r, s in enumerate(summaries):
            metrics[f"best_val_loss/r{r}"] = s["best_val_loss"]
        tags = {"state": state, **getattr(self, "_run_tags", {})}
        if reason:
            tags["failure_reason" if state == "FAIL" else "prune_reason"] = reason
        texts = {"traceback.txt": traceback_text} if traceback_text else {}
        title = config.label()
        tracker = self.tracker

        def write(folder: Path) -> None:
            artifacts = []
            if history is not None and len(history):
                history.to_csv(folder / "history.csv", index=False)
                artifacts.append(folder / "history.csv")
                artifacts.append(plots.learning_curves(history, folder / "learning_curves.png", title))
            if images is not None:
                artifacts.append(plots.image_grid(images, folder / "augmentation_preview.png"))
            tracker.finish_trial(run_id, status, history, metrics, tags, artifacts, texts)

        if defer:
            tracker.defer(write)
        else:
            write(tmp)


def release_memory() -> None:
    """Drop the failed trial's graph and buffers (Keras session) so the next trial starts clean."""
    import keras

    import gc

    keras.backend.clear_session(free_memory=True)
    gc.collect()


def failure_reason(e: BaseException) -> str:
    """One line saying why a trial failed (divergence, out of memory, interruption, other)."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted (SIGTERM)" if getattr(e, "exit_code", None) == 143 else "interrupted (Ctrl-C)"
    if isinstance(e, SystemExit):
        return f"interrupted (exit {e.code})"
    name = type(e).__name__
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    if "ResourceExhausted" in name or "out of memory" in text.lower() or "OOM" in text:
        return f"out of memory: {text[:200]}"
    if isinstance(e, NonFiniteLoss):
        return text
    return f"{name}: {text[:300]}"
