"""TensorRT-LLM's TP all-reduces at the AllReduce its device's calibrated profile fitted
(``allreduce:trtllm_custom:intra:n<GPUs>``), in the serving step cost of framework ``trtllm``."""

from __future__ import annotations

import numpy as np
import pytest

from roofline import Parallelism, Workload, load_hardware, load_model
from roofline.collectives import collective_time_s
from roofline.fitted import (
    TRTLLM_ALLREDUCE_KEY,
    calibrated_allreduce,
    calibrated_hardware,
    load_profile,
)
from roofline.serving import ServingSetup, build_step_cost, engine_defaults
from roofline.serving.step_cost import engine_token_grid, tp_allreduce
from roofline.timing import HardwareArrays

_W = Workload(weight_dtype="fp8", activation_dtype="fp8", kv_dtype="fp8")


def _generic_s(spec, size_bytes: float, n: int) -> float:
    """The generic model's all-reduce on ``spec``: the custom kernels' alpha-beta plus a launch."""
    hw = HardwareArrays.from_spec(spec, 1)
    t = collective_time_s("allreduce", np.array([size_bytes]), n, hw.intra(), hw.inter(), hw.devices_per_node, "custom")
    return float(np.asarray(t).reshape(-1)[0] + hw.launch_s[0])


def test_the_fit_is_the_profiles_two_shot_by_hand():
    # H200, 8 GPUs, 2 MiB (Llama-3.1-70B's 128 decode rows x 8192 x 2 bytes), at least the group's
    # _large_from_bytes (2 MiB), so the :large parameters and TensorRT-LLM's two-shot kernel (from
    # the switch up): 2 alpha + 2 (n-1)/n S / (25 GB/s x efficiency x 18 links), plus a launch
    large = load_profile("h200-sxm")["per_kind"][f"{TRTLLM_ALLREDUCE_KEY}:n8:large"]
    size = 128 * 8192 * 2.0
    device_Bps = 25e9 * large["link_efficiency"] * 18
    by_hand = 2 * large["custom_latency_us"] * 1e-6 + 2 * 7 / 8 * size / device_Bps + large["launch_overhead_us"] * 1e-6
    fit = calibrated_allreduce(calibrated_hardware("h200-sxm"))
    assert fit is not None
    assert fit.time_s(size, 8) == pytest.approx(by_hand, rel=1e-9)
    # with the shipped profile (2026-11-30): 2 x 12.463 + 11.11 + 0.318 = 36.36 us, where the
    # measured TensorRT-LLM AllReduce takes 30.5 us and the generic model 17.0 us
    assert 25e-6 < fit.time_s(size, 8) < 40e-6


def test_no_fit_on_a_datasheet_spec_another_framework_or_an_unfitted_group():
    assert calibrated_allreduce(load_hardware("h200-sxm")) is None  # the datasheet spec
    spec = calibrated_hardware("h200-sxm")
    hw = HardwareArrays.from_spec(spec, 1)
    assert tp_allreduce("vllm", spec, hw)[0] is None and tp_allreduce("sglang", spec, hw)[0] is None
    allreduce_s, where = tp_allreduce("trtllm", spec, hw)
    assert allreduce_s is not None and where.tolist() == [True]
    assert allreduce_s(1e6, 16) is None  # no :n16 fit: the generic model stays


def test_the_step_body_swaps_each_tp_allreduce():
    # Llama-3.1-70B at TP 8: 80 layers x 2 all-reduces + the embedding's, each of T x 8192 x 2 bytes
    model, par = load_model("llama-3.1-70b"), Parallelism(tp=8)
    spec = calibrated_hardware("h200-sxm")
    hw = HardwareArrays.from_spec(spec, 1)
    grid = np.array([16.0, 128.0, 2048.0])
    allreduce_s, _ = tp_allreduce("trtllm", spec, hw)
    plain = build_step_cost(model, _W, par, hw, grid)
    swapped = build_step_cost(model, _W, par, hw, grid, 1, framework="trtllm", hardware=spec)
    for j, t in enumerate(grid):
        size = t * 8192 * 2
        expected = 161 * (allreduce_s(size, 8) - _generic_s(spec, size, 8))
        assert swapped.body_s[0, j] - plain.body_s[0, j] == pytest.approx(expected, rel=1e-9)
    # the head (logits all-gather), attention and prefill coefficients are untouched
    assert np.array_equal(swapped.head_s, plain.head_s)
    assert swapped.dec_memory_per_kv_s == plain.dec_memory_per_kv_s


def test_serve_applies_it_only_to_trtllm_on_the_calibrated_links():
    model, par = load_model("llama-3.1-70b"), Parallelism(tp=8)
    spec = calibrated_hardware("h200-sxm")
    trt = ServingSetup(model, spec, _W, par, engine_defaults("trtllm"))
    grid = engine_token_grid(trt.settings)
    plain = build_step_cost(model, _W, par, trt.arrays(), grid)
    assert not np.allclose(trt.step_cost().body_s, plain.body_s)
    # vLLM on the same device: its all-reduce was not measured, the generic model
    vllm = ServingSetup(model, spec, _W, par, engine_defaults("vllm"))
    assert np.array_equal(vllm.step_cost().body_s, build_step_cost(model, _W, par, vllm.arrays(),
                                                                   engine_token_grid(vllm.settings)).body_s)
    # a link of your own (--link-bandwidth): the fit belongs to the measured links, the generic model
    faster = ServingSetup(model, spec, _W, par, engine_defaults("trtllm"),
                          hardware_overrides=(("link_bandwidth_GBps", 50.0),))
    assert np.array_equal(faster.step_cost().body_s, build_step_cost(model, _W, par, faster.arrays(), grid).body_s)


def test_a_sweep_keeps_the_generic_model_where_it_changes_a_link():
    spec = calibrated_hardware("h200-sxm")
    own = float(HardwareArrays.from_spec(spec, 1).link_efficiency[0])
    hw = HardwareArrays.from_spec(spec, 3, link_efficiency=np.array([own, 0.5, own]))
    assert tp_allreduce("trtllm", spec, hw)[1].tolist() == [True, False, True]


def test_a_spec_with_other_wires_keeps_the_generic_model():
    from dataclasses import replace

    spec = calibrated_hardware("h200-sxm")
    half = replace(spec, intra_node=replace(spec.intra_node, links_per_device=9))
    assert calibrated_allreduce(half) is None
    # a calibrated spec of the device other than the shipped one (a calibration in progress) keeps it
    assert calibrated_allreduce(replace(spec, description="being calibrated")) is not None


def test_a_profile_being_fitted_is_read_in_place_of_its_file():
    # roofline calibrate's serving stage times TensorRT-LLM's all-reduce with the entries it just
    # fitted: inside the block the 8-GPU large segment's latency doubled (1 us more per alpha, 2 of
    # them in a two-shot) shows in the fit; outside, the shipped file again
    from roofline.fitted import load_profile, profile_being_fitted

    spec = calibrated_hardware("h200-sxm")
    shipped = load_profile("h200-sxm")
    size = 128 * 8192 * 2.0
    before = calibrated_allreduce(spec).time_s(size, 8)
    per_kind = {k: dict(v) for k, v in shipped["per_kind"].items()}
    per_kind[f"{TRTLLM_ALLREDUCE_KEY}:n8:large"]["custom_latency_us"] += 1.0
    with profile_being_fitted("h200-sxm", {**shipped, "per_kind": per_kind}):
        assert load_profile("h200-sxm")["per_kind"] is not shipped["per_kind"]
        assert calibrated_allreduce(spec).time_s(size, 8) == pytest.approx(before + 2e-6, rel=1e-9)
    assert calibrated_allreduce(spec).time_s(size, 8) == before
    assert load_profile("h200-sxm") == shipped
