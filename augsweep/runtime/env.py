"""`RunEnv`: how this process trains, decided once by its entry point (`setup`) and passed down as a value.

Nothing below the entry point asks a module global how to train: the sweep, the ablation, the objective and the
tags they write read the `RunEnv` they were given.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import device


@dataclass(frozen=True)
class RunEnv:
    """The backend, device, dtype policy, deterministic ops and CPU threads per training of this process.

    `deterministic` and `training_threads` are what the backend actually turned on (`device.set_determinism`
    reports it), so a run's tags say how it trained, not what was asked for.
    """

    backend: str
    device: str
    dtype_policy: str
    deterministic: bool
    training_threads: str

    @property
    def accelerator(self) -> bool:
        """Training runs on a GPU (or another non-CPU device)."""
        return not self.device.startswith("CPU")


def setup(deterministic: bool, mixed_precision: bool, pin_threads: bool = True) -> RunEnv:
    """Set up this process's trainings, in the order the backends need, and return what was chosen.

    Deterministic ops first: JAX reads its XLA flags once, when its backend starts (`configure_device`), and
    TensorFlow fixes its thread pools at its first op. `pin_threads`: one CPU thread per training's ops
    (`device.set_determinism`), as every sweep and ablation trains; `--reproduce` passes the original's.
    """
    on = device.set_determinism(deterministic, pin_threads=pin_threads)
    name = device.configure_device()
    policy = device.set_precision(mixed_precision)
    return RunEnv(backend=device.backend(), device=name, dtype_policy=policy, deterministic=on,
                  training_threads=device.training_threads_tag())
