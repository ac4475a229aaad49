"""The profile a calibration writes: fitted values, provenance and the held-out errors."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._metrics import error_summary
from roofline.validation._split import describe_split

__all__ = ["build_profile", "round_values"]


def round_values(x: Any) -> Any:
    """Plain Python numbers at 5 significant digits (nested dicts and lists too), for YAML."""
    if isinstance(x, dict):
        return {k: round_values(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_values(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return 0.0 if abs(float(x)) < 1e-9 else float(f"{float(x):.5g}")
    if isinstance(x, np.integer):
        return int(x)
    return x


def blas_kernel() -> str:
    """The BLAS library, version and CPU kernel numpy runs on: the optimizer's path follows it,
    so the last digits of parameters the data fixes only in sum do too (docs/validation.md)."""
    from threadpoolctl import threadpool_info

    libs = {f"{i['internal_api']} {i['version']} {i.get('architecture') or ''}".strip()
            for i in threadpool_info() if i.get("user_api") == "blas"}
    # sorted: threadpool_info lists the libraries in the order they were loaded (numpy's and scipy's
    # OpenBLAS), which differs between runs, so the same kernels wrote the shipped profiles both ways
    return ", ".join(sorted(libs)) or "unknown"


def build_profile(spec: HardwareSpec, params: dict[str, Any], mine: pd.DataFrame, split: str,
                  stages: list[str]) -> dict[str, Any]:
    """The profile mapping of ``spec`` fitted to ``params`` on the ``train`` rows of ``mine``."""
    import roofline

    used = mine[mine["train"]]
    files = sorted({f"{d.split('/')[0]}/{f}" for d, f in zip(used["dataset"], used["file"])})

    def table(subset: pd.DataFrame, col: str) -> list[dict[str, Any]]:
        s = error_summary(subset[subset[col].notna()], col, by=["family", "dataset"])
        return [round_values(r) for r in s.to_dict("records")]

    held = mine[~mine["train"]]
    profile: dict[str, Any] = {
        "name": spec.name,
        "description": f"calibrated efficiency parameters of {spec.name} (roofline calibrate)",
        "provenance": {
            "created": _dt.date.today().isoformat(),
            "tool": f"roofline {roofline.__version__} calibrate",
            "base_spec": f"hardware_specs/{spec.name}.yaml",
            "data": "../shared/validation (read in place, not copied)",
            "files": files,
            "split": split,
            "split_rule": describe_split(split),
            "stages": stages,
            "train_rows": int(mine["train"].sum()),
            "held_out_rows": int((~mine["train"]).sum()),
            "method": "scipy.optimize.least_squares on log(predicted/measured), soft-L1 loss, "
                      "each dataset weighted equally; errors below are on the held-out rows only "
                      "unless marked train",
            "blas": blas_kernel(),
        },
    }
    profile.update(round_values(params.get("overrides", {})))
    if params.get("efficiency_curve_m"):
        profile["efficiency_curve_m"] = round_values(params["efficiency_curve_m"])
    for key in ("per_kind", "offsets_us", "serving"):
        if params.get(key):
            profile[key] = round_values(params[key])
    profile["errors"] = {
        "held_out": {"datasheet": table(held, "predicted_datasheet"),
                     "calibrated": table(held, "predicted_calibrated")},
        "train": {"calibrated": table(used, "predicted_calibrated")},
    }
    return profile
