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

from . import arguments, runtime
from .serve import mlflow_ui

# A password belongs in the environment (a Kubernetes Secret, PGPASSFILE), not on a command line that `ps` shows.
ENV_STORAGE, ENV_TRACKING = "AUGSWEEP_STORAGE", "AUGSWEEP_TRACKING_URI"


class OneLineParser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2 (not the usage block)."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


SWEEP_DESCRIPTION = ("Run (or resume) an augmentation sweep: Optuna trials that train Keras convnets, logged to "
                     "MLflow. Rerunning the same command continues the study until TRIALS trials have finished in "
                     "total.")
WORKERS_HELP = (f"worker processes on the study: N (at most {arguments.WORKERS_PER_CORE} per CPU core), or auto (one "
                "per CPU core; on GPUs as many per GPU as its free memory holds, one per core at most; `make sweep` "
                "uses auto). Default 1; one GPU each when several are visible")
MEMBERS_HELP = ("trainings per compiled program: N (branches, each bit for bit its training alone; N above the "
                "repeats R also trains ceil(N/R)-1 queued design points of the trial's block, replayed when their "
                "trials run), or auto (the fastest measured: on TensorFlow a factorial block's points of one depth "
                "as one stacked program of up to 64, about 3x less CPU per training, within rounding of training "
                "alone and reproduced exactly; else a trial's repeats). Default 1 (one at a time, the reference "
                "path)")
ABLATE_MEMBERS_HELP = ("trainings per compiled program: auto (on TensorFlow the (variant, seed) trainings as stacked "
                       "programs of up to 64, about 3x less CPU per training, within rounding of one at a time and "
                       "reproduced exactly; the others as branches of a variant's seeds), or N (branches of at most "
                       "N, each bit for bit its training alone). Default 1 (one at a time, the reference path; "
                       "`make ablate` uses auto)")
# Every `sweep.py`-style namespace has every attribute, whichever verb parsed it (`_sweep` reads them all).
SWEEP_DEFAULTS = {"trials": None, "workers": "1", "members": "1", "worker": False, "repair": False,
                  "ablation": False, "reproduce": None, "repeats": None, "report": False}
REPORT_HELP = ("then write the report from the stores, as `augsweep report` would, in this process (saves starting "
               "another; what `make sweep` and `make ablate` run)")


def _experiment_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("experiment", help="experiment YAML file, e.g. experiments/default.yaml")


def _trials_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trials", help=f"total finished trials wanted, at most {arguments.MAX_TRIALS} (default: the "
                                    "file's `trials`)")


def _mlruns_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mlruns", default="mlruns", help="root of the embedded stores (default: ./mlruns)")


def sweep_parser() -> argparse.ArgumentParser:
    """`sweep.py`: one command whose modes are flags (kept working; each mode is an `augsweep` verb now)."""
    p = OneLineParser(prog="sweep.py", description=SWEEP_DESCRIPTION)
    _experiment_argument(p)
    _trials_argument(p)
    _mlruns_argument(p)
    _store_arguments(p)
    p.add_argument("--workers", default="1", help=WORKERS_HELP)
    p.add_argument("--members", default="1", help=MEMBERS_HELP)
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
    p.add_argument("--repeats", help="with --ablation: seeds per variant (default: ablation.repeats, 5)")
    return p


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


def report_parser_for(prog: str) -> argparse.ArgumentParser:
    p = report_parser()
    p.prog = prog
    return p


# The verbs of `augsweep`, with the one line `augsweep --help` shows for each.
VERBS = {
    "sweep": "run (or resume) a sweep of the experiment's augmentations",
    "report": "write the effects report from the stores (never retrains)",
    "ablate": "paired-seed ablation around the best trial (or the file's ablation.base)",
    "reproduce": "retrain a logged trial or ablation variant and compare it with the logged run",
    "repair": "fail trials of dead workers and close MLflow runs left RUNNING, without training",
    "worker": "one of many equal workers on a shared database and MLflow server",
    "ui": "the MLflow UI over the embedded stores, with links to each study's trials",
    "dashboard": "optuna-dashboard (read-only) on a storage URL",
    "cluster": "start (up) or stop (down) PostgreSQL, an MLflow server and optuna-dashboard here",
    "pretrain": "train the convnet on Fashion-MNIST classes and save its conv blocks (a pretrained base)",
}
SWEEP_VERBS = ("sweep", "ablate", "reproduce", "repair", "worker")  # verbs of `sweep.py`'s modes


def verb_parser(verb: str) -> argparse.ArgumentParser:
    """The parser of one of `augsweep`'s `SWEEP_VERBS`; its namespace has every `sweep.py` attribute."""
    descriptions = {
        "sweep": SWEEP_DESCRIPTION,
        "ablate": "Instead of sampling, ablate around a base configuration (the sweep's best trial or the file's "
                  "ablation.base): leave-one-out, add-one-in and baselines, paired seeds. Rerunning continues.",
        "reproduce": "Retrain a logged trial (number) or ablation variant (name) with its logged seeds and compare "
                     "per-epoch val_loss with the logged one (exit 1 if they differ).",
        "repair": "Without training: fail trials of dead workers (queued again once) and close MLflow runs left "
                  "RUNNING, then exit.",
        "worker": "One of many equal workers (Kubernetes Job, SLURM array, by hand) on a shared --storage database "
                  "and --tracking-uri server: take trials until the study has TRIALS finished, exit 0; no shared "
                  "filesystem needed.",
    }
    p = OneLineParser(prog=f"augsweep {verb}", description=descriptions[verb])
    p.set_defaults(**SWEEP_DEFAULTS)
    _experiment_argument(p)
    if verb == "reproduce":
        p.add_argument("reproduce", metavar="TRIAL|VARIANT", help="a trial number or an ablation variant name")
    if verb in ("sweep", "worker"):
        _trials_argument(p)
    _mlruns_argument(p)
    _store_arguments(p)
    if verb == "sweep":
        p.add_argument("--workers", default="1", help=WORKERS_HELP)
    if verb in ("sweep", "worker"):
        p.add_argument("--members", default="1", help=MEMBERS_HELP)
    if verb == "ablate":
        p.add_argument("--repeats", help="seeds per variant (default: ablation.repeats, 5)")
        p.add_argument("--members", default="1", help=ABLATE_MEMBERS_HELP)
    if verb in ("sweep", "ablate"):
        p.add_argument("--report", action="store_true", help=REPORT_HELP)
    p.set_defaults(**{"ablation": verb == "ablate", "repair": verb == "repair", "worker": verb == "worker"})
    return p


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", default=os.environ.get(ENV_STORAGE) or None,
                   help=f"Optuna storage URL, e.g. postgresql+psycopg://USER@HOST/DB (default: ${ENV_STORAGE}, "
                        "else sqlite:///MLRUNS/optuna.db)")
    p.add_argument("--tracking-uri", default=os.environ.get(ENV_TRACKING) or None,
                   help=f"MLflow tracking URI, e.g. http://HOST:5000 (default: ${ENV_TRACKING}, "
                        "else sqlite:///MLRUNS/mlflow.db)")
    p.add_argument("--study-name", help="Optuna study name (default: the experiment's `name`)")


def checked_arguments(parser: argparse.ArgumentParser, argv) -> argparse.Namespace:
    """Parse `argv` and check every value with the checks the Python API uses (`arguments`); a bad one exits 2
    with one line (`parser.error`). Counts come back as ints; paths stay as written (printed commands repeat them)."""
    args = parser.parse_args(argv)
    try:
        arguments.mlruns(args.mlruns, "--mlruns")  # kept as written: printed commands repeat it
        args.storage = arguments.url(args.storage, "--storage")
        args.tracking_uri = arguments.url(args.tracking_uri, "--tracking-uri")
        args.study_name = arguments.study_name(args.study_name, "--study-name")
        if hasattr(args, "out"):
            arguments.out(args.out, "--out")
        if hasattr(args, "trials"):
            args.trials = arguments.trials(args.trials, "--trials", text=True)
            args.repeats = arguments.repeats(args.repeats, "--repeats", text=True)
            args.workers = arguments.workers(args.workers, "--workers", text=True)
            args.members = arguments.members(getattr(args, "members", "1"), "--members", text=True)
            args.reproduce = arguments.reproduce(args.reproduce, "--reproduce")
            arguments.storage_for_workers(args.storage, args.workers, args.worker, ("--storage", "--workers"))
    except runtime.UserError as e:
        parser.error(str(e))
    return args


def _verb_arguments(args) -> dict:
    """The store arguments every verb takes, as `verbs` names them (spelled as flags in its errors)."""
    from . import verbs

    return {"mlruns": args.mlruns, "storage": args.storage, "tracking_uri": args.tracking_uri,
            "study_name": args.study_name, "names": verbs.CLI}


def _best_trials(outcome, exp, stores, mlruns) -> list[str]:
    """End-of-sweep table of the best trials and where to look next."""
    from .experiment.space import TrialConfig
    from .stores.records import CONFIG

    lines = [f"\n{outcome.finished}/{outcome.budget} trials finished ({outcome.ran_now} run now). Best distinct "
             f"configurations by their mean (the report's configurations.csv pairs them with no augmentation):"]
    lines.append(f"  {'mean':>8}  {'trials':>6}  best trial  configuration")
    for t, mean, n in outcome.best:
        cfg = TrialConfig.from_flat(t.user_attrs[CONFIG])
        mags = f"  ({cfg.parameters()})" if cfg.augmentations else ""
        lines.append(_fit(f"  {mean:8.4f}  {n:>6}  t{t.number:02d} {t.value:.4f}  {cfg.label()}{mags}"))
    links = _ui_links(stores)
    if stores.embedded_tracking:
        ui = [f"  {_make_ui(mlruns)}", f"      # MLflow UI over {mlruns}/ on {mlflow_ui.LOCAL_UI}, then:"]
    else:
        ui = [f"  MLflow server {stores.tracking_label}:"]
    lines += ["", "Look further:", *ui, *(mlflow_ui.describe(links) if links else [])]
    lines += [
        f"  {stores.command('report.py', exp, mlruns=mlruns)}",
        "      # effects, CIs and verdicts (reports/<study>/report.html)",
        f"  {stores.command('sweep.py', exp, '--ablation', mlruns=mlruns)}",
        "      # why the best trial wins (paired seeds), then the report",
    ]
    return lines


WIDTH = 99  # terminal summaries stay under 100 columns (links excepted: a URL must stay whole)


def _fit(line: str, width: int = WIDTH) -> str:
    """A table line cut to `width` columns (an ellipsis marks the cut)."""
    return line if len(line) <= width else line[:width - 1] + "…"


def _ui_links(stores):
    """The study's links into the MLflow UI (`make ui`'s port for the embedded store); None if unreadable."""
    from .serve import mlflow_ui
    from .stores.tracking import client_for

    base = mlflow_ui.LOCAL_UI if stores.embedded_tracking else stores.tracking_label
    try:
        client = client_for(stores.tracking_uri)
        experiment = client.get_experiment_by_name(stores.study_name)
        return mlflow_ui.study_links(client, experiment.experiment_id, base) if experiment else None
    except Exception:  # noqa: BLE001 - links are a convenience; the sweep's results are already stored
        return None


def _ablation_done(outcome, exp, stores, mlruns) -> list[str]:
    """End-of-ablation pointer to the report."""
    lines = [f"\nablation: {len(outcome.variants)} variants x {outcome.repeats} seeds "
             f"({outcome.trained_now} trained now, {outcome.failed} failed); MLflow parent run "
             f"{outcome.parent_run_id}"]
    lines += ["", "Look further:",
              f"  {stores.command('report.py', exp, mlruns=mlruns)}",
              "      # paired effects, baselines, per-class, affinity",
              f"  {_make_ui(mlruns)}" if stores.embedded_tracking else f"  MLflow server {stores.tracking_label}",
              "      # the ablation's runs in the MLflow UI"]
    return lines


def _make_ui(mlruns) -> str:
    """`make ui` (with MLRUNS=… when the stores are not the Makefile's default ./mlruns) from the repository root;
    elsewhere, where no Makefile is, the `augsweep ui` verb by the installed command's path."""
    import shlex

    port = mlflow_ui.LOCAL_UI.rsplit(":", 1)[-1].strip("/")
    if not runtime.in_project_venv():
        command = f"{runtime.augsweep_command()} ui --mlruns {shlex.quote(str(mlruns))}"
        return command if port == "5000" else f"{command} --port {port}"
    default = Path("mlruns").resolve()
    command = "make ui" if Path(mlruns).resolve() == default else f"make ui MLRUNS={mlruns}"
    return command if port == "5000" else f"{command} PORT={port}"  # the port the printed links name


def stopped_by_environment(error: BaseException) -> str | None:
    """'disk full' / 'database lost' when a full disk or a lost database connection caused `error`, else None."""
    found = runtime.environment_cause(error)
    return found[0] if found else None


def _mask(text: str) -> str:
    """Passwords of URLs hidden (what the one-line errors and their log files show)."""
    from .stores.urls import mask

    return mask(text)


def _sweep(args) -> int:
    """`_sweep_stores`, with a full disk or a lost database told in one line and the command that resumes."""
    try:
        return _sweep_stores(args)
    except Exception as e:  # noqa: BLE001 - only the environment's failures are caught; the rest re-raised
        found = None if isinstance(e, runtime.UserError) else runtime.environment_cause(e)
        if found is None:  # bad input keeps its own one line (exit 2); anything else gets run_main's line
            raise
        from .stores.urls import first_line, mask

        cause, said = found
        line = runtime.stopped_line(cause, mask(first_line(said, "")[:200]),
                                    mask(runtime.resume_command(f"augsweep sweep {args.experiment} ...")),
                                    runtime.log_traceback(e, _mask))
        if runtime.ENDING.acquire(timeout=10):  # not taken: the database watch has said it and is ending the process
            print(line, file=sys.stderr)
            runtime.ENDING.release()
        return 1


def _sweep_stores(args) -> int:
    from . import verbs

    if args.reproduce is not None:
        return 0 if verbs.reproduce(args.experiment, args.reproduce, **_verb_arguments(args)).ok else 1
    if args.ablation:
        exp, stores, outcome = verbs.ablate(args.experiment, repeats=args.repeats, members=args.members,
                                            **_verb_arguments(args))
        print("\n".join(_ablation_done(outcome, exp, stores, args.mlruns)), flush=True)
        if outcome.failed:  # an ablation with failed trainings is not a success, even if the rest ran
            shown = "; ".join(outcome.failures[:5]) + (f"; and {len(outcome.failures) - 5} more"
                                                       if len(outcome.failures) > 5 else "")
            print(f"error: {outcome.failed} of {outcome.trained_now} ablation trainings failed: {shown}. "
                  f"Their runs hold traceback.txt; rerun the same command to retry them", file=sys.stderr)
            return 1
        return 0
    if args.repair:
        verbs.repair(args.experiment, **_verb_arguments(args))
        return 0
    try:
        swept = verbs.sweep(args.experiment, trials=args.trials, workers=args.workers, peer=args.worker,
                            members=args.members, **_verb_arguments(args))
    except Exception as e:
        # Not imported before: bad input is refused before the heavy modules load (and then cannot be SweepAborted).
        sweeps = sys.modules.get("augsweep.runs.sweep")
        if sweeps is None or not isinstance(e, sweeps.SweepAborted):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 1
    exp, stores, outcome = swept.exp, swept.stores, swept.outcome
    print("\n".join(_best_trials(outcome, exp, stores, args.mlruns)))
    sys.stdout.flush()
    if not stores.embedded_tracking:  # a server is up: open its trials view (the embedded one needs make ui)
        links = _ui_links(stores)
        if links:
            mlflow_ui.open_in_browser(links.runs)
    return 0


def _report(args) -> int:
    from . import verbs
    from .report.write import plain_answer, terminal_table

    written = verbs.report(args.experiment, out=args.out, **_verb_arguments(args))
    out_dir, analysis = written.out_dir, written.analysis
    print(terminal_table(written.effects))
    print("\n" + plain_answer(written.answer))
    for w in analysis.warnings if analysis is not None else []:
        print(f"note: {w}")
    for w in written.published.notes if written.published is not None else ():  # why no block / no model
        print(f"note: {w}")
    print(f"\nreport: {out_dir / 'report.html'}  ({out_dir / 'report.md'}, {out_dir / 'effects.csv'})")
    for path in written.published.files if written.published is not None else ():
        print(f"block:  {path}")
    for line in written.next_steps:  # the report's next steps, as it says them
        print(line)
    return 0


def sweep_main(argv=None) -> int:
    """`sweep.py`: run or resume a sweep, or `--ablation`, `--reproduce`, `--repair`, `--worker` (each noted as
    its `augsweep` verb)."""
    # The interrupt handlers go in before anything else runs (parsing included): no window exits 0 on Ctrl-C.
    return runtime.run_main(lambda: _sweep_command(argv), scrub=_mask)


def verb_main(verb: str, argv=None) -> int:
    """`augsweep sweep|ablate|reproduce|repair|worker ARGS`."""
    return runtime.run_main(lambda: _sweep_command(argv, verb), scrub=_mask)


OLD_FLAGS = {"--ablation": "ablate", "--reproduce": "reproduce", "--repair": "repair", "--worker": "worker"}


def old_flag_note(argv) -> str | None:
    """The one line naming the verb that replaced an old `sweep.py` mode flag in `argv`, or None."""
    for word in argv:
        flag = word.split("=", 1)[0]
        if flag in OLD_FLAGS:
            return f"note: `sweep.py {flag}` is `augsweep {OLD_FLAGS[flag]}` now (see augsweep --help)"
    return None


def _sweep_command(argv, verb: str | None = None) -> int:
    if verb is None:
        note = old_flag_note(sys.argv[1:] if argv is None else argv)
        if note:
            print(note, file=sys.stderr, flush=True)
    args = sweep_arguments(argv, verb)
    runtime.quiet_backends()
    code = _sweep(args)
    if code == 0 and getattr(args, "report", False):  # `sweep.py` has no --report: its report is report.py
        sys.stdout.flush()
        code = _report(argparse.Namespace(experiment=args.experiment, out=None, mlruns=args.mlruns,
                                          storage=args.storage, tracking_uri=args.tracking_uri,
                                          study_name=args.study_name))
    return code


def sweep_arguments(argv, verb: str | None = None):
    """`sweep.py`'s arguments (or those of the `augsweep` verb `verb`) parsed and checked, each alone
    (`checked_arguments`) and together (which flags go with which); a bad one exits 2 with one line. Reads and
    writes nothing."""
    parser = sweep_parser() if verb is None else verb_parser(verb)
    args = checked_arguments(parser, argv)
    if args.repeats is not None and not args.ablation:
        parser.error("--repeats is only used with --ablation (a sweep's repeats are the file's `repeats`)")
    if args.trials is not None and (args.ablation or args.reproduce is not None):
        parser.error("--trials is only used by a sweep (an ablation trains its variants x --repeats)")
    if args.workers != 1 and (args.ablation or args.reproduce is not None):
        parser.error("--workers is only used by a sweep (an ablation trains in one process)")
    if args.members != 1 and (args.reproduce is not None or args.repair):
        parser.error("--members is only used by a sweep or an ablation (--reproduce retrains one member alone: its "
                     "numbers are the same)")
    if args.worker:
        if args.ablation or args.reproduce is not None or args.repair or args.workers != 1:
            parser.error("--worker runs one sweep process; start it N times instead of --workers N "
                         "(not with --ablation, --reproduce or --repair)")
        if not args.storage or not args.tracking_uri:
            who = "--worker" if verb is None else "a worker"
            parser.error(f"{who} needs --storage URL and --tracking-uri URI (or ${ENV_STORAGE} and "
                         f"${ENV_TRACKING}) shared by every worker; without them each worker would keep "
                         "its own local stores")
    return args


def worker_main(argv=None) -> int:
    """`augsweep-worker EXPERIMENT --storage URL --tracking-uri URI`: `augsweep worker`."""
    return verb_main("worker", argv)


def report_main(argv=None, prog: str = "report.py") -> int:
    """`report.py` (`augsweep report`): write the report of an experiment's stores."""
    return runtime.run_main(lambda: _report_command(argv, prog), scrub=_mask)


def _report_command(argv, prog: str = "report.py") -> int:
    args = checked_arguments(report_parser_for(prog), argv)
    runtime.quiet_backends()
    return _report(args)


def script(main) -> None:
    """`sweep.py`/`report.py`: exit with `main()`'s code; an interruption after it returned still exits 130."""
    import signal

    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))  # the code is decided: leave at once with it
    sys.stdout.flush()
    sys.exit(code)


def _help() -> str:
    width = max(map(len, VERBS))
    lines = ["usage: augsweep VERB [ARGS] (augsweep VERB --help for each)", "",
             "Which image augmentations help a Keras convnet: Optuna sweeps logged to MLflow, and a report of their "
             "effects.", "", "verbs:"]
    lines += [f"  {verb:<{width}}  {text}" for verb, text in VERBS.items()]
    return "\n".join(lines) + "\n"


def _delegate(verb: str, rest: list[str]) -> int:
    """`ui`, `dashboard`, `cluster`, `pretrain`: the modules' own command lines, the remaining words passed on."""
    if verb == "ui":
        from .serve import mlflow_ui as module
    elif verb == "pretrain":
        from .runs import pretrain as module
    else:
        from .serve import servers as module
        if verb == "dashboard":
            rest = ["dashboard", *rest]
        elif not rest or rest[0] not in ("up", "down") and rest[0] not in ("-h", "--help"):
            print(f"error: augsweep cluster needs up or down. Received: {rest[0] if rest else 'nothing'} "
                  "(see augsweep cluster --help)", file=sys.stderr)
            return 2
    return module.main(rest, prog="augsweep" if verb == "dashboard" else f"augsweep {verb}")


def main(argv=None) -> int:
    """`augsweep VERB ARGS` (and `python -m augsweep`): one command, a verb per task, each with its own --help."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(_help())
        return 0 if argv else 2
    verb, rest = argv[0], argv[1:]
    if verb in SWEEP_VERBS:
        return verb_main(verb, rest)
    if verb == "report":
        return report_main(rest, prog="augsweep report")
    if verb in VERBS:
        try:
            return _delegate(verb, rest)
        except SystemExit as e:  # argparse's --help and errors
            return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    print(f"error: unknown verb {verb!r}; one of {', '.join(VERBS)} (see augsweep --help)", file=sys.stderr)
    return 2
