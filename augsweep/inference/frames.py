"""The one adapter between the stores' tables and the numeric core: the only module of `inference` that knows
column names (`block`, `repeat`, `trial`, `depth`, the outcome) and the flat key format of switches and
magnitudes (through `experiment.space.aug_key` / `parse_aug_key`). Tables in, arrays to `core`, `fits`, `pairs`,
`power` and `paired`, verdict frames out. Longer than 400 lines on purpose: every frame the rule reads or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from ..experiment.space import aug_key, parse_aug_key
from .alpha import VerdictRule, gate_levels
from .core import COND_KINDS, DECIDED, VERDICT_CODES, codes_of, decide_arrays, divergence_codes
from .core import decided as decided_codes
from .core import should_stop as stop_arrays
from .fits import (
    contrast_shift,
    fit_replicates,
    higher_aliases,
    interaction_design,
    replicate_design,
    switch_shift,
    trial_shift,
)
from .paired import paired_t
from .pairs import pair_verdicts, separates_pairs
from .power import blocks_to_decide

VERDICT_COLUMNS = ["augmentation", "effect", "ci_low", "ci_high", "p_value", "n_with", "n_without",
                   "verdict", "mde", "ci_method", "n_seeds"]
EXTRA_COLUMNS = ["se", "sd_seeds", "alpha_look", "n_family", "blocks_to_decide", "note"]
SEED_COLUMNS = ["block", "repeat", "augmentation", "effect", "n_with", "n_without", "n_points"]
OUTCOME = "best_val_loss"

_NOTE_FEW = "fewer than 2 seed replicates estimate it: no interval can include seed-to-seed variation"
_NOTE_NONE = "not estimable in any seed replicate (always on, never on, or too few finished trials)"
RARE_NOTE = "rare large outcomes"
_NOTE_RARE = (f"{RARE_NOTE}: one seed replicate's estimate stands far from the others' (a diverged training, a "
              f"rare seed); only a verdict in its direction is kept")


def ci_method(n_seeds: int, family: int, looks: tuple[int, int] | None = None, alpha: float | None = None,
              kind: str | None = None) -> str:
    """How a row's interval was made, as `effects.csv`'s `ci_method` says it: `t across 12 seeds, Šidák x4,
    look 1/2 (alpha 0.0056)` for a sweep's look, `paired t across 5 seeds, Šidák x2 (leave-one-out)` for an
    ablation's comparison kind."""
    if kind is not None:
        return f"paired t across {n_seeds} seeds, Šidák x{family} ({kind})"
    return f"t across {n_seeds} seeds, Šidák x{family}, look {looks[0]}/{looks[1]} (alpha {alpha:.4g})"


def _order(frame: pd.DataFrame, key: str = "augmentation") -> pd.DataFrame:
    """Best (most negative effect) first, NaN last, ties by name, so the order is stable."""
    return frame.sort_values(["effect", key], na_position="last", kind="stable").reset_index(drop=True)


def magnitude_columns(table: pd.DataFrame, augmentations: Sequence[str]) -> dict[str, list[str]]:
    """Per augmentation, the numeric magnitude columns (`aug_key(name, param)`) the table holds (a name that is
    a longer augmentation's prefix does not claim that augmentation's columns: `parse_aug_key`)."""
    names = list(dict.fromkeys(augmentations))
    out: dict[str, list[str]] = {a: [] for a in augmentations}
    for col in table.columns:
        parsed = parse_aug_key(col, names)
        if parsed is None or parsed[1] is None or parsed[0] not in out \
                or not pd.api.types.is_numeric_dtype(table[col]) or pd.api.types.is_bool_dtype(table[col]):
            continue
        out[parsed[0]].append(col)
    return {a: sorted(c) for a, c in out.items() if c}


def scored_trainings(table: pd.DataFrame, augmentations: Sequence[str], outcome: str,
                     keys: Sequence[str] = ("block", "repeat")) -> tuple[pd.DataFrame, list[str], list[str]]:
    """One row per training with a finite outcome: the columns an analysis uses (`keys`, outcome, the switches as
    bool, depth (0 when absent), numeric magnitudes when present), sorted by `keys` then trial; also the names
    and their switch columns."""
    names = list(dict.fromkeys(augmentations))
    cols = [aug_key(a) for a in names]
    missing = [c for c in [*keys, outcome, *cols] if c not in table.columns]
    if missing:
        raise KeyError(f"table lacks column(s) {missing}")
    mags = [c for cs in magnitude_columns(table, names).values() for c in cs]
    keep = [*keys, outcome, *cols, *mags] + [c for c in ("trial", "depth") if c in table.columns and c not in keys]
    df = table[keep].copy()
    if "depth" not in df:
        df["depth"] = 0
    df[cols] = df[cols].astype("boolean").fillna(False).astype(bool)
    df = df[np.isfinite(df[outcome].astype(float))]
    order = [*keys] + (["trial"] if "trial" in df and "trial" not in keys else [])
    return df.sort_values(order, kind="stable").reset_index(drop=True), names, cols


def complete_replicates(table: pd.DataFrame, points: int, outcome: str = OUTCOME) -> pd.DataFrame:
    """Only the seed replicates (block, repeat) that hold a finite outcome for all `points` design points.

    A hole in a replicate (a design point that failed twice) unbalances its fit, and interactions then leak
    into main effects; a replicate of a block still running is not a look the stopping rule has taken."""
    if not len(table):
        return table
    ok = table[np.isfinite(table[outcome].astype(float))]
    by = ok.groupby(["block", "repeat"])
    sizes = by["trial"].nunique() if "trial" in ok else by.size()
    full = sizes[sizes >= points].index
    keys = pd.MultiIndex.from_frame(table[["block", "repeat"]])
    return table[keys.isin(full)].reset_index(drop=True)


def _replicates(df: pd.DataFrame) -> Iterable[tuple[tuple[int, int], np.ndarray]]:
    keys = df[["block", "repeat"]].to_numpy()
    if not len(keys):
        return []
    change = np.flatnonzero((keys[1:] != keys[:-1]).any(axis=1)) + 1
    starts = np.r_[0, change]
    ends = np.r_[change, len(keys)]
    return [((int(keys[s, 0]), int(keys[s, 1])), np.arange(s, e)) for s, e in zip(starts, ends)]


def _replicate_fits(table: pd.DataFrame, augmentations: Sequence[str], outcome: str):
    """Per seed replicate: (block, repeat), switches, switch effects (NaN: not identified), magnitude slopes.

    Replicates whose design is the same up to row order (every complete replicate of a replicated design)
    are fitted together, their rows put in one canonical order."""
    df, names, cols = scored_trainings(table, augmentations, outcome)
    S = df[cols].to_numpy(dtype=float)
    y = df[outcome].to_numpy(dtype=float)
    depth = df["depth"].to_numpy()
    mags = [(j, c, df[c].to_numpy(dtype=float)) for j, a in enumerate(names)
            for c in magnitude_columns(df, names).get(a, [])]
    k = len(names)
    groups: dict[bytes, list] = {}
    reps = _replicates(df)
    for r, (_, idx) in enumerate(reps):
        X, base, zlab = replicate_design(S[idx], depth[idx], [(j, c, v[idx]) for j, c, v in mags])
        order = np.lexsort(X.T[::-1])
        X = np.ascontiguousarray(X[order])
        key = X.tobytes() + repr((X.shape, base, zlab)).encode()
        groups.setdefault(key, []).append((r, X, base, zlab, y[idx][order]))
    out: list = [None] * len(reps)
    designs = []
    for members in groups.values():
        _, X, base, zlab, _ = members[0]
        Y = np.vstack([m[4] for m in members])
        designs.append((np.array([reps[m[0]][0][0] for m in members]), X, base, Y))
        beta, est = fit_replicates(Y, X, base)
        for (r, *_), b in zip(members, beta):
            (block, repeat), idx = reps[r]
            slopes = [(names[j], c, float(b[base + i]) * span if est[base + i] else np.nan)
                      for i, (j, c, span) in enumerate(zlab)]
            out[r] = ((block, repeat), S[idx], b[1:1 + k], est[1:1 + k], slopes)
    return names, out, designs


def seed_effects(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = OUTCOME) -> pd.DataFrame:
    """Per seed replicate (block, repeat): OLS with-minus-without effect of each augmentation.

    The fit holds depth and, for every magnitude an augmentation varies over in the replicate, a centred
    magnitude x switch term: an augmentation's effect is then the change from turning it on at its average
    magnitude, and a dose-response of one augmentation cannot leak into another's effect (in a factorial
    design the magnitudes are balanced against the other switches, and the terms change nothing)."""
    names, fits, _ = _replicate_fits(table, augmentations, outcome)
    return _seed_frame(names, fits)


def _seed_frame(names: list[str], fits: list) -> pd.DataFrame:
    rows = []
    for (block, repeat), s, beta, est, _ in fits:
        with_ = s.sum(axis=0).astype(int)
        for j, name in enumerate(names):
            rows.append((block, repeat, name, float(beta[j]) if est[j] else np.nan,
                         int(with_[j]), int(len(s) - with_[j]), int(len(s))))
    return pd.DataFrame(rows, columns=SEED_COLUMNS).astype(
        {"block": int, "repeat": int, "n_with": int, "n_without": int, "n_points": int})


def dose_responses(table: pd.DataFrame, augmentations: Sequence[str], *, alpha: float = 0.05,
                   outcome: str = OUTCOME) -> pd.DataFrame:
    """Per augmentation and magnitude: the change in the outcome from the lowest to the highest magnitude
    trained (with the augmentation on), per seed replicate, with a simultaneous t interval across seeds.
    Descriptive: it carries no verdict, so it takes no share of the report's alpha."""
    names, fits, _ = _replicate_fits(table, augmentations, outcome)
    labels = list(dict.fromkeys((a, c) for *_, slopes in fits for a, c, _ in slopes))
    cols = ["augmentation", "magnitude", "effect", "ci_low", "ci_high", "n_seeds", "sd_seeds"]
    if not labels:
        return pd.DataFrame(columns=cols)
    B = np.full((len(fits), len(labels)), np.nan)
    pos = {lab: i for i, lab in enumerate(labels)}
    for r, (*_, slopes) in enumerate(fits):
        for a, c, v in slopes:
            B[r, pos[(a, c)]] = v
    res = decide_arrays(B, alpha, margin=np.inf)
    return pd.DataFrame({"augmentation": [a for a, _ in labels],
                         "magnitude": [parse_aug_key(c, names)[1] for _, c in labels],
                         "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
                         "n_seeds": res["n_seeds"], "sd_seeds": res["sd_seeds"]})


def _replicate_codes(seeds: pd.DataFrame) -> tuple[np.ndarray, int, np.ndarray]:
    """Row -> replicate index (ordered by block, repeat), the number of replicates, and each one's block."""
    keys = seeds["block"].to_numpy(dtype=np.int64) * (1 << 20) + seeds["repeat"].to_numpy(dtype=np.int64)
    uniq, codes = np.unique(keys, return_inverse=True)
    return codes, len(uniq), uniq >> 20


def summarize(seeds: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, looks_done: int = 1,
              shift: tuple[np.ndarray, np.ndarray] | None = None) -> pd.DataFrame:
    """Verdict frame from per-seed effects (the output of `seed_effects`) at look `looks_done`; `shift`: per
    augmentation, what a trial-shared shift adds to a block's per-seed effect, and its df (`switch_shift`)."""
    margin, max_looks = rule.margin, rule.max_looks
    if margin <= 0:
        raise ValueError("margin must be positive")
    names = list(dict.fromkeys(augmentations))
    a_look = rule.alpha_at(looks_done)
    codes, n_rep, _ = _replicate_codes(seeds)
    pos = {a: j for j, a in enumerate(names)}
    col = np.array([pos.get(a, -1) for a in seeds["augmentation"]], dtype=np.int64)
    keep = col >= 0
    B = np.full((n_rep, len(names)), np.nan)
    B[codes[keep], col[keep]] = seeds["effect"].to_numpy(dtype=float)[keep]
    n_with = np.bincount(col[keep], seeds["n_with"].to_numpy(dtype=float)[keep], minlength=len(names)).astype(int)
    n_without = np.bincount(col[keep], seeds["n_without"].to_numpy(dtype=float)[keep],
                            minlength=len(names)).astype(int)
    res = decide_arrays(B, a_look, margin, shift=shift)
    verdicts = VERDICT_CODES[res["code"]]
    any_est = np.isfinite(B).any(axis=0)
    notes = [(_NOTE_RARE if res["rare"][j] else "") if n >= 2 else (_NOTE_FEW if any_est[j] else _NOTE_NONE)
             for j, n in enumerate(res["n_seeds"])]
    m = int(res["n_family"][0]) if len(names) else 1
    seeds_per_block = rule.seeds_per_block
    if seeds_per_block is None:
        blocks = seeds["block"].to_numpy()
        seeds_per_block = max(round(n_rep / len(np.unique(blocks))), 1) if n_rep else 1
    to_decide = [blocks_to_decide(v in DECIDED, n, sd, e, m, rule, looks_done, seeds_per_block)
                 for v, n, sd, e in zip(verdicts, res["n_seeds"], res["sd_seeds"], res["effect"])]
    out = pd.DataFrame({
        "augmentation": names, "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "p_value": res["p_value"], "n_with": n_with, "n_without": n_without, "verdict": verdicts,
        "mde": res["mde"], "ci_method": [ci_method(n, m, (looks_done, max_looks), a_look) for n in res["n_seeds"]],
        "n_seeds": res["n_seeds"], "se": res["se"],
        "sd_seeds": res["sd_seeds"], "alpha_look": a_look, "n_family": res["n_family"],
        "blocks_to_decide": to_decide, "note": notes,
    })
    return _order(out)


def effects(table: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, looks_done: int = 1,
            outcome: str = OUTCOME) -> pd.DataFrame:
    """Each augmentation's effect on the outcome with a simultaneous, seed-replicated interval and verdict."""
    names, fits, designs = _replicate_fits(table, augmentations, outcome)
    seeds = _seed_frame(names, fits)
    shift = None
    if designs:
        # The largest group of replicates sharing one design (all of a replicated design's complete ones).
        blocks, X, base, Y = max(designs, key=lambda d: len(d[0]))
        shift = switch_shift(Y, X, base, len(names), blocks)
    return summarize(seeds, augmentations, rule, looks_done, shift=shift)


def interaction_contrast(table: pd.DataFrame, terms: Sequence[tuple[str, str]], augmentations: Sequence[str],
                         rule: VerdictRule, looks_done: int = 1, outcome: str = OUTCOME,
                         aliases: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Per-seed interaction of two augmentations (or an augmentation with depth), decided across seeds by the
    effects' rule: each replicate's fit holds every switch, the depths, the magnitude terms and the one
    interaction, and a trial-shared shift widens the interval (`contrast_shift`). `aliases` (label -> the
    interactions of three factors or more it is aliased with, `design_aliases`): such a row keeps its estimate
    and interval but carries no verdict, unless `rule.assume_no_higher`; a row aliased with a two-factor term
    is not estimated."""
    margin, max_looks = rule.margin, rule.max_looks
    names, _, designs = _replicate_fits(table, augmentations, outcome)
    labels, index = [], []
    for a, b in terms:
        for x in (a, b) if b != "depth" else (a,):
            if x not in names:
                raise KeyError(f"{x!r} is not among the augmentations")
        labels.append(f"{a} x {b}")
        index.append((names.index(a), None if b == "depth" else names.index(b)))
    k = len(names)
    rows, shifts, n_with, n_total = [], None, np.zeros(len(terms), dtype=int), 0
    low_aliased: dict[int, set[str]] = {}
    biggest = max(designs, key=lambda d: len(d[0])) if designs else None
    for blocks, X, base, Y in designs:
        B = np.full((len(Y), len(terms)), np.nan)
        var, dfs = np.zeros(len(terms)), np.zeros(len(terms))
        n_total += X.shape[0] * len(Y)
        x = 2.0 * X[:, 1:1 + k] - 1.0
        z = X[:, 1 + k:base]
        for j, (ia, ib) in enumerate(index):
            if ib is None and z.shape[1] == 0:
                continue
            Xe, base_e, target = interaction_design(X, base, k, ia, ib)
            n_with[j] += int((Xe[:, target] != 0).sum()) * len(Y)
            # a two-factor alias (depth in a resolution IV plan): the row is not estimated at all
            cols, facs = (np.column_stack([x, 2.0 * z[:, 0] - 1.0]), [*names, "depth"]) if z.shape[1] == 1 \
                else (x, names)
            lows = higher_aliases(cols, facs, [ia, k] if ib is None else [ia, ib], 2) \
                if ib is not None or z.shape[1] == 1 else []
            if lows:
                low_aliased.setdefault(j, set()).update(lows)
                continue
            beta, est = fit_replicates(Y, Xe, base_e)
            if not est[target]:
                continue
            B[:, j] = beta[:, target]
            if biggest is not None and blocks is biggest[0]:
                L = np.eye(Xe.shape[1])[target][None, :]
                v, d = contrast_shift(Y, Xe, base_e, L, blocks)
                var[j], dfs[j] = float(v[0]), float(d[0])
        rows.append(B)
        if biggest is not None and blocks is biggest[0]:
            shifts = (var, dfs)
    B = np.vstack(rows) if rows else np.full((0, len(terms)), np.nan)
    a_look = rule.alpha_at(looks_done)
    high = {j: (aliases or {}).get(lab, []) for j, lab in enumerate(labels)}
    held = np.array([bool(high[j]) and not rule.assume_no_higher for j in range(len(labels))], dtype=bool)
    res = decide_arrays(np.where(held, np.nan, B), a_look, margin, shifts)
    shown = decide_arrays(B, a_look, margin, shifts)  # the interval an aliased row would have, shown beside it
    for key in ("effect", "ci_low", "ci_high", "p_value", "mde", "n_seeds", "se", "sd_seeds"):
        res[key] = np.where(held, shown[key], res[key])
    m = int(res["n_family"].max()) if labels else 1

    def note(j: int, n: int) -> str:
        if j in low_aliased:
            return f"aliased with {', '.join(sorted(low_aliased[j]))} in this design: not separable"
        if high[j]:
            words = ", ".join(high[j])
            return (f"aliased with {words}: the estimate is the sum of both; no verdict of its own unless the "
                    f"experiment assumes interactions of three factors or more away" if held[j]
                    else f"aliased with {words}, assumed 0 (`assume_no_higher_interactions: true`)")
        return "" if n >= 2 else _NOTE_FEW

    out = pd.DataFrame({
        "term": labels, "effect": res["effect"], "ci_low": res["ci_low"], "ci_high": res["ci_high"],
        "p_value": res["p_value"], "n_with": n_with, "n_without": n_total - n_with,
        "verdict": np.where(held, "undecided", VERDICT_CODES[res["code"]]), "mde": res["mde"],
        "ci_method": [ci_method(n, m, (looks_done, max_looks), a_look) for n in res["n_seeds"]],
        "n_seeds": res["n_seeds"], "se": res["se"], "sd_seeds": res["sd_seeds"], "alpha_look": a_look,
        "note": [note(j, n) for j, n in enumerate(res["n_seeds"])],
        "aliases": ["; ".join(high[j]) for j in range(len(labels))],
    })
    return _order(out, "term")


def design_aliases(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = OUTCOME) -> dict[str, list[str]]:
    """Per interaction row (`a x depth`, `a x b`), the interactions of three factors (switches and depth, when
    it has two levels) it is aliased with in the first complete replicate's design (`fits.higher_aliases`);
    empty lists in a full factorial or a crossed design. Read from the data, so it agrees with what was run."""
    names = list(dict.fromkeys(augmentations))
    mat = replicate_matrix(table, names, outcome) if len(table) else None
    if mat is None:
        return {}
    _, S, depth, _ = mat
    x = 2.0 * S - 1.0
    levels = np.unique(depth)
    factors, cols = list(names), x
    if len(levels) == 2:
        factors = [*names, "depth"]
        cols = np.column_stack([x, np.where(depth == levels[1], 1.0, -1.0)])
    out = {}
    k = len(names)
    words = [((i,), f"{a} x depth") for i, a in enumerate(names)] if len(levels) == 2 else []
    words += [((i, j), f"{names[i]} x {names[j]}") for i in range(k) for j in range(i + 1, k)]
    for w, label in words:
        word = [*w, k] if label.endswith("x depth") else list(w)
        out[label] = [a for a in higher_aliases(cols, factors, word, 3) if a.count(" x ") >= 2]
    return out


def separable_pairs(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = OUTCOME
                    ) -> list[tuple[str, str]]:
    """Every two-augmentation pair, when a complete seed replicate's design separates all of them from the
    main effects and from each other (`pairs.separates_pairs`); [] otherwise."""
    names = list(dict.fromkeys(augmentations))
    if len(names) < 2 or not len(table):
        return []
    df, names, cols = scored_trainings(table, names, outcome)
    reps = _replicates(df)
    if not reps:
        return []
    rows = reps[0][1]
    x = 2.0 * df[cols].to_numpy(dtype=float)[rows] - 1.0
    if not separates_pairs(x, df["depth"].to_numpy()[rows]):
        return []
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def replicate_matrix(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = OUTCOME):
    """Complete seed replicates of one design stacked (replicates x rows, rows sorted by switches and
    depth), the design's switches and depths, and each replicate's block; None if the replicates' designs
    differ."""
    df, names, cols = scored_trainings(table, augmentations, outcome)
    reps = _replicates(df)
    S_all, y, depth = df[cols].to_numpy(dtype=float), df[outcome].to_numpy(dtype=float), df["depth"].to_numpy()
    rows, S0, d0 = [], None, None
    for _, idx in reps:
        order = idx[np.lexsort(np.column_stack([S_all[idx], depth[idx]]).T[::-1])]
        if S0 is None:
            S0, d0 = S_all[order], depth[order]
        elif S_all[order].shape != S0.shape or (S_all[order] != S0).any() or (depth[order] != d0).any():
            return None
        rows.append(y[order])
    if not rows:
        return None
    return np.vstack(rows), S0, d0, np.array([b for (b, _), _ in reps])


@dataclass(frozen=True)
class PairCodes:
    """The codes behind a sweep's pair tables, for the one `decided` rule: the pairs by index into the
    augmentations, their contrasts' codes and their conditional effects' (`COND_KINDS` per pair)."""

    pairs: tuple[tuple[int, int], ...]
    contrasts: np.ndarray
    conditional: np.ndarray


def pair_frames(table: pd.DataFrame, pairs: Sequence[tuple[str, str]], augmentations: Sequence[str], *,
                alpha_pairs: float, margin: float, looks: tuple[int, int], tested: np.ndarray | None = None,
                aliases: dict | None = None) -> tuple[pd.DataFrame | None, pd.DataFrame | None, PairCodes | None]:
    """`pair_verdicts` on a sweep's complete seed replicates, as frames: the aug x aug contrasts (`term`,
    effect = the product term: how much a's effect changes when b is turned on) and the conditional effects
    (`augmentation`, `given`) of the decided ones; and their codes."""
    names = list(dict.fromkeys(augmentations))
    mat = replicate_matrix(table, names)
    if mat is None or not pairs:
        return None, None, None
    idx = [(names.index(a), names.index(b)) for a, b in pairs]
    rp, rc = pair_verdicts(mat, idx, alpha_pairs=alpha_pairs, margin=margin, tested=tested)
    method = [ci_method(n, int(rp["n_family"][0]), looks, alpha_pairs) for n in rp["n_seeds"]]
    words = [(aliases or {}).get(f"{a} x {b}", []) for a, b in pairs]
    held = ~np.asarray(tested, dtype=bool) if tested is not None else np.zeros(len(pairs), dtype=bool)
    if held.any():  # an aliased pair keeps its estimate: the interval it would have, beside its aliases
        shown = pair_verdicts(mat, idx, alpha_pairs=alpha_pairs, margin=margin)[0]
        for key in ("effect", "ci_low", "ci_high", "p_value", "mde", "n_seeds"):
            rp[key] = np.where(held, shown[key], rp[key])
    notes = [f"aliased with {', '.join(w)}: the estimate is the sum of both; no verdict of its own unless the "
             f"experiment assumes interactions of three factors or more away" if h
             else (f"aliased with {', '.join(w)}, assumed 0 (`assume_no_higher_interactions: true`)" if w else "")
             for w, h in zip(words, held)]
    pf = pd.DataFrame({"term": [f"{a} x {b}" for a, b in pairs], "effect": rp["effect"], "ci_low": rp["ci_low"],
                       "ci_high": rp["ci_high"], "p_value": rp["p_value"], "verdict": VERDICT_CODES[rp["code"]],
                       "mde": rp["mde"], "ci_method": method, "n_seeds": rp["n_seeds"], "note": notes,
                       "aliases": ["; ".join(w) for w in words]})
    rows = []
    for p, (a, b) in enumerate(pairs):
        if rp["code"][p] not in (1, 2):
            continue
        for j, (which, other_on) in enumerate(COND_KINDS):
            i = 4 * p + j
            aug, other = (a, b) if which == 0 else (b, a)
            rows.append({"augmentation": aug, "given": f"{other} {'on' if other_on else 'off'}",
                         "effect": rc["effect"][i], "ci_low": rc["ci_low"][i], "ci_high": rc["ci_high"][i],
                         "p_value": rc["p_value"][i], "verdict": VERDICT_CODES[rc["code"][i]],
                         "n_seeds": int(rc["n_seeds"][i]), "pair": f"{a} x {b}"})
    cols = ["augmentation", "given", "effect", "ci_low", "ci_high", "p_value", "verdict", "n_seeds", "pair"]
    return _order(pf, "term"), pd.DataFrame(rows, columns=cols), PairCodes(tuple(idx), rp["code"], rc["code"])


@dataclass(frozen=True)
class SweepVerdicts:
    """The verdict-bearing tables of a sweep at one look, and which data they used."""

    effects: pd.DataFrame
    interactions: pd.DataFrame | None  # augmentation x depth contrasts (two depths or more)
    looks: tuple[int, int]  # (looks done, maximum looks)
    blocks_used: tuple[int, ...]  # blocks whose complete seed replicates decided
    table: pd.DataFrame  # the rows that decided
    pairs: pd.DataFrame | None = None  # augmentation x augmentation contrasts (a design that separates them)
    conditional: pd.DataFrame | None = None  # conditional effects of the augmentations in decided pairs
    levels: dict | None = None  # each verdict table's level at this look (`alpha.gate_levels`)
    augmentations: tuple[str, ...] = ()  # the order `pair_codes` indexes
    pair_codes: PairCodes | None = None  # the codes behind `pairs` and `conditional`
    shift: tuple[float, float] = (0.0, 0.0)  # a trial-shared shift's variance and df (`sweep_shift`)
    aliases: dict | None = None  # per interaction row, its aliases of three factors or more (`design_aliases`)
    divergence: pd.DataFrame | None = None  # does an augmentation change how often trainings diverge?

    def decided_codes(self) -> np.ndarray:
        """`core.decided` on these tables' codes, in the order of `augmentations`."""
        augs = list(self.augmentations) or list(self.effects["augmentation"])
        eff = codes_of(self.effects.set_index("augmentation").loc[augs, "verdict"])
        p = self.pair_codes
        if p is None:
            return decided_codes(eff, None, None, (), len(augs))
        return decided_codes(eff, p.contrasts, p.conditional, p.pairs, len(augs))

    def decided(self) -> dict[str, bool]:
        """Per augmentation: decided for `stop: decided` (by its conditional effects when it interacts)."""
        augs = list(self.augmentations) or list(self.effects["augmentation"])
        flags = dict(zip(augs, self.decided_codes().tolist()))
        return {a: flags[a] for a in self.effects["augmentation"]}

    def all_decided(self) -> bool:
        return bool(self.decided_codes().all())

    def should_stop(self, looks_done: int, max_looks: int) -> bool:
        """The stopping rule at this look (`core.should_stop`): everything decided, or the cap reached."""
        return bool(stop_arrays(self.decided_codes(), looks_done, max_looks))


def sweep_shift(table: pd.DataFrame, augmentations: Sequence[str], outcome: str = OUTCOME
                ) -> tuple[float, float]:
    """The variance of a shift the repeats of one trial share (beyond the seed) and its df, from the effects
    fit's residuals (`fits.trial_shift` on the largest group of replicates sharing one design); (0, 0) when
    nothing estimates it."""
    _, _, designs = _replicate_fits(table, augmentations, outcome) if len(table) else (None, None, [])
    if not designs:
        return 0.0, 0.0
    blocks, X, base, Y = max(designs, key=lambda d: len(d[0]))
    tau2, df = trial_shift(Y, X, base, blocks)
    return float(tau2), float(df)


def diverged_counts(table: pd.DataFrame, augmentations: Sequence[str]) -> np.ndarray | None:
    """(4 x augmentations): trainings that diverged with each augmentation on, trainings with it on, the same
    with it off; None when no training diverged (or the table does not say)."""
    if "diverged" not in table or not len(table):
        return None
    d = table["diverged"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    if not d.any():
        return None
    on = table[[aug_key(a) for a in augmentations]].astype("boolean").fillna(False).to_numpy(dtype=bool)
    return np.stack([(on & d[:, None]).sum(0), on.sum(0), (~on & d[:, None]).sum(0), (~on).sum(0)])


def divergence_frame(counts: np.ndarray, augmentations: Sequence[str], level: float) -> pd.DataFrame:
    """The divergence rows (`core.divergence_codes`): per augmentation, its trainings that diverged with and
    without it, the two rates, the adjusted p and the verdict (`hurts`: diverges more often with it)."""
    res = divergence_codes(*counts, level)
    return pd.DataFrame({"augmentation": list(augmentations), "diverged_with": counts[0].astype(int),
                         "trainings_with": counts[1].astype(int), "diverged_without": counts[2].astype(int),
                         "trainings_without": counts[3].astype(int), "rate_with": res["rate_with"],
                         "rate_without": res["rate_without"], "p_value": res["p_value"],
                         "verdict": VERDICT_CODES[res["code"]], "alpha_look": level})


def decide_sweep(table: pd.DataFrame, augmentations: Sequence[str], rule: VerdictRule, points: int | None = None,
                 finished: Sequence[int] | None = None, followup: bool = False) -> SweepVerdicts:
    """The one verdict rule applied to a sweep's (trial x repeat) table, as the sweep's stopping rule and the
    report both apply it: with a replicated design (`points` per block), only blocks in `finished` count,
    a look is a finished block, and only complete seed replicates decide (a hole unbalances the fit).

    One look's alpha (`rule.alpha_at`) runs through a graph of tables (`alpha.gate_levels`): the main effects
    first; then the augmentation x depth contrasts, the augmentation x augmentation contrasts (a replicated
    design that separates them) and the configurations against none, with what the main effects pass on; a
    decided pair passes its level on to its conditional effects. Rows aliased with interactions of three
    factors or more (`design_aliases`) take no alpha and carry no verdict unless `rule.assume_no_higher`.
    `followup`: an ablation shares the configurations' node, which then exists even where no trial trained
    without augmentation (a factorial design always does, so its stopping rule sees the same graph)."""
    margin = rule.margin
    augs = list(dict.fromkeys(augmentations))
    looks = (1, 1)
    if points is not None and len(table):
        done = sorted(set(int(b) for b in (finished if finished is not None else table["block"].unique())))
        table = complete_replicates(table[table["block"].isin(done)], points)
        looks = (max(len(done), 1), max(len(done), 1, int(rule.max_looks)))
    depths = sorted(table["depth"].unique()) if len(table) and "depth" in table else []
    n_rep = table.groupby(["block", "repeat"]).ngroups if len(table) else 0
    pairs = separable_pairs(table, augs) if points is not None and n_rep >= 2 else []
    aliases = design_aliases(table, augs) if points is not None and n_rep >= 1 else {}
    free = {lab: not words or rule.assume_no_higher for lab, words in aliases.items()}
    none_rows = bool(len(table)) and not table[[aug_key(a) for a in augs]].astype(bool).any(axis=1).all()
    depth_rows = sum(free.get(f"{a} x depth", True) for a in augs) if len(depths) > 1 and n_rep >= 2 else 0
    pair_tested = np.array([free.get(f"{a} x {b}", True) for a, b in pairs], dtype=bool)
    counts = diverged_counts(table, augs)
    rows = {"effects": len(augs), "depth": depth_rows, "pairs": int(pair_tested.sum()),
            "configurations": 1 if none_rows or followup else 0, "divergence": len(augs) if counts is not None else 0}
    plan = replace(rule, max_looks=looks[1] if rule.level is None else rule.max_looks, primary_rows=max(len(augs), 1))
    a_look = plan.alpha_at(looks[0])
    levels = gate_levels(a_look, rows, 0.0)
    # the effects' fraction of every look, so `blocks_to_decide` projects at the level they will get
    fraction = levels["effects"] / a_look if a_look > 0 else gate_levels(1.0, rows)["effects"]
    eff = effects(table, augs, replace(plan, look_share=fraction).at_level(levels["effects"]), looks[0])
    levels = gate_levels(a_look, rows, float(eff["verdict"].isin(["helps", "hurts"]).sum()) / max(len(augs), 1))
    inter = None
    if len(depths) > 1 and n_rep >= 2:
        inter = interaction_contrast(table, [(a, "depth") for a in augs], augs, plan.at_level(levels["depth"]),
                                     looks[0], aliases=aliases)
    pair_frame, cond, codes = None, None, None
    if pairs:
        pair_frame, cond, codes = pair_frames(table, pairs, augs, margin=margin, looks=looks,
                                              alpha_pairs=levels["pairs"], tested=pair_tested, aliases=aliases)
    used = tuple(sorted(set(int(b) for b in table["block"]))) if len(table) else ()
    div = divergence_frame(counts, augs, levels["divergence"]) if counts is not None else None
    return SweepVerdicts(eff, inter, looks, used, table, pair_frame, cond, levels, tuple(augs), codes,
                         sweep_shift(table, augs) if len(table) else (0.0, 0.0), aliases, div)


def ablation_effects(runs: pd.DataFrame, comparisons: pd.DataFrame, margin: float, alpha: float = 0.05) -> pd.DataFrame:
    """Paired-seed ablation: with-minus-without per seed, t across seeds, Šidák within each comparison kind."""
    if margin <= 0:
        raise ValueError("margin must be positive")
    finished = runs[np.isfinite(runs[OUTCOME].astype(float))]
    wide = finished.groupby(["seed", "variant"], sort=True)[OUTCOME].mean().unstack("variant")
    frames = []
    for kind in dict.fromkeys(comparisons["comparison"]):
        fam = comparisons[comparisons["comparison"] == kind].reset_index(drop=True)
        cols, nw, nwo = [], [], []
        for w, wo in zip(fam["with_variant"], fam["without_variant"]):
            a = wide[w] if w in wide else pd.Series(np.nan, index=wide.index)
            b = wide[wo] if wo in wide else pd.Series(np.nan, index=wide.index)
            cols.append((a - b).to_numpy(dtype=float))
            nw.append(int(a.notna().sum()))
            nwo.append(int(b.notna().sum()))
        B = np.column_stack(cols) if cols else np.zeros((len(wide), 0))
        labels = list(fam["augmentation"])
        # One family across both comparison kinds: each kind gets its Šidák share of alpha, so a report
        # quoting leave-one-out and add-one-in rows together still errs with probability <= alpha.
        alpha_kind = 1.0 - (1.0 - alpha) ** (len(fam) / max(len(comparisons), 1))
        res = paired_t(B, alpha_kind, margin)
        m = int(res["n_family"][0]) if labels else 1
        frames.append(pd.DataFrame({
            "augmentation": labels, "comparison": kind, "effect": res["effect"], "ci_low": res["ci_low"],
            "ci_high": res["ci_high"], "p_value": res["p_value"], "n_with": nw, "n_without": nwo,
            "verdict": VERDICT_CODES[res["code"]], "mde": res["mde"],
            "ci_method": [ci_method(n, m, kind=kind) for n in res["n_seeds"]],
            "n_seeds": res["n_seeds"], "seeds_needed": list(res["seeds_needed"]),
            "se": res["se"], "sd_seeds": res["sd_seeds"],
            "note": ["" if n >= 2 else _NOTE_FEW for n in res["n_seeds"]],
        }))
    if not frames:
        return pd.DataFrame(columns=["augmentation", "comparison", *VERDICT_COLUMNS[1:], "seeds_needed"])
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["comparison", "effect", "augmentation"], na_position="last",
                           kind="stable").reset_index(drop=True)
