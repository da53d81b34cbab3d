"""One repeat of one configuration: data, the convnet builder, where augmentations run, the fit, evaluation
and the checks on its result; imports `augsweep.experiment`, `augsweep.augment` and `runtime`, never Optuna or
MLflow."""
