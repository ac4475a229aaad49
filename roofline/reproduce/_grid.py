"""The experiment grid: sequence lengths split into prompt and generated tokens, one sweep per
length, and the runs a sweep file makes.

Models that tensor parallelism 8 cannot split (qwen2-7b: 28 heads; phi-3-medium: 10 KV heads)
are reported as not runnable at tp 8 and, by default, run at the largest tp below it that splits
them (:func:`fallback_tp`); their rows carry the tp they ran at and a note (and a model label
such as ``"qwen2-7b (tp 4)"``).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from roofline.exceptions import InfeasibleConfigError, RooflineError, SpecError
from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.reproduce._paper import PAPER_SEQUENCES, PROMPT_FRACTION, SWEEPS_DIR
from roofline.sweep import scenario_for, sweep_frame
from roofline.sweepfile import Parameter, SweepSpec, load_sweep
from roofline.workload import Parallelism

__all__ = ["Run", "expand_sequences", "fallback_tp", "plan_runs", "sequence_grid", "split_sequence",
           "with_hardware"]


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


def _load(name: str | Path) -> SweepSpec:
    path = Path(name)
    return load_sweep(path if path.exists() or path.is_absolute() else SWEEPS_DIR / path)


def _model_label(df: pd.DataFrame, file_tp: Mapping[str, int]) -> pd.Series:
    default = df["hardware"].map(file_tp)
    return np.where(df["tp"] == default, df["model"], df["model"] + " (tp " + df["tp"].astype(str) + ")")
