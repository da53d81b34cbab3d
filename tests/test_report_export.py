"""The recommended augmentation block: which configuration (planted tables) and the exported files, which in a
fresh process build the very layers the sweep trained with (same seed, same output)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd

from augsweep.experiment.space import TrialConfig
from augsweep.report.export import Recommendation, recommend, write_block

AUGS = ["flip", "contrast", "rotation"]


def _planted():
    """Three configurations: flip+rotation best (but rotation hurts), then flip, then none."""
    table = pd.DataFrame([
        {"trial": 0, "repeat": 0, "depth": 1, "best_val_loss": 0.30, "aug_flip": True, "aug_contrast": False,
         "aug_rotation": True},
        {"trial": 1, "repeat": 0, "depth": 1, "best_val_loss": 0.40, "aug_flip": True, "aug_contrast": False,
         "aug_rotation": False},
        {"trial": 1, "repeat": 1, "depth": 1, "best_val_loss": 0.36, "aug_flip": True, "aug_contrast": False,
         "aug_rotation": False},
        {"trial": 2, "repeat": 0, "depth": 1, "best_val_loss": 0.50, "aug_flip": False, "aug_contrast": False,
         "aug_rotation": False},
    ])
    configs = pd.DataFrame({"configuration": ["d1 flip+rotation", "d1 flip", "d1 none"],
                            "mean_best_val_loss": [0.30, 0.38, 0.50]})
    trials = pd.DataFrame([
        {"trial": 0, "mlflow_run_id": "r0", "depth": 1, "aug_flip": True, "aug_flip_mode": "horizontal",
         "aug_contrast": False, "aug_rotation": True, "aug_rotation_factor": 0.3},
        {"trial": 1, "mlflow_run_id": "r1", "depth": 1, "aug_flip": True, "aug_flip_mode": "horizontal",
         "aug_contrast": False, "aug_rotation": False, "aug_rotation_factor": np.nan},
        {"trial": 2, "mlflow_run_id": "r2", "depth": 1, "aug_flip": False, "aug_contrast": False,
         "aug_rotation": False},
    ])
    return table, configs, trials


def test_recommend_skips_a_configuration_with_an_augmentation_that_hurts():
    table, configs, trials = _planted()
    effects = pd.DataFrame({"augmentation": ["flip", "rotation"], "verdict": ["helps", "hurts"],
                            "source": ["sweep", "sweep"]})
    rec = recommend(configs, effects, table, trials, AUGS)
    assert (rec.label, rec.which, rec.trial, rec.repeat, rec.run_id) == ("d1 flip", "best without hurts", 1, 1, "r1")
    assert rec.config.enabled == {"flip": {"mode": "horizontal"}}
    assert "includes rotation" in rec.why and rec.mean_best_val_loss == 0.38
    # Nothing hurts: the best configuration as is, named so.
    rec = recommend(configs, effects.assign(verdict="undecided"), table, trials, AUGS)
    assert (rec.label, rec.which) == ("d1 flip+rotation", "best")
    assert rec.config.enabled == {"flip": {"mode": "horizontal"}, "rotation": {"factor": 0.3}}


def test_exported_block_in_a_fresh_process_matches_the_sweeps_layers(tmp_path):
    from augsweep import augment

    augs = (("flip", (("mode", "horizontal"),)), ("contrast", (("factor", 0.4),)),
            ("rotation", (("factor", 0.2),)), ("crop", (("factor", 0.25),)))
    rec = Recommendation(TrialConfig(1, augmentations=augs), "d1 flip+contrast+rotation+crop", "best",
                         "the best configuration by its mean", 0.5, 3, 1, 0.45, "run")
    seed, shape = 1234, (12, 12, 3)
    files = write_block(rec, seed, shape, "planted", tmp_path)
    assert [f.name for f in files] == ["augmentation.py", "augmentation.keras"]
    source = files[0].read_text()
    assert "Which: the best configuration by its mean" in source and "RandomContrast(" in source
    compile(source, "augmentation.py", "exec")
    x = np.random.default_rng(0).random((4, *shape), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    script = textwrap.dedent(f"""
        import sys, numpy as np, keras
        sys.path.insert(0, {str(tmp_path)!r})
        from augmentation import augmentation_block
        x = np.load({str(tmp_path / 'x.npy')!r})
        np.save({str(tmp_path / 'py.npy')!r}, keras.ops.convert_to_numpy(augmentation_block()(x, training=True)))
        # The block's crop layer is augmentation.py's own, registered by the import above.
        block = keras.saving.load_model({str(files[1])!r})
        np.save({str(tmp_path / 'keras.npy')!r}, keras.ops.convert_to_numpy(block(x, training=True)))
        np.save({str(tmp_path / 'infer.npy')!r}, keras.ops.convert_to_numpy(block(x, training=False)))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    # What the sweep trained with: the registry's builders with the trained seed, applied in order.
    out = x
    for layer in augment.build_layers(rec.config.enabled, seed):
        out = layer(out, training=True)
    out = np.asarray(out)
    assert not np.allclose(out, x)  # the planted block does change the batch
    np.testing.assert_allclose(np.load(tmp_path / "py.npy"), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np.load(tmp_path / "keras.npy"), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "infer.npy"), x)  # identity at inference
