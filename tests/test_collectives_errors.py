"""Guards on the datasheet collective errors against the measured data (issue 16: datasheet MAPE
<= 25%, 2 KB to 256 MB; docs/validation.md "Collectives by algorithm family"). Each limit is the
achieved value plus a margin, so a regression fails while a miss stays visible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roofline.hardware import load_hardware
from roofline.validation._predict import build_batches, predict_batch
from tests.conftest import _cases, needs_data

DEVICES = ("a100-sxm-80gb", "h100-sxm", "h200-sxm", "b200")


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
