"""roofline: an analytical roofline model and design-space explorer for distributed LLM inference.

The public API (everything else is internal)::

    import roofline
    p = roofline.predict("llama-3-70b", "h100-sxm", tp=8, batch=4, input_len=4096, output_len=512)
    p.tpot_s, p.speedup, p.to_frame()
"""

from roofline.exceptions import InfeasibleConfigError, RooflineError, SpecError
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


def __getattr__(name: str) -> object:
    """``roofline.serve`` (the serving stage, with the fitted model as default) loads on first use."""
    if name == "serve":
        from roofline.validation import serve_fitted

        return serve_fitted
    raise AttributeError(f"module 'roofline' has no attribute {name!r}")
