"""Where results live; imports `augsweep.experiment` and `runtime` only. One owner per job:
`records` the stored record format (every Optuna attribute and MLflow tag key, `TrialRecord`/`StudyRecord`,
the ablation's run query), `study` the `Stores`, the Optuna storage and the trainings table, `tracking`
MLflow runs, `run_files` bulk artifact reads, `locks` the study's locks, `liveness` heartbeat settings and
process identity, `recovery` dead trials and orphaned runs, `registry` the Model Registry, `urls` URL checks
and masking. Starting servers and browsers is `augsweep.serve`'s, an experiment's identity `experiment.identity`'s."""

from .study import (
    ATTR_EXPERIMENT_HASH,
    ATTR_PARENT_RUN,
    ATTR_TRACKING_URI,
    Stores,
    count_finished,
    count_running,
    load_study,
    load_study_readonly,
    make_storage,
    resolve_stores,
)

__all__ = ["ATTR_EXPERIMENT_HASH", "ATTR_PARENT_RUN", "ATTR_TRACKING_URI", "Stores", "count_finished", "count_running",
           "load_study", "load_study_readonly", "make_storage", "resolve_stores"]
