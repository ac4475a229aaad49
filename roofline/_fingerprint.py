"""What a sweep reads, as short fingerprints: ``--resume`` continues a run only when they match.

A run's inputs are the normalised sweep file (its parsed content, so that comments, key order
and the file's location do not matter), the bytes of every model, device and cost spec it uses,
the fitted model's files (the calibrated profiles of its devices and the software overheads,
unless the file asks for the datasheet roofline), the chunk size and number of points (which decide how rows are split into part files), the
code version (the package version and a hash of its sources, since other code may give other
numbers) and the spec schema versions (the layout this code reads, and each device file's).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from functools import lru_cache
from pathlib import Path

from roofline._specfile import resolve_spec
from roofline.cost import DEFAULT_COST_SPEC
from roofline.hardware import SCHEMA_VERSION, load_hardware
from roofline.sweepfile import SweepSpec

__all__ = ["code_version", "file_hash", "sweep_inputs"]

_PACKAGE = Path(__file__).resolve().parent


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def file_hash(path: Path) -> str:
    """Short SHA-256 of a file's bytes."""
    return _digest(Path(path).read_bytes())


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<version>+<hash of the package's Python sources>``."""
    from roofline import __version__

    h = hashlib.sha256()
    for f in sorted(_PACKAGE.rglob("*.py")):
        h.update(f.relative_to(_PACKAGE).as_posix().encode())
        h.update(f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def _normalised(spec: SweepSpec) -> str:
    """The parsed sweep file as canonical JSON (without its path, description and search block,
    which do not change a sweep's rows)."""
    data = dataclasses.asdict(spec)
    for key in ("path", "description", "search"):
        data.pop(key, None)
    return json.dumps(data, sort_keys=True, default=str)


def _spec_names(spec: SweepSpec, key: str, top: tuple[str, ...]) -> list[str]:
    swept = [p.values or () for p in spec.parameters if p.name == key]
    return list(dict.fromkeys([*top, *(str(v) for values in swept for v in values)]))


def sweep_inputs(spec: SweepSpec, chunk_size: int, total_points: int) -> dict[str, str]:
    """Name -> fingerprint of everything a sweep's rows depend on (names read in messages)."""
    inputs = {"sweep file": _digest(_normalised(spec).encode()), "chunk size": str(chunk_size),
              "total points": str(total_points), "code version": code_version(),
              "schema version": str(SCHEMA_VERSION)}
    for name in _spec_names(spec, "model", spec.models):
        inputs[f"model spec {name}"] = file_hash(resolve_spec(name, "model_specs", "model"))
    for name in _spec_names(spec, "hardware", spec.hardware):
        inputs[f"hardware spec {name}"] = file_hash(resolve_spec(name, "hardware_specs", "hardware"))
        inputs[f"hardware spec {name} schema_version"] = str(load_hardware(name).schema_version)
    cost = Path(spec.cost_file) if spec.cost_file else DEFAULT_COST_SPEC
    inputs[f"cost spec {cost.name}"] = file_hash(cost)
    # the fitted model's files (calibrated profiles, overheads); the choice itself is in the sweep file's
    for path in spec.model_choice.input_files(_spec_names(spec, "hardware", spec.hardware)):
        inputs[f"fitted model {path.parent.name}/{path.name}"] = file_hash(path)
    return inputs
