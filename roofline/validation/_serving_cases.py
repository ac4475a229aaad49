"""The end-to-end TTFT and TPOT cases of the case table, as rows of the public serving stage.

``roofline validate`` and ``roofline calibrate`` predict the ``ttft`` / ``tpot`` cases
(AIConfigurator's ``e2e_silicon_dense_models.csv``) with the serving simulator
(:mod:`roofline.serving`) through the features of :func:`roofline.validation._serving_fit.serving_features`:
one closed-loop simulation of the benchmark per served configuration, on a given hardware spec.
A simulation costs tens of milliseconds, so the features are kept per (spec, configuration): the
TTFT and the TPOT case of one configuration, the saturation check and the datasheet prediction
share one run, and so do the training rows and the predictions of a calibration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._serving_fit import (
    aiconfigurator_dtypes,
    aiconfigurator_gap_analysis,
    checkpoint_op_dtypes,
    launch_settings,
    serving_features,
)

__all__ = ["serving_rows", "paired_rows", "simulated_features"]

#: Columns of a serving row that decide its simulation (the cache key with the hardware).
_CONFIG = ["dataset", "model", "device", "framework", "weight_dtype", "dtype", "kv_dtype", "op_dtypes", "tp", "ep",
           "attention_dp", "isl", "osl", "concurrency", "max_num_batched_tokens", "batch_wait_timeout_iters",
           "batch_wait_max_tokens_ratio"]


def serving_rows(cases: pd.DataFrame) -> pd.DataFrame:
    """One serving row (the columns of :func:`~roofline.validation._serving_fit.load_serving_rows`)
    per end-to-end case, same index.

    The dtypes are ``load_serving_rows``' (:func:`~roofline.validation._serving_fit.aiconfigurator_dtypes`;
    a test checks the two readings of the file agree), and so are the engine settings the runs' launch
    scripts set (:func:`~roofline.validation._serving_fit.launch_settings`) and the run set
    (``gap_analysis``: :func:`~roofline.validation._serving_fit.aiconfigurator_gap_analysis`).
    """
    backend = cases["backend"].astype(str)
    dtype, kv_dtype = aiconfigurator_dtypes(cases["precision"].fillna("bf16").astype(str), backend)
    rows = pd.DataFrame({
        "dataset": "aiconfigurator", "model": cases["model"], "device": cases["device"], "framework": backend,
        "dtype": dtype, "weight_dtype": dtype, "op_dtypes": checkpoint_op_dtypes(dtype), "kv_dtype": kv_dtype,
        "tp": cases["tp"].astype(int), "ep": 1, "attention_dp": 1, "isl": cases["isl"].astype(int),
        "osl": cases["osl"].astype(int), "concurrency": cases["concurrency"].astype(int),
        "max_num_batched_tokens": np.nan,
        "saturated": (cases["family"] == "e2e_ttft_queued").to_numpy(),
    }, index=cases.index)
    # the case table writes a blank backend_version as "unversioned"
    version = cases["backend_version"] if "backend_version" in cases else pd.Series(np.nan, index=cases.index)
    rows["gap_analysis"] = aiconfigurator_gap_analysis(
        pd.DataFrame({"backend_version": version.replace("unversioned", np.nan)})).to_numpy()
    return launch_settings(rows)


def paired_rows(cases: pd.DataFrame) -> pd.DataFrame:
    """One serving row per measured configuration with its TTFT and TPOT (``ttft_ms``, ``tpot_ms``):
    the ``ttft`` and the ``tpot`` case of one source row (``case_id`` ``...:ttft:i`` and ``...:tpot:i``)
    joined; configurations with only one of the two in ``cases`` are left out. ``saturated``: the
    TTFT case was classified ``e2e_ttft_queued``."""
    e2e = cases[cases["kind"].isin(["ttft", "tpot"])]
    source = e2e["case_id"].str.replace(r":(ttft|tpot):", ":", regex=True)
    ttft, tpot = (e2e[e2e["kind"] == k].set_index(source[e2e["kind"] == k]) for k in ("ttft", "tpot"))
    both = ttft.index.intersection(tpot.index)
    rows = serving_rows(ttft.loc[both]).reset_index(drop=True)
    rows["ttft_ms"] = ttft.loc[both, "measured_s"].to_numpy() * 1e3
    rows["tpot_ms"] = tpot.loc[both, "measured_s"].to_numpy() * 1e3
    return rows


# (repr of the spec, configuration) -> features; repr lists every field of the spec, so two
# specs with the same values (a profile applied twice) share entries
_FEATURES: dict[tuple[Any, ...], np.ndarray] = {}
_FEATURE_COLUMNS: list[str] = []


def _keys(rows: pd.DataFrame, spec_key: str) -> list[tuple[Any, ...]]:
    # NaN (no token budget recorded) never equals itself as a dict key: -1 stands for it
    return [(spec_key, *k) for k in rows[_CONFIG].fillna(-1).astype(object).itertuples(index=False, name=None)]


def simulated_features(rows: pd.DataFrame, hw: HardwareSpec) -> pd.DataFrame:
    """:func:`~roofline.validation._serving_fit.serving_features` of ``rows`` (serving rows of
    ``hw``'s device) simulated on ``hw``, each configuration simulated once per spec and process."""
    if len(_FEATURES) > 100_000:
        _FEATURES.clear()
    spec_key = repr(hw)
    keys = _keys(rows, spec_key)
    new = rows[[k not in _FEATURES for k in keys]].drop_duplicates(_CONFIG)
    if len(new):
        feats = serving_features(new, hardware={d: hw for d in new["device"].unique()})
        _FEATURE_COLUMNS[:] = list(feats.columns)
        _FEATURES.update(zip(_keys(new, spec_key), feats.to_numpy(dtype=float)))
    return pd.DataFrame([_FEATURES[k] for k in keys], index=rows.index, columns=_FEATURE_COLUMNS, dtype=float)
