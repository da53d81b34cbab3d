"""The device and numerics of this process's trainings: Keras backend, GPU set-up, dtype policy, deterministic ops
and CPU threads per training. `env.setup` calls these once, in order, and records what they chose in a `RunEnv`."""

from __future__ import annotations

import functools
import os
import platform
import sys

from .native import filtered_native_stderr, no_gpu_noise


def backend() -> str:
    """The Keras backend in use (`tensorflow`, `jax`, `torch`)."""
    if "keras" not in sys.modules:
        with filtered_native_stderr(no_gpu_noise()):  # the first import loads the backend (TensorFlow)
            import keras
    else:
        keras = sys.modules["keras"]
    return keras.backend.backend()


@functools.cache
def configure_device() -> str:
    """Turn on GPU memory growth (TensorFlow) and return the device's name: GPU model or CPU."""
    name = backend()
    if name == "tensorflow":
        with filtered_native_stderr(no_gpu_noise()):  # TensorFlow's load-time chatter; cuInit without a GPU
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
        with filtered_native_stderr(no_gpu_noise()):
            from tensorflow.python.framework import config as tf_config  # the public API has no `disable`

        if on:
            tf_config.enable_op_determinism()
            if pin_threads:
                _one_thread_per_training()
        elif tf_config.is_op_determinism_enabled():
            tf_config.disable_op_determinism()
        return bool(tf_config.is_op_determinism_enabled())
    if name == "jax":
        flags = os.environ.get("XLA_FLAGS", "").split()
        flags = [f for f in flags if not f.startswith("--xla_gpu_deterministic_ops")]
        if on:
            flags.append(JAX_DETERMINISM_FLAG)
        os.environ["XLA_FLAGS"] = " ".join(flags)
        return on
    if name == "torch":
        import torch

        torch.use_deterministic_algorithms(on)
        return on
    return False


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


def deterministic_ops() -> bool:
    """Whether the backend trains with deterministic ops now (what `set_determinism` turned on), read from the
    backend's own switch rather than remembered here."""
    name = backend()
    if name == "tensorflow":
        from tensorflow.python.framework import config as tf_config

        return bool(tf_config.is_op_determinism_enabled())
    if name == "jax":
        return JAX_DETERMINISM_FLAG in os.environ.get("XLA_FLAGS", "").split()
    if name == "torch":
        import torch

        return bool(torch.are_deterministic_algorithms_enabled())
    return False
