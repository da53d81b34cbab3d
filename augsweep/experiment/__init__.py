"""What to run: the experiment schema, YAML loading and validation, the search space and the paired seeds;
imports only `augsweep.augment` (and Optuna only through the trial object it is handed).

`keys.KEYS` owns the experiment file's keys: type, range or choices, default, whether a key is part of a study's
identity, and whether it was added late. The dataclasses' defaults, the loader's checks and allowed keys,
`Experiment.resolved()`, the study identity and the experiment-file page of the docs follow it."""

from .load import load_experiment, parse_search_space
from .schema import (
    AblationConfig,
    BaseConfig,
    Choice,
    ConfigError,
    DatasetConfig,
    Experiment,
    FloatRange,
    IntRange,
    ModelConfig,
    SearchSpace,
    TrainConfig,
    max_depth,
    space_to_dict,
)

__all__ = ["AblationConfig", "BaseConfig", "Choice", "ConfigError", "DatasetConfig", "Experiment", "FloatRange",
           "IntRange", "ModelConfig", "SearchSpace", "TrainConfig", "load_experiment", "max_depth",
           "parse_search_space",
           "space_to_dict"]
