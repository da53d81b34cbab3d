"""Run benchmark scripts' `--tiny` settings one after the other in this one interpreter, as `python bench/X.py
--tiny` would run each (`__main__`, its own argv, its stdout and stderr captured, its exit status kept), and add
one JSON line per script to RESULTS as soon as it ends: `{"script", "code", "stdout", "stderr", "cpu_s"}`
(`cpu_s`: CPU seconds of this process and of the processes the script started and waited for).

    python tests/bench_smoke.py RESULTS.jsonl overhead.py throughput.py ...

Each script pays for importing TensorFlow only once this way. What one script leaves behind in the process is
reset before the next: the Keras session and dtype policy, the cached compiled model (`training.reuse`), any
MLflow run left active, the working folder, the environment. Two switches stay process-wide: TensorFlow's CPU
thread pools, fixed at its first op (set here first, to what `runtime.setup` sets: `one_thread_per_op`), and its
deterministic ops, part of which stays on once turned on: the order of the scripts passed decides what each one
meets, so the scripts that turn them on (through `runtime.setup`) come after the ones that never do. The scripts of
`OWN_PROCESSES` measure only processes they start and train nothing here: a runner of only those never sets
TensorFlow's thread pools, so it never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import runpy
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What these measure is the fresh processes they start (workers, commands, report.py); their own part trains nothing.
OWN_PROCESSES = frozenset({"memory.py", "determinism.py", "startup.py", "report_scale.py"})


def reset_process_state() -> None:
    """What a script may leave set in the process, back to what a fresh interpreter has."""
    import gc

    if "keras" in sys.modules:
        import keras

        keras.config.set_dtype_policy("float32")
        keras.backend.clear_session()
    reuse = sys.modules.get("augsweep.training.reuse")
    if reuse is not None:
        reuse.clear()
    mlflow = sys.modules.get("mlflow")
    if mlflow is not None:
        while mlflow.active_run() is not None:
            mlflow.end_run()
    gc.collect()


def run_bench(name: str, *args) -> dict:
    """`python bench/NAME ARGS` in this process, from the repository root with the bench folder first on the path
    (`import _common`): its exit status, stdout and stderr, and the CPU seconds it took; the working folder, argv
    and environment put back afterwards, and the bench folder taken off the path."""
    path = ROOT / "bench" / name
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_cwd, saved_env = sys.argv, Path.cwd(), dict(os.environ)
    code = 0
    cpu = _cpu_seconds()
    try:
        sys.argv, sys.path[:0] = [str(path), *map(str, args)], [str(path.parent)]
        os.chdir(ROOT)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(str(path), run_name="__main__")
            except SystemExit as stop:  # `sys.exit(main())`, or `SystemExit("message")` on a failure
                if isinstance(stop.code, int) or stop.code is None:
                    code = stop.code or 0
                else:
                    print(stop.code, file=sys.stderr)
                    code = 1
            except Exception:  # reported as the script's own traceback, exit 1
                traceback.print_exc()
                code = 1
    finally:
        # The bench folder comes off the path; what the script put there stays, as the modules it imported stay
        # cached (`_common` puts the repository root first once, on its first import, for `import tests`).
        sys.argv = saved_argv
        sys.path.remove(str(path.parent))
        os.chdir(saved_cwd)
        for key in set(os.environ) - set(saved_env):
            del os.environ[key]
        for key, value in saved_env.items():
            if os.environ.get(key) != value:
                os.environ[key] = value
    return {"script": name, "code": code, "stdout": out.getvalue(), "stderr": err.getvalue(),
            "cpu_s": round(_cpu_seconds() - cpu, 2)}


def run_script(name: str) -> dict:
    """`python bench/NAME --tiny` in this process (`run_bench`), then what it left in the process reset."""
    try:
        return run_bench(name, "--tiny")
    finally:
        reset_process_state()


def _cpu_seconds() -> float:
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def one_thread_per_op() -> None:
    """TensorFlow's ops on one CPU thread each, set before its first op, as `runtime.setup` sets it for a sweep.

    The scripts that train through `runtime.setup` (as a sweep does) then meet the thread pools a fresh process of
    theirs would have; the others never set the pools, and only their timings (not asserted here) depend on them.
    """
    from augsweep import runtime

    if runtime.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)


def main(results: Path, scripts: list[str]) -> int:
    sys.path[0] = str(ROOT / "bench")  # `python bench/X.py` puts its folder first (`import _common`), not tests/
    if set(scripts) - OWN_PROCESSES:
        one_thread_per_op()
    for name in scripts:
        result = run_script(name)
        with results.open("a") as f:  # a file, not stdout: servers a script starts may write to inherited stdout
            f.write(json.dumps(result) + "\n")
    return 0


def read_results(results: Path) -> dict[str, dict]:
    """What `main` wrote: script -> its result."""
    lines = results.read_text().splitlines() if results.exists() else []
    return {r["script"]: r for r in map(json.loads, lines)}


def run_tiny(results: Path, scripts: list[str]) -> dict[str, dict]:
    """`scripts` run by this runner in a fresh interpreter: script -> its result. A script the runner never
    reported (it died on the way) gets the runner's own exit status and output instead."""
    from tests.helpers import run_cli

    done = run_cli("tests/bench_smoke.py", results, *scripts, timeout=1800)
    runs = read_results(results)
    for script in scripts:
        runs.setdefault(script, {"script": script, "code": f"none: the runner exited {done.returncode} first",
                                 "stdout": done.stdout[-3000:], "stderr": done.stderr})
    return runs


def assert_ran(run: dict, expected: str) -> None:
    """The script exited 0 and printed `expected` (its table line)."""
    assert run["code"] == 0, f"{run['script']} exited {run['code']}:\n{run['stderr'][-3000:]}"
    assert expected in run["stdout"], run["stdout"][-3000:]


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
