"""Co-training: a trial's seed replicates and those of queued design points of its block, as one program.

`--members N` with N above the trial's repeats R trains ceil(N/R) design points per program: the trial a worker
starts, plus up to ceil(N/R) - 1 further points of the same block that are still queued (Optuna `WAITING` trials
the block planner enqueued, each with its fixed parameters, block and seed attempt). Every member is the training
it would be alone (`training.group`), so a queued point's outcomes are its one-at-a-time outcomes: they wait in a
process-local `CoTrainCache`, keyed by everything that determines the training, until this process runs that
trial through the ordinary loop, which then replays them (`repeat.replay`: epochs to tracking and to the pruner in
repeat order, pruning decided then) instead of training. Optuna and MLflow see what one-at-a-time training gives.

What it can waste: a queued point another process starts first is trained there again, and its entry here is
dropped unused (`CoTrainCache.wasted`); so is an entry whose trial the sweep never reaches (a stop rule, the
budget). With `--workers` > 1 each process co-trains the points after its own, the very ones the others pop next.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from ..experiment import space
from ..experiment.schema import Experiment
from ..experiment.seeding import RepeatSeeds, point_seeds
from ..experiment.space import TrialConfig
from ..stores import records as rec
from ..training import group as group_training
from ..training.checks import chance_loss, stop_on_non_finite
from ..training.data import Dataset
from .repeat import RepeatOutcome, save_model, train_members

MAX_ENTRIES = 256  # queued design points held at once: a few blocks' worth
MAX_BYTES = 256 * 2 ** 20  # their saved models and histories together
# A program holds a copy of each member's training and validation arrays (the stacked engine stacks them): design
# points join a program only while those copies stay within this many bytes (the default's digits: 0.5 MB a member;
# 2,000 RGB images of 64x64 with as many for validation: about 200 MB a member, so two points of 4 replicates).
PROGRAM_DATA_BYTES = 2 * 2 ** 30


def points_that_fit(datasets: Sequence[Dataset], points: int) -> int:
    """How many of `points` design points (each with these replicates' data) one program can hold within
    `PROGRAM_DATA_BYTES`; at least the trial's own."""
    per_point = sum(int(getattr(a, "nbytes", 0)) for d in datasets for a in (d.x_train, d.y_train, d.x_val, d.y_val))
    return max(1, min(points, PROGRAM_DATA_BYTES // max(per_point, 1)))


@dataclass
class Point:
    """A design point to train: its trial number, configuration and seed replicates (their seeds and data)."""

    number: int
    config: TrialConfig
    seeds: list[RepeatSeeds]
    datasets: list[Dataset]


class SavedModel(bytes):
    """A repeat's trained network as the bytes of its `.keras` file (`repeat.save_model`), in place of the model."""


@dataclass
class Trained:
    """A queued design point's outcomes, kept until its trial runs: per repeat the outcome whose `model` is None,
    or for the repeat a completed trial keeps as its artifact, its `SavedModel`."""

    number: int
    outcomes: list[RepeatOutcome]
    members: int = 0  # members of the program that trained it
    points: int = 0  # design points of that program
    beside: bool = False  # trained in a helper process (`runs.sidecar`)

    def nbytes(self) -> int:
        return sum(len(o.model) if isinstance(o.model, SavedModel) else 0 for o in self.outcomes) + sum(
            int(o.history.memory_usage(deep=True).sum()) for o in self.outcomes)


def training_key(study_name: str, exp: Experiment, config: TrialConfig, seeds: Sequence[RepeatSeeds],
                 datasets: Sequence[Dataset]) -> tuple:
    """Everything that determines a design point's trainings: the study, the experiment's training and network
    settings, the configuration (its flat parameters and depth), each member's seeds (the retry attempt is in
    them) and the fingerprint of each member's data split."""
    flat = config.flat(exp.search_space.augmentation_names)
    return (study_name, repr(exp.train), repr(exp.model), repr(sorted(flat.items())), repr(config), config.depth,
            tuple((s.repeat, s.init, s.aug, s.order) for s in seeds),
            tuple(d.fingerprint for d in datasets))


class CoTrainCache:
    """Queued design points' outcomes by `training_key`, oldest dropped first past `MAX_ENTRIES` or `MAX_BYTES`."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES):
        self.entries: OrderedDict[tuple, Trained] = OrderedDict()
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self.trained = 0  # design points co-trained for later
        self.replayed = 0  # of those, taken by their trial
        self.wasted = 0  # of those, dropped unused (another process ran the trial, or the sweep never did)
        self.pending: set[int] = set()  # trial numbers a helper process is training (`runs.sidecar`)

    def put(self, key: tuple, entry: Trained) -> None:
        self.entries[key] = entry
        self.trained += 1
        while self.entries and (len(self.entries) > self.max_entries
                                or sum(e.nbytes() for e in self.entries.values()) > self.max_bytes):
            self.entries.popitem(last=False)
            self.wasted += 1

    def take(self, key: tuple) -> Trained | None:
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.replayed += 1
        return entry

    def holds(self, number: int) -> bool:
        """Whether the trial's outcomes are here or being trained in a helper process."""
        return number in self.pending or any(e.number == number for e in self.entries.values())

    def drop_except(self, waiting: set[int]) -> None:
        """Drop the entries whose trial is no longer queued (another process started it)."""
        for key in [k for k, e in self.entries.items() if e.number not in waiting]:
            del self.entries[key]
            self.wasted += 1


def queued_points(study, trial, exp: Experiment, grid: bool, data, cache: CoTrainCache, limit: int | None,
                  depth: int | None = None) -> list[Point]:
    """Up to `limit` (None: all) queued design points of `trial`'s block, in the order the queue hands them out,
    that this process has not trained yet; drops the cache's entries whose trial is no longer queued.
    `data(seeds)`: the replicate's dataset; `depth`: only points of that depth (a stacked program holds one network
    shape)."""
    import optuna
    from optuna.trial import TrialState

    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    cache.drop_except({t.number for t in waiting})
    if rec.BLOCK not in trial.user_attrs or (limit is not None and limit <= 0):
        return []
    block = int(trial.user_attrs[rec.BLOCK])
    points = []
    for t in waiting:
        fixed = t.system_attrs.get("fixed_params")
        if (t.number == trial.number or fixed is None or int(t.user_attrs.get(rec.BLOCK, -1)) != block
                or cache.holds(t.number)):
            continue
        try:  # the configuration the trial will sample: its fixed parameters asked for as `Objective` asks
            config = space.sample(optuna.trial.FixedTrial(dict(fixed)), exp.search_space, exp.train.learning_rate,
                                  grid=grid)
        except (ValueError, KeyError, TypeError):
            continue  # a parameter the queue does not fix: the trial's sampler decides it, so it is not known here
        if depth is not None and config.depth != depth:
            continue
        seeds = point_seeds(exp.seed, block, exp.repeats, int(t.user_attrs.get(rec.SEED_ATTEMPT, 0)))
        points.append(Point(t.number, config, seeds, [data(s) for s in seeds]))
        if len(points) == limit:
            break
    return points


def _artifact_repeat(outcomes: Sequence[RepeatOutcome], chance: float) -> int | None:
    """The repeat whose model a completed trial keeps (`Objective._train`'s rule: the latest best finite repeat)."""
    best, keep = float("inf"), None
    for r, done in enumerate(outcomes):
        value = done.check(chance)["best_val_loss"]
        if value == value and value != float("inf") and value <= best:
            best, keep = value, r
    return keep


def train_points(own: Point, others: Sequence[Point], exp: Experiment, live: Sequence[Sequence],
                 watch: Callable[[], Sequence] = tuple, engine: str = "branches"
                 ) -> tuple[list[RepeatOutcome], list[Trained]]:
    """Train `own`'s repeats and those of `others` as one program. Returns `own`'s outcomes (live models, valid
    until the next build) and each of the others' outcomes with the model its trial would keep saved as bytes.
    `live[r]`: callbacks that see `own`'s repeat r as it trains; `watch()`: fresh callbacks for every other
    member (an interrupt check keeps firing after `own`'s members have all ended). `engine`: "branches"
    (`training.group`) or "stacked" (`training.stacked`, the points then share one network shape)."""
    points = [own, *others]
    outcomes = _program(points, exp, engine,
                        lambda p, r: list(live[r]) if p is own and r < len(live) else list(watch()))
    members = sum(len(p.seeds) for p in points)
    return outcomes[0], [for_later(p, mine, exp, members, len(points)) for p, mine in zip(others, outcomes[1:])]


def _program(points: Sequence[Point], exp: Experiment, engine: str,
             callbacks: Callable[[Point, int], list]) -> list[list[RepeatOutcome]]:
    """Train every repeat of `points` as one program (`callbacks(point, r)`: that member's callbacks, after the
    non-finite stop); each point's outcomes in repeat order."""
    members = [group_training.Member(p.config, d, s, [stop_on_non_finite(), *callbacks(p, r)])
               for p in points for r, (s, d) in enumerate(zip(p.seeds, p.datasets))]
    done, outcomes = train_members(members, exp.train, exp.model, engine), []
    for p in points:
        outcomes.append(done[:len(p.seeds)])
        done = done[len(p.seeds):]
    return outcomes


def for_later(point: Point, outcomes: Sequence[RepeatOutcome], exp: Experiment, members: int, points: int) -> Trained:
    """A queued design point's trained repeats as they wait for its trial: the model its trial would keep saved as
    bytes (the next build frees the program's networks), the other repeats' models dropped."""
    keep = _artifact_repeat(outcomes, chance_loss(point.datasets[0].num_classes))
    kept = []
    for r, o in enumerate(outcomes):
        model = None
        if r == keep:
            with tempfile.TemporaryDirectory() as tmp:
                model = SavedModel(save_model(o, point.config, exp.train, Path(tmp) / "model.keras").read_bytes())
        kept.append(replace(o, model=model))
    return Trained(point.number, kept, members, points)


def train_for_later(points: Sequence[Point], exp: Experiment, engine: str,
                    watch: Callable[[], Sequence] = tuple) -> list[Trained]:
    """Train queued design points as one program, none of them a trial running now (`runs.sidecar`)."""
    outcomes = _program(points, exp, engine, lambda p, r: list(watch()))
    members = sum(len(p.seeds) for p in points)
    return [for_later(p, mine, exp, members, len(points)) for p, mine in zip(points, outcomes)]
