"""The ablation's part of the report, words: its answer, tables and provenance as `render.Section`s, from an
`AblationData` and its `AblationAnalysis` (no stores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .. import runtime
from .ablation_analysis import AblationAnalysis, side_by_side
from .inputs import AblationData
from .render import Section as S
from .render import Words, verdict_sentence


def ablation_sections(data: AblationData, a: AblationAnalysis, figs: dict[str, Path], mlruns: str,
                      experiment_path: str, use: Sequence[str] = ()) -> Words:
    """The ablation's part of the report (`render.Section`s), in reading order, its answer and its `Next:` lines
    (`use`: those about using the answer, after the answer's table)."""
    spec = data.spec
    cols = ["augmentation", "comparison", "n_pairs", "effect", "ci_low", "ci_high", "p_value", "verdict", "mde",
            "seeds_needed"]
    paragraphs = [
        f"Around the base configuration `{spec['base_label']}` ({spec['base_source']}), each variant trained "
        f"with the same {spec['repeats']} seeds. Effect of each augmentation on the best validation loss: "
        + verdict_sentence(a.primary),
        f"`effect` = mean over seeds of (with − without) best validation loss (negative = it helped); "
        f"leave-one-out: base − (base without it); add-one-in: (no augmentation + it) − no augmentation. "
        f"Method: {a.paired['ci_method'].iloc[0] if len(a.paired) else 'paired t'}; one family across both "
        f"comparisons (simultaneous 95%), and `p_value` is adjusted the same way, so a verdict never disagrees "
        f"with its p. Verdicts: `helps`/`hurts` (interval entirely below/above 0), `negligible` (inside "
        f"±{a.margin:g}), `undecided` otherwise; `mde` is the smallest effect these seeds detect with 80% "
        f"power, `seeds_needed` how many seeds would decide the effect seen."]
    answer = S("Answer (paired ablation)", [*paragraphs, a.primary[cols], *use])
    out = [answer]
    notes = [f"- {w}" for w in [*a.warnings, *a.disagreements]]
    if notes:
        out.append(S("Ablation: read this before quoting the numbers", notes))
    side = side_by_side(a.paired)
    out.append(S("Leave-one-out and add-one-in, side by side", [
        "Leave-one-out measures an augmentation in the company of the base's others; add-one-in measures it "
        "alone. They can differ by chance; \"they interact\" is said only where the paired interaction contrast "
        "(their difference, seed by seed) is decided across seeds.",
        *( [side] if len(side) else ["Nothing to compare."] ),
        a.paired[cols],
    ]))
    if len(a.baselines):
        out.append(S("Baselines", [
            "Best validation loss and accuracy over seeds (mean ± std): no augmentation, the base, Keras "
            "RandAugment (2 operations, factor 0.5) and a TrivialAugment-style policy (one operation per image, "
            "uniform strength) on the base's network.", a.baselines]))
    if len(a.per_class):
        worst = a.per_class[a.per_class["worst"]][["augmentation", "comparison", "class", "loss_change",
                                                   "accuracy_change"]]
        table = a.per_class.assign(worst=a.per_class["worst"].map({True: "most hurt", False: ""}))
        out.append(S("Per-class effects", [
            "Change in each class's validation loss and accuracy when the augmentation is on (primary "
            "comparison, mean over seeds, final epoch's model). An average can hide a class that gets worse: "
            "the class each augmentation hurts most is listed first.",
            worst.sort_values("augmentation").reset_index(drop=True),
            table.sort_values(["augmentation", "class"]).reset_index(drop=True),
        ]))
    aff_blocks = [
        "Affinity = clean / augmented validation loss of the no-augmentation model (1 = the augmented images "
        "look in-distribution; lower = a bigger shift). Diversity = final training loss with the augmentation "
        "alone / without any (higher = harder to fit). Gontijo-Lopes et al. (2020) found that augmentations that "
        "help combine high affinity with high diversity.",
        a.affinity,
    ]
    if "affinity" in figs:
        aff_blocks.append(("image", figs["affinity"], "affinity vs diversity"))
    out.append(S("Affinity and diversity", aff_blocks))
    if "ablation_curves" in figs:
        out.append(S("Learning curves per variant", [
            "Validation loss by epoch, mean over seeds (shaded: min–max over seeds).",
            ("image", figs["ablation_curves"], "ablation learning curves"),
        ]))
    if len(data.failed):
        out.append(S("Ablation trainings that did not finish", [data.failed]))
    out.append(S("Ablation provenance", [("code", "\n".join([
        f"mlflow_parent_run: {data.parent_run_id}",
        *[f"{key}: {value}" for key, value in data.provenance.items()],
        "rerun: " + runtime.follow_up("sweep.py", experiment_path, mlruns, "", "--ablation", "--repeats",
                                      spec["repeats"]),
        f"reproduce one variant: {runtime.follow_up('sweep.py', experiment_path, mlruns, '', '--reproduce', 'base')}",
    ]))]))
    return Words(out, tuple(paragraphs), tuple(use))
