"""Calibration stage of end-to-end serving: TTFT/TPOT -> the software overheads of the public
serving stage per framework (:func:`roofline.validation._serving_fit.fit_by_framework`: decode
and prefill scale, step, per-sequence and request overhead, ``any`` and each framework with at
least 8 unsaturated rows), fitted over the simulated benchmark of each **training** row on the
hardware being calibrated (the kernel and collective stages' values; the caller passes it).

The shipped ``serving_specs/fitted_overheads.yaml`` is fitted on every row, the held-out ones
included, so a calibration never uses it. Saturated rows (``e2e_ttft_queued``, classified from
the model before looking at the measurement) are never fitted.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._serving_cases import paired_rows, simulated_features
from roofline.validation._serving_fit import fit_by_framework

__all__ = ["stage_serving"]


def stage_serving(hw: HardwareSpec, train: pd.DataFrame, base: dict[str, Any]) -> dict[str, Any]:
    """Overheads per framework (``base["serving"]``: framework -> the fields of
    :class:`roofline.serving.Overheads`, ``harness_ttft_ms`` when not 0
    (:class:`~roofline.validation._serving_fit.FittedOverheads`) and ``train_rows``); ``base`` unchanged without an
    unsaturated training row."""
    rows = paired_rows(train)
    if not (~rows["saturated"]).any():
        return base
    fits = fit_by_framework(rows, simulated_features(rows, hw))
    ok = ~rows["saturated"]
    base["serving"] = {
        # the gap-analysis harness's TTFT only where the training rows had such rows
        fw: {k: v for k, v in asdict(o).items() if k != "source" and (k != "harness_ttft_ms" or v)}
        | {"train_rows": int((ok & ((rows["framework"] == fw) | (fw == "any"))).sum())}
        for fw, o in fits.items()}
    return base
