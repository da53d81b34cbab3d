"""The report's one load step: everything a report reads from the stores (the sweep's study, trainings, curves
and parent run; the latest ablation), read once into an immutable `ReportInputs`."""

from __future__ import annotations

from ..experiment.schema import ConfigError, Experiment
from ..stores.study import Stores, load_study
from .ablation_load import load_ablation
from .inputs import ReportInputs
from .sweep_load import load_sweep


def load_report(exp: Experiment, stores: Stores, client) -> ReportInputs:
    """The sweep and/or the latest ablation of `exp` in `stores` (`client`: the report's one `MlflowClient`, None
    before a tracking store exists). A ConfigError that says what to run when there is neither."""
    ablation = load_ablation(stores.tracking_uri, exp.name, client) if client is not None else None
    study = None
    if stores.has_study_store():
        try:
            study = load_study(stores)
        except ConfigError:
            if ablation is None:
                raise
    elif ablation is None:
        raise ConfigError(f"--mlruns has no study store. Received: mlruns={str(stores.mlruns)!r} "
                          f"(expected {stores.study_db}); run `augsweep sweep` (or `augsweep ablate`) first")
    sweep = None
    if study is not None:
        from ..stores.tracking import client_for

        sweep = load_sweep(exp, stores, study, client or client_for(stores.tracking_uri))
    return ReportInputs(stores.study_name, str(stores.mlruns), stores.tracking_uri, sweep, ablation)
