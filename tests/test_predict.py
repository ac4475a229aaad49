"""Predictions: definitions, the batch-1 decode bound, exact TPOT, prefetch laws and monotonicity."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import roofline
from roofline.evaluate import evaluate_pass, mean_over_steps
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.graph import build_phase
from roofline.predict import decode_kv_range
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, Workload

FAST = settings(max_examples=25, deadline=None)


def test_batch1_decode_is_weight_bytes_over_bandwidth(llama8b, h100) -> None:
    p = roofline.predict(llama8b, h100, batch=1, input_len=16, output_len=2, prefetch=False, datasheet=True)
    weights = (llama8b.total_params() - llama8b.vocab_size * llama8b.hidden_size) * 2.0
    bandwidth = h100.memory.hbm_bandwidth_Bps * h100.memory.hbm_efficiency
    t = build_phase(llama8b, p.workload, p.parallelism, "decode")
    launches = float(t.count.sum()) * h100.compute.launch_overhead_s
    # memory-bound: weights / effective bandwidth, plus one launch per kernel, plus a little
    # KV and activation traffic
    assert p.tpot_s == pytest.approx(weights / bandwidth + launches, rel=0.01)
    assert weights / bandwidth == pytest.approx(5.37e-3, rel=0.01)  # 15.0 GB / 2.81 TB/s


def test_definitions_hold(llama8b, h100) -> None:
    p = roofline.predict(llama8b, h100, batch=4, input_len=512, output_len=64)
    assert p.e2e_s == pytest.approx(p.ttft_s + 63 * p.tpot_s)
    assert p.throughput_tok_s == pytest.approx(4 * 64 / p.e2e_s)
    d = p.to_dict()
    assert d["tpot_ms"] == pytest.approx(p.tpot_s * 1e3)
    assert {"ttft", "tpot", "e2e", "throughput", "cost_basis"} <= set(d["definitions"])


def _brute_force_tpot(model, hw, w, par, prefetch: bool) -> float:
    table = build_phase(model, w, par, "decode")
    first, last = decode_kv_range(w)
    kv = np.arange(first, last + 1, dtype=float)
    arrays = HardwareArrays.from_spec(hw, len(kv), prefetch=prefetch)
    res = evaluate_pass(table, arrays, kv)
    return float(res.time_s.mean())


@pytest.mark.parametrize(("model", "hw", "tp", "batch", "inp", "out"), [
    ("llama-3-70b", "h100-sxm", 8, 4, 4096, 512),
    ("llama-3-8b", "ascend-910b", 8, 16, 2000, 1000),
    ("qwen2-72b", "ascend-910b", 8, 64, 1365, 683),
    ("llama-3-8b", "a100-sxm-80gb", 2, 1, 7, 300),
])
def test_tpot_is_the_exact_mean_over_every_step(model, hw, tp, batch, inp, out) -> None:
    m, h = roofline.load_model(model), roofline.load_hardware(hw)
    for prefetch in (False, True):
        p = roofline.predict(m, h, tp=tp, batch=batch, input_len=inp, output_len=out, dtype="int8"
                             if hw == "ascend-910b" else "bf16", prefetch=prefetch, check_memory=False, datasheet=True)
        brute = _brute_force_tpot(m, h, p.workload, p.parallelism, prefetch)
        assert p.tpot_s == pytest.approx(brute, rel=1e-12)


def test_mean_over_steps_on_a_known_piecewise_function() -> None:
    def step(rows, kv, rec):
        kv = kv.astype(float)
        return rec.max(kv * 2.0, 100.0 + kv * 0.0)[:, None]

    got = mean_over_steps(step, np.array([0, 60]), np.array([99, 60]))
    expected = np.mean(np.maximum(np.arange(100) * 2.0, 100.0))
    assert got[0, 0] == pytest.approx(expected, rel=1e-14)
    assert got[1, 0] == 120.0


def test_prefetch_off_is_exactly_the_baseline(llama70b, h100) -> None:
    on = roofline.predict(llama70b, h100, tp=8, batch=4, input_len=4096, output_len=512, prefetch=True)
    off = roofline.predict(llama70b, h100, tp=8, batch=4, input_len=4096, output_len=512, prefetch=False)
    assert off.tpot_s == off.baseline_tpot_s == on.baseline_tpot_s
    assert off.ttft_s == on.baseline_ttft_s
    assert on.tpot_s < off.tpot_s


def test_out_of_memory_is_a_clear_error(llama70b, h100) -> None:
    with pytest.raises(InfeasibleConfigError, match=r"does not fit: needs .* GiB per device .* raise tp/pp"):
        roofline.predict(llama70b, h100, tp=1)


def test_bad_workload_values() -> None:
    with pytest.raises(SpecError, match="batch: must be a positive integer"):
        Workload(batch=0)
    with pytest.raises(SpecError, match="weight_dtype: 'fp4' is not allowed"):
        Workload(weight_dtype="fp4")
    with pytest.raises(SpecError, match="tp: must be a positive integer"):
        Parallelism(tp=-2)


def test_fp8_on_a_device_without_fp8(llama8b) -> None:
    with pytest.raises(SpecError, match="no fp8 compute"):
        roofline.predict(llama8b, "a100-sxm-80gb", dtype="fp8")


def test_unknown_override_is_rejected(llama8b, h100) -> None:
    with pytest.raises(SpecError, match="unknown hardware parameter 'l2_size'"):
        roofline.predict(llama8b, h100, l2_size=3)


# ---- properties -------------------------------------------------------------------------

CONFIG = st.fixed_dictionaries({
    "batch": st.integers(1, 32),
    "input_len": st.integers(16, 8192),
    "output_len": st.integers(2, 256),
    "tp": st.sampled_from([1, 2, 4, 8]),
    "prefetch": st.booleans(),
})


def _predict(cfg, **overrides):
    return roofline.predict("llama-3-8b", "h100-sxm", check_memory=False, **cfg, **overrides)


@pytest.mark.parametrize(("parameter", "base_value"), [
    ("hbm_bandwidth_GBps", 3350.0), ("peak_scale", 1.0), ("link_bandwidth_GBps", 25.0),
    ("l2_bandwidth_GBps", 12000.0)])
@FAST
@given(cfg=CONFIG, factor=st.floats(1.01, 4.0))
def test_more_bandwidth_or_flops_is_never_slower(parameter, base_value, cfg, factor) -> None:
    base = _predict(cfg, **{parameter: base_value})
    fast = _predict(cfg, **{parameter: base_value * factor})
    assert fast.ttft_s <= base.ttft_s * (1 + 1e-12)
    assert fast.tpot_s <= base.tpot_s * (1 + 1e-12)


@pytest.mark.parametrize(("field", "most"), [("input_len", 4096), ("batch", 32)])
@FAST
@given(cfg=CONFIG, extra=st.integers(1, 4096))
def test_time_grows_with_sequence_length_and_batch(field, most, cfg, extra) -> None:
    base = _predict(cfg)
    bigger = _predict({**cfg, field: cfg[field] + min(extra, most)})
    assert bigger.ttft_s >= base.ttft_s
    assert bigger.tpot_s >= base.tpot_s


def test_pipeline_without_microbatches_adds_only_the_send(llama70b, h100) -> None:
    w = Workload(batch=1, input_len=1024, output_len=16)
    one = roofline.predict(llama70b, h100, workload=w, parallelism=Parallelism(tp=4), prefetch=False,
                           check_memory=False)
    two = roofline.predict(llama70b, h100, workload=w, parallelism=Parallelism(tp=4, pp=2), prefetch=False,
                           check_memory=False)
    send = next(r for r in two.breakdown["prefill"] if r["op"] == "pp_send_recv")["time_ms"] / 1e3
    assert two.ttft_s == pytest.approx(one.ttft_s + send, rel=1e-9)


def test_pipeline_microbatches_fill_the_bubble(llama70b, h100) -> None:
    w = Workload(batch=8, input_len=1024, output_len=16)
    serial = roofline.predict(llama70b, h100, workload=w, parallelism=Parallelism(tp=4, pp=4, microbatches=1),
                              prefetch=False, check_memory=False)
    filled = roofline.predict(llama70b, h100, workload=w, parallelism=Parallelism(tp=4, pp=4, microbatches=4),
                              prefetch=False, check_memory=False)
    assert filled.ttft_s < serial.ttft_s
    # memory-bound decode: each micro-batch re-reads its stage's weights, so it gains nothing
    assert filled.tpot_s == pytest.approx(serial.tpot_s, rel=0.05)


def test_dp_replicas_multiply_throughput(llama8b, h100) -> None:
    one = roofline.predict(llama8b, h100, batch=4, dp=1)
    four = roofline.predict(llama8b, h100, batch=4, dp=4)
    assert four.throughput_tok_s == pytest.approx(4 * one.throughput_tok_s)
    assert four.tpot_s == one.tpot_s


@pytest.mark.parametrize("override, message", [
    ({"hbm_bandwidth_GBps": 0}, "hbm_bandwidth_GBps: must be a number > 0"),
    ({"link_bandwidth_GBps": 0.0}, "link_bandwidth_GBps: must be a number > 0"),
    ({"gemm_efficiency": 1.5}, "gemm_efficiency: must be"),
    ({"links_per_device": 2.5}, "links_per_device: must be"),
])
def test_a_hardware_override_out_of_its_bounds_is_refused_in_python(override: dict, message: str) -> None:
    # the CLI and sweep files refuse these; roofline.predict and roofline.serve returned NaN (a zero
    # bandwidth) or a prediction from an impossible device, with numpy's RuntimeWarnings
    with pytest.raises(SpecError, match=message):
        roofline.predict("llama-3-8b", "h100-sxm", tp=2, **override)
    with pytest.raises(SpecError, match=message):
        roofline.serve("llama-3-8b", "h100-sxm", tp=2, concurrency=[4], **override)


@pytest.mark.parametrize("flag", ["prefetch", "prefetch_weights", "check_memory", "datasheet", "async_tp"])
def test_on_off_arguments_take_booleans(flag: str) -> None:
    # predict(prefetch="no") was truthy: PRESERVE prefetching turned on in silence
    with pytest.raises(SpecError, match=rf"predict: {flag}: expected true or false, got 'no'"):
        roofline.predict("llama-3-8b", "h100-sxm", **{flag: "no"})
    assert roofline.predict("llama-3-8b", "h100-sxm", prefetch=np.bool_(True)).prefetch


@pytest.mark.parametrize("flag", ["prefetch", "simulate_events", "datasheet"])
def test_serve_on_off_arguments_take_booleans(flag: str) -> None:
    with pytest.raises(SpecError, match=rf"serve: {flag}: expected true or false, got 'yes'"):
        roofline.serve("llama-3-8b", "h100-sxm", concurrency=[4], **{flag: "yes"})
