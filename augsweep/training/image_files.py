"""Image files: one file read and checked (`read_image`, shared by the in-memory and streaming paths), and
`ImageFiles`, a folder's images decoded per batch when the dataset is too large for memory (`dataset.stream`)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..experiment.schema import ConfigError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# Decompression bombs: an image whose header claims more pixels than this is refused before it is decoded
# (a 389 KB PNG can claim 20000 x 20000). PIL's own limit, which it only warns about below twice the value.
MAX_IMAGE_PIXELS = 89_478_485


def shown_name(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (kept by Python as surrogates) become U+FFFD,
    so printing, hashing or logging it to MLflow never raises."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray | None, str | None, bool]:
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

    Pixels come from the same `read_image` as the in-memory path, so both paths give identical batches.
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
            pixels, problem, _ = read_image(Path(self.paths[i]), self.size)
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
        lines = (f"{shown_name(str(p))}\t{os.stat(p).st_size}\t{os.stat(p).st_mtime_ns}" for p in self.paths)
        return "\n".join(lines) + str(self.size)

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
