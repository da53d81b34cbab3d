"""The ablation's design: variants around one base configuration and the paired comparisons they afford.

Variants (each trained with the same R seeds as every other variant and as the sweep's repeats):
the base; the base minus each of its augmentations (leave-one-out); no augmentation; no
augmentation plus each augmentation alone (add-one-in, over the base's augmentations and the rest
of the search space at their midpoints); and two baselines from the literature on the base's
network, RandAugment and TrivialAugment-style. Variants with identical configurations (the base
minus its only augmentation is `none`) share one set of trainings. Pure: no stores, no training (so the
ablation that trains them, `runs.ablation`, and the report that reads them back share it).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from ..augment import POLICIES
from .schema import Choice, Experiment, FloatRange, IntRange
from .space import TrialConfig

LEAVE_ONE_OUT, ADD_ONE_IN = "leave-one-out", "add-one-in"


@dataclass(frozen=True)
class Variant:
    """One configuration of the ablation: its name, what kind of change it is, and what it trains."""

    name: str  # base | base-flip | none | none+flip | randaugment | trivialaugment
    kind: str  # base | leave-one-out | none | add-one-in | baseline
    augmentation: str | None
    config: TrialConfig

    @property
    def key(self) -> str:
        """Identity of what is trained: variants with equal keys share their trainings."""
        return config_key(self.config)


def config_key(config: TrialConfig) -> str:
    """Short stable hash of a configuration (augmentations in a canonical order)."""
    flat = config.flat(sorted(config.enabled))
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _midpoint(param) -> Any:
    return param.midpoint() if isinstance(param, (IntRange, FloatRange, Choice)) else param


def candidates(base: TrialConfig, exp: Experiment) -> list[tuple[str, tuple]]:
    """Augmentations to add one at a time: the base's (at its magnitudes), then the search space's others
    (at their midpoints). The literature's policies are baselines, not candidates."""
    out = [(name, params) for name, params in base.augmentations if name not in POLICIES]
    have = {name for name, _ in out}
    for name, params in exp.search_space.augmentations:
        if name not in have and name not in POLICIES:
            out.append((name, tuple((p, _midpoint(v)) for p, v in params)))
    return out


def _with_augs(base: TrialConfig, augs) -> TrialConfig:
    return TrialConfig(base.depth, base.filters, base.dense_units, base.learning_rate, tuple(augs))


def build_variants(base: TrialConfig, extra: Sequence[tuple[str, tuple]], baselines: bool = True) -> list[Variant]:
    """All variants of an ablation around `base` (pure; the order is the order they train in)."""
    out = [Variant("base", "base", None, base)]
    for name, _ in base.augmentations:
        rest = [(n, p) for n, p in base.augmentations if n != name]
        out.append(Variant(f"base-{name}", LEAVE_ONE_OUT, name, _with_augs(base, rest)))
    out.append(Variant("none", "none", None, _with_augs(base, [])))
    for name, params in extra:
        out.append(Variant(f"none+{name}", ADD_ONE_IN, name, _with_augs(base, [(name, params)])))
    if baselines:
        out.append(Variant("randaugment", "baseline", None,
                           _with_augs(base, [("randaugment", (("factor", 0.5),))])))
        out.append(Variant("trivialaugment", "baseline", None, _with_augs(base, [("trivialaugment", ())])))
    return out


def comparison_table(variants: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Per augmentation, the paired comparisons the variants afford (`name`, `kind`, `augmentation` each):
    leave-one-out = base vs base without it; add-one-in = none + it vs none."""
    rows = []
    for v in variants:
        if v["kind"] == LEAVE_ONE_OUT:
            rows.append(dict(augmentation=v["augmentation"], comparison=LEAVE_ONE_OUT, with_variant="base",
                             without_variant=v["name"]))
        elif v["kind"] == ADD_ONE_IN:
            rows.append(dict(augmentation=v["augmentation"], comparison=ADD_ONE_IN, with_variant=v["name"],
                             without_variant="none"))
    return pd.DataFrame(rows, columns=["augmentation", "comparison", "with_variant", "without_variant"])


def comparisons(variants: Sequence[Variant]) -> pd.DataFrame:
    """`comparison_table` of `Variant`s."""
    return comparison_table([{"name": v.name, "kind": v.kind, "augmentation": v.augmentation} for v in variants])


def base_from_file(exp: Experiment) -> TrialConfig:
    """`ablation.base` as a configuration (unset widths and learning rate from the search space/train)."""
    b = exp.ablation.base
    sp = exp.search_space
    lr = b.learning_rate if b.learning_rate is not None else (
        exp.train.learning_rate if sp.learning_rate is None else float(_midpoint(sp.learning_rate)))
    return TrialConfig(
        depth=b.depth,
        filters=b.filters if b.filters is not None else int(_midpoint(sp.filters)),
        dense_units=b.dense_units if b.dense_units is not None else int(_midpoint(sp.dense_units)),
        learning_rate=float(lr),
        augmentations=b.augmentations,
    )
