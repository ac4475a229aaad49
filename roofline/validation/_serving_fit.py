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

from roofline.hardware import HardwareSpec, load_hardware
from roofline.model import load_model
from roofline.serving import (
    Lengths,
    ServingSetup,
    ServingWorkload,
    engine_defaults,
    make_requests,
    simulate,
)
from roofline.serving.overheads import Overheads
from roofline.validation._data import resolve_data_dir
from roofline.validation._profile import calibrated_hardware, list_profiles
from roofline.workload import Parallelism, Workload

__all__ = ["load_serving_rows", "serving_features", "fit_overheads", "predict_rows", "held_out_errors",
           "mark_saturated", "fit_by_framework", "fit_serving", "serving_report", "serving_hardware", "serve_fitted",
           "error_table", "BUCKETS"]

_MODELS = {"llama-3.1-70b-instruct": "llama-3.1-70b", "deepseek-v3": "deepseek-v3",
           "Qwen/Qwen3-32B": "qwen3-32b", "meta-llama/Llama-3.1-70B": "llama-3.1-70b",
           "meta-llama/Llama-3.1-8B-Instruct": "llama-3.1-8b", "nvidia/Llama-3.1-8B-Instruct-FP8": "llama-3.1-8b"}
_DEVICES = {"h100": "h100-sxm", "h200": "h200-sxm", "h100_sxm": "h100-sxm", "h200_sxm": "h200-sxm",
            "b200_sxm": "b200"}
BUCKETS = ((1, 8, "1-8"), (16, 64, "16-64"), (128, 1 << 30, "128+"))
#: Bounds of (decode_scale, prefill_scale, step_overhead_ms, seq_overhead_us, request_overhead_ms).
BOUNDS = ((0.5, 0.5, 0.0, 0.0, 0.0), (3.0, 5.0, 50.0, 200.0, 2000.0))


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


#: How each dataset's benchmark ran (lengths, requests), for the simulator.
#: InferenceX: InferenceMAX's client, ``--random-range-ratio 0.8 --num-prompts $((CONC * 10))
#: --request-rate inf --max-concurrency CONC`` (source: the InferenceMAX README, benchmark client
#: configuration), i.e. lengths uniform in [0.8 x, x] in its vendored benchmark_serving.py.
#: AIConfigurator: not described by the source; the same client is assumed.
RANGE_RATIO = 0.8
REQUESTS_PER_CONCURRENCY = 10


def serving_hardware(device: str, datasheet: bool = False) -> HardwareSpec:
    """``device`` with its calibrated profile (fitted efficiencies) when one ships and
    ``datasheet`` is False, else its datasheet spec."""
    if not datasheet and device in list_profiles():
        return calibrated_hardware(device)
    return load_hardware(device)


@lru_cache(maxsize=256)
def _setup(model: str, device: str, framework: str, weight_dtype: str, act_dtype: str, kv_dtype: str, tp: int,
           ep: int, attention_dp: int, datasheet: bool) -> tuple[Any, float, ServingSetup]:
    w = Workload(weight_dtype=weight_dtype, activation_dtype=act_dtype, kv_dtype=kv_dtype)
    settings = engine_defaults(framework).with_overrides(attention_dp=attention_dp if attention_dp > 1 else None)
    setup = ServingSetup(load_model(model), serving_hardware(device, datasheet), w, Parallelism(tp=tp, ep=ep),
                         settings)
    return setup.step_cost().scalar(), setup.kv_capacity_tokens(), setup


_KEYS = ["model", "device", "framework", "weight_dtype", "dtype", "kv_dtype", "tp", "ep", "attention_dp"]
_FEATURES = ["ttft_decode", "ttft_prefill", "ttft_step", "ttft_seq", "tpot_decode", "tpot_prefill", "tpot_step",
             "tpot_seq"]


def serving_features(rows: pd.DataFrame, datasheet_devices: Sequence[str] = (),
                     requests_per_concurrency: dict[str, float] | None = None,
                     range_ratio: dict[str, float] | None = None) -> pd.DataFrame:
    """Per row, the linear features of the simulated benchmark, in ms: with decode scale ``k_d``,
    prefill scale ``k_p``, step overhead ``s`` (ms) and request overhead ``r`` (ms),
    TTFT = ``k_d ttft_decode + k_p ttft_prefill + s ttft_step + r`` and TPOT likewise (no r).

    A closed loop's schedule depends on token counts only, not on step times, so the engine
    clocks of one run (:attr:`SimulationTrace.clock_first` ...) give the features exactly; the
    request overhead is taken as additive. Devices in ``datasheet_devices`` use their datasheet
    spec (a device left out of the fit), the others their calibrated profile.
    """
    out = pd.DataFrame(index=rows.index, columns=_FEATURES + ["saturated_model"], dtype=float)
    for key, g in rows.groupby(_KEYS):
        scalar, cap, setup = _setup(*key, key[1] in datasheet_devices)
        for i, r in g.iterrows():
            c = int(r["concurrency"])
            ratio = (range_ratio or {}).get(r["dataset"], RANGE_RATIO)
            per_c = (requests_per_concurrency or {}).get(r["dataset"], REQUESTS_PER_CONCURRENCY)
            isl, osl = int(r["isl"]), int(r["osl"])
            w = ServingWorkload(Lengths(max(int(isl * ratio), 1), isl), Lengths(max(int(osl * ratio), 1), osl),
                                concurrency=c, num_requests=max(int(round(per_c * c)), 1))
            settings = setup.settings.with_overrides(max_num_seqs=min(c, setup.settings.max_num_seqs))
            tr = simulate(make_requests(w), scalar, settings, cap, concurrency=c)
            multi = tr.output > 1
            ttft = (tr.clock_first - tr.clock_arrival).mean(axis=0)
            tpot = ((tr.clock_finish - tr.clock_first)[multi] / (tr.output[multi, None] - 1)).mean(axis=0)
            batch = tr.mean_running
            # ms, ms, steps (x s in ms), sequence-steps (x s_seq in us -> 1e-3 ms)
            out.loc[i, _FEATURES] = [ttft[0] * 1e3, ttft[1] * 1e3, ttft[2], ttft[3] * 1e-3,
                                     tpot[0] * 1e3, tpot[1] * 1e3, tpot[2], tpot[3] * 1e-3]
            out.loc[i, "saturated_model"] = float(batch < 0.9 * c)
    return out


def _design(f: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the linear model in (k_d, k_p, s_ms, s_seq_us, r_ms): TPOT and TTFT rows, in ms."""
    n = len(f)
    tpot = np.stack([f["tpot_decode"], f["tpot_prefill"], f["tpot_step"], f["tpot_seq"], np.zeros(n)],
                    axis=1).astype(float)
    ttft = np.stack([f["ttft_decode"], f["ttft_prefill"], f["ttft_step"], f["ttft_seq"], np.ones(n)],
                    axis=1).astype(float)
    return tpot, ttft


def fit_overheads(rows: pd.DataFrame, feats: pd.DataFrame) -> Overheads:
    """(k_d, k_p, s, r) minimising the relative error of TPOT and of TTFT, each set weighted
    equally (bounded linear least squares), on unsaturated rows."""
    from scipy.optimize import lsq_linear

    ok = ~rows["saturated"].to_numpy()
    tpot, ttft = _design(feats[ok])
    y1, y2 = rows.loc[ok, "tpot_ms"].to_numpy(float), rows.loc[ok, "ttft_ms"].to_numpy(float)
    a = np.concatenate([tpot / y1[:, None], ttft / y2[:, None]])
    k_d, k_p, s, s_seq, r = lsq_linear(a, np.ones(len(a)), bounds=BOUNDS).x
    return Overheads(step_overhead_ms=float(s), seq_overhead_us=float(s_seq), request_overhead_ms=float(r),
                     decode_scale=float(k_d), prefill_scale=float(k_p), source="fitted")


def predict_rows(feats: pd.DataFrame, o: Overheads) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT ms, TPOT ms) of every row with overheads ``o``."""
    tpot, ttft = _design(feats)
    x = np.array([o.decode_scale, o.prefill_scale, o.step_overhead_ms, o.seq_overhead_us, o.request_overhead_ms])
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


def held_out_errors(rows: pd.DataFrame, feats: pd.DataFrame, split: str,
                    feats_datasheet: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predictions of every row by a fit that never saw its group.

    ``split``: ``model`` or ``framework`` (leave one out; a held-out framework gets the pooled
    ``any`` fit of the others); ``device`` (leave one out, and the held-out device is predicted
    from its datasheet spec, ``feats_datasheet``, plus the overheads fitted on the others);
    ``datasheet`` (datasheet specs, no overheads).
    """
    if split == "datasheet":
        return _predict_with(rows, feats_datasheet if feats_datasheet is not None else feats, {"any": Overheads()})
    parts = []
    for value, g in rows.groupby(split):
        train = rows[rows[split] != value]
        fits = fit_by_framework(train, feats.loc[train.index])
        test = feats_datasheet if split == "device" and feats_datasheet is not None else feats
        parts.append(_predict_with(g, test.loc[g.index], fits))
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


def mark_saturated(rows: pd.DataFrame, feats: pd.DataFrame) -> pd.DataFrame:
    """AIConfigurator rows carry no saturation flag: those whose simulated mean batch stays below
    90 % of the concurrency (the KV cache holds fewer sequences, the rest queue) are saturated,
    decided from the model before looking at the measurement. InferenceX keeps its flag."""
    rows = rows.copy()
    aic = rows["dataset"] == "aiconfigurator"
    rows.loc[aic, "saturated"] = feats.loc[aic, "saturated_model"].astype(bool)
    return rows


def fitted_file(rows: pd.DataFrame, feats: pd.DataFrame) -> dict[str, Any]:
    """The contents of serving_specs/fitted_overheads.yaml: every framework's fit on all rows."""
    fits = fit_by_framework(rows, feats)
    ok = ~rows["saturated"]
    return {
        "provenance": {
            "created": _dt.date.today().isoformat(),
            "tool": "roofline.validation._serving_fit.fit_serving: the event simulator of each measured benchmark "
                    f"(closed loop, {REQUESTS_PER_CONCURRENCY} x c requests, lengths uniform in "
                    f"[{RANGE_RATIO} x, x]) on calibrated device profiles (hardware_specs/calibrated)",
            "data": ["../shared/validation/inferencex/serving_h100_h200.csv",
                     "../shared/validation/aiconfigurator/e2e_silicon_dense_models.csv"],
            "models": sorted(rows["model"].unique()), "devices": sorted(rows["device"].unique()),
            "split": "fitted on all unsaturated rows; held-out errors (leave one model, framework, device out) "
                     "are in docs/serving.md",
            "rows": int(ok.sum()),
            "method": "scipy.optimize.lsq_linear on the relative error of TPOT and TTFT; bounds "
                      + ", ".join(f"{n} {lo}-{hi}" for n, lo, hi in zip(
                          ("decode_scale", "prefill_scale", "step_overhead_ms", "seq_overhead_us",
                           "request_overhead_ms"), *BOUNDS)),
        },
        "frameworks": {fw: {"decode_scale": round(o.decode_scale, 4), "prefill_scale": round(o.prefill_scale, 4),
                            "step_overhead_ms": round(o.step_overhead_ms, 4),
                            "seq_overhead_us": round(o.seq_overhead_us, 3),
                            "request_overhead_ms": round(o.request_overhead_ms, 3),
                            "train_rows": int((ok & ((rows["framework"] == fw) | (fw == "any"))).sum())}
                       for fw, o in fits.items()},
    }


def fit_serving(data_dir: str | Path | None = None, out: str | Path | None = None) -> dict[str, Any]:
    """Fit the overheads on every serving row and write them (default: the shipped file)."""
    import yaml

    from roofline.serving import OVERHEADS_FILE

    rows = load_serving_rows(data_dir)
    feats = serving_features(rows)
    content = fitted_file(mark_saturated(rows, feats), feats)
    path = Path(out or OVERHEADS_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return content


def serving_report(data_dir: str | Path | None = None,
                   splits: Sequence[str] = ("datasheet", "model", "framework", "device")) -> dict[str, pd.DataFrame]:
    """Held-out error tables by dataset and concurrency bucket and by dataset and ISL/OSL, and
    the predictions (``<split>:predictions``)."""
    rows = load_serving_rows(data_dir)
    feats = serving_features(rows)
    feats_ds = serving_features(rows, datasheet_devices=tuple(rows["device"].unique()))
    rows = mark_saturated(rows, feats)
    tables = {}
    for split in splits:
        pred = held_out_errors(rows, feats, split, feats_ds)
        tables[f"{split}:bucket"] = error_table(rows, pred, ["dataset", "bucket"])
        tables[f"{split}:isl_osl"] = error_table(rows, pred, ["dataset", "isl_osl"])
        tables[f"{split}:predictions"] = rows.join(pred)
    return tables


def serve_fitted(model: Any, hardware: HardwareSpec | str, *, datasheet: bool = False, **kwargs: Any) -> Any:
    """``roofline.serving.serve`` with the fitted model as default: the device's calibrated
    profile when one ships (``hardware_specs/calibrated/``) and the fitted overheads;
    ``datasheet=True`` gives the raw datasheet roofline (no profile, no overheads)."""
    from roofline.serving import serve

    profile = "datasheet"
    if isinstance(hardware, str) and not datasheet:
        name = load_hardware(hardware).name
        if name in list_profiles():
            hardware, profile = calibrated_hardware(name), f"calibrated: hardware_specs/calibrated/{name}.yaml"
    result = serve(model, hardware, datasheet=datasheet, **kwargs)
    result.summary["hardware_profile"] = profile
    return result
