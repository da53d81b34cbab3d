"""The best configuration by its mean: distinct configurations over every seed they trained with.

Pure (pandas in, pandas out). A configuration is a network depth and a set of augmentations switched on, at
the magnitudes it was trained with (`magnitudes`: a design that varies magnitudes trains each configuration at
one level of each, so its row is about those levels, not an average over the range). Its mean is over every
seed replicate (block, repeat) that holds it; its difference against no augmentation is paired by seed
replicate (the same seeds trained both), with a t interval across replicates under the report's rule:
simultaneous (Šidák) over every configuration compared with none, at the configurations' level in the look's
graph of tables (`inference.gate_levels`), widened by a shift the repeats of one trial share (each side of a
difference is one trial: twice the shift's variance, `inference.sweep_shift`). Because every configuration's
interval holds at once, naming the best one afterwards costs no extra error (no winner's curse in the
interval, only in the order).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import inference
from ..experiment.space import aug_key

CONFIG_COLUMNS = ["configuration", "n_trials", "n_seeds", "mean_best_val_loss", "diff_vs_none", "ci_low",
                  "ci_high", "verdict", "magnitudes"]


def label(depth, on: list[str], with_depth: bool = True) -> str:
    """`d2 contrast+warp` (`d2 none`), as `TrialConfig.label` names a trial's configuration."""
    augs = "+".join(on) or "none"
    return f"d{int(depth)} {augs}" if with_depth and depth else augs


def configurations(table: pd.DataFrame, augmentations: list[str], *, margin: float, alpha_look: float,
                   outcome: str = "best_val_loss", shift: tuple[float, float] = (0.0, 0.0)) -> pd.DataFrame:
    """`configurations.csv`: one row per distinct configuration, best mean first (ties by name)."""
    if not len(table):
        return pd.DataFrame(columns=CONFIG_COLUMNS)
    df = table[np.isfinite(table[outcome].astype(float))].copy()
    depth = df["depth"] if "depth" in df else pd.Series(0, index=df.index)
    on = df[[aug_key(a) for a in augmentations]].astype(bool).to_numpy()
    df["configuration"] = [label(d, [a for a, o in zip(augmentations, row) if o]) for d, row in zip(depth, on)]
    df["_none"] = ~on.any(axis=1)
    df["_depth"] = depth.to_numpy()
    wide = df.groupby(["block", "repeat", "configuration"])[outcome].mean().unstack("configuration")
    names = list(wide.columns)
    info = df.groupby("configuration").agg(n_trials=("trial", "nunique"), _depth=("_depth", "first"),
                                           _none=("_none", "first"))
    none_of = {d: label(d, []) for d in info["_depth"]}
    D = np.full(wide.shape, np.nan)
    for j, c in enumerate(names):
        base = none_of.get(info.loc[c, "_depth"])
        if c != base and base in wide:
            D[:, j] = (wide[c] - wide[base]).to_numpy(dtype=float)
    extra = (np.full(D.shape[1], 2.0 * shift[0]), np.full(D.shape[1], float(shift[1]))) if shift[0] > 0 else None
    res = inference.decide_arrays(D, alpha_look, margin, extra)
    mags = [c for c in df.columns if c.startswith("aug_") and c not in {aug_key(a) for a in augmentations}
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])]

    def levels(c: str) -> str:
        g = df.loc[df["configuration"] == c, mags]
        return ", ".join(f"{m[4:]}={'/'.join(f'{v:g}' for v in sorted(g[m].dropna().unique()))}"
                         for m in mags if g[m].notna().any())

    out = pd.DataFrame({
        "configuration": names, "n_trials": info.loc[names, "n_trials"].to_numpy(dtype=int),
        "n_seeds": wide.notna().sum().to_numpy(dtype=int), "mean_best_val_loss": wide.mean().to_numpy(dtype=float),
        "diff_vs_none": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "verdict": np.where(info.loc[names, "_none"].to_numpy(dtype=bool), "baseline",
                            inference.VERDICT_CODES[res["code"]]),
        "magnitudes": [levels(c) for c in names],
    })
    out.attrs["n_family"] = int(res["n_family"].max()) if len(names) else 0
    return out.sort_values(["mean_best_val_loss", "configuration"], kind="stable").reset_index(drop=True)


def no_baseline_words(configuration: str) -> str:
    """Why a configuration has no comparison against no augmentation."""
    depth = configuration.split(" ", 1)[0]
    return (f"no comparison against no augmentation: this design trained no `{depth} none` to pair it with "
            f"(a fractional design holds only some of the combinations)")


def standing(configs: pd.DataFrame, configuration: str) -> str:
    """Where a recommended configuration stands against no augmentation, in words."""
    row = configs[configs["configuration"] == configuration]
    if not len(row):
        return "not in the configurations compared"
    r = row.iloc[0]
    if r["verdict"] == "baseline":
        return "it is no augmentation"
    if not np.isfinite(r["diff_vs_none"]):
        return "best by its mean; " + no_baseline_words(configuration)
    diff = (f"{r['diff_vs_none']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]" if np.isfinite(r["ci_low"])
            else f"{r['diff_vs_none']:+.3f}, no interval with {int(r['n_seeds'])} seed(s)")
    if r["verdict"] == "helps":
        return f"decided better than no augmentation ({diff})"
    return f"best by its mean, not decided better than no augmentation ({diff}, `{r['verdict']}`)"


def best_words(configs: pd.DataFrame, effects: pd.DataFrame, pairs: pd.DataFrame | None, augmentations: list[str],
               alpha_look: float) -> list[str]:
    """The answer's sentence on the best configuration by its mean, its interval against none, and what to
    make of a `hurts` augmentation inside it."""
    if not len(configs):
        return []
    b = configs.iloc[0]
    lines = []
    m = configs.attrs.get("n_family", len(configs) - 1)
    vs = (f"{b['diff_vs_none']:+.3f} [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}] against no augmentation "
          f"(`{b['verdict']}`; paired by seed, simultaneous over the {m} configurations compared with none, "
          f"alpha {alpha_look:.3g})" if b["verdict"] != "baseline" and np.isfinite(b["diff_vs_none"])
          else "no augmentation itself" if b["verdict"] == "baseline" else no_baseline_words(b["configuration"]))
    lines.append(f"Best configuration by its mean over {int(b['n_seeds'])} seed(s) ({int(b['n_trials'])} trial(s)): "
                 f"**{b['configuration']}**, mean best validation loss {b['mean_best_val_loss']:.4f}, {vs}.")
    on = [a for a in augmentations if a in b["configuration"].split(" ", 1)[-1].split("+")]
    hurts = [a for a in on if (effects.loc[effects["augmentation"] == a, "verdict"] == "hurts").any()]
    for a in hurts:
        inter = []
        if pairs is not None and len(pairs):
            inter = [t for t, v in zip(pairs["term"], pairs["verdict"])
                     if a in t.split(" x ") and v in ("helps", "hurts")]
        if inter:
            why = f"a decided interaction ({', '.join(inter)}) explains it: see the conditional effects"
        else:
            without = configs[[a not in c.split(" ", 1)[-1].split("+") for c in configs["configuration"]]]
            alt = (f"; the best configuration without it, {without.iloc[0]['configuration']}, has mean "
                   f"{without.iloc[0]['mean_best_val_loss']:.4f}" if len(without) else "")
            why = ("no decided interaction involves it, so its place at the top is most likely noise among "
                   f"{len(configs)} configurations ranked by their means{alt}")
        lines.append(f"It contains {a}, whose verdict is `hurts`: {why}.")
    return lines
