"""A metric against a swept parameter (e.g. performance per cost against L2 size), one line per
series, the best x of each marked (:func:`plot_metric_vs_parameter`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.plots._common import (
    TEMPLATE,
    _frame,
    _require,
    _unit,
    _with_subtitle,
    axis_label,
    series_colors,
)

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["MetricCurve", "MetricVsParameterInfo", "plot_metric_vs_parameter"]


class MetricCurve(NamedTuple):
    group: Any  # value of the group column, None without groups
    label: str  # series name, e.g. "with prefetch"
    column: str  # metric column
    x: np.ndarray  # (k,) sorted parameter values
    y: np.ndarray  # (k,) metric reduced over the rows of each x
    best_index: int  # index into x of the best y, -1 when every y is NaN

    @property
    def best_x(self) -> float:
        return float(self.x[self.best_index]) if self.best_index >= 0 else float("nan")

    @property
    def best_y(self) -> float:
        return float(self.y[self.best_index]) if self.best_index >= 0 else float("nan")


class MetricVsParameterInfo(NamedTuple):
    x_column: str
    group_column: str | None
    groups: list[Any]  # [None] without groups
    curves: list[MetricCurve]  # groups outer, series inner


def _default_series(df: pd.DataFrame, y: str) -> dict[str, str]:
    base = f"baseline_{y}"
    if base in df.columns and not y.startswith("baseline_"):
        return {"with prefetch": y, "without prefetch": base}
    return {axis_label(y): y}


def _get_metric_vs_parameter_info(df: pd.DataFrame, x: str = "l2_capacity_MiB",
                                  y: str = "tok_s_per_kusd", *,
                                  series: Mapping[str, str] | None = None,
                                  group: str | None = None, reduce: str = "max",
                                  better: str = "max") -> MetricVsParameterInfo:
    df = _frame(df)
    series = dict(series) if series is not None else _default_series(df, y)
    _require(df, [x, group, *series.values()], "plot_metric_vs_parameter")
    if reduce not in ("max", "min", "mean", "median"):
        raise ValueError(f"reduce must be one of max, min, mean, median; got {reduce!r}")
    if better not in ("max", "min"):
        raise ValueError(f"better must be 'max' or 'min', got {better!r}")
    groups = list(dict.fromkeys(df[group].tolist())) if group is not None else [None]
    curves: list[MetricCurve] = []
    for g in groups:
        part = df if group is None else df[df[group] == g]
        reduced = part.groupby(x, sort=True)[list(series.values())].agg(reduce)
        xs = reduced.index.to_numpy(dtype=float)
        for label, col in series.items():
            ys = reduced[col].to_numpy(dtype=float)
            if np.isnan(ys).all():
                best = -1
            else:
                best = int(np.nanargmax(ys) if better == "max" else np.nanargmin(ys))
            curves.append(MetricCurve(g, label, col, xs, ys, best))
    return MetricVsParameterInfo(x, group, groups, curves)


def plot_metric_vs_parameter(df: pd.DataFrame, x: str = "l2_capacity_MiB",
                             y: str = "tok_s_per_kusd", *,
                             series: Mapping[str, str] | None = None, group: str | None = None,
                             title: str | None = None, mark_best: bool = True,
                             reduce: str = "max", better: str = "max") -> go.Figure:
    """A metric against one swept parameter, one line per series, the best x of each marked.

    Rows that share an x (other parameters swept too) are reduced with ``reduce`` (default: the
    best value reachable at that x).

    Args:
        df: results table.
        x: parameter column (default L2 capacity in MiB).
        y: metric column (default performance per cost); used when ``series`` is None.
        series: legend label -> metric column. Default: ``{"with prefetch": y, "without
            prefetch": "baseline_" + y}`` when the baseline column exists, else just ``y``.
        group: column splitting the table into one panel each (e.g. ``"model"``).
        title: figure title (default names the metric and parameter with units).
        mark_best: mark and label the best x of every series.
        reduce: ``"max"``, ``"min"``, ``"mean"`` or ``"median"`` over the rows of one x.
        better: ``"max"`` or ``"min"``: which y is best.

    Returns:
        A plotly Figure with one line trace per (group, series), named by the series label, and
        one "best ..." marker trace per curve when ``mark_best``.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    info = _get_metric_vs_parameter_info(df, x, y, series=series, group=group, reduce=reduce,
                                         better=better)
    colors = series_colors(c.label for c in info.curves)
    n = len(info.groups)
    cols = min(n, 3)
    rows = -(-n // cols)
    xt = axis_label(x)
    bases = {c.column.removeprefix("baseline_") for c in info.curves}
    yt = axis_label(bases.pop() if len(bases) == 1 else y)
    titles = [f"{group} = {g}" for g in info.groups] if group is not None else None
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.12 if rows > 1 else 0.1)
    for gi, g in enumerate(info.groups):
        r, c = gi // cols + 1, gi % cols + 1
        panel = [cv for cv in info.curves if cv.group == g]
        for curve in panel:
            color = colors[curve.label]
            fig.add_trace(go.Scatter(
                x=curve.x, y=curve.y, mode="lines+markers", name=curve.label,
                legendgroup=curve.label, showlegend=gi == 0,
                line={"color": color, "width": 2}, marker={"size": 5, "color": color},
                hovertemplate=f"{curve.label}<br>{xt}: %{{x:.5~g}}<br>"
                              f"{axis_label(curve.column)}: %{{y:.5~g}}<extra></extra>"),
                row=r, col=c)
            if mark_best and curve.best_index >= 0:
                fig.add_trace(go.Scatter(
                    x=[curve.best_x], y=[curve.best_y], mode="markers+text",
                    name=f"best {curve.label}", legendgroup=curve.label, showlegend=False,
                    marker={"size": 14, "color": color, "symbol": "star",
                            "line": {"color": "black", "width": 1}},
                    text=[f"best {curve.best_x:.4g} {_unit(x)}".rstrip()],
                    textposition="top right", cliponaxis=False,  # a best at the left edge keeps its label
                    textfont={"color": color},
                    hovertemplate=f"best, {curve.label}<br>{xt}: %{{x:.5~g}}<br>"
                                  f"{axis_label(curve.column)}: %{{y:.5~g}}<extra></extra>"),
                    row=r, col=c)
        fig.update_xaxes(title_text=xt if gi // cols == rows - 1 else None, row=r, col=c)
        # one y title for a grid (row titles would run into each other); headroom above the
        # highest point for its "best" label, below the panel's title
        fig.update_yaxes(title_text=yt if c == 1 and r == 1 else None, rangemode="tozero", row=r, col=c)
        tops = [float(np.nanmax(cv.y)) for cv in panel if len(cv.y) and np.isfinite(cv.y).any()]
        lows = [float(np.nanmin(cv.y)) for cv in panel if len(cv.y) and np.isfinite(cv.y).any()]
        if mark_best and tops and min(lows) >= 0 and max(tops) > 0:
            fig.update_yaxes(range=[0, max(tops) * 1.15], row=r, col=c)
    # a single panel states its scenario below the title; panels name what varies themselves
    fig.update_layout(template=TEMPLATE, title=_with_subtitle(title or f"{yt} against {xt}", df if group is None else None),
                      legend={"orientation": "h", "y": -0.15 if rows == 1 else -0.12})
    return fig
