"""Cost, power and TCO parameters: the sourced YAML of ``cost_specs/`` read and checked.

The file is read with the same sourced-spec reader as hardware and model specs
(:mod:`roofline._specfile`): every number is ``{value, source | estimate, confidence?, range?}``
and every error is one line naming the file, the key path and what is allowed. Parameters are
flat dotted keys (``hbm.usd_per_GB.HBM3``); tables are keyed by process node, memory generation,
link topology, matrix unit or device name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from roofline._specfile import PROJECT_ROOT, Block, printable, read_yaml
from roofline.dtypes import PEAK_UNITS
from roofline.exceptions import SpecError
from roofline.hardware import TIER_NAMES

__all__ = [
    "DEFAULT_COST_SPEC",
    "CostParameters",
    "load_cost_parameters",
    "TOPOLOGIES",
    "COST_BASES",
    "CONFIDENCES",
]

#: The bundled parameter file, used when no path is given.
DEFAULT_COST_SPEC = PROJECT_ROOT / "cost_specs" / "default.yaml"

YIELD_MODELS = ("negative_binomial", "murphy", "poisson")
COST_BASES = ("manufacturing", "price")
TOPOLOGIES = ("switched", "full_mesh")
CONFIDENCES = ("high", "medium", "low")
_LEAF_FIELDS = ("value", "source", "estimate", "confidence", "range", "note")


@dataclass(frozen=True)
class _Rule:
    """How one parameter (or one table of parameters) is checked."""

    index: str | None = None  # None: one value; else the kind of key the table is indexed by
    strict: bool = False  # > 0 rather than >= 0
    maximum: float | None = None
    choices: tuple[str, ...] = ()


_NONNEG, _POS, _FRACTION = _Rule(), _Rule(strict=True), _Rule(strict=True, maximum=1.0)
_RULES: dict[str, _Rule] = {
    "basis.cost": _Rule(choices=COST_BASES),
    "wafer.diameter_mm": _POS,
    "wafer.edge_exclusion_mm": _NONNEG,
    "wafer.scribe_mm": _NONNEG,
    "wafer.usd_per_wafer": _Rule("node"),
    "defects.yield_model": _Rule(choices=YIELD_MODELS),
    "defects.clustering_alpha": _POS,
    "defects.density_per_cm2": _Rule("node"),
    "die.reticle_limit_mm2": _POS,
    "sram.l2_mm2_per_MiB": _Rule("node"),
    "sram.macro_mm2_per_MiB": _Rule("node"),
    "hbm.usd_per_GB": _Rule("generation"),
    "hbm.stack_bandwidth_GBps": _Rule("generation", strict=True),
    "hbm.stack_capacity_GiB": _Rule("generation", strict=True),
    "hbm.on_interposer": _Rule("generation", maximum=1.0),
    "hbm.pj_per_byte": _Rule("generation"),
    "hbm.stack_footprint_mm2": _NONNEG,
    "packaging.interposer_area_factor": _NONNEG,
    "packaging.usd_per_interposer_mm2": _NONNEG,
    "packaging.bond_yield_per_component": _FRACTION,
    "packaging.assembly_yield": _FRACTION,
    "packaging.test_assembly_usd": _NONNEG,
    "interconnect.switch_usd_per_GBps": _Rule("topology"),
    "interconnect.board_usd_per_GBps": _NONNEG,
    "interconnect.serdes_mm2_per_GBps": _Rule("node"),
    "interconnect.scale_out_usd_per_GBps": _NONNEG,
    "system.host_share_usd": _NONNEG,
    "tiers.usd_per_GB": _Rule("tier"),
    "tiers.pj_per_byte": _Rule("tier"),
    "tiers.cpu_usd": _Rule("tier"),
    "tiers.cpu_memory_GiB": _Rule("tier", strict=True),
    "price.usd_per_device": _Rule("device", strict=True),
    "energy.pj_per_flop": _Rule("unit"),
    "energy.vector_pj_per_flop": _NONNEG,
    "energy.node_scale": _Rule("node", strict=True),
    "energy.l2_pj_per_byte": _NONNEG,
    "energy.link_pj_per_byte": _NONNEG,
    "energy.static_fraction_of_tdp": _Rule(maximum=1.0),
    "energy.busy_fraction_of_tdp": _Rule(maximum=1.0),
    "energy.noc_pj_per_byte": _NONNEG,
    "tco.lifetime_years": _POS,
    "tco.interest_rate": _NONNEG,
    "tco.usd_per_kWh": _NONNEG,
    "tco.pue": _Rule(strict=True),
    "tco.hosting_usd_per_kW_month": _NONNEG,
    "tco.host_power_w": _NONNEG,
}
#: Tables whose keys define the known process nodes / memory generations.
_INDEX_OWNERS = {"node": "wafer.usd_per_wafer", "generation": "hbm.usd_per_GB"}
#: Tables whose keys are a fixed set.
_FIXED_INDEX = {"topology": TOPOLOGIES, "unit": PEAK_UNITS, "tier": TIER_NAMES}
_SECTIONS = tuple(dict.fromkeys(key.split(".")[0] for key in _RULES))
_TOP_LEVEL_EXTRAS = ("description", "node_aliases")


def _error(origin: str, key: str, problem: str) -> SpecError:
    return SpecError(printable(f"{origin}: {key}: {problem}"))  # a key may hold control characters


@lru_cache(maxsize=1024)
def _normalize_name(name: str) -> str:
    """Case-, space-, '-'/'_'- and 'TSMC'-prefix-insensitive form of a node or generation name."""
    compact = re.sub(r"[\s_\-]", "", str(name)).upper()
    return compact[4:] if compact.startswith("TSMC") and len(compact) > 4 else compact


#: Bounds of every cost number: no parameter (USD, mm2, GB/s, years, pJ) comes near 1e9, and a
#: strictly positive one divides somewhere; beyond these the cost chain overflows to inf and NaN.
COST_VALUE_MAX = 1e9
COST_POSITIVE_MIN = 1e-6


def _check_value(value: Any, key: str, rule: _Rule, origin: str) -> float | str:
    """A bare value against its rule, through the spec reader's number and string checks."""
    parent, name = key.rsplit(".", 1)
    block = Block({name: value}, origin, parent)
    if rule.choices:
        return block.string(name, choices=rule.choices)
    number = block.number(name, strict=rule.strict, maximum=rule.maximum or COST_VALUE_MAX)
    if rule.strict and number < COST_POSITIVE_MIN:
        raise _error(origin, key, f"must be >= {COST_POSITIVE_MIN:g} (it divides), got {number:g}")
    return number


def _parse_leaf(node: Any, key: str, rule: _Rule, origin: str) -> tuple[float | str, dict[str, Any]]:
    """One ``{value, source|estimate, confidence?, range?}`` mapping -> (value, provenance)."""
    if not isinstance(node, Mapping) or "value" not in node:
        raise _error(origin, key, "expected {value, source: ... | estimate: ..., confidence: high|medium|low}")
    parent, name = key.rsplit(".", 1)
    leaf = Block(node, origin, key)
    leaf.check_keys(["value"], [f for f in _LEAF_FIELDS if f != "value"])
    if not (leaf.has("source") or leaf.has("estimate")):
        raise _error(origin, key, "no source or estimate given; every number needs one beside it")
    confidence = node.get("confidence")
    if confidence is not None and confidence not in CONFIDENCES:
        raise _error(origin, f"{key}.confidence", f"{confidence!r} is not allowed; choose one of "
                     + ", ".join(CONFIDENCES))
    value = _check_value(node["value"], key, rule, origin)
    provenance: dict[str, Any] = {k: str(node[k]) for k in ("source", "estimate", "confidence") if k in node}
    if "range" in node:
        provenance["range"] = _parse_range(node["range"], key, origin)
    return value, provenance


def _parse_range(raw: Any, key: str, origin: str) -> tuple[float, float]:
    """A plausible range ``[low, high]`` for sensitivity studies (a user's value may lie outside it)."""
    ok = (isinstance(raw, (list, tuple)) and len(raw) == 2
          and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in raw))
    if not ok or not 0 <= raw[0] <= raw[1]:
        raise _error(origin, f"{key}.range", f"{raw!r}; allowed: [low, high] with 0 <= low <= high")
    return float(raw[0]), float(raw[1])


def _check_keys(block: Mapping[str, Any], expected: list[str], prefix: str, origin: str) -> None:
    """The first unknown or missing key of a mapping, as a one-line error."""
    Block(block, origin, prefix).check_keys(expected)


def _parse_table(block: Any, key: str, rule: _Rule, origin: str) -> Iterator[tuple[str, Any, dict]]:
    """(entry, value, provenance) for each entry of a table keyed by node, generation, ..."""
    if not isinstance(block, Mapping) or "value" in block or not block:
        raise _error(origin, key, f"expected a table {{<{rule.index}>: {{value, source|estimate}}}}")
    fixed = _FIXED_INDEX.get(rule.index or "")
    for entry, leaf in block.items():
        if fixed is not None and entry not in fixed:
            raise _error(origin, f"{key}.{entry}", f"unknown {rule.index}; allowed: {', '.join(fixed)}")
        value, provenance = _parse_leaf(leaf, f"{key}.{entry}", rule, origin)
        yield str(entry), value, provenance
    if fixed is not None:  # every topology, peak unit and tier is priced
        for entry in fixed:
            if entry not in block:
                raise _error(origin, f"{key}.{entry}", f"missing; every {rule.index} needs an entry")


def _check_table_indices(values: Mapping[str, Any], origin: str) -> None:
    """Every table keyed by node (generation) names exactly the nodes of its owner table."""
    for index, owner in _INDEX_OWNERS.items():
        known = [k.split(".", 2)[2] for k in values if k.startswith(owner + ".")]
        for table, rule in _RULES.items():
            if rule.index != index or table == owner:
                continue
            present = [k.split(".", 2)[2] for k in values if k.startswith(table + ".")]
            for name in present:
                if name not in known:
                    raise _error(origin, f"{table}.{name}", f"unknown {index}; the {index}s of {owner} "
                                 f"are {', '.join(known)}")
            for name in known:
                if name not in present:
                    raise _error(origin, f"{table}.{name}", f"missing; every {index} of {owner} needs an entry")


def _parse_aliases(block: Any, nodes: list[str], origin: str) -> dict[str, str]:
    """``node_aliases``: alias -> a canonical node of ``wafer.usd_per_wafer``."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise _error(origin, "node_aliases", "expected a mapping {alias: canonical node}")
    for alias, target in block.items():
        if target not in nodes:
            raise _error(origin, f"node_aliases.{alias}", f"unknown node {target!r}; allowed: {', '.join(nodes)}")
    return {str(alias): str(target) for alias, target in block.items()}


def _parse_document(doc: Mapping[str, Any], origin: str) -> tuple[dict[str, Any], dict[str, dict], dict[str, str]]:
    """A parsed cost YAML -> flat values, provenance and node aliases."""
    _check_keys({k: v for k, v in doc.items() if k not in _TOP_LEVEL_EXTRAS}, list(_SECTIONS), "", origin)
    values: dict[str, Any] = {}
    provenance: dict[str, dict] = {}
    for section in _SECTIONS:
        names = [k.split(".")[1] for k in _RULES if k.startswith(section + ".")]
        block = doc[section]
        if not isinstance(block, Mapping):
            raise _error(origin, section, f"expected a mapping of {', '.join(names)}")
        _check_keys(block, names, section, origin)
        for name in names:
            key, rule = f"{section}.{name}", _RULES[f"{section}.{name}"]
            if rule.index is None:
                values[key], provenance[key] = _parse_leaf(block[name], key, rule, origin)
                continue
            for entry, value, prov in _parse_table(block[name], key, rule, origin):
                values[f"{key}.{entry}"], provenance[f"{key}.{entry}"] = value, prov
    _check_table_indices(values, origin)
    nodes = [k.split(".", 2)[2] for k in values if k.startswith(_INDEX_OWNERS["node"] + ".")]
    return values, provenance, _parse_aliases(doc.get("node_aliases"), nodes, origin)


def _rule_for(key: str) -> _Rule | None:
    """The rule of a flat key (``hbm.usd_per_GB.HBM3`` -> rule of ``hbm.usd_per_GB``)."""
    return _RULES.get(".".join(key.split(".")[:2]))


@dataclass(frozen=True)
class CostParameters:
    """Validated parameters, keyed by the dotted paths of the YAML file.

    Attributes:
        values: ``"section.name"`` or ``"section.table.entry"`` -> value (float, or str for
            ``basis.cost`` and ``defects.yield_model``), e.g. ``values["hbm.usd_per_GB.HBM3"]``.
        provenance: Same keys -> ``{"source" | "estimate": ..., "confidence": ..., "range": (lo, hi)}``.
        node_aliases: Alias -> canonical process node (e.g. ``"4N" -> "N4"``).
        origin: The file the parameters came from (with ``" + overrides"`` if any).
    """

    values: Mapping[str, float | str]
    provenance: Mapping[str, Mapping[str, Any]]
    node_aliases: Mapping[str, str]
    origin: str

    @classmethod
    def from_yaml(cls, path: str | Path) -> CostParameters:
        """Loads and checks a cost YAML file (same keys as ``cost_specs/default.yaml``).

        Raises:
            SpecError: Missing or unreadable file, or a key unknown, missing or out of range.
        """
        origin = str(path)
        try:
            doc = read_yaml(Path(path))
        except SpecError as exc:
            raise SpecError(f"{exc} (a cost YAML such as {DEFAULT_COST_SPEC})") from None
        doc = _with_later_sections(doc, Path(path))
        values, provenance, aliases = _parse_document(doc, origin)
        return cls(MappingProxyType(values), MappingProxyType(provenance), MappingProxyType(aliases), origin)

    def with_overrides(self, overrides: Mapping[str, float | str]) -> CostParameters:
        """A copy with some values replaced, e.g. ``{"hbm.usd_per_GB.HBM3": 12.0}``.

        Raises:
            SpecError: A key is not a parameter of this file, or a value breaks its rule.
        """
        if not overrides:
            return self
        origin = f"{self.origin} (override)"
        values, provenance = dict(self.values), dict(self.provenance)
        for key, value in overrides.items():
            rule = _rule_for(key)
            if rule is None or key not in values:
                near = sorted(k for k in values if k.startswith(".".join(key.split(".")[:2])))
                allowed = ", ".join(near) if near else "the dotted keys of " + self.origin
                raise _error(origin, key, f"unknown key; allowed: {allowed}")
            values[key] = _check_value(value, key, rule, origin)
            provenance[key] = {"estimate": "user override"}
        return CostParameters(MappingProxyType(values), MappingProxyType(provenance), self.node_aliases,
                              f"{self.origin} + overrides")

    def value(self, key: str) -> float:
        """The numeric value of a dotted key path."""
        try:
            return float(self.values[key])
        except KeyError:
            raise _error(self.origin, key, "unknown key") from None

    def table(self, table: str) -> dict[str, float | str]:
        """Entries of one table, e.g. ``table("wafer.usd_per_wafer") -> {"N7": 9500.0, ...}``."""
        return dict(self._tables.get(table, {}))

    @cached_property
    def _tables(self) -> dict[str, dict[str, float | str]]:
        """``"section.table"`` -> its entries, built once (the cost model asks for them per call)."""
        tables: dict[str, dict[str, float | str]] = {}
        for key, value in self.values.items():
            parts = key.split(".", 2)
            if len(parts) == 3:
                tables.setdefault(f"{parts[0]}.{parts[1]}", {})[parts[2]] = value
        return tables

    @property
    def basis(self) -> str:
        """``"manufacturing"`` or ``"price"``: what a cost in dollars means."""
        return str(self.values["basis.cost"])

    @cached_property
    def process_nodes(self) -> tuple[str, ...]:
        """Canonical process nodes (keys of ``wafer.usd_per_wafer``)."""
        return tuple(self._tables[_INDEX_OWNERS["node"]])

    @cached_property
    def hbm_generations(self) -> tuple[str, ...]:
        """Known memory generations (keys of ``hbm.usd_per_GB``)."""
        return tuple(self._tables[_INDEX_OWNERS["generation"]])

    @cached_property
    def _names(self) -> dict[str, dict[str, str]]:
        """Normalised name -> canonical node or generation (aliases included), built once."""
        nodes = {_normalize_name(alias): node for alias, node in self.node_aliases.items()}
        nodes.update({_normalize_name(node): node for node in self.process_nodes})
        return {"node": nodes, "generation": {_normalize_name(g): g for g in self.hbm_generations}}

    def node(self, name: str) -> str:
        """Canonical name of a process node, resolving aliases (``"TSMC 4N"`` -> ``"N4"``)."""
        found = self._names["node"].get(_normalize_name(name))
        if found is None:
            raise _error(self.origin, "wafer.usd_per_wafer", f"unknown process node {name!r}; allowed: "
                         + ", ".join(self.process_nodes) + " or an alias in node_aliases ("
                         + ", ".join(self.node_aliases) + ")")
        return found

    def generation(self, name: str) -> str:
        """Canonical name of a memory generation (case-insensitive)."""
        found = self._names["generation"].get(_normalize_name(name))
        if found is None:
            raise _error(self.origin, "hbm.usd_per_GB", f"unknown HBM generation {name!r}; allowed: "
                         + ", ".join(self.hbm_generations))
        return found

    def per_node(self, table: str, process_node: str) -> float:
        """Value of a node-keyed table for a node or alias, e.g. ``("wafer.usd_per_wafer", "4N")``."""
        return self.value(f"{table}.{self.node(process_node)}")

    def per_generation(self, table: str, hbm_generation: str) -> float:
        """Value of a generation-keyed table, e.g. ``("hbm.usd_per_GB", "HBM3")``."""
        return self.value(f"{table}.{self.generation(hbm_generation)}")

    def plausible_range(self, key: str) -> tuple[float, float] | None:
        """The ``range`` the file gives for a parameter, or None."""
        return self.provenance.get(key, {}).get("range")


#: Sections added after users first wrote their own cost files: a file without one takes it
#: from the bundled default (with a notice) instead of failing to load.
LATER_SECTIONS = ("tiers",)
#: Keys added to an existing section later (the busy power and on-chip path of the power model): a
#: file whose section lacks one takes the bundled value, with the same notice.
LATER_KEYS = ("energy.busy_fraction_of_tdp", "energy.noc_pj_per_byte")


def _with_later_sections(doc: Any, path: Path) -> Any:
    """``doc`` completed with the bundled default's later sections and keys it lacks (one notice
    per file)."""
    if not isinstance(doc, Mapping) or path.resolve() == Path(DEFAULT_COST_SPEC).resolve():
        return doc
    missing = [name for name in LATER_SECTIONS if name not in doc]
    keys = [k for k in LATER_KEYS if isinstance(doc.get(k.split(".")[0]), Mapping)
            and k.split(".")[1] not in doc[k.split(".")[0]]]
    if not missing and not keys:
        return doc
    import warnings

    from roofline.exceptions import SpecDeprecationWarning

    default = read_yaml(Path(DEFAULT_COST_SPEC))
    lacks = [f"{name} section" for name in missing] + keys
    warnings.warn(SpecDeprecationWarning(
        f"{path}: no {', '.join(lacks)}; using the bundled {Path(DEFAULT_COST_SPEC).name}'s "
        f"(copy it into the file to change it)"), stacklevel=4)
    out = {**doc, **{name: default[name] for name in missing}}
    for key in keys:
        section, name = key.split(".")
        out[section] = {**out[section], name: default[section][name]}
    return out


def load_cost_parameters(path: str | Path | None = None,
                         overrides: Mapping[str, float | str] | None = None) -> CostParameters:
    """Cost parameters from a YAML file (default ``cost_specs/default.yaml``) with dotted overrides.

    Raises:
        SpecError: Unknown, missing or out-of-range keys (the message names the file and key path).
    """
    return _from_yaml_cached(Path(DEFAULT_COST_SPEC if path is None else path)).with_overrides(overrides or {})


_LOADED: dict[tuple[str, int], CostParameters] = {}


def _from_yaml_cached(path: Path) -> CostParameters:
    """A parsed file, reused while it is unchanged (parameters are immutable; checking ~100 sourced
    values takes milliseconds, more than a prediction)."""
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return CostParameters.from_yaml(path)  # its one-line error
    key = (str(path), stamp)
    if key not in _LOADED:
        if len(_LOADED) > 64:
            _LOADED.clear()
        _LOADED[key] = CostParameters.from_yaml(path)
    return _LOADED[key]
