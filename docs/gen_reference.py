"""The experiment file's key reference, generated from the key table (`augsweep/experiment/keys.py`).

MkDocs runs this file as a hook (`hooks:` in mkdocs.yml): on the page that holds the marker line
`<!-- key-reference -->` the marker becomes a table with one row per key of `keys.KEYS`: its name, type, range or
choices and default come from the table itself; only its meaning is written here. A key without a meaning here, or
a meaning for a key the table does not have, stops the build, so the page cannot drift from the code.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from augsweep.experiment import keys as K  # noqa: E402

MARKER = "<!-- key-reference -->"
PAGE = "experiment-file.md"

# What each key means, and for CUSTOM keys what kind of value it takes: (type, meaning). Types and ranges of the
# other kinds, choices and defaults are read from the table.
CUSTOM_TYPES = {
    "name": "string",
    "description": "string",
    "dataset.image_size": "[height, width]",
    "dataset.path": "path",
    "dataset.cache": "path",
    "model.weights": "`imagenet`, `none` or a path",
    "search_space": "path or mapping",
    "search_space.depth": "integer, list or {low, high}",
    "search_space.filters": "integer or list",
    "search_space.dense_units": "integer or list",
    "search_space.learning_rate": "{low, high}",
    "search_space.augmentations": "mapping",
    "ablation.base": "`best` or a configuration",
}

MEANINGS = {
    "name": "Study name and MLflow experiment name (letters, digits, `.`, `_`, `-`).",
    "description": "Free text for people; not validated, stored or hashed.",
    "dataset": "Where the images come from and how they are prepared.",
    "dataset.source": "`digits` (scikit-learn's handwritten digits), `synthetic` (generated car/truck/bus "
                      "silhouettes), `folder` (your images), `fashion_mnist` (IDX files from `make data`).",
    "dataset.image_size": "Height and width in pixels that every image is resized to; each side in the range.",
    "dataset.path": "`folder` (required): a folder of `<class>/*` or `train/<class>/*` (+ `valid/<class>/*`); "
                    "`fashion_mnist`: a folder of IDX files (default `data/fashion-mnist`, then the system copy). "
                    "Relative paths are read from the current folder, then beside the experiment file.",
    "dataset.validation_split": "Fraction of each class held out for validation (stratified, seeded) where the data "
                                "has no validation set of its own; not set means 0.2.",
    "dataset.samples": "`synthetic`: number of images in total.",
    "dataset.classes": "`synthetic`: 2 (car, truck) or 3 (+ bus). `fashion_mnist`: a list of labels in 0–9 "
                       "(all 10 by default), relabelled in the listed order.",
    "dataset.on_bad_file": "`folder`: `error` stops before training with a list of unreadable files; `skip` "
                           "leaves them out with a warning.",
    "dataset.train_samples": "A stratified, seeded subsample of the training split (not set: all of it).",
    "dataset.val_samples": "The same for the validation split.",
    "dataset.resample": "`replicate`: each seed replicate draws its own stratified training subsample and validation "
                        "split (only its training subsample where the data brings a validation set: a folder's "
                        "`valid/`, `validation: test`), shared by every design point of that replicate, so a "
                        "verdict is about random splits of the dataset; `none`: one split for every training, so a "
                        "verdict is about that split. Default `replicate` for `folder`, `none` otherwise.",
    "dataset.validation": "`fashion_mnist`: `split` holds out `validation_split` of the training images; "
                          "`test` validates on the official 10,000-image test split.",
    "dataset.stream": "`folder`: `true` streams from disk with `tf.data`, `false` holds the images in memory, "
                      "`auto` streams when the decoded images would exceed `stream_threshold_bytes`.",
    "dataset.stream_threshold_bytes": "Bytes of decoded float32 pixels above which `stream: auto` streams "
                                      "(default 2 GiB).",
    "dataset.cache": "`folder`, streaming: decoded pixels written once to `CACHE.{train,val}.npy` "
                     "(`CACHE.{pool,val}.npy` with `resample: replicate`), then read by memory map.",
    "dataset.follow_symlinks": "`folder`: `true` follows links that point outside the dataset folder "
                               "(refused otherwise).",
    "model": "The network under the augmentations (left out: the convnet, its depth and filters from the search "
             "space).",
    "model.base": "`convnet` (Conv2D+ReLU+MaxPool2D blocks, filters doubling) or a Keras application under the "
                  "same head.",
    "model.weights": "`imagenet` (Keras applications), `none`, or a `.weights.h5` / `.keras` file.",
    "model.trainable": "`true`, `false` (frozen base), or N: fine-tune the top N layers that have weights. "
                       "Default `true` without a base, `false` with one.",
    "model.depth": "`convnet` base from a weights file: its number of conv blocks.",
    "model.filters": "`convnet` base from a weights file: its first block's filters (doubling per block).",
    "search_space": "A path to a search-space YAML file, or the mapping inline (the keys below).",
    "search_space.depth": "Conv blocks (each halves the image): one value, a list or a range to search; required "
                          "without a base, not allowed with one.",
    "search_space.filters": "First block's filters, doubling per block; a list is searched; not with a base.",
    "search_space.dense_units": "Units of the head's Dense layer; a list is searched.",
    "search_space.learning_rate": "A log-uniform range to search; not set: `train.learning_rate`.",
    "search_space.augmentations": "The augmentations each trial may switch on, with their parameters (a range "
                                  "`[low, high]` is searched, one value is fixed); see the search space above.",
    "train": "How each repeat trains.",
    "train.epochs": "Epochs per training (the fixed budget the verdicts are about).",
    "train.batch_size": "Images per batch.",
    "train.learning_rate": "Adam's learning rate (unless the search space searches it).",
    "train.adam_epsilon": "Adam's epsilon (0.01 as in Kaggle's computer-vision course).",
    "train.mixed_precision": "bfloat16 mixed precision (for GPUs).",
    "train.jit_compile": "XLA compilation: `auto` lets the backend decide.",
    "train.early_stopping": "Patience in epochs for Keras `EarlyStopping`; 0 is off.",
    "train.reuse_compiled": "Reuse one compiled model per network structure across repeats (same histories, less "
                            "fixed cost); `auto` does it on TensorFlow.",
    "train.deterministic": "Deterministic ops, so a reproduction matches to 1e-5; `false` is faster, not exact.",
    "train.until_converged": "Instead of `epochs`: train until val_loss has not improved for `patience` epochs, "
                             "up to `max_epochs` (the converged outcome).",
    "train.until_converged.patience": "Epochs without improvement before a training stops.",
    "train.until_converged.max_epochs": "Cap on the epochs of one training.",
    "trials": "Finished trials wanted in total (the cap with `stop: decided`); rerunning resumes up to it.",
    "repeats": "Paired seeds per trial: repeat r uses the same seeds in every trial.",
    "sampler": "`factorial` (a balanced two-level design: what does each augmentation do?), `random`, `tpe` "
               "(finding the best configuration), `grid` (every augmentation on/off × every depth).",
    "pruner": "Stop poor trials early (`random`/`tpe` only; pruned trials never enter the effects). "
              "`sampler: factorial` takes `none`, its default.",
    "seed": "Seeds the sampler and every training's seeds.",
    "max_consecutive_failures": "Stop the sweep (exit 1) after this many trials in a row fail.",
    "stop": "`budget` runs `trials`; `decided` (factorial only) refits after each block and stops once every "
            "augmentation is decided.",
    "equivalence_margin": "Validation loss: an effect whose interval lies inside ±margin is `negligible`.",
    "assume_no_higher_interactions": "In a fractional design, decide the rows aliased with an interaction of three "
                                     "factors or more (augmentation × depth, pairs) as if those were 0.",
    "ablation": "The paired-seed ablation around a base configuration (`make ablate`).",
    "ablation.repeats": "Paired seeds per variant (`--repeats` overrides).",
    "ablation.base": "`best` (the sweep's best completed trial) or a configuration: "
                     "`{depth: 2, augmentations: {flip: {mode: horizontal}}}`; not set: `best`.",
    "ablation.baselines": "Also train Keras's RandAugment and a TrivialAugment-style policy on the base's network.",
}

KIND_TYPES = {K.INT: "integer", K.NUMBER: "number", K.BOOL: "`true` / `false`", K.CHOICE: "choice",
              K.SECTION: "section"}


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return f"{value:,}".replace(",", "\u2009") if isinstance(value, int) and abs(value) >= 10_000 else f"{value:g}"


def key_type(key: K.Key) -> str:
    """What kind of value the key takes."""
    if key.kind == K.CUSTOM:
        return CUSTOM_TYPES[key.name]
    if key.name == "model.trainable":
        return "`true` / `false` / integer"
    return KIND_TYPES[key.kind]


def key_range(key: K.Key) -> str:
    """The key's range or choices, as the loader checks them ("" when it has neither)."""
    if key.choices:
        return ", ".join(f"`{c}`" for c in key.choices)
    if key.low is None and key.high is None:
        return ""
    low = "" if key.low is None else _number(key.low)
    if key.high is None:
        return f"{'>' if key.low_open else '≥'} {low}"
    lo = "(" if key.low_open else "["
    return f"{lo}{low}, {_number(key.high)}]"


def default_text(key: K.Key) -> str:
    """The key's default as the page shows it: `required`, `not set`, or the value as YAML writes it."""
    value = key.default
    if value is K.REQUIRED:
        return "required" if key.kind != K.SECTION else "–"
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, (int, float)):
        return f"`{value:g}`" if isinstance(value, float) else f"`{value}`"
    return f"`{value}`"


def check() -> None:
    """Every key has a meaning and every meaning a key; every CUSTOM key says its type."""
    names = [key.name for key in K.KEYS]
    missing = [n for n in names if n not in MEANINGS]
    unknown = sorted(set(MEANINGS) - set(names))
    untyped = [key.name for key in K.KEYS if key.kind == K.CUSTOM and key.name not in CUSTOM_TYPES]
    stale = sorted(set(CUSTOM_TYPES) - {key.name for key in K.KEYS if key.kind == K.CUSTOM})
    problems = ([f"keys without a meaning in docs/gen_reference.py: {missing}"] if missing else []) + \
               ([f"meanings for keys the table does not have: {unknown}"] if unknown else []) + \
               ([f"custom keys without a type: {untyped}"] if untyped else []) + \
               ([f"types for keys that are not custom: {stale}"] if stale else [])
    if problems:
        raise ValueError("; ".join(problems))


def key_table() -> str:
    """The Markdown table: key, type, range or choices, default, meaning, whether a resumed study may change it."""
    check()
    rows = ["| key | type | range or choices | default | meaning |", "|---|---|---|---|---|"]
    for key in K.KEYS:
        meaning = MEANINGS[key.name]
        if not key.identity and not key.section:
            meaning += " May change when a study is resumed."
        rows.append(f"| `{key.name}` | {key_type(key)} | {key_range(key)} | {default_text(key)} | {meaning} |")
    return "\n".join(rows)


def on_page_markdown(markdown: str, page, config, files) -> str:
    """MkDocs hook: put the generated table where the experiment-file page holds the marker."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} lost its marker line {MARKER}")
    return markdown.replace(MARKER, key_table())


if __name__ == "__main__":
    print(key_table())
