"""Output paths: check where a command will write before it computes anything, so a path under
a file, a read-only folder, a missing folder or a symbolic link is one line, not a traceback."""

from __future__ import annotations

import os
from pathlib import Path

from roofline._specfile import printable
from roofline.exceptions import SpecError

__all__ = ["check_writable"]


def check_writable(path: str | Path, *, create_parents: bool = True, folder: bool = False) -> Path:
    """Refuse an output ``path`` that cannot be written; return it.

    Args:
        path: a file (or, with ``folder``, a folder) the command will write.
        create_parents: the command creates missing parent folders; when False a missing parent
            is an error.
        folder: ``path`` is an output folder that may be emptied with --force: it must not be a
            symbolic link (removing it would act on what it points to) nor an existing file.
    """
    path = Path(path)
    shown = printable(path)
    if folder and path.is_symlink():
        raise SpecError(f"{shown}: is a symbolic link; give the real folder as the output")
    if folder and path.exists() and not path.is_dir():
        raise SpecError(f"{shown}: exists and is not a directory")
    if not folder and path.is_dir():
        raise SpecError(f"{shown}: is a directory; expected a file path")
    parent = path.parent
    if not create_parents and not parent.exists():
        raise SpecError(f"{shown}: folder {printable(parent)} does not exist")
    existing = parent
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise SpecError(f"{shown}: {printable(existing)} is a file, not a folder")
    target = path if path.exists() else existing
    if not os.access(target, os.W_OK | (os.X_OK if target.is_dir() else 0)):
        raise SpecError(f"{shown}: {printable(target)} is not writable")
    return path
