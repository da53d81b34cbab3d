"""Datasets -> float32 NHWC arrays in [0, 1] with a deterministic train/validation split.

Sources: `digits` (scikit-learn's bundled handwritten digits), `synthetic` (car / truck / bus
silhouettes drawn from a seed), `folder` (Kaggle's Car-or-Truck layout). Bad folders and files
are found before any training starts and reported as one `ConfigError` line.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..experiment.schema import ConfigError, DatasetConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_VALIDATION_SPLIT = 0.2
MAX_LISTED = 10


@dataclass
class Dataset:
    """Train and validation arrays plus what a report needs to describe them."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]
    source: str
    fingerprint: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> str:
        h, w, c = self.input_shape
        return (f"{self.source}: {len(self.x_train)} train / {len(self.x_val)} validation images, "
                f"{h}x{w}x{c}, {self.num_classes} classes")


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes, shapes and dtypes (identifies the exact data a run saw)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _split(n: int, labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of indices 0..n-1 into (train, validation)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(n)
    try:
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed, stratify=labels)
    except ValueError:  # a class too small to stratify: fall back to a plain seeded split
        tr, va = train_test_split(idx, test_size=fraction, random_state=seed)
    return np.sort(tr), np.sort(va)


def _resize_float(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
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
    x = _resize_float(d.images / 16.0, cfg.image_size)
    x = np.clip(x, 0.0, 1.0)[..., None]
    y = d.target.astype(np.int32)
    tr, va = _split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
    names = tuple(str(i) for i in range(10))
    return Dataset(x[tr], y[tr], x[va], y[va], names, "digits")


# ----------------------------------------------------------------------------- synthetic vehicles

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
    tr, va = _split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
    return Dataset(x[tr], y[tr], x[va], y[va], SYNTHETIC_CLASSES[: cfg.classes], "synthetic")


# ----------------------------------------------------------------------------- folders of images


def _class_files(root: Path, where: str) -> dict[str, list[Path]]:
    """Class folder name -> files (sorted), ignoring hidden entries."""
    if not root.is_dir():
        raise ConfigError(f"{where} is not a folder. Received: path={str(root)!r}")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = {}
    for c in classes:
        out[c.name] = sorted(
            p for p in c.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(c).parts)
        )
    return out


def _read_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None, bool]:
    """(pixels, problem, upscaled): RGB float32 in [0, 1] resized to size, or why it is unreadable."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image file (unsupported suffix)", False
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated file fails here, not in the middle of training
            small = img.width < size[1] or img.height < size[0]
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                flat = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(flat, img)  # transparent -> white, not black
            rgb = img.convert("RGB").resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(rgb, np.float32) / 255.0, None, small
    except UnidentifiedImageError:
        return None, "not a readable image", False
    except (OSError, ValueError, SyntaxError) as e:
        return None, f"corrupt image ({str(e).splitlines()[0][:80]})", False


def _bad_files_message(bad: list[tuple[Path, str]], root: Path) -> str:
    listed = "; ".join(f"{p.relative_to(root) if p.is_relative_to(root) else p}: {why}"
                       for p, why in bad[:MAX_LISTED])
    more = f" (and {len(bad) - MAX_LISTED} more)" if len(bad) > MAX_LISTED else ""
    return f"{len(bad)} bad image file(s) in {root}: {listed}{more}"


def _load_files(files: list[tuple[Path, int]], size, cfg: DatasetConfig, root: Path, notes: list[str]):
    xs, ys, bad, upscaled = [], [], [], []
    for path, label in files:
        pixels, problem, small = _read_image(path, size)
        if problem:
            bad.append((path, problem))
            continue
        if small:
            upscaled.append(path)
        xs.append(pixels)
        ys.append(label)
    if bad:
        msg = _bad_files_message(bad, root)
        if cfg.on_bad_file == "error":
            raise ConfigError(f"dataset.path: {msg}; fix or remove them, or set dataset.on_bad_file: skip")
        notes.append(f"skipped {msg}")
    if upscaled:
        names = ", ".join(str(p.relative_to(root)) for p in upscaled[:MAX_LISTED])
        more = f" (and {len(upscaled) - MAX_LISTED} more)" if len(upscaled) > MAX_LISTED else ""
        notes.append(f"{len(upscaled)} image(s) smaller than {size[0]}x{size[1]} were upscaled: {names}{more}")
    h, w = size
    x = np.stack(xs) if xs else np.zeros((0, h, w, 3), np.float32)
    return x, np.asarray(ys, np.int32)


def load_folder(cfg: DatasetConfig, seed: int) -> Dataset:
    """`path/train/<class>/*` (+ `path/valid/<class>/*`), or `path/<class>/*` split by validation_split."""
    root = Path(cfg.path)
    if not root.exists():
        raise ConfigError(f"dataset.path does not exist. Received: path={cfg.path!r}")
    if not root.is_dir():
        raise ConfigError(f"dataset.path must be a folder. Received: path={cfg.path!r}")
    train_dir = root / "train"
    has_split_layout = train_dir.is_dir()
    if not has_split_layout and (root / "valid").is_dir():
        raise ConfigError(f"dataset.path has valid/ but no train/ folder. Received: path={cfg.path!r}")
    train = _class_files(train_dir if has_split_layout else root, "dataset.path")
    valid = _class_files(root / "valid", "dataset.path valid/") if (root / "valid").is_dir() else None
    if not train:
        raise ConfigError(
            f"dataset.path has no class folders (expected train/<class>/ or <class>/). Received: path={cfg.path!r}"
        )
    for name, files in {**train, **(valid or {})}.items():
        if not files:
            which = [d for d, m in (("train", train), ("valid", valid or {})) if m.get(name) == []]
            raise ConfigError(
                f"dataset.path: class folder {name!r} is empty ({'/'.join(which) or 'train'}). Received: path={cfg.path!r}"
            )
    names = tuple(sorted(train))
    if len(names) < 2:
        raise ConfigError(f"dataset.path needs at least 2 class folders. Received: classes={list(names)} ({cfg.path})")
    if valid is not None and set(valid) != set(names):
        raise ConfigError(
            f"dataset.path: valid/ classes {sorted(valid)} differ from train/ classes {list(names)} ({cfg.path})"
        )
    notes: list[str] = []
    label = {n: i for i, n in enumerate(names)}
    train_files = [(p, label[c]) for c in names for p in train[c]]
    if valid is not None:
        valid_files = [(p, label[c]) for c in names for p in valid[c]]
        x_tr, y_tr = _load_files(train_files, cfg.image_size, cfg, root, notes)
        x_va, y_va = _load_files(valid_files, cfg.image_size, cfg, root, notes)
    else:
        x, y = _load_files(train_files, cfg.image_size, cfg, root, notes)
        if len(np.unique(y)) < 2:
            raise ConfigError(f"dataset.path: fewer than 2 classes have readable images ({cfg.path})")
        tr, va = _split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
        x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    if len(x_tr) == 0 or len(x_va) == 0:
        raise ConfigError(f"dataset.path: no readable images left for training or validation ({cfg.path})")
    return Dataset(x_tr, y_tr, x_va, y_va, names, "folder", warnings=notes)


_LOADERS = {"digits": load_digits, "synthetic": load_synthetic, "folder": load_folder}
_CACHE: dict[tuple, Dataset] = {}


def subsample_train(ds: Dataset, n: int, seed: int) -> Dataset:
    """Keep a stratified, seeded `n` of the training images (`dataset.train_samples`): fewer images make
    a model overfit, the regime in which augmentation can help. Validation stays whole."""
    have = len(ds.x_train)
    if n > have:
        raise ConfigError(f"dataset.train_samples: {n} asked, but the training split of {ds.source} "
                          f"holds only {have} images")
    if n < ds.num_classes:
        raise ConfigError(f"dataset.train_samples: {n} is fewer than the {ds.num_classes} classes")
    if n == have:
        return ds
    keep, _ = _split(have, ds.y_train, 1.0 - n / have, seed + 1)  # +1: not the same draw as the split
    keep = keep[:n] if len(keep) > n else keep
    return Dataset(ds.x_train[keep], ds.y_train[keep], ds.x_val, ds.y_val, ds.class_names, ds.source,
                   warnings=list(ds.warnings))


def load_dataset(cfg: DatasetConfig, seed: int, file: str = "") -> Dataset:
    """Load (once per process) and fingerprint the dataset an experiment names (`file`: the experiment
    file, named in the message when a folder dataset's path does not exist)."""
    if cfg.source == "folder" and cfg.path and not Path(cfg.path).exists():
        raise ConfigError(f"dataset.path does not exist. Received: path={cfg.path!r} "
                          f"(looked at {Path(cfg.path).resolve()}{'; ' + file if file else ''})")
    key = (cfg, seed, _folder_state(cfg))
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = _LOADERS[cfg.source](cfg, seed)
        if cfg.train_samples is not None:
            ds = subsample_train(ds, cfg.train_samples, seed)
        ds.fingerprint = fingerprint(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
        _CACHE.clear()  # one dataset per process is the common case; do not hoard memory
        _CACHE[key] = ds
    return _CACHE[key]


def _folder_state(cfg: DatasetConfig) -> tuple:
    """File list and mtimes of a folder dataset, so an edited folder is not served from cache."""
    if cfg.source != "folder" or not cfg.path or not os.path.isdir(cfg.path):
        return ()
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in Path(cfg.path).rglob("*") if p.is_file()))
