"""The knee and SLO definitions of benchmarks/serving_knee.py, on hand-worked sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from benchmarks.serving_knee import (
    SWEEP,
    _admission,
    knee_classes,
    knee_index,
    knee_outcome,
    outcome_counts,
    slo_max_index,
    slo_outcome,
    summary_table,
    sweep_table,
    transient,
    ttft_jumps,
)


def test_a_jump_is_more_than_four_times_across_a_doubling() -> None:
    # 100 -> 400 is 4x exactly (not more: no jump); 400 -> 1601 is 4.0025x (a jump)
    assert ttft_jumps([4, 8, 16], [100.0, 400.0, 1601.0]).tolist() == [False, False, True]


def test_a_four_times_step_needs_eight_times() -> None:
    # 16 -> 64 (x4): 2 x 4 = 8x the previous TTFT, 8,000 ms from 1,000 is not more; 8,001 is
    assert ttft_jumps([16, 64], [1000.0, 8000.0]).tolist() == [False, False]
    assert ttft_jumps([16, 64], [1000.0, 8001.0]).tolist() == [False, True]


def test_the_factor_sets_the_threshold() -> None:
    # 3.5x a doubling: a jump at factor 1.5 (3x), not at 2 (4x)
    assert ttft_jumps([1, 2], [10.0, 35.0], factor=1.5).tolist() == [False, True]
    assert ttft_jumps([1, 2], [10.0, 35.0]).tolist() == [False, False]


def test_missing_ttft_is_no_jump() -> None:
    assert ttft_jumps([4, 8, 16], [100.0, np.nan, 5000.0]).tolist() == [False, False, False]


@pytest.mark.parametrize("concurrency", [[4, 4, 8], [8, 4], [[4, 8]]])
def test_a_sweep_must_increase_strictly(concurrency: list) -> None:
    with pytest.raises(ValueError, match="concurrency"):
        ttft_jumps(concurrency, np.ones(np.shape(concurrency)))


def test_knee_is_the_first_jump() -> None:
    assert knee_index([False, True, False, True]) == 1
    assert knee_index([False, False]) is None
    assert knee_index([]) is None


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1e5), min_size=2, max_size=8, unique=True),
       st.floats(1e-3, 1e3), st.floats(0.1, 1.0))
def test_growth_up_to_proportional_never_jumps(conc: list[float], per_request_ms: float, share: float) -> None:
    # TTFT = a x c^s with s <= 1 grows at most in proportion to concurrency: never a jump
    c = np.sort(np.array(conc))
    assert not ttft_jumps(c, per_request_ms * c ** share).any()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1.0, 1e4), min_size=2, max_size=8, unique=True),
       st.lists(st.floats(1.0, 1e5), min_size=8, max_size=8), st.floats(1e-2, 1e2))
def test_jumps_do_not_depend_on_units(conc: list[float], ttft: list[float], scale: float) -> None:
    # TTFT in other units (x scale) or a grid scaled as a whole: the same jumps
    c = np.sort(np.array(conc))
    t = np.array(ttft[: len(c)])
    # away from the threshold itself, where rounding may fall either way
    margin = t[1:] / (2.0 * c[1:] / c[:-1] * t[:-1])
    assume(np.all(np.abs(margin - 1.0) > 1e-9))
    base = ttft_jumps(c, t)
    assert (ttft_jumps(c, scale * t) == base).all()
    assert (ttft_jumps(scale * c, t) == base).all()


def test_slo_max_takes_the_largest_meeting_both() -> None:
    # c 4..32: TTFT 500, 900, 3000 (breaks 2 s), 1500 ms; TPOT 20, 30, 40, 45 ms: the last meets it
    assert slo_max_index([500, 900, 3000, 1500], [20, 30, 40, 45], 2000, 50) == 3
    # the TPOT bound: 51 ms at the last point breaks it, so the second is the largest meeting both
    assert slo_max_index([500, 900, 3000, 1500], [20, 30, 40, 51], 2000, 50) == 1
    # a bound is met with equality
    assert slo_max_index([2000.0], [50.0], 2000, 50) == 0
    assert slo_max_index([2001.0, 3000.0], [10.0, 10.0], 2000, 50) is None


@pytest.mark.parametrize(("measured", "predicted", "outcome"), [
    (3, 3, "exact"), (3, 2, "1 step early"), (3, 4, "1 step late"), (3, 0, "2+ early"), (1, 4, "2+ late"),
    (3, None, "missed"), (None, 2, "false knee"), (None, None, "none")])
def test_knee_outcome(measured: int | None, predicted: int | None, outcome: str) -> None:
    assert knee_outcome(measured, predicted) == outcome


@pytest.mark.parametrize(("measured", "predicted", "outcome"), [
    (3, 3, "exact"), (3, 2, "1 step low"), (3, 4, "1 step high"), (3, 1, "2+ low"), (0, 2, "2+ high"),
    (3, None, "none predicted"), (None, 0, "none measured"), (None, None, "neither")])
def test_slo_outcome(measured: int | None, predicted: int | None, outcome: str) -> None:
    assert slo_outcome(measured, predicted) == outcome


def test_transient_jump_falls_back() -> None:
    # InferenceX gpt-oss-120b vLLM TP 1 8k/1k: 418, 501, 10,983, 983 ms at c 4..32: the jump at c 16
    # (index 2) falls back to 983 <= 2 x (32 / 8) x 501 = 4,008
    c, t = [4, 8, 16, 32, 64], [417.6, 500.6, 10983.3, 982.6, 1524.0]
    assert knee_index(ttft_jumps(c, t)) == 2
    assert transient(c, t, 2)
    # a queue that lasts: 40,000 ms at c 32 stays above 4,008
    assert not transient(c, [417.6, 500.6, 10983.3, 40000.0, 80000.0], 2)
    # nothing after the jump, or no jump: not transient
    assert not transient(c, t, 4)
    assert not transient(c, t, None)


def _sweep(tp: int, conc: list[int], ttft: list[float], tpot: list[float], pred_ttft: list[float],
           pred_tpot: list[float], sat: list[bool]) -> pd.DataFrame:
    n = len(conc)
    key = {"dataset": "inferencex", "model": "m", "device": "d", "framework": "vllm", "dtype": "fp8",
           "kv_dtype": "fp8", "tp": tp, "ep": 1, "isl": 1024, "osl": 1024}
    return pd.DataFrame({**{k: [v] * n for k, v in key.items()}, "concurrency": conc, "ttft_ms": ttft,
                         "tpot_ms": tpot, "pred_ttft_ms": pred_ttft, "pred_tpot_ms": pred_tpot,
                         "saturated_model": sat, "ttft_jump_flag": [False] * n})


def test_sweep_table_by_hand() -> None:
    # TP 1, c 4, 8, 16, 32 (rows given out of order): measured TTFT 100, 150, 250, 5,000 ms (x20 at 32:
    # the knee); predicted 90, 120, 1,000 (x8.3 at 16: one step early), 3,000; the simulator saturated
    # from 32 (exact). TPOT 20, 30, 45, 60 measured, 20, 30, 40, 55 predicted. SLO TTFT <= 1 s, TPOT <= 50:
    # measured largest c 16 (index 2); predicted 16 too (1,000 <= 1,000 and 40 <= 50): exact.
    # SLO TTFT <= 2 s: the same. TP 2 has one concurrency: left out.
    frame = pd.concat([
        _sweep(1, [32, 4, 16, 8], [5000.0, 100.0, 250.0, 150.0], [60.0, 20.0, 45.0, 30.0],
               [3000.0, 90.0, 1000.0, 120.0], [55.0, 20.0, 40.0, 30.0], [True, False, False, False]),
        _sweep(2, [4], [80.0], [15.0], [70.0], [14.0], [False])], ignore_index=True)
    table = sweep_table(frame, slos_ttft_ms=(1000.0, 2000.0), slo_tpot_ms=50.0)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["concurrencies"] == "4,8,16,32" and row["points"] == 4
    assert (row["knee_measured"], row["knee_predicted"], row["knee_simulator"]) == (32.0, 16.0, 32.0)
    assert np.isnan(row["knee_flagged"]) and not row["knee_transient"]
    assert (row["knee_outcome"], row["simulator_outcome"]) == ("1 step early", "exact")
    assert (row["slo1s_measured"], row["slo1s_predicted"], row["slo1s_outcome"]) == (16.0, 16.0, "exact")
    assert (row["slo2s_measured"], row["slo2s_predicted"], row["slo2s_outcome"]) == (16.0, 16.0, "exact")
    # the TP 1 sweep with a predicted TPOT of 51 at c 16: the prediction meets the SLO only up to c 8
    frame.loc[(frame["tp"] == 1) & (frame["concurrency"] == 16), "pred_tpot_ms"] = 51.0
    row = sweep_table(frame, slos_ttft_ms=(1000.0,)).iloc[0]
    assert (row["slo1s_predicted"], row["slo1s_outcome"]) == (8.0, "1 step low")
    assert list(table.columns[: len(SWEEP)]) == list(SWEEP)


def test_outcome_counts_totals() -> None:
    table = pd.DataFrame({"dataset": ["a", "a", "b"], "framework": ["x", "y", "x"],
                          "o": ["exact", "missed", "exact"]})
    counts = outcome_counts(table, "o", ["dataset", "framework"], ("exact", "1 step early", "missed"))
    assert list(counts.columns) == ["sweeps", "exact", "missed"]  # outcomes that occur, in order
    assert counts.loc[("all", "all")].tolist() == [3, 2, 1]
    assert counts.loc[("a", "y")].tolist() == [1, 0, 1]


def test_admission_swaps_the_fit_modules_vllm_policy_only() -> None:
    from roofline.serving import engine_defaults
    from roofline.validation import _serving_fit as fit

    assert engine_defaults("vllm").kv_admission == "on_demand"
    with _admission("vllm", "reserve"):
        assert fit.engine_defaults("vllm").kv_admission == "reserve"
        assert fit.engine_defaults("sglang").kv_admission == "sglang_ratio"
        # the setup the features are simulated with reads it (not a copy bound elsewhere)
        _, _, setup = fit._setup("llama-3.1-8b", "h100-sxm", "vllm", "bf16", "bf16", "bf16", "", 1, 1, 1, True)
        assert setup.settings.kv_admission == "reserve"
    assert fit.engine_defaults("vllm").kv_admission == "on_demand"
    _, _, setup = fit._setup("llama-3.1-8b", "h100-sxm", "vllm", "bf16", "bf16", "bf16", "", 1, 1, 1, True)
    assert setup.settings.kv_admission == "on_demand"


def test_summary_and_kinds_count_by_hand() -> None:
    # three sweeps of one dataset and framework: a knee found exactly, one missed by a transient stall,
    # none either way. SLO 1 s: exact, one step high, both none (agreement); 2 s and 5 s: exact everywhere
    base = {"dataset": "inferencex", "framework": "vllm", "gap_analysis": False}
    own = pd.DataFrame([
        base | {"knee_measured": 64.0, "knee_transient": False, "knee_outcome": "exact",
                "slo1s_outcome": "exact"},
        base | {"knee_measured": 16.0, "knee_transient": True, "knee_outcome": "missed",
                "slo1s_outcome": "1 step high"},
        base | {"knee_measured": np.nan, "knee_transient": False, "knee_outcome": "none",
                "slo1s_outcome": "neither"}]).assign(slo2s_outcome="exact", slo5s_outcome="exact")
    row = summary_table(own).loc[("inferencex", "vllm")]
    assert (row["sweeps"], row["measured knees"], row["knee exact"], row["knee missed"]) == (3, 2, 1, 1)
    assert row["SLO 1 s: exact / within 1 step"] == "2 / 3"
    assert row["SLO 2 s: exact / within 1 step"] == "3 / 3"
    kinds = knee_classes(own)
    assert kinds.loc[("inferencex", "other"), "exact"] == 1
    assert kinds.loc[("inferencex", "transient (back at the next concurrency)"), "missed"] == 1


def test_readme_names_the_scripts_that_regenerate_the_serving_docs():
    # docs/serving.md's knee section was reachable only from docs/serving.md: the README's serving
    # paragraph named the validation script beside it and not this one
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for script in ("serving_validation.py", "serving_knee.py"):
        assert f"`python benchmarks/{script} OUT`" in readme
