"""Sweep files: the YAML format shared by grid sweeps (`roofline sweep`) and searches
(`roofline optimize`). Parsing only; running lives in ``roofline.sweep`` and ``roofline.search``.

A file names a base device, one or more models, the fixed workload and parallelism, the swept
parameters, constraints, the objective and the cost-model overrides::

    name: l2-size
    hardware: ascend-910b
    model: [llama-3-8b, llama-3-70b]
    workload: {batch: 4, input_len: 10923, output_len: 5461, dtype: int8}  # op_dtypes: {experts: nvfp4}
    parallelism: {tp: 8}
    sweep:
      l2_capacity_MiB: {low: 0, high: 256, step: 8}
      hbm_bandwidth_GBps: [1200, 1600, 2000]
      prefetch: [false, true]
    constraints: {memory_fit: true, max_tpot_ms: 100}
    objective: {maximize: tok_s_per_kusd}
    pareto: {minimize: [system_cost_usd], maximize: [throughput_tok_s]}
    cost: {overrides: {"hbm.usd_per_GB.HBM3": 12.0}}
    scenario: {prefetch: {threshold_fraction: 0.75, launch_gap_fraction: 0.0},   # prefetching's settings
               collective_library: nccl, async_tp: true,   # or sweep them: async_tp: [false, true]
               datasheet: false, framework: any}   # the model: fitted (default) or the raw roofline

Prefetching is a runtime technique, not a property of the device: off unless the file sweeps
``prefetch`` or sets ``scenario: {prefetch: {enabled: true}}``. Every row is predicted with the
fitted model (roofline.fitted: calibrated profiles where they ship, the fitted software overheads of
``framework``) unless ``scenario: {datasheet: true}`` asks for the raw roofline.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roofline._specfile import Block, Field, closest, printable, read_yaml
from roofline.exceptions import SpecError
from roofline.fitted import ModelChoice
from roofline.hardware import HARDWARE_FIELDS, load_hardware
from roofline.metrics import CONSTRAINTS as METRIC_CONSTRAINTS
from roofline.metrics import METRICS, metric_names
from roofline.model import load_model
from roofline.registry import NOT_SWEEPABLE, SCENARIO, scenario_names, sweepable
from roofline.serving.columns import (
    SERVING_KEYS,
    SERVING_METRICS,
    ServingBlock,
    parse_serving_block,
)
from roofline.workload import PrefetchSettings, Workload, parse_op_dtypes

__all__ = ["Parameter", "SweepSpec", "load_sweep", "STRUCTURAL", "HARDWARE_PARAMETERS", "BOOLEAN_PARAMETERS",
           "SCENARIO_CHOICES", "METRIC_NAMES",
           "SweepBudget", "sweep_budget", "check_budget", "structural_count"]

#: Runtime settings of the scenario (the serving framework's collectives, asynchronous TP): fixed
#: under ``scenario:`` or swept, one combination at a time; name -> allowed values (roofline.registry.SCENARIO)
SCENARIO_CHOICES: dict[str, tuple[Any, ...]] = {n: SCENARIO[n].choices for n in scenario_names("setting", vectorized=False)}
#: Parameters that change the operator tables or the scenario: evaluated one combination at a time.
STRUCTURAL = scenario_names(vectorized=False)
#: Parameters evaluated as arrays by the vectorized engine: the registry's, and prefetching on/off.
HARDWARE_PARAMETERS = sweepable() + scenario_names(vectorized=True)
#: Parameters that take true or false
BOOLEAN_PARAMETERS = tuple(n for n, p in SCENARIO.items() if p.kind == "flag")
#: Metrics an objective, a Pareto front or a constraint may name: the numeric ones of the engine,
#: the economics and the serving block (roofline.metrics)
METRIC_NAMES = tuple(m for m in metric_names("engine", "economics", "serving") if METRICS[m].kind == "number")
#: Constraint key -> what it means (roofline.metrics.CONSTRAINTS)
CONSTRAINTS = {name: c.description for name, c in METRIC_CONSTRAINTS.items()}
WORKLOAD_KEYS = scenario_names("workload")
PARALLEL_KEYS = scenario_names("parallelism")
#: Bounds of the integer workload and parallelism values, fixed or swept
STRUCTURAL_FIELDS = {n: p.field for n, p in SCENARIO.items() if p.kind == "integer"}
#: An axis longer than this is refused when the file is read (1e-300 steps, 1e30 points)
MAX_AXIS_POINTS = 10**10


@dataclass(frozen=True)
class Parameter:
    """One swept parameter: explicit values, or a range (``low``/``high`` with ``step``, ``num``
    or neither for a continuous search range; ``log`` for a log scale)."""

    name: str
    values: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    step: float | None = None
    num: int | None = None
    log: bool = False
    integer: bool = False

    @property
    def is_categorical(self) -> bool:
        return self.values is not None

    def count(self) -> int:
        """How many values a grid sweep visits (without making them)."""
        if self.values is not None:
            return len(self.values)
        if self.step is not None:
            assert self.low is not None and self.high is not None
            return int(np.floor((self.high - self.low) / self.step + 1e-9)) + 1
        if self.num is not None:
            return self.num
        raise SpecError(f"sweep.{self.name}: a grid needs 'step' or 'num' with low/high "
                        f"(a bare range is only for `roofline optimize`)")

    def grid(self) -> np.ndarray | tuple[Any, ...]:
        """The values a grid sweep visits."""
        if self.values is not None:
            return self.values
        assert self.low is not None and self.high is not None
        count = self.count()
        if self.step is not None:
            values = self.low + self.step * np.arange(count)
        else:
            values = (np.geomspace(self.low, self.high, count) if self.log
                      else np.linspace(self.low, self.high, count))
        return np.round(values).astype(int) if self.integer else values


@dataclass(frozen=True)
class SweepSpec:
    """A parsed sweep file."""

    name: str
    path: str
    hardware: tuple[str, ...]
    models: tuple[str, ...]
    fixed: dict[str, Any]  # workload and parallelism values that are not swept
    parameters: tuple[Parameter, ...]
    constraints: dict[str, float | bool]
    objective: tuple[str, str]  # (direction, metric)
    pareto: tuple[tuple[str, str], ...]  # (direction, metric) pairs
    cost_file: str | None = None
    cost_overrides: dict[str, float] = field(default_factory=dict)
    search: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    serving: ServingBlock | None = None  # the serving: block (roofline.serving.columns)
    #: ``scenario: {prefetch: {...}}``: prefetching's threshold, what it fetches and whether it is
    #: on where ``prefetch`` is not swept (default: off)
    prefetch: PrefetchSettings = PrefetchSettings()
    #: ``scenario: {datasheet: ..., framework: ...}``: the fitted model (default) or the raw roofline
    model_choice: ModelChoice = ModelChoice()

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the sweep evaluates: the ``hardware`` list, then swept values."""
        swept = [v for p in self.parameters if p.name == "hardware" for v in p.values or ()]
        return tuple(dict.fromkeys([*self.hardware, *map(str, swept)]))

    @property
    def hardware_parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.name in HARDWARE_PARAMETERS)

    @property
    def structural_parameters(self) -> tuple[Parameter, ...]:
        return tuple(p for p in self.parameters if p.name in STRUCTURAL)

    def structural_combinations(self) -> Iterator[dict[str, Any]]:
        """Every combination of model, device and the swept workload/parallelism values."""
        swept = {p.name: list(p.grid()) for p in self.structural_parameters}
        axes = {"model": list(self.models), "hardware": list(self.hardware), **swept}
        names = list(axes)
        for combo in itertools.product(*(axes[n] for n in names)):
            values = dict(self.fixed)
            values.update(zip(names, combo))
            yield values

    def hardware_grid(self) -> dict[str, np.ndarray]:
        """Grid values of each hardware parameter (the engine takes their outer product)."""
        return {p.name: np.asarray(p.grid(), dtype=bool if p.name == "prefetch" else float)
                for p in self.hardware_parameters}

    def grid_size(self) -> int:
        """Configurations of the full grid, counted from the axis lengths (Python integers: exact
        and never overflowing; no axis is materialised)."""
        size = len(self.models) * len(self.hardware)
        for p in self.parameters:
            size *= p.count()
        return size


def _parameter(name: str, raw: Any, file: str) -> Parameter:
    where = f"{file}: sweep.{printable(name)}"
    if name in NOT_SWEEPABLE:
        raise SpecError(f"{where}: not sweepable: {NOT_SWEEPABLE[name]}")
    # sweep.kv_admission, sweep.concurrency: the list of every parameter named nothing near it
    # (framework is a scenario: key as well: left to the list)
    if name in SERVING_KEYS and name != "framework" and name not in HARDWARE_PARAMETERS and name not in STRUCTURAL:
        raise SpecError(f"{where}: not sweepable: a key of the serving: block, one value per sweep file "
                        f"(serving: {{{name}: ...}}; one file per value to compare them)")
    if name not in HARDWARE_PARAMETERS and name not in STRUCTURAL:
        allowed = sorted(HARDWARE_PARAMETERS) + list(STRUCTURAL)
        raise SpecError(f"{where}: unknown parameter{closest(name, allowed)} (allowed: {', '.join(allowed)})")
    decl = _declaration(name)
    integer = decl is not None and decl.kind == "integer"
    if isinstance(raw, list):
        if not raw:
            raise SpecError(f"{where}: empty list of values")
        return Parameter(name, values=_check_values(name, raw, file), integer=integer)
    if not isinstance(raw, Mapping):
        return Parameter(name, values=_check_values(name, [raw], file), integer=integer)
    b = Block(raw, file, f"sweep.{name}")
    b.check_keys([], ["values", "low", "high", "step", "num", "log"])
    if b.has("values"):
        values = b.raw("values")
        if not isinstance(values, list) or not values:
            raise b.error("values", "expected a non-empty list")
        return Parameter(name, values=_check_values(name, values, file), integer=integer)
    if decl is None:
        raise SpecError(f"{where}: {name} takes a list of values, not a range")
    if not (b.has("low") and b.has("high")):
        raise SpecError(f"{where}: give 'values: [...]' or 'low' and 'high' (with 'step' or 'num' for a grid)")
    low = b.number("low")
    high = b.number("high")
    if high < low:
        raise b.error("high", f"must be >= low ({low:g})")
    log = b.boolean("log", default=False)
    if log and low <= 0:
        raise b.error("low", "must be > 0 on a log scale")
    step = b.number("step", strict=True) if b.has("step") else None
    num = b.integer("num", maximum=MAX_AXIS_POINTS) if b.has("num") else None
    for end in (low, high):
        decl.check(end, f"{file}: sweep.")
    param = Parameter(name, low=low, high=high, step=step, num=num, log=log, integer=integer)
    if step is not None and (high - low) / step + 1 > MAX_AXIS_POINTS:
        raise b.error("step", f"{step:g} makes {(high - low) / step + 1:.3g} values from low to high; "
                              f"an axis has at most {MAX_AXIS_POINTS:,}")
    if integer and num is None and step is not None and step != int(step):
        raise b.error("step", f"{name} takes integers; the step must be a whole number, got {step:g}")
    return param


def _declaration(name: str) -> Field | None:
    """The bounds of a numeric swept parameter (the spec's own declaration), or None."""
    return HARDWARE_FIELDS.get(name) or STRUCTURAL_FIELDS.get(name)


def _check_choice(name: str, value: Any, where: str) -> Any:
    """A scenario setting's value, or a one-line error naming the allowed ones."""
    allowed = SCENARIO_CHOICES[name]
    if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
        shown = ", ".join(str(a).lower() if isinstance(a, bool) else str(a) for a in allowed)
        raise SpecError(f"{where}: {printable(repr(value))[:60]} is not allowed; choose one of {shown}")
    return value


def _check_values(name: str, values: list[Any], file: str) -> tuple[Any, ...]:
    """Each listed value checked as the spec or workload would check it, before the sweep starts."""
    decl, where = _declaration(name), f"{file}: sweep.{name}"
    for value in values:
        if decl is not None:
            decl.check(value, f"{file}: sweep.")
        elif name in BOOLEAN_PARAMETERS and not isinstance(value, bool):
            raise SpecError(f"{where}: expected true or false, got {printable(repr(value))[:60]}")
        elif name in SCENARIO_CHOICES:
            _check_choice(name, value, where)
        elif name not in BOOLEAN_PARAMETERS and not isinstance(value, str):
            raise SpecError(f"{where}: expected a name, got {printable(repr(value))[:60]}")
        elif name in ("dtype", "kv_dtype", "lm_head_dtype"):
            _check_precision(name, value, where)
    return tuple(values)


def _check_attention_dp(ranks: int, tp: int, parameters: list[Parameter], file: str) -> None:
    """``serving.attention_dp`` divides every tp of the sweep (its listed values, else the fixed one)."""
    swept = next((p for p in parameters if p.name == "tp"), None)
    tps = [tp] if swept is None else [int(v) for v in (swept.values or ())]
    for value in tps:
        if ranks > value or value % ranks:
            raise SpecError(f"{file}: serving.attention_dp: {ranks} must divide tp={value}")


def _check_precision(name: str, value: str, where: str) -> None:
    """A swept ``dtype`` (``W`` or ``W:A``), ``kv_dtype`` or ``lm_head_dtype`` as the workload reads it; the
    error names the file."""
    try:
        if name == "lm_head_dtype":
            Workload.with_dtype("bf16", lm_head_dtype=value)
        else:
            Workload.with_dtype(value) if name == "dtype" else Workload(kv_dtype=value)
    except SpecError as e:
        message, field = str(e), f"workload: {name}"
        if message.startswith(field):  # where names the key already: 'workload.kv_dtype: kv_dtype: ...' said it twice
            raise SpecError(f"{where}{message.removeprefix(field)}") from None
        raise SpecError(f"{where}: {message.removeprefix('workload: ')}") from None


def _op_dtypes(value: Any, error: Any) -> tuple[tuple[str, str, str], ...]:
    """``op_dtypes: {experts: nvfp4, attention: fp8}`` (or ``"experts=nvfp4,attention=fp8"``)."""
    try:
        return parse_op_dtypes(value)
    except SpecError as e:
        raise error("op_dtypes", str(e).removeprefix("workload: ")) from None


def _direction_metric(b: Block, key: str) -> tuple[str, str]:
    inner = b.block(key)
    inner.check_keys([], ["maximize", "minimize"])
    if len(inner.data) != 1:
        raise inner.error("maximize", "give exactly one of maximize: METRIC or minimize: METRIC")
    direction, metric = next(iter(inner.data.items()))
    if metric not in METRIC_NAMES:
        raise inner.error(direction, f"unknown metric {printable(repr(metric))[:60]}{closest(str(metric), METRIC_NAMES)}; "
                                     f"choose one of {', '.join(METRIC_NAMES)}")
    return direction, metric


def _pareto(b: Block) -> tuple[tuple[str, str], ...]:
    if not b.has("pareto"):
        return (("minimize", "system_cost_usd"), ("maximize", "throughput_tok_s"))
    inner = b.block("pareto")
    inner.check_keys([], ["maximize", "minimize"])
    pairs = []
    for direction in ("minimize", "maximize"):
        metrics = inner.raw(direction) or []
        metrics = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(metrics, list):
            raise inner.error(direction, f"expected a metric or a list of metrics, got {printable(repr(metrics))[:60]}")
        for metric in metrics:
            if metric not in METRIC_NAMES:
                raise inner.error(direction, f"unknown metric {printable(repr(metric))[:60]}; choose from {', '.join(METRIC_NAMES)}")
            pairs.append((direction, metric))
    if not 2 <= len(pairs) <= 3:
        raise inner.error("minimize", f"a Pareto front needs 2 or 3 metrics, got {len(pairs)}")
    return tuple(pairs)


def _names(b: Block, key: str) -> tuple[str, ...]:
    raw = b.raw(key)
    values = raw if isinstance(raw, list) else [raw]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise b.error(key, "expected a name or a list of names")
    return tuple(values)


def _check_specs(file: str, key: str, names: tuple[str, ...], loader: Any) -> None:
    """Load every named spec now, so a typo fails before the sweep starts."""
    for name in names:
        try:
            loader(name)
        except SpecError as e:
            raise SpecError(f"{file}: {key}: {e}") from None


def _check_cost(file: str, cost_file: str | None, overrides: dict[str, Any]) -> None:
    """Read the cost file and apply its overrides now, so a bad one fails before the sweep starts."""
    from roofline.cost import load_cost_parameters

    try:
        load_cost_parameters(cost_file, overrides)
    except SpecError as e:
        raise SpecError(f"{file}: cost: {e}") from None


def sweep_from_dict(data: dict[str, Any], file: str = "<dict>") -> SweepSpec:
    """Parse and check a sweep definition; every error names the file and key."""
    b = Block(data, file)
    b.check_keys(["hardware", "model"],
                 ["name", "description", "workload", "parallelism", "sweep", "constraints", "objective",
                  "pareto", "cost", "search", "serving", "scenario"])
    # dtype None: the model's HF quantization_config, else bf16 (Workload.for_model)
    fixed: dict[str, Any] = {"batch": 1, "input_len": 2048, "output_len": 128, "dtype": None,
                             "kv_dtype": None, "op_dtypes": (), "lm_head_dtype": None, "tp": 1, "pp": 1, "dp": 1, "ep": 1}
    for section, keys in (("workload", WORKLOAD_KEYS), ("parallelism", PARALLEL_KEYS)):
        if b.has(section):
            block = b.block(section)
            block.check_keys([], keys)
            for key in keys:
                if block.has(key):
                    value = block.raw(key)
                    if key in ("dtype", "kv_dtype", "lm_head_dtype"):
                        fixed[key] = block.string(key)
                        _check_precision(key, fixed[key], f"{file}: {section}.{key}")
                    elif key == "op_dtypes":
                        fixed[key] = _op_dtypes(value, block.error)
                    else:
                        fixed[key] = int(STRUCTURAL_FIELDS[key].check(value, f"{file}: {section}."))
    parameters = []
    if b.has("sweep"):
        sweep = b.block("sweep")
        parameters = [_parameter(str(name), raw, file) for name, raw in sweep.data.items()]
    constraints: dict[str, float | bool] = {"memory_fit": True}
    if b.has("constraints"):
        cb = b.block("constraints")
        cb.check_keys([], CONSTRAINTS)
        for key in cb.data:
            constraints[key] = cb.boolean(key) if key == "memory_fit" else cb.number(key)
    objective = _direction_metric(b, "objective") if b.has("objective") else ("maximize", "tok_s_per_kusd")
    cost_file, overrides = None, {}
    if b.has("cost"):
        cost = b.block("cost")
        cost.check_keys([], ["file", "overrides"])
        cost_file = cost.string("file") if cost.has("file") else None
        if cost.has("overrides"):
            overrides = dict(cost.block("overrides").data)
        _check_cost(file, cost_file, overrides)
    search = dict(b.block("search").data) if b.has("search") else {}
    serving = parse_serving_block(b.raw("serving"), file) if b.has("serving") else None
    if serving is not None:
        _check_attention_dp(serving.settings.attention_dp, fixed["tp"], parameters, file)
    # (name in the file, the metric it reads)
    named = [(objective[1], objective[1]), *((m, m) for _, m in _pareto(b)),
             *((c, METRIC_CONSTRAINTS[c].metric) for c in constraints)]
    serving_metrics = [name for name, m in named if m in SERVING_METRICS]
    if serving_metrics and serving is None:
        raise SpecError(f"{file}: {serving_metrics[0]} needs a serving: block (workload, engine, SLO)")
    # the static columns take the overheads of the serving block's framework unless the file names one
    prefetch = PrefetchSettings()
    model_choice = ModelChoice(framework=serving.settings.framework) if serving is not None else ModelChoice()
    if b.has("scenario"):
        scenario = b.block("scenario")
        scenario.check_keys([], ["prefetch", "datasheet", "framework", *SCENARIO_CHOICES])
        if scenario.has("prefetch"):
            prefetch = PrefetchSettings.from_mapping(scenario.block("prefetch").data, f"{file}: scenario.prefetch")
        model_choice = ModelChoice.from_mapping({"framework": model_choice.framework} | scenario.data,
                                                f"{file}: scenario")
        for key in SCENARIO_CHOICES:
            if scenario.has(key):
                fixed[key] = _check_choice(key, scenario.raw(key), f"{file}: scenario.{key}")
    models, devices = _names(b, "model"), _names(b, "hardware")
    _check_specs(file, "model", models, load_model)
    _check_specs(file, "hardware", devices, load_hardware)
    return SweepSpec(
        name=str(b.raw("name", Path(file).stem)), path=str(file), hardware=devices,
        models=models, fixed=fixed, parameters=tuple(parameters), constraints=constraints,
        objective=objective, pareto=_pareto(b), cost_file=cost_file, cost_overrides=overrides,
        search=search, description=str(b.raw("description", "")), serving=serving, prefetch=prefetch,
        model_choice=model_choice,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (YAML)."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: sweep file not found")
    return sweep_from_dict(read_yaml(p), str(p))


#: Above either limit a sweep asks for --yes before it starts
MAX_POINTS_WITHOUT_YES = 50_000_000
MAX_BYTES_WITHOUT_YES = 5 * 10**9
#: Planning figures, used only when nothing was measured (``roofline sweep`` measures them on a
#: sample of the sweep itself, see ``roofline.sweep.measure_budget``): rows per second of one
#: process (issue #21's target, not a measurement), the set-up of one structural combination
#: (operator tables), and bytes per row of Parquet (measured: 147-165 bytes for the 39 columns of
#: a static sweep, snappy or zstd, since the float metrics barely compress)
CONFIGS_PER_SECOND = 1_000_000
SECONDS_PER_COMBINATION = 0.2
BYTES_PER_ROW = 160


@dataclass(frozen=True)
class SweepBudget:
    """What a grid sweep will cost before it starts: configurations, time and disk.

    ``basis`` says where the time and disk figures come from (a measured sample or the
    planning figures above).
    """

    points: int
    seconds: float
    disk_bytes: float
    basis: str = "planning figures, not measured"

    def summary(self) -> str:
        return (f"{self.points:,} configurations, estimated {_duration(self.seconds)} "
                f"and {_disk(self.disk_bytes)} of disk ({self.basis})")


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "< 1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:,.1f} h"


def _disk(size_bytes: float) -> str:
    if size_bytes < 1e6:
        return "< 1 MB"
    if size_bytes < 1e9:
        return f"{size_bytes / 1e6:.0f} MB"
    return f"{size_bytes / 1e9:,.1f} GB"


def structural_count(spec: SweepSpec) -> int:
    """Structural combinations (model x device x workload x parallelism), counted."""
    combinations = len(spec.models) * len(spec.hardware)
    for p in spec.structural_parameters:
        combinations *= p.count()
    return combinations


def sweep_budget(spec: SweepSpec, *, configs_per_second: float = CONFIGS_PER_SECOND,
                 seconds_per_combination: float = SECONDS_PER_COMBINATION, bytes_per_row: float = BYTES_PER_ROW,
                 processes: int = 1, basis: str | None = None) -> SweepBudget:
    """The size, estimated run time and disk use of a grid sweep (counted, never materialised).

    Args:
        configs_per_second: rows per second of one process.
        seconds_per_combination: set-up of one structural combination in one process.
        bytes_per_row: Parquet bytes per result row.
        processes: processes sharing the work.
        basis: where the figures come from (default: the planning figures of this module).
    """
    try:
        points = spec.grid_size()
        combinations = structural_count(spec)
    except SpecError as e:
        raise SpecError(f"{spec.path}: {e}") from None
    seconds = (points / configs_per_second + combinations * seconds_per_combination) / max(processes, 1)
    return SweepBudget(points, seconds, float(points) * bytes_per_row,
                       basis or "planning figures, not measured")


def check_budget(budget: SweepBudget, *, yes: bool) -> None:
    """Refuse a sweep above the size or disk threshold unless the user passed --yes."""
    if yes:
        return
    if budget.points > MAX_POINTS_WITHOUT_YES or budget.disk_bytes > MAX_BYTES_WITHOUT_YES:
        raise SpecError(f"this sweep has {budget.summary()} (over {MAX_POINTS_WITHOUT_YES:,} configurations or "
                        f"{MAX_BYTES_WITHOUT_YES / 1e9:g} GB); pass --yes to run it, or coarsen the grid")
