"""Pareto front: every configuration as a faint point, the non-dominated ones highlighted and
connected (:func:`plot_pareto_front`), and the front itself (:func:`pareto_mask_2d`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.metrics import METRICS
from roofline.pareto import pareto_mask
from roofline.plots._common import (
    TEMPLATE,
    _default_hover,
    _frame,
    _hover_data,
    _hover_template,
    _is_continuous,
    _require,
    _with_subtitle,
    axis_label,
    series_colors,
)
from roofline.registry import headline_parameters

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["ParetoFrontInfo", "pareto_mask_2d", "plot_pareto_front"]


def pareto_mask_2d(x: Any, y: Any, *, x_better: str = "min", y_better: str = "max") -> np.ndarray:
    """Non-dominated points of two objectives: :func:`roofline.pareto.pareto_mask` on (x, y).

    A point is dominated when another is at least as good in both objectives and better in one.
    Equal points are all kept. Non-finite points are never on the front.

    Args:
        x, y: array_like of shape (n,).
        x_better, y_better: ``"min"`` or ``"max"``: which direction is better.

    Returns:
        Boolean array of shape (n,), True on the front.
    """
    for name, v in (("x_better", x_better), ("y_better", y_better)):
        if v not in ("min", "max"):
            raise ValueError(f"{name} must be 'min' or 'max', got {v!r}")
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1:
        raise ValueError(f"x and y must be 1-d of the same length, got {xs.shape} and {ys.shape}")
    return pareto_mask(np.column_stack([xs, ys]), [x_better == "max", y_better == "max"])


class ParetoFrontInfo(NamedTuple):
    x: np.ndarray  # (n,) every configuration
    y: np.ndarray  # (n,)
    on_front: np.ndarray  # (n,) bool
    front_order: np.ndarray  # indices of the front points, x ascending (then y)
    color: np.ndarray | None  # (n,) color column values
    color_continuous: bool
    hover_columns: list[str]
    hover_numeric: list[bool]
    customdata: np.ndarray  # (n, len(hover_columns)) object


def _better(column: str, given: str | None, default: str) -> str:
    """``given``, else the registered metric's direction (roofline.metrics), else ``default``."""
    if given is not None:
        return given
    m = METRICS.get(column)
    return m.direction if m is not None and m.direction in ("min", "max") else default


def _get_pareto_front_info(df: pd.DataFrame, x: str, y: str, *, front_mask: Any = None,
                           color: str | None = None, hover: Sequence[str] | None = None,
                           x_better: str | None = None, y_better: str | None = None) -> ParetoFrontInfo:
    df = _frame(df)
    x_better, y_better = _better(x, x_better, "min"), _better(y, y_better, "max")
    _require(df, [x, y, color, *(hover or [])], "plot_pareto_front")
    xs = df[x].to_numpy(dtype=float)
    ys = df[y].to_numpy(dtype=float)
    if front_mask is None:
        on_front = pareto_mask_2d(xs, ys, x_better=x_better, y_better=y_better)
    else:
        on_front = np.asarray(front_mask, dtype=bool)
        if on_front.shape != xs.shape:
            raise ValueError(f"front_mask has shape {on_front.shape}, the table has {len(df)} rows")
    front = np.flatnonzero(on_front)
    front = front[np.lexsort((ys[front], xs[front]))]
    hover_cols = list(hover) if hover is not None else _default_hover(df, [x, y])
    customdata, numeric = _hover_data(df, hover_cols)
    color_values = df[color].to_numpy() if color is not None else None
    continuous = color is not None and _is_continuous(df[color])
    return ParetoFrontInfo(xs, ys, on_front, front, color_values, continuous, hover_cols, numeric,
                           customdata)


#: Configuration columns the points are coloured by when ``color="auto"``: the first that varies
#: (a search over continuous parameters only gets a colour scale of L2 size, HBM or link bandwidth).
AUTO_COLOR = ("prefetch", "hardware", "model", "dtype", "tp", "batch", *headline_parameters())


def _auto_color(df: pd.DataFrame, color: str | None) -> str | None:
    if color != "auto":
        return color
    return next((c for c in AUTO_COLOR if c in df.columns and df[c].nunique(dropna=False) > 1), None)


def plot_pareto_front(df: pd.DataFrame, x: str, y: str, *, front_mask: Any = None,
                      color: str | None = "auto", hover: Sequence[str] | None = None,
                      x_title: str | None = None, y_title: str | None = None,
                      title: str | None = None, x_better: str | None = None,
                      y_better: str | None = None) -> go.Figure:
    """Every configuration as a faint point, the Pareto front highlighted and connected.

    Args:
        df: one row per configuration (a sweep's results table).
        x, y: the two objective columns.
        front_mask: bool per row marking the front (default: computed with :func:`pareto_mask_2d`
            from ``x_better`` and ``y_better``).
        color: column coloring the points (numeric: color scale; otherwise one trace per value);
            ``"auto"`` (default): the first of :data:`AUTO_COLOR` that varies, so that every point
            says which configuration it is; None: all grey.
        hover: columns shown when hovering a point (default: every column that is not a metric).
        x_title, y_title, title: override the titles (default: the column names with units).
        x_better, y_better: ``"min"`` or ``"max"`` (default: the metric's direction in
            :mod:`roofline.metrics`, e.g. cost minimized and throughput maximized; for an
            unregistered column x is minimized and y maximized).

    Returns:
        A plotly Figure: the point trace(s) ("all configurations" or one per color value) and
        the "Pareto front" trace.
    """
    import plotly.graph_objects as go

    df = _frame(df)
    color = _auto_color(df, color)
    info = _get_pareto_front_info(df, x, y, front_mask=front_mask, color=color, hover=hover,
                                  x_better=x_better, y_better=y_better)
    xt, yt = x_title or axis_label(x), y_title or axis_label(y)
    tmpl = _hover_template(info.hover_columns, info.hover_numeric,
                           [f"{xt}: %{{x:.5~g}}", f"{yt}: %{{y:.5~g}}"])
    fig = go.Figure()
    if info.color is None or info.color_continuous:
        marker: dict[str, Any] = {"size": 6, "opacity": 0.45, "color": "#7f7f7f"}
        if info.color_continuous:
            marker.update(color=info.color, colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": axis_label(color or "")}})
        fig.add_trace(go.Scattergl(x=info.x, y=info.y, mode="markers", name="all configurations",
                                   marker=marker, customdata=info.customdata,
                                   hovertemplate=tmpl))
    else:
        values = info.color
        names = {v: f"{color}={v}" for v in dict.fromkeys(values.tolist())}
        colors = series_colors(names.values())
        for v, name in names.items():
            sel = values == v
            fig.add_trace(go.Scattergl(
                x=info.x[sel], y=info.y[sel], mode="markers", name=name,
                marker={"size": 6, "opacity": 0.45, "color": colors[name]},
                customdata=info.customdata[sel], hovertemplate=tmpl))
    f = info.front_order
    fig.add_trace(go.Scatter(
        x=info.x[f], y=info.y[f], mode="lines+markers", name="Pareto front",
        line={"color": "black", "width": 2},
        marker={"size": 9, "color": "black", "symbol": "diamond"},
        customdata=info.customdata[f], hovertemplate=tmpl))
    fig.update_layout(
        template=TEMPLATE,
        title=_with_subtitle(
            title or f"Pareto front: {yt} against {xt} ({f.size} of {info.x.size} configurations)", df),
        xaxis_title=xt, yaxis_title=yt, legend={"orientation": "h", "y": -0.15})
    return fig
