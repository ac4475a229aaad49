"""Component cost model: what a device (and its share of the server) costs to manufacture.

The chain, for one device (see ``docs/cost_model.md`` for every parameter and its source):

1. die area ``A = logic_area_mm2 + l2_MiB * sram_mm2_per_MiB(node)``; a part of ``num_dies`` dies
   is ``num_dies`` dies of ``A / num_dies`` each. Dies above the reticle (858 mm2) are flagged.
2. dies per wafer ``DPW = pi * (d/2)^2 / A - pi * d / sqrt(2 A)`` (``d`` = wafer diameter minus
   edge exclusion; a scribe lane grows each die to ``(sqrt(A) + s)^2``). Not rounded down.
3. die yield, negative binomial by default: ``Y = (1 + A * D0 / alpha)^-alpha``.
4. die cost ``num_dies * wafer_price / (DPW * Y)`` (known-good dies).
5. HBM stacks ``max(ceil(bandwidth / stack bandwidth), ceil(capacity / stack capacity))`` and
   HBM cost ``stacks * stack capacity * $/GB``.
6. interposer ``factor * (A + stacks * stack footprint)`` mm2 at ``$/mm2``; plus test and assembly.
7. assembly yield ``assembly_yield * bond_yield^(stacks + num_dies - 1)``: a failed assembly loses
   its known-good dies, stacks and interposer.
8. interconnect ``link bandwidth * fabric $/(GB/s)`` (switch share; zero for a full mesh).
9. board/system overhead per device (host share, scale-out network), then an optional margin.

Every function broadcasts its array arguments with numpy (no Python loop over configurations);
when every array argument is a scalar the results are numpy scalars.

It models manufacturing cost, not purchase price (``system.margin_multiplier`` defaults to 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import yaml
from numpy.typing import ArrayLike, NDArray

try:
    from roofline.exceptions import SpecError
except ImportError:  # pragma: no cover - only while the package is being assembled

    class SpecError(ValueError):  # type: ignore[no-redef]
        """A cost spec, override or argument is malformed."""


__all__ = [
    "DEFAULT_COST_SPEC",
    "CostParameters",
    "CostBreakdown",
    "load_cost_parameters",
    "dies_per_wafer",
    "poisson_yield",
    "murphy_yield",
    "negative_binomial_yield",
    "die_yield",
    "sram_area_mm2",
    "logic_area_from_total",
    "hbm_stack_count",
    "interposer_area_mm2",
    "die_cost_usd",
    "device_cost",
    "system_cost",
]

#: The bundled parameter file, used when no path is given.
DEFAULT_COST_SPEC = Path(__file__).resolve().parent.parent / "cost_specs" / "default.yaml"

YIELD_MODELS = ("negative_binomial", "murphy", "poisson")
SRAM_STRUCTURES = ("gpu_l2", "macro")
TOPOLOGIES = ("switched", "full_mesh")
CONFIDENCES = ("high", "medium", "low")
_LEAF_FIELDS = ("value", "source", "estimate", "confidence")
_CEIL_TOLERANCE = 1e-9  # 3350 / 670 must give 5 stacks, not 6, despite rounding


@dataclass(frozen=True)
class _Rule:
    """How one parameter (or one table of parameters) is checked."""

    index: str | None = None  # None: a single value; "node" | "generation" | "topology": a table
    bound: str = "nonnegative"  # nonnegative | positive | fraction | choice
    choices: tuple[str, ...] = ()


_NONNEG, _POS, _FRACTION = _Rule(), _Rule(bound="positive"), _Rule(bound="fraction")
_RULES: dict[str, _Rule] = {
    "wafer.diameter_mm": _POS,
    "wafer.edge_exclusion_mm": _NONNEG,
    "wafer.scribe_mm": _NONNEG,
    "wafer.usd_per_wafer": _Rule("node"),
    "defects.yield_model": _Rule(bound="choice", choices=YIELD_MODELS),
    "defects.clustering_alpha": _POS,
    "defects.density_per_cm2": _Rule("node"),
    "die.reticle_limit_mm2": _POS,
    "sram.l2_mm2_per_MiB": _Rule("node"),
    "sram.macro_mm2_per_MiB": _Rule("node"),
    "hbm.usd_per_GB": _Rule("generation"),
    "hbm.stack_bandwidth_GBps": _Rule("generation", "positive"),
    "hbm.stack_capacity_GiB": _Rule("generation", "positive"),
    "hbm.stack_footprint_mm2": _NONNEG,
    "packaging.interposer_area_factor": _NONNEG,
    "packaging.usd_per_interposer_mm2": _NONNEG,
    "packaging.bond_yield_per_component": _FRACTION,
    "packaging.assembly_yield": _FRACTION,
    "packaging.test_assembly_usd": _NONNEG,
    "interconnect.fabric_usd_per_GBps": _Rule("topology"),
    "interconnect.serdes_mm2_per_GBps": _Rule("node"),
    "system.host_share_usd": _NONNEG,
    "system.scale_out_network_usd": _NONNEG,
    "system.margin_multiplier": _POS,
}
#: The table whose keys define the known process nodes / HBM generations.
_INDEX_OWNERS = {"node": "wafer.usd_per_wafer", "generation": "hbm.usd_per_GB"}
_SECTIONS = tuple(dict.fromkeys(key.split(".")[0] for key in _RULES))
_TOP_LEVEL_EXTRAS = ("description", "node_aliases")
_BOUND_TEXT = {
    "nonnegative": "a number >= 0",
    "positive": "a number > 0",
    "fraction": "a number in (0, 1]",
}


# ----------------------------------------------------------------------------------------------
# Errors and small array helpers
# ----------------------------------------------------------------------------------------------


def _spec_error(origin: str, key: str, problem: str, allowed: str) -> SpecError:
    """One-line error naming the file, the key path, the problem and what is allowed."""
    return SpecError(f"{origin}: {key}: {problem}; allowed: {allowed}")


def _as_float_array(name: str, value: ArrayLike) -> NDArray[np.float64]:
    """Converts an argument to a float array, rejecting negative or non-finite entries."""
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(
            f"cost argument {name}: not numeric ({exc}); allowed: numbers >= 0"
        ) from exc
    if array.size and not np.all(np.isfinite(array)):
        raise SpecError(f"cost argument {name}: contains NaN or inf; allowed: finite numbers >= 0")
    if array.size and np.min(array) < 0:
        raise SpecError(
            f"cost argument {name}: negative value {np.min(array):g}; allowed: numbers >= 0"
        )
    return array


def _scalar_or_array(value: Any) -> Any:
    """Returns a numpy scalar for a 0-d result, the array otherwise."""
    array = np.asarray(value)
    return array[()] if array.ndim == 0 else array


def _normalize_name(name: str) -> str:
    """Case-, space-, '-'/'_'- and 'TSMC'-prefix-insensitive form of a node or generation name."""
    compact = re.sub(r"[\s_\-]", "", str(name)).upper()
    return compact[4:] if compact.startswith("TSMC") and len(compact) > 4 else compact


# ----------------------------------------------------------------------------------------------
# Parameter file
# ----------------------------------------------------------------------------------------------


def _parse_leaf(
    node: Any, key: str, rule: _Rule, origin: str
) -> tuple[float | str, dict[str, str]]:
    """Checks one ``{value, source|estimate, confidence}`` mapping; returns (value, provenance)."""
    shape = "a mapping {value, source: ... | estimate: ..., confidence: high|medium|low}"
    if not isinstance(node, Mapping) or "value" not in node:
        raise _spec_error(origin, key, "missing value", shape)
    unknown = [field for field in node if field not in _LEAF_FIELDS]
    if unknown:
        raise _spec_error(origin, f"{key}.{unknown[0]}", "unknown field", ", ".join(_LEAF_FIELDS))
    if "source" not in node and "estimate" not in node:
        raise _spec_error(origin, key, "no source or estimate given", shape)
    confidence = node.get("confidence")
    if confidence is not None and confidence not in CONFIDENCES:
        raise _spec_error(origin, f"{key}.confidence", f"{confidence!r}", ", ".join(CONFIDENCES))
    provenance = {k: str(node[k]) for k in ("source", "estimate", "confidence") if k in node}
    return _check_value(node["value"], key, rule, origin), provenance


def _check_value(value: Any, key: str, rule: _Rule, origin: str) -> float | str:
    """Checks a value against its rule (type, sign, range or choices)."""
    if rule.bound == "choice":
        if value not in rule.choices:
            raise _spec_error(
                origin, key, f"{value!r} is not a known choice", ", ".join(rule.choices)
            )
        return str(value)
    allowed = _BOUND_TEXT[rule.bound]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise _spec_error(origin, key, f"{value!r} is not a number", allowed)
    if value < 0:
        raise _spec_error(origin, key, f"{value:g} is negative", allowed)
    if rule.bound in ("positive", "fraction") and value == 0:
        raise _spec_error(origin, key, "0 is not allowed", allowed)
    if rule.bound == "fraction" and value > 1:
        raise _spec_error(origin, key, f"{value:g} is above 1", allowed)
    return float(value)


def _check_keys(block: Mapping[str, Any], expected: list[str], prefix: str, origin: str) -> None:
    """Raises on the first unknown or missing key of a mapping."""
    where = f"{prefix}." if prefix else ""
    for key in block:
        if key not in expected:
            raise _spec_error(origin, f"{where}{key}", "unknown key", ", ".join(expected))
    for key in expected:
        if key not in block:
            raise _spec_error(
                origin,
                f"{where}{key}",
                "missing",
                f"a value for every key of {', '.join(expected)}",
            )


def _parse_table(block: Any, key: str, rule: _Rule, origin: str) -> Iterator[tuple[str, Any, dict]]:
    """Yields (entry key, value, provenance) for each entry of a table keyed by node/generation."""
    if not isinstance(block, Mapping) or "value" in block or not block:
        raise _spec_error(
            origin,
            key,
            f"not a table keyed by {rule.index}",
            f"a mapping {{<{rule.index}>: {{value, source|estimate}}}}",
        )
    if rule.index == "topology":
        _check_keys(block, list(TOPOLOGIES), key, origin)
    for entry, leaf in block.items():
        value, provenance = _parse_leaf(leaf, f"{key}.{entry}", rule, origin)
        yield str(entry), value, provenance


def _check_table_indices(values: Mapping[str, Any], origin: str) -> None:
    """Every table keyed by node (generation) must name the nodes of its owner table, no others."""
    for index, owner in _INDEX_OWNERS.items():
        known = [k.split(".", 2)[2] for k in values if k.startswith(owner + ".")]
        for table, rule in _RULES.items():
            if rule.index != index or table == owner:
                continue
            present = [k.split(".", 2)[2] for k in values if k.startswith(table + ".")]
            for name in present:
                if name not in known:
                    raise _spec_error(
                        origin,
                        f"{table}.{name}",
                        f"unknown {index}",
                        f"the {index}s of {owner}: {', '.join(known)}",
                    )
            for name in known:
                if name not in present:
                    raise _spec_error(
                        origin,
                        f"{table}.{name}",
                        "missing",
                        f"an entry for every {index} of {owner}: {', '.join(known)}",
                    )


def _parse_aliases(block: Any, nodes: list[str], origin: str) -> dict[str, str]:
    """Checks ``node_aliases``: alias -> a canonical node of ``wafer.usd_per_wafer``."""
    if block is None:
        return {}
    if not isinstance(block, Mapping):
        raise _spec_error(origin, "node_aliases", "not a mapping", "{alias: canonical node}")
    for alias, target in block.items():
        if target not in nodes:
            raise _spec_error(
                origin, f"node_aliases.{alias}", f"unknown node {target!r}", ", ".join(nodes)
            )
    return {str(alias): str(target) for alias, target in block.items()}


def _parse_document(
    doc: Any, origin: str
) -> tuple[dict[str, Any], dict[str, dict], dict[str, str]]:
    """Validates a parsed cost YAML; returns flat values, provenance and node aliases."""
    if not isinstance(doc, Mapping):
        raise _spec_error(origin, "(top level)", "not a mapping", ", ".join(_SECTIONS))
    _check_keys(
        {k: v for k, v in doc.items() if k not in _TOP_LEVEL_EXTRAS}, list(_SECTIONS), "", origin
    )
    values: dict[str, Any] = {}
    provenance: dict[str, dict] = {}
    for section in _SECTIONS:
        block = doc[section]
        names = [k.split(".")[1] for k in _RULES if k.startswith(section + ".")]
        if not isinstance(block, Mapping):
            raise _spec_error(origin, section, "not a mapping", ", ".join(names))
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
    """Validated cost parameters, keyed by the dotted paths of the YAML file.

    Attributes:
        values: Flat mapping ``"section.name"`` or ``"section.table.entry"`` -> value
            (float, or str for ``defects.yield_model``), e.g. ``values["hbm.usd_per_GB.HBM3"]``.
        provenance: Same keys -> ``{"source" | "estimate": ..., "confidence": ...}``.
        node_aliases: Alias -> canonical process node (e.g. ``"4N" -> "N4"``).
        origin: The file the parameters came from (with ``" + overrides"`` if any).
    """

    values: Mapping[str, float | str]
    provenance: Mapping[str, Mapping[str, str]]
    node_aliases: Mapping[str, str]
    origin: str

    @classmethod
    def from_yaml(cls, path: str | Path) -> CostParameters:
        """Loads and validates a cost YAML file.

        Args:
            path: The YAML file (same keys as ``cost_specs/default.yaml``).

        Returns:
            The parameters.

        Raises:
            SpecError: The file is missing or unreadable, or a key is unknown, missing, negative
                or out of range (the message names the file and the key path).
        """
        origin = str(path)
        try:
            with open(path, encoding="utf-8") as handle:
                doc = yaml.safe_load(handle)
        except OSError as exc:
            raise _spec_error(
                origin, "(file)", f"cannot read ({exc.strerror})", "a readable YAML file"
            ) from exc
        except yaml.YAMLError as exc:
            problem = " ".join(str(exc).split())
            raise _spec_error(
                origin, "(file)", f"invalid YAML ({problem})", "a YAML mapping"
            ) from exc
        values, provenance, aliases = _parse_document(doc, origin)
        return cls(
            MappingProxyType(values),
            MappingProxyType(provenance),
            MappingProxyType(aliases),
            origin,
        )

    def with_overrides(self, overrides: Mapping[str, float | str]) -> CostParameters:
        """Returns a copy with some values replaced.

        Args:
            overrides: Dotted key path -> new value, e.g. ``{"hbm.usd_per_GB.HBM3": 12.0}``.

        Raises:
            SpecError: A key is not a parameter of this file, or a value breaks its rule.
        """
        if not overrides:
            return self
        origin = f"{self.origin} (override)"
        values = dict(self.values)
        provenance = dict(self.provenance)
        for key, value in overrides.items():
            rule = _rule_for(key)
            if rule is None or key not in values:
                near = sorted(k for k in values if k.startswith(".".join(key.split(".")[:2])))
                allowed = ", ".join(near) if near else "the dotted keys of " + self.origin
                raise _spec_error(origin, key, "unknown key", allowed)
            values[key] = _check_value(value, key, rule, origin)
            provenance[key] = {"estimate": "user override"}
        return CostParameters(
            MappingProxyType(values),
            MappingProxyType(provenance),
            self.node_aliases,
            f"{self.origin} + overrides",
        )

    def value(self, key: str) -> float:
        """The numeric value of a dotted key path."""
        try:
            return float(self.values[key])
        except KeyError:
            raise _spec_error(
                self.origin, key, "unknown key", "the dotted keys of the cost file"
            ) from None

    def table(self, table: str) -> dict[str, float | str]:
        """Entries of one table, e.g. ``table("wafer.usd_per_wafer") -> {"N7": 9500.0, ...}``."""
        prefix = table + "."
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}

    @property
    def process_nodes(self) -> tuple[str, ...]:
        """Canonical process nodes (keys of ``wafer.usd_per_wafer``)."""
        return tuple(self.table(_INDEX_OWNERS["node"]))

    @property
    def hbm_generations(self) -> tuple[str, ...]:
        """Known HBM generations (keys of ``hbm.usd_per_GB``)."""
        return tuple(self.table(_INDEX_OWNERS["generation"]))

    def node(self, name: str) -> str:
        """Canonical name of a process node, resolving aliases (``"TSMC 4N"`` -> ``"N4"``).

        Raises:
            SpecError: The node is neither a node nor an alias of the cost file.
        """
        wanted = _normalize_name(name)
        for node in self.process_nodes:
            if _normalize_name(node) == wanted:
                return node
        for alias, node in self.node_aliases.items():
            if _normalize_name(alias) == wanted:
                return node
        raise _spec_error(
            self.origin,
            "wafer.usd_per_wafer",
            f"unknown process node {name!r}",
            ", ".join(self.process_nodes)
            + " or an alias in node_aliases ("
            + ", ".join(self.node_aliases)
            + ")",
        )

    def generation(self, name: str) -> str:
        """Canonical name of an HBM generation (case-insensitive).

        Raises:
            SpecError: The generation has no entry in ``hbm.usd_per_GB``.
        """
        for generation in self.hbm_generations:
            if _normalize_name(generation) == _normalize_name(name):
                return generation
        raise _spec_error(
            self.origin,
            "hbm.usd_per_GB",
            f"unknown HBM generation {name!r}",
            ", ".join(self.hbm_generations),
        )

    def per_node(self, table: str, process_node: str) -> float:
        """Value of a node-keyed table for a node or alias, e.g. ``("wafer.usd_per_wafer", "4N")``."""
        return self.value(f"{table}.{self.node(process_node)}")

    def per_generation(self, table: str, hbm_generation: str) -> float:
        """Value of a generation-keyed table, e.g. ``("hbm.usd_per_GB", "HBM3")``."""
        return self.value(f"{table}.{self.generation(hbm_generation)}")


def load_cost_parameters(
    path: str | Path | None = None, overrides: Mapping[str, float | str] | None = None
) -> CostParameters:
    """Loads cost parameters from a YAML file and applies dotted-key overrides.

    Args:
        path: A cost YAML; None loads the bundled ``cost_specs/default.yaml``.
        overrides: Dotted key path -> value, e.g. ``{"hbm.usd_per_GB.HBM3": 12.0}``.

    Returns:
        The validated parameters.

    Raises:
        SpecError: Unknown, missing or negative keys (message names the file and key path).
    """
    params = CostParameters.from_yaml(DEFAULT_COST_SPEC if path is None else path)
    return params.with_overrides(overrides or {})


# ----------------------------------------------------------------------------------------------
# Formulas (vectorized)
# ----------------------------------------------------------------------------------------------


def dies_per_wafer(
    die_area_mm2: ArrayLike,
    wafer_diameter_mm: float = 300.0,
    edge_exclusion_mm: float = 0.0,
    scribe_mm: float = 0.0,
) -> Any:
    """Gross dies per wafer: ``pi (d/2)^2 / A - pi d / sqrt(2 A)`` (not rounded down).

    Args:
        die_area_mm2: Area of one die.
        wafer_diameter_mm: Wafer diameter.
        edge_exclusion_mm: Unusable ring at the wafer edge; ``d = diameter - 2 * exclusion``.
        scribe_mm: Scribe lane; each (square) die takes ``(sqrt(A) + scribe)^2``.

    Returns:
        Dies per wafer (>= 0), same shape as ``die_area_mm2``.
    """
    area = _as_float_array("die_area_mm2", die_area_mm2)
    diameter = wafer_diameter_mm - 2.0 * edge_exclusion_mm
    footprint = (np.sqrt(area) + scribe_mm) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        count = np.pi * (diameter / 2.0) ** 2 / footprint - np.pi * diameter / np.sqrt(
            2.0 * footprint
        )
    return _scalar_or_array(np.maximum(np.nan_to_num(count, nan=0.0, posinf=0.0), 0.0))


def poisson_yield(die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike) -> Any:
    """Poisson yield ``exp(-A D0)`` (A in cm2)."""
    exposure = _as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    return _scalar_or_array(np.exp(-exposure))


def murphy_yield(die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike) -> Any:
    """Murphy yield ``((1 - exp(-A D0)) / (A D0))^2`` (A in cm2; 1 at A D0 = 0)."""
    exposure = _as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    safe = np.where(exposure > 0, exposure, 1.0)
    return _scalar_or_array(np.where(exposure > 0, (-np.expm1(-safe) / safe) ** 2, 1.0))


def negative_binomial_yield(
    die_area_mm2: ArrayLike, defects_per_cm2: ArrayLike, clustering_alpha: float
) -> Any:
    """Negative-binomial (Stapper) yield ``(1 + A D0 / alpha)^-alpha`` (A in cm2)."""
    exposure = _as_float_array("die_area_mm2", die_area_mm2) / 100.0 * np.asarray(defects_per_cm2)
    return _scalar_or_array((1.0 + exposure / clustering_alpha) ** -clustering_alpha)


def die_yield(params: CostParameters, process_node: str, die_area_mm2: ArrayLike) -> Any:
    """Yield of one die with the model and defect density of the cost file."""
    defects = params.per_node("defects.density_per_cm2", process_node)
    model = params.values["defects.yield_model"]
    if model == "murphy":
        return murphy_yield(die_area_mm2, defects)
    if model == "poisson":
        return poisson_yield(die_area_mm2, defects)
    return negative_binomial_yield(die_area_mm2, defects, params.value("defects.clustering_alpha"))


def _sram_density(params: CostParameters, process_node: str, sram_structure: str) -> float:
    """mm2 per MiB of the chosen SRAM structure on a node."""
    if sram_structure not in SRAM_STRUCTURES:
        raise SpecError(
            f"cost argument sram_structure: {sram_structure!r}; allowed: {', '.join(SRAM_STRUCTURES)}"
        )
    table = "sram.l2_mm2_per_MiB" if sram_structure == "gpu_l2" else "sram.macro_mm2_per_MiB"
    return params.per_node(table, process_node)


def sram_area_mm2(
    params: CostParameters, process_node: str, l2_MiB: ArrayLike, *, sram_structure: str = "gpu_l2"
) -> Any:
    """Die area of an L2 of ``l2_MiB`` MiB: ``l2_MiB * mm2_per_MiB(node)``.

    Args:
        params: Cost parameters.
        process_node: Node or alias (``"N4"``, ``"4N"``, ``"SMIC-N+1"``...).
        l2_MiB: L2 capacity.
        sram_structure: ``"gpu_l2"`` (tags, control, crossbar ports included) or ``"macro"``
            (dense scratchpad macros, about 5x smaller).
    """
    density = _sram_density(params, process_node, sram_structure)
    return _scalar_or_array(_as_float_array("l2_MiB", l2_MiB) * density)


def logic_area_from_total(
    params: CostParameters,
    process_node: str,
    die_area_mm2: ArrayLike,
    l2_MiB: ArrayLike,
    *,
    sram_structure: str = "gpu_l2",
) -> Any:
    """Non-L2 area of a published die: ``die_area_mm2 - l2_MiB * mm2_per_MiB(node)``.

    Use it to sweep a device's L2 around its baseline: pass the result as ``logic_area_mm2``
    to :func:`device_cost` with another ``l2_MiB``. Everything that is not the enabled L2
    (cores, PHYs, disabled L2 of a harvested part) stays in the logic area.

    Raises:
        SpecError: The L2 would not fit in the published die area.
    """
    total = _as_float_array("die_area_mm2", die_area_mm2)
    logic = total - np.asarray(
        sram_area_mm2(params, process_node, l2_MiB, sram_structure=sram_structure)
    )
    if np.any(logic <= 0):
        raise SpecError(
            f"cost argument l2_MiB: the L2 ({sram_structure}, {params.node(process_node)}) needs more "
            f"area than the die ({np.min(total):g} mm2); allowed: an L2 smaller than the die "
            f"(or sram_structure='macro', or a smaller sram.l2_mm2_per_MiB)"
        )
    return _scalar_or_array(logic)


def hbm_stack_count(
    params: CostParameters,
    hbm_generation: str,
    hbm_capacity_GiB: ArrayLike,
    hbm_bandwidth_GBps: ArrayLike,
) -> Any:
    """Stacks needed: ``max(ceil(bandwidth / stack bandwidth), ceil(capacity / stack capacity))``.

    Returns:
        Integer stack counts (0 when both capacity and bandwidth are 0).
    """
    per_stack_bw = params.per_generation("hbm.stack_bandwidth_GBps", hbm_generation)
    per_stack_cap = params.per_generation("hbm.stack_capacity_GiB", hbm_generation)
    by_bw = np.ceil(
        _as_float_array("hbm_bandwidth_GBps", hbm_bandwidth_GBps) / per_stack_bw - _CEIL_TOLERANCE
    )
    by_cap = np.ceil(
        _as_float_array("hbm_capacity_GiB", hbm_capacity_GiB) / per_stack_cap - _CEIL_TOLERANCE
    )
    return _scalar_or_array(np.maximum(np.maximum(by_bw, by_cap), 0).astype(np.int64))


def interposer_area_mm2(
    params: CostParameters, die_area_mm2: ArrayLike, hbm_stacks: ArrayLike
) -> Any:
    """Interposer area: ``factor * (die area + stacks * stack footprint)``."""
    silicon = _as_float_array("die_area_mm2", die_area_mm2) + _as_float_array(
        "hbm_stacks", hbm_stacks
    ) * params.value("hbm.stack_footprint_mm2")
    return _scalar_or_array(params.value("packaging.interposer_area_factor") * silicon)


def die_cost_usd(
    params: CostParameters, process_node: str, die_area_mm2: ArrayLike, num_dies: ArrayLike = 1
) -> Any:
    """Cost of the known-good logic dies of one device: ``n * wafer / (DPW(A/n) * Y(A/n))``.

    Args:
        params: Cost parameters.
        process_node: Node or alias.
        die_area_mm2: Total logic silicon of the device.
        num_dies: Number of equal dies the silicon is split into (1 = monolithic).
    """
    dies = _as_float_array("num_dies", num_dies)
    per_die = _as_float_array("die_area_mm2", die_area_mm2) / np.maximum(dies, 1.0)
    good_per_wafer = np.asarray(_dies_per_wafer(params, per_die)) * np.asarray(
        die_yield(params, process_node, per_die)
    )
    with np.errstate(divide="ignore"):
        cost = dies * params.per_node("wafer.usd_per_wafer", process_node) / good_per_wafer
    return _scalar_or_array(cost)


def _dies_per_wafer(params: CostParameters, die_area_mm2: ArrayLike) -> Any:
    """:func:`dies_per_wafer` with the wafer geometry of the cost file."""
    return dies_per_wafer(
        die_area_mm2,
        wafer_diameter_mm=params.value("wafer.diameter_mm"),
        edge_exclusion_mm=params.value("wafer.edge_exclusion_mm"),
        scribe_mm=params.value("wafer.scribe_mm"),
    )


# ----------------------------------------------------------------------------------------------
# Device and system cost
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CostBreakdown:
    """Per-device cost and the quantities behind it (arrays, or numpy scalars for scalar input).

    The ``*_usd`` lines add up to ``total_usd``:
    ``die + hbm + packaging + assembly_loss + interconnect + board_system + margin``.

    Attributes:
        logic_area_mm2: Non-L2 logic area (after any SerDes-area adjustment).
        sram_area_mm2: L2 area.
        die_area_mm2: Total logic silicon (sum over dies).
        per_die_area_mm2: Area of each of the ``num_dies`` dies.
        num_dies: Dies per device.
        exceeds_reticle: True where a die is larger than ``die.reticle_limit_mm2``.
        dies_per_wafer: Gross dies of ``per_die_area_mm2`` per wafer.
        die_yield: Yield of one die.
        hbm_stacks: HBM stacks (integer).
        interposer_area_mm2: Silicon interposer area.
        assembly_yield: Probability that the 2.5D assembly works.
        die_usd: Known-good logic dies.
        hbm_usd: HBM stacks (stacks x stack capacity x $/GB).
        packaging_usd: Interposer + test and assembly.
        assembly_loss_usd: Dies, stacks and interposer lost in failed assemblies.
        interconnect_usd: Scale-up fabric share, by link bandwidth.
        board_system_usd: Host share (CPUs, memory, NICs, power, chassis) and scale-out network.
        margin_usd: ``(margin_multiplier - 1) x`` the lines above (0 by default).
        total_usd: Everything: the cost of one device in a system.
    """

    logic_area_mm2: Any
    sram_area_mm2: Any
    die_area_mm2: Any
    per_die_area_mm2: Any
    num_dies: Any
    exceeds_reticle: Any
    dies_per_wafer: Any
    die_yield: Any
    hbm_stacks: Any
    interposer_area_mm2: Any
    assembly_yield: Any
    die_usd: Any
    hbm_usd: Any
    packaging_usd: Any
    assembly_loss_usd: Any
    interconnect_usd: Any
    board_system_usd: Any
    margin_usd: Any
    total_usd: Any

    @property
    def module_usd(self) -> Any:
        """The accelerator module alone (dies, HBM, package, test, assembly losses).

        This is what published "cost to make an H100" figures estimate.
        """
        return self.die_usd + self.hbm_usd + self.packaging_usd + self.assembly_loss_usd

    def to_dict(self) -> dict[str, Any]:
        """Every field plus ``module_usd``, for reports and ``pandas.DataFrame(...)``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["module_usd"] = self.module_usd
        return out


def _die_area(
    params: CostParameters,
    node: str,
    logic_area_mm2: NDArray[np.float64],
    sram_mm2: NDArray[np.float64],
    link_GBps: NDArray[np.float64],
    baseline_link_GBps: ArrayLike | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Logic area (with SerDes area for links beyond the baseline) and total die area."""
    logic = logic_area_mm2
    if baseline_link_GBps is not None:
        baseline = _as_float_array("baseline_link_bandwidth_GBps", baseline_link_GBps)
        logic = logic + (link_GBps - baseline) * params.per_node(
            "interconnect.serdes_mm2_per_GBps", node
        )
    total = logic + sram_mm2
    if np.any(total <= 0) or np.any(logic < 0):
        raise SpecError(
            "cost argument logic_area_mm2: the die area (logic + L2 - SerDes removed "
            "below baseline) is not positive; allowed: logic_area_mm2 > 0"
        )
    return logic, total


def device_cost(
    params: CostParameters,
    *,
    process_node: str,
    logic_area_mm2: ArrayLike,
    l2_MiB: ArrayLike,
    hbm_capacity_GiB: ArrayLike,
    hbm_bandwidth_GBps: ArrayLike,
    hbm_generation: str,
    link_bandwidth_GBps: ArrayLike,
    num_dies: ArrayLike = 1,
    link_topology: str = "switched",
    baseline_link_bandwidth_GBps: ArrayLike | None = None,
    sram_structure: str = "gpu_l2",
) -> CostBreakdown:
    """Manufacturing cost of one device and its share of the server, broadcast over arrays.

    Args:
        params: Cost parameters (:func:`load_cost_parameters`).
        process_node: Logic process node or alias (``"N4"``, ``"4N"``, ``"SMIC-N+1"``).
        logic_area_mm2: Non-L2 logic area (:func:`logic_area_from_total` for a published die).
        l2_MiB: L2 capacity; adds ``l2_MiB * sram.l2_mm2_per_MiB[node]`` of die area.
        hbm_capacity_GiB: HBM capacity the device needs.
        hbm_bandwidth_GBps: HBM bandwidth the device needs.
        hbm_generation: ``"HBM2e"``, ``"HBM3"`` or ``"HBM3e"`` (any key of ``hbm.usd_per_GB``).
        link_bandwidth_GBps: Scale-up bandwidth per device, per direction (H100: 450).
        num_dies: Equal dies the logic is split into (B200: 2); yield is per die.
        link_topology: ``"switched"`` (pays the switch share) or ``"full_mesh"``.
        baseline_link_bandwidth_GBps: Link bandwidth already inside ``logic_area_mm2``. If given,
            ``(link - baseline) * interconnect.serdes_mm2_per_GBps[node]`` is added to the die.
        sram_structure: ``"gpu_l2"`` or ``"macro"`` SRAM density.

    Returns:
        A :class:`CostBreakdown` whose arrays have the broadcast shape of the array arguments.

    Raises:
        SpecError: Unknown node, generation or topology; negative arguments; a die of no area.
    """
    node = params.node(process_node)
    generation = params.generation(hbm_generation)
    if link_topology not in TOPOLOGIES:
        raise SpecError(
            f"cost argument link_topology: {link_topology!r}; allowed: {', '.join(TOPOLOGIES)}"
        )
    logic, l2, capacity, bandwidth, link, dies = np.broadcast_arrays(
        _as_float_array("logic_area_mm2", logic_area_mm2),
        _as_float_array("l2_MiB", l2_MiB),
        _as_float_array("hbm_capacity_GiB", hbm_capacity_GiB),
        _as_float_array("hbm_bandwidth_GBps", hbm_bandwidth_GBps),
        _as_float_array("link_bandwidth_GBps", link_bandwidth_GBps),
        _as_float_array("num_dies", num_dies),
    )
    if np.any(dies < 1) or np.any(dies != np.round(dies)):
        raise SpecError("cost argument num_dies: must be whole numbers >= 1; allowed: 1, 2, 3, ...")
    sram = l2 * _sram_density(params, node, sram_structure)
    logic, die_area = _die_area(params, node, logic, sram, link, baseline_link_bandwidth_GBps)
    per_die = die_area / dies

    die_usd = np.asarray(die_cost_usd(params, node, die_area, dies))
    stacks = np.asarray(hbm_stack_count(params, generation, capacity, bandwidth))
    hbm_usd = (
        stacks
        * params.value(f"hbm.stack_capacity_GiB.{generation}")
        * params.value(f"hbm.usd_per_GB.{generation}")
    )
    interposer = np.asarray(interposer_area_mm2(params, die_area, stacks))
    interposer_usd = interposer * params.value("packaging.usd_per_interposer_mm2")
    assembly_yield = params.value("packaging.assembly_yield") * params.value(
        "packaging.bond_yield_per_component"
    ) ** (stacks + dies - 1)
    assembly_loss = (die_usd + hbm_usd + interposer_usd) * (1.0 / assembly_yield - 1.0)
    packaging_usd = interposer_usd + params.value("packaging.test_assembly_usd")
    interconnect_usd = link * params.value(f"interconnect.fabric_usd_per_GBps.{link_topology}")
    board_system = np.full(
        die_area.shape,
        params.value("system.host_share_usd") + params.value("system.scale_out_network_usd"),
    )
    subtotal = die_usd + hbm_usd + packaging_usd + assembly_loss + interconnect_usd + board_system
    margin_usd = subtotal * (params.value("system.margin_multiplier") - 1.0)

    lines = {
        "logic_area_mm2": logic,
        "sram_area_mm2": sram,
        "die_area_mm2": die_area,
        "per_die_area_mm2": per_die,
        "num_dies": dies.astype(np.int64),
        "exceeds_reticle": per_die > params.value("die.reticle_limit_mm2"),
        "dies_per_wafer": _dies_per_wafer(params, per_die),
        "die_yield": die_yield(params, node, per_die),
        "hbm_stacks": stacks,
        "interposer_area_mm2": interposer,
        "assembly_yield": assembly_yield,
        "die_usd": die_usd,
        "hbm_usd": hbm_usd,
        "packaging_usd": packaging_usd,
        "assembly_loss_usd": assembly_loss,
        "interconnect_usd": interconnect_usd,
        "board_system_usd": board_system,
        "margin_usd": margin_usd,
        "total_usd": subtotal + margin_usd,
    }
    return CostBreakdown(**{name: _scalar_or_array(value) for name, value in lines.items()})


def system_cost(breakdown: CostBreakdown, num_devices: ArrayLike) -> Any:
    """Cost of a system of identical devices: ``num_devices * breakdown.total_usd``.

    Each device's ``total_usd`` already carries its per-device overheads (switch share, host
    share, NICs, scale-out network, margin), so the system cost is a plain multiple; nothing is
    added per system (racks, data-centre build-out, power and cooling plant are not modelled).

    Args:
        breakdown: Result of :func:`device_cost`.
        num_devices: Devices in the system (broadcasts with the breakdown's arrays).
    """
    return _scalar_or_array(
        _as_float_array("num_devices", num_devices) * np.asarray(breakdown.total_usd)
    )
