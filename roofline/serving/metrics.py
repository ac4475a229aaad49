"""Serving metrics from a simulation trace: per-request TTFT, TPOT, ITL, e2e, their statistics,
throughput and goodput under an SLO. Definitions are in :data:`DEFINITIONS` (and every output)."""

from __future__ import annotations

from typing import Any

import numpy as np

from roofline.metrics import PERCENTILE_NOTE, definition
from roofline.serving.simulator import SimulationTrace

__all__ = ["DEFINITIONS", "PERCENTILES", "trace_metrics", "weighted_percentile", "meets_slo"]

PERCENTILES = (50, 90, 99)

#: What each column of a serving row means: the metric registry's texts for ``roofline serve``
#: (roofline.metrics, context "serve"); the percentile columns in one note.
DEFINITIONS = {name: definition(name, "serve") for name in (
    "ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "throughput_tok_s", "throughput_rps", "throughput_tok_s_per_device",
    "tok_s_per_user", "goodput_tok_s", "slo_attainment", "kv_utilization", "mean_batch", "saturated")} | {
    "percentiles": PERCENTILE_NOTE}


def weighted_percentile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q``-th percentile of ``values`` where value i counts ``weights[i]`` times."""
    keep = weights > 0
    if not keep.any():
        return 0.0
    v, w = values[keep], weights[keep]
    order = np.argsort(v)
    cum = np.cumsum(w[order])
    return float(v[order][min(np.searchsorted(cum, q / 100.0 * cum[-1]), len(v) - 1)])


def meets_slo(ttft_s: np.ndarray, tpot_s: np.ndarray, slo_ttft_ms: float | None,
              slo_tpot_ms: float | None) -> np.ndarray:
    ok = np.ones(np.shape(ttft_s), dtype=bool)
    if slo_ttft_ms is not None:
        ok &= np.asarray(ttft_s) * 1e3 <= slo_ttft_ms
    if slo_tpot_ms is not None:
        ok &= np.asarray(tpot_s) * 1e3 <= slo_tpot_ms
    return ok


def trace_metrics(tr: SimulationTrace, *, slo_ttft_ms: float | None = None,
                  slo_tpot_ms: float | None = None) -> dict[str, Any]:
    """Means, percentiles, throughput and goodput of one simulation (times in ms)."""
    ttft = tr.first_token_s - tr.arrival_s
    e2e = tr.finish_s - tr.arrival_s
    out = tr.output.astype(float)
    multi = out > 1
    tpot = np.where(multi, (tr.finish_s - tr.first_token_s) / np.maximum(out - 1, 1), 0.0)
    start = float(np.nanmin(tr.arrival_s))
    duration = max(float(np.nanmax(tr.finish_s)) - start, 1e-12)
    ok = meets_slo(ttft, tpot, slo_ttft_ms, slo_tpot_ms)
    row: dict[str, Any] = {
        "ttft_ms": float(ttft.mean() * 1e3),
        "tpot_ms": float(tpot[multi].mean() * 1e3) if multi.any() else 0.0,
        "itl_ms": float(np.average(tr.itl_s, weights=tr.itl_weight) * 1e3) if tr.itl_weight.sum() > 0 else 0.0,
        "e2e_ms": float(e2e.mean() * 1e3),
    }
    for name, values in (("ttft", ttft), ("tpot", tpot[multi] if multi.any() else tpot), ("e2e", e2e)):
        for q in PERCENTILES:
            row[f"{name}_p{q}_ms"] = float(np.percentile(values, q) * 1e3)
    for q in PERCENTILES:
        row[f"itl_p{q}_ms"] = weighted_percentile(tr.itl_s, tr.itl_weight, q) * 1e3
    row |= {
        "throughput_tok_s": float(out.sum() / duration),
        "throughput_rps": float(len(out) / duration),
        "goodput_tok_s": float(out[ok].sum() / duration),
        "slo_attainment": float(ok.mean()),
        "kv_utilization": float(min(tr.mean_kv_tokens / tr.kv_capacity_tokens, 1.0)),
        "mean_batch": float(tr.mean_running),
        "saturated": False,
    }
    return row
