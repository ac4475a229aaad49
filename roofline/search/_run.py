"""A whole search: study, workers, outputs (:func:`run_search`).

One worker runs in this process; with ``workers > 1`` each worker is a spawned process on the
same study (worker i seeds its sampler with seed + i, plus the number of trials the study already
had, so a resumed run does not repeat), and this process reports their progress and failures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from roofline._outdir import OutDir, claim_out_dir
from roofline.exceptions import RooflineError
from roofline.search._evaluate import _preflight
from roofline.search._options import SearchOptions, objectives, search_options, search_space
from roofline.search._outputs import SearchResult, _write_json, finalize
from roofline.search._status import read_status
from roofline.search._storage import (
    StorageUnreachable,
    default_storage,
    make_sampler,
    masked,
    open_storage,
    prepare_study,
    unreachable_storage_is_one_line,
)
from roofline.search._worker import COUNTED, WorkerStats, _quiet, _worker_main, run_worker
from roofline.sweepfile import SweepSpec

__all__ = ["run_search"]


def _seed(options: SearchOptions, worker: int, offset: int) -> int | None:
    return None if options.seed is None else options.seed + worker + offset


#: What a search writes into its folder (the SQLite files only with the default storage).
_OUTPUTS = ("trials.parquet", "trials.csv", "best.csv", "search.json")
_SQLITE = ("study.db", "study.db-wal", "study.db-shm", "study.db-journal")

#: Writes more outputs of a finished search while its folder is still locked: gets the result and
#: ``record(*paths)``, to call before writing each file; returns the files written.
ExtraOutputs = Callable[[SearchResult, Callable[..., None]], list[Path]]


def run_search(spec: SweepSpec, out_dir: str | Path | None, *, options: SearchOptions | None = None,
               storage: str | None = None, study_name: str | None = None, workers: int = 1,
               force: bool = False, top: int = 10,
               progress: Callable[[int, int], None] | None = None,
               then: ExtraOutputs | None = None) -> SearchResult:
    """Run (or resume) the search of a sweep file and write its outputs.

    Running it again with the same arguments continues the study up to ``options.trials``
    complete trials; trials that were RUNNING when a worker died are marked FAIL and replaced.
    The output folder is locked for the run and lists the files the search writes (``force``
    removes only those; a folder holding other files is refused); ``search.json`` says
    ``running`` with the pid and host while the run lasts (``search_status`` tells an
    interrupted run from a live one).

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
        force: delete the study and the output files first and start over (refused while
            other workers are writing the study).
        top: rows of the ranking (single objective).
        progress: called with (complete trials, requested) as trials finish.
        then: writes more outputs (plots) before the folder is released (see ``ExtraOutputs``).

    Raises:
        SpecError: a bad sweep file, sampler, option, a refused output folder, a study made for
            another search, or one other workers are writing (with ``force``).
        RooflineError: the storage cannot be opened or became unreachable; a worker failed.
    """
    options = options or search_options(spec)
    study_name = study_name or spec.name
    space, objective = search_space(spec), objectives(spec, options)
    _preflight(spec, space, objective)
    if out_dir is None and storage is None:
        raise RooflineError("give an output folder or a storage URL")
    if storage == "memory" and workers > 1:
        raise RooflineError("an in-memory study cannot be shared by several workers; use a database URL")
    run = None
    if out_dir is not None:
        known = (*_OUTPUTS, *(_SQLITE if storage is None else ()), "plots/")
        run = claim_out_dir(out_dir, command="optimize", inputs=None, force=force, resume=True, known=known,
                            keep_on_force=_SQLITE)  # prepare_study deletes the study, checking for writers
    url = storage or default_storage(run.path)  # type: ignore[union-attr]
    notes = _previous_run(run.path) if run is not None else []
    try:
        with _quiet(), unreachable_storage_is_one_line(url):
            if run is not None:
                run.record(*(run.path / n for n in (*_OUTPUTS, *(_SQLITE if storage is None else ()))))
            rdb = open_storage(url, heartbeat_interval=options.heartbeat_interval,
                               grace_period=options.grace_seconds)
            study = prepare_study(spec, options, rdb, study_name, force=force)
    except BaseException:
        if run is not None:  # nothing ran: remove what this run made (never an earlier study's database)
            run.abandon(keep=() if run.created else _SQLITE)
        raise
    try:
        with _quiet(), unreachable_storage_is_one_line(url):
            result = _search(spec, options, url, rdb, study, workers, top, progress, run, notes)
            if run is not None and then is not None:
                result.files += then(result, run.record)
    except BaseException as e:
        if run is not None:  # the study is what a rerun resumes: keep everything, say what happened
            status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            with contextlib.suppress(Exception):
                _write_json(run.path / "search.json",
                            {**_running(study_name, url), "status": status, "error": str(e)[:500]})
            run.interrupt()
        raise
    if run is not None:
        run.finish()
    return result


def _running(study_name: str, url: str) -> dict[str, object]:
    return {"status": "running", "study": study_name, "storage": masked(url), "pid": os.getpid(),
            "host": socket.gethostname(), "started": round(time.time(), 3)}


def _search(spec: SweepSpec, options: SearchOptions, url: str, rdb: optuna.storages.RDBStorage | None,
            study: optuna.Study, workers: int, top: int, progress: Callable[[int, int], None] | None,
            run: OutDir | None, notes: list[str]) -> SearchResult:
    """Run the workers on an opened study and collect (and write) the results."""
    study_name = study.study_name
    if rdb is not None:
        optuna.storages.fail_stale_trials(study)
    before = study.get_trials(deepcopy=False)
    offset = len(before)
    done_before = sum(t.state in COUNTED for t in before)
    if run is not None:
        _write_json(run.path / "search.json", _running(study_name, url))
    started = time.perf_counter()
    stats: list[WorkerStats] = []
    if workers <= 1:
        if offset:  # resume: reseed, so a seeded random sampler does not repeat its first trials
            study.sampler = make_sampler(options, _seed(options, 0, offset))
        stats.append(run_worker(spec, options, study, rdb, worker=0, progress=progress))
    else:
        rdb.engine.dispose()  # type: ignore[union-attr]
        stats, more = _run_processes(spec, options, url, study_name, workers, offset, study, progress)
        notes = notes + more
    seconds = time.perf_counter() - started
    return finalize(spec, options, study, run.path if run is not None else None, url=url, seconds=seconds,
                    workers=stats, notes=notes, done_before=done_before, top=top)


def _previous_run(out: Path) -> list[str]:
    """A note when the previous run into this folder was killed (its search.json still says
    running, and this run holds the lock, so its process is gone)."""
    previous = read_status(out)
    if previous.get("status") != "running":
        return []
    return [f"the previous run (pid {previous.get('pid', '?')} on {previous.get('host', '?')}) was interrupted "
            f"before it finished; its finished trials are kept and the study continues"]


def _run_processes(spec: SweepSpec, options: SearchOptions, url: str, study_name: str, workers: int,
                   offset: int, study: optuna.Study,
                   progress: Callable[[int, int], None] | None) -> tuple[list[WorkerStats], list[str]]:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker_main, name=f"roofline-search-{i}",
                         args=(spec, options, url, study_name, i, _seed(options, i, offset), results, os.getpid()))
             for i in range(workers)]
    for p in procs:
        p.start()
    stats: list[WorkerStats] = []
    errors: list[str] = []
    unreachable: list[str] = []
    notes: list[str] = []
    try:
        while any(p.is_alive() for p in procs) or not results.empty():
            with contextlib.suppress(Exception):
                kind, worker, payload = results.get(timeout=0.5)
                if kind == "ok":
                    stats.append(payload)
                elif kind == "storage":
                    unreachable.append(payload)
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
    if unreachable:
        raise StorageUnreachable(unreachable[0])
    if errors:
        raise RooflineError("; ".join(errors))
    return sorted(stats, key=lambda s: s.worker), notes
