"""What a run folder holds: a sweep's (``results.parquet`` + ``summary.json``) or a search's
(``trials.parquet`` + ``search.json``), read into one description the report works from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roofline._dataset import DATASET_DIR, read_schema
from roofline._specfile import printable
from roofline.exceptions import SpecError
from roofline.registry import is_parameter

__all__ = ["RunFolder", "read_run_folder"]

@dataclass(frozen=True)
class RunFolder:
    """A sweep or search output folder, as the report sees it."""

    path: Path
    kind: str  # "sweep" or "search"
    table_path: Path  # results.parquet (or a sweep's results/ dataset folder) or trials.parquet
    summary: dict[str, Any]  # summary.json or search.json
    name: str
    objective: tuple[str, str]  # (direction, metric)
    pareto: tuple[tuple[str, str], tuple[str, str]]  # two (direction, metric) pairs: x then y
    sweep_file: str | None  # the sweep file the run came from, as it recorded it


def read_run_folder(path: str | Path) -> RunFolder:
    """Describe a sweep or search output folder; raise SpecError naming what is missing."""
    folder = Path(path)
    if not folder.is_dir():
        raise SpecError(f"{folder}: not a folder; give the --out folder of `roofline sweep` or "
                        f"`roofline optimize`")
    if (folder / "results.parquet").exists():
        return _readable(_sweep_folder(folder, folder / "results.parquet"))
    if (folder / DATASET_DIR).is_dir() and (folder / "summary.json").exists():  # --format parquet-dataset
        return _readable(_sweep_folder(folder, folder / DATASET_DIR))
    if (folder / "trials.parquet").exists():
        return _readable(_search_folder(folder))
    raise SpecError(f"{folder}: neither results.parquet (a sweep) nor trials.parquet (a search) is there")


def _readable(run: RunFolder) -> RunFolder:
    """``run`` once its table's schema reads: a damaged or foreign Parquet file is a one-line error."""
    try:
        read_schema(run.table_path)
    except (OSError, ValueError) as e:  # pyarrow.ArrowInvalid is a ValueError
        raise SpecError(f"{run.table_path}: not a readable Parquet table ({printable(str(e).splitlines()[0])[:120]})") from None
    return run


def _read_json(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise SpecError(f"{path}: missing (the run did not finish, or the folder was edited)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    except (UnicodeDecodeError, RecursionError):
        raise SpecError(f"{path}: not a JSON text (UTF-8) of a run") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _pair(entry: Any, path: Path, field: str) -> tuple[str, str]:
    """``{"maximize": "tok_s_per_kusd"}`` -> ("maximize", "tok_s_per_kusd")."""
    if isinstance(entry, dict) and len(entry) == 1:
        (direction, metric), = entry.items()
        if direction in ("minimize", "maximize") and isinstance(metric, str):
            return direction, metric
    raise SpecError(f"{path}: field {field!r} must be like {{\"maximize\": \"tok_s_per_kusd\"}}, got {entry!r}")


_DEFAULT_FRONT = (("minimize", "system_cost_usd"), ("maximize", "throughput_tok_s"))


def _sweep_folder(folder: Path, table: Path) -> RunFolder:
    path = folder / "summary.json"
    summary = _read_json(path)
    objective = _pair(summary.get("objective"), path, "objective")
    pairs = [_pair(p, path, "pareto") for p in summary.get("pareto") or []]
    return RunFolder(folder, "sweep", table, summary, str(summary.get("sweep", folder.name)),
                     objective, _front_axes(pairs), summary.get("file"))


def _search_folder(folder: Path) -> RunFolder:
    path = folder / "search.json"
    summary = _read_json(path)
    objectives = [_pair(p, path, "objective") for p in summary.get("objective") or []]
    if not objectives:
        raise SpecError(f"{path}: field 'objective' is empty")
    pairs = objectives if len(objectives) >= 2 else []
    return RunFolder(folder, "search", folder / "trials.parquet", summary, str(summary.get("sweep", folder.name)),
                     objectives[0], _front_axes(pairs), summary.get("file"))


def _front_axes(pairs: list[tuple[str, str]]) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two metrics the report's front plots: the run's first two, else cost against throughput."""
    if len(pairs) >= 2:
        return pairs[0], pairs[1]
    return _DEFAULT_FRONT


def parameter_columns(columns: list[str], metrics: set[str]) -> list[str]:
    """The columns that configure a row, in table order: the registered hardware and scenario
    parameters (roofline.registry); metrics, a search's bookkeeping and serving columns are not."""
    return [c for c in columns if is_parameter(c) and c not in metrics]
