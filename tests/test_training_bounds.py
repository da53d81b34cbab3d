"""Bounded inputs: a decompression bomb, a dataset larger than memory, YAML nested
50,000 deep or too large, non-UTF-8 file names (streamed too), links out of the dataset, a search space
naming a system file, secret files and lock folders. Each exits 2 with one line (or is handled), never a
traceback; the data is tiny and nothing trains."""

from __future__ import annotations

import os
import stat
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from augsweep.experiment import load_experiment
from augsweep.experiment.schema import ConfigError
from augsweep.training.data import load_dataset
from tests.helpers import tiny_experiment


def _bomb_png(path, width=20000, height=20000):
    """A valid PNG header claiming width x height pixels with almost no data (what a 389 KB bomb claims)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def _folder(root, classes=("car", "truck"), n=3, size=8):
    for split in ("train", "valid"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((size, size, 3), 40 * i, np.uint8)).save(root / split / c / f"{i}.png")
    return root


def _folder_experiment(write_experiment, root, **dataset):
    return load_experiment(write_experiment(tiny_experiment(
        name="bounds", dataset={"source": "folder", "path": str(root), "image_size": [8, 8], **dataset})))


@pytest.mark.parametrize("on_bad_file", ["error", "skip"])
def test_a_decompression_bomb_is_refused_before_decoding(tmp_path, write_experiment, on_bad_file):
    root = _folder(tmp_path / "data")
    _bomb_png(root / "train" / "car" / "bomb.png")
    exp = _folder_experiment(write_experiment, root, on_bad_file=on_bad_file)
    if on_bad_file == "error":
        with pytest.raises(ConfigError, match=r"bomb.png: too many pixels"):
            load_dataset(exp.dataset, exp.seed)
    else:
        ds = load_dataset(exp.dataset, exp.seed)
        assert len(ds.x_train) == 6 and any("bomb.png: too many pixels" in w for w in ds.warnings)


def test_a_dataset_larger_than_memory_exits_2_with_the_estimate(write_experiment):
    exp = load_experiment(write_experiment(tiny_experiment(
        name="huge", dataset={"source": "synthetic", "samples": 1_000_000, "image_size": [1024, 1024]})))
    with pytest.raises(ConfigError, match=r"1000000 images of 1024x1024 take about 11718\.8 GiB"):
        load_dataset(exp.dataset, exp.seed)


@pytest.mark.parametrize("stream", [False, True])
def test_a_non_utf8_file_name_is_read_and_shown_safely(tmp_path, write_experiment, stream):
    root = _folder(tmp_path / "data")
    os.rename(root / "train" / "car" / "0.png", os.fsencode(root / "train" / "car") + b"/\xff\xfe.png")
    exp = _folder_experiment(write_experiment, root, stream=stream)
    ds = load_dataset(exp.dataset, exp.seed)
    assert len(ds.x_train) == 6 and ds.fingerprint
    (root / "train" / "car" / "1.png").write_bytes(b"not a png")
    os.rename(root / "train" / "car" / "1.png", os.fsencode(root / "train" / "car") + b"/\xfa.png")
    with pytest.raises(ConfigError) as caught:
        load_dataset(exp.dataset, exp.seed)
    str(caught.value).encode("utf-8")  # printable: no lone surrogates


def test_a_non_utf8_class_folder_name_is_shown_safely(tmp_path, write_experiment):
    root = _folder(tmp_path / "data", classes=("car", "truck"))
    for split in ("train", "valid"):
        os.rename(root / split / "truck", os.fsencode(root / split) + b"/tr\xfcck")
    ds = load_dataset(_folder_experiment(write_experiment, root).dataset, 0)
    assert ds.class_names == ("car", "tr\ufffdck")
    "".join(ds.class_names).encode("utf-8")


@pytest.mark.parametrize("follow", [False, True])
def test_links_out_of_the_dataset_are_refused_unless_asked_for(tmp_path, write_experiment, follow):
    root = _folder(tmp_path / "data")
    outside = _folder(tmp_path / "elsewhere", classes=("bus",))
    (root / "train" / "bus").symlink_to(outside / "train" / "bus")
    (root / "valid" / "bus").symlink_to(outside / "valid" / "bus")
    exp = _folder_experiment(write_experiment, root, follow_symlinks=follow)
    if follow:
        assert load_dataset(exp.dataset, exp.seed).class_names == ("bus", "car", "truck")
    else:
        with pytest.raises(ConfigError, match=r"bus is a link to .*elsewhere.*outside the dataset folder.*"
                                              r"follow_symlinks: true"):
            load_dataset(exp.dataset, exp.seed)


def test_yaml_nested_50000_deep_exits_2(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("name: deep\nx: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(ConfigError, match="nests more than 32 levels deep"):
        load_experiment(path)


def test_a_yaml_file_too_large_exits_2(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("name: big\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match="too large to be settings.*Received: 2000010 bytes"):
        load_experiment(path)


def test_a_search_space_naming_a_system_file_never_echoes_its_content(tmp_path, write_experiment):
    secret = tmp_path / "hostname"
    secret.write_text("very-secret-host-name\n")
    path = write_experiment(tiny_experiment(name="echo", search_space=str(secret)))
    with pytest.raises(ConfigError) as caught:
        load_experiment(path)
    assert "very-secret" not in str(caught.value) and "must be a YAML mapping" in str(caught.value)


def test_pgpass_is_created_private_never_readable_for_a_moment(tmp_path, monkeypatch):
    from augsweep.serve import servers

    seen = []
    real_open = os.open

    def watching_open(path, flags, mode=0o777, *args, **kwargs):
        seen.append((os.fspath(path), mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", watching_open)
    target = tmp_path / "pgpass"
    target.write_text("old")
    target.chmod(0o644)
    servers.write_secret(target, "*:*:*:augsweep:pw\n")
    assert seen == [(str(target), 0o600)]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and target.read_text() == "*:*:*:augsweep:pw\n"


def test_lock_folders_of_a_storage_url_are_private_and_not_in_tmp(tmp_path, monkeypatch):
    from augsweep.stores.locks import lock_dir

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir(mode=0o700)
    d = lock_dir(tmp_path / "mlruns", False, "postgresql+psycopg://u@h/db")
    assert str(d).startswith(str(tmp_path / "run")) and not str(d).startswith("/tmp/augsweep-locks")
    assert stat.S_IMODE(d.parent.stat().st_mode) == 0o700
    assert lock_dir(tmp_path / "mlruns", True, "sqlite:///x") == tmp_path / "mlruns" / ".locks"
