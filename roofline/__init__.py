"""roofline: an analytical roofline model and design-space explorer for distributed LLM inference.

The public API (everything else is internal)::

    import roofline
    p = roofline.predict("llama-3-70b", "h100-sxm", tp=8, batch=4, input_len=4096, output_len=512)
    p.tpot_s, p.speedup, p.to_frame()
"""

import sys
import types
from typing import TYPE_CHECKING

from roofline.exceptions import InfeasibleConfigError, RooflineError, SpecError

if TYPE_CHECKING:
    from roofline.hardware import HardwareSpec, list_hardware, load_hardware
    from roofline.model import ModelSpec, list_models, load_model
    from roofline.predict import DEFINITIONS, Prediction, predict
    from roofline.workload import Parallelism, PrefetchSettings, Workload

__version__ = "0.1.0"

__all__ = [
    "DEFINITIONS",
    "HardwareSpec",
    "InfeasibleConfigError",
    "ModelSpec",
    "Parallelism",
    "Prediction",
    "RooflineError",
    "SpecError",
    "Workload",
    "PrefetchSettings",
    "list_hardware",
    "list_models",
    "load_hardware",
    "load_model",
    "predict",
    "serve",
]


#: public name -> the module that defines it: loaded on first use, so that ``roofline --help`` (whose
#: command modules import ``roofline.<module>``, and so this package) does not load the engine
_LAZY = {
    **dict.fromkeys(("HardwareSpec", "list_hardware", "load_hardware"), "roofline.hardware"),
    **dict.fromkeys(("ModelSpec", "list_models", "load_model"), "roofline.model"),
    **dict.fromkeys(("DEFINITIONS", "Prediction", "predict"), "roofline.predict"),
    **dict.fromkeys(("Parallelism", "PrefetchSettings", "Workload"), "roofline.workload"),
    "serve": "roofline.serving",
}


def __getattr__(name: str) -> object:
    """The public API loads on first use; ``roofline.serve`` (the serving stage, with the fitted
    model as default) too."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'roofline' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """Importing the submodule ``roofline.predict`` binds it as this package's ``predict``; the
    public name is the function (as when this package imported it eagerly)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name == "predict" and isinstance(value, types.ModuleType):
            value = value.predict
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
