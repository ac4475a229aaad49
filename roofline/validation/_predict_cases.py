"""Predicted time of every case of the measured data, datasheet or calibrated, for many devices.

Op-level cases go through :func:`roofline.validation._predict.predict_batch`; end-to-end TTFT
and TPOT cases through the serving model when the params carry ``serving`` coefficients, else
``roofline.predict`` for a static batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec, load_hardware
from roofline.validation._predict import build_batches, predict_batch
from roofline.validation._serving import datasheet_e2e, e2e_features, serving_times

__all__ = ["profile_hardware", "mark_queued", "predict_all"]


def profile_hardware(spec: HardwareSpec, params: Mapping[str, Any]) -> HardwareSpec:
    """``spec`` with the global overrides and the efficiency curve of ``params`` applied."""
    from roofline.validation._profile import apply_overrides

    return apply_overrides(spec, params.get("overrides") or {}, params.get("efficiency_curve_m"))


def mark_queued(cases: pd.DataFrame) -> pd.DataFrame:
    """Relabel the family of TTFT cases of saturated servers ``e2e_ttft_queued`` (in place)."""
    from roofline.validation._serving import queued_ttft

    ttft = cases["kind"] == "ttft"
    for device, g in cases[ttft & cases["device"].notna()].groupby("device"):
        q = queued_ttft(g, load_hardware(device))
        cases.loc[g.index[q], "family"] = "e2e_ttft_queued"
    return cases


def predict_all(cases: pd.DataFrame, params_by_device: Mapping[str, Mapping[str, Any] | None]) -> np.ndarray:
    """Predicted seconds of every case (NaN where there is no spec, or no params for a device).

    ``params_by_device`` maps a bundled device name to its params (``{}`` = datasheet values).
    End-to-end cases use the serving model when the params have ``serving`` coefficients, else
    ``roofline.predict`` for a static batch.
    """
    cases = cases.reset_index(drop=True)
    out = np.full(len(cases), np.nan)
    known = cases["device"].isin([d for d, p in params_by_device.items() if p is not None])
    for b in build_batches(cases[known]):
        params = params_by_device[b.device] or {}
        spec = load_hardware(b.device)
        out[cases.index[known][b.index]] = predict_batch(b, spec, params)
    e2e = known & cases["kind"].isin(["ttft", "tpot"])
    for device, g in cases[e2e].groupby("device"):
        params = params_by_device[device] or {}
        spec = load_hardware(device)
        if params.get("serving"):
            hw = profile_hardware(spec, params)
            out[g.index] = serving_times(e2e_features(g, hw), g, params["serving"])
        else:
            out[g.index] = datasheet_e2e(g, spec)
    return out
