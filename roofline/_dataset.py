"""Sweep results as a partitioned Parquet dataset: one file per chunk, never merged.

A sweep written with ``--format parquet-dataset`` keeps its part files as the result: the folder
``results/`` holds ``part-<combination>-<first row>.parquet``, one per chunk, each written once
by the worker that computed it. Readers take the folder as one table (``pyarrow.dataset``,
``pandas.read_parquet``, DuckDB, Spark). What the summary needs (feasible count, the best rows,
the Pareto front) is found by streaming the parts' metric columns only, and the few winning rows
are read in full at the end, so memory stays bounded whatever the number of rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roofline.pareto import pareto_mask

__all__ = ["DATASET_DIR", "PartSummary", "SummaryMerge", "arrow_table", "iter_batches", "parquet_options", "read_schema",
           "sample_rows", "scan_parts", "summarize_part"]

#: The dataset's folder inside a sweep's output folder.
DATASET_DIR = "results"


def parquet_options(schema: Any) -> dict[str, Any]:
    """How result tables are written: snappy, dictionary encoding only for the columns that
    repeat (text, integers, flags). Float metrics rarely repeat, so a dictionary only costs time:
    without it a chunk is written about 3x faster and 15% smaller (measured on a 39-column chunk
    of 16,384 rows: 0.6M -> 1.7-2.2M rows per CPU second, 148 -> 125 bytes per row)."""
    import pyarrow as pa

    repeating = [f.name for f in schema if not pa.types.is_floating(f.type)]
    return {"compression": "snappy", "use_dictionary": repeating}


def arrow_table(columns: Mapping[str, np.ndarray]) -> Any:
    """``pyarrow.table(columns)``, with the text columns that hold one value (model, device,
    dtypes) built from that value: Arrow converts a numpy text column at ~80 ns a row, and a
    chunk has half a dozen of them (0.4 us a row, a sixth of a sweep's time)."""
    import pyarrow as pa

    arrays = {}
    for name, values in columns.items():
        if (isinstance(values, np.ndarray) and values.dtype.kind == "U" and len(values)
                and values[0] == values[-1] and bool((values == values[0]).all())):
            one = pa.array([str(values[0])], type=pa.string())
            arrays[name] = pa.DictionaryArray.from_arrays(np.zeros(len(values), np.int32), one).dictionary_decode()
        else:
            arrays[name] = values
    return pa.table(arrays)


class _Best:
    """The ``k`` best (value, part, row) seen so far; ties go to the earlier row, as a stable sort
    of the merged table would order them."""

    def __init__(self, k: int, maximize: bool) -> None:
        self.k, self.maximize = k, maximize
        self.keys = np.empty((0, 3))  # value, part, row

    def add(self, values: np.ndarray, part: int, rows: np.ndarray) -> None:
        keys = np.column_stack([values, np.full(len(rows), part), rows])
        merged = np.concatenate([self.keys, keys])
        primary = -merged[:, 0] if self.maximize else merged[:, 0]
        order = np.lexsort((merged[:, 2], merged[:, 1], primary))  # NaN sorts last
        self.keys = merged[order[: self.k]]


class _Front:
    """The non-dominated (values, part, row) seen so far."""

    def __init__(self, maximize: Sequence[bool]) -> None:
        self.maximize = list(maximize)
        self.values = np.empty((0, len(self.maximize)))
        self.where = np.empty((0, 2), dtype=np.int64)  # part, row

    def add(self, values: np.ndarray, part: int, rows: np.ndarray) -> None:
        """A part's own front (:func:`summarize_part`) merged into the front so far."""
        merged = np.concatenate([self.values, values])
        where = np.concatenate([self.where, np.column_stack([np.full(len(rows), part), rows])])
        keep = pareto_mask(merged, self.maximize)
        self.values, self.where = merged[keep], where[keep]


@dataclass(frozen=True)
class PartSummary:
    """What one part adds to a sweep's summary: its feasible rows, its ``top`` best feasible rows
    and its own Pareto front (values and row numbers in the part). The best rows and the front of
    the whole dataset are among the parts' own, so the summary merges these and never reads the
    parts again: a sweep's workers compute them from the columns they have just written."""

    feasible: int
    best_values: np.ndarray  # (<= top,)
    best_rows: np.ndarray
    front_values: np.ndarray  # (f, pareto metrics)
    front_rows: np.ndarray
    #: the full rows of ``kept_rows`` (the best and front rows, ascending), when the part's table
    #: was at hand: the summary's rows are taken from them instead of reading the part again
    kept: Any = None
    kept_rows: np.ndarray | None = None


def summarize_part(columns: Mapping[str, Any], *, metric: str, maximize: bool,
                   pareto: Sequence[tuple[str, bool]], top: int, table: Any = None) -> PartSummary:
    """The :class:`PartSummary` of one part's columns (numpy arrays or Arrow columns); with its
    Arrow ``table``, the summary keeps the full rows it may need."""
    ok = np.flatnonzero(_numpy(columns["feasible"]))
    values = _numpy(columns[metric]).astype(float)[ok]
    best = _Best(top, maximize)
    best.add(values, 0, ok)
    front_values = np.column_stack([_numpy(columns[m]).astype(float)[ok] for m, _ in pareto])
    own = pareto_mask(front_values, [mx for _, mx in pareto]) if len(ok) else np.zeros(0, dtype=bool)
    best_rows = best.keys[:, 2].astype(np.int64)
    kept = kept_rows = None
    if table is not None:
        import pyarrow as pa

        kept_rows = np.union1d(best_rows, ok[own])
        kept = table.take(pa.array(kept_rows))
    return PartSummary(len(ok), best.keys[:, 0], best_rows, front_values[own], ok[own], kept, kept_rows)


def _numpy(column: Any) -> np.ndarray:
    """A column as numpy: an Arrow column through ``to_numpy`` (np.asarray would import pandas)."""
    return column if isinstance(column, np.ndarray) else column.to_numpy()


def scan_parts(files: Sequence[Path], *, metric: str, maximize: bool, pareto: Sequence[tuple[str, bool]],
               top: int, summaries: Mapping[Path, PartSummary] | None = None) -> tuple[int, Any, Any]:
    """Feasible rows, the ``top`` best feasible rows by ``metric`` and the Pareto front of the
    feasible rows (``pareto``: (metric, maximize) pairs), over the parts in order.

    ``summaries``: the parts' :class:`PartSummary` computed already, by file (the others are read).

    Returns:
        (feasible count, best rows as an Arrow table in rank order or None, front rows as an
        Arrow table in the parts' order or None).
    """
    merge = SummaryMerge(files, metric=metric, maximize=maximize, pareto=pareto, top=top)
    for path, summary in (summaries or {}).items():
        merge.add(path, summary)
    return merge.finish()


class SummaryMerge:
    """:func:`scan_parts` fed one part summary at a time, as a sweep's workers finish them.

    A part's summary is folded in when it arrives (in any order: the best rows and the front of a
    set of rows do not depend on the order they are seen in), and the full rows it kept stay in
    memory only while one of them is among the best or on the front. So the process that gathers
    the summaries holds about ``top`` + front-size rows, not a kept table per part: with 6,104
    parts of 16,384 rows (100M), keeping every part's summary grew the main process past 1 GB.
    """

    def __init__(self, files: Sequence[Path], *, metric: str, maximize: bool, pareto: Sequence[tuple[str, bool]],
                 top: int) -> None:
        self.files = list(files)
        self._part = {path: i for i, path in enumerate(self.files)}
        self.metric, self.maximize, self.pareto, self.top = metric, maximize, list(pareto), top
        self.feasible = 0
        self._best, self._front = _Best(top, maximize), _Front([mx for _, mx in pareto])
        self._seen: set[int] = set()
        self._kept: dict[Path, PartSummary] = {}  # parts whose kept rows may still be needed

    def add(self, path: Path, summary: PartSummary) -> None:
        """Fold in the summary of the part at ``path`` (one of ``files``)."""
        part = self._part[path]
        self._seen.add(part)
        if not summary.feasible:
            return
        self.feasible += summary.feasible
        self._best.add(summary.best_values, part, summary.best_rows)
        self._front.add(summary.front_values, part, summary.front_rows)
        if summary.kept is not None:
            self._kept[path] = summary
        needed = {self.files[int(p)] for p in (*self._best.keys[:, 1], *self._front.where[:, 0])}
        for stale in [p for p in self._kept if p not in needed]:
            del self._kept[stale]

    def finish(self) -> tuple[int, Any, Any]:
        """:func:`scan_parts`'s result; the parts never added (written by an earlier run) are read."""
        import pyarrow.parquet as pq

        names = list(dict.fromkeys(["feasible", self.metric, *(m for m, _ in self.pareto)]))
        for part, path in enumerate(self.files):
            if part in self._seen:
                continue
            with pq.ParquetFile(path) as f:  # lighter than read_table, which builds a dataset per file
                table = f.read(columns=names, use_threads=False)
            self.add(path, summarize_part({name: table.column(name) for name in table.column_names},
                                          metric=self.metric, maximize=self.maximize, pareto=self.pareto,
                                          top=self.top))
        best, front = self._best, self._front
        best_rows = _fetch(self.files, best.keys[:, 1:].astype(np.int64), self._kept)
        order = np.lexsort((front.where[:, 1], front.where[:, 0]))  # the parts' order, as a merge gives
        front_rows = _fetch(self.files, front.where[order], self._kept)
        return self.feasible, best_rows, front_rows


def _fetch(files: Sequence[Path], where: np.ndarray, summaries: Mapping[Path, PartSummary] | None) -> Any:
    """Full rows at (part, row) positions, in the order given: from a part's summary where it
    kept them, else from the part (each read once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not len(where):
        return None
    pieces, positions = [], []
    for part in np.unique(where[:, 0]):
        picked = np.flatnonzero(where[:, 0] == part)
        rows = where[picked, 1]
        summary = (summaries or {}).get(files[int(part)])
        if summary is not None and summary.kept is not None:
            pieces.append(summary.kept.take(pa.array(np.searchsorted(summary.kept_rows, rows))))
        else:
            with pq.ParquetFile(files[int(part)]) as f:
                table = f.read(use_threads=False)
            pieces.append(table.take(pa.array(rows)))
        positions.append(picked)
    merged = pa.concat_tables(pieces)
    return merged.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))


def sample_rows(path: Path, n: int, *, columns: Iterable[str] | None = None, seed: int = 0) -> Any:
    """About ``n`` rows drawn uniformly from a Parquet file or dataset folder, reading one batch at
    a time (memory bounded by the sample, not the table); all rows when there are at most ``n``."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    dataset = ds.dataset(path, format="parquet")
    total = dataset.count_rows()
    cols = list(columns) if columns is not None else None
    if total <= n:
        return dataset.to_table(columns=cols)
    rng = np.random.default_rng(seed)
    share = n / total
    kept = [batch.filter(pa.array(rng.random(batch.num_rows) < share))
            for batch in dataset.to_batches(columns=cols, batch_size=65536)]
    return pa.Table.from_batches(kept)


def _files(path: Path) -> list[Path]:
    """A Parquet file, or a dataset folder's part files in name order (the order of the rows)."""
    path = Path(path)
    return sorted(path.glob("*.parquet")) if path.is_dir() else [path]


def read_schema(path: Path) -> Any:
    """The schema of a Parquet file or of a dataset folder (its first file's)."""
    import pyarrow.parquet as pq

    files = _files(path)
    if not files:
        raise FileNotFoundError(f"{path}: no Parquet file")
    return pq.read_schema(files[0])


def iter_batches(path: Path, columns: list[str], batch_size: int) -> Iterator[Any]:
    """Record batches of a Parquet file or dataset folder, in row order, one file open at a time."""
    import pyarrow.parquet as pq

    for file in _files(path):
        with pq.ParquetFile(file) as f:
            yield from f.iter_batches(batch_size=batch_size, columns=columns, use_threads=False)
