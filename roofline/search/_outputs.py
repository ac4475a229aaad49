"""Results of a search: the trials table, the ranking and the output files.

A search's output folder holds ``trials.parquet`` and ``trials.csv`` (every trial), ``best.csv``
(the ranking) and ``search.json`` (options, space, counts, timing, the best configuration), next
to the study's database.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from roofline._json import dumps as json_dumps
from roofline._json import json_value
from roofline._runfiles import atomic_write, replacing
from roofline.edge import edge_warnings
from roofline.search._options import (
    SEARCH_KEYS,
    Objectives,
    SearchOptions,
    SearchSpace,
    objectives,
    search_space,
)
from roofline.search._storage import masked
from roofline.search._worker import WorkerStats
from roofline.sweep import model_provenance
from roofline.sweepfile import SweepSpec
from roofline.workload import op_dtypes_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SearchResult", "finalize", "predict_kwargs", "trials_frame"]


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


def trials_frame(study: optuna.Study, spec: SweepSpec, options: SearchOptions) -> pd.DataFrame:
    """Every trial of the study: number, state, configuration, objective values, metrics,
    constraint values (``constraint_<name>``), feasibility and timing."""
    import pandas as pd

    space, objective = search_space(spec), objectives(spec, options)
    rows = []
    metric_names: dict[str, None] = {}
    for t in study.get_trials(deepcopy=False):
        row: dict[str, Any] = {"number": t.number, "state": t.state.name}
        # a precision the file leaves to the default is None here: the trial's metrics say what ran
        row.update({k: op_dtypes_text(v) if k == "op_dtypes" and isinstance(v, tuple) else v
                    for k, v in space.config(t.params).items() if v is not None})
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
    records = [{k: json_value(v) for k, v in r.items()} for r in ranked.to_dict(orient="records")]
    best = None
    if len(best_rows):
        best = {k: json_value(v) for k, v in best_rows.iloc[0].to_dict().items()}
    return records, best


def predict_kwargs(config: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Arguments of ``roofline.predict`` for a configuration (a ranked row or ``best``)."""
    kw: dict[str, Any] = {k: config[k] for k in ("batch", "input_len", "output_len", "tp", "pp", "dp", "ep")}
    kw = {k: int(v) for k, v in kw.items()}
    op_dtypes = config.get("op_dtypes")  # the result column: CLASS=W:A text
    kw.update(dtype=config["dtype"], kv_dtype=config.get("kv_dtype"),
              op_dtypes=op_dtypes if isinstance(op_dtypes, str) and op_dtypes else None, check_memory=False)
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


def _cost_basis(spec: Any) -> str:
    """What the dollar metrics of this search mean (manufacturing cost or price)."""
    from roofline.economics import basis_text
    from roofline.sweep import cost_parameters

    return basis_text(cost_parameters(spec).basis)


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, json_dumps(data, indent=2))


def _write_outputs(result: SearchResult, spec: SweepSpec, options: SearchOptions, out: Path) -> list[Path]:
    import pandas as pd

    files = []
    df = result.trials
    if not df.empty:  # each file under a temporary name, then renamed into place
        with replacing(out / "trials.parquet") as tmp:
            df.to_parquet(tmp, index=False)
        with replacing(out / "trials.csv") as tmp:
            df.to_csv(tmp, index=False)
        files += [out / "trials.parquet", out / "trials.csv"]
    if result.ranked:
        with replacing(out / "best.csv") as tmp:
            pd.DataFrame(result.ranked).to_csv(tmp, index=False)
        files.append(out / "best.csv")
    space = search_space(spec).to_json()
    space["distributions"] = {k: json.loads(v) for k, v in space["distributions"].items()}  # objects, not strings
    summary = {
        "status": "done" if result.complete >= result.requested else "incomplete",
        "sweep": spec.name, "file": spec.path, "study": result.study_name, "storage": result.storage,
        "dashboard": f"optuna-dashboard {result.storage}",
        "objective": [{d: m} for d, m in zip(result.objective.directions, result.objective.metrics)],
        "constraints": {k: json_value(v) for k, v in spec.constraints.items()},
        "cost_basis": _cost_basis(spec),
        "provenance": model_provenance(spec),
        "options": {k: getattr(options, k) for k in SEARCH_KEYS} | {"sampler": options.sampler_name},
        "space": space,
        "requested": result.requested, "counts": result.counts,
        "feasible": int(df["feasible"].sum()) if not df.empty else 0,
        "seconds": round(result.seconds, 3), "new_trials": result.new_trials,
        "ms_per_trial": None if math.isnan(result.ms_per_trial) else round(result.ms_per_trial, 2),
        "workers": [vars(w) for w in result.workers], "notes": result.notes,
        "best": result.best, "ranked": result.ranked,
        "edge_warnings": edge_warnings(spec.parameters, result.best),
        "counting": "the requested number counts COMPLETE trials; FAIL trials (a killed worker's "
                    "unfinished trials, a live trial marked stale when its heartbeat came late, or surplus ones "
                    "from a race between workers) are not counted",
    }
    _write_json(out / "search.json", summary)
    files.append(out / "search.json")
    return files
