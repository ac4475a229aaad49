"""Experiment 2: performance per cost against L2 size. The per-model and all-model optima with
and without prefetch, and how they move under other cost or performance-model parameters.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.reproduce._grid import _frame_of, _model_label, plan_runs, with_hardware
from roofline.reproduce._paper import DSE_COST_VARIANTS, DSE_MODEL_VARIANTS
from roofline.sweepfile import SweepSpec

__all__ = ["dse_curve", "dse_frame", "dse_optima", "dse_sensitivity"]


def dse_frame(spec: SweepSpec, *, fallback: bool = True) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every row of the L2 sweep (prefetch off and on), with ``model_label``; and what could not run."""
    runs, skipped = plan_runs(spec, fallback=fallback)
    frames = [f for f in (_frame_of(r) for r in runs) if f is not None]
    if not frames:
        raise InfeasibleConfigError(f"{spec.path}: no configuration can run")
    df = pd.concat(frames, ignore_index=True)
    df["model_label"] = _model_label(df, {h: int(spec.fixed["tp"]) for h in df["hardware"].unique()})
    return df, skipped


def _curves(df: pd.DataFrame) -> pd.DataFrame:
    """Per model and L2 size: perf/cost with and without prefetch (fitting rows only)."""
    if "l2_capacity_MiB" not in df.columns:
        raise SpecError("the L2 design-space sweep must sweep l2_capacity_MiB")
    ok = df[df["fits"]]
    on = ok[ok["prefetch"].astype(bool)].set_index(["model_label", "l2_capacity_MiB"])
    off = ok[~ok["prefetch"].astype(bool)].set_index(["model_label", "l2_capacity_MiB"])
    out = pd.DataFrame({"with_prefetch": on["tok_s_per_kusd"], "without_prefetch": off["tok_s_per_kusd"],
                        "prefetch_speedup": on["prefetch_speedup"], "device_cost_usd": on["device_cost_usd"]})
    return out.reset_index()


def dse_optima(df: pd.DataFrame, stock_l2_MiB: float = 192.0) -> pd.DataFrame:
    """Per model: the perf/cost-optimal L2 size with and without prefetch, and the gains.

    Columns: model_label, l2_best_without_MiB, best_without, l2_best_with_MiB, best_with,
    gain (best with / best without), stock_without and stock_with (at ``stock_l2_MiB``),
    gain_vs_stock (best with / stock without).
    """
    rows = []
    for label, c in _curves(df).groupby("model_label", sort=False):
        c = c.sort_values("l2_capacity_MiB")
        i_off, i_on = c["without_prefetch"].idxmax(), c["with_prefetch"].idxmax()
        stock = c[np.isclose(c["l2_capacity_MiB"], stock_l2_MiB)]
        stock_off = float(stock["without_prefetch"].iloc[0]) if len(stock) else float("nan")
        stock_on = float(stock["with_prefetch"].iloc[0]) if len(stock) else float("nan")
        rows.append({
            "model_label": label,
            "l2_best_without_MiB": float(c.loc[i_off, "l2_capacity_MiB"]),
            "best_without": float(c.loc[i_off, "without_prefetch"]),
            "l2_best_with_MiB": float(c.loc[i_on, "l2_capacity_MiB"]),
            "best_with": float(c.loc[i_on, "with_prefetch"]),
            "speedup_at_best_with": float(c.loc[i_on, "prefetch_speedup"]),
            "gain": float(c.loc[i_on, "with_prefetch"] / c.loc[i_off, "without_prefetch"]),
            "stock_without": stock_off, "stock_with": stock_on,
            "gain_vs_stock": float(c.loc[i_on, "with_prefetch"]) / stock_off,
            "gain_vs_stock_with": float(c.loc[i_on, "with_prefetch"]) / stock_on,
        })
    return pd.DataFrame(rows)


def dse_curve(df: pd.DataFrame, stock_l2_MiB: float = 192.0) -> pd.DataFrame:
    """All models together: geometric mean over models of perf/cost normalised to each model's
    stock device without prefetch (L2 = ``stock_l2_MiB``), per L2 size, with and without prefetch."""
    c = _curves(df)
    stock = c[np.isclose(c["l2_capacity_MiB"], stock_l2_MiB)].set_index("model_label")["without_prefetch"]
    if stock.empty:
        raise SpecError(f"the L2 sweep does not contain the stock L2 size {stock_l2_MiB:g} MiB")
    c = c[c["model_label"].isin(stock.index)].copy()
    norm = c["model_label"].map(stock)
    c["with_prefetch"] = np.log(c["with_prefetch"] / norm)
    c["without_prefetch"] = np.log(c["without_prefetch"] / norm)
    g = np.exp(c.groupby("l2_capacity_MiB")[["with_prefetch", "without_prefetch"]].mean())
    g["device_cost_usd"] = c.groupby("l2_capacity_MiB")["device_cost_usd"].first()
    return g.reset_index()


def _curve_optimum(curve: pd.DataFrame, stock_l2_MiB: float = 192.0) -> dict[str, float]:
    """Optimum of a :func:`dse_curve`; ``gain`` = best with / best without prefetch, ``gain_vs_stock_with``
    = best with / with prefetch at the stock L2 (what choosing the L2 size adds to prefetching)."""
    i_off, i_on = curve["without_prefetch"].idxmax(), curve["with_prefetch"].idxmax()
    stock = curve[np.isclose(curve["l2_capacity_MiB"], stock_l2_MiB)]
    stock_on = float(stock["with_prefetch"].iloc[0]) if len(stock) else float("nan")
    return {"l2_best_without_MiB": float(curve.loc[i_off, "l2_capacity_MiB"]),
            "best_without": float(curve.loc[i_off, "without_prefetch"]),
            "l2_best_with_MiB": float(curve.loc[i_on, "l2_capacity_MiB"]),
            "best_with": float(curve.loc[i_on, "with_prefetch"]),
            "gain": float(curve.loc[i_on, "with_prefetch"] / curve.loc[i_off, "without_prefetch"]),
            "stock_with": stock_on,
            "gain_vs_stock_with": float(curve.loc[i_on, "with_prefetch"]) / stock_on}


def dse_sensitivity(spec: SweepSpec, *, cost_variants: Mapping[str, Mapping[str, float]] = DSE_COST_VARIANTS,
                    model_variants: Mapping[str, Mapping[str, float]] = DSE_MODEL_VARIANTS,
                    fallback: bool = True) -> pd.DataFrame:
    """Optimal L2 with and without prefetch, and the gain, under other cost or model parameters.

    One row per variant: the all-model optimum (:func:`dse_curve`) and the range of the per-model
    optima. Cost variants are dotted overrides of the cost parameters; model variants fix hardware
    parameters (added to the sweep as single values).
    """
    rows = []
    variants = [(k, dict(v), "cost") for k, v in cost_variants.items()]
    variants += [(k, dict(v), "model") for k, v in model_variants.items()]
    for name, overrides, kind in variants:
        if kind == "cost":
            s = dataclasses.replace(spec, cost_overrides={**spec.cost_overrides, **overrides})
        else:
            s = with_hardware(spec, overrides)
        df, _ = dse_frame(s, fallback=fallback)
        opt = dse_optima(df)
        cur = _curve_optimum(dse_curve(df))
        rows.append({"variant": name, "kind": kind, **cur,
                     "per_model_l2_without_MiB": _span(opt["l2_best_without_MiB"]),
                     "per_model_l2_with_MiB": _span(opt["l2_best_with_MiB"]),
                     "per_model_gain": _span(opt["gain"], "{:.2f}"),
                     "per_model_gain_vs_stock_with": _span(opt["gain_vs_stock_with"], "{:.3f}"),
                     "device_cost_l2_0_usd": float(df.loc[df["l2_capacity_MiB"] == 0, "device_cost_usd"].iloc[0]),
                     "device_cost_l2_256_usd": float(df.loc[df["l2_capacity_MiB"] == df["l2_capacity_MiB"].max(),
                                                            "device_cost_usd"].iloc[0])})
    return pd.DataFrame(rows)


def _span(values: pd.Series, fmt: str = "{:g}") -> str:
    lo, hi = float(values.min()), float(values.max())
    return fmt.format(lo) if lo == hi else f"{fmt.format(lo)}-{fmt.format(hi)}"
