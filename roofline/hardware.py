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
    "SourcedValue",
    "hardware_sources",
    "DTYPES",
    "HARDWARE_FIELDS",
]

#: Matrix units a device may list under ``compute.peak_tflops`` (dense peaks; fp4 serves NVFP4
#: and MXFP4, fp6 MXFP6; see :mod:`roofline.dtypes`).
DTYPES = PEAK_UNITS
TOPOLOGIES = ("switched", "full_mesh", "torus_2d")
GiB = 1024**3
MiB = 1024**2
#: Version of the hardware spec layout. 1 (no ``schema_version`` key): legacy, a ``prefetch:``
#: block is accepted with a deprecation warning and ignored; 2: no ``prefetch:`` block.
SCHEMA_VERSION = 2

#: Names a memory tier beyond HBM may take (each gets sweepable ``{name}_capacity_GiB``,
#: ``{name}_bandwidth_GBps`` and ``{name}_efficiency`` in :data:`roofline.timing.SWEEPABLE`).
TIER_NAMES = ("lpddr", "cxl", "host")


def _fields(*decls: Field) -> dict[str, Field]:
    return {d.key: d for d in decls}


# Bounds of every numeric hardware field, one table per spec block (key with its unit, bounds,
# type). The upper bounds are ~1000x beyond today's largest devices: they catch typos and
# overflow (1e308, .inf), not ambitious designs. Sweeps and CLI overrides check against the
# same declarations (:data:`HARDWARE_FIELDS`).
PEAK_FIELD = Field("peak_tflops", "TFLOP/s", 0.0, 1e7, strict=True)
COMPUTE_FIELDS = _fields(
    Field("vector_tflops", "TFLOP/s", 0.0, 1e7, strict=True),
    Field("gemm_efficiency", "", 0.0, 1.0, strict=True),
    Field("launch_overhead_us", "us", 0.0, 1e6, default=0.0),
)
MEMORY_FIELDS = _fields(
    Field("hbm_capacity_GiB", "GiB", 0.0, 1e7, strict=True),
    Field("hbm_bandwidth_GBps", "GB/s", 0.0, 1e8, strict=True),
    Field("hbm_efficiency", "", 0.0, 1.0, strict=True),
    Field("l2_capacity_MiB", "MiB", 0.0, 1e7),
    Field("l2_bandwidth_GBps", "GB/s", 0.0, 1e9, strict=True),
    Field("activation_l2_hit", "", 0.0, 1.0, default=0.0),
    Field("l2_capacity_per_slice_MiB", "MiB", 0.0, 1e7, default=0.0),
    Field("l2_bandwidth_per_slice_GBps", "GB/s", 0.0, 1e9, default=0.0),
)
#: A memory tier beyond HBM (``memory.tiers[i]``); sweeps name them ``{tier}_capacity_GiB`` and so on
TIER_FIELDS = _fields(
    Field("capacity_GiB", "GiB", 0.0, 1e8, strict=True),
    Field("bandwidth_GBps", "GB/s", 0.0, 1e8, strict=True),
    Field("link_bandwidth_GBps", "GB/s", 0.0, 1e8, strict=True),
    Field("efficiency", "", 0.0, 1.0, strict=True),
    Field("latency_us", "us", 0.0, 1e6, default=0.0),
    Field("cost_usd_per_GiB", "USD/GiB", 0.0, 1e6),
    Field("energy_pj_per_byte", "pJ/B", 0.0, 1e6),
)
INTRA_NODE_FIELDS = _fields(
    Field("devices_per_node", "", 1, 1_000_000, kind="integer"),
    Field("link_bandwidth_GBps", "GB/s", 0.0, 1e7, strict=True),
    Field("links_per_device", "", 1, 10_000, kind="integer"),
    Field("latency_us", "us", 0.0, 1e6),
    Field("efficiency", "", 0.0, 1.0, strict=True),
    Field("custom_latency_us", "us", 0.0, 1e6),
)
INTER_NODE_FIELDS = _fields(
    Field("bandwidth_GBps", "GB/s", 0.0, 1e7, strict=True),
    Field("latency_us", "us", 0.0, 1e6),
    Field("efficiency", "", 0.0, 1.0, strict=True),
)
DIE_FIELDS = _fields(
    Field("die_area_mm2", "mm2", 0.0, 1e6, strict=True),
    Field("logic_area_mm2", "mm2", 0.0, 1e6, strict=True),
    Field("hbm_stacks", "", 1, 1_000, kind="integer"),
    Field("tdp_w", "W", 0.0, 1e7, default=0.0),
    Field("num_dies", "", 1, 1_000, kind="integer", default=1),
)
#: The user-facing hardware parameters of sweeps and CLI overrides, by name
HARDWARE_FIELDS = {
    **MEMORY_FIELDS, **{k: v for k, v in COMPUTE_FIELDS.items()},
    "link_bandwidth_GBps": INTRA_NODE_FIELDS["link_bandwidth_GBps"],
    "links_per_device": INTRA_NODE_FIELDS["links_per_device"],
    "link_latency_us": Field("link_latency_us", "us", 0.0, 1e6),
    "link_efficiency": Field("link_efficiency", "", 0.0, 1.0, strict=True),
    "prefetch_threshold_fraction": Field("prefetch_threshold_fraction", "", 0.0, 1.0),
    "inter_node_bandwidth_GBps": Field("inter_node_bandwidth_GBps", "GB/s", 0.0, 1e7, strict=True),
    "inter_node_latency_us": Field("inter_node_latency_us", "us", 0.0, 1e6),
    "peak_scale": Field("peak_scale", "", 0.0, 1e6, strict=True),
    **{f"peak_tflops_{d}": Field(f"peak_tflops_{d}", "TFLOP/s", 0.0, 1e7, strict=True) for d in DTYPES},
    **{f"{t}_{k}": replace(TIER_FIELDS[k], key=f"{t}_{k}") for t in TIER_NAMES
       for k in ("capacity_GiB", "bandwidth_GBps", "efficiency")},
}


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
        b.check_keys(["peak_tflops", "gemm_efficiency"],
                     ["vector_tflops", "launch_overhead_us", "efficiency_curve_m"])
        peaks = b.block("peak_tflops")
        peaks.check_keys([], DTYPES)
        if not peaks.data:
            raise peaks.error("bf16", "at least one data type is required")
        peak = {d: peaks.number(d, strict=True, maximum=PEAK_FIELD.high) * 1e12 for d in DTYPES if peaks.has(d)}
        default_vector = max(peak.values()) / 16e12
        f = COMPUTE_FIELDS
        return cls(
            peak_flops=peak,
            vector_flops=(b.field(f["vector_tflops"]) if b.has("vector_tflops") else default_vector) * 1e12,
            gemm_efficiency=b.field(f["gemm_efficiency"]),
            launch_overhead_s=b.field(f["launch_overhead_us"]) * 1e-6,
            efficiency_curve_m=_curve(b, "efficiency_curve_m"),
        )

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
        b.check_keys(["name", "capacity_GiB", "bandwidth_GBps", "efficiency"],
                     ["link_bandwidth_GBps", "latency_us", "cost_usd_per_GiB", "energy_pj_per_byte"])
        f = TIER_FIELDS
        memory_Bps = b.field(f["bandwidth_GBps"]) * 1e9
        link_Bps = b.field(f["link_bandwidth_GBps"]) * 1e9 if b.has("link_bandwidth_GBps") else memory_Bps
        return cls(
            name=b.string("name", choices=TIER_NAMES),
            capacity_bytes=b.field(f["capacity_GiB"]) * GiB,
            bandwidth_Bps=min(memory_Bps, link_Bps),
            efficiency=b.field(f["efficiency"]),
            latency_s=b.field(f["latency_us"]) * 1e-6,
            cost_usd_per_GiB=b.field(f["cost_usd_per_GiB"]) if b.has("cost_usd_per_GiB") else None,
            energy_pj_per_byte=b.field(f["energy_pj_per_byte"]) if b.has("energy_pj_per_byte") else None,
        )


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
        b.check_keys(["hbm_capacity_GiB", "hbm_bandwidth_GBps", "hbm_efficiency",
                      "l2_capacity_MiB", "l2_bandwidth_GBps"],
                     ["activation_l2_hit", "l2_capacity_per_slice_MiB", "l2_bandwidth_per_slice_GBps", "l2_gemm_reuse",
                      "tiers"])
        f = MEMORY_FIELDS
        return cls(
            hbm_capacity_bytes=b.field(f["hbm_capacity_GiB"]) * GiB,
            hbm_bandwidth_Bps=b.field(f["hbm_bandwidth_GBps"]) * 1e9,
            hbm_efficiency=b.field(f["hbm_efficiency"]),
            l2_capacity_bytes=b.field(f["l2_capacity_MiB"]) * MiB,
            l2_bandwidth_Bps=b.field(f["l2_bandwidth_GBps"]) * 1e9,
            activation_l2_hit=b.field(f["activation_l2_hit"]),
            l2_slice_bytes=b.field(f["l2_capacity_per_slice_MiB"]) * MiB,
            l2_slice_bandwidth_Bps=b.field(f["l2_bandwidth_per_slice_GBps"]) * 1e9,
            l2_gemm_reuse=b.number("l2_gemm_reuse", maximum=1.0, default=1.0),
            extra_tiers=_extra_tiers(b),
        )


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

    @property
    def device_bandwidth_Bps(self) -> float:
        """Per-direction injection bandwidth of one device over all its links."""
        return self.link_bandwidth_Bps * self.links_per_device

    @classmethod
    def intra_from_block(cls, b: Block) -> tuple[LinkTier, int]:
        b.check_keys(["topology", "devices_per_node", "link_bandwidth_GBps", "links_per_device",
                      "latency_us", "efficiency"],
                     ["custom_latency_us", "nvls_efficiency", "torus_dims", "custom_allreduce"])
        topology = b.string("topology", choices=TOPOLOGIES)
        f = INTRA_NODE_FIELDS
        tier = cls(
            topology=topology,
            link_bandwidth_Bps=b.field(f["link_bandwidth_GBps"]) * 1e9,
            links_per_device=int(b.field(f["links_per_device"])),
            latency_s=b.field(f["latency_us"]) * 1e-6,
            efficiency=b.field(f["efficiency"]),
            custom_latency_s=b.field(f["custom_latency_us"]) * 1e-6 if b.has("custom_latency_us") else None,
            nvls_efficiency=b.number("nvls_efficiency", default=0.0, maximum=1.0),
            torus_dims=_torus_dims(b, topology),
            custom_allreduce=b.boolean("custom_allreduce", default=True),
        )
        return tier, int(b.field(f["devices_per_node"]))

    @classmethod
    def inter_from_block(cls, b: Block) -> LinkTier:
        b.check_keys(["bandwidth_GBps", "latency_us", "efficiency"])
        return cls(
            topology="network",
            link_bandwidth_Bps=b.field(INTER_NODE_FIELDS["bandwidth_GBps"]) * 1e9,
            links_per_device=1,
            latency_s=b.field(INTER_NODE_FIELDS["latency_us"]) * 1e-6,
            efficiency=b.field(INTER_NODE_FIELDS["efficiency"]),
        )


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
        b.check_keys(["process_node", "hbm_stacks"],
                     ["logic_area_mm2", "die_area_mm2", "tdp_w", "num_dies", "hbm_generation", "l2_sram"])
        if b.has("logic_area_mm2") == b.has("die_area_mm2"):
            raise b.error("logic_area_mm2", "give exactly one of logic_area_mm2 (area that is neither L2 "
                          "nor link PHYs) and die_area_mm2 (legacy: the published die area)")
        return cls(
            process_node=b.string("process_node"),
            die_area_mm2=b.field(DIE_FIELDS["die_area_mm2"]) if b.has("die_area_mm2") else 0.0,
            logic_area_mm2=b.field(DIE_FIELDS["logic_area_mm2"]) if b.has("logic_area_mm2") else 0.0,
            hbm_stacks=int(b.field(DIE_FIELDS["hbm_stacks"])),
            tdp_w=b.field(DIE_FIELDS["tdp_w"]),
            hbm_generation=b.string("hbm_generation", default="HBM3"),
            num_dies=int(b.field(DIE_FIELDS["num_dies"])),
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

    def with_overrides(self, **changes: float | bool | None) -> HardwareSpec:
        """A copy with SI-unit overrides, e.g. ``l2_capacity_bytes=64 * 2**20``."""
        groups = {
            "memory": self.memory, "compute": self.compute, "intra_node": self.intra_node,
        }
        updated: dict[str, Any] = {}
        for key, value in changes.items():
            if value is None:
                continue
            for group_name, group in groups.items():
                if hasattr(group, key):
                    current = updated.get(group_name, group)
                    updated[group_name] = replace(current, **{key: value})
                    break
            else:
                raise SpecError(f"unknown hardware override {key!r}")
        return replace(self, **updated)


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
