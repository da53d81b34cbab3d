"""Evaluate a trained model beyond Keras's averages: per-class loss/accuracy, and affinity.

Pure functions of a model and arrays (no Optuna, no MLflow). Losses are the same cross-entropies
Keras trains with (probabilities clipped to [1e-7, 1 - 1e-7] as Keras does), per image, so any
average over a subset (a class) is exact rather than a mean of batch means.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .. import augment

EPSILON = 1e-7  # keras.config.epsilon(), the clip Keras applies to probabilities


def predict(model, x: np.ndarray, batch_size: int = 256, transform=None) -> np.ndarray:
    """Probabilities, in inference mode; `transform(batch)` (e.g. a training-mode augmentation) first."""
    import keras

    out = []
    for i in range(0, len(x), batch_size):
        batch = x[i:i + batch_size]
        if transform is not None:
            batch = transform(batch)
        out.append(keras.ops.convert_to_numpy(model(batch, training=False)).astype(np.float64))
    return np.concatenate(out) if out else np.zeros((0, 1))


def per_image_loss(prob: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Cross-entropy of each image: binary (one sigmoid output) or sparse categorical (softmax)."""
    y = np.asarray(y).reshape(-1)
    p = np.clip(prob, EPSILON, 1 - EPSILON)
    if num_classes == 2:
        p = p.reshape(-1)
        return -(y * np.log(p) + (1 - y) * np.log(1 - p))
    return -np.log(p[np.arange(len(y)), y.astype(int)])


def per_image_correct(prob: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    """Whether each image is classified right (threshold 0.5 for binary, argmax otherwise)."""
    y = np.asarray(y).reshape(-1)
    pred = (prob.reshape(-1) > 0.5).astype(int) if num_classes == 2 else prob.argmax(axis=1)
    return pred == y.astype(int)


def per_class(model, x: np.ndarray, y: np.ndarray, class_names: Sequence[str],
              batch_size: int = 256) -> pd.DataFrame:
    """One row per class: images, mean validation loss and accuracy of the model on that class."""
    prob = predict(model, x, batch_size)
    k = len(class_names)
    loss, correct = per_image_loss(prob, y, k), per_image_correct(prob, y, k)
    y = np.asarray(y).reshape(-1).astype(int)
    rows = []
    for c, name in enumerate(class_names):
        mask = y == c
        rows.append({"class": str(name), "n": int(mask.sum()),
                     "val_loss": float(loss[mask].mean()) if mask.any() else float("nan"),
                     "val_accuracy": float(correct[mask].mean()) if mask.any() else float("nan")})
    return pd.DataFrame(rows)


def affinity(model, x: np.ndarray, y: np.ndarray, num_classes: int,
             augmentations: Mapping[str, Mapping[str, Any]], aug_seed: int,
             batch_size: int = 256) -> pd.DataFrame:
    """Affinity (Gontijo-Lopes et al., 2020) of each augmentation for a model trained without any.

    `affinity = clean loss / augmented loss` of that model on the validation images: 1 means the
    augmented images look as familiar as the clean ones (in-distribution); lower means the
    augmentation shifts the data away from what the model learned. (The paper uses an accuracy
    ratio; losses keep it defined when accuracy saturates.)
    """
    clean = float(per_image_loss(predict(model, x, batch_size), y, num_classes).mean())
    rows = []
    for name, params in augmentations.items():
        layer = augment.REGISTRY[name].build(params, augment.layer_seed(aug_seed, f"affinity/{name}"))

        def transform(batch, layer=layer):
            return layer(batch, training=True)

        augmented = float(per_image_loss(predict(model, x, batch_size, transform), y, num_classes).mean())
        rows.append({"augmentation": name, "clean_val_loss": clean, "augmented_val_loss": augmented,
                     "affinity": clean / augmented if augmented > 0 else float("nan")})
    return pd.DataFrame(rows, columns=["augmentation", "clean_val_loss", "augmented_val_loss", "affinity"])
