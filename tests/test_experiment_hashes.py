"""The study identity and the experiment hash are pinned: a refactor of the schema or the key table must not move
either (a moved identity makes every existing study refuse to resume; a moved sha256 changes the logged hash)."""

from __future__ import annotations

import pytest

from augsweep.experiment import load_experiment
from augsweep.stores.study import identity
from tests.helpers import ROOT, tiny_experiment

# (identity(exp), exp.sha256()) computed on the code before the key table (commit 113f9d4).
FILES = {
    "default.yaml": ("de1e9d93cd0c3a1f5c3ecda62f94ebd2ac7536b4eb541e285bbc939b5972f961",
                     "9f30fb0b80eb1c907be28c360e852f4c7c83fcca2658f100e472b4d447e9d1d6"),
    "digits-mirror.yaml": ("e5ca5e48b19348a2b0aecf5ce33ac2072aa0a37f38af226ef27fbb29bd5a79cf",
                           "9d90fc2bd2f1212413804fcfdf2e75022cd12b3ab1fa68994be4dbe038242481"),
    "digits-photometric-converged.yaml": ("05a5cc6914bdd677e5f18e2f29fd1a0e9df9378ed5b5c7f2d230c1903712fcec",
                                          "9068f6f545d6cd964a45c6fc33d729a3ef9781de81ccba6977c4f7d3537eda8c"),
    "digits-photometric.yaml": ("1d2aef7db646e62165a222a77803625dcdb385c88458192741b921970f4129b7",
                                "18cc6d34da4c5cad4d6b87222d1410fc21957d1f48d329a9eeb7782f5c2bf27e"),
    "synthetic.yaml": ("297c98058889677be6619945ecd5e36d625094383da3c6c5f95a0a750a5aa3d4",
                       "bcc42748e6ef2ae669c9cbe2ae61e93fa3bdb75537bb839b633ec8de24ad9c69"),
    "transfer.yaml": ("1f01ebd8c6858a9b05769f939df333abdbe652b34538efba55e4a19752cef846",
                      "a58bc498585458028f9786edf8f6594c985e0c7cb2a4068385a33603dd91aacb"),
}

FOLDER = {"source": "folder", "image_size": [16, 16], "path": "data/no-such-folder"}
CONVERGED = {"until_converged": {"patience": 2, "max_epochs": 5}, "batch_size": 32, "learning_rate": 0.003}
VARIANTS = {
    "plain": tiny_experiment(),
    "late-defaults-explicit": tiny_experiment(train={"reuse_compiled": "auto", "deterministic": True},
                                              dataset={"val_samples": None, "validation": "split"}),
    "folder-late-defaults-explicit": tiny_experiment(dataset={**FOLDER, "stream": "auto", "cache": None,
                                                              "stream_threshold_bytes": 2 * 1024**3,
                                                              "follow_symlinks": False}),
    "folder-late-set": tiny_experiment(dataset={**FOLDER, "stream": "true", "stream_threshold_bytes": 1000,
                                                "cache": "data/cache/x", "follow_symlinks": True, "val_samples": 50}),
    "reuse-false": tiny_experiment(train={"reuse_compiled": False}),
    "not-deterministic": tiny_experiment(train={"deterministic": False}),
    "converged": {**tiny_experiment(), "train": CONVERGED},
    "model-default-explicit": tiny_experiment(model={"base": "convnet", "weights": "none", "trainable": True}),
    "budget-keys": tiny_experiment(trials=50, max_consecutive_failures=9, equivalence_margin=0.1, stop="budget",
                                   ablation={"repeats": 3, "baselines": False}),
    "transfer-test-split": {**tiny_experiment(dataset={"source": "fashion_mnist", "image_size": [32, 32],
                                                       "classes": [1, 2], "validation": "test"}),
                            "model": {"base": "vgg16", "weights": "imagenet"},
                            "search_space": {"augmentations": {"flip": None}}},
}
PINNED = {
    "plain": ("1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
              "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "late-defaults-explicit": ("1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
                               "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "folder-late-defaults-explicit": ("e947ed52477d867b741166f122264fc9d4a7dcb7e30fb2e14313dcc5228acea7",
                                      "22c30f00cc31d3e8d128742fdf35e2997ae0786af0165cfef709706159e8aad0"),
    "folder-late-set": ("6b5c0368052d0edbc71df3257bc742818db8939c0ffd938e841135ffec57e6ee",
                        "93e9dc462aa5445f592a3cb0dc4850fddb02c0ac434ae7e4ce8c18fa426a30c3"),
    "reuse-false": ("5fde5d895da3e7c15c3f242ae5e5466bd5c1c3282879d2abe4c7ee89ff5b1441",
                    "a73a575838c8c069d0e06fdfc023dab13d9301fd0825ff3300ab7e9b373b9d57"),
    "not-deterministic": ("67cd82ae44b22cfad2302e3310f424636157b86db676be86123d54746f5d326b",
                          "01620aa3c43dca0a0fd46f7f865d0a42e0b9703d00ae56366dce5619170814e3"),
    "converged": ("ad6beadc50a29be667423c6b3ef47834745e250e74f856e78d520c187dcea1c2",
                  "c2ef252addf1369adf58b88aed5e33f3168e31c5c4c3639a45300c8dec7755c9"),
    "model-default-explicit": ("1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
                               "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "budget-keys": ("1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
                    "32aaf5f6bd8a41f2204b61ef0f349f761f23417e6b0b5134910e2bc68c8a59f1"),
    "transfer-test-split": ("799673cb64fb3ef068e9c7ef0fd72bbc7aad74c88c2ade353bf04a697a0a1c94",
                            "1989d57d72f8171b23f54b976bd1070ac0c4b154827f2e8e32f82fc4342d030f"),
}


@pytest.mark.parametrize("name", sorted(FILES))
def test_experiment_files_keep_their_hashes(name, monkeypatch):
    monkeypatch.chdir(ROOT)  # search_space paths are kept as written, relative to the current directory
    exp = load_experiment(ROOT / "experiments" / name)
    assert (identity(exp), exp.sha256()) == FILES[name]


def test_every_experiment_file_is_pinned():
    assert sorted(FILES) == sorted(p.name for p in (ROOT / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_variants_keep_their_hashes(name, write_experiment):
    exp = load_experiment(write_experiment(VARIANTS[name]))
    assert (identity(exp), exp.sha256()) == PINNED[name]
