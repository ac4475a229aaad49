"""Predicted time of every case of the measured data, datasheet or calibrated, for many devices.

Op-level cases go through :func:`roofline.validation._predict.predict_batch`; end-to-end TTFT
and TPOT cases through the serving simulator (:mod:`roofline.validation._serving_cases`) on the
device's hardware, with the software overheads of the params' ``serving`` section (fitted by
``roofline calibrate``) or, datasheet, none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from roofline.exceptions import SpecError
from roofline.hardware import HardwareSpec, load_hardware
from roofline.model import load_model
from roofline.serving import Overheads
from roofline.validation._predict import build_batches, predict_batch
from roofline.validation._serving_cases import serving_rows, simulated_features
from roofline.validation._serving_fit import FittedOverheads, predict_rows

__all__ = ["profile_hardware", "mark_queued", "predict_all"]


def profile_hardware(spec: HardwareSpec, params: Mapping[str, Any]) -> HardwareSpec:
    """``spec`` with the global overrides and the efficiency curve of ``params`` applied."""
    from roofline.validation._profile import apply_overrides

    return apply_overrides(spec, params.get("overrides") or {}, params.get("efficiency_curve_m"))


def mark_queued(cases: pd.DataFrame) -> pd.DataFrame:
    """Relabel the family of TTFT cases of saturated servers ``e2e_ttft_queued`` (in place).

    Saturated: in the simulated benchmark on the device's datasheet spec, the mean running batch
    stays below 90% of the concurrency (the KV cache holds fewer sequences; the rest queue), the
    rule of :func:`roofline.validation._serving_fit.mark_saturated`, decided before looking at the
    measurement. Such a TTFT is mostly the admission wait, a property of the scheduler and of how
    many requests the benchmark sends, so it is reported apart and never fitted.
    """
    ttft = cases["kind"] == "ttft"
    for device, g in cases[ttft & cases["device"].notna()].groupby("device"):
        feats = simulated_features(serving_rows(g), load_hardware(device))
        cases.loc[g.index[feats["saturated_model"].to_numpy() > 0], "family"] = "e2e_ttft_queued"
    return cases


def _overheads(device: str, serving: Mapping[str, Any]) -> dict[str, Overheads]:
    """The ``serving`` section of a device's params as :class:`Overheads` per framework, with the
    gap-analysis harness's TTFT its calibration fitted (:class:`FittedOverheads`; 0 if absent)."""
    fields = set(FittedOverheads.__dataclass_fields__) - {"source"}
    out = {}
    for fw, entry in serving.items():
        bad = [k for k in entry if k not in fields and k != "train_rows"]
        if bad:
            raise SpecError(f"calibrated profile of {device}: serving.{fw}.{bad[0]}: unknown key; allowed: "
                            f"{', '.join(sorted(fields))}, train_rows (refit with roofline calibrate)")
        out[str(fw)] = FittedOverheads(**{k: float(v) for k, v in entry.items() if k in fields},
                                       source=f"calibrated ({fw})")
    return out


def _predict_e2e(cases: pd.DataFrame, hw: HardwareSpec, fits: Mapping[str, Overheads]) -> np.ndarray:
    """Seconds of the TTFT or TPOT (by kind) of ``cases`` with the overheads of their framework
    (else ``any``, else none): the serving simulator on ``hw``."""
    rows = serving_rows(cases)
    feats = simulated_features(rows, hw)
    out = np.empty(len(cases))
    is_ttft = (cases["kind"] == "ttft").to_numpy()
    for fw, g in rows.groupby("framework"):
        o = fits.get(str(fw), fits.get("any", Overheads()))
        is_moe = {m: load_model(m).moe is not None for m in g["model"].unique()}
        moe = g["model"].map(is_moe).to_numpy(dtype=float)
        # the gap-analysis rows' harness, as calibrated
        ttft_ms, tpot_ms = predict_rows(feats.loc[g.index], o, moe, g["tp"], g.get("gap_analysis"))
        pos = rows.index.get_indexer(g.index)
        out[pos] = np.where(is_ttft[pos], ttft_ms, tpot_ms) * 1e-3
    return out


def predict_all(cases: pd.DataFrame, params_by_device: Mapping[str, Mapping[str, Any] | None]) -> np.ndarray:
    """Predicted seconds of every case (NaN where there is no spec, or no params for a device).

    ``params_by_device`` maps a bundled device name to its params (``{}`` = datasheet values).
    End-to-end cases go through the serving simulator on the params' hardware, with the
    overheads of their ``serving`` section (none: the datasheet serving roofline).
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
        hw = profile_hardware(load_hardware(device), params) if params else load_hardware(device)
        out[g.index] = _predict_e2e(g, hw, _overheads(device, params.get("serving") or {}))
    return out
