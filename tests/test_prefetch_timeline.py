"""One prefetch timeline: the prefetch stream uses HBM whenever the compute stream leaves it idle,
with the same rule for the collective and the operators, and a switch for the launch gaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline.graph import Segment, _Op, _to_table
from roofline.prefetch import segment_prefetch
from roofline.timing import HardwareArrays, OpTimes

BW, L2_BW, LAUNCH = 1e12, 1e13, 2e-6
W1, W2, COMM = 4e6, 6e6, 1e6


def _segment(gap_fraction: float, collective_s: float):
    """A 5 us (+ 2 us launch) collective, then two memory-bound GEMMs of 4 and 6 MB with a 2 us
    launch each, HBM at 1 TB/s."""
    ops = [_Op("allreduce", "collective", 1, 1, collective="allreduce", comm_bytes=COMM, group=8),
           _Op("gemm1", "gemm", 1, 1, weight_bytes=W1), _Op("gemm2", "gemm", 1, 1, weight_bytes=W2)]
    table = _to_table("decode", ops, (Segment("s", 0, (1, 2), 1, 1),), 1, 1, 1)
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=100,
                                  l2_bandwidth_GBps=L2_BW / 1e9, launch_overhead_us=LAUNCH * 1e6,
                                  prefetch_threshold_fraction=1.0, prefetch=True,
                                  prefetch_launch_gap_fraction=gap_fraction)
    hbm = np.array([[0.0], [W1], [W2]])
    times = OpTimes(compute_s=np.zeros((3, 1)), memory_s=hbm / BW,
                    total_s=np.array([[collective_s + LAUNCH], [W1 / BW + LAUNCH], [W2 / BW + LAUNCH]]),
                    flops=np.zeros((3, 1)), hbm_bytes=hbm, l2_bytes=np.zeros((3, 1)),
                    kv_read_bytes=np.zeros((3, 1)), hbm_Bps_eff=np.array([BW]))
    return segment_prefetch(table, hw, times)


def test_no_gap_is_usable_by_hand() -> None:
    # g = 0: during the collective only its 5 us wire time: 5e6 - 3e6 (its own traffic) = 2e6 B
    # arrive; the other 8e6 B spill. All 10e6 B fit in L2, so the operators read them at 10 TB/s:
    # 1 us + 2 x 2 us launch = 5 us. HBM busy: the 8e6 B spill / 1 TB/s + 2 x 2 us unusable gaps
    # = 12 us. The segment takes 12 us against 4 + 6 + 2 x 2 = 14 us.
    pf = _segment(0.0, 5e-6)
    assert pf.prefetched_bytes[0, 0] == pytest.approx(2e6)
    assert pf.base_s[0, 0] == pytest.approx(14e-6)
    assert pf.time_s[0, 0] == pytest.approx(12e-6)


def test_every_gap_is_usable_by_hand() -> None:
    # g = 1: the collective's 2 us launch counts too: 7e6 - 3e6 = 4e6 B arrive during it; the
    # 6e6 B spill streams through the operators' launch gaps: HBM busy 6 us, no gap lost;
    # operators 5 us: the segment takes 6 us, 1 us of it waiting on the spill
    pf = _segment(1.0, 5e-6)
    assert pf.prefetched_bytes[0, 0] == pytest.approx(4e6)
    assert pf.time_s[0, 0] == pytest.approx(6e-6)
    assert pf.stall_s[0, 0] == pytest.approx(1e-6)


SETTINGS = settings(max_examples=20, deadline=None)
CASE = st.fixed_dictionaries({
    "model": st.sampled_from(["llama-3-8b", "llama-3-70b"]),
    "hardware": st.sampled_from(["ascend-910b", "h100-sxm", "mi300x"]),
    "batch": st.integers(1, 16),
    "input_len": st.integers(64, 4096),
    "output_len": st.integers(2, 64),
    "tp": st.sampled_from([2, 4, 8]),
    "gaps": st.sampled_from([0.0, 1.0]),
})


def _predict(case, **kw):
    dtype = "int8" if case["hardware"] == "ascend-910b" else "bf16"
    return roofline.predict(case["model"], case["hardware"], batch=case["batch"], input_len=case["input_len"],
                            output_len=case["output_len"], tp=case["tp"], dtype=dtype, check_memory=False,
                            prefetch_launch_gap_fraction=case["gaps"], **kw)


@SETTINGS
@given(CASE)
def test_prefetch_never_slower_and_off_equals_baseline_under_both_switches(case) -> None:
    on, off = _predict(case, prefetch=True), _predict(case, prefetch=False)
    assert on.ttft_s <= off.ttft_s and on.tpot_s <= off.tpot_s
    assert off.ttft_s == off.baseline_ttft_s == on.baseline_ttft_s
    assert off.tpot_s == off.baseline_tpot_s == on.baseline_tpot_s


@SETTINGS
@given(CASE)
def test_usable_gaps_never_lose(case) -> None:
    # the baseline does not depend on the switch; more usable idle time never prefetches less
    no_gaps = _predict({**case, "gaps": 0.0}, prefetch=True)
    gaps = _predict({**case, "gaps": 1.0}, prefetch=True)
    assert gaps.baseline_tpot_s == pytest.approx(no_gaps.baseline_tpot_s, rel=1e-12)  # the exact-mean path may differ in the last bit
    assert gaps.tpot_s <= no_gaps.tpot_s * (1 + 1e-12)


def test_bad_gap_fraction() -> None:
    with pytest.raises(roofline.SpecError, match="at most 1"):
        roofline.predict("llama-3-8b", "h100-sxm", tp=2, prefetch_launch_gap_fraction=1.5)
