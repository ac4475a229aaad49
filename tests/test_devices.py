"""Bundled devices: spec laws, rack-scale NVLink domains against 8-GPU nodes, and the whole
model x device matrix through `roofline predict`."""

from __future__ import annotations

import json
import math

import pytest

import roofline
from roofline._specfile import read_yaml, resolve_spec
from roofline.collectives import TierArrays, sendrecv_s
from roofline.exceptions import InfeasibleConfigError
from roofline.hardware import hardware_sources, list_hardware, load_hardware
from roofline.model import list_models, load_model
from roofline.predict import memory_per_device
from roofline.workload import Parallelism, Workload
from tests.test_cli import cli  # noqa: F401 (the fixture that runs the real entry point)

DEVICES = list_hardware()
MODELS = list_models()


# ---- spec laws ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", DEVICES)
def test_narrower_formats_are_never_slower(name: str) -> None:
    # dense peaks: bf16 <= fp8 <= fp6 <= fp4 where a device has them (a sparse figure slipped in
    # for one format would usually break the order against its neighbours)
    peaks = load_hardware(name).compute.peak_flops
    chain = [peaks[d] for d in ("bf16", "fp8", "fp6", "fp4") if d in peaks]
    assert chain == sorted(chain)


@pytest.mark.parametrize("name", ["b200", "b300", "gb200-nvl72", "gb300-nvl72"])
def test_nvlink5_is_900_GBps_per_direction_not_the_1800_bidirectional_total(name: str) -> None:
    hw = load_hardware(name)
    assert hw.intra_node.device_bandwidth_Bps == pytest.approx(900e9)


def test_rack_scale_domains_and_pcie() -> None:
    assert load_hardware("gb200-nvl72").devices_per_node == 72
    assert load_hardware("gb300-nvl72").devices_per_node == 72
    pcie = load_hardware("l40s").intra_node
    # PCIe Gen4 x16: 64 GB/s bidirectional, 32 per direction, one link
    assert (pcie.links_per_device, pcie.device_bandwidth_Bps) == (1, pytest.approx(32e9))


def _bare_numbers(node: object, key: str = "") -> list[str]:
    """Keys of the numbers of a spec file given without {value, source|estimate}."""
    if isinstance(node, dict):
        if "value" in node:
            return [] if ("source" in node or "estimate" in node) else [key]
        return [k for child, v in node.items() for k in _bare_numbers(v, f"{key}.{child}".lstrip("."))]
    if isinstance(node, list):
        return [k for i, v in enumerate(node) for k in _bare_numbers(v, f"{key}[{i}]")]
    is_number = isinstance(node, (int, float)) and not isinstance(node, bool)
    return [key] if is_number and key != "schema_version" else []


@pytest.mark.parametrize("name", DEVICES)
def test_every_number_is_sourced_or_estimated(name: str) -> None:
    cited = hardware_sources(name)
    peaks = load_hardware(name).compute.peak_flops
    keys = {c.key for c in cited}
    assert {f"compute.peak_tflops.{d}" for d in peaks} <= keys
    assert all(c.text.strip() for c in cited)
    # the loader accepts a plain number (a user's spec); a bundled one must say where it comes from
    assert _bare_numbers(read_yaml(resolve_spec(name, "hardware_specs", "hardware"))) == []


def test_a_bare_number_is_caught() -> None:
    spec = {"schema_version": 2, "memory": {"hbm_capacity_GiB": 80, "tiers": [{"capacity_GiB": {"value": 1}}],
                                            "hbm_bandwidth_GBps": {"value": 3350, "source": "datasheet"}}}
    assert _bare_numbers(spec) == ["memory.hbm_capacity_GiB", "memory.tiers[0].capacity_GiB"]


def test_list_hardware_shows_every_device_with_its_sources(cli) -> None:  # noqa: F811
    out = cli("list", "hardware", "--sources")
    assert out.exit_code == 0
    for name in DEVICES:
        assert f"{name}:" in out.stdout
    rows = json.loads(cli("list", "hardware", "--json", "--sources").stdout)
    gb300 = next(r for r in rows if r["name"] == "gb300-nvl72")
    fp4 = next(n for n in gb300["numbers"] if n["key"] == "compute.peak_tflops.fp4")
    assert fp4["value"] == 15000 and "1,080 PF dense" in fp4["source"]


# ---- a 72-GPU NVLink domain against 8-GPU nodes ------------------------------------------------

W405 = dict(batch=1, input_len=1024, output_len=16)


def _scale_out(p: roofline.Prediction) -> dict[str, float]:
    return {phase: sum(r["scale_out_bytes"] for r in rows) for phase, rows in p.breakdown.items()}


def test_llama405b_tp16_in_nvl72_has_no_scale_out_traffic_tp8_pp2_on_two_nodes_does() -> None:
    rack = roofline.predict("llama-3.1-405b", "gb200-nvl72", tp=16, **W405, datasheet=True)
    nodes = roofline.predict("llama-3.1-405b", "b200", tp=8, pp=2, **W405, datasheet=True)
    assert _scale_out(rack) == {"prefill": 0.0, "decode": 0.0}
    assert _scale_out(nodes)["decode"] > 0 and _scale_out(nodes)["prefill"] > 0
    # the only scale-out op of TP 8 x PP 2 is the stage-to-stage send over the network:
    # decode sends 1 token x 16,384 hidden x 2 B = 32,768 B; 12 us + 32,768 / (50 GB/s x 0.85)
    # = 12.77 us, plus the 3.5 us launch
    send = next(r for r in nodes.breakdown["decode"] if r["op"] == "pp_send_recv")
    assert [r["op"] for r in nodes.breakdown["decode"] if r["scale_out_bytes"]] == ["pp_send_recv"]
    hand = 12e-6 + 32_768 / (50e9 * 0.85) + 3.5e-6
    assert send["time_per_call_us"] == pytest.approx(hand * 1e6)
    net = load_hardware("b200").inter_node
    tier = TierArrays(net.link_bandwidth_Bps, 1, net.latency_s, net.efficiency, False)
    assert float(sendrecv_s(32_768, tier)) + 3.5e-6 == pytest.approx(hand)
    # TP 16 on 8-GPU nodes would put every all-reduce on the network
    split = roofline.predict("llama-3.1-405b", "b200", tp=16, **W405, datasheet=True)
    assert _scale_out(split)["decode"] > 0
    assert rack.tpot_s < split.tpot_s


def test_the_same_pipeline_inside_one_domain_stays_on_nvlink() -> None:
    rack = roofline.predict("llama-3.1-405b", "gb200-nvl72", tp=8, pp=2, **W405)
    assert _scale_out(rack) == {"prefill": 0.0, "decode": 0.0}


def test_a_pipeline_beyond_72_gpus_leaves_the_nvl72_domain_over_the_scale_out_network() -> None:
    # TP 8 x PP 9 = 72 GPUs fill one rack; TP 8 x PP 16 = 128 GPUs span two racks, so a stage's
    # activations cross the scale-out network (as TP 8 x PP 2 does between two 8-GPU nodes)
    kw = dict(batch=16, input_len=512, output_len=4, tp=8, check_memory=False)
    one_rack = roofline.predict("llama-3.1-405b", "gb200-nvl72", pp=9, **kw)
    two_racks = roofline.predict("llama-3.1-405b", "gb200-nvl72", pp=16, **kw)
    assert _scale_out(one_rack) == {"prefill": 0.0, "decode": 0.0}
    sends = {r["op"] for rows in two_racks.breakdown.values() for r in rows if r["scale_out_bytes"]}
    assert sends == {"pp_send_recv"}


def test_expert_parallelism_up_to_64_stays_inside_the_nvl72_domain() -> None:
    kw = dict(batch=64, input_len=256, output_len=8, tp=1, dp=64, ep=64)
    rack = roofline.predict("qwen3-30b-a3b", "gb200-nvl72", **kw)
    nodes = roofline.predict("qwen3-30b-a3b", "b200", **kw)
    assert _scale_out(rack)["decode"] == 0.0
    assert _scale_out(nodes)["decode"] > 0


# ---- every bundled model on every bundled device -----------------------------------------------


def _tp(model_name: str, device: str) -> int:
    """TP 8 where the heads allow it (8-GPU nodes and NVL72 alike), else 1."""
    try:
        Parallelism(tp=8).check(load_model(model_name))
        return 8
    except InfeasibleConfigError:
        return 1


def _finite(node: object) -> bool:
    if isinstance(node, float):
        return math.isfinite(node)
    if isinstance(node, dict):
        return all(_finite(v) for v in node.values())
    if isinstance(node, list):
        return all(_finite(v) for v in node)
    return True


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("model_name", MODELS)
def test_predict_runs_where_the_model_fits_and_refuses_cleanly_elsewhere(cli, model_name: str,  # noqa: F811
                                                                         device: str) -> None:
    tp = _tp(model_name, device)
    m = load_model(model_name)
    w = Workload.for_model(m, batch=1, input_len=256, output_len=8)
    fits = memory_per_device(m, w, Parallelism(tp=tp), load_hardware(device).memory.placement_capacity_bytes).fits
    out = cli("predict", "-m", model_name, "-H", device, "--tp", str(tp), "--input", "256", "--output", "8",
              "--json")
    if fits:
        assert out.exit_code == 0, out.stderr
        d = json.loads(out.stdout)
        assert _finite(d) and d["tpot_ms"] > 0 and d["ttft_ms"] > 0
    else:
        assert out.exit_code == 2
        assert len(out.stderr.strip().splitlines()) == 1 and "does not fit" in out.stderr


# `roofline serve` shares predict's graph, timing and memory check, but reserves memory as a serving
# engine does: the weights plus the activations of one full token budget must leave room for a KV
# cache inside gpu_memory_utilization x HBM plus the further tiers (Grace LPDDR5X), which hold
# what HBM does not, as in predict (roofline.serving.capacity.serving_placement). Each model is served on one device, and each device
# serves a small model (runs everywhere) and Llama-3.1-405B at TP 8 (812 GB of bf16 weights:
# refused on the 80 GB parts, served on the large ones), so both paths run on every device (69
# cases, not the 608 of the cross product, whose per-scenario step-cost tables would take many
# minutes of CI; the whole product was run by hand, see docs/validation.md).
SERVE_CASES = sorted({(m, "h200-sxm") for m in MODELS} | {("llama-3.1-8b", d) for d in DEVICES}
                     | {("llama-3.1-405b", d) for d in DEVICES})


def _serve_fits(model_name: str, device: str, tp: int) -> bool:
    """Weights + activations of one token budget within the engine's share of HBM plus the
    further memory tiers (vLLM defaults, the CLI's default framework): the condition for a KV
    cache of at least one block."""
    from roofline.serving import engine_defaults

    m, s = load_model(model_name), engine_defaults("vllm")
    w = Workload.for_model(m, batch=1, input_len=s.max_num_batched_tokens, output_len=1)
    mem = memory_per_device(m, w, Parallelism(tp=tp), 0.0)
    memory = load_hardware(device).memory
    free = s.gpu_memory_utilization * memory.hbm_capacity_bytes + sum(t.capacity_bytes for t in memory.extra_tiers)
    return mem.weights_bytes + mem.activation_bytes < free


@pytest.mark.parametrize(("model_name", "device"), SERVE_CASES)
def test_serve_runs_where_the_model_fits_and_refuses_cleanly_elsewhere(cli, model_name: str,  # noqa: F811
                                                                       device: str) -> None:
    tp = _tp(model_name, device)
    out = cli("serve", "-m", model_name, "-H", device, "--tp", str(tp), "--input", "256", "--output", "16",
              "--concurrency", "4", "--json")
    if _serve_fits(model_name, device, tp):
        assert out.exit_code == 0, out.stderr
        rows = json.loads(out.stdout)["rows"]
        assert _finite(rows) and rows[0]["tpot_ms"] > 0 and rows[0]["ttft_ms"] > 0
    else:
        assert out.exit_code == 2, out.stdout[:500]
        assert len(out.stderr.strip().splitlines()) == 1 and "no room for a KV cache" in out.stderr, out.stderr


def test_llama_405b_is_served_on_the_large_parts_and_refused_on_the_80_GB_ones() -> None:
    # 405.9e9 parameters x 2 B / 8 = 101.5 GB = 94.5 GiB of weights per device at TP 8: above
    # 0.9 x 80 GiB = 72 GiB, below 0.9 x 141 GiB = 127 GiB
    assert not _serve_fits("llama-3.1-405b", "h100-sxm", 8)
    assert not _serve_fits("llama-3.1-405b", "a100-sxm-80gb", 8)
    assert _serve_fits("llama-3.1-405b", "h200-sxm", 8) and _serve_fits("llama-3.1-405b", "b300", 8)
