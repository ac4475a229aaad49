"""The markdown reports (``report.md``) of both experiments and the tables in them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.registry import headline_parameters, parameter_labels
from roofline.reproduce._paper import MAIN_BATCH, MAIN_SEQUENCE

__all__ = ["markdown_table"]


def _fmt(v: Any, digits: int = 3) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v):
            return "-" if math.isnan(v) else "inf"
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:,.{digits}f}" if abs(v) < 100 else f"{v:,.1f}"
    if isinstance(v, (np.integer,)):
        return str(int(v))
    return str(v)


def markdown_table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub markdown table of ``df`` (no index)."""
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(_fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def _grid_markdown(t: pd.DataFrame) -> str:
    """Rows model x batch, columns total sequence; cells the e2e speedup or why it cannot run."""
    cell = np.where(t["fits"], t["prefetch_speedup"].map(lambda v: f"{v:.2f}"),
                    "OOM " + t["memory_GiB"].round(0).astype(int).astype(str) + " GiB")
    g = t.assign(cell=cell).pivot_table(index=["model_label", "batch"], columns="sequence", values="cell",
                                        aggfunc="first", sort=False)
    g.columns = [f"{c // 1024}K" for c in g.columns]
    return markdown_table(g.reset_index().rename(columns={"model_label": "model"}))


def _main_markdown(t: pd.DataFrame) -> str:
    m = t[(t["batch"] == MAIN_BATCH) & (t["sequence"] == MAIN_SEQUENCE)]
    cols = {"model_label": "model", "status": "memory", "baseline_ttft_ms": "TTFT base ms", "ttft_ms": "TTFT ms",
            "baseline_tpot_ms": "TPOT base ms", "tpot_ms": "TPOT ms", "baseline_e2e_ms": "e2e base ms",
            "e2e_ms": "e2e ms", "speedup_tpot": "TPOT speedup", "prefetch_speedup": "e2e speedup",
            "collective_to_prefetch_ratio": "coll/prefetch", "limited_by": "limited by"}
    cols = {k: v for k, v in cols.items() if k in m.columns}
    return markdown_table(m[list(cols)].rename(columns=cols))


def _preserve_report(table: pd.DataFrame, summary: Mapping[str, Any], skipped: Sequence[Mapping[str, Any]]) -> str:
    parts = ["# PRESERVE reproduction: end-to-end prefetch speedup\n",
             "e2e speedup = baseline e2e / e2e with prefetching; e2e = TTFT + (output_len - 1) * TPOT. "
             "Sequence = prompt + generated tokens, prompt = round(2/3 * sequence). "
             "OOM: weights + KV cache + activations do not fit in HBM (left out of the statistics). "
             f"{summary.get('ratio_definition', '')}.\n"]
    for hw, t in table.groupby("hardware", sort=False):
        s = summary["devices"][hw]
        parts.append(f"\n## {hw} (tp {t['tp'].mode().iloc[0]}, {s['dtype']})\n")
        if s.get("fit"):
            b = s["best"]
            parts.append(f"e2e speedup {s['speedup_min']:.2f}x-{s['speedup_max']:.2f}x over {s['fit']} "
                         f"configurations that fit ({s['does_not_fit']} do not); largest for {b['model_label']}, "
                         f"batch {b['batch']}, {b['sequence'] // 1024}K (ratio "
                         f"{b.get('collective_to_prefetch_ratio', float('nan')):.2f}, limited by "
                         f"{b.get('limited_by', '?')}). Main point (batch 4, 16K): "
                         f"{s['main_min']:.2f}x-{s['main_max']:.2f}x.\n")
        parts.append("\n### Main point: batch 4, 16K (10923 prompt + 5461 generated)\n\n" + _main_markdown(t) + "\n")
        parts.append("\n### e2e speedup by model, batch and sequence\n\n" + _grid_markdown(t) + "\n")
        if s.get("ratio_bins"):
            bins = pd.DataFrame(s["ratio_bins"])
            parts.append("\n### e2e speedup by collective/prefetch ratio\n\n" + markdown_table(bins) + "\n")
    notes = sorted({(s["model"], s["status"]) for s in skipped})
    if notes:
        parts.append("\n## Not run as specified\n\n" + "\n".join(f"- {m}: {st}" for m, st in notes) + "\n")
    return "".join(parts)


def _dse_report(optima: pd.DataFrame, curve: pd.DataFrame, overall: Mapping[str, float],
                sens: pd.DataFrame | None, skipped: Sequence[Mapping[str, Any]]) -> str:
    parts = ["# PRESERVE design-space exploration: performance per cost against L2 size\n\n",
             "Performance per cost = throughput (tokens/s) per 1000 USD of system cost, on the cost basis of the "
             "sweep file (manufacturing by default; cost_specs/default.yaml, docs/cost_model.md). "
             "8x Ascend 910B, int8, batch 4, 16K sequence (10923 prompt + 5461 generated).\n\n",
             f"All models (geometric mean, normalised to 192 MiB without prefetch): optimum "
             f"{overall['l2_best_without_MiB']:g} MiB without prefetch ({overall['best_without']:.3f}), "
             f"{overall['l2_best_with_MiB']:g} MiB with prefetch ({overall['best_with']:.3f}); "
             f"gain {overall['gain']:.2f}x.\n\n## Per model\n\n",
             markdown_table(optima.rename(columns={"model_label": "model"})), "\n"]
    pick = curve[curve["l2_capacity_MiB"].isin([0, 8, 16, 32, 64, 96, 104, 128, 192, 256])]
    l2_header = {"l2_capacity_MiB": parameter_labels()["l2_capacity_MiB"]}  # the registry's label, as in sweeps
    parts += ["\n## All models against L2 size (normalised perf/cost)\n\n",
              markdown_table(pick.rename(columns=l2_header)), "\n"]
    if sens is not None:
        parts += ["\n## Sensitivity\n\n", markdown_table(sens), "\n"]
    notes = sorted({(s["model"], s["status"]) for s in skipped})
    if notes:
        parts.append("\n## Not run as specified\n\n" + "\n".join(f"- {m}: {st}" for m, st in notes) + "\n")
    return "".join(parts)


#: The design-space knobs and their table headers: the registry's labels with units (the link's per link)
_KNOB_HEADERS = {k: parameter_labels()[k] for k in headline_parameters()}


def _objectives_report(optima: pd.DataFrame, tornado: pd.DataFrame, fit: Any) -> str:
    """Markdown of the design-space answer: the optima per set-up, operating point and objective,
    and every estimate whose range moves an optimum (the tornado as a table)."""
    lines = ["# Design-space answer: L2, HBM bandwidth and link speed under three objectives", "",
             "Prefetching on; static batch: the set-up's batch (prefill, then decode); serving: each "
             "configuration at the busiest closed loop that meets the SLO (vLLM defaults), ranked by its "
             "goodput there. Model: the raw roofline at both points (the device specs as written, no "
             "fitted overheads; DSE_MODEL_CHOICE).", "",
             f"Price basis: margin {fit.margin:.3f} fitted on {', '.join(fit.devices)}; leave-one-device-out "
             f"mean |error| {fit.mean_abs_held_out_error:.1%}.", "", "## Optima", ""]
    o = optima.copy()
    table = pd.DataFrame({
        "set-up": o["setup"], "point": o["point"], "objective": o["objective"],
        **{header: o[knob].map(lambda v: f"{v:,g}") for knob, header in _KNOB_HEADERS.items()},
        "concurrency": o["concurrency"].map(lambda v: "-" if pd.isna(v) else f"{v:g}"),
        "value": o["value"], "stock value": o["stock_value"],
        "stock concurrency": o["stock_concurrency"].map(lambda v: "-" if pd.isna(v) else f"{v:g}"),
        "gain over stock": o["gain_vs_stock"].map(lambda v: f"{v:.2f}x")})
    lines += [markdown_table(table), "",
              "Values: tokens/s (static batch) or goodput tokens/s (serving) per 1000 USD of system cost, or "
              "per 1000 USD of lifetime TCO.", "", "## What moves each optimum", ""]
    if tornado.empty:
        return "\n".join([*lines, "No estimate was varied.", ""])
    moves = tornado.merge(optima, on=["setup", "point", "objective"], suffixes=("", "_default"))
    moved = np.zeros(len(moves), dtype=bool)
    for knob in _KNOB_HEADERS:
        moved |= moves[knob].to_numpy() != moves[f"{knob}_default"].to_numpy()
    m = moves[moved]
    if m.empty:
        return "\n".join([*lines, "No estimate moves any optimum over its range.", ""])
    table = pd.DataFrame({
        "set-up": m["setup"], "point": m["point"], "objective": m["objective"], "estimate": m["parameter"],
        "end": m["end"], "at": m["parameter_value"],
        **{header: [f"{d:g} -> {v:g}" if v != d else f"{v:g}" for v, d in zip(m[knob], m[f"{knob}_default"])]
           for knob, header in _KNOB_HEADERS.items()}})
    return "\n".join([*lines, markdown_table(table), ""])
