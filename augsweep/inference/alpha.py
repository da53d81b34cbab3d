"""The alpha budget of a report: the verdict rule's parameters (`VerdictRule`, built for a sweep by
`VerdictRule.for_sweep`), alpha spending over sequential looks, and Šidák shares across verdict tables and rows.
Intervals are simultaneous across the family (Šidák) and across looks (spending over a known number of looks,
combined by a union bound, so no assumption about how looks correlate is needed).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

from scipy import stats as sps

SPENDINGS = ("pocock", "obrien-fleming", "linear")
# O'Brien-Fleming-type spending: early looks hold few seed replicates (a t with 1-3 df decides little
# anyway), so almost all of alpha is kept for the looks that can use it.
SPENDING = "obrien-fleming"


@dataclass(frozen=True)
class VerdictRule:
    """The parameters of the one verdict rule, as the sweep's stopping rule and the report both apply it.

    `margin`: |effect| below it is negligible (the experiment's `equivalence_margin`); `alpha`: the error rate
    of the whole family of verdicts; `spending`: how `alpha` is spent over sequential looks; `max_looks`: the
    looks the plan allows (a replicated design's cap of blocks); `seeds_per_block`: seed replicates each
    further look brings (None: estimated from the data), for `blocks_to_decide`.
    """

    margin: float
    alpha: float = 0.05
    spending: str = SPENDING
    max_looks: int = 1
    seeds_per_block: int | None = None

    @classmethod
    def for_sweep(cls, experiment, design: Mapping | None, alpha: float = 0.05) -> "VerdictRule":
        """The rule of a sweep of `experiment` (its margin, its repeats per block) under the design it recorded
        (`design["max_blocks"]` looks; one without a replicated design), at family level `alpha`: the one
        builder the stopping rule and the report share."""
        return cls(margin=experiment.equivalence_margin, alpha=alpha,
                   max_looks=int((design or {}).get("max_blocks", 1)), seeds_per_block=experiment.repeats)

    def alpha_at(self, looks_done: int) -> float:
        """The family's level at look `looks_done` (`look_alpha`)."""
        return look_alpha(self.alpha, looks_done, self.max_looks, self.spending)

    def share(self, alpha: float, max_looks: int | None = None) -> "VerdictRule":
        """The same rule for one verdict table's share of alpha (and a plan of `max_looks`, when given)."""
        return replace(self, alpha=alpha, max_looks=self.max_looks if max_looks is None else max_looks)


def spent_alpha(alpha: float, fraction: float, spending: str = SPENDING) -> float:
    """Cumulative error spent by information fraction `fraction` in (0, 1]."""
    t = min(max(float(fraction), 0.0), 1.0)
    if t == 0.0:
        return 0.0
    if spending == "pocock":
        return alpha * math.log1p((math.e - 1.0) * t)
    if spending == "obrien-fleming":
        z = sps.norm.isf(alpha / 2.0)
        return float(min(alpha, 2.0 * sps.norm.sf(z / math.sqrt(t))))
    if spending == "linear":
        return alpha * t
    raise ValueError(f"spending must be one of {SPENDINGS}, not {spending!r}")


@functools.lru_cache(maxsize=4096)  # pure; `blocks_to_decide` asks for the same levels for every row and look
def look_alpha(alpha: float, look: int, max_looks: int, spending: str = SPENDING) -> float:
    """Family-wise level for look `look` of `max_looks`; the levels of all looks sum to `alpha`."""
    if not 1 <= look <= max_looks:
        raise ValueError(f"look {look} is outside 1..{max_looks}")
    return spent_alpha(alpha, look / max_looks, spending) - spent_alpha(alpha, (look - 1) / max_looks, spending)


def sidak_level(alpha_family: float, m: int) -> float:
    """Per-comparison two-sided level that keeps `m` comparisons at family level `alpha_family`."""
    return -math.expm1(math.log1p(-alpha_family) / max(int(m), 1))


def split_alpha(alpha: float, sizes: Sequence[int]) -> list[float]:
    """Šidák shares of `alpha` for verdict tables of these sizes, so that a whole report (every table that
    carries a verdict) errs with probability <= alpha: each table gets 1 - (1 - alpha)^(size / total)."""
    total = sum(max(int(s), 0) for s in sizes)
    if total == 0:
        return [alpha for _ in sizes]
    return [-math.expm1(math.log1p(-alpha) * max(int(s), 0) / total) for s in sizes]


def sweep_shares(n_augmentations: int, n_depths: int, alpha: float = 0.05, n_pairs: int = 0,
                 configurations: bool = False) -> dict[str, float]:
    """Each verdict table's Šidák share of a sweep's `alpha`, by its number of rows: the effects (one per
    augmentation), the augmentation x depth contrasts (one per augmentation, with two depths or more), the
    augmentation x augmentation contrasts (`n_pairs`, a design that separates them) and the configurations
    against no augmentation (one row: one question, "is the best configuration better than none?", answered
    with Šidák over every configuration inside its share, so choosing the best afterwards costs nothing)."""
    sizes = {"effects": n_augmentations, "depth": n_augmentations if n_depths > 1 else 0,
             "pairs": max(int(n_pairs), 0), "configurations": 1 if configurations else 0}
    shares = split_alpha(alpha, list(sizes.values()))
    return {k: (a if sizes[k] else 0.0) for k, a in zip(sizes, shares)}
