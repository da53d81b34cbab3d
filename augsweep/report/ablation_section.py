"""The ablation half of the report: paired effects, baselines, per-class effects, affinity/diversity.

`load_ablation` is the only function that touches MLflow; `analyse_ablation` is pure (statistics in
`stats`); `ablation_sections` renders into the report's `Section`s.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import plots, runtime
from ..experiment.variants import ADD_ONE_IN, LEAVE_ONE_OUT, comparison_table
from ..stores import records as rec
from ..stores.records import KIND_ABLATION_RUN, SPEC_ARTIFACT, latest_ablation
from ..stores.tracking import client_for
from .. import inference
from ..learned import check_wide, not_learned_line
from . import stats
from .sweep_analysis import withhold
from .render import Section as S
from .render import verdict_sentence

BASELINES = ("none", "base", "randaugment", "trivialaugment")


@dataclass
class AblationData:
    """What the stores hold about the latest ablation of an experiment."""

    parent_run_id: str
    tags: dict
    spec: dict
    runs: pd.DataFrame  # variant x seed (finished): best_val_loss, final_loss, best_val_accuracy
    per_class: pd.DataFrame  # variant x seed x class: val_loss, val_accuracy
    affinity: pd.DataFrame  # seed x augmentation: affinity (no-augmentation model)
    curves: pd.DataFrame  # variant x seed x epoch: history columns
    failed: pd.DataFrame  # variant, seed, reason
    params: dict = field(default_factory=dict)  # the ablation parent run's params (classes, chance loss)


def load_ablation(tracking_uri: str, experiment_name: str, client=None) -> AblationData | None:
    """The latest ablation parent run of the experiment and its nested runs, or None (`client`: the report's
    `MlflowClient`, made here when not given)."""
    import json

    from ..stores.run_files import read_run_files

    client = client or client_for(tracking_uri)
    mexp = client.get_experiment_by_name(experiment_name)
    if mexp is None:
        return None
    parent = latest_ablation(client, mexp.experiment_id)
    if parent is None:
        return None
    pid = parent.info.run_id
    with tempfile.TemporaryDirectory() as tmp:
        spec = json.loads(Path(client.download_artifacts(pid, SPEC_ARTIFACT, tmp)).read_text())
    children = client.search_runs([mexp.experiment_id], rec.children_filter(pid, KIND_ABLATION_RUN),
                                  max_results=50_000)
    # The search already holds every child's artifact folder: read the histories in bulk, not one download each.
    histories = read_run_files(tracking_uri, {r.info.run_id: r.info.artifact_uri for r in children
                                              if r.info.status == "FINISHED"}, "history.csv", pd.read_csv)
    runs, classes, affinity, curves, failed = [], [], [], [], []
    for run in sorted(children, key=lambda r: (r.data.tags.get(rec.TAG_VARIANTS, ""),
                                               r.data.tags.get(rec.TAG_SEED_INDEX, ""))):
        tags, m = run.data.tags, run.data.metrics
        names = rec.variant_names(tags)
        seed = int(tags.get(rec.TAG_SEED_INDEX, -1))
        if run.info.status != "FINISHED":
            failed += [{"variant": n, "seed": seed, "status": run.info.status,
                        "reason": tags.get(rec.TAG_FAILURE_REASON, "")} for n in names]
            continue
        history = histories.get(run.info.run_id)
        for n in names:
            runs.append({"variant": n, "seed": seed, "best_val_loss": m.get("best_val_loss", np.nan),
                         "final_loss": m.get("final_loss", np.nan),
                         "best_val_accuracy": m.get("best_val_accuracy", np.nan), "run_id": run.info.run_id})
            for key, value in m.items():
                if key.startswith("class_val_loss/"):
                    cls = key.split("/", 1)[1]
                    classes.append({"variant": n, "seed": seed, "class": cls, "val_loss": value,
                                    "val_accuracy": m.get(f"class_val_accuracy/{cls}", np.nan)})
            if history is not None:
                curves.append(history.assign(variant=n, seed=seed))
        for key, value in m.items():
            if key.startswith("affinity/"):
                affinity.append({"seed": seed, "augmentation": key.split("/", 1)[1], "affinity": value})
    return AblationData(
        parent_run_id=pid, tags=dict(parent.data.tags), spec=spec,
        runs=pd.DataFrame(runs, columns=["variant", "seed", "best_val_loss", "final_loss", "best_val_accuracy",
                                         "run_id"]),
        per_class=pd.DataFrame(classes, columns=["variant", "seed", "class", "val_loss", "val_accuracy"]),
        affinity=pd.DataFrame(affinity, columns=["seed", "augmentation", "affinity"]).drop_duplicates(),
        curves=pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(),
        failed=pd.DataFrame(failed, columns=["variant", "seed", "status", "reason"]),
        params=dict(parent.data.params),
    )


@dataclass
class AblationAnalysis:
    """Paired effects (both comparisons), the primary one per augmentation, and the secondary views."""

    paired: pd.DataFrame
    primary: pd.DataFrame
    baselines: pd.DataFrame
    per_class: pd.DataFrame
    affinity: pd.DataFrame
    disagreements: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    margin: float = 0.02


def primary_rows(paired: pd.DataFrame) -> pd.DataFrame:
    """One row per augmentation: leave-one-out where the base has it (the effect in the configuration
    you would use), add-one-in otherwise."""
    usable = paired[paired["n_pairs"] > 0].copy()
    usable["_rank"] = (usable["comparison"] != LEAVE_ONE_OUT).astype(int)
    first = usable.sort_values(["augmentation", "_rank"], kind="stable").groupby("augmentation").head(1)
    first = first.drop(columns="_rank")
    return first.sort_values(["effect", "augmentation"], na_position="last", kind="stable").reset_index(drop=True)


def interactions(runs: pd.DataFrame, comparisons: pd.DataFrame, margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """Per augmentation with both comparisons: the paired interaction contrast (leave-one-out effect minus
    add-one-in effect, seed by seed), decided across seeds under the same rule as the effects."""
    both = comparisons.groupby("augmentation").filter(lambda g: set(g["comparison"]) >= {LEAVE_ONE_OUT, ADD_ONE_IN})
    if not len(both):
        return pd.DataFrame(columns=["augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict"])
    wide = runs.groupby(["seed", "variant"])["best_val_loss"].mean().unstack("variant")
    named = set(both["with_variant"]) | set(both["without_variant"])
    # A variant whose every training failed has no column: NaN (no pair), never None (None - None: TypeError).
    wide = wide.reindex(columns=sorted(set(wide.columns) | named))
    rows = []
    for aug, g in both.groupby("augmentation", sort=True):
        loo = g[g["comparison"] == LEAVE_ONE_OUT].iloc[0]
        add = g[g["comparison"] == ADD_ONE_IN].iloc[0]
        # d = (base - base-a) - (none+a - none): a per-seed difference of differences, expressed as
        # two pseudo-variants so the ablation rule decides it.
        rows.append((aug, (wide.get(loo.with_variant) - wide.get(loo.without_variant))
                     - (wide.get(add.with_variant) - wide.get(add.without_variant))))
    pseudo = pd.concat([pd.DataFrame({"seed": d.index, "variant": f"interaction:{a}", "best_val_loss": d.values})
                        for a, d in rows] + [pd.DataFrame({"seed": wide.index, "variant": "zero",
                                                           "best_val_loss": 0.0})], ignore_index=True)
    comps = pd.DataFrame({"augmentation": [a for a, _ in rows], "comparison": "interaction",
                          "with_variant": [f"interaction:{a}" for a, _ in rows], "without_variant": "zero"})
    return inference.ablation_effects(pseudo.dropna(), comps, margin, alpha)


def disagreements(paired: pd.DataFrame, contrasts: pd.DataFrame | None = None) -> list[str]:
    """Augmentations that interact with the rest of the base: only where the paired interaction contrast
    is decided (helps/hurts) across seeds, never from two verdicts that merely differ."""
    out = []
    if contrasts is None or not len(contrasts):
        return out
    for r in contrasts.itertuples(index=False):
        if r.verdict not in ("helps", "hurts"):
            continue
        rows = {c.comparison: c for c in paired[paired["augmentation"] == r.augmentation].itertuples(index=False)}
        loo, add = rows.get(LEAVE_ONE_OUT), rows.get(ADD_ONE_IN)
        out.append(f"{r.augmentation}: leave-one-out {loo.effect:+.4f} vs add-one-in {add.effect:+.4f}; the "
                   f"difference {r.effect:+.4f} (CI [{r.ci_low:+.4f}, {r.ci_high:+.4f}]) is decided across seeds, "
                   f"so its effect depends on the other augmentations in the base (they interact); quote the "
                   f"leave-one-out row for the base configuration.")
    return out


def baselines_table(runs: pd.DataFrame) -> pd.DataFrame:
    """No-aug, base, RandAugment, TrivialAugment-style: mean ± std over seeds."""
    rows = []
    for name in BASELINES:
        g = runs[runs["variant"] == name]
        if not len(g):
            continue
        rows.append({"variant": name, "seeds": len(g), "best_val_loss_mean": g["best_val_loss"].mean(),
                     "best_val_loss_std": g["best_val_loss"].std(ddof=1) if len(g) > 1 else np.nan,
                     "best_val_accuracy_mean": g["best_val_accuracy"].mean(),
                     "best_val_accuracy_std": g["best_val_accuracy"].std(ddof=1) if len(g) > 1 else np.nan})
    return pd.DataFrame(rows)


def side_by_side(paired: pd.DataFrame) -> pd.DataFrame:
    """One row per augmentation: leave-one-out and add-one-in effect and verdict, and whether they agree."""
    rows = []
    for aug, g in paired[paired["n_pairs"] > 0].groupby("augmentation", sort=True):
        r = {c.comparison: c for c in g.itertuples(index=False)}
        loo, add = r.get(LEAVE_ONE_OUT), r.get(ADD_ONE_IN)
        rows.append({"augmentation": aug,
                     "leave-one-out": loo.effect if loo else np.nan, "loo verdict": loo.verdict if loo else "",
                     "add-one-in": add.effect if add else np.nan, "add verdict": add.verdict if add else "",
                     "agree": "" if not (loo and add) else
                     ("yes" if loo.verdict == add.verdict and np.sign(loo.effect) == np.sign(add.effect) else "no")})
    return pd.DataFrame(rows)


def family_size(data: AblationData) -> int:
    """Verdict rows the ablation carries: its paired comparisons and the interaction contrasts."""
    comps = comparison_table(data.spec["variants"])
    both = comps.groupby("augmentation")["comparison"].nunique()
    return len(comps) + int((both >= 2).sum())


def analyse_ablation(data: AblationData, margin: float, alpha: float = 0.05,
                     gate_alpha: float = 0.05) -> AblationAnalysis:
    """Pure: paired statistics, baselines, per-class effects and affinity/diversity from the loaded runs."""
    comps = comparison_table(data.spec["variants"])
    both = comps.groupby("augmentation")["comparison"].nunique()
    # One family for the section: the paired effects and the interaction contrasts share alpha.
    alpha_paired, alpha_contrast = inference.split_alpha(alpha, [len(comps), int((both >= 2).sum())])
    paired = inference.ablation_effects(data.runs, comps, margin, alpha_paired)
    paired["n_pairs"] = paired["n_seeds"]
    primary = primary_rows(paired)
    per_class = stats.per_class_effects(data.per_class, comps) if len(data.per_class) else pd.DataFrame()
    if len(per_class):
        keep = primary[["augmentation", "comparison"]]
        per_class = per_class.merge(keep, on=["augmentation", "comparison"])
    additions = comps[comps["comparison"] == ADD_ONE_IN]
    aff = stats.affinity_diversity(data.runs, data.affinity, additions)
    add_effects = paired[paired["comparison"] == ADD_ONE_IN][["augmentation", "effect", "verdict"]]
    aff = aff.merge(add_effects, on="augmentation", how="left")
    warns = []
    seeds = int(data.spec.get("repeats", 0))
    if seeds < 2:
        warns.append("One seed per variant: there is no seed-to-seed spread to estimate, so no verdict can be "
                     "honest and every row is `undecided`; rerun with `--repeats 5` or more.")
    if len(data.failed):
        warns.append(f"{data.failed['seed'].count()} variant x seed training(s) did not finish and are left out "
                     "of the pairs (listed below).")
    contrasts = interactions(data.runs, comps, margin, alpha_contrast) if seeds >= 2 else None
    chance = rec.chance_of(data.params)
    if chance is not None and len(data.runs):
        check = check_wide(data.runs.pivot_table(index="seed", columns="variant", values="best_val_loss"), chance,
                           gate_alpha, margin, data.runs["best_val_loss"].to_numpy(dtype=float))
        if not check.ok:  # no verdict about a network that did not learn
            paired, primary = withhold(paired), withhold(primary)
            contrasts = withhold(contrasts)
            classes = data.params.get(rec.PARAM_CLASSES)
            warns.insert(0, not_learned_line(check, int(data.params.get("epochs", 0) or 0), None,
                                             str(data.params.get("image_size", "?")),
                                             int(classes) if str(classes).isdigit() else None,
                                             consequence="No verdicts from this ablation."))
    return AblationAnalysis(paired, primary, baselines_table(data.runs), per_class, aff,
                            disagreements(paired, contrasts), warns, margin)


def effects_rows(analysis: AblationAnalysis) -> pd.DataFrame:
    """`effects.csv` rows (source=ablation), both comparisons, primary comparison first per augmentation."""
    p = analysis.paired[analysis.paired["n_pairs"] > 0]
    return pd.DataFrame({
        "augmentation": p["augmentation"], "effect": p["effect"], "ci_low": p["ci_low"], "ci_high": p["ci_high"],
        "p_value": p["p_value"], "n_with": p["n_pairs"], "n_without": p["n_pairs"], "verdict": p["verdict"],
        "source": "ablation", "comparison": p["comparison"], "mde": p["mde"], "ci_method": p["ci_method"],
    })


def figures(data: AblationData, analysis: AblationAnalysis, out_dir: Path) -> dict[str, Path]:
    """The ablation's PNGs: learning curves per variant and the affinity/diversity scatter."""
    out = {}
    if len(data.curves):
        order = [v["name"] for v in data.spec["variants"]]
        out["ablation_curves"] = plots.save(plots.variant_curves(data.curves, order), out_dir / "ablation_curves.png")
    if len(analysis.affinity.dropna(subset=["affinity", "diversity"])):
        out["affinity"] = plots.save(plots.affinity_scatter(analysis.affinity), out_dir / "affinity_diversity.png")
    return out


def ablation_sections(data: AblationData, a: AblationAnalysis, figs: dict[str, Path], mlruns: str,
                      experiment_path: str) -> list:
    """The ablation's part of the report (`render.Section`s), in reading order."""
    spec = data.spec
    cols = ["augmentation", "comparison", "n_pairs", "effect", "ci_low", "ci_high", "p_value", "verdict", "mde",
            "seeds_needed"]
    answer = S("Answer (paired ablation)", [
        f"Around the base configuration `{spec['base_label']}` ({spec['base_source']}), each variant trained "
        f"with the same {spec['repeats']} seeds. Effect of each augmentation on the best validation loss: "
        + verdict_sentence(a.primary),
        f"`effect` = mean over seeds of (with − without) best validation loss (negative = it helped); "
        f"leave-one-out: base − (base without it); add-one-in: (no augmentation + it) − no augmentation. "
        f"Method: {a.paired['ci_method'].iloc[0] if len(a.paired) else 'paired t'}; one family across both "
        f"comparisons (simultaneous 95%), and `p_value` is adjusted the same way, so a verdict never disagrees "
        f"with its p. Verdicts: `helps`/`hurts` (interval entirely below/above 0), `negligible` (inside "
        f"±{a.margin:g}), `undecided` otherwise; `mde` is the smallest effect these seeds detect with 80% "
        f"power, `seeds_needed` how many seeds would decide the effect seen.",
        a.primary[cols],
    ])
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
        f"ablation_id: {data.tags.get(rec.TAG_ABLATION_ID, '')}",
        f"git_commit: {data.tags.get(rec.TAG_GIT_COMMIT, 'unknown')}",
        f"device: {data.tags.get(rec.TAG_DEVICE, 'unknown')}",
        f"dataset_fingerprint: {data.tags.get(rec.TAG_DATASET_FINGERPRINT, 'unknown')}",
        f"rerun: {runtime.follow_up('sweep.py', experiment_path, mlruns, '', '--ablation', '--repeats', spec['repeats'])}",
        f"reproduce one variant: {runtime.follow_up('sweep.py', experiment_path, mlruns, '', '--reproduce', 'base')}",
    ]))]))
    return out
