"""The report's `Next:` lines about using the answer: where the exported block is, how to load the registered
model from any folder (tracking URI included), and where the recommendation stands against no augmentation.
Pure: built from what `publish` did, never parsed back out of rendered text."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import configurations as configurations_mod


def use_lines(published, configs: pd.DataFrame | None) -> list[str]:
    """`Next:` lines naming what exists: the exported block (paths), the registered model (the exact lines that
    load it) and where the recommendation stands against no augmentation."""
    if published is None or published.recommendation is None:
        return []
    choice = published.recommendation
    where = (configurations_mod.standing(configs, choice.label) if configs is not None and len(configs)
             else "no configurations compared")
    lines = []
    files = {Path(f).name for f in published.files}
    if "augmentation.py" in files:  # named beside the report, so the report reads the same wherever it is written
        lines.append(f"Next: use the recommended block, {choice.config.parameters()} ({choice.label}: {where}): "
                     f"`augmentation.py` beside this report builds it with Keras alone (copy it into your project; "
                     f"`from augmentation import augmentation_block`), and `augmentation.keras` loads with "
                     f"`keras.saving.load_model`.")
    version = published.model_version
    if version is not None:
        name = getattr(version, "name", None)
        # one line a user can paste: the snippet's statements, its comments left out
        code = "; ".join(line.split("  #", 1)[0] for line in published.load_lines if not line.startswith("#"))
        lines.append(f"Next: the best model (trial {choice.trial}, seed {choice.repeat}) is registered as `{name}` "
                     f"version {version.version}; load it from any folder with `{code}`.")
    return lines
