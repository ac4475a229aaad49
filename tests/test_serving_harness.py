"""The TTFT the benchmark harness of AIConfigurator's gap-analysis runs adds (``_serving_fit``:
:func:`aiconfigurator_gap_analysis` names the rows, :func:`fit_overheads` fits an additive ms per
framework on their TTFT jointly with the engine overheads, :func:`harness_ttft_ms` applies it to
those rows only). A user's prediction never reads it: ``serving_specs/fitted_overheads.yaml`` keeps
it outside the ``frameworks`` section that :mod:`roofline.fitted` reads.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline.fitted import OVERHEADS_FILE, SoftwareOverheads, load_software_overheads
from roofline.serving.overheads import Overheads
from roofline.validation._serving_fit import (
    FittedOverheads,
    aiconfigurator_gap_analysis,
    fit_overheads,
    harness_ttft_ms,
)
from tests.conftest import needs_data
from tests.test_serving_fit_robust import TRUE, _params, _rows


def test_the_gap_analysis_rows_are_the_ones_recording_an_engine_version():
    e = pd.DataFrame({"backend_version": ["1.0.0rc3", np.nan, "0.12.0"],
                      "measured_date": [np.nan, "2025-10-29", "2026-01-23"]}, index=[7, 8, 9])
    gap = aiconfigurator_gap_analysis(e)
    assert list(gap.index) == [7, 8, 9]
    assert gap.tolist() == [True, False, True]


def test_the_fit_recovers_an_additive_harness_ttft_and_the_engine_parameters_net_of_it():
    # 40 rows on the linear model at TRUE; the 20 odd ones are gap-analysis rows measuring 150 ms more
    # TTFT: TTFT_gap = k_d (ttft_decode + wait_decode) + k_p ttft_prefill + s (ttft_step + 0.5)
    #   + s_seq ttft_seq + r + 150 ms (hand check of row 1 below)
    rows, feats = _rows(40)
    rows["gap_analysis"] = np.arange(40) % 2 == 1
    rows.loc[rows["gap_analysis"], "ttft_ms"] += 150.0
    f = feats.iloc[1]
    by_hand = (1.1 * (f.ttft_decode + 0.5 * f.tpot_decode) + 1.3 * f.ttft_prefill + 0.6 * (f.ttft_step + 0.5)
               + 12.0 * f.ttft_seq + 40.0 + 150.0)
    assert rows["ttft_ms"].iloc[1] == pytest.approx(by_hand, rel=1e-12)
    o = fit_overheads(rows, feats)
    assert _params(o) == pytest.approx(TRUE, rel=1e-4)
    assert o.harness_ttft_ms == pytest.approx(150.0, rel=1e-4)
    # the same rows without the flag: the 150 ms has nowhere to go but the engine parameters
    assert _params(fit_overheads(rows.drop(columns="gap_analysis"), feats)) != pytest.approx(TRUE, rel=1e-2)


def test_without_gap_analysis_rows_the_harness_term_is_zero():
    rows, feats = _rows(30)
    assert fit_overheads(rows, feats).harness_ttft_ms == 0.0
    rows["gap_analysis"] = False
    assert fit_overheads(rows, feats).harness_ttft_ms == 0.0


def test_when_every_row_is_a_gap_analysis_row_the_request_overhead_takes_the_harness():
    # the two columns are the same (1 ms on every TTFT): the split would be arbitrary, so the
    # harness term is 0 and the request overhead is 40 + 150 ms (roofline calibrate on a device
    # measured only by that harness, H100's TensorRT-LLM rows)
    rows, feats = _rows(30)
    rows["ttft_ms"] += 150.0
    rows["gap_analysis"] = True
    o = fit_overheads(rows, feats)
    assert o.harness_ttft_ms == 0.0
    assert o.request_overhead_ms == pytest.approx(40.0 + 150.0, rel=1e-4)


def test_the_harness_term_lands_on_the_flagged_rows_only():
    o = FittedOverheads(request_overhead_ms=30.0, harness_ttft_ms=70.0)
    rows = pd.DataFrame({"gap_analysis": [True, False, True]})
    assert harness_ttft_ms(rows, o).tolist() == [70.0, 0.0, 70.0]
    assert harness_ttft_ms(rows.drop(columns="gap_analysis"), o).tolist() == [0.0, 0.0, 0.0]
    assert harness_ttft_ms(rows, Overheads(request_overhead_ms=30.0)).tolist() == [0.0, 0.0, 0.0]


def test_a_users_overheads_have_no_harness_term():
    assert "harness_ttft_ms" not in {f.name for f in dataclasses.fields(SoftwareOverheads)}
    assert "harness_ttft_ms" not in {f.name for f in dataclasses.fields(Overheads)}
    data = yaml.safe_load(OVERHEADS_FILE.read_text())
    harness = data["harness"]["gap-analysis"]
    assert "aiconfigurator_gap_analysis" in harness["rows"] and harness["train_rows"] > 0
    assert set(harness["ttft_ms"]) == set(data["frameworks"])
    for fw, entry in data["frameworks"].items():
        assert "harness_ttft_ms" not in entry
        load_software_overheads(fw)  # the reader accepts the file as written


def test_the_case_tables_e2e_rows_are_flagged_by_the_same_rule():
    from roofline.validation._serving_cases import serving_rows

    # the case table writes a blank backend_version as "unversioned"
    cases = pd.DataFrame({
        "model": "llama-3.1-8b", "device": "h100-sxm", "backend": "trtllm", "backend_version": ["1.0.0rc3", "unversioned"],
        "precision": "bf16", "tp": 1, "isl": 1024, "osl": 128, "concurrency": 8, "family": "e2e_ttft"})
    assert serving_rows(cases)["gap_analysis"].tolist() == [True, False]


@needs_data
def test_the_gap_analysis_run_set_is_the_8b_and_32b_rows_and_not_inferencemaxs_date():
    from roofline.validation._data import resolve_data_dir
    from roofline.validation._serving_fit import load_serving_rows

    e = pd.read_csv(resolve_data_dir(None) / "aiconfigurator" / "e2e_silicon_dense_models.csv")
    gap = aiconfigurator_gap_analysis(e)
    # the two readings of the run sets agree: an engine version exactly where InferenceMAX's date is not
    assert (gap == (e["measured_date"] != "2025-10-29")).all()
    assert set(e.loc[gap, "model_path"].str.lower()) == {
        "qwen/qwen3-32b", "meta-llama/llama-3.1-8b-instruct", "nvidia/llama-3.1-8b-instruct-fp8"}
    rows = load_serving_rows()
    # counted 2026-11-30: 601 rows, less the 7 without a concurrency; no InferenceX row
    assert int(rows["gap_analysis"].sum()) == 594
    assert not rows.loc[rows["dataset"] == "inferencex", "gap_analysis"].any()
    assert set(rows.loc[rows["gap_analysis"], "model"]) == {"qwen3-32b", "llama-3.1-8b"}


def test_a_calibrated_profile_carries_its_harness_term_to_validate():
    from roofline.validation._predict_cases import _overheads

    fits = _overheads("h100-sxm", {"trtllm": {"request_overhead_ms": 30.0, "harness_ttft_ms": 70.0, "train_rows": 5},
                                   "vllm": {"request_overhead_ms": 20.0}})
    assert fits["trtllm"].harness_ttft_ms == 70.0 and fits["trtllm"].request_overhead_ms == 30.0
    assert fits["vllm"].harness_ttft_ms == 0.0  # a profile calibrated before the term: none


def test_a_fit_at_zero_request_overhead_keeps_the_wait_it_was_fitted_with():
    # the fit's design always holds the wait for the running step (half a mean step: wait_* features);
    # a profile rounds a request overhead at its bound (1e-9 ms) to 0, which must not drop that wait
    from roofline.validation._serving_fit import _FEATURES, predict_rows

    f = pd.DataFrame(0.0, index=[0], columns=_FEATURES)
    f["ttft_prefill"], f["wait_decode"], f["wait_step"] = 40.0, 4.0, 0.5  # ms, ms, steps
    # TTFT = 1.0 x (0 + 4.0) + 1.0 x 40 + 2 ms x (0 + 0.5) = 45 ms with the wait, 40 without
    o = dict(decode_scale=1.0, prefill_scale=1.0, step_overhead_ms=2.0)
    assert predict_rows(f, FittedOverheads(**o))[0][0] == pytest.approx(45.0)
    assert predict_rows(f, Overheads(**o))[0][0] == pytest.approx(40.0)  # the datasheet model: none
