"""Prefetch speedup against the collective / prefetch time ratio (PRESERVE reproduction):
:func:`plot_speedup_vs_ratio`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.plots._common import (
    PALETTE,
    TEMPLATE,
    _default_hover,
    _frame,
    _hover_data,
    _hover_template,
    _is_continuous,
    _require,
    axis_label,
    series_colors,
)

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["SpeedupVsRatioInfo", "plot_speedup_vs_ratio"]


class SpeedupVsRatioInfo(NamedTuple):
    ratio: np.ndarray  # (n,)
    speedup: np.ndarray  # (n,)
    color: np.ndarray | None
    color_continuous: bool
    log_x: bool  # ratios positive and spanning more than 20x
    best_index: int  # row of the largest speedup, -1 when none
    hover_columns: list[str]
    hover_numeric: list[bool]
    customdata: np.ndarray


def _get_speedup_vs_ratio_info(df: pd.DataFrame, ratio: str = "collective_to_prefetch_ratio",
                               speedup: str = "prefetch_speedup", *, color: str | None = None,
                               hover: Sequence[str] | None = None) -> SpeedupVsRatioInfo:
    df = _frame(df)
    _require(df, [ratio, speedup, color, *(hover or [])], "plot_speedup_vs_ratio")
    r = df[ratio].to_numpy(dtype=float)
    s = df[speedup].to_numpy(dtype=float)
    finite = np.isfinite(r) & np.isfinite(s)
    pos = r[finite & (r > 0)]
    log_x = bool(pos.size == finite.sum() and pos.size > 0 and pos.max() / pos.min() > 20)
    best = int(np.nanargmax(np.where(finite, s, np.nan))) if finite.any() else -1
    hover_cols = list(hover) if hover is not None else _default_hover(df, [ratio, speedup])
    customdata, numeric = _hover_data(df, hover_cols)
    cvals = df[color].to_numpy() if color is not None else None
    return SpeedupVsRatioInfo(r, s, cvals, color is not None and _is_continuous(df[color]),
                              log_x, best, hover_cols, numeric, customdata)


def plot_speedup_vs_ratio(df: pd.DataFrame, ratio: str = "collective_to_prefetch_ratio",
                          speedup: str = "prefetch_speedup", color: str | None = None, *,
                          hover: Sequence[str] | None = None,
                          title: str | None = None) -> go.Figure:
    """Prefetch speedup against the ratio of collective time to prefetch time.

    PRESERVE finds the gain largest when the all-reduce takes about as long as prefetching the
    next operators' data (ratio near 1); dotted lines mark ratio 1 and speedup 1.

    Args:
        df: one row per configuration.
        ratio, speedup: the two columns.
        color: column coloring the points (e.g. ``"model"`` or ``"batch"``).
        hover: columns shown on hover (default: every column that is not a metric).
        title: figure title.

    Returns:
        A plotly Figure with one marker trace ("configurations", or one per color value).
    """
    import plotly.graph_objects as go

    info = _get_speedup_vs_ratio_info(df, ratio, speedup, color=color, hover=hover)
    xt, yt = axis_label(ratio), axis_label(speedup)
    tmpl = _hover_template(info.hover_columns, info.hover_numeric,
                           [f"{xt}: %{{x:.4g}}", f"{yt}: %{{y:.4g}}"])
    fig = go.Figure()
    if info.color is None or info.color_continuous:
        marker: dict[str, Any] = {"size": 8, "opacity": 0.8, "color": PALETTE[0]}
        if info.color_continuous:
            marker.update(color=info.color, colorscale="Viridis", showscale=True,
                          colorbar={"title": {"text": axis_label(color or "")}})
        fig.add_trace(go.Scatter(x=info.ratio, y=info.speedup, mode="markers",
                                 name="configurations", marker=marker,
                                 customdata=info.customdata, hovertemplate=tmpl))
    else:
        colors = series_colors(str(v) for v in info.color.tolist())
        for v in dict.fromkeys(info.color.tolist()):
            sel = info.color == v
            fig.add_trace(go.Scatter(
                x=info.ratio[sel], y=info.speedup[sel], mode="markers", name=str(v),
                marker={"size": 8, "opacity": 0.8, "color": colors[str(v)]},
                customdata=info.customdata[sel], hovertemplate=tmpl))
    fig.add_hline(y=1.0, line={"color": "#7f7f7f", "dash": "dot"})
    fig.add_vline(x=1.0, line={"color": "#7f7f7f", "dash": "dot"})  # shapes: data coordinates
    if info.best_index >= 0:
        # annotations on a log axis take log10 of the position
        fig.add_annotation(x=np.log10(info.ratio[info.best_index]) if info.log_x
                           else info.ratio[info.best_index], y=info.speedup[info.best_index],
                           text=f"max {info.speedup[info.best_index]:.3g}x", showarrow=True,
                           arrowhead=2, ay=-30)
    fig.update_layout(
        template=TEMPLATE, title=title or f"Prefetch speedup against {xt}",
        xaxis={"title": xt, "type": "log" if info.log_x else "linear"},
        yaxis={"title": yt}, legend={"title": {"text": color or ""}})
    return fig
