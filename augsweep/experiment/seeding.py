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
        key = f"seeds_r{self.repeat if index is None else index}"
        return {key: f"init={self.init},aug={self.aug},order={self.order}"}

    @classmethod
    def from_param(cls, text: str, repeat: int) -> "RepeatSeeds":
        parts = dict(kv.split("=") for kv in text.split(","))
        return cls(repeat, int(parts["init"]), int(parts["aug"]), int(parts["order"]))


def repeat_seeds(experiment_seed: int, repeat: int) -> RepeatSeeds:
    """Seeds of repeat `repeat`, derived with NumPy's SeedSequence (independent streams)."""
    init, aug, order = np.random.SeedSequence([experiment_seed, repeat]).generate_state(3)
    mask = 2**31 - 1
    return RepeatSeeds(repeat, int(init) & mask, int(aug) & mask, int(order) & mask)


# Seed-index ranges, so that no two purposes ever share a seed: a sweep's replicates use b*R + r (< STRIDE);
# a design point retried after a failure trains on fresh seeds attempt*STRIDE + b*R + r (a failure that the
# seeds cause does not simply recur, and the retry stays in its replicate's slot); an ablation trains its
# variants on ABLATION_OFFSET + r, seeds no sweep trial used, so the base it retrains is not judged on the
# same noise that made it the sweep's best.
STRIDE = 1_000_000
ABLATION_OFFSET = 1_000_000_000


def sweep_seeds(experiment_seed: int, index: int, attempt: int = 0) -> RepeatSeeds:
    """Seeds of seed replicate `index` (b*R + r) of a sweep, drawn afresh for retry `attempt` > 0; the
    `repeat` it carries stays `index` (its replicate, and the name of its metrics)."""
    if not 0 <= index < STRIDE:
        raise ValueError(f"seed replicate {index} is outside 0..{STRIDE - 1}")
    seeds = repeat_seeds(experiment_seed, attempt * STRIDE + index)
    return RepeatSeeds(index, seeds.init, seeds.aug, seeds.order)


def point_seeds(experiment_seed: int, block: int, repeats: int, attempt: int = 0) -> list[RepeatSeeds]:
    """The `repeats` seed replicates of a design point of block `block` (indices b*R + r), for retry `attempt`."""
    return [sweep_seeds(experiment_seed, block * repeats + r, attempt) for r in range(repeats)]


def ablation_index(repeat: int) -> int:
    """The seed index of repeat `repeat` of an ablation: past every seed index a sweep of the experiment can use."""
    return ABLATION_OFFSET + repeat


def ablation_seeds(experiment_seed: int, repeat: int) -> RepeatSeeds:
    """Seeds of repeat `repeat` of an ablation (`ablation_index`)."""
    seeds = repeat_seeds(experiment_seed, ablation_index(repeat))
    return RepeatSeeds(repeat, seeds.init, seeds.aug, seeds.order)


SPLIT_STREAM = 0x5911  # a third word in the seed sequence: the split's stream never equals a training seed's


def split_seed(experiment_seed: int, index: int) -> int:
    """Seed of the data split of seed replicate `index` (a sweep's b*R + r, an ablation's `ablation_index`). It
    has no retry attempt: a design point retried on fresh seeds keeps its replicate's data, so every design point
    of a replicate trains and validates on the same images and their comparison stays paired."""
    return int(np.random.SeedSequence([experiment_seed, SPLIT_STREAM, index]).generate_state(1)[0]) & (2**31 - 1)
