"""Calibration stage of end-to-end serving: TTFT/TPOT -> the serving-model coefficients per
framework (see :mod:`roofline.validation._serving`), fitted on top of ``predict`` with the
kernel and collective stages' values (the caller passes the profiled hardware)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._serving import SERVING_PARAMS, TPOT_PARAMS, TTFT_PARAMS, e2e_features

__all__ = ["stage_serving"]


def _fit_linear(F: np.ndarray, f0: np.ndarray, y: np.ndarray, names: Sequence[str]) -> dict[str, float]:
    """Non-negative coefficients of y ~ F @ x + f0 minimising relative error (NNLS, convex),
    then polished with a soft-L1 loss on log(predicted / measured), within SERVING_PARAMS bounds."""
    from scipy.optimize import least_squares, nnls

    lo = np.array([SERVING_PARAMS[n][1] for n in names])
    hi = np.array([SERVING_PARAMS[n][2] for n in names])
    x, _ = nnls(F / y[:, None], 1.0 - f0 / y)
    x = np.clip(x, lo + 1e-9, hi - 1e-9)
    res = least_squares(lambda z: np.log(np.maximum(F @ z + f0, 1e-9) / y), x, bounds=(lo, hi),
                        loss="soft_l1", f_scale=0.1)
    return {n: float(v) for n, v in zip(names, res.x)}


def stage_serving(hw: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Serving coefficients per framework, recipe and release (``base["serving"]``)."""
    from roofline.validation._serving import recipe_keys, serving_design

    sub = train[train["kind"].isin(["ttft", "tpot"]) & (train["family"] != "e2e_ttft_queued")]
    if sub.empty:
        return base
    feats = e2e_features(sub, hw)
    serving: dict[str, dict[str, float]] = {}
    keys = [recipe_keys(b, v, p) for b, v, p in zip(sub["backend"].astype(str), sub["backend_version"].astype(str),
                                                    sub["precision"].astype(str))]
    groups = []
    for level in (3, 2, 1, 0):  # any, framework, framework/recipe, release/recipe
        labels = pd.Series([k[level] for k in keys], index=sub.index)
        groups += list(sub.groupby(labels))
    for backend, g in groups:
        tp, tt = g[g["kind"] == "tpot"], g[g["kind"] == "ttft"]
        if len(tp) < 8 or len(tt) < 8:
            continue
        F, f0 = serving_design(feats.loc[tp.index], tp, "tpot")
        coef = _fit_linear(F, f0, tp["measured_s"].to_numpy(), TPOT_PARAMS)
        F, _ = serving_design(feats.loc[tt.index], tt, "tpot")
        tpot = F @ np.array([coef[n] for n in TPOT_PARAMS])
        F, f0 = serving_design(feats.loc[tt.index], tt, "ttft", tpot)
        coef |= _fit_linear(F, f0, tt["measured_s"].to_numpy(), TTFT_PARAMS)
        coef["train_rows"] = int(len(g))
        serving[backend] = coef
    base["serving"] = serving
    return base
