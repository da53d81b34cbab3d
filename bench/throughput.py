"""Training images per second: augmentations alone and together, in the model vs in tf.data,
mixed precision on/off and XLA on/off, all measured side by side in one run.

Every variant trains the same convnet (augsweep's builder, the sweep's fast input pipeline) on
the same data; each round times every variant once, in a fixed order, after a warm-up epoch
that absorbs graph tracing and XLA compilation. Figures are medians over rounds and ratios to
the first row (no augmentation, fp32, XLA off).

    python bench/throughput.py            # about 3 minutes on 2 CPU cores (digits 32x32)
    python bench/throughput.py --tiny     # smoke setting used by the tests
"""

from __future__ import annotations

import argparse
import sys

import _common  # noqa: F401 - sets sys.path and TF log level
from _common import alternate, machine, median, rounds_text, table, timed

AUGS = {
    "flip": {"mode": "horizontal"},
    "contrast": {"factor": 0.3},
    "rotation": {"factor": 0.1},
    "warp": {"kind": "translation", "factor": 0.1},
}


def variants(quick: bool) -> list[tuple[str, tuple[str, ...], str, bool, str]]:
    """(label, augmentations, placement, mixed precision, jit_compile)."""
    all4 = tuple(AUGS)
    rows = [("none", (), "model", False, "false")]
    if quick:  # one row per placement: in the model (all four) and in tf.data
        return rows + [("all four (model)", all4, "model", False, "false"),
                       ("rotation (tf.data)", ("rotation",), "data", False, "false")]
    rows += [(f"{a} (model)", (a,), "model", False, "false") for a in AUGS]
    rows += [("all four (model)", all4, "model", False, "false")]
    rows += [(f"{a} (tf.data)", (a,), "data", False, "false") for a in AUGS]
    rows += [("all four (tf.data)", all4, "data", False, "false")]
    rows += [
        ("none, bf16", (), "model", True, "false"),
        ("all four (model), bf16", all4, "model", True, "false"),
        ("none, XLA", (), "model", False, "true"),
        # jit_compile true with geometric layers in the model: Keras turns XLA off (measured as is)
        ("all four (model), XLA asked", all4, "model", False, "true"),
        ("all four (auto: geometric in tf.data), XLA", all4, "auto", False, "true"),
    ]
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--source", default="digits", choices=["digits", "synthetic"])
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--depth", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1, help="timed epochs per variant and round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="seconds-long smoke run (tests)")
    args = p.parse_args(argv)
    if args.tiny:
        args.source, args.image_size, args.epochs, args.rounds = "synthetic", 16, 1, 1

    import keras

    from augsweep import augment, runtime
    from augsweep.experiment import DatasetConfig, TrainConfig
    from augsweep.experiment.seeding import repeat_seeds
    from augsweep.experiment.space import TrialConfig
    from augsweep.training import train
    from augsweep.training.data import load_dataset

    samples = 96 if args.tiny else 1500
    ds = load_dataset(DatasetConfig(args.source, (args.image_size, args.image_size), samples=samples), 0)
    seeds = repeat_seeds(0, 0)
    steps = len(ds.x_train) // args.batch_size or 1
    images = steps * min(args.batch_size, len(ds.x_train)) * args.epochs
    device = runtime.configure_device()

    def one(augs, placement, mixed, jit):
        def measure():
            runtime.set_precision(mixed)
            try:
                config = TrialConfig(args.depth, learning_rate=0.003,
                                     augmentations=tuple((a, tuple(AUGS[a].items())) for a in augs))
                tcfg = TrainConfig(batch_size=args.batch_size, jit_compile=jit)
                where = train.plan_placement(config, tcfg, placement)
                model = train.build(config, ds, tcfg, seeds, in_model=where.in_model)
                data_layers = augment.build_layers({a: config.enabled[a] for a in where.in_data}, seeds.aug)
                pipeline = train.input_pipeline(ds.x_train, ds.y_train, args.batch_size, seeds.order,
                                                augmentation_layers=data_layers)
                model.fit(pipeline, epochs=1, verbose=0)  # warm-up: tracing, XLA compilation
                seconds = timed(lambda: model.fit(pipeline, epochs=args.epochs, verbose=0))
                measure.jit = bool(model.jit_compile)
                measure.where = where.label
                return seconds
            finally:
                runtime.set_precision(False)
                keras.backend.clear_session()

        return measure

    rows = variants(args.tiny)
    fns = {label: one(augs, placement, mixed, jit) for label, augs, placement, mixed, jit in rows}
    wall, cpu = alternate(fns, args.rounds)
    base, base_cpu = median(wall["none"]), median(cpu["none"])
    out = []
    for label, augs, placement, mixed, jit in rows:
        m = median(wall[label])
        fn = fns[label]
        out.append([label, fn.where, "bf16" if mixed else "fp32", "on" if fn.jit else "off",
                    f"{images / m:.0f}", f"{m / base:.3f}", f"{median(cpu[label]) / base_cpu:.3f}",
                    rounds_text([images / t for t in wall[label]], "{:.0f}")])
    print(f"training throughput: {ds.describe()}, depth {args.depth}, batch {args.batch_size}, "
          f"{args.epochs} timed epochs x {args.rounds} alternating rounds; {device}; {machine()}")
    print(table(["variant", "placement", "precision", "XLA", "images/s (median)", "time ratio to none",
                 "CPU-time ratio to none", "images/s per round"], out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
