"""Running a sweep's chunks on a Dask cluster (``dask.distributed``).

The client connects to a scheduler (``tcp://HOST:8786``), sends each chunk as a task and
receives the chunk's rows back as an Arrow table: the workers need roofline installed (the same
code: a worker whose code version differs is refused) but no shared filesystem, since the client
writes every part file itself and builds everything the workers need from files (the scenario
of each combination, the cost parameters) before it sends the tasks.

``distributed`` is imported only here, and only when a scheduler is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from types import MappingProxyType
from typing import Any

from roofline._fingerprint import code_version
from roofline.cost import CostParameters
from roofline.exceptions import RooflineError

__all__ = ["CONNECT_TIMEOUT_S", "SCHEMES", "check_address", "connect", "portable_cost", "restore_cost", "run_on_cluster", "versioned"]

#: How long a client waits for the scheduler before it gives up.
CONNECT_TIMEOUT_S = 10.0


#: Transports a scheduler listens on (``distributed.comm``'s schemes other than in-process).
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def check_address(address: str) -> str:
    """Check the form of a scheduler address (``SCHEME://HOST:PORT``) without connecting;
    return the option text that messages about it start with.

    Raises:
        RooflineError: one line saying what is allowed.
    """
    from urllib.parse import urlsplit

    where = f"--scheduler {address}"
    parts = urlsplit(address)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise RooflineError(f"{where}: expected an address such as tcp://HOST:8786 (schemes: {', '.join(SCHEMES)})")
    return where


def connect(address: str, *, timeout_s: float | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` that has at least one worker.

    Raises:
        RooflineError: one line naming the address: malformed, no scheduler answered within
            ``timeout_s`` (default ``CONNECT_TIMEOUT_S``), or no worker joined it within
            ``timeout_s``.
    """
    import logging

    from distributed import Client

    timeout_s = CONNECT_TIMEOUT_S if timeout_s is None else timeout_s
    where = check_address(address)
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # its own connection warnings would break the one-line error
    try:
        client = Client(address, timeout=timeout_s, set_as_default=False)
    except ValueError as e:  # a form check_address lets through but distributed refuses
        raise RooflineError(f"{where}: not a Dask scheduler address ({e})") from None
    except (OSError, TimeoutError):
        raise RooflineError(f"{where}: no Dask scheduler answered within {timeout_s:g} s; start one with "
                            f"`dask scheduler` and check the host and port") from None
    finally:
        quiet.setLevel(level)
    try:
        client.wait_for_workers(1, timeout=timeout_s)
    except (OSError, TimeoutError):
        client.close()
        raise RooflineError(f"{where}: the scheduler has no worker after {timeout_s:g} s; start one with "
                            f"`dask worker {address}`") from None
    return client


def portable_cost(params: CostParameters) -> tuple[Any, ...]:
    """Cost parameters as plain picklable data (their mappings are read-only proxies, which do
    not pickle); :func:`restore_cost` rebuilds them on a worker."""
    provenance = {k: dict(v) for k, v in params.provenance.items()}
    return dict(params.values), provenance, dict(params.node_aliases), params.origin


def restore_cost(data: tuple[Any, ...]) -> CostParameters:
    values, provenance, aliases, origin = data
    return CostParameters(MappingProxyType(values), MappingProxyType(provenance), MappingProxyType(aliases), origin)


def versioned(func: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    """Run ``func(*args)`` on a worker and say which code computed it."""
    return code_version(), func(*args)


def run_on_cluster(client: Any, func: Callable[..., Any], shared: tuple[Any, ...], tasks: Iterable[Any],
                   *, in_flight_per_thread: int = 2) -> Iterator[tuple[Any, Any]]:
    """Yield ``(task, func(*shared, task))`` as the cluster finishes them (in any order).

    ``shared`` is sent to the workers once; at most ``in_flight_per_thread`` tasks per worker
    thread are submitted at a time, so that the client holds a bounded number of results.

    Raises:
        RooflineError: a worker runs other roofline code than this client.
    """
    from distributed import as_completed

    here = code_version()
    shared_futures = client.scatter(list(shared), broadcast=True, hash=False)
    limit = max(1, in_flight_per_thread * sum(client.nthreads().values()))
    queue = iter(tasks)
    owner: dict[Any, Any] = {}

    def submit(task: Any) -> Any:
        future = client.submit(versioned, func, *shared_futures, task, pure=False)
        owner[future] = task
        return future

    running = as_completed([submit(t) for _, t in zip(range(limit), queue)], loop=client.loop)
    try:
        for future in running:
            version, value = future.result()
            task = owner.pop(future)
            if version != here:
                raise RooflineError(f"a Dask worker runs roofline {version}, this client {here}; install the "
                                    f"same version on every worker")
            nxt = next(queue, None)
            if nxt is not None:
                running.add(submit(nxt))
            yield task, value
    finally:
        for future in list(owner):
            future.cancel()
