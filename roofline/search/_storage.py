"""Storage, study and samplers.

A study lives in any SQLAlchemy URL Optuna supports (a SQLite file in the output folder by
default; ``"memory"`` for an in-memory study of one process). The storage records heartbeats:
a RUNNING trial whose heartbeat is older than the grace period is marked FAIL by whichever
worker looks next (see ``roofline.search._worker``). A study records what it searches, so that
resuming it with another objective, constraints or space is refused.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from roofline._json import json_value
from roofline.exceptions import RooflineError, SpecError
from roofline.search._evaluate import constraint_names
from roofline.search._options import (
    SAMPLERS,
    Objectives,
    SearchOptions,
    SearchSpace,
    objectives,
    search_space,
)
from roofline.sweepfile import SweepSpec

__all__ = ["StorageUnreachable", "default_storage", "make_sampler", "masked", "open_storage", "prepare_study",
           "unreachable_storage_is_one_line"]


#: Study user attribute that records what the study searches (checked on resume).
_STUDY_ATTR = "roofline_search"


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


class StorageUnreachable(RooflineError):
    """The study's database stopped answering during a run (its finished trials are safe)."""


def _connection_lost(e: BaseException) -> bool:
    """Whether an exception (or one it was raised from) says the database cannot be reached."""
    from sqlalchemy import exc

    seen: set[int] = set()
    current: BaseException | None = e
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if type(current).__name__ in ("OperationalError", "InterfaceError") and \
                type(current).__module__.split(".")[0] in ("sqlite3", "psycopg2", "psycopg", "pymysql"):
            return True
        current = current.__cause__ or current.__context__
    return False


def unreachable_message(url: str, e: BaseException) -> str:
    return (f"storage {masked(url)} is unreachable ({_first_line(e)}); the finished trials are kept in it: "
            f"rerunning the same command resumes the study")


@contextlib.contextmanager
def unreachable_storage_is_one_line(url: str) -> Iterator[None]:
    """Turn a lost database connection (SQLAlchemy's error, Optuna's wrapper around it) into
    :class:`StorageUnreachable`, one line that says how to continue."""
    try:
        yield
    except RooflineError:
        raise
    except Exception as e:
        if _connection_lost(e):
            raise StorageUnreachable(unreachable_message(url, e)) from None
        raise


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
            "fixed": {k: json_value(v) for k, v in space.to_json()["fixed"].items()},
            # the fitted model or the datasheet roofline (roofline.fitted): a study never mixes them
            "model": {"datasheet": spec.model_choice.datasheet, "framework": spec.model_choice.framework}}


#: Prefix of the study system attributes where live workers record when they last beat.
WORKER_BEAT = "roofline_worker:"


def live_workers(storage: Any, study_id: int, grace_s: float) -> list[str]:
    """Workers (``host:pid:worker``) whose study heartbeat is younger than ``grace_s``."""
    now = time.time()
    return [k[len(WORKER_BEAT):] for k, v in storage.get_study_system_attrs(study_id).items()
            if k.startswith(WORKER_BEAT) and isinstance(v, (int, float)) and now - v < grace_s]


_WRITERS_HINT = "stop them first (and wait for the grace period), or pass --study NEW_NAME"


def _delete_study(storage: Any, study_name: str, *, heartbeats: bool, grace_s: float) -> None:
    """Delete a study for ``--force``, refusing while other workers write it.

    A worker is live when its study heartbeat (``roofline.search._worker``) or the heartbeat of
    one of its RUNNING trials is younger than the grace period (a dead worker's trials are failed
    first; a worker between two batches has no RUNNING trial but still beats). Deleting under a live worker
    would either fail or leave it writing trials into a study that no longer exists (SQLite
    even gives them to the next study created). Optuna's ``delete_study`` also ignores the
    integrity error a concurrent insert causes and leaves the study in place: checked after.
    """
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        return
    if heartbeats:
        optuna.storages.fail_stale_trials(study)
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    workers = live_workers(storage, study._study_id, grace_s) if heartbeats else []
    if running or workers:
        what = f"{len(workers)} live workers" if workers else f"{len(running)} running trials with live heartbeats"
        raise SpecError(f"study {study_name!r} has {what}: other workers are writing it, and --force would "
                        f"not delete it; {_WRITERS_HINT}")
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=study_name, storage=storage)
    with contextlib.suppress(KeyError):
        storage.get_study_id_from_name(study_name)
        raise SpecError(f"study {study_name!r} could not be deleted: other workers are writing it; "
                        f"{_WRITERS_HINT}")


def prepare_study(spec: SweepSpec, options: SearchOptions, storage: Any, study_name: str, *,
                  force: bool = False) -> optuna.Study:
    """Create the study (and its tables), or load it to resume after checking it searches the same.

    Raises:
        SpecError: the study exists but was made for another objective, constraints, space or model
            (fitted or datasheet, framework).
    """
    space, objective = search_space(spec), objectives(spec, options)
    record = _study_record(spec, space, objective)
    storage_obj = storage if storage is not None else optuna.storages.InMemoryStorage()
    if force:
        _delete_study(storage_obj, study_name, heartbeats=storage is not None, grace_s=options.grace_seconds)
    study = optuna.create_study(storage=storage_obj, study_name=study_name, load_if_exists=True,
                                directions=list(objective.directions),
                                sampler=make_sampler(options, options.seed))
    previous = study.user_attrs.get(_STUDY_ATTR)
    if previous is None:
        if study.get_trials(deepcopy=False):
            if force:  # deleted, then a live worker wrote into the new study
                raise SpecError(f"study {study_name!r} was written while --force deleted it: other workers "
                                f"are writing it; {_WRITERS_HINT}")
            raise SpecError(f"study {study_name!r} exists and was not made by roofline optimize; "
                            f"choose another --study name")
        study.set_user_attr(_STUDY_ATTR, {**record, "sweep_file": spec.path, "sweep": spec.name})
    else:
        changed = [k for k in ("objective", "directions", "constraints", "space", "fixed", "model")
                   if previous.get(k) != json.loads(json.dumps(record[k]))]
        if changed:
            raise SpecError(f"study {study_name!r} exists with another {', '.join(changed)} "
                            f"(it searches {previous.get('directions')} {previous.get('objective')}); "
                            f"pass --study NEW_NAME, or --force to delete it and start over")
    return study
