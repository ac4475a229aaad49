"""L2 that scales (slices) and L2 reuse without prefetch (tiled GEMMs): by hand, and monotone in
capacity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline.graph import _Op, _to_table
from roofline.timing import (
    MIN_GEMM_BLOCK,
    HardwareArrays,
    gemm_reuse_bytes,
    l2_bandwidth_Bps,
    op_times,
)
from tests.conftest import needs_data

MiB = 2**20


def test_slices_by_hand() -> None:
    # 192 MiB of 8 MiB slices = 24 slices at 197.9 GB/s = the 910B's 4750 GB/s; 96 MiB: half
    bw = l2_bandwidth_Bps([96 * MiB, 192 * MiB], 4750e9, 8 * MiB, 4750e9 / 24)
    assert bw == pytest.approx([2375e9, 4750e9])
    # an empty L2 keeps one slice's rate (nothing is read from it); fixed mode ignores capacity
    assert l2_bandwidth_Bps(0.0, 4750e9, 8 * MiB, 100e9) == pytest.approx(100e9)
    assert l2_bandwidth_Bps([0.0, 1e9], 4750e9, 0.0, 0.0) == pytest.approx([4750e9, 4750e9])
    hw = HardwareArrays.from_spec(roofline.load_hardware("ascend-910b"), 2, l2_capacity_MiB=[48, 192],
                                  l2_capacity_per_slice_MiB=8, l2_bandwidth_per_slice_GBps=200)
    assert hw.l2_Bps == pytest.approx([1200e9, 4800e9])


def _gemm(m: float, n: float, k: float, dtype_bytes: float = 2.0):
    op = _Op("g", "gemm", 1, 1, m=m, flops=2 * m * n * k, weight_bytes=n * k * dtype_bytes,
             act_bytes=(m * k + m * n) * dtype_bytes, dtype="bf16")
    return _to_table("prefill", [op], (), 1, 1, 1)


def test_tiled_gemm_traffic_by_hand() -> None:
    # m = 4096, n = k = 8192, bf16, L2 = 6 MiB: b = sqrt(6 MiB / (2 + 2 x 2) B) = 1024.
    # Weights read m/b = 4 times: mnk x 2 B / 1024 = 536.9 MB against the compulsory 134.2 MB;
    # inputs read n/b = 8 times: the same 536.9 MB against 134.2 MB of activations in and out.
    table = _gemm(4096, 8192, 8192)
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=6)
    mnk = 4096 * 8192 * 8192
    extra = (mnk * 2 / 1024 - 8192 * 8192 * 2) + (mnk * 2 / 1024 - 4096 * 16384 * 2)
    assert gemm_reuse_bytes(table, table.flops_at(np.zeros(1)), hw)[0, 0] == pytest.approx(extra, rel=1e-12)
    assert extra == pytest.approx(805.3e6, rel=1e-3)
    t = op_times(table, hw)
    assert t.hbm_bytes[0, 0] == pytest.approx(8192 * 8192 * 2 + 4096 * 16384 * 2 + extra)
    # switched off: compulsory traffic only; a 400 MiB L2 holds blocks of 8378 >= n, k: no re-reads
    off = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=6, l2_gemm_reuse=0)
    assert gemm_reuse_bytes(table, table.flops_at(np.zeros(1)), off)[0, 0] == 0.0
    big = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=400)
    assert gemm_reuse_bytes(table, table.flops_at(np.zeros(1)), big)[0, 0] == 0.0


def test_without_l2_the_block_is_the_on_chip_tile() -> None:
    # L2 = 0: b = 128 (a threadblock tile): weights read 4096/128 = 32 times
    table = _gemm(4096, 8192, 8192)
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 1, l2_capacity_MiB=0)
    mnk = 4096 * 8192 * 8192
    extra = (mnk * 2 / MIN_GEMM_BLOCK - 8192 * 8192 * 2) + (mnk * 2 / MIN_GEMM_BLOCK - 4096 * 16384 * 2)
    assert gemm_reuse_bytes(table, table.flops_at(np.zeros(1)), hw)[0, 0] == pytest.approx(extra)


@settings(max_examples=40, deadline=None)
@given(st.floats(1, 65536), st.floats(64, 65536), st.floats(64, 65536), st.floats(0, 512), st.floats(0, 512))
def test_gemm_traffic_never_grows_with_l2(m, n, k, small, extra) -> None:
    table = _gemm(m, n, k)
    hw = HardwareArrays.from_spec(roofline.load_hardware("h100-sxm"), 2, l2_capacity_MiB=[small, small + extra])
    reread = gemm_reuse_bytes(table, table.flops_at(np.zeros(2)), hw)[0]
    assert reread[1] <= reread[0] * (1 + 1e-12) and np.all(reread >= 0)


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["llama-3-8b", "llama-3-70b"]), st.integers(1, 16), st.integers(256, 8192),
       st.floats(0, 256), st.floats(1, 256), st.booleans())
def test_predictions_monotone_in_l2_capacity_without_prefetch(model, batch, prompt, small, extra, sliced) -> None:
    # both the reuse term and (with slices) the L2 bandwidth only improve with more capacity
    kw = dict(tp=8, batch=batch, input_len=prompt, output_len=4, dtype="int8", check_memory=False, prefetch=False)
    if sliced:
        kw |= dict(l2_capacity_per_slice_MiB=8, l2_bandwidth_per_slice_GBps=200)
    low = roofline.predict(model, "ascend-910b", l2_capacity_MiB=small, **kw)
    high = roofline.predict(model, "ascend-910b", l2_capacity_MiB=small + extra, **kw)
    assert high.ttft_s <= low.ttft_s * (1 + 1e-12) and high.tpot_s <= low.tpot_s * (1 + 1e-12)


def test_prefill_gains_from_l2_without_prefetch() -> None:
    # 910B, llama-3-70b, batch 4 x 10,923 prompt tokens: no L2 re-reads operands from HBM
    kw = dict(tp=8, batch=4, input_len=10923, output_len=4, dtype="int8", prefetch=False)
    none = roofline.predict("llama-3-70b", "ascend-910b", l2_capacity_MiB=0, **kw)
    stock = roofline.predict("llama-3-70b", "ascend-910b", **kw)
    assert none.ttft_s > 1.5 * stock.ttft_s


@needs_data
def test_gemm_reuse_does_not_worsen_the_measured_gemm_error() -> None:
    # issue 16: the reuse term must not worsen the error on the shared GEMM data (their stock L2;
    # no shared data varies L2 size). Datasheet MAPE over every GEMM / linear row, term off and on.
    from roofline.validation import load_cases
    from roofline.validation._predict import build_batches, predict_batch

    cases = load_cases()
    cases = cases[cases["kind"].isin(["gemm", "linear"]) & cases["device"].notna()].reset_index(drop=True)
    measured = cases["measured_s"].to_numpy()
    mape = {}
    for reuse in (0.0, 1.0):
        predicted = np.full(len(cases), np.nan)
        for b in build_batches(cases):
            predicted[b.index] = predict_batch(b, roofline.load_hardware(b.device), {}, extra={"l2_gemm_reuse": reuse})
        mape[reuse] = float(np.mean(np.abs(predicted / measured - 1)))
    assert len(cases) > 10_000
    assert mape[1.0] <= mape[0.0] + 1e-4, mape
