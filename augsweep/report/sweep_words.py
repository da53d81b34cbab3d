"""The sweep's part of the report, words: the prose templates (answer, estimand, method, warnings' sections)
around an `Analysis`, in reading order as `render.Section`s, with the answer and the `Next:` lines as values of
their own (`build_sections` -> `Words`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd
import yaml

from .. import runtime
from ..experiment import design as design_mod
from ..experiment.schema import Experiment
from ..experiment.space import TrialConfig, parse_aug_key
from ..inference.frames import RARE_NOTE
from ..learned import not_learned_line
from . import budget as budget_mod
from . import configurations as configurations_mod
from . import render
from .inputs import Population, SweepData
from .render import Section, Words
from .sweep_analysis import Analysis


def _moving(a: Analysis, r) -> bool:
    """Whether a row's effect is still moving at the end of the budget (every verdict is then budget-bound)."""
    m = budget_mod.moving_row(a.moving, r.augmentation)
    return m is not None and bool(m["moving"])

def _moving_names(a: Analysis) -> set[str]:
    """The augmentations whose effect is still moving at the end of the budget."""
    if a.moving is None or not len(a.moving):
        return set()
    return set(a.moving.loc[a.moving["moving"].astype(bool), "augmentation"])


def _with_budget_bound(frame: pd.DataFrame, moving: set[str], *columns: str) -> pd.DataFrame:
    """`frame` with a `budget_bound` column when some augmentation is still moving: a row is budget-bound when an
    augmentation it names (in `columns`: "flip x warp", "warp", "flip on", "d2 flip+warp") is."""
    if not moving:
        return frame
    out = frame.copy()
    words = [{w for c in columns for w in str(r[c]).replace(" x ", " ").replace("+", " ").split()}
             for _, r in frame.iterrows()]
    out["budget_bound"] = [bool(w & moving) for w in words]
    return out


def budget_lines(exp: Experiment, a: Analysis) -> list[str]:
    """`Budget-bound: flip, warp (...)`: the rows still moving at the end of the budget, whatever their verdict,
    and what to change to answer for a longer training."""
    names = [r.augmentation for r in a.full.itertuples() if _moving(a, r)]
    if not names:
        return []
    hint = ("raise `train.until_converged.max_epochs`" if exp.train.until_converged
            else "rerun with more `train.epochs`, or `train.until_converged` for the converged outcome")
    return [f"Budget-bound: {', '.join(names)} still moving at the end of the budget (the effect's change over "
            f"the last quarter of the budget has an interval that excludes 0 at 5% per augmentation), "
            f"so their verdicts hold for {exp.train.epochs} epochs only ({hint}; the effect-vs-budget figure shows "
            f"each trajectory)."]

_COND_WORDS = {"helps": "helps", "hurts": "hurts", "negligible": "does nothing", "undecided": "is undecided"}

def _conditional_words(a: Analysis, aug: str) -> str:
    """`helps without flip (-0.046), does nothing with it (-0.002)` for an augmentation in a decided pair."""
    if a.conditional is None or not len(a.conditional):
        return ""
    out = []
    for pair, g in a.conditional[a.conditional["augmentation"] == aug].groupby("pair", sort=True):
        words = []
        for r in g.itertuples():
            other, state = r.given.rsplit(" ", 1)
            words.append(f"{_COND_WORDS[r.verdict]} {'with' if state == 'on' else 'without'} "
                         f"{other if not words else 'it'} ({r.effect:+.3f})")
        out.append(", ".join(words))
    return "; ".join(out)

def _interval(r) -> str:
    return (f"{r.effect:+.3f} [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if r.ci_low == r.ci_low
            else f"{r.effect:+.3f}, no interval" if r.effect == r.effect else "not estimated")

def augmentation_words(exp: Experiment, a: Analysis) -> list[str]:
    """One line per augmentation, what to do with it: its verdict, its decided conditional effects, whether the
    budget bounds it, and why a significant effect can still be `negligible`."""
    margin = exp.equivalence_margin
    out = []
    block = int((a.design or {}).get("block_size", 0)) or None
    for r in a.full.itertuples():
        cond = _conditional_words(a, r.augmentation)
        text = f"- **{r.augmentation}** "
        if r.verdict == "negligible":
            significant = r.ci_low == r.ci_low and (r.ci_high < 0 or r.ci_low > 0)
            text += (f"is negligible ({_interval(r)}: "
                     + ("distinguishable from 0 but " if significant else "")
                     + f"inside ±{margin:g}, the equivalence margin below which a change counts as too small "
                       f"to matter here)")
        elif r.verdict in ("helps", "hurts"):
            text += f"{r.verdict} ({_interval(r)})"
        else:
            mde = getattr(r, "mde", float("nan"))
            hint = getattr(r, "blocks_to_decide", float("nan"))
            rare = str(getattr(r, "note", "") or "").startswith(RARE_NOTE)
            text += f"is undecided{': rare large outcomes' if rare else ''} ({_interval(r)}"
            if rare:
                text += "; one seed's estimate stands far from the others', so the mean depends on whether such a "
                text += "seed was drawn at all"
            elif mde == mde:
                text += f"; effects of {mde:.3g} or more would have been detected with 80% power"
            if hint == hint:
                text += (f"; about {int(hint)} more block(s) ({int(hint) * block} trials) would decide it"
                         if block else f"; about {int(hint)} more seed replicate block(s) would decide it")
            text += ")"
        if cond:
            text += (f"; on average only: in a decided interaction it {cond}" if r.verdict != "undecided"
                     else f"; in a decided interaction it {cond}")
        m = budget_mod.moving_row(a.moving, r.augmentation)
        if m is not None and bool(m["moving"]):
            words = budget_mod.budget_words(r.verdict, r.effect, exp.train.epochs, a.by_budget, m)
            text += f"; a statement about {exp.train.epochs} epochs: {words.split(' (', 1)[1].rstrip(')')}"
        out.append(text + ".")
    return out

def network(exp: Experiment) -> str:
    """The network in words: the Conv2D+ReLU+MaxPool convnet, or the base, its weights and what of it trains (a
    reader of the report need not know which course the convnet comes from)."""
    m = exp.model
    if not m.uses_base:
        return "the Conv2D+ReLU+MaxPool convnet"
    weights = {"none": "random weights", "imagenet": "ImageNet weights"}.get(m.weights, f"weights from `{m.weights}`")
    trains = {True: "fine-tuned whole", False: "frozen"}.get(m.trainable, f"top {m.trainable} layers fine-tuned")
    return f"a `{m.base}` base ({weights}, {trains}) under a Dense head"

def population(data: Population | None) -> str:
    """Which data a verdict is about (`Population`, from the load step): a split drawn per seed replicate, or the
    one split every training used."""
    if data is None or not data.drawn:
        return "on this split of the data (one fixed training/validation split)"
    n = data.train_images
    return f"over random splits of this dataset{f' ({n} training images per split)' if n else ''}"


def answer_blocks(exp: Experiment, a: Analysis, trials: pd.DataFrame, mlruns: str, command=None,
                  data: Population | None = None) -> list:
    """The answer: the verdicts in one sentence, then one line per augmentation (conditional effects, budget,
    margin), the best configuration, and the next command (`command(script, *args)`: one that runs as printed,
    `Stores.command`; default: `runtime.follow_up` on the embedded stores under `mlruns`). `data`: which data the
    verdicts are about. A network that did not learn gets one line saying so and
    what to change, and no verdicts."""
    if command is None:
        def command(script, *extra):
            return runtime.follow_up(script, exp.path, mlruns, "", *extra)
    if a.did_not_learn:
        t = exp.train
        lines = [f"On `{exp.dataset.source}` ({'x'.join(map(str, exp.dataset.image_size))}) with {network(exp)}: "
                 + not_learned_line(a.learned, t.epochs, t.learning_rate, exp.dataset.image_size, a.num_classes)]
        if exp.model.uses_base:
            lines.append(f"Depth is not searched: the network's depth is the base's ({exp.model.base}).")
        return lines + [f"Next: after changing `{exp.path}`, `{command('sweep.py')}` runs it again (a changed "
                        f"experiment needs its own `name` or a fresh `--mlruns`)."]
    e = a.full
    parts = []
    for verdict in ("helps", "hurts", "negligible"):
        names = [f"{r.augmentation} ({r.effect:+.3f}" + (f", at {exp.train.epochs} epochs" if _moving(a, r) else "")
                 + ")" for r in e.itertuples() if r.verdict == verdict]
        if names:
            parts.append(f"**{verdict}**: {', '.join(names)}")
    lines = [f"On `{exp.dataset.source}` ({'x'.join(map(str, exp.dataset.image_size))}) with {network(exp)}, "
             f"{population(data)}, "
             f"turning each augmentation on changes the best validation loss {_outcome_words(exp)} as follows: "
             + ("; ".join(parts) + "." if parts else "nothing is decided yet.")]
    lines += augmentation_words(exp, a)
    if exp.model.uses_base:
        lines.append(f"Depth is not searched: the network's depth is the base's ({exp.model.base}); only the "
                     f"augmentations and the head (`dense_units`, learning rate) vary.")
    lines += budget_lines(exp, a)
    if a.configurations is not None and len(a.configurations):
        lines += configurations_mod.best_words(a.configurations, e, a.pairs, a.augmentations, a.configurations_alpha)
    undecided = [r for r in e.itertuples() if r.verdict == "undecided"]
    if undecided:
        needed = [int(h) for r in undecided for h in [getattr(r, "blocks_to_decide", float("nan"))] if h == h]
        block = int((a.design or {}).get("block_size", 0)) or None
        if needed and block and exp.sampler == "factorial":
            total = int((trials["state"] == "COMPLETE").sum()) + max(needed) * block
            lines.append(f"Next: `{command('sweep.py', '--trials', total)}` continues the same "
                         f"study with more blocks of fresh seeds until every augmentation is decided.")
        else:
            total = int((trials["state"] == "COMPLETE").sum()) * 2
            lines.append(f"Next: `{command('sweep.py', '--trials', total)}` continues the same study to {total} "
                         f"trials (`sampler: factorial` + `stop: decided` runs blocks until every augmentation is "
                         f"decided), or `{command('sweep.py', '--ablation')}` for paired seeds around the best "
                         f"configuration.")
    else:
        lines.append(f"Next: `{command('sweep.py', '--ablation')}` explains the best configuration with paired "
                     f"seeds.")
    return lines

def _magnitude_words(exp: Experiment, a: Analysis) -> str:
    how = (a.design or {}).get("magnitudes") or {}
    if how:
        parts = []
        for key, text in sorted(how.items()):
            name = " ".join(part for part in parse_aug_key(key, a.augmentations) if part)
            if text.startswith("levels "):
                parts.append(f"{name} at {' and '.join(text[7:].split('|'))} (half each)")
            elif text.startswith("choices "):
                parts.append(f"{name} over {', '.join(text[8:].split('|'))}")
            else:
                parts.append(f"{name} {text}")
        return ("over its magnitudes: " + "; ".join(parts)
                + " (each balanced against every other switch, so a dose-response stays inside its own augmentation)")
    if exp.sampler == "factorial":
        return "at its magnitudes"
    return ("at its average sampled magnitude (the fit holds centred magnitude x switch terms, so a dose-response "
            "does not leak into the other augmentations)")

def _outcome_words(exp: Experiment) -> str:
    conv = exp.train.until_converged
    if conv is None:
        return f"within {exp.train.epochs} epochs"
    return (f"by each training run until converged (stopped once val_loss had not improved for {conv.patience} "
            f"epochs, at most {conv.max_epochs})")

def estimand_blocks(exp: Experiment, a: Analysis, data: Population | None = None) -> list:
    """What `effect` is an effect of, in one sentence, and which sources of variation its interval covers
    (`data`: whether each seed replicate drew its own data split)."""
    drawn = data is not None and data.drawn
    if drawn:
        split = ("a random training/validation split of the dataset, drawn afresh for each seed replicate and "
                 "shared by every design point of it")
    else:
        split = (f"the fixed validation split ({exp.dataset.validation_split:g} of the data)"
                 if getattr(exp.dataset, "validation_split", None) else "the fixed validation split")
    covers = ("split-to-split and seed-to-seed variation (which images train and validate; weight initialisation, "
              "augmentation draws, batch order)" if drawn else
              "seed-to-seed variation (weight initialisation, augmentation draws, batch order)")
    beyond = "a different epoch budget" if drawn else "a different data split or a different epoch budget"
    others = ("every on/off setting of the other augmentations (each half the time)" if exp.sampler == "factorial"
              else "the settings of the other augmentations this sweep sampled")
    depths = sorted(set(int(d) for d in a.by_depth["depth"])) if "depth" in a.by_depth else []
    depth_words = f" and depth(s) {', '.join(map(str, depths))}" if depths and not exp.model.uses_base else ""
    used = (f" from the complete seed replicates of block(s) {', '.join(str(b + 1) for b in a.blocks_used)}"
            if a.blocks_used else "")
    lines = [
        f"**What `effect` measures.** The change in the best validation loss reached {_outcome_words(exp)}, "
        f"on {split}, from turning the augmentation on, {_magnitude_words(exp, a)}, averaged over "
        f"{others}{depth_words}{used}. Its interval covers {covers} across {a.seeds} seed replicate(s), not "
        f"{beyond}: a verdict is a statement about this budget, {population(data)}."]
    if a.doses is not None and len(a.doses):
        lines += ["Dose-response (descriptive, no verdict): change in best validation loss from the lowest to the "
                  "highest magnitude trained, with the augmentation on; simultaneous intervals across seeds.",
                  a.doses[["augmentation", "magnitude", "effect", "ci_low", "ci_high", "n_seeds"]]]
    if a.failed_points:
        lines += ["Design points with no finished training (failed, and failed again on fresh seeds):",
                  *[f"- {p}" for p in a.failed_points]]
    if a.diverged is not None:
        lines += ["Trainings that diverged (non-finite loss) are scored, not dropped: each counts with the best "
                  "validation loss it reached before diverging (ln K, the loss of guessing, if it reached none). "
                  "`verdict`: whether an augmentation changes how often trainings diverge, a row of its own in the "
                  "graph of tables (exact binomial test on which arm the diverged trainings were in, Šidák over "
                  "the augmentations; `hurts` = diverges more often with it).",
                  a.diverged]
    return lines

FIRST_SCREEN_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict"]

def constant_columns(effects: pd.DataFrame) -> list[str]:
    """Columns of the effects table with one value in every row (said once in a sentence instead)."""
    keep = set(FIRST_SCREEN_COLUMNS)
    return [c for c in effects.columns if c not in keep and len(effects) > 1 and effects[c].nunique(dropna=False) == 1]

def first_screen_table(effects: pd.DataFrame) -> pd.DataFrame:
    """The effects table as the first screen shows it: the verdict's columns, plus any that vary by row."""
    varying = [c for c in effects.columns if c not in FIRST_SCREEN_COLUMNS and c not in constant_columns(effects)
               and c not in ("ci_method", "comparison")]
    return effects[[c for c in effects.columns if c in FIRST_SCREEN_COLUMNS or c in varying]]

def constants_sentence(effects: pd.DataFrame) -> str:
    """`Every row: source = sweep; n_with = 16; …` for the columns `constant_columns` leaves out."""
    parts = [f"{c} = {render.display(effects[[c]]).iloc[0, 0]}" for c in constant_columns(effects)
             if c != "ci_method"]  # the method paragraph names it
    return f"Every row of `effects.csv` also has: {'; '.join(parts)}." if parts else ""

def methods_paragraph(exp: Experiment, a: Analysis) -> str:
    """How the effects and verdicts were computed (below the first screen)."""
    method = a.full["ci_method"].iloc[0] if len(a.full) else "none"
    return (
        f"{a.counts['COMPLETE']} complete trials x {exp.repeats} paired repeat(s) from the `{exp.sampler}` sampler "
        f"({a.counts['PRUNED']} pruned, {a.counts['FAIL']} failed, excluded), {a.seeds} seed replicate(s). `effect` "
        f"is the change in best validation loss from turning the augmentation on (negative = it helped), estimated "
        f"within each seed replicate (adjusted for the other augmentations and depth) and averaged over them; the "
        f"interval comes from how the effect varies from seed to seed (the forest plot's dots: one per seed "
        f"replicate). One verdict rule: simultaneous 95% intervals across the augmentations (and across the "
        f"sequential looks of a `stop: decided` sweep), `p_value` adjusted the same way. `helps`/`hurts`: interval "
        f"entirely below/above 0; `negligible`: inside ±{exp.equivalence_margin:g} (the forest plot's grey band); "
        f"`undecided`: otherwise (`mde` = smallest effect detectable with 80% power). Method: {method}. "
        f"{ALPHA_WORDS}{design_words(exp, a)}")


ALPHA_WORDS = (
    "Alpha: each look's share of the 5% runs through a graph of tables (Bretz et al. 2009): the main effects "
    "first, at 80% of it; the augmentation x depth, augmentation pair and configuration tables share the rest, "
    "plus the part of every main effect decided `helps`/`hurts`; a decided pair passes its level to its "
    "conditional effects. A look whose seeds cannot decide anything spends nothing. A row whose per-seed "
    "estimates hold a rare large outcome (a diverged training, a rare seed) keeps only the verdict that outcome "
    "points to (`undecided: rare large outcomes`).")


def design_words(exp: Experiment, a: Analysis) -> str:
    """The design line: the fraction's generators and what each tested two-factor row is aliased with."""
    plan = design_mod.recorded_plan(a.design or {}, a.augmentations)
    if plan is None:
        return ""
    if not plan.generators:
        return (f" Design: full factorial of {plan.runs} runs per depth: no effect or two-factor interaction is "
                f"aliased with another.")
    held = ("assumed 0 (`assume_no_higher_interactions: true`)" if exp.assume_no_higher_interactions
            else "so those rows carry no verdict of their own (`assume_no_higher_interactions: true` assumes "
                 "interactions of three factors or more away; `trials: "
                 f"{design_mod.crossed_trials(exp.search_space, exp.stop == 'decided')}` runs the crossed design, "
                 "the full factorial at every depth, which separates them)")
    return (f" Design: {plan.runs}-run fraction, generator {', '.join(plan.generators)}: main effects are "
            f"separated from every two-factor interaction, but each two-factor row is aliased with an interaction "
            f"of three factors ({design_mod.alias_words(plan)}), {held}.")

def build_sections(exp: Experiment, analysis: Analysis, data: SweepData, figures: dict[str, Path],
                   use: Sequence[str] = (), headline: bool = True) -> Words:
    """The sweep's content, in reading order: the first screen holds the answer, the forest plot and the best
    configuration, then the `Next:` lines (`use`: those about using the answer first); how the numbers were
    made (method, the full effects table) comes below. `headline`: the sweep is the report's answer (False:
    an ablation's paired verdicts are, and the sweep's become the wider view)."""
    a, trials = analysis, data.trials
    lines = answer_blocks(exp, a, trials, "", data.commands, data.population)
    later = [line for line in lines if line.startswith(("Best configuration", "Next:"))]
    answer = [line for line in lines if line not in later]
    if data.stopped:
        answer.insert(1, f"The sweep stopped: {data.stopped}.")
    best = [line for line in later if not line.startswith("Next:")]
    steps = [*use, *(line for line in later if line.startswith("Next:"))]
    summary = Section("Answer" if headline else "Sweep: effects across all trials", list(answer))
    # The first screen: the answer, then the forest plot and the effect-vs-budget figure side by side.
    first = [(figures[k], alt) for k, alt in (("forest", "effect forest plot"), ("budget", "effect vs epoch budget"))
             if k in figures]
    if first:
        summary.blocks.append(("images", first))
    summary.blocks += [*best, *steps, first_screen_table(a.effects)]
    summary.blocks += estimand_blocks(exp, a, data.population)
    sections = [summary]
    if a.warnings:
        sections.append(Section("Read this before quoting the numbers", [f"- {w}" for w in a.warnings]))
    sections.append(Section("Method", [methods_paragraph(exp, a), constants_sentence(a.effects)]))
    sections += budget_and_interaction_sections(exp, a)
    if len(a.budget):
        sections.append(Section("Verdicts and the epoch budget", [
            "Augmentation slows convergence, and the best validation loss within the epoch budget counts that as "
            "harm. `still_improving_*` = share of trainings whose best epoch was one of the last two (the curve "
            "was still falling when training stopped); the final val − train gap is descriptive (any "
            "augmentation narrows it mechanically, so a lower gap is not a verdict).",
            a.budget,
        ]))
    matched = a.matched[a.matched["n_pairs"] > 0]
    if len(matched):
        sections.append(Section("Same on/off pattern (descriptive)", [
            "Configurations that differ in exactly one augmentation's switch, under the same seeds; magnitudes of "
            "the other augmentations may differ. Descriptive only (no verdict): the effects table above is the "
            "answer.", matched]))
    extra = []
    if a.gap is not None:
        extra += ["Generalization gap (final `val_loss − loss`), descriptive (no verdict; not corrected across "
                  "outcomes): any augmentation lowers it mechanically.", a.gap]
    if a.accuracy is not None:
        extra += ["Best validation accuracy (positive = higher accuracy), descriptive (no verdict).", a.accuracy]
    if extra:
        sections.append(Section("Other outcomes", extra))
    if a.interactions is not None:
        sections.append(Section("Augmentation x depth interactions", [
            "Each augmentation's effect at the deepest minus at the shallowest depth, per seed replicate, under "
            "the same verdict rule and shift term as the effects, at this table's level in the graph "
            "(`helps`/`hurts` = the effect changes with depth). `aliases`: the interaction of three factors "
            "the design cannot tell the row from; such a row shows its estimate and no verdict of its own.",
            a.interactions[[c for c in ("term", "augmentation", "effect", "ci_low", "ci_high", "p_value", "verdict",
                                        "aliases") if c in a.interactions]],
        ]))
    if len(a.by_depth) and a.by_depth["depth"].nunique() > 1:  # one depth: the effects table already says it
        sections.append(Section("Augmentation x depth", [
            "Mean best validation loss with and without each augmentation at each depth (trial means).",
            a.by_depth,
        ]))
    imp_frame, evaluator = data.importance
    if imp_frame is not None:
        sections.append(Section("Parameter importance (secondary view)", [
            f"Optuna importance by {evaluator}: how much of the variance in trial values each parameter explains. "
            "It has no sign and no confidence interval; the effects above are the answer.", imp_frame]))
    plots_section = Section("Learning curves", [])
    for key, caption in (("curves", "Unadjusted: mean val_loss by epoch of the trials with vs without each "
                                    "augmentation (shaded: interquartile range over trials; log scale, zoomed on the "
                                    "later epochs "
                                    "where the differences are). Depth and the other "
                                    "augmentations are not held fixed here; the effects above are adjusted for them."),
                         ("train_vs_val", "Train vs validation loss: best trial and best trial without "
                                          "augmentation (the course's comparison)."),
                         ("history", "Optimization history: each trial's value"
                                     + (" and the best so far" if exp.sampler != "factorial" else
                                        " (a factorial design runs its points in a shuffled order, so there is no "
                                        "\"best so far\")")
                                     + "; every trial's val_loss curve, coloured by its value, the best trial "
                                       "highlighted, pruned dashed.")):
        if key in figures:
            plots_section.blocks += [caption, ("image", figures[key], key)]
    sections.append(plots_section)
    best = trials[trials["state"] == "COMPLETE"].sort_values(["value", "trial"])
    best = best.drop_duplicates("config_name").head(10) if "config_name" in best else best.head(10)
    best = best.assign(augmentations=[TrialConfig.from_flat(r.dropna().to_dict()).parameters()
                                      for _, r in best.iterrows()])
    cols = ["trial", "mlflow_run", "value", "depth", "augmentations"]
    failed = trials[trials["state"] == "FAIL"][["trial", "failure_reason"]]
    sections.append(Section("Trials", [
        "Best complete trial of each of the best distinct configurations (value = mean over its repeats of the "
        "best validation loss; one trial's value is a winner's-curse pick: the configurations above are ranked by "
        "their mean over every seed):", best[cols],
        *(["Failed trials:", failed] if len(failed) else []),
    ]))
    sections.append(Section("Provenance", [("code", yaml.safe_dump(data.provenance, sort_keys=False, width=120))]))
    return Words(sections, tuple(answer), tuple(steps))

def budget_and_interaction_sections(exp: Experiment, a: Analysis) -> list[Section]:
    """Effect vs budget, aug x aug interactions, configurations by their mean, convergence (new blocks)."""
    out = []
    if a.by_budget is not None and len(a.by_budget):
        wide = a.by_budget.pivot(index="augmentation", columns="epochs", values="effect")
        wide.columns = [f"e={c}" for c in wide.columns]
        blocks = ["Each augmentation's effect on the best validation loss within the first e epochs, from the "
                  "logged curves, by the verdicts' per-seed rule on the same seed replicates (the last column is "
                  "the verdict's effect). The intervals (in `effects_by_budget.csv` and the figure's bands) are "
                  "**descriptive**: simultaneous across the augmentations at each budget, at the verdicts' level, "
                  "with no verdict of their own and no share of the report's alpha.", wide.reset_index()]
        if a.moving is not None and len(a.moving):
            blocks += ["Still moving: the per-seed change of the effect from 3/4 of the budget to the budget, with "
                       "its interval at 5% per augmentation; `moving` (the interval excludes 0) marks every verdict "
                       "of that augmentation (and the pair and conditional rows it is part of) as budget-bound in "
                       "the answer. It only adds a caution, never a claim, so it is tested at a liberal level and "
                       "takes no share of alpha.", a.moving[["augmentation", "at_three_quarters", "change", "ci_low",
                                                    "ci_high", "moving", "direction"]]]
        out.append(Section("Effect vs epoch budget", blocks))
    if a.pairs is not None and len(a.pairs):
        blocks = ["Two-way augmentation x augmentation contrasts (this design separates them from the main effects "
                  "and from each other): `effect` is how much one augmentation's effect changes when the other is "
                  "turned on, per seed replicate, under the same rule at the pairs' level in the graph "
                  "(Šidák over the pairs tested); `helps`/`hurts` = a decided interaction. `aliases`: the "
                  "interaction of three factors the design cannot tell the row from; such a row shows its estimate "
                  "and no verdict of its own.",
                  _with_budget_bound(a.pairs[[c for c in ("term", "effect", "ci_low", "ci_high", "p_value",
                                                          "verdict", "aliases") if c in a.pairs]],
                                     _moving_names(a), "term")]
        if a.conditional is not None and len(a.conditional):
            blocks += ["Conditional effects of the augmentations in a decided interaction (the decided pair passes "
                       "its own level on to its four conditional rows, Šidák over those four; `stop: decided` "
                       "counts such an augmentation decided when all of these are):",
                       _with_budget_bound(a.conditional[["augmentation", "given", "effect", "ci_low", "ci_high",
                                                         "verdict"]], _moving_names(a), "augmentation", "given")]
        out.append(Section("Augmentation x augmentation interactions", blocks))
    if a.configurations is not None and len(a.configurations):
        out.append(Section("Configurations by their mean", [
            f"Distinct configurations (depth and augmentations on, each at the magnitudes it was trained with: "
            f"`magnitudes`), best mean first, over every seed replicate that decided the verdicts. `diff_vs_none`: "
            f"paired by seed against no augmentation at the same depth, widened by the shift the repeats of one "
            f"trial share, simultaneous over the {a.configurations.attrs.get('n_family', 0)} configurations "
            f"compared (Šidák) at the configurations' level in the graph (this look: {a.configurations_alpha:.3g}), "
            f"so naming the best afterwards costs no extra error.",
            _with_budget_bound(a.configurations.head(10), _moving_names(a), "configuration")]))
    if a.unconverged is not None:
        conv = exp.train.until_converged
        t = a.unconverged.attrs
        out.append(Section("Convergence", [
            f"`train.until_converged`: each training stopped once val_loss had not improved for {conv.patience} "
            f"epochs (cap {conv.max_epochs}); the outcome is its converged best. {t['unconverged']} of "
            f"{t['trainings']} trainings hit the cap unconverged (median epochs run: {t['median_epochs_run']:.0f}).",
            a.unconverged]))
    return out
