"""The figures of both experiments (``roofline.plots`` is imported inside the functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from roofline.reproduce._output import _slug


def _preserve_figures(table: pd.DataFrame, variants: Mapping[str, pd.DataFrame] | None = None
                      ) -> list[tuple[Any, str]]:
    from roofline import plots

    figs = []
    ok = table[table["fits"]]
    for hw, t in table.groupby("hardware", sort=False):
        labels = list(dict.fromkeys(t["model_label"]))
        shown = t.assign(prefetch_speedup=t["prefetch_speedup"].where(t["fits"]))
        wide = shown.pivot_table(index=["batch", "sequence"], columns="model_label", values="prefetch_speedup",
                                 dropna=False).reindex(columns=labels).reset_index()
        wide.columns.name = None
        fig = plots.plot_metric_vs_parameter(
            wide, x="sequence", y="prefetch_speedup", series={m: m for m in labels}, group="batch",
            mark_best=False, title=f"PRESERVE end-to-end speedup on 8x {hw} ({t['dtype'].iloc[0]}), by batch; "
                                   f"missing points do not fit in HBM")
        seqs = sorted(int(v) for v in t["sequence"].unique())
        fig.update_xaxes(type="log", tickvals=seqs, ticktext=[f"{v / 1024:g}K" for v in seqs])
        fig.for_each_xaxis(lambda a: a.update(title_text="total sequence (tokens, 2/3 prompt)")
                           if a.title.text else None)
        fig.update_yaxes(rangemode="normal", matches="y")
        figs.append((fig, f"preserve_speedup_{hw}"))
        part = ok[ok["hardware"] == hw]
        if len(part):
            fig = plots.plot_speedup_vs_ratio(
                part, ratio="collective_to_prefetch_ratio", speedup="prefetch_speedup", color="model_label",
                hover=["batch", "sequence", "tp", "limited_by", "speedup_tpot"],
                title=f"e2e speedup against decode collective time / prefetch time, 8x {hw}")
            figs.append((fig, f"preserve_speedup_vs_ratio_{hw}"))
    if ok["hardware"].nunique() > 1:
        fig = plots.plot_speedup_vs_ratio(
            ok, ratio="collective_to_prefetch_ratio", speedup="prefetch_speedup", color="hardware",
            hover=["model_label", "batch", "sequence", "limited_by"],
            title="e2e speedup against decode collective time / prefetch time, every device")
        figs.append((fig, "preserve_speedup_vs_ratio_all"))
    for name, tv in (variants or {}).items():
        for hw, t in tv[tv["fits"]].groupby("hardware", sort=False):
            fig = plots.plot_speedup_vs_ratio(
                t, ratio="collective_to_prefetch_ratio", speedup="prefetch_speedup", color="model_label",
                hover=["batch", "sequence", "tp", "limited_by", "speedup_tpot"],
                title=f"e2e speedup against decode collective time / prefetch time, 8x {hw}, {name}")
            figs.append((fig, f"preserve_speedup_vs_ratio_{hw}_{_slug(name)}"))
    return figs


def _dse_figures(df: pd.DataFrame, curve: pd.DataFrame) -> list[tuple[Any, str]]:
    from roofline import plots

    on = df[df["prefetch"].astype(bool) & df["fits"]]
    on = on.drop(columns=["model"]).rename(columns={"model_label": "model"})
    fig = plots.plot_metric_vs_parameter(
        on, x="l2_capacity_MiB", y="tok_s_per_kusd",
        series={"with prefetch": "tok_s_per_kusd", "without prefetch": "baseline_tok_s_per_kusd"},
        group="model",
        title="Perf/cost against L2 size, 8x Ascend 910B, int8, batch 4, 16K (stars: optimum; dotted: 192 MiB)")
    fig.update_yaxes(rangemode="normal", title_text=None)
    fig.update_yaxes(title_text="tokens/s per 1000 USD", col=1)
    fig.update_xaxes(range=[-45, 270])
    fig.add_vline(x=192, line={"color": "#7f7f7f", "dash": "dot"}, row="all", col="all")
    figs = [(fig, "dse_l2_perf_per_cost")]
    fig = plots.plot_metric_vs_parameter(
        curve, x="l2_capacity_MiB", y="with_prefetch",
        series={"with prefetch": "with_prefetch", "without prefetch": "without_prefetch"},
        title="All six models: perf/cost against L2 size, geometric mean normalised to 192 MiB without "
              "prefetch (stars: optimum)")
    fig.update_yaxes(title_text="perf/cost relative to the stock 910B without prefetch (x)", rangemode="normal")
    fig.update_xaxes(range=[-45, 270])
    fig.add_vline(x=192, line={"color": "#7f7f7f", "dash": "dot"})
    figs.append((fig, "dse_l2_perf_per_cost_all"))
    return figs
