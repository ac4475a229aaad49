"""Calibrated profiles: fitted parameters of one device, shipped as YAML beside the specs.

``hardware_specs/calibrated/<device>.yaml`` holds, at the top level, the fitted values under the
names of :data:`roofline.timing.SWEEPABLE` (``gemm_efficiency``, ``hbm_efficiency``,
``launch_overhead_us``, ``link_latency_us``, ...) and ``efficiency_curve_m``; then the
validation-only refinements (``per_kind``, ``offsets_us``), the serving-model coefficients per
framework (``serving``), the provenance (data files, split, date, method) and the training and
held-out errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

# the reading side lives with the fitted model that predictions use by default (roofline.fitted)
from roofline.fitted import (
    PROFILE_DIR,
    apply_overrides,
    calibrated_hardware,
    list_profiles,
    load_profile,
    profile_path,
)
from roofline.timing import SWEEPABLE

__all__ = ["PROFILE_DIR", "profile_path", "load_profile", "calibrated_overrides", "calibrated_hardware",
           "profile_params", "apply_overrides", "write_profile", "list_profiles"]


def calibrated_overrides(device: str | Path) -> dict[str, float]:
    """The fitted hardware parameters of ``device``, for ``roofline.predict(..., **overrides)``.

    The efficiency curve is not a sweepable parameter: use :func:`calibrated_hardware` to get it too.
    """
    data = load_profile(device)
    return {k: float(data[k]) for k in SWEEPABLE if k in data}


def profile_params(profile: Mapping[str, Any]) -> dict[str, Any]:
    """A loaded profile as the params mapping the validation predictors take."""
    return {
        "overrides": {k: float(profile[k]) for k in SWEEPABLE if k in profile},
        "efficiency_curve_m": [list(map(float, p)) for p in profile.get("efficiency_curve_m") or []],
        "per_kind": dict(profile.get("per_kind") or {}),
        "offsets_us": dict(profile.get("offsets_us") or {}),
        "serving": dict(profile.get("serving") or {}),
    }


class _Dumper(yaml.SafeDumper):
    pass


def _flow_pairs(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(not isinstance(x, (dict, list)) for x in data) and len(data) <= 4
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _flow_pairs)


def write_profile(profile: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``profile`` as YAML (keys in order, short lists inline). Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Calibrated efficiency parameters: written by `roofline calibrate`; do not edit by hand.\n"
              "# Top-level numbers are named as roofline.timing.SWEEPABLE (predict overrides).\n")
    text = yaml.dump(dict(profile), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)
    path.write_text(header + text, encoding="utf-8")
    return path
