"""`sampler: factorial`: the attribution design run in replicated blocks, refitted after each.

Every design point is an ordinary Optuna trial, enqueued with its parameters and its block (so
MLflow logging, resume, workers, repair and the report keep working). Block b trains with fresh
seeds (repeat r uses seed index b*R + r) shared by all its points. When a block has finished, the
effects are refitted under the one verdict rule (`inference`, alpha spent over the cap's looks)
and, with `stop: decided`, the sweep stops as soon as every augmentation is decided.
"""

from __future__ import annotations

from typing import Callable

from .. import inference
from ..experiment import design
from ..experiment.schema import Experiment
from ..learned import check_learned
from ..stores import records as rec
from ..stores.records import ATTR_DESIGN, ATTR_STOPPED
from ..stores.recovery import retry_once
from ..stores.study import trainings_table


class BlockPlanner:
    """Decides, under the study's start lock, whether a worker runs a queued point, waits, or stops."""

    def __init__(self, exp: Experiment, budget: int, echo: Callable[[str], None], chance: float | None = None):
        self.exp, self.echo, self.chance = exp, echo, chance
        self.plan = design.plan_for(exp.search_space, exp.trials, sequential=exp.stop == "decided")
        self.block_size = design.block_size(exp.search_space, self.plan)
        self.max_blocks = max(1, budget // self.block_size)
        self.budget = self.max_blocks * self.block_size
        if self.budget != budget:  # a design runs whole blocks only: say what runs instead of what was asked
            echo(f"note: trials={budget} is not a whole number of design blocks ({self.block_size} runs each): "
                 f"running {self.max_blocks} block(s), {self.budget} trials"
                 + (" (the smallest design that estimates every effect)" if budget < self.block_size else ""))
        self.looked: set[int] = set()
        self.planned_blocks: int | None = None  # the cap of the plan the study started with (`adopt_plan`)

    def describe(self) -> dict:
        """What the study records about its design (the report reads it back). `planned_blocks`: the cap the
        study's first plan had, so a `--trials` change continues that plan's alpha spending
        (`inference.plan_levels`) instead of starting a second one."""
        return {"runs": self.plan.runs, "resolution": self.plan.resolution or "full",
                "generators": list(self.plan.generators), "depths": design.depth_levels(self.exp.search_space),
                "block_size": self.block_size, "max_blocks": self.max_blocks, "stop": self.exp.stop,
                "magnitudes": design.space_magnitudes(self.exp.search_space, self.plan),
                "planned_blocks": self.planned_blocks or self.max_blocks}

    def adopt_plan(self, recorded: dict | None) -> None:
        """Keep the first plan's cap from what the study recorded (its own cap when it recorded none yet)."""
        if self.planned_blocks is None and recorded:
            self.planned_blocks = int(recorded.get("planned_blocks", recorded.get("max_blocks", self.max_blocks)))

    def blocks_enqueued(self, trials) -> int:
        blocks = [int(t.user_attrs[rec.BLOCK]) for t in trials if rec.BLOCK in t.user_attrs]
        return max(blocks) + 1 if blocks else 0

    def next_action(self, study) -> str:
        """`run` (a queued point is waiting), `wait` (the block is finishing elsewhere) or `stop`."""
        import optuna

        if ATTR_STOPPED in study.user_attrs:
            return "stop"
        self.adopt_plan(study.user_attrs.get(ATTR_DESIGN))
        if study.user_attrs.get(ATTR_DESIGN) != self.describe():
            study.set_user_attr(ATTR_DESIGN, self.describe())
        trials = study.get_trials(deepcopy=False)
        if self.retry_failed_points(study, trials):
            trials = study.get_trials(deepcopy=False)
        states = [t.state for t in trials]
        if optuna.trial.TrialState.WAITING in states:
            return "run"
        if optuna.trial.TrialState.RUNNING in states:
            return "wait"
        blocks = self.blocks_enqueued(trials)
        if blocks and self.exp.stop == "decided":
            verdicts = self.look(study, blocks)
            if not self.learns(verdicts):  # more seeds at the same budget will not make it learn
                study.set_user_attr(ATTR_STOPPED, f"the network did not learn in {blocks} block(s): no verdicts "
                                    f"(change the training; the report says what)")
                return "stop"
            if verdicts.should_stop(blocks, self.max_blocks):  # the rule the tests simulate (`inference.decided`)
                study.set_user_attr(ATTR_STOPPED, f"every augmentation decided after block {blocks}"
                                    if verdicts.all_decided()
                                    else f"cap of {self.max_blocks} blocks reached (trials: {self.budget})")
                return "stop"
        if blocks < self.max_blocks:
            self.enqueue(study, blocks)
            return "run"
        return "stop"

    def learns(self, verdicts) -> bool:
        """The report's gate (`learned.check_learned`) on the rows behind this look's verdicts; True when the
        chance loss is unknown."""
        if self.chance is None or not len(verdicts.table):
            return True
        return check_learned(verdicts.table, self.exp.search_space.augmentation_names, self.chance,
                             margin=self.exp.equivalence_margin).ok

    def retry_failed_points(self, study, trials) -> int:
        """Queue a failed design point once more (same block and parameters, fresh seeds in the same slots),
        so a failure does not leave a hole in its block; a retry that fails too leaves a hole, and the
        verdicts then use only the seed replicates that are complete (`inference.complete_replicates`)."""
        import optuna

        retried = rec.retried_numbers(trials)
        queued = 0
        for t in trials:
            record = rec.TrialRecord.from_trial(t)
            if (t.state == optuna.trial.TrialState.FAIL and record.block is not None
                    and t.number not in retried and retry_once(study, t, fresh_seeds=True) is not None):
                self.echo(f"design point {record.design_point} of block {record.block + 1} "
                          f"failed (t{t.number:02d}); queued once more on fresh seeds")
                queued += 1
        return queued

    def enqueue(self, study, block: int) -> None:
        points = design.space_block(self.exp.search_space, self.plan, self.exp.seed, block)
        for i, params in enumerate(points):
            study.enqueue_trial(params, user_attrs=rec.design_attrs(block, i), skip_if_exists=False)
        self.echo(f"block {block + 1}/{self.max_blocks}: {len(points)} design points queued "
                  f"({design.describe_plan(self.exp.search_space, self.plan)}), seeds {block * self.exp.repeats}"
                  f"..{(block + 1) * self.exp.repeats - 1}")

    def look(self, study, blocks: int):
        """Refit the effects after `blocks` finished blocks and say what is decided."""
        augs = self.exp.search_space.augmentation_names
        verdicts = verdicts_at(trainings_table(study, augs), self.exp, self.describe(), blocks)
        if blocks not in self.looked:
            self.looked.add(blocks)
            self.echo(look_line(verdicts.effects, blocks, self.max_blocks, verdicts.decided()))
        return verdicts


def verdicts_at(table, exp: Experiment, recorded: dict, looks_done: int):
    """The verdicts of a factorial sweep's table at one look: the report's rule (`decide_sweep` under
    `VerdictRule.for_sweep` of the design the study records) on the complete seed replicates of the first
    `looks_done` blocks."""
    rule = inference.VerdictRule.for_sweep(exp, recorded)
    return inference.decide_sweep(table, exp.search_space.augmentation_names, rule, points=int(recorded["block_size"]),
                                  finished=range(looks_done))


def look_line(frame, blocks: int, max_blocks: int, decided_by: dict | None = None) -> str:
    """`look 2/4: decided flip hurts, contrast negligible; undecided warp (mde 0.031, ~1 more block)`; an
    augmentation decided by its conditional effects (a decided interaction) reads `warp: by interaction`."""
    done = {r.augmentation: (decided_by or {}).get(r.augmentation, r.verdict != "undecided")
            for r in frame.itertuples()}
    # decided by its conditional effects when its marginal verdict is not what counts (a decided interaction)
    decided = [f"{r.augmentation} {r.verdict}" if r.verdict != "undecided" else f"{r.augmentation}: by interaction"
               for r in frame.itertuples() if done[r.augmentation]]
    open_ = []
    for r in frame.itertuples():
        if not done[r.augmentation]:
            more = getattr(r, "blocks_to_decide", float("nan"))
            beyond = more == more and blocks + more > max_blocks
            hint = (f", ~{int(more)} more block(s){' beyond the cap' if beyond else ''}" if more == more
                    else ", not within 100 more blocks")
            open_.append(f"{r.augmentation} (mde {r.mde:.3g}{hint})")
    return (f"look {blocks}/{max_blocks}: decided {', '.join(decided) or 'none'}; "
            f"undecided {', '.join(open_) or 'none'}")
