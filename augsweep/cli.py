"""The command lines `sweep.py` and `report.py`: parse, load the experiment, resolve the stores once,
dispatch to the domain function, print its summary. No heavy imports until the arguments are valid,
and no domain function ever sees the argparse namespace.

Exit codes: 0 success, 1 the sweep stopped on repeated failures (or `--reproduce` differs), 2 bad
input (one line, no traceback), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Interruptions
fail the current trial in both stores (SIGTERM is raised as `runtime.Terminated`, a
KeyboardInterrupt, for that).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import runtime
from .stores import mlflow_ui

# A password belongs in the environment (a Kubernetes Secret, PGPASSFILE), not on a command line that `ps` shows.
ENV_STORAGE, ENV_TRACKING = "AUGSWEEP_STORAGE", "AUGSWEEP_TRACKING_URI"


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2 (not the usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def sweep_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="sweep.py",
        description="Run (or resume) an augmentation sweep: Optuna trials that train Keras convnets, "
                    "logged to MLflow. Rerunning the same command continues the study until TRIALS "
                    "trials have finished in total.",
    )
    p.add_argument("experiment", help="experiment YAML file, e.g. experiments/default.yaml")
    p.add_argument("--trials", type=int, help="total finished trials wanted (default: the file's `trials`)")
    p.add_argument("--mlruns", default="mlruns", help="root of the embedded stores (default: ./mlruns)")
    _store_arguments(p)
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="worker processes on the study (default 1; one GPU each when several are visible)")
    p.add_argument("--worker", action="store_true",
                   help="one of many equal workers (Kubernetes Job, SLURM array, by hand) on a shared --storage "
                        "database and --tracking-uri server: take trials until the study has TRIALS finished, "
                        "exit 0; no shared filesystem needed")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--repair", action="store_true",
                      help="without training: fail trials of dead workers (queued again once) and close "
                           "MLflow runs left RUNNING, then exit")
    mode.add_argument("--ablation", action="store_true",
                      help="instead of sampling, ablate around a base configuration (the sweep's best trial or "
                           "the file's ablation.base): leave-one-out, add-one-in and baselines, paired seeds")
    mode.add_argument("--reproduce", metavar="TRIAL|VARIANT",
                      help="retrain a logged trial (number) or ablation variant (name) with its logged seeds "
                           "and compare per-epoch val_loss with the logged one (exit 1 if they differ)")
    p.add_argument("--repeats", type=int, help="with --ablation: seeds per variant (default: ablation.repeats, 5)")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1. Received: {text!r}")
    return value


def report_parser() -> argparse.ArgumentParser:
    p = OneLineParser(
        prog="report.py",
        description="Rank which augmentations changed validation loss, from the stores (never retrains).",
    )
    p.add_argument("experiment", help="experiment YAML file the sweep ran")
    p.add_argument("--mlruns", default="mlruns", help="root of the embedded stores (default: ./mlruns)")
    p.add_argument("--out", help="output folder (default: reports/<study>/)")
    _store_arguments(p)
    return p


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=os.environ.get(ENV_STORAGE) or None,
                   help=f"Optuna storage URL, e.g. postgresql+psycopg://USER@HOST/DB (default: ${ENV_STORAGE}, "
                        "else sqlite:///MLRUNS/optuna.db)")
    p.add_argument("--tracking-uri", default=os.environ.get(ENV_TRACKING) or None,
                   help=f"MLflow tracking URI, e.g. http://HOST:5000 (default: ${ENV_TRACKING}, "
                        "else sqlite:///MLRUNS/mlflow.db)")
    p.add_argument("--study-name", type=_study_name, help="Optuna study name (default: the experiment's `name`)")


def _study_name(text: str) -> str:
    from .experiment.load import NAME_RULE, is_safe_name

    if not is_safe_name(text):
        raise argparse.ArgumentTypeError(f"{NAME_RULE}. Received: {text!r}")
    return text


def _existing_file(path: str) -> None:
    """The experiment file exists: checked before the heavy imports (TensorFlow, MLflow) load."""
    if not Path(path).is_file():
        what = "is not a file" if Path(path).exists() else "file not found"
        raise runtime.UserError(f"experiment {what}. Received: path={path!r}")


def _experiment_and_stores(args):
    _existing_file(args.experiment)
    from .experiment.load import load_experiment
    from .stores.study import resolve_stores

    exp = load_experiment(args.experiment)
    stores = resolve_stores(exp, args.mlruns, args.storage, args.tracking_uri, args.study_name)
    stores.check_servers()  # an unreachable or misspelled server: exit 2 now, nothing written
    return exp, stores


def _where(stores, mlruns) -> str:
    """The store options to repeat in a follow-up command (URLs masked)."""
    return stores.options(mlruns)


def _best_trials(outcome, exp, stores, mlruns) -> list[str]:
    """End-of-sweep table of the best trials and where to look next."""
    from .experiment.space import TrialConfig

    lines = [f"\n{outcome.finished}/{outcome.budget} trials finished ({outcome.ran_now} run now). Best distinct "
             f"configurations by their mean (the report's configurations.csv pairs them with no augmentation):"]
    lines.append(f"  {'mean':>8}  {'trials':>6}  best trial  configuration")
    for t, mean, n in outcome.best:
        cfg = TrialConfig.from_flat(t.user_attrs["config"])
        lines.append(f"  {mean:8.4f}  {n:>6}  t{t.number:02d} {t.value:.4f}  {cfg.label()}")
    where = _where(stores, mlruns)
    links = _ui_links(stores)
    if stores.embedded_tracking:
        ui = [f"  {_make_ui(mlruns):<40} # MLflow UI over {mlruns}/ on http://127.0.0.1:5000, then:"]
    else:
        ui = [f"  MLflow server {stores.tracking_label}:"]
    lines += ["", "Look further:", *ui, *(mlflow_ui.describe(links) if links else [])]
    lines += [
        f"  python report.py {exp.path} {where}   # effects, CIs and verdicts",
        f"  python sweep.py {exp.path} {where} --ablation   # why the best trial wins (paired seeds)",
    ]
    return lines


def _ui_links(stores):
    """The study's links into the MLflow UI (`make ui`'s port for the embedded store); None if unreadable."""
    from .stores import mlflow_ui
    from .stores.tracking import client_for

    base = mlflow_ui.LOCAL_UI if stores.embedded_tracking else stores.tracking_label
    try:
        client = client_for(stores.tracking_uri)
        experiment = client.get_experiment_by_name(stores.study_name)
        return mlflow_ui.study_links(client, experiment.experiment_id, base) if experiment else None
    except Exception:  # noqa: BLE001 - links are a convenience; the sweep's results are already stored
        return None


def _ablation_done(outcome, exp, mlruns) -> list[str]:
    """End-of-ablation pointer to the report."""
    lines = [f"\nablation: {len(outcome.variants)} variants x {outcome.repeats} seeds "
             f"({outcome.trained_now} trained now, {outcome.failed} failed); MLflow parent run "
             f"{outcome.parent_run_id}"]
    lines += ["", "Look further:",
              f"  python report.py {exp.path} --mlruns {mlruns}   # paired effects, baselines, per-class, affinity",
              f"  {_make_ui(mlruns):<40} # the ablation's runs in the MLflow UI"]
    return lines


def _make_ui(mlruns) -> str:
    """`make ui`, with MLRUNS=… when the stores are not the Makefile's default ./mlruns."""
    default = Path("mlruns").resolve()
    return "make ui" if Path(mlruns).resolve() == default else f"make ui MLRUNS={mlruns}"


def _sweep(args) -> int:
    exp, stores = _experiment_and_stores(args)
    if args.reproduce:
        from .runs.reproduce import reproduce

        return 0 if reproduce(exp, stores, args.reproduce).ok else 1
    if args.ablation:
        from .runs.ablation import run_ablation

        outcome = run_ablation(exp, stores, repeats=args.repeats)
        print("\n".join(_ablation_done(outcome, exp, args.mlruns)), flush=True)
        return 0
    from .runs.sweep import SweepAborted, repair, run_sweep

    if args.repair:
        repair(exp, stores)
        return 0
    try:
        if args.worker:
            outcome = run_sweep(exp, stores, trials=args.trials, peer=True)
        elif args.workers > 1:
            from .runs.workers import run_workers

            outcome = run_workers(exp, stores, args.workers, trials=args.trials)
        else:
            outcome = run_sweep(exp, stores, trials=args.trials)
    except SweepAborted as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print("\n".join(_best_trials(outcome, exp, stores, args.mlruns)))
    sys.stdout.flush()
    if not stores.embedded_tracking:  # a server is up: open its trials view (the embedded one needs make ui)
        links = _ui_links(stores)
        if links:
            mlflow_ui.open_in_browser(links.runs)
    return 0


def _report(args) -> int:
    exp, stores = _experiment_and_stores(args)
    import pandas as pd

    from .report.write import terminal_table, write_report

    out_dir, analysis = write_report(exp, stores, args.out)
    print(terminal_table(pd.read_csv(out_dir / "effects.csv")))
    for w in analysis.warnings if analysis is not None else []:
        print(f"note: {w}")
    print(f"\nreport: {out_dir / 'report.html'}  ({out_dir / 'report.md'}, {out_dir / 'effects.csv'})")
    return 0


def sweep_main(argv=None) -> int:
    """`sweep.py`: run or resume a sweep, or `--ablation`, `--reproduce`, `--repair`."""
    parser = sweep_parser()
    args = parser.parse_args(argv)
    if args.repeats is not None and not args.ablation:
        parser.error("--repeats is only used with --ablation (a sweep's repeats are the file's `repeats`)")
    if args.trials is not None and (args.ablation or args.reproduce):
        parser.error("--trials is only used by a sweep (an ablation trains its variants x --repeats)")
    if args.workers != 1 and (args.ablation or args.reproduce):
        parser.error("--workers is only used by a sweep (an ablation trains in one process)")
    if args.worker:
        if args.ablation or args.reproduce or args.repair or args.workers != 1:
            parser.error("--worker runs one sweep process; start it N times instead of --workers N "
                         "(not with --ablation, --reproduce or --repair)")
        if not args.storage or not args.tracking_uri:
            parser.error(f"--worker needs --storage URL and --tracking-uri URI (or ${ENV_STORAGE} and "
                         f"${ENV_TRACKING}) shared by every worker; without them each worker would keep "
                         "its own local stores")
    runtime.quiet_backends()
    return runtime.run_main(lambda: _sweep(args))


def worker_main(argv=None) -> int:
    """`augsweep-worker EXPERIMENT --storage URL --tracking-uri URI`: `sweep.py --worker`."""
    return sweep_main(["--worker", *(sys.argv[1:] if argv is None else argv)])


def report_main(argv=None) -> int:
    """`report.py`: write the report of an experiment's stores."""
    args = report_parser().parse_args(argv)
    runtime.quiet_backends()
    return runtime.run_main(lambda: _report(args))
