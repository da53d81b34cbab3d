"""An experiment's identity: the hash of everything that must not change when a study is resumed (the budget
and the other keys `keys.KEYS` marks outside the identity may), the identities a study of it stored before a
late key existed, and what changed, in words, when a stored identity no longer matches."""

from __future__ import annotations

import copy
import hashlib
from itertools import combinations, product

import yaml

from .. import augment
from . import keys
from .schema import Experiment

REVISIONS = "augmentation_revisions"  # in the identity only while an augmentation of the space changed meaning


def _identity_part(exp: Experiment, revisions: dict[str, int] | None = None) -> dict:
    """The resolved experiment without the keys the table marks as outside the identity (the budget, ...), plus the
    revision of each augmentation of its space whose meaning changed (`augment.revisions`; default: today's)."""
    resolved = exp.resolved()
    for key in keys.outside_identity():
        resolved.pop(key, None)
    revisions = augment.revisions(exp.search_space.augmentation_params()) if revisions is None else revisions
    if revisions:
        resolved[REVISIONS] = dict(sorted(revisions.items()))
    return resolved


def _hash(resolved: dict) -> str:
    return hashlib.sha256(yaml.safe_dump(resolved, sort_keys=True).encode()).hexdigest()


def identity(exp: Experiment) -> str:
    """Hash of everything that must not change when a study is resumed (the budget may)."""
    return _hash(_identity_part(exp))


def _with_older_keys(resolved: dict) -> set[str]:
    """The hash of `resolved` and those of it with any key the table marks `late=HASHED` left out while at its
    default (how a study created before that key existed stored its identity)."""
    at_default = [key for key in keys.late(keys.HASHED) if keys.lookup(resolved, key.name) == key.default]
    found = set()
    for n in range(len(at_default) + 1):
        for left_out in combinations(at_default, n):
            older = copy.deepcopy(resolved)
            for key in left_out:
                keys.lookup(older, key.section).pop(key.leaf)
            found.add(_hash(older))
    return found


def identities(exp: Experiment) -> set[str]:
    """`identity(exp)` and the identities a study of this same experiment stored before a key the table marks
    `late=HASHED` existed (that key at its default left out): a study to resume may hold any of them."""
    return _with_older_keys(_identity_part(exp))


def outdated(exp: Experiment, known: str) -> list[str]:
    """When `known` is the identity of this experiment as it was before one of its augmentations changed meaning,
    what changed, in words (a study of the earlier meaning must not be resumed as this one); else []."""
    space = exp.search_space.augmentation_params()
    now = augment.revisions(space)
    for earlier in product(*[[(name, n) for n in range(1, number + 1)] for name, number in now.items()]):
        before = {name: n for name, n in earlier if n > 1}
        if before != now and known in _with_older_keys(_identity_part(exp, before)):
            return augment.changes(space, before)
    return []


_ABSENT = object()


def _short(value, limit: int = 40) -> str:
    """A value as one short line of YAML flow style (`{factor: 0.3}`, `[2, 3]`, `none` when absent)."""
    if value is _ABSENT:
        return "none"
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {_short(v, limit)}" for k, v in value.items()) + "}"
    elif isinstance(value, (list, tuple)):
        text = "[" + ", ".join(_short(v, limit) for v in value) + "]"
    else:
        text = "null" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def identity_changes(stored: dict | None, exp: Experiment) -> list[str]:
    """`train.epochs: 3 → 15` for each key of the identity whose value differs between the resolved experiment
    a study stored (`records.ATTR_EXPERIMENT`) and `exp`, in key order; [] when the study stored none."""
    if not isinstance(stored, dict):
        return []
    before = copy.deepcopy(stored)
    for key in keys.outside_identity():
        before.pop(key, None)
    # A key added late that the stored experiment predates reads as its default, as `identities` accepts it.
    for key in keys.late(keys.HASHED):
        section = keys.lookup(before, key.section)
        if isinstance(section, dict) and key.leaf not in section:
            section[key.leaf] = key.default
    out = []

    def walk(old, new, name):
        if isinstance(old, dict) and isinstance(new, dict):
            for k in sorted(set(old) | set(new), key=str):
                walk(old.get(k, _ABSENT), new.get(k, _ABSENT), f"{name}.{k}" if name else str(k))
        elif old != new:
            out.append(f"{name}: {_short(old)} → {_short(new)}")

    now = _identity_part(exp)
    now.pop(REVISIONS, None)  # the stored experiment never holds it; `outdated` names a change of meaning
    before.pop(REVISIONS, None)
    walk(before, now, "")
    return out
