"""The fit's wait for the running step (roofline.validation._serving_fit.step_wait_multiplier): the
analytic model's renewal-residual law at a fit's overheads, over the half mean step the features hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from roofline.serving.analytic import _step_residual_s
from roofline.serving.overheads import Overheads
from roofline.validation._serving_fit import _STEP_KINDS, step_wait_multiplier

_O = Overheads(decode_scale=1.1, prefill_scale=1.5, step_overhead_ms=2.0, seq_overhead_us=20.0,
               request_overhead_ms=30.0, moe_prefill_scale=2.0, tp_step_overhead_ms=0.5)


def _feats(share: float) -> pd.DataFrame:
    # a decode-only step: 10 ms of decode clock, 8 sequences; a chunked one adds 100 ms of prefill clock
    # (the sequence-steps feature is in thousands: x s_seq in us gives ms)
    values = [share, 10.0, 0.0, 1.0, 0.008, 10.0, 100.0, 1.0, 0.008]
    return pd.DataFrame([values], columns=_STEP_KINDS)


def test_by_hand_with_the_overheads_units_and_tp_workers():
    # TP 4: s = 2 + 0.5 x 3 = 3.5 ms a step; step0 = 1.1 x 10 + 3.5 + 20 x 0.008 = 14.66 ms,
    # step1 = 14.66 + 1.5 x 100 = 164.66 ms (a dense model), mean at 5% = 22.16 ms
    m = step_wait_multiplier(_feats(0.05), _O, np.zeros(1), np.array([4]))
    want = _step_residual_s(np.array([14.66]), np.array([164.66]), np.array([0.05]), np.array([30.0]))
    assert m[0] == pytest.approx(want[0] / (0.5 * 22.16))
    assert m[0] > 1.5  # a chunked step is waited for whole: more than half a mean step
    # a mixture-of-experts model's prefill clock takes prefill_scale x moe_prefill_scale = 3
    moe = step_wait_multiplier(_feats(0.05), _O, np.ones(1), np.array([4]))
    want_moe = _step_residual_s(np.array([14.66]), np.array([314.66]), np.array([0.05]), np.array([30.0]))
    assert moe[0] == pytest.approx(want_moe[0] / (0.5 * (0.95 * 14.66 + 0.05 * 314.66)))


def test_decode_only_steps_keep_half_a_step():
    # no step carries prefill: the phase-averaged residual of equal steps is half a step
    assert step_wait_multiplier(_feats(0.0), _O, np.zeros(1), np.array([1]))[0] == pytest.approx(1.0, abs=1e-9)


def test_features_without_step_kinds_keep_the_half_step():
    f = pd.DataFrame({"wait_decode": [1.0]})
    assert step_wait_multiplier(f, _O, np.zeros(1)).tolist() == [1.0]
