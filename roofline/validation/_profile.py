"""Calibrated profiles: fitted parameters of one device, shipped as YAML beside the specs.

``hardware_specs/calibrated/<device>.yaml`` holds, at the top level, the fitted values under the
names of :data:`roofline.timing.SWEEPABLE` (``gemm_efficiency``, ``hbm_efficiency``,
``launch_overhead_us``, ``link_latency_us``, ...) and ``efficiency_curve_m``; then the
validation-only refinements (``per_kind``, ``offsets_us``), the serving-model coefficients per
framework (``serving``), the provenance (data files, split, date, method) and the training and
held-out errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from roofline._specfile import PROJECT_ROOT, read_yaml
from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec, load_hardware
from roofline.registry import with_values
from roofline.timing import SWEEPABLE, HardwareArrays

__all__ = ["PROFILE_DIR", "profile_path", "load_profile", "calibrated_overrides", "calibrated_hardware",
           "profile_params", "apply_overrides", "write_profile", "list_profiles"]

#: Where the calibrated profiles ship.
PROFILE_DIR = PROJECT_ROOT / "hardware_specs" / "calibrated"


def profile_path(device: str | Path) -> Path:
    """The profile file of a bundled device name, or ``device`` itself when it is a YAML path."""
    text = str(device)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return Path(text).expanduser()
    return PROFILE_DIR / f"{text.lower()}.yaml"


def list_profiles() -> list[str]:
    """Devices with a shipped calibrated profile."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml")) if PROFILE_DIR.is_dir() else []


def load_profile(device: str | Path) -> dict[str, Any]:
    """The calibrated profile of ``device`` as a dict (see the module docstring for its keys).

    Raises:
        SpecError: no profile for this device, or the file is malformed.
    """
    path = profile_path(device)
    if not path.is_file():
        have = ", ".join(list_profiles()) or "none"
        raise SpecError(f"no calibrated profile for {device} ({path} not found; shipped: {have}); "
                        f"run `roofline calibrate --hardware {device}`")
    data = read_yaml(path)
    for key in SWEEPABLE:
        if key in data and not isinstance(data[key], (int, float)):
            raise SpecError(f"{path}: {key}: expected a number, got {data[key]!r}")
    curve = data.get("efficiency_curve_m")
    if curve is not None and not (isinstance(curve, list) and all(
            isinstance(p, list) and len(p) == 2 for p in curve)):
        raise SpecError(f"{path}: efficiency_curve_m: expected a list of [m, efficiency] pairs")
    return data


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


def apply_overrides(spec: HardwareSpec, overrides: Mapping[str, float],
                    curve: Sequence[Sequence[float]] | None = None) -> HardwareSpec:
    """``spec`` with SWEEPABLE-named ``overrides`` (and an efficiency curve) written into its blocks.

    Every device parameter of the registry is written where the spec keeps it
    (:func:`roofline.registry.with_values`), so that ``predict(model, apply_overrides(spec, o))``
    equals ``predict(model, spec, **o)``; prefetch settings belong to the scenario and are refused.
    """
    HardwareArrays.from_spec(spec, 1, **dict(overrides))  # the checks predict applies to overrides
    spec = with_values(spec, **dict(overrides))
    if curve:
        spec = replace(spec, compute=replace(spec.compute, efficiency_curve_m=tuple(
            (float(m), float(e)) for m, e in curve)))
    return spec


def calibrated_hardware(device: str | Path) -> HardwareSpec:
    """The bundled spec of ``device`` with its calibrated profile applied (curve included).

    ``predict(model, calibrated_hardware("h100-sxm"), ...)`` is what ``predict --calibrated`` runs.
    """
    data = load_profile(device)
    spec = load_hardware(data.get("name") or str(device))
    overrides = {k: float(data[k]) for k in SWEEPABLE if k in data}
    return apply_overrides(spec, overrides, data.get("efficiency_curve_m"))


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
