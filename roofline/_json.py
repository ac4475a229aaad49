"""JSON output shared by every command that writes a summary: numpy scalars become Python
numbers, non-finite floats become null (JSON has no inf/NaN), dates become ISO strings."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["json_value", "json_default"]


def json_value(value: Any) -> Any:
    """``value`` as a JSON-ready Python value (numpy scalars unwrapped, inf/NaN -> None)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def json_default(value: Any) -> Any:
    """``default=`` for :func:`json.dumps`: what the encoder does not know natively."""
    if isinstance(value, np.generic):
        return json_value(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
