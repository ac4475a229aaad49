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
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roofline._specfile import Block, closest, read_yaml
from roofline.exceptions import SpecError
from roofline.hardware import load_hardware
from roofline.model import load_model
from roofline.serving.columns import SERVING_METRICS, ServingBlock, parse_serving_block
from roofline.timing import SWEEPABLE
from roofline.workload import parse_op_dtypes

__all__ = ["Parameter", "SweepSpec", "load_sweep", "STRUCTURAL", "HARDWARE_PARAMETERS", "METRIC_NAMES"]

#: Parameters that change the operator tables: evaluated one combination at a time.
STRUCTURAL = ("model", "hardware", "batch", "input_len", "output_len", "dtype", "kv_dtype", "op_dtypes",
              "tp", "pp", "dp", "ep")
#: Parameters evaluated as arrays by the vectorized engine.
HARDWARE_PARAMETERS = tuple(SWEEPABLE) + ("prefetch",)
METRIC_NAMES = ("ttft_ms", "tpot_ms", "e2e_ms", "throughput_tok_s", "baseline_ttft_ms", "baseline_tpot_ms",
                "baseline_e2e_ms", "baseline_throughput_tok_s", "prefetch_speedup", "memory_GiB",
                "device_cost_usd", "system_cost_usd", "tok_s_per_kusd", "baseline_tok_s_per_kusd",
                "power_w", "energy_j_per_token", "sustained_throughput_tok_s", "tco_usd_per_mtok",
                "tok_s_per_tco_kusd", *SERVING_METRICS)
CONSTRAINTS = {
    "memory_fit": "the model, KV cache and activations fit in HBM (true/false)",
    "max_tpot_ms": "TPOT at most this", "max_ttft_ms": "TTFT at most this",
    "max_e2e_ms": "e2e latency at most this", "max_system_cost_usd": "system cost at most this",
    "min_throughput_tok_s": "throughput at least this",
    "max_power_w": "average device power at most this", "max_energy_j_per_token": "energy per token at most this",
    "max_tco_usd_per_mtok": "TCO per million tokens at most this",
    "min_goodput_tok_s": "serving goodput at least this (needs a serving: block)",
}
WORKLOAD_KEYS = ("batch", "input_len", "output_len", "dtype", "kv_dtype", "op_dtypes")
PARALLEL_KEYS = ("tp", "pp", "dp", "ep")


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

    def grid(self) -> np.ndarray | tuple[Any, ...]:
        """The values a grid sweep visits."""
        if self.values is not None:
            return self.values
        assert self.low is not None and self.high is not None
        if self.step is not None:
            count = int(np.floor((self.high - self.low) / self.step + 1e-9)) + 1
            values = self.low + self.step * np.arange(count)
        elif self.num is not None:
            values = (np.geomspace(self.low, self.high, self.num) if self.log
                      else np.linspace(self.low, self.high, self.num))
        else:
            raise SpecError(f"sweep.{self.name}: a grid needs 'step' or 'num' with low/high "
                            f"(a bare range is only for `roofline optimize`)")
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
        per_combo = int(np.prod([len(v) for v in self.hardware_grid().values()], dtype=np.int64))
        combos = len(self.models) * len(self.hardware) * int(
            np.prod([len(p.grid()) for p in self.structural_parameters], dtype=np.int64))
        return per_combo * combos


def _parameter(name: str, raw: Any, file: str) -> Parameter:
    where = f"{file}: sweep.{name}"
    if name not in HARDWARE_PARAMETERS and name not in STRUCTURAL:
        allowed = sorted(HARDWARE_PARAMETERS) + list(STRUCTURAL)
        raise SpecError(f"{where}: unknown parameter{closest(name, allowed)} (allowed: {', '.join(allowed)})")
    integer = name in ("batch", "input_len", "output_len", "tp", "pp", "dp", "ep", "links_per_device")
    if isinstance(raw, list):
        if not raw:
            raise SpecError(f"{where}: empty list of values")
        return Parameter(name, values=tuple(raw), integer=integer)
    if not isinstance(raw, Mapping):
        return Parameter(name, values=(raw,), integer=integer)
    b = Block(raw, file, f"sweep.{name}")
    b.check_keys([], ["values", "low", "high", "step", "num", "log"])
    if b.has("values"):
        values = b.raw("values")
        if not isinstance(values, list) or not values:
            raise b.error("values", "expected a non-empty list")
        return Parameter(name, values=tuple(values), integer=integer)
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
    num = b.integer("num") if b.has("num") else None
    return Parameter(name, low=low, high=high, step=step, num=num, log=log, integer=integer)


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
        raise inner.error(direction, f"unknown metric {metric!r}{closest(str(metric), METRIC_NAMES)}; "
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
        for metric in metrics:
            if metric not in METRIC_NAMES:
                raise inner.error(direction, f"unknown metric {metric!r}; choose from {', '.join(METRIC_NAMES)}")
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


def sweep_from_dict(data: dict[str, Any], file: str = "<dict>") -> SweepSpec:
    """Parse and check a sweep definition; every error names the file and key."""
    b = Block(data, file)
    b.check_keys(["hardware", "model"],
                 ["name", "description", "workload", "parallelism", "sweep", "constraints", "objective",
                  "pareto", "cost", "search", "serving"])
    # dtype None: the model's HF quantization_config, else bf16 (Workload.for_model)
    fixed: dict[str, Any] = {"batch": 1, "input_len": 2048, "output_len": 128, "dtype": None,
                             "kv_dtype": None, "op_dtypes": (), "tp": 1, "pp": 1, "dp": 1, "ep": 1}
    for section, keys in (("workload", WORKLOAD_KEYS), ("parallelism", PARALLEL_KEYS)):
        if b.has(section):
            block = b.block(section)
            block.check_keys([], keys)
            for key in keys:
                if block.has(key):
                    value = block.raw(key)
                    if key in ("dtype", "kv_dtype"):
                        fixed[key] = block.string(key)
                    elif key == "op_dtypes":
                        fixed[key] = _op_dtypes(value, block.error)
                    elif isinstance(value, bool) or not isinstance(value, int) or value < 1:
                        raise block.error(key, f"must be a positive integer, got {value!r}")
                    else:
                        fixed[key] = value
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
        cost_file = str(cost.raw("file")) if cost.has("file") else None
        if cost.has("overrides"):
            overrides = dict(cost.block("overrides").data)
    search = dict(b.block("search").data) if b.has("search") else {}
    serving = parse_serving_block(b.raw("serving"), file) if b.has("serving") else None
    serving_metrics = [m for m in (objective[1], *(m for _, m in _pareto(b)), *constraints) if m in SERVING_METRICS
                       or m == "min_goodput_tok_s"]
    if serving_metrics and serving is None:
        raise SpecError(f"{file}: {serving_metrics[0]} needs a serving: block (workload, engine, SLO)")
    models, devices = _names(b, "model"), _names(b, "hardware")
    _check_specs(file, "model", models, load_model)
    _check_specs(file, "hardware", devices, load_hardware)
    return SweepSpec(
        name=str(b.raw("name", Path(file).stem)), path=str(file), hardware=devices,
        models=models, fixed=fixed, parameters=tuple(parameters), constraints=constraints,
        objective=objective, pareto=_pareto(b), cost_file=cost_file, cost_overrides=overrides,
        search=search, description=str(b.raw("description", "")), serving=serving,
    )


def load_sweep(path: str | Path) -> SweepSpec:
    """Read a sweep file (YAML)."""
    p = Path(path)
    if not p.exists():
        raise SpecError(f"{p}: sweep file not found")
    return sweep_from_dict(read_yaml(p), str(p))
