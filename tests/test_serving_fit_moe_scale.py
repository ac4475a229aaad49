"""One MoE prefill scale for every framework (``_serving_fit.fit_by_framework``): the pooled fit
fits ``moe_prefill_scale`` and each framework's fit takes it (``fit_overheads(...,
moe_prefill_scale=...)``), so a framework's mixture-of-experts rows fit its dense prefill scale
too: prefill of an MoE row = ``k_p x k_moe x`` its prefill features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from roofline.serving import OVERHEADS_FILE
from roofline.serving.overheads import Overheads
from roofline.validation._serving_fit import fit_by_framework, fit_overheads, predict_rows
from tests.test_serving_fit_robust import TRUE, _rows

MOE_MODEL = "gpt-oss-120b"  # any model spec with experts


def _moe_rows(n: int, prefill_scale: float, moe_prefill_scale: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``n`` mixture-of-experts rows exactly on the linear model at TRUE but for the prefill:
    ``prefill_scale x moe_prefill_scale`` on their prefill features."""
    rows, feats = _rows(n, seed)
    rows["model"] = MOE_MODEL
    o = Overheads(*TRUE[2:], decode_scale=TRUE[0], prefill_scale=prefill_scale, moe_prefill_scale=moe_prefill_scale)
    rows["ttft_ms"], rows["tpot_ms"] = predict_rows(feats, o, moe=np.ones(n))
    return rows, feats


def _rest(o: Overheads) -> np.ndarray:
    """Every fitted parameter but the prefill scales."""
    return np.array([o.decode_scale, o.step_overhead_ms, o.seq_overhead_us, o.request_overhead_ms])


def test_a_pinned_moe_scale_makes_moe_rows_fit_the_dense_prefill_scale():
    # 30 MoE rows whose prefill runs at 1.3 x 2.5 = 3.25 x the features (no dense row): with the MoE
    # factor pinned at 2.0 the dense prefill scale is 3.25 / 2.0 = 1.625 by hand, the rest exact
    rows, feats = _moe_rows(30, 1.3, 2.5, seed=1)
    f = feats.iloc[0]  # hand check of row 0's TTFT: k_d (decode + wait) + 3.25 prefill + s (step + 0.5) + s_seq seq + r
    assert rows["ttft_ms"].iloc[0] == pytest.approx(
        1.1 * (f.ttft_decode + 0.5 * f.tpot_decode) + 3.25 * f.ttft_prefill + 0.6 * (f.ttft_step + 0.5)
        + 12.0 * f.ttft_seq + 40.0, rel=1e-12)
    o = fit_overheads(rows, feats, moe_prefill_scale=2.0)
    assert o.moe_prefill_scale == 2.0
    assert o.prefill_scale == pytest.approx(1.625, rel=1e-4)
    assert _rest(o) == pytest.approx([1.1, 0.6, 12.0, 40.0], rel=1e-4)
    # free, the MoE rows fit the product only (1.3 x 2.5), not how it splits
    free = fit_overheads(rows, feats)
    assert free.prefill_scale * free.moe_prefill_scale == pytest.approx(3.25, rel=1e-4)


def test_free_the_moe_scale_is_fitted_beside_the_dense_one():
    dense, fd = _rows(20, seed=2)
    moe, fm = _moe_rows(20, 1.3, 2.5, seed=3)
    rows, feats = pd.concat([dense, moe], ignore_index=True), pd.concat([fd, fm], ignore_index=True)
    o = fit_overheads(rows, feats)
    assert (o.prefill_scale, o.moe_prefill_scale) == pytest.approx((1.3, 2.5), rel=1e-4)
    # without an MoE row the factor is 1 (nothing to fit it on)
    assert fit_overheads(dense, fd).moe_prefill_scale == 1.0


def test_every_framework_takes_the_pooled_moe_scale():
    # framework x: dense rows at k_p 1.3 and MoE rows at 1.3 x 2.5; framework y: MoE rows only, at
    # 1.2 x 2.5 = 3.0. Pooled, k_moe lands between 3.0 / 1.3 and 2.5; y's exact rows then give its
    # dense prefill scale as 3.0 / k_moe(pooled), with its other parameters exact
    xd, fxd = _rows(20, seed=4)
    xm, fxm = _moe_rows(20, 1.3, 2.5, seed=5)
    ym, fym = _moe_rows(20, 1.2, 2.5, seed=6)
    xd["framework"], xm["framework"], ym["framework"] = "x", "x", "y"
    rows, feats = pd.concat([xd, xm, ym], ignore_index=True), pd.concat([fxd, fxm, fym], ignore_index=True)
    fits = fit_by_framework(rows, feats)
    k_moe = fits["any"].moe_prefill_scale
    assert 3.0 / 1.3 - 1e-3 <= k_moe <= 2.5 + 1e-3
    assert fits["x"].moe_prefill_scale == fits["y"].moe_prefill_scale == k_moe
    assert fits["y"].prefill_scale == pytest.approx(3.0 / k_moe, rel=1e-4)
    assert _rest(fits["y"]) == pytest.approx([1.1, 0.6, 12.0, 40.0], rel=1e-4)


def test_the_shipped_fit_has_one_moe_prefill_scale():
    fitted = yaml.safe_load(OVERHEADS_FILE.read_text())
    scales = {fw: o["moe_prefill_scale"] for fw, o in fitted["frameworks"].items()}
    assert len(set(scales.values())) == 1, scales
    assert "shared by every framework" in fitted["provenance"]["moe_prefill_scale"]
