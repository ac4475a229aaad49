"""Asynchronous tensor parallelism: prefill all-reduces overlap the GEMM that produces them."""

from __future__ import annotations

import numpy as np
import pytest

import roofline
from roofline.graph import _Op, _to_table
from roofline.timing import HardwareArrays, OpTimes, async_tp_saving_s


def _times(gemm_s: float, comm_s: float, launch_s: float) -> OpTimes:
    total = np.array([[gemm_s + launch_s], [comm_s + launch_s]])
    z = np.zeros((2, 1))
    return OpTimes(z, z, total, z, z, z, z, np.array([1e12]))


def test_saving_by_hand() -> None:
    # down-proj GEMM of 10 us, then an 8-way all-reduce of 4 us on the wire (launch 3.5 us each):
    # in 8 chunks the pair takes max(10, 4) + 4/8 = 10.5 us instead of 14: 3.5 us = 4 x 7/8 saved
    ops = [_Op("down_proj", "gemm", 1, 1, m=1024, flops=1.0, weight_bytes=1.0),
           _Op("mlp_allreduce", "collective", 1, 1, collective="allreduce", comm_bytes=1e6, group=8)]
    table = _to_table("prefill", ops, (), 1, 1, 1)
    spec = roofline.load_hardware("h100-sxm")
    on = HardwareArrays.from_spec(spec, 1, async_tp=True)
    saving = async_tp_saving_s(table, _times(10e-6, 4e-6, 3.5e-6), on)
    assert saving[:, 0] == pytest.approx([0.0, 3.5e-6])
    # a collective longer than its GEMM hides the GEMM instead: min(10, 30) x 7/8
    assert async_tp_saving_s(table, _times(10e-6, 30e-6, 3.5e-6), on)[1, 0] == pytest.approx(8.75e-6)
    off = HardwareArrays.from_spec(spec, 1)
    assert not async_tp_saving_s(table, _times(10e-6, 4e-6, 3.5e-6), off).any()
    decode = _to_table("decode", ops, (), 1, 1, 1)
    assert not async_tp_saving_s(decode, _times(10e-6, 4e-6, 3.5e-6), on).any()


def test_prefill_only_and_off_by_default() -> None:
    # async TP runs on the numpy path (roofline.static_kernel.covers): the plain predictions take it
    # too (compiled=False), so that "unchanged" is checked bit for bit whichever path the default takes
    kw = dict(tp=8, batch=4, input_len=8192, output_len=8, compiled=False)
    base = roofline.predict("llama-3-70b", "h100-sxm", **kw)
    assert base.workload.async_tp is False
    overlap = roofline.predict("llama-3-70b", "h100-sxm", async_tp=True, **kw)
    assert overlap.ttft_s < base.ttft_s and overlap.tpot_s == base.tpot_s
    single = roofline.predict("llama-3-8b", "h100-sxm", batch=1, input_len=512, output_len=4, compiled=False)
    assert roofline.predict("llama-3-8b", "h100-sxm", batch=1, input_len=512, output_len=4,
                            async_tp=True).ttft_s == single.ttft_s  # tp 1: nothing to overlap


def test_bad_async_tp() -> None:
    with pytest.raises(roofline.SpecError, match="async_tp"):
        roofline.Workload(async_tp="yes")  # type: ignore[arg-type]
    from typer.testing import CliRunner

    from roofline.cli.main import app

    bad = CliRunner().invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--async-tp=maybe"])
    assert bad.exit_code == 2
    ok = CliRunner().invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "2", "--async-tp"])
    assert ok.exit_code == 0, ok.output
