"""Stores -> pure statistics -> Markdown, HTML and `effects.csv`: the sweep's and the ablation's sections;
reads the stores and never trains (imports `runs` only for the ablation's design and store look-ups)."""
