"""Validation and calibration against measured hardware data.

The measured data (``../shared/validation``, reference data read in place) is loaded as one tidy
table of cases; every case is predicted through the model's own timing code, with datasheet
parameters and with calibrated profiles; calibration fits a device's efficiency parameters on a
stated training split and reports the error on the held-out rest only.

Typical use::

    from roofline.validation import calibrate, run_validation, calibrated_hardware
    result = calibrate("h100-sxm")              # fit, write hardware_specs/calibrated/h100-sxm.yaml
    result.summary()                            # held-out errors, datasheet against calibrated
    v = run_validation()                        # every dataset, every shipped profile
    v.family_summary()
    roofline.predict("llama-3-70b", calibrated_hardware("h100-sxm"), tp=8)

See docs/validation.md for the method, the splits and the error table.
"""

from __future__ import annotations

from pathlib import Path

from roofline.validation._calibrate import STAGES, CalibrationResult, calibrate_device
from roofline.validation._data import (
    COLUMNS,
    DEVICE_MAP,
    FAMILIES,
    KINDS,
    MODEL_MAP,
    default_data_dir,
    load_cases,
    load_peak_busbw,
    resolve_data_dir,
)
from roofline.validation._metrics import ape, error_summary, signed_pct_error
from roofline.validation._predict_cases import predict_all
from roofline.validation._profile import (
    PROFILE_DIR,
    apply_overrides,
    calibrated_hardware,
    calibrated_overrides,
    list_profiles,
    load_profile,
    profile_params,
    write_profile,
)
from roofline.validation._report import get_report_info, write_report
from roofline.validation._serving_fit import (
    CHECKPOINT_KEPT_BF16,
    checkpoint_op_dtypes,
    fit_serving,
    serving_report,
)
from roofline.validation._split import HELD_OUT_MODELS, SPLITS, assign_split, describe_split
from roofline.validation._transfer import (
    leave_one_dataset_out,
    leave_one_device_out,
    transfer_collectives,
)
from roofline.validation._validate import TARGETS, ValidationResult, run_validation

__all__ = [
    "CHECKPOINT_KEPT_BF16",
    "COLUMNS",
    "DEVICE_MAP",
    "FAMILIES",
    "HELD_OUT_MODELS",
    "KINDS",
    "MODEL_MAP",
    "PROFILE_DIR",
    "SPLITS",
    "STAGES",
    "TARGETS",
    "CalibrationResult",
    "ValidationResult",
    "apply_overrides",
    "ape",
    "assign_split",
    "calibrate",
    "calibrate_device",
    "calibrated_hardware",
    "calibrated_overrides",
    "checkpoint_op_dtypes",
    "default_data_dir",
    "describe_split",
    "error_summary",
    "fit_serving",
    "get_report_info",
    "leave_one_dataset_out",
    "leave_one_device_out",
    "list_profiles",
    "load_cases",
    "load_peak_busbw",
    "load_profile",
    "predict_all",
    "profile_params",
    "resolve_data_dir",
    "run_validation",
    "serving_report",
    "signed_pct_error",
    "transfer_collectives",
    "write_profile",
    "write_report",
]


def calibrate(device: str, *, data_dir: str | Path | None = None, split: str = "size",
              out: str | Path | None = None, write: bool = True) -> CalibrationResult:
    """Fit ``device`` on the training split of the measured data and write its profile.

    Args:
        device: bundled hardware name (``a100-sxm-80gb``, ``h100-sxm``, ``h200-sxm``, ``b200``).
        data_dir: the validation data folder (default: :func:`default_data_dir`).
        split: ``"size"`` (default) or ``"model"`` (see :func:`describe_split`).
        out: where to write the profile (default: ``hardware_specs/calibrated/<device>.yaml``).
        write: write the profile at all.

    Returns:
        The :class:`CalibrationResult`: ``.profile`` (what was written), ``.cases`` (every case
        of the device with both predictions and its ``train`` flag), ``.summary()``.

    Raises:
        SpecError: unknown device or split, missing data, or no measured data for the device.
    """
    from roofline.hardware import load_hardware

    name = load_hardware(device).name
    result = calibrate_device(name, load_cases(data_dir), split=split)
    if write:
        write_profile(result.profile, out or PROFILE_DIR / f"{name}.yaml")
    return result
