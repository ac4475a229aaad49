"""The compiled static kernel agrees with the numpy reference (evaluate_pass + mean_over_steps) to
1e-12 on every feature it covers, and hands the rest to numpy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import roofline
from roofline.cost import load_cost_parameters
from roofline.graph import build_phase
from roofline.placement import place_blocks
from roofline.power import energy_rates
from roofline.predict import decode_kv_range, memory_per_device
from roofline.static_kernel import covers, reference_phases, static_phases
from roofline.timing import MIN_GEMM_BLOCK, HardwareArrays
from roofline.workload import Parallelism, PrefetchSettings, Workload

pytest.importorskip("numba", reason="numba is not installed: the engine runs the numpy reference only")

N = 48


def _sweep(seed: int) -> dict[str, np.ndarray]:
    """Configurations on both sides of every max/min: L2 from none to 512 MiB, slow to fast HBM and links."""
    rng = np.random.default_rng(seed)
    return dict(l2_capacity_MiB=rng.uniform(0, 512, N), hbm_bandwidth_GBps=rng.uniform(300, 10000, N),
                link_bandwidth_GBps=rng.uniform(5, 900, N), launch_overhead_us=rng.uniform(0, 8, N),
                prefetch_threshold_fraction=rng.uniform(0, 1, N), prefetch_launch_gap_fraction=rng.uniform(0, 1, N),
                activation_l2_hit=rng.uniform(0, 1, N))


def _phases(model: str, hardware: str, workload: Workload, par: Parallelism, *, seed: int = 0, die: bool = True,
            settings: PrefetchSettings = PrefetchSettings(enabled=True)):  # noqa: B008
    spec = roofline.load_hardware(hardware)
    if not die:
        spec = replace(spec, die=None)
    m = roofline.load_model(model)
    prefetch = np.random.default_rng(seed + 1).random(N) < 0.8  # a few configurations without prefetching
    hw = HardwareArrays.from_spec(spec, N, prefetch=prefetch, collective_library=workload.collective_library,
                                  async_tp=workload.async_tp, prefetch_settings=settings, **_sweep(seed))
    mem = memory_per_device(m, workload, par, 0.0)
    hw = place_blocks(hw, mem.weights_bytes, mem.kv_cache_bytes, mem.activation_bytes, {}, spec.name)
    prefill, decode = build_phase(m, workload, par, "prefill"), build_phase(m, workload, par, "decode")
    rates = energy_rates(load_cost_parameters(), spec) if spec.die is not None else None
    first, last = decode_kv_range(workload)
    return hw, (prefill, decode, hw, rates, first, last)


def _assert_agree(args: tuple) -> None:
    fast, ref = static_phases(*args, compiled=True), reference_phases(*args)
    for name in ("ttft_s", "ttft_base_s", "prefill_j", "prefill_capped_s"):
        np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-12, atol=0, err_msg=name)
    for col in range(ref.decode_means.shape[1]):
        want = ref.decode_means[:, col]
        # memory_s is a difference of sums: compare it on the scale of the step time
        atol = 1e-12 * float(np.nanmax(np.abs(ref.decode_means[:, 1]))) if col == 3 else 0.0
        np.testing.assert_allclose(fast.decode_means[:, col], want, rtol=1e-12, atol=atol, err_msg=f"column {col}")


CASES = {
    # the benchmark scenario: TP all-reduces, prefetch of weights and KV cache
    "llama-70b-tp8-h100": ("llama-3-70b", "h100-sxm", Workload(batch=4, input_len=4096, output_len=512), Parallelism(tp=8)),
    # decode long enough to bisect, batch large enough to turn compute-bound on slow configurations
    "llama-8b-long": ("llama-3-8b", "h100-sxm", Workload(batch=64, input_len=30000, output_len=3000), Parallelism(tp=2)),
    # sliding-window attention (windowed operators) and MoE
    "gpt-oss-window": ("gpt-oss-20b", "h200-sxm", Workload(batch=8, input_len=2000, output_len=600), Parallelism(tp=4)),
    # chunked attention (pieces) and expert parallelism (all-to-all segments)
    "llama-4-chunked-ep": ("llama-4-scout-17b-16e", "b200", Workload(batch=16, input_len=9000, output_len=1500),
                           Parallelism(tp=4, ep=4)),
    # pipeline stages with micro-batches (send/recv, makespans)
    "pipeline": ("llama-3-70b", "a100-sxm-80gb", Workload(batch=8, input_len=1024, output_len=256), Parallelism(tp=2, pp=4)),
    # full mesh (HCCS), the paper's device
    "ascend-full-mesh": ("qwen2-72b", "ascend-910b", Workload.with_dtype("int8", batch=4, input_len=8192, output_len=4096),
                         Parallelism(tp=8)),
    # an efficiency curve by GEMM size, across nodes
    "tpu-curve": ("llama-3-8b", "tpu-v6e", Workload(batch=32, input_len=2048, output_len=512), Parallelism(tp=8)),
    # FP8 weights on a device whose GEMM units differ by dtype
    "fp8-mixtral": ("mixtral-8x7b", "h100-sxm", Workload.with_dtype("fp8", batch=32, input_len=4000, output_len=900),
                    Parallelism(tp=2, ep=2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_kernel_agrees_with_numpy_reference(case: str) -> None:
    hw, args = _phases(*CASES[case], seed=len(case))
    assert covers(hw)
    _assert_agree(args)


def test_kernel_agrees_without_die_block_and_with_kv_only_prefetch() -> None:
    _, args = _phases("llama-3-70b", "h100-sxm", Workload(batch=4, input_len=4096, output_len=512), Parallelism(tp=8),
                      die=False, settings=PrefetchSettings(enabled=True, weights=False))
    assert args[3] is None
    _assert_agree(args)
    assert np.all(np.isnan(static_phases(*args, compiled=True).prefill_j))


def test_decode_mean_is_exact_where_the_step_bends() -> None:
    """One configuration whose decode step turns from memory- to compute-bound inside the run:
    the kernel's mean equals the brute-force mean over every step (hand check of the bisection)."""
    w = Workload(batch=256, input_len=100, output_len=400)
    _, args = _phases("llama-3-8b", "h100-sxm", w, Parallelism(), seed=3)
    prefill, decode, hw, rates, first, last = args
    fast = static_phases(*args, compiled=True).decode_means
    brute = sum(reference_phases(prefill, decode, hw, rates, kv, kv).decode_means for kv in range(first, last + 1))
    np.testing.assert_allclose(fast, brute / (last - first + 1), rtol=1e-11)


def test_spilled_placements_and_async_tp_take_the_numpy_path() -> None:
    hw, args = _phases("llama-3-8b", "gh200", Workload(batch=32, input_len=32000, output_len=64), Parallelism())
    assert hw.spills and not covers(hw)
    np.testing.assert_array_equal(static_phases(*args, compiled=True).decode_means, reference_phases(*args).decode_means)
    hw, _ = _phases("llama-3-70b", "h100-sxm", Workload(batch=4, input_len=4096, output_len=64, async_tp=True),
                    Parallelism(tp=8))
    assert not covers(hw)


def test_small_evaluations_stay_on_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below KERNEL_MIN_CONFIGS the numpy path runs (no numba start-up in a search worker)."""
    import roofline.static_kernel as sk

    _, args = _phases("llama-3-8b", "h100-sxm", Workload(batch=4, input_len=512, output_len=64), Parallelism())
    assert N < sk.KERNEL_MIN_CONFIGS
    monkeypatch.setattr(sk, "_compiled", lambda: pytest.fail("the kernel ran for a small evaluation"))
    np.testing.assert_array_equal(static_phases(*args).decode_means, reference_phases(*args).decode_means)


def test_kernel_block_constant_matches_timing() -> None:
    from roofline import _static_numba

    assert _static_numba.MIN_GEMM_BLOCK == MIN_GEMM_BLOCK


@pytest.mark.parametrize(("tp", "swept"), [
    (8, {"link_bandwidth_GBps": [50.0, 100.0, 450.0]}),  # one tier, link bandwidth repeated
    (16, {"link_bandwidth_GBps": [50.0, 450.0], "inter_node_bandwidth_GBps": [25.0, 50.0]}),  # two vary
    (16, {"link_latency_us": [1.0, 3.0]}),
    (8, {}),  # nothing varies: one setting
])
def test_collectives_timed_once_per_distinct_link_setting_are_the_same_numbers(
        monkeypatch: pytest.MonkeyPatch, tp: int, swept: dict[str, list[float]]) -> None:
    """A grid chunk repeats a few link settings: comm_times times each once and spreads the
    times back; they must equal timing every configuration (the formulas are elementwise)."""
    from roofline import timing

    model, spec = roofline.load_model("llama-3-70b"), roofline.load_hardware("h100-sxm")
    w = Workload.for_model(model, batch=4, input_len=1024, output_len=64)
    n = 1000
    rng = np.random.default_rng(3)
    params = {k: np.asarray(v)[rng.integers(0, len(v), n)] for k, v in swept.items()}
    hw = HardwareArrays.from_spec(spec, n, l2_capacity_MiB=rng.uniform(0, 256, n), **params)
    where = timing._distinct_links(hw)[2]
    assert (where is None) == (len(swept) > 1)  # two varying settings: timed per configuration
    for phase in ("prefill", "decode"):
        table = build_phase(model, w, Parallelism(tp=tp), phase)
        once = timing.comm_times(table, hw)
        monkeypatch.setattr(timing, "_DISTINCT_MIN_CONFIGS", 10**9)
        monkeypatch.setattr(timing, "_LAST_LINKS", [])
        every = timing.comm_times(table, hw)
        monkeypatch.undo()
        assert np.array_equal(once, every) and np.all(once[table.is_comm] > 0)
