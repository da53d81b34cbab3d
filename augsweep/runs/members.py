"""`--members auto|N`: how many seed replicates of a trial train as one compiled program (`training.group`).

One small convnet's training is mostly per-step framework overhead, which a program of several members pays once
(bench/group.py). The members of one program are the R seed replicates of one trial: one configuration, each
member with its own seeds, data, loss, optimizer state, curves and end, so its numbers equal its one-at-a-time
training's (tests/test_group_training.py). `1` is the reference path, one training at a time.
"""

from __future__ import annotations

from ..experiment.schema import Experiment

AUTO = "auto"


def auto_members(exp: Experiment) -> tuple[int, str]:
    """`--members auto`: (members per program, the rule in words)."""
    if exp.model.uses_base:
        return 1, "one per program: a pretrained base trains one member per program"
    if exp.dataset.source == "folder" and exp.dataset.stream == "true":
        return 1, "one per program: streamed image folders train one member per program"
    return exp.repeats, f"a trial's {exp.repeats} seed replicates in one program"


def resolve_members(members, exp: Experiment) -> tuple[int, str]:
    """`--members` / the API's `members`: (count, the rule in words; "" for an explicit count). A count above the
    trial's repeats trains them all in one program."""
    if members == AUTO:
        return auto_members(exp)
    return max(1, min(int(members), exp.repeats)), ""


def describe(members: int, rule: str) -> str:
    """The header's words for the rule, e.g. `4 members per program (--members auto: ...)`."""
    what = "one training per program" if members == 1 else f"{members} members per program"
    return what + (f" (--members auto: {rule})" if rule else "")
