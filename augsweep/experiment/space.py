"""The only place that calls `trial.suggest_*`: a `SearchSpace` + an Optuna trial -> `TrialConfig`; and the
one owner of the flat-key format `aug_<name>[_<param>]` those suggestions (and every store) use
(`aug_key` writes a key, `parse_aug_key` reads one back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .keys import default
from .schema import Choice, FloatRange, IntRange, SearchSpace

AUG_PREFIX = "aug_"


def aug_key(name: str, param: str | None = None) -> str:
    """The flat key of an augmentation's switch (`aug_flip`) or of one of its parameters (`aug_rotation_factor`)."""
    return f"{AUG_PREFIX}{name}" if param is None else f"{AUG_PREFIX}{name}_{param}"


def parse_aug_key(key: str, names=()) -> tuple[str, str | None] | None:
    """Inverse of `aug_key`: (name, param or None for the switch), None for a key that is not an augmentation's.
    The longest of the known `names` that the key starts with is the name (a name may hold `_`); a key of no
    known name splits at its first `_` after the prefix."""
    if not key.startswith(AUG_PREFIX):
        return None
    rest = key[len(AUG_PREFIX):]
    for name in sorted(names, key=len, reverse=True):
        if rest == name:
            return name, None
        if rest.startswith(f"{name}_"):
            return name, rest[len(name) + 1:]
    name, _, param = rest.partition("_")
    return (name, param) if param else (rest, None)


@dataclass(frozen=True)
class TrialConfig:
    """One configuration to train: model shape, learning rate, and the augmentations that are on."""

    depth: int
    filters: int = default("search_space.filters")
    dense_units: int = default("search_space.dense_units")
    learning_rate: float = default("train.learning_rate")
    augmentations: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()

    @property
    def enabled(self) -> dict[str, dict[str, Any]]:
        """Augmentation name -> its parameters, for those that are on."""
        return {name: dict(params) for name, params in self.augmentations}

    def flat(self, all_augmentations: list[str] | tuple[str, ...] = ()) -> dict[str, Any]:
        """Flat snake_case params (`depth`, `aug_flip`, `aug_rotation_factor`) for Optuna/MLflow."""
        out: dict[str, Any] = {
            "depth": self.depth,
            "filters": self.filters,
            "dense_units": self.dense_units,
            "learning_rate": self.learning_rate,
        }
        enabled = self.enabled
        for name in dict.fromkeys([*all_augmentations, *enabled]):
            out[aug_key(name)] = name in enabled
            for p, v in enabled.get(name, {}).items():
                out[aug_key(name, p)] = v
        return out

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> "TrialConfig":
        """Inverse of `flat` (ignores keys it does not know, such as seeds)."""
        augs = []
        # A switch is the key whose value is a bool: its name is the rest of the key, underscores and all.
        names = [k[len(AUG_PREFIX):] for k, v in flat.items() if k.startswith(AUG_PREFIX) and isinstance(v, bool)]
        for name in names:
            if not flat[aug_key(name)]:
                continue
            prefix = aug_key(name, "")
            params = tuple((k[len(prefix):], flat[k]) for k in flat if k.startswith(prefix))
            augs.append((name, params))
        return cls(
            depth=int(flat["depth"]),
            filters=int(flat.get("filters", cls.filters)),
            dense_units=int(flat.get("dense_units", cls.dense_units)),
            learning_rate=float(flat.get("learning_rate", cls.learning_rate)),
            augmentations=tuple(augs),
        )

    def parameters(self) -> str:
        """The augmentations with their parameters, e.g. `contrast(factor=0.31), flip(mode=horizontal)`."""
        def text(v):
            return f"{v:.3g}" if isinstance(v, float) else str(v)

        return ", ".join(f"{name}({', '.join(f'{k}={text(v)}' for k, v in params)})" if params else name
                         for name, params in self.augmentations) or "none"

    def label(self) -> str:
        """Short human name, e.g. `d3 flip+rotation` or `d2 none` (`base flip` with a pretrained base, depth 0)."""
        augs = "+".join(name for name, _ in self.augmentations) or "none"
        return f"{f'd{self.depth}' if self.depth else 'base'} {augs}"


def _suggest(trial, name: str, param, grid: bool):
    """Suggest one value; fixed values and (in grid mode) magnitudes are not searched."""
    if isinstance(param, Choice) and len(param.values) == 1:
        return param.values[0]
    if grid:
        return param.midpoint()
    if isinstance(param, IntRange):
        return trial.suggest_int(name, param.low, param.high)
    if isinstance(param, FloatRange):
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    return trial.suggest_categorical(name, list(param.values))


def sample(trial, space: SearchSpace, default_learning_rate: float, grid: bool = False) -> TrialConfig:
    """Ask the trial for a configuration. In grid mode only depth and on/off are searched."""
    # Depth is searched in grid mode too (GridSampler answers suggest_int from its grid).
    depth = _suggest(trial, "depth", space.depth, grid=False)
    filters = _suggest(trial, "filters", space.filters, grid)
    dense = _suggest(trial, "dense_units", space.dense_units, grid)
    lr = default_learning_rate if space.learning_rate is None else _suggest(
        trial, "learning_rate", space.learning_rate, grid
    )
    augs = []
    for name, params in space.augmentations:
        if trial.suggest_categorical(aug_key(name), [False, True]):
            values = tuple((p, _suggest(trial, aug_key(name, p), v, grid)) for p, v in params)
            augs.append((name, values))
    return TrialConfig(int(depth), int(filters), int(dense), float(lr), tuple(augs))


def grid_search_space(space: SearchSpace) -> dict[str, list]:
    """Optuna `GridSampler` space: every augmentation on/off x every depth (magnitudes at midpoints)."""
    depth = space.depth.values() if isinstance(space.depth, IntRange) else list(space.depth.values)
    grid: dict[str, list] = {"depth": depth}
    for name in space.augmentation_names:
        grid[aug_key(name)] = [False, True]
    return grid


def grid_size(space: SearchSpace) -> int:
    """Number of configurations in the full factorial grid."""
    n = 1
    for values in grid_search_space(space).values():
        n *= len(values)
    return n
