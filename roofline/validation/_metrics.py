"""Error metrics: absolute percentage error per case, summarised per group.

APE = |predicted - measured| / measured * 100; bias = mean of the signed percentage error
(negative: the model is optimistic, it predicts less time than measured).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

__all__ = ["ape", "signed_pct_error", "error_summary", "METRIC_COLUMNS"]

METRIC_COLUMNS = ("n", "mape", "median_ape", "worst_ape", "bias")


def signed_pct_error(predicted: ArrayLike, measured: ArrayLike) -> np.ndarray:
    """(predicted - measured) / measured * 100, broadcast over the inputs."""
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    return (p - m) / m * 100.0


def ape(predicted: ArrayLike, measured: ArrayLike) -> np.ndarray:
    """Absolute percentage error, broadcast over the inputs (scalar in, 0-d array out)."""
    return np.abs(signed_pct_error(predicted, measured))


def _summary(err: np.ndarray) -> dict[str, float]:
    err = err[np.isfinite(err)]
    if not len(err):
        return {"n": 0, "mape": np.nan, "median_ape": np.nan, "worst_ape": np.nan, "bias": np.nan}
    a = np.abs(err)
    return {"n": len(err), "mape": float(a.mean()), "median_ape": float(np.median(a)),
            "worst_ape": float(a.max()), "bias": float(err.mean())}


def error_summary(frame: pd.DataFrame, predicted: str, by: Sequence[str] = ("dataset", "device"),
                  measured: str = "measured_s") -> pd.DataFrame:
    """MAPE, median and worst APE and bias (all in %) per group of ``by``.

    Rows whose prediction is NaN (no bundled spec, out of scope) are left out and not counted.

    Example:
        >>> df = pd.DataFrame({"g": ["a", "a"], "p": [1.1, 0.8], "m": [1.0, 1.0]})
        >>> error_summary(df, "p", by=["g"], measured="m").round(1).to_dict("records")
        [{'g': 'a', 'n': 2, 'mape': 15.0, 'median_ape': 15.0, 'worst_ape': 20.0, 'bias': -5.0}]
    """
    err = signed_pct_error(frame[predicted], frame[measured])
    work = frame[list(by)].copy()
    work["_err"] = err
    rows = []
    for key, sub in work.groupby(list(by), sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        rows.append(dict(zip(by, key)) | _summary(sub["_err"].to_numpy()))
    out = pd.DataFrame(rows, columns=[*by, *METRIC_COLUMNS])
    return out[out["n"] > 0].reset_index(drop=True)
