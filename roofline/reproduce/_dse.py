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
from roofline.fitted import ModelChoice
from roofline.registry import headline_parameters, parameter_short_labels
from roofline.reproduce._grid import _frame_of, _model_label, plan_runs, with_hardware
from roofline.reproduce._paper import DSE_COST_VARIANTS, DSE_MODEL_VARIANTS
from roofline.sweepfile import SweepSpec

__all__ = ["DSE_MODEL_CHOICE", "DSE_OBJECTIVES", "DSE_SERVING_OBJECTIVES", "DSE_SETUPS", "DSE_POINTS", "dse_curve", "dse_frame",
           "dse_objectives", "dse_optima", "dse_sensitivity", "serving_block_for", "tornado_figure"]


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
    # compared as printed: ends that differ below the printed digits are one value, not "1.078-1.078"
    lo, hi = fmt.format(float(values.min())), fmt.format(float(values.max()))
    return lo if lo == hi else f"{lo}-{hi}"


# ----------------------------------------------------------------------------------------------
# The design-space answer under three objectives (issue 17): perf per manufacturing cost, per price
# and per TCO dollar, at a static batch, and how far each optimum moves with each unsourced estimate.
# ----------------------------------------------------------------------------------------------

#: The set-ups: the PRESERVE one (8x Ascend 910B, int8, batch 4, 16K) and two GPU nodes.
DSE_SETUPS: dict[str, dict[str, Any]] = {
    "910b (PRESERVE)": {"model": "llama-3-70b", "hardware": "ascend-910b", "dtype": "int8", "batch": 4,
                        "input_len": 10923, "output_len": 5461, "tp": 8},
    "h100-sxm": {"model": "llama-3-70b", "hardware": "h100-sxm", "dtype": "bf16", "batch": 16,
                 "input_len": 2048, "output_len": 512, "tp": 8},
    "mi300x": {"model": "llama-3-70b", "hardware": "mi300x", "dtype": "bf16", "batch": 16,
               "input_len": 2048, "output_len": 512, "tp": 8},
}
#: Objective -> (cost basis, metric to maximise).
DSE_OBJECTIVES: dict[str, tuple[str, str]] = {
    "perf per manufacturing cost": ("manufacturing", "tok_s_per_kusd"),
    "perf per price": ("price", "tok_s_per_kusd"),
    "perf per TCO dollar": ("price", "tok_s_per_tco_kusd"),
}
#: The same objectives at the serving operating point: each configuration at the busiest closed loop
#: that meets the SLO (``slo_max_concurrency``), ranked by its goodput there.
DSE_SERVING_OBJECTIVES: dict[str, tuple[str, str]] = {
    "perf per manufacturing cost": ("manufacturing", "slo_max_goodput_tok_s_per_kusd"),
    "perf per price": ("price", "slo_max_goodput_tok_s_per_kusd"),
    "perf per TCO dollar": ("price", "slo_max_goodput_tok_s_per_tco_kusd"),
}
#: Operating points: a static batch (the set-up's batch, prefill then decode) and serving.
DSE_POINTS = ("static batch", "serving")
#: The model of the design-space answer, at both operating points: the device specs as written and no
#: software overheads (the raw roofline, ``--datasheet``), as the L2 sweep it extends
#: (sweeps/dse_l2_ascend.yaml, ``datasheet: true``); the static batch and the serving point share it.
DSE_MODEL_CHOICE = ModelChoice(datasheet=True)
#: The serving SLO of every set-up: 50 ms TPOT (20 tokens/s per user) and 1 ms of TTFT per prompt
#: token (2 s for 2K prompts), vLLM engine defaults.
DSE_SLO_TPOT_MS = 50.0
DSE_SLO_TTFT_MS_PER_PROMPT_TOKEN = 1.0
#: The knobs whose optima are reported (the registry's headline parameters: L2 size, HBM bandwidth,
#: link speed), as multiples of the stock value (L2 in MiB).
DSE_L2_MiB = np.arange(0.0, 257.0, 16.0)
DSE_HBM_SCALE = np.array([0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0])
DSE_LINK_SCALE = np.array([0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0])
_KNOBS = headline_parameters()


def _scenario(setup: Mapping[str, Any], choice: ModelChoice = DSE_MODEL_CHOICE) -> Any:
    from roofline.engine import Scenario
    from roofline.fitted import fitted_model
    from roofline.model import load_model
    from roofline.workload import Parallelism, Workload

    model = load_model(setup["model"])
    workload = Workload.for_model(model, setup["dtype"], batch=setup["batch"], input_len=setup["input_len"],
                                  output_len=setup["output_len"])
    fitted = fitted_model(setup["hardware"], choice)
    return Scenario(model, workload, Parallelism(tp=setup["tp"]), fitted.hardware, overheads=fitted.overheads)


def _grid(scenario: Any) -> dict[str, np.ndarray]:
    """The (L2, HBM bandwidth, per-link bandwidth) grid around a device, flattened."""
    spec = scenario.hardware
    hbm = spec.memory.hbm_bandwidth_Bps / 1e9 * DSE_HBM_SCALE
    link = spec.intra_node.link_bandwidth_Bps / 1e9 * DSE_LINK_SCALE
    axes = {"l2_capacity_MiB": DSE_L2_MiB, "hbm_bandwidth_GBps": hbm, "link_bandwidth_GBps": link}
    mesh = np.meshgrid(*(axes[k] for k in _KNOBS), indexing="ij")
    return {k: m.ravel() for k, m in zip(_KNOBS, mesh)}


def serving_block_for(setup: Mapping[str, Any]) -> Any:
    """The ``serving:`` block of a set-up: vLLM, the set-up's lengths, the DSE SLO."""
    from roofline.serving.columns import parse_serving_block

    return parse_serving_block({"framework": "vllm", "slo_tpot_ms": DSE_SLO_TPOT_MS,
                                "slo_ttft_ms": DSE_SLO_TTFT_MS_PER_PROMPT_TOKEN * setup["input_len"]}, "dse")


class _Evaluator:
    """The performance of one set-up on a grid, computed once; objectives per cost-parameter set."""

    def __init__(self, scenario: Any, grid: Mapping[str, np.ndarray], block: Any, choice: ModelChoice) -> None:
        from roofline.serving.columns import serving_points
        from roofline.timing import HardwareArrays

        self.scenario, self.grid, self.block = scenario, grid, block
        self.n = len(grid["l2_capacity_MiB"])
        self.hw = HardwareArrays.from_spec(scenario.hardware, self.n, prefetch=True, **grid)
        # the serving point under the scenario's own model: fitted overheads, or none on the datasheet
        self.points = serving_points(scenario.model, scenario.workload, scenario.parallelism, self.hw, block,
                                     datasheet=choice.datasheet, hardware=scenario.hardware)

    def optima(self, overrides: Mapping[str, Any]) -> dict[tuple[str, str], dict[str, float]]:
        """(operating point, objective) -> the optimal knobs and the objective there (prefetch on,
        fitting rows only; at the serving point, configurations that meet the SLO)."""
        from roofline.cost import load_cost_parameters
        from roofline.engine import evaluate_configs
        from roofline.serving.columns import serving_cost_columns

        sc = self.scenario
        static: dict[str, dict[str, np.ndarray]] = {}
        serving: dict[str, dict[str, np.ndarray]] = {}
        for basis in ("manufacturing", "price"):
            params = load_cost_parameters(overrides={**overrides, "basis.cost": basis})
            static[basis] = evaluate_configs(sc, self.n, prefetch=True, cost_params=params, **self.grid)
            serving[basis] = serving_cost_columns(self.points, sc.model, sc.workload, sc.parallelism, self.hw,
                                                  self.block, sc.hardware, params)
        met = self.points.at_slo_max["goodput_tok_s"] > 0
        out = {}
        for point, objectives, columns in (("static batch", DSE_OBJECTIVES, static),
                                           ("serving", DSE_SERVING_OBJECTIVES, serving)):
            for name, (basis, metric) in objectives.items():
                ok = static[basis]["fits"] if point == "static batch" else met
                values = np.where(ok, columns[basis][metric], -np.inf)
                best = int(np.argmax(values))
                found = {knob: float(self.grid[knob][best]) for knob in _KNOBS} | {"value": float(values[best])}
                if point == "serving":
                    found["concurrency"] = float(self.points.slo_max_concurrency[best])
                out[(point, name)] = found
        return out


def _relevant_estimates(scenario: Any) -> list[str]:
    """Unsourced parameters (``estimate:``) with a plausible range that can change this device's
    cost, power or TCO: its node's and memory generation's entries and the global ones."""
    from roofline.cost import load_cost_parameters

    params = load_cost_parameters()
    die = scenario.hardware.die
    node, generation = params.node(die.process_node), params.generation(die.hbm_generation)
    keys = []
    for key, prov in params.provenance.items():
        if "estimate" not in prov or "range" not in prov:
            continue
        parts = key.split(".")
        table_key = ".".join(parts[:2])
        if len(parts) == 3 and parts[2] not in (node, generation, scenario.hardware.intra_node.topology) \
                and table_key not in ("energy.pj_per_flop",):
            continue
        if table_key == "energy.pj_per_flop" and parts[2] not in _matrix_units(scenario):
            continue
        if (table_key == "sram.l2_mm2_per_MiB" and die.l2_sram != "gpu_l2") or (
                table_key == "sram.macro_mm2_per_MiB" and die.l2_sram != "macro"):
            continue
        if table_key == "interconnect.scale_out_usd_per_GBps":
            continue  # single-node set-ups
        keys.append(key)
    return keys


def _matrix_units(scenario: Any) -> set[str]:
    from roofline.graph import build_phase

    table = build_phase(scenario.model, scenario.workload, scenario.parallelism, "decode")
    return {d for d, m in zip(table.dtypes, table.is_matrix) if m}


def dse_objectives(setups: Mapping[str, Mapping[str, Any]] = DSE_SETUPS,
                   estimates: list[str] | None = None,
                   progress: Any = None, model_choice: ModelChoice = DSE_MODEL_CHOICE,
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The optima of L2, HBM bandwidth and link speed per set-up, operating point and objective,
    and the tornado.

    Returns:
        (optima, tornado): ``optima`` has one row per set-up, operating point (``static batch`` or
        ``serving``) and objective (the default parameters) with the stock device's objective for
        comparison; ``tornado`` one row per set-up, point, objective, varied estimate and end of its
        range, with the optimum there. ``estimates`` restricts the varied parameters (default: every
        relevant ranged estimate). ``model_choice``: the model of both operating points (default
        :data:`DSE_MODEL_CHOICE`, the raw roofline).
    """
    from roofline.cost import load_cost_parameters

    say = progress or (lambda _m: None)
    defaults = load_cost_parameters()
    optima_rows, tornado_rows = [], []
    for setup_name, setup in setups.items():
        say(f"{setup_name}: static batch and serving on the grid")
        scenario = _scenario(setup, model_choice)
        block = serving_block_for(setup)
        grid_eval = _Evaluator(scenario, _grid(scenario), block, model_choice)
        spec = scenario.hardware
        stock = {"l2_capacity_MiB": np.array([spec.memory.l2_capacity_bytes / 2**20]),
                 "hbm_bandwidth_GBps": np.array([spec.memory.hbm_bandwidth_Bps / 1e9]),
                 "link_bandwidth_GBps": np.array([spec.intra_node.link_bandwidth_Bps / 1e9])}
        stock_value = _Evaluator(scenario, stock, block, model_choice).optima({})
        for (point, objective), best in grid_eval.optima({}).items():
            optima_rows.append({"setup": setup_name, "point": point, "objective": objective, **best,
                                "stock_value": stock_value[(point, objective)]["value"],
                                "stock_concurrency": stock_value[(point, objective)].get("concurrency"),
                                "gain_vs_stock": best["value"] / stock_value[(point, objective)]["value"]})
        keys = _relevant_estimates(scenario) if estimates is None else estimates
        say(f"{setup_name}: {len(keys)} estimates at both ends of their ranges")
        for key in keys:
            low, high = defaults.plausible_range(key)
            for end, value in (("low", low), ("high", high)):
                for (point, objective), best in grid_eval.optima({key: value}).items():
                    tornado_rows.append({"setup": setup_name, "point": point, "objective": objective,
                                         "parameter": key, "end": end, "parameter_value": value,
                                         "default_value": defaults.value(key), **best})
    return pd.DataFrame(optima_rows), pd.DataFrame(tornado_rows)


def tornado_figure(optima: pd.DataFrame, tornado: pd.DataFrame, setup: str, point: str = "static batch") -> Any:
    """Tornado charts of one set-up at one operating point: per objective (rows) and knob (columns),
    the optimum when each estimate sits at the low (blue) or high (orange) end of its range; dotted:
    the default optimum. The x axes span the searched grid, so a short bar is a small move."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if "point" in optima.columns:
        optima, tornado = optima[optima["point"] == point], tornado[tornado["point"] == point]
    t_all = tornado[tornado["setup"] == setup]
    params = list(dict.fromkeys(t_all["parameter"]))
    objectives = list(DSE_OBJECTIVES)
    titles = parameter_short_labels()
    fig = make_subplots(rows=len(objectives), cols=3, shared_yaxes=True, horizontal_spacing=0.02,
                        vertical_spacing=0.06,
                        subplot_titles=[f"{o}: {titles[k]}" for o in objectives for k in _KNOBS])
    grid = _grid(_scenario(DSE_SETUPS[setup])) if setup in DSE_SETUPS else None
    for row, objective in enumerate(objectives, start=1):
        base = optima[(optima["setup"] == setup) & (optima["objective"] == objective)].iloc[0]
        t = t_all[t_all["objective"] == objective]
        for col, knob in enumerate(_KNOBS, start=1):
            for end, color in (("low", "#4C78A8"), ("high", "#F58518")):
                rows = t[t["end"] == end].set_index("parameter").reindex(params)
                moved = rows[knob] - base[knob]
                fig.add_trace(go.Bar(y=params, x=moved.where(moved != 0, np.nan), base=base[knob], orientation="h",
                                     marker_color=color, opacity=0.85, showlegend=row == 1 and col == 1,
                                     name=f"estimate at the {end} end of its range"), row=row, col=col)
            fig.add_vline(x=base[knob], line_dash="dot", line_color="black", row=row, col=col)
            if grid is not None:
                lo, hi = float(grid[knob].min()), float(grid[knob].max())
                fig.update_xaxes(range=[lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo)], row=row, col=col)
    fig.update_layout(barmode="overlay", title=f"{setup}, {point}: how far each optimum moves over each estimate's "
                      "range (dotted: default optimum; no bar: it does not move)", height=260 * len(objectives) + 200,
                      width=1500, legend={"orientation": "h", "y": -0.06}, margin={"l": 300, "t": 90},
                      font={"size": 11})
    fig.update_annotations(font_size=12)
    return fig
