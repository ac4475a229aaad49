"""Output folders: nothing a user wrote is overwritten or deleted, not even with --force.

:func:`claim_out_dir` is how a command that owns a whole folder (``sweep``, ``optimize``) starts:
it refuses the working folder (``--out .``) and any folder holding files the command did not
write (the folder's manifest says which are its own), takes the folder's lock, and then either
starts fresh (``--force`` first removes exactly the files the earlier run listed), or continues
an earlier run whose recorded inputs match (``resume``), naming whatever differs otherwise.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from roofline._runfiles import MANIFEST_FILE, TMP_SUFFIX, RunManifest
from roofline._runlock import LOCK_FILE, RunLock
from roofline.exceptions import SpecError

__all__ = ["OutDir", "check_out_dir", "claim_out_dir"]


def check_out_dir(out: str | Path, *, force: bool, resume: bool | None = None) -> Path:
    """Refuse an existing, non-empty output folder unless ``force`` (or ``resume`` where the
    command can continue an interrupted run; ``None``: the command cannot)."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path}: exists and is not a directory")
    _refuse_working_folder(path, out)
    if path.exists() and any(path.iterdir()) and not (force or resume):
        also = " or --resume to continue an interrupted run" if resume is not None else ""
        raise SpecError(f"{path}: output directory exists and is not empty; pass --force to overwrite it{also}")
    return path


@dataclass
class OutDir:
    """A claimed output folder: its lock is held and its manifest lists what the run writes."""

    path: Path
    lock: RunLock
    manifest: RunManifest
    created: bool  # the folder did not exist before this run
    resumed: bool  # continuing an earlier run's files (its manifest and stage)
    kept: tuple[str, ...] = ()  # files and folders of the earlier run that a failure must keep

    def record(self, *paths: str | os.PathLike[str], directory: bool = False) -> None:
        """List files the run is about to write (call it before writing them)."""
        self.manifest.record(*paths, directory=directory)

    def set_stage(self, stage: str) -> None:
        self.manifest.stage = stage
        self.manifest.save()

    def finish(self) -> None:
        """The run is complete: mark it done and release the folder."""
        self.set_stage("done")
        self.lock.release()

    def abandon(self, keep: Sequence[str] = ()) -> None:
        """The run failed: remove what it wrote (but what an earlier run it resumed needs, and
        ``keep``), and the folder itself when the run created it and nothing is left; release it."""
        try:
            self.manifest.remove_written(keep=(*self.kept, *keep))
            if not self.manifest.files and not self.manifest.dirs:
                with contextlib.suppress(FileNotFoundError):
                    self.manifest.path.unlink()
            else:
                self.manifest.save()
        finally:
            self.lock.release()
        if self.created:
            with contextlib.suppress(OSError):
                self.path.rmdir()  # only when empty

    def interrupt(self) -> None:
        """The run was interrupted (Ctrl-C): keep everything for ``--resume``; release it."""
        self.lock.release()


def _foreign(folder: Path, manifest: RunManifest | None, known: Sequence[str]) -> list[str]:
    """Files in ``folder`` that the manifest does not list (``known``: names a run of the command
    writes, used when an older version left no manifest)."""
    found = []
    for root, _dirs, files in os.walk(folder):
        for name in files:
            rel = (Path(root) / name).relative_to(folder).as_posix()
            if rel == LOCK_FILE:
                continue
            if manifest is not None:
                if not manifest.owns(rel):
                    found.append(rel)
            elif not any(rel == k or rel.startswith(k.rstrip("/") + "/") for k in known):
                found.append(rel)
    return sorted(found)


def _refuse_working_folder(path: Path, out: str | Path) -> None:
    """The working folder, or one that holds it, is never an output folder."""
    here, there = Path.cwd().resolve(), path.resolve()
    if here == there or there in here.parents:
        raise SpecError(f"--out {out}: refusing to write into the working folder (or one that holds it); "
                        f"choose a new folder such as runs/<name>")


def claim_out_dir(out: str | Path, *, command: str, inputs: Mapping[str, str] | None, force: bool,
                  resume: bool, known: Sequence[str] = (), keep_on_force: Sequence[str] = ()) -> OutDir:
    """Check, lock and prepare an output folder for a run of ``command``.

    Args:
        out: the folder (created when missing).
        command: the command's name (a folder another command wrote is foreign to this one).
        inputs: what the run reads (name -> hash or value); ``resume`` refuses an earlier run
            with other inputs, naming them. None: the command checks its inputs itself.
        force: start over: remove the files the earlier run listed (never any other file).
        resume: continue the earlier run (with ``inputs=None``: always; else when they match).
        known: files and folders (ending in ``/``) a run of the command writes, to recognise a
            folder an older version wrote without a manifest.
        keep_on_force: the command's files that ``force`` leaves for the command to reset
            itself (a study database, emptied through its own checks, not deleted under a reader).

    Raises:
        SpecError: the working folder; a file where the folder should be; foreign files; a
            folder in use by another run; an earlier run without ``force`` or ``resume``; a
            resume whose inputs differ.
    """
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise SpecError(f"{path}: exists and is not a directory")
    _refuse_working_folder(path, out)
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SpecError(f"{path}: cannot create the output folder ({e.strerror})") from None
    lock = RunLock(path, command)
    try:
        lock.acquire()
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    try:
        return _prepare(path, lock, created, command, inputs, force, resume, known, keep_on_force)
    except BaseException:
        lock.release()
        if created:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise


def _prepare(path: Path, lock: RunLock, created: bool, command: str, inputs: Mapping[str, str] | None,
             force: bool, resume: bool, known: Sequence[str], keep_on_force: Sequence[str]) -> OutDir:
    _remove_leftover_temporaries(path)
    previous = RunManifest.load(path)
    if previous is not None and previous.command != command:
        previous = None  # another command's files are foreign to this one
    foreign = _foreign(path, previous, known)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise SpecError(f"{path}: holds files roofline {command} did not write ({shown}); nothing was deleted; "
                        f"choose an empty or new --out")
    has_files = any(p.name not in (LOCK_FILE, MANIFEST_FILE) for p in path.iterdir())
    if previous is None:  # a fresh folder, or one an older version wrote (only known names)
        previous = RunManifest(path, command, stage="unknown")
        if has_files:
            previous.files = sorted(_foreign(path, RunManifest(path, command), ()))
    manifest = RunManifest(path, command, dict(inputs or {}))
    if has_files and resume and not force:
        if inputs is not None:
            _check_inputs(path, previous, inputs)
        previous.inputs = dict(inputs or previous.inputs)
        previous.save()
        return OutDir(path, lock, previous, created, True, tuple(previous.files) + tuple(previous.dirs))
    if has_files and not force:
        hint = " or --resume to continue it" if inputs is not None else ""
        raise SpecError(f"{path}: holds the outputs of an earlier roofline {command}; pass --force to replace "
                        f"them{hint}")
    if has_files:
        previous.remove_written(keep=keep_on_force)
        manifest.files = list(previous.files)  # what stays is still the command's
    manifest.save()
    return OutDir(path, lock, manifest, created, False)


def _remove_leftover_temporaries(path: Path) -> None:
    """Half-written files of a dead run (we hold the lock, so no live run is writing them); a run
    killed before its first manifest rename leaves only such a file."""
    for tmp in path.rglob("*" + TMP_SUFFIX):
        with contextlib.suppress(OSError):
            tmp.unlink()


def _is_digest(value: str) -> bool:
    """A file or content hash (not worth showing), as opposed to an option's value."""
    return len(value) >= 16 and all(c in "0123456789abcdef" for c in value)


def _check_inputs(path: Path, previous: RunManifest, inputs: Mapping[str, str]) -> None:
    """Refuse to resume a run made with other inputs, naming the first that differs."""
    for name in sorted(set(previous.inputs) | set(inputs)):
        was, now = previous.inputs.get(name), inputs.get(name)
        if was == now:
            continue
        if was is None or now is None:
            what = f"{name} is new" if was is None else f"{name} is no longer used"
        elif not (_is_digest(was) or _is_digest(now)):
            what = f"{name} differs ({was} in the earlier run, {now} now)"
        else:
            what = f"{name} differs from the earlier run's"
        raise SpecError(f"{path}: --resume refused: the {what}; pass --force to start over")
    if not previous.inputs:
        raise SpecError(f"{path}: --resume refused: the earlier run recorded no inputs to check; "
                        f"pass --force to start over")
