"""augsweep: which image augmentations actually lower validation loss?

The Python API (`augsweep.api`): `load_experiment`, `sweep`, `report`, and `UserError` for bad input.
Importing augsweep loads none of TensorFlow, MLflow, Optuna or pandas; each function loads what it needs.
"""

__version__ = "0.1.0"

__all__ = ["load_experiment", "sweep", "report", "UserError", "Study", "Report"]


def __getattr__(name):
    # Lazy: `sweep.py --help` and bad-input exits import `augsweep` and must stay free of the heavy modules.
    if name == "report":  # the subpackage, callable as the API's `report` (see augsweep/report/__init__.py)
        import importlib

        return importlib.import_module(".report", __name__)
    if name in ("load_experiment", "sweep", "Study", "Report"):
        from . import api

        return getattr(api, name)
    if name == "UserError":
        from .runtime import UserError

        return UserError
    raise AttributeError(f"module 'augsweep' has no attribute {name!r}")
