"""Tests of roofline calibrate: the fit never sees held-out rows, it reproduces the shipped
profiles, and the held-out errors of the shipped profiles stay within the targets.

Targets (issue 7, held-out rows, calibrated profiles): GEMM MAPE <= 10%, collectives <= 15%,
end-to-end TPOT <= 10%, TTFT <= 15%. TTFT misses its target (see docs/validation.md); its guard
is the achieved value plus a small margin, so that a regression still fails. End to end is the
serving simulator with the overheads calibrate's serving stage fits (measured 2026-11-29, size
split: TPOT 9.0%, TTFT 28.1%; the retired per-recipe regression it replaced: 7.2% and 18.4%).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roofline.hardware import load_hardware
from roofline.validation import (
    TARGETS,
    assign_split,
    calibrate_device,
    list_profiles,
    load_profile,
    profile_params,
)

from .conftest import _cases, _validation, needs_data

#: Guards: target where it is met, achieved (docs/validation.md) plus a margin where it is not.
GUARDS = {
    "gemm": TARGETS["gemm"],  # achieved 7.7
    "collective": TARGETS["collective"],  # achieved 9.5 (9.6 before the NVLS launch fix and the all-to-all regime)
    "e2e_tpot": TARGETS["e2e_tpot"],  # achieved 7.8 (8.6 before NVFP4's quantize kernels and the harness term)
    "e2e_ttft": 27.0,  # target 15 missed: achieved 24.9 (26.1 before), guarded at 27
}
#: Per-device guards (same rule): device -> family -> MAPE.
DEVICE_GUARDS = {
    "a100-sxm-80gb": {"gemm": 10.0, "collective": 15.0},
    "h100-sxm": {"gemm": 10.0, "collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 32.0},  # TPOT 8.0, TTFT 30.0
    "h200-sxm": {"gemm": 10.0, "collective": 15.0, "e2e_tpot": 12.0, "e2e_ttft": 34.0},  # TPOT 10.9, TTFT 31.6
    "b200": {"collective": 15.0, "e2e_tpot": 10.0, "e2e_ttft": 15.0},  # TPOT 5.5, TTFT 8.8 (targets met)
}


# -- the fit never sees held-out rows ----------------------------------------------------------

def _gemm_cases(device: str) -> pd.DataFrame:
    c = _cases()
    return c[(c["device"] == device) & (c["dataset"] == "aiconfigurator/gemm")].reset_index(drop=True)


@needs_data
@pytest.mark.parametrize("device, kinds, stage", [("h200-sxm", ("gemm",), "gemm"),
                                                  ("b200", ("ttft", "tpot"), "serving")])
def test_held_out_measurements_do_not_change_the_fit(device, kinds, stage):
    """Scaling every held-out measurement by 10 leaves the fitted parameters exactly as they were:
    the stages receive the training rows only (the serving stage: its overheads per framework)."""
    c = _cases()
    cases = c[(c["device"] == device) & c["kind"].isin(kinds)]
    cases = cases[cases["dataset"] == "aiconfigurator/gemm"] if stage == "gemm" else cases
    cases = cases.reset_index(drop=True)
    a = calibrate_device(device, cases, stages=(stage,))
    held = ~assign_split(cases, "size")
    tampered = cases.copy()
    tampered.loc[held, "measured_s"] *= 10.0
    b = calibrate_device(device, tampered, stages=(stage,))
    strip = ("provenance", "errors")
    assert {k: v for k, v in a.profile.items() if k not in strip} == \
        {k: v for k, v in b.profile.items() if k not in strip}
    if stage == "serving":
        assert set(a.profile["serving"]) == {"any", "trtllm", "vllm"}
    # ... while the reported held-out error does see them
    assert a.summary()["mape_calibrated"].max() < b.summary()["mape_calibrated"].max()


@needs_data
def test_train_and_held_out_rows_are_disjoint_and_reported_apart():
    cases = _gemm_cases("a100-sxm-80gb")
    r = calibrate_device("a100-sxm-80gb", cases, stages=("gemm",))
    train = r.cases["train"].to_numpy()
    assert train.any() and (~train).any()
    assert r.profile["provenance"]["train_rows"] == train.sum()
    assert r.profile["provenance"]["blas"].split()[0] in ("openblas", "mkl", "blis", "accelerate", "flexiblas")
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
    or the data that moves them needs a new `roofline calibrate` run.

    What the data determines is pinned, not the digits of a flat direction: the optimizer's path
    follows the BLAS kernel (OpenBLAS's SkylakeX and Haswell kernels, picked by the CPU, split
    the step overhead of B200's pooled fit 0.0335 + 0.509 us per sequence against 0.0311 + 0.555:
    0.9% apart at 64 sequences), so the scales and the request overhead are pinned to 0.5% and the
    per-step overhead at the batches measured to 2%."""
    shipped = load_profile("b200")
    r = calibrate_device("b200", _cases(), split=shipped["provenance"]["split"])
    for key in ("link_latency_us", "link_efficiency"):
        assert r.profile[key] == pytest.approx(shipped[key], rel=0.02), key
    assert set(r.profile["serving"]) == set(shipped["serving"])
    for framework, fitted in shipped["serving"].items():
        got = r.profile["serving"][framework]
        assert got["train_rows"] == fitted["train_rows"], framework
        for key in ("decode_scale", "prefill_scale", "moe_prefill_scale", "request_overhead_ms"):
            assert got[key] == pytest.approx(fitted[key], rel=5e-3), (framework, key)
        for batch in (1, 8, 64):  # ms a step pays beyond its kernels, at TP 1 and TP 8
            for extra_tp in (0, 7):
                step = [p["step_overhead_ms"] + p["seq_overhead_us"] * batch / 1e3 + p["tp_step_overhead_ms"] * extra_tp
                        for p in (got, fitted)]
                assert step[0] == pytest.approx(step[1], rel=0.02, abs=5e-3), (framework, batch, extra_tp)


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
def test_datasheet_serving_is_optimistic():
    """What the fitted overheads correct: the serving simulator on the datasheet spec without
    software overheads (``roofline serve --datasheet``) under-predicts both TPOT (no scheduler,
    sampling or per-sequence cost) and TTFT (no request overhead: API server, tokenisation)."""
    fam = _validation().family_summary().set_index("family")
    assert fam.loc["e2e_tpot", "bias_datasheet"] < -10
    assert fam.loc["e2e_ttft", "bias_datasheet"] < -30
    assert abs(fam.loc["e2e_ttft", "bias_calibrated"]) < abs(fam.loc["e2e_ttft", "bias_datasheet"])


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


# -- end to end: the serving stage ---------------------------------------------------------------

def _e2e_cases(device: str) -> pd.DataFrame:
    c = _cases()
    return c[(c["device"] == device) & c["kind"].isin(["ttft", "tpot"])].reset_index(drop=True)


def _both_kinds(cases: pd.DataFrame, concurrency: int, n: int) -> pd.DataFrame:
    """The TTFT and the TPOT case of the first ``n`` configurations at ``concurrency``."""
    ttft = cases[(cases["kind"] == "ttft") & (cases["concurrency"] == concurrency)].iloc[:n]
    tpot = cases[cases["case_id"].isin(ttft["case_id"].str.replace(":ttft:", ":tpot:"))]
    assert len(tpot) == n
    return pd.concat([ttft, tpot]).reset_index(drop=True)


@needs_data
def test_serving_rows_read_the_e2e_file_as_the_serving_fit_does():
    """The case table's end-to-end rows, as serving rows, carry the configuration the serving fit
    reads from the same file (dtype, KV dtype, parallelism): the two readings may not drift apart.
    The fit leaves out the 7 rows that record no concurrency (``aiconfigurator_concurrency_known``);
    the case table keeps every row, in the file's order."""
    from roofline.validation._data import resolve_data_dir
    from roofline.validation._serving_cases import serving_rows
    from roofline.validation._serving_fit import aiconfigurator_concurrency_known, load_serving_rows

    c = _cases()
    ttft = c[c["kind"] == "ttft"]
    mine = serving_rows(ttft[ttft["dataset"] == "aiconfigurator/e2e"]).reset_index(drop=True)
    e = pd.read_csv(resolve_data_dir(None) / "aiconfigurator" / "e2e_silicon_dense_models.csv")
    assert len(mine) == len(e) == 1042
    mine = mine[aiconfigurator_concurrency_known(e).to_numpy()].reset_index(drop=True)
    fit = load_serving_rows(keep_duplicates=True)  # the reading of every row, copies of InferenceX included
    fit = fit[fit["dataset"] == "aiconfigurator"].reset_index(drop=True)
    cols = ["model", "device", "framework", "dtype", "weight_dtype", "kv_dtype", "op_dtypes", "tp", "ep",
            "attention_dp", "isl", "osl", "concurrency"]
    assert len(mine) == len(fit) == 1035
    pd.testing.assert_frame_equal(mine[cols].astype(str), fit[cols].astype(str))


@needs_data
def test_simulated_features_are_the_serving_fits_on_the_given_spec_and_kept(monkeypatch):
    """Features of a spec are serving_features on that spec, simulated once per configuration:
    the TTFT and TPOT case of one configuration, and a second call, cost no new simulation."""
    from roofline.fitted import calibrated_hardware
    from roofline.hardware import load_hardware
    from roofline.validation import _serving_cases
    from roofline.validation._serving_fit import serving_features

    cases = _both_kinds(_e2e_cases("h200-sxm"), 4, 3)  # three configurations, a TTFT and a TPOT each
    rows = _serving_cases.serving_rows(cases)
    hw = calibrated_hardware("h200-sxm")
    monkeypatch.setattr(_serving_cases, "_FEATURES", {})  # an empty memo, the session's kept
    calls = []
    monkeypatch.setattr(_serving_cases, "serving_features",
                        lambda r, **kw: calls.append(len(r)) or serving_features(r, **kw))
    first = _serving_cases.simulated_features(rows, hw)
    again = _serving_cases.simulated_features(rows, hw)
    assert calls == [3]
    pd.testing.assert_frame_equal(first, again)
    direct = serving_features(rows, hardware={"h200-sxm": hw})
    np.testing.assert_allclose(first.to_numpy(float), direct.to_numpy(float), rtol=1e-12)
    # another spec is another simulation, with other step times
    datasheet = _serving_cases.simulated_features(rows, load_hardware("h200-sxm"))
    assert calls == [3, 3]
    assert not np.allclose(datasheet["tpot_decode"], first["tpot_decode"])


@needs_data
def test_e2e_prediction_by_hand():
    """predict_all's TPOT of a case = k_d x decode ms + k_p x prefill ms + s x steps + s_seq x
    sequence-steps (per output token, from the simulated benchmark), in seconds; its TTFT adds the
    request overhead and the wait for the running step (half a mean step, rescaled to the analytic
    model's renewal-residual law at these overheads: step_wait_multiplier)."""
    from roofline.fitted import calibrated_hardware
    from roofline.serving.overheads import Overheads
    from roofline.validation._predict_cases import predict_all
    from roofline.validation._serving_cases import serving_rows, simulated_features
    from roofline.validation._serving_fit import step_wait_multiplier

    cases = _both_kinds(_e2e_cases("b200"), 16, 1)
    o = {"decode_scale": 1.1, "prefill_scale": 1.5, "step_overhead_ms": 2.0, "seq_overhead_us": 20.0,
         "request_overhead_ms": 30.0, "moe_prefill_scale": 1.0}
    params = profile_params(load_profile("b200")) | {"serving": {"any": o}}
    got = predict_all(cases, {"b200": params})
    rows = serving_rows(cases)
    f = simulated_features(rows, calibrated_hardware("b200"))
    law = step_wait_multiplier(f, Overheads(**o), np.zeros(len(f)), rows["tp"])
    assert np.all(law > 0) and not np.allclose(law, 1.0)  # the law moves the wait
    for i, kind in enumerate(cases["kind"]):
        r = f.iloc[i]
        tpot_ms = 1.1 * r["tpot_decode"] + 1.5 * r["tpot_prefill"] + 2.0 * r["tpot_step"] + 20.0 * r["tpot_seq"]
        wait_ms = law[i] * (1.1 * r["wait_decode"] + 1.5 * r["wait_prefill"] + 2.0 * r["wait_step"]
                            + 20.0 * r["wait_seq"])
        ttft_ms = (1.1 * r["ttft_decode"] + 1.5 * r["ttft_prefill"] + 2.0 * r["ttft_step"] + 20.0 * r["ttft_seq"]
                   + 30.0 + wait_ms)
        want = (ttft_ms if kind == "ttft" else tpot_ms) * 1e-3
        assert got[i] == pytest.approx(want, rel=1e-9)
    # with no serving section: the datasheet serving roofline (no overheads, no step wait)
    bare = predict_all(cases, {"b200": {}})
    ds = simulated_features(serving_rows(cases), load_hardware("b200"))
    tpot_s = (ds["tpot_decode"] + ds["tpot_prefill"]).to_numpy() * 1e-3
    ttft_s = (ds["ttft_decode"] + ds["ttft_prefill"]).to_numpy() * 1e-3
    np.testing.assert_allclose(bare, np.where(cases["kind"] == "ttft", ttft_s, tpot_s), rtol=1e-9)


@needs_data
def test_saturated_ttft_rows_are_classified_before_the_measurement():
    """e2e_ttft_queued: TTFT cases whose simulated benchmark (datasheet spec) keeps the mean
    running batch below 90% of the concurrency; the measurement plays no part, and the TPOT case
    of the same configuration stays in e2e_tpot."""
    from roofline.validation._predict_cases import mark_queued

    cases = _e2e_cases("b200")
    marked = mark_queued(cases.copy())
    queued = marked["family"] == "e2e_ttft_queued"
    assert queued.any() and (marked.loc[queued, "kind"] == "ttft").all()
    tampered = cases.copy()
    tampered["measured_s"] = 1.0
    assert (mark_queued(tampered)["family"] == "e2e_ttft_queued").equals(queued)
    # a saturated server: Llama-3.1-70B at high concurrency with long sequences
    assert marked.loc[queued, "concurrency"].min() >= 32


def test_profile_with_an_unknown_serving_key_is_one_error():
    """A profile written before the serving stage moved (the retired regression's coefficients)
    is refused with the key and what is allowed."""
    from roofline.exceptions import SpecError
    from roofline.validation._predict_cases import _overheads

    with pytest.raises(SpecError, match=r"serving\.vllm\.prefill_interference: unknown key; allowed: .*decode_scale"):
        _overheads("h100-sxm", {"vllm": {"decode_scale": 1.0, "prefill_interference": 0.9}})
    assert _overheads("h100-sxm", {"vllm": {"decode_scale": 1.2, "train_rows": 10}})["vllm"].decode_scale == 1.2


def test_blas_provenance_does_not_depend_on_the_load_order(monkeypatch):
    # numpy's and scipy's OpenBLAS come in the order they were loaded: the shipped profiles of one
    # machine recorded the same two kernels in both orders (h100-sxm and b200)
    import threadpoolctl

    from roofline.validation._profile_build import blas_kernel

    libs = [{"user_api": "blas", "internal_api": "openblas", "version": v, "architecture": "SkylakeX"}
            for v in ("0.3.31.188.0", "0.3.30")]
    libs.append({"user_api": "openmp", "internal_api": "openmp", "version": None})
    kernels = []
    for order in (libs, libs[::-1], libs + libs[:1]):
        monkeypatch.setattr(threadpoolctl, "threadpool_info", lambda order=order: order)
        kernels.append(blas_kernel())
    assert kernels == ["openblas 0.3.30 SkylakeX, openblas 0.3.31.188.0 SkylakeX"] * 3
