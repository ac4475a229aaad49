"""One-at-a-time sensitivity of the speedup experiment's main point: each hardware parameter of
:data:`SENSITIVITY` swept alone, the others at the device spec's values, prefetch on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from roofline.exceptions import SpecError
from roofline.hardware import load_hardware
from roofline.registry import spec_values
from roofline.reproduce._grid import Run, _frame_of, _model_label, expand_sequences, plan_runs
from roofline.reproduce._paper import MAIN_BATCH, MAIN_SEQUENCE, SENSITIVITY
from roofline.reproduce._ratio import _row_ratio
from roofline.sweepfile import Parameter, SweepSpec
from roofline.timing import SWEEPABLE

__all__ = ["sensitivity_pivot", "sensitivity_table"]


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
    """The device spec's value of each parameter, in the parameter's unit (prefetch settings at
    their defaults)."""
    return {k: round(float(v), 6) for k, v in spec_values(hw).items()}


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
