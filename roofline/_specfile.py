"""Reading spec YAML files: sourced values, exact key sets and error messages that name the key."""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from roofline.exceptions import SpecError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning parse errors into a one-line SpecError.

    Parsed files are cached by path and modification time (parsing costs milliseconds, a
    prediction less); callers must not mutate the result.
    """
    try:
        stamp = Path(path).stat().st_mtime_ns
    except OSError:
        stamp = 0
    return _read_yaml_cached(str(path), stamp)


@functools.lru_cache(maxsize=256)
def _read_yaml_cached(path_text: str, stamp: int) -> dict[str, Any]:
    path = Path(path_text)
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}:{where}: not valid YAML ({problem})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a YAML mapping at the top level")
    return data


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'; did you mean a, b?' or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


class Block:
    """One mapping of a spec file, with its key path for error messages."""

    def __init__(self, data: Any, file: Path | str, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise SpecError(f"{file}: {path or 'top level'}: expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.file = file
        self.path = path

    def _key(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, message: str) -> SpecError:
        return SpecError(f"{self.file}: {self._key(key)}: {message}")

    def check_keys(self, required: Iterable[str], optional: Iterable[str] = ()) -> None:
        required, optional = list(required), list(optional)
        allowed = set(required) | set(optional)
        for key in self.data:
            if key not in allowed:
                raise self.error(key, f"unknown key; allowed keys are {', '.join(sorted(allowed))}")
        for key in required:
            if key not in self.data:
                raise SpecError(f"{self.file}: {self._key(key)}: missing required key")

    def has(self, key: str) -> bool:
        return key in self.data and self.data[key] is not None

    def block(self, key: str) -> Block:
        return Block(self.data[key], self.file, self._key(key))

    def raw(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def number(self, key: str, *, minimum: float = 0.0, strict: bool = False,
               maximum: float | None = None, default: float | None = None) -> float:
        """A number, given plainly or as {value, source|estimate}; range-checked."""
        if key not in self.data or self.data[key] is None:
            if default is not None:
                return float(default)
            raise SpecError(f"{self.file}: {self._key(key)}: missing required key")
        value = self.data[key]
        if isinstance(value, Mapping):
            entry = Block(value, self.file, self._key(key))
            entry.check_keys(["value"], ["source", "estimate", "confidence", "note"])
            if not (entry.has("source") or entry.has("estimate")):
                raise entry.error("value", "every number needs a 'source' or an 'estimate' beside it")
            value = entry.data["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(key, f"expected a number, got {value!r}")
        value = float(value)
        if value != value or value < minimum or (strict and value == minimum):
            op = ">" if strict else ">="
            raise self.error(key, f"must be {op} {minimum:g}, got {value:g}")
        if maximum is not None and value > maximum:
            raise self.error(key, f"must be <= {maximum:g}, got {value:g}")
        return value

    def integer(self, key: str, *, minimum: int = 1, maximum: int | None = None,
                default: int | None = None) -> int:
        value = self.number(key, minimum=minimum, maximum=maximum, default=default)
        if value != int(value):
            raise self.error(key, f"expected an integer, got {value:g}")
        return int(value)

    def string(self, key: str, *, choices: Iterable[str] | None = None, default: str | None = None) -> str:
        value = self.data.get(key, default)
        if isinstance(value, Mapping):
            value = value.get("value")
        if value is None:
            raise SpecError(f"{self.file}: {self._key(key)}: missing required key")
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                raise self.error(key, f"{value!r} is not allowed; choose one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value


def resolve_spec(name_or_path: str | Path, folder: str, kind: str) -> Path:
    """A bundled spec by name (``h100-sxm``) or a file path; unknown names suggest the closest."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.suffix.lower() in {".yaml", ".yml", ".json"} or path.exists() or "/" in text:
        if not path.exists():
            raise SpecError(f"{text}: {kind} file not found")
        if path.is_dir() and (path / "config.json").exists():
            return path / "config.json"
        return path
    names = bundled_names(folder)
    key = text.lower()
    if key in names:
        return bundled_dir(folder) / f"{key}.yaml"
    listing = "hardware" if kind == "hardware" else f"{kind}s"
    raise SpecError(f"unknown {kind} {text!r}{closest(key, names)} (see `roofline list {listing}`)")


def bundled_dir(folder: str) -> Path:
    return PROJECT_ROOT / folder


def bundled_names(folder: str) -> list[str]:
    directory = bundled_dir(folder)
    if not directory.is_dir():
        return []
    return sorted(p.stem for p in directory.glob("*.yaml") if not p.stem.startswith("_"))
