"""The key table (`experiment.keys`) is the one owner of the experiment file's keys: the dataclasses, the
loader, the study identity and the annotated key list in docs/experiment-file.md all agree with it."""

from __future__ import annotations

import re
from dataclasses import MISSING, fields, is_dataclass

import yaml

from augsweep.experiment import AblationConfig, DatasetConfig, Experiment, ModelConfig, TrainConfig, load_experiment
from augsweep.experiment.identity import identities, identity, identity_changes, outdated
from augsweep.experiment.keys import CUSTOM, HASHED, KEYS, REQUIRED, SECTION, TABLE, allowed, late
from tests.helpers import ROOT, tiny_experiment

SECTIONS = {"": Experiment, "dataset": DatasetConfig, "train": TrainConfig, "model": ModelConfig,
            "ablation": AblationConfig}
NOT_FILE_KEYS = {"path", "search_space_path"}  # where the files were, not what they say


def test_every_dataclass_field_is_a_table_key_with_the_tables_default():
    for section, cls in SECTIONS.items():
        outside = NOT_FILE_KEYS if not section else set()
        assert {f.name for f in fields(cls)} - outside == allowed(section) - {"description"}, section
        for f in fields(cls):
            if f.name in outside or f.default is MISSING or is_dataclass(f.default):
                continue
            key = TABLE[f"{section}.{f.name}" if section else f.name]
            assert key.default is not REQUIRED and f.default == key.default, key.name


def test_custom_and_section_keys_have_their_own_checks():
    for key in KEYS:
        assert key.kind in ("int", "number", "bool", "choice", CUSTOM, SECTION), key.name
        assert not key.choices or key.kind == "choice", key.name


# identity(synthetic.yaml) as the code computed it before train.reuse_compiled (cca3a73^) and before
# train.deterministic (721e6b7^): studies created then stored these. They predate contrast's change of meaning too,
# so they are refused now; the same file without contrast keeps them (FLIP_ONLY_*, computed on those commits).
BEFORE_REUSE_COMPILED = "7b1fd1099d4892d5cd0f97c4437e3174cfa692e4436eef30c1fc1b07e4384164"
BEFORE_DETERMINISTIC = "897bb346b168338a7058353951092290f535056f75273ff86f13cadecd53f049"
FLIP_ONLY_BEFORE_REUSE_COMPILED = "4a3c6e7e88e682eeb1723467c81ab8f1e7348d8f39c6368f0145a154ed6f5886"
FLIP_ONLY_BEFORE_DETERMINISTIC = "9e72d89ef4a12927af1674989eaaa4d7335fdcc13b2e1a8c0d9254ea88900bdc"


def test_a_study_created_before_a_late_key_existed_is_still_this_experiment(monkeypatch, write_experiment):
    monkeypatch.chdir(ROOT)
    data = yaml.safe_load((ROOT / "experiments" / "synthetic.yaml").read_text())
    del data["search_space"]["augmentations"]["contrast"]
    exp = load_experiment(write_experiment(data))
    assert {key.name for key in late(HASHED)} == {"train.reuse_compiled", "train.deterministic"}
    old = {FLIP_ONLY_BEFORE_REUSE_COMPILED, FLIP_ONLY_BEFORE_DETERMINISTIC}
    assert identity(exp) not in old  # why a plain compare refused them
    assert {identity(exp)} | old <= identities(exp)


def test_a_study_from_before_contrast_changed_is_refused_whatever_keys_it_predates(monkeypatch):
    monkeypatch.chdir(ROOT)
    exp = load_experiment(ROOT / "experiments" / "synthetic.yaml")
    for old in (BEFORE_REUSE_COMPILED, BEFORE_DETERMINISTIC):
        assert old not in identities(exp)
        assert [line.split(":")[0] for line in outdated(exp, old)] == ["contrast's meaning changed"]


def test_a_late_key_away_from_its_default_accepts_no_older_identity(write_experiment):
    exp = load_experiment(write_experiment(tiny_experiment(train={"reuse_compiled": False, "deterministic": False})))
    assert identities(exp) == {identity(exp)}  # no study before these keys trained that way
    changed = load_experiment(write_experiment(tiny_experiment(train={"epochs": 3}), "b.yaml"))
    assert not identities(changed) & identities(load_experiment(write_experiment(tiny_experiment(), "c.yaml")))


def test_identity_changes_name_each_changed_key_and_both_values(write_experiment):
    before = load_experiment(write_experiment(tiny_experiment(), "a.yaml")).resolved()
    after = load_experiment(write_experiment(tiny_experiment(
        trials=50, train={"epochs": 15}, search_space={"augmentations": {
            "flip": {"mode": ["horizontal"]}, "contrast": {"factor": [0.1, 0.5]}, "rotation": {"factor": 0.1}}}),
        "b.yaml"))
    assert identity_changes(before, after) == [  # key order; the budget (trials) is not the identity
        "search_space.augmentations.rotation: none → {factor: [0.1]}", "train.epochs: 2 → 15"]
    for key in ("reuse_compiled", "deterministic"):  # stored before these keys existed: read at their defaults
        before["train"].pop(key)
    assert identity_changes(before, load_experiment(write_experiment(tiny_experiment(), "c.yaml"))) == []
    assert identity_changes(None, after) == []  # a study that stored no resolved experiment


def _docs_block(title: str, first: str) -> str:
    """The YAML block of docs/experiment-file.md's section `title` that starts with the line `first`."""
    text = (ROOT / "docs" / "experiment-file.md").read_text()
    section = text[text.index(title):]
    start = section.index("```yaml\n" + first) + len("```yaml\n")
    return section[start:section.index("```", start)]


def _block_keys(block: str, prefix: str = "") -> set[str]:
    """Dotted keys a YAML block names, commented-out ones included (`# stop: decided`, `#   base: vgg16`,
    `# depth: 2, filters: 16`, `{patience: 10, max_epochs: 200}`); what lies under a CUSTOM key is its own."""
    found, parents = set(), []  # parents: (indent, dotted name)
    for raw in block.splitlines():
        line = re.sub(r"^# ?", "", raw)
        indent = len(line) - len(line.lstrip())
        body = re.sub(r"\s+#\s.*$", "", line.strip().removeprefix("# ").strip())
        match = re.match(r"([a-z_]+):(.*)", body)
        if not match:
            continue
        parents = [(i, n) for i, n in parents if i < indent]
        section = parents[-1][1] if parents else prefix.rstrip(".")
        if parents and TABLE.get(section) is not None and TABLE[section].kind == CUSTOM:
            continue
        leaves = [match.group(1)] + re.findall(r",\s*([a-z_]+):", body if "{" not in body else "")
        for leaf in leaves:
            found.add(f"{section}.{leaf}" if section else leaf)
        name = f"{section}.{match.group(1)}" if section else match.group(1)
        parents.append((indent, name))
        inner = re.match(r"\{(.*)\}$", match.group(2).strip())
        if inner and TABLE.get(name) is not None and TABLE[name].kind == SECTION:
            found |= {f"{name}.{leaf}" for leaf in re.findall(r"([a-z_]+):", inner.group(1))}
    return found


def test_the_annotated_key_list_names_every_key_of_the_table_and_no_other():
    named = (_block_keys(_docs_block("## Every key, annotated", "name:"))
             | _block_keys(_docs_block("## Every key, annotated", "ablation:"))
             | _block_keys(_docs_block("## Search space", "depth:"), "search_space."))
    table = {key.name for key in KEYS}
    assert sorted(table - named) == [], "keys in the table that docs/experiment-file.md's key list does not name"
    assert sorted(named - table) == [], "keys docs/experiment-file.md names that the table does not have"
