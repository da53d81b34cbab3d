"""The sweep's early warning: once the first look's trainings have finished (a factorial design's first block,
else a quarter of the budget), ask the report's gate (`learned.check_learned`) whether the network learns at all,
and say so at once when it does not, instead of after the whole budget."""

from __future__ import annotations

from typing import Callable

from ..experiment.schema import Experiment
from ..learned import SWEEP_CONSEQUENCE, check_learned, not_learned_line
from ..stores.study import trainings_table


def first_look_size(exp: Experiment, budget: int, block_size: int | None) -> int:
    """Finished trials after which the sweep first checks that the network learns."""
    return block_size if block_size else max(2, min(budget, -(-budget // 4)))


class LearningWatch:
    """Called after each trial; checks once, when `at` trials have finished, and warns when nothing learned."""

    def __init__(self, exp: Experiment, chance: float, num_classes: int, at: int, echo: Callable[[str], None]):
        self.exp, self.chance, self.num_classes, self.at, self.echo = exp, chance, num_classes, at, echo
        self.done = False

    def __call__(self, study) -> bool | None:
        """The gate's answer at the first look (None before it, or once it has been said)."""
        if self.done:
            return None
        table = trainings_table(study, self.exp.search_space.augmentation_names)
        if not len(table) or table["trial"].nunique() < self.at:
            return None
        self.done = True
        check = check_learned(table, self.exp.search_space.augmentation_names, self.chance,
                              margin=self.exp.equivalence_margin)
        if not check.ok:
            t = self.exp.train
            self.echo("warning: " + not_learned_line(check, t.epochs, t.learning_rate, self.exp.dataset.image_size,
                                                     self.num_classes, when=f" in the first {self.at} trials",
                                                     consequence=SWEEP_CONSEQUENCE))
        return check.ok
