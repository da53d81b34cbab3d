"""The only place that calls `trial.suggest_*`: a `SearchSpace` + an Optuna trial -> `TrialConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from .keys import default
from .schema import Choice, FloatRange, IntRange, SearchSpace


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
            out[f"aug_{name}"] = name in enabled
            for p, v in enabled.get(name, {}).items():
                out[f"aug_{name}_{p}"] = v
        return out

    @classmethod
    def from_flat(cls, flat: Mapping[str, Any]) -> "TrialConfig":
        """Inverse of `flat` (ignores keys it does not know, such as seeds)."""
        augs = []
        names = [k[4:] for k, v in flat.items() if k.startswith("aug_") and isinstance(v, bool)]
        for name in names:
            if not flat[f"aug_{name}"]:
                continue
            prefix = f"aug_{name}_"
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
        if trial.suggest_categorical(f"aug_{name}", [False, True]):
            values = tuple((p, _suggest(trial, f"aug_{name}_{p}", v, grid)) for p, v in params)
            augs.append((name, values))
    return TrialConfig(int(depth), int(filters), int(dense), float(lr), tuple(augs))


def grid_search_space(space: SearchSpace) -> dict[str, list]:
    """Optuna `GridSampler` space: every augmentation on/off x every depth (magnitudes at midpoints)."""
    depth = space.depth.values() if isinstance(space.depth, IntRange) else list(space.depth.values)
    grid: dict[str, list] = {"depth": depth}
    for name in space.augmentation_names:
        grid[f"aug_{name}"] = [False, True]
    return grid


def grid_size(space: SearchSpace) -> int:
    """Number of configurations in the full factorial grid."""
    n = 1
    for values in grid_search_space(space).values():
        n *= len(values)
    return n
