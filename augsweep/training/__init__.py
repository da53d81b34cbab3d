"""One repeat of one configuration; imports `augsweep.experiment`, `augsweep.augment` and `runtime`, never Optuna
or MLflow.

Data: `data.load_dataset` (one subsample for every source, one process cache) over `sources` (digits,
synthetic), `fashion` (Fashion-MNIST's IDX files), `folder` (image folders, in memory or streamed through
`image_files`), `dataset` (the `Dataset`, stratified splits and subsamples, memory checks) and `resample` (a
split per seed replicate, drawn from the pool by index: `replicate_data`). The network:
`model` (the convnet, pretrained bases), `placement` (where augmentations run), `train` (the fit), `reuse` (a
compiled model reused across repeats), `evaluate` and `checks` (the result's checks and failure reasons)."""
