"""The study identity and the experiment hash are pinned: a refactor of the schema or the key table must not move
either (a moved identity makes every existing study refuse to resume; a moved sha256 changes the logged hash)."""

from __future__ import annotations

import pytest
import yaml

from augsweep import augment
from augsweep.experiment import load_experiment
from augsweep.experiment.identity import identities, identity, outdated
from tests.helpers import ROOT, tiny_experiment

# (identity(exp), exp.sha256()) computed on the code before the key table (commit 113f9d4); the identities of
# spaces holding an augmentation whose meaning changed (`augment.Revision`) moved with it, from BEFORE_REVISIONS.
# The files that now draw a data split per seed replicate (`dataset.resample: replicate`: the default experiment,
# and folder data by default) moved on purpose: their verdicts are about another population. Their earlier pins
# are ONE_SPLIT's: the same file with `dataset.resample: none` keeps them, so a study made on one split resumes so.
FILES = {
    "default.yaml": ("6a18a120d040f2e13edce59f8f9642f4df7eb2aa778878f9d653ad631d2dff6f",
                     "c4949950f210cabd2a3af67210ef3e866d2c8ca14f29bcf28a4ea1a14d5e0600"),
    "digits-mirror.yaml": ("927b90cc11a43c378763058fd41e2dc4bd78f1467797e670160a0e34dd97cfe8",
                           "9d90fc2bd2f1212413804fcfdf2e75022cd12b3ab1fa68994be4dbe038242481"),
    "digits-photometric-converged.yaml": ("54b9da3d3e9dda2ef69b5834720c2613b3ebe7cc8cf7938ac3989870c2171f6c",
                                          "9068f6f545d6cd964a45c6fc33d729a3ef9781de81ccba6977c4f7d3537eda8c"),
    "digits-photometric.yaml": ("8d47889b81d6638bf3a2cb67010b96ae346d6383ee3486c184093f09bf54aa9d",
                                "18cc6d34da4c5cad4d6b87222d1410fc21957d1f48d329a9eeb7782f5c2bf27e"),
    # The examples for a folder of your own images, pinned when they were added.
    "folder-flat.yaml": ("c57988c6b7f60f1ebfa37f5d75a83d7f2a772ec7cf6ac8b2f726abe938c872e3",
                         "c985e9e843e316491495b2a55995cc0b52f26821104b35fdd999251254e080c4"),
    "folder-split.yaml": ("a01576357e46c3dd7301df4f903612da4845cff42550d34e054fc55af5963a9d",
                          "fe08f737fad41f0b84f16e818f2da9c46f02a12739290daff3b453d0530f86f1"),
    "synthetic.yaml": ("f67f985ff91884f9883a00479a13acf887dc798c33f2752dcecccfc6a4433218",
                       "bcc42748e6ef2ae669c9cbe2ae61e93fa3bdb75537bb839b633ec8de24ad9c69"),
    "transfer.yaml": ("e64694741c268a5e189bef840b7f8280142fb60270ab87c5204faedcff96b71c",
                      "a58bc498585458028f9786edf8f6594c985e0c7cb2a4068385a33603dd91aacb"),
}

ONE_SPLIT = {
    "default.yaml": ("1ba0fd55d0914e1773a165fb254479b5b3bd98c0b7b676934a2fab71233b6d04",
                     "9f30fb0b80eb1c907be28c360e852f4c7c83fcca2658f100e472b4d447e9d1d6"),
    "folder-flat.yaml": ("1013a45353ea267c4b43d080a081fe2f2a56f33940a1ba84cc8086ef7483cd64",
                         "b89f22c6a9d777f34d2ce8cd75292e03d48ce35bedd05489a0e668ee9ce3f948"),
    "folder-split.yaml": ("ebd3974e341504f5b7c4c2d74beef96a70c259061718affb37a85fb8f73264da",
                          "3b32e66ef3a50effd33f57201c70098d38976b14c313154f101cf66f524a017e"),
}

FOLDER = {"source": "folder", "image_size": [16, 16], "path": "data/no-such-folder"}
CONVERGED = {"until_converged": {"patience": 2, "max_epochs": 5}, "batch_size": 32, "learning_rate": 0.003}
VARIANTS = {
    "plain": tiny_experiment(),
    "late-defaults-explicit": tiny_experiment(train={"reuse_compiled": "auto", "deterministic": True},
                                              dataset={"val_samples": None, "validation": "split"}),
    "folder-late-defaults-explicit": tiny_experiment(dataset={**FOLDER, "stream": "auto", "cache": None,
                                                              "stream_threshold_bytes": 2 * 1024**3,
                                                              "follow_symlinks": False, "resample": "none"}),
    "folder-late-set": tiny_experiment(dataset={**FOLDER, "stream": "true", "stream_threshold_bytes": 1000,
                                                "cache": "data/cache/x", "follow_symlinks": True, "val_samples": 50,
                                                "resample": "none"}),
    "folder-resampled": tiny_experiment(dataset=FOLDER),  # folder data draws a split per replicate by default
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
    "no-changed-augmentations": tiny_experiment(search_space={"depth": 1, "augmentations": {
        "flip": {"mode": ["horizontal", "vertical"]}, "brightness": None, "rotation": None,
        "warp": {"kind": ["translation", "zoom", "shear"]}}}),
    "flip-both": tiny_experiment(search_space={"depth": 1, "augmentations": {
        "flip": {"mode": ["horizontal", "both"]}}}),
    "warp-perspective": tiny_experiment(search_space={"depth": 1, "augmentations": {
        "warp": {"kind": ["translation", "perspective"]}}}),
    "crop": tiny_experiment(search_space={"depth": 1, "augmentations": {"crop": None}}),
    "policies": tiny_experiment(search_space={"depth": 1, "augmentations": {"trivialaugment": None,
                                                                           "randaugment": None}}),
}
PINNED = {
    "plain": ("c30d25563bcf27729d6e0850d16541146190e8b9f9a5f678d51169894416c05e",
              "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "late-defaults-explicit": ("c30d25563bcf27729d6e0850d16541146190e8b9f9a5f678d51169894416c05e",
                               "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "folder-late-defaults-explicit": ("95b2fd246e04ac7b491e121821f96c3eb9c5f31bc459a6e17773863912201dfb",
                                      "22c30f00cc31d3e8d128742fdf35e2997ae0786af0165cfef709706159e8aad0"),
    "folder-late-set": ("a979b472fa84ac98cf0aee02af0c1a700e9929b5fa61bfc734445a1f743fd7e5",
                        "93e9dc462aa5445f592a3cb0dc4850fddb02c0ac434ae7e4ce8c18fa426a30c3"),
    "folder-resampled": ("c1abf02ce86a3c99998950995fc4ae5001addc5b065beea39763cdda387d335d",
                         "055713229434354f9c544c79215db1c0c590008a8e61af1a0914fb178c09aa9b"),
    "reuse-false": ("81afeb7d36a6c10baa89e76cd9b7c9bb4d8edb89d040a6b1a5223bc9808e3267",
                    "a73a575838c8c069d0e06fdfc023dab13d9301fd0825ff3300ab7e9b373b9d57"),
    "not-deterministic": ("27a4767b1f62ff1f53eb570150da8711be23dafa80f16206e486fe9bb19b9bda",
                          "01620aa3c43dca0a0fd46f7f865d0a42e0b9703d00ae56366dce5619170814e3"),
    "converged": ("dc76e9e09b8b7bb3dac9d308d09585dd6bfcfc67d98dc3bb06abd42a30bc173c",
                  "c2ef252addf1369adf58b88aed5e33f3168e31c5c4c3639a45300c8dec7755c9"),
    "model-default-explicit": ("c30d25563bcf27729d6e0850d16541146190e8b9f9a5f678d51169894416c05e",
                               "00242cb1d24ae3b378418d5232912d4747e74bb9116303df0312f8d37854ee94"),
    "budget-keys": ("c30d25563bcf27729d6e0850d16541146190e8b9f9a5f678d51169894416c05e",
                    "32aaf5f6bd8a41f2204b61ef0f349f761f23417e6b0b5134910e2bc68c8a59f1"),
    "transfer-test-split": ("799673cb64fb3ef068e9c7ef0fd72bbc7aad74c88c2ade353bf04a697a0a1c94",
                            "1989d57d72f8171b23f54b976bd1070ac0c4b154827f2e8e32f82fc4342d030f"),
    "no-changed-augmentations": ("ca579b006d5d70a94a3c13b0b8a79c2918c4b3153c1d7eb0d33f4f27bc615ba8",
                                 "14392ef02756b93aca8ca9c1f4d7c7ff04a31c3e76489f6a094622f1b14e6fb8"),
    "flip-both": ("46b0ed90ad3228359086aaa8f1bdb80d62dde3193b807c29e8ee8aa9f75a0e58",
                  "93daf03a724fa5398b4d324f5512018b97d9ece27fee6c1e0d4400849568b47c"),
    "warp-perspective": ("59c0f9ec5a5d404bc598f9e0d081dec496ba4fadcaa6cefc125818bda1e61748",
                         "8aeb9dd153c2832a4de45b3282e995ec6c82557defbeffa806a69da6d2b4f84d"),
    "crop": ("969d0b685252629c4b3cbc8ab2764505e7cb45adf77b96e8ae3b21fa2fedec39",
             "5c4e20a4e7e41750e3b9065657933dad7e7f29e4e26f77aa1f6270ebcef71903"),
    "policies": ("428b725a459f49bbb3a6abefbd99d561b5a01bfe4c3d54c5fad1d5fc1d80273c",
                 "e28109f6c87127e318336abb58fa559f41aec183c8ddf02583cd6f6fd0b7b4e0"),
}
# identity(exp) as the code computed it before the augmentations' revisions (contrast symmetric, flip's `both`
# independent, perspective and elastic on every image, a crop window per image): studies created then stored these.
BEFORE_REVISIONS = {
    "default.yaml": "de1e9d93cd0c3a1f5c3ecda62f94ebd2ac7536b4eb541e285bbc939b5972f961",
    "digits-mirror.yaml": "e5ca5e48b19348a2b0aecf5ce33ac2072aa0a37f38af226ef27fbb29bd5a79cf",
    "digits-photometric-converged.yaml": "05a5cc6914bdd677e5f18e2f29fd1a0e9df9378ed5b5c7f2d230c1903712fcec",
    "digits-photometric.yaml": "1d2aef7db646e62165a222a77803625dcdb385c88458192741b921970f4129b7",
    "synthetic.yaml": "297c98058889677be6619945ecd5e36d625094383da3c6c5f95a0a750a5aa3d4",
    "transfer.yaml": "1f01ebd8c6858a9b05769f939df333abdbe652b34538efba55e4a19752cef846",
    "plain": "1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
    "late-defaults-explicit": "1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
    "folder-late-defaults-explicit": "e947ed52477d867b741166f122264fc9d4a7dcb7e30fb2e14313dcc5228acea7",
    "folder-late-set": "6b5c0368052d0edbc71df3257bc742818db8939c0ffd938e841135ffec57e6ee",
    "reuse-false": "5fde5d895da3e7c15c3f242ae5e5466bd5c1c3282879d2abe4c7ee89ff5b1441",
    "not-deterministic": "67cd82ae44b22cfad2302e3310f424636157b86db676be86123d54746f5d326b",
    "converged": "ad6beadc50a29be667423c6b3ef47834745e250e74f856e78d520c187dcea1c2",
    "model-default-explicit": "1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
    "budget-keys": "1dcedadba821f71b4f2d230532525bb7640de71f92b4f9732446305395c69cbf",
    "flip-both": "d469aa1e3ca164c0046568e24f821043b7231cdf831e92d64b0737195ac564d3",
    "warp-perspective": "297161253eb201fbaca7d803914a7304842ff9f5a02475a7c21dfd99e8050312",
    "crop": "088a67d352c3a3ad956e4558b7dbca4fa5ba88b508e5b445d9862242d2ef1dc8",
    "policies": "93ea0a16a474cd465736dbc6a334be2c6798da29681c3972a5aaa0b3796d6ef0",
}
# The augmentations whose change of meaning a refused study of each is told about (contrast where not listed).
CHANGED = {"flip-both": ["flip"], "warp-perspective": ["warp"], "crop": ["crop"], "policies": ["trivialaugment"]}


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


@pytest.mark.parametrize("name", sorted(ONE_SPLIT))
def test_a_file_that_now_resamples_keeps_its_one_split_identity_with_resample_none(name, write_experiment,
                                                                                   monkeypatch):
    exp = _load(name, write_experiment, monkeypatch, one_split=True)
    assert exp.dataset.resample == "none" and (identity(exp), exp.sha256()) == ONE_SPLIT[name]
    assert _load(name, write_experiment, monkeypatch).dataset.resample == "replicate"


def _load(name, write_experiment, monkeypatch, one_split: bool = False):
    if name in FILES:
        monkeypatch.chdir(ROOT)
        if not one_split:
            return load_experiment(ROOT / "experiments" / name)
        data = yaml.safe_load((ROOT / "experiments" / name).read_text())
        data["dataset"]["resample"] = "none"
        return load_experiment(write_experiment(data))  # relative paths are read from the current folder first
    return load_experiment(write_experiment(VARIANTS[name]))


@pytest.mark.parametrize("name", sorted(BEFORE_REVISIONS))
def test_a_study_from_before_an_augmentation_changed_meaning_is_refused_and_told_why(name, write_experiment,
                                                                                      monkeypatch):
    # A study from before the revisions predates split resampling too: it was made on one split.
    exp = _load(name, write_experiment, monkeypatch, one_split=name in ONE_SPLIT)
    old = BEFORE_REVISIONS[name]
    assert old != identity(exp) and old not in identities(exp)
    told = outdated(exp, old)
    assert [line.split("'s meaning changed: ")[0] for line in told] == CHANGED.get(name, ["contrast"])
    assert outdated(exp, identity(exp)) == []


def test_an_experiment_without_a_changed_augmentation_keeps_its_identity(write_experiment, monkeypatch):
    """Its pin is what the code computed before the revisions existed (flip's other modes, the other warps), so
    its studies still resume."""
    for name in ("no-changed-augmentations", "transfer-test-split"):
        exp = _load(name, write_experiment, monkeypatch)
        assert augment.revisions(exp.search_space.augmentation_params()) == {}
        assert name not in BEFORE_REVISIONS and identity(exp) == PINNED[name][0] and outdated(exp, "0" * 64) == []
