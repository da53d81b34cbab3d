"""Fashion-MNIST from its IDX files (Debian's `dataset-fashion-mnist`, fetched by `make data`): the checked IDX
reader, the class subset and split (`read_fashion_mnist`), and the uint8 -> float pixels (`fashion_pixels`),
applied only once the images to keep are chosen."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from ..experiment.schema import ConfigError, DatasetConfig
from .dataset import DEFAULT_VALIDATION_SPLIT, Dataset, stratified_split
from .sources import resize_float

FASHION_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot")
# Where the IDX files are looked for when `dataset.path` is not given: `make data`'s copy, then Debian's.
REPO_ROOT = Path(__file__).resolve().parents[2]
FASHION_DIRS = (Path("data/fashion-mnist"), REPO_ROOT / "data" / "fashion-mnist",
                Path("/usr/share/datasets/fashion-mnist"))
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
    images_path = _idx_file(folder, f"{split}-images-idx3-ubyte")
    labels_path = _idx_file(folder, f"{split}-labels-idx1-ubyte")
    images, labels = read_idx(images_path, 3), read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise ConfigError(f"dataset: {images_path} holds {len(images)} images but {labels_path} {len(labels)} labels; "
                          f"fetch them again with {FETCH}")
    if labels.size and labels.max() >= len(FASHION_NAMES):
        raise ConfigError(f"dataset: {labels_path} has label {int(labels.max())}, outside 0-9; "
                          f"fetch it again with {FETCH}")
    return images, labels.astype(np.int32)


def _classes_only(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
    """The images of the listed classes, relabelled 0..k-1 in the listed order."""
    lookup = np.full(len(FASHION_NAMES), -1, np.int32)
    lookup[list(classes)] = np.arange(len(classes))
    keep = lookup[y] >= 0
    return x[keep], lookup[y[keep]]


def read_fashion_mnist(cfg: DatasetConfig, seed: int) -> Dataset:
    """Fashion-MNIST as read: the `classes` asked for, validation from `validation_split` of the training split
    or the official test split (`validation: test`); images still uint8 (N, 28, 28), for `fashion_pixels`."""
    folder = fashion_mnist_dir(cfg)
    classes = tuple(range(len(FASHION_NAMES))) if isinstance(cfg.classes, int) else tuple(cfg.classes)  # int: all
    x, y = _classes_only(*read_fashion_split(folder, "train"), classes)
    if cfg.validation == "test":
        x_va, y_va = _classes_only(*read_fashion_split(folder, "t10k"), classes)
        x_tr, y_tr = x, y
    else:
        tr, va = stratified_split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
        x_tr, y_tr, x_va, y_va = x[tr], y[tr], x[va], y[va]
    return Dataset(x_tr, y_tr, x_va, y_va, tuple(FASHION_NAMES[c] for c in classes), "fashion_mnist",
                   validation_given=cfg.validation == "test")


def fashion_pixels(ds: Dataset, cfg: DatasetConfig) -> Dataset:
    """`read_fashion_mnist`'s images as float32 (N, H, W, 1) in [0, 1] at `cfg.image_size`."""

    def pixels(images: np.ndarray) -> np.ndarray:
        out = images.astype(np.float32) / 255.0
        if tuple(cfg.image_size) != out.shape[1:]:
            out = np.clip(resize_float(out, cfg.image_size), 0.0, 1.0)
        return out[..., None]

    return Dataset(pixels(ds.x_train), ds.y_train, pixels(ds.x_val), ds.y_val, ds.class_names, ds.source,
                   warnings=list(ds.warnings))
