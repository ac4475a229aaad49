"""Memory as ordered tiers: L2 (a cache), HBM, then LPDDR/CXL; placement, timing, fit and outputs."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from typer.testing import CliRunner

import roofline
from roofline._specfile import read_yaml, resolve_spec
from roofline.cli.main import app
from roofline.engine import Scenario, evaluate_configs
from roofline.exceptions import SpecError
from roofline.graph import build_phase
from roofline.hardware import GiB, HardwareSpec, list_hardware, load_hardware
from roofline.placement import place_blocks
from roofline.predict import memory_per_device
from roofline.timing import HardwareArrays, op_times
from roofline.workload import Parallelism, Workload

#: llama-3-8b (bf16) on one GH200 with 32 x (32000 + 256) tokens of KV cache: 126 GiB, more than HBM
SPILL = dict(batch=32, input_len=32000, output_len=256)


def _spec_dict(name: str) -> dict:
    return copy.deepcopy(read_yaml(resolve_spec(name, "hardware_specs", "hardware")))


def _without_tiers(name: str) -> HardwareSpec:
    data = _spec_dict(name)
    data["memory"].pop("tiers", None)
    return HardwareSpec.from_dict(data, f"{name}-no-tiers")


def test_gh200_tiers_in_order_with_the_c2c_link_as_the_lpddr_limit() -> None:
    mem = load_hardware("gh200").memory
    assert [t.name for t in mem.tiers] == ["l2", "hbm", "lpddr"]
    assert [t.placement for t in mem.tiers] == [False, True, True]
    lpddr = mem.tiers[2]
    # LPDDR5X 512 GB/s behind NVLink-C2C at 450 GB/s per direction: read at min(512, 450)
    assert lpddr.bandwidth_Bps == 450e9
    assert lpddr.capacity_bytes == 480 * GiB
    assert mem.placement_capacity_bytes == (96 + 480) * GiB  # L2 is a cache: not counted


def test_gb200_and_gb300_get_half_a_grace_per_gpu() -> None:
    gb200 = load_hardware("gb200-nvl72").memory.extra_tiers[0]
    gb300 = load_hardware("gb300-nvl72").memory.extra_tiers[0]
    # GB200: 480 GB / 2 GPUs; min(512 / 2, 450 / 2) = 225 GB/s (the halved C2C link binds)
    assert (gb200.capacity_bytes, gb200.bandwidth_Bps) == (240 * GiB, 225e9)
    # GB300: 17 TB / 36 Graces / 2 = 236 GB; 14 TB/s / 36 / 2 = 194.4 GB/s < 225 (the memory binds)
    assert (gb300.capacity_bytes, gb300.bandwidth_Bps) == (236 * GiB, 194.4e9)


def test_placement_fills_hbm_first_then_spills_by_hand() -> None:
    hw = HardwareArrays.from_spec(load_hardware("gh200"))
    # 96 GiB HBM - 2 GiB activations = 94 free; 10 GiB weights fit; of 100 GiB KV, 84 stay in HBM and
    # 16 go to LPDDR: KV fraction 16 / 100 = 0.16, weights fraction 0
    placed = place_blocks(hw, 10 * GiB, 100 * GiB, 2 * GiB)
    assert placed.weight_tier_fraction[0, 0] == 0.0
    assert placed.kv_tier_fraction[0, 0] == pytest.approx(0.16, rel=1e-12)
    # weights larger than HBM: 94 GiB of 150 stay, 56 GiB spill (56/150); all the KV follows them
    placed = place_blocks(hw, 150 * GiB, 20 * GiB, 2 * GiB)
    assert placed.weight_tier_fraction[0, 0] == pytest.approx(56 / 150, rel=1e-12)
    assert placed.kv_tier_fraction[0, 0] == 1.0
    # pinned: the KV cache goes to LPDDR first even though HBM has room
    pinned = place_blocks(hw, 10 * GiB, 20 * GiB, 2 * GiB, {"kv_cache": "lpddr"})
    assert (pinned.weight_tier_fraction[0, 0], pinned.kv_tier_fraction[0, 0]) == (0.0, 1.0)


def test_bad_pins_are_refused() -> None:
    hw = HardwareArrays.from_spec(load_hardware("gh200"))
    with pytest.raises(SpecError, match="cannot be pinned"):
        place_blocks(hw, 1.0, 1.0, 0.0, {"activations": "lpddr"})
    with pytest.raises(SpecError, match="no 'l2' placement tier"):
        place_blocks(hw, 1.0, 1.0, 0.0, {"kv_cache": "l2"})


def test_reads_from_lpddr_are_timed_at_its_bandwidth_by_hand() -> None:
    spec, m = load_hardware("gh200"), roofline.load_model("llama-3-8b")
    w, par = Workload(**SPILL), Parallelism()
    mem = memory_per_device(m, w, par, 0.0)
    hw = place_blocks(HardwareArrays.from_spec(spec, prefetch=False), mem.weights_bytes, mem.kv_cache_bytes,
                      mem.activation_bytes)
    free_hbm = 96 * GiB - mem.activation_bytes - mem.weights_bytes
    kv_lpddr = (mem.kv_cache_bytes - free_hbm) / mem.kv_cache_bytes
    assert hw.kv_tier_fraction[0, 0] == pytest.approx(kv_lpddr, rel=1e-12)
    decode = build_phase(m, w, par, "decode")
    kv_len = np.array([32100.0])
    t = op_times(decode, hw, kv_len)
    i = decode.names.index("attention")
    kv_bytes = decode.kv_read_per_kv[i] * 32100.0 + decode.kv_read_bytes[i] + decode.kv_write_bytes[i]
    assert t.tier_bytes[0, i, 0] == pytest.approx(kv_bytes * kv_lpddr, rel=1e-12)
    # memory time: HBM part at 4000 GB/s x 0.85, LPDDR part at 450 GB/s x 0.83, one after the other
    hbm_part = float(t.hbm_bytes[i, 0]) / (4000e9 * 0.85)
    lpddr_part = kv_bytes * kv_lpddr / (450e9 * 0.83)
    assert t.memory_s[i, 0] == pytest.approx(hbm_part + lpddr_part, rel=1e-12)
    # the same op with everything in HBM reads the same bytes at the HBM rate only
    legacy = op_times(decode, HardwareArrays.from_spec(spec, prefetch=False), kv_len)
    assert legacy.hbm_bytes[i, 0] == pytest.approx(t.hbm_bytes[i, 0] + t.tier_bytes[0, i, 0], rel=1e-12)
    assert t.memory_s[i, 0] > legacy.memory_s[i, 0]


def test_superchip_kv_overflow_is_visible_in_the_breakdown_and_json() -> None:
    p = roofline.predict("llama-3-8b", "gh200", prefetch=False, **SPILL)
    d = p.to_dict()
    tiers = {t["tier"]: t for t in d["memory"]["tiers"]}
    assert tiers["lpddr"]["kv_cache_GiB"] > 40 and tiers["lpddr"]["weights_GiB"] == 0.0
    assert d["memory"]["capacity_GiB"] == 96 + 480 and d["memory"]["fits"]
    assert "lpddr holds" in d["memory"]["verdict"]
    attention = next(r for r in d["breakdown"]["decode"] if r["op"] == "attention")
    assert attention["tier"] == "lpddr" and attention["tier_bytes"]["lpddr"] > 0
    gemm = next(r for r in d["breakdown"]["decode"] if r["op"] == "o_proj")
    assert gemm["tier"] == "hbm" and gemm["tier_bytes"]["lpddr"] == 0.0
    # slower than the same device with a (hypothetical) HBM that holds it all
    all_hbm = roofline.predict("llama-3-8b", "gh200", prefetch=False, hbm_capacity_GiB=576, **SPILL)
    assert p.tpot_s > all_hbm.tpot_s


def test_engine_rows_equal_predict_with_tiers_and_sweep_the_lpddr_bandwidth() -> None:
    m, hw = roofline.load_model("llama-3-8b"), load_hardware("gh200")
    w = Workload(**SPILL)
    bw = np.array([100.0, 450.0, 2000.0])
    cap = np.array([480.0, 480.0, 30.0])
    out = evaluate_configs(Scenario(m, w, Parallelism(), hw), 3, prefetch=np.array([False, True, True]),
                           lpddr_bandwidth_GBps=bw, lpddr_capacity_GiB=cap)
    for i in range(3):
        p = roofline.predict(m, hw, workload=w, prefetch=i > 0, check_memory=False,
                             lpddr_bandwidth_GBps=float(bw[i]), lpddr_capacity_GiB=float(cap[i]), datasheet=True)
        assert out["tpot_ms"][i] == pytest.approx(p.tpot_s * 1e3, rel=1e-9)
        assert out["ttft_ms"][i] == pytest.approx(p.ttft_s * 1e3, rel=1e-9)
        assert bool(out["fits"][i]) == p.memory.fits
    assert not out["fits"][2]  # 96 + 30 GiB cannot hold 142 GiB
    with pytest.raises(SpecError, match="no such memory tier"):
        evaluate_configs(Scenario(m, w, Parallelism(), load_hardware("h100-sxm")), 1, lpddr_bandwidth_GBps=100.0)


@pytest.mark.parametrize("device", list_hardware())
def test_a_tier_nothing_is_placed_in_changes_no_prediction(device: str) -> None:
    """Every bundled device predicts as on the HBM-only path (its spec without tiers, plus an
    unused LPDDR tier for the others) when the model fits in HBM."""
    data = _spec_dict(device)
    data["memory"]["tiers"] = [{"name": "cxl", "capacity_GiB": 64, "bandwidth_GBps": 1, "efficiency": 0.5}]
    with_tier = HardwareSpec.from_dict(data, f"{device}-cxl")
    dtype = "bf16" if "bf16" in with_tier.compute.peak_flops else "int8"
    kw = dict(batch=2, input_len=512, output_len=8, dtype=dtype, check_memory=False)
    legacy = roofline.predict("llama-3-8b", _without_tiers(device), **kw).to_dict()
    tiered = roofline.predict("llama-3-8b", with_tier, **kw).to_dict()
    for key in ("ttft_ms", "tpot_ms", "e2e_ms", "baseline_tpot_ms", "throughput_tok_s"):
        assert tiered[key] == legacy[key]
    strip = ("tier", "tier_bytes")
    assert [{k: v for k, v in r.items() if k not in strip} for r in tiered["breakdown"]["decode"]] \
        == legacy["breakdown"]["decode"]


def test_spec_tier_errors_name_file_and_field() -> None:
    data = _spec_dict("gh200")
    data["memory"]["tiers"][0]["name"] = "flash"
    with pytest.raises(SpecError, match=r"memory\.tiers\[0\]\.name: 'flash' is not allowed"):
        HardwareSpec.from_dict(data, "x.yaml")
    data = _spec_dict("gh200")
    data["memory"]["tiers"].append(dict(data["memory"]["tiers"][0]))
    with pytest.raises(SpecError, match="unique"):
        HardwareSpec.from_dict(data, "x.yaml")
    data = _spec_dict("gh200")
    data["memory"]["tiers"][0]["efficiency"] = 1.5
    with pytest.raises(SpecError, match=r"tiers\[0\]\.efficiency: must be <= 1"):
        HardwareSpec.from_dict(data, "x.yaml")


def test_cli_breakdown_shows_the_tier_and_pin_errors_exit_2() -> None:
    runner = CliRunner()
    args = ["predict", "-m", "llama-3-8b", "-H", "gh200", "--batch", "32", "--input", "32000", "--output", "256",
            "--no-prefetch", "--breakdown"]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "lpddr MiB" in res.output and "slowest tier" in res.output
    for pin, message in (("kv=lpddr", "cannot be pinned"), ("kv_cache", "expected BLOCK=TIER"),
                         ("weights=cxl", "no 'cxl' placement tier")):
        res = runner.invoke(app, ["predict", "-m", "llama-3-8b", "-H", "gh200", "--pin", pin])
        assert res.exit_code == 2 and message in res.output, res.output
        assert "Traceback" not in res.output
    res = runner.invoke(app, ["predict", "-m", "llama-3-8b", "-H", "gh200", "--pin", "kv_cache=lpddr", "--json"])
    assert res.exit_code == 0, res.output
    assert '"kv_cache_GiB": 0.0' in res.output  # nothing of the KV cache left in HBM


def test_bytes_in_a_slower_tier_are_not_prefetched() -> None:
    # everything pinned to LPDDR: nothing lives in HBM, so PRESERVE has nothing to prefetch into L2
    kw = dict(batch=4, input_len=1024, output_len=16, tp=4, pins={"weights": "lpddr", "kv_cache": "lpddr"})
    on = roofline.predict("llama-3-8b", "gh200", prefetch=True, **kw)
    off = roofline.predict("llama-3-8b", "gh200", prefetch=False, **kw)
    assert on.tpot_s == off.tpot_s and on.ttft_s == off.ttft_s
    # the same case in HBM does gain from prefetching
    hbm = {**kw, "pins": None}
    assert roofline.predict("llama-3-8b", "gh200", prefetch=True, **hbm).tpot_s \
        < roofline.predict("llama-3-8b", "gh200", prefetch=False, **hbm).tpot_s


def test_bytes_in_a_slower_tier_cost_that_tiers_energy() -> None:
    # the same bytes move whether the KV cache sits in HBM or in LPDDR; those read from LPDDR over
    # NVLink-C2C cost its 50 pJ/B (cost_specs tiers.pj_per_byte.lpddr) instead of HBM3's 24 pJ/B; both
    # then cross the die to the SMs (7.2 pJ/B, energy.noc_pj_per_byte)
    from roofline.cost import load_cost_parameters
    from roofline.power import energy_rates, pass_energy_j

    spec, m = load_hardware("gh200"), roofline.load_model("llama-3-8b")
    w, par = Workload(**SPILL), Parallelism()
    mem = memory_per_device(m, w, par, 0.0)
    plain = HardwareArrays.from_spec(spec, prefetch=False)
    spilled = place_blocks(plain, mem.weights_bytes, mem.kv_cache_bytes, mem.activation_bytes)
    decode = build_phase(m, w, par, "decode")
    rates = energy_rates(load_cost_parameters(), spec)
    kv_len = np.array([32100.0])
    t_spilled, t_plain = op_times(decode, spilled, kv_len), op_times(decode, plain, kv_len)
    assert t_spilled.tier_bytes is not None and t_spilled.memory_s.sum() > t_plain.memory_s.sum()
    assert rates.hbm_byte_j == pytest.approx(31.2e-12) and rates.tier_byte_j == pytest.approx((57.2e-12,))
    moved = float(decode.count @ t_spilled.tier_bytes[0, :, 0])  # bytes per step read from LPDDR
    assert moved > 0
    assert pass_energy_j(decode, t_spilled, None, rates)[0] == pytest.approx(
        pass_energy_j(decode, t_plain, None, rates)[0] + moved * (50e-12 - 24e-12), rel=1e-12)


def test_sweep_files_take_tier_parameters_and_check_their_bounds() -> None:
    from roofline.sweepfile import sweep_from_dict

    base = {"name": "t", "hardware": "gh200", "model": "llama-3-8b",
            "workload": {"batch": 32, "input_len": 32000, "output_len": 256}, "parallelism": {"tp": 1}}
    spec = sweep_from_dict({**base, "sweep": {"lpddr_bandwidth_GBps": [225, 450]}}, "t.yaml")
    assert [p.name for p in spec.parameters] == ["lpddr_bandwidth_GBps"]
    with pytest.raises(SpecError, match=r"lpddr_bandwidth_GBps.*> 0"):
        sweep_from_dict({**base, "sweep": {"lpddr_bandwidth_GBps": [0, 450]}}, "t.yaml")
    with pytest.raises(SpecError, match=r"lpddr_efficiency.*<= 1"):
        sweep_from_dict({**base, "sweep": {"lpddr_efficiency": [0.5, 1.5]}}, "t.yaml")
