"""What a finished (or failed) repeat says about itself: divergence, summary numbers, failure reasons.

Shared by every caller that trains (sweep trials, ablation variants); no Optuna, no MLflow.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd


class NonFiniteLoss(RuntimeError):
    """Training diverged (the epoch-end non-finite check stopped it)."""


def stop_on_non_finite():
    """Keras callback: stop training at the end of an epoch whose loss or val_loss is NaN/inf.

    Checked per epoch, not per batch like Keras's `TerminateOnNaN`: a batch-end callback makes
    Keras fetch the loss after every step and turns off its asynchronous callback dispatch.
    """
    import keras

    callbacks = keras.callbacks

    class StopOnNonFinite(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            values = [(logs or {}).get(k) for k in ("loss", "val_loss")]
            if any(v is not None and not math.isfinite(float(v)) for v in values):
                self.model.stop_training = True

    return StopOnNonFinite()


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


def chance_loss(num_classes: int) -> float:
    """Cross-entropy of guessing uniformly: ln 2 for a binary head, ln K for K classes."""
    return math.log(max(int(num_classes), 2))


def diverged_summary(history: pd.DataFrame, bad_epoch: int, acc: str, chance: float) -> dict[str, float]:
    """Summary of a training that diverged at `bad_epoch`: the finite epochs before it count (the best of
    them is what early stopping would keep); with none, the outcome is `chance`, the loss of guessing."""
    before = history[history.index < bad_epoch]
    if len(before) and np.isfinite(before["val_loss"].to_numpy(dtype=float)).any():
        out = summarize_repeat(before, acc)
    else:
        out = {"best_val_loss": float(chance), "best_epoch": -1, "epochs_run": int(bad_epoch) + 1,
               "final_loss": float("nan"), "final_val_loss": float("nan"), "gap": float("nan")}
    out["epochs_run"] = int(bad_epoch) + 1
    out["diverged_epoch"] = int(bad_epoch)
    return out


def release_memory() -> None:
    """Drop the failed trial's graph and buffers (Keras session) so the next trial starts clean."""
    import gc

    import keras

    from . import reuse

    reuse.clear()
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
