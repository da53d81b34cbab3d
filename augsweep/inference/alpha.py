"""The alpha budget of a report: the verdict rule's parameters (`VerdictRule`, built for a sweep by
`VerdictRule.for_sweep`), alpha spending over sequential looks, and the graph of verdict tables within a look.
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
# The main effects' weight in the graph of verdict tables (Bretz et al. 2009): they are tested first with this
# fraction of a look's alpha; the rest starts with the secondary tables (augmentation x depth, augmentation
# pairs, configurations against none), and each main effect decided `helps`/`hurts` passes its own part on to
# them. Measured at the default's size (resolution V, sd 0.02, margin 0.05): 0.8 brings all four planted main
# verdicts right in about two thirds of sweeps, against two fifths with the tables splitting alpha by rows.
PRIMARY_WEIGHT = 0.8
# A look whose planned seed replicates give the main effects a critical t above this cannot decide anything a
# user would act on (half-widths of 10 standard errors); it spends no alpha, its share waits for the next look.
T_DECIDES = 10.0
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
    planned_looks: int | None = None  # the cap of the plan the sweep started with (a `--trials` change keeps it)
    primary_rows: int = 1  # rows of the main-effects table (whether an early look can decide anything)
    level: float | None = None  # a fixed level for every look (`at_level`): one table's part of one look
    assume_no_higher: bool = False  # rows aliased only with interactions of three factors or more get verdicts
    look_share: float = 1.0  # this table's fraction of every look's level (the main effects' part of the graph)

    @classmethod
    def for_sweep(cls, experiment, design: Mapping | None, alpha: float = 0.05) -> "VerdictRule":
        """The rule of a sweep of `experiment` (its margin, its repeats per block) under the design it recorded
        (`design["max_blocks"]` looks, `design["planned_blocks"]` those of the plan it started with; one without
        a replicated design), at family level `alpha`: the one builder the stopping rule and the report share."""
        d = design or {}
        looks = int(d.get("max_blocks", 1))
        return cls(margin=experiment.equivalence_margin, alpha=alpha, max_looks=looks,
                   seeds_per_block=experiment.repeats, planned_looks=int(d.get("planned_blocks", looks)),
                   primary_rows=max(len(experiment.search_space.augmentation_names), 1),
                   assume_no_higher=bool(getattr(experiment, "assume_no_higher_interactions", False)))

    def alpha_at(self, looks_done: int) -> float:
        """The family's level at look `looks_done` (`plan_levels`; 0 at a look that cannot decide)."""
        if self.level is not None:
            return self.level
        return plan_levels(self.alpha, self.max_looks, self.spending, self.planned_looks,
                           self.seeds_per_block, self.primary_rows)[looks_done - 1]

    def projected_level(self, look: int, seeds_per_block: int | None = None) -> float:
        """This table's level at a look yet to come: the plan's own level while `look` is within the cap
        (undecidable looks skipped, as `alpha_at` does), beyond it the level of the same plan continued to a cap
        of `look` (what a rerun with a larger `trials` gets), times `look_share`."""
        cap = max(int(self.max_looks), int(look))
        planned = self.planned_looks if self.planned_looks is not None else self.max_looks
        spb = self.seeds_per_block if self.seeds_per_block is not None else seeds_per_block
        return self.look_share * plan_levels(self.alpha, cap, self.spending, planned, spb,
                                             self.primary_rows)[int(look) - 1]

    def share(self, alpha: float, max_looks: int | None = None) -> "VerdictRule":
        """The same rule for one verdict table's share of alpha (and a plan of `max_looks`, when given)."""
        return replace(self, alpha=alpha, max_looks=self.max_looks if max_looks is None else max_looks, level=None,
                       planned_looks=None if max_looks is not None else self.planned_looks)

    def at_level(self, level: float) -> "VerdictRule":
        """The same rule with one look's level fixed (a table's part of the look, from `gate_levels`)."""
        return replace(self, level=float(level))


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


def _can_decide(level: float, look: int, seeds_per_block: int | None, rows: int) -> bool:
    """Whether the main effects at this look's `level` (their `PRIMARY_WEIGHT` of it, Šidák over `rows`) with
    the look's planned seed replicates have a critical t of at most `T_DECIDES`."""
    if seeds_per_block is None:
        return True
    df = look * int(seeds_per_block) - 1
    if df < 1 or level <= 0:
        return False
    return float(sps.t.isf(sidak_level(PRIMARY_WEIGHT * level, rows) / 2.0, df)) <= T_DECIDES


@functools.lru_cache(maxsize=1024)
def plan_levels(alpha: float, max_looks: int, spending: str = SPENDING, planned_looks: int | None = None,
                seeds_per_block: int | None = None, rows: int = 1) -> tuple[float, ...]:
    """Each look's level; they sum to `alpha` (a union bound over looks, whatever their correlation).

    The spending function over the plan the sweep started with (`planned_looks`). A look that cannot decide
    (`_can_decide` with its planned replicates) spends nothing; its alpha stays for the next look. The last
    look spends whatever is left. When `--trials` raised the cap after the first plan's looks, the looks before
    the first plan's cap keep their levels (they were taken) and what the first plan had left from its cap on
    is spread over the new looks by the same spending function: one plan continued, not a second one begun.
    """
    L = max(int(max_looks), 1)
    P0 = max(int(planned_looks or L), 1)

    def cumulative(look: int) -> float:
        if look >= L:
            return alpha
        if L <= P0 or look < P0:
            return spent_alpha(alpha, look / P0, spending)
        before = spent_alpha(alpha, (P0 - 1) / P0, spending)
        low = spent_alpha(alpha, (P0 - 1) / L, spending)
        return before + (alpha - before) * (spent_alpha(alpha, look / L, spending) - low) / max(alpha - low, 1e-300)

    levels, spent = [], 0.0
    for look in range(1, L + 1):
        level = cumulative(look) - spent
        if look < L and not _can_decide(level, look, seeds_per_block, rows):
            level = 0.0
        levels.append(max(level, 0.0))
        spent += levels[-1]
    return tuple(levels)


def gate_levels(alpha_look: float, rows: Mapping[str, int], passing: float = 0.0) -> dict[str, float]:
    """One look's graph of verdict tables (Bretz et al. 2009, Bonferroni-based): the main effects ("effects")
    at `PRIMARY_WEIGHT` of `alpha_look` (all of it when no other table is tested), the rest split among the
    other tables with rows (Šidák by their row counts), plus the main effects' level times `passing`, the
    fraction of main-effect rows decided `helps`/`hurts`. Only a superiority verdict passes its alpha on: it
    rejects the row's null hypothesis of no effect, so under that null it is already an error, counted once.
    A `negligible` verdict is the right answer under that very null, so passing its alpha would spend it twice
    (with every main effect null, the other tables would get the whole alpha on top of the main effects')."""
    others = {t: int(n) for t, n in rows.items() if t != "effects" and int(n) > 0}
    if not others or int(rows.get("effects", 0)) <= 0:
        return {t: (alpha_look if t == "effects" or not int(rows.get("effects", 0)) else 0.0) * (int(n) > 0)
                for t, n in rows.items()}
    a_eff = PRIMARY_WEIGHT * alpha_look
    rest = alpha_look - a_eff + a_eff * min(max(float(passing), 0.0), 1.0)
    split = dict(zip(others, split_alpha(rest, list(others.values()))))
    return {t: a_eff if t == "effects" else split.get(t, 0.0) for t in rows}


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
