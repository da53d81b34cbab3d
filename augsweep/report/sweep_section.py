"""The sweep's part of the report: which augmentations changed validation loss across all trials.

`sweep_part` puts the jobs together: loading from the stores (`sweep_load`, the only one that touches Optuna
and MLflow), the pure analysis (`sweep_analysis`, statistics in `stats` and `inference`), the prose
(`sweep_words`) and the figures (`sweep_figures`, drawn by `plots`). Output is byte-identical when regenerated
from the same stores: no wall-clock times, fixed float formats, sorted rows, deterministic PNGs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..experiment.schema import ConfigError, Experiment
from ..stores import records as rec
from ..stores.records import StudyRecord
from ..stores.study import Stores
from ..stores.tracking import client_for
from . import budget as budget_mod
from .render import Section
from .sweep_analysis import analyse
from .sweep_figures import sweep_figures
from .sweep_load import importance, load_curves, load_parent, missing_curves, tidy_table, trials_frame
from .sweep_words import build_sections


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def sweep_part(exp: Experiment, stores: Stores, out_dir: Path, study, ablation_too: bool, client=None,
               alpha: float = 0.05):
    """Sections, effects rows and the analysis of the sweep (None when it has nothing to report and an
    ablation does). `client`: the report's one `MlflowClient` (made here when not given); `alpha`: the
    sweep's share of the report's one alpha."""
    stored = StudyRecord.from_study(study)
    trials = trials_frame(study)
    table = tidy_table(study, exp.search_space.augmentation_names)
    client = client or client_for(stores.tracking_uri)
    tags, versions, params = load_parent(client, stores.tracking_uri, stored.parent_run_id)
    try:
        analysis = analyse(table, trials, exp, stored.design, alpha=alpha, chance=rec.chance_of(params),
                           num_classes=int(params[rec.PARAM_CLASSES]) if str(params.get(rec.PARAM_CLASSES, '')).isdigit() else None)
    except ConfigError as e:
        if ablation_too:
            return [Section("Sweep: effects across all trials", [f"Not estimated: {e}"])], None, None
        raise
    curves = load_curves(client, stores.tracking_uri, exp.name, trials, exp.search_space.augmentation_names)
    missing = missing_curves(trials, curves)
    if missing:
        analysis.warnings.append(
            f"{len(missing)} complete trial(s) have no curves in MLflow ({', '.join(f't{n:02d}' for n in missing[:10])}"
            f"{', …' if len(missing) > 10 else ''}): their results count in the effects, but their curves are "
            "missing from the figures (a run written by an older version, or an artifact store that lost them).")
    if len(curves) and analysis.table is not None and len(analysis.table):
        analysis.by_budget, analysis.moving = budget_mod.analyse_budget(
            curves, analysis.table, analysis.full, analysis.augmentations, exp.train.epochs, analysis.rule)
    figures = sweep_figures(exp, analysis, trials, curves, out_dir)

    provenance = {
        "experiment_file": exp.path,
        "experiment_file_sha256": file_sha256(exp.path),
        "resolved_experiment_sha256": exp.sha256(),
        "study": stores.study_name,
        "git_commit": tags.get(rec.TAG_GIT_COMMIT, "unknown"),
        "device": tags.get(rec.TAG_DEVICE, "unknown"),
        "backend": tags.get(rec.TAG_BACKEND, "unknown"),
        "dataset_fingerprint": "unknown" if stored.dataset_fingerprint is None else stored.dataset_fingerprint,
        "package_versions": versions,
        "rerun_sweep": stores.command("sweep.py", exp),
        "rerun_report": stores.command("report.py", exp),
    }
    sections = build_sections(exp, analysis, trials, curves, importance(study), provenance, figures,
                              str(stores.mlruns), lambda script, *extra: stores.command(script, exp, *extra))
    if stored.stopped:
        sections[0].blocks.insert(1, f"The sweep stopped: {stored.stopped}.")
    if ablation_too:  # the ablation's paired verdicts are the answer; the sweep's become the wider view
        sections[0].title = "Sweep: effects across all trials"
    return sections, analysis.effects, analysis
