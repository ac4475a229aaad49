"""Non-dominated sets, vectorized: the Pareto front of any two or three metrics."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["pareto_mask"]


def pareto_mask(values: ArrayLike, maximize: Sequence[bool], *, block: int = 2048) -> np.ndarray:
    """Which rows of ``values`` (shape (n, k)) no other row dominates.

    A row dominates another when it is at least as good in every metric and better in one
    (``maximize[j]`` says which way metric j is better). Rows with a non-finite value (NaN: an
    unknown cost; infinity) are never on the front, nor do they dominate anything.
    Duplicated optimal rows are all kept. Cost: O(n log n) for k = 2; for k = 3, blocks of
    candidates are checked against the front found so far (the front is small in practice).

    Example:
        >>> pareto_mask([[1, 5], [2, 4], [1, 3], [3, 1]], maximize=[True, True]).tolist()
        [True, True, False, True]
    """
    v = np.asarray(values, dtype=float)
    if v.ndim != 2 or v.shape[1] != len(maximize):
        raise ValueError(f"values must have shape (n, {len(maximize)}), got {v.shape}")
    signs = np.where(np.asarray(maximize, dtype=bool), -1.0, 1.0)
    cost = v * signs  # now every metric is minimized
    valid = np.isfinite(cost).all(axis=1)
    mask = np.zeros(len(v), dtype=bool)
    idx = np.flatnonzero(valid)
    if not len(idx):
        return mask
    c = cost[idx]
    order = np.lexsort(c.T[::-1])  # by the first metric, ties by the next
    c = c[order]
    keep = _front_2d(c) if c.shape[1] == 2 else _front_blocks(c, block)
    mask[idx[order[keep]]] = True
    return mask


def _front_2d(c: np.ndarray) -> np.ndarray:
    # sorted by x then y: a row is on the front when its y beats every earlier row's y,
    # or it repeats the previous front row exactly
    best_before = np.minimum.accumulate(np.r_[np.inf, c[:-1, 1]])
    keep = c[:, 1] < best_before
    same = np.r_[False, np.all(c[1:] == c[:-1], axis=1)]
    for i in np.flatnonzero(same & ~keep):  # exact duplicates of a kept row (rare)
        keep[i] = keep[i - 1]
    return keep


def _dominated(points: np.ndarray, by: np.ndarray) -> np.ndarray:
    """points (m, k), by (f, k): which points some row of ``by`` dominates."""
    if not len(by):
        return np.zeros(len(points), dtype=bool)
    le = (by[None, :, :] <= points[:, None, :]).all(axis=2)
    lt = (by[None, :, :] < points[:, None, :]).any(axis=2)
    return (le & lt).any(axis=1)


def _front_blocks(c: np.ndarray, block: int) -> np.ndarray:
    keep = np.zeros(len(c), dtype=bool)
    front = np.empty((0, c.shape[1]))
    for start in range(0, len(c), block):
        chunk = c[start:start + block]
        alive = ~_dominated(chunk, front)
        alive &= ~_dominated(chunk, chunk[alive]) if alive.any() else alive
        keep[start:start + block] = alive
        # sorted by the first metric: later rows never dominate earlier ones, so the front grows
        front = np.vstack([front, chunk[alive]])
    return keep
