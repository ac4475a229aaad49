"""Calibration: fit a device's efficiency parameters on the training rows, report the rest.

The fit runs in stages, each a bounded least-squares fit on the log of predicted over measured
time (:mod:`roofline.validation._fitting`), each adding its values to one params mapping (the
format of :mod:`roofline.validation._predict`). Stages, always in this order:

1. ``gemm``, 2. ``layer``, 3. ``attention``: the compute kernels
   (:mod:`roofline.validation._stage_kernels`);
4. ``collectives``: link latency and efficiency per algorithm family and scope
   (:mod:`roofline.validation._stage_collectives`);
5. ``serving``: end-to-end TTFT/TPOT -> the software overheads of the serving stage per
   framework (:mod:`roofline.validation._stage_serving`), over the serving simulator on the
   hardware with the values before it.

Held-out rows never reach a fit: the stages receive the training subset only. Every case is then
predicted with datasheet and with calibrated values (:mod:`roofline.validation._predict_cases`)
and the profile written (:mod:`roofline.validation._profile_build`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from roofline.fitted import profile_being_fitted
from roofline.hardware import HardwareSpec, load_hardware
from roofline.validation._data import load_cases
from roofline.validation._metrics import error_summary
from roofline.validation._predict_cases import mark_queued, predict_all, profile_hardware
from roofline.validation._profile_build import build_profile
from roofline.validation._split import assign_split
from roofline.validation._stage_collectives import stage_collectives
from roofline.validation._stage_kernels import stage_attention, stage_gemm, stage_layer
from roofline.validation._stage_serving import stage_serving

__all__ = ["STAGES", "CalibrationResult", "calibrate_device"]

STAGES = ("gemm", "layer", "attention", "collectives", "serving")


@dataclass
class CalibrationResult:
    """What :func:`calibrate_device` found: the profile and the cases with their predictions."""

    device: str
    split: str
    profile: dict[str, Any]
    cases: pd.DataFrame  # the device's cases: measured, predicted (datasheet, calibrated), train flag
    stages: list[str] = field(default_factory=list)

    def summary(self, subset: str = "held_out") -> pd.DataFrame:
        """Error per family and dataset, datasheet-only and calibrated, on ``held_out`` or ``train``."""
        sub = self.cases[self.cases["train"] == (subset == "train")]
        sub = sub[sub["predicted_calibrated"].notna()]
        ds = error_summary(sub, "predicted_datasheet", by=["family", "dataset"])
        cal = error_summary(sub, "predicted_calibrated", by=["family", "dataset"])
        return ds.merge(cal, on=["family", "dataset"], suffixes=("_datasheet", "_calibrated"))


def _stage_serving_fitted(spec: HardwareSpec, train: pd.DataFrame, params: dict[str, Any]) -> dict[str, Any]:
    """The serving stage on the profile fitted so far, read by name too (TensorRT-LLM's all-reduce
    looks its fit up in the device's profile: :func:`roofline.fitted.profile_being_fitted`)."""
    profile = {"name": spec.name, **params.get("overrides", {}), "per_kind": params.get("per_kind") or {}}
    if params.get("efficiency_curve_m"):
        profile["efficiency_curve_m"] = params["efficiency_curve_m"]
    with profile_being_fitted(spec.name, profile):
        return stage_serving(profile_hardware(spec, params), train, params)


def calibrate_device(device: str, cases: pd.DataFrame | None = None, *, split: str = "size",
                     data_dir: str | None = None, stages: Sequence[str] = STAGES) -> CalibrationResult:
    """Fit ``device``'s parameters on the training rows; predict every row, datasheet and calibrated.

    Args:
        device: bundled hardware name (``h100-sxm``).
        cases: the case table (default: :func:`load_cases` of ``data_dir``).
        split: ``"size"`` or ``"model"`` (see :mod:`roofline.validation._split`).
        data_dir: the validation data folder, when ``cases`` is not given.
        stages: a subset of :data:`STAGES` to run (the others keep datasheet values).

    Raises:
        SpecError: unknown device or split, missing data folder, or no measured data for the device.
    """
    from roofline.exceptions import SpecError

    spec = load_hardware(device)
    if cases is None:
        cases = load_cases(data_dir)
    bad = [s for s in stages if s not in STAGES]
    if bad:
        raise SpecError(f"unknown calibration stage {bad[0]!r}; choose from {', '.join(STAGES)}")
    mine = cases[cases["device"] == spec.name].reset_index(drop=True)
    if mine.empty:
        devices = sorted(d for d in cases["device"].dropna().unique())
        raise SpecError(f"no measured data for {spec.name}; the data covers {', '.join(devices)}")
    mine = mine.copy()
    mine["train"] = assign_split(mine, split)  # first: a bad split fails before any simulation
    mine = mark_queued(mine)
    train = mine[mine["train"]]
    params: dict[str, Any] = {"overrides": {}}
    fits = {
        "gemm": lambda p: stage_gemm(spec, train, p),
        "layer": lambda p: stage_layer(spec, train, p),
        "attention": lambda p: stage_attention(spec, train, p),
        "collectives": lambda p: stage_collectives(spec, train, p),
        # serving is fitted on top of everything before it
        "serving": lambda p: _stage_serving_fitted(spec, train, p),
    }
    run = [name for name in fits if name in stages]  # always in this order
    for name in run:
        params = fits[name](params)
    mine["predicted_datasheet"] = predict_all(mine, {spec.name: {}})
    mine["predicted_calibrated"] = predict_all(mine, {spec.name: params})
    profile = build_profile(spec, params, mine, split, run)
    return CalibrationResult(spec.name, split, profile, mine, run)
