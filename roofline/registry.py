"""The hardware parameter registry: every numeric hardware parameter declared once.

A :class:`HardwareParameter` says where a parameter lives in a spec file (block and YAML key, the
unit in the key), its bounds, its conversion to SI, the field of the device spec and of the
hot-path arrays (:class:`roofline.timing.HardwareArrays`) it sets, whether it can be swept and
searched, its labels for plots and tables, its ``predict`` flag, and the argument of the cost
model it feeds. Everything else is derived from :data:`PARAMETERS`: the spec blocks' field tables
(:func:`block_fields`), the sweep vocabulary and its bounds, the CLI overrides and their inverse
(:func:`override_arguments`), the labels (:func:`parameter_labels`), the values of a spec in user
units (:func:`spec_values`) and a spec with values written into it (:func:`with_values`).

Adding a parameter is one entry in :data:`PARAMETERS` (docs/contributing.md, "Add a parameter").
This module sits at the spec stage: it knows spec files and nothing after them.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from roofline._specfile import Field
from roofline.dtypes import PEAK_UNITS
from roofline.exceptions import SpecError

__all__ = ["HardwareParameter", "DECLARATIONS", "PARAMETERS", "SPEC_FIELDS", "TIER_NAMES", "MOE_SKEW", "KV_BANDWIDTH", "SCENARIO_PARAMETERS",
           "block_fields", "block_keys", "read_block", "sweepable", "fractions", "parameter_labels", "parameter_short_labels",
           "cli_overrides", "override_arguments", "parse_set", "check_flags", "check_overrides", "spec_si", "si_reader", "spec_value", "spec_values", "with_values",
           "cost_inputs", "swept_columns", "ScenarioParameter", "SCENARIO", "COLLECTIVE_LIBRARIES", "scenario_names",
           "headline_parameters", "headline_columns", "is_parameter", "NOT_SWEEPABLE"]

GiB = 1024**3
MiB = 1024**2
#: Names a memory tier beyond HBM may take; each gets ``{name}_capacity_GiB``, ``{name}_bandwidth_GBps``
#: and ``{name}_efficiency`` parameters
TIER_NAMES = ("lpddr", "cxl", "host")


@dataclass(frozen=True)
class HardwareParameter:
    """One numeric hardware parameter, declared once.

    ``name`` is the user-facing name (unit in the name): the sweep column, the ``predict``/engine
    keyword and the key of calibrated profiles. ``block``/``key`` locate it in a spec file
    (``key`` carries the unit, e.g. ``hbm_bandwidth_GBps`` in block ``memory``); ``low``..``high``
    (``strict``: ``low`` excluded; ``integer``) bound it in spec files, overrides and sweeps alike.
    A value in user units times ``scale`` is SI. ``spec`` is the dotted path of the SI value in a
    :class:`~roofline.hardware.HardwareSpec` (a dict key or a tier name may be a step); ``array`` the
    field of :class:`~roofline.timing.HardwareArrays` (``peak:DTYPE`` and ``tier:NAME_PART`` name an
    entry of its peak dict or tier matrices). ``scenario`` names the
    :class:`~roofline.workload.PrefetchSettings` field of a runtime setting that lives in the
    scenario, not in the spec.
    """

    name: str
    unit: str
    low: float
    high: float
    scale: float = 1.0
    block: str | None = None  # spec-file block, e.g. "memory" or "interconnect.intra_node"
    key: str | None = None  # YAML key in that block (default: name)
    spec: str | None = None  # dotted path of the SI value in a HardwareSpec
    array: str | None = None  # HardwareArrays field (None: not on the hot path)
    strict: bool = False
    integer: bool = False
    default: float | None = None  # value of an optional YAML key that is absent
    optional: bool = False  # the YAML key may be absent without a default (the spec says what then)
    sweepable: bool = True  # swept, searched, and a predict/engine keyword
    headline: int = 0  # a design-space knob's rank (0: none): ranked tables show them, the DSE varies them
    label: str = ""  # axis title with its unit, for plots
    short: str | None = None  # short table header for terminal tables (None: the name)
    flag: str | None = None  # predict/compare option, e.g. "--hbm-bandwidth"
    help: str = ""
    cost_input: str | None = None  # argument of roofline.cost.hardware_cost it feeds (user units)
    fallback: str | None = None  # spec path read when ``spec`` holds None
    scenario: str | None = None  # PrefetchSettings field of a runtime setting

    @property
    def field(self) -> Field:
        """Bounds as a :class:`~roofline._specfile.Field` named by :attr:`name` (sweeps, overrides)."""
        return Field(self.name, self.unit, self.low, self.high, kind="integer" if self.integer else "number",
                     strict=self.strict, default=self.default)

    @property
    def yaml_field(self) -> Field:
        """The same bounds named by the spec file's key."""
        return replace(self.field, key=self.key or self.name)

    @property
    def fraction(self) -> bool:
        return self.low == 0.0 and self.high == 1.0

    def to_si(self, value: Any) -> Any:
        return value * self.scale


def _p(name: str, unit: str, low: float, high: float, **kw: Any) -> HardwareParameter:
    return HardwareParameter(name, unit, low, high, **kw)


def _tier_parameters(tier: str) -> list[HardwareParameter]:
    at = f"memory.extra_tiers.{tier}"
    where = f"memory tier {tier} (memory.tiers)"
    return [
        _p(f"{tier}_capacity_GiB", "GiB", 0.0, 1e8, scale=GiB, block="memory.tiers", key="capacity_GiB",
           spec=f"{at}.capacity_bytes", array=f"tier:{tier}_capacity", strict=True,
           label=f"{tier.upper()} capacity (GiB)", help=f"Capacity of the {where} (GiB)."),
        _p(f"{tier}_bandwidth_GBps", "GB/s", 0.0, 1e8, scale=1e9, block="memory.tiers", key="bandwidth_GBps",
           spec=f"{at}.bandwidth_Bps", array=f"tier:{tier}_bandwidth", strict=True,
           label=f"{tier.upper()} bandwidth (GB/s)",
           help=f"Read bandwidth of the {where} (GB/s; the smaller of memory and link)."),
        _p(f"{tier}_efficiency", "", 0.0, 1.0, block="memory.tiers", key="efficiency",
           spec=f"{at}.efficiency", array=f"tier:{tier}_efficiency", strict=True,
           label=f"{tier.upper()} efficiency (fraction)", help=f"Achievable fraction of the {where} bandwidth."),
    ]


def _peak(dtype: str) -> HardwareParameter:
    return _p(f"peak_tflops_{dtype}", "TFLOP/s", 0.0, 1e7, scale=1e12, block="compute.peak_tflops", key=dtype,
              spec=f"compute.peak_flops.{dtype}", array=f"peak:{dtype}", strict=True, optional=True,
              label=f"peak {dtype} (TFLOP/s)", help=f"Dense {dtype} peak (TFLOP/s).")


#: Every numeric field of a hardware spec, declared once. The upper bounds are ~1000x beyond
#: today's largest devices: they catch typos and overflow (1e308, .inf), not ambitious designs.
DECLARATIONS: tuple[HardwareParameter, ...] = (
    # compute
    _p("peak_scale", "x", 0.0, 1e6, strict=True, label="peak scale (x spec peaks)",
       help="Multiplies every dense peak of the device."),
    *(_peak(d) for d in PEAK_UNITS),
    _p("vector_tflops", "TFLOP/s", 0.0, 1e7, scale=1e12, block="compute", spec="compute.vector_flops",
       array="vector_flops", strict=True, optional=True, label="vector peak (TFLOP/s)", help="Vector-unit peak (TFLOP/s)."),
    _p("gemm_efficiency", "", 0.0, 1.0, block="compute", spec="compute.gemm_efficiency", array="gemm_efficiency",
       strict=True, label="GEMM efficiency (fraction of peak)", help="Fraction of peak large GEMMs reach."),
    _p("launch_overhead_us", "us", 0.0, 1e6, scale=1e-6, block="compute", spec="compute.launch_overhead_s",
       array="launch_s", default=0.0, label="launch overhead (us)", help="Fixed cost per kernel (us)."),
    # memory
    _p("hbm_capacity_GiB", "GiB", 0.0, 1e7, scale=GiB, block="memory", spec="memory.hbm_capacity_bytes",
       array="hbm_capacity_bytes", strict=True, label="HBM capacity (GiB)", short="HBM GiB",
       cost_input="hbm_capacity_GiB", help="HBM capacity per device (GiB)."),
    _p("hbm_bandwidth_GBps", "GB/s", 0.0, 1e8, scale=1e9, block="memory", spec="memory.hbm_bandwidth_Bps",
       array="hbm_Bps", strict=True, headline=2, label="HBM bandwidth (GB/s)", short="HBM GB/s", flag="--hbm-bandwidth",
       cost_input="hbm_bandwidth_GBps", help="Override the HBM bandwidth (GB/s)."),
    _p("hbm_efficiency", "", 0.0, 1.0, block="memory", spec="memory.hbm_efficiency", array="hbm_efficiency",
       strict=True, label="HBM efficiency (fraction)", help="Achievable fraction of the HBM bandwidth."),
    _p("l2_capacity_MiB", "MiB", 0.0, 1e7, scale=MiB, block="memory", spec="memory.l2_capacity_bytes",
       array="l2_bytes", headline=1, label="L2 capacity (MiB)", short="L2 MiB", flag="--l2-mib", cost_input="l2_MiB",
       help="Override the L2 capacity (MiB)."),
    _p("l2_bandwidth_GBps", "GB/s", 0.0, 1e9, scale=1e9, block="memory", spec="memory.l2_bandwidth_Bps",
       array="l2_Bps", strict=True, label="L2 bandwidth (GB/s)", short="L2 GB/s", flag="--l2-bandwidth",
       help="Override the L2 bandwidth (GB/s)."),
    _p("activation_l2_hit", "", 0.0, 1.0, block="memory", spec="memory.activation_l2_hit",
       array="activation_l2_hit", default=0.0, label="activation L2 hit (fraction)",
       help="Fraction of activation bytes that hit in L2 when they fit."),
    _p("l2_capacity_per_slice_MiB", "MiB", 0.0, 1e7, scale=MiB, block="memory", spec="memory.l2_slice_bytes",
       array="l2_slice_bytes", default=0.0, label="L2 capacity per slice (MiB)",
       help="L2 slice capacity (MiB; 0: fixed L2 bandwidth)."),
    _p("l2_bandwidth_per_slice_GBps", "GB/s", 0.0, 1e9, scale=1e9, block="memory",
       spec="memory.l2_slice_bandwidth_Bps", array="l2_slice_Bps", default=0.0,
       label="L2 bandwidth per slice (GB/s)", help="L2 slice bandwidth (GB/s; 0: fixed L2 bandwidth)."),
    _p("l2_gemm_reuse", "", 0.0, 1.0, block="memory", spec="memory.l2_gemm_reuse", array="l2_gemm_reuse",
       default=1.0, label="L2 GEMM reuse (1 modelled, 0 off)",
       help="1: tiled GEMMs re-read operands that outgrow L2; 0: compulsory traffic only."),
    *(p for t in TIER_NAMES for p in _tier_parameters(t)),
    # memory tier fields that are not swept
    _p("link_bandwidth_GBps", "GB/s", 0.0, 1e8, scale=1e9, block="memory.tiers", strict=True, optional=True,
       sweepable=False),  # a chip-to-chip link in front of the memory: the tier is read at the smaller
    _p("latency_us", "us", 0.0, 1e6, scale=1e-6, block="memory.tiers", spec="memory.extra_tiers.*.latency_s",
       default=0.0, sweepable=False),
    _p("cost_usd_per_GiB", "USD/GiB", 0.0, 1e6, block="memory.tiers", spec="memory.extra_tiers.*.cost_usd_per_GiB",
       optional=True, sweepable=False),
    _p("energy_pj_per_byte", "pJ/B", 0.0, 1e6, block="memory.tiers",
       spec="memory.extra_tiers.*.energy_pj_per_byte", optional=True, sweepable=False),
    # interconnect inside a node
    # devices_per_node and topology: not sweepable (NOT_SWEEPABLE says why)
    _p("devices_per_node", "", 1, 1_000_000, block="interconnect.intra_node", spec="devices_per_node",
       integer=True, sweepable=False),
    _p("link_bandwidth_GBps", "GB/s", 0.0, 1e7, scale=1e9, block="interconnect.intra_node",
       spec="intra_node.link_bandwidth_Bps", array="link_Bps", strict=True, headline=3,
       label="link bandwidth (GB/s per link, one direction)", short="link GB/s", flag="--link-bandwidth",
       help="Override the per-link bandwidth (GB/s per direction)."),
    _p("links_per_device", "", 1, 10_000, block="interconnect.intra_node", spec="intra_node.links_per_device",
       array="links", integer=True, label="links per device", help="Scale-up links per device."),
    _p("link_latency_us", "us", 0.0, 1e6, scale=1e-6, block="interconnect.intra_node", key="latency_us",
       spec="intra_node.latency_s", array="link_latency_s", label="link latency (us)",
       help="Latency of one ring/tree step inside a node (us)."),
    _p("link_efficiency", "", 0.0, 1.0, block="interconnect.intra_node", key="efficiency",
       spec="intra_node.efficiency", array="link_efficiency", strict=True, label="link efficiency (fraction)",
       help="Achievable fraction of the link wire rate."),
    _p("custom_latency_us", "us", 0.0, 1e6, scale=1e-6, block="interconnect.intra_node",
       spec="intra_node.custom_latency_s", fallback="intra_node.latency_s", array="custom_latency_s", optional=True,
       label="custom all-reduce latency (us)", help="One shot of a custom one-shot/two-shot all-reduce (us)."),
    _p("nvls_efficiency", "", 0.0, 1.0, block="interconnect.intra_node", spec="intra_node.nvls_efficiency",
       array="nvls_efficiency", default=0.0, label="NVLS efficiency (fraction; 0: no NVLink SHARP)",
       help="NVLink SHARP's reach (0: the switch has no NVLS)."),
    # network between nodes
    _p("inter_node_bandwidth_GBps", "GB/s", 0.0, 1e7, scale=1e9, block="interconnect.inter_node",
       key="bandwidth_GBps", spec="inter_node.link_bandwidth_Bps", array="net_Bps", strict=True,
       label="inter-node bandwidth (GB/s)", short="network GB/s", help="Network bandwidth per device between nodes (GB/s)."),
    _p("inter_node_latency_us", "us", 0.0, 1e6, scale=1e-6, block="interconnect.inter_node", key="latency_us",
       spec="inter_node.latency_s", array="net_latency_s", label="inter-node latency (us)",
       help="Network latency of one step between nodes (us)."),
    _p("inter_node_efficiency", "", 0.0, 1.0, block="interconnect.inter_node", key="efficiency",
       spec="inter_node.efficiency", array="net_efficiency", strict=True, label="inter-node efficiency (fraction)",
       help="Achievable fraction of the network wire rate."),
    # die (the cost and power models)
    # exactly one of the two areas (roofline.hardware.DieSpec)
    _p("die_area_mm2", "mm2", 0.0, 1e6, block="die", spec="die.die_area_mm2", strict=True, optional=True,
       sweepable=False),
    _p("logic_area_mm2", "mm2", 0.0, 1e6, block="die", spec="die.logic_area_mm2", strict=True, optional=True,
       sweepable=False),
    _p("hbm_stacks", "", 1, 1_000, block="die", spec="die.hbm_stacks", integer=True, sweepable=False),
    _p("tdp_w", "W", 0.0, 1e7, block="die", spec="die.tdp_w", default=0.0, sweepable=False),
    _p("num_dies", "", 1, 1_000, block="die", spec="die.num_dies", integer=True, default=1, sweepable=False),
    # runtime settings of the scenario (PrefetchSettings), swept like hardware
    _p("prefetch_threshold_fraction", "", 0.0, 1.0, array="prefetch_threshold_fraction",
       scenario="threshold_fraction", label="prefetch threshold (fraction of L2)", short="threshold",
       flag="--prefetch-threshold",
       help="Prefetch threshold, fraction of L2 (0 to 1)."),
    _p("prefetch_launch_gap_fraction", "", 0.0, 1.0, array="prefetch_launch_gap_fraction",
       scenario="launch_gap_fraction", label="prefetch share of launch gaps (fraction)",
       help="Share of kernel-launch gaps in which prefetching may use HBM."),
)

#: Why the structural spec fields of the interconnect are not sweepable: roofline.collectives picks each
#: collective's algorithm set (in one node, on a torus, or hierarchical across nodes, and the split of
#: a hierarchical one) once per call with Python branches on them, and the one-configuration path caches
#: on them. Varying them per configuration would take a loop over configurations or every branch
#: evaluated for every row; a sweep varies them as devices instead.
_ONE_PER_DEVICE = ("the collective algorithms are chosen once per device from it (roofline.collectives), not per "
                   "configuration; sweep it as devices: a `hardware:` list of spec files that differ in it")
#: Spec fields a sweep cannot vary, and why (a sweep file naming one is told this).
NOT_SWEEPABLE = {"devices_per_node": _ONE_PER_DEVICE, "topology": _ONE_PER_DEVICE}

#: The parameters a sweep, a search, an override or a profile may set, by user-facing name
PARAMETERS: dict[str, HardwareParameter] = {p.name: p for p in DECLARATIONS if p.sweepable}
#: The numeric fields of spec files, by (block, YAML key); spec-only fields (a tier's
#: ``link_bandwidth_GBps``) may share a name with a parameter of another block
SPEC_FIELDS: dict[tuple[str, str], HardwareParameter] = {
    (p.block, p.key or p.name): p for p in DECLARATIONS if p.block is not None}
SCENARIO_PARAMETERS = tuple(p.name for p in PARAMETERS.values() if p.scenario)

#: Collective libraries a serving framework may use (roofline.collectives): its custom all-reduce
#: kernels for small messages, or NCCL only.
COLLECTIVE_LIBRARIES = ("nccl", "custom")


@dataclass(frozen=True)
class ScenarioParameter:
    """One parameter of a configuration that is not a hardware number: the model and device, the
    workload, the parallelism and the runtime settings. Declared once, like the hardware parameters:
    the sweep file's vocabulary (structural axes, booleans, choices and integer bounds), the search
    space's categorical parameters, the ``roofline predict`` command that reproduces a row and the
    columns ranked tables show all come from :data:`SCENARIO`.

    ``group``: ``"spec"`` (model, device), ``"workload"``, ``"parallelism"`` or ``"setting"`` (a
    runtime setting of the scenario, fixed under a sweep file's ``scenario:`` or swept). ``kind``:
    ``"name"`` (of a spec), ``"text"``, ``"integer"`` (``low``..``high``), ``"flag"`` (true/false)
    or ``"choice"`` (one of ``choices``). ``vectorized``: the engine evaluates it as an array
    (prefetching on/off); the others change the operator tables or the scenario and are evaluated
    one combination at a time. ``flag``: the ``predict`` option (a flag kind: the option that
    turns it on; ``negation``: the one that turns it off, when there is one). ``static``: a setting
    of the static batch that a serving operating point does not use.
    """

    name: str
    group: str
    kind: str
    label: str
    flag: str
    unit: str = ""
    low: int = 1
    high: int = 1_000_000
    choices: tuple[Any, ...] = ()
    vectorized: bool = False
    negation: str | None = None
    headline: bool = False  # ranked tables show it (with the headline hardware parameters)
    static: bool = False

    @property
    def categorical(self) -> bool:
        """Only a list of values makes sense (a search range does not)."""
        return self.kind in ("name", "text", "flag", "choice")

    @property
    def field(self) -> Field:
        """Bounds of an integer parameter (sweep files check fixed and swept values with it)."""
        return Field(self.name, self.unit, self.low, self.high, kind="integer")


def _s(name: str, group: str, kind: str, label: str, flag: str, **kw: Any) -> ScenarioParameter:
    return ScenarioParameter(name, group, kind, label, flag, **kw)


#: Every scenario parameter, in the order of a results table's configuration columns.
SCENARIO: dict[str, ScenarioParameter] = {p.name: p for p in (
    _s("model", "spec", "name", "model", "-m", headline=True),
    _s("hardware", "spec", "name", "device", "-H", headline=True),
    _s("batch", "workload", "integer", "batch (sequences)", "--batch", headline=True, static=True),
    _s("input_len", "workload", "integer", "prompt length (tokens)", "--input", unit="tokens", high=1_000_000_000),
    _s("output_len", "workload", "integer", "output length (tokens)", "--output", unit="tokens", high=1_000_000_000),
    _s("dtype", "workload", "text", "data type (weights[:activations])", "--dtype"),
    _s("kv_dtype", "workload", "text", "KV-cache data type", "--kv-dtype"),
    _s("op_dtypes", "workload", "text", "data types per operator class", "--op-dtype"),
    _s("lm_head_dtype", "workload", "text", "LM head data type (same: as the weights)", "--lm-head-dtype"),
    _s("tp", "parallelism", "integer", "tensor parallelism", "--tp", headline=True),
    _s("pp", "parallelism", "integer", "pipeline parallelism", "--pp"),
    _s("dp", "parallelism", "integer", "data-parallel replicas", "--dp"),
    _s("ep", "parallelism", "integer", "expert parallelism", "--ep"),
    _s("collective_library", "setting", "choice", "collective library", "--collective-library",
       choices=COLLECTIVE_LIBRARIES),
    _s("async_tp", "setting", "flag", "asynchronous TP", "--async-tp", choices=(False, True)),
    _s("prefetch", "setting", "flag", "prefetching (PRESERVE)", "--prefetch", choices=(False, True), vectorized=True,
       negation="--no-prefetch", headline=True),
)}


def scenario_names(*groups: str, vectorized: bool | None = None) -> tuple[str, ...]:
    """Names of the scenario parameters of ``groups`` (all when none is given), in declaration
    order; ``vectorized``: only those the engine evaluates as arrays (True) or not (False)."""
    return tuple(n for n, p in SCENARIO.items() if (not groups or p.group in groups)
                 and (vectorized is None or p.vectorized == vectorized))


def headline_parameters() -> tuple[str, ...]:
    """The design-space knobs (L2 size, HBM bandwidth, link speed), in the order of their rank."""
    return tuple(sorted((n for n, p in PARAMETERS.items() if p.headline), key=lambda n: PARAMETERS[n].headline))


def headline_columns(*, serving: bool = False) -> list[str]:
    """The configuration columns a ranked table shows: the headline scenario parameters (model,
    device, parallelism and batch), the headline hardware parameters, then the headline runtime
    settings (prefetch). ``serving``: a serving operating point (no static batch)."""
    shown = [p for p in SCENARIO.values() if p.headline and not (serving and p.static)]
    return ([p.name for p in shown if p.group != "setting"] + list(headline_parameters())
            + [p.name for p in shown if p.group == "setting"])


def is_parameter(name: str) -> bool:
    """Whether a results column configures a row: a hardware or a scenario parameter."""
    return name in PARAMETERS or name in SCENARIO


#: Zipf exponent of MoE expert popularity: beyond ~10 the first expert takes every token already
MOE_SKEW = Field("moe_skew", "", 0.0, 10.0)
#: Bound of the wire rate of a disaggregated deployment's KV transfer (``--kv-bandwidth``, a sweep
#: file's ``serving.disagg.kv_bandwidth_GBps``): as a link's bandwidth
KV_BANDWIDTH = Field("kv_bandwidth_GBps", "GB/s", 0.0, 1e7, strict=True)


def block_fields(block: str) -> dict[str, Field]:
    """The numeric fields of one spec-file block, by YAML key (``block_fields("memory")``)."""
    return {key: p.yaml_field for (b, key), p in SPEC_FIELDS.items() if b == block}


def block_keys(block: str) -> tuple[list[str], list[str]]:
    """The declared YAML keys of a spec block: (required, optional)."""
    decls = [(key, p) for (b, key), p in SPEC_FIELDS.items() if b == block]
    return ([k for k, p in decls if p.default is None and not p.optional],
            [k for k, p in decls if p.default is not None or p.optional])


def read_block(b: Any, block: str) -> dict[str, Any]:
    """The SI value of every declared field of ``block`` (a :class:`~roofline._specfile.Block`)
    that the file gives or that has a default, checked against its bounds, by the name of the
    spec attribute it sets (``hbm_bandwidth_GBps: 3350`` -> ``{"hbm_bandwidth_Bps": 3.35e12}``)."""
    out: dict[str, Any] = {}
    for (name, key), p in SPEC_FIELDS.items():
        if name != block or p.spec is None or (p.optional and not b.has(key)):
            continue  # an optional key the file leaves out: the spec says what then
        value = b.field(p.yaml_field)
        out[p.spec.rsplit(".", 1)[-1]] = int(value) if p.integer else value * p.scale
    return out


def sweepable() -> tuple[str, ...]:
    """Names of the parameters a sweep, a search or an override may set."""
    return tuple(PARAMETERS)


def fractions() -> tuple[str, ...]:
    """Parameters bounded by 0 and 1."""
    return tuple(n for n, p in PARAMETERS.items() if p.fraction)


def parameter_labels() -> dict[str, str]:
    """Axis titles with units of every parameter, for plots."""
    return {n: p.label for n, p in PARAMETERS.items()}


def parameter_short_labels() -> dict[str, str]:
    """Short headers of the parameters that have one, for terminal tables."""
    return {n: p.short for n, p in PARAMETERS.items() if p.short}


def cli_overrides() -> dict[str, HardwareParameter]:
    """The parameters ``predict`` and ``compare`` take as named options, by name."""
    return {n: p for n, p in PARAMETERS.items() if p.flag}


def override_arguments(values: Mapping[str, float]) -> list[str]:
    """The command-line arguments that set ``values`` (the inverse of the CLI's parsing):
    the parameter's own flag, else ``--set NAME=VALUE``."""
    import numpy as np

    args: list[str] = []
    for name, value in values.items():
        p, text = PARAMETERS[name], np.format_float_positional(float(value), trim="-")  # exact, no exponent
        args += [p.flag, text] if p.flag else ["--set", f"{name}={text}"]
    return args


def parse_set(items: Iterable[str]) -> dict[str, float]:
    """``["gemm_efficiency=0.7"]`` -> ``{"gemm_efficiency": 0.7}``, each value checked against its
    declaration (the same bounds as spec files and sweeps)."""
    out: dict[str, float] = {}
    for text in items:
        name, sep, raw = text.partition("=")
        name = name.strip()
        if not sep:
            raise SpecError(f"--set {text!r}: expected NAME=VALUE, e.g. gemm_efficiency=0.7")
        if name not in PARAMETERS:
            from roofline._specfile import closest

            raise SpecError(f"--set {name}: unknown parameter{closest(name, PARAMETERS)} "
                            f"(allowed: {', '.join(PARAMETERS)})")
        try:
            value: Any = float(raw)
        except ValueError:
            value = raw.strip()
        out[name] = PARAMETERS[name].field.check(value, "--set ")
    return out


def check_flags(where: str, **flags: Any) -> None:
    """On/off arguments given in Python are booleans (None: the default): a string such as ``"no"``
    is truthy and would turn a technique on in silence.

    Raises:
        SpecError: a value that is not a bool (numpy's included) or None.
    """
    import numpy as np

    for name, value in flags.items():
        if value is not None and not isinstance(value, (bool, np.bool_)):
            raise SpecError(f"{where}: {name}: expected true or false, got {value!r}")


def check_overrides(values: Mapping[str, Any]) -> None:
    """Check hardware parameters given in Python (``predict(..., hbm_bandwidth_GBps=...)``, a scalar
    or an array each) against their declarations: the bounds spec files, sweeps and ``--set`` apply.

    Raises:
        SpecError: an unknown name or a value out of its bounds (a zero bandwidth divides by zero).
    """
    import numpy as np

    for name, value in values.items():
        if value is None:
            continue
        p = PARAMETERS.get(name)
        if p is None:
            from roofline._specfile import closest

            raise SpecError(f"unknown hardware parameter {name!r}{closest(name, PARAMETERS)}; "
                            f"allowed: {', '.join(PARAMETERS)}")
        if isinstance(value, (int, float)):  # one configuration (predict, serve): the quick path
            p.field.check(float(value), "hardware parameter ")
            continue
        try:
            arr = np.ravel(np.asarray(value, dtype=float))  # as the engine reads them (a bool is 0 or 1)
        except (TypeError, ValueError):
            raise SpecError(f"hardware parameter {name}: expected a number, got {value!r:.60}") from None
        if not arr.size:
            continue
        # the bounds hold for every value when they hold for the extremes (NaN propagates into both)
        worst = [arr.min(), arr.max()]
        if p.field.kind == "integer":
            worst += arr[arr != np.round(arr)][:1].tolist()
        for v in worst:
            p.field.check(float(v), "hardware parameter ")


def _step(obj: Any, part: str) -> Any:
    if type(obj) is dict:  # a device's peaks by data type (a plain dict: the fast check)
        return obj.get(part)
    if type(obj) is tuple:  # memory tiers, by name
        return next((x for x in obj if getattr(x, "name", None) == part), None)
    return getattr(obj, part)


@functools.cache
def _parts(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


@functools.cache
def _reader(path: str) -> Any:
    """A fast reader of the spec attribute at ``path`` (C attrgetter for attribute steps); a step
    into a device's peaks (by data type) or tiers (by name) gives None where the device lacks it."""
    if path.startswith("compute.peak_flops."):
        dtype = path.rsplit(".", 1)[1]
        return lambda spec: spec.compute.peak_flops.get(dtype)
    if path.startswith("memory.extra_tiers."):
        tier, attr = path.split(".")[2:]
        get = operator.attrgetter(attr)
        return lambda spec: next((get(t) for t in spec.memory.extra_tiers if t.name == tier), None)
    return operator.attrgetter(path)


def _get(obj: Any, path: str) -> Any:
    for part in _parts(path):
        if obj is None:
            return None
        obj = _step(obj, part)
    return obj


def _set(obj: Any, parts: list[str], value: Any) -> Any:
    head = parts[0]
    if len(parts) > 1:
        value = _set(_step(obj, head), parts[1:], value)
    if type(obj) is dict:
        return {**obj, head: value}
    if type(obj) is tuple:
        return tuple(value if getattr(x, "name", None) == head else x for x in obj)
    return replace(obj, **{head: value})


def spec_si(spec: Any, name: str, prefetch: Any = None) -> float | None:
    """The SI value of parameter ``name`` for a device spec, read from the spec itself (None: the
    spec lacks it, e.g. a data type or memory tier it does not have). Scenario settings come from
    ``prefetch`` (a :class:`~roofline.workload.PrefetchSettings`; default: its defaults)."""
    return si_reader(name)(spec, prefetch)


@functools.cache
def si_reader(name: str) -> Any:
    """``read(spec, prefetch) -> SI value or None`` of parameter ``name`` (see :func:`spec_si`),
    built once: the hot path reads every parameter of a spec per configuration set."""
    p = PARAMETERS[name]
    if p.scenario is not None:
        def scenario(spec: Any, prefetch: Any) -> Any:
            if prefetch is None:
                from roofline.workload import PrefetchSettings

                prefetch = PrefetchSettings()
            return getattr(prefetch, p.scenario)

        return scenario
    if p.spec is None:  # peak_scale: the spec's own peaks
        return lambda spec, prefetch: 1.0
    read = _reader(p.spec)
    if p.fallback is None:
        return lambda spec, prefetch: read(spec)
    fallback = _reader(p.fallback)
    return lambda spec, prefetch: (lambda si: fallback(spec) if si is None else si)(read(spec))


def spec_value(spec: Any, name: str, prefetch: Any = None) -> float | None:
    """The value of parameter ``name`` for a device spec in user units (see :func:`spec_si`)."""
    si = spec_si(spec, name, prefetch)
    return None if si is None else float(si) / PARAMETERS[name].scale


def spec_values(spec: Any, prefetch: Any = None) -> dict[str, float]:
    """Every parameter the spec has, in user units (the inverse of :func:`with_values`)."""
    values = {n: spec_value(spec, n, prefetch) for n in PARAMETERS}
    return {n: v for n, v in values.items() if v is not None}


def with_values(spec: Any, **values: float) -> Any:
    """``spec`` with parameters in user units written into its blocks (``hbm_bandwidth_GBps=1000``).

    Raises:
        SpecError: an unknown name, a value out of its bounds, a scenario setting (prefetching is
            not a property of the device), or a tier or data type the device does not have.
    """
    for name, value in values.items():
        if value is None:
            continue
        p = PARAMETERS.get(name)
        if p is None:
            raise SpecError(f"unknown hardware parameter {name!r}; allowed: {', '.join(PARAMETERS)}")
        value = p.field.check(value, "hardware parameter ")
        if p.scenario is not None:
            raise SpecError(f"hardware parameter {name}: a scenario setting (prefetching), not the device's")
        if p.spec is None:  # peak_scale
            peaks = {d: v * value for d, v in spec.compute.peak_flops.items()}
            spec = _set(spec, ["compute", "peak_flops"], peaks)
            continue
        parent = _get(spec, p.spec.rsplit(".", 1)[0])
        if parent is None:
            raise SpecError(f"hardware parameter {name}: {spec.name} has no {p.spec.split('.')[-2]} "
                            f"to set (see its spec file)")
        si = int(round(value)) if p.integer else value * p.scale
        spec = _set(spec, p.spec.split("."), si)
    return spec


def cost_inputs(arrays: Any) -> dict[str, Any]:
    """The hardware inputs of the cost model, in its units, from hot-path arrays (the fields of
    the parameters with a ``cost_input``)."""
    return {p.cost_input: getattr(arrays, p.array) / p.scale for p in PARAMETERS.values() if p.cost_input}


def swept_columns(columns: Iterable[str]) -> list[str]:
    """The columns of a results table that are parameters, in table order."""
    return [c for c in columns if c in PARAMETERS]

