"""Per-epoch progress of a sweep on the terminal: a tqdm bar per trial (epoch i/N of every repeat,
val_loss, the sweep's ETA) on a TTY, a plain line at most every `PLAIN_EVERY` s otherwise (logs, CI, the
workers' pipes), so short trials print nothing more than their one line per trial."""

from __future__ import annotations

import sys
import time
from typing import Callable

PLAIN_EVERY = 10.0  # seconds between plain progress lines when stdout is not a terminal


def duration(seconds: float) -> str:
    """`1h02m`, `3m05s`, `12s`."""
    s = int(round(max(0.0, seconds)))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class SweepProgress:
    """Knows the sweep's budget and how long trials take; hands each trial a Keras callback."""

    def __init__(self, budget: int, finished: Callable[[], int], epochs: int, repeats: int,
                 echo: Callable[[str], None] = print, tty: bool | None = None, parallel: int = 1):
        self.budget, self.finished, self.epochs, self.repeats, self.echo = budget, finished, epochs, repeats, echo
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.parallel = max(1, parallel)  # processes sharing the budget (`--workers N`), each as fast as this one
        self.trial_seconds: list[float] = []

    def trials_after(self) -> int:
        """Trials still to start once the ones running now end: `finished` counts this process's own, so with
        N workers the others are taken to have finished as many, and N are running."""
        others = (self.parallel - 1) * len(self.trial_seconds)
        return max(0, self.budget - self.finished() - others - self.parallel)

    def eta(self, epochs_left: int, epoch_seconds: float, trials_after: int) -> float:
        """Seconds until the budget is done: this trial's remaining epochs, then the trials after it, shared by
        the `parallel` processes, at the mean duration of this process's trials (or this trial's pace before one
        has finished)."""
        per_trial = (sum(self.trial_seconds) / len(self.trial_seconds) if self.trial_seconds
                     else epoch_seconds * self.epochs * self.repeats)
        return epochs_left * epoch_seconds + -(-trials_after // self.parallel) * per_trial

    def trial(self, number: int, label: str) -> "TrialProgress":
        return TrialProgress(self, number, label)


class TrialProgress:
    """One trial's progress: `callback(repeat)` for each repeat's training, `close()` at the end."""

    def __init__(self, sweep: SweepProgress, number: int, label: str):
        self.sweep, self.number, self.label = sweep, number, label
        self.total = sweep.epochs * sweep.repeats
        self.done = 0
        self.started = time.perf_counter()
        self.last_plain = self.started
        self.bar = None
        if sweep.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=f"t{number:02d} {label}", unit="epoch", leave=False,
                            dynamic_ncols=True, file=sys.stdout)

    def epoch_end(self, repeat: int, epoch: int, val_loss: float | None) -> None:
        self.done += 1
        now = time.perf_counter()
        per_epoch = (now - self.started) / self.done
        trials_after = self.sweep.trials_after()
        eta = self.sweep.eta(self.total - self.done, per_epoch, trials_after)
        loss = f"{val_loss:.4f}" if val_loss is not None else "-"
        if self.bar is not None:
            self.bar.set_postfix_str(f"repeat {repeat} val_loss {loss}  sweep ETA {duration(eta)}", refresh=False)
            self.bar.update(1)
        elif now - self.last_plain >= PLAIN_EVERY:
            self.last_plain = now
            self.sweep.echo(f"      t{self.number:02d} repeat {repeat} epoch {epoch + 1}/{self.sweep.epochs}  "
                            f"val_loss {loss}  sweep ETA {duration(eta)}")

    def callback(self, repeat: int):
        """Keras callback feeding `epoch_end`."""
        import keras

        progress = self

        class EpochProgress(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                value = (logs or {}).get("val_loss")
                progress.epoch_end(repeat, epoch, float(value) if value is not None else None)

        return EpochProgress()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        self.sweep.trial_seconds.append(time.perf_counter() - self.started)
