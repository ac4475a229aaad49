"""Roofline chart: arithmetic intensity against attainable FLOP/s, with the HBM (and L2) roof and
the operators of one phase placed on it (:func:`plot_roofline`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.plots._common import BOUND_COLORS, TEMPLATE, _group_order

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["RooflineInfo", "plot_roofline"]


class RooflineInfo(NamedTuple):
    op: list[str]  # operators placed on the chart (those with FLOPs, bytes and time)
    kind: list[str]
    bound: list[str]
    intensity: np.ndarray  # FLOP per byte of weights + KV + activations
    attained_flops: np.ndarray  # FLOP/s reached: flops / time
    time_ms: np.ndarray
    share: np.ndarray  # of the phase time
    excluded_ops: list[str]  # collectives and ops without FLOPs or bytes
    excluded_share: float
    ai_grid: np.ndarray  # (k,) FLOP/byte
    hbm_ceiling: np.ndarray  # (k,) min(peak, AI * hbm_Bps)
    l2_ceiling: np.ndarray | None  # (k,) min(peak, AI * l2_Bps)
    ridge_hbm: float  # peak / hbm_Bps
    ridge_l2: float | None
    peak_flops: float


def _get_roofline_info(breakdown_rows: Any, *, peak_flops: float, hbm_Bps: float,
                       l2_Bps: float | None = None, points: int = 200) -> RooflineInfo:
    if peak_flops <= 0 or hbm_Bps <= 0 or (l2_Bps is not None and l2_Bps <= 0):
        raise ValueError(f"peak_flops, hbm_Bps and l2_Bps must be > 0, got {peak_flops}, "
                         f"{hbm_Bps}, {l2_Bps}")
    rows = list(breakdown_rows.to_dict("records") if hasattr(breakdown_rows, "to_dict")
                else breakdown_rows)

    def col(key: str) -> np.ndarray:
        return np.array([float(r.get(key, 0.0)) for r in rows])

    flops, time_ms = col("flops"), col("time_ms")
    nbytes = col("weight_bytes") + col("kv_bytes") + col("activation_bytes")
    share = col("share") if rows and "share" in rows[0] else (
        time_ms / time_ms.sum() if time_ms.sum() > 0 else np.zeros_like(time_ms))
    keep = (flops > 0) & (nbytes > 0) & (time_ms > 0)
    ops = [str(r.get("op", "")) for r in rows]
    intensity = np.divide(flops, nbytes, out=np.zeros_like(flops), where=nbytes > 0)[keep]
    attained = flops[keep] / (time_ms[keep] * 1e-3)
    ridge_hbm = peak_flops / hbm_Bps
    ridge_l2 = peak_flops / l2_Bps if l2_Bps is not None else None
    anchors = [*intensity.tolist(), ridge_hbm] + ([ridge_l2] if ridge_l2 else [])
    lo = 10 ** np.floor(np.log10(min(anchors)) - 0.5)
    hi = 10 ** np.ceil(np.log10(max(anchors)) + 0.5)
    grid = np.geomspace(lo, hi, points)
    grid = np.unique(np.concatenate([grid, [ridge_hbm] + ([ridge_l2] if ridge_l2 else [])]))
    return RooflineInfo(
        op=[o for o, k in zip(ops, keep) if k],
        kind=[str(r.get("kind", "")) for r, k in zip(rows, keep) if k],
        bound=[str(r.get("bound", "")) for r, k in zip(rows, keep) if k],
        intensity=intensity, attained_flops=attained, time_ms=time_ms[keep], share=share[keep],
        excluded_ops=[o for o, k in zip(ops, keep) if not k],
        excluded_share=float(share[~keep].sum()),
        ai_grid=grid, hbm_ceiling=np.minimum(peak_flops, grid * hbm_Bps),
        l2_ceiling=None if l2_Bps is None else np.minimum(peak_flops, grid * l2_Bps),
        ridge_hbm=ridge_hbm, ridge_l2=ridge_l2, peak_flops=float(peak_flops))


def plot_roofline(breakdown_rows: Any, *, peak_flops: float, hbm_Bps: float,
                  l2_Bps: float | None = None, title: str | None = None) -> go.Figure:
    """Roofline chart: arithmetic intensity against attainable FLOP/s, operators placed on it.

    Args:
        breakdown_rows: one phase of ``Prediction.breakdown`` (e.g. ``p.breakdown["decode"]``), a
            list of dicts or a DataFrame with ``op``, ``kind``, ``bound``, ``flops``,
            ``weight_bytes``, ``kv_bytes``, ``activation_bytes``, ``time_ms``, ``share``.
        peak_flops: peak compute in FLOP/s (e.g. ``hw.compute.peak_for("bf16")``).
        hbm_Bps: HBM bandwidth in bytes/s (``hw.memory.hbm_bandwidth_Bps``).
        l2_Bps: L2 bandwidth in bytes/s; adds the L2 ceiling (prefetched data is read from L2).
        title: figure title.

    Returns:
        A plotly Figure: the "HBM roof" (and "L2 roof") line, then one marker trace per bound
        ("compute-bound ops", "memory-bound ops", ...), marker area proportional to time share.
        Operators without FLOPs (collectives, embedding) are listed in a note instead.
    """
    import plotly.graph_objects as go

    info = _get_roofline_info(breakdown_rows, peak_flops=peak_flops, hbm_Bps=hbm_Bps,
                              l2_Bps=l2_Bps)
    T = 1e12
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=info.ai_grid, y=info.hbm_ceiling / T, mode="lines", name="HBM roof",
        line={"color": "black", "width": 2},
        hovertemplate="HBM roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    if info.l2_ceiling is not None:
        fig.add_trace(go.Scatter(
            x=info.ai_grid, y=info.l2_ceiling / T, mode="lines", name="L2 roof",
            line={"color": "#7f7f7f", "width": 2, "dash": "dash"},
            hovertemplate="L2 roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    bounds = _group_order(info.bound, "bound")
    size = 8 + 42 * np.sqrt(np.clip(info.share, 0, 1))
    # labels of neighbouring points go to different sides
    cycle = ("bottom center", "top center", "middle right", "middle left")
    positions = [""] * len(info.op)
    for rank, i in enumerate(np.lexsort((info.attained_flops, info.intensity))):
        positions[i] = cycle[rank % len(cycle)]
    for b in bounds:
        sel = np.array([x == b for x in info.bound], dtype=bool)
        names = [o for o, s in zip(info.op, sel) if s]
        kinds = [k for k, s in zip(info.kind, sel) if s]
        fig.add_trace(go.Scatter(
            x=info.intensity[sel], y=info.attained_flops[sel] / T, mode="markers+text",
            name=f"{b}-bound ops", text=[o if s >= 0.03 else "" for o, s in
                                         zip(names, info.share[sel])],
            textposition=[positions[i] for i in np.flatnonzero(sel)], textfont={"size": 10},
            marker={"size": size[sel], "color": BOUND_COLORS.get(b, "#7f7f7f"), "opacity": 0.75,
                    "line": {"color": "black", "width": 0.5}},
            customdata=np.column_stack([names, kinds, info.time_ms[sel], info.share[sel] * 100]),
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>"
                          "intensity: %{x:.4g} FLOP/byte<br>attained: %{y:.4g} TFLOP/s<br>"
                          "time: %{customdata[2]:.4g} ms (%{customdata[3]:.3g}%)<extra></extra>"))
    ridges = f"ridge {info.ridge_hbm:.3g} FLOP/byte (HBM)"
    if info.ridge_l2 is not None:
        ridges += f", {info.ridge_l2:.3g} (L2)"
    # annotations on a log axis take log10 of the position
    fig.add_annotation(x=0.01, y=np.log10(info.peak_flops / T), xref="paper",
                       yref="y", text=f"peak {info.peak_flops / T:.4g} TFLOP/s; {ridges}",
                       showarrow=False, xanchor="left", yanchor="bottom", font={"size": 11})
    if info.excluded_ops:
        names = ", ".join(dict.fromkeys(info.excluded_ops))
        if len(names) > 90:
            names = names[:87] + "..."
        fig.add_annotation(xref="paper", yref="paper", x=0, y=-0.2, xanchor="left",
                           showarrow=False, font={"size": 11},
                           text=f"not on the chart (no FLOPs or bytes): {names}; "
                                f"{info.excluded_share:.1%} of the time")
    ymin = min(float(info.attained_flops.min()) if info.attained_flops.size else info.peak_flops,
               float(info.hbm_ceiling[0])) / T
    fig.update_layout(
        template=TEMPLATE, title=title or "Roofline: operators against the HBM and L2 roofs",
        xaxis={"type": "log", "dtick": 1, "title": "arithmetic intensity (FLOP/byte of weights + "
                                                   "KV + activations)",
               "range": [np.log10(info.ai_grid[0]), np.log10(info.ai_grid[-1])]},
        yaxis={"type": "log", "dtick": 1, "title": "attainable performance (TFLOP/s)",
               "range": [np.log10(ymin) - 0.3, np.log10(info.peak_flops / T) + 0.4]},
        legend={"orientation": "h", "y": -0.28}, margin={"b": 130})
    return fig
