"""The ablation's paired t: per seed, with-minus-without for each comparison of one kind, decided across seeds
under the verdict rule (Šidák within the kind), with the seeds that would decide each effect seen. Arrays only.
"""

from __future__ import annotations

import numpy as np

from .alpha import sidak_level
from .core import decide_arrays
from .power import seeds_needed


def paired_t(D: np.ndarray, alpha: float, margin: float) -> dict[str, np.ndarray]:
    """`decide_arrays` on (seeds x comparisons) paired differences D at family level `alpha`, plus
    `seeds_needed` per comparison at the family's per-comparison level."""
    res = decide_arrays(D, alpha, margin)
    m = int(res["n_family"][0]) if D.shape[-1] else 1
    a_per = sidak_level(alpha, m)
    res["seeds_needed"] = np.array([seeds_needed(e, s, a_per) for e, s in zip(res["effect"], res["sd_seeds"])],
                                   dtype=float)
    return res
