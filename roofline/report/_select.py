"""Which rows of a results table the report embeds, read in batches so that a sweep of any
size fits in bounded memory (two passes over the Parquet file, one batch at a time).

A sweep can have millions of rows; the report keeps:

- the Pareto front of the two front metrics among feasible rows;
- the top N feasible rows by the objective;
- for every swept parameter and each of its values (or 32 bins of a continuous one), and each
  prefetch setting, the feasible row with the best objective: so that "best performance per
  cost against each parameter" is exact for the whole table, not for a sample;
- a stratified random sample: each combination of the discrete parameters (model, device,
  dtype, parallelism, prefetch, ..., and feasibility) gets a share proportional to its rows, with
  a floor so that small strata still show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from roofline.pareto import pareto_mask

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Selection", "select_rows", "ROLE_FRONT", "ROLE_TOP", "ROLE_BEST_PER_VALUE", "ROLE_SAMPLE"]

ROLE_FRONT, ROLE_TOP, ROLE_BEST_PER_VALUE, ROLE_SAMPLE = 1, 2, 4, 8
#: A parameter with more distinct values than this is binned for the per-value bests.
MAX_VALUES = 64
BINS = 32
_BATCH_ROWS = 262_144


@dataclass(frozen=True)
class ParameterInfo:
    """A column that configures a row: its distinct values (up to MAX_VALUES) or its range."""

    name: str
    numeric: bool
    values: list[Any]  # sorted distinct values; empty when there are more than MAX_VALUES
    low: float | None
    high: float | None

    @property
    def swept(self) -> bool:
        return not self.values or len(self.values) > 1

    def bins(self, column: np.ndarray) -> np.ndarray:
        """(n,) int: the value index, or the bin of a continuous parameter."""
        if self.values:
            return np.searchsorted(np.asarray(self.values), column)
        span = (self.high - self.low) or 1.0
        return np.clip(((column.astype(float) - self.low) / span * BINS).astype(int), 0, BINS - 1)


@dataclass(frozen=True)
class Selection:
    """The embedded rows (a DataFrame with ``_row``, the index in the results table, and
    ``_role``, a bit mask of ROLE_*) and how many rows each role brought."""

    rows: pd.DataFrame
    total_rows: int
    feasible_rows: int
    counts: dict[str, int]
    parameters: list[ParameterInfo]
    strata: int


def _batches(path: Path, columns: list[str]) -> Iterator[pd.DataFrame]:
    from roofline._dataset import iter_batches  # a results.parquet or a sweep's results/ dataset

    for batch in iter_batches(path, columns, _BATCH_ROWS):
        yield _plain(batch.to_pandas())


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns as plain text: a search's trials keep ``op_dtypes`` as a list and a
    default ``kv_dtype`` as None; ``"experts=nvfp4,attention=fp8"`` and ``""`` are what sweeps write."""
    for name in df.columns:
        if df[name].dtype == object:
            df[name] = [",".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else "" if v is None else v
                        for v in df[name]]
    return df


def select_rows(path: Path, parameters: list[str], metrics: list[str], *, objective: tuple[str, str],
                front: tuple[tuple[str, str], tuple[str, str]], top: int = 100, sample: int = 10_000,
                seed: int = 0) -> Selection:
    """Pick the rows to embed from the Parquet table at ``path`` (see the module docstring).

    Args:
        path: results.parquet or trials.parquet.
        parameters: configuration columns; metrics: metric columns to carry.
        objective: (direction, metric) that ranks rows; front: the two (direction, metric) axes.
        top: rows of the ranking; sample: rows of the stratified sample (at most).
        seed: the sample's random seed (the same table gives the same report).
    """
    infos, strata, total = _first_pass(path, parameters)
    chosen = _stratified(strata, sample, np.random.default_rng(seed))
    direction, metric = objective
    keep = _SecondPass(infos, metric, direction == "maximize", top, front, chosen)
    columns = list(dict.fromkeys(parameters + metrics + ["feasible"]))
    offset = 0
    for df in _batches(path, columns):
        df["_row"] = np.arange(offset, offset + len(df))
        keep.add(df)
        offset += len(df)
    rows, counts = keep.result()
    return Selection(rows, total, keep.feasible, counts, infos, int(strata.max() + 1) if total else 0)


def _first_pass(path: Path, parameters: list[str]) -> tuple[list[ParameterInfo], np.ndarray, int]:
    """Distinct values (or ranges) of every parameter, and each row's stratum code."""
    import pandas as pd

    distinct: dict[str, set[Any] | None] = {p: set() for p in parameters}
    low: dict[str, float] = {}
    high: dict[str, float] = {}
    numeric: dict[str, bool] = {}
    strata_of: dict[tuple[Any, ...], int] = {}
    codes: list[np.ndarray] = []
    for df in _batches(path, list(dict.fromkeys(parameters + ["feasible"]))):
        for p in parameters:
            col = df[p]
            is_num = bool(pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col))
            numeric[p] = is_num
            if is_num:
                low[p] = min(low.get(p, np.inf), float(col.min()))
                high[p] = max(high.get(p, -np.inf), float(col.max()))
            seen = distinct[p]
            if seen is not None:
                seen.update(col.unique().tolist())
                if len(seen) > MAX_VALUES:
                    distinct[p] = None
        discrete = [p for p in parameters if not pd.api.types.is_float_dtype(df[p])] + ["feasible"]
        local, uniques = pd.factorize(pd.MultiIndex.from_frame(df[discrete]))
        lut = np.array([strata_of.setdefault(tuple(u), len(strata_of)) for u in uniques], dtype=np.int64)
        codes.append(lut[local])
    infos = [ParameterInfo(p, numeric.get(p, False), sorted(distinct[p]) if distinct[p] is not None else [],
                           low.get(p), high.get(p)) for p in parameters]
    strata = np.concatenate(codes) if codes else np.zeros(0, dtype=np.int64)
    return infos, strata, len(strata)


def _stratified(strata: np.ndarray, sample: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices: each stratum's share of ``sample`` in proportion to its rows, at least
    ``floor`` rows (or all it has), drawn without replacement."""
    if not len(strata) or sample <= 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(strata)
    floor = max(1, min(50, sample // max(len(counts), 1)))
    quota = np.minimum(counts, np.maximum(floor, np.floor(sample * counts / len(strata)).astype(int)))
    # a random priority per row; a row is drawn when its rank within its stratum is below the quota
    order = np.lexsort((rng.random(len(strata)), strata))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    rank = np.arange(len(strata)) - np.repeat(starts, counts)
    drawn = order[rank < np.repeat(quota, counts)]
    return np.sort(drawn)


class _SecondPass:
    """Keeps, batch by batch, the front, the top rows, the per-value bests and the sample."""

    def __init__(self, infos: list[ParameterInfo], metric: str, maximize: bool, top: int,
                 front: tuple[tuple[str, str], tuple[str, str]], chosen: np.ndarray) -> None:
        self.infos = [i for i in infos if i.swept]
        self.metric, self.maximize, self.top = metric, maximize, top
        self.front_axes = front
        self.chosen = chosen
        self.feasible = 0
        self.front: pd.DataFrame | None = None
        self.best: pd.DataFrame | None = None
        self.per_value: dict[str, pd.DataFrame] = {}
        self.sampled: list[pd.DataFrame] = []

    def add(self, df: pd.DataFrame) -> None:
        import pandas as pd

        rows = df["_row"].to_numpy()
        lo, hi = np.searchsorted(self.chosen, [rows[0], rows[-1] + 1]) if len(rows) else (0, 0)
        if hi > lo:
            self.sampled.append(df.iloc[self.chosen[lo:hi] - rows[0]])
        ok = df[df["feasible"].astype(bool)]
        self.feasible += len(ok)
        if ok.empty:
            return
        self.front = self._front(ok if self.front is None else pd.concat([self.front, ok]))
        both = ok if self.best is None else pd.concat([self.best, ok])
        self.best = both.sort_values(self.metric, ascending=not self.maximize, kind="stable").head(self.top)
        for info in self.infos:
            prev = self.per_value.get(info.name)
            self.per_value[info.name] = self._per_value(ok if prev is None else pd.concat([prev, ok]), info)

    def _front(self, df: pd.DataFrame) -> pd.DataFrame:
        values = np.column_stack([df[m].to_numpy(float) for _, m in self.front_axes])
        return df[pareto_mask(values, [d == "maximize" for d, _ in self.front_axes])]

    def _per_value(self, df: pd.DataFrame, info: ParameterInfo) -> pd.DataFrame:
        score = df[self.metric].to_numpy(float)
        score = np.where(np.isnan(score), -np.inf, score if self.maximize else -score)
        prefetch = df["prefetch"].to_numpy(bool) if "prefetch" in df.columns else np.zeros(len(df), bool)
        key = info.bins(df[info.name].to_numpy()) * 2 + prefetch
        order = np.lexsort((-score, key))  # by key, best first
        first = np.r_[True, key[order][1:] != key[order][:-1]]
        return df.iloc[order[first]]

    def result(self) -> tuple[pd.DataFrame, dict[str, int]]:
        import pandas as pd

        parts = [(ROLE_FRONT, self.front), (ROLE_TOP, self.best),
                 (ROLE_BEST_PER_VALUE, pd.concat(self.per_value.values()) if self.per_value else None),
                 (ROLE_SAMPLE, pd.concat(self.sampled) if self.sampled else None)]
        frames = []
        counts = {}
        for role, frame in parts:
            name = {ROLE_FRONT: "pareto_front", ROLE_TOP: "top", ROLE_BEST_PER_VALUE: "best_per_value",
                    ROLE_SAMPLE: "sample"}[role]
            counts[name] = 0 if frame is None else int(frame["_row"].nunique())
            if frame is not None and len(frame):
                frames.append(frame.assign(_role=role))
        if not frames:
            return pd.DataFrame(), counts
        every = pd.concat(frames, ignore_index=True)
        roles = every.groupby("_row")["_role"].agg(lambda r: int(np.bitwise_or.reduce(r.to_numpy())))
        rows = every.drop_duplicates("_row").set_index("_row").drop(columns="_role")
        rows["_role"] = roles
        rows = rows.reset_index().sort_values("_row", ignore_index=True)
        return rows, counts


def describe_parameter(info: ParameterInfo) -> dict[str, Any]:
    """How the report's filter panel shows a parameter (JSON-ready)."""
    from roofline._json import json_value

    if info.numeric:
        # to the 6 significant digits the page's columns carry, so that the full range keeps every row
        def digits(v: Any) -> Any:
            return int(v) if isinstance(v, (int, np.integer)) else json_value(float(f"{v:.6g}"))

        return {"name": info.name, "kind": "range", "low": digits(info.low), "high": digits(info.high),
                "values": [digits(v) for v in info.values]}
    return {"name": info.name, "kind": "set", "values": [json_value(v) for v in info.values]}
