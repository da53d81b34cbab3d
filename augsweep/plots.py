"""matplotlib figures written as PNG (deterministic bytes: no timestamps, fixed metadata)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

PNG_METADATA = {"Software": None}


def figure(cols: int = 1, rows: int = 1, size=(5, 3.6)):
    """A matplotlib Figure and its axes grid, without pyplot (no global state, thread-safe)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size)
    return fig, fig.subplots(rows, cols, squeeze=False)


def save(fig, path: str | Path) -> Path:
    """Write a figure as PNG."""
    path = Path(path)
    fig.savefig(path, dpi=100, metadata=PNG_METADATA)
    return path


def learning_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The course's two plots: loss/val_loss and accuracy/val_accuracy by epoch (one line per repeat)."""
    acc = next((c for c in ("binary_accuracy", "accuracy") if c in history.columns), None)
    fig, axes = figure(2 if acc else 1, 1, size=(10 if acc else 5, 3.6))
    groups = history.groupby("repeat") if "repeat" in history.columns else [(0, history)]
    for ax, (train_col, val_col) in zip(axes[0], [("loss", "val_loss"), (acc, f"val_{acc}")]):
        for i, (repeat, h) in enumerate(groups):
            x = h["epoch"] if "epoch" in h.columns else h.index
            suffix = f" r{repeat}" if "repeat" in history.columns else ""
            ax.plot(x, h[train_col], color="C0", alpha=1 - 0.3 * i, label=f"{train_col}{suffix}")
            ax.plot(x, h[val_col], color="C1", alpha=1 - 0.3 * i, label=f"{val_col}{suffix}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(train_col)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.88, wspace=0.25)
    return save(fig, path)


def image_grid(rows, path: str | Path, cell: int = 96, pad: int = 4, caption: int = 14) -> Path:
    """Rows of images in [0, 1], each under its caption, as one PNG (the course's "Sixteen transformations
    of a single image"). `rows`: [(caption, images)]; an empty caption continues the row above.

    Tiled with PIL rather than matplotlib: it is written for every trial, so it must cost milliseconds.
    """
    from PIL import Image, ImageDraw

    rows = [(text, np.clip(np.asarray(images, np.float32), 0, 1)) for text, images in rows]
    rows = [(text, np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images) for text, images in rows]
    h, w = rows[0][1].shape[1:3]
    scale = max(1, cell // max(h, w))
    cols = max(len(images) for _, images in rows)
    heights = [(caption if text else 0) + h * scale + pad for text, _ in rows]
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max(int(measure.textlength(t)) for t, _ in rows)
    sheet = Image.new("RGB", (max(cols * (w * scale + pad) + pad, text_width + 2 * pad), sum(heights) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    y = pad
    for (text, images), height in zip(rows, heights):
        if text:
            draw.text((pad, y), text, fill="black")
            y += caption
        for c, img in enumerate(images):
            tile = Image.fromarray((img * 255).round().astype(np.uint8)).resize((w * scale, h * scale), Image.NEAREST)
            sheet.paste(tile, (pad + c * (w * scale + pad), y))
        y += h * scale + pad
    sheet.save(path, "PNG")
    return Path(path)


def forest(effects: pd.DataFrame, path: str | Path, title: str = "Effect on validation loss",
           margin: float | None = None, seeds: pd.DataFrame | None = None) -> Path:
    """Effect of each augmentation with its 95% CI; left of zero = it lowered validation loss.

    `margin`: the ±equivalence margin drawn as a grey band (inside it an interval reads `negligible`);
    `seeds`: per-seed-replicate effects (`augmentation`, `effect`, as `inference.seed_effects` returns them),
    drawn as small dots beside each interval: the spread the interval comes from."""
    rows = effects.iloc[::-1]
    fig, axes = figure(1, 1, size=(7.5, 0.55 * len(rows) + 1.5))
    ax = axes[0, 0]
    colours = {"helps": "C2", "hurts": "C3"}
    if margin:
        ax.axvspan(-margin, margin, color="0.88", zorder=0, label=f"negligible: within ±{margin:g}")
    dots = False
    for i, (_, r) in enumerate(rows.iterrows()):
        colour = colours.get(r["verdict"], "0.4")
        if seeds is not None and r.get("source", "sweep") == "sweep":
            values = seeds.loc[seeds["augmentation"] == r["augmentation"], "effect"].dropna().to_numpy(float)
            if len(values):
                jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
                ax.plot(values, i - 0.22 + jitter, ".", color=colour, alpha=0.45, ms=4,
                        label=None if dots else "one seed replicate")
                dots = True
        if np.isfinite(r["effect"]):
            ax.errorbar(r["effect"], i, xerr=[[r["effect"] - r["ci_low"]], [r["ci_high"] - r["effect"]]],
                        fmt="o", color=colour, capsize=3, lw=1.8)
        ax.text(1.01, i, r["verdict"], transform=ax.get_yaxis_transform(), va="center", fontsize=9, color=colour,
                fontweight="bold" if r["verdict"] in colours else "normal")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['augmentation']}" + (f" ({r['source']})" if r.get("source", "sweep") != "sweep" else "")
                        for _, r in rows.iterrows()])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.set_xlabel("change in validation loss when turned on (simultaneous 95% CI; negative = helps)", fontsize=9)
    ax.set_title(title, fontsize=10, loc="left")
    ax.grid(axis="x", alpha=0.3)
    if margin or dots:  # above the axes, beside the title: never over a dot
        ax.legend(fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=2, frameon=False,
                  borderaxespad=0.2)
    fig.subplots_adjust(left=0.2, right=0.86, bottom=min(0.4, 0.6 / (0.55 * len(rows) + 1.5)),
                        top=1 - 0.45 / (0.55 * len(rows) + 1.5))
    return save(fig, path)


def effect_vs_budget(by_budget: pd.DataFrame, path: str | Path, epochs: int | None = None) -> Path:
    """Each augmentation's effect on the best val_loss within e epochs against e, with its (descriptive)
    simultaneous band; one line per augmentation, the experiment's budget marked."""
    fig, axes = figure(1, 1, size=(6.5, 3.2))
    ax = axes[0, 0]
    for i, (aug, g) in enumerate(by_budget.groupby("augmentation", sort=True)):
        g = g.sort_values("epochs")
        ax.plot(g["epochs"], g["effect"], marker="o", ms=3, color=f"C{i}", label=aug)
        ax.fill_between(g["epochs"], g["ci_low"], g["ci_high"], color=f"C{i}", alpha=0.15, lw=0)
    ax.axhline(0, color="0.3", lw=0.8)
    if epochs:
        ax.axvline(epochs, color="0.5", lw=0.8, ls=":")
    ax.set_xlabel("epoch budget e (best val_loss within the first e epochs)")
    ax.set_ylabel("effect (negative = helps)")
    ax.set_title("Effect vs epoch budget (descriptive bands)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.subplots_adjust(left=0.13, right=0.98, bottom=0.16, top=0.9)
    return save(fig, path)


def curves_by_augmentation(curves: pd.DataFrame, augmentations: list[str], path: str | Path) -> Path:
    """Mean val_loss by epoch with vs without each augmentation (shaded: spread over trials)."""
    n = max(1, len(augmentations))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = figure(cols, rows, size=(4 * cols, 3 * rows))
    for ax, aug in zip(axes.flat, augmentations):
        shown = []
        for on, colour in ((False, "C0"), (True, "C1")):
            sub = curves[curves[f"aug_{aug}"] == on]
            if sub.empty:
                continue
            per_trial = sub.groupby(["trial", "epoch"])["val_loss"].mean().unstack("trial")
            mean, lo, hi = per_trial.mean(axis=1), per_trial.quantile(0.25, axis=1), per_trial.quantile(0.75, axis=1)
            ax.plot(mean.index, mean, color=colour, label=f"{'with' if on else 'without'} ({per_trial.shape[1]} trials)")
            ax.fill_between(mean.index, lo, hi, color=colour, alpha=0.2)
            shown.append((lo, hi))
        _focus(ax, shown)
        ax.set_title(aug, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel("val_loss (log scale)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Unadjusted: depth and the other augmentations are not held fixed", fontsize=9)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.17 if rows == 1 else 0.1, top=0.84 if rows == 1 else 0.9,
                        hspace=0.5, wspace=0.3)
    return save(fig, path)


def _focus(ax, bands: list) -> None:
    """A log y axis whose range covers the curves after their first quarter of epochs (where augmentations
    differ by a few hundredths), not the first epochs' large losses that squash the rest flat."""
    values = []
    for lo, hi in bands:
        start = lo.index.min() + (lo.index.max() - lo.index.min()) // 4
        values += [lo[lo.index >= start].to_numpy(float), hi[hi.index >= start].to_numpy(float)]
    flat = np.concatenate(values) if values else np.array([])
    flat = flat[np.isfinite(flat) & (flat > 0)]
    if not len(flat):
        return
    low, high = float(flat.min()), float(flat.max())
    ax.set_yscale("log")
    ax.set_ylim(low / 1.08, high * 1.08)


def train_vs_val(histories: dict[str, pd.DataFrame], path: str | Path) -> Path:
    """The course's comparison: train and validation loss of named trials (mean over repeats)."""
    fig, axes = figure(len(histories), 1, size=(5 * max(1, len(histories)), 3.4))
    for ax, (name, h) in zip(axes[0], histories.items()):
        mean = h.groupby("epoch")[["loss", "val_loss"]].mean()
        ax.plot(mean.index, mean["loss"], label="loss (train)")
        ax.plot(mean.index, mean["val_loss"], label="val_loss")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (mean over repeats)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    return save(fig, path)


def optimization_history(trials: pd.DataFrame, curves: pd.DataFrame, path: str | Path,
                         running_best: bool = True) -> Path:
    """Left: each trial's value and the running best (`running_best=False`, e.g. for a design run in a shuffled
    order where "so far" means nothing: the values alone). Right: every trial's val_loss curve, pruned dashed."""
    fig, axes = figure(2, 1, size=(10, 3.4))
    ax = axes[0, 0]
    done = trials[trials["state"] == "COMPLETE"].sort_values("trial")
    ax.plot(done["trial"], done["value"], "o", color="C0", ms=4, label="trial value")
    if running_best:
        ax.plot(done["trial"], done["value"].cummin(), color="C3", label="best so far")
    else:
        ax.set_title("trial values (design points run in a shuffled order)", fontsize=9)
    ax.set_xlabel("trial")
    ax.set_ylabel("mean best val_loss")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    ax = axes[0, 1]
    state = trials.set_index("trial")["state"]
    values = trials.set_index("trial")["value"]
    finite = done["value"].dropna()
    lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    best = int(done.loc[done["value"].idxmin(), "trial"]) if len(finite) else None
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    # One groupby for every trial's mean curve (a groupby per trial cost ~0.3 s at 1,000 trials); each group
    # averages the same rows in the same order, so the values are the same.
    means = curves.groupby(["trial", "epoch"])["val_loss"].mean()
    for trial, mean in means.groupby(level="trial"):
        mean = mean.droplevel("trial")
        if state.get(trial) == "PRUNED":
            ax.plot(mean.index, mean, color="0.6", ls="--", lw=0.8, alpha=0.8)
        elif trial != best:
            v = values.get(trial)
            shade = 0.5 if v is None or not np.isfinite(v) or hi == lo else (v - lo) / (hi - lo)
            ax.plot(mean.index, mean, color=cmap(0.9 * shade), lw=0.9, alpha=0.7)
    if best is not None and (curves["trial"] == best).any():
        mean = curves[curves["trial"] == best].groupby("epoch")["val_loss"].mean()
        ax.plot(mean.index, mean, color="C3", lw=2.2, label=f"best: t{best:02d} ({values[best]:.4f})")
        ax.legend(fontsize=7)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_loss (mean over repeats)")
    ax.set_title("all trials, coloured by value (dark = lower); pruned: dashed grey", fontsize=9)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return save(fig, path)


def variant_curves(curves: pd.DataFrame, order: list[str], path: str | Path) -> Path:
    """Validation loss by epoch for each ablation variant: mean over seeds, shaded min-max over seeds."""
    fig, axes = figure(1, 1, size=(7, 4.2))
    ax = axes[0][0]
    for i, name in enumerate([n for n in order if n in set(curves["variant"])]):
        g = curves[curves["variant"] == name].groupby("epoch")["val_loss"]
        mean, lo, hi = g.mean(), g.min(), g.max()
        style = "-" if name in ("base", "none") else ("--" if name.startswith(("base-", "none+")) else ":")
        ax.plot(mean.index, mean.to_numpy(), style, color=f"C{i % 10}", lw=2 if name in ("base", "none") else 1.2,
                label=name)
        ax.fill_between(mean.index, lo.to_numpy(), hi.to_numpy(), color=f"C{i % 10}", alpha=0.12)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_loss (mean over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.12, top=0.97)
    return save(fig, path)


def affinity_scatter(frame: pd.DataFrame, path: str | Path) -> Path:
    """Affinity (x) vs diversity (y) per augmentation, coloured by its add-one-in effect on val_loss."""
    fig, axes = figure(1, 1, size=(6, 4.4))
    ax = axes[0][0]
    ok = frame.dropna(subset=["affinity", "diversity"])
    if len(ok):
        lim = float(np.nanmax(np.abs(ok["effect"]))) if ok["effect"].notna().any() else 1.0
        lim = lim if lim > 0 else 1.0
        sc = ax.scatter(ok["affinity"], ok["diversity"], c=ok["effect"].fillna(0.0), cmap="coolwarm",
                        vmin=-lim, vmax=lim, s=70, edgecolors="k")
        for r in ok.itertuples(index=False):
            ax.annotate(r.augmentation, (r.affinity, r.diversity), xytext=(5, 4), textcoords="offset points",
                        fontsize=8)
        fig.colorbar(sc, ax=ax, label="effect on val_loss (blue = helps)")
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_xlabel("affinity (clean / augmented val_loss of the no-aug model)")
    ax.set_ylabel("diversity (final train loss with / without)")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.97)
    return save(fig, path)
