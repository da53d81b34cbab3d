"""`make pretrain`: the project's offline stand-in for a pretrained base.

Trains the course's convnet on Fashion-MNIST classes 0-4 and saves its conv blocks (the base, without the
head) as a small `.weights.h5` file, which `model: {base: convnet, weights: PATH, depth, filters}` loads
(experiments/transfer.yaml freezes it and sweeps augmentations on classes 5-9).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .. import runtime
from ..experiment.schema import DatasetConfig
from ..training import train
from ..training.data import load_dataset
from ..training.model import build_convnet, compile_model, convnet_base


def pretrain(out: Path, classes=(0, 1, 2, 3, 4), depth: int = 2, filters: int = 16, dense_units: int = 32,
             epochs: int = 3, train_samples: int = 12_000, batch_size: int = 64, learning_rate: float = 0.003,
             seed: int = 0, echo=print) -> dict:
    """Train, save the conv blocks' weights to `out`; return the final validation numbers and the time."""
    started = time.perf_counter()
    cfg = DatasetConfig("fashion_mnist", (28, 28), classes=tuple(classes), train_samples=train_samples,
                        val_samples=2_000, validation="test")
    ds = load_dataset(cfg, seed)
    echo(f"pretrain: {ds.describe()}; convnet depth {depth}, filters {filters}, {epochs} epochs")
    train.set_global_seed(seed)
    model = compile_model(build_convnet(ds.input_shape, ds.num_classes, depth, filters, dense_units, seed=seed),
                          ds.num_classes, learning_rate)
    frame = train.fit(model, ds, epochs, batch_size, seed=seed)
    base = convnet_base(ds.input_shape, depth, filters)
    for layer in base.layers:
        layer.set_weights(model.get_layer(layer.name).get_weights())
    out.parent.mkdir(parents=True, exist_ok=True)
    base.save_weights(out)
    last = frame.iloc[-1]
    result = {"val_loss": float(last["val_loss"]), "val_accuracy": float(last["val_accuracy"]),
              "seconds": time.perf_counter() - started, "bytes": out.stat().st_size}
    echo(f"pretrain: val_loss {result['val_loss']:.4f}, val_accuracy {result['val_accuracy']:.4f} on the test "
         f"images of classes {list(classes)}; saved {out} ({result['bytes']} bytes) in {result['seconds']:.0f} s")
    return result


def main(argv=None, prog: str = "python -m augsweep.runs.pretrain") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--out", default="data/fashion-convnet-0-4.weights.h5", help="weights file to write")
    p.add_argument("--classes", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="Fashion-MNIST labels")
    p.add_argument("--depth", type=int, default=2, help="conv blocks")
    p.add_argument("--filters", type=int, default=16, help="first block's filters (doubling)")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--train-samples", type=int, default=12_000, help="stratified subsample of the training split")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    runtime.quiet_backends()
    return runtime.run_main(lambda: pretrain(Path(args.out), args.classes, args.depth, args.filters,
                                             epochs=args.epochs, train_samples=args.train_samples,
                                             seed=args.seed) and 0)


if __name__ == "__main__":
    raise SystemExit(main())
