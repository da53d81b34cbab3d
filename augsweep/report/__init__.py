"""Stores -> pure statistics -> Markdown, HTML and `effects.csv`: the sweep's and the ablation's sections;
reads the stores and never trains (imports `runs` only for the ablation's design and store look-ups)."""

import sys as _sys
import types as _types


class _CallableReport(_types.ModuleType):
    """`augsweep.report` is this subpackage and the API's `report(exp, ...)` at once: a subpackage imported
    once would otherwise shadow a function of the same name on `augsweep`."""

    def __call__(self, *args, **kwargs):
        from ..api import report

        return report(*args, **kwargs)


_sys.modules[__name__].__class__ = _CallableReport
