"""Optuna search over a sweep file's space: the hardware configurations with the best performance
per cost (or any objective and constraints the file names), on one machine or several.

The search space, objective, constraints and Pareto metrics come from the sweep-file format of
``roofline.sweepfile``; options come from its ``search:`` block and can be overridden from the
command line::

    search: {trials: 200, sampler: tpe, seed: 0, batch_size: 16, multi_objective: false}

Trials are asked in batches and each batch is evaluated at once by the vectorized engine;
constraints go through Optuna's constraint mechanism, so no infeasible trial is ever ranked. The
study lives in a database (a SQLite file by default), so running the same search again resumes it,
and several workers, on one machine or several, can share it; the requested number of trials
counts COMPLETE trials, so a killed worker's unfinished trials are replaced.

One private module per part (import everything from ``roofline.search``):

- ``_options``: the ``search:`` options, the search space (how a sweep-file parameter becomes an
  Optuna distribution) and the objectives.
- ``_evaluate``: a batch of trials through the vectorized engine; constraint values.
- ``_storage``: the study's database, the samplers, creating or resuming a study.
- ``_worker``: one worker's ask / evaluate / tell loop, heartbeats, a worker process.
- ``_run``: a whole search (:func:`run_search`): study, workers, outputs.
- ``_outputs``: the trials table, the ranking and the output files.
- ``_status``: whether the run in an output folder is running, interrupted or done.
"""

from __future__ import annotations

from roofline.search._evaluate import TrialOutcome, constraint_names, evaluate_params
from roofline.search._options import (
    SAMPLERS,
    SEARCH_KEYS,
    Objectives,
    SearchOptions,
    SearchSpace,
    objectives,
    search_options,
    search_space,
)
from roofline.search._outputs import SearchResult, finalize, predict_kwargs, trials_frame
from roofline.search._run import run_search
from roofline.search._status import read_status, search_status
from roofline.search._storage import (
    default_storage,
    make_sampler,
    masked,
    open_storage,
    prepare_study,
)
from roofline.search._worker import COUNTED, PENDING, WorkerStats, run_worker

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
    "read_status",
    "run_search",
    "run_worker",
    "search_status",
    "search_options",
    "search_space",
    "trials_frame",
    # constants and helpers
    "COUNTED",
    "PENDING",
    "SEARCH_KEYS",
    "constraint_names",
    "default_storage",
    "masked",
]
