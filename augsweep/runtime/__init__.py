"""The process a run happens in. Imports nothing else from augsweep, so every layer below the CLI may use it.

- `env`: `RunEnv`, how this process trains (backend, device, dtype policy, deterministic ops, CPU threads per
  training), built once by the entry point with `setup` and passed down as a value.
- `device`: the backend's switches `setup` turns (GPU memory growth, precision, determinism, threads).
- `signals`: exit codes (2 bad input, 130 Ctrl-C, 143 SIGTERM) and the hold around store writes.
- `native`: TensorFlow's load-time stderr noise, filtered.
- `process`: process-wide performance settings that never change a number (SQLite WAL, `gc.freeze`, traced
  gradients).
- `provenance`: package versions and the git commit a run records.
- `commands`: follow-up commands printed so that they run as printed.

Module state that remains, and why: the signal hold (`signals._HOLD`: signal handlers are process-wide),
two one-shot install guards (`process`), and the device look-up's cache (`device.configure_device`: the
hardware does not change during a process). None of them decides how a run trains.
"""

from .commands import MAKE_DEFAULTS, FollowUp, augsweep_command, follow_up, in_project_venv, python_path
from .device import (
    JAX_DETERMINISM_FLAG,
    backend,
    configure_device,
    deterministic_ops,
    dtype_policy,
    has_accelerator,
    set_determinism,
    set_precision,
    training_threads_tag,
)
from .env import RunEnv, setup
from .native import NATIVE_NOISE, filtered_native_stderr, quiet_backends
from .process import (
    RAM_GIB_PER_PROCESS,
    available_memory_gib,
    freeze_long_lived_objects,
    release_traced_gradients,
    tune_sqlite,
    usable_cores,
)
from .provenance import PACKAGES, git_commit, package_versions
from .signals import (
    ENDING,
    Terminated,
    UserError,
    environment_cause,
    interrupt_handler,
    interruptible,
    log_traceback,
    one_line,
    raise_if_interrupted,
    resume_command,
    run_main,
    shown,
    stopped_line,
    store_write,
)

__all__ = ["ENDING", "raise_if_interrupted", "environment_cause", "resume_command", "stopped_line",
           "JAX_DETERMINISM_FLAG", "MAKE_DEFAULTS", "NATIVE_NOISE", "PACKAGES", "RunEnv", "Terminated", "UserError",
           "backend", "configure_device", "deterministic_ops", "dtype_policy", "filtered_native_stderr",
           "FollowUp", "augsweep_command", "follow_up", "freeze_long_lived_objects", "git_commit", "has_accelerator",
           "in_project_venv", "interrupt_handler", "interruptible", "log_traceback", "one_line", "package_versions",
           "python_path", "quiet_backends",
           "release_traced_gradients", "run_main", "set_determinism", "set_precision", "setup", "shown",
           "store_write", "training_threads_tag", "tune_sqlite", "usable_cores", "RAM_GIB_PER_PROCESS",
           "available_memory_gib"]
