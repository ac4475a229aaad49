"""PRESERVE prefetch model: hand-worked segments for each limit, and the laws it must obey."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline.graph import Segment, _Op, _to_table
from roofline.prefetch import LIMITS, segment_prefetch
from roofline.timing import HardwareArrays, OpTimes

BW = 1e12  # effective HBM bandwidth, bytes/s
L2_BW = 1e13
W1, W2 = 4e6, 6e6  # weight bytes of the two GEMMs after the collective
COMM = 1e6  # all-reduce buffer: the L2 working set; the collective moves 3x this through HBM


def _segment(l2_bytes: float, threshold: float, collective_s: float):
    ops = [_Op("allreduce", "collective", 1, 1, collective="allreduce", comm_bytes=COMM, group=8),
           _Op("gemm1", "gemm", 1, 1, weight_bytes=W1), _Op("gemm2", "gemm", 1, 1, weight_bytes=W2)]
    table = _to_table("decode", ops, (Segment("s", 0, (1, 2), 1, 1),), 1, 1, 1)
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=l2_bytes / 2**20,
                                  l2_bandwidth_GBps=L2_BW / 1e9, launch_overhead_us=0.0,
                                  prefetch_threshold_fraction=threshold, prefetch=True)
    hbm = np.array([[0.0], [W1], [W2]])
    times = OpTimes(compute_s=np.zeros((3, 1)), memory_s=hbm / BW,
                    total_s=np.array([[collective_s], [W1 / BW], [W2 / BW]]), flops=np.zeros((3, 1)),
                    hbm_bytes=hbm, l2_bytes=np.zeros((3, 1)), kv_read_bytes=np.zeros((3, 1)),
                    hbm_Bps_eff=np.array([BW]))
    return segment_prefetch(table, hw, times)


def test_nothing_left_to_fetch() -> None:
    # 20 us collective leaves 20e6 - 3e6 = 17e6 bytes of HBM time: all 10e6 bytes arrive in L2
    pf = _segment(l2_bytes=100e6, threshold=0.5, collective_s=20e-6)
    assert LIMITS[pf.limit[0, 0]] == "nothing_left"
    assert pf.prefetched_bytes[0, 0] == pytest.approx(10e6)
    assert pf.base_s[0, 0] == pytest.approx(10e-6)
    assert pf.time_s[0, 0] == pytest.approx(10e6 / L2_BW)  # 1.0 us: everything read from L2


def test_limited_by_collective_time() -> None:
    # 5 us collective: 5e6 - 3e6 = 2e6 bytes arrive during it; 8e6 spill and keep HBM busy 8 us
    pf = _segment(l2_bytes=100e6, threshold=0.5, collective_s=5e-6)
    assert LIMITS[pf.limit[0, 0]] == "collective_time"
    assert pf.prefetched_bytes[0, 0] == pytest.approx(2e6)
    assert pf.time_s[0, 0] == pytest.approx(8e-6)
    assert pf.saving_s[0, 0] == pytest.approx(2e-6)


def test_limited_by_capacity_with_eviction() -> None:
    # L2 5e6, threshold 100% = 5e6 bytes fetched, but only 4e6 free beside the 1e6 working set:
    # LRU keeps bytes [1e6, 5e6): 3e6 of gemm1 and 1e6 of gemm2
    pf = _segment(l2_bytes=5e6, threshold=1.0, collective_s=20e-6)
    assert LIMITS[pf.limit[0, 0]] == "capacity"
    assert pf.useful_bytes[0, 0] == pytest.approx(4e6)
    gemm1 = 1e6 / BW + 3e6 / L2_BW
    gemm2 = 5e6 / BW + 1e6 / L2_BW
    assert pf.time_s[0, 0] == pytest.approx(gemm1 + gemm2)  # 6.4 us; HBM busy only 6 us


def test_no_l2_no_gain() -> None:
    pf = _segment(l2_bytes=0.0, threshold=1.0, collective_s=20e-6)
    assert pf.time_s[0, 0] == pf.base_s[0, 0]


# ---- laws on full predictions ------------------------------------------------------------

SETTINGS = settings(max_examples=25, deadline=None)
CASE = st.fixed_dictionaries({
    "model": st.sampled_from(["llama-3-8b", "llama-3-70b", "qwen2-72b"]),
    "hardware": st.sampled_from(["ascend-910b", "h100-sxm", "mi300x"]),
    "batch": st.integers(1, 16),
    "input_len": st.integers(64, 8192),
    "output_len": st.integers(2, 128),
    "tp": st.sampled_from([2, 4, 8]),
})


def _predict(case, **kw):
    dtype = "int8" if case["hardware"] == "ascend-910b" else "bf16"
    return roofline.predict(case["model"], case["hardware"], batch=case["batch"], input_len=case["input_len"],
                            output_len=case["output_len"], tp=case["tp"], dtype=dtype, check_memory=False, **kw)


@SETTINGS
@given(CASE)
def test_prefetch_never_hurts_and_off_is_exactly_baseline(case) -> None:
    on, off = _predict(case, prefetch=True), _predict(case, prefetch=False)
    assert on.ttft_s <= off.ttft_s and on.tpot_s <= off.tpot_s
    assert off.ttft_s == off.baseline_ttft_s == on.baseline_ttft_s
    assert off.tpot_s == off.baseline_tpot_s == on.baseline_tpot_s


@SETTINGS
@given(CASE, st.floats(0, 512), st.floats(1, 256))
def test_gain_grows_with_l2_capacity(case, small, extra) -> None:
    low = _predict(case, prefetch=True, l2_capacity_MiB=small)
    high = _predict(case, prefetch=True, l2_capacity_MiB=small + extra)
    gain_low = low.baseline_tpot_s - low.tpot_s
    gain_high = high.baseline_tpot_s - high.tpot_s
    assert gain_high >= gain_low - 1e-15


@SETTINGS
@given(CASE)
def test_no_l2_no_gain_on_predictions(case) -> None:
    p = _predict(case, prefetch=True, l2_capacity_MiB=0)
    assert p.speedup["e2e"] == 1.0


def test_gain_saturates_when_the_segment_data_fits() -> None:
    # beyond the point where every segment's bytes fit, more L2 buys nothing more
    kw = dict(tp=8, batch=4, input_len=1024, output_len=64, dtype="int8", check_memory=False, prefetch=True)
    big = [roofline.predict("llama-3-8b", "ascend-910b", l2_capacity_MiB=c, **kw).tpot_s for c in (2048, 4096)]
    assert big[0] == pytest.approx(big[1], rel=1e-12)


def test_weights_and_kv_switches() -> None:
    # prefetching is off by default (a scenario setting), so this test of it turns it on
    kw = dict(tp=8, batch=16, input_len=8192, output_len=64, dtype="int8", check_memory=False, prefetch=True)
    both = roofline.predict("llama-3-70b", "ascend-910b", **kw)
    no_kv = roofline.predict("llama-3-70b", "ascend-910b", prefetch_kv=False, **kw)
    neither = roofline.predict("llama-3-70b", "ascend-910b", prefetch_kv=False, prefetch_weights=False, **kw)
    assert neither.tpot_s == neither.baseline_tpot_s
    assert both.tpot_s <= no_kv.tpot_s <= neither.tpot_s and both.tpot_s < neither.tpot_s


def test_bad_threshold_values() -> None:
    with pytest.raises(roofline.SpecError, match="must be at most 1.*cannot exceed"):
        roofline.predict("llama-3-8b", "h100-sxm", tp=2, prefetch_threshold_fraction=1.5)
    with pytest.raises(roofline.SpecError, match="must be a finite number >= 0"):
        roofline.predict("llama-3-8b", "h100-sxm", tp=2, prefetch_threshold_fraction=-0.1)
