"""Experiment 1: end-to-end speedup. Every sweep row (prefetch off and on), one row per
configuration with its speedups and ratio, and the headline numbers per device.

Configurations that do not fit in HBM stay in every table with ``fits = False`` and are left out
of the speedup statistics, never dropped silently.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.hardware import load_hardware
from roofline.reproduce._grid import Run, _frame_of, _model_label, expand_sequences, plan_runs
from roofline.reproduce._paper import MAIN_BATCH, MAIN_SEQUENCE, PAPER, PAPER_SEQUENCES
from roofline.reproduce._ratio import _add_ratios
from roofline.sweepfile import SweepSpec
from roofline.timing import SWEEPABLE

__all__ = ["RATIO_BINS", "preserve_frame", "preserve_summary", "preserve_table"]


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
