"""Where each augmentation runs: inside the model (the course's way) or in the `tf.data` input pipeline.

Keras compiles a model with XLA only if every layer has `supports_jit`; the geometric preprocessing
layers (RandomRotation, Translation, Zoom, Shear, Perspective, Crop) set it to False on every
backend, so one of them in the model turns XLA off for the whole training step. Moving just those
layers into the `tf.data` pipeline (applied per batch, before prefetch) keeps the rest of the step
compiled. `plan` decides; the decision is a pure function of its inputs (no timing at run time),
so a trial retrained on the same machine gets the same placement and the same numbers.

The rule follows bench/throughput.py's figures (bench/RESULTS.md): on a CPU with XLA off (Keras's
"auto" on CPU) the in-model placement measured as fast as or faster than `tf.data`, so everything
stays in the model; when XLA is wanted (an accelerator with `jit_compile: auto`, or
`jit_compile: true`) geometric layers go to `tf.data`. bench/gpu.py measures the GPU side.
Under JAX the geometric layers are written in `jax.numpy` and trace fine, so instead of moving
them they are marked jit-capable (`jit_capable`), keeping the whole step compiled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..augment import REGISTRY

PLACEMENTS = ("auto", "model", "data")


@dataclass(frozen=True)
class Placement:
    """Augmentation names inside the model and in the input pipeline, and why."""

    in_model: tuple[str, ...]
    in_data: tuple[str, ...] = ()
    reason: str = ""

    @property
    def label(self) -> str:
        """MLflow tag value: `model`, `data`, or `data:rotation,warp` when split."""
        if not self.in_data:
            return "model"
        if not self.in_model:
            return "data"
        return "data:" + ",".join(self.in_data)


def geometric(names: Iterable[str]) -> list[str]:
    """The augmentations among `names` that resample pixel positions (XLA-incompatible layers)."""
    return [n for n in names if n in REGISTRY and REGISTRY[n].geometric]


def wants_jit(jit_compile: str, backend: str, accelerator: bool) -> bool:
    """Whether Keras would compile the step with XLA if every layer allowed it."""
    if jit_compile == "true":
        return True
    if jit_compile == "false":
        return False
    # Keras "auto": XLA on accelerators for TensorFlow and JAX, never for torch or TF on CPU.
    return backend == "jax" or (backend == "tensorflow" and accelerator)


def plan(names: Iterable[str], *, backend: str, accelerator: bool, jit_compile: str = "auto",
         placement: str = "auto") -> Placement:
    """Placement of the enabled augmentations `names` (kept in their given order)."""
    names = tuple(names)
    if placement not in PLACEMENTS:
        raise ValueError(f"placement must be one of {PLACEMENTS}. Received: placement={placement!r}")
    if placement == "model" or not names:
        return Placement(names, (), "requested" if placement == "model" else "no augmentation")
    if backend != "tensorflow":
        if placement == "data":
            raise ValueError(f"placement='data' needs the TensorFlow backend. Received: backend={backend!r}")
        return Placement(names, (), f"{backend}: geometric layers are jit-capable in the model")
    if placement == "data":
        return Placement((), names, "requested")
    moved = geometric(names)
    if not moved:
        return Placement(names, (), "no geometric augmentation: XLA allowed in the model")
    if not wants_jit(jit_compile, backend, accelerator):
        return Placement(names, (), "XLA off (CPU or jit_compile: false): in-model is as fast")
    kept = tuple(n for n in names if n not in moved)
    return Placement(kept, tuple(moved), "geometric layers in tf.data keep the training step under XLA")


def jit_capable(layers, backend: str) -> list:
    """Mark geometric layers jit-capable where their backend implementation traces (JAX)."""
    if backend == "jax":
        for layer in layers:
            if not getattr(layer, "supports_jit", True) and type(layer).__name__ != "RandomCrop":
                layer.supports_jit = True
    return list(layers)
