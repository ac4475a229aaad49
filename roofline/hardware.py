"""Hardware specs: compute, memory tiers and link tiers, each parsed from its own YAML block.

Spec files keep vendor units in their key names (``peak_tflops``, ``hbm_bandwidth_GBps``,
``l2_capacity_MiB``); the constructors convert once to SI (FLOP/s, bytes/s, bytes, seconds).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from roofline._specfile import (
    Block,
    Field,
    bundled_names,
    name_from_stem,
    printable,
    read_yaml,
    resolve_spec,
)
from roofline.dtypes import PEAK_UNITS, peak_unit_for
from roofline.exceptions import SpecDeprecationWarning, SpecError
from roofline.registry import (
    PARAMETERS,
    SPEC_FIELDS,
    TIER_NAMES,
    block_fields,
    block_keys,
    read_block,
    with_values,
)

__all__ = [
    "ComputeSpec",
    "MemorySpec",
    "MemoryTier",
    "TIER_NAMES",
    "LinkTier",
    "DieSpec",
    "HardwareSpec",
    "SCHEMA_VERSION",
    "load_hardware",
    "list_hardware",
    "with_network",
    "list_networks",
    "network_values",
    "NCCL_PROTOCOL_NAMES",
    "SourcedValue",
    "hardware_sources",
    "DTYPES",
    "HARDWARE_FIELDS",
]

#: Matrix units a device may list under ``compute.peak_tflops`` (dense peaks; fp4 serves NVFP4
#: and MXFP4, fp6 MXFP6; see :mod:`roofline.dtypes`).
DTYPES = PEAK_UNITS
TOPOLOGIES = ("switched", "full_mesh", "torus_2d")
#: NCCL's protocols (roofline.collectives.NCCL_PROTOCOLS holds their cost model)
NCCL_PROTOCOL_NAMES = ("LL", "LL128", "Simple")
#: bundled scale-out networks of measured clusters (:func:`with_network`)
NETWORKS_FOLDER = "hardware_specs/networks"
GiB = 1024**3
MiB = 1024**2
#: Version of the hardware spec layout. 1 (no ``schema_version`` key): legacy, a ``prefetch:``
#: block is accepted with a deprecation warning and ignored; 2: no ``prefetch:`` block.
SCHEMA_VERSION = 2

# Bounds of every numeric hardware field, one table per spec block, derived from the one
# declaration of each parameter in roofline.registry; sweeps and CLI overrides check against the
# same declarations (:data:`HARDWARE_FIELDS`).
COMPUTE_FIELDS = block_fields("compute")
PEAK_FIELDS = block_fields("compute.peak_tflops")
MEMORY_FIELDS = block_fields("memory")
#: A memory tier beyond HBM (``memory.tiers[i]``); sweeps name them ``{tier}_capacity_GiB`` and so on
TIER_FIELDS = block_fields("memory.tiers")
INTRA_NODE_FIELDS = block_fields("interconnect.intra_node")
INTER_NODE_FIELDS = block_fields("interconnect.inter_node")
DIE_FIELDS = block_fields("die")
#: The user-facing hardware parameters of sweeps and CLI overrides, by name
HARDWARE_FIELDS = {name: p.field for name, p in PARAMETERS.items()}


@dataclass(frozen=True)
class ComputeSpec:
    """Dense peak matrix throughput per data type and how much of it GEMMs reach."""

    peak_flops: dict[str, float]  # FLOP/s (or OP/s for integer types), dense
    vector_flops: float  # FLOP/s of the vector unit (norms, softmax, elementwise)
    gemm_efficiency: float  # fraction of peak reached by large GEMMs
    launch_overhead_s: float  # fixed cost per kernel
    # Small GEMMs do not reach peak: efficiency is scaled by this curve of the token count m
    # (rows of the GEMM), log-linear between points. Calibration fits it; the default is flat.
    efficiency_curve_m: tuple[tuple[float, float], ...] = ()

    @classmethod
    def from_block(cls, b: Block) -> ComputeSpec:
        required, optional = block_keys("compute")
        b.check_keys(["peak_tflops", *required], [*optional, "efficiency_curve_m"])
        peaks = b.block("peak_tflops")
        peaks.check_keys([], DTYPES)
        if not peaks.data:
            raise peaks.error("bf16", "at least one data type is required")
        peak = read_block(peaks, "compute.peak_tflops")
        declared = read_block(b, "compute")
        declared.setdefault("vector_flops", max(peak.values()) / 16e12 * 1e12)  # no vector_tflops: 1/16 of peak
        return cls(peak_flops=peak, **declared, efficiency_curve_m=_curve(b, "efficiency_curve_m"))

    def peak_for(self, unit: str, *, where: str = "") -> float:
        """Dense peak of matrix unit ``unit`` (bf16 and fp16 stand in for each other)."""
        key = peak_unit_for(unit, self.peak_flops)
        if key is None:
            supported = ", ".join(self.peak_flops)
            raise SpecError(f"{where or 'hardware'}: no {unit} compute; this device supports {supported}")
        return self.peak_flops[key]


def _curve(b: Block, key: str) -> tuple[tuple[float, float], ...]:
    raw = b.raw(key)
    if raw is None:
        return ()
    if isinstance(raw, dict):
        raw = raw.get("points")
    if not isinstance(raw, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in raw):
        raise b.error(key, "expected a list of [size, efficiency] pairs")
    size, efficiency = Field("size", "tokens", 0.0, 1e12, strict=True), Field("efficiency", "", 0.0, 1.0, strict=True)
    for s, e in raw:
        problem = size.problem(s) or efficiency.problem(e)
        if problem:
            raise b.error(key, f"[{printable(s)}, {printable(e)}]: {problem}")
    points = tuple((float(s), float(e)) for s, e in raw)
    sizes = [s for s, _ in points]
    if sizes != sorted(sizes) or any(s <= 0 for s in sizes):
        raise b.error(key, "sizes must be positive and increasing")
    if any(not 0 < e <= 1 for _, e in points):
        raise b.error(key, "efficiencies must be in (0, 1]")
    return points


@dataclass(frozen=True)
class MemoryTier:
    """One level of the memory hierarchy of a device, in SI units.

    L2 and HBM are the first two tiers of every device (built from the ``hbm_*`` and ``l2_*``
    keys); further tiers (``memory.tiers:``, e.g. Grace LPDDR5X over NVLink-C2C) hold what does not
    fit in HBM. ``bandwidth_Bps`` is what the device reads the tier at: for memory behind a
    chip-to-chip link, the smaller of the memory's and the link's per-direction bandwidth.
    """

    name: str
    capacity_bytes: float
    bandwidth_Bps: float
    efficiency: float
    latency_s: float = 0.0  # not in the roofline times (streamed reads); reported for the spec
    placement: bool = True  # False for caches: nothing is placed there, it holds copies
    cost_usd_per_GiB: float | None = None  # None where no sourced figure exists
    energy_pj_per_byte: float | None = None

    @classmethod
    def from_block(cls, b: Block) -> MemoryTier:
        required, optional = block_keys("memory.tiers")
        b.check_keys(["name", *required], optional)
        declared = read_block(b, "memory.tiers")
        if b.has("link_bandwidth_GBps"):  # memory behind a chip-to-chip link: read at the smaller rate
            link_Bps = b.field(TIER_FIELDS["link_bandwidth_GBps"]) * SPEC_FIELDS["memory.tiers", "link_bandwidth_GBps"].scale
            declared["bandwidth_Bps"] = min(declared["bandwidth_Bps"], link_Bps)
        return cls(name=b.string("name", choices=TIER_NAMES), **declared)


@dataclass(frozen=True)
class MemorySpec:
    """Memory tiers of a device: the last-level on-chip cache (L2) that prefetching fills, HBM,
    and optional further tiers (:attr:`tiers` lists them all, on-chip first)."""

    hbm_capacity_bytes: float
    hbm_bandwidth_Bps: float
    hbm_efficiency: float
    l2_capacity_bytes: float
    l2_bandwidth_Bps: float
    # Fraction of an operator's activation bytes that hit in L2 when they fit in it (its
    # producer just wrote them). 0 by default: measured elementwise kernels show no L2 speed-up
    # (docs/validation.md); a design knob for architects.
    activation_l2_hit: float = 0.0
    # L2 built of slices (docs/dse_l2.md): when l2_slice_bandwidth_Bps > 0 the L2 bandwidth is
    # (capacity / slice capacity) x slice bandwidth, so it scales with the capacity; 0: fixed.
    l2_slice_bytes: float = 0.0
    l2_slice_bandwidth_Bps: float = 0.0
    # GEMM tiling reuses operands through L2: a large GEMM reads its operands again once they
    # outgrow L2 (roofline.timing.gemm_reuse_bytes). 1: modelled (default), 0: compulsory traffic only.
    l2_gemm_reuse: float = 1.0
    # tiers beyond HBM, fastest first (``memory.tiers:``); weights and KV cache that do not fit in
    # HBM spill into them in this order (roofline.placement)
    extra_tiers: tuple[MemoryTier, ...] = ()

    @property
    def tiers(self) -> tuple[MemoryTier, ...]:
        """Every tier, on-chip first: L2 (a cache, no placement), HBM, then :attr:`extra_tiers`."""
        return (
            MemoryTier("l2", self.l2_capacity_bytes, self.l2_bandwidth_Bps, 1.0, placement=False),
            MemoryTier("hbm", self.hbm_capacity_bytes, self.hbm_bandwidth_Bps, self.hbm_efficiency),
            *self.extra_tiers,
        )

    @property
    def placement_capacity_bytes(self) -> float:
        """Bytes the placement tiers hold together (HBM and the extra tiers): the memory-fit limit."""
        return sum(t.capacity_bytes for t in self.tiers if t.placement)

    @classmethod
    def from_block(cls, b: Block) -> MemorySpec:
        required, optional = block_keys("memory")
        b.check_keys(required, [*optional, "tiers"])
        return cls(**read_block(b, "memory"), extra_tiers=_extra_tiers(b))


def _extra_tiers(b: Block) -> tuple[MemoryTier, ...]:
    raw = b.raw("tiers")
    if raw is None:
        return ()
    if not isinstance(raw, list) or not raw:
        raise b.error("tiers", "expected a list of tiers (name, capacity_GiB, bandwidth_GBps, efficiency)")
    tiers = tuple(MemoryTier.from_block(Block(t, b.file, f"{b.path}.tiers[{i}]")) for i, t in enumerate(raw))
    names = [t.name for t in tiers]
    if len(set(names)) != len(names):
        raise b.error("tiers", f"tier names must be unique, got {', '.join(names)}")
    return tiers


@dataclass(frozen=True)
class LinkTier:
    """One network tier: the links inside a node, or the network between nodes."""

    topology: str  # switched | full_mesh | torus_2d (intra-node); "network" between nodes
    link_bandwidth_Bps: float  # one link, one direction
    links_per_device: int
    latency_s: float  # one step (hop) of a ring or tree (NCCL's LL protocol on NVLink)
    efficiency: float  # achievable fraction of the wire rate
    # Per-algorithm latency terms (roofline.collectives): one shot of a custom one-shot/two-shot
    # all-reduce kernel (None: latency_s), and NVLink SHARP's reach (0: the switch has no NVLS).
    custom_latency_s: float | None = None
    nvls_efficiency: float = 0.0
    torus_dims: tuple[int, int] | None = None  # torus_2d: the torus (the ICI domain) shape
    # the serving frameworks' custom all-reduce runs only over full NVLink/xGMI-class links, or on
    # 2 devices (vLLM custom_all_reduce.py); false for PCIe-only devices
    custom_allreduce: bool = True
    # the network: the NCCL protocols its clusters allow (NCCL_PROTO); a group spanning nodes uses
    # only these, inside its nodes too
    protocols: tuple[str, ...] = NCCL_PROTOCOL_NAMES

    @property
    def device_bandwidth_Bps(self) -> float:
        """Per-direction injection bandwidth of one device over all its links."""
        return self.link_bandwidth_Bps * self.links_per_device

    @classmethod
    def intra_from_block(cls, b: Block) -> tuple[LinkTier, int]:
        required, optional = block_keys("interconnect.intra_node")
        b.check_keys(["topology", *required], [*optional, "torus_dims", "custom_allreduce"])
        topology = b.string("topology", choices=TOPOLOGIES)
        declared = read_block(b, "interconnect.intra_node")
        per_node = declared.pop("devices_per_node")  # the node's, not the link tier's
        tier = cls(topology=topology, **declared, torus_dims=_torus_dims(b, topology),
                   custom_allreduce=b.boolean("custom_allreduce", default=True))
        return tier, per_node

    @classmethod
    def inter_from_block(cls, b: Block) -> LinkTier:
        required, optional = block_keys("interconnect.inter_node")
        b.check_keys(required, [*optional, "nccl_protocols"])
        return cls(topology="network", links_per_device=1, **read_block(b, "interconnect.inter_node"),
                   protocols=_nccl_protocols(b))


def _nccl_protocols(b: Block) -> tuple[str, ...]:
    """``nccl_protocols``: a non-empty list of NCCL protocols, plain or as {value, source}."""
    raw = b.raw("nccl_protocols", list(NCCL_PROTOCOL_NAMES))
    if isinstance(raw, dict):
        raw = raw.get("value")
    if (not isinstance(raw, list) or not raw
            or not all(isinstance(p, str) and p in NCCL_PROTOCOL_NAMES for p in raw)):
        raise b.error("nccl_protocols", f"expected a non-empty list of {', '.join(NCCL_PROTOCOL_NAMES)}, "
                                        f"got {printable(repr(raw))[:60]}")
    return tuple(p for p in NCCL_PROTOCOL_NAMES if p in raw)


def _torus_dims(b: Block, topology: str) -> tuple[int, int] | None:
    raw = b.raw("torus_dims")
    if isinstance(raw, dict):
        raw = raw.get("value")
    if topology != "torus_2d":
        if raw is not None:
            raise b.error("torus_dims", "only a torus_2d topology has torus dimensions")
        return None
    if (not isinstance(raw, list) or len(raw) != 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in raw)):
        raise b.error("torus_dims", "a torus_2d topology needs two positive integers, e.g. [16, 16]")
    dims = (int(raw[0]), int(raw[1]))
    if dims[0] * dims[1] < b.integer("devices_per_node"):
        raise b.error("torus_dims", "the torus must hold devices_per_node devices")
    return dims


@dataclass(frozen=True)
class DieSpec:
    """Silicon facts the cost and power models need.

    The die area is derived from its parts (``roofline.cost``): ``logic_area_mm2`` (what is neither
    L2 nor link PHYs) plus the L2 and the link PHYs at the process node, so a copied spec with more
    L2 or faster links costs more. A legacy spec may give the published ``die_area_mm2`` instead:
    it is then read as that area at the spec's own L2 and link bandwidth.
    """

    process_node: str
    die_area_mm2: float  # legacy: all compute dies together, L2 and PHYs included (0 if logic is given)
    hbm_stacks: int
    tdp_w: float = 0.0
    hbm_generation: str = "HBM3"
    num_dies: int = 1
    l2_sram: str = "gpu_l2"  # gpu_l2 | macro: the SRAM density the cost model uses for L2
    logic_area_mm2: float = 0.0  # all dies, neither L2 nor link PHYs (0 if die_area_mm2 is given)

    @classmethod
    def from_block(cls, b: Block) -> DieSpec:
        required, optional = block_keys("die")
        b.check_keys(["process_node", *required], [*optional, "hbm_generation", "l2_sram"])
        if b.has("logic_area_mm2") == b.has("die_area_mm2"):
            raise b.error("logic_area_mm2", "give exactly one of logic_area_mm2 (area that is neither L2 "
                          "nor link PHYs) and die_area_mm2 (legacy: the published die area)")
        return cls(
            process_node=b.string("process_node"),
            **{"die_area_mm2": 0.0, "logic_area_mm2": 0.0, **read_block(b, "die")},  # the area not given: 0
            hbm_generation=b.string("hbm_generation", default="HBM3"),
            l2_sram=b.string("l2_sram", choices=("gpu_l2", "macro"), default="gpu_l2"),
        )


def _warn_legacy_prefetch(file: Path | str) -> None:
    """A schema-1 spec's ``prefetch:`` block: prefetching is a runtime technique, not the chip's."""
    warnings.warn(SpecDeprecationWarning(
        f"{file}: the 'prefetch:' block is ignored: prefetching is a scenario setting now (off by default; "
        f"predict/compare --prefetch, predict(prefetch=True), a sweep file's 'scenario: {{prefetch: ...}}'); "
        f"remove the block and add 'schema_version: {SCHEMA_VERSION}'"), stacklevel=4)


@dataclass(frozen=True)
class HardwareSpec:
    """One device type and the node it sits in."""

    name: str
    description: str
    compute: ComputeSpec
    memory: MemorySpec
    intra_node: LinkTier
    inter_node: LinkTier
    devices_per_node: int
    die: DieSpec | None = None
    source_file: str = ""
    schema_version: int = SCHEMA_VERSION  # of the file it came from: 1 (no schema_version key) is legacy

    @classmethod
    def from_dict(cls, data: dict[str, Any], file: Path | str = "<dict>") -> HardwareSpec:
        top = Block(data, file)
        version = top.integer("schema_version", maximum=SCHEMA_VERSION) if top.has("schema_version") else 1
        top.check_keys(["name", "compute", "memory", "interconnect"],
                       ["schema_version", "description", "die", "notes", "calibration"]
                       + (["prefetch"] if version == 1 else []))
        if top.has("prefetch"):
            _warn_legacy_prefetch(file)
        links = top.block("interconnect")
        links.check_keys(["intra_node", "inter_node"])
        intra, per_node = LinkTier.intra_from_block(links.block("intra_node"))
        return cls(
            name=top.string("name"),
            description=str(top.raw("description", "")),
            compute=ComputeSpec.from_block(top.block("compute")),
            memory=MemorySpec.from_block(top.block("memory")),
            intra_node=intra,
            inter_node=LinkTier.inter_from_block(links.block("inter_node")),
            devices_per_node=per_node,
            die=DieSpec.from_block(top.block("die")) if top.has("die") else None,
            source_file=str(file),
            schema_version=version,
        )

    def with_values(self, **values: float | None) -> HardwareSpec:
        """A copy with parameters in user units (the names of :data:`roofline.registry.PARAMETERS`,
        e.g. ``l2_capacity_MiB=64``) written into its blocks."""
        return with_values(self, **{k: v for k, v in values.items() if v is not None})


def with_network(spec: HardwareSpec, name_or_path: str | Path) -> HardwareSpec:
    """``spec`` in a cluster whose scale-out network is the bundled network ``name_or_path``
    (``hardware_specs/networks/<name>.yaml``) or a YAML file. Its ``inter_node`` block replaces
    the keys it gives of the device's network (a device spec's network is a reference design; a
    measured cluster's may differ, see docs/validation.md); the keys are those of a device's
    ``interconnect.inter_node`` block.

    Raises:
        SpecError: unknown network (with the closest names), an unknown key or a bad value.
    """
    path = resolve_spec(name_or_path, NETWORKS_FOLDER, "network")
    top = Block(read_yaml(path), path)
    top.check_keys(["name", "inter_node"], ["description", "notes"])
    block = top.block("inter_node")
    required, optional = block_keys("interconnect.inter_node")
    block.check_keys([], [*required, *optional, "nccl_protocols"])
    # through the registry: each value is checked against its declaration, in the key's unit
    values = {f"inter_node_{key}": block.number(key) for key in (*required, *optional) if block.has(key)}
    try:
        out = spec.with_values(**values)
    except SpecError as e:
        raise SpecError(f"{path}: inter_node: {e}") from None
    if block.has("nccl_protocols"):
        out = replace(out, inter_node=replace(out.inter_node, protocols=_nccl_protocols(block)))
    return out


def list_networks() -> list[str]:
    """Names of the bundled scale-out networks."""
    return bundled_names(NETWORKS_FOLDER)


def network_values(name_or_path: str | Path) -> dict[str, Any]:
    """A network file's description and the values it gives (without their sources)."""
    path = resolve_spec(name_or_path, NETWORKS_FOLDER, "network")
    data = read_yaml(path)
    block = data.get("inter_node") or {}
    values = {k: v.get("value") if isinstance(v, dict) else v for k, v in block.items()}
    return {"name": path.stem, **values, "description": str(data.get("description", ""))}


def load_hardware(name_or_path: str | Path) -> HardwareSpec:
    """Load a bundled device by name (``h100-sxm``) or a YAML file by path.

    Raises:
        SpecError: unknown name (with the closest names), a missing or negative field.
    """
    if isinstance(name_or_path, HardwareSpec):
        return name_or_path
    path = resolve_spec(name_or_path, "hardware_specs", "hardware")
    spec = HardwareSpec.from_dict(read_yaml(path), path)
    name = name_from_stem(spec.name, path, "hardware")
    return spec if name == spec.name else replace(spec, name=name)


def list_hardware() -> list[str]:
    """Names of the bundled devices."""
    return bundled_names("hardware_specs")


@dataclass(frozen=True)
class SourcedValue:
    """One number of a spec file with where it comes from."""

    key: str  # dotted path in the file, e.g. ``compute.peak_tflops.fp4``
    value: Any
    kind: str  # "source" or "estimate"
    text: str


def hardware_sources(name_or_path: str | Path) -> list[SourcedValue]:
    """Every sourced or estimated number of a device spec, in file order."""
    path = resolve_spec(name_or_path, "hardware_specs", "hardware")
    out: list[SourcedValue] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, list):  # memory.tiers: one block per tier
            for i, child in enumerate(node):
                walk(child, f"{prefix}[{i}]")
            return
        if not isinstance(node, dict):
            return
        if "value" in node and ("source" in node or "estimate" in node):
            kind = "source" if "source" in node else "estimate"
            out.append(SourcedValue(prefix, node["value"], kind, str(node[kind])))
            return
        for key, child in node.items():
            walk(child, f"{prefix}.{key}" if prefix else str(key))

    walk(read_yaml(path), "")
    return out
