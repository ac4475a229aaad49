"""The least-squares machinery every calibration stage shares.

A fit moves a few named values (:class:`FitParam`, each at a path in the *params* mapping of
:mod:`roofline.validation._predict`) to minimise the log of predicted over measured time with
``scipy.optimize.least_squares`` (bounded, soft-L1 loss: close to a minimum of the mean absolute
percentage error and robust to a few outliers). Every dataset in a fit weighs the same, however
many rows it has (:func:`dataset_weights`); large groups of rows are thinned evenly for speed
(:func:`stage_batches`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from roofline.hardware import HardwareSpec
from roofline.validation._predict import CaseBatch, build_batches, kind_key, predict_batch

__all__ = ["FitParam", "MAX_FIT_ROWS", "set_value", "get_value", "dataset_weights", "fit", "stage_batches",
           "log_error_cost"]

MAX_FIT_ROWS = 3000  # per batch: larger training sets are thinned (every k-th row) for speed


@dataclass
class FitParam:
    """One fitted value: where it goes in the params mapping, its start and its bounds."""

    path: tuple[str, ...]  # where the value goes in the params mapping
    init: float
    lo: float
    hi: float
    log: bool = True

    def to_x(self, v: float) -> float:
        v = float(np.clip(v, self.lo, self.hi))
        return float(np.log(v)) if self.log else v

    def from_x(self, x: float) -> float:
        return float(np.exp(x)) if self.log else float(x)

    def bounds(self) -> tuple[float, float]:
        return (np.log(self.lo), np.log(self.hi)) if self.log else (self.lo, self.hi)


def set_value(params: dict[str, Any], path: tuple[str, ...], value: float) -> None:
    """Put ``value`` at ``path`` (``("curve", i)`` is knot i of ``efficiency_curve_m``)."""
    if path[0] == "curve":
        params["efficiency_curve_m"][int(path[1])][1] = value
        return
    node = params
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


def get_value(params: Mapping[str, Any], path: tuple[str, ...], default: float) -> float:
    """The value at ``path``, or ``default`` when nothing is there yet."""
    if path[0] == "curve":
        return float(params["efficiency_curve_m"][int(path[1])][1])
    node: Any = params
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return default
        node = node[key]
    return float(node)


def _thin(rows: np.ndarray, limit: int = MAX_FIT_ROWS) -> np.ndarray:
    if len(rows) <= limit:
        return rows
    return rows[:: int(np.ceil(len(rows) / limit))]


def dataset_weights(batches: Sequence[CaseBatch], frame: pd.DataFrame) -> list[np.ndarray]:
    """Per-row residual weights: each dataset in the stage weighs the same in total."""
    datasets = [frame["dataset"].to_numpy()[b.index] for b in batches]
    allsets = np.concatenate(datasets) if datasets else np.array([])
    names, counts = np.unique(allsets, return_counts=True)
    per = dict(zip(names, counts))
    total, groups = len(allsets), max(len(names), 1)
    return [np.sqrt(total / (groups * np.array([per[d] for d in ds]))) for ds in datasets]


def log_error_cost(spec: HardwareSpec, params: Mapping[str, Any], batches: Sequence[CaseBatch],
                   measured: Sequence[np.ndarray]) -> float:
    """Sum of |log(predicted / measured)| over the rows: how stages compare candidate fits."""
    return sum(float(np.sum(np.abs(np.log(predict_batch(b, spec, params) / m))))
               for b, m in zip(batches, measured))


def fit(spec: HardwareSpec, base: dict[str, Any], params: list[FitParam], batches: list[CaseBatch],
        measured: list[np.ndarray], weights: list[np.ndarray],
        regularize: Callable[[dict[str, Any]], np.ndarray] | None = None) -> dict[str, Any]:
    """Least squares on log(predicted / measured); returns ``base`` with the fitted values."""
    from scipy.optimize import least_squares

    if not params or not batches:
        return base
    x0 = np.array([p.to_x(get_value(base, p.path, p.init)) for p in params])
    lo, hi = (np.array(b) for b in zip(*(p.bounds() for p in params)))
    x0 = np.clip(x0, lo + 1e-9, hi - 1e-9)

    def apply(x: np.ndarray) -> dict[str, Any]:
        out = copy.deepcopy(base)
        for p, v in zip(params, x):
            set_value(out, p.path, p.from_x(v))
        return out

    def residuals(x: np.ndarray) -> np.ndarray:
        current = apply(x)
        parts = [w * np.log(predict_batch(b, spec, current) / m) for b, m, w in zip(batches, measured, weights)]
        if regularize is not None:
            parts.append(regularize(current))
        return np.concatenate(parts)

    result = least_squares(residuals, x0, bounds=(lo, hi), loss="soft_l1", f_scale=0.05,
                           x_scale="jac", max_nfev=200 * len(params))
    return apply(result.x)


def stage_batches(frame: pd.DataFrame, kinds: Sequence[str]) -> tuple[list[CaseBatch], list[np.ndarray]]:
    """Batches of the training rows of these kinds (large groups thinned evenly), with their
    measured times; ``CaseBatch.index`` holds positions in ``frame``."""
    sub = frame[frame["kind"].isin(kinds)]
    if sub.empty:
        return [], []
    keep = np.concatenate([_thin(np.asarray(rows)) for rows in
                           sub.groupby(kind_key(sub).to_numpy()).indices.values()])
    sub = sub.iloc[np.sort(keep)]
    meas = sub["measured_s"].to_numpy()
    pos = frame.index.get_indexer(sub.index)
    batches = build_batches(sub)
    return [replace(b, index=pos[b.index]) for b in batches], [meas[b.index] for b in batches]
