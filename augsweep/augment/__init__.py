"""Augmentations: the registry (name -> parameter schema + seeded Keras layer, what it draws, how its meaning
changed), its built-in entries and the literature's policies; imports nothing else from augsweep (Keras only
lazily, inside builders)."""

from . import layers as _layers  # noqa: F401 - registers flip, contrast, brightness, rotation, warp, crop
from . import policies as _policies  # noqa: F401 - registers randaugment, trivialaugment
from .layers import WARP_KINDS, RandomCropResize, preview
from .policies import POLICIES
from .registry import (
    REGISTRY,
    VALUE_RANGE,
    AugmentationSpec,
    Drawn,
    ParamSpec,
    Revision,
    build_layers,
    build_order,
    changes,
    layer_seed,
    register,
    revisions,
    unregister,
)

__all__ = ["REGISTRY", "VALUE_RANGE", "AugmentationSpec", "Drawn", "ParamSpec", "POLICIES", "Revision", "WARP_KINDS",
           "RandomCropResize", "build_layers", "build_order", "changes", "layer_seed", "preview", "register",
           "revisions", "unregister"]
