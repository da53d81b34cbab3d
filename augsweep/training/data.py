"""Datasets -> float32 NHWC arrays in [0, 1] with a deterministic train/validation split.

Sources: `digits` (scikit-learn's bundled handwritten digits), `synthetic` (car / truck / bus
silhouettes drawn from a seed), `folder` (Kaggle's Car-or-Truck layout), `fashion_mnist` (the
70,000 Fashion-MNIST images from IDX files: Debian's `dataset-fashion-mnist`, fetched by `make data`).
Bad folders and files are found before any training starts and reported as one `ConfigError` line.
A folder too large for memory (`dataset.stream`) is kept as `ImageFiles`: the files, decoded per batch
by the `tf.data` pipeline in `train`.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..experiment.schema import ConfigError, DatasetConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
DEFAULT_VALIDATION_SPLIT = 0.2
MAX_LISTED = 10
# Decompression bombs: an image whose header claims more pixels than this is refused before it is decoded
# (a 389 KB PNG can claim 20000 x 20000). PIL's own limit, which it only warns about below twice the value.
MAX_IMAGE_PIXELS = 89_478_485
MEMORY_SHARE = 0.8  # of the memory available now that a dataset held in memory may take


def shown_name(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD,
    so printing, hashing or logging it to MLflow never raises."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux's MemAvailable; None where unknown)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(n_images: int, size: tuple[int, int], what: str) -> None:
    """A dataset held in memory must fit: exit 2 with the estimate before anything is allocated."""
    need = decoded_bytes(n_images, size)
    have = available_memory()
    if have is not None and need > MEMORY_SHARE * have:
        gib = 1024 ** 3
        raise ConfigError(
            f"{what}: {n_images} images of {size[0]}x{size[1]} take about {need / gib:.1f} GiB decoded "
            f"(x 3 channels x 4 bytes), more than {MEMORY_SHARE:.0%} of the {have / gib:.1f} GiB of memory "
            f"available; use fewer samples or a smaller image_size (a folder dataset can also stream: "
            f"dataset.stream: true). Received: samples={n_images}, image_size={list(size)}")


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
    def pipeline(self) -> str:
        """How batches reach the model (MLflow tag `data_pipeline`): `stream` from files or `memory`."""
        return "stream" if isinstance(self.x_train, ImageFiles) else "memory"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(d) for d in self.x_train.shape[1:])

    def describe(self) -> str:
        h, w, c = self.input_shape
        return (f"{self.source}: {len(self.x_train)} train / {len(self.x_val)} validation images, "
                f"{h}x{w}x{c}, {self.num_classes} classes")


def fingerprint(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes, shapes and dtypes (identifies the exact data a run saw); streamed
    images count by their paths, sizes and modification times."""
    h = hashlib.sha256()
    for a in arrays:
        if isinstance(a, ImageFiles):
            h.update(a.identity().encode())
            continue
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _split(n: int, labels: np.ndarray, fraction: float | int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of indices 0..n-1 into (train, validation); `fraction` held out, or a count."""
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


# ----------------------------------------------------------------------------- Fashion-MNIST (IDX files)

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
# Where the IDX files are looked for when `dataset.path` is not given: `make data`'s copy, then Debian's.
REPO_ROOT = Path(__file__).resolve().parents[2]
FASHION_DIRS = (Path("data/fashion-mnist"), REPO_ROOT / "data" / "fashion-mnist", Path("/usr/share/datasets/fashion-mnist"))
FETCH = "`make data` (or: apt-get install dataset-fashion-mnist)"
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
              0x0E: np.dtype(">f8")}


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (gzipped or not) as an array, its header checked: two zero bytes, a known type code,
    `ndim` dimensions, and exactly as many data bytes as the dimensions say. Problems: `ConfigError`
    naming the path and the command that fetches the files again."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise ConfigError(f"dataset: cannot read {path} ({str(e).splitlines()[0][:80] or type(e).__name__}); "
                          f"fetch it again with {FETCH}") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES or raw[3] != ndim:
        head = raw[:4].hex()
        raise ConfigError(f"dataset: {path} is not an IDX file with {ndim} dimensions (header 0x{head}); "
                          f"fetch it again with {FETCH}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ConfigError(f"dataset: {path} is truncated inside its header; fetch it again with {FETCH}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    want = int(np.prod(dims)) * dtype.itemsize
    if len(raw) - header != want:
        raise ConfigError(f"dataset: {path} is truncated or padded: its header says {'x'.join(map(str, dims))} "
                          f"({want} bytes of data), the file holds {len(raw) - header}; fetch it again with {FETCH}")
    return np.frombuffer(raw, dtype, offset=header).reshape(dims)


def fashion_mnist_dir(cfg: DatasetConfig) -> Path:
    """The folder holding the Fashion-MNIST IDX files: `dataset.path`, else the first of `FASHION_DIRS`."""
    candidates = [Path(cfg.path)] if cfg.path else list(FASHION_DIRS)
    for folder in candidates:
        if any((folder / f"train-images-idx3-ubyte{gz}").is_file() for gz in ("", ".gz")):
            return folder
    where = " or ".join(str(c) for c in candidates)
    raise ConfigError(f"dataset.source: fashion_mnist: no train-images-idx3-ubyte[.gz] in {where}; fetch the files "
                      f"with {FETCH}")


def _idx_file(folder: Path, stem: str) -> Path:
    for name in (stem, f"{stem}.gz"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"dataset: {folder / stem}[.gz] is missing; fetch it with {FETCH}")


def read_fashion_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels) of the `train` or `t10k` split, checked against each other."""
    images_path, labels_path = _idx_file(folder, f"{split}-images-idx3-ubyte"), _idx_file(folder, f"{split}-labels-idx1-ubyte")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise ConfigError(f"dataset: {images_path} holds {len(images)} images but {labels_path} {len(labels)} labels; "
                          f"fetch them again with {FETCH}")
    if labels.size and labels.max() >= len(FASHION_NAMES):
        raise ConfigError(f"dataset: {labels_path} has label {int(labels.max())}, outside 0-9; fetch it again with {FETCH}")
    return images, labels.astype(np.int32)


def _classes_only(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """The images of the listed classes, relabelled 0..k-1 in the listed order."""
    lookup = np.full(len(FASHION_NAMES), -1, np.int32)
    lookup[list(classes)] = np.arange(len(classes))
    keep = lookup[y] >= 0
    return x[keep], lookup[y[keep]]


def load_fashion_mnist(cfg: DatasetConfig, seed: int) -> Dataset:
    """Fashion-MNIST: the `classes` asked for, validation from `validation_split` of the training split or
    the official test split (`validation: test`); `train_samples`/`val_samples` are drawn before resizing,
    so only the kept images are converted to float."""
    folder = fashion_mnist_dir(cfg)
    classes = tuple(range(len(FASHION_NAMES))) if isinstance(cfg.classes, int) else tuple(cfg.classes)  # int: all
    x, y = _classes_only(*read_fashion_split(folder, "train"), classes)
    if cfg.validation == "test":
        x_va, y_va = _classes_only(*read_fashion_split(folder, "t10k"), classes)
        x_tr, y_tr = x, y
    else:
        tr, va = _split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
        x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    names = tuple(FASHION_NAMES[c] for c in classes)
    if cfg.train_samples is not None:
        keep = stratified_keep(y_tr, cfg.train_samples, seed + 1, "train_samples", "fashion_mnist", len(names))
        x_tr, y_tr = x_tr[keep], y_tr[keep]
    if cfg.val_samples is not None:
        keep = stratified_keep(y_va, cfg.val_samples, seed + 2, "val_samples", "fashion_mnist", len(names))
        x_va, y_va = x_va[keep], y_va[keep]

    def pixels(images: np.ndarray) -> np.ndarray:
        out = images.astype(np.float32) / 255.0
        if tuple(cfg.image_size) != out.shape[1:]:
            out = np.clip(_resize_float(out, cfg.image_size), 0.0, 1.0)
        return out[..., None]

    return Dataset(pixels(x_tr), y_tr, pixels(x_va), y_va, names, "fashion_mnist")


# ----------------------------------------------------------------------------- folders of images


def _class_files(root: Path, where: str, top: Path | None = None,
                 follow_symlinks: bool = False) -> dict[str, list[Path]]:
    """Class folder name -> files (sorted), ignoring hidden entries. A link (class folder or file) that
    points outside the dataset folder `top` is refused unless `follow_symlinks`."""
    if not root.is_dir():
        raise ConfigError(f"{where} is not a folder. Received: path={str(root)!r}")
    inside = (top or root).resolve()

    def allowed(p: Path) -> Path:
        if not follow_symlinks:
            target = p.resolve()  # the file itself, or a folder above it, may be the link
            if target != inside and inside not in target.parents:
                raise ConfigError(
                    f"{where}: {shown_name(str(p))} is a link to {shown_name(str(target))}, outside the dataset "
                    f"folder; copy the files in, or set dataset.follow_symlinks: true. Received: "
                    f"path={shown_name(str(top or root))!r}")
        return p

    classes = sorted(allowed(p) for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    out = {}
    for c in classes:
        out[shown_name(c.name)] = sorted(
            allowed(p) for p in c.rglob("*")
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(c).parts)
        )
    return out


def _read_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None, bool]:
    """(pixels, problem, upscaled): RGB float32 in [0, 1] resized to size, or why it is unreadable."""
    from PIL import Image, UnidentifiedImageError

    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return None, "not an image file (unsupported suffix)", False
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:  # the header's claim, before any pixel is decoded
                return None, (f"too many pixels ({img.width}x{img.height} > {MAX_IMAGE_PIXELS}: a decompression "
                              f"bomb or a photo to shrink first)"), False
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
    except Image.DecompressionBombError as e:  # PIL refuses at open above twice its limit
        return None, f"too many pixels ({str(e).split('(')[0].strip()[:80]})", False
    except (OSError, ValueError, SyntaxError) as e:
        return None, f"corrupt image ({str(e).splitlines()[0][:80]})", False


class ImageFiles:
    """Image files decoded on demand (the streaming path), standing in for the (N, H, W, 3) float32 array
    the in-memory path would hold: `len`, `shape`, an image by index, a batch by slice, `subset`.

    Pixels come from the same `_read_image` as the in-memory path, so both paths give identical batches.
    With a `cache` (a `.npy` file of the decoded pixels, written once by `cached`) they are read from it.
    """

    dtype = np.dtype(np.float32)

    def __init__(self, paths, size, cache: str | None = None, rows=None):
        self.paths = tuple(str(p) for p in paths)
        self.size = (int(size[0]), int(size[1]))
        self.cache = cache
        self.rows = np.arange(len(self.paths)) if rows is None else np.asarray(rows)  # rows of the cache file
        self._memmap = None

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), *self.size, 3)

    def subset(self, indices) -> "ImageFiles":
        """The images at `indices` (in that order)."""
        indices = np.asarray(indices, int)
        return ImageFiles([self.paths[i] for i in indices], self.size, self.cache, self.rows[indices])

    def load(self, indices) -> np.ndarray:
        """Decoded pixels of the images at `indices`, (len, H, W, 3) float32 in [0, 1]."""
        indices = np.asarray(indices, int).reshape(-1)
        if self.cache is not None:
            if self._memmap is None:
                self._memmap = np.load(self.cache, mmap_mode="r")
            return np.asarray(self._memmap[self.rows[indices]], np.float32)
        out = np.empty((len(indices), *self.size, 3), np.float32)
        for k, i in enumerate(indices):
            pixels, problem, _ = _read_image(Path(self.paths[i]), self.size)
            if problem:  # scanned fine before training; changed since
                raise ConfigError(f"dataset.path: {self.paths[i]}: {problem} (changed after the pre-scan)")
            out[k] = pixels
        return out

    def __getitem__(self, key):
        if isinstance(key, slice):
            return self.load(range(len(self))[key])
        return self.load([key])[0]

    def __array__(self, dtype=None, copy=None):
        a = self.load(range(len(self)))
        return a if dtype is None else a.astype(dtype)

    def identity(self) -> str:
        """Paths, sizes and modification times (the fingerprint of streamed data)."""
        return "\n".join(f"{shown_name(str(p))}\t{os.stat(p).st_size}\t{os.stat(p).st_mtime_ns}" for p in self.paths) + str(self.size)

    def cached(self, path: str) -> "ImageFiles":
        """These images backed by a `.npy` cache file at `path`, written (in chunks) unless a cache of exactly
        these files (same paths, sizes, mtimes, image size) is already there."""
        target = Path(path)
        key = hashlib.sha256(self.identity().encode()).hexdigest()
        stamp = target.with_name(target.name + ".key")
        if not (target.is_file() and stamp.is_file() and stamp.read_text() == key):
            target.parent.mkdir(parents=True, exist_ok=True)
            out = np.lib.format.open_memmap(target, mode="w+", dtype=np.float32, shape=self.shape)
            for start in range(0, len(self), 256):
                out[start:start + 256] = self.load(range(start, min(start + 256, len(self))))
            out.flush()
            del out
            stamp.write_text(key)
        return ImageFiles(self.paths, self.size, str(target))


def decoded_bytes(n_images: int, size: tuple[int, int]) -> int:
    """Memory the in-memory path needs for `n_images` RGB float32 images (what `stream: auto` compares)."""
    return int(n_images) * size[0] * size[1] * 3 * 4


def wants_stream(cfg: DatasetConfig, n_images: int) -> bool:
    """`stream: true|false` as asked; `auto` streams when the decoded pixels would exceed the threshold
    (only the TensorFlow backend streams: the pipeline is `tf.data`; JAX keeps arrays in memory)."""
    if cfg.stream == "auto":
        return decoded_bytes(n_images, cfg.image_size) > cfg.stream_threshold_bytes and _backend() == "tensorflow"
    return cfg.stream == "true"


def _bad_files_message(bad: list[tuple[Path, str]], root: Path) -> str:
    listed = "; ".join(f"{shown_name(str(p.relative_to(root) if p.is_relative_to(root) else p))}: {why}"
                       for p, why in bad[:MAX_LISTED])
    more = f" (and {len(bad) - MAX_LISTED} more)" if len(bad) > MAX_LISTED else ""
    return f"{len(bad)} bad image file(s) in {root}: {listed}{more}"


def _load_files(files: list[tuple[Path, int]], size, cfg: DatasetConfig, root: Path, notes: list[str],
                stream: bool = False):
    """Decode every file (the pre-scan: bad files are found here, before any training); keep the pixels,
    or (`stream`) only the readable files' paths as `ImageFiles`."""
    xs, ys, bad, upscaled = [], [], [], []
    for path, label in files:
        pixels, problem, small = _read_image(path, size)
        if problem:
            bad.append((path, problem))
            continue
        if small:
            upscaled.append(path)
        xs.append(path if stream else pixels)
        ys.append(label)
    if bad:
        msg = _bad_files_message(bad, root)
        if cfg.on_bad_file == "error":
            raise ConfigError(f"dataset.path: {msg}; fix or remove them, or set dataset.on_bad_file: skip")
        notes.append(f"skipped {msg}")
    if upscaled:
        names = ", ".join(shown_name(str(p.relative_to(root))) for p in upscaled[:MAX_LISTED])
        more = f" (and {len(upscaled) - MAX_LISTED} more)" if len(upscaled) > MAX_LISTED else ""
        notes.append(f"{len(upscaled)} image(s) smaller than {size[0]}x{size[1]} were upscaled: {names}{more}")
    h, w = size
    if stream:
        return ImageFiles(xs, size), np.asarray(ys, np.int32)
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
    follow = cfg.follow_symlinks
    train = _class_files(train_dir if has_split_layout else root, "dataset.path", root, follow)
    valid = _class_files(root / "valid", "dataset.path valid/", root, follow) if (root / "valid").is_dir() else None
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
    valid_files = [(p, label[c]) for c in names for p in valid[c]] if valid is not None else []
    stream = wants_stream(cfg, len(train_files) + len(valid_files))
    if not stream:
        check_memory(len(train_files) + len(valid_files), cfg.image_size, f"dataset.path {cfg.path}")
    if valid is not None:
        x_tr, y_tr = _load_files(train_files, cfg.image_size, cfg, root, notes, stream)
        x_va, y_va = _load_files(valid_files, cfg.image_size, cfg, root, notes, stream)
    else:
        x, y = _load_files(train_files, cfg.image_size, cfg, root, notes, stream)
        if len(np.unique(y)) < 2:
            raise ConfigError(f"dataset.path: fewer than 2 classes have readable images ({cfg.path})")
        tr, va = _split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
        x_tr, y_tr, x_va, y_va = _take(x, tr), y[tr], _take(x, va), y[va]
    if len(x_tr) == 0 or len(x_va) == 0:
        raise ConfigError(f"dataset.path: no readable images left for training or validation ({cfg.path})")
    return Dataset(x_tr, y_tr, x_va, y_va, names, "folder", warnings=notes)


def _backend() -> str:
    import keras

    return keras.backend.backend()


def _take(x, indices):
    """Rows `indices` of an array or of `ImageFiles`."""
    return x.subset(indices) if isinstance(x, ImageFiles) else x[indices]


_LOADERS = {"digits": load_digits, "synthetic": load_synthetic, "folder": load_folder,
            "fashion_mnist": load_fashion_mnist}
_CACHE: dict[tuple, Dataset] = {}


def stratified_keep(labels: np.ndarray, n: int, seed: int, key: str, source: str, num_classes: int) -> np.ndarray:
    """Sorted indices of a stratified, seeded `n` of `labels` (`dataset.<key>`; all of them when n is all)."""
    have = len(labels)
    split = "training" if key == "train_samples" else "validation"
    if n > have:
        raise ConfigError(f"dataset.{key}: {n} asked, but the {split} split of {source} holds only {have} images")
    if n < num_classes:
        raise ConfigError(f"dataset.{key}: {n} is fewer than the {num_classes} classes")
    if n == have:
        return np.arange(have)
    # A count, not the fraction 1 - n/have: sklearn rounds a fraction's test size up, and 14 * (1 - 12/14)
    # is 2.0000000000000004 in floating point, which kept 11 of 12 asked.
    keep, _ = _split(have, labels, have - n, seed)
    return keep


def subsample(ds: Dataset, train_n: int | None, val_n: int | None, seed: int) -> Dataset:
    """Keep a stratified, seeded `train_n` of the training images (`dataset.train_samples`: fewer images make
    a model overfit, the regime in which augmentation can help) and `val_n` of the validation images
    (`dataset.val_samples`: shorter evaluation). None keeps a split whole."""
    x_tr, y_tr, x_va, y_va = ds.x_train, ds.y_train, ds.x_val, ds.y_val
    if train_n is not None:  # seed + 1 / + 2: not the same draw as the split
        keep = stratified_keep(y_tr, train_n, seed + 1, "train_samples", ds.source, ds.num_classes)
        x_tr, y_tr = _take(x_tr, keep), y_tr[keep]
    if val_n is not None:
        keep = stratified_keep(y_va, val_n, seed + 2, "val_samples", ds.source, ds.num_classes)
        x_va, y_va = _take(x_va, keep), y_va[keep]
    if len(y_tr) == len(ds.y_train) and len(y_va) == len(ds.y_val):
        return ds
    return Dataset(x_tr, y_tr, x_va, y_va, ds.class_names, ds.source, warnings=list(ds.warnings))


def load_dataset(cfg: DatasetConfig, seed: int, file: str = "") -> Dataset:
    """Load (once per process) and fingerprint the dataset an experiment names (`file`: the experiment
    file, named in the message when a folder dataset's path does not exist)."""
    if cfg.source == "folder" and cfg.path and not Path(cfg.path).exists():
        raise ConfigError(f"dataset.path does not exist. Received: path={cfg.path!r} "
                          f"(looked at {Path(cfg.path).resolve()}{'; ' + file if file else ''})")
    key = (cfg, seed, _folder_state(cfg))
    if key not in _CACHE and cfg.source != "folder":  # a folder is checked once its files are counted
        n = {"synthetic": cfg.samples, "digits": 1797}.get(cfg.source)
        if cfg.source == "fashion_mnist":
            n = (cfg.train_samples or 60_000) + (cfg.val_samples or 10_000)
        if n is not None:
            check_memory(n, cfg.image_size, f"dataset ({cfg.source})")
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = _LOADERS[cfg.source](cfg, seed)
        ds = subsample(ds, cfg.train_samples, cfg.val_samples, seed)
        if cfg.cache and isinstance(ds.x_train, ImageFiles):
            ds.x_train = ds.x_train.cached(f"{cfg.cache}.train.npy")
            ds.x_val = ds.x_val.cached(f"{cfg.cache}.val.npy")
        ds.fingerprint = fingerprint(ds.x_train, ds.y_train, ds.x_val, ds.y_val)
        _CACHE.clear()  # one dataset per process is the common case; do not hoard memory
        _CACHE[key] = ds
    return _CACHE[key]


def _folder_state(cfg: DatasetConfig) -> tuple:
    """File list and mtimes of a folder dataset, so an edited folder is not served from cache."""
    if cfg.source != "folder" or not cfg.path or not os.path.isdir(cfg.path):
        return ()
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in Path(cfg.path).rglob("*") if p.is_file()))
