"""A helper process that trains co-training programs of another network shape beside this process's own.

A stacked program holds one network shape (`training.stacked`), so a block whose design points come in two depths
is two programs; one process computes on about one core (one CPU thread per op, for determinism). On a machine
with a core to spare, the trial's own program trains here while the queued points of each other depth train as
their own program in a helper process, and their outcomes join this process's co-training cache when they arrive
(`runs.cotrain`): the block's wall time is its longest program instead of the sum of them.

The helper is set up as this process is (deterministic ops, one thread per op, the dtype policy), so each member's
numbers are what they would be in this process (tests/test_cotrain.py holds them equal). It ignores Ctrl-C: the
sweep process handles the interrupt and ends the helper; a helper whose sweep process is gone ends at its next
epoch. A job that fails, or a helper that dies, costs only time: its points are trained again when their trials
run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import deque
from dataclasses import replace
from typing import Sequence

from ..experiment.schema import Experiment
from .cotrain import CoTrainCache, Point, train_for_later

# A job's arrays travel to the helper through a pipe: programs whose data is larger train in this process.
SIDECAR_DATA_BYTES = 256 * 2 ** 20


def _serve(conn, parent: int, deterministic: bool, mixed_precision: bool, pin_threads: bool) -> None:
    """The helper's loop: set up as the sweep process, then train each job it receives and send back its
    `Trained` points (or the error's text), until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from .. import runtime

    runtime.setup(deterministic, mixed_precision, pin_threads=pin_threads)
    import keras

    class ParentGone(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if os.getppid() != parent:
                os._exit(1)  # the sweep process is gone: nothing would read what this trains

    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        points, exp, engine = job
        try:
            trained = train_for_later(points, exp, engine, watch=lambda: [ParentGone()])
            conn.send(("ok", [replace(t, beside=True) for t in trained]))
        except Exception as e:  # noqa: BLE001 - the job's points are trained again when their trials run
            conn.send(("error", runtime.one_line(f"{type(e).__name__}: {e}", 300)))


def sidecar_helps(exp: Experiment, env, members: int, engine: str, ram_gib: float | None = -1.0) -> bool:
    """Whether a helper process can shorten this sweep: a CPU (TensorFlow) with a core to spare and the memory of
    a second process (`runtime.RAM_GIB_PER_PROCESS` each; `ram_gib`: available GiB, -1 to read it), design points
    co-trained by the stacked engine (`--members auto`). It starts at its first job: a design of one depth never
    starts it."""
    from .. import runtime

    ram = runtime.available_memory_gib() if ram_gib == -1.0 else ram_gib
    # The helper can set up its thread pools only as one thread per op or TensorFlow's default (`Sidecar`): a
    # process whose pools were fixed otherwise (an earlier TensorFlow op in a notebook) trains here alone.
    return (engine == "auto" and members > exp.repeats and env.backend == "tensorflow"
            and env.training_threads in ("1", "default")
            and env.device.startswith("CPU") and runtime.usable_cores() >= 2
            and (ram is None or ram >= 2 * runtime.RAM_GIB_PER_PROCESS))


def data_bytes(points: Sequence[Point]) -> int:
    """Bytes of the replicates' arrays a job would send (each distinct dataset once)."""
    seen = {id(d): d for p in points for d in p.datasets}
    return sum(int(getattr(a, "nbytes", 0)) for d in seen.values() for a in (d.x_train, d.y_train, d.x_val, d.y_val))


class Sidecar:
    """One helper process, started at the first job, fed jobs in order; their outcomes go into `cache`."""

    def __init__(self, cache: CoTrainCache, deterministic: bool, mixed_precision: bool, pin_threads: bool = True):
        """`pin_threads`: one CPU thread per op, as this process trains (its `training_threads` tag is 1); else
        TensorFlow's default, all cores, as this one (a training's numbers depend on the thread count)."""
        self.cache = cache
        self.settings = (deterministic, mixed_precision, pin_threads)
        self.process = None
        self.conn = None
        self.jobs: deque[dict[int, tuple]] = deque()  # each job sent, oldest first: trial number -> cache key
        self.broken = ""  # why the helper is no longer used
        self.errors: list[str] = []

    def trouble(self) -> str:
        """What went wrong in the helper so far, in words ("" when nothing): its points then trained here."""
        failed = f"{len(self.errors)} job(s) failed, the last: {self.errors[-1]}" if self.errors else ""
        return "; ".join(t for t in (failed, self.broken) if t)

    def usable(self, points: Sequence[Point]) -> bool:
        return not self.broken and data_bytes(points) <= SIDECAR_DATA_BYTES

    def submit(self, points: Sequence[Point], keys: Sequence[tuple], exp: Experiment, engine: str) -> None:
        """Send queued design points (one network shape; `keys`: their `cotrain.training_key`s) to train as one
        program in the helper."""
        if self.process is None:
            ctx = multiprocessing.get_context("spawn")  # never fork a process whose TensorFlow runs threads
            self.conn, child = ctx.Pipe()
            self.process = ctx.Process(target=_serve, args=(child, os.getpid(), *self.settings), daemon=True,
                                       name="augsweep-cotrain")
            self.process.start()
            child.close()
        # The pool a replicate was drawn from stays here: the helper trains on the drawn arrays only.
        sent = [replace(p, datasets=[replace(d, pool=None) for d in p.datasets]) for p in points]
        try:
            self.conn.send((sent, exp, engine))
        except (OSError, ValueError) as e:
            self._break(f"the helper process is gone ({type(e).__name__})")
            return
        self.jobs.append({p.number: k for p, k in zip(points, keys)})
        self.cache.pending.update(p.number for p in points)

    def collect(self, wait_for: int | None = None) -> None:
        """Move the helper's finished jobs into the cache; with `wait_for`, first wait for the job holding that
        trial number, if one does."""
        while self.jobs:
            if not (wait_for is not None and any(wait_for in j for j in self.jobs)) and not self.conn.poll():
                return
            job = self.jobs.popleft()
            try:
                status, payload = self.conn.recv()
            except (EOFError, OSError):
                self.cache.pending.difference_update(job)
                self._break("the helper process ended")
                return
            self.cache.pending.difference_update(job)
            if status == "ok":
                for entry in payload:
                    self.cache.put(job[entry.number], entry)
            else:
                self.errors.append(payload)

    def _break(self, why: str) -> None:
        for job in self.jobs:
            self.cache.pending.difference_update(job)
        self.jobs.clear()
        self.broken = why
        self.close()

    def close(self) -> None:
        """End the helper (a job in flight is dropped)."""
        if self.process is not None:
            try:
                self.conn.close()
            finally:
                self.process.terminate()
                self.process.join(10)
                self.process = None
