"""Latency breakdowns: stacked bars of time per phase split by operator kind, op or bound
(:func:`plot_latency_breakdown`), and one phase of several predictions side by side
(:func:`plot_breakdown_comparison`). Kinds and bounds keep fixed colors; ops get shades of their
kind's color.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from roofline.plots._common import (
    BOUND_COLORS,
    KIND_COLORS,
    KIND_LABELS,
    PALETTE,
    TEMPLATE,
    _group_order,
    _with_subtitle,
    prediction_row,
)

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["BreakdownInfo", "plot_breakdown_comparison", "plot_latency_breakdown"]


class BreakdownInfo(NamedTuple):
    columns: list[str]  # bars: phases, or prediction labels
    groups: list[str]  # stacked parts (kinds or ops), bottom first
    time_ms: np.ndarray  # (n_groups, n_columns)
    share: np.ndarray  # (n_groups, n_columns): time / column total
    total_ms: np.ndarray  # (n_columns,)
    group_kinds: list[str]  # operator kind of each group (its first row's kind)


def _breakdown_of(obj: Any) -> Mapping[str, Sequence[Mapping[str, Any]]]:
    return obj.breakdown if hasattr(obj, "breakdown") else obj


def _aggregate(columns: Mapping[str, Sequence[Mapping[str, Any]]], group_by: str) -> BreakdownInfo:
    keys: list[str] = []
    kind_of: dict[str, str] = {}
    for label, rows in columns.items():
        for r in rows:
            if group_by not in r or "time_ms" not in r:
                raise KeyError(f"breakdown row of {label!r} has no {group_by!r} or 'time_ms' key; "
                               f"keys are {sorted(r)}")
            keys.append(str(r[group_by]))
            kind_of.setdefault(str(r[group_by]), str(r.get("kind", "")))
    groups = _group_order(keys, group_by)
    index = {g: i for i, g in enumerate(groups)}
    names = list(columns)
    time_ms = np.zeros((len(groups), len(names)))
    for j, label in enumerate(names):
        rows = columns[label]
        if rows:
            gi = np.array([index[str(r[group_by])] for r in rows])
            t = np.array([float(r["time_ms"]) for r in rows])
            np.add.at(time_ms[:, j], gi, t)
    total = time_ms.sum(axis=0)
    share = np.divide(time_ms, total, out=np.zeros_like(time_ms), where=total > 0)
    return BreakdownInfo(names, groups, time_ms, share, total, [kind_of[g] for g in groups])


def _get_latency_breakdown_info(breakdown: Any, *, group_by: str = "kind",
                                phases: Sequence[str] | None = None) -> BreakdownInfo:
    bd = _breakdown_of(breakdown)
    phases = list(phases) if phases is not None else list(bd)
    missing = [p for p in phases if p not in bd]
    if missing:
        raise KeyError(f"phase(s) {missing} not in the breakdown; it has {list(bd)}")
    return _aggregate({p: bd[p] for p in phases}, group_by)


def _get_breakdown_comparison_info(breakdowns: Mapping[str, Any], phase: str = "decode", *,
                                   group_by: str = "kind") -> BreakdownInfo:
    cols = {}
    for label, b in breakdowns.items():
        bd = _breakdown_of(b)
        if phase not in bd:
            raise KeyError(f"breakdown {label!r} has no phase {phase!r}; it has {list(bd)}")
        cols[str(label)] = bd[phase]
    return _aggregate(cols, group_by)


def _shade(color: str, t: float) -> str:
    """``color`` mixed with white (t > 0) or black (t < 0) by ``|t|``."""
    rgb = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    rgb = rgb + (255.0 - rgb) * t if t >= 0 else rgb * (1.0 + t)
    return "#" + "".join(f"{int(round(c)):02x}" for c in np.clip(rgb, 0, 255))


def _group_colors(groups: Sequence[str], group_by: str,
                  kinds: Sequence[str] | None = None) -> dict[str, str]:
    """Fixed colors per kind and bound; ops get shades of their kind's color."""
    if group_by not in ("kind", "bound") and kinds is not None and all(k in KIND_COLORS
                                                                      for k in kinds):
        out = {}
        for kind in dict.fromkeys(kinds):
            members = [g for g, k in zip(groups, kinds) if k == kind]
            shades = np.linspace(-0.3, 0.55, len(members)) if len(members) > 1 else [0.0]
            out.update({g: _shade(KIND_COLORS[kind], float(t)) for g, t in zip(members, shades)})
        return out
    fixed = KIND_COLORS if group_by == "kind" else BOUND_COLORS if group_by == "bound" else {}
    out, k = {}, 0
    for g in groups:
        if g in fixed:
            out[g] = fixed[g]
        else:
            out[g] = PALETTE[k % len(PALETTE)]
            k += 1
    return out


_PHASE_TITLES = {"prefill": "prefill (TTFT)", "decode": "decode step (mean, TPOT)"}


def _shown(group: str) -> str:
    """A group's legend name: the spilled-prefetch wait reads as the HBM stall it is."""
    return KIND_LABELS.get("prefetch") if group in ("prefetch", "prefetch_spill_wait") else group


def plot_latency_breakdown(breakdown: Any, *, group_by: str = "kind",
                           title: str | None = None) -> go.Figure:
    """Stacked bars of time per phase, split by operator kind (or by op).

    Each phase gets its own panel and time axis: a prefill pass and one decode step differ by
    orders of magnitude.

    Args:
        breakdown: ``roofline.predict(...).breakdown`` (phase -> rows with ``op``, ``kind``,
            ``bound``, ``time_ms``, ...), or the Prediction itself.
        group_by: row key the bars are split by: ``"kind"`` (gemm, attention, vector, embedding,
            collective, p2p), ``"op"`` or ``"bound"``.
        title: figure title.

    Returns:
        A plotly Figure with one bar trace per (group, phase), named by the group.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    info = _get_latency_breakdown_info(breakdown, group_by=group_by)
    colors = _group_colors(info.groups, group_by, info.group_kinds)
    n = len(info.columns)
    fig = make_subplots(rows=1, cols=max(n, 1), horizontal_spacing=0.15,
                        subplot_titles=[f"{_PHASE_TITLES.get(p, p)}: {t:.4g} ms"
                                        for p, t in zip(info.columns, info.total_ms)])
    for j, phase in enumerate(info.columns):
        for i, g in enumerate(info.groups):
            t = info.time_ms[i, j]
            fig.add_trace(go.Bar(
                x=[phase], y=[t], name=_shown(g), legendgroup=g, showlegend=j == 0,
                marker_color=colors[g], customdata=[[info.share[i, j] * 100]],
                text=[f"{_shown(g)} {info.share[i, j]:.0%}" if info.share[i, j] >= 0.04 else ""],
                textposition="inside", insidetextanchor="middle",
                hovertemplate=f"{phase}, {_shown(g)}<br>%{{y:.4g}} ms (%{{customdata[0]:.1f}}%)"
                              "<extra></extra>"),
                row=1, col=j + 1)
        fig.update_yaxes(title_text="time (ms)", row=1, col=j + 1)
    scenario = breakdown if hasattr(breakdown, "workload") else None
    fig.update_layout(template=TEMPLATE, barmode="stack", bargap=0.45,
                      title=_with_subtitle(title or f"Latency breakdown by operator {group_by} (ms)", scenario),
                      legend={"traceorder": "reversed"}, margin={"t": 130})  # room for the subtitle
    return fig


def plot_breakdown_comparison(breakdowns: Mapping[str, Any], phase: str = "decode", *,
                              group_by: str = "kind", title: str | None = None) -> go.Figure:
    """Stacked bars of one phase's time for several predictions side by side.

    Args:
        breakdowns: label -> ``Prediction.breakdown`` (or the Prediction).
        phase: ``"decode"`` (one decode step, the mean over the generated tokens) or ``"prefill"``.
        group_by: ``"kind"``, ``"op"`` or ``"bound"``.
        title: figure title.

    Returns:
        A plotly Figure with one stacked bar trace per group, x = the labels.
    """
    import plotly.graph_objects as go

    info = _get_breakdown_comparison_info(breakdowns, phase, group_by=group_by)
    colors = _group_colors(info.groups, group_by, info.group_kinds)
    fig = go.Figure()
    for i, g in enumerate(info.groups):
        fig.add_trace(go.Bar(
            x=info.columns, y=info.time_ms[i], name=_shown(g), marker_color=colors[g],
            customdata=info.share[i][:, None] * 100,
            text=[f"{_shown(g)} {s:.0%}" if s >= 0.04 else "" for s in info.share[i]],
            textposition="inside", insidetextanchor="middle",
            hovertemplate=f"%{{x}}, {_shown(g)}<br>%{{y:.4g}} ms (%{{customdata[0]:.1f}}%)<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=info.columns, y=info.total_ms, mode="text", name="total",
        text=[f"{t:.4g} ms" for t in info.total_ms], textposition="top center",
        showlegend=False, hoverinfo="skip"))
    ymax = float(info.total_ms.max()) if info.total_ms.size else 1.0
    # the scenario of the predictions (several values listed), none when one is a bare breakdown
    every = list(breakdowns.values())
    scenario = [prediction_row(b) for b in every] if all(hasattr(b, "workload") for b in every) else None
    fig.update_layout(
        template=TEMPLATE, barmode="stack",
        title=_with_subtitle(title or f"{_PHASE_TITLES.get(phase, phase)} time by operator {group_by} (ms)",
                             scenario),
        yaxis_title=f"{phase} time (ms)", yaxis_range=[0, ymax * 1.12],
        legend={"traceorder": "reversed"})
    return fig
