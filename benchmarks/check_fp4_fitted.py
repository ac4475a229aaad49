"""FP4 rows against the fitted serving model, held out: B200 NVFP4 and gpt-oss-120b MXFP4.

``check_fp4_b200.py`` and ``check_gpt_oss_mxfp4.py`` predict these rows from the datasheet as
a static batch. This script predicts the same measured rows the way ``roofline serve`` does by
default: the event simulator of each benchmark with the calibrated device profile
(``hardware_specs/calibrated/``) and the fitted software overheads, each fitted WITHOUT the rows
it predicts:

- B200 (``aiconfigurator/e2e_silicon_dense_models.csv``, Llama-3.1-70B FP8 and NVFP4): leave
  one device out. The overheads are fitted on every H100/H200 row; the B200 rows are predicted
  from the B200 datasheet spec plus those overheads (no B200 row, so no FP4 row, is fitted).
  FP4 is read as NVFP4 weights and activations (4.5 bits) on the dense FP4 peak.
- gpt-oss-120b (``inferencex/serving_h100_h200.csv``, H100/H200): leave one model out. The
  overheads are fitted on every other model's rows; gpt-oss-120b runs the bundled model (its
  MXFP4 experts dequantised for bf16 GEMMs) on the calibrated H100/H200 profiles.

It also prints the shipped default (``serving_specs/fitted_overheads.yaml``, fitted on all rows:
not held out) and the datasheet serving model (no profile, no overheads). The training rows are
the serving fit's (``roofline.validation.fit_serving``), which reads B200 FP4 as NVFP4 too.

Run: ``python benchmarks/check_fp4_fitted.py`` (a few minutes: one simulation per row).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from roofline.model import load_model
from roofline.serving.overheads import load_overheads
from roofline.validation._serving_fit import error_table as serving_error_table
from roofline.validation._serving_fit import (
    fit_by_framework,
    load_serving_rows,
    mark_saturated,
    predict_rows,
    serving_features,
)

FP4_DEVICE, GPT_OSS = "b200", "gpt-oss-120b"


def serving_rows() -> pd.DataFrame:
    """The serving fit's rows (B200 FP4 read as NVFP4 weights and activations) with their precision."""
    rows = load_serving_rows()
    rows["precision"] = np.where(rows["op_dtypes"].str.contains("mxfp4"), "mxfp4 experts", rows["weight_dtype"])
    return rows


def _predict(rows: pd.DataFrame, feats: pd.DataFrame, fits: dict) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index, columns=["pred_ttft_ms", "pred_tpot_ms"], dtype=float)
    for fw, g in rows.groupby("framework"):
        moe = np.array([load_model(m).moe is not None for m in g["model"]], dtype=float)
        ttft, tpot = predict_rows(feats.loc[g.index], fits.get(str(fw), fits["any"]), moe, g["tp"])
        out.loc[g.index, "pred_ttft_ms"], out.loc[g.index, "pred_tpot_ms"] = ttft, tpot
    return out


def predictions() -> pd.DataFrame:
    """Per measured row of the two test sets: measured and predicted TTFT/TPOT (ms) under each
    model: ``held_out`` (fitted without the row's device or model), ``shipped`` (the default of
    ``roofline serve``) and ``datasheet``."""
    from roofline.serving.overheads import DATASHEET

    rows = serving_rows()
    feats = serving_features(rows)  # calibrated profiles where a device has one
    rows = mark_saturated(rows, feats)
    tests = {"b200 nvfp4/fp8 (leave b200 out)": rows["device"] == FP4_DEVICE,
             "gpt-oss-120b mxfp4 (leave gpt-oss-120b out)": rows["model"] == GPT_OSS}
    parts = []
    for name, test in tests.items():
        g = rows[test]
        fits = fit_by_framework(rows[~test], feats[~test])
        shipped = {fw: load_overheads(fw) for fw in ("any", *g["framework"].unique())}
        datasheet_feats = serving_features(g, datasheet_devices=tuple(g["device"].unique()))
        # a device left out is predicted from its datasheet spec (as serving_validation's device split):
        # the B200 rows' datasheet features, simulated once (they were simulated twice, 264 rows)
        held_feats = datasheet_feats if "b200" in name else feats[test]
        for model, f, fit in (("held_out", held_feats, fits), ("shipped", feats[test], shipped),
                              ("datasheet", datasheet_feats, {"any": DATASHEET})):
            p = _predict(g, f, fit)
            parts.append(g.assign(test_set=name, fitted_model=model, **{c: p[c] for c in p}))
    out = pd.concat(parts, ignore_index=True)
    for k in ("ttft", "tpot"):
        out[f"{k}_err_pct"] = (out[f"pred_{k}_ms"] / out[f"{k}_ms"] - 1) * 100
    return out


def error_table(pred: pd.DataFrame) -> pd.DataFrame:
    """MAPE and bias (%) per test set, model, precision, device and framework, unsaturated rows."""
    ok = pred[~pred["saturated"].astype(bool)]
    cols = ["pred_ttft_ms", "pred_tpot_ms"]
    return serving_error_table(ok.drop(columns=cols), ok[cols],
                               ["test_set", "fitted_model", "precision", "device", "framework"])


def fp4_over_fp8_ratio(pred: pd.DataFrame, fitted_model: str) -> pd.DataFrame:
    """Measured and predicted NVFP4/FP8 TPOT ratios on B200 at matched framework, ISL, OSL, c, TP."""
    key = ["framework", "isl", "osl", "concurrency", "tp"]
    b = pred[(pred["device"] == FP4_DEVICE) & (pred["fitted_model"] == fitted_model)
             & ~pred["saturated"].astype(bool)]
    j = b[b["precision"] == "nvfp4"].merge(b[b["precision"] == "fp8"], on=key, suffixes=("_fp4", "_fp8"))
    measured = j["tpot_ms_fp4"] / j["tpot_ms_fp8"]
    predicted = j["pred_tpot_ms_fp4"] / j["pred_tpot_ms_fp8"]
    return j[key].assign(measured=measured, predicted=predicted, error_pct=(predicted / measured - 1) * 100)


def main() -> None:
    pred = predictions()
    print("Serving model, unsaturated rows; MAPE and bias in % (held_out: fitted without these rows):")
    print(error_table(pred).to_string())
    for model in ("held_out", "shipped", "datasheet"):
        r = fp4_over_fp8_ratio(pred, model)
        print(f"B200 NVFP4/FP8 TPOT ratio, {model}: {len(r)} pairs, measured median {r['measured'].median():.3f}, "
              f"predicted median {r['predicted'].median():.3f}, MAPE {r['error_pct'].abs().mean():.1f}%, "
              f"bias {r['error_pct'].mean():+.1f}%")


if __name__ == "__main__":
    main()
