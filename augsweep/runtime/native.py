"""What native code (TensorFlow's C++ side, cuInit) writes to stderr while it loads: kept out of the user's terminal."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile


def quiet_backends() -> None:
    """Before TensorFlow is imported: no C++ INFO/WARNING chatter; no library traceback ahead of the one line."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow's database layer logs each SQLAlchemy error with its whole traceback, then re-raises it; the re-raised
    # error is told in one line (its traceback in the log file the line names), so the record would only bury that
    # line under library frames. A filter, not a level: MLflow resets its loggers' levels when it configures them.
    db_log = logging.getLogger("mlflow.store.db.utils")
    if _drop_record not in db_log.filters:
        db_log.addFilter(_drop_record)


def _drop_record(record) -> bool:
    return False


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


def no_gpu_noise() -> tuple[str, ...]:
    """The known noise, plus cuInit's failure when the machine has no NVIDIA device node at all (with one,
    a failing cuInit is a real driver problem and is shown)."""
    has_nvidia = os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/nvidia0")
    return NATIVE_NOISE if has_nvidia else NATIVE_NOISE + ("failed call to cuInit",)
