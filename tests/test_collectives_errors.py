"""Guards on the datasheet collective errors against the measured data (issue 16: datasheet MAPE
<= 25%, 2 KB to 256 MB; docs/validation.md "Collectives by algorithm family"). Each limit is the
achieved value plus a margin, so a regression fails while a miss stays visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline.hardware import load_hardware
from roofline.validation._predict import COLLECTIVE_KINDS, build_batches, kind_key, predict_batch
from roofline.validation._stage_collectives import _latency_capped
from tests.conftest import _cases, needs_data

DEVICES = ("a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200")
PROFILES = Path(__file__).resolve().parents[1] / "hardware_specs" / "calibrated"


def _datasheet_errors() -> pd.DataFrame:
    cases = _cases()
    cases = cases[(cases["family"] == "collective") & cases["device"].isin(DEVICES)
                  & cases["size_bytes"].between(2048, 256 * 2**20)].reset_index(drop=True)
    predicted = np.full(len(cases), np.nan)
    for b in build_batches(cases):
        predicted[b.index] = predict_batch(b, load_hardware(b.device), {})
    return cases.assign(ape=np.abs(predicted / cases["measured_s"] - 1) * 100,
                        nodes=cases["n_gpus"] > cases["devices_per_node"])


@needs_data
def test_datasheet_collective_errors_hold() -> None:
    errors = _datasheet_errors()
    assert len(errors) == 2668 and errors["ape"].notna().all()
    one_node = errors[~errors["nodes"]]
    assert one_node["ape"].mean() <= 25.0  # the target, met: 24.4
    assert errors["ape"].mean() <= 29.0  # missed: 28.1 (vidur's A100 cluster, docs/validation.md)
    by = one_node.groupby(["dataset", "kind"])["ape"].mean()
    for kind in ("allreduce", "allgather", "reducescatter", "alltoall"):
        assert by[("aiconfigurator/nccl", kind)] <= 25.0, kind  # 20.1 / 22.1 / 21.7 / 24.4
    assert by[("aiconfigurator/custom_allreduce", "allreduce")] <= 22.0  # 20.8
    # the rows the issue names (aiconfigurator nccl + custom, vidur all_reduce_*.csv): 27.4,
    # missed by the vidur A100 2-node rows (their cluster's documented network is the spec's)
    scope = errors["dataset"].isin(("aiconfigurator/nccl", "aiconfigurator/custom_allreduce")) | (
        (errors["dataset"] == "vidur/network") & (errors["kind"] == "allreduce"))
    assert scope.sum() == 2434 and errors.loc[scope, "ape"].mean() <= 28.5
    # the 2-node A3 Mega rows on their cluster's documented network: 45.5 (63.7 on the spec's)
    a3 = errors[errors["dataset"] == "nccl_tests/allreduce_2node"]
    assert len(a3) == 18 and a3["ape"].mean() == pytest.approx(45.5, abs=2.0)


def test_a_per_gpu_count_step_latency_is_capped_by_the_fastest_training_time() -> None:
    # NCCL's per-step latency (start 5 us, bounds 0.02-200 us) against a group whose fastest
    # training row takes 23.1 us: the upper bound drops to 23.1 us, the start stays at 5 us
    init = {"link_latency_us": (5.0, 0.02, 200.0), "link_efficiency": (0.8, 0.02, 1.0)}
    capped = _latency_capped(init, ("link_latency_us", "link_efficiency"), 23.1)
    assert capped == {"link_latency_us": (5.0, 0.02, 23.1), "link_efficiency": (0.8, 0.02, 1.0)}
    # a fastest row of 3 us below the start: the start moves down to the bound
    assert _latency_capped(init, ("link_latency_us",), 3.0)["link_latency_us"] == (3.0, 0.02, 3.0)
    # a fastest row above the 200 us bound, or a custom kernel's shot latency: nothing changes
    assert _latency_capped(init, ("link_latency_us",), 500.0) == init
    custom = {"custom_latency_us": (3.0, 0.02, 200.0)}
    assert _latency_capped(custom, ("custom_latency_us",), 2.0) == custom


@needs_data
def test_shipped_per_gpu_count_step_latencies_stay_below_the_measured_times() -> None:
    """The shipped profiles' NCCL per-GPU-count step latencies within a node are at most the
    fastest measured time of their group (2026-11-29: two sit at it, the largest other is 0.72 of
    it). Before the cap four exceeded it: H100's 4-GPU torch.distributed all-reduce fitted a
    67 us step against a fastest all-reduce of 32 us (2.1x), A100's and H100's 2-GPU 1.9x, 1.7x,
    A100's 2-GPU send/recv above 64 KiB 1.1x."""
    cases = _cases()
    cases = cases[cases["kind"].isin(COLLECTIVE_KINDS)].assign(key=lambda f: kind_key(f))
    checked = 0
    for device in DEVICES:
        per_kind = yaml.safe_load((PROFILES / f"{device}.yaml").read_text())["per_kind"]
        mine = cases[cases["device"] == device]
        for key, entry in per_kind.items():
            base, _, count = key.removesuffix(":large").rpartition(":n")  # both size regimes
            if not count.isdigit() or ":intra" not in base or "link_latency_us" not in entry:
                continue
            group = mine[(mine["key"] == base) & (mine["n_gpus"] == int(count))]
            fastest_us = group["measured_s"].min() * 1e6
            assert entry["link_latency_us"] <= fastest_us * (1 + 1e-6), (device, key, fastest_us)
            checked += 1
    assert checked >= 80
