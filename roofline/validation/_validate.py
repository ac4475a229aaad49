"""``roofline validate``: every case predicted with datasheet values and with the shipped
calibrated profiles; errors on the rows each profile held out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roofline.validation._data import load_cases
from roofline.validation._metrics import error_summary
from roofline.validation._predict_cases import mark_queued, predict_all
from roofline.validation._profile import list_profiles, load_profile, profile_params
from roofline.validation._split import assign_split

__all__ = ["ValidationResult", "run_validation", "TARGETS"]

#: Acceptance targets on held-out rows with calibrated profiles: family -> MAPE (%).
TARGETS = {"gemm": 10.0, "collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 15.0}


@dataclass
class ValidationResult:
    """Cases with predictions and the error tables.

    ``cases`` has, besides the loader's columns, ``predicted_datasheet`` and
    ``predicted_calibrated`` (seconds; NaN when there is no spec or no profile), ``held_out``
    (True where the device's profile did not fit on the row; every row when there is no
    profile) and ``split`` (the profile's split rule).
    """

    cases: pd.DataFrame
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    data_dir: str = ""

    def summary(self, by: Sequence[str] = ("family", "dataset", "device"), *,
                held_out_only: bool = True) -> pd.DataFrame:
        """MAPE, median, worst APE and bias per group, datasheet-only and calibrated, side by side."""
        sub = self.cases[self.cases["predicted_datasheet"].notna()]
        if held_out_only:
            sub = sub[sub["held_out"]]
        ds = error_summary(sub, "predicted_datasheet", by=list(by))
        cal = error_summary(sub[sub["predicted_calibrated"].notna()], "predicted_calibrated", by=list(by))
        return ds.merge(cal, on=list(by), how="left", suffixes=("_datasheet", "_calibrated"))

    def family_summary(self) -> pd.DataFrame:
        """Held-out error per family over every device with a profile (the target table)."""
        sub = self.cases[self.cases["held_out"] & self.cases["predicted_calibrated"].notna()]
        ds = error_summary(sub, "predicted_datasheet", by=["family"])
        cal = error_summary(sub, "predicted_calibrated", by=["family"])
        out = ds.merge(cal, on="family", suffixes=("_datasheet", "_calibrated"))
        out["target_mape"] = out["family"].map(TARGETS)
        return out

    def unpredicted(self) -> pd.DataFrame:
        """Rows left out of every metric, counted per dataset and source device, with the reason."""
        rows = self.cases[self.cases["predicted_datasheet"].isna()]
        out = rows.groupby(["dataset", "source_device"], dropna=False).size().rename("rows").reset_index()
        out["reason"] = "no bundled hardware spec for this device"
        return out


def run_validation(data_dir: str | Path | None = None, *, profiles: Mapping[str, Mapping[str, Any]] | None = None,
                   devices: Sequence[str] | None = None, cases: pd.DataFrame | None = None) -> ValidationResult:
    """Predict every case (datasheet and calibrated) and mark the held-out rows.

    Args:
        data_dir: the validation data folder (default: ``../shared/validation``).
        profiles: device -> loaded profile (default: every shipped profile).
        devices: restrict to these bundled devices.
        cases: the case table, if already loaded.

    Raises:
        SpecError: the data folder is missing or incomplete, an unknown device, or a malformed
            profile.
    """
    if cases is None:
        cases = load_cases(data_dir)
    cases = cases.reset_index(drop=True)
    if devices is not None:
        from roofline.hardware import load_hardware

        devices = [load_hardware(d).name for d in devices]  # SpecError for an unknown name
        cases = cases[cases["device"].isin(devices) | cases["device"].isna()].reset_index(drop=True)
    if profiles is None:
        profiles = {d: load_profile(d) for d in list_profiles()}
    cases = mark_queued(cases.copy())
    known = sorted(cases["device"].dropna().unique())
    cases["predicted_datasheet"] = predict_all(cases, {d: {} for d in known})
    params = {d: profile_params(profiles[d]) if d in profiles else None for d in known}
    cases["predicted_calibrated"] = predict_all(cases, params)
    held = np.ones(len(cases), dtype=bool)
    split = np.array([""] * len(cases), dtype=object)
    for device, prof in profiles.items():
        rows = (cases["device"] == device).to_numpy()
        if not rows.any():
            continue
        how = (prof.get("provenance") or {}).get("split", "size")
        held[rows] = ~assign_split(cases[rows], how)
        split[rows] = how
    cases["held_out"] = held
    cases["split"] = split
    return ValidationResult(cases, dict(profiles), str(data_dir or ""))
