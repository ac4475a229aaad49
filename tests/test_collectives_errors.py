"""Guards on the datasheet collective errors against the measured data (issue 16: datasheet MAPE
<= 25%, 2 KB to 256 MB; docs/validation.md "Collectives by algorithm family"). Each limit is the
achieved value plus a margin, so a regression fails while a miss stays visible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline import collectives as c
from roofline.hardware import load_hardware
from roofline.validation._predict import COLLECTIVE_KINDS, build_batches, kind_key, predict_batch
from roofline.validation._stage_collectives import (
    REGIME_THRESHOLDS,
    _latency_capped,
    regime_thresholds,
)
from tests.conftest import _cases, _validation, needs_data

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
    assert one_node["ape"].mean() <= 25.0  # the issue's target, met: 24.5 (24.4 before the NVLS launch fix)
    assert errors["ape"].mean() <= 29.0  # missed: 28.3 (vidur's A100 cluster, docs/validation.md)
    by = one_node.groupby(["dataset", "kind"])["ape"].mean()
    for kind in ("allreduce", "allgather", "reducescatter", "alltoall"):
        assert by[("aiconfigurator/nccl", kind)] <= 25.0, kind  # 20.3 / 22.1 / 21.7 / 24.4
    assert by[("aiconfigurator/custom_allreduce", "allreduce")] <= 22.0  # 21.1
    # the rows the issue names (aiconfigurator nccl + custom, vidur all_reduce_*.csv): 27.5,
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


def test_datasheet_breakdown_points_add_up_to_the_mape() -> None:
    # three rows, signed errors -30, +10 (group a) and -20 % (group b): MAPE (30 + 10 + 20) / 3 = 20;
    # group a: MAPE 20, bias -10, points (30 + 10) / 3 = 13.33; group b: 20, -20, 20 / 3 = 6.67
    from benchmarks.collective_errors import datasheet_breakdown

    frame = pd.DataFrame({"group": ["a", "a", "b"], "err_pct": [-30.0, 10.0, -20.0]})
    table = datasheet_breakdown(frame, ["group"])
    assert table.loc["a"].tolist() == [2, 20.0, -10.0, 13.33]
    assert table.loc["b"].tolist() == [1, 20.0, -20.0, 6.67]
    assert table["points"].sum() == pytest.approx(frame["err_pct"].abs().mean(), abs=0.01)


def test_size_bands_are_half_open_on_the_left() -> None:
    from benchmarks.collective_errors import size_band

    bands = size_band(pd.Series([2048, 16384, 16385, 2**20, 2**20 + 1, 256 * 2**20, 256 * 2**20 + 1]))
    assert bands.astype(object).tolist()[:6] == ["2-16 KiB", "2-16 KiB", "16-128 KiB", "128 KiB-1 MiB",
                                                 "1-8 MiB", "64-256 MiB"]
    assert pd.isna(bands.iloc[6])  # above 256 MiB: outside the window


@needs_data
def test_datasheet_error_of_the_issue_rows_sits_where_the_docs_say() -> None:
    """docs/validation.md, "Where the datasheet error of the issue's rows sits": 27.5% over 2434
    rows, of which vidur's A100 2-node all-reduce rows carry 5.5 points; without them 24.0%."""
    from benchmarks.collective_errors import DEVICES as BENCH_DEVICES
    from benchmarks.collective_errors import _issue_scope, datasheet_breakdown, datasheet_errors

    cases = _cases()
    scope = _issue_scope(datasheet_errors(cases[(cases["family"] == "collective")
                                                & cases["device"].isin(BENCH_DEVICES)]))
    table = datasheet_breakdown(scope, ["dataset", "device", "span"])
    assert len(scope) == 2434
    assert table["points"].sum() == pytest.approx(scope["err_pct"].abs().mean(), abs=0.05)
    assert table.loc[("vidur/network", "a100-sxm-80gb", "nodes"), "points"] == pytest.approx(5.5, abs=0.3)
    rest = scope[~((scope["dataset"] == "vidur/network") & (scope["span"] == "nodes"))]
    assert rest["err_pct"].abs().mean() <= 24.5  # 24.0 (23.9 before the NVLS launch fix)


def test_what_if_overrides_are_parsed_or_refused_with_a_reason() -> None:
    from benchmarks.collective_errors import parse_override

    assert parse_override("b200.link_latency_us=1.1") == ("b200", "link_latency_us", 1.1)
    for bad, reason in (("x100.link_latency_us=1", "DEVICE one of"), ("b200=1", "DEVICE one of"),
                        ("b200.link_latency_us", "DEVICE one of"), ("b200.link_latency_us=fast", "a number"),
                        ("b200.link_latency_us=nan", "finite")):
        with pytest.raises(ValueError, match=reason):
            parse_override(bad)


@needs_data
def test_a_what_if_moves_only_its_device() -> None:
    # a longer NVLink step on the B200 (NCCL's 0.6 us -> 1.1 us) slows only the B200's NCCL rows
    from benchmarks.collective_errors import DEVICES as BENCH_DEVICES
    from benchmarks.collective_errors import datasheet_errors

    cases = _cases()
    cases = cases[(cases["family"] == "collective") & cases["device"].isin(BENCH_DEVICES)]
    bundled = datasheet_errors(cases)
    slower = datasheet_errors(cases, {"b200": {"link_latency_us": 1.1}})
    moved = slower["predicted_datasheet"] != bundled["predicted_datasheet"]
    assert set(slower.loc[moved, "device"]) == {"b200"}
    assert (slower.loc[moved, "predicted_datasheet"] >= bundled.loc[moved, "predicted_datasheet"]).all()


def test_all_to_all_regime_starts_at_nccls_p2p_protocol_switch() -> None:
    # NCCL sends up to 16 KiB per peer with LL, more with Simple (src/enqueue.cc P2P_LL_THRESHOLD):
    # on 4 GPUs a 64 KiB all-to-all (16 KiB a peer) is LL, one byte more is Simple, so the large
    # regime starts at 4 x 16384 + 1 = 65537 bytes (128 KiB is the first such nccl-tests size)
    assert regime_thresholds("alltoall:nccl:intra:n4", 4) == (65537,)
    assert regime_thresholds("alltoall:nccl:intra:n8", 8) == (131073,)
    # the model's own switch is at the same byte: LL below, Simple from there
    tier = c.TierArrays(25e9, 18, 0.6e-6, 0.82, False)
    ll_s = 6.6e-6 + 0.6e-6 + 0.75 * 65536 / (450e9 * 0.82 * 0.25)
    simple_s = 8.4e-6 + 3.4e-6 + 0.75 * 65537 / (450e9 * 0.82)
    assert c.alltoall_s(65536, 4, tier) == pytest.approx(ll_s, rel=1e-12)
    assert c.alltoall_s(65537, 4, tier) == pytest.approx(simple_s, rel=1e-12)
    # collectives NCCL's tuner chooses a protocol for, and the network tier: the fit finds the switch
    assert regime_thresholds("allreduce:nccl:intra:n4", 4) == REGIME_THRESHOLDS
    assert regime_thresholds("alltoall:nccl:inter:n16", 16) == REGIME_THRESHOLDS


@needs_data
def test_calibrated_size_split_of_the_issue_rows_holds() -> None:
    """The shipped profiles on the held-out sizes of the issue's rows (aiconfigurator nccl +
    custom, vidur all_reduce_*.csv, 2 KB-256 MB): 10.01% on 1218 rows (2026-11-29, after the NVLS
    launch fix, 10.41%, and the all-to-all regime at NCCL's p2p switch: A100 all-to-all 18.5 ->
    12.9%)."""
    frame = _validation().cases
    frame = frame[frame["held_out"] & frame["predicted_calibrated"].notna()
                  & frame["size_bytes"].between(2048, 256 * 2**20)]
    ape = (frame["predicted_calibrated"] / frame["measured_s"] - 1).abs() * 100
    scope = frame["dataset"].isin(("aiconfigurator/nccl", "aiconfigurator/custom_allreduce")) | (
        (frame["dataset"] == "vidur/network") & (frame["kind"] == "allreduce"))
    scope &= frame["device"].isin(DEVICES)
    assert scope.sum() == 1218 and ape[scope].mean() <= 10.1
    a100_a2a = scope & (frame["device"] == "a100-sxm-80gb") & (frame["kind"] == "alltoall")
    assert a100_a2a.sum() == 54 and ape[a100_a2a].mean() <= 14.0  # 12.9 (18.5 at the old boundary)
