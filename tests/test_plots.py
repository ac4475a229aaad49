"""roofline.plots: the info functions on hand-made tables, the figures' traces, and writing
HTML (always) and PNG (when a Chrome is found)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from roofline import plots
from roofline.plots import (
    FigureWriter,
    PNGExportWarning,
    _get_breakdown_comparison_info,
    _get_latency_breakdown_info,
    _get_metric_vs_parameter_info,
    _get_pareto_front_info,
    _get_roofline_info,
    _get_speedup_vs_ratio_info,
    pareto_mask_2d,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(op, kind, time_ms, *, bound="memory", flops=0.0, weight=0.0, kv=0.0, act=0.0, comm=0.0):
    return {"op": op, "kind": kind, "bound": bound, "count": 1.0, "time_ms": time_ms,
            "share": 0.0, "flops": flops, "weight_bytes": weight, "kv_bytes": kv,
            "activation_bytes": act, "comm_bytes": comm}


def _with_shares(rows):
    total = sum(r["time_ms"] for r in rows)
    return [{**r, "share": r["time_ms"] / total} for r in rows]


@pytest.fixture
def breakdown():
    """A prediction-shaped breakdown: two phases, residual_add twice (per layer and final)."""
    prefill = _with_shares([
        _row("embedding", "embedding", 1.0, weight=1e6, act=1e6),
        _row("qkv_proj", "gemm", 30.0, bound="compute", flops=3e13, weight=2e9, act=2e10),
        _row("attention", "attention", 15.0, bound="compute", flops=1e13, kv=7e8, act=6e9),
        _row("attn_allreduce", "collective", 20.0, bound="comm", comm=2e10),
        _row("residual_add", "vector", 5.0, flops=2e10, act=6e10),
        _row("residual_add", "vector", 0.5, flops=2e8, act=8e8),
    ])
    decode = _with_shares([
        _row("embedding", "embedding", 0.01, weight=6e4, act=6e4),
        _row("qkv_proj", "gemm", 0.4, flops=6e9, weight=1.6e9, act=6e6),
        _row("attention", "attention", 0.3, flops=5e9, kv=7e8, act=1e6),
        _row("attn_allreduce", "collective", 0.2, bound="comm", comm=5e6),
        _row("residual_add", "vector", 0.1, flops=5e6, act=1.5e7),
        _row("residual_add", "vector", 0.05, flops=6e4, act=2e5),
    ])
    return {"prefill": prefill, "decode": decode}


@pytest.fixture
def sweep():
    """Two models x L2 sizes x two HBM bandwidths, with metric and configuration columns."""
    l2 = np.array([0.0, 32.0, 64.0, 128.0])
    rows = []
    for model, scale in (("small", 2.0), ("large", 1.0)):
        for i, size in enumerate(l2):
            for hbm in (1600.0, 2000.0):
                with_pf = scale * (np.array([5.0, 6.0, 7.5, 7.0])[i] + (hbm == 2000.0) * 0.5)
                base = scale * (np.array([5.5, 5.4, 5.3, 5.2])[i] + (hbm == 2000.0) * 0.5)
                rows.append({"model": model, "l2_capacity_MiB": size, "hbm_bandwidth_GBps": hbm,
                             "tok_s_per_kusd": with_pf, "baseline_tok_s_per_kusd": base,
                             "system_cost_usd": 40000 + 100 * size + 5 * hbm,
                             "throughput_tok_s": with_pf * 50, "prefetch_speedup": with_pf / base,
                             "collective_to_prefetch_ratio": 0.1 * (i + 1) * hbm / 1600})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ Pareto front


def test_pareto_mask_hand_made():
    # minimize cost, maximize throughput
    cost = np.array([1.0, 2.0, 2.0, 3.0, 4.0, 1.5, np.nan, 4.0])
    perf = np.array([1.0, 3.0, 2.0, 3.0, 5.0, 0.5, 9.0, 5.0])
    front = pareto_mask_2d(cost, perf)
    # (2,2) is beaten by (2,3); (3,3) by (2,3); (1.5,0.5) by (1,1); NaN is never on the front;
    # the two equal points (4,5) are both kept
    assert front.tolist() == [True, True, False, False, True, False, False, True]
    # both maximized: only the point best in both survives
    assert pareto_mask_2d([1, 2, 3], [3, 2, 1], x_better="max").tolist() == [True, True, True]
    assert pareto_mask_2d([1, 2, 3], [1, 2, 3], x_better="max").tolist() == [False, False, True]
    with pytest.raises(ValueError, match="x_better"):
        pareto_mask_2d([1], [1], x_better="up")


def test_pareto_mask_matches_brute_force():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 6, 200).astype(float), rng.integers(0, 6, 200).astype(float)
    brute = np.array([not np.any((x <= x[i]) & (y >= y[i]) & ((x < x[i]) | (y > y[i])))
                      for i in range(x.size)])
    np.testing.assert_array_equal(pareto_mask_2d(x, y), brute)


def test_pareto_front_info_order_and_hover(sweep):
    info = _get_pareto_front_info(sweep, "system_cost_usd", "throughput_tok_s")
    front_x = info.x[info.front_order]
    assert np.all(np.diff(front_x) >= 0), "front sorted by x"
    assert np.all(np.diff(info.y[info.front_order]) > 0), "along the front, paying more buys more"
    np.testing.assert_array_equal(info.on_front, pareto_mask_2d(info.x, info.y))
    # default hover: the configuration columns, not the metrics
    assert info.hover_columns == ["model", "l2_capacity_MiB", "hbm_bandwidth_GBps"]
    assert info.customdata.shape == (len(sweep), 3)
    # a given mask is used as is
    mask = np.zeros(len(sweep), dtype=bool)
    mask[[3, 1]] = True
    info = _get_pareto_front_info(sweep, "system_cost_usd", "throughput_tok_s", front_mask=mask,
                                  hover=["model"])
    assert sorted(info.front_order.tolist()) == [1, 3] and info.hover_columns == ["model"]
    with pytest.raises(KeyError, match="nope"):
        _get_pareto_front_info(sweep, "nope", "throughput_tok_s")


def test_plot_pareto_front_traces(sweep):
    fig = plots.plot_pareto_front(sweep, "system_cost_usd", "throughput_tok_s", color=None)
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["all configurations", "Pareto front"]
    assert len(fig.data[0].x) == len(sweep)
    assert "model" in fig.data[1].hovertemplate and "(USD)" in fig.layout.xaxis.title.text
    fig = plots.plot_pareto_front(sweep, "system_cost_usd", "throughput_tok_s", color="model")
    assert [t.name for t in fig.data] == ["model=small", "model=large", "Pareto front"]
    fig = plots.plot_pareto_front(sweep, "system_cost_usd", "throughput_tok_s",
                                  color="l2_capacity_MiB", title="T")
    assert fig.data[0].marker.showscale and fig.layout.title.text == "T"


def test_pareto_points_are_coloured_by_configuration(sweep):
    # by default the first configuration column that varies colours the points: here the model
    fig = plots.plot_pareto_front(sweep, "system_cost_usd", "throughput_tok_s")
    assert [t.name for t in fig.data] == ["model=small", "model=large", "Pareto front"]
    # prefetch comes first when it varies
    both = pd.concat([sweep.assign(prefetch=True), sweep.assign(prefetch=False)], ignore_index=True)
    fig = plots.plot_pareto_front(both, "system_cost_usd", "throughput_tok_s")
    assert [t.name for t in fig.data] == ["prefetch=True", "prefetch=False", "Pareto front"]
    # continuous parameters only: a colour scale of the L2 size
    fig = plots.plot_pareto_front(sweep[sweep.model == "small"], "system_cost_usd", "throughput_tok_s")
    assert fig.data[0].marker.showscale and "L2" in fig.data[0].marker.colorbar.title.text


def test_prefetch_on_and_off_keep_one_colour_in_every_figure(sweep):
    # the order of the traces is the table's; only the colour follows the label: prefetch on is
    # orange and off blue in the Pareto front (in either row order), in the perf-per-cost curves
    # ("with prefetch" first) and in the report's page (its payload carries the same mapping)
    on, off = plots.PREFETCH_COLORS[True], plots.PREFETCH_COLORS[False]
    assert (on, off) == ("#ff7f0e", "#1f77b4")
    for first in (True, False):
        both = pd.concat([sweep.assign(prefetch=first), sweep.assign(prefetch=not first)], ignore_index=True)
        fig = plots.plot_pareto_front(both, "system_cost_usd", "throughput_tok_s")
        assert [t.name for t in fig.data] == [f"prefetch={first}", f"prefetch={not first}", "Pareto front"]
        assert {t.name: t.marker.color for t in fig.data[:2]} == {"prefetch=True": on, "prefetch=False": off}
    fig = plots.plot_metric_vs_parameter(sweep, "l2_capacity_MiB", "tok_s_per_kusd", group="model")
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["with prefetch", "without prefetch"] * 2
    assert [t.line.color for t in lines] == [on, off] * 2
    from roofline.report._build import _prefetch_colors

    assert _prefetch_colors() == {"true": on, "false": off}
    # other labels take the palette in order, never a colour a fixed label of the figure holds
    assert plots.series_colors(["a", "with prefetch", "b"]) == {"a": off, "with prefetch": on, "b": "#2ca02c"}
    assert plots.series_colors(["small", "large"]) == {"small": off, "large": on}


def test_titles_state_the_scenario():
    table = pd.DataFrame({"model": ["llama-3-70b"] * 2, "hardware": ["h100-sxm"] * 2, "devices": [8, 8],
                          "batch": [8, 8], "input_len": [2048, 2048], "output_len": [512, 512], "dtype": ["fp8"] * 2,
                          "kv_dtype": ["fp8"] * 2, "l2_capacity_MiB": [0.0, 64.0], "system_cost_usd": [1.0, 2.0],
                          "throughput_tok_s": [1.0, 3.0], "tok_s_per_kusd": [1.0, 1.5]})
    assert plots.scenario_label(table) == "llama-3-70b on 8x h100-sxm · batch 8 · 2048 in / 512 out · fp8"
    fig = plots.plot_pareto_front(table, "system_cost_usd", "throughput_tok_s", title="front")
    assert fig.layout.title.subtitle.text == "llama-3-70b on 8x h100-sxm · batch 8 · 2048 in / 512 out · fp8"
    fig = plots.plot_metric_vs_parameter(table, series={"with prefetch": "tok_s_per_kusd"})
    assert "llama-3-70b on 8x h100-sxm" in fig.layout.title.subtitle.text
    # several values are listed, more than three counted; a KV dtype of its own is named
    table = pd.concat([table.assign(hardware=h, kv_dtype="fp8") for h in ("a", "b", "c", "d")]).assign(dtype="bf16")
    assert plots.scenario_label(table) == "llama-3-70b on 4 device types, 8 each · batch 8 · 2048 in / 512 out · bf16 (KV fp8)"
    table = table.assign(hardware="ascend-910b", devices=[8, 4] * 4)
    assert plots.scenario_label(table).startswith("llama-3-70b on ascend-910b (4, 8 devices) · batch 8")
    # a serving sweep's table (`roofline pareto` on it included): no static batch to state
    serving = table.assign(serving_ttft_ms=100.0)
    assert plots.scenario_label(serving) == "llama-3-70b on ascend-910b (4, 8 devices) · 2048 in / 512 out · bf16 (KV fp8)"


# ------------------------------------------------------------------------ metric vs parameter


def test_metric_vs_parameter_info_best_x(sweep):
    info = _get_metric_vs_parameter_info(sweep, group="model")
    assert info.groups == ["small", "large"]
    by = {(c.group, c.label): c for c in info.curves}
    assert set(by) == {(g, s) for g in ("small", "large")
                       for s in ("with prefetch", "without prefetch")}
    large = by["large", "with prefetch"]
    np.testing.assert_array_equal(large.x, [0, 32, 64, 128])
    # rows of one x are reduced to their best (the 2000 GB/s HBM)
    np.testing.assert_allclose(large.y, [5.5, 6.5, 8.0, 7.5])
    assert large.best_x == 64 and large.best_y == 8.0
    assert by["large", "without prefetch"].best_x == 0
    assert by["small", "with prefetch"].best_y == 16.0
    # explicit series, mean reduction, "min is best"
    info = _get_metric_vs_parameter_info(sweep[sweep.model == "large"],
                                         series={"speedup": "prefetch_speedup"}, reduce="mean",
                                         better="min")
    (curve,) = info.curves
    assert curve.label == "speedup" and curve.group is None and curve.best_x == 0


def test_plot_metric_vs_parameter_traces(sweep):
    fig = plots.plot_metric_vs_parameter(sweep[sweep.model == "small"])
    names = [t.name for t in fig.data]
    assert names == ["with prefetch", "best with prefetch", "without prefetch",
                     "best without prefetch"]
    assert fig.data[1].x[0] == 64 and "MiB" in fig.data[1].text[0]
    assert fig.layout.xaxis.title.text == "L2 capacity (MiB)"
    assert "tokens/s per 1000 USD" in fig.layout.yaxis.title.text
    fig = plots.plot_metric_vs_parameter(sweep, group="model", mark_best=False)
    assert [t.name for t in fig.data] == ["with prefetch", "without prefetch"] * 2
    assert sum(bool(t.showlegend) for t in fig.data) == 2
    assert [a.text for a in fig.layout.annotations] == ["model = small", "model = large"]


# --------------------------------------------------------------------------------- breakdowns


def test_breakdown_info_sums_per_kind(breakdown):
    info = _get_latency_breakdown_info(breakdown)
    assert info.columns == ["prefill", "decode"]
    assert info.groups == ["gemm", "attention", "vector", "embedding", "collective"]
    for j, phase in enumerate(info.columns):
        total = sum(r["time_ms"] for r in breakdown[phase])
        assert info.total_ms[j] == pytest.approx(total)
        assert info.time_ms[:, j].sum() == pytest.approx(total)
        for i, kind in enumerate(info.groups):
            expected = sum(r["time_ms"] for r in breakdown[phase] if r["kind"] == kind)
            assert info.time_ms[i, j] == pytest.approx(expected)
    np.testing.assert_allclose(info.share.sum(axis=0), 1.0)
    assert info.time_ms[info.groups.index("vector"), 0] == pytest.approx(5.5)
    by_op = _get_latency_breakdown_info(breakdown, group_by="op", phases=["decode"])
    assert by_op.groups[0] == "embedding" and by_op.groups.count("residual_add") == 1
    assert by_op.time_ms[by_op.groups.index("residual_add"), 0] == pytest.approx(0.15)
    assert by_op.group_kinds[by_op.groups.index("qkv_proj")] == "gemm"
    with pytest.raises(KeyError, match="phase"):
        _get_latency_breakdown_info(breakdown, phases=["train"])


def test_breakdown_comparison_info(breakdown):
    slower = {ph: [{**r, "time_ms": 2 * r["time_ms"]} for r in rows]
              for ph, rows in breakdown.items()}
    info = _get_breakdown_comparison_info({"a": breakdown, "b": slower}, "decode")
    assert info.columns == ["a", "b"]
    np.testing.assert_allclose(info.time_ms[:, 1], 2 * info.time_ms[:, 0])
    np.testing.assert_allclose(info.total_ms, [1.06, 2.12])


def test_plot_breakdowns_traces(breakdown):
    fig = plots.plot_latency_breakdown(breakdown)
    kinds = ["gemm", "attention", "vector", "embedding", "collective"]
    assert [t.name for t in fig.data] == kinds * 2
    assert all(isinstance(t, go.Bar) for t in fig.data) and fig.layout.barmode == "stack"
    assert fig.data[0].marker.color == plots.KIND_COLORS["gemm"]
    assert "ms" in fig.layout.yaxis.title.text
    fig = plots.plot_latency_breakdown(breakdown, group_by="op")
    assert len({t.marker.color for t in fig.data[:5]}) == 5
    fig = plots.plot_breakdown_comparison({"with": breakdown, "without": breakdown},
                                          phase="prefill")
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    assert [t.name for t in bars] == kinds and list(bars[0].x) == ["with", "without"]


def test_breakdown_of_a_real_prediction():
    import roofline

    p = roofline.predict("llama-3-8b", "h100-sxm", tp=2, batch=2, input_len=512, output_len=16)
    info = _get_latency_breakdown_info(p)
    assert info.total_ms[0] == pytest.approx(p.ttft_s * 1e3, rel=1e-9)
    assert info.total_ms[1] == pytest.approx(p.tpot_s * 1e3, rel=1e-9)
    assert "collective" in info.groups


# -------------------------------------------------------------------------------- roofline


def test_roofline_info_ceilings_and_points(breakdown):
    peak, hbm, l2 = 1e15, 2e12, 1e13
    info = _get_roofline_info(breakdown["decode"], peak_flops=peak, hbm_Bps=hbm, l2_Bps=l2)
    assert info.ridge_hbm == pytest.approx(peak / hbm) and info.ridge_l2 == pytest.approx(peak / l2)
    i = np.searchsorted(info.ai_grid, info.ridge_hbm)
    assert info.ai_grid[i] == pytest.approx(info.ridge_hbm)
    assert info.hbm_ceiling[i] == pytest.approx(peak)  # the roof turns at the ridge point
    below = info.ai_grid < info.ridge_hbm
    np.testing.assert_allclose(info.hbm_ceiling[below], info.ai_grid[below] * hbm)
    np.testing.assert_allclose(info.hbm_ceiling[~below], peak)
    assert np.all(info.l2_ceiling >= info.hbm_ceiling)
    # collectives and the FLOP-less embedding are left off the chart, with their share
    assert info.op == ["qkv_proj", "attention", "residual_add", "residual_add"]
    assert sorted(info.excluded_ops) == ["attn_allreduce", "embedding"]
    assert info.excluded_share == pytest.approx(0.21 / 1.06)
    assert info.intensity[0] == pytest.approx(6e9 / (1.6e9 + 6e6))
    assert info.attained_flops[0] == pytest.approx(6e9 / 0.4e-3)
    assert info.ai_grid.min() <= info.intensity.min() and info.ai_grid.max() >= info.ridge_hbm
    no_l2 = _get_roofline_info(breakdown["decode"], peak_flops=peak, hbm_Bps=hbm)
    assert no_l2.l2_ceiling is None and no_l2.ridge_l2 is None
    with pytest.raises(ValueError, match="> 0"):
        _get_roofline_info(breakdown["decode"], peak_flops=0, hbm_Bps=hbm)


def test_plot_roofline_traces(breakdown):
    fig = plots.plot_roofline(breakdown["prefill"], peak_flops=1e15, hbm_Bps=2e12, l2_Bps=1e13)
    assert [t.name for t in fig.data] == ["HBM roof", "L2 roof", "compute-bound ops",
                                          "memory-bound ops"]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert "FLOP/byte" in fig.layout.xaxis.title.text
    assert "TFLOP/s" in fig.layout.yaxis.title.text
    sizes = np.asarray(fig.data[2].marker.size)
    assert sizes[0] > sizes[1]  # qkv_proj takes more time than attention
    fig = plots.plot_roofline(pd.DataFrame(breakdown["decode"]), peak_flops=1e15, hbm_Bps=2e12)
    assert [t.name for t in fig.data] == ["HBM roof", "memory-bound ops"]


def test_roofline_labels_do_not_overlap_and_derated_ceilings_say_achievable():
    import roofline
    from roofline.plots._roofline import _boxes_overlap

    # Llama-3-70B decode on H100: qkv_proj, o_proj, gate_up_proj, down_proj and attention sit
    # within a few pixels of each other (the chart that used to print their names on top of each other)
    p = roofline.predict("llama-3-70b", "h100-sxm", tp=8, batch=8, input_len=2048, output_len=128, dtype="fp8")
    rows = p.breakdown["decode"]
    info = _get_roofline_info(rows, peak_flops=1.58e15, hbm_Bps=2.68e12, l2_Bps=1.2e13)
    assert {"qkv_proj", "o_proj", "gate_up_proj", "down_proj", "attention"} <= {lab.text for lab in info.labels}
    area = plots._roofline.PLOT_AREA_PX
    px = (np.log10(info.intensity) - info.x_range[0]) / (info.x_range[1] - info.x_range[0]) * area[0]
    py = (np.log10(info.attained_flops / 1e12) - info.y_range[0]) / (info.y_range[1] - info.y_range[0]) * area[1]
    boxes = [(px[lab.index] + lab.dx_px, py[lab.index] + lab.dy_px, lab.width_px, lab.height_px) for lab in info.labels]
    markers = [(x, y, d, d) for x, y, d in zip(px, py, info.marker_px)]
    for k, box in enumerate(boxes):
        assert not any(_boxes_overlap(box, other) for other in boxes[k + 1:]), info.labels[k]
        assert not any(_boxes_overlap(box, m) for m in markers), info.labels[k]
    fig = plots.plot_roofline(rows, peak_flops=1.58e15, hbm_Bps=2.68e12, l2_Bps=1.2e13, ceiling="achievable")
    assert fig.data[0].name == "HBM roof (achievable)"
    note = fig.layout.annotations[-1].text
    assert note.startswith("achievable compute") and "peak 1" not in note
    # the footnote lists every op it leaves out, on lines short enough for the figure
    assert "prefetch_spill_wait" in note or "logits_allgather" in note
    assert "..." not in note and max(len(line) for line in note.split("<br>")) <= 130
    with pytest.raises(ValueError, match="achievable"):
        plots.plot_roofline(rows, peak_flops=1e15, hbm_Bps=2e12, ceiling="nominal")


def test_breakdown_never_shows_prefetch_as_a_cost():
    bd = {"decode": [{"op": "gemm_op", "kind": "gemm", "time_ms": 3.0},
                     {"op": "prefetch_spill_wait", "kind": "prefetch", "time_ms": 0.3}]}
    fig = plots.plot_latency_breakdown(bd)
    assert [t.name for t in fig.data] == ["gemm", "HBM stall (prefetch spill)"]
    assert not any(t.name == "prefetch" or (t.text and t.text[0].startswith("prefetch")) for t in fig.data)
    fig = plots.plot_breakdown_comparison({"A": bd, "B": bd}, group_by="op")
    assert "HBM stall (prefetch spill)" in [t.name for t in fig.data]


def test_breakdown_of_a_prediction_states_its_scenario():
    import roofline

    p = roofline.predict("llama-3-8b", "h100-sxm", tp=2, batch=4, input_len=1024, output_len=64, dtype="fp8")
    fig = plots.plot_latency_breakdown(p, title="T")
    assert fig.layout.title.text == "T"
    # fp8 weights with the embedding and LM head in bf16, as the checkpoints ship them
    # (roofline.workload.checkpoint_op_dtypes)
    assert fig.layout.title.subtitle.text == ("llama-3-8b on 2x h100-sxm · batch 4 · 1024 in / 64 out · "
                                              "fp8 (embedding bf16, lm_head bf16)")
    other = roofline.predict("llama-3-8b", "b200", tp=2, batch=4, input_len=1024, output_len=64, dtype="fp8")
    fig = plots.plot_breakdown_comparison({"h100": p, "b200": other})
    assert fig.layout.title.subtitle.text.startswith("llama-3-8b on 2x h100-sxm, b200 · batch 4")
    fig = plots.plot_breakdown_comparison({"h100": p, "bare": p.breakdown})
    assert not fig.layout.title.subtitle.text  # nothing to state for a bare breakdown


# -------------------------------------------------------------------------- speedup vs ratio


def test_speedup_vs_ratio(sweep):
    info = _get_speedup_vs_ratio_info(sweep, color="model")
    assert info.best_index == int(np.argmax(sweep["prefetch_speedup"]))
    assert not info.log_x and not info.color_continuous
    assert "prefetch_speedup" not in info.hover_columns
    wide = sweep.assign(collective_to_prefetch_ratio=np.geomspace(0.01, 10, len(sweep)))
    assert _get_speedup_vs_ratio_info(wide).log_x
    fig = plots.plot_speedup_vs_ratio(sweep, color="model")
    assert [t.name for t in fig.data] == ["small", "large"]
    assert "ratio" in fig.layout.xaxis.title.text and "x" in fig.layout.yaxis.title.text
    fig = plots.plot_speedup_vs_ratio(wide)
    assert [t.name for t in fig.data] == ["configurations"] and fig.layout.xaxis.type == "log"


def test_axis_labels_carry_units():
    assert plots.axis_label("l2_capacity_MiB") == "L2 capacity (MiB)"
    assert plots.axis_label("queue_wait_ms") == "queue wait (ms)"
    assert plots.axis_label("peak_tflops_bf16") == "peak bf16 (TFLOP/s)"
    assert plots.axis_label("decode_bound") == "decode bound"


# ---------------------------------------------------------------------------- writing files


def _small_figure():
    return go.Figure(go.Scatter(x=[1, 2, 3], y=[2, 1, 3]), layout={"title": "test"})


def test_html_only_needs_no_browser(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when no image was asked for
        paths = plots.save_figure(_small_figure(), tmp_path / "sub" / "fig", formats=("html",))
    assert paths == [tmp_path / "sub" / "fig.html"]
    html = paths[0].read_text()
    # plotly.js is inlined, not loaded from a CDN: the file opens offline
    assert "<html>" in html and '<script src="http' not in html and "Plotly.newPlot" in html
    assert len(html) > 1_000_000
    with pytest.raises(ValueError, match="allowed"):
        FigureWriter(formats=("html", "gif"))


def test_missing_browser_writes_html_and_warns_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chrome"))
    assert plots.find_browser() is None
    with pytest.warns(PNGExportWarning) as record, FigureWriter() as out:
        a = out.write(_small_figure(), tmp_path / "a")
        b = out.write(_small_figure(), tmp_path / "b")
    assert a == [tmp_path / "a.html"] and b == [tmp_path / "b.html"]
    assert a[0].is_file() and not (tmp_path / "a.png").exists()
    assert len(record) == 1  # once per writer
    message = str(record[0].message)
    assert "\n" not in message and "BROWSER_PATH" in message
    assert "chromium-headless-shell" in message and "plotly_get_chrome" in message
    assert "no-chrome" in out.image_error
    with pytest.warns(PNGExportWarning, match="plotly_get_chrome"):
        assert plots.save_figure(_small_figure(), tmp_path / "c") == [tmp_path / "c.html"]


def test_no_browser_anywhere(tmp_path, monkeypatch):
    monkeypatch.delenv("BROWSER_PATH", raising=False)
    # patched where FigureWriter looks it up (roofline.plots re-exports it for reading only)
    monkeypatch.setattr(plots._writer, "_browser_lookup", lambda: (None, "no Chrome or Chromium found"))
    with pytest.warns(PNGExportWarning, match="no Chrome or Chromium found"):
        assert plots.save_figure(_small_figure(), tmp_path / "f") == [tmp_path / "f.html"]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_browser_that_fails_to_start_does_not_hang(tmp_path, monkeypatch):
    """kaleido's server thread dies when the browser cannot start; a request would wait forever."""
    fake = tmp_path / "fake-chrome"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("BROWSER_PATH", str(fake))
    with pytest.warns(PNGExportWarning, match="failed") as record, FigureWriter(timeout_s=30) as out:
        a = out.write(_small_figure(), tmp_path / "a")
        b = out.write(_small_figure(), tmp_path / "b")
    assert a == [tmp_path / "a.html"] and b == [tmp_path / "b.html"]
    assert len(record) == 1 and out.image_error
    import kaleido

    assert not kaleido._global_server.is_running()  # left stopped, so a later writer can start


def _require_browser():
    path, reason = plots._browser_lookup()
    if path is None:
        pytest.skip(f"PNG export not testable: {reason}; install chromium-headless-shell "
                    "(BROWSER_PATH=/usr/lib/chromium/chromium-headless-shell) or run plotly_get_chrome")
    return path


def test_png_written_with_warm_server(tmp_path, breakdown):
    _require_browser()
    figs = {"breakdown": plots.plot_latency_breakdown(breakdown),
            "roofline": plots.plot_roofline(breakdown["decode"], peak_flops=1e15, hbm_Bps=2e12)}
    with warnings.catch_warnings():
        warnings.simplefilter("error", PNGExportWarning)
        with FigureWriter(width=800, height=500) as out:
            written = {k: out.write(f, tmp_path / k) for k, f in figs.items()}
    for k, paths in written.items():
        assert paths == [tmp_path / f"{k}.html", tmp_path / f"{k}.png"]
        data = paths[1].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        assert int.from_bytes(data[16:20], "big") == 800  # IHDR width
    assert len(out.image_seconds) == 2
    import kaleido

    assert not kaleido._global_server.is_running()


def test_save_figure_one_off_png(tmp_path):
    _require_browser()
    paths = plots.save_figure(_small_figure(), tmp_path / "one", width=400, height=300)
    assert [p.name for p in paths] == ["one.html", "one.png"]
    data = paths[1].read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert int.from_bytes(data[16:20], "big") == 400
    assert int.from_bytes(data[20:24], "big") == 300


# ---------------------------------------------------------------------------------- imports


def test_import_does_not_load_plotly():
    code = ("import sys, roofline.plots; "
            "bad = [m for m in ('plotly', 'kaleido', 'choreographer') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, f"import roofline.plots loaded {res.stdout.strip()} {res.stderr}"


def test_the_serving_frontier_labels_its_loads_with_units_and_unclipped():
    rows = [{"rate_rps": 2.0, "tok_s_per_user": 110.0, "throughput_tok_s_per_device": 1000.0},
            {"rate_rps": 8.0, "tok_s_per_user": 73.0, "throughput_tok_s_per_device": 4000.0}]
    fig = plots.plot_serving_frontier(rows)
    assert list(fig.data[0].text) == ["2.0 req/s", "8.0 req/s"] and fig.data[0].cliponaxis is False
    fig = plots.plot_serving_frontier([{"concurrency": 4, "tok_s_per_user": 1.0, "throughput_tok_s_per_device": 2.0}])
    assert list(fig.data[0].text) == ["c4"]


def test_metric_vs_parameter_panels_keep_their_best_labels_readable():
    """A grid of panels: one y title (row titles ran into each other), best labels drawn beyond
    the axes and room above the highest point for them (they covered the panel titles)."""
    rows = [{"model": m, "l2_capacity_MiB": l2, "tok_s_per_kusd": 20.0 - l2 / 100 + (l2 > 0)}
            for m in ("a", "b", "c", "d") for l2 in (0.0, 16.0, 128.0, 256.0)]
    fig = plots.plot_metric_vs_parameter(pd.DataFrame(rows), y="tok_s_per_kusd", group="model")
    titled = [k for k in fig.layout if k.startswith("yaxis") and fig.layout[k].title.text]
    assert titled == ["yaxis"]
    best = [t for t in fig.data if t.name.startswith("best")]
    assert best and all(t.cliponaxis is False for t in best)
    assert fig.layout.yaxis.range[1] == pytest.approx(20.84 * 1.15)
