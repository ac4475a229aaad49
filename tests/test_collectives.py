"""Collectives: the alpha-beta formulas by hand, and the laws every algorithm obeys."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from roofline import collectives as c

MESH = c.TierArrays(link_Bps=50e9, links=7, latency_s=2e-6, efficiency=0.8, full_mesh=True)
SWITCH = c.TierArrays(link_Bps=25e9, links=18, latency_s=1.5e-6, efficiency=0.82, full_mesh=False)
NET = c.TierArrays(link_Bps=50e9, links=1, latency_s=10e-6, efficiency=0.85, full_mesh=False)


def test_ring_allreduce_by_hand() -> None:
    # NCCL ring, 8 devices, 64 MiB, switched 18 x 25 GB/s at 0.82 = 369 GB/s, LL step 1.5 us.
    # LL128 wins at this size: 14 us base + 14 steps x (1.5 x 1.9/0.6 = 4.75 us) + 1.75 S / (369 x 0.92)
    # = 80.5 + 345.9 = 426.4 us (Simple: 8.4 + 14 x 8.5 + 1.75 S / 369 GB/s = 445.7 us;
    # LL: 1.75 S / 92.25 GB/s > 1 ms)
    size = 64 * 2**20
    expected = 14e-6 + 14 * 4.75e-6 + 1.75 * size / (18 * 25e9 * 0.82 * 0.92)
    assert c.ring_allreduce_s(size, 8, SWITCH) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(426.4e-6, rel=1e-3)  # seconds


def test_small_ring_is_nccl_ll_latency() -> None:
    # 2 KB on 8 H100s with NCCL's NVLink step (0.6 us): LL base 6.6 + 14 x 0.6 = 15.0 us plus
    # 1.75 x 2048 B / (369 GB/s / 4) = 0.039 us; nccl-tests measures 15.7 us
    h100 = c.TierArrays(link_Bps=25e9, links=18, latency_s=0.6e-6, efficiency=0.82, full_mesh=False)
    assert c.ring_allreduce_s(2048, 8, h100) == pytest.approx(15.0e-6 + 1.75 * 2048 / 92.25e9, rel=1e-9)
    # the kernel launch charged by the caller comes out of NCCL's base latency, not the steps
    launched = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, launch_s=3.5e-6)
    assert c.ring_allreduce_s(2048, 8, launched) == pytest.approx(11.5e-6 + 1.75 * 2048 / 92.25e9, rel=1e-9)


def test_full_mesh_ring_uses_edge_disjoint_rings() -> None:
    # 8 devices on a full mesh of 40 GB/s links: K_8 holds floor(7/2) = 3 edge-disjoint Hamiltonian
    # cycles, each run both ways: 6 rings at once, 240 GB/s per device. 1 MB: LL wins:
    # 6.6 us + 14 x 2 us + 1.75 MB / (240 GB/s / 4) = 63.8 us (LL128 110 us, Simple 174 us)
    size = 1e6
    expected = 6.6e-6 + 14 * 2e-6 + 1.75 * size / (6 * 40e9 * 0.25)
    assert c.ring_allreduce_s(size, 8, MESH) == pytest.approx(expected)
    assert expected == pytest.approx(63.77e-6, rel=1e-3)
    # 2 devices: one link; 5 devices: 2 x floor(4/2) = 4 links
    assert MESH.ring_Bps(2) == pytest.approx(40e9) and MESH.ring_Bps(5) == pytest.approx(160e9)


def test_one_shot_on_mesh_uses_every_peer_link() -> None:
    # each of the 7 peers' whole buffer arrives over its own link at once; shot latency = latency_s
    size = 1e6
    assert c.one_shot_allreduce_s(size, 8, MESH) == pytest.approx(2e-6 + 7 * size / (7 * 40e9))
    custom = c.TierArrays(50e9, 7, 2e-6, 0.8, True, custom_latency_s=0.5e-6)
    assert c.one_shot_allreduce_s(size, 8, custom) == pytest.approx(0.5e-6 + 7 * size / (7 * 40e9))
    assert c.two_shot_allreduce_s(size, 8, custom) == pytest.approx(1e-6 + 1.75 * size / (7 * 40e9))


def test_nvls_by_hand() -> None:
    # 64 MiB on 8 GPUs, 450 GB/s x 0.82 x NVLS 0.85 = 313.65 GB/s: 25 us + 9/8 S / 313.65 GB/s = 265.7 us
    nvls = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, nvls_efficiency=0.85)
    size = 64 * 2**20
    expected = 25e-6 + 9 / 8 * size / (450e9 * 0.82 * 0.85)
    assert c.nvls_allreduce_s(size, 8, nvls) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(265.7e-6, rel=1e-3)
    assert np.isinf(c.nvls_allreduce_s(size, 8, SWITCH))  # no NVLS on this switch
    # NCCL takes NVLS for large messages when the switch has it
    assert c.collective_time_s("allreduce", size, 8, nvls, NET, 8, "nccl") == pytest.approx(expected)


def test_nvls_latency_holds_the_launch() -> None:
    # NCCL's NVLS latency is the whole call (tuning.cc: latencies[NVLS] = intraLat = 25 us, no
    # baseLat), like a ring protocol's base: the caller's 3.5 us launch comes out of it, so the
    # caller's total stays NCCL's. 64 MiB on 8 GPUs: 21.5 us + 9/8 S / 313.65 GB/s = 262.2 us here,
    # 265.7 us with the launch, as without one.
    launched = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, nvls_efficiency=0.85, launch_s=3.5e-6)
    size = 64 * 2**20
    wire_s = 9 / 8 * size / (450e9 * 0.82 * 0.85)
    assert c.nvls_allreduce_s(size, 8, launched) == pytest.approx(21.5e-6 + wire_s, rel=1e-12)
    assert 21.5e-6 + wire_s == pytest.approx(262.2e-6, rel=1e-3)
    # a launch longer than NCCL's whole latency leaves no latency (never negative)
    slow = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, nvls_efficiency=0.85, launch_s=30e-6)
    assert c.nvls_allreduce_s(size, 8, slow) == pytest.approx(wire_s, rel=1e-12)
    # the ring under the same rule: launch + protocol time is NCCL's base + steps + bytes either way
    plain = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, nvls_efficiency=0.85)
    for algo in (c.nvls_allreduce_s, c.ring_allreduce_s):
        assert algo(size, 8, launched) + 3.5e-6 == pytest.approx(algo(size, 8, plain), rel=1e-12)


def test_no_nvls_on_two_gpus() -> None:
    # NCCL sets NVLS up only for more than 2 GPUs in the node (src/transport/nvls.cc). On 3 GPUs,
    # 64 MiB: 25 us + 4/3 S / (450 GB/s x 0.82 x 0.85) = 25 + 285.3 = 310.3 us.
    size = 64 * 2**20
    nvls = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, nvls_efficiency=0.85)
    assert np.isinf(c.nvls_allreduce_s(size, 2, nvls))
    assert c.nvls_allreduce_s(size, 3, nvls) == pytest.approx(310.3e-6, rel=1e-4)
    assert c.collective_time_s("allreduce", size, 2, nvls, NET, 8, "nccl") == pytest.approx(
        c.ring_allreduce_s(size, 2, nvls), rel=1e-12)


def test_library_choice() -> None:
    h100 = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False, custom_latency_s=0.5e-6, nvls_efficiency=0.85)
    tiny = 2048.0
    nccl = c.collective_time_s("allreduce", tiny, 8, h100, NET, 8, "nccl")
    custom = c.collective_time_s("allreduce", tiny, 8, h100, NET, 8, "custom")
    assert nccl == pytest.approx(c.ring_allreduce_s(tiny, 8, h100))
    assert custom == pytest.approx(c.one_shot_allreduce_s(tiny, 8, h100))
    assert custom < nccl
    # vLLM's choice: one-shot below 256 KiB on 8 devices, two-shot up to 8 MiB, NCCL beyond
    def pick(size: float, n: int) -> float:
        return float(c.collective_time_s("allreduce", size, n, h100, NET, 8, "custom"))

    # (held continuous across each switch: a larger message is never faster)
    kib = 1024.0
    assert pick(255 * kib, 8) == pytest.approx(c.one_shot_allreduce_s(255 * kib, 8, h100))
    one_at_switch = float(c.one_shot_allreduce_s(256 * kib, 8, h100))
    assert pick(256 * kib, 8) == pytest.approx(max(c.two_shot_allreduce_s(256 * kib, 8, h100), one_at_switch))
    assert pick(2 * 2**20, 8) == pytest.approx(c.two_shot_allreduce_s(2 * 2**20, 8, h100))
    assert pick(511 * kib, 4) == pytest.approx(c.one_shot_allreduce_s(511 * kib, 4, h100))
    assert pick(4 * 2**20, 2) == pytest.approx(c.one_shot_allreduce_s(4 * 2**20, 2, h100))  # always on 2
    big = 64 * 2**20
    assert pick(big, 8) == pytest.approx(c.collective_time_s("allreduce", big, 8, h100, NET, 8, "nccl"))
    for n in (2, 4, 8):
        sizes = np.logspace(2, 9, 400)
        t = c.collective_time_s("allreduce", sizes, n, h100, NET, 8, "custom")
        assert np.all(np.diff(t) >= 0), n
    with pytest.raises(ValueError, match="library"):
        c.collective_time_s("allreduce", tiny, 8, h100, NET, 8, "mpi")


def test_multi_node_is_slower_than_one_node() -> None:
    size = 64e6
    one_node = c.collective_time_s("allreduce", size, 8, SWITCH, NET, 8)
    two_nodes = c.collective_time_s("allreduce", size, 16, SWITCH, NET, 8)
    assert two_nodes > one_node


def test_alltoall_follows_nccls_p2p_protocol_rule() -> None:
    # 8 devices, switched 18 x 25 GB/s x 0.82 = 369 GB/s, LL step 1.5 us. NCCL runs all-to-all as
    # a send/recv per peer with LL up to 16 KiB per peer, Simple above (src/enqueue.cc).
    # 64 KiB: 8 KiB per peer -> LL: 6.6 + 1.5 us + 7/8 x 65536 B / (369 GB/s / 4) = 8.7216 us
    small = 6.6e-6 + 1.5e-6 + 57344 / 92.25e9
    assert c.alltoall_s(64 * 1024, 8, SWITCH) == pytest.approx(small, rel=1e-12)
    assert small == pytest.approx(8.7216e-6, rel=1e-4)
    # 1 MiB: 128 KiB per peer -> Simple: 8.4 + 1.5 x 3.4/0.6 = 16.9 us + 917504 B / 369 GB/s = 19.386 us
    # (the fastest protocol would have been LL at 16.1 us: NCCL does not pick it here)
    big = 8.4e-6 + 8.5e-6 + 917504 / 369e9
    assert c.alltoall_s(2**20, 8, SWITCH) == pytest.approx(big, rel=1e-12)
    assert big == pytest.approx(19.386e-6, rel=1e-4)
    # the switch sits at exactly 16 KiB per peer (128 KiB on 8 devices)
    at, above = c.alltoall_s(np.array([128 * 1024, 128 * 1024 + 8]), 8, SWITCH)
    assert at == pytest.approx(6.6e-6 + 1.5e-6 + 7 * 16384 / 92.25e9)
    assert above == pytest.approx(16.9e-6 + 7 * (16384 + 1) / 369e9)


@given(link_GBps=st.floats(1.0, 1000.0), links=st.integers(1, 18), latency_us=st.floats(0.0, 5.0),
       n=st.sampled_from([2, 4, 8]), mesh=st.booleans(), peer_kib=st.floats(0.1, 1000.0))
def test_alltoall_protocol_is_set_by_the_bytes_per_peer(link_GBps, links, latency_us, n, mesh, peer_kib) -> None:
    # LL up to 16 KiB per peer, Simple above, whichever is faster (NCCL has no tuner for p2p)
    tier = c.TierArrays(link_GBps * 1e9, links, latency_us * 1e-6, 0.8, mesh)
    size = n * peer_kib * 1024
    wire, bw, lat = (n - 1) * peer_kib * 1024, tier.device_Bps(n), latency_us * 1e-6
    ll, simple = 6.6e-6 + lat + wire / (bw * 0.25), 8.4e-6 + lat * 3.4 / 0.6 + wire / bw
    expected = ll if peer_kib * 1024 <= 16384 else simple
    assert c.alltoall_s(size, n, tier) == pytest.approx(expected, rel=1e-9)


def test_allgather_ll_share_is_a_third_inside_one_node() -> None:
    # NCCL tuning.cc: ring LL reaches busBw/3 for all-gather and reduce-scatter in one node, busBw/4
    # for all-reduce and across nodes. 64 KiB on 8 devices, LL wins (LL128 47.25 us, Simple 67.9 us
    # of latency alone): 6.6 + 7 x 1.5 = 17.1 us + 57344 B / (369 GB/s / 3) = 17.566 us
    one_node = 17.1e-6 + 57344 / 123e9
    assert c.ring_allgather_s(64 * 1024, 8, SWITCH) == pytest.approx(one_node, rel=1e-12)
    assert one_node == pytest.approx(17.566e-6, rel=1e-4)
    spanning = 17.1e-6 + 57344 / 92.25e9
    assert c.ring_allgather_s(64 * 1024, 8, SWITCH, one_node=False) == pytest.approx(spanning, rel=1e-12)


def test_sendrecv_by_hand() -> None:
    assert c.sendrecv_s(1e6, SWITCH) == pytest.approx(1.5e-6 + 1e6 / (450e9 * 0.82))


# -- 2D torus (TPU v6e: 16 x 16, 4 links of 100 GB/s per direction, efficiency 0.85) -------------

TORUS = c.TierArrays(100e9, 4, 1e-6, 0.85, False, torus_dims=(16, 16))


def test_torus_shape() -> None:
    assert c.torus_shape(256, (16, 16)) == (16, 16)
    assert c.torus_shape(8, (16, 16)) == (4, 2)
    assert c.torus_shape(16, (16, 16)) == (4, 4)
    with pytest.raises(ValueError, match="rectangle"):
        c.torus_shape(17, (16, 16))


def test_torus_allreduce_by_hand() -> None:
    s = 64e6
    # whole pod, 16 x 16, both dimensions wrap: bidirectional rings at 2 x 85 = 170 GB/s
    # 2 x 30 x 1 us + 2 x 15/16 x S / 170 GB/s + 2 x 15/16 x (S/16) / 170 GB/s = 60 + 705.9 + 44.1 us
    full = 60e-6 + 2 * 15 / 16 * s / 170e9 + 2 * 15 / 16 * (s / 16) / 170e9
    assert c.torus_allreduce_s(s, 256, TORUS) == pytest.approx(full, rel=1e-12)
    assert full == pytest.approx(810.0e-6, rel=1e-3)
    # 8 chips: a 4 x 2 sub-torus without wrap-around links: one direction's 85 GB/s per ring
    # 2 x (3 + 1) x 1 us + 2 x 3/4 x S / 85 GB/s + 2 x 1/2 x (S/4) / 85 GB/s
    part = 8e-6 + 1.5 * s / 85e9 + 0.25 * s / 85e9
    assert c.torus_allreduce_s(s, 8, TORUS) == pytest.approx(part, rel=1e-12)
    # chosen by topology
    assert c.collective_time_s("allreduce", s, 8, TORUS, NET, 256) == pytest.approx(part)


def test_torus_allgather_and_alltoall_by_hand() -> None:
    s = 64e6
    # all-gather on 4 x 2: along b (S/4 -> shards of S/8), then along a: 4 hops
    # 4 x 1 us + 1/2 x (S/4) / 85 GB/s + 3/4 x S / 85 GB/s
    ag = 4e-6 + 0.5 * (s / 4) / 85e9 + 0.75 * s / 85e9
    assert c.torus_allgather_s(s, 8, TORUS) == pytest.approx(ag, rel=1e-12)
    assert c.collective_time_s("reducescatter", s, 8, TORUS, NET, 256) == pytest.approx(ag)
    # all-to-all on the 16 x 16 pod: n S/4 = 64 S cross the cut over 2 x 16 wrapped links of
    # 85 GB/s = 2 S / 85 GB/s (injection, 255/256 S / 340 GB/s, is far less); 8 + 8 hops
    a2a = 16e-6 + 256 * s / 4 / (32 * 85e9)
    assert c.torus_alltoall_s(s, 256, TORUS) == pytest.approx(a2a, rel=1e-12)
    # 2 chips (a 2 x 1 line): each sends S/2 to the other over the one link between them, 1 hop
    assert c.torus_alltoall_s(s, 2, TORUS) == pytest.approx(1e-6 + 0.5 * s / 85e9)


class CollectiveContract:
    """Laws every algorithm obeys; subclasses pick the algorithm."""

    def time(self, size, n, tier):  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.mark.parametrize("tier", [MESH, SWITCH], ids=["mesh", "switch"])
    def test_at_least_the_latency(self, tier) -> None:
        assert self.time(0.0, 4, tier) >= tier.latency_s

    @pytest.mark.parametrize("tier", [MESH, SWITCH], ids=["mesh", "switch"])
    def test_non_decreasing_in_bytes(self, tier) -> None:
        sizes = np.logspace(2, 10, 40)
        assert np.all(np.diff(self.time(sizes, 8, tier)) >= 0)

    @pytest.mark.parametrize("tier", [MESH, SWITCH], ids=["mesh", "switch"])
    def test_faster_links_are_never_slower(self, tier) -> None:
        fast = c.TierArrays(np.asarray(tier.link_Bps) * 2, tier.links, tier.latency_s, tier.efficiency,
                            tier.full_mesh)
        assert np.all(self.time(1e7, 8, fast) <= self.time(1e7, 8, tier))

    def test_bandwidth_term_scales_with_link_speed(self) -> None:
        # at 1 GB the fixed latencies (NCCL's base latencies are tens of us) are under 1%
        slow = c.TierArrays(SWITCH.link_Bps, SWITCH.links, 0.0, SWITCH.efficiency, False)
        fast = c.TierArrays(SWITCH.link_Bps * 2, SWITCH.links, 0.0, SWITCH.efficiency, False)
        assert self.time(1e9, 8, slow) == pytest.approx(2 * self.time(1e9, 8, fast), rel=0.01)


class TestRing(CollectiveContract):
    def time(self, size, n, tier):
        return c.ring_allreduce_s(size, n, tier)


class TestTree(CollectiveContract):
    def time(self, size, n, tier):
        return c.tree_allreduce_s(size, n, tier)


class TestOneShot(CollectiveContract):
    def time(self, size, n, tier):
        return c.one_shot_allreduce_s(size, n, tier)


class TestTwoShot(CollectiveContract):
    def time(self, size, n, tier):
        return c.two_shot_allreduce_s(size, n, tier)


class TestAllGather(CollectiveContract):
    def time(self, size, n, tier):
        return c.ring_allgather_s(size, n, tier)


class TestAllGatherAcrossNodes(CollectiveContract):
    def time(self, size, n, tier):
        return c.ring_allgather_s(size, n, tier, one_node=False)


class TestAllToAll(CollectiveContract):
    def time(self, size, n, tier):
        return c.alltoall_s(size, n, tier)


class TestTorusAllReduce(CollectiveContract):
    def time(self, size, n, tier):
        return c.torus_allreduce_s(size, n, replace(tier, torus_dims=(4, 2)))


class TestTorusAllToAll(CollectiveContract):
    def time(self, size, n, tier):
        return c.torus_alltoall_s(size, n, replace(tier, torus_dims=(4, 2)))


# -- specs and the CLI ---------------------------------------------------------------------------

def test_tpu_v6e_spec_uses_the_torus() -> None:
    from roofline import load_hardware
    from roofline.timing import HardwareArrays

    spec = load_hardware("tpu-v6e")
    link = spec.intra_node
    # Cloud TPU v6e docs: 800 GB/s bidirectional ICI over 4 ports -> 100 GB/s per direction per link
    assert (link.topology, link.torus_dims, link.links_per_device) == ("torus_2d", (16, 16), 4)
    assert link.link_bandwidth_Bps * link.links_per_device * 2 == pytest.approx(800e9)
    assert spec.compute.peak_flops["bf16"] == pytest.approx(918e12)
    tier = HardwareArrays.from_spec(spec).intra()
    assert c.collective_time_s("allreduce", 1e6, 8, tier, NET, 256) == pytest.approx(
        c.torus_allreduce_s(1e6, 8, tier))


def test_bad_torus_dims_name_the_field(tmp_path) -> None:
    import yaml

    from roofline import load_hardware
    from roofline.exceptions import SpecError

    data = yaml.safe_load(Path(load_hardware("tpu-v6e").source_file).read_text())
    data["interconnect"]["intra_node"]["torus_dims"] = [16]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="torus_dims"):
        load_hardware(path)


def test_bad_collective_library_exits_2() -> None:
    from typer.testing import CliRunner

    from roofline.cli.main import app

    result = CliRunner().invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--collective-library", "mpi"])
    assert result.exit_code == 2
    ok = CliRunner().invoke(app, ["predict", "-m", "llama-3-8b", "-H", "h100-sxm", "--tp", "8",
                                  "--collective-library", "nccl", "--json"])
    assert ok.exit_code == 0, ok.output


def test_bad_collective_library_in_a_workload() -> None:
    from roofline import SpecError, Workload

    with pytest.raises(SpecError, match="collective_library: 'mpi' is not allowed; choose one of nccl, custom"):
        Workload(collective_library="mpi")


def test_no_custom_kernels_without_nvlink() -> None:
    # L40S (PCIe only): vLLM runs its custom all-reduce only on 2 GPUs there; 4 GPUs use NCCL
    pcie = c.TierArrays(32e9, 1, 1e-6, 0.8, False, custom_latency_s=5e-6, custom_allreduce=False)
    size = 64 * 1024.0
    assert c.collective_time_s("allreduce", size, 4, pcie, NET, 8, "custom") == pytest.approx(
        c.collective_time_s("allreduce", size, 4, pcie, NET, 8, "nccl"))
    assert c.collective_time_s("allreduce", size, 2, pcie, NET, 8, "custom") == pytest.approx(
        c.one_shot_allreduce_s(size, 2, pcie))
    from roofline import load_hardware

    assert load_hardware("l40s").intra_node.custom_allreduce is False
    assert load_hardware("h100-sxm").intra_node.custom_allreduce is True
