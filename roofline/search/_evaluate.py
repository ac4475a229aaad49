"""Evaluation of a batch of trials through the vectorized engine.

The trials of a batch are grouped by their structural combination (model, device, workload,
parallelism) and each group is evaluated at once by the vectorized engine
(:func:`roofline.sweep.evaluate_rows`). Constraints go through Optuna's constraint mechanism (the
values a ``constraints_func`` would store; <= 0 is feasible): the samplers that use constraints
(TPE, NSGA-II) steer away from infeasible configurations, Optuna's ``best_trial`` /
``best_trials`` skip them, and no infeasible trial is ever ranked. Each trial also keeps its
metrics (user attribute ``metrics``) and its named constraint values (user attribute
``constraint``), so a study in optuna-dashboard shows them.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import CategoricalDistribution, IntDistribution

from roofline._json import json_value
from roofline.exceptions import InfeasibleConfigError, SpecError
from roofline.hardware import load_hardware
from roofline.metrics import CONSTRAINTS
from roofline.search._options import Objectives, SearchSpace
from roofline.sweep import evaluate_rows, scenario_for
from roofline.sweepfile import HARDWARE_PARAMETERS, STRUCTURAL, SweepSpec

__all__ = ["TrialOutcome", "constraint_names", "evaluate_params"]


#: Configuration columns of ``evaluate_rows`` (everything else it returns is a metric).
# the precisions stay with the metrics: the trial records what it ran with (the model's default dtype and KV
# dtype, a bf16 LM head under quantized weights), as a sweep's results do, not None or () for the default
_CONFIG_COLUMNS = (set(STRUCTURAL) | set(HARDWARE_PARAMETERS)) - {"dtype", "kv_dtype", "op_dtypes"}


@dataclass
class TrialOutcome:
    """What one trial's configuration gives: objective values, constraints and metrics."""

    values: list[float]  # objective values; the worst infinity when undefined
    constraints: dict[str, float]  # <= 0 is satisfied
    metrics: dict[str, Any]  # JSON-safe metrics of the engine (None for NaN)
    feasible: bool


#: The numeric constraints of a sweep file (memory_fit is graded on its own).
_LIMITS = {name: c for name, c in CONSTRAINTS.items() if name != "memory_fit"}


def constraint_names(spec: SweepSpec) -> tuple[str, ...]:
    """Names of the constraint values every trial gets (``evaluable`` first)."""
    names = ["evaluable"]
    if spec.constraints.get("memory_fit", True):
        names.append("memory_fit")
    names += [k for k in _LIMITS if k in spec.constraints]
    return tuple(names)


def _graded(ok: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Constraint values: relative violation, snapped so that the sign agrees with ``ok``."""
    v = np.where(np.isnan(violation), 1.0, violation)
    return np.where(ok, np.minimum(v, 0.0), np.maximum(v, 1e-9))


def _constraint_columns(spec: SweepSpec, combo: Mapping[str, Any], cols: Mapping[str, Any],
                        hw: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    n = len(cols["tpot_ms"])
    out["evaluable"] = np.zeros(n)
    if spec.constraints.get("memory_fit", True):
        if "hbm_capacity_GiB" in hw:
            capacity = np.asarray(hw["hbm_capacity_GiB"], dtype=float)
        else:
            capacity = load_hardware(combo["hardware"]).memory.hbm_capacity_bytes / 2**30
        out["memory_fit"] = _graded(np.asarray(cols["fits"], bool), np.asarray(cols["memory_GiB"]) / capacity - 1)
    for key, c in _LIMITS.items():
        if key in spec.constraints:
            limit, value = float(spec.constraints[key]), np.asarray(cols[c.metric], dtype=float)
            ok = value <= limit if c.upper else value >= limit
            out[key] = _graded(ok, value / limit - 1 if c.upper else 1 - value / limit)
    return out


def evaluate_params(spec: SweepSpec, space: SearchSpace, params: Sequence[Mapping[str, Any]],
                    objective: Objectives) -> list[TrialOutcome]:
    """Evaluate trials: grouped by structural combination, each group in one vectorized call.

    Args:
        spec: the sweep file.
        space: its search space.
        params: one mapping of parameter values per trial (``Trial.params``).
        objective: the metrics the study optimizes.

    Returns:
        One :class:`TrialOutcome` per trial, in order. A structurally impossible combination
        (say tp that does not divide the heads) or an undefined objective (NaN) gives an
        infeasible outcome (constraint ``evaluable`` = 1) with the worst objective values.
    """
    names = constraint_names(spec)
    outcomes: list[TrialOutcome | None] = [None] * len(params)
    groups: dict[tuple[Any, ...], list[int]] = {}
    configs = [space.config(p) for p in params]
    for i, c in enumerate(configs):
        groups.setdefault(tuple(c.get(k) for k in STRUCTURAL), []).append(i)
    for key, rows in groups.items():
        combo = dict(zip(STRUCTURAL, key))
        try:
            scenario_for(combo)
        except InfeasibleConfigError as e:
            for i in rows:
                constraints = dict.fromkeys(names, 0.0)
                constraints["evaluable"] = 1.0
                outcomes[i] = TrialOutcome(objective.worst(), constraints, {"error": str(e), "feasible": False},
                                           False)
            continue
        hw = {}
        for name in space.hardware:
            values = [configs[i][name] for i in rows]
            hw[name] = np.asarray(values, dtype=bool if name == "prefetch" else float)
        if not hw:  # nothing hardware-wise varies: evaluate the base device once per trial
            hw = {"prefetch": np.full(len(rows), spec.prefetch.enabled)}
        cols = evaluate_rows(spec, combo, hw)
        cons = _constraint_columns(spec, combo, cols, hw)
        values = np.column_stack([np.asarray(cols[m], dtype=float) for m in objective.metrics])
        undefined = ~np.isfinite(values).all(axis=1)
        cons["evaluable"] = undefined.astype(float)
        feasible = np.asarray(cols["feasible"], dtype=bool) & ~undefined
        metric_cols = [c for c in cols if c not in _CONFIG_COLUMNS]
        for j, i in enumerate(rows):
            metrics = {c: json_value(cols[c][j]) for c in metric_cols}
            metrics["feasible"] = bool(feasible[j])
            vals = objective.worst() if undefined[j] else [float(v) for v in values[j]]
            outcomes[i] = TrialOutcome(vals, {k: float(cons[k][j]) for k in names}, metrics, bool(feasible[j]))
    return [o for o in outcomes if o is not None]


#: Structural combinations :func:`_check_some_combination_runs` tries at most (it stops at the first that runs).
_MAX_PREFLIGHT_COMBINATIONS = 2000


def _structural_axes(space: SearchSpace) -> dict[str, list[Any]] | None:
    """The values each structural parameter may take in ``space`` (None: a float range)."""
    axes: dict[str, list[Any]] = {}
    for k in STRUCTURAL:
        d = space.distributions.get(k)
        if d is None:
            axes[k] = [space.fixed.get(k)]
        elif isinstance(d, CategoricalDistribution):
            axes[k] = list(d.choices)
        elif isinstance(d, IntDistribution):
            axes[k] = list(range(d.low, d.high + 1, d.step))
        else:
            return None
    return axes


def _check_some_combination_runs(spec: SweepSpec, space: SearchSpace) -> None:
    """Raise InfeasibleConfigError, naming the file and the reasons, when no structural combination
    of the search can run (``ep: 2`` or ``op_dtypes: {experts: fp8}`` on a dense model): the study
    ran every trial as infeasible and ended with a note and exit code 0, as a grid sweep does not."""
    axes = _structural_axes(space)
    if axes is None or math.prod(len(v) for v in axes.values()) > _MAX_PREFLIGHT_COMBINATIONS:
        return
    reasons: dict[str, None] = {}
    for combo in itertools.product(*axes.values()):
        try:
            scenario_for(dict(zip(axes, combo)))
            return
        except InfeasibleConfigError as e:
            reasons[str(e)] = None
    raise InfeasibleConfigError(f"{spec.path}: no feasible combination to search ({'; '.join(list(reasons)[:3])})")


def _preflight(spec: SweepSpec, space: SearchSpace, objective: Objectives) -> None:
    """Fail early on names the engine cannot load, on a search no combination of which can run and
    on an objective that is undefined."""
    choices = {k: (list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low])
               for k, d in space.distributions.items() if k in STRUCTURAL}
    base = {k: space.fixed.get(k, choices.get(k, [None])[0]) for k in STRUCTURAL}
    for name, values in choices.items():
        for v in values:
            with contextlib.suppress(InfeasibleConfigError):
                scenario_for({**base, name: v})
    _check_some_combination_runs(spec, space)
    for hw_name in choices.get("hardware", [base["hardware"]]):
        params = {k: (d.choices[0] if isinstance(d, CategoricalDistribution) else (d.low + d.high) / 2)
                  for k, d in space.distributions.items() if k not in STRUCTURAL}
        params.update({k: base[k] for k in choices if k != "hardware"})
        params["hardware"] = hw_name
        outcome = evaluate_params(spec, space, [params], objective)[0]
        if outcome.constraints["evaluable"] > 0 and "error" not in outcome.metrics:
            undefined = [m for m in objective.metrics if outcome.metrics.get(m) is None]
            raise SpecError(f"{spec.path}: objective {', '.join(undefined)} is undefined (NaN) on {hw_name}; "
                            f"cost metrics need the device's die: block (see docs/cost_model.md)")
