"""Reading spec YAML files: sourced values, exact key sets and error messages that name the key."""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from roofline.exceptions import SpecError

PROJECT_ROOT = Path(__file__).resolve().parent.parent

#: deeper than any real spec; deeper input is refused before the parser recurses
MAX_NESTING = 100
MAX_FILE_BYTES = 64 * 2**20
#: The smallest value a "> 0" field takes: a bandwidth or throughput of 1e-300 overflows the
#: products it enters (time x bandwidth) into inf
TINY_POSITIVE = 1e-12


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e308`` (an exponent without a decimal point) as a number,
    as YAML 1.2 does; YAML 1.1 would read it as a string."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"))


def printable(text: object) -> str:
    """``text`` with control and format characters escaped, so an error stays one line."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(text))


def read_text(path: Path, kind: str) -> str:
    """The file as UTF-8 text; every way it can fail is a one-line SpecError."""
    if path.is_dir():
        raise SpecError(f"{path}: is a directory; expected a {kind} file")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read ({e.strerror})") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"{path}: {len(raw):,} bytes; a {kind} file is at most {MAX_FILE_BYTES:,}")
    if b"\x00" in raw:
        raise SpecError(f"{path}: binary file; expected {kind} text (UTF-8)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    depth = _max_bracket_depth(text)
    if depth > MAX_NESTING:
        raise SpecError(f"{path}: nested {depth} levels deep; at most {MAX_NESTING} are allowed")
    return text


def _max_bracket_depth(text: str) -> int:
    """Nesting depth of flow brackets (an upper bound that ignores quoting: specs never come close),
    or of block indentation counted as one level per two columns."""
    indent = max((len(line) - len(line.lstrip(" ")) for line in text.splitlines()), default=0)
    depth = best = indent // 2
    for c in text:
        if c in "[{":
            depth += 1
            best = max(best, depth)
        elif c in "]}":
            depth = max(depth - 1, 0)
    return best


def _mapping(data: Any, path: Path, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a {what} mapping at the top level, got {type(data).__name__}")
    return data


def keyed_mapping(data: Any, where: str, keys: Sequence[str]) -> dict[str, Any]:
    """``data`` as a mapping whose keys are all among ``keys`` (a sweep file's sub-block, such as
    ``serving:``); errors name ``where`` and list what is allowed."""
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping of {', '.join(keys)}")
    unknown = [k for k in data if k not in keys]
    if unknown:
        raise SpecError(printable(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(keys)})"))
    return data


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object (a Hugging Face config.json), with one-line errors."""
    text = read_text(Path(path), "JSON")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{path}: not valid JSON (line {e.lineno}: {e.msg})") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deep") from None
    return _mapping(data, Path(path), "JSON object as")


def load_yaml_document(path: str | Path) -> Any:
    """Any YAML document (the cost loader validates its own structure); one-line errors."""
    path = Path(path)
    text = read_text(path, "YAML")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(f"{path}:{where}: not valid YAML ({printable(problem)})") from None
    except RecursionError:
        raise SpecError(f"{path}: nested too deep") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """Parse a YAML mapping, turning parse errors into a one-line SpecError.

    Parsed files are cached by path and modification time (parsing costs milliseconds, a
    prediction less); callers must not mutate the result.
    """
    try:
        stamp = Path(path).stat().st_mtime_ns
    except (OSError, ValueError):
        stamp = 0
    return _read_yaml_cached(str(path), stamp)


@functools.lru_cache(maxsize=256)
def _read_yaml_cached(path_text: str, stamp: int) -> dict[str, Any]:
    path = Path(path_text)
    return _mapping(load_yaml_document(path), path, "YAML")


def closest(name: str, choices: Iterable[str], n: int = 3) -> str:
    """'; did you mean a, b?' or '' when nothing is close."""
    matches = difflib.get_close_matches(name, list(choices), n=n, cutoff=0.5)
    return f"; did you mean {', '.join(matches)}?" if matches else ""


class Block:
    """One mapping of a spec file, with its key path for error messages."""

    def __init__(self, data: Any, file: Path | str, path: str = "") -> None:
        if not isinstance(data, Mapping):
            raise SpecError(f"{file}: {printable(path) or 'top level'}: expected a mapping, got {type(data).__name__}")
        self.data = dict(data)
        self.file = file
        self.path = path

    def _key(self, key: str) -> str:
        return printable(f"{self.path}.{key}" if self.path else key)

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
            raise self.error(key, f"expected a number, got {printable(repr(value))[:60]}")
        value = float(value)
        if not math.isfinite(value):
            raise self.error(key, f"must be a finite number, got {value}")
        if value < minimum or (strict and value == minimum):
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
            raise self.error(key, f"expected a string, got {printable(repr(value))[:60]}")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                raise self.error(key, f"{printable(repr(value))[:60]} is not allowed; choose one of {', '.join(choices)}")
        return value

    def boolean(self, key: str, *, default: bool | None = None) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {printable(repr(value))[:60]}")
        return value

    def field(self, decl: Field) -> float:
        """The value of a declared field, checked against its declaration."""
        if decl.kind == "integer":
            return self.integer(decl.key, minimum=int(decl.low), maximum=int(decl.high), default=decl.default)
        return self.number(decl.key, minimum=decl.low, strict=decl.strict, maximum=decl.high,
                           default=decl.default)


@dataclass(frozen=True)
class Field:
    """One numeric parameter of a spec block: its YAML key (unit in the name), unit, bounds and
    type. Parsing, CLI overrides and sweep values all check a value with :meth:`check`, so they
    accept the same values and refuse the rest with the same message."""

    key: str
    unit: str
    low: float
    high: float
    kind: str = "number"  # number | integer
    strict: bool = False  # low itself is excluded (bandwidths, throughputs: > 0)
    default: float | None = None

    def allowed(self) -> str:
        what = "an integer" if self.kind == "integer" else "a number"
        low = f"> {self.low:g}" if self.strict else f">= {self.low:g}"
        unit = f" {self.unit}" if self.unit else ""
        return f"{what} {low} and <= {self.high:g}{unit}"

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not allowed, or None when it is."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected {self.allowed()}, got {printable(repr(value))[:60]}"
        v = float(value)
        if (not math.isfinite(v) or v < self.low or (self.strict and v == self.low) or v > self.high
                or (self.kind == "integer" and v != int(v))):
            return f"must be {self.allowed()}, got {v:g}"
        if self.strict and self.low == 0 and v < TINY_POSITIVE:
            return f"must be {self.allowed()}, got {v:g} (below {TINY_POSITIVE:g}: too small to compute with)"
        return None

    def check(self, value: Any, prefix: str) -> float:
        """``value`` as a float, or a SpecError ``{prefix}KEY: ...`` (prefix e.g. ``"file: sweep."``)."""
        problem = self.problem(value)
        if problem:
            raise SpecError(f"{prefix}{self.key}: {problem}")
        return float(value)


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


def name_from_stem(name: str, path: Path, kind: str) -> str:
    """The file stem is a spec's name: a differing ``name:`` gives way, with a one-line warning.

    Bundled specs are found by their stem (``-H h100-sxm`` reads ``h100-sxm.yaml``), so the name
    every output prints must be the one that finds the file again. Called once the file parsed,
    so that a bad file stays one error line.
    """
    import warnings

    from roofline.exceptions import RooflineWarning

    stem = path.stem.lower()
    if name != stem:
        # stacklevel 1: one location whoever loads the file, so Python's default filter (once per
        # location and message) gives it once although a sweep loads the file several times (its
        # check, the fitted model, the fingerprint, the summary); the message names the file
        warnings.warn(RooflineWarning(
            f"{path}: {kind} name {name!r} differs from the file stem {stem!r}; the stem is the name "
            f"(rename the file or fix 'name:')"), stacklevel=1)
    return stem
