"""Output folders: nothing a user wrote is overwritten without --force."""

from __future__ import annotations

from pathlib import Path

from roofline.exceptions import SpecError

__all__ = ["check_out_dir"]


def check_out_dir(out: str | Path, *, force: bool, resume: bool | None = None) -> Path:
    """Refuse an existing, non-empty output folder unless ``force`` (or ``resume`` where the
    command can continue an interrupted run; ``None``: the command cannot)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not (force or resume):
        also = " or --resume to continue an interrupted run" if resume is not None else ""
        raise SpecError(f"{path}: output directory exists and is not empty; pass --force to overwrite it{also}")
    return path
