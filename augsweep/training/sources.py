"""The two generated-in-process sources: `digits` (scikit-learn's bundled handwritten digits) and `synthetic`
(car / truck / bus silhouettes drawn from a seed)."""

from __future__ import annotations

import numpy as np

from ..experiment.schema import DatasetConfig
from .dataset import DEFAULT_VALIDATION_SPLIT, Dataset, stratified_split


def resize_float(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize (N, H, W) float images with bilinear interpolation (PIL mode F keeps precision)."""
    from PIL import Image

    h, w = size
    out = np.empty((len(images), h, w), np.float32)
    for i, img in enumerate(images):
        out[i] = np.asarray(Image.fromarray(img.astype(np.float32), mode="F").resize((w, h), Image.BILINEAR))
    return out


def load_digits(cfg: DatasetConfig, seed: int) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits (real data shipped in the package), resized."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = resize_float(d.images / 16.0, cfg.image_size)
    x = np.clip(x, 0.0, 1.0)[..., None]
    y = d.target.astype(np.int32)
    tr, va = stratified_split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
    names = tuple(str(i) for i in range(10))
    return Dataset(x[tr], y[tr], x[va], y[va], names, "digits")



SYNTHETIC_CLASSES = ("car", "truck", "bus")


def _draw_vehicle(kind: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Mask (h, w) of one vehicle facing right, at a random size and position."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    length = rng.uniform(0.55, 0.9) * w
    x0 = rng.uniform(0, w - length)
    ground = rng.uniform(0.7, 0.92) * h  # y of the road
    wheel_r = 0.09 * length
    mask = np.zeros((h, w), bool)

    def rect(a, b, top, bottom):  # fractions of length along x; absolute y
        nonlocal mask
        mask |= (xx >= x0 + a * length) & (xx <= x0 + b * length) & (yy >= top) & (yy <= bottom)

    axle = ground - wheel_r
    if kind == "car":  # low body, cabin, two wheels
        body_top = axle - 0.22 * length
        rect(0.0, 1.0, body_top, axle)
        rect(0.25, 0.7, body_top - 0.17 * length, body_top)
        wheels = (0.2, 0.8)
    elif kind == "truck":  # tall cargo box, cab in front, three wheels
        rect(0.0, 0.66, axle - 0.55 * length, axle)
        rect(0.7, 1.0, axle - 0.35 * length, axle)
        wheels = (0.12, 0.32, 0.85)
    else:  # bus: one long tall box with a row of windows, two wheels
        rect(0.0, 1.0, axle - 0.42 * length, axle)
        for k in range(5):
            a = 0.08 + 0.18 * k
            mask &= ~((xx >= x0 + a * length) & (xx <= x0 + (a + 0.1) * length)
                      & (yy >= axle - 0.36 * length) & (yy <= axle - 0.24 * length))
        wheels = (0.18, 0.82)
    for f in wheels:
        mask |= (xx - (x0 + f * length)) ** 2 + (yy - axle) ** 2 <= wheel_r**2
    return mask


def make_synthetic(n: int, size: tuple[int, int], classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic RGB vehicle silhouettes; each faces left or right at random (flip-invariant labels)."""
    h, w = size
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype(np.int32)
    rng.shuffle(y)
    x = np.empty((n, h, w, 3), np.float32)
    for i in range(n):
        background = rng.uniform(0.0, 1.0, 3)
        colour = rng.uniform(0.0, 1.0, 3)
        while np.abs(colour - background).sum() < 0.6:  # keep the silhouette visible
            colour = rng.uniform(0.0, 1.0, 3)
        mask = _draw_vehicle(SYNTHETIC_CLASSES[y[i]], h, w, rng)
        if rng.random() < 0.5:
            mask = mask[:, ::-1]
        img = np.where(mask[..., None], colour, background) + rng.normal(0, 0.06, (h, w, 3))
        x[i] = np.clip(img, 0.0, 1.0)
    return x, y


def load_synthetic(cfg: DatasetConfig, seed: int) -> Dataset:
    """`cfg.samples` synthetic vehicles (2 classes: car/truck; 3: + bus), split by seed."""
    x, y = make_synthetic(cfg.samples, cfg.image_size, cfg.classes, seed)
    tr, va = stratified_split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
    return Dataset(x[tr], y[tr], x[va], y[va], SYNTHETIC_CLASSES[: cfg.classes], "synthetic")
