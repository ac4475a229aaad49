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
    x_range: tuple[float, float]  # log10 of the axis ends (FLOP/byte)
    y_range: tuple[float, float]  # log10 of the axis ends (TFLOP/s)
    marker_px: np.ndarray  # (n,) marker diameter in pixels (area grows with the time share)
    labels: list[PlacedLabel]  # names of the ops with >= 3% of the time, placed without overlap


class PlacedLabel(NamedTuple):
    index: int  # into op / intensity / attained_flops
    text: str
    dx_px: float  # label centre minus point centre, in pixels (right is +)
    dy_px: float  # (up is +)
    width_px: float
    height_px: float


#: The plot area as FigureWriter exports the figure: 1000 x 600 less plot_roofline's margins.
MARGINS_PX = {"l": 80, "r": 80, "t": 100, "b": 170}
PLOT_AREA_PX = (1000 - MARGINS_PX["l"] - MARGINS_PX["r"], 600 - MARGINS_PX["t"] - MARGINS_PX["b"])
_CHAR_PX, _LINE_PX, _LABEL_SHARE = 6.2, 13.0, 0.03


def _boxes_overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    """Boxes as (centre x, centre y, width, height)."""
    return abs(a[0] - b[0]) * 2 < a[2] + b[2] and abs(a[1] - b[1]) * 2 < a[3] + b[3]


def _place_labels(texts: list[str], px: np.ndarray, py: np.ndarray, diameter: np.ndarray,
                  area: tuple[float, float]) -> list[tuple[float, float]]:
    """Offsets (dx, dy) in pixels that keep every label clear of the others and of every marker.

    Greedy, largest marker first: the candidates are beside the point (right, left), above and
    below it, then further up or down on either side in steps of one text line; the first that
    overlaps nothing placed so far and stays inside the plot area wins (else the last tried).
    """
    markers = [(x, y, d, d) for x, y, d in zip(px, py, diameter)]
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = [(0.0, 0.0)] * len(texts)
    for i in np.argsort(-diameter, kind="stable"):
        if not texts[i]:
            continue
        w, h, r = len(texts[i]) * _CHAR_PX, _LINE_PX, diameter[i] / 2
        side = r + w / 2 + 3
        candidates = [(side, 0.0), (-side, 0.0), (0.0, r + h / 2 + 2), (0.0, -(r + h / 2 + 2))]
        for step in range(1, 12):
            for sign in (1, -1):
                candidates += [(side, sign * step * h), (-side, sign * step * h)]
        choice = candidates[-1]
        for dx, dy in candidates:
            box = (px[i] + dx, py[i] + dy, w, h)
            inside = w / 2 <= box[0] <= area[0] - w / 2 and h / 2 <= box[1] <= area[1] - h / 2
            if inside and not any(_boxes_overlap(box, b) for b in placed) and not any(
                    _boxes_overlap(box, m) for m in markers):
                choice = (dx, dy)
                break
        offsets[i] = choice
        placed.append((px[i] + choice[0], py[i] + choice[1], w, h))
    return offsets


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
    hbm_ceiling = np.minimum(peak_flops, grid * hbm_Bps)
    T = 1e12
    ymin = min(float(attained.min()) if attained.size else peak_flops, float(hbm_ceiling[0])) / T
    x_range = (float(np.log10(grid[0])), float(np.log10(grid[-1])))
    y_range = (float(np.log10(ymin) - 0.3), float(np.log10(peak_flops / T) + 0.4))
    kept_share = share[keep]
    diameter = 8 + 42 * np.sqrt(np.clip(kept_share, 0, 1))
    names = [o for o, k in zip(ops, keep) if k]
    texts = [o if sh >= _LABEL_SHARE else "" for o, sh in zip(names, kept_share)]
    area = PLOT_AREA_PX
    px = (np.log10(intensity) - x_range[0]) / (x_range[1] - x_range[0]) * area[0] if intensity.size else intensity
    py = (np.log10(attained / T) - y_range[0]) / (y_range[1] - y_range[0]) * area[1] if attained.size else attained
    offsets = _place_labels(texts, px, py, diameter, area)
    labels = [PlacedLabel(i, t, dx, dy, len(t) * _CHAR_PX, _LINE_PX)
              for i, (t, (dx, dy)) in enumerate(zip(texts, offsets)) if t]
    return RooflineInfo(
        op=[o for o, k in zip(ops, keep) if k],
        kind=[str(r.get("kind", "")) for r, k in zip(rows, keep) if k],
        bound=[str(r.get("bound", "")) for r, k in zip(rows, keep) if k],
        intensity=intensity, attained_flops=attained, time_ms=time_ms[keep], share=share[keep],
        excluded_ops=[o for o, k in zip(ops, keep) if not k],
        excluded_share=float(share[~keep].sum()),
        ai_grid=grid, hbm_ceiling=hbm_ceiling,
        l2_ceiling=None if l2_Bps is None else np.minimum(peak_flops, grid * l2_Bps),
        ridge_hbm=ridge_hbm, ridge_l2=ridge_l2, peak_flops=float(peak_flops),
        x_range=x_range, y_range=y_range, marker_px=diameter, labels=labels)


def _wrap(text: str, width: int = 130) -> str:
    """``text`` broken at commas into lines of at most ``width`` characters (plotly's <br>)."""
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return "<br>".join([*lines, line])


def plot_roofline(breakdown_rows: Any, *, peak_flops: float, hbm_Bps: float,
                  l2_Bps: float | None = None, title: str | None = None,
                  ceiling: str = "peak", datasheet: tuple[float, float] | None = None) -> go.Figure:
    """Roofline chart: arithmetic intensity against attainable FLOP/s, operators placed on it.

    Args:
        breakdown_rows: one phase of ``Prediction.breakdown`` (e.g. ``p.breakdown["decode"]``), a
            list of dicts or a DataFrame with ``op``, ``kind``, ``bound``, ``flops``,
            ``weight_bytes``, ``kv_bytes``, ``activation_bytes``, ``time_ms``, ``share``.
        peak_flops: compute ceiling in FLOP/s (e.g. ``hw.compute.peak_for("bf16")``).
        hbm_Bps: HBM bandwidth in bytes/s (``hw.memory.hbm_bandwidth_Bps``).
        l2_Bps: L2 bandwidth in bytes/s; adds the L2 ceiling (prefetched data is read from L2).
        title: figure title.
        ceiling: what the ceilings are: ``"peak"`` (datasheet) or ``"achievable"`` (derated by
            the efficiencies); it names the roofs and the compute ceiling.
        datasheet: with ``ceiling="achievable"``, the (peak FLOP/s, peak HBM bytes/s) of the
            device before derating: drawn as a dotted "HBM roof (peak)" above the achievable one.

    Returns:
        A plotly Figure: the "HBM roof" (and "L2 roof") line, then one marker trace per bound
        ("compute-bound ops", "memory-bound ops", ...), marker area proportional to time share,
        op names placed so that none overlaps another or a marker. Operators without FLOPs
        (collectives, embedding) are listed in a footnote instead.
    """
    import plotly.graph_objects as go

    if ceiling not in ("peak", "achievable"):
        raise ValueError(f"ceiling must be 'peak' or 'achievable', got {ceiling!r}")
    info = _get_roofline_info(breakdown_rows, peak_flops=peak_flops, hbm_Bps=hbm_Bps,
                              l2_Bps=l2_Bps)
    T = 1e12
    suffix = "" if ceiling == "peak" else f" ({ceiling})"
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=info.ai_grid, y=info.hbm_ceiling / T, mode="lines", name="HBM roof" + suffix,
        line={"color": "black", "width": 2},
        hovertemplate="HBM roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    if datasheet is not None and ceiling == "achievable":
        peak_roof = np.minimum(datasheet[0], info.ai_grid * datasheet[1])
        fig.add_trace(go.Scatter(
            x=info.ai_grid, y=peak_roof / T, mode="lines", name="HBM roof (peak)",
            line={"color": "black", "width": 1, "dash": "dot"},
            hovertemplate="HBM roof (peak)<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    if info.l2_ceiling is not None:
        fig.add_trace(go.Scatter(
            x=info.ai_grid, y=info.l2_ceiling / T, mode="lines", name="L2 roof",
            line={"color": "#7f7f7f", "width": 2, "dash": "dash"},
            hovertemplate="L2 roof<br>%{x:.4g} FLOP/byte: %{y:.4g} TFLOP/s<extra></extra>"))
    for b in _group_order(info.bound, "bound"):
        sel = np.array([x == b for x in info.bound], dtype=bool)
        names = [o for o, s in zip(info.op, sel) if s]
        kinds = [k for k, s in zip(info.kind, sel) if s]
        fig.add_trace(go.Scatter(
            x=info.intensity[sel], y=info.attained_flops[sel] / T, mode="markers",
            name=f"{b}-bound ops",
            marker={"size": info.marker_px[sel], "color": BOUND_COLORS.get(b, "#7f7f7f"), "opacity": 0.75,
                    "line": {"color": "black", "width": 0.5}},
            customdata=np.column_stack([names, kinds, info.time_ms[sel], info.share[sel] * 100]),
            hovertemplate="%{customdata[0]} (%{customdata[1]})<br>"
                          "intensity: %{x:.4g} FLOP/byte<br>attained: %{y:.4g} TFLOP/s<br>"
                          "time: %{customdata[2]:.4g} ms (%{customdata[3]:.3g}%)<extra></extra>"))
    # annotations on a log axis take log10 of the position
    for label in info.labels:
        i = label.index
        near = label.dy_px == 0
        fig.add_annotation(
            x=np.log10(info.intensity[i]), y=np.log10(info.attained_flops[i] / T), text=label.text,
            font={"size": 10}, bgcolor="rgba(255,255,255,0.8)", showarrow=not near, arrowwidth=0.7,
            arrowcolor="#555", arrowhead=0,
            standoff=info.marker_px[i] / 2, ax=label.dx_px, ay=-label.dy_px,
            xshift=label.dx_px if near else 0)
    ridges = f"ridge {info.ridge_hbm:.3g} FLOP/byte (HBM)"
    if info.ridge_l2 is not None:
        ridges += f", {info.ridge_l2:.3g} (L2)"
    compute = "peak compute" if ceiling == "peak" else "achievable compute (peak x GEMM efficiency)"
    # the notes go below the x-axis title, in the bottom margin (room for five lines), where no
    # label or point can be
    notes = [f"{compute} {info.peak_flops / T:.4g} TFLOP/s; {ridges}"]
    if info.excluded_ops:
        names = ", ".join(dict.fromkeys(info.excluded_ops))
        notes.append(_wrap(f"not on the chart (no FLOPs or bytes): {names}; {info.excluded_share:.1%} of the time"))
    fig.add_annotation(xref="paper", yref="paper", x=0, y=-0.2, xanchor="left", yanchor="top",
                       align="left", showarrow=False, font={"size": 11}, text="<br>".join(notes))
    fig.update_layout(
        template=TEMPLATE, title=title or "Roofline: operators against the HBM and L2 roofs",
        xaxis={"type": "log", "dtick": 1, "title": "arithmetic intensity (FLOP/byte of weights + "
                                                   "KV + activations)", "range": list(info.x_range)},
        yaxis={"type": "log", "dtick": 1, "title": "attainable performance (TFLOP/s)",
               "range": list(info.y_range)},
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        margin=MARGINS_PX)
    return fig
