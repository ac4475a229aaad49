"""Collectives: the alpha-beta formulas by hand, and the laws every algorithm obeys."""

from __future__ import annotations

import numpy as np
import pytest

from roofline import collectives as c

MESH = c.TierArrays(link_Bps=50e9, links=7, latency_s=2e-6, efficiency=0.8, full_mesh=True)
SWITCH = c.TierArrays(link_Bps=25e9, links=18, latency_s=1.5e-6, efficiency=0.82, full_mesh=False)
NET = c.TierArrays(link_Bps=50e9, links=1, latency_s=10e-6, efficiency=0.85, full_mesh=False)


def test_ring_allreduce_by_hand() -> None:
    # 8 devices, 64 MiB, switched 18 x 25 GB/s at 0.82: 2*7*1.5us + 2*7/8 * 64MiB / 369 GB/s
    size = 64 * 2**20
    expected = 14 * 1.5e-6 + 1.75 * size / (18 * 25e9 * 0.82)
    assert c.ring_allreduce_s(size, 8, SWITCH) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(339.2e-6, rel=1e-3)  # seconds


def test_full_mesh_ring_uses_one_link() -> None:
    size = 1e6
    assert c.ring_allreduce_s(size, 8, MESH) == pytest.approx(14 * 2e-6 + 1.75 * size / 40e9)


def test_one_shot_on_mesh_uses_every_peer_link() -> None:
    # each of the 7 peers' whole buffer arrives over its own link at once
    size = 1e6
    assert c.one_shot_allreduce_s(size, 8, MESH) == pytest.approx(2e-6 + 7 * size / (7 * 40e9))


def test_small_messages_pick_few_steps_large_pick_bandwidth() -> None:
    tiny, huge = 1024.0, 1e9
    best_tiny = c.collective_time_s("allreduce", tiny, 8, SWITCH, NET, 8)
    best_huge = c.collective_time_s("allreduce", huge, 8, SWITCH, NET, 8)
    assert best_tiny == pytest.approx(c.one_shot_allreduce_s(tiny, 8, SWITCH))
    assert best_huge == pytest.approx(min(c.ring_allreduce_s(huge, 8, SWITCH), c.two_shot_allreduce_s(huge, 8, SWITCH)))


def test_multi_node_is_slower_than_one_node() -> None:
    size = 64e6
    one_node = c.collective_time_s("allreduce", size, 8, SWITCH, NET, 8)
    two_nodes = c.collective_time_s("allreduce", size, 16, SWITCH, NET, 8)
    assert two_nodes > one_node


def test_sendrecv_by_hand() -> None:
    assert c.sendrecv_s(1e6, SWITCH) == pytest.approx(1.5e-6 + 1e6 / (450e9 * 0.82))


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
        slow = c.TierArrays(SWITCH.link_Bps, SWITCH.links, 0.0, SWITCH.efficiency, False)
        fast = c.TierArrays(SWITCH.link_Bps * 2, SWITCH.links, 0.0, SWITCH.efficiency, False)
        assert self.time(1e8, 8, slow) == pytest.approx(2 * self.time(1e8, 8, fast))


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


class TestAllToAll(CollectiveContract):
    def time(self, size, n, tier):
        return c.alltoall_s(size, n, tier)
