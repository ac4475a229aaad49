"""The files a run writes into its output folder: written atomically and listed in a manifest.

A final file is written to ``<name>.roofline-tmp`` and renamed over its target with
``os.replace`` (atomic on POSIX and Windows), so a killed run leaves either the old file or the
new one, never half of one. Every file a run will write is listed in the folder's manifest
(``.roofline-run.json``) *before* it is written, so that ``--force`` can remove exactly the files
a command wrote, and any other file in the folder is recognised as the user's (foreign) and never
deleted. The manifest also records the run's inputs (hashes of the files it read, options) so that
``--resume`` can refuse a run it does not match, and the run's stage.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["MANIFEST_FILE", "TMP_SUFFIX", "RunManifest", "atomic_write", "record_in_run", "replacing", "tmp_path"]

#: The manifest of an output folder.
MANIFEST_FILE = ".roofline-run.json"
#: Suffix of a file being written; a leftover one is always the run's own.
TMP_SUFFIX = ".roofline-tmp"


def tmp_path(path: Path) -> Path:
    """The temporary name ``path`` is written under before it is renamed into place."""
    return path.with_name(path.name + TMP_SUFFIX)


@contextlib.contextmanager
def replacing(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path`` atomically, on error
    it is removed and ``path`` is left as it was."""
    target = Path(path)
    tmp = tmp_path(target)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def atomic_write(path: str | os.PathLike[str], data: bytes | str) -> Path:
    """Write ``data`` to ``path`` through a temporary file and an atomic rename."""
    with replacing(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
    return Path(path)


@dataclass
class RunManifest:
    """What one command wrote into an output folder, and what it was run with.

    ``files`` and ``dirs`` are relative to the folder; a listed directory is the run's as a whole
    (the part files of a sweep). ``stage`` is the command's own progress marker (``"running"``
    until it finishes); ``inputs`` maps a human-readable name to what the run read (a hash or an
    option value).
    """

    folder: Path
    command: str
    inputs: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    dirs: list[str] = field(default_factory=list)
    stage: str = "running"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_FILE

    @classmethod
    def load(cls, folder: Path) -> RunManifest | None:
        """The folder's manifest, or None when it has none (or an unreadable one)."""
        try:
            data = json.loads((folder / MANIFEST_FILE).read_text())
            return cls(folder, str(data["command"]), dict(data.get("inputs", {})), list(data.get("files", [])),
                       list(data.get("dirs", [])), str(data.get("stage", "running")), dict(data.get("info", {})))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self) -> None:
        atomic_write(self.path, json.dumps({"command": self.command, "stage": self.stage, "inputs": self.inputs,
                                            "files": self.files, "dirs": self.dirs, "info": self.info},
                                           indent=1))

    def _relative(self, path: str | os.PathLike[str]) -> str:
        p = Path(path)
        for base in (self.folder, self.folder.resolve()):
            with contextlib.suppress(ValueError):
                return p.relative_to(base).as_posix()
        return p.as_posix()  # already relative to the folder

    def record(self, *paths: str | os.PathLike[str], directory: bool = False) -> None:
        """List files (or whole directories) the run is about to write, then save the manifest."""
        names = self.dirs if directory else self.files
        new = [r for r in (self._relative(p) for p in paths) if r not in names]
        if new:
            names.extend(new)
            self.save()

    def owns(self, relative: str) -> bool:
        """Whether a file (path relative to the folder) is this run's."""
        if relative == MANIFEST_FILE or relative.endswith(TMP_SUFFIX) or relative in self.files:
            return True
        return any(relative == d or relative.startswith(d + "/") for d in self.dirs)

    def remove_written(self, keep: Iterable[str] = ()) -> None:
        """Delete every listed file and directory but those in ``keep``, then empty folders
        that held them; the manifest itself stays."""
        kept = set(keep)
        for d in self.dirs:
            if d not in kept:
                shutil.rmtree(self.folder / d, ignore_errors=True)
        for f in self.files:
            if f not in kept:
                with contextlib.suppress(FileNotFoundError):
                    (self.folder / f).unlink()
        for tmp in self.folder.rglob("*" + TMP_SUFFIX):
            with contextlib.suppress(OSError):
                tmp.unlink()
        parents = {(self.folder / f).parent for f in self.files} - {self.folder}
        for parent in sorted(parents, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                parent.rmdir()  # only when empty
        self.files = [f for f in self.files if f in kept]
        self.dirs = [d for d in self.dirs if d in kept]


def record_in_run(path: str | os.PathLike[str]) -> None:
    """List a file another command writes inside a run's folder (a report, a Pareto front or
    plot) in that run's manifest: the run's next ``--force`` then removes it with the outputs it
    describes, instead of refusing the folder for a file the run did not write. A file outside
    every run folder is left alone."""
    target = Path(path).resolve()
    for folder in target.parents:
        manifest = RunManifest.load(folder)
        if manifest is not None:
            manifest.record(target.relative_to(folder))
            return
