"""AIConfigurator rows that repeat an InferenceX measurement enter the serving fit once, as the
InferenceX row (``_serving_fit.aiconfigurator_duplicates``): the scenario columns equal and TTFT
and TPOT within 1e-5 relative (AIConfigurator prints InferenceX's means to 6 significant digits)."""

from __future__ import annotations

import pandas as pd

from roofline.validation._serving_fit import DUPLICATE_RTOL, aiconfigurator_duplicates
from tests.conftest import needs_data


def _row(concurrency: int, ttft_ms: float, tpot_ms: float, device: str = "h200-sxm") -> dict:
    return {"model": "llama-3.1-70b", "device": device, "framework": "vllm", "isl": 1024, "osl": 1024,
            "concurrency": concurrency, "ttft_ms": ttft_ms, "tpot_ms": tpot_ms}


def test_a_copy_printed_to_six_digits_is_a_duplicate_and_a_near_value_is_not():
    inferencex = pd.DataFrame([_row(4, 121.30773, 17.40722), _row(8, 150.24964, 18.22075),
                               _row(16, 176.25730, 16.47596)])
    aiconfigurator = pd.DataFrame([
        _row(4, 121.308, 17.4072),                   # 6 digits: |121.308/121.30773 - 1| = 2.2e-6
        _row(8, 150.250, 18.2208),                   # 18.2208/18.22075 - 1 = 2.7e-6
        _row(16, 176.257, 16.4892),                  # TPOT 8.0e-4 off: another measurement
        _row(4, 121.308, 17.4072, device="h100-sxm"),  # another device
        _row(32, 121.308, 17.4072),                  # another concurrency
    ], index=[10, 11, 12, 13, 14])
    dup = aiconfigurator_duplicates(inferencex, aiconfigurator)
    assert list(dup.index) == [10, 11, 12, 13, 14]
    assert dup.tolist() == [True, True, False, False, False]
    assert 5e-6 < DUPLICATE_RTOL < 4e-4  # above 6-digit rounding, below the closest non-copy (4.3e-4)


@needs_data
def test_the_loader_drops_exactly_the_118_repeated_aiconfigurator_rows():
    from roofline.validation._serving_fit import load_serving_rows

    every = load_serving_rows(keep_duplicates=True)
    dropped = every[every["duplicate"]]
    # measured 2026-11-29: 118 rows, all Llama-3.1-70B fp8, 1k/1k and 8k/1k, concurrency 4-128
    assert len(dropped) == 118 and set(dropped["dataset"]) == {"aiconfigurator"}
    assert dropped.groupby(["device", "framework"]).size().to_dict() == {
        ("h100-sxm", "vllm"): 30, ("h200-sxm", "trtllm"): 48, ("h200-sxm", "vllm"): 40}
    assert set(dropped["model"]) == {"llama-3.1-70b"} and set(dropped["isl_osl"]) == {"1024/1024", "8192/1024"}
    # each has its InferenceX twin at the same TP
    key = ["model", "device", "framework", "tp", "isl", "osl", "concurrency"]
    twins = dropped.merge(every[every["dataset"] == "inferencex"], on=key, suffixes=("", "_x"))
    twins = twins[((twins["ttft_ms"] / twins["ttft_ms_x"] - 1).abs() < DUPLICATE_RTOL)
                  & ((twins["tpot_ms"] / twins["tpot_ms_x"] - 1).abs() < DUPLICATE_RTOL)]
    assert len(twins) == 118
    rows = load_serving_rows()
    assert len(rows) == len(every) - 118 and "duplicate" not in rows.columns
    assert rows["dataset"].value_counts().to_dict() == {"aiconfigurator": 917, "inferencex": 374}
