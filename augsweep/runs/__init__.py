"""What trains and writes the stores: the per-seed repeat, the Optuna objective, the sweep session and its
workers, the ablation's variants and runs, and `--reproduce`; imports `training`, `stores`, `experiment`."""
