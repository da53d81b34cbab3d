"""`--members auto|N`: how many seed replicates of a trial train as one compiled program (`training.group`).

One small convnet's training is mostly per-step framework overhead, which a program of several members pays once
(bench/group.py). The members of one program are the R seed replicates of one trial, and with a count above R
those of further queued design points of its block (`runs.cotrain`): each member with its own configuration,
seeds, data, loss, optimizer state, curves and end. An explicit count trains branches (`training.group`), so its
numbers equal its one-at-a-time training's bit for bit (tests/test_group_training.py, tests/test_cotrain.py);
`auto` trains with the stacked engine where it applies (`training.stacked`: about 3x less CPU per training, within
rounding of one at a time, reproduced exactly through the engine). `1` is the reference path.
"""

from __future__ import annotations

from ..experiment.schema import Experiment

AUTO = "auto"
# `--members auto` on TensorFlow: a factorial block's queued points of one depth in one stacked program, at most this
# many members (the default's 8 points of a depth x 4 replicates = 32). bench/group.py: 3.2x less CPU per training
# than alone at 16 and 32 members, no further gain at 32; memory grows with the members.
AUTO_STACKED = 64


def one_per_program(exp: Experiment) -> str:
    """Why `exp`'s trainings train one per program whatever `--members auto` would group ("" when nothing stops
    grouping them): a pretrained base, streamed image folders."""
    if exp.model.uses_base:
        return "one per program: a pretrained base trains one member per program"
    if exp.dataset.source == "folder" and exp.dataset.stream == "true":
        return "one per program: streamed image folders train one member per program"
    return ""


def auto_members(exp: Experiment) -> tuple[int, str]:
    """`--members auto`: (members per program, the rule in words)."""
    alone = one_per_program(exp)
    if alone:
        return 1, alone
    from .. import runtime

    if runtime.backend() == "tensorflow" and exp.sampler == "factorial" and not exp.train.mixed_precision:
        return AUTO_STACKED, (f"the stacked engine, up to {AUTO_STACKED // exp.repeats} queued design points of a "
                              f"block's depth with their {exp.repeats} seed replicates each (about 3x less CPU per "
                              f"training than one at a time; within rounding of it, reproduced exactly)")
    return exp.repeats, f"a trial's {exp.repeats} seed replicates in one program"


def engine_for(members) -> str:
    """How a program of members computes (`runs.repeat.group_engine`): `auto` (the stacked engine where it applies)
    for `--members auto`; an explicit count trains branches, each member bit for bit its one-at-a-time training."""
    return "auto" if members == AUTO else "branches"


def resolve_members(members, exp: Experiment) -> tuple[int, str]:
    """`--members` / the API's `members`: (count, the rule in words; "" for an explicit count). A count above the
    trial's repeats R trains ceil(N/R) design points of a block per program (`runs.cotrain`): the trial's R
    replicates and those of queued points, so the count is rounded up to whole design points."""
    if members == AUTO:
        return auto_members(exp)
    n = max(1, int(members))
    return (n if n <= exp.repeats else points(n, exp.repeats) * exp.repeats), ""


def points(members: int, repeats: int) -> int:
    """Design points per program: ceil(members / repeats) above a trial's repeats, else 1."""
    return -(-members // repeats) if members > repeats else 1


def describe(members: int, rule: str, repeats: int | None = None) -> str:
    """The header's words for the rule, e.g. `4 members per program (--members auto: ...)` or `64 members per
    program (16 design points x 4 seed replicates)`."""
    what = "one training per program" if members == 1 else f"{members} members per program"
    if repeats and members > repeats:
        what += (f" ({points(members, repeats)} design points x {repeats} seed replicates: queued points of a "
                 f"block train with the trial a worker starts)")
    return what + (f" (--members auto: {rule})" if rule else "")
