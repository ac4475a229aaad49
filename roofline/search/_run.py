"""A whole search: study, workers, outputs (:func:`run_search`).

One worker runs in this process; with ``workers > 1`` each worker is a spawned process on the
same study (worker i seeds its sampler with seed + i, plus the number of trials the study already
had, so a resumed run does not repeat), and this process reports their progress and failures.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path

import optuna

from roofline.exceptions import RooflineError, SpecError
from roofline.search._evaluate import _preflight
from roofline.search._options import SearchOptions, objectives, search_options, search_space
from roofline.search._outputs import SearchResult, _write_json, finalize
from roofline.search._storage import (
    default_storage,
    make_sampler,
    masked,
    open_storage,
    prepare_study,
)
from roofline.search._worker import COUNTED, WorkerStats, _quiet, _worker_main, run_worker
from roofline.sweepfile import SweepSpec

__all__ = ["run_search"]


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
