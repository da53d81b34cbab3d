"""`sweep.py EXPERIMENT --workers N`: N processes on one study, one GPU each when there are several.

The launcher validates the data and opens the study and the parent MLflow run (so bad input
still exits 2 before anything starts, and the workers find one parent run), then starts N
workers with multiprocessing's `spawn` (a fresh interpreter each: TensorFlow is never forked).
Each worker is an ordinary `run_sweep` on the same stores, sharing the launcher's `SweepSession`
(study and parent run); the study's start lock (see `stores.recovery`) keeps the total at `trials` finished trials. The launcher itself never imports
TensorFlow, so it holds no GPU memory.

Signals: workers run in their own process group, so a terminal's Ctrl-C reaches only the
launcher, which forwards exactly one SIGINT (or SIGTERM) to each worker; each fails its current
trial as interrupted and exits 130 (143); the launcher then exits with the same code.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import traceback
from typing import Callable

from .. import runtime
from ..experiment.schema import Experiment
from ..stores.study import Stores, count_finished
from .sweep import SweepAborted, SweepSession, budget_of, prepare


CRASHED = 70  # a worker's exit code for an unexpected error (BSD's EX_SOFTWARE); 1 means "too many failed trials"


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without importing TensorFlow: CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and not g.strip().startswith("-")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    if out.returncode != 0:
        return []
    return [str(i) for i, _ in enumerate(line for line in out.stdout.splitlines() if line.startswith("GPU "))]


def gpu_assignments(workers: int, gpus: list[str]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker: one GPU each (round-robin when workers outnumber
    GPUs); None everywhere with fewer than two GPUs (the environment is left alone)."""
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]


def _worker_entry(experiment_path: str, stores: Stores, trials: int | None, index: int, cuda: str | None) -> None:
    """A worker process: the same sweep as `sweep.py`, its lines prefixed with `[wN]`."""
    os.setpgid(0, 0)  # out of the terminal's process group: the launcher forwards signals once
    if cuda is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda  # before TensorFlow is imported
    runtime.quiet_backends()

    def main():
        from ..experiment.load import load_experiment
        from .sweep import run_sweep

        def echo(line: str) -> None:
            print(f"[w{index}] {line}", flush=True)

        try:
            run_sweep(load_experiment(experiment_path), stores, trials, worker=index, echo=echo)
        except SweepAborted as e:
            print(f"error: [w{index}] {e}", file=sys.stderr, flush=True)
            return 1
        except Exception:  # a bug, not a bad trial: say so, and let the other workers finish the budget
            traceback.print_exc()
            return CRASHED
        return 0

    code = runtime.run_main(main)
    sys.stdout.flush()
    sys.exit(code)


def _wait(procs) -> None:
    for p in procs:
        p.join()


def run_workers(exp: Experiment, stores: Stores, workers: int, trials: int | None = None,
                echo: Callable[[str], None] = print):
    """Run the sweep in `workers` processes on one study; returns the `SweepOutcome`."""
    import multiprocessing

    budget = budget_of(exp, trials)
    dataset = prepare(exp, stores, echo)  # before any worker
    cuda = gpu_assignments(workers, visible_gpus())
    where = f"GPUs {', '.join(c for c in cuda)}" if cuda[0] is not None else "the default device each"
    with SweepSession(exp, stores, dataset, budget, echo, device=f"{workers} workers on {where}",
                      policy="") as session:
        echo(session.header(f"{workers} workers on {where}"))
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker_entry, args=(exp.path, stores, trials, i, cuda[i]),
                             name=f"augsweep-w{i}") for i in range(workers)]
        try:
            for p in procs:
                p.start()
            _wait(procs)
        except KeyboardInterrupt as e:
            sig = signal.SIGTERM if isinstance(e, runtime.Terminated) else signal.SIGINT
            for p in procs:
                if p.pid is not None and p.is_alive():
                    os.kill(p.pid, sig)
            while any(p.is_alive() for p in procs):
                try:
                    _wait(procs)
                except KeyboardInterrupt:  # a second Ctrl-C: pass it on as well
                    for p in procs:
                        if p.is_alive():
                            os.kill(p.pid, sig)
            raise  # the session ends the parent run KILLED
        codes = [p.exitcode for p in procs]
        finished = count_finished(session.study)
        if 1 in codes:
            raise session.abort(f"worker(s) {[i for i, c in enumerate(codes) if c == 1]} stopped after "
                                f"consecutive failed trials (see above); {finished}/{session.budget} trials finished")
        for i, c in enumerate(codes):
            if c:
                why = f"killed by signal {-c}" if c < 0 else f"exited with code {c}"
                echo(f"note: worker w{i} {why}")
        if finished < session.budget:
            bad = next(c for c in codes if c)
            print(f"error: {finished}/{session.budget} trials finished; rerun the same command to resume",
                  file=sys.stderr)
            raise SystemExit(bad if bad > 0 else 1)  # the session ends the parent run KILLED
        session.finish()
        return session.outcome(ran_now=finished - session.already)
