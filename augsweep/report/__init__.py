"""Stores -> pure statistics -> Markdown, HTML and `effects.csv`; reads the stores (`augsweep.stores`, keys from
`stores.records`) and never trains: it imports neither `runs` nor `training` (tests/test_layers_report.py).
`write` is the entry point; the sweep's part is `sweep_section` (joins) over `sweep_load` (stores),
`sweep_analysis` (pure), `sweep_words` (prose) and `sweep_figures`; the ablation's is `ablation_section`
(design from `experiment.variants`); `stats`, `budget`, `configurations` compute, `render` formats, `export`
and `publish` write the augmentation block and register the best model."""
