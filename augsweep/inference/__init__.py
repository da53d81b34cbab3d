"""One verdict rule for the whole report: seed-replicated effects, simultaneous intervals, alpha spending.

A sweep runs its design in replicated blocks; within a block every design point is trained with the
same R seeds (common random numbers), so each (block, repeat) is one seed replicate holding a full
design. The seed is the unit of replication: each replicate yields its own effect estimate, and the
interval comes from how those estimates vary from seed to seed. Intervals are simultaneous across the
family (Šidák) and across sequential looks (alpha spending over a known number of looks, combined by
a union bound, so no assumption about how looks correlate is needed); within a look the verdict tables
form a graph (`alpha.gate_levels`: main effects first, their decided part passed on to the other tables).
Each replicate's fit holds centred magnitude x switch terms, so a dose-response stays inside its
augmentation; only complete replicates of finished blocks decide (`decide_sweep`); a shift the repeats of
one trial share beyond the seed, seen in the residuals, widens the interval (`fits.switch_shift`). Pure
functions, no randomness.

One module per statistical job (as statsmodels' `stats/` and Optuna's `importance/`): `core` the array-only
verdict rule and the one `decided` rule the stopping rule, the report and the Monte-Carlo tests all call;
`alpha` the budget (`VerdictRule` and its one builder `VerdictRule.for_sweep`, spending, the graph of tables);
`fits` designs, least squares and aliases; `pairs` augmentation x augmentation contrasts and conditional
effects; `power` blocks and seeds that would decide; `paired` the ablation's paired t; `frames` the one adapter
that knows column names and the flat key format. The names below are the public face.
"""

from .alpha import (
    PRIMARY_WEIGHT,
    SPENDING,
    SPENDINGS,
    VerdictRule,
    gate_levels,
    look_alpha,
    plan_levels,
    sidak_level,
    split_alpha,
)
from .core import DECIDED, VERDICT_CODES, VERDICTS, decide_arrays, decided, should_stop
from .frames import (
    EXTRA_COLUMNS,
    VERDICT_COLUMNS,
    SweepVerdicts,
    ablation_effects,
    complete_replicates,
    decide_sweep,
    design_aliases,
    dose_responses,
    effects,
    interaction_contrast,
    scored_trainings,
    seed_effects,
    summarize,
    sweep_shift,
)

__all__ = ["DECIDED", "EXTRA_COLUMNS", "PRIMARY_WEIGHT", "SPENDING", "SPENDINGS", "VERDICTS", "VERDICT_CODES",
           "VERDICT_COLUMNS", "SweepVerdicts", "VerdictRule", "ablation_effects", "complete_replicates",
           "decide_arrays", "decide_sweep", "decided", "design_aliases", "dose_responses", "effects", "gate_levels",
           "interaction_contrast", "look_alpha", "plan_levels", "scored_trainings", "seed_effects", "should_stop",
           "sidak_level", "split_alpha", "summarize", "sweep_shift"]
