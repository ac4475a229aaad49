"""Grid sweeps: every combination of a sweep file's parameters, evaluated in vectorized chunks.

Structural choices (model, device, batch, sequence lengths, dtype, parallelism) are a handful of
combinations; for each, the operator tables are built once and the hardware grid is evaluated
in chunks of ``chunk_size`` configurations with numpy (no Python loop over configurations).
Chunks run in worker processes and each lands in its own Parquet part file as soon as it is
done, so an interrupted sweep keeps every finished chunk and ``resume`` skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline._dataset import (
    DATASET_DIR,
    PartSummary,
    SummaryMerge,
    arrow_table,
    parquet_options,
    summarize_part,
)
from roofline._fingerprint import sweep_inputs
from roofline._json import dumps as json_dumps
from roofline._lifeline import die_with_parent
from roofline._malloc import prepare_worker, tune_malloc
from roofline._outdir import check_out_dir, claim_out_dir
from roofline._runfiles import replacing, tmp_path
from roofline._testhooks import kill_point
from roofline.cost import CostParameters, load_cost_parameters
from roofline.economics import basis_text
from roofline.edge import edge_warnings
from roofline.engine import BOUNDS, METRICS, Scenario, evaluate_configs
from roofline.exceptions import InfeasibleConfigError, RooflineError
from roofline.fitted import ModelChoice, fitted_model
from roofline.metrics import CONSTRAINTS
from roofline.model import load_model
from roofline.pareto import pareto_mask
from roofline.predict import DEFINITIONS
from roofline.serving.columns import SERVING_METRICS, serving_columns
from roofline.sweepfile import (
    SCENARIO_CHOICES,
    SweepBudget,
    SweepSpec,
    structural_count,
    sweep_budget,
)
from roofline.timing import HardwareArrays
from roofline.workload import Parallelism, PrefetchSettings, Workload

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["check_out_dir", "run_sweep", "sweep_frame", "SweepResult", "scenario_for", "evaluate_rows", "feasible_mask",
           "constraint_checks", "unmet_constraints", "model_provenance", "measure_budget"]

PARTS = ".parts"
#: What ``run_sweep(output=...)`` and ``roofline sweep --format`` write.
OUTPUT_FORMATS = ("parquet", "parquet-dataset")


def scenario_for(values: dict[str, Any], prefetch: PrefetchSettings | None = None,
                 model_choice: ModelChoice | None = None) -> Scenario:
    """The Scenario of one structural combination (raises for an impossible parallelism).

    ``prefetch``: the sweep file's ``scenario: {prefetch: ...}`` settings (default: off);
    ``model_choice``: its ``scenario: {datasheet: ..., framework: ...}`` (default: the fitted model,
    :mod:`roofline.fitted`).
    """
    model = load_model(values["model"])
    workload = Workload.for_model(model, values.get("dtype"), batch=int(values["batch"]),
                                  input_len=int(values["input_len"]), output_len=int(values["output_len"]),
                                  kv_dtype=values.get("kv_dtype"), op_dtypes=values.get("op_dtypes"),
                                  lm_head_dtype=values.get("lm_head_dtype"),
                                  collective_library=values.get("collective_library") or "custom",
                                  async_tp=values.get("async_tp") or False)  # None: not set in the file
    par = Parallelism(tp=int(values["tp"]), pp=int(values["pp"]), dp=int(values["dp"]), ep=int(values["ep"]))
    par.check(model)
    fitted = fitted_model(values["hardware"], model_choice or ModelChoice())
    return Scenario(model, workload, par, fitted.hardware, prefetch=prefetch or PrefetchSettings(),
                    overheads=fitted.overheads)


@lru_cache(maxsize=8)
def _cost_params(file: str | None, overrides: tuple[tuple[str, Any], ...]) -> CostParameters:
    return load_cost_parameters(file, dict(overrides) or None)


def model_provenance(spec: SweepSpec) -> dict[str, Any]:
    """Which model predicted each device of the sweep (roofline.fitted: fitted or datasheet, the
    calibrated profile, the overheads file and framework), for summaries and reports."""
    out = {name: fitted_model(name, spec.model_choice).provenance() for name in spec.devices}
    for prov in out.values() if spec.serving is not None else ():
        if not spec.model_choice.datasheet:  # its columns add its framework's overheads
            prov["serving_overheads_framework"] = spec.serving.settings.framework
        # the policy the serving columns ran (the block's kv_admission or the framework's): where the KV
        # cache is the limit the two give different numbers, and the summary named neither
        prov["serving_kv_admission"] = spec.serving.settings.kv_admission
    return out


def cost_parameters(spec: SweepSpec) -> CostParameters:
    return _cost_params(spec.cost_file, tuple(sorted(spec.cost_overrides.items())))


#: One constraint of a sweep file: (label, the metric column it reads, values -> where they break it).
ConstraintCheck = tuple[str, str, Callable[[np.ndarray], np.ndarray]]


def constraint_checks(spec: SweepSpec, columns: Collection[str]) -> list[ConstraintCheck]:
    """The constraints of the sweep file, each as the column it reads and where its values break it
    (NaN breaks a bound); a serving: block's ``serving_fits`` (its longest request must fit the
    KV cache) where ``columns`` hold it. What :func:`feasible_mask` and :func:`unmet_constraints`
    both apply."""
    checks: list[ConstraintCheck] = []
    if spec.constraints.get("memory_fit", True):
        checks.append(("memory_fit", "fits", lambda v: ~v.astype(bool)))
    for key, limit in CONSTRAINTS.items():
        if key in spec.constraints and key != "memory_fit":
            bound = float(spec.constraints[key])
            op, ok = ("<=", np.less_equal) if limit.upper else (">=", np.greater_equal)
            checks.append((f"{key} {op} {bound:g}", limit.metric,
                           lambda v, ok=ok, bound=bound: ~ok(v.astype(float), bound)))
    if "serving_fits" in columns:
        checks.append(("serving_fits (the longest request fits the KV cache)", "serving_fits",
                       lambda v: ~v.astype(bool)))
    return checks


def feasible_mask(spec: SweepSpec, m: dict[str, np.ndarray]) -> np.ndarray:
    """Constraints of the sweep file as one boolean mask."""
    ok = np.ones(len(m["tpot_ms"]), dtype=bool)
    for _, column, broken in constraint_checks(spec, m):
        ok &= ~broken(np.asarray(m[column]))
    return ok


def unmet_constraints(spec: SweepSpec, results: str | Path) -> list[tuple[str, int]]:
    """How many rows of a sweep's results break each of its constraints (a row may break several),
    most broken first: what to loosen when no row is feasible. Streams the few columns it reads
    from ``results.parquet`` or a dataset folder."""
    import pyarrow.dataset as ds

    data = ds.dataset(str(results), format="parquet")
    checks = constraint_checks(spec, data.schema.names)
    counts = [0] * len(checks)
    for batch in data.to_batches(columns=sorted({column for _, column, _ in checks})):
        for i, (_, column, broken) in enumerate(checks):
            counts[i] += int(broken(batch.column(column).to_numpy(zero_copy_only=False)).sum())
    return sorted(((label, n) for (label, _, _), n in zip(checks, counts)), key=lambda item: -item[1])


def evaluate_rows(spec: SweepSpec, combo: dict[str, Any] | None, params: dict[str, np.ndarray], *,
                  scenario: Scenario | None = None, cost_params: CostParameters | None = None) -> dict[str, Any]:
    """Metrics and configuration columns for the hardware points ``params`` of one combination
    (or of its ``scenario`` and ``cost_params``, when built already: on a cluster's worker,
    where the spec files may not be)."""
    scenario = scenario or scenario_for(combo or {}, spec.prefetch, spec.model_choice)
    n = len(next(iter(params.values()))) if params else 1
    hw_params = {k: v for k, v in params.items() if k != "prefetch"}
    m = evaluate_configs(scenario, n, prefetch=params.get("prefetch"),
                         cost_params=cost_params or cost_parameters(spec), **hw_params)
    columns: dict[str, Any] = {
        "model": np.full(n, scenario.model.name), "hardware": np.full(n, scenario.hardware.name),
        "batch": np.full(n, scenario.workload.batch), "input_len": np.full(n, scenario.workload.input_len),
        "output_len": np.full(n, scenario.workload.output_len),
        "dtype": np.full(n, scenario.workload.dtype_spec), "kv_dtype": np.full(n, scenario.workload.kv),
        "op_dtypes": np.full(n, scenario.workload.op_dtypes_spec),
        "tp": np.full(n, scenario.parallelism.tp), "pp": np.full(n, scenario.parallelism.pp),
        "dp": np.full(n, scenario.parallelism.dp), "ep": np.full(n, scenario.parallelism.ep),
        "devices": np.full(n, scenario.devices),
    }
    for name in SCENARIO_CHOICES:  # scenario settings the file fixes or sweeps
        if spec.fixed.get(name) is not None or any(p.name == name for p in spec.parameters):
            columns[name] = np.full(n, getattr(scenario.workload, name))
    for name, values in params.items():
        columns[name] = np.broadcast_to(values, (n,))
    if "prefetch" not in params:
        columns["prefetch"] = np.full(n, scenario.prefetch.enabled)
    columns.update({k: v for k, v in m.items() if k != "decode_bound"})
    columns["decode_bound"] = np.asarray(BOUNDS)[m["decode_bound"]]
    if spec.serving is not None:  # serving metrics of the same configurations (roofline.serving)
        w = scenario.workload  # the scenario's settings, as the static columns use them
        hw = HardwareArrays.from_spec(scenario.hardware, n, prefetch=params.get("prefetch"),
                                      collective_library=w.collective_library, async_tp=w.async_tp,
                                      prefetch_settings=scenario.prefetch, **hw_params)
        m = m | serving_columns(scenario.model, scenario.workload, scenario.parallelism, hw, spec.serving,
                                scenario.hardware, cost_params or cost_parameters(spec), spec.model_choice.datasheet)
        columns.update({k: m[k] for k in SERVING_METRICS})
    columns["feasible"] = feasible_mask(spec, m)
    return columns


@dataclass(frozen=True)
class _Task:
    combo_index: int
    chunk_index: int
    start: int
    stop: int

    @property
    def part_name(self) -> str:
        """The part file of this chunk, keyed by its combination and first row, so that parts of
        another chunking can never be taken for these (``--resume`` refuses a changed chunk size)."""
        return f"part-{self.combo_index:04d}-{self.start:012d}.parquet"


def _grid_chunk(grid: dict[str, np.ndarray], start: int, stop: int) -> dict[str, np.ndarray]:
    names = list(grid)
    if not names:
        return {}
    shape = tuple(len(grid[n]) for n in names)
    idx = np.unravel_index(np.arange(start, stop), shape)
    return {n: grid[n][i] for n, i in zip(names, idx)}


#: Scenarios a pool worker has built, by combination index: a pool serves one sweep (its initializer
#: clears them), and reading the model and device files again for every chunk cost 0.3 us a row
_WORKER_SCENARIOS: dict[int, Scenario] = {}


def _run_task(spec: SweepSpec, combos: list[dict[str, Any]], task: _Task, parts: Path, top: int | None = None,
              scenarios: dict[int, Scenario] | None = None) -> tuple[int, PartSummary | None]:
    """One chunk to its part file: its rows, and with ``top`` (a dataset sweep) its summary
    (:func:`roofline._dataset.summarize_part`: computed here, in parallel, from the columns in
    memory). ``scenarios``: those built already, by combination index (default: this pool
    worker's)."""
    import pyarrow.parquet as pq

    scenarios = _WORKER_SCENARIOS if scenarios is None else scenarios
    combo = combos[task.combo_index]
    scenario = scenarios.get(task.combo_index)
    if scenario is None:
        scenario = scenarios[task.combo_index] = scenario_for(combo, spec.prefetch, spec.model_choice)
    columns = evaluate_rows(spec, combo, _grid_chunk(spec.hardware_grid(), task.start, task.stop), scenario=scenario)
    table = arrow_table(columns)
    with replacing(parts / task.part_name) as tmp:  # a part file is either complete or absent
        pq.write_table(table, tmp, **parquet_options(table.schema))
    summary = None if top is None else _summarize(spec, columns, table, top)
    return task.stop - task.start, summary


def _summarize(spec: SweepSpec, columns: dict[str, Any], table: Any, top: int) -> PartSummary:
    direction, metric = spec.objective
    return summarize_part(columns, metric=metric, maximize=_better(direction),
                          pareto=[(m, _better(d)) for d, m in spec.pareto], top=top, table=table)


def _plan(spec: SweepSpec, chunk_size: int) -> tuple[list[dict[str, Any]], list[_Task], list[str]]:
    combos, skipped = [], []
    for values in spec.structural_combinations():
        try:
            scenario_for(values)
        except InfeasibleConfigError as e:
            skipped.append(str(e))
            continue
        combos.append(values)
    grid = spec.hardware_grid()
    size = int(np.prod([len(v) for v in grid.values()], dtype=np.int64)) if grid else 1
    tasks = [_Task(c, k, start, min(start + chunk_size, size))
             for c in range(len(combos)) for k, start in enumerate(range(0, size, chunk_size))]
    return combos, tasks, skipped


#: Axis values (summed over the hardware axes) above which ``measure_budget`` does not sample
#: (it would materialise the axes: 8 bytes a value)
MAX_AXIS_VALUES_TO_MEASURE = 1_000_000


def measure_budget(spec: SweepSpec, *, workers: int | None = None, chunk_size: int = 16384,
                   sample: int = 4096) -> SweepBudget:
    """The sweep's budget from figures measured on this machine, on the sweep itself: the set-up
    of the first feasible combination (its first evaluation, operator tables included), the rate
    of one process on its first ``sample`` points (or fewer when the sweep has fewer), and the
    Parquet bytes per row of those points. Falls back to the planning figures when no
    combination can run (the sweep then stops with its own error), or when the hardware axes
    hold more than ``MAX_AXIS_VALUES_TO_MEASURE`` values (they are counted, never materialised,
    before the user confirms such a sweep)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    budget = sweep_budget(spec)  # counts, and checks the grid can be counted
    if sum(p.count() for p in spec.hardware_parameters) > MAX_AXIS_VALUES_TO_MEASURE:
        return budget  # the axes would be materialised to sample them: a grid too large to run anyway
    combo = next((c for c in spec.structural_combinations() if _runs(c)), None)
    if combo is None:
        return budget
    grid = spec.hardware_grid()
    n = int(min(sample, chunk_size, max(budget.points // max(structural_count(spec), 1), 1)))
    started = time.perf_counter()
    evaluate_rows(spec, combo, _grid_chunk(grid, 0, 1))
    setup_s = time.perf_counter() - started
    started = time.perf_counter()
    columns = evaluate_rows(spec, combo, _grid_chunk(grid, 0, n))
    rate = n / max(time.perf_counter() - started, 1e-9)
    parquet = io.BytesIO()
    pq.write_table(pa.table(columns), parquet)
    bytes_per_row = len(parquet.getvalue()) / n
    chunks = -(-budget.points // chunk_size)
    processes = min(workers or os.cpu_count() or 1, max(chunks, 1))
    return sweep_budget(spec, configs_per_second=rate, seconds_per_combination=setup_s, bytes_per_row=bytes_per_row,
                        processes=processes,
                        basis=f"measured on {n:,} of its points: {rate:,.0f} configs/s per process, "
                              f"{processes} process{'es' if processes > 1 else ''}, {bytes_per_row:,.0f} bytes per row")


def _runs(combo: dict[str, Any]) -> bool:
    try:
        scenario_for(combo)
    except InfeasibleConfigError:
        return False
    return True


@dataclass
class SweepResult:
    """What a finished sweep wrote, and its headline numbers."""

    out_dir: Path
    rows: int
    feasible: int
    seconds: float
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    best: list[dict[str, Any]] = field(default_factory=list)
    pareto: list[dict[str, Any]] = field(default_factory=list)

    @property
    def configs_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


#: Writes more outputs of a finished sweep while its folder is still locked: gets the result and
#: ``record(*paths)``, to call before writing each file; returns the files written.
ExtraOutputs = Callable[[SweepResult, Callable[..., None]], list[Path]]


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    force: bool = False,
    resume: bool = False,
    workers: int | None = None,
    chunk_size: int = 16384,
    csv: bool | None = None,
    top: int = 10,
    progress: Callable[[int, int], None] | None = None,
    then: ExtraOutputs | None = None,
    scheduler: str | None = None,
    output: str = "parquet",
) -> SweepResult:
    """Run a grid sweep and write ``results.parquet`` (and ``results.csv``) into ``out_dir``.

    The folder is locked for the run and lists what the run writes (see ``roofline._outdir``):
    ``force`` removes only those files of an earlier sweep, a folder holding anything else is
    refused, and ``resume`` continues an interrupted run only when the sweep file, every spec
    it uses, the chunk size, the number of points and the code are the same. Final files are
    written under temporary names and renamed into place; a run that fails removes what it
    wrote, one that is interrupted keeps its finished chunks for ``resume``.

    Args:
        spec: the parsed sweep file.
        out_dir: output folder; an existing one is refused unless ``force`` (start over) or
            ``resume`` (keep finished chunks of an interrupted run).
        workers: processes (default: the CPU count); 1 runs in this process.
        chunk_size: configurations per vectorized evaluation (bounds memory).
        csv: also write CSV (default: when the sweep has at most 2 million rows).
        top: best rows kept in the result summary.
        progress: called with (rows done, rows total) as chunks finish.
        then: writes more outputs (plots) before the folder is released (see ``ExtraOutputs``).
        scheduler: a Dask scheduler's address (``tcp://HOST:8786``): its workers evaluate the
            chunks (``workers`` is then unused) and send the rows back; this process writes the
            part files, so the results are the same files as a local run's.
        output: ``"parquet"`` (one ``results.parquet``, merged from the chunks) or
            ``"parquet-dataset"`` (the folder ``results/`` of one Parquet file per chunk, never
            merged nor held in memory: for sweeps of many millions of rows; no CSV).

    Raises:
        SpecError: the folder is refused (see above), or ``resume`` does not match.
        InfeasibleConfigError: no combination of the sweep can run.
        RooflineError: no Dask scheduler (with a worker) answers at ``scheduler``.
    """
    if output not in OUTPUT_FORMATS:
        raise RooflineError(f"output format {output!r} is not allowed; choose one of {', '.join(OUTPUT_FORMATS)}")
    combos, tasks, skipped = _plan(spec, chunk_size)
    if not tasks:
        raise InfeasibleConfigError(f"{spec.path}: no feasible combination to sweep ({'; '.join(skipped[:3])})")
    total = sum(t.stop - t.start for t in tasks)
    with contextlib.ExitStack() as stack:
        client = None
        if scheduler is not None:  # before the folder is claimed: a bad address leaves nothing behind
            from roofline._cluster import connect

            client = stack.enter_context(connect(scheduler))
        return _run_claimed(spec, out_dir, combos, tasks, skipped, total, force=force, resume=resume,
                            workers=workers, chunk_size=chunk_size, csv=csv, top=top, progress=progress,
                            then=then, client=client, dataset=output == "parquet-dataset")


def _run_claimed(spec: SweepSpec, out_dir: str | Path, combos: list[dict[str, Any]], tasks: list[_Task],
                 skipped: list[str], total: int, *, force: bool, resume: bool, workers: int | None,
                 chunk_size: int, csv: bool | None, top: int, progress: Callable[[int, int], None] | None,
                 then: ExtraOutputs | None, client: Any, dataset: bool) -> SweepResult:
    inputs = sweep_inputs(spec, chunk_size, total) | {"output format": "parquet-dataset" if dataset else "parquet"}
    run = claim_out_dir(out_dir, command="sweep", inputs=inputs, force=force, resume=resume, known=_KNOWN_OUTPUTS)
    out = run.path
    parts = out / (DATASET_DIR if dataset else PARTS)  # a dataset's parts are its files
    try:
        if run.resumed and run.manifest.stage in ("merged", "done"):  # killed after the merge
            if not dataset:
                shutil.rmtree(parts, ignore_errors=True)
            result = _load_result(spec, out)
            if progress:
                progress(total, total)
        else:
            run.record(parts, directory=True)
            parts.mkdir(exist_ok=True)
            started = time.perf_counter()
            direction, metric = spec.objective
            # a dataset's summary is merged as the parts are written (the parts' summaries are not kept)
            merge = SummaryMerge([parts / t.part_name for t in tasks], metric=metric, maximize=_better(direction),
                                 pareto=[(m, _better(d)) for d, m in spec.pareto], top=top) if dataset else None
            if client is not None:
                _run_on_cluster(client, spec, combos, tasks, parts, total, progress)
            else:
                _evaluate(spec, combos, tasks, parts, total, workers, progress, merge)
            seconds = time.perf_counter() - started
            if dataset:
                result = _finalize_dataset(spec, out, parts, total, seconds, skipped, run.record, merge)
            else:
                result = _finalize(spec, out, parts, tasks, total, seconds, skipped, csv, top, run.record)
            run.set_stage("merged")  # every final file is in place: the parts are no longer needed
            if not dataset:
                shutil.rmtree(parts)
        run.kept = (*run.manifest.files, *run.manifest.dirs)  # a failure from here on keeps the results
        if then is not None:
            result.files += then(result, run.record)
    except KeyboardInterrupt:
        run.interrupt()
        raise
    except BaseException:
        run.abandon()
        raise
    run.finish()
    return result


#: What a sweep writes (to recognise a folder an older version wrote without a manifest).
_KNOWN_OUTPUTS = ("results.parquet", "results.csv", "pareto.parquet", "summary.json", f"{PARTS}/", f"{DATASET_DIR}/",
                  "plots/pareto.html", "plots/pareto.png", "plots/perf_per_cost_vs_l2.html",
                  "plots/perf_per_cost_vs_l2.png")


def _evaluate(spec: SweepSpec, combos: list[dict[str, Any]], tasks: list[_Task], parts: Path, total: int,
              workers: int | None, progress: Callable[[int, int], None] | None,
              merge: SummaryMerge | None) -> None:
    """The parts still to write; with ``merge`` (a dataset sweep), the summary of each part
    written is folded into it."""
    todo, done = _todo(tasks, parts, total)
    if progress:
        progress(done, total)
    workers = workers or os.cpu_count() or 1
    tune_malloc()  # forked workers inherit it
    top = None if merge is None else merge.top
    if workers == 1 or len(todo) == 1:
        scenarios: dict[int, Scenario] = {}
        for k, t in enumerate(todo, 1):
            rows, summary = _run_task(spec, combos, t, parts, top, scenarios)
            done += rows
            if summary is not None:
                merge.add(parts / t.part_name, summary)
            kill_point("part", k)
            if progress:
                progress(done, total)
    else:
        _run_parallel(spec, combos, todo, parts, workers, done, total, progress, merge)


def _todo(tasks: list[_Task], parts: Path, total: int) -> tuple[list[_Task], int]:
    """The tasks whose part file is not written yet, and the rows already done."""
    todo = [t for t in tasks if not (parts / t.part_name).exists()]
    return todo, total - sum(t.stop - t.start for t in todo)


def _chunk_table(spec: SweepSpec, scenarios: list[Scenario], cost: tuple[Any, ...], task: _Task) -> Any:
    """One chunk's rows as an Arrow table, on a cluster's worker (from what the client sent)."""

    from roofline._cluster import restore_cost

    params = _grid_chunk(spec.hardware_grid(), task.start, task.stop)
    return arrow_table(evaluate_rows(spec, None, params, scenario=scenarios[task.combo_index],
                                     cost_params=restore_cost(cost)))


def _run_on_cluster(client: Any, spec: SweepSpec, combos: list[dict[str, Any]], tasks: list[_Task], parts: Path,
                    total: int, progress: Callable[[int, int], None] | None) -> None:
    """The chunks on a Dask cluster: the workers return tables, this process writes the parts."""
    import pyarrow.parquet as pq

    from roofline._cluster import portable_cost, run_on_cluster

    todo, done = _todo(tasks, parts, total)
    if progress:
        progress(done, total)
    scenarios = [scenario_for(c, spec.prefetch, spec.model_choice) for c in combos]  # the spec files are read here only
    shared = (spec, scenarios, portable_cost(cost_parameters(spec)))
    for written, (task, table) in enumerate(run_on_cluster(client, _chunk_table, shared, todo), 1):
        with replacing(parts / task.part_name) as tmp:  # a part file is either complete or absent
            pq.write_table(table, tmp, **parquet_options(table.schema))
        done += task.stop - task.start
        kill_point("part", written)
        if progress:
            progress(done, total)


def _init_worker(parent_pid: int) -> None:
    """Worker set-up: malloc and BLAS settings, and exit when the parent dies."""
    die_with_parent(parent_pid)
    prepare_worker()
    _WORKER_SCENARIOS.clear()  # a forked worker starts with none: its pool serves one sweep


def _run_parallel(spec: SweepSpec, combos: list[dict[str, Any]], todo: list[_Task], parts: Path, workers: int,
                  done: int, total: int, progress: Callable[[int, int], None] | None,
                  merge: SummaryMerge | None) -> int:
    import multiprocessing

    top = None if merge is None else merge.top
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    written = 0
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                             initargs=(os.getpid(),)) as pool:
        pending: dict[Any, _Task] = {}
        queue: Iterator[_Task] = iter(todo)
        for t in queue:  # keep at most 2 tasks per worker in flight: memory stays bounded
            pending[pool.submit(_run_task, spec, combos, t, parts, top)] = t
            if len(pending) >= 2 * workers:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                task = pending.pop(f)
                rows, summary = f.result()
                done += rows
                if summary is not None:
                    merge.add(parts / task.part_name, summary)
                written += 1
                kill_point("part", written)
                if progress:
                    progress(done, total)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(_run_task, spec, combos, nxt, parts, top)] = nxt
    return done


def _better(direction: str) -> bool:
    return direction == "maximize"


def _finalize(spec: SweepSpec, out: Path, parts: Path, tasks: list[_Task], total: int, seconds: float,
              skipped: list[str], csv: bool | None, top: int, record: Callable[..., None]) -> SweepResult:
    """Merge the part files, in the plan's order, into the final files: each is written under a
    temporary name and renamed into place once all of them are complete."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    part_files = [parts / t.part_name for t in tasks]
    missing = [p.name for p in part_files if not p.exists()]
    if missing:
        raise RooflineError(f"{parts}: part file {missing[0]} is missing; run the sweep again with --resume")
    write_csv = csv if csv is not None else total <= 2_000_000
    final = [out / "results.parquet"] + ([out / "results.csv"] if write_csv else [])
    record(*final, out / "pareto.parquet", out / "summary.json")
    direction, metric = spec.objective
    best = _TopK(top, metric, _better(direction))
    front_rows: list[pa.Table] = []
    feasible = 0
    writer = None
    csv_writer = None
    try:
        for table in _read_parts(part_files):
            if writer is None:
                writer = pq.ParquetWriter(tmp_path(final[0]), table.schema, **parquet_options(table.schema))
                if write_csv:
                    csv_writer = pacsv.CSVWriter(tmp_path(final[1]), table.schema)
            writer.write_table(table)
            kill_point("merge")
            if csv_writer is not None:
                csv_writer.write_table(table)
            ok = np.asarray(table.column("feasible"))
            feasible += int(ok.sum())
            if ok.any():
                good = table.filter(pa.array(ok))
                best.add(good)
                front_rows.append(_front(good, spec))
    finally:
        if writer is not None:
            writer.close()
        if csv_writer is not None:
            csv_writer.close()
    files = list(final)
    pareto = pa.concat_tables(front_rows) if front_rows else None
    pareto = _front(pareto, spec) if pareto is not None and pareto.num_rows else pareto
    return _write_summary(spec, out, total, feasible, seconds, skipped, best.rows(), pareto, files)


def _finalize_dataset(spec: SweepSpec, out: Path, parts: Path, total: int, seconds: float,
                      skipped: list[str], record: Callable[..., None], merge: SummaryMerge) -> SweepResult:
    """The summary of a dataset sweep: its parts stay as they are (they are the results); the
    feasible count, best rows and front are ``merge``'s (the summaries the workers computed, folded
    in as they came; the metric columns of the other parts, from an earlier run, are streamed)."""
    missing = [p.name for p in merge.files if not p.exists()]
    if missing:
        raise RooflineError(f"{parts}: part file {missing[0]} is missing; run the sweep again with --resume")
    record(out / "pareto.parquet", out / "summary.json")
    feasible, best, pareto = merge.finish()
    rows = [] if best is None else best.to_pylist()
    return _write_summary(spec, out, total, feasible, seconds, skipped, rows, pareto, [parts])


def _write_summary(spec: SweepSpec, out: Path, total: int, feasible: int, seconds: float, skipped: list[str],
                   best: list[dict[str, Any]], pareto: Any, files: list[Path]) -> SweepResult:
    """Write ``pareto.parquet`` and ``summary.json`` (temporary names, then renamed with the other
    final files in ``files`` that are still under theirs; summary.json last)."""
    import pyarrow.parquet as pq

    pareto_metrics = [m for _, m in spec.pareto]
    direction, metric = spec.objective
    pareto_list = pareto.sort_by(pareto_metrics[0]).to_pylist() if pareto is not None else []
    renamed = [f for f in files if tmp_path(f).exists()]
    if pareto is not None:
        pq.write_table(pareto, tmp_path(out / "pareto.parquet"))
        files.append(out / "pareto.parquet")
        renamed.append(out / "pareto.parquet")
    result = SweepResult(out, total, feasible, seconds, files, skipped, best, pareto_list)
    summary = {
        "sweep": spec.name, "file": spec.path, "rows": total, "feasible": feasible,
        "seconds": round(seconds, 3), "configs_per_second": round(result.configs_per_second),
        "objective": {direction: metric}, "pareto": [{d: m} for d, m in spec.pareto],
        "constraints": spec.constraints, "skipped_combinations": skipped, "best": result.best,
        "pareto_front": pareto_list,
        "metrics": METRICS | (SERVING_METRICS if spec.serving is not None else {}),
        "definitions": DEFINITIONS | {"cost_basis": basis_text(cost_parameters(spec).basis)},
        "edge_warnings": edge_warnings(spec.parameters, result.best[0] if result.best else None),
        "provenance": model_provenance(spec),
    }
    tmp_path(out / "summary.json").write_text(json_dumps(summary, indent=2))
    files.append(out / "summary.json")
    for f in [*renamed, out / "summary.json"]:  # summary.json last: its presence says the others are complete
        os.replace(tmp_path(f), f)
    if pareto is None:  # an earlier front of this run's own must not outlive it
        with contextlib.suppress(FileNotFoundError):
            (out / "pareto.parquet").unlink()
    return result


def _load_result(spec: SweepSpec, out: Path) -> SweepResult:
    """The result of a sweep whose merge finished (a run killed afterwards, resumed)."""
    try:
        summary = json.loads((out / "summary.json").read_text())
    except (OSError, ValueError):
        raise RooflineError(f"{out}: summary.json of the finished merge is missing or unreadable; "
                            f"pass --force to run the sweep again") from None
    files = [out / n for n in ("results.parquet", "results.csv", DATASET_DIR, "pareto.parquet", "summary.json")
             if (out / n).exists()]
    return SweepResult(out, int(summary["rows"]), int(summary["feasible"]), float(summary["seconds"]), files,
                       list(summary["skipped_combinations"]), list(summary["best"]), list(summary["pareto_front"]))


def _read_parts(files: list[Path]) -> Iterator[Any]:
    """The part files one at a time, so that merging them holds one chunk in memory."""
    import pyarrow.parquet as pq

    for f in files:
        yield pq.read_table(f, use_threads=False)


def _front(table: Any, spec: SweepSpec) -> Any:
    import pyarrow as pa

    values = np.column_stack([np.asarray(table.column(m), dtype=float) for _, m in spec.pareto])
    mask = pareto_mask(values, [_better(d) for d, _ in spec.pareto])
    return table.filter(pa.array(mask))


class _TopK:
    """The k best rows seen so far by one metric, merged batch by batch."""

    def __init__(self, k: int, metric: str, maximize: bool) -> None:
        self.k, self.metric, self.maximize = k, metric, maximize
        self.table: Any = None

    def add(self, table: Any) -> None:
        import pyarrow as pa

        merged = table if self.table is None else pa.concat_tables([self.table, table])
        order = "descending" if self.maximize else "ascending"
        self.table = merged.sort_by([(self.metric, order)]).slice(0, self.k)

    def rows(self) -> list[dict[str, Any]]:
        return [] if self.table is None else self.table.to_pylist()


def sweep_frame(spec: SweepSpec, *, max_rows: int = 5_000_000) -> pd.DataFrame:
    """Evaluate a (small) sweep in memory and return a DataFrame, for notebooks."""
    import pandas as pd

    combos, tasks, _ = _plan(spec, chunk_size=max_rows)
    frames = []
    for t in tasks:
        columns = evaluate_rows(spec, combos[t.combo_index], _grid_chunk(spec.hardware_grid(), t.start, t.stop))
        frames.append(pd.DataFrame(columns))
    if not frames:
        raise RooflineError(f"{spec.path}: nothing to sweep")
    return pd.concat(frames, ignore_index=True)
