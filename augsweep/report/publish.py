"""Using the answer: the recommended augmentation block written next to the report, the best configuration's
model registered in MLflow as `<study>-best`, and the answer as the experiment's description.

Reads the stores and writes files and MLflow entries; never trains. The model is the one the sweep saved: each
COMPLETE trial's run holds `model.keras`, its best repeat's trained network with its augmentations inside
(`runs.repeat.save_model`), so the best configuration's best seed is a download, not a retraining.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..experiment.schema import Experiment
from ..experiment.seeding import RepeatSeeds
from ..stores import registry
from ..stores.records import TAG_MODEL_REPEAT
from ..stores.study import Stores
from .export import Recommendation, load_model_lines, model_input_text, recommend, write_block
from .inputs import SweepData
from .render import display


@dataclass
class Published:
    """What `publish` did: the recommendation, the block's files, the registered model version (or None) and the
    Python lines that load it from any folder."""

    recommendation: Recommendation | None = None
    files: tuple[Path, ...] = ()
    model_version: object = None
    notes: tuple[str, ...] = ()
    load_lines: tuple[str, ...] = ()


def verdict_table(effects: pd.DataFrame) -> str:
    """The verdicts as a Markdown table (what the experiment's description shows)."""
    cols = ["augmentation", "effect", "ci_low", "ci_high", "verdict", "source"]
    return display(effects[cols]).to_markdown(index=False)


def note_text(title: str, answer: str, effects: pd.DataFrame, choice: Recommendation | None, name: str) -> str:
    """The experiment's description: the answer paragraph, the verdict table, the recommended block.

    The answer comes first: MLflow's experiment page shows the description collapsed to its first line (an
    expand button shows the rest), and the experiment's name is already the page's title."""
    parts = [answer, verdict_table(effects)]
    if choice is not None:
        parts.append(f"Recommended augmentation block: {choice.config.parameters()} ({choice.why}); registered model "
                     f"`{name}`, files `augmentation.py` and `augmentation.keras` beside the report.")
    parts.append(f"_{title}_")
    return "\n\n".join(parts)


def _input_shape(model_file: Path | None):
    if model_file is None:
        return None
    import keras

    return tuple(keras.saving.load_model(model_file).input_shape[1:])


def publish(exp: Experiment, stores: Stores, client, data: SweepData | None, analysis, effects: pd.DataFrame,
            out_dir: Path, parent_run_id: str | None, moved_from: Path | None = None) -> Published:
    """Write the block and register the best model (see the module) from the loaded sweep (`data`) and its
    analysis; nothing about a network that did not learn. `moved_from`: the folder moved stores' runs still
    name; registering would write there, so the model is not registered."""
    done = Published()
    mexp = client.get_experiment_by_name(exp.name)
    name = registry.registered_name(stores.study_name)
    if analysis is not None and analysis.did_not_learn:
        done.notes += ("the network did not learn: no augmentation block is exported and no model registered",)
        return done
    if analysis is not None and analysis.configurations is not None:
        choice = recommend(analysis.configurations, effects, data.trainings, data.trials, analysis.augmentations)
        if choice is not None:
            run = client.get_run(choice.run_id)
            saved = run.data.tags.get(TAG_MODEL_REPEAT)
            repeat = int(saved) if saved is not None else choice.repeat
            if repeat != choice.repeat:  # a tie within the trial: the saved repeat is the model and the block
                from dataclasses import replace

                choice = replace(choice, repeat=repeat)
            done.recommendation = choice
            aug_seed = RepeatSeeds.from_param(run.data.params[f"seeds_r{repeat}"], repeat).aug
            with registry.temp_folder() as tmp:
                model_file = registry.download_model(client, choice.run_id, tmp)
                shape = _input_shape(model_file)
                if shape is None:
                    done.notes += (f"trial {choice.trial}'s run holds no {registry.MODEL_ARTIFACT} (written by an "
                                   f"older version): no augmentation block or registered model",)
                else:
                    model_input = model_input_text(exp.dataset)
                    done.files = tuple(write_block(choice, aug_seed, shape, stores.study_name, out_dir, model_input))
                    if moved_from is not None:
                        done.notes += (f"these stores moved from {moved_from.parent}: registering the best model "
                                       f"would write there (MLflow keeps absolute paths), so {name} is not "
                                       "registered; move the stores back to register it",)
                    elif not parent_run_id or mexp is None:
                        done.notes += ("the stores hold no sweep parent run to log the model into: the best model "
                                       f"is not registered as {name}",)
                    else:
                        done.model_version = registry.register_best(
                            client, stores.tracking_uri, mexp.experiment_id, name, model_file, choice.run_id, repeat,
                            parent_run_id, description=f"{choice.config.parameters()}: {choice.why}. {model_input}",
                            tags={"configuration": choice.label, "which": choice.which, "trial": choice.trial,
                                  "mean_best_val_loss": f"{choice.mean_best_val_loss:.4f}"})
                        version = done.model_version
                        if version is not None:
                            done.load_lines = tuple(load_model_lines(stores.tracking_uri, name,
                                                                     version.version, choice.config.enabled))
    return done


def describe(exp: Experiment, stores: Stores, client, effects: pd.DataFrame, published: Published | None,
             title: str, answer: str) -> None:
    """Put the answer on the experiment's MLflow page (its description)."""
    mexp = client.get_experiment_by_name(exp.name)
    if mexp is not None and len(effects):
        choice = published.recommendation if published is not None else None
        registry.set_experiment_note(client, mexp.experiment_id,
                                     note_text(title, answer, effects, choice,
                                               registry.registered_name(stores.study_name)))
