"""MoE: the step waits for the slowest expert-parallel device (expected maximum, not the mean)."""

from __future__ import annotations

import numpy as np
import pytest

from roofline.moe import (
    ExpertLayout,
    expected_distinct_experts,
    expected_max_distinct_experts,
    expected_max_rows,
    sample_max_per_device,
)


@pytest.mark.parametrize(("tokens", "ratio"), [(4, 1.72), (32, 1.185)])
def test_max_over_devices_against_monte_carlo(tokens: int, ratio: float) -> None:
    # DeepSeek-V3 routing, 256 experts, top-8, over 8 EP devices (32 experts each), uniform:
    # mean distinct per device = 32 (1 - (1 - 8/256)^T): 3.81 at T = 4, 20.41 at T = 32
    mean = expected_distinct_experts(256, 8, tokens) / 8
    assert mean == pytest.approx(32 * (1 - (1 - 1 / 32) ** tokens))
    exact = expected_max_distinct_experts(256, 8, tokens, 8)
    assert exact / mean == pytest.approx(ratio, abs=0.01)  # the Monte Carlo: ~1.7x, ~1.2x
    distinct, rows = sample_max_per_device(256, 8, tokens, 8, trials=600, rng=np.random.default_rng(7))
    se = distinct.std() / np.sqrt(len(distinct))
    assert exact == pytest.approx(distinct.mean(), abs=4 * se + 0.05)
    assert expected_max_rows(256, 8, tokens, 8) == pytest.approx(rows.mean(), rel=0.06)


@pytest.mark.parametrize("skew", [0.5, 1.0])
def test_max_with_skew_against_monte_carlo(skew: float) -> None:
    exact = expected_max_distinct_experts(64, 4, 16, 4, skew)
    distinct, rows = sample_max_per_device(64, 4, 16, 4, skew, trials=800, rng=np.random.default_rng(3))
    assert exact == pytest.approx(distinct.mean(), rel=0.03)
    assert expected_max_rows(64, 4, 16, 4, skew) == pytest.approx(rows.mean(), rel=0.05)


def test_max_limits() -> None:
    # one device: the maximum is the mean; a huge batch hits every local expert on every device
    assert expected_max_distinct_experts(64, 4, 16, 1) == pytest.approx(expected_distinct_experts(64, 4, 16))
    assert expected_max_distinct_experts(256, 8, 1e6, 8) == pytest.approx(32.0)
    # never below the mean, never above the local experts; rises with the tokens
    mean = expected_distinct_experts(256, 8, 8) / 8
    values = [expected_max_distinct_experts(256, 8, t, 8) for t in (1, 2, 8, 64)]
    assert values[2] >= mean and max(values) <= 32 and np.all(np.diff(values) > 0)
    # one token: exactly k = 8 experts over 8 devices; max >= 1, mean = 1
    assert expected_max_distinct_experts(256, 8, 1, 8) > 1.0
    # rows: the mean is T k / ep; the max above it and below T k
    assert 32 * 8 / 8 < expected_max_rows(256, 8, 32, 8) < 32 * 8


def test_layout_uses_the_slowest_device() -> None:
    lay = ExpertLayout(256, 8, 4, tp=1, ep=8)
    assert lay.distinct_experts == pytest.approx(expected_max_distinct_experts(256, 8, 32, 8))
    assert lay.distinct_experts > lay.mean_distinct_experts
    assert lay.rows > lay.mean_rows == pytest.approx(4 * 8 * 8 / 8)
    dense = ExpertLayout(8, 2, 16, tp=8, ep=1)  # ep = 1: every device holds every expert
    assert dense.distinct_experts == dense.mean_distinct_experts
    assert dense.rows == dense.mean_rows
