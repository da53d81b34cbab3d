"""matplotlib figures (each function returns its `Figure`; `save` writes it as PNG with deterministic bytes: no
timestamps, fixed metadata) and the PIL image grid.

Sizes are chosen for report.html, which shows a figure at its natural size (`DPI` pixels per inch, one pixel per
CSS pixel) up to the width of its place: `PAGE_PX`, or `HALF_PX` for the first screen's two figures side by side.
A figure that fits its place is never scaled down, so a `SMALL`-point text reads as 12.5 px, above
`MIN_TEXT_PX` (`text_px` measures a figure's smallest text).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .experiment.space import aug_key

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PNG_METADATA = {"Software": None}
DPI = 100  # PNG pixels per figure inch
PAGE_PX = 1100  # report.html's text column in CSS px (render.CSS: body max-width): the widest a figure is shown
HALF_PX = 540  # one of the first screen's two figures side by side (half the column, less the gap between)
SMALL = 9  # points: legends and annotations, the smallest text of a figure (9 pt = 12.5 px at DPI)
MIN_TEXT_PX = 11  # the smallest text a reader is asked to read, in CSS px at the width the figure is shown


def figure(cols: int = 1, rows: int = 1, size=(5, 3.6), layout: str | None = None, **subplots):
    """A matplotlib Figure and its axes grid, without pyplot (no global state, thread-safe); `layout`:
    "constrained" to fit titles, labels and legends by themselves; `subplots`: e.g. `sharex=True`."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI, layout=layout)
    return fig, fig.subplots(rows, cols, squeeze=False, **subplots)


ABSURD = 1e12  # a loss, an accuracy or an effect beyond this is a broken store, not a measurement
NOT_SHOWN = "values beyond ±1e12 or not finite are not shown"


def save(fig, path: str | Path) -> Path:
    """Write a figure as PNG. An axis whose data reach absurd or non-finite values (a damaged or hand-edited
    store: 1e308, inf) is limited to its sane values with a note on the axes; a figure that still cannot be
    drawn is replaced by one that says so (a figure never ends the report)."""
    import warnings

    path = Path(path)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in the axis arithmetic: handled below
        for ax in fig.axes:
            _limit_absurd(ax)
        try:
            fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
        except (ValueError, OverflowError, FloatingPointError):
            fig.clear()
            fig.text(0.5, 0.5, f"figure not drawn: the stored values cannot be plotted ({NOT_SHOWN})",
                     ha="center", va="center", fontsize=SMALL, wrap=True)
            fig.savefig(path, dpi=DPI, metadata=PNG_METADATA)
    return path


def _number(value: float) -> str:
    """A loss for a label: 4 decimals, or 3 significant digits when it is absurdly large (a damaged store)."""
    return f"{value:.4f}" if abs(value) < 1e6 else f"{value:.3g}"


def _sane(values) -> np.ndarray:
    data = np.asarray(values, dtype=float).ravel()
    return data[np.isfinite(data) & (np.abs(data) <= ABSURD)]


def _limit_absurd(ax) -> None:
    """Limit an axis whose limits are non-finite or absurd to the range of its sane data, with a note."""
    noted = False
    for which in ("x", "y"):
        low, high = ax.get_xlim() if which == "x" else ax.get_ylim()
        if np.isfinite([low, high, high - low]).all() and max(abs(low), abs(high)) <= ABSURD:
            continue
        data = [_sane(line.get_xdata() if which == "x" else line.get_ydata()) for line in ax.get_lines()]
        for collection in ax.collections:
            offsets = np.asarray(collection.get_offsets(), dtype=float)
            if offsets.ndim == 2 and offsets.shape[1] == 2:
                data.append(_sane(offsets[:, 0 if which == "x" else 1]))
        sane = np.concatenate(data) if data else np.array([])
        lo, hi = (float(sane.min()), float(sane.max())) if sane.size else (0.0, 1.0)
        pad = 0.05 * (hi - lo) or 0.5
        (ax.set_xlim if which == "x" else ax.set_ylim)(lo - pad, hi + pad)
        noted = True
    if noted:
        ax.text(0.5, 0.02, NOT_SHOWN, transform=ax.transAxes, ha="center", va="bottom", fontsize=SMALL, color="C3")


def text_px(fig, shown_px: float | None = None) -> float:
    """The size of a figure's smallest text (tick labels, axis labels, titles, legends, annotations) in CSS px,
    the figure shown `shown_px` wide (default: at its natural width; a browser never enlarges it past that)."""
    from matplotlib.text import Text

    fig.draw_without_rendering()  # tick labels exist once the figure is laid out
    width = fig.get_figwidth() * DPI
    scale = min(1.0, (shown_px or width) / width)
    sizes = [t.get_fontsize() for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    return min(sizes) * DPI / 72 * scale


def learning_curves(history: pd.DataFrame, title: str = "") -> Figure:
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
        ax.xaxis.set_major_locator(_ticks(8, integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(train_col)
        ax.legend(fontsize=SMALL)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.88, wspace=0.25)
    return fig


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


def forest(effects: pd.DataFrame, title: str = "Effect on validation loss", margin: float | None = None,
           seeds: pd.DataFrame | None = None) -> Figure:
    """Effect of each augmentation with its 95% CI; left of zero = it lowered validation loss. Sized for
    `HALF_PX` (the first screen).

    `margin`: the ±equivalence margin drawn as a grey band (inside it an interval reads `negligible`);
    `seeds`: per-seed-replicate effects (`augmentation`, `effect`, as `inference.seed_effects` returns them),
    drawn as small dots beside each interval: the spread the interval comes from."""
    rows = effects.iloc[::-1]
    fig, axes = figure(1, 1, size=(HALF_PX / DPI, 0.45 * len(rows) + 1.9), layout="constrained")
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
        ax.text(1.02, i, r["verdict"], transform=ax.get_yaxis_transform(), va="center", fontsize=SMALL,
                color=colour, fontweight="bold" if r["verdict"] in colours else "normal")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r['augmentation']}" + (f" ({r['source']})" if r.get("source", "sweep") != "sweep" else "")
                        for _, r in rows.iterrows()])
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axvline(0, color="0.3", lw=0.8)
    ax.xaxis.set_major_locator(_ticks(5))
    ax.set_xlabel("change in validation loss when turned on\n(simultaneous 95% CI; negative = helps)")
    ax.grid(axis="x", alpha=0.3)
    if margin or dots:  # between the title and the axes: never over a dot
        ax.legend(fontsize=SMALL, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=2, frameon=False,
                  borderaxespad=0.1, handletextpad=0.4, columnspacing=1.2)
    fig.suptitle(title, fontsize=11, x=0.02, ha="left")
    return fig


def _ticks(bins: int, integer: bool = False):
    """At most `bins` ticks at round values (whole numbers only when `integer`: epochs, trials)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(nbins=bins, integer=integer)


def effect_vs_budget(by_budget: pd.DataFrame, epochs: int | None = None, margin: float | None = None) -> Figure:
    """Each augmentation's effect on the best val_loss within e epochs against e, one panel per augmentation,
    each on its own y scale (a large effect elsewhere never flattens a small one), with its (descriptive)
    simultaneous band, 0, the ±`margin` band of `negligible` and the experiment's budget marked; whole epochs on
    the x axis. Sized for `HALF_PX` (the first screen)."""
    augmentations = sorted(by_budget["augmentation"].unique())
    n = max(1, len(augmentations))
    cols = min(2, n)
    rows = int(np.ceil(n / cols))
    fig, axes = figure(cols, rows, size=(HALF_PX / DPI, 1.5 * rows + 1.1), layout="constrained", sharex=True)
    for i, (ax, aug) in enumerate(zip(axes.flat, augmentations)):
        g = by_budget[by_budget["augmentation"] == aug].sort_values("epochs")
        if margin:
            ax.axhspan(-margin, margin, color="0.9", lw=0, zorder=0)
        ax.axhline(0, color="0.3", lw=0.8)
        if epochs:
            ax.axvline(epochs, color="0.5", lw=0.8, ls=":")
        ax.fill_between(g["epochs"], g["ci_low"], g["ci_high"], color=f"C{i % 10}", alpha=0.2, lw=0)
        ax.plot(g["epochs"], g["effect"], marker="o", ms=3, color=f"C{i % 10}")
        values = g[["effect", "ci_low", "ci_high"]].to_numpy(float).ravel()
        values = np.concatenate([values[np.isfinite(values)], [-margin, margin] if margin else [0.0]])
        low, high = float(values.min()), float(values.max())
        pad = 0.08 * (high - low) if high > low else 0.01
        ax.set_ylim(low - pad, high + pad)
        ax.set_title(aug, fontsize=10, loc="left")
        ax.xaxis.set_major_locator(_ticks(6, integer=True))
        ax.yaxis.set_major_locator(_ticks(4))
        ax.grid(alpha=0.3)
    for k, ax in enumerate(axes.flat):
        if k >= n:
            ax.axis("off")
            axes.flat[k - cols].xaxis.set_tick_params(labelbottom=True)  # the bottom panel of its column
    fig.suptitle("Effect vs epoch budget (each panel its own scale; bands descriptive"
                 + (f";\ngrey: within ±{margin:g}, negligible)" if margin else ")"), fontsize=10)
    fig.supxlabel("epoch budget e (best val_loss within the first e epochs)", fontsize=10)
    fig.supylabel("effect (negative = helps)", fontsize=10)
    return fig


def curves_by_augmentation(curves: pd.DataFrame, augmentations: list[str]) -> Figure:
    """Mean val_loss by epoch with vs without each augmentation (shaded: spread over trials)."""
    n = max(1, len(augmentations))
    cols = min(3, n)
    rows = int(np.ceil(n / cols))
    fig, axes = figure(cols, rows, size=(3.6 * cols, 2.9 * rows + 0.3), layout="constrained")
    for ax, aug in zip(axes.flat, augmentations):
        shown = []
        for on, colour in ((False, "C0"), (True, "C1")):
            sub = curves[curves[aug_key(aug)] == on]
            if sub.empty:
                continue
            per_trial = sub.groupby(["trial", "epoch"])["val_loss"].mean().unstack("trial")
            mean, lo, hi = per_trial.mean(axis=1), per_trial.quantile(0.25, axis=1), per_trial.quantile(0.75, axis=1)
            ax.plot(mean.index, mean, color=colour,
                    label=f"{'with' if on else 'without'} ({per_trial.shape[1]} trials)")
            ax.fill_between(mean.index, lo, hi, color=colour, alpha=0.2)
            shown.append((lo, hi))
        _focus(ax, shown)
        ax.set_title(aug, fontsize=10)
        ax.xaxis.set_major_locator(_ticks(8, integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("val_loss (log scale)")
        ax.legend(fontsize=SMALL)
        ax.grid(alpha=0.3, which="both")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle("Unadjusted: depth and the other augmentations are not held fixed", fontsize=10)
    return fig


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
    from matplotlib.ticker import FormatStrFormatter

    ax.set_yscale("log")
    ax.set_ylim(low / 1.08, high * 1.08)
    for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):  # 2.3, not 2.3 x 10^0
        axis(FormatStrFormatter("%.3g"))


def train_vs_val(histories: dict[str, pd.DataFrame]) -> Figure:
    """The course's comparison: train and validation loss of named trials (mean over repeats)."""
    fig, axes = figure(len(histories), 1, size=(5 * max(1, len(histories)), 3.4))
    for ax, (name, h) in zip(axes[0], histories.items()):
        mean = h.groupby("epoch")[["loss", "val_loss"]].mean()
        ax.plot(mean.index, mean["loss"], label="loss (train)")
        ax.plot(mean.index, mean["val_loss"], label="val_loss")
        ax.set_title(name, fontsize=10)
        ax.xaxis.set_major_locator(_ticks(8, integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (mean over repeats)")
        ax.legend(fontsize=SMALL)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.88, wspace=0.25)
    return fig


def optimization_history(trials: pd.DataFrame, curves: pd.DataFrame, running_best: bool = True) -> Figure:
    """Left: each trial's value and the running best (`running_best=False`, e.g. for a design run in a shuffled
    order where "so far" means nothing: the values alone). Right: every trial's val_loss curve, pruned dashed."""
    fig, axes = figure(2, 1, size=(10, 3.4))
    ax = axes[0, 0]
    done = trials[trials["state"] == "COMPLETE"].sort_values("trial")
    ax.plot(done["trial"], done["value"], "o", color="C0", ms=4, label="trial value")
    if running_best:
        ax.plot(done["trial"], done["value"].cummin(), color="C3", label="best so far")
    else:
        ax.set_title("trial values (design points run in a shuffled order)", fontsize=SMALL)
    ax.xaxis.set_major_locator(_ticks(8, integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("mean best val_loss")
    ax.legend(fontsize=SMALL)
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
            span = hi - lo  # Python floats: an absurd store's 1e308 - -1e308 is inf, without a warning
            shade = 0.5 if v is None or not np.isfinite(v) or not 0 < span < float("inf") else (float(v) - lo) / span
            ax.plot(mean.index, mean, color=cmap(0.9 * shade), lw=0.9, alpha=0.7)
    if best is not None and (curves["trial"] == best).any():
        mean = curves[curves["trial"] == best].groupby("epoch")["val_loss"].mean()
        ax.plot(mean.index, mean, color="C3", lw=2.2, label=f"best: t{best:02d} ({_number(values[best])})")
        ax.legend(fontsize=SMALL)
    ax.xaxis.set_major_locator(_ticks(8, integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("val_loss (mean over repeats)")
    ax.set_title("all trials, coloured by value (dark = lower); pruned: dashed grey", fontsize=SMALL)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.15, top=0.9, wspace=0.25)
    return fig


def variant_curves(curves: pd.DataFrame, order: list[str]) -> Figure:
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
    ax.xaxis.set_major_locator(_ticks(8, integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=SMALL, ncol=2)
    fig.subplots_adjust(left=0.11, right=0.98, bottom=0.12, top=0.97)
    return fig


def affinity_scatter(frame: pd.DataFrame) -> Figure:
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
                        fontsize=SMALL)
        fig.colorbar(sc, ax=ax, label="effect on val_loss (blue = helps)")
    ax.axhline(1.0, color="0.6", lw=0.8)
    ax.axvline(1.0, color="0.6", lw=0.8)
    ax.set_xlabel("affinity (clean / augmented val_loss of the no-aug model)")
    ax.set_ylabel("diversity (final train loss with / without)")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.97)
    return fig
