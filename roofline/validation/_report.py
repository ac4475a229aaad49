"""The HTML validation report: error tables and predicted-against-measured scatter plots.

Compute first, render second: :func:`get_report_info` returns plain tables and arrays (tested
directly); :func:`write_report` turns them into one self-contained HTML file with plotly, which
is imported only there.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from roofline.validation._validate import TARGETS, ValidationResult

__all__ = ["ReportInfo", "get_report_info", "write_report", "MAX_POINTS"]

#: Points per trace in a scatter plot (held-out rows, thinned evenly beyond this).
MAX_POINTS = 2500


class ReportInfo(NamedTuple):
    """What the report shows, in plain pandas / numpy."""

    family_table: pd.DataFrame  # held-out error per family, datasheet and calibrated, with targets
    detail_table: pd.DataFrame  # held-out error per family, dataset and device
    unpredicted: pd.DataFrame  # rows without a spec
    scatter: dict[str, pd.DataFrame]  # family -> held-out points: device, measured, predicted (both)


def _thin(frame: pd.DataFrame, limit: int = MAX_POINTS) -> pd.DataFrame:
    if len(frame) <= limit:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, limit).astype(int)]


def get_report_info(result: ValidationResult) -> ReportInfo:
    """Tables and scatter data of ``result`` (held-out rows only)."""
    held = result.cases[result.cases["held_out"] & result.cases["predicted_datasheet"].notna()]
    scatter = {}
    for family, g in held.groupby("family"):
        cols = ["dataset", "device", "case_id", "measured_s", "predicted_datasheet", "predicted_calibrated"]
        scatter[str(family)] = _thin(g[cols].sort_values("measured_s"))
    return ReportInfo(result.family_summary(), result.summary(), result.unpredicted(), scatter)


def _table_html(frame: pd.DataFrame) -> str:
    fmt = frame.copy()
    for col in fmt.columns:
        if fmt[col].dtype.kind == "f":
            fmt[col] = fmt[col].map(lambda v: "" if pd.isna(v) else f"{v:.1f}")
    return fmt.to_html(index=False, border=0, classes="metrics", escape=True)


def write_report(result: ValidationResult, path: str | Path, *, title: str = "roofline validation") -> Path:
    """Write the report to ``path`` (HTML, plotly.js embedded once). Returns the path."""
    import plotly.graph_objects as go

    info = get_report_info(result)
    parts = [f"<h1>{html.escape(title)}</h1>",
             "<p>Errors are absolute percentage errors on the rows each calibrated profile held out "
             "(never fitted). Datasheet: bundled hardware specs as they are. Calibrated: the shipped "
             "profiles in <code>hardware_specs/calibrated/</code>. Bias: mean signed error "
             "(negative = optimistic). Targets (MAPE %): "
             + ", ".join(f"{k} {v:g}" for k, v in TARGETS.items()) + ".</p>",
             "<h2>Per family</h2>", _table_html(info.family_table),
             "<h2>Per family, dataset and device</h2>", _table_html(info.detail_table)]
    if len(info.unpredicted):
        parts += ["<h2>Not predicted</h2>", _table_html(info.unpredicted)]
    first = True
    for family, pts in info.scatter.items():
        fig = go.Figure()
        lo = float(np.nanmin(pts[["measured_s", "predicted_datasheet"]].to_numpy()))
        hi = float(np.nanmax(pts[["measured_s", "predicted_datasheet"]].to_numpy()))
        fig.add_trace(go.Scattergl(x=pts["measured_s"], y=pts["predicted_datasheet"], mode="markers",
                                   name="datasheet (all devices)", marker=dict(color="lightgrey", size=4),
                                   text=pts["case_id"]))
        for device, g in pts.groupby("device"):
            if g["predicted_calibrated"].notna().any():
                fig.add_trace(go.Scattergl(x=g["measured_s"], y=g["predicted_calibrated"], mode="markers",
                                           name=f"calibrated: {device}", marker=dict(size=5), text=g["case_id"]))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                                 line=dict(color="black", dash="dash")))
        fig.update_layout(title=f"{family}: predicted against measured (held-out rows, seconds)",
                          xaxis=dict(type="log", title="measured (s)"),
                          yaxis=dict(type="log", title="predicted (s)"), height=560)
        parts.append(fig.to_html(full_html=False, include_plotlyjs=first))
        first = False
    style = ("<style>body{font-family:sans-serif;margin:2em;} table.metrics{border-collapse:collapse;"
             "font-size:90%;} table.metrics td,table.metrics th{padding:2px 8px;text-align:right;"
             "border-bottom:1px solid #ddd;}</style>")
    doc = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}</head>" \
          f"<body>{''.join(parts)}</body></html>"
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc, encoding="utf-8")
    return path

