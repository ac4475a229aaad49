"""Optuna search over a sweep file's space: the hardware configurations with the best performance
per cost (or any objective and constraints the file names), on one machine or several.

The search space, objective, constraints and Pareto metrics come from the sweep-file format of
``roofline.sweepfile``; options come from its ``search:`` block and can be overridden from the
command line::

    search: {trials: 200, sampler: tpe, seed: 0, batch_size: 16, multi_objective: false}

How a sweep-file parameter becomes an Optuna distribution:

- ``values: [...]`` (or a plain list): categorical (numbers, names, booleans; structural
  parameters such as ``model`` or ``tp`` too). A single value is fixed, not searched.
- ``low``/``high``: continuous (an integer range for integer parameters such as ``tp``),
  on a log scale with ``log: true``; with ``step`` a discrete range of that step (``log`` is
  then ignored, as in a grid sweep). ``num`` only sets a grid's resolution: a search explores
  the whole range.
- ``model`` and ``hardware`` given as lists at the top level are categorical as well.

Trials are asked in batches (``batch_size``), grouped by their structural combination (model,
device, workload, parallelism) and each group is evaluated at once by the vectorized engine;
every trial is told as soon as its batch is evaluated. Constraints go through Optuna's
constraint mechanism (the values a ``constraints_func`` would store; <= 0 is feasible): the
samplers that use constraints (TPE, NSGA-II) steer away from infeasible configurations, Optuna's
``best_trial`` / ``best_trials`` skip them, and no infeasible trial is ever ranked. Each trial also
keeps its metrics (user attribute ``metrics``) and its named constraint values (user attribute
``constraint``), so a study in optuna-dashboard shows them.

Storage and workers: any SQLAlchemy URL Optuna supports (a SQLite file by default). Every worker
records a heartbeat for its running trials; a trial whose worker died (SIGKILL, power loss) is
marked FAIL once its heartbeat is older than the grace period, by whichever worker looks next.
The requested number of trials counts COMPLETE (and PRUNED) trials only: a FAIL trial is not
counted, so a killed worker's unfinished trials are replaced by new ones and the study ends with
exactly the requested number of complete trials, also with several workers on one study (a
trial asked above the budget in a race between workers is closed as FAIL with the user
attribute ``surplus``).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from roofline._specfile import Block
from roofline.exceptions import InfeasibleConfigError, RooflineError, SpecError
from roofline.hardware import load_hardware
from roofline.sweep import evaluate_rows, scenario_for
from roofline.sweepfile import HARDWARE_PARAMETERS, STRUCTURAL, SweepSpec

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SAMPLERS",
    "Objectives",
    "SearchOptions",
    "SearchResult",
    "SearchSpace",
    "TrialOutcome",
    "WorkerStats",
    "evaluate_params",
    "finalize",
    "make_sampler",
    "objectives",
    "open_storage",
    "predict_kwargs",
    "prepare_study",
    "run_search",
    "run_worker",
    "search_options",
    "search_space",
    "trials_frame",
]

log = logging.getLogger("roofline.search")

#: Sampler names accepted by ``--sampler`` and ``search: {sampler: ...}``.
SAMPLERS = ("tpe", "random", "cmaes", "nsgaii", "qmc")
#: Trial states that count toward the requested number of trials.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Trials that are, or will be, evaluated by some worker.
PENDING = (TrialState.RUNNING, TrialState.WAITING)
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
#: Configuration columns of ``evaluate_rows`` (everything else it returns is a metric).
_CONFIG_COLUMNS = set(STRUCTURAL) | set(HARDWARE_PARAMETERS)
#: System attribute of a trial holding its constraint values (Optuna's constraints_func format).
_CONSTRAINTS_KEY = "constraints"
#: Study user attribute that records what the study searches (checked on resume).
_STUDY_ATTR = "roofline_search"


# --------------------------------------------------------------------------------------------
# Options, space and objectives.
# --------------------------------------------------------------------------------------------


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
        if p.name == "prefetch" and not all(isinstance(v, bool) for v in values):
            raise SpecError(f"{where}: values must be true or false, got {list(values)}")
        if len(values) == 1:
            return values[0]
        return CategoricalDistribution(values)
    if p.name == "prefetch" or p.name in ("model", "hardware", "dtype", "kv_dtype"):
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


# --------------------------------------------------------------------------------------------
# Evaluation of a batch of trials through the vectorized engine.
# --------------------------------------------------------------------------------------------


@dataclass
class TrialOutcome:
    """What one trial's configuration gives: objective values, constraints and metrics."""

    values: list[float]  # objective values; the worst infinity when undefined
    constraints: dict[str, float]  # <= 0 is satisfied
    metrics: dict[str, Any]  # JSON-safe metrics of the engine (None for NaN)
    feasible: bool


#: Constraint name -> (metric, upper bound?) for the numeric constraints of a sweep file.
_LIMITS = {"max_tpot_ms": ("tpot_ms", True), "max_ttft_ms": ("ttft_ms", True), "max_e2e_ms": ("e2e_ms", True),
           "max_system_cost_usd": ("system_cost_usd", True),
           "min_throughput_tok_s": ("throughput_tok_s", False)}


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
    for key, (metric, upper) in _LIMITS.items():
        if key in spec.constraints:
            limit, value = float(spec.constraints[key]), np.asarray(cols[metric], dtype=float)
            ok = value <= limit if upper else value >= limit
            out[key] = _graded(ok, value / limit - 1 if upper else 1 - value / limit)
    return out


def _json_value(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


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
            hw = {"prefetch": np.full(len(rows), load_hardware(combo["hardware"]).prefetch.enabled)}
        cols = evaluate_rows(spec, combo, hw)
        cons = _constraint_columns(spec, combo, cols, hw)
        values = np.column_stack([np.asarray(cols[m], dtype=float) for m in objective.metrics])
        undefined = ~np.isfinite(values).all(axis=1)
        cons["evaluable"] = undefined.astype(float)
        feasible = np.asarray(cols["feasible"], dtype=bool) & ~undefined
        metric_cols = [c for c in cols if c not in _CONFIG_COLUMNS]
        for j, i in enumerate(rows):
            metrics = {c: _json_value(cols[c][j]) for c in metric_cols}
            metrics["feasible"] = bool(feasible[j])
            vals = objective.worst() if undefined[j] else [float(v) for v in values[j]]
            outcomes[i] = TrialOutcome(vals, {k: float(cons[k][j]) for k in names}, metrics, bool(feasible[j]))
    return [o for o in outcomes if o is not None]


def _preflight(spec: SweepSpec, space: SearchSpace, objective: Objectives) -> None:
    """Fail early on names the engine cannot load and on an objective that is undefined."""
    choices = {k: (list(d.choices) if isinstance(d, CategoricalDistribution) else [d.low])
               for k, d in space.distributions.items() if k in STRUCTURAL}
    base = {k: space.fixed.get(k, choices.get(k, [None])[0]) for k in STRUCTURAL}
    for name, values in choices.items():
        for v in values:
            with contextlib.suppress(InfeasibleConfigError):
                scenario_for({**base, name: v})
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


# --------------------------------------------------------------------------------------------
# Storage, study and samplers.
# --------------------------------------------------------------------------------------------


def default_storage(out_dir: str | Path) -> str:
    """The SQLite file a search keeps in its output folder."""
    return f"sqlite:///{(Path(out_dir) / 'study.db').resolve()}"


def masked(url: str) -> str:
    """The storage URL without its password (for output files and messages)."""
    if url == "memory":
        return url
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _normalized_url(url: str) -> str:
    """``postgresql://`` with the driver that is installed (SQLAlchemy 2.1 defaults to psycopg 3)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.drivername == "postgresql":
        import importlib.util

        if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
            return u.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL: readers (optuna-dashboard, other workers) do not block the writer; synchronous=NORMAL
    # loses nothing when a process is killed (only an OS crash may drop the last commits).
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def open_storage(url: str, *, heartbeat_interval: int = 5, grace_period: int | None = None,
                 create_tables: bool = True) -> optuna.storages.RDBStorage | None:
    """An Optuna RDB storage with heartbeats, or None for ``"memory"`` (in-memory, one process).

    Args:
        url: SQLAlchemy URL (``sqlite:///path.db``, ``postgresql+psycopg2://user:pw@host/db``,
            ``mysql+pymysql://...``) or ``"memory"``.
        heartbeat_interval, grace_period: seconds; a RUNNING trial whose last heartbeat is
            older than ``grace_period`` is marked FAIL by the next worker that looks.
        create_tables: False in workers, whose parent has created the tables.

    Raises:
        RooflineError: the database cannot be reached or opened (one line, password hidden).
    """
    if url == "memory":
        return None
    from sqlalchemy import event

    engine_kwargs: dict[str, Any] = {}
    try:
        url = _normalized_url(url)
        from sqlalchemy.engine import make_url

        backend = make_url(url).get_backend_name()
    except Exception as e:
        raise RooflineError(f"storage URL {masked(url)!r} is not a valid database URL ({_first_line(e)})") from None
    if backend == "sqlite":
        engine_kwargs["connect_args"] = {"timeout": 60}
    elif backend == "postgresql":
        engine_kwargs["pool_pre_ping"] = True
        if "psycopg2" in url.split("://", 1)[0] or "+" not in url.split("://", 1)[0]:
            engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                storage = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                    grace_period=grace_period, skip_table_creation=not create_tables)
            break
        except Exception as e:
            # two machines creating the tables at once: the loser sees them exist; try again
            racing = any(w in str(e).lower() for w in ("already exists", "duplicate", "unique constraint"))
            if not racing or attempt == 2:
                raise RooflineError(f"cannot open storage {masked(url)}: {_first_line(e)}") from None
            time.sleep(0.5 + attempt)
    if backend == "sqlite":
        event.listen(storage.engine, "connect", _sqlite_pragmas)
        storage.engine.dispose()  # reconnect with the pragmas
    return storage


def _first_line(e: BaseException) -> str:
    text = str(getattr(e, "orig", None) or e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


def make_sampler(options: SearchOptions, seed: int | None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler named by ``options`` (TPE: multivariate, with the constant liar so a
    batch or parallel workers spread out instead of sampling the same point)."""
    name = options.sampler_name
    s = optuna.samplers
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return s.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                n_startup_trials=options.n_startup_trials)
        if name == "random":
            return s.RandomSampler(seed=seed)
        if name == "nsgaii":
            return s.NSGAIISampler(seed=seed, population_size=options.population_size)
        if name == "qmc":
            return s.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False,
                                warn_asynchronous_seeding=False)
        if name == "cmaes":
            try:
                import cmaes  # noqa: F401
            except ImportError:
                raise RooflineError("the cmaes sampler needs the cmaes package (pip install cmaes)") from None
            return s.CmaEsSampler(seed=seed, n_startup_trials=options.n_startup_trials,
                                  warn_independent_sampling=False)
    raise SpecError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _study_record(spec: SweepSpec, space: SearchSpace, objective: Objectives) -> dict[str, Any]:
    return {"objective": list(objective.metrics), "directions": list(objective.directions),
            "constraints": list(constraint_names(spec)), "space": space.to_json()["distributions"],
            "fixed": {k: _json_value(v) for k, v in space.to_json()["fixed"].items()}}


def prepare_study(spec: SweepSpec, options: SearchOptions, storage: Any, study_name: str, *,
                  force: bool = False) -> optuna.Study:
    """Create the study (and its tables), or load it to resume after checking it searches the same.

    Raises:
        SpecError: the study exists but was made for another objective, constraints or space.
    """
    space, objective = search_space(spec), objectives(spec, options)
    record = _study_record(spec, space, objective)
    storage_obj = storage if storage is not None else optuna.storages.InMemoryStorage()
    if force:
        with contextlib.suppress(KeyError):
            optuna.delete_study(study_name=study_name, storage=storage_obj)
    study = optuna.create_study(storage=storage_obj, study_name=study_name, load_if_exists=True,
                                directions=list(objective.directions),
                                sampler=make_sampler(options, options.seed))
    previous = study.user_attrs.get(_STUDY_ATTR)
    if previous is None:
        if study.get_trials(deepcopy=False):
            raise SpecError(f"study {study_name!r} exists and was not made by roofline optimize; "
                            f"choose another --study name")
        study.set_user_attr(_STUDY_ATTR, {**record, "sweep_file": spec.path, "sweep": spec.name})
    else:
        changed = [k for k in ("objective", "directions", "constraints", "space", "fixed")
                   if previous.get(k) != json.loads(json.dumps(record[k]))]
        if changed:
            raise SpecError(f"study {study_name!r} exists with another {', '.join(changed)} "
                            f"(it searches {previous.get('directions')} {previous.get('objective')}); "
                            f"pass --study NEW_NAME, or --force to delete it and start over")
    return study


# --------------------------------------------------------------------------------------------
# Workers.
# --------------------------------------------------------------------------------------------


class _Heartbeat:
    """Records a heartbeat for this worker's running trials every ``interval`` seconds."""

    def __init__(self, storage: Any, interval: float) -> None:
        self.storage, self.interval = storage, interval
        self.ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="roofline-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        if self.storage is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()

    def add(self, trial_id: int) -> None:
        if self.storage is not None:
            self.storage.record_heartbeat(trial_id)
            with self.lock:
                self.ids.add(trial_id)

    def discard(self, trial_id: int) -> None:
        with self.lock:
            self.ids.discard(trial_id)

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            with self.lock:
                ids = list(self.ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # a database hiccup: try again at the next beat
                    log.warning("heartbeat of trial %s failed: %s", trial_id, _first_line(e))


@dataclass
class WorkerStats:
    """What one worker did."""

    worker: int
    told: int = 0  # trials this worker completed
    surplus: int = 0  # trials asked above the budget in a race, closed as FAIL
    batches: int = 0
    seconds: float = 0.0
    evaluate_seconds: float = 0.0  # time in the vectorized engine
    ask_seconds: float = 0.0  # sampling and storage when asking
    tell_seconds: float = 0.0  # storing results


def _counts(trials: Sequence[FrozenTrial]) -> tuple[int, list[FrozenTrial], list[FrozenTrial]]:
    done = sum(t.state in COUNTED for t in trials)
    running = [t for t in trials if t.state == TrialState.RUNNING]
    waiting = [t for t in trials if t.state == TrialState.WAITING]
    return done, running, waiting


def run_worker(spec: SweepSpec, options: SearchOptions, study: optuna.Study, storage: Any, *,
               worker: int = 0, progress: Callable[[int, int], None] | None = None) -> WorkerStats:
    """Ask, evaluate and tell batches of trials until the study has ``options.trials`` complete.

    Every asked trial gets a heartbeat at once; the in-flight batch is told FAIL when evaluation
    raises (or on Ctrl-C) before the exception propagates. Trials of other workers that stay
    RUNNING are waited for; when their worker is dead they are marked FAIL after the grace period
    and replaced. A trial seen RUNNING for longer than the grace period plus one heartbeat gets
    one heartbeat from the waiting worker, so that even a trial whose worker died between
    creating it and its first heartbeat turns stale (harmless for a live trial, whose own worker
    keeps beating).
    """
    space, objective = search_space(spec), objectives(spec, options)
    stats = WorkerStats(worker)
    started = time.perf_counter()
    grace = options.grace_seconds
    poll = max(0.2, min(1.0, options.heartbeat_interval / 2))
    first_seen: dict[int, float] = {}
    touched: set[int] = set()
    heartbeat_on = storage is not None
    with _Heartbeat(storage, options.heartbeat_interval) as hb:
        while True:
            if heartbeat_on:
                optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            done, running, _waiting = _counts(trials)
            if progress is not None:
                progress(done, options.trials)
            if done >= options.trials:
                break
            budget = options.trials - done - len(running)
            if budget <= 0:  # the rest is in flight on other workers (or stale): wait
                now = time.monotonic()
                for t in running:
                    seen = first_seen.setdefault(t._trial_id, now)
                    # after grace + one beat a dead worker's trial with heartbeats has been
                    # failed; one still RUNNING may never have had a heartbeat: give it one
                    if heartbeat_on and now - seen > grace + options.heartbeat_interval \
                            and t._trial_id not in touched:
                        touched.add(t._trial_id)
                        storage.record_heartbeat(t._trial_id)
                        log.info("trial %d RUNNING for %.0f s: gave it a heartbeat so that it turns stale "
                                 "if its worker is gone", t.number, now - seen)
                time.sleep(poll)
                continue
            _run_batch(spec, space, objective, study, hb, min(budget, options.batch_size), options.trials, stats)
    stats.seconds = time.perf_counter() - started
    return stats


def _suggest(trial: optuna.Trial, name: str, dist: BaseDistribution) -> Any:
    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    if isinstance(dist, IntDistribution):
        return trial.suggest_int(name, dist.low, dist.high, step=dist.step, log=dist.log)
    assert isinstance(dist, FloatDistribution)
    return trial.suggest_float(name, dist.low, dist.high, step=dist.step, log=dist.log)


def _run_batch(spec: SweepSpec, space: SearchSpace, objective: Objectives, study: optuna.Study, hb: _Heartbeat,
               k: int, total: int, stats: WorkerStats) -> None:
    batch: list[optuna.Trial] = []
    try:
        t0 = time.perf_counter()
        for _ in range(k):
            trial = study.ask()  # creates the trial; sampling happens at the first suggest
            hb.add(trial._trial_id)  # heartbeat at once: a trial without one never turns stale
            for name, dist in space.distributions.items():
                _suggest(trial, name, dist)
            # Workers racing for the last trials can ask more than the budget: a trial is kept
            # only when fewer than `total` counted-or-pending trials have a smaller number.
            # Numbers are given out in order under a lock, so all workers agree and at most
            # `total` trials complete; the loser of a race closes its trial as FAIL (surplus).
            live = sorted(t.number for t in study.get_trials(deepcopy=False, states=COUNTED + PENDING))
            if bisect.bisect_left(live, trial.number) >= total:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                hb.discard(trial._trial_id)
                stats.surplus += 1
                break
            batch.append(trial)
        stats.ask_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        outcomes = evaluate_params(spec, space, [t.params for t in batch], objective)
        stats.evaluate_seconds += time.perf_counter() - t0
        t0 = time.perf_counter()
        for trial, outcome in zip(batch, outcomes):
            trial.set_user_attr("metrics", outcome.metrics)
            trial.set_user_attr("constraint", outcome.constraints)
            # Stored the way a sampler's constraints_func stores them (system attribute
            # "constraints", a list in the order of the names above): TPE, NSGA-II and
            # study.best_trial(s) read it, and optuna-dashboard shows it (it does not read
            # Trial.set_constraint's named keys); one write per trial instead of one per name.
            trial.storage.set_trial_system_attr(trial._trial_id, _CONSTRAINTS_KEY, list(outcome.constraints.values()))
            study.tell(trial, outcome.values if objective.multi else outcome.values[0])
            hb.discard(trial._trial_id)
            stats.told += 1
        stats.tell_seconds += time.perf_counter() - t0
        stats.batches += 1
    except BaseException:
        for trial in batch:
            with contextlib.suppress(Exception):
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            hb.discard(trial._trial_id)
        raise


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Optuna's per-trial log lines and its experimental-feature warnings off, for a while."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Constraints have been set, but CmaEsSampler")
            # ask/tell with heartbeats is what this module does on purpose (see run_worker)
            warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
            yield
    finally:
        optuna.logging.set_verbosity(level)


def _worker_main(spec: SweepSpec, options: SearchOptions, url: str, study_name: str, worker: int,
                 seed: int | None, results: Any) -> None:
    """Entry point of a worker process (``--workers N``)."""
    try:
        storage = open_storage(url, heartbeat_interval=options.heartbeat_interval,
                               grace_period=options.grace_seconds, create_tables=False)
        with _quiet():
            study = optuna.load_study(study_name=study_name, storage=storage, sampler=make_sampler(options, seed))
            stats = run_worker(spec, options, study, storage, worker=worker)
        results.put(("ok", worker, stats))
    except KeyboardInterrupt:
        results.put(("error", worker, "interrupted"))
    except RooflineError as e:
        results.put(("error", worker, str(e)))
    except Exception as e:
        results.put(("error", worker, f"{type(e).__name__}: {_first_line(e)}"))
        raise


# --------------------------------------------------------------------------------------------
# A whole search: study, workers, outputs.
# --------------------------------------------------------------------------------------------


@dataclass
class SearchResult:
    """A finished (or resumed) search: the study, every trial, the ranking and what was written."""

    study: optuna.Study
    study_name: str
    storage: str  # URL without password
    objective: Objectives
    requested: int
    trials: pd.DataFrame  # one row per trial (see trials_frame)
    ranked: list[dict[str, Any]]  # best distinct feasible configurations, or the Pareto set
    best: dict[str, Any] | None  # the best by the file's objective (among the Pareto set when multi)
    counts: dict[str, int]  # trials by state
    seconds: float
    new_trials: int  # completed during this run
    workers: list[WorkerStats] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    out_dir: Path | None = None

    @property
    def complete(self) -> int:
        return self.counts.get("COMPLETE", 0) + self.counts.get("PRUNED", 0)

    @property
    def ms_per_trial(self) -> float:
        """Wall time of this run per trial it completed (sampling, storage and evaluation)."""
        return self.seconds / self.new_trials * 1e3 if self.new_trials else float("nan")


def _seed(options: SearchOptions, worker: int, offset: int) -> int | None:
    return None if options.seed is None else options.seed + worker + offset


def run_search(spec: SweepSpec, out_dir: str | Path | None, *, options: SearchOptions | None = None,
               storage: str | None = None, study_name: str | None = None, workers: int = 1,
               force: bool = False, top: int = 10,
               progress: Callable[[int, int], None] | None = None) -> SearchResult:
    """Run (or resume) the search of a sweep file and write its outputs.

    Running it again with the same arguments continues the study up to ``options.trials``
    complete trials; trials that were RUNNING when a worker died are marked FAIL and replaced.

    Args:
        spec: the sweep file.
        out_dir: folder for ``study.db`` (the default storage), ``trials.parquet``,
            ``trials.csv``, ``best.csv`` and ``search.json``; None writes nothing (needs
            ``storage``).
        options: trials, sampler, seed, batch size... (default: the file's ``search:`` block).
        storage: SQLAlchemy URL of the study's database (default: SQLite in ``out_dir``), or
            ``"memory"`` for an in-memory study (one process, no resume).
        study_name: default: the sweep's name.
        workers: local worker processes on the study (worker i seeds its sampler with seed + i,
            plus the number of trials the study already had, so a resumed run does not repeat).
        force: delete the study and the output files first and start over.
        top: rows of the ranking (single objective).
        progress: called with (complete trials, requested) as trials finish.

    Raises:
        SpecError: a bad sweep file, sampler, option, or a study made for another search.
        RooflineError: the storage cannot be opened; a worker failed.
    """
    options = options or search_options(spec)
    study_name = study_name or spec.name
    space, objective = search_space(spec), objectives(spec, options)
    _preflight(spec, space, objective)
    out = Path(out_dir) if out_dir is not None else None
    if out is None and storage is None:
        raise RooflineError("give an output folder or a storage URL")
    if storage == "memory" and workers > 1:
        raise RooflineError("an in-memory study cannot be shared by several workers; use a database URL")
    url = storage or default_storage(out)  # type: ignore[arg-type]
    with _quiet():
        if storage is None:  # the SQLite file lives in the output folder: prepare that first
            _prepare_out(out, force)  # type: ignore[arg-type]
        rdb = open_storage(url, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_seconds)
        if storage is not None and out is not None:
            _prepare_out(out, force)
        study = prepare_study(spec, options, rdb, study_name, force=force)
        if rdb is not None:
            optuna.storages.fail_stale_trials(study)
        before = study.get_trials(deepcopy=False)
        offset = len(before)
        done_before = sum(t.state in COUNTED for t in before)
        notes: list[str] = []
        if out is not None:
            _write_json(out / "search.json", {"status": "running", "study": study_name, "storage": masked(url)})
        started = time.perf_counter()
        stats: list[WorkerStats] = []
        if workers <= 1:
            if offset:  # resume: reseed, so a seeded random sampler does not repeat its first trials
                study.sampler = make_sampler(options, _seed(options, 0, offset))
            stats.append(run_worker(spec, options, study, rdb, worker=0, progress=progress))
        else:
            rdb.engine.dispose()  # type: ignore[union-attr]
            stats, notes = _run_processes(spec, options, url, study_name, workers, offset, study, progress)
        seconds = time.perf_counter() - started
        return finalize(spec, options, study, out, url=url, seconds=seconds, workers=stats, notes=notes,
                        done_before=done_before, top=top)


def _prepare_out(out: Path, force: bool) -> None:
    ours = ("study.db", "study.db-wal", "study.db-shm", "trials.parquet", "trials.csv", "best.csv", "search.json")
    if out.exists() and any(out.iterdir()) and not force and not (out / "search.json").exists() \
            and not (out / "study.db").exists():
        raise SpecError(f"{out}: output directory exists and holds no search; choose another --out, "
                        f"or pass --force to write into it")
    if force and out.exists():
        import shutil

        for name in ours:
            with contextlib.suppress(FileNotFoundError):
                (out / name).unlink()
        shutil.rmtree(out / "plots", ignore_errors=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RooflineError(f"{out}: cannot create the output folder ({e.strerror})") from None


def _run_processes(spec: SweepSpec, options: SearchOptions, url: str, study_name: str, workers: int,
                   offset: int, study: optuna.Study,
                   progress: Callable[[int, int], None] | None) -> tuple[list[WorkerStats], list[str]]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"roofline-search-{i}",
                         args=(spec, options, url, study_name, i, _seed(options, i, offset), results))
             for i in range(workers)]
    for p in procs:
        p.start()
    stats: list[WorkerStats] = []
    errors: list[str] = []
    notes: list[str] = []
    try:
        while any(p.is_alive() for p in procs) or not results.empty():
            with contextlib.suppress(Exception):
                kind, worker, payload = results.get(timeout=0.5)
                if kind == "ok":
                    stats.append(payload)
                else:
                    errors.append(f"worker {worker}: {payload}")
            if progress is not None:
                with contextlib.suppress(Exception):
                    progress(sum(t.state in COUNTED for t in study.get_trials(deepcopy=False, states=COUNTED)),
                             options.trials)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
    reported = {int(e.split(":", 1)[0].split()[1]) for e in errors}
    for i, p in enumerate(procs):
        if p.exitcode is not None and p.exitcode < 0:
            notes.append(f"worker {i} was killed by signal {-p.exitcode}; its unfinished trials are marked "
                         f"FAIL after the {options.grace_seconds} s grace period and replaced")
        elif p.exitcode and i not in reported:
            errors.append(f"worker {i}: exited with code {p.exitcode} (see its traceback above)")
    if errors:
        raise RooflineError("; ".join(errors))
    return sorted(stats, key=lambda s: s.worker), notes


# --------------------------------------------------------------------------------------------
# Results: the trials table, the ranking and the output files.
# --------------------------------------------------------------------------------------------


def trials_frame(study: optuna.Study, spec: SweepSpec, options: SearchOptions) -> pd.DataFrame:
    """Every trial of the study: number, state, configuration, objective values, metrics,
    constraint values (``constraint_<name>``), feasibility and timing."""
    import pandas as pd

    space, objective = search_space(spec), objectives(spec, options)
    rows = []
    metric_names: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        row.update(space.config(t.params))
        values = t.values if t.values is not None else [math.nan] * len(objective.metrics)
        for m, v in zip(objective.metrics, values):
            row[f"value_{m}" if objective.multi else "value"] = v
        metrics = t.user_attrs.get("metrics") or {}
        for k, v in metrics.items():
            metric_names.setdefault(k)
            row[k] = math.nan if v is None else v
        named = t.user_attrs.get("constraint") or {}
        for k, v in named.items():
            row[f"constraint_{k}"] = v
        complete = t.state == TrialState.COMPLETE
        row["feasible"] = bool(complete and metrics.get("feasible", False)
                               and all(v <= 0 for v in named.values()))
        row["surplus"] = bool(t.user_attrs.get("surplus", False))
        row["datetime_start"] = t.datetime_start
        row["datetime_complete"] = t.datetime_complete
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty:
        return df
    for col in df.columns:
        if df[col].dtype == object and col not in ("state", "decode_bound", "error"):
            non_null = df[col].dropna()
            if len(non_null) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in non_null):
                df[col] = pd.to_numeric(df[col])
    if "datetime_complete" in df and "datetime_start" in df:
        df["duration_s"] = (pd.to_datetime(df["datetime_complete"]) - pd.to_datetime(df["datetime_start"])
                            ).dt.total_seconds()
    return df.sort_values("number", ignore_index=True)


def _ranked(study: optuna.Study, df: pd.DataFrame, spec: SweepSpec, options: SearchOptions,
            top: int) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    space, objective = search_space(spec), objectives(spec, options)
    if df.empty:
        return [], None
    feasible = df[df["feasible"]]
    params = [c for c in space.distributions if c in df.columns]
    if objective.multi:
        numbers = {t.number for t in study.best_trials}
        front = feasible[feasible["number"].isin(numbers)]
        d0, m0 = objective.directions[0], objective.metrics[0]
        front = front.sort_values(m0, ascending=d0 == "minimize")
        ranked = front.drop_duplicates(subset=params) if params else front
        direction, metric = spec.objective
        best_rows = ranked.sort_values(metric, ascending=direction == "minimize") if len(ranked) else ranked
    else:
        direction, metric = spec.objective
        ordered = feasible.sort_values(["value", "number"], ascending=[direction == "minimize", True])
        ranked = (ordered.drop_duplicates(subset=params) if params else ordered).head(top)
        best_rows = ranked
    records = [{k: _json_value(v) for k, v in r.items()} for r in ranked.to_dict(orient="records")]
    best = None
    if len(best_rows):
        best = {k: _json_value(v) for k, v in best_rows.iloc[0].to_dict().items()}
    return records, best


def predict_kwargs(config: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Arguments of ``roofline.predict`` for a configuration (a ranked row or ``best``)."""
    kw: dict[str, Any] = {k: config[k] for k in ("batch", "input_len", "output_len", "tp", "pp", "dp", "ep")}
    kw = {k: int(v) for k, v in kw.items()}
    kw.update(dtype=config["dtype"], kv_dtype=config.get("kv_dtype"), check_memory=False)
    for name in space.hardware:
        if name == "prefetch":
            kw["prefetch"] = bool(config[name])
        else:
            kw[name] = float(config[name])
    return kw


def finalize(spec: SweepSpec, options: SearchOptions, study: optuna.Study, out: Path | None, *, url: str,
             seconds: float = 0.0, workers: Sequence[WorkerStats] = (), notes: Sequence[str] = (),
             done_before: int = 0, top: int = 10) -> SearchResult:
    """Collect the study's trials and ranking; write them into ``out`` (when given)."""
    objective = objectives(spec, options)
    df = trials_frame(study, spec, options)
    ranked, best = _ranked(study, df, spec, options, top)
    counts = df["state"].value_counts().to_dict() if not df.empty else {}
    complete = counts.get("COMPLETE", 0) + counts.get("PRUNED", 0)
    notes = list(notes)
    if complete < options.trials:
        notes.append(f"the study has {complete} of {options.trials} trials; run the same command again to continue")
    if complete and best is None:
        notes.append("no feasible configuration found: every trial breaks a constraint")
    result = SearchResult(study=study, study_name=study.study_name, storage=masked(url), objective=objective,
                          requested=options.trials, trials=df, ranked=ranked, best=best,
                          counts={str(k): int(v) for k, v in counts.items()}, seconds=seconds,
                          new_trials=max(complete - done_before, 0), workers=list(workers), notes=notes,
                          out_dir=out)
    if out is not None:
        result.files += _write_outputs(result, spec, options, out)
    return result


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default))
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _write_outputs(result: SearchResult, spec: SweepSpec, options: SearchOptions, out: Path) -> list[Path]:
    import pandas as pd

    files = []
    df = result.trials
    if not df.empty:
        df.to_parquet(out / "trials.parquet", index=False)
        df.to_csv(out / "trials.csv", index=False)
        files += [out / "trials.parquet", out / "trials.csv"]
    if result.ranked:
        pd.DataFrame(result.ranked).to_csv(out / "best.csv", index=False)
        files.append(out / "best.csv")
    summary = {
        "status": "done" if result.complete >= result.requested else "incomplete",
        "sweep": spec.name, "file": spec.path, "study": result.study_name, "storage": result.storage,
        "dashboard": f"optuna-dashboard {result.storage}",
        "objective": [{d: m} for d, m in zip(result.objective.directions, result.objective.metrics)],
        "constraints": {k: _json_value(v) for k, v in spec.constraints.items()},
        "options": {k: getattr(options, k) for k in SEARCH_KEYS} | {"sampler": options.sampler_name},
        "space": search_space(spec).to_json(),
        "requested": result.requested, "counts": result.counts,
        "feasible": int(df["feasible"].sum()) if not df.empty else 0,
        "seconds": round(result.seconds, 3), "new_trials": result.new_trials,
        "ms_per_trial": None if math.isnan(result.ms_per_trial) else round(result.ms_per_trial, 2),
        "workers": [vars(w) for w in result.workers], "notes": result.notes,
        "best": result.best, "ranked": result.ranked,
        "counting": "the requested number counts COMPLETE trials; FAIL trials (a killed worker's "
                    "unfinished trials, or surplus ones from a race between workers) are not counted",
    }
    _write_json(out / "search.json", summary)
    files.append(out / "search.json")
    return files
