"""Folder datasets (Kaggle's Car-or-Truck layout): class folders listed (links outside refused), every file
decoded once before training (the pre-scan: bad files become one `ConfigError` line), kept in memory or, too
large for it, as `ImageFiles` streamed by `train`'s `tf.data` pipeline."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..experiment.schema import ConfigError, DatasetConfig
from .dataset import DEFAULT_VALIDATION_SPLIT, Dataset, check_memory, decoded_bytes, stratified_split, take_rows
from .image_files import IMAGE_SUFFIXES, ImageFiles, read_image, shown_name

MAX_LISTED = 10


def _not_a_file(p: Path) -> bool:
    """An entry that looks like an image but cannot be one: a broken or looping link, a FIFO, socket or device, or
    a folder named like an image (`x.png/`). Ordinary subfolders are walked, not counted."""
    if p.is_file():
        return False
    if p.is_dir():
        return p.suffix.lower() in IMAGE_SUFFIXES
    return True  # not a file, not a folder: a dangling link, a FIFO, a device


def _class_files(root: Path, where: str, top: Path | None = None,
                 follow_symlinks: bool = False, skipped: list[Path] | None = None) -> dict[str, list[Path]]:
    """Class folder name -> files (sorted), ignoring hidden entries. A link (class folder or file) that
    points outside the dataset folder `top` is refused unless `follow_symlinks`. Entries that cannot be image
    files (`_not_a_file`) are left out and appended to `skipped`, so the caller can say so."""
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
        entries = [p for p in c.rglob("*") if not any(s.startswith(".") for s in p.relative_to(c).parts)]
        out[shown_name(c.name)] = sorted(allowed(p) for p in entries if p.is_file())
        if skipped is not None:
            skipped += [p for p in entries if _not_a_file(p)]
    return out


def _skipped_note(skipped: list[Path], root: Path) -> str:
    """One line: how many entries were left out, and one of them."""
    first = sorted(skipped)[0]
    shown = shown_name(str(first.relative_to(root) if first.is_relative_to(root) else first))
    return (f"skipped {len(skipped)} dataset entr{'y' if len(skipped) == 1 else 'ies'} that cannot be image files "
            f"(broken links, FIFOs or devices, folders named like images), e.g. {shown}")


def wants_stream(cfg: DatasetConfig, n_images: int) -> bool:
    """`stream: true|false` as asked; `auto` streams when the decoded pixels would exceed the threshold
    (only the TensorFlow backend streams: the pipeline is `tf.data`; JAX keeps arrays in memory)."""
    if cfg.stream == "auto":
        return decoded_bytes(n_images, cfg.image_size) > cfg.stream_threshold_bytes and _backend() == "tensorflow"
    return cfg.stream == "true"


def _backend() -> str:
    import keras

    return keras.backend.backend()


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
        pixels, problem, small = read_image(path, size)
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
    skipped: list[Path] = []
    train = _class_files(train_dir if has_split_layout else root, "dataset.path", root, follow, skipped)
    valid = (_class_files(root / "valid", "dataset.path valid/", root, follow, skipped) if (root / "valid").is_dir()
             else None)
    if not train:
        raise ConfigError(
            f"dataset.path has no class folders (expected train/<class>/ or <class>/). Received: path={cfg.path!r}"
        )
    for name, files in {**train, **(valid or {})}.items():
        if not files:
            which = [d for d, m in (("train", train), ("valid", valid or {})) if m.get(name) == []]
            raise ConfigError(
                f"dataset.path: class folder {name!r} is empty ({'/'.join(which) or 'train'}). "
                f"Received: path={cfg.path!r}"
            )
    names = tuple(sorted(train))
    if len(names) < 2:
        raise ConfigError(f"dataset.path needs at least 2 class folders. Received: classes={list(names)} ({cfg.path})")
    if valid is not None and set(valid) != set(names):
        raise ConfigError(
            f"dataset.path: valid/ classes {sorted(valid)} differ from train/ classes {list(names)} ({cfg.path})"
        )
    notes: list[str] = [_skipped_note(skipped, root)] if skipped else []
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
        tr, va = stratified_split(len(y), y, cfg.validation_split or DEFAULT_VALIDATION_SPLIT, seed)
        x_tr, y_tr, x_va, y_va = take_rows(x, tr), y[tr], take_rows(x, va), y[va]
    if len(x_tr) == 0 or len(x_va) == 0:
        raise ConfigError(f"dataset.path: no readable images left for training or validation ({cfg.path})")
    return Dataset(x_tr, y_tr, x_va, y_va, names, "folder", warnings=notes, validation_given=valid is not None)


def folder_state(cfg: DatasetConfig) -> tuple:
    """File list and mtimes of a folder dataset, so an edited folder is not served from cache."""
    if cfg.source != "folder" or not cfg.path or not os.path.isdir(cfg.path):
        return ()
    return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in Path(cfg.path).rglob("*") if p.is_file()))
