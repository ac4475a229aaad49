"""Workers: ask, evaluate and tell batches of trials until the study has enough.

Trials are asked in batches (``batch_size``) and every trial is told as soon as its batch is
evaluated. Every worker records a heartbeat for its running trials; a trial whose worker died
(SIGKILL, power loss) is marked FAIL once its heartbeat is older than the grace period, by
whichever worker looks next. The requested number of trials counts COMPLETE (and PRUNED) trials
only: a FAIL trial is not counted, so a killed worker's unfinished trials are replaced by new
ones and the study ends with exactly the requested number of complete trials, also with several
workers on one study (a trial asked above the budget in a race between workers is closed as
FAIL with the user attribute ``surplus``).
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import FrozenTrial, TrialState

from roofline._lifeline import die_with_parent
from roofline._malloc import prepare_worker
from roofline.exceptions import RooflineError
from roofline.search._evaluate import evaluate_params
from roofline.search._options import (
    Objectives,
    SearchOptions,
    SearchSpace,
    objectives,
    search_space,
)
from roofline.search._storage import (
    WORKER_BEAT,
    _connection_lost,
    _first_line,
    make_sampler,
    open_storage,
    unreachable_message,
)
from roofline.sweepfile import SweepSpec

__all__ = ["COUNTED", "PENDING", "WorkerStats", "run_worker"]


log = logging.getLogger("roofline.search")


#: Trial states that count toward the requested number of trials.
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
#: Trials that are, or will be, evaluated by some worker.
PENDING = (TrialState.RUNNING, TrialState.WAITING)
#: System attribute of a trial holding its constraint values (Optuna's constraints_func format).
_CONSTRAINTS_KEY = "constraints"


class _Heartbeat:
    """Records a heartbeat for this worker's running trials every ``interval`` seconds, and one
    for the worker itself on the study (a worker between two batches has no running trial, yet
    ``--force`` must see it); a worker that ends clears its own."""

    def __init__(self, storage: Any, interval: float, study_id: int | None = None, worker: int = 0) -> None:
        self.storage, self.interval, self.study_id = storage, interval, study_id
        self.key = f"{WORKER_BEAT}{socket.gethostname()}:{os.getpid()}:{worker}"
        self.ids: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="roofline-heartbeat", daemon=True)

    def __enter__(self) -> _Heartbeat:
        if self.storage is not None:
            self._beat_study(time.time())
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join()
        with contextlib.suppress(Exception):  # a lost database: the beat turns stale by itself
            self._beat_study(0.0)

    def _beat_study(self, when: float) -> None:
        if self.storage is not None and self.study_id is not None:
            self.storage.set_study_system_attr(self.study_id, self.key, when)

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
            with contextlib.suppress(Exception):
                self._beat_study(time.time())
            with self.lock:
                ids = list(self.ids)
            for trial_id in ids:
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception as e:  # a database hiccup: try again at the next beat (a lost
                    # database ends the run in the main thread, with one line)
                    log.debug("heartbeat of trial %s failed: %s", trial_id, _first_line(e))


@dataclass
class WorkerStats:
    """What one worker did."""

    worker: int
    told: int = 0  # trials this worker completed
    surplus: int = 0  # trials asked above the budget in a race, closed as FAIL
    reaped: int = 0  # live trials another worker marked stale (heartbeat late): results dropped
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
    with _Heartbeat(storage, options.heartbeat_interval, study._study_id, worker) as hb:
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
            try:
                _store(study, trial, outcome, objective)
                stats.told += 1
            except optuna.exceptions.UpdateFinishedTrialError:
                # Our heartbeat lagged past the grace period (a starved machine) and another
                # worker marked this live trial FAIL as stale: its result is dropped, the study
                # asks a replacement, and the search goes on.
                log.debug("trial %s was marked stale while it ran; its result is dropped", trial.number)
                stats.reaped += 1
            hb.discard(trial._trial_id)
        stats.tell_seconds += time.perf_counter() - t0
        stats.batches += 1
    except BaseException:
        for trial in batch:
            with contextlib.suppress(Exception):
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            hb.discard(trial._trial_id)
        raise


def _store(study: optuna.Study, trial: optuna.Trial, outcome: Any, objective: Objectives) -> None:
    """Store one evaluated trial: its metrics, constraints and objective values."""
    trial.set_user_attr("metrics", outcome.metrics)
    trial.set_user_attr("constraint", outcome.constraints)
    # Stored the way a sampler's constraints_func stores them (system attribute "constraints", a
    # list in the order of the names above): TPE, NSGA-II and study.best_trial(s) read it, and
    # optuna-dashboard shows it (it does not read Trial.set_constraint's named keys); one write per
    # trial instead of one per name.
    trial.storage.set_trial_system_attr(trial._trial_id, _CONSTRAINTS_KEY, list(outcome.constraints.values()))
    study.tell(trial, outcome.values if objective.multi else outcome.values[0])


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
                 seed: int | None, results: Any, parent_pid: int) -> None:
    """Entry point of a worker process (``--workers N``); it exits when its parent dies."""
    die_with_parent(parent_pid)
    prepare_worker()  # one BLAS thread per worker: N workers share the cores
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
        if _connection_lost(e):  # the parent says it in one line; no traceback
            results.put(("storage", worker, unreachable_message(url, e)))
            return
        results.put(("error", worker, f"{type(e).__name__}: {_first_line(e)}"))
        raise
