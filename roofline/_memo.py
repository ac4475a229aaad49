"""A bounded memo whose key holds some objects by identity (specs, tables, energy rates): their
dataclasses hash slowly or not at all, and a repeated prediction passes the very same objects."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

__all__ = ["IdentityMemo"]

T = TypeVar("T")


class IdentityMemo:
    """Values by (the identities of ``objects``, ``key``), at most about ``limit`` of them.

    An entry keeps its objects alive and checks them with ``is``, so a freed object's id, which
    Python reuses, never returns another object's value. When full, the memo starts over.
    """

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._entries: dict[tuple[tuple[int, ...], Hashable], tuple[tuple[Any, ...], Any]] = {}

    def get(self, objects: tuple[Any, ...], key: Hashable, make: Callable[[], T]) -> T:
        """The value kept for ``objects`` and ``key``, else ``make()`` kept and returned
        (``key`` must be hashable: a TypeError is raised before ``make`` runs)."""
        full = (tuple(map(id, objects)), key)
        hit = self._entries.get(full)
        if hit is not None and all(a is b for a, b in zip(hit[0], objects, strict=True)):
            return hit[1]
        if len(self._entries) > self._limit:
            self._entries.clear()
        value = make()
        self._entries[full] = (objects, value)
        return value
