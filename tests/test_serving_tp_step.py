"""The per-step cost of the TP workers (``tp_step_overhead_ms``): its column in the serving fit,
how the evaluators fold it into the step overhead, and the overheads file's key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roofline import Parallelism, Workload, load_hardware, load_model
from roofline.exceptions import SpecError
from roofline.fitted import SoftwareOverheads, load_software_overheads
from roofline.serving import Overheads, ServingSetup, engine_defaults
from roofline.validation._serving_fit import _design, extra_tp_workers, fit_overheads, predict_rows

#: one dense row: TTFT features 10 ms decode, 40 ms prefill, 5 steps, 0.05 sequence-steps (x 1e-3);
#: the wait for the running step half a step of 2 ms decode, 1 ms prefill, 0.5 step, 0.008
_ROW = {"ttft_decode": 10.0, "ttft_prefill": 40.0, "ttft_step": 5.0, "ttft_seq": 0.05,
        "tpot_decode": 8.0, "tpot_prefill": 1.0, "tpot_step": 1.0, "tpot_seq": 0.016,
        "wait_decode": 2.0, "wait_prefill": 1.0, "wait_step": 0.5, "wait_seq": 0.008}


def test_extra_tp_workers_is_zero_at_tp_1():
    assert extra_tp_workers(np.array([1, 2, 4, 8])).tolist() == [0.0, 1.0, 3.0, 7.0]


def test_the_tp_column_is_the_step_features_times_the_extra_workers():
    f = pd.DataFrame([_ROW, _ROW])
    tpot, ttft = _design(f, np.zeros(2), tp=np.array([1, 4]))
    # TP 1: nothing; TP 4: 3 workers x (5 steps + the half step's 0.5) = 16.5 in TTFT, 3 x 1 in TPOT
    assert ttft[:, 6].tolist() == [0.0, 16.5] and tpot[:, 6].tolist() == [0.0, 3.0]
    # without tp (None): TP 1 everywhere
    assert not _design(f, np.zeros(2))[1][:, 6].any()


def test_predictions_add_the_tp_workers_cost_per_step():
    f = pd.DataFrame([_ROW, _ROW])
    o = Overheads(request_overhead_ms=20.0, tp_step_overhead_ms=0.1)
    ttft, tpot = predict_rows(f, o, tp=np.array([1, 8]))
    # TP 1: 10 + 40 + 20 + the half step's 2 + 1 = 73 ms; TP 8: + 0.1 x 7 x 5.5 = 3.85 ms
    assert ttft == pytest.approx([73.0, 76.85])
    # TPOT: 8 + 1 = 9 ms; TP 8: + 0.1 x 7 x 1 = 0.7 ms
    assert tpot == pytest.approx([9.0, 9.7])


def test_the_fit_recovers_a_tp_workers_cost():
    # rows at TP 1, 2, 4, 8 made with s = 0.3 ms and s_tp = 0.1 ms: the fit finds both
    rng = np.random.default_rng(0)
    n = 64
    f = pd.DataFrame({k: rng.uniform(0.5, 1.5, n) * v for k, v in _ROW.items()})
    tp = np.tile([1, 2, 4, 8], n // 4)
    rows = pd.DataFrame({"model": "llama-3.1-70b", "tp": tp, "saturated": False})
    truth = Overheads(decode_scale=1.1, prefill_scale=1.2, step_overhead_ms=0.3, seq_overhead_us=10.0,
                      request_overhead_ms=40.0, tp_step_overhead_ms=0.1)
    rows["ttft_ms"], rows["tpot_ms"] = predict_rows(f, truth, tp=tp)
    o = fit_overheads(rows, f)
    assert o.step_overhead_ms == pytest.approx(0.3, rel=1e-3)
    assert o.tp_step_overhead_ms == pytest.approx(0.1, rel=1e-3)


def test_for_parallelism_folds_the_cost_into_the_step_overhead_once():
    o = SoftwareOverheads(step_overhead_ms=0.2, tp_step_overhead_ms=0.1)
    at8 = o.for_parallelism(8)
    # 0.2 + 7 x 0.1 = 0.9 ms per step
    assert at8.step_overhead_ms == pytest.approx(0.9) and at8.tp_step_overhead_ms == 0.0
    assert at8.for_parallelism(8) == at8  # idempotent
    assert o.for_parallelism(1).step_overhead_ms == 0.2
    plain = SoftwareOverheads(step_overhead_ms=0.2)
    assert plain.for_parallelism(8) is plain


def test_a_serving_setup_applies_the_cost_of_its_tp_group():
    m, hw = load_model("llama-3.1-70b"), load_hardware("h100-sxm")
    o = Overheads(step_overhead_ms=0.2, tp_step_overhead_ms=0.1, source="test")
    setup = ServingSetup(m, hw, Workload.for_model(m, "fp8"), Parallelism(tp=4), engine_defaults("vllm"), o)
    # 0.2 + 3 x 0.1 = 0.5 ms
    assert setup.overheads.step_overhead_ms == pytest.approx(0.5) and setup.overheads.source == "test"


def test_the_shipped_file_has_the_tp_workers_cost_for_every_framework():
    for fw in ("any", "vllm", "sglang", "trtllm"):
        assert load_software_overheads(fw).tp_step_overhead_ms >= 0.0


def test_a_negative_tp_workers_cost_is_refused(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("frameworks:\n  vllm:\n    tp_step_overhead_ms: -1\n")
    with pytest.raises(SpecError, match=r"frameworks\.vllm\.tp_step_overhead_ms: expected a finite number >= 0"):
        load_software_overheads("vllm", path)
