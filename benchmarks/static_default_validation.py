"""Held-out error of the static default (the fitted model, roofline.fitted) against measured serving rows.

A closed-loop benchmark at a low concurrency c with fixed lengths runs as a static batch of c
requests: they start, prefill and decode together. This script predicts the unsaturated rows of
``../shared/validation`` (InferenceX and AIConfigurator end-to-end) at concurrency <= MAX_C with
``roofline.predict`` (batch = c, the mean lengths of the benchmark client, 0.9 x ISL/OSL) in four ways:

- ``datasheet``: the raw roofline (``--datasheet``; the default before the fitted model);
- ``calibrated``: the calibrated profile, no overheads (the old ``predict --calibrated``);
- ``fitted``: the default: calibrated profile + the shipped overheads of framework ``any`` (fitted on
  every serving row, these included: in-sample for the overheads);
- ``held-out model`` / ``held-out framework``: the calibrated profile + overheads refitted
  (``roofline.validation`` serving fit, framework ``any``) without the row's model, or without its
  framework: the held-out error of the default.

Rows with attention data parallelism are left out (the static model has none). Run:
``python benchmarks/static_default_validation.py OUT`` (the simulated features of every serving row,
needed by the refits, take a few minutes and are cached in OUT/features.parquet).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from roofline.engine import with_overheads
from roofline.fitted import SoftwareOverheads, calibrated_hardware, list_profiles
from roofline.model import load_model
from roofline.predict import predict
from roofline.validation._serving_fit import (
    fit_overheads,
    load_serving_rows,
    mark_saturated,
    serving_features,
)
from roofline.workload import Parallelism, Workload

MAX_C = 4
LENGTH_RATIO = 0.9  # the client's lengths are uniform in [0.8 x, x]


def _static(row: pd.Series, hw: object, datasheet: bool) -> tuple[float, float]:
    c = int(row["concurrency"])
    w = Workload(batch=c, input_len=max(int(round(row["isl"] * LENGTH_RATIO)), 1),
                 output_len=max(int(round(row["osl"] * LENGTH_RATIO)), 2), weight_dtype=row["weight_dtype"],
                 activation_dtype=row["dtype"], kv_dtype=row["kv_dtype"],
                 op_dtypes=row["op_dtypes"] or ())  # type: ignore[arg-type]
    p = predict(row["model"], hw, workload=w, parallelism=Parallelism(tp=int(row["tp"]), ep=int(row["ep"])),
                check_memory=False, datasheet=datasheet)
    return p.ttft_s * 1e3, p.tpot_s * 1e3


def _soft(o: object) -> SoftwareOverheads:
    # every field SoftwareOverheads has (a hand-written list dropped tp_step_overhead_ms once)
    return SoftwareOverheads(**{f.name: getattr(o, f.name) for f in dataclasses.fields(SoftwareOverheads)})


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = load_serving_rows()
    cache = out / "features.parquet"
    if cache.exists():
        feats = pd.read_parquet(cache)
    else:
        feats = serving_features(rows)
        feats.to_parquet(cache)
    rows = mark_saturated(rows, feats)  # as the shipped fit: AIConfigurator rows the model saturates are apart
    test = rows[(rows["concurrency"] <= MAX_C) & ~rows["saturated"] & (rows["attention_dp"] == 1)]
    preds: dict[str, list[tuple[float, float]]] = {k: [] for k in (
        "datasheet", "calibrated", "fitted", "held-out model", "held-out framework")}
    fits: dict[tuple[str, str], SoftwareOverheads] = {}
    for _, r in test.iterrows():
        profiled = r["device"] in list_profiles()
        preds["datasheet"].append(_static(r, r["device"], True))
        raw = _static(r, calibrated_hardware(r["device"]) if profiled else r["device"], True)
        preds["calibrated"].append(raw)
        preds["fitted"].append(_static(r, r["device"], False))
        for name, col in (("held-out model", "model"), ("held-out framework", "framework")):
            key = (col, r[col])
            if key not in fits:
                keep = rows[col] != r[col]
                fits[key] = _soft(fit_overheads(rows[keep], feats[keep]))
            o = fits[key].for_model(load_model(r["model"])).for_parallelism(int(r["tp"]))
            t, p = with_overheads(o, int(r["concurrency"]), np.array([raw[0] * 1e-3]), np.array([raw[1] * 1e-3]))
            preds[name].append((float(t[0]) * 1e3, float(p[0]) * 1e3))
    per_row = test[["dataset", "model", "device", "framework", "concurrency", "isl", "osl", "ttft_ms", "tpot_ms"]].copy()
    for name, values in preds.items():
        v = np.array(values)
        per_row[f"{name}_ttft_ms"], per_row[f"{name}_tpot_ms"] = v[:, 0], v[:, 1]
    per_row.to_csv(out / "static_default_rows.csv", index=False)
    table = []
    groups = [("all", np.ones(len(test), bool))]
    groups += [(ds, (test["dataset"] == ds).to_numpy()) for ds in sorted(test["dataset"].unique())]
    groups += [(f"c={c}", (test["concurrency"] == c).to_numpy()) for c in sorted(test["concurrency"].unique())]
    for name, values in preds.items():
        v = np.array(values)
        for j, metric in enumerate(("ttft", "tpot")):
            err = v[:, j] / test[f"{metric}_ms"].to_numpy(float) - 1
            for group, m in groups:
                table.append({"model": name, "metric": metric.upper(), "rows_in": group, "rows": int(m.sum()),
                              "mape_%": 100 * np.abs(err[m]).mean(), "median_ape_%": 100 * np.median(np.abs(err[m])),
                              "bias_%": 100 * np.mean(err[m])})
    df = pd.DataFrame(table)
    df.to_csv(out / "static_default_errors.csv", index=False)
    print(f"{len(test)} rows at concurrency <= {MAX_C} (unsaturated, no attention DP): "
          f"{test.groupby('dataset').size().to_dict()}, by concurrency {test.groupby('concurrency').size().to_dict()}")
    for value in ("mape_%", "bias_%"):
        print(value)
        print(df.pivot_table(index=["metric", "rows_in", "rows"], columns="model", values=value).round(1).to_string())
    print("held-out fits (framework any):")
    for (col, value), o in sorted(fits.items()):
        print(f"  without {col} {value}: {o}")

if __name__ == "__main__":
    from _args import out_dir

    main(out_dir(sys.argv[1:], __doc__, default="runs/static_default_validation"))
