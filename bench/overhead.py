"""Per-trial overhead of augsweep against a plain Keras script, measured side by side in one run.

Both train the course's convnet (depth 2, flip + contrast inside the model) on the same digits
arrays for the same epochs and batch size. augsweep's side is one full trial through the real
objective: Optuna study on SQLite, MLflow parent + nested run on SQLite, per-epoch logging,
artifacts (history.csv, curves, augmentation preview). The two alternate, round after round, so
drift of the machine hits both; the ratio of medians is the figure.

    python bench/overhead.py                 # ~3 minutes on 2 idle CPU cores
    python bench/overhead.py --tiny          # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401 - sets sys.path and the TF log level
from _common import alternate, machine, median, objective_on_temp_stores, rounds_text, table


def plain_keras(x_train, y_train, x_val, y_val, num_classes, epochs, batch_size, seed):
    """What a user would write by hand: the course's model, fit, nothing else."""
    import keras
    from keras import layers

    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([
        keras.Input(shape=x_train.shape[1:]),
        layers.RandomFlip("horizontal", seed=seed),
        layers.RandomContrast(0.3, value_range=(0, 1), seed=seed),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPool2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPool2D(),
        layers.Flatten(),
        layers.Dense(6, activation="relu"),
        layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(0.003, epsilon=0.01),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=epochs, batch_size=batch_size,
              verbose=0)


def experiment_yaml(epochs: int, batch_size: int, image_size: int) -> dict:
    return {
        "name": "bench-overhead",
        "dataset": {"source": "digits", "image_size": [image_size, image_size]},
        "search_space": {"depth": 2, "augmentations": {"flip": {"mode": "horizontal"}, "contrast": {"factor": 0.3}}},
        "train": {"epochs": epochs, "batch_size": batch_size, "learning_rate": 0.003},
        "trials": 1000, "repeats": 1, "sampler": "random", "pruner": "none", "seed": 0,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.epochs, args.rounds, args.image_size = 1, 1, 8

    experiment = experiment_yaml(args.epochs, args.batch_size, args.image_size)
    with objective_on_temp_stores(experiment) as (ds, study, objective):
        def ours():
            # The sampler turns each augmentation on or off; pin both on, like the plain script.
            study.enqueue_trial({"aug_flip": True, "aug_contrast": True})
            study.optimize(objective, n_trials=1)

        def plain():
            plain_keras(ds.x_train, ds.y_train, ds.x_val, ds.y_val, ds.num_classes, args.epochs,
                        args.batch_size, 0)

        if not args.tiny:  # the smoke run states no figure: its one round trains each side once
            plain(), ours()  # warm-up: first graph builds and store creation are not per-trial costs
        wall, cpu = alternate({"plain Keras": plain, "augsweep trial": ours}, args.rounds)
        states = [(t.state.name, len(t.intermediate_values), t.params) for t in study.trials]

    rows = []
    for k in wall:
        rows.append([k, f"{median(wall[k]):.2f}", rounds_text(wall[k]), f"{median(cpu[k]):.2f}", rounds_text(cpu[k])])
    ratio_wall = median(wall["augsweep trial"]) / median(wall["plain Keras"])
    ratio_cpu = median(cpu["augsweep trial"]) / median(cpu["plain Keras"])
    print(f"per-trial overhead: digits {args.image_size}x{args.image_size}, depth 2, flip+contrast, "
          f"{args.epochs} epochs, batch {args.batch_size}, {args.rounds} alternating rounds; {machine()}")
    print(table(["side", "wall s (median)", "wall s per round", "CPU s (median)", "CPU s per round"], rows))
    print("augsweep trials (state, epochs, params):", states)
    print(f"ratio augsweep / plain Keras: {ratio_wall:.3f} (wall), {ratio_cpu:.3f} (CPU time)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
