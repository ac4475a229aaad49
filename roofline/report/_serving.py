"""The report of a ``roofline serve`` run: one self-contained HTML file (plotly.js embedded once).

It holds the serving frontier (tokens/s per device against tokens/s per user, one point per load),
a table of every row's metrics and the assumptions behind them (the evaluator, the device profile,
the overheads and the definitions), so that it can be read away from the terminal.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from roofline._runfiles import atomic_write
from roofline.metrics import metric_names

__all__ = ["write_serving_report"]

#: The load column of a row: closed loop, open loop or a trace (roofline.metrics, stage "load").
LOAD_KEYS = metric_names("load")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "-"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return html.escape(str(value))


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Every row under the registry's short headers (roofline.metrics), the full label as the tooltip."""
    from roofline.metrics import metric_labels

    short, full = metric_labels("short"), metric_labels("axis")
    head = "".join(f'<th title="{html.escape(full.get(c, c))}">{html.escape(short.get(c, c))}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return (f'<div style="overflow-x:auto"><table id="rows"><thead><tr>{head}</tr></thead>'
            f"<tbody>{body}</tbody></table></div>")


def _items(mapping: dict[str, Any]) -> str:
    """A mapping as a list, nested mappings as nested lists."""
    def value(v: Any) -> str:
        if isinstance(v, dict):
            return _items(v)
        return html.escape(v if isinstance(v, str) else json.dumps(v, default=str))

    return "<ul>" + "".join(f"<li><b>{html.escape(str(k))}</b>: {value(v)}</li>" for k, v in mapping.items()) + "</ul>"


def _assumptions(summary: dict[str, Any], definitions: dict[str, str]) -> str:
    return (f'<section id="assumptions"><h2>Assumptions</h2>{_items(summary)}'
            f"<h2>Definitions</h2>{_items(definitions)}</section>")


def write_serving_report(rows: list[dict[str, Any]], summary: dict[str, Any], definitions: dict[str, str],
                         path: str | Path, *, columns: list[str], title: str) -> Path:
    """Write the report of a serve run to ``path`` (atomically) and return it.

    Args:
        rows: the run's rows (``ServeResult.rows``).
        summary, definitions: ``ServeResult.summary`` and ``ServeResult.definitions``.
        columns: the metric columns of the table, after the load column.
        title: the page's title (model, devices, framework).
    """
    from roofline.plots import plot_serving_frontier

    key = next((k for k in LOAD_KEYS if rows and k in rows[0]), None)
    shown = ([key] if key else []) + [c for c in columns if rows and c in rows[0]]
    figure = plot_serving_frontier(rows, title).to_html(full_html=False, include_plotlyjs=True,
                                                        div_id="frontier", config={"displaylogo": False})
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}th{background:#f3f3f3}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{figure}<h2>Rows</h2>{_table(rows, shown)}"
            f"{_assumptions(summary, definitions)}</body></html>")
    return atomic_write(path, page)
