"""The serving frontier: tokens/s per device against tokens/s per user over concurrency, the view
serving benchmarks publish (:func:`plot_serving_frontier`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.plots._common import PALETTE, TEMPLATE

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["ServingFrontierInfo", "plot_serving_frontier"]


class ServingFrontierInfo(NamedTuple):
    per_user: np.ndarray  # (k,) tokens/s per user (1000 / TPOT ms)
    per_device: np.ndarray  # (k,) tokens/s per device
    labels: list[str]  # concurrency or rate of each point


def _get_serving_frontier_info(rows: list[dict[str, Any]]) -> ServingFrontierInfo:
    keep = [r for r in rows if r.get("tok_s_per_user") is not None]
    key = "concurrency" if keep and "concurrency" in keep[0] else "rate_rps"
    return ServingFrontierInfo(np.array([r["tok_s_per_user"] for r in keep], dtype=float),
                               np.array([r["throughput_tok_s_per_device"] for r in keep], dtype=float),
                               [f"c{r.get(key, '')}" if key == "concurrency" else f"{r.get(key, '')} req/s" for r in keep])


def plot_serving_frontier(rows: list[dict[str, Any]], title: str = "") -> go.Figure:
    import plotly.graph_objects as go

    info = _get_serving_frontier_info(rows)
    fig = go.Figure(go.Scatter(x=info.per_user, y=info.per_device, mode="lines+markers+text", text=info.labels,
                               textposition="top right", line={"color": PALETTE[0]},
                               cliponaxis=False))  # the rightmost point's label reaches into the margin
    fig.update_layout(template=TEMPLATE, title=title or "Serving frontier over concurrency",
                      xaxis_title="tokens/s per user (1000 / TPOT ms)", yaxis_title="tokens/s per device")
    return fig
