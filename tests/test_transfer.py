"""Collective calibration carried to an unseen device (leave-one-device-out), by hand."""

from __future__ import annotations

import pytest

from roofline import load_hardware
from roofline.validation._transfer import transfer_collectives

H100 = load_hardware("h100-sxm")  # datasheet link efficiency 0.82, NIC 50 GB/s
H200 = load_hardware("h200-sxm")  # 0.82, 50 GB/s
A100 = load_hardware("a100-sxm-80gb")  # 0.67, 25 GB/s


def _params(eff: float, lat: float, regime: bool = False) -> dict:
    key = "allreduce:nccl:intra:n8"
    per_kind = {"allreduce:nccl:intra": {"link_latency_us": lat, "link_efficiency": eff},
                key: {"link_latency_us": lat, "link_efficiency": eff}}
    if regime:
        per_kind[key]["_large_from_bytes"] = 4**10
        per_kind[f"{key}:large"] = {"link_latency_us": 2 * lat, "link_efficiency": eff / 2}
    return {"overrides": {"link_latency_us": lat, "link_efficiency": eff, "inter_node_bandwidth_GBps": 40.0},
            "per_kind": per_kind}


def test_efficiency_is_carried_relative_to_the_datasheet_and_latency_as_is() -> None:
    # donors H100 (0.90 of a 0.82 datasheet) and H200 (0.74 of 0.82): ratios 1.0976 and 0.9024,
    # median 1.0 -> A100 keeps its datasheet 0.67; latencies 1.0 and 2.0 us -> median 1.5 us
    out = transfer_collectives(A100, {"h100-sxm": (H100, _params(0.90, 1.0)),
                                      "h200-sxm": (H200, _params(0.74, 2.0))})
    entry = out["per_kind"]["allreduce:nccl:intra"]
    assert entry["link_efficiency"] == pytest.approx(0.67 * (0.90 / 0.82 + 0.74 / 0.82) / 2)
    assert entry["link_efficiency"] == pytest.approx(0.67)
    assert entry["link_latency_us"] == pytest.approx(1.5)
    # the NIC rate: 40 of 50 GB/s on both donors -> 0.8 x A100's 25 GB/s = 20 GB/s
    assert out["overrides"]["inter_node_bandwidth_GBps"] == pytest.approx(20.0)


def test_a_carried_efficiency_stops_at_one() -> None:
    # 0.95 of a 0.67 datasheet (ratio 1.418) carried to an H100 (0.82) would be 1.16
    out = transfer_collectives(H100, {"a100-sxm-80gb": (A100, _params(0.95, 1.0))})
    assert out["overrides"]["link_efficiency"] == 1.0


def test_size_regime_follows_the_majority_of_donors() -> None:
    key = "allreduce:nccl:intra:n8"
    two_of_three = {"h100-sxm": (H100, _params(0.8, 1.0, regime=True)),
                    "h200-sxm": (H200, _params(0.8, 3.0, regime=True)),
                    "a100-sxm-80gb": (A100, _params(0.8 * 0.67 / 0.82, 5.0))}
    out = transfer_collectives(H100, two_of_three)["per_kind"]
    assert out[key]["_large_from_bytes"] == 4**10
    # large side: 2.0 and 6.0 us from the donors with a regime, 5.0 us (its one set) from the other
    assert out[f"{key}:large"]["link_latency_us"] == pytest.approx(5.0)
    assert out[key]["link_latency_us"] == pytest.approx(3.0)
    one_of_three = dict(two_of_three, **{"h200-sxm": (H200, _params(0.8, 3.0))})
    out = transfer_collectives(H100, one_of_three)["per_kind"]
    assert "_large_from_bytes" not in out[key] and f"{key}:large" not in out
