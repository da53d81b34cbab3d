"""Power: the minimum detectable effect's companion numbers, how many more blocks (`blocks_to_decide`) or seeds
(`seeds_needed`) would decide an effect if its estimate and seed-to-seed sd held. Scalars only.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from scipy import stats as sps

from .alpha import VerdictRule, sidak_level
from .core import POWER

MAX_PROJECTED_BLOCKS = 100


@functools.lru_cache(maxsize=8192)
def _t_critical(level: float, df: int) -> float:
    """Two-sided t critical value at `level` (cached: the projection asks for the same ones row after row)."""
    return float(sps.t.isf(level / 2.0, df))


def blocks_to_decide(decided: bool, n_seeds: int, sd_seeds: float, effect: float, n_family: int,
                     rule: VerdictRule, looks_done: int, seeds_per_block: int) -> float:
    """More blocks after which an estimate (`n_seeds` seed replicates, their sd, the effect, in a family of
    `n_family`) would be decided if its effect and seed sd held (0 when it is; NaN: not within 100 blocks),
    each block bringing `seeds_per_block` seed replicates, at the level the rule's plan gives that look
    (`VerdictRule.projected_level`: looks that cannot decide are skipped, beyond the cap the plan continues), so
    a number above `rule.max_looks - looks_done` means "raise the cap"."""
    margin = rule.margin
    if decided:
        return 0.0
    n, sd, effect = int(n_seeds), float(sd_seeds), float(effect)
    m = int(n_family or 1)
    if n < 2 or not (np.isfinite(sd) and np.isfinite(effect)):
        return float("nan")
    for extra in range(1, MAX_PROJECTED_BLOCKS + 1):
        n2 = n + extra * seeds_per_block
        look = looks_done + extra
        level = rule.projected_level(look, seeds_per_block)
        if level <= 0:
            continue
        a = sidak_level(level, m)
        half = _t_critical(a, n2 - 1) * sd / math.sqrt(n2)
        if abs(effect) - half > 0 or abs(effect) + half < margin:
            return float(extra)
    return float("nan")


@functools.lru_cache(maxsize=8192)
def _t_factor(alpha_per: float, power: float, n: int) -> float:
    """t_{1-alpha/2} + t_{power} with n - 1 degrees of freedom (cached: the bisection repeats them per row)."""
    return float(sps.t.isf(alpha_per / 2.0, n - 1) + sps.t.ppf(power, n - 1))


def seeds_needed(effect: float, sd: float, alpha_per: float, power: float = POWER, limit: int = 100_000) -> float:
    """Seeds for `power` to exclude 0 at two-sided level `alpha_per` if the effect and seed sd held."""
    if not (np.isfinite(effect) and np.isfinite(sd)) or effect == 0:
        return float("nan")

    def enough(n: int) -> bool:
        return _t_factor(alpha_per, power, n) * sd / math.sqrt(n) <= abs(effect)

    if enough(2):
        return 2.0
    if not enough(limit):
        return float("nan")
    lo, hi = 2, limit  # the requirement falls with n: enough(lo) is False, enough(hi) is True
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if enough(mid) else (mid, hi)
    return float(hi)
