"""Where results live: `Stores` (embedded under `mlruns/` or URLs), the Optuna storage, MLflow tracking,
locks and crash recovery; imports `augsweep.experiment` and `runtime` only."""

from .study import (ATTR_EXPERIMENT_HASH, ATTR_PARENT_RUN, ATTR_TRACKING_URI, Stores, count_finished, count_running,
                    identity, load_study, load_study_readonly, make_storage, resolve_stores)

__all__ = ["ATTR_EXPERIMENT_HASH", "ATTR_PARENT_RUN", "ATTR_TRACKING_URI", "Stores", "count_finished", "count_running",
           "identity", "load_study", "load_study_readonly", "make_storage", "resolve_stores"]
