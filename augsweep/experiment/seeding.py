"""Explicit, paired randomness: repeat r of every trial gets the same seeds.

Seeds depend only on the experiment seed and the repeat index, never on the trial, so two
configurations are compared under common random numbers (same initial weights where the
shapes match, same augmentation draws, same batch order) and their difference is paired.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RepeatSeeds:
    """The independent streams of one repeat (airbench's separate aug_seed / order_seed)."""

    repeat: int
    init: int  # weight initialisers
    aug: int  # augmentation layers
    order: int  # batch order (shuffle) and any other global randomness

    def as_param(self, index: int | None = None) -> dict[str, str]:
        """The MLflow param `seeds_r<index>` (default: the repeat's seed index): `init=…,aug=…,order=…` (read
        back by `from_param`). A sweep's trial passes the repeat's position in the trial, the index its
        `repeat<r>/…` metrics carry."""
        return {f"seeds_r{self.repeat if index is None else index}": f"init={self.init},aug={self.aug},order={self.order}"}

    @classmethod
    def from_param(cls, text: str, repeat: int) -> "RepeatSeeds":
        parts = dict(kv.split("=") for kv in text.split(","))
        return cls(repeat, int(parts["init"]), int(parts["aug"]), int(parts["order"]))


def repeat_seeds(experiment_seed: int, repeat: int) -> RepeatSeeds:
    """Seeds of repeat `repeat`, derived with NumPy's SeedSequence (independent streams)."""
    init, aug, order = np.random.SeedSequence([experiment_seed, repeat]).generate_state(3)
    mask = 2**31 - 1
    return RepeatSeeds(repeat, int(init) & mask, int(aug) & mask, int(order) & mask)
