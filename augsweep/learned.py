"""Did the network learn? The gate before any verdict: no helps/hurts/negligible, export or registration about a
network whose validation loss is not clearly below the loss of guessing.

Pure (arrays and pandas in, a value out), so the report and the sweep's first look ask the same question.
The chance loss is the entropy of the validation classes (`chance_loss_of`): the cross-entropy of the best
constant prediction, ln K for K balanced classes. The test is the report's own interval machinery
(`inference.decide_arrays`): per seed replicate, each configuration's best validation loss minus the chance
loss, and the average over every configuration of that replicate; simultaneous (Šidák) one-family intervals at
the report's alpha. The network learned when one of those intervals lies entirely below 0. Under "no
configuration beats chance" every column's mean is >= 0, so the gate errs with probability <= alpha; it is a
gatekeeping step tested before the verdicts, so it spends none of their alpha.

With two or three seed replicates such an interval is wide even for a network that clearly learned, so the gate
also passes when every training's best validation loss lies below chance by more than the equivalence margin: a
network that learned nothing cannot do that (a constant prediction never beats the entropy of the validation
classes, and picking the best epoch of a network at chance gains far less than the margin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import inference
from .experiment.space import aug_key

AVERAGE = "(average over configurations)"


def chance_loss_of(labels, num_classes: int) -> float:
    """Entropy (nats) of the class frequencies in `labels`: the validation loss of guessing the class prior.
    ln K when the K classes are balanced; ln K itself when there are no labels to count."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64).reshape(-1), minlength=int(num_classes))
    total = counts.sum()
    if total == 0:
        return math.log(max(int(num_classes), 2))
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


@dataclass(frozen=True)
class LearnedCheck:
    """The gate's answer: `learned` is True (some interval below chance), False (none), or None when no
    configuration has two seed replicates (then `learned_by_mean` is the point comparison used instead)."""

    learned: bool | None
    chance: float
    best: str  # the column whose upper bound is lowest (a configuration, or the average)
    best_mean: float  # its mean best validation loss
    best_high: float  # its simultaneous upper bound (NaN with one seed replicate)
    n_seeds: int
    n_columns: int
    alpha: float
    unanimous: bool = False  # every training's best validation loss lies below chance by more than the margin
    trainings: int = 0

    @property
    def ok(self) -> bool:
        """Whether verdicts, export and registration may go ahead: an interval below chance, or every training
        below chance by more than the margin (a network that learned nothing cannot do that: a constant
        prediction never beats the entropy of the validation classes), or, with one seed replicate and so no
        interval, a best mean below chance."""
        if self.learned or self.unanimous:
            return True
        return self.learned is None and self.learned_by_mean

    @property
    def learned_by_mean(self) -> bool:
        return bool(np.isfinite(self.best_mean) and self.best_mean < self.chance)


def configuration_labels(table: pd.DataFrame, augmentations) -> list[str]:
    """`d2 flip+warp` per row (depth and the augmentations on; magnitudes pooled), as configurations.csv names them."""
    depth = table["depth"] if "depth" in table else pd.Series(0, index=table.index)
    on = table[[aug_key(a) for a in augmentations]].astype(bool).to_numpy() if len(augmentations) else \
        np.zeros((len(table), 0), bool)
    return [f"{f'd{int(d)}' if d else 'base'} {'+'.join(a for a, o in zip(augmentations, row) if o) or 'none'}"
            for d, row in zip(depth, on)]


def check_learned(table: pd.DataFrame, augmentations, chance: float, alpha: float = 0.05,
                  outcome: str = "best_val_loss", margin: float = 0.0) -> LearnedCheck:
    """The gate on a table with one row per (trial, repeat): `block`, `repeat`, `depth`, `aug_<name>`, `outcome`."""
    if table is None or not len(table):
        return LearnedCheck(None, float(chance), "", float("nan"), float("nan"), 0, 0, alpha)
    table = table.assign(_configuration=configuration_labels(table, list(augmentations)))
    wide = table.groupby(["block", "repeat", "_configuration"])[outcome].mean().unstack("_configuration")
    return check_wide(wide, chance, alpha, margin, table[outcome].to_numpy(dtype=float))


def check_wide(wide: pd.DataFrame, chance: float, alpha: float = 0.05, margin: float = 0.0,
               trainings=None) -> LearnedCheck:
    """The gate on a (seed replicates x configurations) frame of best validation losses (NaN = not trained);
    `trainings`: every training's own value (default: the frame's cells), for the unanimity rule."""
    if not wide.size:
        return LearnedCheck(None, float(chance), "", float("nan"), float("nan"), 0, 0, alpha)
    values = np.asarray(wide.to_numpy(dtype=float) if trainings is None else trainings, dtype=float).reshape(-1)
    values = values[~np.isnan(values)]  # a diverged training scored at chance or above counts against
    unanimous = bool(len(values) >= 2 and np.all(values < chance - max(margin, 0.0)))
    wide = wide.astype(float)
    wide = wide.where(np.isfinite(wide))
    wide[AVERAGE] = wide.mean(axis=1, skipna=True)  # over the configurations each replicate trained
    names = list(wide.columns)
    D = wide.to_numpy(dtype=float) - float(chance)
    res = inference.decide_arrays(D, alpha, 0.0)
    with np.errstate(all="ignore"):
        means = np.nanmean(wide.to_numpy(dtype=float), axis=0)
    tested = res["n_seeds"] >= 2
    if tested.any():
        hi = np.where(tested, res["ci_high"], np.inf)
        j = int(np.argmin(hi))
        learned = bool(hi[j] < 0)
        return LearnedCheck(learned, float(chance), str(names[j]), float(means[j]), float(hi[j] + chance),
                            int(res["n_seeds"][j]), int(tested.sum()), alpha, unanimous, len(values))
    j = int(np.nanargmin(means)) if np.isfinite(means).any() else 0
    return LearnedCheck(None, float(chance), str(names[j]), float(means[j]), float("nan"),
                        int(res["n_seeds"][j]), 0, alpha, unanimous, len(values))


def chance_words(check: LearnedCheck, num_classes: int | None = None) -> str:
    """`ln 2 = 0.693, the loss of guessing` (balanced classes) or `0.612, the loss of guessing the class prior`."""
    if num_classes and abs(check.chance - math.log(max(int(num_classes), 2))) < 5e-4:
        return f"ln {int(num_classes)} = {check.chance:.3f}, the loss of guessing"
    return f"{check.chance:.3f}, the loss of guessing the class prior"


REPORT_CONSEQUENCE = "No verdicts, no exported block and no registered model."
SWEEP_CONSEQUENCE = "The report will give no verdicts unless later trainings learn."


def not_learned_line(check: LearnedCheck, epochs: int, learning_rate: float | None, image_size, num_classes=None,
                     when: str = "", consequence: str = REPORT_CONSEQUENCE) -> str:
    """The one line a report (or a sweep's first look) says instead of verdicts, with what to change."""
    what = ("its mean" if check.learned is None else
            f"its simultaneous {100 * (1 - check.alpha):.0f}% upper bound {check.best_high:.4f} over "
            f"{check.n_seeds} seed replicates")
    best = "the average configuration" if check.best == AVERAGE else f"the best configuration ({check.best})"
    below = np.isfinite(check.best_mean) and check.best_mean < check.chance
    headline = "is not shown to learn" if below else "did not learn"
    seeds = (f"add seed replicates (`repeats`; {check.n_seeds} now, so the interval is wide) or "
             if below and check.learned is not None else "")
    size = image_size if isinstance(image_size, str) else "x".join(str(int(s)) for s in image_size)
    rate = f" (now {learning_rate:g})" if learning_rate is not None else ""
    return (f"The network {headline}{when}: no configuration's best validation loss is clearly below chance "
            f"({chance_words(check, num_classes)}); {best} reached {check.best_mean:.4f} ({what}). {consequence} "
            f"Change the training, then sweep again: {seeds}raise "
            f"`train.epochs` (now {int(epochs)}) or `train.learning_rate`{rate}, use a larger "
            f"`dataset.image_size` (now {size}), or check the data (labels, classes, enough images).")
