"""Reproductions of the PRESERVE paper's experiments (Yuzuguler, Zhuang, Cavigelli; arXiv 2501.08192).

Two experiments, each driven by sweep files under ``sweeps/`` and run with the vectorized engine
(:func:`roofline.sweep.sweep_frame`):

``preserve`` (``sweeps/preserve_ascend.yaml``, ``sweeps/preserve_gpus.yaml``)
    End-to-end prefetch speedup (baseline e2e / e2e) of the paper's six models with tensor
    parallelism 8, batch 1-64, total sequence 2K-32K of which 2/3 is prompt and 1/3 generated,
    prefetch off and on: 8x Ascend 910B (int8) as in the paper, and four GPU nodes. A sweep file
    cannot pair ``input_len`` with ``output_len``, so each file holds one sequence length and
    :func:`expand_sequences` makes one copy per length of :data:`PAPER_SEQUENCES`.
    Also: speedup against the ratio of collective time to prefetch time, and a one-at-a-time
    sensitivity table of the 910B main point (batch 4, 16K).

``dse-l2`` (``sweeps/dse_l2_ascend.yaml``)
    Performance per cost (tokens/s per 1000 USD of system cost) against L2 size, 0-256 MiB, with
    and without prefetching, on the 910B set-up; the optimal L2 size with and without prefetch,
    the gain, and how the optimum moves with the cost model's SRAM density and host/interconnect
    share.

The ratio. For each configuration :func:`decode_ratio` reads the decode-phase segment table of
:func:`roofline.predict` (the middle decode step). Each segment (the operators between two
collectives) has ``collective_to_prefetch_ratio`` = time of the collective before it / time to
read the segment's weights and KV cache from HBM. The column ``collective_to_prefetch_ratio`` is
the mean over segments weighted by each segment's share of the baseline decode step
(``count * baseline time``), skipping segments with nothing to prefetch;
``collective_to_prefetch_ratio_pooled`` is ``sum(count * collective) / sum(count * prefetch
time)``.

Models that tensor parallelism 8 cannot split (qwen2-7b: 28 heads; phi-3-medium: 10 KV heads)
are reported as not runnable at tp 8 and, by default, run at the largest tp below it that splits
them (:func:`fallback_tp`); their rows carry the tp they ran at and a note. Configurations that do
not fit in HBM stay in every table with ``fits = False`` and are left out of the speedup
statistics, never dropped silently.

Example::

    from roofline.reproduce import reproduce_preserve, reproduce_dse_l2
    result = reproduce_preserve("runs/preserve", devices=["ascend-910b"])
    result.summary["devices"]["ascend-910b"]["speedup_max"]
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roofline._specfile import PROJECT_ROOT
from roofline.exceptions import InfeasibleConfigError, RooflineError, SpecError
from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.predict import predict
from roofline.sweep import scenario_for, sweep_frame
from roofline.sweepfile import Parameter, SweepSpec, load_sweep
from roofline.timing import SWEEPABLE
from roofline.workload import Parallelism

__all__ = [
    "PAPER_SEQUENCES", "PAPER_BATCHES", "PROMPT_FRACTION", "MAIN_BATCH", "MAIN_SEQUENCE", "PAPER",
    "PRESERVE_SWEEPS", "DSE_SWEEP", "SENSITIVITY", "PRESERVE_VARIANTS", "DSE_COST_VARIANTS",
    "DSE_MODEL_VARIANTS", "with_hardware",
    "split_sequence", "sequence_grid", "expand_sequences", "fallback_tp", "plan_runs", "decode_ratio",
    "preserve_frame", "preserve_table", "preserve_summary", "sensitivity_table", "dse_frame",
    "dse_optima", "dse_curve", "dse_sensitivity", "check_out_dir", "reproduce_preserve",
    "reproduce_dse_l2", "Reproduction", "EXPERIMENTS", "markdown_table",
]

#: Total sequence lengths of the paper (tokens, prompt + generated).
PAPER_SEQUENCES = (2048, 4096, 8192, 16384, 32768)
#: Batch sizes of the paper.
PAPER_BATCHES = (1, 4, 16, 64)
#: Share of the sequence that is prompt; the rest is generated.
PROMPT_FRACTION = 2.0 / 3.0
#: The paper's main table.
MAIN_BATCH, MAIN_SEQUENCE = 4, 16384
#: What the paper reports (DESIGN.md, "The paper this starts from").
PAPER = {
    "speedup_e2e_min": 1.09, "speedup_e2e_max": 1.61,
    "l2_optimum_without_prefetch_MB": 8, "l2_optimum_with_prefetch_MB": 104,
    "perf_per_cost_gain": 1.25,
}

SWEEPS_DIR = PROJECT_ROOT / "sweeps"
#: Sweep files of the speedup experiment, in report order.
PRESERVE_SWEEPS = ("preserve_ascend.yaml", "preserve_gpus.yaml")
#: Sweep file of the L2 design-space exploration.
DSE_SWEEP = "dse_l2_ascend.yaml"

#: One-at-a-time sensitivity of the 910B main point: parameter -> values (the spec's value is
#: marked in the table). Ranges: see docs/preserve_reproduction.md.
SENSITIVITY: dict[str, tuple[float, ...]] = {
    "l2_bandwidth_GBps": (2375.0, 4750.0, 9500.0),
    "hbm_bandwidth_GBps": (1200.0, 1420.0, 1600.0, 2000.0),
    "link_bandwidth_GBps": (14.0, 28.0, 56.0),
    "link_latency_us": (1.5, 3.0, 6.0),
    "prefetch_threshold_fraction": (0.25, 0.5, 0.75, 1.0),
    "launch_overhead_us": (0.0, 3.0, 6.0, 10.0),
    "peak_tflops_int8": (353.8, 707.9),
    "activation_l2_hit": (0.0, 0.5, 1.0),
}

#: Cost-model variants of the L2 design-space exploration (dotted overrides of cost_specs/default.yaml).
DSE_COST_VARIANTS: dict[str, dict[str, float]] = {
    "default cost model": {},
    "SRAM 1.0 mm2/MiB": {"sram.macro_mm2_per_MiB.SMIC-7nm": 1.0},
    "SRAM 2.49 mm2/MiB (GPU-style L2 density)": {"sram.macro_mm2_per_MiB.SMIC-7nm": 2.49},
    "host share $0 (no server share)": {"system.host_share_usd": 0.0},
    "host share $8,000": {"system.host_share_usd": 8000.0},
    "mesh links priced like NVSwitch ($5.68 per GB/s)": {"interconnect.fabric_usd_per_GBps.full_mesh": 5.68},
    "GPU-style SRAM and host share $0": {"sram.macro_mm2_per_MiB.SMIC-7nm": 2.49, "system.host_share_usd": 0.0},
}

#: Performance-model variants of the L2 design-space exploration (hardware overrides).
DSE_MODEL_VARIANTS: dict[str, dict[str, float]] = {
    "prefetch threshold 0.5 of L2": {"prefetch_threshold_fraction": 0.5},
    "prefetch threshold 1.0 of L2": {"prefetch_threshold_fraction": 1.0},
    "launch overhead 0 us": {"launch_overhead_us": 0.0},
    "activation L2 hit 1.0 (activations that fit are served by L2)": {"activation_l2_hit": 1.0},
}

#: Model variants of the 910B speedup grid, run in full beside the datasheet run: the per-operator
#: launch overhead (6 us on the 910B, an estimate) is part of every baseline operator and of every
#: collective, so it sets both the share of the step that prefetching can shorten and the collective
#: time it has (see docs/preserve_reproduction.md).
PRESERVE_VARIANTS: dict[str, dict[str, float]] = {
    "launch overhead 0 us": {"launch_overhead_us": 0.0},
}

EXPERIMENTS = ("preserve", "dse-l2")


# ------------------------------------------------------------------------------------------------
# The experiment grid.
# ------------------------------------------------------------------------------------------------


def split_sequence(total: int, prompt_fraction: float = PROMPT_FRACTION) -> tuple[int, int]:
    """Prompt and generated tokens of a total sequence: input = round(2/3 * total), output = the rest.

    >>> split_sequence(16384)
    (10923, 5461)
    """
    if isinstance(total, bool) or int(total) != total or total < 2:
        raise SpecError(f"sequence length {total!r}: must be an integer >= 2")
    if not 0.0 < prompt_fraction < 1.0:
        raise SpecError(f"prompt fraction {prompt_fraction!r}: must be between 0 and 1")
    prompt = int(math.floor(prompt_fraction * total + 0.5))
    prompt = min(max(prompt, 1), int(total) - 1)
    return prompt, int(total) - prompt


def sequence_grid(totals: Iterable[int] = PAPER_SEQUENCES) -> list[dict[str, int]]:
    """``[{"sequence": total, "input_len": ..., "output_len": ...}, ...]`` for each total length."""
    grid = []
    for total in totals:
        prompt, generated = split_sequence(total)
        grid.append({"sequence": int(total), "input_len": prompt, "output_len": generated})
    return grid


def expand_sequences(spec: SweepSpec, totals: Iterable[int] = PAPER_SEQUENCES) -> list[tuple[int, SweepSpec]]:
    """One copy of ``spec`` per total sequence length, with its input and output lengths fixed.

    Raises:
        SpecError: the file sweeps input_len or output_len itself.
    """
    swept = {p.name for p in spec.structural_parameters} & {"input_len", "output_len"}
    if swept:
        raise SpecError(f"{spec.path}: sweep.{sorted(swept)[0]}: the reproduction sets input_len and "
                        f"output_len from the total sequence length; remove them from 'sweep:'")
    return [(g["sequence"], dataclasses.replace(
        spec, fixed={**spec.fixed, "input_len": g["input_len"], "output_len": g["output_len"]}))
        for g in sequence_grid(totals)]


def _parallelism(fixed: Mapping[str, Any], tp: int) -> Parallelism:
    return Parallelism(tp=int(tp), pp=int(fixed.get("pp", 1)), dp=int(fixed.get("dp", 1)),
                       ep=int(fixed.get("ep", 1)))


def fallback_tp(model: str, tp: int, fixed: Mapping[str, Any] | None = None) -> int | None:
    """The largest tensor parallelism below ``tp`` that splits ``model`` (None when there is none)."""
    m = load_model(model)
    for t in range(int(tp) - 1, 0, -1):
        try:
            _parallelism(fixed or {}, t).check(m)
        except InfeasibleConfigError:
            continue
        return t
    return None


@dataclass(frozen=True)
class Run:
    """A sweep to evaluate: the file's spec, or a copy for one model at a fallback tp."""

    spec: SweepSpec
    note: str = ""


def plan_runs(spec: SweepSpec, *, fallback: bool = True) -> tuple[list[Run], list[dict[str, Any]]]:
    """Split ``spec`` into runnable sweeps and report what cannot run.

    Models its fixed tp cannot split are taken out; with ``fallback`` each is run on its own at
    :func:`fallback_tp`. Every other structural combination the model cannot run (a swept tp,
    say) is reported too.

    Returns:
        (runs, skipped): ``skipped`` rows have model, hardware, tp and ``status`` (the reason).
    """
    swept = {p.name for p in spec.structural_parameters}
    tp = int(spec.fixed["tp"])
    runnable, runs, skipped = [], [], []
    for name in spec.models:
        model = load_model(name)
        if "tp" in swept:
            runnable.append(name)
            continue
        try:
            _parallelism(spec.fixed, tp).check(model)
        except InfeasibleConfigError as e:
            alt = fallback_tp(name, tp, spec.fixed) if fallback else None
            status = f"not run at tp={tp}: {e}" + (f"; run at tp={alt} instead" if alt else "")
            skipped += [{"model": model.name, "hardware": load_hardware(h).name, "tp": tp, "status": status}
                        for h in spec.hardware]
            if alt is not None:
                runs.append(Run(dataclasses.replace(spec, models=(name,), fixed={**spec.fixed, "tp": alt}),
                                note=f"tp={alt} (tp={tp} cannot split {model.name})"))
            continue
        runnable.append(name)
    if runnable:
        runs.insert(0, Run(dataclasses.replace(spec, models=tuple(runnable))))
    for run in runs:
        if "tp" not in swept:
            continue
        for values in run.spec.structural_combinations():
            try:
                scenario_for(values)
            except InfeasibleConfigError as e:
                skipped.append({"model": load_model(values["model"]).name,
                                "hardware": load_hardware(values["hardware"]).name,
                                "tp": int(values["tp"]), "status": f"not run: {e}"})
    return runs, skipped


def with_hardware(spec: SweepSpec, overrides: Mapping[str, float]) -> SweepSpec:
    """``spec`` with hardware parameters fixed at single values (added to its sweep)."""
    names = set(overrides)
    kept = tuple(p for p in spec.parameters if p.name not in names)
    return dataclasses.replace(spec, parameters=kept + tuple(
        Parameter(k, values=(float(v),)) for k, v in overrides.items()))


def _frame_of(run: Run) -> pd.DataFrame | None:
    try:
        df = sweep_frame(run.spec)
    except RooflineError:
        return None  # nothing runnable (reported by plan_runs)
    df["note"] = run.note
    return df


# ------------------------------------------------------------------------------------------------
# The ratio of collective time to prefetch time.
# ------------------------------------------------------------------------------------------------


def decode_ratio(segments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Collective-to-prefetch ratio of a decode step from :attr:`Prediction.segments` ``["decode"]``.

    Returns:
        ``collective_to_prefetch_ratio``: mean of the segments' ratios weighted by count x baseline
        time (segments with nothing to prefetch are skipped); ``collective_to_prefetch_ratio_pooled``:
        sum(count x collective) / sum(count x prefetch time); ``limited_by``: the limit that holds
        for the largest share of the baseline step time. NaN / "" without segments.
    """
    w_sum = wr_sum = coll_sum = pre_sum = 0.0
    limits: dict[str, float] = {}
    for s in segments:
        ratio = float(s["collective_to_prefetch_ratio"])
        count = float(s["count"])
        weight = count * float(s["baseline_us"])
        limits[s["limited_by"]] = limits.get(s["limited_by"], 0.0) + weight
        if not math.isfinite(ratio) or ratio <= 0:
            continue
        w_sum += weight
        wr_sum += weight * ratio
        coll_sum += count * float(s["collective_us"])
        pre_sum += count * float(s["collective_us"]) / ratio
    return {
        "collective_to_prefetch_ratio": wr_sum / w_sum if w_sum > 0 else float("nan"),
        "collective_to_prefetch_ratio_pooled": coll_sum / pre_sum if pre_sum > 0 else float("nan"),
        "limited_by": max(limits, key=limits.get) if limits else "",
    }


def _row_ratio(row: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    p = predict(row["model"], row["hardware"], tp=int(row["tp"]), pp=int(row["pp"]), dp=int(row["dp"]),
                ep=int(row["ep"]), batch=int(row["batch"]), input_len=int(row["input_len"]),
                output_len=int(row["output_len"]), dtype=str(row["dtype"]), kv_dtype=str(row["kv_dtype"]),
                prefetch=True, check_memory=False, **{k: float(row[k]) for k in overrides})
    return decode_ratio(p.segments["decode"])


def _add_ratios(df: pd.DataFrame) -> pd.DataFrame:
    overrides = [c for c in df.columns if c in SWEEPABLE]
    extra = pd.DataFrame([_row_ratio(r, overrides) for r in df.to_dict("records")], index=df.index)
    return pd.concat([df, extra], axis=1)


# ------------------------------------------------------------------------------------------------
# Experiment 1: end-to-end speedup.
# ------------------------------------------------------------------------------------------------


def _load(name: str | Path) -> SweepSpec:
    path = Path(name)
    return load_sweep(path if path.exists() or path.is_absolute() else SWEEPS_DIR / path)


def _select_devices(specs: list[SweepSpec], devices: Sequence[str] | None) -> list[SweepSpec]:
    if not devices:
        return specs
    wanted = []
    for d in devices:
        wanted += [x.strip() for x in str(d).split(",") if x.strip()]
    available = {h: load_hardware(h).name for s in specs for h in s.hardware}
    by_name = {v: k for k, v in available.items()} | {k: k for k in available}
    unknown = [d for d in wanted if d not in by_name]
    if unknown:
        raise SpecError(f"--devices: {', '.join(unknown)} not in the reproduction's sweep files; "
                        f"choose from {', '.join(sorted(set(available.values())))}")
    keep = {by_name[d] for d in wanted}
    out = []
    for s in specs:
        hw = tuple(h for h in s.hardware if h in keep)
        if hw:
            out.append(dataclasses.replace(s, hardware=hw))
    return out


def preserve_frame(specs: Sequence[SweepSpec], *, sequences: Iterable[int] = PAPER_SEQUENCES,
                   fallback: bool = True) -> tuple[pd.DataFrame, list[dict[str, Any]]]:
    """Every row of the speedup experiment (prefetch off and on), and what could not run.

    Returns:
        (results, skipped): the sweep rows of every file and sequence length with ``sequence``,
        ``note`` (fallback tp) and ``capacity_GiB`` columns; the combinations that could not run.
    """
    frames, skipped = [], []
    sequences = tuple(sequences)
    for spec in specs:
        runs, bad = plan_runs(spec, fallback=fallback)
        for row in bad:
            for total in sequences:
                skipped.append({**row, "sequence": total})
        for run in runs:
            for total, seq_spec in expand_sequences(run.spec, sequences):
                df = _frame_of(Run(seq_spec, run.note))
                if df is not None:
                    df.insert(5, "sequence", total)
                    frames.append(df)
    if not frames:
        raise InfeasibleConfigError("no configuration of the reproduction can run: "
                                    + "; ".join(sorted({s["status"] for s in skipped}))[:500])
    df = pd.concat(frames, ignore_index=True)
    df["capacity_GiB"] = df["hardware"].map(lambda h: load_hardware(h).memory.hbm_capacity_bytes / 2**30)
    return df, skipped


def _model_label(df: pd.DataFrame, file_tp: Mapping[str, int]) -> pd.Series:
    default = df["hardware"].map(file_tp)
    return np.where(df["tp"] == default, df["model"], df["model"] + " (tp " + df["tp"].astype(str) + ")")


def _status(df: pd.DataFrame) -> pd.Series:
    return np.where(df["fits"], "ok", "does not fit: " + df["memory_GiB"].round(0).astype(int).astype(str)
                    + " of " + df["capacity_GiB"].round(0).astype(int).astype(str) + " GiB")


def preserve_table(results: pd.DataFrame, *, file_tp: Mapping[str, int] | None = None,
                   ratios: bool = True) -> pd.DataFrame:
    """One row per configuration (prefetch on), baseline and with-prefetch times, speedups, ratio.

    Columns: hardware, model, model_label, tp, batch, sequence, input_len, output_len, dtype,
    memory_GiB, capacity_GiB, fits, status, baseline/with-prefetch TTFT, TPOT and e2e (ms),
    speedup_ttft, speedup_tpot, prefetch_speedup (= e2e), decode_bound, note, and with ``ratios``
    collective_to_prefetch_ratio, collective_to_prefetch_ratio_pooled and limited_by
    (see :func:`decode_ratio`).
    """
    on = results[results["prefetch"].astype(bool)].copy()
    if file_tp is None:  # the tp of the rows that ran as the file says (no fallback note)
        plain = on[on["note"] == ""]
        file_tp = plain.groupby("hardware")["tp"].max().astype(int).to_dict()
    on["model_label"] = _model_label(on, file_tp)
    on["status"] = _status(on)
    on["speedup_ttft"] = on["baseline_ttft_ms"] / on["ttft_ms"]
    on["speedup_tpot"] = on["baseline_tpot_ms"] / on["tpot_ms"]
    swept = [c for c in on.columns if c in SWEEPABLE]
    cols = (["hardware", "model", "model_label", "tp", "batch", "sequence", "input_len", "output_len", "dtype"]
            + swept + ["memory_GiB", "capacity_GiB", "fits", "status", "baseline_ttft_ms", "ttft_ms",
                       "baseline_tpot_ms", "tpot_ms", "baseline_e2e_ms", "e2e_ms", "speedup_ttft",
                       "speedup_tpot", "prefetch_speedup", "decode_bound", "note", "pp", "dp", "ep",
                       "kv_dtype"])
    table = on[cols].copy()
    order = {h: i for i, h in enumerate(dict.fromkeys(table["hardware"]))}
    models = {m: i for i, m in enumerate(dict.fromkeys(table["model_label"]))}
    table = table.assign(_h=table["hardware"].map(order), _m=table["model_label"].map(models))
    table = table.sort_values(["_h", "_m", "batch", "sequence"], kind="stable").drop(columns=["_h", "_m"])
    table = table.reset_index(drop=True)
    if ratios:
        table = _add_ratios(table)
    return table.drop(columns=["pp", "dp", "ep", "kv_dtype"])


RATIO_BINS = (0.0, 0.25, 0.5, 0.75, 1.25, 2.0, math.inf)


def _ratio_bins(t: pd.DataFrame) -> list[dict[str, Any]]:
    rows = []
    for lo, hi in zip(RATIO_BINS[:-1], RATIO_BINS[1:]):
        part = t[(t["collective_to_prefetch_ratio"] >= lo) & (t["collective_to_prefetch_ratio"] < hi)]
        if len(part):
            rows.append({"ratio_from": lo, "ratio_to": hi, "configs": len(part),
                         "speedup_mean": float(part["prefetch_speedup"].mean()),
                         "speedup_max": float(part["prefetch_speedup"].max())})
    return rows


def preserve_summary(table: pd.DataFrame, skipped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """Headline numbers per device, over the configurations that fit in HBM."""
    out: dict[str, Any] = {"paper": PAPER, "devices": {}}
    for hw, t in table.groupby("hardware", sort=False):
        ok = t[t["fits"]]
        entry: dict[str, Any] = {"configs": len(t), "fit": len(ok), "dtype": str(t["dtype"].iloc[0]),
                                 "does_not_fit": len(t) - len(ok)}
        if len(ok):
            best = ok.loc[ok["prefetch_speedup"].idxmax()]
            worst = ok.loc[ok["prefetch_speedup"].idxmin()]
            main = ok[(ok["batch"] == MAIN_BATCH) & (ok["sequence"] == MAIN_SEQUENCE)]
            entry.update({
                "speedup_min": float(worst["prefetch_speedup"]),
                "speedup_max": float(best["prefetch_speedup"]),
                "speedup_median": float(ok["prefetch_speedup"].median()),
                "tpot_speedup_max": float(ok["speedup_tpot"].max()),
                "best": {k: _plain(best[k]) for k in ("model_label", "batch", "sequence", "prefetch_speedup",
                                                      "collective_to_prefetch_ratio", "limited_by")
                         if k in best},
                "worst": {k: _plain(worst[k]) for k in ("model_label", "batch", "sequence", "prefetch_speedup",
                                                        "collective_to_prefetch_ratio", "limited_by")
                          if k in worst},
                "main_min": float(main["prefetch_speedup"].min()) if len(main) else None,
                "main_max": float(main["prefetch_speedup"].max()) if len(main) else None,
            })
            if "collective_to_prefetch_ratio" in ok:
                r = ok["collective_to_prefetch_ratio"]
                entry["ratio_range"] = [float(r.min()), float(r.max())]
                entry["ratio_bins"] = _ratio_bins(ok)
        out["devices"][hw] = entry
    out["skipped"] = sorted({(s["hardware"], s["model"], s["status"]) for s in skipped})
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    return v


def sensitivity_table(spec: SweepSpec, parameters: Mapping[str, Sequence[float]] = SENSITIVITY, *,
                      batch: int = MAIN_BATCH, sequence: int = MAIN_SEQUENCE,
                      fallback: bool = True) -> pd.DataFrame:
    """End-to-end speedup of every model at one point when one hardware parameter changes.

    Each parameter is swept alone (the others at the spec's values) with prefetch on, on the
    first device of ``spec``.

    Returns:
        Long table: parameter, value, spec_value (the device spec's value), model_label, tp,
        prefetch_speedup, speedup_tpot, collective_to_prefetch_ratio, fits.
    """
    spec = dataclasses.replace(spec, hardware=spec.hardware[:1])
    hw = load_hardware(spec.hardware[0])
    (_, seq_spec), = expand_sequences(spec, [sequence])
    seq_spec = dataclasses.replace(seq_spec, fixed={**seq_spec.fixed, "batch": int(batch)},
                                   parameters=())
    base = _spec_values(hw)
    frames = []
    runs, _ = plan_runs(seq_spec, fallback=fallback)
    for name, values in parameters.items():
        if name not in SWEEPABLE:
            raise SpecError(f"sensitivity parameter {name!r}; allowed: {', '.join(sorted(SWEEPABLE))}")
        params = (Parameter(name, values=tuple(float(v) for v in values)), Parameter("prefetch", values=(True,)))
        for run in runs:
            df = _frame_of(Run(dataclasses.replace(run.spec, parameters=params), run.note))
            if df is None:
                continue
            df["parameter"], df["value"], df["spec_value"] = name, df[name].astype(float), base.get(name)
            frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["capacity_GiB"] = hw.memory.hbm_capacity_bytes / 2**30
    df["model_label"] = _model_label(df, {hw.name: int(spec.fixed["tp"])})
    df["speedup_tpot"] = df["baseline_tpot_ms"] / df["tpot_ms"]
    ratios = pd.DataFrame([_row_ratio(r, [r["parameter"]]) for r in df.to_dict("records")], index=df.index)
    df = pd.concat([df, ratios], axis=1)
    return df[["parameter", "value", "spec_value", "model_label", "tp", "prefetch_speedup", "speedup_tpot",
               "collective_to_prefetch_ratio", "limited_by", "fits"]]


def _spec_values(hw: Any) -> dict[str, float]:
    """The device spec's value of each sensitivity parameter, in the parameter's unit."""
    c, m, link = hw.compute, hw.memory, hw.intra_node
    values = {
        "l2_bandwidth_GBps": m.l2_bandwidth_Bps / 1e9, "hbm_bandwidth_GBps": m.hbm_bandwidth_Bps / 1e9,
        "l2_capacity_MiB": m.l2_capacity_bytes / 2**20, "hbm_efficiency": m.hbm_efficiency,
        "link_bandwidth_GBps": link.link_bandwidth_Bps / 1e9, "link_latency_us": link.latency_s * 1e6,
        "link_efficiency": link.efficiency, "links_per_device": link.links_per_device,
        "prefetch_threshold_fraction": hw.prefetch.threshold_fraction,
        "launch_overhead_us": c.launch_overhead_s * 1e6, "gemm_efficiency": c.gemm_efficiency,
        "activation_l2_hit": m.activation_l2_hit,
    }
    values |= {f"peak_tflops_{d}": v / 1e12 for d, v in c.peak_flops.items()}
    return {k: round(float(v), 6) for k, v in values.items()}


def sensitivity_pivot(sens: pd.DataFrame) -> pd.DataFrame:
    """Wide form of :func:`sensitivity_table`: one row per (parameter, value), one column per model
    (e2e speedup), plus the mean and the llama-3-70b ratio when present."""
    ok = sens.copy()
    ok.loc[~ok["fits"], "prefetch_speedup"] = np.nan
    wide = ok.pivot_table(index=["parameter", "value"], columns="model_label", values="prefetch_speedup",
                          sort=False)
    wide = wide.reindex(columns=list(dict.fromkeys(ok["model_label"])))
    wide["mean"] = wide.mean(axis=1)
    ratio = ok.pivot_table(index=["parameter", "value"], columns="model_label",
                           values="collective_to_prefetch_ratio", sort=False)
    wide["ratio (mean)"] = ratio.mean(axis=1)
    spec_value = ok.groupby(["parameter", "value"], sort=False)["spec_value"].first()
    wide.insert(0, "spec", np.isclose(spec_value.reindex(wide.index).to_numpy(dtype=float),
                                      wide.index.get_level_values("value").to_numpy(dtype=float)))
    order = {p: i for i, p in enumerate(dict.fromkeys(sens["parameter"]))}
    wide = wide.reset_index()
    wide = wide.assign(_p=wide["parameter"].map(order)).sort_values(["_p", "value"], kind="stable")
    return wide.drop(columns="_p").reset_index(drop=True)


# ------------------------------------------------------------------------------------------------
# Experiment 2: performance per cost against L2 size.
# ------------------------------------------------------------------------------------------------


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


# ------------------------------------------------------------------------------------------------
# Output.
# ------------------------------------------------------------------------------------------------


def check_out_dir(out: str | Path, force: bool) -> Path:
    """Refuse an existing, non-empty output folder unless ``force`` (files are then overwritten;
    nothing is deleted)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path}: exists and is not a folder")
    if path.exists() and any(path.iterdir()) and not force:
        raise SpecError(f"{path}: output folder exists and is not empty; pass --force to overwrite it")
    path.mkdir(parents=True, exist_ok=True)
    return path


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


@dataclass
class Reproduction:
    """What a reproduction wrote and its headline numbers."""

    experiment: str
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _write(out: Path, name: str, text: str, files: list[Path]) -> None:
    path = out / name
    path.write_text(text)
    files.append(path)


def _csv(out: Path, name: str, df: pd.DataFrame, files: list[Path]) -> None:
    path = out / name
    df.to_csv(path, index=False)
    files.append(path)


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(type(v).__name__)


def _figures(out: Path, figures: list[tuple[Any, str]], rep: Reproduction) -> None:
    import warnings

    from roofline.plots import FigureWriter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FigureWriter(width=1200, height=720) as writer:
            for fig, stem in figures:
                rep.files += writer.write(fig, out / "plots" / stem)
    rep.warnings += sorted({str(w.message) for w in caught})


def reproduce_preserve(out: str | Path, *, force: bool = False, devices: Sequence[str] | None = None,
                       sequences: Iterable[int] = PAPER_SEQUENCES, plots: bool = True,
                       sweep_files: Sequence[str | Path] = PRESERVE_SWEEPS, sensitivity: bool = True,
                       fallback: bool = True,
                       progress: Callable[[str], None] | None = None) -> Reproduction:
    """Run the speedup experiment and write its tables (CSV, markdown) and plots (HTML, PNG).

    Files in ``out``: ``results.csv`` (every sweep row, prefetch off and on), ``speedups.csv`` (one
    row per configuration), ``sensitivity.csv`` (910B main point), ``report.md``, ``summary.json``
    and ``plots/`` (e2e speedup per model/batch/sequence and speedup against the ratio, per device).

    Raises:
        SpecError: ``out`` exists and is not empty without ``force``; unknown device.
    """
    say = progress or (lambda _m: None)
    specs = _select_devices([_load(f) for f in sweep_files], devices)
    if not specs:
        raise SpecError("no device selected")
    out_dir = check_out_dir(out, force)
    rep = Reproduction("preserve", out_dir)
    file_tp = {load_hardware(h).name: int(s.fixed["tp"]) for s in specs for h in s.hardware}
    say(f"sweeping {', '.join(file_tp)}")
    results, skipped = preserve_frame(specs, sequences=sequences, fallback=fallback)
    say(f"{len(results)} sweep rows; reading the decode segment tables")
    table = preserve_table(results, file_tp=file_tp)
    summary = preserve_summary(table, skipped)
    summary["sweep_files"] = [s.path for s in specs]
    summary["sequences"] = sequence_grid(sequences)
    summary["ratio_definition"] = ("collective_to_prefetch_ratio: mean over the decode segments (middle "
                                   "decode step) of collective time / time to read the segment's weights "
                                   "and KV cache from HBM, weighted by count x baseline segment time")
    _csv(out_dir, "results.csv", results, rep.files)
    _csv(out_dir, "speedups.csv", table, rep.files)
    rep.tables["speedups"] = table
    sens_md = ""
    ascend = [s for s in specs if any(load_hardware(h).name == "ascend-910b" for h in s.hardware)]
    if sensitivity and ascend:
        say("sensitivity of the 910B main point")
        spec = dataclasses.replace(ascend[0], hardware=tuple(h for h in ascend[0].hardware
                                                              if load_hardware(h).name == "ascend-910b"))
        sens = sensitivity_table(spec, fallback=fallback)
        _csv(out_dir, "sensitivity.csv", sens, rep.files)
        wide = sensitivity_pivot(sens)
        rep.tables["sensitivity"] = wide
        summary["sensitivity"] = {
            p: {"values": g["value"].tolist(), "mean_speedup": g["mean"].round(4).tolist()}
            for p, g in wide.groupby("parameter", sort=False)}
        sens_md = ("\n## Sensitivity (ascend-910b, batch 4, 16K; e2e speedup, one parameter at a time)\n\n"
                   + markdown_table(wide) + "\n")
        summary["variants"] = {}
        for name, overrides in PRESERVE_VARIANTS.items():
            say(f"910B grid with {name}")
            res_v, skipped_v = preserve_frame([with_hardware(spec, overrides)], sequences=sequences,
                                              fallback=fallback)
            tv = preserve_table(res_v, file_tp=file_tp)
            sv = preserve_summary(tv, skipped_v)["devices"]["ascend-910b"]
            summary["variants"][name] = sv
            slug = _slug(name)
            _csv(out_dir, f"variant_{slug}.csv", tv, rep.files)
            rep.tables[f"variant_{slug}"] = tv
            sens_md += (f"\n## Variant: ascend-910b grid with {name}\n\n"
                        f"e2e speedup {sv['speedup_min']:.2f}x-{sv['speedup_max']:.2f}x; main point "
                        f"{sv['main_min']:.2f}x-{sv['main_max']:.2f}x.\n\n" + _main_markdown(tv) + "\n\n"
                        + markdown_table(pd.DataFrame(sv["ratio_bins"])) + "\n")
    _write(out_dir, "report.md", _preserve_report(table, summary, skipped) + sens_md, rep.files)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    rep.files.append(out_dir / "summary.json")
    rep.summary = summary
    if plots:
        say("plots")
        variants = {name: rep.tables[f"variant_{_slug(name)}"] for name in summary.get("variants", {})}
        figs = _preserve_figures(table, variants)
        _figures(out_dir, figs, rep)
    return rep


def _slug(name: str) -> str:
    return "_".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())


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


def reproduce_dse_l2(out: str | Path, *, force: bool = False, plots: bool = True,
                     sweep_file: str | Path = DSE_SWEEP, sensitivity: bool = True, fallback: bool = True,
                     progress: Callable[[str], None] | None = None) -> Reproduction:
    """Run the L2 design-space exploration and write its tables and plots.

    Files in ``out``: ``results.csv`` (every sweep row), ``optima.csv`` (per model), ``curve.csv``
    (all models, normalised), ``sensitivity.csv``, ``report.md``, ``summary.json`` and ``plots/``
    (perf/cost against L2 per model and for all models, optimum marked).
    """
    say = progress or (lambda _m: None)
    spec = _load(sweep_file)
    out_dir = check_out_dir(out, force)
    rep = Reproduction("dse-l2", out_dir)
    say(f"sweeping {spec.path}")
    df, skipped = dse_frame(spec, fallback=fallback)
    optima = dse_optima(df)
    curve = dse_curve(df)
    overall = _curve_optimum(curve)
    _csv(out_dir, "results.csv", df, rep.files)
    _csv(out_dir, "optima.csv", optima, rep.files)
    _csv(out_dir, "curve.csv", curve, rep.files)
    rep.tables |= {"optima": optima, "curve": curve}
    summary: dict[str, Any] = {
        "paper": PAPER, "sweep_file": spec.path, "all_models": overall,
        "per_model": optima.to_dict("records"),
        "skipped": sorted({(s["hardware"], s["model"], s["status"]) for s in skipped}),
        "normalisation": "geometric mean over models of tokens/s per kUSD divided by the model's value at "
                         "192 MiB without prefetch",
    }
    sens = None
    if sensitivity:
        say("cost and model variants")
        sens = dse_sensitivity(spec, fallback=fallback)
        _csv(out_dir, "sensitivity.csv", sens, rep.files)
        rep.tables["sensitivity"] = sens
        summary["sensitivity"] = sens.to_dict("records")
    _write(out_dir, "report.md", _dse_report(optima, curve, overall, sens, skipped), rep.files)
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    rep.files.append(out_dir / "summary.json")
    rep.summary = summary
    if plots:
        say("plots")
        _figures(out_dir, _dse_figures(df, curve), rep)
    return rep


def _dse_report(optima: pd.DataFrame, curve: pd.DataFrame, overall: Mapping[str, float],
                sens: pd.DataFrame | None, skipped: Sequence[Mapping[str, Any]]) -> str:
    parts = ["# PRESERVE design-space exploration: performance per cost against L2 size\n\n",
             "Performance per cost = throughput (tokens/s) per 1000 USD of system cost (cost_specs/default.yaml). "
             "8x Ascend 910B, int8, batch 4, 16K sequence (10923 prompt + 5461 generated).\n\n",
             f"All models (geometric mean, normalised to 192 MiB without prefetch): optimum "
             f"{overall['l2_best_without_MiB']:g} MiB without prefetch ({overall['best_without']:.3f}), "
             f"{overall['l2_best_with_MiB']:g} MiB with prefetch ({overall['best_with']:.3f}); "
             f"gain {overall['gain']:.2f}x.\n\n## Per model\n\n",
             markdown_table(optima.rename(columns={"model_label": "model"})), "\n"]
    pick = curve[curve["l2_capacity_MiB"].isin([0, 8, 16, 32, 64, 96, 104, 128, 192, 256])]
    parts += ["\n## All models against L2 size (normalised perf/cost)\n\n", markdown_table(pick), "\n"]
    if sens is not None:
        parts += ["\n## Sensitivity\n\n", markdown_table(sens), "\n"]
    notes = sorted({(s["model"], s["status"]) for s in skipped})
    if notes:
        parts.append("\n## Not run as specified\n\n" + "\n".join(f"- {m}: {st}" for m, st in notes) + "\n")
    return "".join(parts)


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
