"""JSON output shared by every command that writes a summary: numpy scalars become Python
numbers, non-finite floats become null (JSON has no inf/NaN), dates become ISO strings."""

from __future__ import annotations

import math
import sys
from typing import Any

__all__ = ["json_value", "json_default", "finite_json", "dumps"]


def _numpy_scalar_types() -> type | tuple[()]:
    """numpy's scalar base class, or nothing if numpy is not loaded (then no value can be one):
    the CLI imports this module at start and must not pay for importing numpy."""
    np = sys.modules.get("numpy")
    return np.generic if np is not None else ()


def json_value(value: Any) -> Any:
    """``value`` as a JSON-ready Python value (numpy scalars unwrapped, inf/NaN -> None)."""
    if isinstance(value, _numpy_scalar_types()):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_default(value: Any) -> Any:
    """``default=`` for :func:`json.dumps`: what the encoder does not know natively."""
    if isinstance(value, _numpy_scalar_types()):
        return json_value(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def finite_json(value: Any) -> Any:
    """``value`` with every non-finite float (nested in dicts, lists and tuples) replaced by None
    and numpy scalars unwrapped: the ``default=`` hook never sees a Python float, so NaN in a
    result row would otherwise reach the file as the bare word ``NaN``."""
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return json_value(value)


def dumps(value: Any, **kwargs: Any) -> str:
    """:func:`json.dumps` of ``value`` for an output a user reads: NaN and infinities as null,
    numpy scalars and dates converted, and never a non-standard ``NaN``/``Infinity`` token."""
    import json

    return json.dumps(finite_json(value), allow_nan=False, default=json_default, **kwargs)
