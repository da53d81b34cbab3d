"""What trains and writes the stores; imports `training`, `stores`, `experiment` and `runtime`.

`lifecycle.TrainingRun` is the one life of a training run in MLflow (start, train, end FINISHED / KILLED /
FAILED by one failure policy), used by the sweep's `objective` and the ablation's variants (`ablation`);
`repeat` trains one seed; `sweep` holds the session on the study (parent run, stopping, `--repair`), `blocks`
plans a factorial design's blocks and its stopping rule, `workers` runs N processes on one study, `progress`
prints; `reproduce` retrains a logged run, `pretrain` makes a weights file. How a process trains arrives as a
`runtime.RunEnv`, set up once by the entry point."""
