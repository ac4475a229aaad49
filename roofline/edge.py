"""Edge-of-range warnings: the best value of a swept or searched parameter at a bound of its range.

An optimum at the edge of the explored range is not known to be an optimum: the range may cut it
off. Sweeps (``summary.json``) and searches (``search.json``) list such parameters, and the
``sweep`` and ``optimize`` commands print them as notes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["edge_warnings", "EDGE_TOLERANCE"]

#: A continuous (search) value within this fraction of the range's span from a bound is "at" it.
EDGE_TOLERANCE = 0.01


def _bounds(parameter: Any) -> tuple[float, float, float] | None:
    """(low, high, tolerance) of a numeric parameter with an inside; None when it has none
    (categorical names or booleans, or fewer than three distinct numbers)."""
    values = getattr(parameter, "values", None)
    if values is not None:
        numbers = sorted({float(v) for v in values
                          if isinstance(v, (int, float)) and not isinstance(v, bool)})
        if len(numbers) < 3 or len(numbers) != len(set(values)):
            return None
        return numbers[0], numbers[-1], 1e-9 * max(abs(numbers[0]), abs(numbers[-1]), 1.0)
    low, high = getattr(parameter, "low", None), getattr(parameter, "high", None)
    if low is None or high is None or high <= low:
        return None
    return float(low), float(high), EDGE_TOLERANCE * (float(high) - float(low))


def edge_warnings(parameters: Iterable[Any], best: Mapping[str, Any] | None) -> list[str]:
    """One message per parameter whose value in ``best`` sits at the low or high end of its range.

    Args:
        parameters: swept parameters (``name`` plus ``values`` or ``low``/``high``, as
            :class:`roofline.sweepfile.Parameter`).
        best: the best configuration (column -> value), or None when nothing was feasible.

    Returns:
        Messages such as ``"l2_capacity_MiB: the best value 256 is the highest of the range
        [0, 256]; widen the range"``; empty when every best value is inside its range.

    Example:
        >>> from types import SimpleNamespace as P
        >>> edge_warnings([P(name="x", values=(1, 2, 4))], {"x": 4})
        ['x: the best value 4 is the highest of the range [1, 4]; widen the range to see past it']
    """
    if not best:
        return []
    out = []
    for p in parameters:
        bounds = _bounds(p)
        value = best.get(p.name)
        if bounds is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        low, high, tol = bounds
        side = "lowest" if value <= low + tol else "highest" if value >= high - tol else None
        if side:
            out.append(f"{p.name}: the best value {value:g} is the {side} of the range [{low:g}, {high:g}]; "
                       f"widen the range to see past it")
    return out
