"""Sweeps at scale (issues 20 and 21): the size line printed before a sweep starts, sweeps on a
Dask cluster, and sweeps written as a partitioned Parquet dataset."""

from __future__ import annotations

import math

import pytest

from roofline.sweep import measure_budget
from roofline.sweepfile import SweepBudget, sweep_budget, sweep_from_dict

from ._reliability import SMALL_SWEEP


def test_budget_of_a_tiny_sweep_says_under_a_second_and_a_megabyte() -> None:
    line = SweepBudget(points=6, seconds=0.004, disk_bytes=900.0, basis="b").summary()
    assert line == "6 configurations, estimated < 1 s and < 1 MB of disk (b)"


@pytest.mark.parametrize(("seconds", "text"), [(0.99, "< 1 s"), (1.0, "1 s"), (59.0, "59 s"), (90.0, "2 min"),
                                               (7200.0, "2.0 h")])
def test_budget_durations(seconds: float, text: str) -> None:
    assert f"estimated {text} and" in SweepBudget(1, seconds, 2e9).summary()


@pytest.mark.parametrize(("size_bytes", "text"), [(999_999.0, "< 1 MB"), (2.5e6, "2 MB"), (1.6e10, "16.0 GB")])
def test_budget_disk_sizes(size_bytes: float, text: str) -> None:
    assert f"and {text} of disk" in SweepBudget(1, 5.0, size_bytes).summary()


def test_budget_from_given_rates_by_hand() -> None:
    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")  # 4 L2 x 3 HBM x 2 prefetch = 24 points, 1 combination
    budget = sweep_budget(spec, configs_per_second=8.0, seconds_per_combination=1.0, bytes_per_row=100.0,
                          processes=2, basis="given")
    # (24 points / 8 per s + 1 combination x 1 s) / 2 processes = (3 + 1) / 2 = 2 s; 24 x 100 B = 2,400 B
    assert (budget.points, budget.seconds, budget.disk_bytes) == (24, 2.0, 2400.0)
    assert budget.basis == "given"


def test_measured_budget_names_its_sample_and_rate() -> None:
    spec = sweep_from_dict(SMALL_SWEEP, "s.yaml")
    budget = measure_budget(spec, workers=1)
    assert budget.points == 24
    assert budget.basis.startswith("measured on 24 of its points: ")
    assert "configs/s per process, 1 process, " in budget.basis and budget.basis.endswith(" bytes per row")
    assert math.isfinite(budget.seconds) and budget.seconds > 0
    assert 10 < budget.disk_bytes / 24 < 10_000  # Parquet of 39 columns: tens to hundreds of bytes per row
