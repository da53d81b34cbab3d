"""Stores -> pure statistics -> Markdown, HTML and `effects.csv`; reads the stores (`augsweep.stores`, keys from
`stores.records`) and never trains: it imports neither `runs` nor `training` (tests/test_layers_report.py).

One way through, entered at `write`: `load` reads everything once into the immutable values of `inputs`
(`sweep_load`, `ablation_load` are the only modules that read the stores); `analysis` concludes (pure:
`sweep_analysis`, `ablation_analysis`, with `stats`, `budget`, `configurations` and `augsweep.inference`);
`figures` draws; `publish` exports the augmentation block (`export`) and registers the best model; `words` says
it (`sweep_words`, `ablation_words`, `next_steps`); `render` writes Markdown and HTML. Analysis, words and
rendering import nothing from `stores` (tests/test_layers_report.py)."""
