"""TensorRT-LLM's all-reduce as calibrated: one-shot below the group size's ``:large`` segment,
two-shot from it, NCCL above TensorRT-LLM's workspace; the fitted curve against every measured
point of aiconfigurator/trtllm_custom_allreduce.csv, and more bytes never faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline import collectives as c
from roofline.fitted import (
    TRTLLM_ALLREDUCE_KEY,
    AllReduceFit,
    calibrated_allreduce,
    calibrated_hardware,
    capped_below_switch,
    custom_switch,
    large_from_bytes,
    load_profile,
    switched_collective_s,
)
from roofline.hardware import load_hardware
from roofline.validation._predict import build_batches, predict_batch
from roofline.validation._profile import profile_params
from roofline.validation._stage_collectives import TRTLLM_REGIME_THRESHOLDS, regime_thresholds
from tests.conftest import DATA, _cases, needs_data

#: Devices whose shipped profile fitted TensorRT-LLM's AllReduce, and the CSV's system names.
DEVICES = {"a100-sxm-80gb": "a100_sxm", "h100-sxm": "h100_sxm", "h200-sxm": "h200_sxm", "b200": "b200_sxm"}
MiB = 2**20


def _tier() -> c.TierArrays:
    # one 100 GB/s link per device on a switch, efficiency 1: B_device = 1e11 B/s; a shot 2 us
    return c.TierArrays(link_Bps=1e11, links=1, latency_s=1e-6, efficiency=1.0, full_mesh=False,
                        custom_latency_s=2e-6)


def test_a_measured_switch_runs_one_shot_below_and_two_shot_from_it_by_hand():
    tier, switch = _tier(), c.CustomSwitch(one_shot_below_bytes=1e6, max_bytes=8e6)
    t = c.custom_allreduce_s(np.array([0.5e6, 0.9e6, 1e6, 2e6, 9e6]), 4, tier, switch)
    # one-shot: 2 us + 3 x S / 1e11; two-shot: 2 x 2 us + 2 x 3/4 x S / 1e11
    assert t[0] == pytest.approx(2e-6 + 15e-6)  # 17 us
    assert t[1] == pytest.approx(2e-6 + 27e-6)  # 29 us: vLLM would run two-shot here (>= 512 KiB)
    assert t[2] == pytest.approx(4e-6 + 15e-6)  # 19 us, two-shot from the switch on
    assert t[3] == pytest.approx(4e-6 + 30e-6)  # 34 us
    assert np.isinf(t[4])  # NCCL from the workspace up
    # vLLM's sizes by default: 0.9e6 >= 512 KiB, two-shot held at least at one-shot(512 KiB)
    vllm = c.custom_allreduce_s(np.array([0.9e6]), 4, tier)
    assert vllm[0] == pytest.approx(max(4e-6 + 13.5e-6, 2e-6 + 3 * 524288 / 1e11))  # 17.7 us


def test_tensorrt_llm_calls_nccl_above_its_workspace():
    # customAllReduceUtils.h getMaxRequiredWorkspaceSize: 16e6 bytes on 2 GPUs, 8e6 on more
    assert c.trtllm_switch(2, None).max_bytes == 16e6
    assert c.trtllm_switch(4, 2 * MiB) == c.CustomSwitch(2 * MiB, 8e6)
    assert c.trtllm_switch(8, None).max_bytes == 8e6
    tier = _tier()
    two_gpus = c.collective_time_s("allreduce", np.array([12e6]), 2, tier, tier, 8, "custom", c.trtllm_switch(2, None))
    # 12 MB on 2 GPUs: still one-shot (2 us + 12e6 / 1e11 = 122 us), where vLLM calls NCCL from 8 MiB
    assert two_gpus[0] == pytest.approx(122e-6)
    assert custom_switch("allreduce:nccl:intra", 4, 2 * MiB) == c.VLLM_SWITCH
    assert custom_switch(TRTLLM_ALLREDUCE_KEY, 4, 2 * MiB) == c.CustomSwitch(2 * MiB, 8e6)
    assert capped_below_switch(TRTLLM_ALLREDUCE_KEY, 2 * MiB)
    assert not capped_below_switch("allreduce:nccl:intra", 2 * MiB)
    assert not capped_below_switch(TRTLLM_ALLREDUCE_KEY, None)


def test_switched_collective_segments_and_cap_by_hand() -> None:
    # small segment 0.1 s per byte, large segment 5 s + 0.01 s per byte, switch at 100 bytes:
    # 10 B -> 1 s; 90 B -> 9 s, capped at the large segment's 6 s at the switch (TensorRT-LLM
    # only); 100 B -> 6 s and 200 B -> 7 s in the large segment; no switch: all small
    def segment_s(sizes: np.ndarray, large: bool) -> np.ndarray:
        return 5.0 + 0.01 * sizes if large else 0.1 * sizes

    sizes = np.array([10.0, 90.0, 100.0, 200.0])
    assert switched_collective_s(TRTLLM_ALLREDUCE_KEY, sizes, 100.0, segment_s) == pytest.approx([1, 6, 6, 7])
    assert switched_collective_s("allreduce:nccl:intra", sizes, 100.0, segment_s) == pytest.approx([1, 9, 6, 7])
    assert switched_collective_s(TRTLLM_ALLREDUCE_KEY, sizes, None, segment_s) == pytest.approx([1, 9, 10, 20])


def test_its_switch_may_sit_at_any_power_of_two():
    assert regime_thresholds(f"{TRTLLM_ALLREDUCE_KEY}:n4", 4) == TRTLLM_REGIME_THRESHOLDS
    assert TRTLLM_REGIME_THRESHOLDS[0] == 16 * 1024 and TRTLLM_REGIME_THRESHOLDS[-1] == 64 * MiB
    assert all(b == 2 * a for a, b in zip(TRTLLM_REGIME_THRESHOLDS, TRTLLM_REGIME_THRESHOLDS[1:]))


def test_h200_four_gpus_one_mib_is_the_one_shot_by_hand():
    # Llama-3.1-70B's TP 4 decode step at batch 64: 64 x 8192 x 2 bytes = 1 MiB. H200 runs it
    # one-shot (measured 12.848 us; 2 MiB takes 21.9 us, two-shot), so the profile's switch is
    # above it and the time is the :n4 entry's one-shot: alpha + 3 S / (25 GB/s x eff x 18 links) + launch
    per_kind = load_profile("h200-sxm")["per_kind"]
    assert large_from_bytes(per_kind, TRTLLM_ALLREDUCE_KEY, 4) == 2 * MiB
    small = per_kind[f"{TRTLLM_ALLREDUCE_KEY}:n4"]
    size = 64 * 8192 * 2.0
    by_hand = (small["custom_latency_us"] * 1e-6 + 3 * size / (25e9 * small["link_efficiency"] * 18)
               + small["launch_overhead_us"] * 1e-6)
    fit = calibrated_allreduce(calibrated_hardware("h200-sxm"))
    assert fit is not None
    assert fit.time_s(size, 4) == pytest.approx(by_hand, rel=1e-9)
    # shipped profile (2026-11-30): 2.6179 + 3 x 1048576 / (25e9 x 0.74486 x 18) s + 0.40886 us
    # = 2.618 + 9.384 + 0.409 = 12.41 us against 12.848 measured (-3.4%; it was 17.3 us, +35%)
    assert fit.time_s(size, 4) == pytest.approx(12.848e-6, rel=0.05)


def _measured() -> pd.DataFrame:
    df = pd.read_csv(DATA / "aiconfigurator" / "trtllm_custom_allreduce.csv")
    return df[df["system"].isin(DEVICES.values())]


def _fitted_errors() -> pd.DataFrame:
    df = _measured()
    device = {v: k for k, v in DEVICES.items()}
    fitted = [AllReduceFit(device[s], TRTLLM_ALLREDUCE_KEY).time_s(b, n)
              for s, n, b in zip(df["system"], df["num_gpus"], df["message_bytes"])]
    return df.assign(rel_err=np.asarray(fitted, dtype=float) / (df["latency_ms"] * 1e-3) - 1)


@needs_data
def test_the_fit_is_close_to_every_measured_point():
    # achieved (2026-11-30, docs/validation.md "TensorRT-LLM's all-reduce", per device and GPU
    # count): H100 / H200 / B200 max 10.5-28.3%, mean 2.6-7.3%; A100 (TensorRT-LLM 1.0, whose
    # measured curve steps down with size: 8 GPUs 83.2 us at 1 MiB, 53.6 at 2 MiB) max 22.9-59.5%,
    # mean 7.8-12.6%. Before: max up to 95% (B200, 2 GPUs, 8 MiB) and 66% (H100, 4 GPUs, 1 MiB)
    err = _fitted_errors()
    err["A100"] = err["system"] == "a100_sxm"
    by_group = err.groupby(["A100", "system", "num_gpus"])["rel_err"]
    worst, mean = by_group.apply(lambda e: e.abs().max()), by_group.apply(lambda e: e.abs().mean())
    assert worst.loc[False].max() < 0.30 and mean.loc[False].max() < 0.08
    assert worst.loc[True].max() < 0.62 and mean.loc[True].max() < 0.13
    hopper = err.query("system in ['h100_sxm', 'h200_sxm'] and num_gpus == 4")
    assert hopper["rel_err"].abs().max() < 0.14  # the TP 4 rows of issue 13 (1 MiB: was +35 / +66%)


@needs_data
def test_serving_takes_the_fit_the_calibration_checked():
    # AllReduceFit (serving) and predict_batch (calibrate, validate) give the same time per point
    cases = _cases()
    cases = cases[cases["dataset"] == "aiconfigurator/custom_allreduce"].reset_index(drop=True)
    for b in build_batches(cases):
        if b.device not in DEVICES:
            continue
        harness = predict_batch(b, load_hardware(b.device), profile_params(load_profile(b.device))) / b.count
        fit = AllReduceFit(b.device, TRTLLM_ALLREDUCE_KEY)
        for n, _, rows in b.groups:
            serving = [fit.time_s(s, n) for s in b.size_bytes[rows]]
            assert np.allclose(serving, harness[rows], rtol=1e-9)


@given(device=st.sampled_from(sorted(DEVICES)), n=st.sampled_from([2, 4, 8]),
       size=st.floats(256.0, 2.0**30), factor=st.floats(1.0, 64.0))
def test_more_bytes_are_never_faster(device, n, size, factor):
    fit = AllReduceFit(device, TRTLLM_ALLREDUCE_KEY)
    assert fit.time_s(size * factor, n) >= fit.time_s(size, n) * (1 - 1e-12)
