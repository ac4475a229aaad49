"""A measured cluster's scale-out network (roofline.hardware.with_network) and the NCCL protocols
it allows: closed forms by hand, bad input, and the validation rows that use it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from roofline import collectives as c
from roofline.exceptions import SpecError
from roofline.hardware import NCCL_PROTOCOL_NAMES, list_networks, load_hardware, with_network
from roofline.timing import HardwareArrays
from tests.conftest import PROJECT, needs_data, one_line_error

H100_NVLINK = c.TierArrays(link_Bps=25e9, links=18, latency_s=0.6e-6, efficiency=0.82, full_mesh=False)
NET = c.TierArrays(link_Bps=25e9, links=1, latency_s=12e-6, efficiency=0.85, full_mesh=False, network=True)


def test_protocol_names_match_the_cost_model() -> None:
    assert tuple(c.NCCL_PROTOCOLS) == NCCL_PROTOCOL_NAMES


def test_simple_only_ring_by_hand() -> None:
    # 2 KB ring all-reduce on 8 H100s with only Simple allowed (NCCL_PROTO=Simple): base 8.4 us +
    # 14 steps x (0.6 x 3.4/0.6 = 3.4 us) + 1.75 x 2048 B / 369 GB/s = 8.4 + 47.6 + 0.0097 = 56.01 us
    # (all protocols: LL, 6.6 + 14 x 0.6 + 1.75 x 2048 / 92.25 GB/s = 15.04 us)
    simple = replace(H100_NVLINK, protocols=("Simple",))
    expected = 8.4e-6 + 14 * 3.4e-6 + 1.75 * 2048 / (18 * 25e9 * 0.82)
    assert c.ring_allreduce_s(2048, 8, simple) == pytest.approx(expected, rel=1e-9)
    assert expected == pytest.approx(56.01e-6, rel=1e-3)
    assert c.ring_allreduce_s(2048, 8, H100_NVLINK) == pytest.approx(15.04e-6, rel=1e-3)


def test_alltoall_without_ll_uses_simple() -> None:
    # 64 KiB on 8 devices is 8 KiB per peer: LL when allowed, else Simple:
    # 8.4 + 3.4 us + 7/8 x 65536 B / 369 GB/s = 11.9554 us
    simple = replace(H100_NVLINK, protocols=("Simple",))
    expected = 8.4e-6 + 3.4e-6 + 57344 / 369e9
    assert c.alltoall_s(65536, 8, simple) == pytest.approx(expected, rel=1e-9)
    assert c.alltoall_s(65536, 8, H100_NVLINK) < expected


def test_the_networks_protocols_hold_inside_the_nodes_of_a_spanning_group() -> None:
    # 2 x 8 GPUs, 2 KB: 2 x the in-node all-gather (8 GPUs, spanning nodes: LL keeps 1/4) plus the
    # ring across 2 nodes (2 steps x 12 us + 2 x 1/2 x 256 B / 21.25 GB/s). With Simple only the
    # in-node part is Simple's: 2 x (8.4 + 7 x 3.4 + 7/8 x 2048 / 369 GB/s) = 64.41 us
    simple_net = replace(NET, protocols=("Simple",))
    across = 2 * 12e-6 + 256 / 21.25e9
    in_node = 8.4e-6 + 7 * 3.4e-6 + 7 / 8 * 2048 / 369e9
    got = c.collective_time_s("allreduce", 2048.0, 16, H100_NVLINK, simple_net, 8, "nccl")
    assert got == pytest.approx(2 * in_node + across, rel=1e-9)
    assert got == pytest.approx(88.4e-6, rel=1e-3)
    # inside one node the network's rule does not apply
    one_node = c.collective_time_s("allreduce", 2048.0, 8, H100_NVLINK, simple_net, 8, "nccl")
    assert one_node == pytest.approx(c.ring_allreduce_s(2048.0, 8, H100_NVLINK))
    # allowing fewer protocols never makes a collective faster
    for size in np.geomspace(2048, 2**28, 9):
        assert (c.collective_time_s("allreduce", size, 16, H100_NVLINK, NET, 8, "nccl")
                <= c.collective_time_s("allreduce", size, 16, H100_NVLINK, simple_net, 8, "nccl") * (1 + 1e-12))


def test_protocols_alone_change_a_prediction(tmp_path) -> None:
    # the per-configuration cache of collective times must tell networks apart by their protocols
    import roofline

    path = tmp_path / "simple.yaml"
    path.write_text("name: simple\ninter_node: {nccl_protocols: [Simple]}\n")
    h100 = load_hardware("h100-sxm")
    kw = dict(tp=16, batch=1, input_len=128, output_len=4)
    plain = roofline.predict("llama-3-70b", h100, **kw).tpot_s
    simple = roofline.predict("llama-3-70b", with_network(h100, path), **kw).tpot_s
    assert simple > plain
    assert roofline.predict("llama-3-70b", h100, **kw).tpot_s == plain


def test_gcp_a3_mega_network() -> None:
    assert "gcp-a3-mega" in list_networks()
    h100 = load_hardware("h100-sxm")
    a3 = with_network(h100, "gcp-a3-mega")
    # 1,600 Gb/s over 8 NICs, one per GPU: 25 GB/s per direction; NCCL_PROTO=Simple
    assert a3.inter_node.link_bandwidth_Bps == 25e9
    assert a3.inter_node.protocols == ("Simple",)
    # what the file does not give stays the device's
    assert a3.inter_node.latency_s == h100.inter_node.latency_s
    assert a3.inter_node.efficiency == h100.inter_node.efficiency
    assert a3.intra_node == h100.intra_node and h100.inter_node.protocols == NCCL_PROTOCOL_NAMES
    hw = HardwareArrays.from_spec(a3)
    assert hw.inter().protocols == ("Simple",)
    # every number of a bundled network names its source
    for name in list_networks():
        data = yaml.safe_load((PROJECT / "hardware_specs" / "networks" / f"{name}.yaml").read_text())
        for key, value in data["inter_node"].items():
            assert isinstance(value, dict) and ("source" in value or "estimate" in value), (name, key)


@pytest.mark.parametrize(("block", "message"), [
    ({"bandwidth_GBps": -1}, "inter_node.bandwidth_GBps: must be >= 0"),
    ({"bandwidth_GBps": 0}, "inter_node: hardware parameter inter_node_bandwidth_GBps"),
    ({"nccl_protocols": ["LL", "Fast"]}, "nccl_protocols: expected a non-empty list of LL, LL128, Simple"),
    ({"nccl_protocols": []}, "nccl_protocols"),
    ({"speed": 3}, "speed: unknown key"),
])
def test_bad_network_names_the_file_and_field(tmp_path, block, message) -> None:
    path = tmp_path / "net.yaml"
    path.write_text(yaml.safe_dump({"name": "net", "inter_node": block}))
    with pytest.raises(SpecError, match=message) as err:
        with_network(load_hardware("h100-sxm"), path)
    assert str(path) in str(err.value)
    with pytest.raises(SpecError, match="unknown network 'gcp-a3'.*gcp-a3-mega"):
        with_network(load_hardware("h100-sxm"), "gcp-a3")


def test_bad_nccl_protocols_in_a_device_spec(tmp_path) -> None:
    from roofline.hardware import HardwareSpec

    data = yaml.safe_load(Path(load_hardware("h100-sxm").source_file).read_text())
    data["interconnect"]["inter_node"]["nccl_protocols"] = {"value": ["Simple", "LL"], "source": "test"}
    assert HardwareSpec.from_dict(data).inter_node.protocols == ("LL", "Simple")
    data["interconnect"]["inter_node"]["nccl_protocols"] = "Simple"
    with pytest.raises(SpecError, match="interconnect.inter_node.nccl_protocols"):
        HardwareSpec.from_dict(data, "dev.yaml")


@needs_data
def test_the_a3_mega_rows_use_their_clusters_network() -> None:
    from roofline.validation import load_cases
    from roofline.validation._predict import build_batches, predict_batch

    cases = load_cases(sources=("nccl_tests",))
    assert set(cases["network"]) == {"gcp-a3-mega"}
    (batch,) = build_batches(cases)
    assert batch.network == "gcp-a3-mega"
    spec = load_hardware("h100-sxm")
    with_net = predict_batch(batch, spec, {})
    without = predict_batch(replace(batch, network=""), spec, {})
    # the documented network is half the spec's NIC rate and Simple only: slower everywhere
    assert np.all(with_net > without)
    error = np.mean(np.abs(with_net / cases["measured_s"].to_numpy()[batch.index] - 1))
    assert error < np.mean(np.abs(without / cases["measured_s"].to_numpy()[batch.index] - 1))


def test_predict_network_option(cli) -> None:
    import json

    args = ("predict", "-m", "llama-3-70b", "-H", "h100-sxm", "--tp", "16", "--json")
    code, out, err = cli(*args)
    assert code == 0, err
    code, out_a3, err = cli(*args, "--network", "gcp-a3-mega")
    assert code == 0, err
    # 16-way TP spans two nodes: half the spec's NIC rate and Simple only make every step slower
    assert json.loads(out_a3)["tpot_ms"] > json.loads(out)["tpot_ms"]
    # inside one node the network plays no part
    one_node = ("predict", "-m", "llama-3-70b", "-H", "h100-sxm", "--tp", "8", "--json")
    plain, on_a3 = json.loads(cli(*one_node)[1]), json.loads(cli(*one_node, "--network", "gcp-a3-mega")[1])
    assert on_a3.pop("provenance")["network"] == "gcp-a3-mega"  # the output names the network it used
    plain.pop("provenance")
    assert plain == on_a3


def test_bad_network_option_is_one_line_exit_2(cli, tmp_path) -> None:
    one_line_error(cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--network", "gcp-a3"),
                   "unknown network 'gcp-a3'; did you mean gcp-a3-mega")
    path = tmp_path / "net.yaml"
    path.write_text("name: net\ninter_node: {efficiency: 1.5}\n")
    one_line_error(cli("predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--network", str(path)),
                   "net.yaml: inter_node: hardware parameter inter_node_efficiency")


def test_list_networks(cli) -> None:
    import json

    code, out, err = cli("list", "networks", "--json")
    assert code == 0, err
    [a3] = json.loads(out)
    assert a3["name"] == "gcp-a3-mega" and a3["bandwidth_GBps"] == 25 and a3["nccl_protocols"] == "Simple"
