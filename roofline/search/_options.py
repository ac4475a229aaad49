"""Options, search space and objectives of a search.

Options come from the sweep file's ``search:`` block (:data:`SEARCH_KEYS`), overridden from the
command line (:func:`search_options`).

How a sweep-file parameter becomes an Optuna distribution (:func:`search_space`):

- ``values: [...]`` (or a plain list): categorical (numbers, names, booleans; structural
  parameters such as ``model`` or ``tp`` too). A single value is fixed, not searched.
- ``low``/``high``: continuous (an integer range for integer parameters such as ``tp``),
  on a log scale with ``log: true``; with ``step`` a discrete range of that step (``log`` is
  then ignored, as in a grid sweep). ``num`` only sets a grid's resolution: a search explores
  the whole range.
- ``model`` and ``hardware`` given as lists at the top level are categorical as well.

The objectives are the file's ``objective`` (single) or its ``pareto`` metrics
(``multi_objective: true``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from roofline._specfile import Block
from roofline.exceptions import SpecError
from roofline.registry import SCENARIO
from roofline.sweepfile import (
    BOOLEAN_PARAMETERS,
    HARDWARE_PARAMETERS,
    STRUCTURAL,
    SweepSpec,
)

__all__ = ["SAMPLERS", "SEARCH_KEYS", "Objectives", "SearchOptions", "SearchSpace", "objectives",
           "search_options", "search_space"]


#: Sampler names accepted by ``--sampler`` and ``search: {sampler: ...}``.
SAMPLERS = ("tpe", "random", "cmaes", "nsgaii", "qmc")
#: Keys of the sweep file's ``search:`` block.
SEARCH_KEYS = {
    "trials": "number of complete trials the study should have (default 200)",
    "sampler": f"one of {', '.join(SAMPLERS)} (default tpe; nsgaii with multi_objective)",
    "seed": "sampler seed; worker i uses seed + i (default: none, not reproducible)",
    "batch_size": "trials asked and evaluated together (default 16)",
    "multi_objective": "optimize the pareto: metrics instead of the objective (default false)",
    "population_size": "NSGA-II population (default 50)",
    "n_startup_trials": "random trials before TPE / CMA-ES model their history (default 10)",
    "heartbeat_interval": "seconds between a worker's heartbeats (default 5)",
    "grace_period": "seconds without heartbeat before a running trial is marked FAIL (default 4x the interval)",
}


@dataclass(frozen=True)
class SearchOptions:
    """How a search runs (the sweep file's ``search:`` block, overridden from the command line)."""

    trials: int = 200
    sampler: str | None = None  # None: tpe, or nsgaii for multi-objective
    seed: int | None = None
    batch_size: int = 16
    multi_objective: bool = False
    population_size: int = 50
    n_startup_trials: int = 10
    heartbeat_interval: int = 5
    grace_period: int | None = None

    @property
    def sampler_name(self) -> str:
        return self.sampler or ("nsgaii" if self.multi_objective else "tpe")

    @property
    def grace_seconds(self) -> int:
        return self.grace_period if self.grace_period is not None else 4 * self.heartbeat_interval


def search_options(spec: SweepSpec, **overrides: Any) -> SearchOptions:
    """Options of ``spec``'s ``search:`` block with ``overrides`` (None = not given) on top.

    Raises:
        SpecError: an unknown key, a value of the wrong type, an unknown sampler.
    """
    b = Block(spec.search, spec.path, "search")
    b.check_keys([], SEARCH_KEYS)
    values: dict[str, Any] = {}
    for key in ("trials", "batch_size", "population_size", "n_startup_trials", "heartbeat_interval"):
        if b.has(key):
            values[key] = b.integer(key, minimum=0 if key == "n_startup_trials" else 1)
    if b.has("grace_period"):
        values["grace_period"] = b.integer("grace_period")
    if b.has("seed"):
        values["seed"] = b.integer("seed", minimum=0)
    if b.has("multi_objective"):
        values["multi_objective"] = b.boolean("multi_objective")
    if b.has("sampler"):
        values["sampler"] = b.string("sampler")
    values.update({k: v for k, v in overrides.items() if v is not None})
    options = SearchOptions(**values)
    where = "--sampler" if overrides.get("sampler") is not None else f"{spec.path}: search.sampler"
    if options.sampler is not None and options.sampler not in SAMPLERS:
        raise SpecError(f"{where}: unknown sampler {options.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if options.multi_objective and options.sampler_name == "cmaes":
        raise SpecError(f"{where}: cmaes is single-objective; use nsgaii, tpe, random or qmc with "
                        f"multi_objective: true")
    for key in ("trials", "batch_size", "population_size", "heartbeat_interval"):
        if getattr(options, key) < 1:
            raise SpecError(f"{key} must be >= 1, got {getattr(options, key)}")
    if options.grace_seconds <= options.heartbeat_interval:
        raise SpecError(f"{spec.path}: search.grace_period must exceed heartbeat_interval "
                        f"({options.heartbeat_interval} s), got {options.grace_seconds}")
    return options


@dataclass(frozen=True)
class SearchSpace:
    """The Optuna distributions of a sweep file and the values it keeps fixed."""

    distributions: dict[str, BaseDistribution]
    fixed: dict[str, Any]  # every structural value and the single-valued hardware parameters
    hardware: tuple[str, ...]  # hardware parameters set per trial (searched or fixed)

    @property
    def structural(self) -> tuple[str, ...]:
        return tuple(n for n in STRUCTURAL if n in self.distributions or n in self.fixed)

    def config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full configuration of one trial: fixed values updated with its parameters."""
        return {**self.fixed, **params}

    def to_json(self) -> dict[str, Any]:
        return {"distributions": {k: optuna.distributions.distribution_to_json(d)
                                  for k, d in sorted(self.distributions.items())},
                "fixed": {k: v for k, v in sorted(self.fixed.items())}}


def _distribution(spec: SweepSpec, p: Any) -> BaseDistribution | Any:
    """An Optuna distribution for a sweep parameter, or its value when it has only one."""
    where = f"{spec.path}: sweep.{p.name}"
    if p.values is not None:
        values = tuple(dict.fromkeys(p.values))
        for v in values:
            if not (v is None or isinstance(v, (bool, int, float, str))):
                raise SpecError(f"{where}: values must be numbers, names or booleans, got {v!r}")
        if p.name in BOOLEAN_PARAMETERS and not all(isinstance(v, bool) for v in values):
            raise SpecError(f"{where}: values must be true or false, got {list(values)}")
        if len(values) == 1:
            return values[0]
        return CategoricalDistribution(values)
    if p.name in SCENARIO and SCENARIO[p.name].categorical:  # names, data types, switches, choices
        raise SpecError(f"{where}: give a list of values (a range makes no sense here)")
    low, high = float(p.low), float(p.high)
    if low == high:
        return int(low) if p.integer else low
    if p.integer:
        if low != int(low) or high != int(high) or (p.step is not None and p.step != int(p.step)):
            raise SpecError(f"{where}: {p.name} is an integer; low, high and step must be integers")
        step = int(p.step) if p.step is not None else 1
        if p.log and p.step is None and low < 1:
            raise SpecError(f"{where}: an integer log range needs low >= 1")
        return IntDistribution(int(low), int(high), step=step, log=p.log and p.step is None)
    if p.step is not None:
        span = (high - low) / p.step
        high = low + math.floor(span + 1e-9) * p.step  # the last grid point, as the grid sweep has it
        return FloatDistribution(low, high, step=p.step)
    return FloatDistribution(low, high, log=p.log)


def search_space(spec: SweepSpec) -> SearchSpace:
    """The search space of a sweep file (see the module docstring for the mapping).

    Raises:
        SpecError: a parameter that cannot be searched (a range for ``prefetch`` or ``model``,
            non-integer bounds of an integer parameter), or nothing to search.
    """
    dists: dict[str, BaseDistribution] = {}
    fixed: dict[str, Any] = dict(spec.fixed)
    for key, names in (("model", spec.models), ("hardware", spec.hardware)):
        names = tuple(dict.fromkeys(names))
        if len(names) == 1:
            fixed[key] = names[0]
        else:
            dists[key] = CategoricalDistribution(names)
    hardware = []
    for p in spec.parameters:
        d = _distribution(spec, p)
        if isinstance(d, BaseDistribution):
            dists[p.name] = d
            fixed.pop(p.name, None)
        else:
            dists.pop(p.name, None)
            fixed[p.name] = d
        if p.name in HARDWARE_PARAMETERS:
            hardware.append(p.name)
    if not dists:
        raise SpecError(f"{spec.path}: nothing to search: give the sweep: parameters a range or several values")
    return SearchSpace(dists, fixed, tuple(hardware))


@dataclass(frozen=True)
class Objectives:
    """What the study optimizes: metric names and Optuna directions."""

    metrics: tuple[str, ...]
    directions: tuple[str, ...]

    @property
    def multi(self) -> bool:
        return len(self.metrics) > 1

    def worst(self) -> list[float]:
        return [-math.inf if d == "maximize" else math.inf for d in self.directions]


def objectives(spec: SweepSpec, options: SearchOptions) -> Objectives:
    """The file's ``objective`` (single) or its ``pareto`` metrics (``multi_objective: true``)."""
    pairs = spec.pareto if options.multi_objective else (spec.objective,)
    return Objectives(tuple(m for _, m in pairs), tuple(d for d, _ in pairs))
