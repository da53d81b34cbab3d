"""Argument parsing for `sweep.py` and `report.py`: no heavy imports until the arguments are valid.

Exit codes: 0 success, 1 the sweep stopped on repeated failures, 2 bad input (one line, no
traceback), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM). Interruptions fail the current trial
in both stores (SIGTERM is raised as `runtime.Terminated`, a KeyboardInterrupt, for that).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys


def _quiet_backends() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ INFO/WARNING chatter


def sweep_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweep.py",
        description="Run (or resume) an augmentation sweep: Optuna trials that train Keras convnets, "
                    "logged to MLflow. Rerunning the same command continues the study until TRIALS "
                    "trials have finished in total.",
    )
    p.add_argument("experiment", help="experiment YAML file, e.g. experiments/default.yaml")
    p.add_argument("--trials", type=int, help="total finished trials wanted (default: the file's `trials`)")
    p.add_argument("--mlruns", default="mlruns", help="root of the embedded stores (default: ./mlruns)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///MLRUNS/optuna.db)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///MLRUNS/mlflow.db)")
    p.add_argument("--study-name", help="Optuna study name (default: the experiment's `name`)")
    p.add_argument("--workers", type=_positive_int, default=1,
                   help="worker processes on the study (default 1; one GPU each when several are visible)")
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
    p = argparse.ArgumentParser(
        prog="report.py",
        description="Rank which augmentations changed validation loss, from the stores (never retrains).",
    )
    p.add_argument("experiment", help="experiment YAML file the sweep ran")
    p.add_argument("--mlruns", default="mlruns", help="root of the embedded stores (default: ./mlruns)")
    p.add_argument("--out", help="output folder (default: reports/<study>/)")
    p.add_argument("--storage", help="Optuna storage URL (default: sqlite:///MLRUNS/optuna.db)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default: sqlite:///MLRUNS/mlflow.db)")
    p.add_argument("--study-name", help="Optuna study name (default: the experiment's `name`)")
    return p


def _run(main, args) -> int:
    from .config import ConfigError
    from .runtime import interrupt_handler

    signal.signal(signal.SIGTERM, interrupt_handler)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not when SIGINT is ignored
        signal.signal(signal.SIGINT, interrupt_handler)
    try:
        return main(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        if getattr(e, "exit_code", None) == 143:
            print("terminated: the current trial was marked failed; rerun the same command to resume",
                  file=sys.stderr)
            return 143
        print("interrupted: the current trial was marked failed; rerun the same command to resume",
              file=sys.stderr)
        return 130


def sweep_main(argv=None) -> int:
    parser = sweep_parser()
    args = parser.parse_args(argv)
    if args.repeats is not None and not args.ablation:
        parser.error("--repeats is only used with --ablation (a sweep's repeats are the file's `repeats`)")
    if args.trials is not None and (args.ablation or args.reproduce):
        parser.error("--trials is only used by a sweep (an ablation trains its variants x --repeats)")
    if args.workers != 1 and (args.ablation or args.reproduce):
        parser.error("--workers is only used by a sweep (an ablation trains in one process)")
    _quiet_backends()

    def main(a):
        if a.reproduce:
            from .ablation import main_reproduce

            return main_reproduce(a)
        if a.ablation:
            from .ablation import main_ablation

            return main_ablation(a)
        from .sweep import SweepAborted, main_sweep

        try:
            return main_sweep(a)
        except SweepAborted as e:
            print(f"error: {e}", file=sys.stderr)
            return 1

    return _run(main, args)


def report_main(argv=None) -> int:
    args = report_parser().parse_args(argv)
    _quiet_backends()

    def main(a):
        from .report import main_report

        return main_report(a)

    return _run(main, args)
