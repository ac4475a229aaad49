"""The output folder of a reproduction and what is written into it (tables, JSON, figures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from roofline._outdir import check_out_dir as _check
from roofline._runfiles import atomic_write, replacing

__all__ = ["Reproduction", "check_out_dir"]


def check_out_dir(out: str | Path, force: bool) -> Path:
    """Refuse an existing, non-empty output folder unless ``force`` (files are then overwritten;
    nothing is deleted); create it."""
    path = _check(out, force=force)
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Reproduction:
    """What a reproduction wrote and its headline numbers."""

    experiment: str
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _write(out: Path, name: str, text: str, files: list[Path]) -> None:
    path = out / name
    atomic_write(path, text)  # never a half-written file in place of the old one
    files.append(path)


def _csv(out: Path, name: str, df: pd.DataFrame, files: list[Path]) -> None:
    path = out / name
    with replacing(path) as tmp:
        df.to_csv(tmp, index=False)
    files.append(path)


def _figures(out: Path, figures: list[tuple[Any, str]], rep: Reproduction, *, width: int = 1200,
             height: int = 720) -> None:
    import warnings

    from roofline.plots import FigureWriter

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with FigureWriter(width=width, height=height) as writer:
            for fig, stem in figures:
                rep.files += writer.write(fig, out / "plots" / stem)
    rep.warnings += sorted({str(w.message) for w in caught})


def _slug(name: str) -> str:
    return "_".join("".join(ch if ch.isalnum() else " " for ch in name.lower()).split())
