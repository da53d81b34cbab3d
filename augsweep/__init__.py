"""augsweep: which image augmentations actually lower validation loss?

The Python API (`augsweep.api`): `load_experiment`, `sweep`, `report`, and `UserError` for bad input.
Importing augsweep loads none of TensorFlow, MLflow, Optuna or pandas; each function loads what it needs.
"""

import sys as _sys
import types as _types

__version__ = "0.1.0"

__all__ = ["load_experiment", "sweep", "report", "UserError", "Study", "Report"]

_API = ("load_experiment", "sweep", "report", "Study", "Report")


def __getattr__(name):
    # Lazy: `sweep.py --help` and bad-input exits import `augsweep` and must stay free of the heavy modules.
    if name in _API:
        from . import api

        return getattr(api, name)
    if name == "UserError":
        from .runtime import UserError

        return UserError
    raise AttributeError(f"module 'augsweep' has no attribute {name!r}")


class _Package(_types.ModuleType):
    """Keeps `augsweep.report` the API's function: importing the subpackage `augsweep.report` would otherwise
    set the package attribute of that name to the subpackage (it stays importable through `sys.modules`)."""

    def __setattr__(self, name, value):
        if name in _API and isinstance(value, _types.ModuleType):
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
