"""One training run's life in MLflow, shared by the sweep's trials and the ablation's variants.

start (params, tags) -> train, collecting curves, metrics, tags and files -> end exactly once: FINISHED with
everything logged (`end`), KILLED when pruned (`end`), or, when training raises, FAILED (KILLED for Ctrl-C and
SIGTERM) with its reason, traceback and whatever it had logged so far. One failure policy for both callers:
- a tracking server that stopped answering (`TrackingUnavailable`) is not waited for again: the run stays
  RUNNING and the next resume, `--repair` or worker closes it (`recovery.close_orphan_runs`);
- if writing the failure fails too, the run is at least ended; if even that fails, it is left to the same
  clean-up; the original error always propagates;
- after an out-of-memory failure the process releases what it can before the next training.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from ..stores.records import TAG_FAILURE_REASON, TAG_STATE
from ..stores.tracking import FAILED, KILLED, Tracker, TrackingUnavailable, scratch_dir
from ..training.checks import failure_reason, release_memory
from .repeat import write_artifacts

SECONDS = "trial_seconds"  # metric: the run's wall time


class TrainingRun:
    """Context manager around one MLflow run that trains; `run_id`, a scratch folder `tmp` for its files, and
    what the caller collects while it trains: `histories` (one frame per repeat), `metrics`, `tags`,
    `artifacts` (files in `tmp`) and `images` (the preview grid). Leaving the block with an exception before
    `end` fails the run by the policy above and re-raises."""

    def __init__(self, tracker: Tracker, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
                 title: str):
        self.tracker, self.title = tracker, title
        self.run_id = tracker.start_trial(run_name, params, tags)
        self.started = time.perf_counter()
        self.histories: list[pd.DataFrame] = []
        self.metrics: dict[str, float] = {}
        self.tags: dict[str, Any] = {}
        self.artifacts: list[Path] = []
        self.images = None
        self.ended = False
        self._scratch = scratch_dir()
        self.tmp = Path()

    def __enter__(self) -> "TrainingRun":
        self.tmp = Path(self._scratch.__enter__())
        return self

    def __exit__(self, kind, exc, tb) -> bool:
        try:
            if exc is not None and not self.ended:
                self._fail(exc)
        finally:
            self._scratch.__exit__(kind, exc, tb)
        return False

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def history(self) -> pd.DataFrame | None:
        """Every repeat's curves so far, one frame (`repeat`, `epoch`, Keras's metric names)."""
        return pd.concat(self.histories, ignore_index=True) if self.histories else None

    def end(self, status: str, state: str, reason: tuple[str, str] | None = None, traceback_text: str = "") -> None:
        """Log the curves, `metrics` (+ wall time), `tags` (+ `state` and a `reason` (tag, text)), the curve
        files, the preview grid (not for a failure) and `artifacts`; end the run with `status`."""
        history = self.history()
        tags = {TAG_STATE: state, **self.tags, **(dict([reason]) if reason else {})}
        files = write_artifacts(self.tmp, history, self.title, None if state == "FAIL" else self.images)
        texts = {"traceback.txt": traceback_text} if traceback_text else {}
        self.tracker.finish_trial(self.run_id, status, history, {SECONDS: self.seconds(), **self.metrics}, tags,
                                  files + self.artifacts, texts)
        self.ended = True

    def _fail(self, exc: BaseException) -> None:
        if isinstance(exc, TrackingUnavailable):
            return  # the server already had its bounded wait: do not wait twice more to record the failure
        status = KILLED if isinstance(exc, (KeyboardInterrupt, SystemExit)) else FAILED
        reason = failure_reason(exc)
        try:
            self.end(status, "FAIL", (TAG_FAILURE_REASON, reason), "".join(traceback.format_exception(exc)))
        except Exception:  # the store itself failing must not hide the original error
            try:  # an interruption may have broken the batch above: at least end the run
                self.tracker.client.set_terminated(self.run_id, status)
            except Exception:
                pass  # left RUNNING: the next resume or --repair closes it (recovery.close_orphan_runs)
        if reason.startswith("out of memory"):
            release_memory()
