"""The process a run happens in: exit codes and signals, device set-up, precision, and what provenance records.

Imports nothing from augsweep, so every layer below the CLI may use it.
"""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path

PACKAGES = ("augsweep", "keras", "tensorflow", "jax", "optuna", "mlflow", "pandas", "numpy",
            "scikit-learn", "scipy", "statsmodels", "matplotlib")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that the current trial is failed in Optuna and MLflow
    (Optuna fails a trial on KeyboardInterrupt but leaves it RUNNING on SystemExit)."""

    exit_code = 143


class UserError(ValueError):
    """Bad user input (a file, key, path or value): one line on stderr and exit code 2, no traceback."""


def quiet_backends() -> None:
    """Before TensorFlow is imported: no C++ INFO/WARNING chatter."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# Lines TensorFlow's C++ side writes to fd 2 while it loads and looks for a GPU, before its log level
# applies (absl logs everything until it is initialised). None is an error on a machine without a GPU;
# anything else written at that time is passed through untouched.
NATIVE_NOISE = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "rebuild TensorFlow with the appropriate compiler flags",
    "Unable to register cuDNN factory", "Unable to register cuFFT factory", "Unable to register cuBLAS factory",
    "computation placer already registered",
)


@contextlib.contextmanager
def filtered_native_stderr(noise: tuple[str, ...] = NATIVE_NOISE):
    """Capture what native code writes to fd 2 inside the block; write back every line but the known noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            kept = [line for line in tmp.read().decode(errors="replace").splitlines()
                    if line.strip() and not any(n in line for n in noise)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def run_main(main) -> int:
    """Run `main()` with the process's exit-code contract: 2 for bad input (one line), 130 Ctrl-C,
    143 SIGTERM (both fail the current trial in the stores; see `interrupt_handler`).

    Every window answers an interruption with its exit code: the handlers are installed before `main`
    parses anything, an interruption held by `store_write()` when `main` returns is raised, and the
    handlers that were there before are put back only after the exit code is decided."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, interrupt_handler)
    if saved[signal.SIGINT] is signal.default_int_handler:  # not when SIGINT is ignored
        signal.signal(signal.SIGINT, interrupt_handler)
    try:
        code = main()
        if _HOLD["pending"] is not None:  # held by a store write that ended without raising it
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc
        return code
    except UserError as e:
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
    finally:
        _HOLD["depth"], _HOLD["pending"] = 0, None
        for sig, handler in saved.items():
            signal.signal(sig, handler)


# The hold is the main thread's: Python runs signal handlers there only. A store write on another thread
# (MLflow's background finishing) must not touch it: its unsynchronised count once went negative or stuck
# above 0 while the main thread held and released around it, and every later Ctrl-C was held for ever
# (the sweep exited 0; issue 22, item 8).
_HOLD = {"depth": 0, "pending": None}


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def interrupt_handler(signum, frame) -> None:
    """SIGINT/SIGTERM handler: raise KeyboardInterrupt/Terminated now, or, inside `store_write()`,
    when the write is done (an interruption in the middle of a SQLite write can leave the
    database locked for the clean-up that follows)."""
    exc = Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()
    if _HOLD["depth"]:
        _HOLD["pending"] = exc
        return
    raise exc


@contextlib.contextmanager
def store_write():
    """Hold Ctrl-C/SIGTERM (with `interrupt_handler` installed) until this block of store writes ends
    (on the main thread; elsewhere no signal can arrive, and the block holds nothing)."""
    if not _main_thread():
        yield
        return
    _HOLD["depth"] += 1
    try:
        yield
    finally:
        _HOLD["depth"] -= 1
        if _HOLD["depth"] == 0 and _HOLD["pending"] is not None:
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc


@contextlib.contextmanager
def interruptible():
    """Within a `store_write()` hold, let Ctrl-C/SIGTERM through at once again (a held one is raised
    on entry). The sweep holds interrupts across Optuna's own bookkeeping, which an exception in the
    middle of a storage call can leave inconsistent, and opens them only inside the objective."""
    if not _main_thread():
        yield
        return
    saved = _HOLD["depth"]
    _HOLD["depth"] = 0
    try:
        if _HOLD["pending"] is not None:
            exc, _HOLD["pending"] = _HOLD["pending"], None
            raise exc
        yield
    finally:
        _HOLD["depth"] = saved


def _no_gpu_noise() -> tuple[str, ...]:
    """The known noise, plus cuInit's failure when the machine has no NVIDIA device node at all (with one,
    a failing cuInit is a real driver problem and is shown)."""
    has_nvidia = os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")
    return NATIVE_NOISE if has_nvidia else NATIVE_NOISE + ("failed call to cuInit",)


def backend() -> str:
    """The Keras backend in use (`tensorflow`, `jax`, `torch`)."""
    if "keras" not in sys.modules:
        with filtered_native_stderr(_no_gpu_noise()):  # the first import loads the backend (TensorFlow)
            import keras
    else:
        keras = sys.modules["keras"]
    return keras.backend.backend()


@functools.cache
def configure_device() -> str:
    """Turn on GPU memory growth (TensorFlow) and return the device's name: GPU model or CPU."""
    name = backend()
    if name == "tensorflow":
        with filtered_native_stderr(_no_gpu_noise()):  # TensorFlow's load-time chatter; cuInit without a GPU
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:  # already initialised in this process: growth is fixed by then
                pass
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"GPU: {details.get('device_name', gpus[0].name)} (x{len(gpus)})"
    elif name == "jax":
        import jax

        devices = jax.devices()
        if devices and devices[0].platform != "cpu":
            return f"GPU: {devices[0].device_kind} (x{len(devices)})"
    elif name == "torch":
        import torch

        if torch.cuda.is_available():
            return f"GPU: {torch.cuda.get_device_name(0)} (x{torch.cuda.device_count()})"
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} cores), no GPU found"


@functools.cache
def has_accelerator() -> bool:
    """Whether training runs on a GPU (or another non-CPU device) in this process."""
    return not configure_device().startswith("CPU")


def dtype_policy() -> str:
    """The global Keras dtype policy's name (`float32`, `mixed_bfloat16`, ...)."""
    import keras

    return keras.config.dtype_policy().name


def set_precision(mixed: bool) -> str:
    """Global Keras dtype policy: bf16 mixed precision on request (fp16 where bf16 is unsupported)."""
    import keras

    policy = "float32"
    if mixed:
        policy = "mixed_bfloat16"
        if backend() == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (8, 0))
                policy = "mixed_bfloat16" if cc >= (8, 0) else "mixed_float16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


JAX_DETERMINISM_FLAG = "--xla_gpu_deterministic_ops=true"
_DETERMINISTIC = False  # what the last `set_determinism` turned on


def set_determinism(on: bool, pin_threads: bool = True) -> bool:
    """Deterministic ops for every training of this process (`train.deterministic`); returns whether they are on.

    Why it is needed even on CPU: TensorFlow's multithreaded reductions (oneDNN, Eigen) sum in an order that
    depends on thread timing, so two runs with the same seeds differ by ~1e-7 after the first steps, and
    training amplifies that into 0.03-0.07 of validation loss after 40 epochs (measured on the digits
    default). `--reproduce` can only check a run that was deterministic.

    - TensorFlow: `enable_op_determinism`. Its inverse is called for `false`, but TensorFlow keeps part of the
      switch for the life of the process once it was on (bench/determinism.py measures in fresh processes),
      so `false` after `true` in one process may still run deterministic kernels: slower, never less exact.
    - JAX: XLA on CPU is deterministic as built; on a GPU, XLA's deterministic scatter/reduction kernels
      are chosen by `XLA_FLAGS`, read once when JAX starts its backend, so call this before
      `configure_device`.
    - torch: `use_deterministic_algorithms`.

    `pin_threads` (TensorFlow, with `on`): one CPU thread per op (`_one_thread_per_training`), as every sweep
    and ablation now trains; `--reproduce` passes what the original run's `training_threads` tag says.
    """
    name = backend()
    if name == "tensorflow":
        with filtered_native_stderr(_no_gpu_noise()):
            from tensorflow.python.framework import config as tf_config  # the public API has no `disable`

        if on:
            tf_config.enable_op_determinism()
            if pin_threads:
                _one_thread_per_training()
        elif tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()
        return _record(bool(tf_config.is_op_determinism_enabled()))
    if name == "jax":
        flags = os.environ.get("XLA_FLAGS", "").split()
        flags = [f for f in flags if not f.startswith("--xla_gpu_deterministic_ops")]
        if on:
            flags.append(JAX_DETERMINISM_FLAG)
        os.environ["XLA_FLAGS"] = " ".join(flags)
        return _record(on)
    if name == "torch":
        import torch

        torch.use_deterministic_algorithms(on)
        return _record(on)
    return _record(False)


def _one_thread_per_training() -> None:
    """Deterministic TensorFlow runs each op of a training on one CPU thread (intra-op parallelism 1).

    Even with op determinism on, a CPU reduction split over T threads sums in an order that depends on T:
    measured on the digits default, one epoch's val_loss differed in the 7th digit between 1 and 2 threads,
    and training amplifies that. With one thread per training, a training's numbers do not depend on how
    many workers share the machine (`--workers auto` runs one per core), so `effects.csv` is byte-identical
    between 1 and N workers; the cores are used by running trainings side by side instead (a 16x16 convnet
    cannot spread one training over two cores anyway). Must run before TensorFlow's first op; later (an
    earlier training in this process) TensorFlow keeps its thread pools and this is a no-op.
    """
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)  # inter-op threads only schedule whole ops
    except RuntimeError:  # the runtime is initialised: its pools are fixed for this process
        pass


def training_threads_tag() -> str:
    """The `training_threads` tag of a run trained in this process: TensorFlow's intra-op thread count, or
    `default` (its own choice, all cores; other backends). A training's numbers depend on it, so
    `--reproduce` retrains with the same."""
    if backend() != "tensorflow":
        return "default"
    import tensorflow as tf

    return str(tf.config.threading.get_intra_op_parallelism_threads() or "default")


def _record(on: bool) -> bool:
    global _DETERMINISTIC
    _DETERMINISTIC = on
    return on


def deterministic() -> bool:
    """Whether this process trains with deterministic ops (`set_determinism`); logged as tag `deterministic`."""
    return _DETERMINISTIC


def release_traced_gradients() -> int:
    """Drop the custom-gradient functions TensorFlow registered while tracing earlier models.

    Every trace of a training step registers a `CustomGradient-<uid>` function (from
    tf.distribute's all-reduce wrapper) in TensorFlow's global gradient registry and never
    removes it; each closure keeps its whole traced graph alive: about 6-8 MB and 10k Python
    objects per trained model, in plain Keras too (bench/memory.py). Backward graphs are built
    when a step is traced, so once `keras.backend.clear_session()` has discarded the earlier
    models nothing looks these entries up again. Returns how many were dropped; 0 on other
    backends or if TensorFlow's internals differ.
    """
    if backend() != "tensorflow":
        return 0
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry  # noqa: SLF001 - no public API for this
        stale = [name for name in registry if str(name).startswith("CustomGradient-")]
        for name in stale:
            del registry[name]
        return len(stale)
    except (ImportError, AttributeError, TypeError):
        return 0


_SQLITE_TUNED = False


def tune_sqlite() -> None:
    """Every SQLite connection SQLAlchemy opens in this process (Optuna's and MLflow's stores) uses
    write-ahead logging with `synchronous=NORMAL`.

    In SQLite's default rollback mode every commit waits for an fsync (2.7 ms each on this
    machine, against 0.01 ms in WAL+NORMAL), and a trial commits a few dozen times (Optuna
    suggestions, reports, user attributes; MLflow run, params, metrics, tags). WAL+NORMAL stays
    consistent after a crash of the process; only a power loss can drop the last commits. WAL
    also lets readers (the MLflow UI, other workers) proceed while a worker writes.
    """
    global _SQLITE_TUNED
    if _SQLITE_TUNED:
        return
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection, connection_record):  # noqa: ARG001 - SQLAlchemy's signature
        if not isinstance(dbapi_connection, sqlite3.Connection):
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error:  # read-only or in-memory database: keep SQLite's defaults
            pass
        finally:
            cursor.close()

    _SQLITE_TUNED = True


_FREEZES = 0


def freeze_long_lived_objects() -> None:
    """Collect, then move every surviving object out of the garbage collector's view (twice per process).

    Python's full collection walks every tracked object; after importing TensorFlow, Keras, MLflow,
    Optuna and pandas that is about half a million objects and ~0.2 s, paid at every
    `keras.backend.clear_session()` (once per repeat) and after every trial. Imported modules and
    the loaded dataset live for the whole process anyway; `gc.freeze` stops rescanning them.
    Called before each trial: it acts before the first (imports, stores, dataset) and before the
    second (modules imported lazily by the first trial), then never again.
    """
    import gc

    global _FREEZES
    if _FREEZES < 2:
        gc.collect()
        gc.freeze()
        _FREEZES += 1


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide the numbers."""
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            continue
    return out


@functools.cache
def git_commit() -> str:
    """HEAD of the repository this code runs from, with `-dirty` when it has local changes."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (sha + ("-dirty" if dirty else "")) if sha else "unknown"


# ----------------------------------------------------------------------------- follow-up commands

MAKE_DEFAULTS = {"EXP": "experiments/default.yaml", "MLRUNS": "mlruns"}  # the Makefile's defaults


def _in_project_venv() -> bool:
    """This process runs the project's own `.venv` from its repository root (where the Makefile is)."""
    here = Path.cwd()
    try:
        return (here / "Makefile").is_file() and Path(sys.prefix).resolve() == (here / ".venv").resolve()
    except OSError:
        return False


def python_path() -> str:
    """The interpreter running augsweep as a fresh shell can call it: `.venv/bin/python` (relative to the
    current directory when below it), never a bare `python` (a shell without the venv activated finds
    another one, without the project's packages)."""
    exe = Path(sys.executable)
    try:
        return str(exe.relative_to(Path.cwd()))
    except ValueError:
        return str(exe)


def _make_safe(value: str) -> bool:
    return bool(value) and not any(c in value for c in " \t'\"$#%:=\\;&|<>()*?[]")


def follow_up(script: str, experiment: str, mlruns: str | Path | None = None, store_options: str = "",
              *extra: str) -> str:
    """A command that runs as printed from the repository root in a fresh shell (no venv activated).

    `make sweep|ablate|report EXP=… MLRUNS=… [TRIALS=N] [REPEATS=R]` when this is the project's `.venv` and
    the stores are the embedded ones (`store_options` empty: no --storage, --tracking-uri or --study-name);
    otherwise the interpreter's path, e.g. `.venv/bin/python report.py EXP --mlruns DIR …`."""
    import shlex

    extra = tuple(str(e) for e in extra)
    target, variables = None, {"EXP": str(experiment), "MLRUNS": None if mlruns is None else str(mlruns)}
    if script == "report.py" and not extra:
        target = "report"
    elif script == "sweep.py" and not extra:
        target = "sweep"
    elif script == "sweep.py" and len(extra) == 2 and extra[0] == "--trials":
        target, variables["TRIALS"] = "sweep", extra[1]
    elif script == "sweep.py" and extra[:1] == ("--ablation",) and (len(extra) == 1 or (
            len(extra) == 3 and extra[1] == "--repeats")):
        target = "ablate"
        if len(extra) == 3:
            variables["REPEATS"] = extra[2]
    values = {k: v for k, v in variables.items() if v is not None and v != MAKE_DEFAULTS.get(k)}
    if target and not store_options and _in_project_venv() and all(map(_make_safe, values.values())):
        return " ".join(["make", target, *(f"{k}={v}" for k, v in values.items())])
    words = [shlex.quote(python_path()), script, shlex.quote(str(experiment))]
    if mlruns is not None:
        words += ["--mlruns", shlex.quote(str(mlruns))]
    return " ".join([*words, *([store_options] if store_options else []), *map(shlex.quote, extra)])
