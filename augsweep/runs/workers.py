"""`sweep.py EXPERIMENT --workers N`: N processes on one study, one GPU each when there are several.

The launcher validates the data and opens the study and the parent MLflow run (so bad input
still exits 2 before anything starts, and the workers find one parent run), then starts N
workers with multiprocessing's `spawn` (a fresh interpreter each: TensorFlow is never forked).
Each worker is an ordinary `run_sweep` on the same stores, sharing the launcher's `SweepSession`
(study and parent run); the study's start lock (`stores.locks`) keeps the total at `trials` finished trials.
The launcher itself never imports TensorFlow, so it holds no GPU memory; each worker sets up its own process
(`runtime.setup`) and tags the parent run with it.

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
from ..runtime import usable_cores  # noqa: F401 - re-exported: `--workers auto` counts these
from ..stores import records as rec
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


AUTO = "auto"
GIB_PER_TRAINING = 2.0  # GPU memory one small convnet's worker is given by `--workers auto` (TF grows into it)


def gpu_free_gib(gpus: list[str]) -> list[float]:
    """Free memory (GiB) of each visible GPU by `nvidia-smi`, in the order of `gpus`; [] if it cannot tell."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,memory.free", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    free = {}
    for line in out.stdout.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[1].replace(".", "", 1).isdigit():
            free[parts[0]] = float(parts[1]) / 1024
    return [free[g] for g in gpus if g in free] if out.returncode == 0 else []


def full_rounds(n: int, block: int, limit: int) -> int:
    """The fewest workers >= `n` (and <= `limit`) that divide `block`, so each round of a block is full; `n` if
    none does."""
    return next((m for m in range(n, min(block, limit) + 1) if block % m == 0), n)


def auto_workers(cap: int, cores: int | None = None, gpus: list[str] | None = None,
                 free_gib: list[float] | None = None, ram_gib: float | None = None,
                 block: int | None = None) -> tuple[int, str]:
    """`--workers auto`: (how many workers, the rule in words).

    On CPU, one worker per usable core plus one: one small training cannot keep two cores busy, independent
    trainings can, and a worker waits (on the shared stores, its input pipeline) part of its time, which the
    extra worker fills. With a factorial design (`block`: its points, run before the next block's look), that
    count is raised to the next divisor of the block, at most twice the cores: otherwise a block's last round
    leaves cores idle (the default's 16 points on 3 workers left one training alone for ~25 s of each ~250 s
    block on 2 cores; 4 workers run 4 full rounds). With GPUs, as many per GPU as its free memory holds at
    `GIB_PER_TRAINING` each, at most one per core in total (each worker needs a core to feed its GPU).
    Never more than the memory holds at `runtime.RAM_GIB_PER_PROCESS` each, nor than `cap` (the trials one block, or
    the budget, can run at once); never fewer than one."""
    cores = usable_cores() if cores is None else cores
    gpus = visible_gpus() if gpus is None else gpus
    if gpus:
        free = gpu_free_gib(gpus) if free_gib is None else free_gib
        per_gpu = [max(1, int(f // GIB_PER_TRAINING)) for f in free] or [1] * len(gpus)
        n = min(sum(per_gpu), cores)
        rule = (f"{len(gpus)} GPU(s), up to {GIB_PER_TRAINING:g} GiB of free memory per training, at most one "
                f"per core ({cores})")
    else:
        n = cores + 1 if cores > 1 else 1
        rule = f"one per CPU core plus one ({cores} cores)"
        full = full_rounds(n, block, 2 * cores) if block and cores > 1 else n
        if full != n:
            n = full
            rule += f", raised to {n} so that each round of a {block}-point block is full"
    ram = runtime.available_memory_gib() if ram_gib is None else ram_gib
    if ram is not None and n > max(1, int(ram // runtime.RAM_GIB_PER_PROCESS)):
        n = max(1, int(ram // runtime.RAM_GIB_PER_PROCESS))
        rule += f", at most {n} in {ram:.0f} GiB of available memory"
    if n > cap:
        n = cap
        rule += f", at most the {cap} trials that can run at once"
    return max(1, n), rule


def parallel_cap(exp: Experiment, trials: int | None) -> int:
    """The most trials that can run at once: one block of a factorial design (the next waits for its
    look), else the budget."""
    if exp.sampler == "factorial":
        from ..experiment import design

        return design.block_size(exp.search_space, design.plan_for(exp.search_space, exp.trials,
                                                                   sequential=exp.stop == "decided"))
    return budget_of(exp, trials)


def resolve_workers(workers, exp: Experiment, trials: int | None) -> tuple[int, str]:
    """`--workers` / the API's `workers`: (count, the rule in words; "" for an explicit count)."""
    if workers != AUTO:
        return int(workers), ""
    cap = parallel_cap(exp, trials)
    return auto_workers(cap, block=cap if exp.sampler == "factorial" else None)


def gpu_assignments(workers: int, gpus: list[str]) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker: one GPU each (round-robin when workers outnumber
    GPUs); None everywhere with fewer than two GPUs (the environment is left alone)."""
    if len(gpus) < 2:
        return [None] * workers
    return [gpus[i % len(gpus)] for i in range(workers)]


def _worker_entry(experiment_path: str, stores: Stores, trials: int | None, worker: tuple[int, int],
                  cuda: str | None, members: int | str = 1) -> None:
    """A worker process: the same sweep as `sweep.py`, its lines prefixed with `[wN]`."""
    os.setpgid(0, 0)  # out of the terminal's process group: the launcher forwards signals once
    if cuda is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = cuda  # before TensorFlow is imported
    # JAX takes 75% of a GPU's memory at start; workers sharing a GPU allocate as they need instead.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    runtime.quiet_backends()
    index = worker[0]

    def main():
        from ..experiment.load import load_experiment
        from .sweep import run_sweep

        def echo(line: str) -> None:
            print(f"[w{index}] {line}", flush=True)

        try:
            exp = load_experiment(experiment_path)
            env = runtime.setup(exp.train.deterministic, exp.train.mixed_precision)  # this process trains
            run_sweep(exp, stores, trials, worker=worker, echo=echo, env=env, members=members)
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
                echo: Callable[[str], None] = print, rule: str = "", members: int | str = 1):
    """Run the sweep in `workers` processes on one study; returns the `SweepOutcome`. `rule`: why this many
    (`auto_workers`), shown and tagged. The parent run's device, precision and determinism tags are set by
    the workers themselves, once they know them (the launcher never imports TensorFlow). `members`: seed
    replicates per program in each worker (`runs.members`)."""
    import multiprocessing

    from .members import describe, resolve_members

    budget = budget_of(exp, trials)
    dataset = prepare(exp, stores, echo)  # before any worker
    cuda = gpu_assignments(workers, visible_gpus())
    where = f"GPUs {', '.join(c for c in cuda)}" if cuda[0] is not None else "the default device each"
    how = f"{workers} workers on {where}" + (f" (--workers auto: {rule})" if rule else "")
    how += f"; {describe(*resolve_members(members, exp), exp.repeats)}"
    with SweepSession(exp, stores, dataset, budget, echo, env=None) as session:
        session.tracker.tag_parent({"workers": workers, "workers_rule": rule or "--workers N"})
        echo(session.header(how))
        ctx = multiprocessing.get_context("spawn")
        procs = [ctx.Process(target=_worker_entry, args=(exp.path, stores, trials, (i, workers), cuda[i], members),
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
        # `stop: decided` may end the study before its budget (decided, or a network that did not learn)
        if finished < session.budget and rec.ATTR_STOPPED not in session.study.user_attrs:
            bad = next((c for c in codes if c), 1)
            print(f"error: {finished}/{session.budget} trials finished; rerun the same command to resume",
                  file=sys.stderr)
            raise SystemExit(bad if bad > 0 else 1)  # the session ends the parent run KILLED
        session.finish()
        return session.outcome(ran_now=finished - session.already)
