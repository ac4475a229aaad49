"""Serving rows of ``../shared/validation`` and the fit of the per-framework software overheads.

Rows: the InferenceX closed-loop sweeps (``inferencex/serving_h100_h200.csv``) and the end-to-end
rows of AIConfigurator (``aiconfigurator/e2e_silicon_dense_models.csv``), for the models the
project reads (Llama-3.1-70B/8B, Qwen3-32B, DeepSeek-V3). Each row is predicted by the public
serving stage (:mod:`roofline.serving`): the analytic closed-loop model of a benchmark that sends
``10 x concurrency`` requests of identical lengths, the first ``concurrency`` at once (lock-step).

With the step scale ``k``, step overhead ``s`` and request overhead ``r`` the prediction is linear:
TPOT = ``k A + s B`` and TTFT = ``k C + s D + r`` (the schedule of a closed loop does not depend on
the step times), so two evaluations per row give ``A..D`` and the fit is a bounded linear least
squares on relative error (``scipy.optimize.lsq_linear``), on unsaturated rows only.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.serving import ServingSetup, engine_defaults, steady_state
from roofline.serving.overheads import Overheads
from roofline.validation._data import resolve_data_dir
from roofline.workload import Parallelism, Workload

__all__ = ["load_serving_rows", "serving_features", "fit_overheads", "predict_rows", "held_out_errors",
           "error_table", "BUCKETS"]

_MODELS = {"llama-3.1-70b-instruct": "llama-3.1-70b", "deepseek-v3": "deepseek-v3",
           "Qwen/Qwen3-32B": "qwen3-32b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
           "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b"}
_DEVICES = {"h100": "h100-sxm", "h200": "h200-sxm", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm",
            "b200_sxm": "b200"}
BUCKETS = ((1, 8, "1-8"), (16, 64, "16-64"), (128, 1 << 30, "128+"))
#: Bounds of (step_scale, step_overhead_ms, request_overhead_ms).
BOUNDS = ((0.5, 0.0, 0.0), (3.0, 50.0, 2000.0))


def load_serving_rows(data_dir: str | Path | None = None) -> pd.DataFrame:
    """One row per measured (scenario, concurrency): both TTFT and TPOT, in ms."""
    root = resolve_data_dir(data_dir)
    x = pd.read_csv(root / "inferencex" / "serving_h100_h200.csv")
    x = x[x["model"].isin(_MODELS)]
    ix = pd.DataFrame({
        "dataset": "inferencex", "model": x["model"].map(_MODELS), "device": x["gpu"].map(_DEVICES),
        "framework": x["framework"].replace({"trt": "trtllm"}), "dtype": "fp8", "weight_dtype": "fp8",
        "kv_dtype": "fp8", "tp": x["tp"].astype(int), "ep": x["moe_ep"].fillna(1).astype(int),
        "attention_dp": x["attention_dp"].fillna(1).astype(int), "isl": x["isl"], "osl": x["osl"],
        "concurrency": x["concurrency"].astype(int), "ttft_ms": x["ttft_ms"], "tpot_ms": x["tpot_ms"],
        "saturated": x["flags"].fillna("").str.contains("ttft_jump")})
    e = pd.read_csv(root / "aiconfigurator" / "e2e_silicon_dense_models.csv")
    e = e[e["model_path"].isin(_MODELS) & (e["pp_size"] == 1)]
    prec = e["precision"].fillna("bf16").where(~e["model_path"].str.endswith("FP8"), "fp8")
    backend = e["backend"].astype(str)
    ae = pd.DataFrame({
        "dataset": "aiconfigurator", "model": e["model_path"].map(_MODELS), "device": e["system"].map(_DEVICES),
        "framework": backend, "dtype": prec.replace({"fp4": "fp8"}),
        "weight_dtype": prec.replace({"fp4": "int4"}),
        # the KV cache is fp8 in TensorRT-LLM's fp8 recipes, else the model's bf16 (an assumption)
        "kv_dtype": np.where((backend == "trtllm") & (prec != "bf16"), "fp8", "bf16"),
        "tp": e["tp_size"].astype(int), "ep": 1, "attention_dp": 1, "isl": e["isl"], "osl": e["osl"],
        "concurrency": e["batch_size"].astype(int), "ttft_ms": e["silicon_ttft_ms"], "tpot_ms": e["silicon_tpot_ms"],
        "saturated": False})
    rows = pd.concat([ix, ae], ignore_index=True)
    rows["isl_osl"] = rows["isl"].astype(int).astype(str) + "/" + rows["osl"].astype(int).astype(str)
    rows["bucket"] = pd.cut(rows["concurrency"], [0, 8, 64, 1 << 30], labels=[b[2] for b in BUCKETS])
    return rows.reset_index(drop=True)


@lru_cache(maxsize=256)
def _setup(model: str, device: str, framework: str, weight_dtype: str, act_dtype: str, kv_dtype: str, tp: int,
           ep: int, attention_dp: int) -> tuple[Any, float, ServingSetup]:
    w = Workload(weight_dtype=weight_dtype, activation_dtype=act_dtype, kv_dtype=kv_dtype)
    settings = engine_defaults(framework).with_overrides(attention_dp=attention_dp if attention_dp > 1 else None)
    setup = ServingSetup(load_model(model), load_hardware(device), w, Parallelism(tp=tp, ep=ep), settings)
    return setup.step_cost(), setup.kv_capacity_tokens(), setup


def serving_features(rows: pd.DataFrame) -> pd.DataFrame:
    """Per row: A, B (TPOT = k A + s B) and C, D (TTFT = k C + s D + r), seconds; and
    ``c_fit`` (sequences the KV cache holds) for the saturation check."""
    out = pd.DataFrame(index=rows.index, columns=["A", "B", "C", "D", "c_fit"], dtype=float)
    keys = ["model", "device", "framework", "weight_dtype", "dtype", "kv_dtype", "tp", "ep", "attention_dp"]
    for key, g in rows.groupby(keys + ["dataset"]):
        cost, cap, setup = _setup(*key[:-1])
        # InferenceX runs 10 x c requests of one length, the first c at once (lock-step waves);
        # the AIConfigurator rows do not say: they are taken as a steady state of staggered requests
        bench = key[-1] == "inferencex"
        s = setup.settings
        c = g["concurrency"].to_numpy(float)
        runs = []
        for step_s in (0.0, 1e-3):
            r = steady_state(cost, prompt=g["isl"].to_numpy(float), output=g["osl"].to_numpy(float),
                             prefill=g["isl"].to_numpy(float), kv_capacity_tokens=cap,
                             max_num_batched_tokens=s.max_num_batched_tokens,
                             max_num_seqs=np.maximum(c, 1), block_tokens=s.block_tokens, concurrency=c,
                             step_overhead_s=step_s, lockstep=bench, burst_requests=10 * c if bench else None)
            runs.append(r)
        out.loc[g.index, "A"] = runs[0]["tpot_s"]
        out.loc[g.index, "B"] = (runs[1]["tpot_s"] - runs[0]["tpot_s"]) / 1e-3
        out.loc[g.index, "C"] = runs[0]["ttft_s"]
        out.loc[g.index, "D"] = (runs[1]["ttft_s"] - runs[0]["ttft_s"]) / 1e-3
        out.loc[g.index, "c_fit"] = runs[0]["max_running"]
    return out


def _design(f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the linear model in (k, s_ms, r_ms): TPOT rows then TTFT rows, in ms."""
    n = len(f)
    tpot = np.stack([f["A"] * 1e3, f["B"], np.zeros(n)], axis=1)
    ttft = np.stack([f["C"] * 1e3, f["D"], np.ones(n)], axis=1)
    return tpot, ttft


def fit_overheads(rows: pd.DataFrame, feats: pd.DataFrame) -> Overheads:
    """(k, s, r) minimising the relative error of TPOT and TTFT (each weighted equally)."""
    from scipy.optimize import lsq_linear

    ok = ~rows["saturated"].to_numpy()
    tpot, ttft = _design(feats[ok])
    y1, y2 = rows.loc[ok, "tpot_ms"].to_numpy(float), rows.loc[ok, "ttft_ms"].to_numpy(float)
    # TPOT sets the step (k, s); then TTFT the request overhead r given them
    k, s = lsq_linear(tpot[:, :2] / y1[:, None], np.ones(len(y1)), bounds=(BOUNDS[0][:2], BOUNDS[1][:2])).x
    rest = ttft[:, :2] @ np.array([k, s])
    r = lsq_linear((1.0 / y2)[:, None], 1.0 - rest / y2, bounds=([BOUNDS[0][2]], [BOUNDS[1][2]])).x[0]
    return Overheads(step_overhead_ms=float(s), request_overhead_ms=float(r), step_scale=float(k),
                     source="fitted")


def predict_rows(feats: pd.DataFrame, o: Overheads) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT ms, TPOT ms) of every row with overheads ``o``."""
    tpot, ttft = _design(feats)
    x = np.array([o.step_scale, o.step_overhead_ms, o.request_overhead_ms])
    return ttft @ x, tpot @ x


def fit_by_framework(rows: pd.DataFrame, feats: pd.DataFrame, min_rows: int = 8) -> dict[str, Overheads]:
    """One fit per framework with at least ``min_rows`` unsaturated rows, and ``any`` (all rows)."""
    fits = {"any": fit_overheads(rows, feats)}
    for fw, g in rows.groupby("framework"):
        if (~g["saturated"]).sum() >= min_rows:
            fits[str(fw)] = fit_overheads(g, feats.loc[g.index])
    return fits


def _predict_with(rows: pd.DataFrame, feats: pd.DataFrame, fits: dict[str, Overheads]) -> pd.DataFrame:
    out = pd.DataFrame(index=rows.index, columns=["pred_ttft_ms", "pred_tpot_ms"], dtype=float)
    for fw, g in rows.groupby("framework"):
        o = fits.get(str(fw), fits["any"])
        t, p = predict_rows(feats.loc[g.index], o)
        out.loc[g.index, "pred_ttft_ms"], out.loc[g.index, "pred_tpot_ms"] = t, p
    return out


def held_out_errors(rows: pd.DataFrame, feats: pd.DataFrame, split: str) -> pd.DataFrame:
    """Predictions of every row by a fit that never saw its group: ``split`` is ``model``,
    ``framework`` or ``device`` (leave one out; a held-out framework gets the pooled ``any`` fit
    of the others), or ``datasheet`` (no overheads)."""
    if split == "datasheet":
        return _predict_with(rows, feats, {"any": Overheads()})
    parts = []
    for value, g in rows.groupby(split):
        train = rows[rows[split] != value]
        fits = fit_by_framework(train, feats.loc[train.index])
        parts.append(_predict_with(g, feats.loc[g.index], fits))
    return pd.concat(parts).loc[rows.index]


def error_table(rows: pd.DataFrame, pred: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """MAPE and bias (%) of TTFT and TPOT per group, unsaturated rows; saturated apart."""
    d = rows.join(pred)
    d["ttft_err"] = (d["pred_ttft_ms"] / d["ttft_ms"] - 1) * 100
    d["tpot_err"] = (d["pred_tpot_ms"] / d["tpot_ms"] - 1) * 100
    d["set"] = np.where(d["saturated"], "saturated", "unsaturated")
    g = d.groupby(["set", *by], observed=True)
    return pd.DataFrame({
        "rows": g.size(),
        "tpot_mape": g["tpot_err"].apply(lambda e: e.abs().mean()),
        "tpot_bias": g["tpot_err"].mean(),
        "ttft_mape": g["ttft_err"].apply(lambda e: e.abs().mean()),
        "ttft_bias": g["ttft_err"].mean(),
    }).round(1)


def fitted_file(rows: pd.DataFrame, feats: pd.DataFrame) -> dict[str, Any]:
    """The contents of serving_specs/fitted_overheads.yaml: every framework's fit on all rows."""
    fits = fit_by_framework(rows, feats)
    ok = ~rows["saturated"]
    return {
        "provenance": {
            "created": _dt.date.today().isoformat(),
            "tool": "roofline.validation.fit_serving (analytic closed-loop model, lock-step, 10 x c requests)",
            "data": ["../shared/validation/inferencex/serving_h100_h200.csv",
                     "../shared/validation/aiconfigurator/e2e_silicon_dense_models.csv"],
            "models": sorted(rows["model"].unique()), "devices": sorted(rows["device"].unique()),
            "split": "all unsaturated rows (held-out errors in docs/serving.md: leave one model, framework, "
                     "device out)",
            "rows": int(ok.sum()),
            "method": "scipy.optimize.lsq_linear on relative error of TPOT and TTFT, bounds "
                      f"step_scale {BOUNDS[0][0]}-{BOUNDS[1][0]}, step_overhead_ms 0-{BOUNDS[1][1]}, "
                      f"request_overhead_ms 0-{BOUNDS[1][2]}",
        },
        "frameworks": {fw: {"step_scale": round(o.step_scale, 4), "step_overhead_ms": round(o.step_overhead_ms, 4),
                            "request_overhead_ms": round(o.request_overhead_ms, 3),
                            "train_rows": int((ok & ((rows["framework"] == fw) | (fw == "any"))).sum())}
                       for fw, o in fits.items()},
    }


def fit_serving(data_dir: str | Path | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Fit the overheads on every serving row and write them (default: the shipped file)."""
    import yaml

    from roofline.serving import OVERHEADS_FILE

    rows = load_serving_rows(data_dir)
    content = fitted_file(rows, serving_features(rows))
    Path(out or OVERHEADS_FILE).parent.mkdir(parents=True, exist_ok=True)
    Path(out or OVERHEADS_FILE).write_text(yaml.safe_dump(content, sort_keys=False))
    return content


def serving_report(data_dir: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Held-out error tables (leave one model / framework / device out, and datasheet) by dataset
    and concurrency bucket, and by dataset and ISL/OSL."""
    rows = load_serving_rows(data_dir)
    feats = serving_features(rows)
    tables = {}
    for split in ("datasheet", "model", "framework", "device"):
        pred = held_out_errors(rows, feats, split)
        tables[f"{split}:bucket"] = error_table(rows, pred, ["dataset", "bucket"])
        tables[f"{split}:isl_osl"] = error_table(rows, pred, ["dataset", "isl_osl"])
        tables[f"{split}:predictions"] = rows.join(pred)
    return tables
