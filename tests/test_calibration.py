"""Tests of roofline calibrate: the fit never sees held-out rows, it reproduces the shipped
profiles, and the held-out errors of the shipped profiles stay within the targets.

Targets (issue 7, held-out rows, calibrated profiles): GEMM MAPE <= 10%, collectives <= 15%,
end-to-end TPOT <= 10%, TTFT <= 15%. TTFT misses its target (see docs/validation.md); its guard
is the achieved value plus a small margin, so that a regression still fails.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roofline.validation import (
    TARGETS,
    assign_split,
    calibrate_device,
    list_profiles,
    load_profile,
)

from .conftest import _cases, _validation, needs_data

#: Guards: target where it is met, achieved (docs/validation.md) plus a margin where it is not.
GUARDS = {
    "gemm": TARGETS["gemm"],  # achieved 7.9
    "collective": TARGETS["collective"],  # achieved 10.0
    "e2e_tpot": TARGETS["e2e_tpot"],  # achieved 7.6
    "e2e_ttft": 20.0,  # target 15 missed: achieved 18.6, guarded at 20
}
#: Per-device guards (same rule): device -> family -> MAPE.
DEVICE_GUARDS = {
    "a100-sxm-80gb": {"gemm": 10.0, "collective": 15.0},
    "h100-sxm": {"gemm": 10.0, "collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 19.5},  # TTFT 17.5
    "h200-sxm": {"gemm": 10.0, "collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 27.0},  # TTFT 24.3
    "b200": {"collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 19.5},  # TTFT 17.5
}




# -- the fit never sees held-out rows ----------------------------------------------------------

def _gemm_cases(device: str) -> pd.DataFrame:
    c = _cases()
    return c[(c["device"] == device) & (c["dataset"] == "aiconfigurator/gemm")].reset_index(drop=True)


@needs_data
def test_held_out_measurements_do_not_change_the_fit():
    """Scaling every held-out measurement by 10 leaves the fitted parameters exactly as they were:
    the stages receive the training rows only."""
    cases = _gemm_cases("h200-sxm")
    a = calibrate_device("h200-sxm", cases, stages=("gemm",))
    held = ~assign_split(cases, "size")
    tampered = cases.copy()
    tampered.loc[held, "measured_s"] *= 10.0
    b = calibrate_device("h200-sxm", tampered, stages=("gemm",))
    strip = ("provenance", "errors")
    assert {k: v for k, v in a.profile.items() if k not in strip} == \
        {k: v for k, v in b.profile.items() if k not in strip}
    # ... while the reported held-out error does see them
    assert a.summary()["mape_calibrated"].iloc[0] < b.summary()["mape_calibrated"].iloc[0]


@needs_data
def test_train_and_held_out_rows_are_disjoint_and_reported_apart():
    cases = _gemm_cases("a100-sxm-80gb")
    r = calibrate_device("a100-sxm-80gb", cases, stages=("gemm",))
    train = r.cases["train"].to_numpy()
    assert train.any() and (~train).any()
    assert r.profile["provenance"]["train_rows"] == train.sum()
    assert r.profile["provenance"]["held_out_rows"] == (~train).sum()
    assert r.summary("held_out")["n_calibrated"].sum() == (~train).sum()
    assert r.summary("train")["n_calibrated"].sum() == train.sum()


@needs_data
def test_model_split_holds_out_whole_models():
    c = _cases()
    e2e = c[(c["device"] == "h100-sxm") & c["kind"].isin(["ttft", "tpot"])].reset_index(drop=True)
    r = calibrate_device("h100-sxm", e2e, split="model", stages=("serving",))
    qwen = r.cases["model"] == "qwen3-32b"
    assert not r.cases.loc[qwen, "train"].any() and r.cases.loc[~qwen, "train"].all()


# -- the shipped profiles ------------------------------------------------------------------------

@needs_data
def test_calibration_reproduces_the_shipped_profile():
    """Re-fitting b200 (collectives and serving) gives the shipped numbers: a change to the model
    or the data that moves them needs a new `roofline calibrate` run."""
    shipped = load_profile("b200")
    r = calibrate_device("b200", _cases(), split=shipped["provenance"]["split"])
    for key in ("link_latency_us", "link_efficiency"):
        assert r.profile[key] == pytest.approx(shipped[key], rel=0.02), key
    for recipe, coef in shipped["serving"].items():
        assert r.profile["serving"][recipe]["train_rows"] == coef["train_rows"]


@needs_data
@pytest.mark.parametrize("family", sorted(GUARDS))
def test_held_out_error_guard(family):
    table = _validation().family_summary().set_index("family")
    mape = table.loc[family, "mape_calibrated"]
    assert mape <= GUARDS[family], f"{family}: held-out MAPE {mape:.1f}% exceeds {GUARDS[family]}%"
    # and calibration must help: it beats the datasheet values on the same rows
    assert mape < table.loc[family, "mape_datasheet"]


@needs_data
@pytest.mark.parametrize("device", sorted(DEVICE_GUARDS))
def test_held_out_error_guard_per_device(device):
    assert device in list_profiles()
    table = _validation().summary(by=("family", "device")).set_index(["family", "device"])
    for family, limit in DEVICE_GUARDS[device].items():
        mape = table.loc[(family, device), "mape_calibrated"]
        assert mape <= limit, f"{device} {family}: held-out MAPE {mape:.1f}% exceeds {limit}%"


@needs_data
def test_datasheet_tpot_is_optimistic_and_ttft_is_not_served_batch():
    """What the serving model corrects: a static batch of `concurrency` requests underestimates
    TPOT (no prefill interference, no framework overhead) and hugely overestimates TTFT."""
    fam = _validation().family_summary().set_index("family")
    assert fam.loc["e2e_tpot", "bias_datasheet"] < -10
    assert fam.loc["e2e_ttft", "bias_datasheet"] > 100
    assert np.isfinite(fam.loc["e2e_ttft", "bias_calibrated"])


@needs_data
@pytest.mark.parametrize("device", sorted(DEVICE_GUARDS))
def test_profile_records_the_errors_validate_finds(device):
    """The held-out errors written into a profile are what its (rounded) values give on reload:
    rounding in the YAML must not move a prediction (a threshold rounded from 1048576 to 1048600
    bytes once did)."""
    recorded = pd.DataFrame(load_profile(device)["errors"]["held_out"]["calibrated"])
    table = _validation().summary(by=("family", "dataset", "device")).set_index(["family", "dataset", "device"])
    for row in recorded.itertuples():
        assert table.loc[(row.family, row.dataset, device), "mape_calibrated"] == pytest.approx(row.mape, abs=0.05)
